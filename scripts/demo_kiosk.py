"""Run a kiosk enrolled with ``borderlane-edge enroll`` beside ``make demo``'s own kiosks.

::

    .venv/bin/borderlane-edge enroll --console https://127.0.0.1:PORT --token TOKEN \\
        --state-dir .demo/new-kiosk --ca .demo/pki/services/ca.crt
    DEMO_STATE=.demo .venv/bin/python scripts/demo_kiosk.py .demo/new-kiosk

Everything the kiosk learnt at enrollment comes from its state directory, as on a real first
boot: its id and post and the broker's address (``enrollment.json``), its certificate and key
(``kiosk.crt``, ``kiosk.key``, the key made there and never sent), the CA it knows the broker by
(``ca.crt``) and the keys that sign watchlists (``watchlist-keys/``). The rest is the demo's:
its synthetic population (the document trust, the travellers), the officers' file, a card reader
of its own (pcscd + vpcd) and a virtual MRZ reader. The agent and a traveller simulator run
until Ctrl-C (or SIGTERM); ``--check`` only writes ``kiosk.toml`` and checks it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import demo  # scripts/demo.py: the same kiosk configuration and processes as the demo's own

from edge.sim.pcscd import PcscStack, PcscStackError
from edge.sim.population import Population

REQUIRED = ("enrollment.json", "kiosk.crt", "kiosk.key", "ca.crt", "watchlist-keys")


def enrolled_uplink(state: Path) -> tuple[dict, demo.Uplink]:
    """The enrollment's facts and the uplink they give (raises SystemExit naming what is
    missing: this runs after ``borderlane-edge enroll``, and says so)."""
    missing = [name for name in REQUIRED if not (state / name).exists()]
    if missing:
        sys.exit(
            f"demo_kiosk: {state} holds no enrolled kiosk (no {', '.join(missing)}): "
            "run borderlane-edge enroll --state-dir there first"
        )
    facts = json.loads((state / "enrollment.json").read_text())
    broker = facts["broker"]
    uplink = demo.Uplink(
        str(broker["host"]),
        int(broker["port"]),
        state / "ca.crt",
        state / "kiosk.crt",
        state / "kiosk.key",
    )
    return facts, uplink


def stop(signum: int, frame: object) -> None:
    """SIGTERM: the same cleanup as Ctrl-C."""
    raise demo.Stop


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    state = Path(paths[0] if paths else demo.NEW_KIOSK).resolve()
    facts, uplink = enrolled_uplink(state)
    population = Population.load(demo.STATE / "population")
    (demo.STATE / "logs").mkdir(parents=True, exist_ok=True)
    directory = state / "run"
    shutil.rmtree(directory, ignore_errors=True)
    running = demo.Demo()
    signal.signal(signal.SIGTERM, stop)
    try:
        if check:
            directory.mkdir(parents=True)
            stack = PcscStack().start()
            running.stacks.append(stack)
            kiosk = demo.Kiosk(facts["device_id"], directory, stack, demo.free_port())
            path = demo.kiosk_config(
                kiosk, uplink, population, state / "watchlist-keys", facts["post"]
            )
            done = subprocess.run(
                [sys.executable, "-m", "edge", "run", "--config", str(path), "--check"],
                capture_output=True,
                text=True,
                env={**os.environ, **stack.env},
            )
            print((done.stdout + done.stderr).strip() or f"{path}: usable")
            return done.returncode
        kiosk = running.start_kiosk(
            facts["device_id"], directory, uplink, population, state / "watchlist-keys",
            facts["post"],
        )  # fmt: skip
        demo.wait_for_watchlist([kiosk])
        running.start_travellers(kiosk, population, seed=os.getpid() % 1000)
        print(
            f"{kiosk.name} at {facts['post']} is running: pages http://127.0.0.1:{kiosk.ui_port}/,"
            f" logs {demo.STATE / 'logs' / kiosk.name}.log; it shows on the fleet dashboard."
            " Ctrl-C stops it.",
            flush=True,
        )
        while all(p.poll() is None for p in running.processes):
            time.sleep(0.2)
        print(f"demo_kiosk: a process of {kiosk.name} exited; see {demo.STATE / 'logs'}")
        return 1
    except PcscStackError as exc:
        print(f"demo_kiosk: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, demo.Stop):
        return 0
    finally:
        running.stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
