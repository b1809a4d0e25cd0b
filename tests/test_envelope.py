"""The shared envelope (ids, time, clock state) and heartbeat entry fit the contract they serve.

``mqtt_schemas.envelope`` and ``mqtt_schemas.health`` are used by the kiosk and the console
alike, so each promise is checked against the JSON Schema itself: a payload stamped with them
validates, and the Python constants equal what the schema says.
"""

from __future__ import annotations

import copy
import datetime as dt
import doctest
import json
import re
import time
import typing
import uuid
from functools import cache
from importlib import resources
from typing import Any

import pytest

import mqtt_schemas
from mqtt_schemas import envelope, health, liveness
from mqtt_schemas.envelope import (
    ENVELOPE_FIELDS,
    MAX_CLAMP_MS,
    ClockState,
    StaticClock,
    SystemClock,
    Uuid7Generator,
    clock_state,
    format_time,
    utc_now,
    uuid7,
    uuid7_time_ms,
)
from mqtt_schemas.health import DETAIL_MAX, ComponentState, component_entry

T0_NS = 1_795_000_000_000 * 1_000_000  # 2026-11-18, a fixed moment for generator tests


@cache
def defs() -> dict[str, Any]:
    """``defs.v1.json``'s ``$defs`` (not a payload, so not reachable through ``schema()``)."""
    text = resources.files("mqtt_schemas").joinpath("schemas", "defs.v1.json").read_text("utf-8")
    return json.loads(text)["$defs"]


def ack_with(**fields: object) -> dict[str, Any]:
    """A valid ``ack`` (the smallest payload) with some envelope fields replaced."""
    payload = copy.deepcopy(mqtt_schemas.examples("ack")["valid"][0]["payload"])
    payload.update(fields)
    return payload


def test_the_docstring_examples_hold():
    for module in (envelope, health, liveness):
        assert doctest.testmod(module).failed == 0


# -- ids ------------------------------------------------------------------------------------------


def test_uuid7_has_the_rfc_9562_layout_and_the_time_of_its_making():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(value)
    assert str(parsed) == value, "lower-case 8-4-4-4-12, the wire form"
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122  # variant bits 0b10
    assert (parsed.int >> 62) & 0b11 == 0b10 and (parsed.int >> 76) & 0xF == 7
    assert before <= uuid7_time_ms(value) <= after


def test_uuid7_is_what_record_schemas_accept_as_an_id():
    payload = copy.deepcopy(mqtt_schemas.examples("crossing")["valid"][0]["payload"])
    payload["id"] = uuid7()
    mqtt_schemas.validate("crossing", payload)
    assert re.fullmatch(defs()["uuid7"]["pattern"], payload["id"])


def test_ids_sort_in_the_order_they_were_made_even_within_one_millisecond():
    make = Uuid7Generator()
    same_ms = [make(T0_NS) for _ in range(2000)]
    assert len({uuid7_time_ms(i) for i in same_ms}) == 1
    assert same_ms == sorted(same_ms, key=lambda i: i.bytes)
    assert len(set(same_ms)) == len(same_ms)
    # and as strings, which is how the console's index sees them
    made = [uuid7() for _ in range(5000)]
    assert made == sorted(made) and len(set(made)) == len(made)


def test_a_small_clock_step_back_keeps_order_and_a_large_one_is_followed():
    make = Uuid7Generator()
    first = make(T0_NS)
    stepped = make(T0_NS - (MAX_CLAMP_MS - 1) * 1_000_000)
    assert stepped.bytes > first.bytes and uuid7_time_ms(stepped) == uuid7_time_ms(first)
    corrected = make(T0_NS - 86_400_000 * 1_000_000)  # the clock was a day ahead
    assert uuid7_time_ms(corrected) == uuid7_time_ms(first) - 86_400_000


def test_ids_of_different_generators_in_one_millisecond_still_differ():
    # Uniqueness rests on randomness, not on the clock or on one generator's counter.
    ids = {Uuid7Generator()(T0_NS) for _ in range(2000)}
    assert len(ids) == 2000


