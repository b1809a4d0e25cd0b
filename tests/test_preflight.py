"""`run --check` and the agent's start check what kiosk.toml names, not only its text (issue 21).

The files are real: a device CA and certificates from the provisioning code, a CBIC issuer key,
a CSCA certificate and a watchlist key from the simulators, an officers file, a state directory;
each test breaks one of them the way a technician would and reads the one line that says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import mqtt_schemas
from edge.agent.config import load_config
from edge.agent.preflight import Finding, check, component
from edge.cli import cli
from edge.sim.cbic_issue import create_issuer, save_issuer
from edge.sim.emrtd_pki import make_csca
from edge.ui.officers import add_officer
from harness.agent import write_config
from mqtt_schemas import topics
from mqtt_schemas.watchlist import generate_key, public_key_pem

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "images" / "kiosk.example.toml"
DEVICE = "kiosk-pre-01"


def kiosk(tmp_path: Path, uplink_pki, device: str = DEVICE, **overrides) -> Path:
    """A kiosk directory whose kiosk.toml names only files that exist and work."""
    identity = uplink_pki.identity(device)
    pki = tmp_path / "pki"
    pki.mkdir(exist_ok=True)
    shutil.copy(uplink_pki.ca.cert_path, pki / "ca.crt")
    shutil.copy(identity.cert_path, pki / "kiosk.crt")
    shutil.copy(identity.key_path, pki / "kiosk.key")
    save_issuer(create_issuer("bz-cbic-pre-1"), tmp_path / "issuer-private")
    (tmp_path / "cbic-issuers").mkdir(exist_ok=True)
    shutil.copy(tmp_path / "issuer-private" / "bz-cbic-pre-1.pem", tmp_path / "cbic-issuers")
    (tmp_path / "csca").mkdir(exist_ok=True)
    (tmp_path / "csca" / "csca-ut.pem").write_bytes(make_csca("UT").pem)
    (tmp_path / "watchlist-keys").mkdir(exist_ok=True)
    (tmp_path / "watchlist-keys" / "wl-pre.pub.pem").write_bytes(public_key_pem(generate_key()))
    add_officer(tmp_path / "officers.json", "bz-off-117", "123456")
    settings = {
        "agent": {"device_id": device, "data_dir": "state"},
        "lane": {"site": "bz-santa-elena", "lane": "lane-1", "direction": "entry"},
        "trust": {"issuers": "cbic-issuers", "csca": ["csca"]},
        "watchlist": {"trusted_keys": "watchlist-keys"},
        "card_reader": {"enabled": False},
        "uplink": {
            "broker": {
                "host": "127.0.0.1",
                "ca_file": "pki/ca.crt",
                "cert_file": "pki/kiosk.crt",
                "key_file": "pki/kiosk.key",
            }
        },
        "ui": {"officers": "officers.json"},
    }
    for name, values in overrides.items():
        settings.setdefault(name, {}).update(values)
    return write_config(tmp_path, settings)


def findings(path: Path, **options) -> list[Finding]:
    return check(load_config(path, agent_version="1.0.0"), **options)


def run_check(path: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["run", "--config", str(path), "--check"])
    assert "Traceback" not in result.output
    return result.exit_code, result.output.strip().splitlines()


def test_the_readme_example_config_names_files_that_do_not_exist_and_check_says_so():
    """The issue's case: it answered ok. Now every missing file is a line with its key, exit 2."""
    status, lines = run_check(EXAMPLE)
    assert status == 2
    fatal = {line.split(": ")[1] for line in lines if line.startswith("fatal: ")}
    assert {
        "uplink.broker.ca_file",
        "uplink.broker.cert_file",
        "uplink.broker.key_file",
        "trust.issuers",
        "trust.csca[0]",
        "watchlist.trusted_keys",
        "ui.officers",
    } <= fatal
    assert any("kiosk.crt: no such file" in line for line in lines)
    # and the encrypted state directory that is not there; the hardware is only warned about
    assert "storage.encrypted" in fatal
    assert lines[-1].startswith(f"{EXAMPLE}: not usable (8 fatal, ")


def test_a_kiosk_whose_files_all_work_is_ok_with_the_days_its_certificate_has_left(
    tmp_path, uplink_pki
):
    path = kiosk(tmp_path, uplink_pki)
    assert findings(path) == []
    status, lines = run_check(path)
    assert status == 0, lines
    assert len(lines) == 1
    assert f"ok (device {DEVICE}, lane lane-1; certificate valid until" in lines[0]
    assert "days left)" in lines[0]


