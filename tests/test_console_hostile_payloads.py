"""One kiosk must not be able to stop ingest for all.

A kiosk publishes whatever bytes it likes on its own topics; the broker's ACL only confines it
to them. Before, one message could crash the ingest worker: Python's ``json`` reads more than
JSON (``NaN``, ``1e999``), refuses some JSON (an integer of more than 4,300 digits, 2,000
nested brackets) with exceptions other than a decode error, and lets a ``\\ud800`` escape make a
string no encoder accepts. The worker died before acknowledging the message, the broker handed
it back at every restart, and nothing was stored for any kiosk.

What these tests hold:

* :func:`console.records.classify` is total: any bytes on any topic give an item, never an
  exception; a payload the console cannot accept is quarantined with a reason that is one line,
  bounded, storable as text, and shows no value from the payload (values may be personal data);
* every such quarantine item can be stored, on SQLite and PostgreSQL, and the acks built from it
  are valid ``ack@1`` payloads (a kiosk drops an invalid ack whole);
* the worker on the real broker stores every valid crossing of a kiosk that interleaves them
  with hostile payloads, quarantines each hostile one, keeps running, and tells the kiosk;
* a message the console itself fails on (a bug in classifying or storing) is quarantined with
  the error's type, and the rest of its batch is committed: no lost messages, no endless retry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import console.ingest.worker as worker_module
import mqtt_schemas
from console import acks, records
from console.records import REASON_LIMIT, Item, Quarantined, Record, classify
from console.store import Store
from harness.console import Kiosk, crossing, rows, running_worker, wait_for_rows
from mqtt_schemas import topics

DEVICE = "kiosk-h0"
TOPIC = topics.device_topic(DEVICE, "crossings")
NOW = "2026-11-24T10:00:00.000Z"


def text_with(payload: dict[str, Any], old: str, new: str) -> bytes:
    """*payload* as JSON text with one token replaced: for what ``json.dumps`` will not write."""
    text = json.dumps(payload)
    assert text.count(old) == 1, old
    return text.replace(old, new).encode()


def nested(depth: int, opening: str = "[", inner: str = "", closing: str = "]") -> str:
    return opening * depth + inner + closing * depth


def assert_well_formed(item: Quarantined) -> None:
    """A reason and path fit an ack (one line, at most 500 characters) and every text field
    goes into SQLite and PostgreSQL text as it is (UTF-8, no NUL)."""
    assert "\n" not in item.reason and "\r" not in item.reason and item.reason.isprintable()
    assert 0 < len(item.reason) <= REASON_LIMIT
    assert item.path is None or len(item.path) <= REASON_LIMIT
    for text in (item.topic, item.reason, item.path or ""):
        assert "\x00" not in text
        text.encode("utf-8")  # raises on a lone surrogate


# -- classify is total ---------------------------------------------------------------------

HOSTILE: list[tuple[str, Any, str, bool]] = [
    # (case, payload bytes or a function of a valid crossing, reason contains, id usable)
    ("surrogate escape in a value", lambda c: {**c, "site": "\ud800"}, "lone surrogate", True),
    ("surrogate escape in a key", lambda c: {**c, "\udfff": 1}, "lone surrogate", True),
    ("surrogate escape in the id", lambda c: {**c, "id": "\ud800" + c["id"]}, "surrogate", False),
    ("2,000 nested arrays", nested(2000).encode(), "nested too deeply", False),
    ("2,000 nested objects", nested(2000, '{"a":', "1", "}").encode(), "nested too deep", False),
    (
        "2,000 nested arrays in a field",
        lambda c: text_with(c, '"latency_ms": 842', f'"latency_ms": {nested(2000)}'),
        "nested too deeply",
        False,
    ),
    (
        "300 nested arrays in a field (JSON reads it, the validator will not)",
        lambda c: text_with(c, '"latency_ms": 842', f'"latency_ms": {nested(300)}'),
        "301 levels deep, too deep to validate",
        True,
    ),
    (
        "a 5,000-digit integer",
        lambda c: text_with(c, f'"seq": {c["seq"]}', '"seq": ' + "9" * 5000),
        "an integer of more than 4300 digits",
        True,
    ),
    ("NaN", lambda c: {**c, "latency_ms": float("nan")}, "NaN is not a JSON number", True),
    ("Infinity", lambda c: {**c, "latency_ms": float("inf")}, "Infinity is not a JSON", True),
    ("-Infinity", lambda c: {**c, "latency_ms": -float("inf")}, "-Infinity is not a JSON", True),
    (
        "a number beyond a double",
        lambda c: text_with(c, '"latency_ms": 842', '"latency_ms": 1e999'),
        "beyond the range of a double",
        True,
    ),
    ("a 256 kB string", lambda c: {**c, "site": "x" * 262_144}, "/site: the value does", True),
    ("a 256 kB key", lambda c: {**c, "k" * 262_144: 1}, "unexpected field", True),
    (
        "a schema tag of 5,000 digits",
        lambda c: {**c, "schema": "crossing@" + "9" * 5000},
        "cannot be validated (ValueError)",
        True,
    ),
    ("empty", b"", "not JSON", False),
    ("not UTF-8", b'{"id": "\xed\xa0\x80"}', "not UTF-8", False),  # a surrogate, UTF-8-encoded
]


@pytest.mark.parametrize(
    ("payload", "reason", "id_usable"),
    [pytest.param(p, r, i, id=case) for case, p, r, i in HOSTILE],
)
def test_a_hostile_payload_is_quarantined_with_a_reason_and_never_raises(
    payload: Any, reason: str, id_usable: bool
) -> None:
    record = crossing(DEVICE, 1)
    raw = payload if isinstance(payload, bytes) else payload(record)
    raw = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    item = classify(TOPIC, raw)
    assert isinstance(item, Quarantined)
    assert reason in item.reason
    assert_well_formed(item)
    assert (item.device_id, item.is_record, item.raw) == (DEVICE, True, raw)
    # With a usable id, the kiosk is told (under ``rejected``) and may purge its copy.
    assert item.record_id == (record["id"] if id_usable else None)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (("document", "number"), "SECRET<0318842", "the value does not match '^[A-Z0-9]{1,24}$'"),
        (("document", "number"), 318842771, 'the value is not of type "string"'),
        (("direction",), "Maria Secreta", 'the value is not one of "entry" or "exit"'),
        (("document", "birth_year"), 3084, "the value is greater than the maximum of 2200"),
        (("checks",), [{"name": "face-match", "result": "pass", "detail": "S" * 600}], "value"),
    ],
    ids=["pattern", "type", "enum", "maximum", "too long to show"],
)
def test_a_reason_names_the_field_and_rule_but_never_the_value(
    field: tuple[str, ...], value: Any, reason: str
) -> None:
    payload = crossing(DEVICE, 1)
    parent = payload
    for key in field[:-1]:
        parent = parent[key]
    parent[field[-1]] = value
    item = classify(TOPIC, json.dumps(payload).encode())
    assert isinstance(item, Quarantined)
    assert reason in item.reason
    assert item.reason.startswith("crossing@1: /" + field[0])
    shown = value if isinstance(value, str) else json.dumps(value)
    for piece in (str(shown)[:6], "SECRET", "Secreta", "SSSSSS"):
        assert piece not in item.reason, item.reason


def test_an_escaped_surrogate_pair_is_text_and_the_record_is_stored_as_sent() -> None:
    payload = crossing(DEVICE, 1)
    payload["checks"][0]["detail"] = "read on the second tap \U0001f642"
    raw = json.dumps(payload).encode()  # ensure_ascii: the emoji goes as "\ud83d\ude42"
    assert b"\\ud83d\\ude42" in raw
    item = classify(TOPIC, raw)
    assert isinstance(item, Record) and item.text == raw.decode()


def test_a_record_id_with_a_trailing_newline_is_not_usable() -> None:
    # re's "$" matches before a final newline: such an id in an ack would make the kiosk drop
    # the whole ack, valid ids included.
    payload = crossing(DEVICE, 1)
    payload["id"] += "\n"
    item = classify(TOPIC, json.dumps(payload).encode())
    assert isinstance(item, Quarantined) and item.record_id is None


@pytest.mark.parametrize(
    "topic",
    [
        "borderlane/v1/devices/kiosk-h0/\ud800",
        "borderlane/v1/devices/\udcff/crossings",
        "borderlane/v1/devices/kiosk-h0/crossings\x00",
        "borderlane/v1/devices/kiosk\nh0/crossings",
        "borderlane/v1/" + "x/" * 30_000,
        "\ud800",
        "",
    ],
    ids=["surrogate channel", "surrogate device", "NUL", "newline", "64 kB", "alone", "empty"],
)
def test_any_topic_gives_a_quarantine_item_that_can_be_stored(topic: str) -> None:
    item = classify(topic, b"{}")
    assert isinstance(item, Quarantined)
    assert item.reason.startswith("topic:")
    assert_well_formed(item)


def test_the_console_failing_on_a_message_is_quarantined_without_telling_the_kiosk() -> None:
    item = records.internal_error(
        TOPIC + "\ud800", b"\x00\xff", "storing", KeyError("SECRET"), "0" * 8
    )
    assert item.reason == "internal error storing: KeyError"
    assert item.is_record is False  # the kiosk keeps the record and republishes it
    assert_well_formed(item)


topic_strings = st.one_of(
    st.just(TOPIC),
    st.sampled_from(
        [topics.device_topic(DEVICE, c.name) for c in topics.CHANNELS if c.scope == "device"]
    ),
    # any code points, lone surrogates and NUL included (st.text() leaves surrogates out)
    st.lists(st.integers(0, 0x10FFFF), max_size=80).map(lambda cs: "".join(map(chr, cs))),
    st.text(max_size=40).map(lambda tail: f"borderlane/v1/devices/{DEVICE}/{tail}"),
)


@settings(max_examples=400, deadline=None)
@given(topic=topic_strings, raw=st.binary(max_size=2048))
def test_any_bytes_on_any_topic_give_an_item(topic: str, raw: bytes) -> None:
    item = classify(topic, raw)
    assert isinstance(item, Item)
    if isinstance(item, Quarantined):
        assert_well_formed(item)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: json.dumps writes them as NaN, Infinity
    | st.lists(st.integers(0, 0x10FFFF), max_size=20).map(lambda cs: "".join(map(chr, cs))),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(
    path=st.sampled_from(["site", "seq", "id", "document", "checks", "clock"]), value=json_values
)
def test_any_json_in_any_field_of_a_crossing_gives_an_item(path: str, value: Any) -> None:
    payload = crossing(DEVICE, 1)
    payload[path] = value
    raw = json.dumps(payload).encode()
    item = classify(TOPIC, raw)
    assert isinstance(item, Record | Quarantined)
    if isinstance(item, Quarantined):
        assert_well_formed(item)


# -- what classify returns can be stored, and acked -----------------------------------------


@pytest.fixture
def store(console_db):
    """A store on a new database: the tests that take it run on SQLite and PostgreSQL."""
    opened = Store.open(console_db)
    yield opened
    opened.close()


def test_every_hostile_item_is_stored_in_quarantine_and_the_acks_are_valid(store) -> None:
    record = crossing(DEVICE, 1)
    items: list[Item] = []
    for _, payload, _, _ in HOSTILE:
        raw = payload if isinstance(payload, bytes) else payload(record)
        items.append(classify(TOPIC, raw if isinstance(raw, bytes) else json.dumps(raw).encode()))
    odd_topics = ["borderlane/v1/devices/kiosk-h0/\ud800", "borderlane/v1/\x00/crossings"]
    items += [classify(topic, b"\x00") for topic in odd_topics]
    items.append(records.internal_error(odd_topics[0], b"\xff", "storing", KeyError(), None))
    valid = crossing(DEVICE, 2)
    items.append(classify(TOPIC, json.dumps(valid).encode()))

    outcome = store.apply(items, "console-1", NOW)

    quarantined = len(items) - 1
    assert (outcome.stored, outcome.quarantined) == (1, quarantined)
    stored = rows(store.engine, "SELECT topic, reason, payload FROM quarantine ORDER BY id")
    assert len(stored) == quarantined
    assert {bytes(row["payload"]) for row in stored} == {
        item.raw for item in items if isinstance(item, Quarantined)
    }
    # One ack for the kiosk: the valid record, and the rejected ones with usable ids.
    (ack_topic, body), *more = acks.build("console-1", outcome.acks, outcome.ack_seqs)
    ack = json.loads(body)
    mqtt_schemas.validate("ack", ack)
    assert (ack_topic, more) == (topics.device_topic(DEVICE, "acks"), [])
    assert ack["acked"] == [record["id"], valid["id"]]
    assert [r["id"] for r in ack["rejected"]] == [record["id"]]


# -- the worker on the real broker ---------------------------------------------------------


def _hostile_wire_payloads(device: str) -> list[tuple[str, bytes, str | None]]:
    """(what, bytes, record id the kiosk should see rejected) as a hostile kiosk sends them."""

    def record() -> dict[str, Any]:
        return crossing(device, 1000)

    with_surrogate = {**record(), "site": "\ud800"}
    with_big_int = record()
    with_nan = {**record(), "latency_ms": float("nan")}
    with_long_string = {**record(), "site": "s" * 262_144}
    return [
        ("surrogate escape", json.dumps(with_surrogate).encode(), with_surrogate["id"]),
        ("2,000 nested brackets", nested(2000).encode(), None),
        (
            "5,000-digit integer",
            text_with(with_big_int, '"seq": 1000', '"seq": ' + "7" * 5000),
            with_big_int["id"],
        ),
        ("NaN", json.dumps(with_nan).encode(), with_nan["id"]),
        ("random bytes", random.Random(20261124).randbytes(1024), None),
        ("256 kB string", json.dumps(with_long_string).encode(), with_long_string["id"]),
        ("empty", b"", None),
    ]


@pytest.mark.asyncio
async def test_a_kiosk_sending_hostile_payloads_between_valid_ones_stops_nothing(
    broker, console_db
) -> None:
    device = "kiosk-h1"
    hostile = _hostile_wire_payloads(device)
    valid = [crossing(device, seq) for seq in range(1, len(hostile) + 2)]
    async with running_worker(broker, console_db) as worker, Kiosk(broker, device) as kiosk:
        await kiosk.publish("crossings", valid[0])
        for record, (_, raw, _) in zip(valid[1:], hostile, strict=True):
            await kiosk.publish("crossings", raw)
            await kiosk.publish("crossings", record)
        rejected = {rid for _, _, rid in hostile if rid}
        await kiosk.wait_acked({r["id"] for r in valid} | rejected, timeout=15)
        quarantine = await wait_for_rows(
            console_db,
            "SELECT record_id, reason, payload, times FROM quarantine WHERE device_id = ?",
            len(hostile),
            device,
            timeout=15,
        )
        await asyncio.sleep(0.3)  # a message left unacknowledged would come back by now
        # Still the first connection: the worker never stopped.
        assert worker.ready.is_set() and worker.stats.connects == 1

    stored = rows(console_db, "SELECT id FROM crossings WHERE device_id = ?", device)
    assert {row["id"] for row in stored} == {r["id"] for r in valid}
    by_payload = {bytes(row["payload"]): row for row in quarantine}
    assert set(by_payload) == {raw for _, raw, _ in hostile}
    for what, raw, record_id in hostile:
        row = by_payload[raw]
        assert row["reason"] and len(row["reason"]) <= REASON_LIMIT, what
        assert row["record_id"] == record_id, what
        assert row["times"] == 1, what  # acknowledged to the broker: never delivered again
    assert set(kiosk.rejected()) == rejected
    assert not set(kiosk.rejected()) & {r["id"] for r in valid}
    for ack in kiosk.acks:
        mqtt_schemas.validate("ack", ack)
    assert "ssssssss" not in json.dumps(kiosk.acks)  # no value of the payload came back


@pytest.mark.asyncio
async def test_a_message_the_console_fails_on_is_quarantined_and_its_batch_committed(
    broker, console_db, monkeypatch, caplog
) -> None:
    """Classify and the store do not fail on any payload we know of; this stands in for the
    next bug. Two seams, in the worker's own code (never the broker): classifying one message
    raises, and another classifies to a record the store cannot write (as a classify that
    accepted a schema version the store does not know would)."""
    device = "kiosk-h2"
    fails_classifying = crossing(device, 2, lane="lane-classify-bug")
    fails_storing = crossing(device, 4, lane="lane-store-bug")
    fails_storing["document"]["number"] = "SECRETNUMBER1"
    valid = [crossing(device, seq) for seq in (1, 3, 5)]

    def classify_with_bugs(topic: str, raw: bytes) -> Item:
        if b"lane-classify-bug" in raw:
            raise RuntimeError(f"bug, with the payload in its message: {raw!r}")
        item = records.classify(topic, raw)
        if isinstance(item, Record) and item.payload["lane"] == "lane-store-bug":
            without_decision = {k: v for k, v in item.payload.items() if k != "decision"}
            return dataclasses.replace(item, payload=without_decision)
        return item

    monkeypatch.setattr(worker_module, "classify", classify_with_bugs)
    caplog.set_level(logging.DEBUG, logger="borderlane")
    # A long batch delay, so the failing messages share a batch with the valid ones.
    async with (
        running_worker(broker, console_db, max_delay=0.5) as worker,
        Kiosk(broker, device) as kiosk,
    ):
        for payload in (valid[0], fails_classifying, valid[1], fails_storing, valid[2]):
            await kiosk.publish("crossings", payload)
        await kiosk.wait_acked(r["id"] for r in valid)
        quarantine = await wait_for_rows(
            console_db,
            "SELECT record_id, reason, times FROM quarantine WHERE device_id = ? ORDER BY reason",
            2,
            device,
        )
        await asyncio.sleep(0.3)  # a batch left unacknowledged would come back by now
        assert worker.ready.is_set() and worker.stats.connects == 1

    stored = rows(console_db, "SELECT id FROM crossings WHERE device_id = ?", device)
    assert {row["id"] for row in stored} == {r["id"] for r in valid}
    assert [tuple(row) for row in quarantine] == [
        (None, "internal error classifying: RuntimeError", 1),
        (fails_storing["id"], "internal error storing: KeyError", 1),
    ]
    # The fault is the console's: the kiosk is not told to purge, so it will republish.
    assert kiosk.rejected() == {}
    assert fails_storing["id"] not in kiosk.acked()
    assert "SECRET" not in caplog.text and "lane-classify-bug" not in caplog.text
