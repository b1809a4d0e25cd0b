"""Whatever document is on a card, read and verified: a CBIC or an ePassport chip.

Pure code, no I/O: :func:`read_card` talks to the card only through the ``transmit`` callable
it is given (the PC/SC driver's blocking ``CardSession.transmit``, run in a worker thread, or a
virtual card's). It tries the CBIC application first (:mod:`edge.documents.cbic`); a card
without one is opened as an eMRTD (:mod:`edge.documents.emrtd`) with the BAC keys of the printed
MRZ, which also serves Passive Authentication's DG1 comparison::

    document = read_card(card.transmit, issuers=trust, site="bz-santa-elena",
                         today=date.today(), cscas=store, mrz=mrz.parse(printed))
    document.kind, document.document, [c.to_json() for c in document.checks]

What comes back (:class:`CardDocument`) is what was read and every check, as the crossing record
carries them; deciding anything from the checks is the lane's business. Exceptions:

- an exception from ``transmit`` itself (card pulled, reader gone) propagates unchanged, so the
  caller sees its own driver's errors;
- :class:`MrzRequired`: the card is an ePassport and no MRZ was given to open it;
- :class:`CardReadError` (:class:`BacRefused`, :class:`UnknownCard`): the card answered, but
  could not be read to the end, or what it said could not be understood; the message is one
  line. Whatever a card answers, nothing else comes out: the parsers raise only their own
  errors, and :func:`read_card` turns anything else raised while reading a card's answers into
  a :class:`CardReadError` too (the lane then decides on the printed MRZ and refers the
  traveller), so that no card can stop the lane.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord
from edge.documents.cbic import (
    CbicHolder,
    CbicReadError,
    CbicReading,
    IssuerTrustList,
    NotACbic,
    read_cbic,
)
from edge.documents.checks import Check
from edge.documents.emrtd.bac import BacKeys
from edge.documents.emrtd.lds import MRTD_AID, Dg1, Dg2, LdsError, LdsFile
from edge.documents.emrtd.passive_auth import CscaStore, PassiveAuthReport, verify
from edge.documents.emrtd.reader import (
    AccessDeniedError,
    EmrtdReadError,
    NotAnEmrtdError,
    ReadResult,
    read_emrtd,
)
from edge.documents.mrz import MrzDocument, MrzError
from edge.documents.mrz import parse as parse_mrz

__all__ = [
    "BacRefused",
    "CardDocument",
    "CardReadError",
    "DocumentKind",
    "MrzRequired",
    "UnknownCard",
    "read_card",
]

Transmit = Callable[[CommandApdu], ResponseApdu]
#: The contract's ``document_kind`` values a card can hold.
DocumentKind = Literal["cbic", "passport", "id_card", "visa", "other"]

# The first letter of the Doc 9303 document code says what kind of document a chip belongs to.
_KINDS: Mapping[str, DocumentKind] = {
    "P": "passport",
    "I": "id_card",
    "A": "id_card",
    "C": "id_card",
}


class MrzRequired(Exception):
    """The card is an ePassport (or eMRTD identity card) and no MRZ was given for BAC."""


class CardReadError(Exception):
    """The card could not be read to the end; ``kind`` says what it was taken for."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class BacRefused(CardReadError):
    """The chip refused Basic Access Control: the MRZ's keys are not this chip's."""


class UnknownCard(CardReadError):
    """The card holds neither a CBIC application nor an eMRTD one."""


@dataclass(frozen=True)
class CardDocument:
    """A document read from a card and verified.

    ``document`` is the crossing record's ``document`` object (kind, type, states, number,
    expiry, birth year; None when the CBIC's holder data could not be decoded); ``holder`` what
    a person at the lane reads besides (names, birth date, sex; for a CBIC the community, the
    crossing points and issue date; for an ePassport the face image's format and size, never
    the image). ``checks`` are every verification, in order. The raw results stay available
    for callers that want more (``cbic``; ``emrtd`` and ``passive_auth``).
    """

    kind: DocumentKind
    document: Mapping[str, Any] | None
    holder: Mapping[str, Any]
    checks: tuple[Check, ...]
    cbic: CbicReading | None = field(default=None, repr=False)
    emrtd: ReadResult | None = field(default=None, repr=False)
    passive_auth: PassiveAuthReport | None = field(default=None, repr=False)
    #: Where the ePassport's document data comes from: "DG1", or "printed MRZ" when DG1 is
    #: unreadable; "EF.HOLDER" for a CBIC.
    source: str = ""

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the checks that did not pass (failed, skipped or could not run)."""
        return tuple(check.name for check in self.checks if not check.passed)


class _Link:
    """``transmit``, remembering what it raised: the caller's own errors pass unchanged."""

    def __init__(self, transmit: Transmit) -> None:
        self._transmit = transmit
        self.failure: BaseException | None = None

    def __call__(self, command: CommandApdu) -> ResponseApdu:
        try:
            return self._transmit(command)
        except BaseException as exc:
            self.failure = exc
            raise


