"""The kiosk's MQTT session: the only code on the kiosk that talks MQTT.

::

    outbox = Outbox(db_path, config.device_id, clock, config.outbox)
    async with Uplink(config, outbox, clock) as uplink:
        uplink.on("commands", handle_command)                        # async (Incoming) -> None
        uplink.on("watchlist/manifest", handle_manifest, scope="fleet")
        runner = asyncio.create_task(uplink.run())
        ...                                      # the lane enqueues; nothing here awaits it
        await uplink.publish_now("health", {...})                    # raises NotConnected offline
    # leaving the block publishes offline (reason shutdown) and disconnects cleanly

Connection
    TLS with the kiosk's client certificate, MQTT v5, client id = device id, a persistent
    session (``clean_start`` off, ``session_expiry_s``) so the broker queues commands while the
    kiosk is away. Before every connect the session counter is incremented and committed, and
    the Last Will (``offline``, ``connection-lost``, retained) is built with it; right after
    CONNACK the retained birth (``online``) carries the same counter. Lost connections are
    retried with exponential backoff and jitter (``backoff``), forever. A silent link (cut, no
    RST) is noticed within ``keepalive_s``: once connected, paho pings after
    :func:`mqtt_schemas.liveness.ping_interval` seconds of silence (the broker is still told
    ``keepalive_s``).

Incoming
    Subscribes to its own ``acks``, ``commands`` and ``watchlist/deltas`` and to the fleet
    ``watchlist/manifest`` and ``watchlist/deltas``. Every payload is validated against the
    contract; an invalid one is logged (schema and field path only: no values, so no personal
    data reaches the log) and dropped. Valid ones go to the handler registered for the channel,
    one at a time per channel, in arrival order; a handler's exception is logged, never fatal.

Records
    The sender keeps at most ``window`` records published and not yet acked by the console.
    A record leaves the outbox only when an ``ack`` names it (acked or rejected): PUBACK only
    says the broker has it. A record unacked ``ack_timeout_s`` after publication is published
    again (then after 2x, 4x ... up to ``ack_timeout_max_s``), and after a reconnect every
    unacked record is published again from the oldest: the console stores by id, so a
    duplicate costs nothing. A PUBACK saying *no matching subscribers* means the console is not
    listening (after a broker restart the kiosk is often back before the console has
    subscribed again, and the broker drops what nobody subscribes to): the records in flight
    are then published again after ``UNHEARD_RETRY_S`` (doubling while the console stays away,
    up to ``ack_timeout_s``) rather than after the ack timeout.

Backlog and live records
    At each connect the outbox's highest seq splits it: records up to it are the *backlog*,
    later ones are *live* (enqueued while connected). Each time the window has room, live
    records get up to half of it and the backlog the rest (and each side takes what the other
    leaves). A backlog of days drains at full speed, yet a hit enqueued now reaches the
    console's review queue within one ack round trip instead of behind 100,000 crossings.
    Order: each of the two streams is published in seq order; across them it is not (the
    contract lets records arrive in any order, and the console joins them by id).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import datetime as dt
import enum
import functools
import logging
import math
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_schemas import PayloadError, TopicError, topics, validate
from mqtt_schemas.envelope import Clock, format_time
from mqtt_schemas.health import component_entry
from mqtt_schemas.liveness import NO_MATCHING_SUBSCRIBERS, ping_interval
from mqtt_schemas.validation import JsonError, parse_json

from .config import UplinkConfig
from .errors import NotConnected, UplinkError
from .outbox import Outbox, OutboxStats, Record, canonical_json

__all__ = ["ConnectionState", "Handler", "Incoming", "Uplink", "UplinkStatus"]

log = logging.getLogger("edge.uplink")
T = TypeVar("T")

SUBSCRIPTIONS: tuple[tuple[Literal["device", "fleet"], str], ...] = (
    ("device", "acks"),
    ("device", "commands"),
    ("device", "watchlist/deltas"),
    ("fleet", "watchlist/manifest"),
    ("fleet", "watchlist/deltas"),
    ("fleet", "watchlist/trust"),
)
HANDLED = SUBSCRIPTIONS[1:]
"""What the agent may register handlers for; acks are the uplink's own business."""
PUBLISH_NOW = ("health", "command-results", "watchlist/catchup")
"""Non-durable channels for :meth:`Uplink.publish_now` (records go through the outbox)."""

