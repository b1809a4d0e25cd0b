"""Officer sessions on the kiosk's officer screen: who is logged in and their CSRF token (wrong
PINs are counted by :mod:`edge.ui.logins`).

In memory on purpose: a restart of the agent logs officers out, which is what a shared kiosk
wants, and nothing secret is ever written to the card-reader's SD card.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["OfficerSession", "SessionStore"]


@dataclass
class OfficerSession:
    """A logged-in officer. ``csrf`` goes in every form and must come back with every POST:
    the cookie alone (sent by the browser on its own) never authorises a change."""

    token: str
    officer_id: str
    csrf: str
    last_seen: float
    notice: str | None = None
    """A one-time message for the next page (what the last decision did)."""


@dataclass
class SessionStore:
    """Sessions by cookie token; one ends after ``idle_s`` without a request (an officer who
    walked away from the kiosk is logged out)."""

    idle_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, OfficerSession] = field(default_factory=dict)

    def create(self, officer_id: str) -> OfficerSession:
        session = OfficerSession(
            secrets.token_urlsafe(32), officer_id, secrets.token_urlsafe(32), self.clock()
        )
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None, *, touch: bool = True) -> OfficerSession | None:
        """The live session for a cookie token, or None. ``touch`` restarts its idle timer (an
        officer's request does; the queue's live stream, which runs by itself, does not)."""
        if not token:
            return None
        session = self._sessions.get(token)
        now = self.clock()
        if session is None or now - session.last_seen > self.idle_s:
            self._sessions.pop(token, None)
            return None
        if touch:
            session.last_seen = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)