@pytest.mark.parametrize(
    ("breakage", "key", "words"),
    [
        (lambda d: (d / "pki" / "kiosk.key").chmod(0o644), "uplink.broker.key_file", "chmod 600"),
        (lambda d: (d / "pki" / "kiosk.key").unlink(), "uplink.broker.key_file", "no such file"),
        (
            lambda d: (d / "pki" / "kiosk.crt").write_text("not a certificate\n"),
            "uplink.broker.cert_file",
            "not a PEM certificate",
        ),
        (
            lambda d: (d / "pki" / "ca.crt").write_bytes(b"\x00\x01"),
            "uplink.broker.ca_file",
            "not a PEM certificate",
        ),
        (
            lambda d: [p.unlink() for p in (d / "cbic-issuers").iterdir()],
            "trust.issuers",
            "no issuer key",
        ),
        (
            lambda d: [p.unlink() for p in (d / "watchlist-keys").iterdir()],
            "watchlist.trusted_keys",
            "no signing key",
        ),
        (
            lambda d: (d / "watchlist-keys" / "wl-pre.pub.pem").write_text("junk"),
            "watchlist.trusted_keys",
            "not a PEM public key",
        ),
        (
            lambda d: [p.unlink() for p in (d / "csca").iterdir()],
            "trust.csca",
            "no CSCA file",
        ),
        (lambda d: (d / "officers.json").write_text("{"), "ui.officers", "not a readable JSON"),
    ],
    ids=[
        "key-readable-by-all",
        "key-missing",
        "cert-garbage",
        "ca-garbage",
        "issuers-empty",
        "watchlist-keys-empty",
        "watchlist-key-garbage",
        "csca-empty",
        "officers-garbage",
    ],
)
def test_each_broken_file_is_one_fatal_line_naming_its_key(
    tmp_path, uplink_pki, breakage, key, words
):
    path = kiosk(tmp_path, uplink_pki)
    breakage(tmp_path)
    found = findings(path)
    assert [(f.level, f.key) for f in found] == [("fatal", key)], found
    assert words in found[0].message
    status, lines = run_check(path)
    assert status == 2
    assert lines[0].startswith(f"fatal: {key}: ") and words in lines[0]


def test_a_key_that_is_not_the_certificates_and_a_certificate_of_another_kiosk_are_fatal(
    tmp_path, uplink_pki
):
    path = kiosk(tmp_path, uplink_pki)
    other = uplink_pki.identity("kiosk-pre-other")
    shutil.copy(other.key_path, tmp_path / "pki" / "kiosk.key")
    (found,) = findings(path)
    assert (found.level, found.key) == ("fatal", "uplink.broker.key_file")
    assert "not the key of uplink.broker.cert_file" in found.message

    shutil.copy(other.cert_path, tmp_path / "pki" / "kiosk.crt")  # a matching pair, wrong kiosk
    (found,) = findings(path)
    assert (found.level, found.key) == ("fatal", "uplink.broker.cert_file")
    assert f"issued to kiosk-pre-other, not to agent.device_id {DEVICE}" in found.message


def test_an_expired_or_expiring_certificate_is_a_warning_the_lane_works_offline(
    tmp_path, uplink_pki
):
    path = kiosk(tmp_path, uplink_pki)
    config = load_config(path, agent_version="1.0.0")
    cert = tmp_path / "pki" / "kiosk.crt"
    from cryptography import x509

    end = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    soon = check(config, now=end - dt.timedelta(days=3))
    assert [(f.level, f.key) for f in soon] == [("warning", "uplink.broker.cert_file")]
    assert "days left" in soon[0].message
    late = check(config, now=end + dt.timedelta(days=2))
    assert ("warning", "uplink.broker.cert_file") in [(f.level, f.key) for f in late]
    assert any("expired" in f.message and "enroll" in f.message for f in late)
    assert not any(f.fatal for f in late)


def test_hardware_absent_and_a_disk_below_the_outbox_reserve_are_warnings(tmp_path, uplink_pki):
    path = kiosk(
        tmp_path,
        uplink_pki,
        card_reader={"enabled": True, "readers": ["OMNIKEY"]},
        mrz_reader={"port": str(tmp_path / "serial" / "usb-*MRZ*")},
        uplink={"outbox": {"reserve_free_bytes": 2**60, "alarm_free_bytes": 2**60}},
    )
    found = {f.key: f for f in findings(path)}
    assert {f.level for f in found.values()} == {"warning"}
    assert "no port matches" in found["mrz_reader.port"].message
    assert "OMNIKEY" in found["card_reader.readers"].message
    assert "below the outbox reserve" in found["agent.data_dir"].message
    status, lines = run_check(path)
    assert status == 0 and len(lines) == 4
    assert lines[-1].startswith(f"{path}: ok")


