"""kiosk.toml: one file checked whole at start; every mistake is named by its key path."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.agent.config import AgentConfigError, load_config
from edge.cli import cli

MINIMAL = """
[agent]
device_id = "kiosk-bz-01"
data_dir = "state"

[lane]
site = "bz-santa-elena"
lane = "lane-1"
direction = "entry"

[uplink.broker]
host = "127.0.0.1"
ca_file = "pki/ca.crt"
cert_file = "pki/kiosk.crt"
key_file = "pki/kiosk.key"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str = MINIMAL):
    return load_config(write(tmp_path, text), agent_version="1.0.0")


def error(tmp_path: Path, text: str) -> AgentConfigError:
    with pytest.raises(AgentConfigError) as caught:
        load(tmp_path, text)
    return caught.value


def test_a_minimal_configuration_gets_defaults_and_paths_relative_to_the_file(tmp_path):
    config = load(tmp_path)
    assert config.agent.device_id == "kiosk-bz-01"
    assert config.agent.kiosk_db == tmp_path / "state" / "kiosk.db"
    assert config.watchlist.db == tmp_path / "state" / "watchlist.db"
    assert config.uplink.device_id == "kiosk-bz-01"  # one device id, from [agent]
    assert config.uplink.agent_version == "1.0.0"
    assert config.uplink.broker.ca_file == tmp_path / "pki" / "ca.crt"
    assert config.card_reader is not None  # a kiosk has a card reader unless told otherwise
    assert config.mrz_reader is None  # ... and an MRZ reader only when configured
    assert config.ui.host == "127.0.0.1"
    assert config.health.interval_s == 30


def test_the_shipped_example_is_a_valid_configuration():
    example = Path(__file__).resolve().parent.parent / "images" / "kiosk.example.toml"
    config = load_config(example, agent_version="1.0.0")
    assert config.mrz_reader is not None and config.mrz_reader.port.startswith("/dev/serial")
    assert config.lane.policy.chip_wait_s == 20
    assert config.ui.language == "es"
    assert config.camera is not None and config.camera.device == "/dev/video0"


def with_key(table: str, line: str) -> str:
    """MINIMAL with *line* added to *table* (appended as a new table if MINIMAL lacks it)."""
    header = f"[{table}]\n"
    if header in MINIMAL:
        return MINIMAL.replace(header, header + line + "\n")
    return MINIMAL + "\n" + header + line + "\n"


@pytest.mark.parametrize(
    "table, line, path",
    [
        ("agent", 'log_levl = "info"', "agent.log_levl"),
        ("lane.policy", "hit_treshold = 0.9", "lane.policy.hit_treshold"),
        ("uplink.delivery", "ack_timout_s = 5", "uplink.delivery.ack_timout_s"),
        ("card_reader", "readrs = ['x']", "card_reader.readrs"),
        ("mrz_reader", 'port = "/dev/ttyUSB0"\nbaud = 9600', "mrz_reader.baud"),
        ("ui", "prot = 8080", "ui.prot"),
        ("cameras", "enabled = false", "cameras"),
        ("camera", 'backend = "v4l2"\nexposur = 100', "camera.exposur"),
    ],
)
def test_unknown_keys_are_rejected_with_their_full_path(tmp_path, table, line, path):
    assert error(tmp_path, with_key(table, line)).path == path


