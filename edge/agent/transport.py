"""The uplink as the small transport the watchlist sync is given (the agent does the wiring).

::

    async with Uplink(config, outbox, clock) as uplink:
        sync.attach(UplinkTransport(uplink))      # before uplink.run(), as the handlers must be

:class:`~edge.screening.transport.Transport` is screening's interface; :class:`~edge.uplink.Uplink`
is the MQTT session. Neither knows the other: screening never imports the uplink (it knows no
network) and the uplink never imports screening (it carries every part's messages alike). This
adapter is the one place that knows both, and it only renames: a handler is given the payload
(not the uplink's :class:`~edge.uplink.Incoming`), and the uplink's
:class:`~edge.uplink.NotConnected` becomes the transport's
:class:`~edge.screening.transport.Offline`.
"""

from __future__ import annotations

from typing import Any

from edge.screening.transport import Offline, PayloadHandler, Scope
from edge.uplink import Incoming, NotConnected, Uplink

__all__ = ["UplinkTransport"]


class UplinkTransport:
    """A :class:`~edge.screening.transport.Transport` over one :class:`~edge.uplink.Uplink`."""

    def __init__(self, uplink: Uplink) -> None:
        self.uplink = uplink

    def subscribe(self, channel: str, handler: PayloadHandler, *, scope: Scope) -> None:
        async def deliver(incoming: Incoming) -> None:
            await handler(incoming.payload)

        self.uplink.on(channel, deliver, scope=scope)

    async def publish(self, channel: str, body: dict[str, Any]) -> None:
        try:
            await self.uplink.publish_now(channel, body)
        except NotConnected as exc:
            raise Offline(str(exc)) from exc
