"""The console's store without a broker: classification, idempotent storage, quarantine, the
stale-will rule, heartbeats, ack payloads and the paho speed-up."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties

import mqtt_schemas
from console import acks
from console.ingest import paho_speedups
from console.records import (
    Availability,
    Cleared,
    Health,
    Quarantined,
    Record,
    classify,
)
from console.store import Store, open_database
from harness.console import availability, crossing, health, rows
from mqtt_schemas import topics

NOW = "2026-11-24T10:00:00.000Z"


def message(device_id: str, channel: str, payload: dict | bytes) -> tuple[str, bytes]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return topics.device_topic(device_id, channel), raw


def items(*messages: tuple[str, bytes]):
    return [classify(topic, raw) for topic, raw in messages]


@pytest.fixture
def store(console_db):
    """A store on a new database: every test that takes it runs on SQLite and PostgreSQL."""
    opened = Store.open(console_db)
    yield opened
    opened.close()


def query(store: Store, sql: str, *params) -> list[tuple]:
    return rows(store.engine, sql, *params)


def count(store: Store, table: str) -> int:
    return query(store, f"SELECT count(*) FROM {table}")[0][0]


# -- classification ------------------------------------------------------------------------


def test_a_valid_crossing_is_a_record_kept_as_received():
    payload = crossing("kiosk-s1", 1)
    topic, raw = message("kiosk-s1", "crossings", payload)
    item = classify(topic, raw)
    assert isinstance(item, Record)
    assert (item.channel, item.id, item.device_id, item.text) == (
        "crossings",
        payload["id"],
        "kiosk-s1",
        raw.decode(),
    )


@pytest.mark.parametrize(
    ("raw", "reason", "path"),
    [
        (b"\xff\xfe", "not UTF-8", ""),
        (b"[1, 2", "not JSON", ""),
        (b"[]", "expected a JSON object", ""),
    ],
)
def test_unreadable_payloads_are_quarantined_with_the_reason(raw, reason, path):
    item = classify(topics.device_topic("kiosk-s1", "crossings"), raw)
    assert isinstance(item, Quarantined)
    assert reason in item.reason and item.path == path
    assert (item.device_id, item.record_id, item.is_record, item.raw) == (
        "kiosk-s1",
        None,
        True,
        raw,
    )


def test_every_invalid_example_of_the_contract_is_quarantined_at_its_path():
    for channel, name in (
        ("crossings", "crossing"),
        ("hits", "screening-hit"),
        ("decisions", "officer-decision"),
        ("availability", "availability"),
        ("health", "health"),
        ("command-results", "command-result"),
    ):
        for example in mqtt_schemas.examples(name)["invalid"]:
            payload = example["payload"]
            device = payload.get("device_id") if isinstance(payload, dict) else None
            device = device if isinstance(device, str) and "/" not in device else "kiosk-x"
            item = classify(*message(device, channel, payload))
            assert isinstance(item, Quarantined), example["why"]
            assert item.path == example["path"], example["why"]


def test_a_payload_naming_another_device_is_quarantined_at_device_id():
    item = classify(*message("kiosk-a", "crossings", crossing("kiosk-b", 1)))
    assert isinstance(item, Quarantined)
    assert item.path == "/device_id" and item.device_id == "kiosk-a"
    assert "'kiosk-b' differs from the device id in the topic ('kiosk-a')" in item.reason


def test_topics_outside_the_ingested_channels_are_quarantined():
    outside = classify("borderlane/v1/devices/kiosk-a/nonsense", b"{}")
    console_channel = classify(topics.device_topic("kiosk-a", "acks"), b"{}")
    assert isinstance(outside, Quarantined) and outside.reason.startswith("topic:")
    assert isinstance(console_channel, Quarantined)
    assert "not a kiosk-published channel" in console_channel.reason


def test_an_empty_retained_availability_is_a_clear_not_a_quarantine():
    assert classify(topics.device_topic("kiosk-a", "availability"), b"") == Cleared(
        topics.device_topic("kiosk-a", "availability"), "kiosk-a"
    )


def test_device_messages_are_typed():
    birth = availability("kiosk-a", "online", 3, 1)
    beat = health("kiosk-a", 3, 2)
    first, second = items(
        message("kiosk-a", "availability", birth), message("kiosk-a", "health", beat)
    )
    assert isinstance(first, Availability) and (first.state, first.session) == ("online", 3)
    assert isinstance(second, Health) and (second.seq, second.session) == (2, 3)


# -- storage -------------------------------------------------------------------------------


def test_records_are_stored_once_and_acked_every_time(store):
    records = [crossing("kiosk-s2", seq) for seq in range(1, 4)]
    batch = items(*(message("kiosk-s2", "crossings", r) for r in records))
    first = store.apply(batch, "console-1", NOW)
    again = store.apply(batch + batch[:1], "console-1", NOW)
    assert (first.stored, first.duplicates) == (3, 0)
    assert (again.stored, again.duplicates) == (0, 4)
    for outcome in (first, again):
        assert list(outcome.acks["kiosk-s2"].acked) == [r["id"] for r in records]
        assert outcome.acks["kiosk-s2"].rejected == {}
    assert count(store, "crossings") == 3


def test_a_republished_record_reserialised_by_the_kiosk_is_still_a_duplicate(store):
    record = crossing("kiosk-s3", 1)
    store.apply(items(message("kiosk-s3", "crossings", record)), "console-1", NOW)
    pretty = json.dumps(record, indent=2, sort_keys=True).encode()
    outcome = store.apply(items(message("kiosk-s3", "crossings", pretty)), "console-1", NOW)
    assert (outcome.duplicates, outcome.quarantined) == (1, 0)


def test_an_id_stored_with_other_content_is_quarantined_and_rejected(store):
    record = crossing("kiosk-s4", 1)
    store.apply(items(message("kiosk-s4", "crossings", record)), "console-1", NOW)
    changed = {**record, "lane": "lane-7"}
    outcome = store.apply(items(message("kiosk-s4", "crossings", changed)), "console-1", NOW)
    assert outcome.quarantined == 1
    assert (
        "already stored with different content" in outcome.acks["kiosk-s4"].rejected[record["id"]]
    )
    assert query(store, "SELECT lane FROM crossings") == [(record["lane"],)]


def test_an_id_twice_in_one_batch_is_settled_against_what_is_kept(store):
    record = crossing("kiosk-s4b", 1)
    changed = {**record, "lane": "lane-7"}
    first = store.apply(
        items(
            message("kiosk-s4b", "crossings", record),
            message("kiosk-s4b", "crossings", record),  # republished while the first was queued
            message("kiosk-s4b", "crossings", changed),
        ),
        "console-1",
        NOW,
    )
    assert (first.stored, first.duplicates, first.quarantined) == (1, 1, 1)
    # later, only the changed copy comes, twice: both compared with the stored record
    again = store.apply(
        items(
            message("kiosk-s4b", "crossings", changed),
            message("kiosk-s4b", "crossings", changed),
        ),
        "console-1",
        NOW,
    )
    assert (again.stored, again.duplicates, again.quarantined) == (0, 0, 2)
    assert query(store, "SELECT lane FROM crossings") == [(record["lane"],)]


def test_the_same_quarantined_message_twice_is_one_row_counted_twice(store):
    bad = message("kiosk-s5", "crossings", b"{oops")
    store.apply(items(bad), "console-1", NOW)
    store.apply(items(bad), "console-1", "2026-11-24T10:00:05.000Z")
    found = query(store, "SELECT times, received_at, last_received_at FROM quarantine")
    assert found == [(2, NOW, "2026-11-24T10:00:05.000Z")]


def test_hits_and_decisions_are_stored_before_their_crossing(store):
    hit = mqtt_schemas.examples("screening-hit")["valid"][0]["payload"]
    decision = mqtt_schemas.examples("officer-decision")["valid"][0]["payload"]
    outcome = store.apply(
        items(
            message(hit["device_id"], "hits", hit),
            message(decision["device_id"], "decisions", decision),
        ),
        "console-1",
        NOW,
    )
    assert outcome.stored == 2
    assert query(store, "SELECT crossing_id FROM hits") == [(hit["crossing_id"],)]
    assert query(store, "SELECT officer_id FROM decisions") == [("BDF-2231",)]


def test_ack_sequence_numbers_are_reserved_in_the_commit_and_survive_a_restart(console_db):
    path = console_db
    first = Store.open(path)
    a = first.apply(items(message("k1", "crossings", crossing("k1", 1))), "console-1", NOW)
    first.close()
    second = Store.open(path)
    b = second.apply(
        items(
            message("k1", "crossings", crossing("k1", 2)),
            message("k2", "crossings", crossing("k2", 1)),
        ),
        "console-1",
        NOW,
    )
    second.close()
    assert (list(a.ack_seqs), list(b.ack_seqs)) == ([1], [2, 3])


# -- availability and health ---------------------------------------------------------------


def device(store: Store, device_id: str) -> tuple:
    (found,) = query(
        store, "SELECT state, session, offline_reason FROM devices WHERE device_id = ?", device_id
    )
    return found


def test_a_birth_always_wins_and_a_stale_offline_is_logged_not_applied(store):
    d = "kiosk-s6"
    for payload in (
        availability(d, "online", 5, 1),
        availability(d, "online", 6, 2),
        availability(d, "offline", 5, 3, "connection-lost"),  # the will of session 5, late
    ):
        store.apply(items(message(d, "availability", payload)), "console-1", NOW)
    assert device(store, d) == ("online", 6, None)
    applied = query(store, "SELECT state, session, applied FROM availability_log")
    assert sorted(applied) == [("offline", 5, 0), ("online", 5, 1), ("online", 6, 1)]
    # a birth with a lower session (the kiosk's storage was replaced) still wins
    store.apply(items(message(d, "availability", availability(d, "online", 1, 4))), "c", NOW)
    assert device(store, d) == ("online", 1, None)
    store.apply(
        items(message(d, "availability", availability(d, "offline", 1, 5, "shutdown"))), "c", NOW
    )
    assert device(store, d) == ("offline", 1, "shutdown")


def test_an_availability_message_seen_twice_is_applied_once(store):
    d = "kiosk-s7"
    will = availability(d, "offline", 8, 1, "connection-lost")
    birth = availability(d, "online", 9, 2)
    # a second worker replays the will after the birth was applied: ignored by id
    store.apply(
        items(message(d, "availability", will), message(d, "availability", birth)), "c", NOW
    )
    store.apply(items(message(d, "availability", will)), "c", NOW)
    assert device(store, d) == ("online", 9, None)


def test_heartbeats_keep_the_latest_of_a_session_and_revive_a_newer_session(store):
    d = "kiosk-s8"
    store.apply(
        items(message(d, "availability", availability(d, "offline", 2, 1, "shutdown"))), "c", NOW
    )
    store.apply(items(message(d, "health", health(d, 3, 11))), "c", NOW)
    store.apply(items(message(d, "health", health(d, 3, 10))), "c", NOW)
    assert query(store, "SELECT state, session, health_seq FROM devices") == [("online", 3, 11)]
    store.apply(items(message(d, "health", health(d, 1, 2))), "c", NOW)  # counters restarted
    assert query(store, "SELECT state, session, health_seq FROM devices") == [("online", 3, 2)]


def test_readonly_connections_refuse_what_is_not_a_console_database(tmp_path):
    from console.store import StoreError

    with pytest.raises(StoreError, match="no console database"):
        open_database(tmp_path / "missing.db", readonly=True)
    (tmp_path / "other.db").write_bytes(b"")
    with pytest.raises(StoreError, match="not a console database"):
        open_database(tmp_path / "other.db", readonly=True)


def _open_at_once(path: str, ready, failures) -> None:
    ready.wait()
    try:
        open_database(path).dispose()
    except Exception as exc:  # reported to the test, which names it
        failures.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_workers_starting_together_all_open_a_fresh_database(backend, tmp_path, request):
    """Ingest workers, the watchlist server and the CLI may start at the same moment on a new
    database: each must get it with its schema made once, none 'database is locked' (SQLite)
    or 'relation already exists' (PostgreSQL)."""
    context = multiprocessing.get_context("fork")
    failures = context.Queue()
    for attempt in range(8):
        if backend == "sqlite":
            path = str(tmp_path / f"console-{attempt}.db")
        else:
            server = request.getfixturevalue("postgres_server")
            path = server.create_database(f"together_{attempt}_{os.getpid()}")
        ready = context.Barrier(4)
        workers = [
            context.Process(target=_open_at_once, args=(path, ready, failures)) for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0] * 4
    assert failures.empty(), failures.get()


# -- ack payloads --------------------------------------------------------------------------


def test_acks_are_valid_payloads_of_at_most_1000_ids_with_the_rejections_in_their_chunk():
    settled = acks.DeviceAcks()
    ids = [crossing("k", n)["id"] for n in range(2500)]
    for record_id in ids:
        settled.ack(record_id)
    settled.reject(ids[1500], "crossing@1: /site: required field is missing")
    built = acks.build("console-1", {"kiosk-q": settled}, range(10, 13))
    payloads = [json.loads(body) for _, body in built]
    assert [t for t, _ in built] == [topics.device_topic("kiosk-q", "acks")] * 3
    assert [len(p["acked"]) for p in payloads] == [1000, 1000, 500]
    assert [p["seq"] for p in payloads] == [10, 11, 12]
    assert [len(p.get("rejected", [])) for p in payloads] == [0, 1, 0]
    for payload in payloads:
        mqtt_schemas.validate("ack", payload)
    assert acks.payload_count({"kiosk-q": settled}) == 3


# -- paho speed-up -------------------------------------------------------------------------


def test_the_paho_speedup_keeps_properties_behaviour():
    assert paho_speedups.install()
    sent = Properties(PacketTypes.PUBLISH)
    sent.MessageExpiryInterval = 30
    sent.UserProperty = ("a", "1")
    sent.UserProperty = ("b", "2")
    received = Properties(PacketTypes.PUBLISH)
    received.unpack(sent.pack())
    assert received.json() == {
        "MessageExpiryInterval": 30,
        "UserProperty": [("a", "1"), ("b", "2")],
    }
    received.clear()
    assert received.isEmpty()
    with pytest.raises(MQTTException):
        received.SessionExpiryInterval = 5  # not a PUBLISH property: still refused
    with pytest.raises(MQTTException):
        received.Nonsense = 1
    assert Properties(PacketTypes.CONNECT).packetType == PacketTypes.CONNECT


def test_both_backends_store_the_same_rows(tmp_path, postgres_url):
    """PostgreSQL's insert is its own statement (unnest of binary arrays, for speed); what it
    stores must be exactly what SQLite stores, column by column."""
    batch = [
        message(payload["device_id"], channel, payload)
        for name, channel in (
            ("crossing", "crossings"),
            ("screening-hit", "hits"),
            ("officer-decision", "decisions"),
        )
        for payload in (example["payload"] for example in mqtt_schemas.examples(name)["valid"])
    ]
    stored = []
    for target in (str(tmp_path / "console.db"), postgres_url):
        store = Store.open(target)
        try:
            assert store.apply(items(*batch), "console-1", NOW).stored == len(batch)
            stored.append(
                {
                    table: query(store, f"SELECT * FROM {table} ORDER BY id")
                    for table in ("crossings", "hits", "decisions")
                }
            )
        finally:
            store.close()
    assert stored[0] == stored[1]
    assert sum(len(found) for found in stored[0].values()) == len(batch)


def test_the_counts_rollup_is_exactly_the_stored_crossings(store):
    """Statistics read ``crossing_counts``, kept by the writer: a redelivered crossing, a
    conflicting one and a quarantined one must not count."""
    first = [
        crossing("kiosk-r1", n, direction=("entry" if n % 2 else "exit"), site=site)
        for n, site in enumerate(["bz-santa-elena"] * 5 + ["bz-benque-viejo"] * 3, start=1)
    ]
    batch = [message(c["device_id"], "crossings", c) for c in first]
    store.apply(items(*batch), "console-1", NOW)
    store.apply(items(*batch[:3]), "console-1", NOW)  # republished: not counted again
    changed = {**first[0], "direction": "exit"}  # same id, other content: quarantined
    store.apply(items(message("kiosk-r1", "crossings", changed)), "console-1", NOW)
    counted = query(
        store,
        "SELECT site, day, direction, outcome, count(*) FROM crossings "
        "GROUP BY site, day, direction, outcome ORDER BY site, day, direction, outcome",
    )
    rollup = query(
        store,
        "SELECT site, day, direction, outcome, count FROM crossing_counts "
        "ORDER BY site, day, direction, outcome",
    )
    assert rollup == counted and sum(row[4] for row in rollup) == 8
