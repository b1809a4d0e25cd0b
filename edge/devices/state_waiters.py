"""A driver's state for the health report, and waiting for it to change, shared by the drivers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

__all__ = ["StateWaiters"]

S = TypeVar("S")


class StateWaiters(Generic[S]):
    """Mixin: ``self._state`` is a frozen dataclass with ``status`` and ``since`` fields,
    replaced (never mutated) by :meth:`_update`, which also wakes :meth:`wait_state`.

    The class using it sets ``self._state`` and ``self._waiters = []`` in its ``__init__``.
    """

    _state: S
    _waiters: list[tuple[Callable[[S], bool], asyncio.Future[S]]]

    async def wait_state(self, predicate: Callable[[S], bool], timeout: float | None = None) -> S:
        """The first state (current or future) for which *predicate* holds.

        Predicates are checked at every change, as it happens, so a transition is never missed
        even when the state moves on before this coroutine resumes. TimeoutError after *timeout*.
        """
        if predicate(self._state):
            return self._state
        waiter = (predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter[1]
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _update(self, **changes: Any) -> None:
        """Replace the state with *changes*; a new ``status`` moves ``since`` to now (UTC)."""
        if "status" in changes and changes["status"] is not self._state.status:  # type: ignore[attr-defined]
            changes["since"] = datetime.now(UTC)
        self._state = dataclasses.replace(self._state, **changes)  # type: ignore[type-var]
        for predicate, future in self._waiters:
            if not future.done() and predicate(self._state):
                future.set_result(self._state)
