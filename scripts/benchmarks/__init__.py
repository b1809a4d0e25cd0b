"""Benchmarks for ``make bench``: each module here defines ``run(quick: bool) -> list[Figure]``.

A figure is one measured number with its unit and, when an issue sets one, its target, so the
runner can say plainly whether the target is met. ``quick`` shrinks the workload so that the
test suite can prove every benchmark still runs; quick figures are not meaningful.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: str = ""
    """Human-readable target, e.g. ``>= 5000``; empty when the figure is informative."""
    met: bool | None = None
    note: str = ""


class Proportion(float):
    """A rate in [0, 1] (recall, specificity, a false-positive rate), shown with three decimals
    whatever format the table asks for: ``f"{Proportion(0.973):,.1f}"`` is ``0.973``, never the
    ``1.0`` that would hide a missed 0.99 target. Stored as a plain number in results.json."""

    def __format__(self, spec: str) -> str:
        return float.__format__(self, ".3f" if spec.endswith("f") else spec)


def rate(operation: Callable[[], object], count: int) -> float:
    """Operations per second of *operation* over *count* calls, on this thread (one core)."""
    started = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - started)


def at_least(name: str, value: float, unit: str, minimum: float, note: str = "") -> Figure:
    return Figure(name, value, unit, f">= {minimum:g}", value >= minimum, note)


def at_most(name: str, value: float, unit: str, maximum: float, note: str = "") -> Figure:
    return Figure(name, value, unit, f"<= {maximum:g}", value <= maximum, note)
