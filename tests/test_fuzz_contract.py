"""Issue 14: MQTT payloads from outside. Whatever arrives, the reader returns a value or raises
its one error, and the kiosk's uplink drops what it cannot read with one log line and stays up.

The uplink test runs on the real Mosquitto (TLS, client certificates, the contract ACL);
``make fuzz`` runs the same reader for minutes under a coverage-guided fuzzer (``fuzz/``).
"""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_uplink_session import open_outbox, running, until

import mqtt_schemas
from console.connection import Endpoint
from console.watchlist import CatchupResponder, WatchlistHistory
from edge.uplink import ConnectionState, Incoming
from mqtt_schemas import PayloadError, topics, validate
from mqtt_schemas.validation import JsonError, parse_json

#: The issue's values (``NaN``, nesting 100,000 deep, 5,000 digits, a lone surrogate) in a
#: field of an otherwise valid command.
HOSTILE = ["NaN", "[" * 100_000 + "]" * 100_000, "9" * 5000, '"\\ud800"']


def with_value(payload: dict, value: str) -> bytes:
    text = json.dumps(payload)
    return (text[:-1] + ', "x": ' + value + "}").encode()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_hostile_payloads_are_dropped_and_the_uplink_stays_up(
    uplink_broker, tmp_path, caplog
) -> None:
    config = uplink_broker.uplink_config("kiosk-hostile")
    outbox = open_outbox(tmp_path, config)
    received: list[Incoming] = []

    async def on_command(incoming: Incoming) -> None:
        received.append(incoming)

    command = mqtt_schemas.examples("command")["valid"][0]["payload"]
    commands = topics.device_topic("kiosk-hostile", "commands")
    caplog.set_level(logging.INFO, logger="edge.uplink")
    async with (
        uplink_broker.client("console") as console,
        running(config, outbox, device__commands=on_command) as uplink,
    ):
        await uplink.wait_connected(5)
        for value in HOSTILE:
            await console.publish(commands, with_value(command, value), qos=1)
        await console.publish(commands, json.dumps(command), qos=1)
        await until(lambda: len(received) == 1)
        assert uplink.status().state is ConnectionState.CONNECTED
        assert uplink.status().connects == 1  # never dropped the connection
    assert received[0].payload == command
    dropped = [r.getMessage() for r in caplog.records if "not JSON" in r.getMessage()]
    assert len(dropped) == len(HOSTILE), caplog.text
    assert all("\n" not in line for line in dropped)


# -- the reader and the validator, whatever the bytes ------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
PAYLOAD_NAMES = mqtt_schemas.names()


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200), json_values.map(json.dumps)))
@example(b"[" * 100_000)
@example(b"[" * 65 + b"]" * 65)
@example("\ud800")
@example(b'"\\udfff"')
@example(b'{"\\udfff": 1}')
@example(b"-Infinity")
@example(b"1e400")
@example(b"9" * 5000)
@example(b"\xef\xbb\xbf{}")  # a byte order mark
def test_parse_json_returns_a_value_or_raises_json_error_only(data: bytes | str) -> None:
    json_property(data)


@given(json_values)
def test_parse_json_reads_what_json_writes_unless_json_is_lenient(value) -> None:
    text = json.dumps(value, ensure_ascii=False)
    try:
        json.dumps(value, allow_nan=False)
        encoded = text.encode("utf-8")
    except (ValueError, UnicodeEncodeError):  # NaN or a lone surrogate: refused, tested above
        return
    assert parse_json(encoded) == json.loads(text)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(PAYLOAD_NAMES),
    field=st.text(max_size=12),
    value=json_values,
    data=st.data(),
)
def test_any_value_in_any_field_of_any_payload_validates_or_raises_payload_error(
    name: str, field: str, value: object, data: st.DataObject
) -> None:
    examples = mqtt_schemas.examples(name)["valid"]
    payload = dict(data.draw(st.sampled_from(examples))["payload"])
    if payload and data.draw(st.booleans()):
        field = data.draw(st.sampled_from(sorted(payload)))
    payload[field] = value
    try:
        raw = json.dumps(payload, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return
    try:
        validate(name, parse_json(raw))
    except (PayloadError, JsonError) as exc:
        assert "\n" not in str(exc)


def test_a_field_name_with_a_line_break_is_reported_on_one_line() -> None:
    """Found by the test above: the pointer quoted the key as it was, line break and all."""
    payload = dict(mqtt_schemas.examples("ack")["valid"][0]["payload"]) | {"\n": None}
    with pytest.raises(PayloadError) as caught:
        validate("ack", payload)
    assert str(caught.value) == "ack@1: /\\n: unexpected field (not in the schema)"


# -- fuzz targets for make fuzz (fuzz/) ----------------------------------------------------------


def json_property(data: bytes | str) -> None:
    """JSON from outside: a value the contract's encoders can write back, or JsonError only."""
    try:
        value = parse_json(data)
    except JsonError as exc:
        assert "\n" not in str(exc)
        return
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


def payload_property(data: bytes) -> None:
    """An MQTT payload as the kiosk's uplink reads it: the first byte picks the channel's
    schema, the rest is the payload; JsonError or PayloadError only, one line each."""
    if not data:
        return
    name = PAYLOAD_NAMES[data[0] % len(PAYLOAD_NAMES)]
    try:
        validate(name, parse_json(data[1:]))
    except (JsonError, PayloadError) as exc:
        assert "\n" not in str(exc)


#: The fuzz targets of this area by name (fuzz/fuzz_<name>.py runs each under atheris).
PROPERTIES = {"json": json_property, "payload": payload_property}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_as_any_channel_s_payload(data: bytes) -> None:
    payload_property(data)


@pytest.mark.asyncio
@pytest.mark.parametrize("value", HOSTILE, ids=["nan", "deep", "digits", "surrogate"])
async def test_the_console_ignores_a_hostile_catch_up_request_in_one_line(
    tmp_path, caplog, value: str
) -> None:
    """A kiosk may publish catch-up requests: one nested 100,000 deep raised RecursionError out
    of the responder's answer (a traceback in the console's log for every such message)."""
    history = WatchlistHistory(str(tmp_path / "console.db"))
    endpoint = Endpoint("127.0.0.1", 8883, tmp_path / "ca", tmp_path / "crt", tmp_path / "key")
    responder = CatchupResponder(history, endpoint, node_id="console-1")
    request = mqtt_schemas.examples("watchlist-catchup")["valid"][0]["payload"]
    topic = topics.device_topic(request["device_id"], "watchlist/catchup")
    caplog.set_level(logging.WARNING, logger="console")
    try:
        assert await responder.answer(None, topic, with_value(request, value)) == 0  # type: ignore[arg-type]
    finally:
        history.close()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("ignored a catch-up request") and "\n" not in line
