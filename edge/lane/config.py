"""The lane's configuration: where it stands (site, lane, direction) and its policy.

The agent's TOML loader hands the ``[lane]`` table to :meth:`LaneConfig.from_dict`; an unknown
or malformed key is a :class:`LaneConfigError` naming its full path (``lane.policy.hit_threshold``),
so a misspelt setting stops the kiosk at start-up instead of being silently ignored::

    [lane]
    site = "bz-santa-elena"
    lane = "lane-1"
    direction = "entry"

    [lane.policy]
    hit_threshold = 0.80       # a watchlist hit at or above this score refers the traveller
    chip_wait_s = 20           # after a passport's MRZ, how long to wait for its chip
    show_s = 6                 # how long the result stays on the traveller's screen
    may_skip = ["ds_certificate_revocation"]   # checks allowed to be skipped (not failed)
    alert_refers = true        # a hit on an "alert" entry refers (discreetly) or lets pass
    review_retention_s = 86400 # undecided review items keep personal data at most this long
    no_chip = "refer"          # a passport whose chip never comes: decide on the MRZ (refer)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mqtt_schemas.identifiers import NAME

__all__ = ["LaneConfig", "LaneConfigError", "LanePolicy"]


class LaneConfigError(ValueError):
    """A lane setting is missing, unknown or malformed; ``path`` names it (``lane.direction``)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _number(path: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise LaneConfigError(path, f"a number in {low:g}..{high:g}, got {value!r}")
    return float(value)


def _known(values: Mapping[str, Any], known: set[str], path: str) -> None:
    if not isinstance(values, Mapping):
        raise LaneConfigError(path, f"a table expected, got {type(values).__name__}")
    for key in values:
        if key not in known:
            raise LaneConfigError(f"{path}.{key}", f"unknown setting (known: {sorted(known)})")


@dataclass(frozen=True)
class LanePolicy:
    """What refers a traveller, and the lane's timings. Defaults are the national policy."""

    hit_threshold: float = 0.80
    """A watchlist hit scoring at least this refers the traveller (the matcher's default)."""
    chip_wait_s: float = 20.0
    """After a passport's MRZ is scanned: seconds to wait for its chip before giving up."""
    show_s: float = 6.0
    """Seconds the result stays on the traveller's screen before the lane is idle again."""
    may_skip: tuple[str, ...] = ("ds_certificate_revocation",)
    """Checks that may be *skipped* without a referral (no CRL loaded, say). A failed or
    errored check always refers; so does any other skipped one."""
    alert_refers: bool = True
    """A hit on an ``alert`` entry refers the traveller like any referral (the traveller cannot
    tell it apart); False lets the traveller pass and reports the hit only (the contract's
    reading of ``alert``)."""
    review_retention_s: float = 86400.0
    """An undecided review item keeps the traveller's personal data at most this long."""
    no_chip: Literal["refer", "restart"] = "refer"
    """A passport whose chip is not presented within ``chip_wait_s`` after its MRZ: ``refer``
    decides on the MRZ (screened like anyone; referred, since only the chip proves the
    document genuine); ``restart`` returns to idle and records nothing (lanes that send chipless
    passports to a manned booth before the kiosk)."""

    def __post_init__(self) -> None:
        _number("policy.hit_threshold", self.hit_threshold, 0.0, 1.0)
        _number("policy.chip_wait_s", self.chip_wait_s, 0.0, 600.0)
        _number("policy.show_s", self.show_s, 0.0, 600.0)
        _number("policy.review_retention_s", self.review_retention_s, 0.0, 90 * 86400.0)
        if self.no_chip not in ("refer", "restart"):
            raise LaneConfigError("policy.no_chip", f"refer or restart, got {self.no_chip!r}")
        if not isinstance(self.alert_refers, bool):
            raise LaneConfigError("policy.alert_refers", "true or false")
        skips = self.may_skip
        if isinstance(skips, str) or not all(
            isinstance(s, str) and NAME.fullmatch(s) for s in skips
        ):
            raise LaneConfigError("policy.may_skip", "a list of check names")
        object.__setattr__(self, "may_skip", tuple(skips))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], path: str = "lane.policy") -> LanePolicy:
        _known(values, {f.name for f in dataclasses.fields(cls)}, path)
        try:
            return cls(**values)
        except LaneConfigError as exc:
            raise LaneConfigError(
                f"{path}.{exc.path.removeprefix('policy.')}", exc.problem
            ) from None


@dataclass(frozen=True)
class LaneConfig:
    """One lane: the crossing point's site id, the lane's id, the direction it faces."""

    site: str
    lane: str
    direction: Literal["entry", "exit"]
    policy: LanePolicy = field(default_factory=LanePolicy)

    def __post_init__(self) -> None:
        for name in ("site", "lane"):
            value = getattr(self, name)
            if not isinstance(value, str) or not NAME.fullmatch(value):
                raise LaneConfigError(name, f"a short name (a-z, 0-9, .-_), got {value!r}")
        if self.direction not in ("entry", "exit"):
            raise LaneConfigError("direction", f"entry or exit, got {self.direction!r}")
        if not isinstance(self.policy, LanePolicy):
            raise LaneConfigError("policy", "a LanePolicy")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], path: str = "lane") -> LaneConfig:
        """Build from the configuration's ``[lane]`` table; errors name the key's full path."""
        _known(values, {f.name for f in dataclasses.fields(cls)}, path)
        for required in ("site", "lane", "direction"):
            if required not in values:
                raise LaneConfigError(f"{path}.{required}", "missing")
        arguments = dict(values)
        arguments["policy"] = LanePolicy.from_dict(values.get("policy", {}), f"{path}.policy")
        try:
            return cls(**arguments)
        except LaneConfigError as exc:
            raise LaneConfigError(f"{path}.{exc.path}", exc.problem) from None
