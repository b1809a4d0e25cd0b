"""The ingest worker on the real broker: stored once, acked after commit, quarantined with the
reason, shared among workers, queued while away, availability with the stale-will rule.

Each test uses its own kiosk ids, so the session broker's retained messages and queues of one
test never reach another. The tests of storage run on SQLite and on PostgreSQL (``console_db``):
both runs share the session broker, where a worker's session (and its place in a share group)
outlives the test, so share groups and client ids are made unique per run (:func:`named`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import mqtt_schemas
from console.ingest import subscriptions
from harness.console import (
    NODE_ID,
    Kiosk,
    availability,
    crossing,
    health,
    retained_availability,
    rows,
    running_worker,
    wait_for_rows,
)
from mqtt_schemas import topics

pytestmark = pytest.mark.asyncio

# Availability is retained and every worker subscribes to all of it, so a worker also sees the
# retained births and wills of earlier tests' kiosks: queries name the device. The log in the
# order it was committed (a batch's messages by the kiosk's time), on either backend.
_LOG = "SELECT * FROM availability_log WHERE device_id = ? ORDER BY received_at, time"
_DEVICE = "SELECT state, session, offline_reason FROM devices WHERE device_id = ?"


def named(name: str) -> str:
    """*name* (a share group, a client id) unique to this run of the test."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_crossings_are_stored_once_and_acked_with_exactly_their_ids(broker, console_db):
    db = console_db
    records = [crossing("kiosk-i1", seq) for seq in range(1, 21)]
    async with running_worker(broker, db), Kiosk(broker, "kiosk-i1") as kiosk:
        for record in records:
            await kiosk.publish("crossings", record)
        await kiosk.wait_acked(r["id"] for r in records)
        await asyncio.sleep(0.05)  # nothing else may follow
    assert kiosk.acked() == {r["id"] for r in records}
    for ack in kiosk.acks:
        mqtt_schemas.validate("ack", ack)
        assert ack["device_id"] == NODE_ID and "rejected" not in ack
    seqs = [ack["seq"] for ack in kiosk.acks]
    assert len(set(seqs)) == len(seqs)
    stored = rows(db, "SELECT id, device_id, seq, site, outcome, payload FROM crossings")
    assert len(stored) == 20
    by_id = {row["id"]: row for row in stored}
    for record in records:
        row = by_id[record["id"]]
        assert (row["device_id"], row["seq"], row["site"], row["outcome"]) == (
            "kiosk-i1",
            record["seq"],
            record["site"],
            record["decision"]["outcome"],
        )
        assert json.loads(row["payload"]) == record


async def test_a_redelivered_record_is_stored_once_and_acked_again(broker, console_db):
    db = console_db
    records = [crossing("kiosk-i2", seq) for seq in range(1, 6)]
    async with running_worker(broker, db) as worker, Kiosk(broker, "kiosk-i2") as kiosk:
        for record in records:
            await kiosk.publish("crossings", record)
        await kiosk.wait_acked(r["id"] for r in records)
        first_round = len(kiosk.acks)
        for record in [*records, records[0]]:  # republished unchanged, one of them twice
            await kiosk.publish("crossings", record)
        async with asyncio.timeout(5):
            while sum(len(a["acked"]) for a in kiosk.acks[first_round:]) < 5:
                await asyncio.sleep(0.01)
    assert {i for a in kiosk.acks[first_round:] for i in a["acked"]} == {r["id"] for r in records}
    assert rows(db, "SELECT count(*) AS n FROM crossings")[0]["n"] == 5
    assert worker.stats.duplicates == 6 and worker.stats.quarantined == 0


