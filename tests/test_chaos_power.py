"""Power loss mid-write (issue 14, item 5): the kiosk process is killed with SIGKILL at random
moments, many times, while its lane commits crossings every few milliseconds and its uplink
publishes them and purges what the console acked. No clean shutdown ever runs.

After every kill the kiosk database must pass ``PRAGMA integrity_check``; at the end, once a
last run has drained the outbox, the console must hold every crossing the kiosk reported
committed, each exactly once, and as many as the lane's durable counter says were committed
(a record committed but killed before it could report is counted there, not lost).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from harness import chaos
from harness.console import rows
from harness.uplink import UplinkBroker

KILLS = 25
DEVICE = "kiosk-power"

pytestmark = pytest.mark.chaos


def integrity(db: Path) -> str:
    return "\n".join(row[0] for row in chaos.kiosk_db(db, "PRAGMA integrity_check"))


def console_ids(db: Path) -> list[str]:
    if not db.exists():
        return []
    return [r[0] for r in rows(db, "SELECT id FROM crossings WHERE device_id = ?", DEVICE)]


def test_kill_9_at_random_points(uplink_broker: UplinkBroker, tmp_path: Path) -> None:
    kiosk_db, console_db = tmp_path / "kiosk.db", tmp_path / "console.db"
    reported: list[str] = []
    rng = random.Random()
    seed = rng.randrange(1 << 32)
    rng.seed(seed)
    with chaos.console(uplink_broker, console_db) as console:
        console.wait(lambda: console.words("ready"), 15, "the console subscribed")
        started = time.monotonic()
        for kill in range(KILLS):
            kiosk = chaos.kiosk(uplink_broker, DEVICE, kiosk_db, every=0.003, count=10**6)
            try:
                # Killed while recording: after its first commit, at a random moment.
                kiosk.wait(lambda k=kiosk: chaos.recorded(k), 20, "the kiosk recorded")
                time.sleep(rng.uniform(0, 0.4))
            finally:
                kiosk.kill()
            reported += chaos.recorded(kiosk)
            assert integrity(kiosk_db) == "ok", f"after kill {kill + 1} (seed {seed})"
        kill_phase = time.monotonic() - started
        print(f"{KILLS} kills in {kill_phase:.1f} s, {len(reported)} crossings reported")

        (committed,) = chaos.kiosk_db(kiosk_db, "SELECT crossings FROM lane_state")[0]
        assert committed >= len(reported) > KILLS  # each run committed some
        # One last run records nothing more and drains the outbox.
        with chaos.kiosk(uplink_broker, DEVICE, kiosk_db, every=0.01, count=0) as last:
            deadline = time.monotonic() + 60
            while len(console_ids(console_db)) < committed or chaos.kiosk_db(
                kiosk_db, "SELECT count(*) FROM uplink_outbox"
            ) != [(0,)]:
                assert time.monotonic() < deadline, f"not drained (seed {seed})\n{last.output()}"
                time.sleep(0.1)
            last.stop()
        console.stop()

    assert integrity(kiosk_db) == "ok"
    stored = console_ids(console_db)
    assert len(stored) == len(set(stored)) == committed, f"seed {seed}"  # nothing doubled
    assert set(reported) <= set(stored), f"seed {seed}"  # nothing committed is lost
    assert len(reported) == len(set(reported))
