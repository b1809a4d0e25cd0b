"""A virtual CBIC: the card side of the profile in ``edge/documents/cbic.md``, for vpcd.

A :class:`CbicCard` holds the three files of the CBIC application (EF.HOLDER, EF.SIG and, if
issued with one, EF.PORTRAIT) and the card's P-256 private key. It answers SELECT by the CBIC AID,
READ BINARY (by SFI, then by offset in the current EF) and INTERNAL AUTHENTICATE. A
:class:`CardImage` is what the issuing tool writes and the card loads (a JSON file).

Misbehaviour for tests, all through :meth:`CbicCard.from_image`:

- ``bad_issuer_signature``: one bit of the issuer's signature flipped in EF.SIG;
- ``cloned``: the data copied onto a card without the original key: a different key answers
  INTERNAL AUTHENTICATE;
- expired, not yet valid, not valid at a crossing point: nothing to switch, only holder data;
  issue a card with those dates or sites (``edge.sim.cbic_issue.issue_card``);
- ``pull_after=N``: the card leaves the reader when command APDU N+1 arrives. The card cannot
  close the vpcd link itself, so the owner wires :attr:`CbicCard.unplug` to
  :meth:`VpcdClient.remove` (:func:`insert_cbic` does); it is called on the vpcd I/O thread,
  the pending command is never answered, and pcscd reports the card removed.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord, StatusWordError
from edge.documents.cbic import (
    CBIC_AID,
    CHALLENGE_LENGTH,
    INS_INTERNAL_AUTHENTICATE,
    INS_READ_BINARY,
    SFI_HOLDER,
    SFI_PORTRAIT,
    SFI_SIGNATURE,
    CbicHolder,
    CbicSignature,
    card_authentication_message,
    ecdsa_sign_raw,
)
from edge.sim.cards import IsoCard, instruction
from edge.sim.vpcd import VPCD_DEFAULT_PORT, VpcdClient

__all__ = ["IMAGE_FORMAT", "CardImage", "CbicCard", "insert_cbic"]

#: The ``format`` member of a card image file.
IMAGE_FORMAT = "borderlane-cbic-image@1"

#: ISO 7816-4 6986: command not allowed, no current EF.
_NO_CURRENT_EF = StatusWord(0x6986)
_RAW_SIGNATURE = 64


@dataclass(frozen=True)
class CardImage:
    """Everything a CBIC holds: the file contents (exact bytes) and the card's private key."""

    holder_data: bytes
    signature_data: bytes
    card_key: ec.EllipticCurvePrivateKey
    portrait_data: bytes | None = None

    def to_json(self) -> str:
        """The image file: JSON with hex file contents and the card key as PKCS#8 PEM."""
        pem = self.card_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        document: dict[str, Any] = {"format": IMAGE_FORMAT}
        try:  # a readable label for people browsing image files; never read back
            holder = CbicHolder.decode(self.holder_data)
            document["card_number"] = holder.card_number
        except ValueError:
            pass
        document |= {
            "holder_tlv": self.holder_data.hex(),
            "signature_tlv": self.signature_data.hex(),
            "card_private_key_pem": pem,
        }
        if self.portrait_data is not None:
            document["portrait_tlv_base64"] = base64.b64encode(self.portrait_data).decode("ascii")
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, document: str | bytes | Mapping[str, Any]) -> CardImage:
        """Load an image written by :meth:`to_json`; ValueError names what is wrong."""
        if not isinstance(document, Mapping):
            document = json.loads(document)
        if not isinstance(document, Mapping) or document.get("format") != IMAGE_FORMAT:
            raise ValueError(f"not a CBIC card image (format must be {IMAGE_FORMAT!r})")
        try:
            key = serialization.load_pem_private_key(
                document["card_private_key_pem"].encode("ascii"), password=None
            )
            portrait = document.get("portrait_tlv_base64")
            image = cls(
                holder_data=bytes.fromhex(document["holder_tlv"]),
                signature_data=bytes.fromhex(document["signature_tlv"]),
                card_key=key,  # type: ignore[arg-type]  # checked below
                portrait_data=None if portrait is None else base64.b64decode(portrait),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"card image lacks or garbles {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the card key in the image is not an EC P-256 private key")
        return image


