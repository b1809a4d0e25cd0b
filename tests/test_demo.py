"""`make demo` starts the stack, says where it runs, and stops cleanly leaving no process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"


def start_demo(tmp_path: Path, seconds: str = "") -> subprocess.Popen[str]:
    env = {**os.environ, "DEMO_STATE": str(tmp_path / "demo"), "DEMO_SECONDS": seconds}
    return subprocess.Popen(
        [sys.executable, str(DEMO)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def broker_pid(banner: str) -> int:
    match = re.search(r"pid (\d+)", banner)
    assert match, f"the demo did not say where the broker runs:\n{banner}"
    return int(match.group(1))


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_stops_by_itself_after_demo_seconds(tmp_path):
    demo = start_demo(tmp_path, seconds="1")
    out, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, err
    assert "mqtts://127.0.0.1:" in out and "mosquitto_sub" in out
    assert "nothing left running" in out
    assert not is_alive(broker_pid(out))


def test_demo_stops_on_ctrl_c_and_leaves_no_broker(tmp_path):
    demo = start_demo(tmp_path)
    banner = ""
    for line in demo.stdout:
        banner += line
        if "Ctrl-C stops it" in line:
            break
    pid = broker_pid(banner)
    assert is_alive(pid)
    demo.send_signal(signal.SIGINT)
    _, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, err
    assert not is_alive(pid)


def test_demo_rejects_a_bad_demo_seconds(tmp_path):
    demo = start_demo(tmp_path, seconds="soon")
    _, err = demo.communicate(timeout=30)
    assert demo.returncode != 0
    assert err.strip() == "demo: DEMO_SECONDS must be a number of seconds, got 'soon'"
