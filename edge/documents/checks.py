"""Named checks: how every verification in Borderlane reports what it found.

A document reader (CBIC, ePassport, MRZ) returns a list of :class:`Check`; the lane decides from
them and the crossing record carries them as the contract's ``check`` objects, so an officer or
auditor reads the same names everywhere::

    Check("issuer_signature", CheckResult.FAIL, "key bz-moi-2025 is not in the trust list")

``name`` matches ``^[a-z][a-z0-9._-]{0,63}$``; ``detail`` is cut to 500 characters and control
characters become spaces, so a hostile card cannot break a log line or a payload.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mqtt_schemas import identifiers

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_DETAIL = 500


class CheckResult(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Check:
    """One named verification, as the crossing record's ``checks`` carry it.

    ``name`` matches ``^[a-z][a-z0-9._-]{0,63}$``; ``detail`` is cut to 500 characters.
    ``error`` means the check could not be carried out (a bug, not evidence about the card).
    """

    name: str
    result: CheckResult
    detail: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not identifiers.NAME.fullmatch(self.name):
            raise ValueError(f"check name {self.name!r} is not ^[a-z][a-z0-9._-]{{0,63}}$")
        object.__setattr__(self, "result", CheckResult(self.result))
        detail = _CONTROL.sub(" ", str(self.detail))
        if len(detail) > _MAX_DETAIL:
            detail = detail[: _MAX_DETAIL - 3] + "..."
        object.__setattr__(self, "detail", detail)

    @property
    def passed(self) -> bool:
        return self.result is CheckResult.PASS

    def to_json(self) -> dict[str, str]:
        """The contract's ``check`` object (``detail`` left out when empty)."""
        out = {"name": self.name, "result": str(self.result)}
        if self.detail:
            out["detail"] = self.detail
        return out
