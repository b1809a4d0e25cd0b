"""Exponential backoff with jitter, for drivers that reopen a device that went away."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Exponential backoff with jitter: initial, 2x, 4x ... capped at maximum.

    Each delay is drawn from [d/2, d] ("equal jitter"): never zero, so a port that opens and
    fails at once cannot spin the CPU, and not periodic, so retries do not lock into step with
    a device or hub that power-cycles on a period.
    """

    def __init__(self, initial: float, maximum: float, rng: random.Random) -> None:
        self._initial, self._maximum, self._rng = initial, maximum, rng
        self._failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; each call counts one more failure."""
        delay = min(self._maximum, self._initial * 2 ** min(self._failures, 32))
        self._failures += 1
        return self._rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        """The device worked again: the next failure starts over from ``initial``."""
        self._failures = 0