async def test_an_invalid_record_is_quarantined_with_the_field_and_acked_as_rejected(
    broker, console_db
):
    db = console_db
    bad = crossing("kiosk-i3", 1)
    del bad["document"]["number"]
    good = crossing("kiosk-i3", 2)
    async with running_worker(broker, db), Kiosk(broker, "kiosk-i3") as kiosk:
        await kiosk.publish("crossings", b"{not json")
        await kiosk.publish("crossings", bad)
        await kiosk.publish("crossings", good)
        await kiosk.wait_acked({bad["id"], good["id"]})
    assert set(kiosk.rejected()) == {bad["id"]}
    assert "/document/number" in kiosk.rejected()[bad["id"]]
    quarantined = rows(db, "SELECT * FROM quarantine ORDER BY id")
    assert [(q["device_id"], q["record_id"], q["path"]) for q in quarantined] == [
        ("kiosk-i3", None, ""),
        ("kiosk-i3", bad["id"], "/document/number"),
    ]
    assert quarantined[0]["payload"] == b"{not json"
    assert "not JSON" in quarantined[0]["reason"]
    assert json.loads(quarantined[1]["payload"]) == bad
    assert [r["id"] for r in rows(db, "SELECT id FROM crossings")] == [good["id"]]


async def test_a_kiosk_speaking_for_another_is_quarantined(broker, console_db):
    db = console_db
    forged = crossing("kiosk-i4b", 1)  # published by kiosk-i4a on its own topic
    async with running_worker(broker, db), Kiosk(broker, "kiosk-i4a") as kiosk:
        await kiosk.publish("crossings", forged)
        await kiosk.wait_acked({forged["id"]})
    assert "differs from the device id in the topic" in kiosk.rejected()[forged["id"]]
    (row,) = rows(db, "SELECT device_id, path, reason FROM quarantine")
    assert (row["device_id"], row["path"]) == ("kiosk-i4a", "/device_id")
    assert rows(db, "SELECT count(*) AS n FROM crossings")[0]["n"] == 0


async def test_an_id_reused_with_other_content_keeps_the_first_and_quarantines_the_second(
    broker, console_db
):
    db = console_db
    first = crossing("kiosk-i5", 1)
    second = {**first, "lane": "lane-9"}
    async with running_worker(broker, db), Kiosk(broker, "kiosk-i5") as kiosk:
        await kiosk.publish("crossings", first)
        await kiosk.wait_acked({first["id"]})
        await kiosk.publish("crossings", second)
        await kiosk.wait_ack_count(2)
    assert "already stored with different content" in kiosk.rejected()[first["id"]]
    assert rows(db, "SELECT lane FROM crossings")[0]["lane"] == first["lane"]
    assert rows(db, "SELECT path FROM quarantine")[0]["path"] == "/id"


async def test_the_console_identity_may_subscribe_to_shared_subscriptions(broker):
    filters = subscriptions("any-group")
    async with broker.client("console") as console:
        granted = await console.subscribe(filters)
    assert [code.value for code in granted] == [1] * len(filters)


async def test_a_kiosk_joining_the_share_group_cannot_make_records_go_missing(broker, tmp_path):
    # The broker's access rules refuse the subscription itself, so no record is dealt to it.
    group = "guarded-i14"
    records = [crossing("kiosk-i14", seq) for seq in range(1, 11)]
    async with (
        running_worker(broker, tmp_path / "console.db", group=group),
        broker.client("kiosk-thief") as thief,
        Kiosk(broker, "kiosk-i14") as kiosk,
    ):
        granted = await thief.subscribe(
            f"$share/{group}/{topics.device_filter('crossings')}", qos=1
        )
        assert [code.value for code in granted] == [0x87]  # not authorised
        for record in records:
            await kiosk.publish("crossings", record)
        await kiosk.wait_acked((r["id"] for r in records), timeout=1.5)


async def test_two_workers_of_one_group_store_each_record_exactly_once(broker, console_db):
    db = console_db
    records = [crossing("kiosk-i6", seq) for seq in range(1, 201)]
    group = named("pair-i6")
    async with (
        running_worker(broker, db, group=group) as one,
        running_worker(broker, db, group=group) as two,
        Kiosk(broker, "kiosk-i6") as kiosk,
    ):
        for record in [*records, *records[:20]]:  # with redeliveries, which may cross workers
            await kiosk.publish("crossings", record)
        await kiosk.wait_acked(r["id"] for r in records)
        async with asyncio.timeout(5):  # the redeliveries too
            while one.stats.duplicates + two.stats.duplicates < 20:
                await asyncio.sleep(0.01)
    assert rows(db, "SELECT count(*) AS n FROM crossings")[0]["n"] == 200
    assert one.stats.stored > 0 and two.stats.stored > 0
    assert one.stats.stored + two.stats.stored == 200
    assert one.stats.messages + two.stats.messages == 220


