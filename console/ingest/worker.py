"""The ingest worker: kiosk messages from the broker into the console database, then acks.

::

    worker = IngestWorker(IngestConfig("console.db", endpoint, node_id="console-1"))
    await worker.run(stop)          # until *stop* (an asyncio.Event) is set

Subscriptions. The record channels (crossings, hits, decisions), command results and heartbeats
are taken through an MQTT 5 **shared subscription**, ``$share/<group>/borderlane/v1/devices/+/…``:
the broker hands each message to one worker of the group, so workers can be added for
throughput. Availability is subscribed **per worker** (not shared): it is retained, and a broker
sends retained messages on a plain subscription but never on a shared one, so a (re)started
worker learns every kiosk's state at once; every worker sees every availability message in
publication order, and the store applies each message id once, so the birth/will rule holds with
any number of workers.

Batching. Messages are classified as they arrive (:mod:`console.records`) and stored in batches:
one transaction per batch, closed at ``max_batch`` messages or ``max_delay`` after its first
message, whichever comes first. While one batch commits (in a writer thread) the next one fills,
so under load the batches grow by themselves and the fixed cost of a commit is shared.

Acknowledgements, both after the commit:

* to the broker: the PUBACK of every QoS 1 message of the batch (manual acks). The broker keeps a
  message in the worker's persistent session until then, so a worker that dies mid-batch gets it
  again when it comes back; ``receive_maximum`` bounds how many it holds unacknowledged;
* to the kiosks: one ``ack@1`` per kiosk with the ids the commit settled (at most 1000 per
  payload), and the quarantined ones also under ``rejected`` with the reason (:mod:`console.acks`).

Speed. The worker installs :mod:`console.ingest.paho_speedups` (process-wide; see there).

Sessions. The worker connects with a fixed client id, ``clean_start`` false and a session expiry,
so what is published while it is away is queued by the broker (within the broker's
``max_queued_messages``); kiosks republish whatever stays unacked in any case. Connection loss
is retried with exponential backoff. Stopping commits what was received, sends its PUBACKs and
acks, and disconnects normally (the session stays for the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
from sqlalchemy.exc import SQLAlchemyError

from mqtt_schemas import topics
from mqtt_schemas.broker_access import service_client_id
from mqtt_schemas.envelope import clock_state, utc_now
from mqtt_schemas.liveness import ping_interval

from .. import acks, connection
from ..records import Item, Record, classify, internal_error
from ..store import Store, describe
from ..store.database import is_disconnect
from ..store.database import reason as database_reason
from . import paho_speedups

log = logging.getLogger("borderlane.console.ingest")

DEFAULT_GROUP = "console-ingest"
SHARED_CHANNELS = ("crossings", "hits", "decisions", "command-results", "health")
PER_WORKER_CHANNELS = ("availability",)
_CLOCK_REFRESH_S = 60.0


class IngestError(Exception):
    """The worker cannot run as configured (the message says why); retrying will not help."""


@dataclass(frozen=True)
class IngestConfig:
    db: str | Path
    """The console database: a SQLite path or a ``postgresql://`` URL."""
    endpoint: connection.Endpoint
    node_id: str
    """The console's node id, stamped as ``device_id`` on the acks it publishes."""
    group: str = DEFAULT_GROUP
    client_id: str | None = None
    """MQTT client id; fixed, so the session survives restarts. One per worker."""
    session_expiry: int = 3600
    max_batch: int = 500
    max_delay: float = 0.050
    receive_maximum: int = 2000
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    database_retry_max: float = 10.0
    """Longest wait between tries while the database cannot be reached."""
    keepalive: int = 60
    """MQTT keepalive in seconds: a link that goes silent (cut, no RST) is noticed within this,
    and the worker reconnects; the broker drops it after 1.5 x this (mqtt_schemas.liveness)."""

    @property
    def mqtt_client_id(self) -> str:
        return service_client_id(self.client_id or f"{self.node_id}-ingest-{self.group}")