IDLE_POLL_S = 2.0
"""The sender looks at the outbox at least this often, even with nothing to wake it."""
UNHEARD_RETRY_S = 1.0
"""After a PUBACK with no matching subscribers, the records in flight are sent again this long
after (then 2x, 4x ... up to the ack timeout, until an ack comes)."""


class ConnectionState(enum.StrEnum):
    STARTING = "starting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Incoming:
    """A valid payload received on a subscribed channel."""

    scope: Literal["device", "fleet"]
    channel: str
    topic: str
    payload: dict[str, Any]
    retained: bool


Handler = Callable[[Incoming], Awaitable[None]]


@dataclass(frozen=True)
class UplinkStatus:
    """Everything the heartbeat and the local service screen show about the uplink."""

    state: ConnectionState
    since: dt.datetime
    last_error: str | None
    session: int | None
    """The session counter of the current (or last) connection; heartbeats carry it."""
    outbox: OutboxStats
    in_flight: int
    last_ack: dt.datetime | None
    connects: int
    rejected: int
    """Records the console rejected (quarantined at its end) since the agent started."""

    def component(self) -> dict[str, Any]:
        """The ``components.uplink`` entry of a ``health`` payload."""
        if self.state is ConnectionState.CONNECTED:
            state = "degraded" if self.outbox.alarm else "ok"
            detail = (
                f"outbox alarm: {', '.join(self.outbox.alarm_reasons)}" if state != "ok" else ""
            )
        elif self.state is ConnectionState.STARTING:
            state, detail = "starting", ""
        else:
            state = "down"
            detail = f"{self.state.value}: {self.last_error or 'no connection yet'}"
        return component_entry(state, self.since, detail)

    def health_fields(self) -> dict[str, Any]:
        """``session``, ``outbox`` and ``last_ack`` of a ``health`` payload."""
        return {
            "session": self.session or 0,
            "outbox": self.outbox.to_health(),
            "last_ack": format_time(self.last_ack) if self.last_ack else None,
        }


@dataclass
class _InFlight:
    record: Record
    deadline: float
    attempts: int


