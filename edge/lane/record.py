"""The records the lane writes, built from the pieces: crossing, screening hit, officer decision.

Pure: payloads without their envelope (the outbox stamps ``schema``, ``id``, ``seq``, ``time``).
The crossing carries no names (the contract's rule); the hit payload carries the traveller's
identity for the reviewers; the decision names the crossing and, when there is one, the hit.

The document's face image goes nowhere but the kiosk's own review item (:func:`document_photo`):
the contract keeps photos out of every record (``crossing`` and ``screening-hit`` both say "no
photo"), so the officer at the lane sees it and the console never does.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge.documents.card import CardDocument
from edge.documents.cbic import CHECK_ISSUER_SIGNATURE, CHECK_PORTRAIT_HASH
from edge.documents.checks import Check
from edge.documents.emrtd.lds import Dg2, ImageFormat, LdsError, LdsFile, image_format
from edge.documents.emrtd.passive_auth import dg_hash_check_name
from edge.documents.mrz import MrzDocument

from .policy import Verdict
from .screening import ScreeningHit, ScreeningQuery, ScreeningResult

__all__ = [
    "MAX_PHOTO_BYTES",
    "Traveller",
    "crossing_payload",
    "decision_payload",
    "document_photo",
    "hit_payload",
    "hits_json",
    "photo_entry",
    "summary_from_mrz",
]

_MRZ_KINDS = {"P": "passport", "I": "id_card", "A": "id_card", "C": "id_card", "V": "visa"}


@dataclass(frozen=True)
class Traveller:
    """The traveller as the document states them: the crossing's ``document`` summary, and the
    identity used for screening (and sent only with a hit)."""

    kind: str
    document: Mapping[str, Any]
    identity: ScreeningQuery

    def to_hit_traveller(self) -> dict[str, Any]:
        """The ``traveller`` object of a ``screening-hit`` payload."""
        who = self.identity
        return {
            "surname": who.surname or "-",
            "given_names": who.given_names,
            "birth_date": who.birth_date,
            "nationality": who.nationality or self.document["nationality"],
            "sex": who.sex if who.sex in ("M", "F") else "X",
            "document_number": who.document_number or self.document["number"],
            "issuing_state": who.issuing_state or self.document["issuing_state"],
        }


def summary_from_mrz(mrz: MrzDocument) -> dict[str, Any]:
    """The crossing's ``document`` object from a printed MRZ (when the chip gave no DG1)."""
    return {
        "kind": _MRZ_KINDS.get(mrz.document_type[:1], "other"),
        "document_type": mrz.document_type,
        "issuing_state": mrz.issuing_state,
        "nationality": mrz.nationality,
        "number": mrz.document_number,
        "expiry_date": mrz.expiry_date,
        "birth_year": int(mrz.birth_date[:4]) if mrz.birth_date else None,
    }


def identity_from_mrz(mrz: MrzDocument) -> ScreeningQuery:
    return ScreeningQuery(
        surname=mrz.surname,
        given_names=mrz.given_names,
        birth_date=mrz.birth_date,
        nationality=mrz.nationality or None,
        sex=mrz.sex if mrz.sex in ("M", "F") else None,
        document_number=mrz.document_number or None,
        issuing_state=mrz.issuing_state or None,
    )


#: The largest face image kept in a review item. A DG2 face is typically 15-30 KB (JPEG) and a
#: CBIC portrait at most 32 KB; anything far beyond is not a portrait the officer needs, and the
#: review queue lives in the outbox's database, where every byte counts against its budget.
MAX_PHOTO_BYTES = 256 * 1024

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def photo_entry(image: bytes) -> dict[str, Any]:
    """What a review item keeps of a face image: ``{"photo": {"media_type", "data"}}`` (base64)
    when the kiosk's browser can show it, else ``{"photo_unavailable": why}`` so the officer's
    page can say why there is none.

    The format is judged from the image's first bytes, not from what the document declares: the
    officer page serves it with that media type, and a JPEG 2000 labelled ``image/jpeg`` would
    show as a broken image. Chromium shows JPEG and PNG but not JPEG 2000 (``"jpeg2000"``);
    anything else is ``"unsupported-format"``; an image over :data:`MAX_PHOTO_BYTES` is
    ``"too-large"``.
    """
    image = bytes(image)
    if image.startswith(_PNG_MAGIC):
        media_type = "image/png"
    else:
        kind = image_format(image)
        if kind is ImageFormat.JPEG2000:
            return {"photo_unavailable": "jpeg2000"}
        if kind is not ImageFormat.JPEG:
            return {"photo_unavailable": "unsupported-format"}
        media_type = "image/jpeg"
    if len(image) > MAX_PHOTO_BYTES:
        return {"photo_unavailable": "too-large"}
    return {"photo": {"media_type": media_type, "data": base64.b64encode(image).decode("ascii")}}