async def test_records_published_while_the_console_is_down_arrive_when_it_returns(
    broker, console_db
):
    db = console_db
    client_id, group = named("test-ingest-restart-i7"), named("restart-i7")
    async with running_worker(broker, db, client_id=client_id, group=group):
        pass  # the session (and its shared subscription) now exists at the broker
    records = [crossing("kiosk-i7", seq) for seq in range(1, 31)]
    async with Kiosk(broker, "kiosk-i7") as kiosk:
        for record in records:
            await kiosk.publish("crossings", record)
        await asyncio.sleep(0.1)
        assert kiosk.acks == []
        async with running_worker(broker, db, client_id=client_id, group=group):
            await kiosk.wait_acked(r["id"] for r in records)
    assert rows(db, "SELECT count(*) AS n FROM crossings")[0]["n"] == 30


async def test_mosquitto_queues_for_an_offline_member_of_the_share_group(broker, console_db):
    # Mosquitto 2.0 round-robins over every session of the group, connected or not: while one
    # worker is away, its share of the messages waits in its session (up to the broker's
    # max_queued_messages) even though the other worker is online.
    db = console_db
    group, away_id = named("offline-i8"), named("test-ingest-away-i8")
    async with running_worker(broker, db, group=group, client_id=away_id):
        pass
    records = [crossing("kiosk-i8", seq) for seq in range(1, 11)]
    async with running_worker(broker, db, group=group) as online, Kiosk(broker, "kiosk-i8") as k:
        for record in records:
            await k.publish("crossings", record)
        await wait_for_rows(db, "SELECT id FROM crossings", 5)
        await asyncio.sleep(0.2)
        assert online.stats.stored == 5
        async with running_worker(broker, db, group=group, client_id=away_id) as returning:
            await k.wait_acked(r["id"] for r in records)
    assert returning.stats.stored == 5


async def test_a_worker_retired_with_session_expiry_0_leaves_the_share_group(broker, console_db):
    db = console_db
    group, retired_id = named("retire-i15"), named("test-ingest-retired-i15")
    async with running_worker(broker, db, group=group, client_id=retired_id):
        pass
    async with running_worker(broker, db, group=group, client_id=retired_id, session_expiry=0):
        pass  # resumes the session, then ends it at disconnect
    records = [crossing("kiosk-i15", seq) for seq in range(1, 11)]
    async with running_worker(broker, db, group=group) as alone, Kiosk(broker, "kiosk-i15") as k:
        for record in records:
            await k.publish("crossings", record)
        await k.wait_acked(r["id"] for r in records)
    assert alone.stats.stored == 10


async def test_a_batch_received_before_stopping_is_committed_and_acked(broker, console_db):
    db = console_db
    records = [crossing("kiosk-i9", seq) for seq in range(1, 4)]
    async with Kiosk(broker, "kiosk-i9") as kiosk:
        async with running_worker(broker, db, max_delay=60) as worker:
            for record in records:
                await kiosk.publish("crossings", record)
            async with asyncio.timeout(5):
                while worker.stats.messages < 3:
                    await asyncio.sleep(0.01)
            assert worker.stats.commits == 0  # the batch waits for max_delay
        await kiosk.wait_acked(r["id"] for r in records)
    assert rows(db, "SELECT count(*) AS n FROM crossings")[0]["n"] == 3


