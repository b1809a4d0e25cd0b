"""What the watchlist sync needs of a network, and nothing more: a small transport interface.

Screening knows no network (the house rules, ``tests/test_house_rules.py``): it never imports
the uplink or an MQTT client. :class:`~edge.screening.sync.WatchlistSync` is given an object
that can do two things, named by the contract's channels (``mqtt-schemas/topics.md``), never
by MQTT topics, QoS or retain flags, which the transport derives from the contract itself::

    transport.subscribe("watchlist/manifest", on_manifest, scope="fleet")
    transport.subscribe("watchlist/deltas", on_chunk, scope="device")
    await transport.publish("watchlist/catchup", {"have_version": 3, ...})  # or raises Offline

On the kiosk the agent gives it :class:`edge.agent.transport.UplinkTransport`, the MQTT session
seen through this interface. A test of the sync's own logic can give it a few lines of
in-memory fake; any class with these two methods is a :class:`Transport` (a
:class:`typing.Protocol`: no base class to inherit, nothing of the uplink to import).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

__all__ = ["Offline", "PayloadHandler", "Scope", "Transport"]

Scope = Literal["device", "fleet"]
"""``device``: the channel under this kiosk's own topics; ``fleet``: the one every kiosk shares."""

PayloadHandler = Callable[[dict[str, Any]], Awaitable[None]]
"""Called with each payload received on a channel; the transport has checked it against the
contract, so a handler never sees a payload of the wrong schema."""


class Offline(Exception):
    """The transport could not send a message now (no connection); nothing was kept.

    What the sync publishes is a request that is asked again later (a catch-up), so losing it
    offline costs nothing: the retained manifest re-delivered on reconnect starts it again.
    """


class Transport(Protocol):
    """A kiosk's link to the console as the watchlist sync uses it."""

    def subscribe(self, channel: str, handler: PayloadHandler, *, scope: Scope) -> None:
        """Call *handler* with every payload received on *channel* (one handler a channel).

        Payloads of one channel are handled one at a time, in arrival order. Registered
        before the transport runs; the subscription outlives reconnections.
        """
        ...

    async def publish(self, channel: str, body: dict[str, Any]) -> None:
        """Send *body* (without its envelope) on this kiosk's *channel* now, or raise
        :class:`Offline`. Not durable: nothing is kept to be sent later."""
        ...