def subscriptions(group: str) -> list[tuple[str, int]]:
    """The worker's subscription filters, all QoS 1."""
    if not group or any(c in group for c in "/+#") or any(ord(c) < 0x20 for c in group):
        raise IngestError(f"share group {group!r} must be non-empty, without / + # or controls")
    shared = [(f"$share/{group}/{topics.device_filter(c)}", 1) for c in SHARED_CHANNELS]
    return shared + [(topics.device_filter(c), 1) for c in PER_WORKER_CHANNELS]


@dataclass
class Stats:
    connects: int = 0
    messages: int = 0
    commits: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    stale_offlines: int = 0
    acks_sent: int = 0
    acks_failed: int = 0
    database_outages: int = 0
    largest_batch: int = 0


class IngestWorker:
    """One worker of a share group; see the module docstring."""

    def __init__(self, config: IngestConfig) -> None:
        subscriptions(config.group)  # refuse a bad group before connecting
        if config.receive_maximum < 1 or config.max_batch < 1:
            raise IngestError("receive_maximum and max_batch must be positive")
        self.config = config
        paho_speedups.install()
        self.stats = Stats()
        self.ready = asyncio.Event()
        """Set while subscribed (tests and the benchmark wait for it)."""
        self._store: Store | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._clock = clock_state()
        self._clock_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Ingest until *stop* is set, reconnecting with backoff when the connection drops."""
        loop = asyncio.get_running_loop()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ingest-writer")
        try:
            self._store = await loop.run_in_executor(self._writer, Store.open, self.config.db)
            delay = self.config.reconnect_min
            while not stop.is_set():
                connects = self.stats.connects
                try:
                    await self._connection(stop)
                    delay = self.config.reconnect_min
                except aiomqtt.MqttError as exc:
                    self.ready.clear()
                    wait = delay * random.uniform(0.8, 1.2)
                    why = f"{exc} ({exc.__cause__})" if exc.__cause__ else str(exc)
                    if self.stats.connects > connects:
                        # Mosquitto 2.0 says only "Unspecified error" when it drops a session
                        # for a newer connection with the same client id.
                        client_id = self.config.mqtt_client_id
                        why += f"; if this repeats, another client uses client id {client_id!r}"
                    log.warning("broker connection: %s; retrying in %.1f s", why, wait)
                    delay = min(delay * 2, self.config.reconnect_max)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
        finally:
            self.ready.clear()
            if self._store is not None:
                await loop.run_in_executor(self._writer, self._store.close)
            self._writer.shutdown(wait=True)
            s = self.stats
            log.info(
                "ingest stopped: %d messages, %d stored, %d duplicates, %d quarantined, "
                "%d commits, %d acks sent",
                s.messages,
                s.stored,
                s.duplicates,
                s.quarantined,
                s.commits,
                s.acks_sent,
            )

    async def _connection(self, stop: asyncio.Event) -> None:
        config = self.config
        inbox: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
        mqtt = connection.client(
            config.endpoint,
            config.mqtt_client_id,
            session_expiry=config.session_expiry,
            receive_maximum=config.receive_maximum,
            manual_ack=True,
            inbox=inbox,
            keepalive=config.keepalive,
        )
        async with mqtt:
            # Ping sooner than the declared keepalive (after CONNACK, which may set it), so a
            # silent link is noticed within the keepalive: see mqtt_schemas.liveness.
            mqtt._client._keepalive = ping_interval(config.keepalive)
            self.stats.connects += 1
            filters = subscriptions(config.group)
            granted = await mqtt.subscribe(filters)
            refused = [f for (f, _), code in zip(filters, granted, strict=True) if _refused(code)]
            if refused:
                raise IngestError(f"the broker refused the subscriptions {', '.join(refused)}")
            log.info(
                "connected to %s:%d as %s; share group %s",
                config.endpoint.host,
                config.endpoint.port,
                config.mqtt_client_id,
                config.group,
            )
            self.ready.set()
            await _Session(self, mqtt, inbox).run(stop)

    def clock(self) -> dict:
        now = asyncio.get_running_loop().time()
        if now - self._clock_at > _CLOCK_REFRESH_S:
            self._clock, self._clock_at = clock_state(), now
        return self._clock


def _refused(code: object) -> bool:
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    return payload if isinstance(payload, bytes) else str(payload).encode()


class _Session:
    """One connection's receive -> batch -> commit -> acknowledge pipeline."""

    def __init__(
        self, worker: IngestWorker, mqtt: aiomqtt.Client, inbox: asyncio.Queue[aiomqtt.Message]
    ) -> None:
        self.worker = worker
        self.config = worker.config
        self.mqtt = mqtt
        self.inbox = inbox
        self.loop = asyncio.get_running_loop()
        self.pending: list[tuple[Item, aiomqtt.Message]] = []
        self.first_at = 0.0
        self.wakeup = asyncio.Event()
        self.closing = False
        self.stopping = asyncio.Event()
        """Set with *closing*: ends a wait for the database."""
        self.ack_tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        receiver = asyncio.create_task(self._receive(), name="ingest-receive")
        committer = asyncio.create_task(self._commit_loop(), name="ingest-commit")
        stopper = asyncio.create_task(stop.wait(), name="ingest-stop")
        try:
            await asyncio.wait({receiver, committer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Stop taking messages; what the broker still has for us stays in the session.
            receiver.cancel()
            stopper.cancel()
            await asyncio.gather(receiver, stopper, return_exceptions=True)
            self.closing = True
            self.stopping.set()
            self.wakeup.set()
            try:
                await committer  # commits what was received, then returns
            finally:
                lost = not receiver.cancelled() and receiver.exception() is not None
                if self.ack_tasks and lost:
                    # The connection is gone: its acks can only time out (10 s before the
                    # worker reconnects, found by the fleet benchmark); the kiosks resend
                    # what stays unacked and are acked then.
                    self.worker.stats.acks_failed += len(self.ack_tasks)
                    for task in self.ack_tasks:
                        task.cancel()
                    await asyncio.gather(*self.ack_tasks, return_exceptions=True)
                elif self.ack_tasks:
                    await asyncio.wait(self.ack_tasks, timeout=self.mqtt.timeout)
        if not receiver.cancelled() and receiver.exception() is not None:
            raise receiver.exception()  # the connection dropped: reconnect

    async def _receive(self) -> None:
        inbox = self.inbox
        # client.messages waits for one message or a disconnection (it raises MqttError then);
        # whatever else is already received is taken straight from the inbox.
        async for message in self.mqtt.messages:
            self._take(message)
            while not inbox.empty():
                self._take(inbox.get_nowait())

    def _take(self, message: aiomqtt.Message) -> None:
        topic, raw = message.topic.value, _payload(message)
        try:
            item = classify(topic, raw)
        except Exception as exc:  # classify is total; should that ever break, ingest goes on
            log.error("classifying a message on %s failed: %s", topic, type(exc).__name__)
            item = internal_error(topic, raw, "classifying", exc)
        self.pending.append((item, message))
        self.worker.stats.messages += 1
        if len(self.pending) == 1:
            self.first_at = self.loop.time()
            self.wakeup.set()
        elif len(self.pending) >= self.config.max_batch:
            self.wakeup.set()

    async def _commit_loop(self) -> None:
        max_batch, max_delay = self.config.max_batch, self.config.max_delay
        while True:
            if not self.pending:
                if self.closing:
                    return
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            if not self.closing and len(self.pending) < max_batch:
                remaining = self.first_at + max_delay - self.loop.time()
                if remaining > 0:
                    self.wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wakeup.wait(), remaining)
                    continue
            batch = self.pending[:max_batch]
            del self.pending[:max_batch]
            if not await self._commit_isolating(batch):
                return  # stopping while the database is away: the broker keeps the batch

    async def _commit_isolating(self, batch: list[tuple[Item, aiomqtt.Message]]) -> bool:
        """:meth:`_commit`; if the batch fails for any other reason than the database being
        away (which ``_commit`` waits out), commit what can be and quarantine what cannot.

        A batch that fails is never acknowledged, so the broker would hand it back after every
        restart and one bad message would stop ingest for every kiosk. So the batch is split in
        halves, each committed on its own, until a failing message is alone (about 2·log2(n)
        commits for one bad message among n, in publication order); that message is quarantined
        with the error's type. If even its quarantine cannot be committed, the error propagates:
        then the database itself is failing, and the broker keeps the messages.
        """
        commits = self.worker.stats.commits
        try:
            return await self._commit(batch)
        except Exception as exc:
            error = type(exc).__name__
            if self.worker.stats.commits > commits:
                # It failed after the commit and the PUBACKs, sending the kiosks' acks: nothing
                # to redo; a kiosk republishes what stays unacked and is acked then.
                log.error("after committing %d messages: %s", len(batch), error)
                return True
            if len(batch) > 1:
                log.warning("a batch of %d messages failed (%s); halving it", len(batch), error)
                half = len(batch) // 2
                first = await self._commit_isolating(batch[:half])
                return first and await self._commit_isolating(batch[half:])
            ((item, message),) = batch
            topic = message.topic.value
            log.error("a message on %s cannot be stored (%s); quarantined", topic, error)
            record_id = item.id if isinstance(item, Record) else None
            failed = internal_error(topic, _payload(message), "storing", exc, record_id)
            return await self._commit([(failed, message)])

    async def _commit(self, batch: list[tuple[Item, aiomqtt.Message]]) -> bool:
        """Store *batch*, then acknowledge it; False if stopped while the database was away.

        While the database cannot be reached, nothing is acknowledged: the broker keeps the
        messages (at most ``receive_maximum`` in flight) and the kiosks keep their records, so
        a console database outage costs a delay, never a record.
        """
        worker, config = self.worker, self.config
        store = worker._store
        assert store is not None
        items = [item for item, _ in batch]
        delay = config.reconnect_min
        down_since: float | None = None
        while True:
            try:
                outcome = await self.loop.run_in_executor(
                    worker._writer, store.apply, items, config.node_id, utc_now()
                )
                break
            except SQLAlchemyError as exc:
                if not is_disconnect(exc):
                    raise
                # One warning when it goes, one line when it is back; the tries between are
                # debug lines, so a night-long outage does not flood the log.
                if down_since is None:
                    down_since = self.loop.time()
                    worker.stats.database_outages += 1
                    level = logging.WARNING
                else:
                    level = logging.DEBUG
                log.log(
                    level,
                    "console database %s: %s; %d messages kept unacknowledged, retrying in %.1f s",
                    describe(config.db),
                    database_reason(exc),
                    len(batch),
                    delay,
                )
                if self.closing:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                if self.closing:
                    return False
                delay = min(delay * 2, config.database_retry_max)
        if down_since is not None:
            log.warning(
                "console database %s is back after %.0f s; the kept messages are stored",
                describe(config.db),
                self.loop.time() - down_since,
            )
        connection.puback_all(self.mqtt, (message for _, message in batch))
        stats = worker.stats
        stats.commits += 1
        stats.stored += outcome.stored
        stats.duplicates += outcome.duplicates
        stats.quarantined += outcome.quarantined
        stats.stale_offlines += outcome.stale_offlines
        stats.largest_batch = max(stats.largest_batch, len(batch))
        log.debug(
            "committed %d messages: %d stored, %d duplicates, %d quarantined, %d kiosks acked",
            len(batch),
            outcome.stored,
            outcome.duplicates,
            outcome.quarantined,
            len(outcome.acks),
        )
        for topic, payload in acks.build(
            config.node_id, outcome.acks, outcome.ack_seqs, worker.clock()
        ):
            task = asyncio.create_task(self._publish_ack(topic, payload))
            self.ack_tasks.add(task)
            task.add_done_callback(self.ack_tasks.discard)
        return True

    async def _publish_ack(self, topic: str, payload: bytes) -> None:
        try:
            await self.mqtt.publish(topic, payload, qos=1)
            self.worker.stats.acks_sent += 1
        except aiomqtt.MqttError as exc:
            # The records are committed; the kiosk republishes them and is acked then.
            self.worker.stats.acks_failed += 1
            log.warning("ack on %s not sent: %s", topic, exc)