def document_photo(document: CardDocument) -> dict[str, Any]:
    """The review item's photo entry for a document read from a card (:func:`photo_entry`), or
    ``{}`` when the document carries no face image (or it was not read).

    CBIC: the portrait from EF.PORTRAIT, when the reader read it (the lane fetches it after the
    decision instead: :func:`portrait_to_fetch`). ePassport: DG2's face image.
    A face that does not match the document's signed data (the CBIC's ``portrait_hash``, the
    SOD's ``dg2_hash``) is not shown (``"unverified"``): the officer compares the traveller with
    this picture, so it must be the issuer's, not one swapped in on the card.
    """
    image: bytes | None = None
    hash_check = ""
    if document.cbic is not None:
        portrait = document.cbic.verification.portrait
        if portrait is None:
            return {}
        image, hash_check = portrait.image, CHECK_PORTRAIT_HASH
    elif document.emrtd is not None:
        data = document.emrtd.files.get(LdsFile.DG2)
        if data is None:
            return {}
        try:
            image = Dg2.parse(data).face.image
        except LdsError:
            return {"photo_unavailable": "unreadable"}
        hash_check = dg_hash_check_name(2)
    if image is None:
        return {}
    if not any(c.name == hash_check and c.passed for c in document.checks):
        return {"photo_unavailable": "unverified"}
    return photo_entry(image)


def portrait_to_fetch(document: CardDocument) -> bytes | None:
    """The SHA-256 a referred CBIC holder's portrait must have, when the lane should fetch it
    after the decision (:func:`edge.documents.cbic.read_cbic_portrait`); None when there is
    nothing to fetch: not a CBIC, portrait already read, none recorded by the issuer, or holder
    data whose issuer signature failed (its hash would vouch for nothing).
    """
    cbic = document.cbic
    if cbic is None or cbic.verification.portrait is not None:
        return None
    holder = cbic.verification.holder
    if holder is None or holder.portrait_sha256 is None:
        return None
    if not any(c.name == CHECK_ISSUER_SIGNATURE and c.passed for c in document.checks):
        return None
    return holder.portrait_sha256


def hits_json(hits: Sequence[ScreeningHit], hit_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The contract's ``hit`` objects (no reasons: the crossing's form)."""
    return [
        {
            "hit_id": hit_id,
            "entry_id": hit.entry_id,
            "list": hit.list,
            "kind": hit.kind,
            "score": round(float(hit.score), 4),
            "action": hit.action,
        }
        for hit, hit_id in zip(hits, hit_ids, strict=True)
    ]


def crossing_payload(
    *,
    site: str,
    lane: str,
    direction: str,
    traveller: Traveller,
    checks: Sequence[Check],
    screening: ScreeningResult | None,
    verdict: Verdict,
    hit_ids: Sequence[str],
    latency_ms: float,
    officer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``crossing@1`` body. ``screening`` None (it could not run): version 0, no hits."""
    body: dict[str, Any] = {
        "site": site,
        "lane": lane,
        "direction": direction,
        "document": dict(traveller.document),
        "checks": [check.to_json() for check in checks][:32],
        "screening": {
            "watchlist_version": screening.version if screening is not None else 0,
            "hit_count": len(verdict.hits),
            "hits": hits_json(verdict.hits[:50], hit_ids[:50]),
        },
        "decision": verdict.to_record(),
        "latency_ms": round(max(0.0, latency_ms), 3),
    }
    if officer is not None:
        body["officer"] = dict(officer)
    return body


def hit_payload(
    *,
    crossing_id: str,
    site: str,
    lane: str,
    direction: str,
    traveller: Traveller,
    screening: ScreeningResult,
    verdict: Verdict,
    hit_ids: Sequence[str],
) -> dict[str, Any]:
    """A ``screening-hit@1`` body for the console's review queue (identity data: officers only)."""
    hits = hits_json(verdict.hits[:50], hit_ids[:50])
    for item, hit in zip(hits, verdict.hits, strict=False):
        reasons = [dict(r) if isinstance(r, Mapping) else str(r) for r in hit.reasons][:32]
        item["reasons"] = reasons or [f"matched {hit.kind} entry at score {hit.score:.2f}"]
    return {
        "crossing_id": crossing_id,
        "site": site,
        "lane": lane,
        "direction": direction,
        "traveller": traveller.to_hit_traveller(),
        "watchlist_version": screening.version,
        "hits": hits,
    }


def decision_payload(
    *,
    crossing_id: str,
    officer_id: str,
    decision: str,
    reason: str,
    decided_at: str,
    hit_id: str | None = None,
) -> dict[str, Any]:
    """An ``officer-decision@1`` body."""
    body = {
        "crossing_id": crossing_id,
        "officer_id": officer_id,
        "decision": decision,
        "reason": reason,
        "decided_at": decided_at,
    }
    if hit_id is not None:
        body["hit_id"] = hit_id
    return body
