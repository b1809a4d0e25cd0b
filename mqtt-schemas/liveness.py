"""How both ends of a connection tell a live broker from a silent one, by the same rules.

A cut link (a router gone, a cable out, a partition) sends no RST and no FIN: the TCP connection
just goes quiet, and only MQTT's keepalive notices. Each side's ``keepalive`` setting is the
promise *a silent link is noticed within this many seconds*, and the broker is told that value,
so it drops a silent client after 1.5 x keepalive (the MQTT rule).

paho, on its own, keeps that promise only to within twice the keepalive: it sends a PINGREQ after
one keepalive without traffic, and gives up when no PINGRESP came one keepalive later, its timer
ticking once a second. So each side, once connected, makes paho ping after
:func:`ping_interval` seconds instead (the interval the CONNECT declared stays the keepalive)::

    >>> [ping_interval(k) for k in (5, 8, 30, 60)]
    [1, 3, 14, 29]

A silent link is then noticed within ``2 x ping_interval + 2 <= keepalive`` seconds, and the
broker still hears from a live client at least every ``ping_interval + 1`` seconds, well inside
its 1.5 x keepalive. The price is a PING round trip every ``ping_interval`` seconds on an idle
link (a few dozen bytes), and that a PINGRESP must come back within ``ping_interval``: on a slow
link that is busy with a long backlog, choose a keepalive above twice its worst round trip.

The second rule is MQTT 5's PUBACK reason code :data:`NO_MATCHING_SUBSCRIBERS`: the broker
accepted a QoS 1 message and had nobody to give it to. Every kiosk message is subscribed to by the
console's ingest workers, so it means the console is not listening (e.g. it has not subscribed
again after a broker restart); the kiosk then sends its unacknowledged records again soon,
instead of after its ack timeout.
"""

from __future__ import annotations

__all__ = ["NO_MATCHING_SUBSCRIBERS", "ping_interval"]

NO_MATCHING_SUBSCRIBERS = 0x10
"""PUBACK reason code (MQTT 5, 3.4.2.1): accepted, but no subscription matched."""


def ping_interval(keepalive: int) -> int:
    """Seconds without traffic after which a client pings, for a silent link to be noticed
    within *keepalive* seconds (see the module documentation); at least 1."""
    return max(1, (keepalive - 2) // 2)