class CbicCard(IsoCard):
    """A CBIC for vpcd (or for direct calls to :meth:`process` in pure tests).

    ``holder_data``, ``signature_data`` and ``portrait_data`` are the exact file contents;
    ``card_key`` answers INTERNAL AUTHENTICATE. ``pull_after`` and :attr:`unplug`: see the module.
    """

    def __init__(
        self,
        holder_data: bytes,
        signature_data: bytes,
        card_key: ec.EllipticCurvePrivateKey,
        *,
        portrait_data: bytes | None = None,
        pull_after: int | None = None,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        super().__init__((CBIC_AID,), random=random, pull_after=pull_after)
        self.files: dict[int, bytes] = {
            SFI_HOLDER: bytes(holder_data),
            SFI_SIGNATURE: bytes(signature_data),
        }
        if portrait_data is not None:
            self.files[SFI_PORTRAIT] = bytes(portrait_data)
        self.card_key = card_key
        #: SFI of the current EF (set by READ BINARY by SFI), None after SELECT or reset.
        self.current_file: int | None = None

    @classmethod
    def from_image(
        cls,
        image: CardImage,
        *,
        bad_issuer_signature: bool = False,
        cloned: bool = False,
        pull_after: int | None = None,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> CbicCard:
        """A card from an issued image, optionally misbehaving (see the module docstring)."""
        signature = image.signature_data
        if bad_issuer_signature:
            signed = CbicSignature.decode(signature)
            flipped = signed.signature[:-1] + bytes((signed.signature[-1] ^ 0x01,))
            signature = CbicSignature(signed.issuer_key_id, flipped).encode()
        key = ec.generate_private_key(ec.SECP256R1()) if cloned else image.card_key
        return cls(
            image.holder_data,
            signature,
            key,
            portrait_data=image.portrait_data,
            pull_after=pull_after,
            random=random,
        )

    def reset(self) -> None:
        super().reset()
        self.current_file = None

    # -- instructions ------------------------------------------------------------------------

    def select(self, command: CommandApdu) -> ResponseApdu:
        response = super().select(command)  # raises, keeping the state, if refused
        self.current_file = None
        return response

    @instruction(INS_READ_BINARY)
    def read_binary(self, command: CommandApdu) -> ResponseApdu:
        """READ BINARY: P1 = 80|SFI with P2 = offset, or a 15-bit offset in the current EF."""
        if self.selected != CBIC_AID:
            raise StatusWordError(StatusWord.CONDITIONS_NOT_SATISFIED, "CBIC not selected")
        if command.data or command.le is None:
            raise StatusWordError(StatusWord.WRONG_LENGTH, "READ BINARY takes Le, no data")
        if command.p1 & 0x80:
            sfi = command.p1 & 0x1F
            if command.p1 & 0x60 or not sfi:
                raise StatusWordError(StatusWord.INCORRECT_P1P2)
            if sfi not in self.files:
                raise StatusWordError(StatusWord.FILE_NOT_FOUND)
            self.current_file = sfi
            offset = command.p2
        else:
            if self.current_file is None:
                raise StatusWordError(_NO_CURRENT_EF)
            offset = command.p1 << 8 | command.p2
        content = self.files[self.current_file]
        if offset >= len(content):
            raise StatusWordError(StatusWord.WRONG_P1P2, "offset beyond the end of the file")
        chunk = content[offset : offset + command.le]
        # Le 00 (or 0000) means "as much as there is"; a smaller explicit Le not met is a warning
        short = len(chunk) < command.le and command.le not in (256, 65536)
        return ResponseApdu(chunk, StatusWord.END_OF_FILE if short else StatusWord.SUCCESS)

    @instruction(INS_INTERNAL_AUTHENTICATE)
    def internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """INTERNAL AUTHENTICATE: r || s over SHA-256("BORDERLANE-CBIC-IA-1" || challenge)."""
        if self.selected != CBIC_AID:
            raise StatusWordError(StatusWord.CONDITIONS_NOT_SATISFIED, "CBIC not selected")
        if command.p1 or command.p2:
            raise StatusWordError(StatusWord.INCORRECT_P1P2)
        if command.nc != CHALLENGE_LENGTH or command.le is None:
            raise StatusWordError(StatusWord.WRONG_LENGTH, "a 16-byte challenge and Le")
        if command.le < _RAW_SIGNATURE:
            raise StatusWordError(StatusWord.wrong_le(_RAW_SIGNATURE))
        message = card_authentication_message(command.data)
        return ResponseApdu(ecdsa_sign_raw(self.card_key, message))


def insert_cbic(
    card: CbicCard, host: str = "127.0.0.1", port: int = VPCD_DEFAULT_PORT
) -> VpcdClient:
    """Insert ``card`` into a vpcd slot, wiring its :attr:`~CbicCard.unplug` to the link."""
    client = VpcdClient(card, host, port)
    card.unplug = client.remove
    return client.insert()
