"""A virtual ePassport chip (Doc 9303 Parts 10-11, BAC) for vpcd, and the passports to put on it.

:class:`EmrtdChip` speaks to the terminal as a BAC chip does, through the real pcscd and vpcd:

==============================  ===============================================================
command                         the chip's answer
==============================  ===============================================================
``00 A4 04 0C`` eMRTD AID       ``9000``; re-selecting the application ends any session
``00 84 00 00 08``              GET CHALLENGE: ``RND.IC`` (8 bytes)
``00 82 00 00 28 ..``           EXTERNAL AUTHENTICATE: ``E_IC ‖ M_IC`` and a secure messaging
                                session, or ``6300`` when the terminal's MRZ keys are wrong
``0C A4 02 0C`` FID             SELECT EF: ``9000`` or ``6A82``, protected
``0C B0`` offset                READ BINARY, offset in P1-P2 (or ``P1 = 80|SFI``); ``6282`` when
                                the file ends before Ne bytes
``0C B1 00 00`` DO'54'          READ BINARY at offsets above ``7FFF``: ``53 L data``
anything else plain             ``6982`` (BAC first); a plain APDU ends a session
==============================  ===============================================================

Errors the chip detects in secure messaging (a wrong MAC, a missing data object) are answered
with the bare ``6987``/``6988`` of the error and the session is over (Doc 9303 Part 11 §9.8):
the terminal must run BAC again. Errors in the command itself (``6A82``, ``6700``) are answered
protected and the session goes on.

**Lengths.** ``extended_length`` is a switch: on, the chip takes extended APDUs; off, it cannot
parse them and answers a bare ``6700`` (ending the session), as a chip or reader without
extended length support does. ``max_block`` caps the plain bytes one READ BINARY returns: asking
for more gets a protected ``6700`` (a ``Le`` of ``00``/``0000`` means "as much as you can" and
is served). The protected answer must also fit the command's own ``Ne`` and a vpcd message
(65 535 bytes with the status word).

**Misbehaviour** for tests (:class:`Tamper`); each breaks exactly one check or reader step:

=================  ===========  ==================================================================
tamper             applied      what the kiosk sees
=================  ===========  ==================================================================
``wrong-mac``      chip         every protected answer's MAC is off: the reader's secure
                                messaging raises (``EmrtdReadError``)
``wrong-mrz``      chip         the chip's BAC keys are another document number's: the printed
                                MRZ gets ``6300`` (``AccessDeniedError``)
``altered-dg1``    chip         one letter of the name in DG1 changed after signing: ``dg1_hash``
                                (and ``dg1_matches_printed_mrz`` when the printed MRZ is given)
``unknown-csca``   issuance     signed under a CSCA that is not the PKI's: ``ds_certificate_chain``
``expired-ds``     issuance     the DS certificate expired before today: ``ds_certificate_validity``
``ds-country``     issuance     DG1 (and the printed MRZ) name another issuing state than the DS
                                certificate's country: ``ds_country_matches_issuer``
=================  ===========  ==================================================================

Chip tampers work on any image; issuance tampers need the PKI's keys, so they are chosen when
the passport is issued. ``pull_after=N`` takes the chip out of the reader when APDU N+1 arrives
(wire :attr:`EmrtdChip.unplug`, as :func:`insert_chip` does).

**Passport images** (:class:`PassportImage`) are what ``borderlane-edge sim issue-passport``
writes and ``sim card --passport`` loads: JSON with the chip's files in hex and the BAC key
input (the *MRZ information*), plus the printed MRZ for the virtual MRZ reader. The chip holds no
private key (BAC chips have none), so the file is not secret.

Usage::

    pki = PassportPki.create("UT")
    chip = passport_chip(SPECIMEN_MRZ, pki=pki, tamper=["altered-dg1"])
    insert_chip(chip, port=35964)                     # or card_in_reader(stack, chip) in tests
    store = pki.trust_store()                         # the kiosk's CSCA store
"""

from __future__ import annotations