@pytest.mark.parametrize(
    "old, new, path, words",
    [
        ('direction = "entry"', 'direction = "sideways"', "lane.direction", "entry or exit"),
        ('host = "127.0.0.1"', 'host = "127.0.0.1"\nport = 70000', "uplink.broker.port", "port"),
        ('device_id = "kiosk-bz-01"', 'device_id = "kiosk/01"', "agent.device_id", "separator"),
        ('data_dir = "state"', "data_dir = 5", "agent.data_dir", "file path"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(tmp_path, old, new, path, words):
    problem = error(tmp_path, MINIMAL.replace(old, new))
    assert problem.path == path
    assert words in str(problem)


def test_missing_tables_and_keys_are_named(tmp_path):
    assert error(tmp_path, MINIMAL.replace("[lane]", "[lane_x]")).path == "lane_x"
    without_site = MINIMAL.replace('site = "bz-santa-elena"\n', "")
    assert error(tmp_path, without_site).path == "lane.site"


def test_the_device_id_is_set_once_not_again_in_the_uplink(tmp_path):
    text = MINIMAL.replace("[uplink.broker]", '[uplink]\ndevice_id = "other"\n[uplink.broker]')
    problem = error(tmp_path, text)
    assert problem.path == "uplink.device_id" and "agent.device_id" in str(problem)


def test_pages_are_served_on_loopback_only(tmp_path):
    problem = error(tmp_path, MINIMAL + '\n[ui]\nhost = "0.0.0.0"\n')
    assert problem.path == "ui.host" and "loopback" in str(problem)


def test_a_kiosk_has_a_camera_only_when_configured(tmp_path):
    assert load(tmp_path).camera is None
    assert load(tmp_path, MINIMAL + "\n[camera]\nenabled = false\n").camera is None
    # switched off, still checked: a typo must not wait for the day it is switched on
    problem = error(tmp_path, MINIMAL + "\n[camera]\nenabled = false\nrotaton = 90\n")
    assert problem.path == "camera.rotaton"
    config = load(tmp_path, MINIMAL + '\n[camera]\nbackend = "virtual"\nsource = "faces"\n')
    assert config.camera is not None and config.camera.backend == "virtual"
    assert config.camera.source == tmp_path / "faces"  # relative to the file
    config = load(
        tmp_path,
        MINIMAL + '\n[camera]\nbackend = "v4l2"\ndevice = "/dev/video2"\nexposure = 8000\n'
        'focus = 30\nrotation = 270\npixel_format = "yuyv"\n',
    )
    camera = config.camera
    assert camera is not None
    assert (camera.device, camera.exposure, camera.focus, camera.rotation) == (
        "/dev/video2",
        8000,
        30,
        270,
    )


@pytest.mark.parametrize(
    "lines, path, words",
    [
        ('enabled = "yes"\nbackend = "v4l2"', "camera.enabled", "true or false"),
        ('device = "/dev/video0"', "camera.backend", "picamera2, v4l2 or virtual"),
        ('backend = "webcam"', "camera.backend", "one of picamera2, v4l2, virtual"),
        ('backend = "virtual"', "camera.source", "required"),
        ('backend = "v4l2"\ndevice = "video0"', "camera.device", "/dev/video0"),
        ('backend = "v4l2"\nrotation = 45', "camera.rotation", "0, 90, 180 or 270"),
        ('backend = "v4l2"\nexposure = "dark"', "camera.exposure", "'auto' or microseconds"),
        ('backend = "v4l2"\ngain = "high"', "camera.gain", "'auto' or"),
        ('backend = "picamera2"\nfocus = -1', "camera.focus", "lens position"),
        ('backend = "v4l2"\nwidth = 9000', "camera.width", "16..8192"),
        ('backend = "v4l2"\nfps = 0', "camera.fps", "0.1..240"),
        ('backend = "v4l2"\ncapture_timeout_s = 600', "camera.capture_timeout_s", "0.05..60"),
        ('backend = "v4l2"\nexposure_us = 100', "camera.exposure_us", "unknown"),
        ('backend = "virtual"\nsource = 5', "camera.source", "file path"),
    ],
)
def test_bad_camera_settings_are_named_in_one_line(tmp_path, lines, path, words):
    problem = error(tmp_path, MINIMAL + "\n[camera]\n" + lines + "\n")
    assert problem.path == path
    assert words in str(problem) and "\n" not in str(problem)


def test_broken_toml_and_missing_files_are_one_clear_error(tmp_path):
    assert "not valid TOML" in str(error(tmp_path, MINIMAL + "\n[lane\n"))
    with pytest.raises(AgentConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml", agent_version="1.0.0")


def test_run_check_prints_one_line_and_exits_2_on_a_bad_key(tmp_path, uplink_pki):
    runner = CliRunner()
    # --check also checks the files the configuration names (tests/test_preflight.py): real ones
    identity = uplink_pki.identity("kiosk-bz-01")
    (tmp_path / "pki").mkdir()
    for source, name in (
        (uplink_pki.ca.cert_path, "ca.crt"),
        (identity.cert_path, "kiosk.crt"),
        (identity.key_path, "kiosk.key"),
    ):
        shutil.copy(source, tmp_path / "pki" / name)
    good = write(tmp_path, MINIMAL + "\n[card_reader]\nenabled = false\n")
    result = runner.invoke(cli, ["run", "--config", str(good), "--check"])
    assert result.exit_code == 0, result.output
    assert "ok (device kiosk-bz-01, lane lane-1;" in result.output
    bad = write(tmp_path, MINIMAL + "\n[health]\ninterval = 5\n")
    result = runner.invoke(cli, ["run", "--config", str(bad), "--check"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "health.interval" in lines[0]
    assert "Traceback" not in result.output
