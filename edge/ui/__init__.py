"""The kiosk's local pages: the traveller's screen and the officers' review, served on loopback.

- :mod:`~edge.ui.server`: :class:`KioskPages`, the aiohttp server inside the agent's process;
- :mod:`~edge.ui.views`: what each screen is given (the traveller's is a strict, neutral subset);
- :mod:`~edge.ui.officers`: :class:`OfficerDirectory`, the officers' PINs (scrypt) on the kiosk;
- :mod:`~edge.ui.sessions`: officer sessions (CSRF token, idle timeout);
- :mod:`~edge.ui.logins`: wrong PINs (back-off per officer id, per source and kiosk-wide, kept
  across restarts, an alarm in the heartbeat).

The pages never decide: they mirror the lane and forward officers' decisions to
:meth:`edge.lane.Lane.officer_decide`.
"""

from .officers import OfficerDirectory, OfficerDirectoryError, add_officer, make_entry
from .server import LANGUAGES, KioskPages, KioskPagesError
from .views import queue_view, review_view, traveller_view

__all__ = [
    "LANGUAGES",
    "KioskPages",
    "KioskPagesError",
    "OfficerDirectory",
    "OfficerDirectoryError",
    "add_officer",
    "make_entry",
    "queue_view",
    "review_view",
    "traveller_view",
]