import enum
import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edge.documents import tlv
from edge.documents.apdu import (
    MAX_NE,
    ApduError,
    CommandApdu,
    ResponseApdu,
    StatusWord,
    StatusWordError,
)
from edge.documents.emrtd.bac import (
    INS_EXTERNAL_AUTHENTICATE,
    INS_GET_CHALLENGE,
    NONCE_SIZE,
    BacChip,
    BacError,
    BacKeys,
    mrz_information,
)
from edge.documents.emrtd.countries import ALPHA2_TO_ALPHA3, ICAO_ISSUER_CODES, issuer_matches
from edge.documents.emrtd.lds import MRTD_AID, Dg1, LdsError, LdsFile
from edge.documents.emrtd.passive_auth import CscaStore
from edge.documents.emrtd.reader import max_plain_length
from edge.documents.emrtd.sm import SecureMessaging, SecureMessagingError
from edge.documents.mrz import MrzError
from edge.documents.mrz import parse as parse_mrz
from edge.sim.cards import INS_SELECT, IsoCard, build_atr, instruction
from edge.sim.emrtd_pki import Signer, issue_passport, make_csca, make_document_signer
from edge.sim.vpcd import VPCD_DEFAULT_PORT, VpcdClient

__all__ = [
    "CHIP_TAMPERS",
    "IMAGE_FORMAT",
    "ISSUE_TAMPERS",
    "SAMPLES_DIR",
    "SPECIMEN_FACE",
    "EmrtdChip",
    "IssueError",
    "PassportImage",
    "PassportPki",
    "Tamper",
    "country_for_state",
    "insert_chip",
    "issue_passport_image",
    "jpeg_size",
    "load_or_create_pki",
    "load_passport_image",
    "passport_chip",
    "save_passport_image",
]

#: The ``format`` member of a passport image file.
IMAGE_FORMAT = "borderlane-passport-image@1"
SAMPLES_DIR = Path(__file__).with_name("samples")
#: A synthetic 300x400 JPEG portrait (not a real person), the default face in DG2.
SPECIMEN_FACE = SAMPLES_DIR / "specimen-face.jpg"

INS_READ_BINARY = 0xB0
INS_READ_BINARY_ODD = 0xB1
_TAG_OFFSET = 0x54
_TAG_DISCRETIONARY = 0x53
_P1_SELECT_EF = 0x02
_P2_NO_ANSWER = 0x0C
_SM_CLASS = 0x0C
_MAX_P1P2_OFFSET = 0x7FFF
#: The largest response a vpcd message carries: 65 535 bytes including SW1 SW2.
_VPCD_MAX_RESPONSE_DATA = 0xFFFF - 2
_WILDCARD_NE = (256, MAX_NE)  # Le 00 / 0000: "as much as there is"
#: ISO 7816-4 6986: command not allowed, no current EF.
_NO_CURRENT_EF = StatusWord(0x6986)


class IssueError(ValueError):
    """An MRZ, face, PKI directory or image that cannot make a passport; the message says why."""


class Tamper(enum.StrEnum):
    """A deliberate defect; see the module docstring for which check each one fails."""

    WRONG_MAC = "wrong-mac"
    WRONG_MRZ = "wrong-mrz"
    ALTERED_DG1 = "altered-dg1"
    UNKNOWN_CSCA = "unknown-csca"
    EXPIRED_DS = "expired-ds"
    DS_COUNTRY = "ds-country"

    @property
    def at_issuance(self) -> bool:
        """True when the defect needs the PKI's keys, so it is made when issuing."""
        return self in (Tamper.UNKNOWN_CSCA, Tamper.EXPIRED_DS, Tamper.DS_COUNTRY)


CHIP_TAMPERS = tuple(t for t in Tamper if not t.at_issuance)
ISSUE_TAMPERS = tuple(t for t in Tamper if t.at_issuance)


def _tampers(values: Iterable[str | Tamper] | str | Tamper) -> frozenset[Tamper]:
    names = [values] if isinstance(values, str) else list(values)
    unknown = [str(v) for v in names if v not in Tamper.__members__.values()]
    if unknown:
        known = ", ".join(t.value for t in Tamper)
        raise IssueError(f"unknown tamper {unknown[0]!r}; known: {known}")
    return frozenset(Tamper(v) for v in names)


# -- the PKI --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassportPki:
    """A test issuing state: its Country Signing CA and one Document Signer under it."""

    csca: Signer
    ds: Signer

    @classmethod
    def create(cls, country: str = "UT") -> PassportPki:
        """A fresh CSCA (15 years) and DS (11 years), EC P-256, for ``country`` (alpha-2)."""
        csca = make_csca(country)
        return cls(csca, make_document_signer(csca))

    @property
    def country(self) -> str:
        return self.csca.country

    def trust_store(self) -> CscaStore:
        """The kiosk's CSCA store that trusts this PKI (and nothing else)."""
        return CscaStore([self.csca.certificate])


