"""Exceptions of the uplink. Each names what went wrong in words an operator can act on."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "NotConnected",
    "OutboxError",
    "OutboxFull",
    "UplinkError",
]


class UplinkError(Exception):
    """Base class of everything the uplink raises."""


class ConfigError(UplinkError):
    """The uplink configuration is invalid; ``path`` names the key (``broker.port``)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class OutboxError(UplinkError):
    """The outbox could not do what was asked (a record that is not a record, a bad store)."""


class OutboxFull(OutboxError):
    """A record was refused because the outbox reached its disk budget or the disk is full.

    The transaction that tried to enqueue it is rolled back, lane state included, so the lane
    never shows a traveller a result whose record is not stored: it refers the traveller to an
    officer instead. Nothing already in the outbox is dropped. ``reason`` is ``budget`` (the
    outbox's configured ``max_bytes``) or ``disk`` (free space below the configured reserve).
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class NotConnected(UplinkError):
    """A non-durable message was published while the uplink is not connected; it was not sent."""