def read_card(
    transmit: Transmit,
    *,
    issuers: IssuerTrustList,
    site: str | None,
    today: date,
    cscas: CscaStore,
    mrz: MrzDocument | None = None,
    at: datetime | None = None,
    extended_length: bool = False,
    random: Callable[[int], bytes] = secrets.token_bytes,
) -> CardDocument:
    """Read and verify the document on the card behind ``transmit``; see the module docstring.

    CBIC: ``issuers`` are the trusted issuer keys, ``site`` the kiosk's crossing point (None:
    the check is skipped), ``today`` the local date. ePassport: ``mrz`` is the printed MRZ
    (BAC keys, and DG1's comparison), ``cscas`` the trusted CSCAs, ``at`` the verification time
    (timezone-aware; default now); ``extended_length`` lets the reader use extended APDUs (the
    link must carry them). ``random`` supplies the challenges.
    """
    link = _Link(transmit)
    try:
        return _read_card(link, issuers, site, today, cscas, mrz, at, extended_length, random)
    except (MrzRequired, CardReadError, _UnusableMrz):
        raise
    except Exception as exc:
        if exc is link.failure:
            raise
        # A parser let through an error that is not its own: a bug, but about what this card
        # said, so the card is unreadable, not the lane broken. The cause stays chained.
        raise CardReadError(
            f"the card's answers could not be understood ({type(exc).__name__})"
        ) from exc


class _UnusableMrz(ValueError):
    """The printed MRZ opens no chip (a visa's, say): the caller's input, not the card's."""


def _read_card(
    transmit: Transmit,
    issuers: IssuerTrustList,
    site: str | None,
    today: date,
    cscas: CscaStore,
    mrz: MrzDocument | None,
    at: datetime | None,
    extended_length: bool,
    random: Callable[[int], bytes],
) -> CardDocument:
    try:
        reading = read_cbic(transmit, trust=issuers, today=today, site=site, random=random)
    except NotACbic:
        pass
    except CbicReadError as error:
        if error.__cause__ is not None:  # transmit itself failed: the caller's own error
            raise error.__cause__ from None
        raise CardReadError(f"the CBIC could not be read: {error}", "cbic") from None
    else:
        return _cbic_document(reading)
    if mrz is None:
        answer = transmit(CommandApdu(0x00, 0xA4, 0x04, 0x0C, MRTD_AID))
        if answer.sw == StatusWord.SUCCESS:
            raise MrzRequired("the card is an ePassport: its MRZ is needed to open the chip (BAC)")
        raise UnknownCard(
            f"the card is neither a CBIC nor an ePassport (SELECT answered {answer.sw})"
        )
    try:
        keys = BacKeys.from_mrz_document(mrz)
    except ValueError as error:  # an MRZ that opens no chip (a visa)
        raise _UnusableMrz(str(error)) from None
    try:
        result = read_emrtd(transmit, keys, extended_length=extended_length, random=random)
    except NotAnEmrtdError as error:
        raise UnknownCard(f"the card is neither a CBIC nor an ePassport ({error})") from None
    except AccessDeniedError as error:
        raise BacRefused(str(error), "passport") from None
    except EmrtdReadError as error:
        raise CardReadError(f"the ePassport could not be read: {error}", "passport") from None
    printed = "\n".join(mrz.lines)
    report = verify(
        result.files.get(LdsFile.SOD, b""),
        result.data_groups(),
        cscas,
        at=at,
        printed_mrz=printed,
    )
    return _passport_document(result, report, mrz, today)


def _cbic_document(reading: CbicReading) -> CardDocument:
    holder: CbicHolder | None = reading.holder
    details: dict[str, Any] = {}
    if holder is not None:
        details = {
            "surname": holder.surname,
            "given_names": holder.given_names,
            "date_of_birth": holder.date_of_birth.isoformat(),
            "sex": holder.sex,
            "community": holder.community,
            "valid_at": list(holder.valid_at),
            "issue_date": holder.issue_date.isoformat(),
        }
    return CardDocument(
        kind="cbic",
        document=holder.document_summary() if holder is not None else None,
        holder=details,
        checks=reading.checks,
        cbic=reading,
        source="EF.HOLDER",
    )


def _passport_document(
    result: ReadResult, report: PassiveAuthReport, printed: MrzDocument, today: date
) -> CardDocument:
    mrz, source = printed, "printed MRZ"
    dg1_bytes = result.files.get(LdsFile.DG1)
    if dg1_bytes is not None:
        try:
            mrz = parse_mrz("\n".join(Dg1.parse(dg1_bytes).lines), today=today)
            source = "DG1"
        except (LdsError, MrzError):
            pass  # dg1_hash and dg1_matches_printed_mrz say what is wrong with it
    birth_year = int(mrz.birth_date[:4]) if mrz.birth_date else None
    document = {
        "kind": _KINDS.get(mrz.document_type[:1], "other"),
        "document_type": mrz.document_type,
        "issuing_state": mrz.issuing_state,
        "nationality": mrz.nationality,
        "number": mrz.document_number,
        "expiry_date": mrz.expiry_date,
        "birth_year": birth_year,
    }
    holder = {
        "surname": mrz.surname,
        "given_names": mrz.given_names,
        "date_of_birth": mrz.birth_date,
        "sex": mrz.sex,
        "face": _face(result),
    }
    return CardDocument(
        kind=document["kind"],
        document=document,
        holder=holder,
        checks=report.checks,
        emrtd=result,
        passive_auth=report,
        source=source,
    )


def _face(result: ReadResult) -> dict[str, Any]:
    """The face image's format, pixel size and byte count (never the image)."""
    data = result.files.get(LdsFile.DG2)
    if data is None:
        missing = result.missing.get(LdsFile.DG2)
        return {"error": f"EF.DG2 not read ({missing})" if missing else "EF.DG2 not read"}
    try:
        face = Dg2.parse(data).face
    except LdsError as error:
        return {"error": str(error)}
    return {
        "format": str(face.image_format),
        "media_type": face.image_format.media_type,
        "width": face.width,
        "height": face.height,
        "bytes": len(face.image),
    }
