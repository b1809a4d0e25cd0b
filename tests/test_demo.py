"""`make demo` runs the whole loop (broker, console, kiosks with travellers), says where to look,
counts what flowed, and stops cleanly leaving no process behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"
SUMMARY = re.compile(r"crossings: generated (\d+) by (\d+) kiosks, stored (\d+) in .*, acked (\d+)")


def start_demo(tmp_path: Path, seconds: str = "", kiosks: str = "1") -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DEMO_STATE": str(tmp_path / "demo"),
        "DEMO_SECONDS": seconds,
        "DEMO_KIOSKS": kiosks,
        "DEMO_TRAVELLERS": "60",
    }
    return subprocess.Popen(
        [sys.executable, str(DEMO)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention *path* (the demo's state directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in command:
            found.append(command)
    return found


def read_banner(demo: subprocess.Popen[str]) -> str:
    """The demo's output up to the end of its banner (or its end)."""
    banner = ""
    for line in demo.stdout:
        banner += line
        if "Ctrl-C stops it" in line:
            break
    return banner


def test_the_whole_loop_runs_for_demo_seconds_and_every_crossing_is_stored(tmp_path):
    demo = start_demo(tmp_path, seconds="8", kiosks="2")
    banner = read_banner(demo)
    web = re.search(r"Console for people: (http://127\.0\.0\.1:\d+/)", banner)
    if not web:
        pytest.fail(f"no console URL in the banner: {banner}{demo.communicate(timeout=60)[1]}")
    # The console for people answers while the demo runs: / sends to the login page.
    with urllib.request.urlopen(web.group(1), timeout=10) as response:
        assert response.url.startswith(web.group(1) + "login")
        page = response.read().decode()
    assert 'id="login"' in page and 'name="csrf_token"' in page
    for role in ("admin", "technician", "officer", "supervisor", "analyst", "auditor"):
        assert re.search(rf"^    {role} +\S", banner, re.MULTILINE), role  # a login per role
    assert "password borderlane-demo" in banner
    rest, err = demo.communicate(timeout=120)
    out = banner + rest
    assert demo.returncode == 0, err
    assert "mqtts://127.0.0.1:" in out and "mosquitto_sub" in out
    assert "kiosk-bz-01  pages http://127.0.0.1:" in out and "kiosk-bz-02" in out
    summary = SUMMARY.search(out)
    assert summary, out
    generated, kiosks, stored, acked = map(int, summary.groups())
    assert kiosks == 2 and generated > 0
    assert stored == generated == acked  # none lost on the way
    console = sqlite3.connect(tmp_path / "demo" / "console.db")
    rows = console.execute("SELECT device_id, count(*) FROM crossings GROUP BY 1").fetchall()
    assert {device for device, _ in rows} == {"kiosk-bz-01", "kiosk-bz-02"}
    states = console.execute("SELECT state, offline_reason FROM devices").fetchall()
    assert states == [("offline", "shutdown")] * 2  # the kiosks said goodbye
    assert "nothing left running" in out
    assert processes_using(tmp_path / "demo") == []


def test_demo_db_postgresql_runs_the_console_on_a_private_postgresql(tmp_path):
    """``DEMO_DB=postgresql``: the same loop with the console on a throwaway PostgreSQL
    cluster, which stops with the demo."""
    demo = subprocess.run(
        [sys.executable, str(DEMO)],
        env={
            **os.environ,
            "DEMO_STATE": str(tmp_path / "demo"),
            "DEMO_SECONDS": "8",
            "DEMO_KIOSKS": "1",
            "DEMO_TRAVELLERS": "60",
            "DEMO_DB": "postgresql",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr
    database = re.search(
        r"console database    (postgresql\S+:\*\*\*@127.0.0.1:(\d+)/\S+)", demo.stdout
    )
    assert database, demo.stdout  # shown without its password
    summary = SUMMARY.search(demo.stdout)
    generated, _, stored, acked = map(int, summary.groups())
    assert generated > 0 and stored == generated == acked
    assert not (tmp_path / "demo" / "console.db").exists()
    with socket.socket() as probe:  # the cluster is gone with the demo
        assert probe.connect_ex(("127.0.0.1", int(database.group(2)))) != 0
    assert processes_using(tmp_path / "demo") == []


def banner_command(banner: str, pattern: str) -> str:
    """The command of the banner that *pattern* finds, its continuation lines joined."""
    joined = re.sub(r"\\\n\s+", "", banner)
    found = re.search(pattern, joined)
    assert found, f"no {pattern!r} in the banner: {banner}"
    return found.group(0)


def walk_the_enrollment_steps(banner: str, state: Path) -> None:
    """What the banner tells a newcomer: a token, borderlane-edge enroll, the kiosk run beside
    the others; it is then online on the console (what the fleet dashboard shows)."""
    root = DEMO.parent.parent
    token_line = banner_command(banner, r"BORDERLANE_CONSOLE_DB=\S+ \S+ devices token .*")
    made = subprocess.run(
        ["bash", "-c", token_line], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.split()[0]
    enroll_line = banner_command(banner, r"\S+borderlane-edge enroll .*").replace("TOKEN", token)
    enrolled = subprocess.run(
        ["bash", "-c", enroll_line], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert "enrolled kiosk-bz-new at bz-santa-elena" in enrolled.stdout
    run_line = banner_command(banner, r"DEMO_STATE=\S+ \S+ scripts/demo_kiosk\.py \S+")
    kiosk = subprocess.Popen(["bash", "-c", run_line], cwd=root, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.closing(sqlite3.connect(state / "console.db", timeout=10)) as db:
                found = db.execute(
                    "SELECT state FROM devices WHERE device_id = 'kiosk-bz-new'"
                ).fetchall()
            if found == [("online",)]:
                break
            assert kiosk.poll() is None, kiosk.communicate()[0]
            time.sleep(0.5)
        else:
            pytest.fail("the enrolled kiosk did not come online on the console")
    finally:
        kiosk.send_signal(signal.SIGTERM)
        out, _ = kiosk.communicate(timeout=60)
    assert kiosk.returncode == 0, out  # stopped cleanly by SIGTERM, as Ctrl-C would


def test_a_newcomer_enrolls_a_kiosk_as_the_banner_says_then_ctrl_c_stops_everything(tmp_path):
    demo = start_demo(tmp_path)
    banner = read_banner(demo)
    match = re.search(r"pid (\d+)", banner)
    if not match:
        pytest.fail(f"no banner; the demo said: {banner}{demo.communicate(timeout=60)[1]}")
    assert re.search(r"enrollment endpoint https://127\.0\.0\.1:\d+/enroll", banner)
    assert re.search(r"http://127\.0\.0\.1:\d+/fleet/enroll as technician", banner)
    try:
        walk_the_enrollment_steps(banner, tmp_path / "demo")
    finally:
        demo.send_signal(signal.SIGINT)
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, err
    assert SUMMARY.search(out), out
    assert processes_using(tmp_path / "demo") == []
    assert not Path(f"/proc/{match.group(1)}").exists()  # the broker is gone too


def test_demo_rejects_a_bad_demo_seconds(tmp_path):
    demo = start_demo(tmp_path, seconds="soon")
    _, err = demo.communicate(timeout=30)
    assert demo.returncode != 0
    assert err.strip() == "demo: DEMO_SECONDS must be a number of seconds, got 'soon'"
