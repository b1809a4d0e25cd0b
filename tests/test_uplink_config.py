"""Uplink configuration, clock state and reconnect backoff: pure code, no broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mqtt_schemas
from edge.uplink import (
    ConfigError,
    Outbox,
    StaticClock,
    SystemClock,
    Uplink,
    UplinkConfig,
    UplinkError,
)
from mqtt_schemas.envelope import ClockState, format_time

MINIMAL = {
    "device_id": "kiosk-bz-se-01",
    "agent_version": "1.4.2",
    "broker": {
        "host": "mqtt.example",
        "ca_file": "/etc/borderlane/ca.crt",
        "cert_file": "/etc/borderlane/kiosk.crt",
        "key_file": "/etc/borderlane/kiosk.key",
    },
}


def with_(path: str, value) -> dict:
    config = json.loads(json.dumps(MINIMAL))
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


def test_minimal_configuration_gets_the_documented_defaults():
    config = UplinkConfig.from_dict(MINIMAL)
    assert config.broker.port == 8883
    assert config.broker.ca_file == Path("/etc/borderlane/ca.crt")
    assert config.delivery.window == 256
    assert config.outbox.alarm_ratio == 0.8
    assert config.backoff.max_s == 60


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("broker.prot", 1883, "uplink.broker.prot: unknown key (known: host, "),
        ("delivery.ack_timout_s", 5, "uplink.delivery.ack_timout_s: unknown key"),
        ("colour", "red", "uplink.colour: unknown key"),
        ("broker.port", "8883", "uplink.broker.port: expected an integer, got '8883'"),
        ("broker.port", True, "uplink.broker.port: expected an integer"),
        ("broker.port", 70000, "uplink.broker.port: 70000 is not a TCP port"),
        ("delivery.window", 0, "uplink.delivery.window: must be within 1..4096"),
        ("delivery", [], "uplink.delivery: expected a table of keys, got list"),
        ("device_id", "kiosk/../a", "uplink.device_id: device id 'kiosk/../a' contains '/'"),
        ("agent_version", "1.0 beta", "uplink.agent_version: must be 1-64 characters"),
        ("outbox.alarm_free_bytes", 1, "uplink.outbox.alarm_free_bytes: must be at least"),
        ("backoff.max_s", 0.1, "uplink.backoff.max_s: must be within initial_s..3600"),
    ],
)
def test_errors_name_the_key_path(path, value, message):
    with pytest.raises(ConfigError) as error:
        UplinkConfig.from_dict(with_(path, value))
    assert str(error.value).startswith(message)


def test_missing_required_keys_are_named():
    config = json.loads(json.dumps(MINIMAL))
    del config["broker"]["cert_file"]
    with pytest.raises(ConfigError, match=r"^uplink\.broker\.cert_file: required key is missing"):
        UplinkConfig.from_dict(config)


def test_numbers_are_accepted_where_floats_are_expected():
    config = UplinkConfig.from_dict(with_("delivery.ack_timeout_s", 5))
    assert config.delivery.ack_timeout_s == 5.0


def test_clock_states_fit_the_envelope():
    state = ClockState(True, "gps", 1.25, last_sync=None).to_json()
    assert state == {"synced": True, "source": "gps", "offset_ms": 1.25}
    reading = SystemClock().read()  # the kernel's answer on this machine, whatever it is
    assert reading.state.source in ("ntp", "rtc", "none")
    assert reading.state.synced == (reading.state.source == "ntp")
    example = mqtt_schemas.examples("ack")["valid"][0]["payload"]
    mqtt_schemas.validate(
        "ack", {**example, "time": format_time(reading.time), "clock": reading.state.to_json()}
    )
    assert format_time(reading.time).endswith("Z")


@pytest.mark.asyncio
async def test_backoff_grows_with_jitter_up_to_the_ceiling(tmp_path):
    config = UplinkConfig.from_dict(with_("backoff", {"initial_s": 0.5, "max_s": 8}))
    outbox = Outbox(tmp_path / "k.db", config.device_id, StaticClock())
    uplink = Uplink(config, outbox, StaticClock())
    for failures, ceiling in ((0, 0.5), (1, 1), (3, 4), (4, 8), (50, 8)):
        delays = [uplink._backoff(failures) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered: a fleet does not reconnect in step
    outbox.close()


def test_an_outbox_of_another_device_is_refused(tmp_path):
    config = UplinkConfig.from_dict(MINIMAL)
    refused = pytest.raises(UplinkError, match="outbox belongs to 'kiosk-other'")
    with Outbox(tmp_path / "k.db", "kiosk-other", StaticClock()) as outbox, refused:
        Uplink(config, outbox, StaticClock())