async def test_a_late_will_of_an_earlier_connection_does_not_mark_the_kiosk_offline(
    broker, console_db
):
    db = console_db
    device = "kiosk-i10"
    topic = topics.device_topic(device, "availability")

    late_will = availability(device, "offline", 1, seq=10, reason="connection-lost")
    async with retained_availability(broker, device), running_worker(broker, db):
        async with Kiosk(broker, device) as first:
            await first.publish("availability", availability(device, "online", 1, 11), True)
        async with Kiosk(broker, device) as second, broker.observer() as relay:
            await second.publish("availability", availability(device, "online", 2, 21), True)
            await wait_for_rows(db, _LOG, 2, device)
            # Session 1's will arrives after the birth of session 2 (a connection that died
            # silently, its will published when its keepalive ran out, or held up by a bridge).
            # The broker binds a kiosk's client id to its certificate, so a second connection
            # takes the first over at once; the late will is relayed here as the broker would.
            await relay.publish(topic, json.dumps(late_will).encode(), qos=1, retain=True)
            log = await wait_for_rows(db, _LOG, 3, device)
            assert (log[2]["state"], log[2]["session"], log[2]["applied"]) == ("offline", 1, 0)
            (kiosk,) = rows(db, _DEVICE, device)
            assert (kiosk["state"], kiosk["session"]) == ("online", 2)
            # A clean shutdown of session 2 is applied.
            await second.publish("availability", availability(device, "offline", 2, 22, "shutdown"))
            await wait_for_rows(db, _LOG, 4, device)
    (kiosk,) = rows(db, _DEVICE, device)
    assert tuple(kiosk) == ("offline", 2, "shutdown")


async def test_a_worker_started_later_learns_availability_from_the_retained_message(
    broker, console_db
):
    db = console_db
    device = "kiosk-i11"
    async with retained_availability(broker, device):
        async with Kiosk(broker, device) as kiosk:
            birth = availability(device, "online", 7, 70)
            await kiosk.publish("availability", birth, retain=True)
        async with running_worker(broker, db):
            (row,) = await wait_for_rows(
                db,
                "SELECT state, session, agent_version FROM devices WHERE device_id = ?",
                1,
                device,
            )
    assert tuple(row) == ("online", 7, birth["agent_version"])


async def test_heartbeats_keep_the_latest_and_a_newer_session_overrides_an_offline(
    broker, console_db
):
    db = console_db
    device = "kiosk-i12"
    async with running_worker(broker, db), Kiosk(broker, device) as kiosk:
        await kiosk.publish("availability", availability(device, "offline", 3, 30, "shutdown"))
        await wait_for_rows(db, _LOG, 1, device)
        await kiosk.publish("health", health(device, 4, 41))
        await kiosk.publish("health", health(device, 4, 40))  # an older one, late
        await kiosk.publish("availability", availability(device, "online", 4, 42))
        await wait_for_rows(db, _LOG, 2, device)
    (row,) = rows(
        db, "SELECT state, session, health_seq, health FROM devices WHERE device_id = ?", device
    )
    assert (row["state"], row["session"], row["health_seq"]) == ("online", 4, 41)
    assert json.loads(row["health"])["seq"] == 41


async def test_the_ingest_command_runs_until_sigterm_then_commits_and_exits(broker, console_db):
    db = console_db
    identity = broker.identity("console")
    command = [
        str(Path(sys.executable).parent / "borderlane-console"),
        "ingest",
        "--db",
        str(db),
        "--broker",
        f"{broker.host}:{broker.service_port}",
        "--cafile",
        str(broker.ca.cert_path),
        "--cert",
        str(identity.cert_path),
        "--key",
        str(identity.key_path),
        "--group",
        named("cli-i13"),
        "--client-id",
        named("test-cli-i13"),
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        records = [crossing("kiosk-i13", seq) for seq in range(1, 4)]
        async with Kiosk(broker, "kiosk-i13") as kiosk:
            lines = []
            async with asyncio.timeout(10):
                while not any("connected to" in line for line in lines):
                    lines.append(await asyncio.to_thread(process.stderr.readline))
            for record in records:
                await kiosk.publish("crossings", record)
            await kiosk.wait_acked(r["id"] for r in records)
        assert all(ack["device_id"] == "console" for ack in kiosk.acks)  # the certificate's CN
        os.kill(process.pid, signal.SIGTERM)
        _, rest = await asyncio.to_thread(process.communicate, timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, rest
    assert re.search(r"ingest stopped: \d+ messages, 3 stored", rest), rest
    assert rows(db, "SELECT count(*) AS n FROM crossings")[0]["n"] == 3
