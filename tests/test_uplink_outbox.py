"""The durable outbox: one transaction with the lane's state, persistent counters, disk budget,
and no committed record lost to kill -9."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mqtt_schemas
from edge.uplink import (
    OutboxError,
    OutboxFull,
    OutboxLimits,
    StaticClock,
    canonical_json,
)
from edge.uplink.outbox import RECORD_OVERHEAD, Outbox
from harness.uplink import crossing_body, spawn
from mqtt_schemas.envelope import Uuid7Generator, uuid7_time_ms
from mqtt_schemas.envelope import uuid7_generator as uuid7

DEVICE = "kiosk-bz-se-01"


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "kiosk.db", DEVICE, StaticClock(synced=False, source="rtc"))
    box.db.execute("CREATE TABLE lane (id INTEGER PRIMARY KEY, state TEXT, crossing TEXT)")
    box.db.execute("INSERT INTO lane VALUES (1, 'idle', NULL)")
    yield box
    box.close()


def lane_state(box: Outbox) -> tuple:
    return box.db.execute("SELECT state, crossing FROM lane WHERE id = 1").fetchone()


def test_uuid7_has_version_variant_time_and_sorts_in_creation_order():
    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(5000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids, key=lambda i: i.bytes)
    assert len(set(ids)) == len(ids)
    assert before <= uuid7_time_ms(ids[0]) <= uuid7_time_ms(ids[-1]) <= time.time_ns() // 1e6


def test_uuid7_keeps_order_over_a_small_clock_step_back_and_follows_a_large_one():
    make = Uuid7Generator()
    t0 = 1_795_000_000_000 * 1_000_000
    first = make(t0)
    stepped = make(t0 - 2_000 * 1_000_000)  # NTP steps back 2 s: order kept
    assert stepped.bytes > first.bytes and uuid7_time_ms(stepped) == uuid7_time_ms(first)
    corrected = make(t0 - 86_400_000 * 1_000_000)  # the clock was a day ahead: follow it
    assert uuid7_time_ms(corrected) == uuid7_time_ms(first) - 86_400_000
    same_ms = [make(t0) for _ in range(1000)]
    assert same_ms == sorted(same_ms, key=lambda i: i.bytes) and len(set(same_ms)) == 1000


def test_record_and_lane_state_commit_in_one_transaction(outbox):
    record_id = outbox.new_id()
    with outbox.transaction() as tx:
        tx.execute("UPDATE lane SET state = 'done', crossing = ? WHERE id = 1", [record_id])
        record = tx.enqueue("crossings", crossing_body(), id=record_id)
    assert lane_state(outbox) == ("done", record_id)
    assert [r.id for r in outbox.pending(0, 10)] == [record_id]
    payload = json.loads(record.payload)
    mqtt_schemas.validate("crossing", payload)
    assert payload["schema"] == "crossing@1"
    assert payload["device_id"] == DEVICE
    assert payload["clock"] == {"synced": False, "source": "rtc"}
    assert payload["time"].endswith("Z")
    assert record.payload == canonical_json(payload)  # stored as the bytes to publish


def test_query_reads_committed_state_and_the_open_transactions_own(outbox):
    with outbox.transaction() as tx:
        tx.execute("UPDATE lane SET state = 'busy' WHERE id = 1")
        assert outbox.query("SELECT state FROM lane") == [("busy",)]  # its own change
        assert outbox.db.execute("SELECT state FROM lane").fetchall() == [("idle",)]
    assert outbox.query("SELECT state FROM lane WHERE id = ?", [1]) == [("busy",)]


def test_an_exception_in_the_lane_rolls_back_state_and_record(outbox):
    with pytest.raises(RuntimeError), outbox.transaction() as tx:
        tx.execute("UPDATE lane SET state = 'done' WHERE id = 1")
        tx.enqueue("crossings", crossing_body())
        raise RuntimeError("the lane crashed before showing the result")
    assert lane_state(outbox) == ("idle", None)
    assert outbox.pending(0, 10) == []
    assert outbox.stats().depth == 0


def test_an_invalid_record_is_refused_and_nothing_commits(outbox):
    body = crossing_body()
    body["direction"] = "sideways"
    with pytest.raises(mqtt_schemas.PayloadError) as refused, outbox.transaction() as tx:
        tx.execute("UPDATE lane SET state = 'done' WHERE id = 1")
        tx.enqueue("crossings", body)
    assert refused.value.path == "/direction"
    assert lane_state(outbox) == ("idle", None)
    assert outbox.counters()["seq"] == 0


def test_the_outbox_fills_in_the_envelope_and_takes_records_only(outbox):
    with pytest.raises(OutboxError, match="remove seq"):
        outbox.enqueue("crossings", {**crossing_body(), "seq": 5})
    with pytest.raises(OutboxError, match="not a record channel"):
        outbox.enqueue("health", crossing_body())
    nested = pytest.raises(OutboxError, match="do not nest")
    with outbox.transaction(), nested, outbox.transaction():
        pass


def test_seq_is_persistent_monotonic_and_never_reused(tmp_path):
    path = tmp_path / "kiosk.db"
    with Outbox(path, DEVICE, StaticClock()) as box:
        seqs = [box.enqueue("crossings", crossing_body()).seq for _ in range(3)]
        box.purge([r.id for r in box.pending(0, 10)])  # purging frees no seq
        assert box.next_session() == 1
    assert seqs == [1, 2, 3]
    with Outbox(path, DEVICE, StaticClock()) as box:
        assert box.enqueue("crossings", crossing_body()).seq == 4
        assert box.next_session() == 2
        box.advance_counters(seq=1000, session=40)  # after restoring an old backup
        assert box.enqueue("crossings", crossing_body()).seq == 1001
        assert box.next_session() == 41
        assert box.counters() == {"seq": 1001, "session": 41}


def test_non_record_envelopes_share_the_seq_counter(outbox):
    first = outbox.enqueue("crossings", crossing_body()).seq
    availability = outbox.envelope(
        "availability", {"state": "online", "session": 1, "agent_version": "1.0.0"}
    )
    mqtt_schemas.validate("availability", availability)
    assert availability["seq"] == first + 1
    with pytest.raises(mqtt_schemas.PayloadError):
        outbox.envelope("availability", {"state": "online"})
    assert outbox.enqueue("crossings", crossing_body()).seq == first + 2  # no seq consumed


def test_pending_is_in_seq_order_and_purge_deletes_only_named_ids(outbox):
    records = [outbox.enqueue("crossings", crossing_body(n)) for n in range(10)]
    assert [r.seq for r in outbox.pending(0, 100)] == [r.seq for r in records]
    assert [r.seq for r in outbox.pending(3, 2)] == [4, 5]
    assert [r.seq for r in outbox.pending(3, 100, up_to_seq=6)] == [4, 5, 6]
    acked = [records[1].id, records[5].id, str(uuid.uuid4())]
    assert outbox.purge(acked) == 2
    assert outbox.purge(acked) == 0  # acking twice is harmless
    assert [r.id for r in outbox.pending(0, 100)] == [r.id for r in records if r.id not in acked]
    assert outbox.stats().depth == 8
    assert outbox.last_seq() == records[-1].seq


def test_budget_full_refuses_the_record_with_a_clear_error_and_keeps_the_rest(tmp_path):
    limits = OutboxLimits(max_bytes=64 * 1024, reserve_free_bytes=0, alarm_free_bytes=0)
    with Outbox(tmp_path / "k.db", DEVICE, StaticClock(), limits) as box:
        box.db.execute("CREATE TABLE lane (id INTEGER PRIMARY KEY, state TEXT)")
        box.db.execute("INSERT INTO lane VALUES (1, 'idle')")
        stored = []
        alarm_at = None
        with pytest.raises(OutboxFull) as full:
            while True:
                with box.transaction() as tx:
                    tx.execute("UPDATE lane SET state = ? WHERE id = 1", [f"s{len(stored)}"])
                    stored.append(tx.enqueue("crossings", crossing_body()).id)
                if alarm_at is None and box.stats().alarm:
                    alarm_at = box.stats().bytes
        assert full.value.reason == "budget"
        assert "refer travellers to an officer" in str(full.value)
        stats = box.stats()
        assert stats.alarm_reasons == ("budget",)
        # the alarm rose as the first record passed 80 % of the budget, well before full
        assert 0.8 * limits.max_bytes <= alarm_at < 0.8 * limits.max_bytes + 1024
        assert stats.bytes <= limits.max_bytes
        # the refused traveller's lane state rolled back; every stored record is still there
        assert box.db.execute("SELECT state FROM lane").fetchone() == (f"s{len(stored) - 1}",)
        assert [r.id for r in box.pending(0, 10_000)] == stored
        box.purge(stored[:10])  # the uplink drains: records are accepted again
        box.enqueue("crossings", crossing_body())


def test_low_disk_alarms_then_refuses(tmp_path):
    free = {"bytes": 10 << 30}
    limits = OutboxLimits(reserve_free_bytes=64 << 20, alarm_free_bytes=512 << 20)
    box = Outbox(
        tmp_path / "k.db", DEVICE, StaticClock(), limits, disk_free=lambda _: free["bytes"]
    )
    box.enqueue("crossings", crossing_body())
    assert not box.stats().alarm
    free["bytes"] = 300 << 20
    box.enqueue("crossings", crossing_body())
    assert box.stats().alarm_reasons == ("disk",)
    free["bytes"] = 60 << 20
    with pytest.raises(OutboxFull) as full:
        box.enqueue("crossings", crossing_body())
    assert full.value.reason == "disk"
    assert box.stats().depth == 2
    box.close()


def test_stats_report_age_bytes_and_depth_for_the_heartbeat(outbox):
    assert outbox.stats().to_health() == {
        "depth": 0,
        "oldest_age_s": None,
        "bytes": 0,
        "alarm": False,
    }
    record = outbox.enqueue("crossings", crossing_body())
    health = outbox.stats().to_health()
    assert health["depth"] == 1
    assert health["bytes"] == len(record.payload) + RECORD_OVERHEAD
    assert 0 <= health["oldest_age_s"] < 5


def test_database_is_wal_with_full_sync(outbox):
    connection = sqlite3.connect(outbox.path)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()
    assert outbox._connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_listeners_hear_of_commits_with_records_only(outbox):
    heard = []
    outbox.add_listener(lambda: heard.append(1))
    with outbox.transaction() as tx:
        tx.execute("UPDATE lane SET state = 'x'")
    outbox.enqueue("crossings", crossing_body())
    assert heard == [1]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(st.sampled_from(["add", "purge", "reopen"]), st.integers(0, 5)), max_size=30)
)
def test_counters_match_the_database_through_any_history(tmp_path_factory, operations):
    path = tmp_path_factory.mktemp("model") / "k.db"
    box = Outbox(path, DEVICE, StaticClock())
    model: list[str] = []
    last_seq = 0
    for operation, n in operations:
        if operation == "add":
            for _ in range(n):
                record = box.enqueue("crossings", crossing_body())
                assert record.seq > last_seq
                last_seq = record.seq
                model.append(record.id)
        elif operation == "purge":
            gone, model = model[:n], model[n:]
            box.purge(gone)
        else:
            box.close()
            box = Outbox(path, DEVICE, StaticClock())
        stats = box.stats()
        assert stats.depth == len(model)
        assert [r.id for r in box.pending(0, 1000)] == model
        size = sum(len(r.payload) + RECORD_OVERHEAD for r in box.pending(0, 1000))
        assert stats.bytes == size
    box.close()


def test_kill_9_mid_stream_loses_no_committed_record(tmp_path):
    path = tmp_path / "kiosk.db"
    committed: list[str] = []
    for kill_after in (150, 300, 50):  # three crashes, each at a different point
        writer = spawn("writer", str(path), DEVICE, "100000")
        this_run = 0
        try:
            for line in writer.stdout:
                committed.append(line.strip())
                this_run += 1
                if this_run == kill_after:
                    writer.send_signal(signal.SIGKILL)  # the next commit is under way
                    break
        finally:
            writer.kill()
            writer.wait()
            # lines the writer printed before the signal landed: committed records too
            committed += [line.strip() for line in writer.stdout if line.endswith("\n")]
            writer.stdout.close()
            writer.stderr.close()
        assert this_run == kill_after, "the writer did not get going"

        with Outbox(path, DEVICE, StaticClock()) as box:
            assert box.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            records = box.pending(0, 1_000_000)
            ids = [r.id for r in records]
            # every committed record is there, in order; at most the one being committed as
            # the writer died is there too, and was never reported
            assert set(committed) <= set(ids)
            assert len(ids) - len(committed) <= 1
            committed = ids
            # no half-written record; the lane's state moved in step with the outbox
            for record in records:
                mqtt_schemas.validate("crossing", json.loads(record.payload))
            assert [r.seq for r in records] == list(range(1, len(records) + 1))
            (crossings,) = box.db.execute("SELECT crossings FROM lane_state").fetchone()
            assert crossings == len(records)
    assert len(committed) >= 500