def test_the_card_readers_named_are_looked_up_in_pcscd(tmp_path, uplink_pki, agent_pcsc):
    name = agent_pcsc.reader_names[0]
    for readers, expected in (([f"={name}"], None), (["OMNIKEY"], f"readers seen: {name}")):
        path = kiosk(tmp_path, uplink_pki, card_reader={"enabled": True, "readers": readers})
        done = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--config", str(path), "--check"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **agent_pcsc.env},
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        lines = done.stdout.strip().splitlines()
        if expected is None:
            assert len(lines) == 1 and ": ok (" in lines[0]
        else:
            assert lines[0].startswith("warning: card_reader.readers: no reader matches 'OMNIKEY'")
            assert expected in lines[0]


def test_a_usb_camera_not_plugged_in_warns_a_virtual_cameras_missing_images_are_fatal(
    tmp_path, uplink_pki
):
    path = kiosk(tmp_path, uplink_pki, camera={"backend": "v4l2", "device": "/dev/video-none"})
    found = findings(path)
    assert [(f.level, f.key) for f in found] == [("warning", "camera.device")]
    assert "/dev/video-none: no such device" in found[0].message
    path = kiosk(tmp_path, uplink_pki, camera={"backend": "virtual", "source": "frames"})
    assert [(f.level, f.key) for f in findings(path)] == [("fatal", "camera.source")]
    (tmp_path / "frames").mkdir()
    assert findings(path) == []


def test_a_data_dir_that_is_a_file_and_plain_storage_marked_encrypted_are_fatal(
    tmp_path, uplink_pki
):
    path = kiosk(tmp_path, uplink_pki, storage={"encrypted": True})
    (tmp_path / "state").mkdir()
    (found,) = findings(path)
    assert (found.level, found.key) == ("fatal", "storage.encrypted")
    assert "encryption" in found.message and "state" in found.message
    path = kiosk(tmp_path, uplink_pki, agent={"data_dir": "officers.json/state"})
    assert [(f.level, f.key) for f in findings(path)] == [("fatal", "agent.data_dir")]


def test_warnings_become_the_heartbeats_preflight_component_within_the_contract():
    since = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)
    assert component([], since) == {"state": "ok", "since": "2026-12-05T10:00:00.000Z"}
    warned = component(
        [Finding("warning", "mrz_reader.port", "no port matches /dev/x" + "x" * 600)], since
    )
    assert warned["state"] == "degraded"
    assert warned["detail"].startswith("at start: mrz_reader.port: no port matches")
    assert len(warned["detail"]) == mqtt_schemas.health.DETAIL_MAX


def test_the_agent_refuses_to_start_on_a_fatal_finding_one_log_line_each(tmp_path, uplink_pki):
    path = kiosk(tmp_path, uplink_pki)
    (tmp_path / "pki" / "kiosk.key").chmod(0o640)
    [p.unlink() for p in (tmp_path / "watchlist-keys").iterdir()]
    done = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert any("preflight: fatal: uplink.broker.key_file:" in line for line in lines)
    assert any("preflight: fatal: watchlist.trusted_keys:" in line for line in lines)
    assert lines[-1].startswith("Error: 2 fatal problem(s)")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was created


@pytest.mark.asyncio
async def test_the_first_heartbeat_carries_the_start_checks_warnings(uplink_broker, kiosk_rig):
    rig = kiosk_rig(uplink_broker, "kiosk-pre-hb")
    # the MRZ reader named by a glob nothing matches: a warning (the reader may come later)
    text = rig.config_path.read_text()
    rig.config_path.write_text(
        text.replace(f'port = "{rig.directory / "mrz-tty"}"', 'port = "/nonexistent/usb-*MRZ*"')
    )
    async with uplink_broker.observer() as observer:
        await observer.subscribe(topics.device_topic(rig.device_id, "health"))
        rig.start()
        async with asyncio.timeout(20):
            message = await anext(aiter(observer.messages))
    health = json.loads(message.payload)
    mqtt_schemas.validate("health", health)
    preflight = health["components"]["preflight"]
    assert preflight["state"] == "degraded"
    assert "mrz_reader.port: no port matches /nonexistent/usb-*MRZ*" in preflight["detail"]
    assert "preflight: warning: mrz_reader.port" in rig.log_text()