def country_for_state(state: str) -> str:
    """The certificate country (ISO alpha-2) of an MRZ issuing state: ``UTO`` -> ``UT``.

    Raises :class:`IssueError` for a code no certificate country maps to (``XXA``...).
    """
    code = state.strip().upper().rstrip("<")
    candidates = [*ICAO_ISSUER_CODES, *ALPHA2_TO_ALPHA3]
    for alpha2 in candidates:
        if issuer_matches(alpha2, code):
            return alpha2
    raise IssueError(f"no certificate country is known for issuing state {code!r}")


_PKI_FILES = {"csca": "CSCA", "ds": "Document Signer"}


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)


def _save_signer(signer: Signer, directory: Path, stem: str) -> None:
    key = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(directory / f"{stem}.key", key)
    (directory / f"{stem}.pem").write_bytes(signer.pem)


def _load_signer(directory: Path, stem: str) -> Signer:
    what = _PKI_FILES[stem]
    try:
        certificate = x509.load_pem_x509_certificate((directory / f"{stem}.pem").read_bytes())
        key = serialization.load_pem_private_key(
            (directory / f"{stem}.key").read_bytes(), password=None
        )
    except OSError as error:
        raise IssueError(f"{directory}: cannot read the {what}: {error.strerror}") from None
    except (ValueError, TypeError) as error:
        raise IssueError(f"{directory}: the {what} files are not PEM: {error}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise IssueError(f"{directory}/{stem}.key is not an EC or RSA key")
    return Signer(key, certificate)


def load_or_create_pki(directory: Path | str, country: str = "UT") -> tuple[PassportPki, bool]:
    """The PKI kept in ``directory``, created there (for ``country``) if it holds none yet.

    Files: ``csca.pem`` (the certificate a kiosk trusts), ``ds.pem``, and their private keys
    ``csca.key``, ``ds.key`` (mode 0600). Returns the PKI and whether it was just created.
    """
    directory = Path(directory)
    present = [(directory / f"{stem}.pem").exists() for stem in _PKI_FILES]
    if all(present):
        return PassportPki(_load_signer(directory, "csca"), _load_signer(directory, "ds")), False
    if any(present):
        raise IssueError(f"{directory} holds only part of a PKI (csca.pem and ds.pem go together)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        pki = PassportPki.create(country)
        _save_signer(pki.csca, directory, "csca")
        _save_signer(pki.ds, directory, "ds")
    except OSError as error:
        raise IssueError(f"cannot create the PKI in {directory}: {error.strerror}") from None
    return pki, True


# -- issuing --------------------------------------------------------------------------------------


def jpeg_size(image: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, or None if it is not found.

    DG2's face record states the image's size; this reads it the way a decoder would, by
    walking the marker segments up to the first SOFn.
    """
    if not image.startswith(b"\xff\xd8"):
        return None
    offset = 2
    while offset + 4 <= len(image):
        if image[offset] != 0xFF:
            return None
        marker = image[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        length = int.from_bytes(image[offset + 2 : offset + 4], "big")
        # SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            frame = image[offset + 4 : offset + 2 + length]
            if len(frame) < 5:
                return None
            return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")
        offset += 2 + length
    return None


@dataclass(frozen=True)
class PassportImage:
    """What a passport's chip holds, and the printed MRZ its keys come from.

    ``files`` are the exact file contents; ``mrz_information`` is the BAC key input (document
    number, birth and expiry dates, each with its check digit); ``printed_mrz`` the data page's
    MRZ, lines separated by ``\\n``.
    """

    files: Mapping[LdsFile, bytes]
    mrz_information: str
    printed_mrz: str

    @property
    def keys(self) -> BacKeys:
        """The document basic access keys, as the chip stores them."""
        return BacKeys.from_mrz_information(self.mrz_information)

    def to_json(self) -> str:
        """The image file: JSON, file contents in hex under their LDS names."""
        document: dict[str, Any] = {"format": IMAGE_FORMAT}
        try:  # readable labels for people browsing image files; never read back
            dg1 = Dg1.parse(self.files[LdsFile.DG1])
            document["document_number"] = _split_information(self.mrz_information)[0].rstrip("<")
            document["issuing_state"] = dg1.issuing_state
        except (KeyError, LdsError, ValueError):
            pass
        document |= {
            "printed_mrz": self.printed_mrz.splitlines(),
            "bac": {"mrz_information": self.mrz_information},
            "files": {file.value: self.files[file].hex() for file in LdsFile if file in self.files},
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, document: str | bytes | Mapping[str, Any]) -> PassportImage:
        """Load an image written by :meth:`to_json`; :class:`IssueError` names what is wrong."""
        if not isinstance(document, Mapping):
            try:
                document = json.loads(document)
            except ValueError as error:
                raise IssueError(f"not a passport image: not JSON ({error})") from None
        if not isinstance(document, Mapping) or document.get("format") != IMAGE_FORMAT:
            raise IssueError(f"not a passport image (format must be {IMAGE_FORMAT!r})")
        try:
            files = {LdsFile(name): bytes.fromhex(data) for name, data in document["files"].items()}
            information = document["bac"]["mrz_information"]
            printed = "\n".join(document["printed_mrz"])
            _split_information(information)
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise IssueError(f"passport image lacks or garbles {error}") from None
        for file in (LdsFile.COM, LdsFile.DG1, LdsFile.SOD):
            if file not in files:
                raise IssueError(f"passport image has no {file.value}")
        return cls(files, information, printed)


def _split_information(information: str) -> tuple[str, str, str]:
    """(document number, birth date, expiry date) of an MRZ information string.

    It is ``number ‖ cd ‖ YYMMDD ‖ cd ‖ YYMMDD ‖ cd``; the number is 9 characters or more.
    Raises ValueError when the string is not one (its check digits included).
    """
    if not isinstance(information, str) or len(information) < 24:
        raise ValueError("MRZ information is at least 24 characters")
    fields = information[:-15], information[-14:-8], information[-7:-1]
    if mrz_information(*fields) != information:
        raise ValueError(f"MRZ information {information!r} has wrong check digits")
    return fields


def _bac_information(mrz_text: str) -> tuple[str, str]:
    """(MRZ information, printed MRZ) of an MRZ, checking it belongs to a chip BAC opens."""
    try:
        document = parse_mrz(mrz_text)
    except MrzError as error:
        raise IssueError(f"MRZ: {error}") from None
    # TD1 has the dates on line 2 from column 1; TD2 and TD3 from column 14 (Doc 9303 4-6)
    columns = {"TD1": (0, 8), "TD2": (13, 21), "TD3": (13, 21)}
    if document.format not in columns:
        raise IssueError(f"a {document.format} MRZ (a visa) belongs to no chip")
    birth, expiry = columns[document.format]
    line = document.lines[1]
    try:
        information = mrz_information(
            document.document_number, line[birth : birth + 6], line[expiry : expiry + 6]
        )
    except ValueError as error:
        raise IssueError(f"MRZ: {error}") from None
    return information, "\n".join(document.lines)


def _other_state(mrz: str, ds: Signer) -> str:
    """``mrz`` with an issuing state that the DS certificate's country does not fit."""
    for state in ("D<<", "UTO"):
        if not issuer_matches(ds.country, state):
            return mrz[:2] + state + mrz[5:]
    raise AssertionError("no certificate country fits both D and UTO")


def _expired_signer(csca: Signer) -> Signer:
    """A Document Signer of ``csca`` whose certificate expired an hour ago."""
    now = datetime.now(UTC)
    start = min(csca.certificate.not_valid_before_utc, now - timedelta(days=2))
    return make_document_signer(csca, not_before=start, not_after=now - timedelta(hours=1))


def issue_passport_image(
    mrz_text: str,
    *,
    pki: PassportPki,
    face: bytes | None = None,
    tamper: Iterable[str | Tamper] | str = (),
) -> PassportImage:
    """Personalise a chip: EF.COM, DG1 (the MRZ), DG2 (``face``, default the specimen), EF.SOD.

    ``mrz_text`` is a TD1, TD2 or TD3 MRZ (lines, or joined). Issuance tampers
    (``unknown-csca``, ``expired-ds``, ``ds-country``) are made here; chip tampers are ignored
    (they belong to :meth:`EmrtdChip.from_image`).
    """
    defects = _tampers(tamper)
    information, printed = _bac_information(mrz_text)
    if face is None:
        face = SPECIMEN_FACE.read_bytes()
    size = jpeg_size(face) or (0, 0)
    csca, ds = pki.csca, pki.ds
    if Tamper.UNKNOWN_CSCA in defects:
        csca = make_csca(pki.country, common_name=f"CSCA {pki.country} (not in any master list)")
        ds = make_document_signer(csca)
    if Tamper.EXPIRED_DS in defects:
        ds = _expired_signer(csca)
    dg1_mrz = printed.replace("\n", "")
    if Tamper.DS_COUNTRY in defects:
        # The booklet is printed to match: only the issuing state contradicts the DS.
        dg1_mrz = _other_state(dg1_mrz, ds)
        width = len(printed.splitlines()[0])
        printed = "\n".join(dg1_mrz[i : i + width] for i in range(0, len(dg1_mrz), width))
    try:
        files = issue_passport(dg1_mrz, face, ds, face_size=size)
    except LdsError as error:
        raise IssueError(f"cannot build the chip's files: {error}") from None
    return PassportImage(files, information, printed)


def save_passport_image(image: PassportImage, path: Path | str) -> Path:
    path = Path(path)
    path.write_text(image.to_json(), encoding="utf-8")
    return path


def load_passport_image(path: Path | str) -> PassportImage:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise IssueError(f"{path}: cannot read the passport image ({error})") from None
    return PassportImage.from_json(text)


# -- chip-side defects ----------------------------------------------------------------------------


def _altered_dg1(data: bytes) -> bytes:
    """DG1 with the first letter of the holder's name changed (the SOD still has the old hash)."""
    dg1 = Dg1.parse(data)
    # the name starts after the issuing state on TD2/TD3 line 1, at the start of TD1 line 3
    start = 60 if dg1.document_code == "TD1" else 5
    position = next(i for i in range(start, len(dg1.mrz)) if dg1.mrz[i].isalpha())
    letter = dg1.mrz[position]
    changed = "A" if letter == "Z" else chr(ord(letter) + 1)
    return Dg1(dg1.mrz[:position] + changed + dg1.mrz[position + 1 :]).encode()


def _wrong_mrz_keys(information: str) -> BacKeys:
    """BAC keys of another document number: the chip does not belong to this data page."""
    number, birth, expiry = _split_information(information)
    other = "1" if number[-1] == "0" else "0"
    return BacKeys.from_mrz(number[:-1] + other, birth, expiry)


# -- the chip -------------------------------------------------------------------------------------

_ProtectedHandler = Callable[["EmrtdChip", CommandApdu, int], ResponseApdu]


class EmrtdChip(IsoCard):
    """An eMRTD chip with BAC and secure messaging, for vpcd (or :meth:`transmit` called directly).

    ``files`` are the LDS files by :class:`LdsFile`; ``keys`` the BAC keys from the MRZ.
    ``extended_length``, ``max_block``, ``wrong_mac``: see the module docstring. ``pull_after``
    and :attr:`unplug` work as on :class:`~edge.sim.cbic_card.CbicCard`: the chip leaves the
    reader when command APDU ``pull_after + 1`` arrives. ``random`` gives ``RND.IC`` and ``K.IC``.
    """

    #: Historical bytes: category 80, then issuer data (COMPACT-TLV tag 5) "EMRTD".
    ATR: ClassVar[bytes] = build_atr(b"\x80\x55EMRTD")
    SUPPORTED_CLASSES: ClassVar[frozenset[int]] = frozenset({0x00, _SM_CLASS})

    def __init__(
        self,
        files: Mapping[LdsFile, bytes],
        keys: BacKeys,
        *,
        extended_length: bool = True,
        max_block: int | None = None,
        wrong_mac: bool = False,
        pull_after: int | None = None,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        super().__init__((MRTD_AID,), random=random, pull_after=pull_after)
        if max_block is not None and max_block < 1:
            raise ValueError("max_block must be positive")
        self.files = {LdsFile(file): bytes(data) for file, data in files.items()}
        self.keys = keys
        self.extended_length = extended_length
        self.max_block = max_block
        self.wrong_mac = wrong_mac
        #: The image the chip was made from, if any (for tests and logs).
        self.image: PassportImage | None = None
        #: Successful BAC runs since the chip was made (a reader re-authenticates after errors).
        self.authentications = 0
        #: The file SELECT or READ BINARY by SFI made current.
        self.current_file: LdsFile | None = None
        self._bac = BacChip(keys, random=random)
        self._sm: SecureMessaging | None = None

    @classmethod
    def from_image(
        cls,
        image: PassportImage,
        *,
        tamper: Iterable[str | Tamper] | str = (),
        extended_length: bool = True,
        max_block: int | None = None,
        pull_after: int | None = None,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> EmrtdChip:
        """A chip holding ``image``, with the chip tampers of ``tamper`` applied.

        Issuance tampers are refused here: they are in the image or nowhere.
        """
        defects = _tampers(tamper)
        late = sorted(t.value for t in defects if t.at_issuance)
        if late:
            raise IssueError(f"{', '.join(late)}: chosen when the passport is issued, not here")
        files = dict(image.files)
        if Tamper.ALTERED_DG1 in defects:
            files[LdsFile.DG1] = _altered_dg1(files[LdsFile.DG1])
        keys = image.keys
        if Tamper.WRONG_MRZ in defects:
            keys = _wrong_mrz_keys(image.mrz_information)
        chip = cls(
            files,
            keys,
            extended_length=extended_length,
            max_block=max_block,
            wrong_mac=Tamper.WRONG_MAC in defects,
            pull_after=pull_after,
            random=random,
        )
        chip.image = image
        return chip

    # -- state -------------------------------------------------------------------------------

    @property
    def session_open(self) -> bool:
        """True while a BAC secure messaging session is up."""
        return self._sm is not None

    def _end_session(self) -> None:
        self._sm = None
        self.current_file = None

    def reset(self) -> None:
        super().reset()
        self._end_session()
        self._bac = BacChip(self.keys, random=self._random)

    # -- dispatch ----------------------------------------------------------------------------

    def answer(self, apdu: bytes) -> bytes:
        try:
            command = CommandApdu.parse(apdu)
        except ApduError:
            self._end_session()
            return StatusWord.WRONG_LENGTH.to_bytes()
        if command.extended and not self.extended_length:
            # Such a chip cannot even parse the APDU: a bare 6700, and the session is gone.
            self._end_session()
            return StatusWord.WRONG_LENGTH.to_bytes()
        return self.process(command).to_bytes()

    def process(self, command: CommandApdu) -> ResponseApdu:
        """Answer one parsed command: protected ones through the session, plain ones as BAC."""
        if command.cla == _SM_CLASS:
            return self._process_protected(command)
        # Doc 9303 Part 11 §9.8: a plain APDU aborts secure messaging.
        self._end_session()
        return super().process(command)

    def _process_protected(self, command: CommandApdu) -> ResponseApdu:
        sm = self._sm
        if sm is None:
            # Nothing to protect the answer with: a bare refusal.
            return ResponseApdu(sw=StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        try:
            plain = sm.unwrap_command(command)
        except SecureMessagingError as error:
            self._end_session()
            return ResponseApdu(sw=error.sw)
        limit = self._response_limit(command)
        handler = self._PROTECTED.get(plain.ins)
        try:
            if handler is None:
                raise StatusWordError(StatusWord.INS_NOT_SUPPORTED)
            response = handler(self, plain, limit)
        except StatusWordError as refusal:
            response = ResponseApdu(sw=refusal.sw)
        wrapped = sm.wrap_response(response, odd_ins=bool(plain.ins & 1))
        if self.wrong_mac:
            # The MAC is the last 8 bytes of DO'8E', at the end of the data.
            data = bytearray(wrapped.data)
            data[-1] ^= 0x01
            wrapped = ResponseApdu(bytes(data), wrapped.sw)
        return wrapped

    def _response_limit(self, command: CommandApdu) -> int:
        """The most plain bytes one answer may carry: the protected answer must fit the
        command's Ne and a vpcd message, and the chip's own ``max_block`` caps it."""
        outer = min(command.le or 0, _VPCD_MAX_RESPONSE_DATA)
        limit = max_plain_length(outer) if outer else 0
        return limit if self.max_block is None else min(limit, self.max_block)

    # -- plain instructions: selecting the application and BAC -------------------------------

    @instruction(INS_SELECT)
    def select(self, command: CommandApdu) -> ResponseApdu:
        """SELECT the eMRTD application by AID; EFs are selected only under secure messaging."""
        if command.p1 == _P1_SELECT_EF:
            raise StatusWordError(StatusWord.SECURITY_STATUS_NOT_SATISFIED, "BAC first")
        response = super().select(command)
        self._bac = BacChip(self.keys, random=self._random)
        return response

    @instruction(INS_GET_CHALLENGE)
    def get_challenge(self, command: CommandApdu) -> ResponseApdu:
        """GET CHALLENGE: ``RND.IC``, exactly 8 bytes, for the next EXTERNAL AUTHENTICATE."""
        if self.selected != MRTD_AID:
            raise StatusWordError(StatusWord.CONDITIONS_NOT_SATISFIED, "eMRTD not selected")
        if command.p1 or command.p2:
            raise StatusWordError(StatusWord.INCORRECT_P1P2)
        if command.data or command.le != NONCE_SIZE:
            raise StatusWordError(StatusWord.WRONG_LENGTH, "GET CHALLENGE takes Le 08")
        self.last_challenge = self._bac.challenge()
        return ResponseApdu(self.last_challenge)

    @instruction(INS_EXTERNAL_AUTHENTICATE)
    def external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """EXTERNAL AUTHENTICATE: check the terminal's cryptogram, answer ours, open the session."""
        if self.selected != MRTD_AID:
            raise StatusWordError(StatusWord.CONDITIONS_NOT_SATISFIED, "eMRTD not selected")
        if command.p1 or command.p2:
            raise StatusWordError(StatusWord.INCORRECT_P1P2)
        try:
            answer, session = self._bac.authenticate(command.data)
        except BacError:
            # Wrong MRZ keys (or no challenge): the same answer, so nothing leaks which.
            raise StatusWordError(StatusWord.VERIFICATION_FAILED) from None
        self._sm = session
        self.current_file = None
        self.authentications += 1
        return ResponseApdu(answer)

    @instruction(INS_READ_BINARY)
    def read_binary_plain(self, command: CommandApdu) -> ResponseApdu:
        raise StatusWordError(StatusWord.SECURITY_STATUS_NOT_SATISFIED, "BAC first")

    @instruction(INS_READ_BINARY_ODD)
    def read_binary_odd_plain(self, command: CommandApdu) -> ResponseApdu:
        raise StatusWordError(StatusWord.SECURITY_STATUS_NOT_SATISFIED, "BAC first")

    # -- protected instructions: the files ------------------------------------------------------

    def _select_file(self, command: CommandApdu, limit: int) -> ResponseApdu:
        """SELECT EF by file identifier (P1 02, P2 0C: no answer data)."""
        if command.p1 != _P1_SELECT_EF or command.p2 != _P2_NO_ANSWER:
            raise StatusWordError(StatusWord.INCORRECT_P1P2, "SELECT EF by FID, P1-P2 020C")
        if command.nc != 2:
            raise StatusWordError(StatusWord.WRONG_LENGTH, "a file identifier is 2 bytes")
        for file in self.files:
            if file.fid == command.data:
                self.current_file = file
                return ResponseApdu()
        raise StatusWordError(StatusWord.FILE_NOT_FOUND)

    def _read_binary(self, command: CommandApdu, limit: int) -> ResponseApdu:
        """READ BINARY (B0): offset in P1-P2, or P1 = 80|SFI selecting the file, offset P2."""
        if command.data or command.le is None:
            raise StatusWordError(StatusWord.WRONG_LENGTH, "READ BINARY takes Le, no data")
        if command.p1 & 0x80:
            sfi = command.p1 & 0x1F
            if command.p1 & 0x60:
                raise StatusWordError(StatusWord.INCORRECT_P1P2)
            file = next((f for f in self.files if f.sfi == sfi), None)
            if file is None:
                raise StatusWordError(StatusWord.FILE_NOT_FOUND)
            self.current_file = file
            offset = command.p2
        else:
            offset = command.p1 << 8 | command.p2
        data, sw = self._chunk(offset, command.le, limit)
        return ResponseApdu(data, sw)

    def _read_binary_odd(self, command: CommandApdu, limit: int) -> ResponseApdu:
        """READ BINARY (B1): offset in DO'54', answer ``53 L data``; for offsets above 7FFF."""
        if command.p1 or command.p2:
            raise StatusWordError(StatusWord.INCORRECT_P1P2, "B1 reads the current EF: P1-P2 0000")
        if command.le is None:
            raise StatusWordError(StatusWord.WRONG_LENGTH, "READ BINARY takes Le")
        try:
            offset_object = tlv.decode_one(command.data, _TAG_OFFSET)
        except tlv.TlvError:
            raise StatusWordError(StatusWord.WRONG_DATA, "B1 needs the offset in DO'54'") from None
        if not 1 <= len(offset_object.value) <= 3:
            raise StatusWordError(StatusWord.WRONG_DATA, "an offset is 1..3 bytes")
        offset = int.from_bytes(offset_object.value, "big")
        # Ne and the limit count the 53 L header too: room for the data is what is left.
        data_room = command.le
        while data_room and 1 + len(tlv.encode_length(data_room)) + data_room > command.le:
            data_room -= 1
        room_limit = limit
        while room_limit and 1 + len(tlv.encode_length(room_limit)) + room_limit > limit:
            room_limit -= 1
        wanted = command.le if command.le in _WILDCARD_NE else data_room
        data, sw = self._chunk(offset, wanted, room_limit)
        return ResponseApdu(tlv.encode(_TAG_DISCRETIONARY, data), sw)

    def _chunk(self, offset: int, ne: int, limit: int) -> tuple[bytes, StatusWord]:
        """Up to ``ne`` bytes of the current file at ``offset``, within ``limit``."""
        file = self.current_file
        if file is None:
            raise StatusWordError(_NO_CURRENT_EF)
        if limit < 1:
            raise StatusWordError(StatusWord.WRONG_LENGTH, "no room for data in the answer")
        content = self.files[file]
        if offset >= len(content):
            raise StatusWordError(StatusWord.WRONG_P1P2, "offset beyond the end of the file")
        wildcard = ne in _WILDCARD_NE
        if wildcard:
            ne = min(ne, limit)
        elif ne > limit:
            # More than the chip's buffer (or the answer's room) holds; the reader shrinks.
            raise StatusWordError(StatusWord.WRONG_LENGTH, f"at most {limit} bytes per read")
        chunk = content[offset : offset + ne]
        short = len(chunk) < ne and not wildcard
        return chunk, StatusWord.END_OF_FILE if short else StatusWord.SUCCESS

    _PROTECTED: ClassVar[dict[int, _ProtectedHandler]] = {
        INS_SELECT: _select_file,
        INS_READ_BINARY: _read_binary,
        INS_READ_BINARY_ODD: _read_binary_odd,
    }


def passport_chip(
    mrz_text: str,
    *,
    face: bytes | None = None,
    pki: PassportPki | None = None,
    tamper: Iterable[str | Tamper] | str = (),
    extended_length: bool = True,
    max_block: int | None = None,
    pull_after: int | None = None,
    random: Callable[[int], bytes] = secrets.token_bytes,
) -> EmrtdChip:
    """Issue a passport for ``mrz_text`` and make its chip, with any tampers (chip or issuance).

    ``pki`` defaults to a fresh one for the MRZ's issuing state; the chip's
    :attr:`~EmrtdChip.image` holds the issued files and printed MRZ.
    """
    defects = _tampers(tamper)
    if pki is None:
        _, printed = _bac_information(mrz_text)
        pki = PassportPki.create(country_for_state(printed[2:5]))
    image = issue_passport_image(
        mrz_text, pki=pki, face=face, tamper=[t for t in defects if t.at_issuance]
    )
    return EmrtdChip.from_image(
        image,
        tamper=[t for t in defects if not t.at_issuance],
        extended_length=extended_length,
        max_block=max_block,
        pull_after=pull_after,
        random=random,
    )


def insert_chip(
    chip: EmrtdChip, host: str = "127.0.0.1", port: int = VPCD_DEFAULT_PORT
) -> VpcdClient:
    """Insert ``chip`` into a vpcd slot, wiring its :attr:`~EmrtdChip.unplug` to the link."""
    client = VpcdClient(chip, host, port)
    chip.unplug = client.remove
    return client.insert()
