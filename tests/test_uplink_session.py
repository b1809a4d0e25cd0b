"""The uplink on a real Mosquitto (TLS, client certificates, the contract ACL), with a test
console that stores by id and acks, and brokers and kiosks killed mid-stream.

Chaos tests count ids on both sides: generated == acked == stored, each stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import AsyncIterator

import aiomqtt
import pytest

import mqtt_schemas
from edge.uplink import (
    ConnectionState,
    Incoming,
    NotConnected,
    Outbox,
    StaticClock,
    Uplink,
    UplinkConfig,
    UplinkError,
)
from harness.console import rows, running_worker
from harness.uplink import TestConsole, crossing_body, spawn
from mqtt_schemas import topics
from mqtt_schemas.envelope import ENVELOPE_FIELDS

pytestmark = pytest.mark.timeout(30)
CLOCK = StaticClock()


@contextlib.asynccontextmanager
async def running(config: UplinkConfig, outbox: Outbox, **handlers) -> AsyncIterator[Uplink]:
    """An uplink whose run() task goes for the body of the block, then stops cleanly."""
    async with Uplink(config, outbox, CLOCK) as uplink:
        for key, handler in handlers.items():
            scope, _, channel = key.partition("__")
            uplink.on(channel.replace("_", "/"), handler, scope=scope)
        runner = asyncio.create_task(uplink.run())
        try:
            yield uplink
        finally:
            await uplink.stop()
            await runner


def open_outbox(tmp_path, config: UplinkConfig) -> Outbox:
    return Outbox(tmp_path / "kiosk.db", config.device_id, CLOCK, config.outbox)


def enqueue_many(outbox: Outbox, count: int) -> list[str]:
    """*count* records in one transaction (fast: one fsync)."""
    with outbox.transaction() as tx:
        return [tx.enqueue("crossings", crossing_body(n)).id for n in range(count)]


async def until(condition, timeout: float = 10, step: float = 0.02) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(step)


async def next_message(client: aiomqtt.Client, timeout: float = 5) -> aiomqtt.Message:
    async with asyncio.timeout(timeout):
        async for message in client.messages:
            return message
    raise AssertionError("no message")


def health_body(uplink: Uplink) -> dict:
    example = mqtt_schemas.examples("health")["valid"][0]["payload"]
    body = {k: v for k, v in example.items() if k not in ENVELOPE_FIELDS}
    status = uplink.status()
    body.update(status.health_fields())
    body["components"] = {"uplink": status.component()}
    return body


@pytest.mark.asyncio
async def test_records_enqueued_while_the_broker_is_down_arrive_in_order_after_it_starts(
    uplink_broker, tmp_path
):
    config = uplink_broker.uplink_config("kiosk-down")
    outbox = open_outbox(tmp_path, config)
    async with TestConsole(uplink_broker, persistent=True) as console:
        uplink_broker.stop()  # orderly: the console's session survives in the broker's store
        async with running(config, outbox) as uplink:
            ids = [outbox.enqueue("crossings", crossing_body(n)).id for n in range(40)]
            await until(lambda: uplink.status().last_error is not None)
            status = uplink.status()
            assert status.state in (ConnectionState.CONNECTING, ConnectionState.DISCONNECTED)
            assert "cannot connect" in status.last_error
            assert status.outbox.depth == 40 and status.outbox.oldest_age_s >= 0
            assert uplink.status().component()["state"] == "down"

            uplink_broker.start()
            await console.wait_for(lambda: len(console.stored) == 40)
            await until(lambda: outbox.stats().depth == 0)
            status = uplink.status()
            assert status.state is ConnectionState.CONNECTED and status.last_error is None
            assert status.last_ack is not None and status.component()["state"] == "ok"
    assert console.order[:40] == ids  # in order
    assert sorted(console.acked) == sorted(ids)


@pytest.mark.asyncio
async def test_records_are_purged_on_the_consoles_ack_not_on_puback(uplink_broker, tmp_path):
    config = uplink_broker.uplink_config("kiosk-ack", ack_timeout_s=30)
    outbox = open_outbox(tmp_path, config)
    async with TestConsole(uplink_broker, acks=False) as console, running(config, outbox) as up:
        ids = enqueue_many(outbox, 20)
        await console.wait_for(lambda: len(console.deliveries) == 20)
        await asyncio.sleep(0.3)  # long past every PUBACK
        assert outbox.stats().depth == 20
        assert up.status().in_flight == 20
        assert up.status().last_ack is None

        await console.ack_received("kiosk-ack")
        await until(lambda: outbox.stats().depth == 0)
        assert up.status().in_flight == 0
    assert set(console.acked) == set(ids)
    assert all(count == 1 for count in console.deliveries.values())  # acked before any resend


@pytest.mark.asyncio
async def test_rejected_records_are_purged_too_and_counted(uplink_broker, tmp_path, caplog):
    config = uplink_broker.uplink_config("kiosk-rej", ack_timeout_s=30)
    outbox = open_outbox(tmp_path, config)
    ack = copy.deepcopy(mqtt_schemas.examples("ack")["valid"][1]["payload"])
    console = TestConsole(uplink_broker, acks=False)
    async with console, running(config, outbox) as uplink, uplink_broker.client("console") as c:
        kept, stored, refused = enqueue_many(outbox, 3)
        await console.wait_for(lambda: len(console.deliveries) == 3)
        ack["acked"] = [stored]
        ack["rejected"] = [{"id": refused, "reason": "quarantined: SECRET-DETAIL"}]
        await c.publish(topics.device_topic("kiosk-rej", "acks"), json.dumps(ack), qos=1)
        await until(lambda: outbox.stats().depth == 1)
        assert [r.id for r in outbox.pending(0, 10)] == [kept]
        assert uplink.status().rejected == 1
        assert uplink.status().in_flight == 1
    assert refused in caplog.text and "SECRET-DETAIL" not in caplog.text


@pytest.mark.asyncio
async def test_unacked_records_are_resent_after_the_timeout_and_stored_once(
    uplink_broker, tmp_path
):
    config = uplink_broker.uplink_config("kiosk-resend", ack_timeout_s=0.4)
    outbox = open_outbox(tmp_path, config)
    # The console "loses" the first delivery of every record (as if it crashed before its
    # commit) and stores and acks the second.
    console = TestConsole(uplink_broker, acks=lambda _id, deliveries: deliveries >= 2)
    async with console, running(config, outbox):
        ids = enqueue_many(outbox, 10)
        await until(lambda: outbox.stats().depth == 0)
    assert sorted(console.stored) == sorted(ids)
    assert all(console.deliveries[i] >= 2 for i in ids)  # duplicates on the wire...
    assert len(console.stored) == len(ids)  # ...stored once


@pytest.mark.asyncio
async def test_records_nobody_subscribed_to_are_sent_again_soon_not_after_the_ack_timeout(
    uplink_broker, tmp_path
):
    """After a broker restart the kiosks are often back before the console has subscribed
    again, and the broker drops what nobody subscribes to. Its PUBACK says so (no matching
    subscribers): the kiosk sends those records again within seconds, not after its 30 s ack
    timeout."""
    config = uplink_broker.uplink_config("kiosk-unheard", ack_timeout_s=30)
    outbox = open_outbox(tmp_path, config)
    async with running(config, outbox) as uplink:
        await uplink.wait_connected(10)
        ids = enqueue_many(outbox, 5)
        await until(lambda: uplink.status().in_flight == 5)
        await asyncio.sleep(0.5)  # published, and dropped: nobody subscribes yet
        async with TestConsole(uplink_broker) as console:
            await console.wait_for(lambda: len(console.stored) == 5, timeout=6)
            await until(lambda: outbox.stats().depth == 0)
    assert sorted(console.stored) == sorted(ids)


@pytest.mark.asyncio
async def test_broker_killed_mid_stream_every_record_arrives_once_stored(uplink_broker, tmp_path):
    config = uplink_broker.uplink_config("kiosk-chaos", ack_timeout_s=1, window=32)
    outbox = open_outbox(tmp_path, config)
    generated: list[str] = []

    async def lane(count: int) -> None:
        for n in range(count):
            generated.append(outbox.enqueue("crossings", crossing_body(n)).id)
            await asyncio.sleep(0.002)

    async with TestConsole(uplink_broker) as console, running(config, outbox) as uplink:
        writer = asyncio.create_task(lane(600))
        for progress in (100, 300):  # two crashes, at different points of the stream
            await console.wait_for(lambda n=progress: len(console.stored) >= n)
            uplink_broker.kill()  # SIGKILL: in-flight messages and sessions are gone
            await until(lambda: uplink.status().state is not ConnectionState.CONNECTED)
            await asyncio.sleep(0.2)  # the lane goes on writing while the broker is down
            uplink_broker.start()
        await writer
        await console.wait_for(lambda: len(console.stored) == 600, timeout=20)
        await until(lambda: outbox.stats().depth == 0)
        assert uplink.status().connects >= 3
    assert len(generated) == len(set(generated)) == 600
    assert set(generated) == set(console.stored) == set(console.acked)
    assert len(console.stored) == 600  # each stored once, whatever was redelivered


@pytest.mark.asyncio
async def test_end_to_end_with_the_real_console_ingest(uplink_broker, tmp_path, console_db):
    config = uplink_broker.uplink_config("kiosk-e2e")
    outbox = open_outbox(tmp_path, config)
    db = console_db
    async with running_worker(uplink_broker, db), running(config, outbox):
        ids = enqueue_many(outbox, 200)
        await until(lambda: outbox.stats().depth == 0)
    stored = rows(db, "SELECT id, device_id, seq FROM crossings ORDER BY seq")
    assert [r["id"] for r in stored] == ids
    assert {r["device_id"] for r in stored} == {"kiosk-e2e"}


@pytest.mark.asyncio
async def test_live_records_overtake_a_backlog_instead_of_waiting_behind_it(
    uplink_broker, tmp_path
):
    config = uplink_broker.uplink_config("kiosk-live", window=32)
    outbox = open_outbox(tmp_path, config)
    backlog = enqueue_many(outbox, 1500)
    async with TestConsole(uplink_broker) as console, running(config, outbox):
        await console.wait_for(lambda: len(console.deliveries) >= 100)
        live = outbox.enqueue("crossings", crossing_body(99)).id
        await console.wait_for(lambda: live in console.deliveries)
        position = console.order.index(live)
        await until(lambda: outbox.stats().depth == 0, timeout=20)
    assert position < 300, f"the live record waited behind {position} backlog records"
    backlog_order = [i for i in console.order if i != live]
    assert backlog_order == backlog  # the backlog itself stays in seq order


@pytest.mark.asyncio
async def test_birth_and_will_carry_the_same_session_when_the_kiosk_dies(uplink_broker, tmp_path):
    settings = uplink_broker.uplink_settings("kiosk-will")
    topic = topics.device_topic("kiosk-will", "availability")
    async with uplink_broker.observer() as observer:
        await observer.subscribe(topic, qos=1)
        kiosk = spawn("kiosk", json.dumps(settings), str(tmp_path / "kiosk.db"))
        try:
            line = await asyncio.wait_for(asyncio.to_thread(kiosk.stdout.readline), 15)
            assert line.startswith("connected "), line or kiosk.stderr.read()
            session = int(line.split()[1])
            birth = json.loads((await next_message(observer)).payload)
            mqtt_schemas.validate("availability", birth)
            assert (birth["state"], birth["session"]) == ("online", session)
            assert birth["agent_version"] == "0.1.0+test"
            async with uplink_broker.observer() as late:  # the birth is retained
                await late.subscribe(topic, qos=1)
                retained = await next_message(late)
            assert retained.retain and json.loads(retained.payload)["id"] == birth["id"]
            kiosk.kill()  # SIGKILL: no DISCONNECT, the broker publishes the will
            kiosk.wait()
            will = json.loads((await next_message(observer)).payload)
        finally:
            kiosk.kill()
            kiosk.wait()
            kiosk.stdout.close()
            kiosk.stderr.close()
    mqtt_schemas.validate("availability", will)
    assert (will["state"], will["session"], will["reason"]) == (
        "offline",
        session,
        "connection-lost",
    )
    assert will["seq"] < birth["seq"]  # prepared before the connection, stamped then
    async with uplink_broker.observer() as late:
        await late.subscribe(topic, qos=1)
        retained = await next_message(late)
    assert retained.retain and json.loads(retained.payload)["id"] == will["id"]


@pytest.mark.asyncio
async def test_session_counter_increments_per_connect(uplink_broker, tmp_path):
    config = uplink_broker.uplink_config("kiosk-session")
    outbox = open_outbox(tmp_path, config)
    topic = topics.device_topic("kiosk-session", "availability")
    seen: list[tuple[str, int, str | None]] = []
    async with uplink_broker.observer() as observer:
        await observer.subscribe(topic, qos=1)

        async def watch() -> None:
            async for message in observer.messages:
                payload = json.loads(message.payload)
                seen.append((payload["state"], payload["session"], payload.get("reason")))

        watcher = asyncio.create_task(watch())
        async with running(config, outbox) as uplink:
            await uplink.wait_connected(5)
            first = uplink.status().session
            await until(lambda: len(seen) == 1)
        await until(lambda: len(seen) == 2)  # clean stop: offline, shutdown
        async with running(config, outbox) as uplink:
            await uplink.wait_connected(5)
            await until(lambda: len(seen) == 3)
        await until(lambda: len(seen) == 4)
        watcher.cancel()
    assert seen == [
        ("online", first, None),
        ("offline", first, "shutdown"),
        ("online", first + 1, None),
        ("offline", first + 1, "shutdown"),
    ]
    assert outbox.counters()["session"] == first + 1


@pytest.mark.asyncio
async def test_invalid_incoming_payloads_are_dropped_and_handlers_get_valid_ones(
    uplink_broker, tmp_path, caplog
):
    config = uplink_broker.uplink_config("kiosk-in")
    outbox = open_outbox(tmp_path, config)
    received: list[Incoming] = []
    calls = 0

    async def on_command(incoming: Incoming) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a handler bug must not take the uplink down")
        received.append(incoming)

    async def on_other(incoming: Incoming) -> None:
        received.append(incoming)

    command = copy.deepcopy(mqtt_schemas.examples("command")["valid"][0]["payload"])
    manifest = mqtt_schemas.examples("watchlist-manifest")["valid"][0]["payload"]
    chunk = mqtt_schemas.examples("watchlist-delta-chunk")["valid"][0]["payload"]
    commands = topics.device_topic("kiosk-in", "commands")
    caplog.set_level(logging.INFO, logger="edge.uplink")
    async with uplink_broker.client("console") as console:
        # retained before the kiosk connects: delivered on subscribe
        await console.publish(
            topics.fleet_topic("watchlist/manifest"), json.dumps(manifest), qos=1, retain=True
        )
        handlers = {
            "device__commands": on_command,
            "fleet__watchlist_manifest": on_other,
            "fleet__watchlist_deltas": on_other,
            "device__watchlist_deltas": on_other,
        }
        async with running(config, outbox, **handlers) as uplink:
            await uplink.wait_connected(5)
            await until(lambda: len(received) == 1)  # the retained manifest
            bad = {**command, "name": "ping", "args": {}, "officer": "MARIA PII-SECRET"}
            for payload in (
                b"\xff not json",
                b"[1, 2]",
                json.dumps(bad).encode(),
                json.dumps({**command, "seq": "MARIA PII-SECRET"}).encode(),
                json.dumps({**command, "schema": "ack@1"}).encode(),
            ):
                await console.publish(commands, payload, qos=1)
            await console.publish(
                topics.device_topic("kiosk-in", "acks"), b'{"acked": ["x"]}', qos=1
            )
            await console.publish(commands, json.dumps(command), qos=1)  # handler raises
            await console.publish(commands, json.dumps({**command, "seq": 2}), qos=1)
            await console.publish(topics.fleet_topic("watchlist/deltas"), json.dumps(chunk), qos=1)
            await console.publish(
                topics.device_topic("kiosk-in", "watchlist/deltas"), json.dumps(chunk), qos=1
            )
            await until(lambda: len(received) == 4)
            assert uplink.status().state is ConnectionState.CONNECTED
            assert uplink.status().connects == 1  # never dropped the connection
        await console.publish(topics.fleet_topic("watchlist/manifest"), b"", qos=1, retain=True)
    assert [(i.scope, i.channel, i.retained) for i in received] == [
        ("fleet", "watchlist/manifest", True),
        ("device", "commands", False),
        ("fleet", "watchlist/deltas", False),
        ("device", "watchlist/deltas", False),
    ]
    assert received[1].payload["seq"] == 2
    log = caplog.text
    assert log.count("dropped an invalid payload") == 5  # 3 commands, the array, the ack
    assert log.count("not JSON") == 1
    assert "/officer: unexpected field" in log
    assert "PII-SECRET" not in log  # values never reach the log
    assert "handler failed" in log


@pytest.mark.asyncio
async def test_publish_now_sends_when_connected_and_refuses_when_not(uplink_broker, tmp_path):
    config = uplink_broker.uplink_config("kiosk-now")
    outbox = open_outbox(tmp_path, config)
    async with uplink_broker.observer() as observer:
        await observer.subscribe(topics.device_topic("kiosk-now", "health"), qos=1)
        async with running(config, outbox) as uplink:
            with pytest.raises(NotConnected):
                await uplink.publish_now("health", health_body(uplink))
            await uplink.wait_connected(5)
            sent = await uplink.publish_now("health", health_body(uplink))
            got = json.loads((await next_message(observer)).payload)
            with pytest.raises(UplinkError, match="records go through the outbox"):
                await uplink.publish_now("crossings", crossing_body())
    mqtt_schemas.validate("health", got)
    assert got == sent
    assert got["session"] == uplink.status().session
    assert got["components"]["uplink"]["state"] == "ok"
