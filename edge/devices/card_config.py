"""Configuration of the card reader driver, and which readers it uses.

Pure code. :class:`CardReaderConfig` is flat so that the agent can fill it from its config file
with :meth:`CardReaderConfig.from_mapping`; every timeout is in seconds.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = ["CardReaderConfig", "Disposition", "ReaderFilter"]

#: What happens to the card when a session ends: ``reset`` (warm reset: whatever the session set
#: up on the card, an access-control session for one, is gone before the next traveller),
#: ``unpower`` (cold) or ``leave``.
Disposition = Literal["leave", "reset", "unpower"]

_GLOB_CHARS = frozenset("*?[")


class ReaderFilter:
    """Which reader names the kiosk uses, from a list of patterns; no patterns: every reader.

    A pattern matches a reader name when it is

    - ``=NAME``: exactly NAME;
    - a glob (it contains ``*``, ``?`` or ``[``): the whole name, ignoring case;
    - anything else: a part of the name, ignoring case (so a full name matches itself, and
      ``"omnikey"`` matches ``"HID Global OMNIKEY 5422 [OMNIKEY 5422 Smartcard Reader] 00 00"``).
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(patterns)
        for pattern in self.patterns:
            if not isinstance(pattern, str) or not pattern or pattern == "=":
                raise ValueError(f"a reader pattern is a non-empty string, got {pattern!r}")

    def __call__(self, name: str) -> bool:
        if not self.patterns:
            return True
        return any(_matches(pattern, name) for pattern in self.patterns)

    def __repr__(self) -> str:
        return f"ReaderFilter({list(self.patterns)!r})"

    def __str__(self) -> str:
        return ", ".join(repr(p) for p in self.patterns) if self.patterns else "any reader"


def _matches(pattern: str, name: str) -> bool:
    if pattern.startswith("="):
        return name == pattern[1:]
    if _GLOB_CHARS & set(pattern):
        return fnmatch.fnmatchcase(name.casefold(), pattern.casefold())
    return pattern.casefold() in name.casefold()


@dataclass(frozen=True, slots=True)
class CardReaderConfig:
    """Everything the driver can be told. The defaults suit a kiosk with one reader."""

    #: Reader name patterns (see :class:`ReaderFilter`); empty: every reader.
    readers: tuple[str, ...] = ()
    #: Protocols offered on connect; pcscd picks one the card's ATR allows.
    protocols: tuple[Literal["T0", "T1"], ...] = ("T0", "T1")
    #: Use extended length APDUs: None learns it from the ATR (card capabilities), True/False
    #: overrides (many ePassports support them without saying so in the ATR).
    extended_length: bool | None = None
    #: Longest wait for one APDU exchange (a command and its response).
    exchange_timeout: float = 5.0
    #: Longest wait for SCardConnect (power-up, ATR, protocol negotiation).
    connect_timeout: float = 5.0
    #: Longest wait for disconnect and release when a session ends.
    close_timeout: float = 2.0
    #: After an ambiguous failure (the reader says "not transacted", or returns no status
    #: word), how long to watch for pcscd to report the card gone before calling it a
    #: transmission error. pcscd notices removals on its presence poll (~0.4 s for vpcd).
    removal_confirm: float = 1.0
    #: What happens to the card when a session ends.
    disposition: Disposition = "reset"
    #: pcscd unavailable: first retry after this long, doubling up to ``backoff_max``.
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    #: Longest wait for the watcher thread to end on stop.
    stop_timeout: float = 2.0

    def __post_init__(self) -> None:
        for name in ("readers", "protocols"):
            value = getattr(self, name)  # one string is one item, not a sequence of letters
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        ReaderFilter(self.readers)  # validates the patterns
        if not self.protocols or not set(self.protocols) <= {"T0", "T1"}:
            raise ValueError(f"protocols must be a non-empty subset of T0, T1: {self.protocols}")
        if self.disposition not in ("leave", "reset", "unpower"):
            raise ValueError(f"disposition must be leave, reset or unpower: {self.disposition!r}")
        if self.extended_length not in (None, True, False):
            raise ValueError(f"extended_length must be true, false or null: {self.extended_length}")
        for name in (
            "exchange_timeout",
            "connect_timeout",
            "close_timeout",
            "removal_confirm",
            "backoff_initial",
            "backoff_max",
            "stop_timeout",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be at least backoff_initial")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> CardReaderConfig:
        """Build from a config file section; unknown keys are an error, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown card reader setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    @property
    def reader_filter(self) -> ReaderFilter:
        return ReaderFilter(self.readers)