class Uplink:
    """The MQTT session of one kiosk; see the module documentation."""

    def __init__(self, config: UplinkConfig, outbox: Outbox, clock: Clock) -> None:
        if outbox.device_id != config.device_id:
            raise UplinkError(
                f"outbox belongs to {outbox.device_id!r}, configuration to {config.device_id!r}"
            )
        self.config = config
        self.outbox = outbox
        self.clock = clock
        self.goodbye_reason = "shutdown"
        """The reason of the offline published on a clean stop (``decommissioned`` ...)."""
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._queues: dict[tuple[str, str], asyncio.Queue[Incoming]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._reads: concurrent.futures.ThreadPoolExecutor | None = None
        self._writes: concurrent.futures.ThreadPoolExecutor | None = None
        self._live_hint = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = ConnectionState.STARTING
        self._since = _now()
        self._last_error: str | None = None
        self._session: int | None = None
        self._last_ack: dt.datetime | None = None
        self._connects = 0
        self._rejected = 0
        self._client: aiomqtt.Client | None = None
        self._inflight: collections.OrderedDict[str, _InFlight] = collections.OrderedDict()
        self._publishes: set[asyncio.Task[None]] = set()
        self._to_purge: list[str] = []
        self._purging: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._purge_wake: asyncio.Event | None = None
        self._unheard_due: float | None = None
        """When to send the records in flight again: a PUBACK said nobody subscribes."""
        self._unheard_streak = 0
        """Such resends since the last ack: each waits twice as long as the one before."""
        self._stopping: asyncio.Event | None = None
        self._connected: asyncio.Event | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._purger: asyncio.Task[None] | None = None
        self._topics = {name: topics.device_topic(config.device_id, name) for name in _OUT}

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Uplink:
        self._loop = asyncio.get_running_loop()
        self._reads = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="uplink-read")
        self._writes = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="uplink-write")
        self._wake = asyncio.Event()
        self._purge_wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._connected = asyncio.Event()
        self.outbox.add_listener(self._on_enqueue)
        self._purger = asyncio.create_task(self._purge_loop(), name="uplink-purge")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        self.outbox.remove_listener(self._on_enqueue)
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        await self._flush_purges()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        for pool in (self._reads, self._writes):
            if pool is not None:
                pool.shutdown(wait=True)
        self._set_state(ConnectionState.STOPPED)

    async def stop(self) -> None:
        """Stop :meth:`run`: publish offline (``shutdown``) if connected, disconnect, return."""
        if self._stopping is None:
            return
        self._stopping.set()
        task = self._run_task
        if task is None or task.done():
            return
        grace = self.config.delivery.publish_timeout_s + 2
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def on(self, channel: str, handler: Handler, *, scope: Literal["device", "fleet"] = "device"):
        """Register the async *handler* for payloads received on *channel* (one per channel)."""
        key = (scope, channel)
        if key not in HANDLED:
            known = ", ".join(f"{s}:{c}" for s, c in HANDLED)
            raise UplinkError(f"cannot handle {scope}:{channel} (handled channels: {known})")
        if key in self._handlers:
            raise UplinkError(f"a handler for {scope}:{channel} is already registered")
        self._handlers[key] = handler
        queue: asyncio.Queue[Incoming] = asyncio.Queue(maxsize=64)
        self._queues[key] = queue
        self._workers.append(
            asyncio.create_task(self._work(key, handler, queue), name=f"uplink-{scope}-{channel}")
        )

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once connected (birth published, subscriptions made)."""
        assert self._connected is not None, "use Uplink inside 'async with'"
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    def status(self) -> UplinkStatus:
        return UplinkStatus(
            state=self._state,
            since=self._since,
            last_error=self._last_error,
            session=self._session,
            outbox=self.outbox.stats(),
            in_flight=len(self._inflight),
            last_ack=self._last_ack,
            connects=self._connects,
            rejected=self._rejected,
        )

    # -- connection loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff, until :meth:`stop` (or leaving the block)."""
        assert self._stopping is not None, "use Uplink inside 'async with'"
        if self._run_task is not None and not self._run_task.done():
            raise UplinkError("Uplink.run is already running")
        self._run_task = asyncio.current_task()
        failures = 0
        while not self._stopping.is_set():
            self._set_state(ConnectionState.CONNECTING)
            connected = False
            try:
                session = await self._write(self.outbox.next_session)
                will = await self._write(self._availability, "offline", session, "connection-lost")
                client = self._client_for(will)
                async with client:
                    connected = True
                    self._connects += 1
                    await self._serve(client, session)
            except aiomqtt.MqttError as exc:
                self._last_error = _describe(exc, connected)
                log.warning("uplink: %s", self._last_error)
            except (OSError, ValueError) as exc:  # e.g. certificate files missing or unreadable
                self._last_error = f"cannot connect: {type(exc).__name__}: {exc}"
                log.warning("uplink: %s", self._last_error)
            except Exception as exc:  # a bug must not stop the kiosk from reconnecting
                self._last_error = f"internal error: {type(exc).__name__}: {exc}"
                log.exception("uplink: connection failed")
            finally:
                self._client = None
                self._connected.clear()
                await self._drop_publishes()
            if self._stopping.is_set():
                break
            self._set_state(ConnectionState.DISCONNECTED)
            failures = 0 if connected else failures + 1
            delay = self._backoff(failures)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
        self._set_state(ConnectionState.DISCONNECTED)

    def _backoff(self, failures: int) -> float:
        """Exponential, half of it random ("equal jitter"): a fleet does not reconnect at once."""
        settings = self.config.backoff
        ceiling = min(settings.max_s, settings.initial_s * 2 ** min(failures, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _client_for(self, will: dict[str, Any]) -> aiomqtt.Client:
        broker = self.config.broker
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = broker.session_expiry_s
        client = aiomqtt.Client(
            broker.host,
            broker.port,
            identifier=self.config.device_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_params=aiomqtt.TLSParameters(
                ca_certs=str(broker.ca_file),
                certfile=str(broker.cert_file),
                keyfile=str(broker.key_file),
            ),
            will=aiomqtt.Will(
                self._topics["availability"], canonical_json(will), qos=1, retain=True
            ),
            clean_start=False,
            properties=properties,
            keepalive=broker.keepalive_s,
            timeout=broker.connect_timeout_s,
            max_inflight_messages=min(
                self.config.delivery.window, self.config.delivery.mqtt_inflight
            ),
            logger=log.getChild("mqtt"),
            # Without it Nagle's algorithm holds each small packet for the peer's delayed ACK
            # (~40 ms a hop; see console/ingest/ingest.md).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # aiomqtt warns above 10 pending publishes; the window is the real bound here.
        client.pending_calls_threshold = self.config.delivery.window + 16
        # aiomqtt drops the PUBACK's reason code; this wrapper sees it first (private: paho's
        # callback, which aiomqtt sets in its constructor and calls on the event loop).
        settle = client._client.on_publish

        def on_publish(paho: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
            if getattr(reason, "value", reason) == NO_MATCHING_SUBSCRIBERS:
                self._nobody_listening()
            settle(paho, userdata, mid, reason, properties)

        client._client.on_publish = on_publish
        return client

    def _nobody_listening(self) -> None:
        if self._unheard_due is not None:
            return  # a resend is already planned; PUBACKs of the same burst say the same
        delay = min(UNHEARD_RETRY_S * 2**self._unheard_streak, self.config.delivery.ack_timeout_s)
        self._unheard_streak = min(self._unheard_streak + 1, 30)
        self._unheard_due = time.monotonic() + delay
        log.info("uplink: nobody subscribes to the records yet; sending again in %.0f s", delay)
        if self._wake is not None:
            self._wake.set()

    async def _serve(self, client: aiomqtt.Client, session: int) -> None:
        # After CONNACK (which may set it from the broker's Server Keep Alive): ping sooner than
        # the declared keepalive, so a silent link is noticed within it (mqtt_schemas.liveness).
        client._client._keepalive = ping_interval(self.config.broker.keepalive_s)
        birth = await self._write(self._availability, "online", session, None)
        await client.publish(
            self._topics["availability"], canonical_json(birth), qos=1, retain=True
        )
        await client.subscribe([(self._filter(scope, name), 1) for scope, name in SUBSCRIPTIONS])
        self._client = client
        self._session = session
        self._last_error = None
        self._set_state(ConnectionState.CONNECTED)
        self._connected.set()
        log.info("uplink: connected, session %d", session)
        receiver = asyncio.create_task(self._receive(client), name="uplink-receive")
        sender = asyncio.create_task(self._send(client), name="uplink-send")
        stopper = asyncio.create_task(self._stopping.wait(), name="uplink-stop")
        tasks = {receiver, sender, stopper}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if stopper in done:
            self._client = None
            self._connected.clear()
            reason = self.goodbye_reason
            goodbye = await self._write(self._availability, "offline", session, reason)
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(
                    self._topics["availability"],
                    canonical_json(goodbye),
                    qos=1,
                    retain=True,
                    timeout=self.config.delivery.publish_timeout_s,
                )
            log.info("uplink: offline (%s), session %d", reason, session)
            return
        for task in (receiver, sender):
            if task in done and task.exception() is not None:
                raise task.exception()
        raise aiomqtt.MqttError("the connection ended")

    def _availability(self, state: str, session: int, reason: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "state": state,
            "session": session,
            "agent_version": self.config.agent_version,
        }
        if reason:
            body["reason"] = reason
        return self.outbox.envelope("availability", body)

    def _filter(self, scope: str, name: str) -> str:
        if scope == "fleet":
            return topics.fleet_topic(name)
        return topics.device_topic(self.config.device_id, name)

    # -- outgoing -----------------------------------------------------------------------------

    async def publish_now(self, channel: str, body: dict[str, Any]) -> dict[str, Any]:
        """Publish a non-durable message (health, command result, catch-up) right now.

        *body* is the payload without its envelope; the complete payload is returned. Raises
        :class:`NotConnected` when there is no connection (the message is not kept: the next
        heartbeat replaces a lost one) and :class:`~mqtt_schemas.PayloadError` when invalid.
        """
        if channel not in PUBLISH_NOW:
            raise UplinkError(
                f"publish_now takes {', '.join(PUBLISH_NOW)}; records go through the outbox"
            )
        client = self._client
        if client is None:
            raise NotConnected(f"not connected ({self._state.value}); {channel} not sent")
        spec = topics.channel(channel)
        payload = await self._write(self.outbox.envelope, spec.schema, body)
        try:
            await client.publish(
                self._topics[channel],
                canonical_json(payload),
                qos=spec.qos,
                retain=spec.retain,
                timeout=self.config.delivery.publish_timeout_s,
            )
        except aiomqtt.MqttError as exc:
            raise NotConnected(f"{channel} not sent: {exc}") from exc
        return payload

    async def _send(self, client: aiomqtt.Client) -> None:
        """Keep the window full: resend what is overdue, then take live and backlog records."""
        delivery = self.config.delivery
        self._inflight.clear()
        self._unheard_due, self._unheard_streak = None, 0
        live_cursor = await self._read(self.outbox.last_seq)  # live records come after it
        backlog = _Backlog(self, live_cursor)
        self._live_hint = True
        last_live_poll = 0.0
        while True:
            self._wake.clear()
            now = time.monotonic()
            if self._unheard_due is not None and self._unheard_due <= now:
                # Nobody subscribed when some of these were published: send them all again
                # (those the console did get cost a duplicate, which it ignores by id). Their
                # ack timeouts stand: these resends are not failures of the console's.
                self._unheard_due = None
                for entry in list(self._inflight.values()):
                    self._publish(client, entry.record)
            for entry in [e for e in self._inflight.values() if e.deadline <= now]:
                entry.attempts += 1
                wait = delivery.ack_timeout_s * 2 ** min(entry.attempts - 1, 30)
                entry.deadline = now + min(wait, delivery.ack_timeout_max_s)
                self._inflight.move_to_end(entry.record.id)
                self._publish(client, entry.record)
            free = delivery.window - len(self._inflight)
            fetched = 0
            if free > 0:
                live: list[Record] = []
                live_quota = (free + 1) // 2 if backlog.open else free
                if self._live_hint or now - last_live_poll >= IDLE_POLL_S:
                    self._live_hint = False  # an enqueue from now on sets it again
                    last_live_poll = now
                    live = await self._read(self.outbox.pending, live_cursor, live_quota)
                    if live:
                        live_cursor = live[-1].seq
                    if len(live) == live_quota:
                        self._live_hint = True  # there may be more
                older = await backlog.take(free - len(live))
                fetched = len(live) + len(older)
                deadline = time.monotonic() + delivery.ack_timeout_s
                for record in live + older:  # live first: they are few and wanted now
                    if record.id in self._purging or record.id in self._inflight:
                        continue
                    self._inflight[record.id] = _InFlight(record, deadline, 1)
                    self._publish(client, record)
            if fetched and len(self._inflight) < delivery.window:
                await asyncio.sleep(0)  # more may be waiting: look again at once
                continue
            timeout = IDLE_POLL_S
            if self._inflight:
                first = min(e.deadline for e in self._inflight.values())
                if self._unheard_due is not None:
                    first = min(first, self._unheard_due)
                timeout = min(timeout, max(0.0, first - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _publish(self, client: aiomqtt.Client, record: Record) -> None:
        # One task per publish, created in seq order: each calls paho's publish (which queues
        # the packet in order) before its first await, then waits for the PUBACK.
        task = asyncio.create_task(
            client.publish(self._topics[record.channel], record.payload, qos=1, timeout=math.inf)
        )
        self._publishes.add(task)
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The record stays in flight and is resent after a reconnect or its timeout.
            log.debug("uplink: publish failed: %s", task.exception())

    async def _drop_publishes(self) -> None:
        tasks = list(self._publishes)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()

    def _on_enqueue(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._live_arrived)

    def _live_arrived(self) -> None:
        self._live_hint = True
        if self._wake is not None:
            self._wake.set()

    # -- incoming -----------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._dispatch(message)

    async def _dispatch(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        try:
            route = topics.parse(topic)
        except TopicError as exc:
            log.warning("uplink: dropped a message on an unknown topic: %s", exc)
            return
        spec = route.channel
        key = (spec.scope, spec.name)
        if key not in SUBSCRIPTIONS or (
            spec.scope == "device" and route.device_id != self.config.device_id
        ):
            log.warning("uplink: dropped a message on %s, which it does not subscribe to", topic)
            return
        try:
            payload = parse_json(message.payload)
            validate(spec.schema, payload)
        except PayloadError as exc:
            log.warning("uplink: dropped an invalid payload on %s: %s", topic, _safe_reason(exc))
            return
        except (ValueError, TypeError) as exc:
            log.warning("uplink: dropped a payload on %s that is not JSON: %s", topic, _kind(exc))
            return
        if key == ("device", "acks"):
            self._on_ack(payload)
            return
        queue = self._queues.get(key)
        if queue is None:
            log.info("uplink: no handler for %s:%s; message dropped", *key)
            return
        await queue.put(Incoming(spec.scope, spec.name, topic, payload, bool(message.retain)))

    async def _work(self, key: tuple[str, str], handler: Handler, queue: asyncio.Queue) -> None:
        while True:
            incoming = await queue.get()
            try:
                await handler(incoming)
            except Exception:
                log.exception("uplink: the %s:%s handler failed", *key)

    def _on_ack(self, payload: dict[str, Any]) -> None:
        ids = list(payload["acked"])
        rejected = [item["id"] for item in payload.get("rejected", ())]
        for record_id in rejected:
            log.warning(
                "uplink: the console rejected record %s (it keeps it in quarantine)", record_id
            )
        self._rejected += len(rejected)
        ids += rejected
        self._last_ack = _now()
        self._unheard_streak = 0  # the console listens again
        for record_id in ids:
            self._inflight.pop(record_id, None)
            if record_id not in self._purging:
                self._purging.add(record_id)
                self._to_purge.append(record_id)
        self._purge_wake.set()
        self._wake.set()

    async def _purge_loop(self) -> None:
        while True:
            await self._purge_wake.wait()
            self._purge_wake.clear()
            await self._flush_purges()

    async def _flush_purges(self) -> None:
        while self._to_purge:
            batch, self._to_purge = self._to_purge, []
            try:
                await self._write(self.outbox.purge, batch)
            except Exception:
                log.exception("uplink: purging %d acked records failed; will retry", len(batch))
                self._to_purge = batch + self._to_purge
                await asyncio.sleep(1)
                continue
            self._purging.difference_update(batch)

    # -- helpers ------------------------------------------------------------------------------

    async def _write(self, function: Callable[..., T], *args: Any) -> T:
        """Run an outbox write on the uplink's writer thread: fsyncs stay off the event loop."""
        assert self._writes is not None, "use Uplink inside 'async with'"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writes, functools.partial(function, *args))

    async def _read(self, function: Callable[..., T], *args: Any) -> T:
        """Run an outbox read on the reader thread: it never waits behind a purge's fsync."""
        assert self._reads is not None, "use Uplink inside 'async with'"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reads, functools.partial(function, *args))

    def _set_state(self, state: ConnectionState) -> None:
        if state is not self._state:
            self._state = state
            self._since = _now()


class _Backlog:
    """The records that were in the outbox when the connection came up, read ahead in seq order.

    Its range (seq <= floor) receives no new records, so it is read in large slices: one read
    serves several refills of the window.
    """

    PREFETCH = 1024

    def __init__(self, uplink: Uplink, floor: int) -> None:
        self._uplink = uplink
        self._floor = floor
        self._cursor = 0
        self._buffer: collections.deque[Record] = collections.deque()
        self._complete = floor == 0

    @property
    def open(self) -> bool:
        return bool(self._buffer) or not self._complete

    async def take(self, count: int) -> list[Record]:
        taken: list[Record] = []
        while len(taken) < count:
            if not self._buffer:
                if self._complete:
                    break
                want = max(count - len(taken), self.PREFETCH)
                outbox = self._uplink.outbox
                rows = await self._uplink._read(outbox.pending, self._cursor, want, self._floor)
                if len(rows) < want:
                    self._complete = True
                if not rows:
                    break
                self._cursor = rows[-1].seq
                self._buffer.extend(rows)
            taken.append(self._buffer.popleft())
        return taken


_OUT = ("availability", "crossings", "hits", "decisions", *PUBLISH_NOW)

# PayloadError problems that never quote the payload's values.
_VALUE_FREE = {
    "required field is missing",
    "unexpected field (not in the schema)",
    "field not allowed in this case",
}


def _safe_reason(exc: PayloadError) -> str:
    """Why a payload was refused, without any of its values (they may be personal data)."""
    problem = exc.problem if exc.problem in _VALUE_FREE else "value does not match the schema"
    if exc.problem.startswith(("expected '", "unknown version", "no schema")):
        problem = "wrong or unknown schema tag"
    elif exc.problem.startswith("expected a JSON object"):
        problem = exc.problem
    return f"{exc.schema.split('@')[0]}: {exc.path or '(payload)'}: {problem}"


def _kind(exc: Exception) -> str:
    if isinstance(exc, JsonError):  # one line, no value from the payload
        return str(exc)
    return type(exc).__name__


def _describe(exc: aiomqtt.MqttError, connected: bool) -> str:
    text = str(exc) or type(exc).__name__
    return f"connection lost: {text}" if connected else f"cannot connect: {text}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
