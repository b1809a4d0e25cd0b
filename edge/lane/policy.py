"""The lane's decision, pure: checks and screening in, pass or refer (and what to tell whom) out.

Rules (the per-lane knobs are in :class:`~edge.lane.config.LanePolicy`):

- a check that failed or could not run (``fail``, ``error``) refers; so does a *skipped* check,
  unless the policy allows that one to be skipped (``may_skip``: by default only the DS
  certificate's revocation, for which no CRL may be loaded). Reason codes: ``document-expired``
  (``expiry``, ``document-expiry``), ``not-valid-at-site`` (the CBIC's ``crossing_point``),
  ``mrz-invalid`` (``mrz-check-digits``), and for everything else (CBIC issuer signature, card
  authentication, holder data; Passive Authentication, DG hashes, the chip read itself)
  ``card-auth-failed`` on a CBIC and ``chip-auth-failed`` on a chip;
- a watchlist hit at or above the threshold refers: ``watchlist-hit`` (action refer),
  ``watchlist-deny`` (deny), ``watchlist-alert`` (alert; lets pass when ``alert_refers`` is off);
- screening that could not run, or a kiosk with no watchlist yet (version 0), refers:
  ``no-watchlist``.

What the traveller sees never names the watchlist: pass, or "please see an officer" with a
neutral code (``expired``, ``not-valid-here``, ``document-check`` or ``routine-check``), or, when
an entry demands refusal, "please wait here for an officer". An ``alert`` referral shows exactly
what any other routine referral shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from edge.documents.checks import Check, CheckResult

from .config import LanePolicy
from .screening import ScreeningHit, ScreeningResult

__all__ = ["MESSAGES", "TravellerMessage", "Verdict", "decide", "message"]

#: Traveller-facing texts by message key, in every language the kiosk pages offer.
MESSAGES: dict[str, dict[str, str]] = {
    "lane.welcome": {
        "en": "Tap your card or scan your passport's photo page",
        "es": "Acerque su tarjeta o escanee la página de datos de su pasaporte",
    },
    "lane.reading": {
        "en": "Reading your document, please keep it in place",
        "es": "Leyendo su documento, no lo retire por favor",
    },
    "lane.place_chip": {
        "en": "Now place your passport on the card reader",
        "es": "Ahora coloque su pasaporte sobre el lector de tarjetas",
    },
    "lane.checking": {
        "en": "Checking, one moment please",
        "es": "Verificando, un momento por favor",
    },
    "lane.pass": {"en": "Thank you, please proceed", "es": "Gracias, puede continuar"},
    "lane.see_officer": {
        "en": "Please see an officer",
        "es": "Por favor, diríjase a un oficial",
    },
    "lane.wait_officer": {
        "en": "Please wait here for an officer",
        "es": "Por favor, espere aquí a un oficial",
    },
    "lane.officer_processing": {
        "en": "Your crossing will be processed by an officer",
        "es": "Su cruce será procesado por un oficial",
    },
    "lane.card_removed": {
        "en": "The card was removed too early, please try again",
        "es": "La tarjeta se retiró antes de tiempo, inténtelo de nuevo",
    },
    "lane.timeout": {
        "en": "Time is up, please start again",
        "es": "Se acabó el tiempo, vuelva a empezar por favor",
    },
    "lane.unreadable": {
        "en": "We could not read your document, please try again",
        "es": "No pudimos leer su documento, inténtelo de nuevo",
    },
    "lane.scan_passport_first": {
        "en": "Please scan your passport's photo page first",
        "es": "Escanee primero la página de datos de su pasaporte",
    },
}

#: Traveller-facing reason codes (neutral) for each decision reason about the document.
_TRAVELLER_CODES = {
    "document-expired": "expired",
    "not-valid-at-site": "not-valid-here",
    "mrz-invalid": "document-check",
    "card-auth-failed": "document-check",
    "chip-auth-failed": "document-check",
}

_CHECK_REASONS = {
    "expiry": "document-expired",
    "document-expiry": "document-expired",
    "crossing_point": "not-valid-at-site",
    "mrz-check-digits": "mrz-invalid",
}

_HIT_REASONS = {"refer": "watchlist-hit", "deny": "watchlist-deny", "alert": "watchlist-alert"}


@dataclass(frozen=True)
class TravellerMessage:
    """What the traveller's screen shows: a message key (texts in :data:`MESSAGES`) and, for a
    referral, a neutral reason code. Never a list name, an entry or a score."""

    key: str
    code: str | None = None

    @property
    def texts(self) -> dict[str, str]:
        return MESSAGES[self.key]

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "code": self.code, "texts": self.texts}


def message(key: str, code: str | None = None) -> TravellerMessage:
    if key not in MESSAGES:
        raise KeyError(f"no traveller message {key!r}")
    return TravellerMessage(key, code)


@dataclass(frozen=True)
class Verdict:
    """The decision: the record's ``decision`` object, the traveller's message, the officers'
    priority (``urgent`` for a deny entry, ``discreet`` for an alert, else ``normal``)."""

    outcome: Literal["pass", "refer"]
    reasons: tuple[str, ...]
    traveller: TravellerMessage
    priority: Literal["normal", "urgent", "discreet"]
    hits: tuple[ScreeningHit, ...]
    """The hits at or above the threshold, best first."""

    def to_record(self) -> dict[str, object]:
        return {"outcome": self.outcome, "reasons": list(self.reasons)}


def decide(
    policy: LanePolicy,
    kind: str,
    checks: Sequence[Check],
    screening: ScreeningResult | None,
) -> Verdict:
    """Decide from the checks run on a document of ``kind`` and the screening (None: it could
    not run); see the module docstring."""
    reasons: list[str] = []

    def add(reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)

    auth = "card-auth-failed" if kind == "cbic" else "chip-auth-failed"
    for check in checks:
        if check.result is CheckResult.PASS:
            continue
        if check.result is CheckResult.SKIPPED and check.name in policy.may_skip:
            continue
        add(_CHECK_REASONS.get(check.name, auth))
    document_reasons = list(reasons)

    hits: tuple[ScreeningHit, ...] = ()
    priority: Literal["normal", "urgent", "discreet"] = "normal"
    if screening is None or screening.version == 0:  # nothing applied yet: nobody screened
        add("no-watchlist")
    else:
        hits = tuple(h for h in screening.hits if h.score >= policy.hit_threshold)
        actions = {h.action for h in hits}
        for hit in hits:
            if hit.action == "alert" and not policy.alert_refers:
                continue
            add(_HIT_REASONS.get(hit.action, "watchlist-hit"))
        if "deny" in actions:
            priority = "urgent"
        elif "alert" in actions:
            priority = "discreet"

    if not reasons:
        return Verdict("pass", (), message("lane.pass"), priority, hits)
    code = _TRAVELLER_CODES[document_reasons[0]] if document_reasons else "routine-check"
    key = "lane.wait_officer" if "watchlist-deny" in reasons else "lane.see_officer"
    return Verdict("refer", tuple(reasons), message(key, code), priority, hits)