# -- time -----------------------------------------------------------------------------------------


def test_utc_now_is_the_contracts_timestamp_and_validates():
    now = utc_now()
    assert re.fullmatch(defs()["timestamp"]["pattern"], now)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now), "fixed width, ms, Z"
    mqtt_schemas.validate("ack", ack_with(time=now))
    parsed = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - parsed).total_seconds()) < 5


def test_format_time_converts_to_utc_and_truncates_to_the_millisecond():
    plus_two = dt.timezone(dt.timedelta(hours=2))
    moment = dt.datetime(2026, 1, 1, 1, 59, 59, 999_999, tzinfo=plus_two)
    assert format_time(moment) == "2025-12-31T23:59:59.999Z"  # never rounded into the next day


# -- clock state ----------------------------------------------------------------------------------


def test_clock_state_fields_are_the_schemas_clock_definition():
    clock = defs()["clock"]
    fields = [f.name for f in ClockState.__dataclass_fields__.values()]
    assert set(fields) == set(clock["properties"])
    assert set(clock["required"]) == {"synced", "source"}
    assert list(typing.get_args(envelope.ClockSource)) == clock["properties"]["source"]["enum"]


@pytest.mark.parametrize(
    "state",
    [
        ClockState(True, "ntp", 0.125, dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC)),
        ClockState(True, "gps", -3.5),
        ClockState(False, "rtc", None, dt.datetime(2026, 11, 20, 7, 0, tzinfo=dt.UTC)),
        ClockState(False, "none"),
    ],
    ids=["ntp, all fields", "gps", "rtc, synced before", "never synced"],
)
def test_every_clock_state_validates_as_a_payloads_clock(state):
    as_json = state.to_json()
    assert None not in as_json.values(), "unknown fields are left out, not null"
    mqtt_schemas.validate("ack", ack_with(clock=as_json))


def test_the_system_clock_and_clock_state_validate_whatever_this_host_says():
    reading = SystemClock().read()
    assert reading.time.tzinfo is not None
    state = reading.state
    assert state.synced == (state.source == "ntp"), "synced names its source, else rtc/none"
    mqtt_schemas.validate(
        "ack", ack_with(time=format_time(reading.time), clock=reading.state.to_json())
    )
    mqtt_schemas.validate("ack", ack_with(clock=clock_state()))


def test_a_static_clock_reports_its_state_with_the_current_time():
    reading = StaticClock(synced=False, source="rtc").read()
    assert reading.state == ClockState(False, "rtc")
    assert abs((dt.datetime.now(dt.UTC) - reading.time).total_seconds()) < 5


def test_envelope_fields_are_the_ones_every_payload_must_carry():
    assert list(ENVELOPE_FIELDS) == defs()["envelope"]["required"]


# -- health component entries ---------------------------------------------------------------------


def _component_schema() -> dict[str, Any]:
    return mqtt_schemas.schema("health")["properties"]["components"]["additionalProperties"]


def test_the_detail_cap_and_states_are_the_health_schemas():
    entry = _component_schema()["properties"]
    assert entry["detail"]["maxLength"] == DETAIL_MAX
    assert list(typing.get_args(ComponentState)) == entry["state"]["enum"]


@pytest.mark.parametrize("detail", ["", "no reader", "x" * (DETAIL_MAX + 1), "é" * 5000])
def test_a_component_entry_always_fits_a_heartbeat(detail):
    since = dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC)
    entry = component_entry("down", since, detail)
    assert entry["since"] == "2026-11-24T07:00:00.000Z"
    assert entry.get("detail", "") == detail[:DETAIL_MAX]
    payload = copy.deepcopy(mqtt_schemas.examples("health")["valid"][0]["payload"])
    payload["components"] = {"card-reader": entry}
    mqtt_schemas.validate("health", payload)
