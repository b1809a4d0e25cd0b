"""The real kiosk agent as a process: ``python -m edge run --config kiosk.toml``, to kill -9.

``kiosk_rig`` builds everything one kiosk needs on the real parts: its own pcscd + vpcd
(a private stack, so the agent's card reader sees only its cards), a virtual serial MRZ reader
on a pty, a CBIC issuer the kiosk trusts, a watchlist signing key it trusts, a client
certificate from the test broker's CA, and a ``kiosk.toml`` naming all of it::

    def test_something(uplink_broker, kiosk_rig):
        rig = kiosk_rig(uplink_broker, "kiosk-e2e")
        rig.start()                        # the agent process
        rig.tap(rig.worker_card())          # a CBIC on the reader until the lane recorded it
        rig.kill()                          # SIGKILL, as a power cut
        assert rig.recorded() == 1          # crossings the lane committed (durable counter)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edge.screening.store import WatchlistStore
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import SAMPLES_DIR, IssuerKey, create_issuer, issue_card, save_issuer
from edge.sim.mrz_reader import VirtualMrzReader
from edge.sim.pcscd import PcscStack
from edge.sim.vpcd import VpcdClient
from mqtt_schemas.watchlist import generate_key, key_fingerprint, private_key_pem, public_key_pem

ROOT = Path(__file__).resolve().parent.parent.parent
SITE = "bz-santa-elena"


@pytest.fixture(scope="module")
def agent_pcsc() -> Iterator[PcscStack]:
    """A pcscd + vpcd of the agents' own (the session's ``pcsc_stack`` serves in-process tests)."""
    with PcscStack() as stack:
        yield stack


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class KioskRig:
    """One kiosk's files, its virtual devices and its agent process."""

    __test__ = False

    device_id: str
    directory: Path
    stack: PcscStack
    issuer: IssuerKey
    watchlist_key: Any
    watchlist_key_id: str
    config_path: Path
    mrz: VirtualMrzReader
    process: subprocess.Popen[str] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def kiosk_db(self) -> Path:
        return self.directory / "state" / "kiosk.db"

    def start(self, *, wait_ready: float = 20.0, env: dict[str, str] | None = None) -> None:
        """Start the agent; return once its lane serves (the kiosk database holds the lane).

        *env*: more environment variables for the agent (e.g. ``chaos.faketime_env``)."""
        log = self.directory / f"agent-{len(self.logs)}.log"
        self.logs.append(log)
        env = {**os.environ, **(env or {}), **self.stack.env, "PYTHONUNBUFFERED": "1"}
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edge", "run", "--config", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                cwd=ROOT,
            )
        deadline = time.monotonic() + wait_ready
        while "agent " not in self.log_text() or " started" not in self.log_text():
            if self.process.poll() is not None:
                raise AssertionError(f"the agent exited at start:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the agent did not start:\n{self.log_text()}")
            time.sleep(0.05)

    def wait_connected(self, sessions: int = 1, timeout: float = 20.0) -> None:
        """Until the agent's uplink connected *sessions* times (its log says so)."""
        deadline = time.monotonic() + timeout
        while self.log_text().count("uplink: connected") < sessions:
            if time.monotonic() > deadline:
                raise AssertionError(f"the agent did not connect:\n{self.log_text()}")
            time.sleep(0.05)

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.logs)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no offline message; the broker publishes the will."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM: the agent publishes offline and exits; returns its exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the agent ignored SIGTERM:\n{self.log_text()}") from None

    # -- what the kiosk holds ------------------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if not self.kiosk_db.exists():
            return []
        connection = sqlite3.connect(f"file:{self.kiosk_db}?mode=ro", uri=True, timeout=10)
        try:
            return connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # the lane's tables are not created yet
            return []
        finally:
            connection.close()

    def recorded(self) -> int:
        """Crossings the lane committed (durable, never reset: the kiosk's side of the count)."""
        rows = self.query("SELECT coalesce(sum(recorded), 0) FROM lane_state")
        return rows[0][0] if rows else 0

    def outbox_depth(self) -> int:
        rows = self.query("SELECT count(*) FROM uplink_outbox")
        return rows[0][0] if rows else 0

    # -- travellers ----------------------------------------------------------------------------

    def card(self, holder: dict[str, Any]) -> CbicCard:
        return CbicCard.from_image(issue_card(holder, self.issuer))

    def worker_card(self) -> CbicCard:
        return self.card(sample("resident-worker"))

    def tap(self, card: CbicCard, *, timeout: float = 10.0) -> bool:
        """Hold *card* on the reader until the lane recorded one more crossing; True if it did.

        False when the agent was not there to read it (killed meanwhile): a traveller whose
        tap nobody answered taps again, nothing was recorded for them.
        """
        before = self.recorded()
        with VpcdClient(card, port=self.stack.vpcd_port):
            deadline = time.monotonic() + timeout
            while self.recorded() == before:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
        time.sleep(0.5)  # pcscd's presence poll: the removal must be seen before the next tap
        return True


def write_config(rig_dir: Path, settings: dict[str, Any]) -> Path:
    """kiosk.toml from nested dicts (the subset of TOML the rig needs)."""
    lines: list[str] = []

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item) + "]"
        return json.dumps(str(item))

    def table(name: str, values: dict[str, Any]) -> None:
        scalars = {k: v for k, v in values.items() if not isinstance(v, dict)}
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {value(item)}" for key, item in scalars.items())
        lines.append("")
        for key, item in values.items():
            if isinstance(item, dict):
                table(f"{name}.{key}", item)

    for name, values in settings.items():
        table(name, values)
    path = rig_dir / "kiosk.toml"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def kiosk_rig(agent_pcsc: PcscStack, tmp_path: Path) -> Iterator[Callable[..., KioskRig]]:
    """Build a :class:`KioskRig` for a broker (``uplink_broker``); stopped after the test."""
    rigs: list[KioskRig] = []

    def build(
        broker: Any, device_id: str, *, watchlist_version: int = 1, **overrides: dict[str, Any]
    ) -> KioskRig:
        """*watchlist_version*: the version the kiosk's (empty) list starts at, as a kiosk
        image ships one; 0 is a kiosk that never had one (it refers everyone until it has)."""
        directory = tmp_path / device_id
        (directory / "issuers").mkdir(parents=True)
        if watchlist_version:
            with WatchlistStore(directory / "state" / "watchlist.db") as store:
                store.set_version(watchlist_version, source="kiosk image")
        (directory / "watchlist-keys").mkdir()
        issuer = create_issuer("bz-cbic-e2e-1")
        save_issuer(issuer, directory / "issuer-private")
        (directory / "issuers" / f"{issuer.key_id}.pem").write_bytes(issuer.public_pem())
        key = generate_key()
        key_id = f"wl-{key_fingerprint(key)[:12]}"
        (directory / "watchlist-keys" / f"{key_id}.pub.pem").write_bytes(public_key_pem(key))
        (directory / "watchlist.key.pem").write_bytes(private_key_pem(key))
        mrz = VirtualMrzReader(link=directory / "mrz-tty")
        mrz.__enter__()
        identity = broker.identity(device_id)
        settings: dict[str, dict[str, Any]] = {
            "agent": {
                "device_id": device_id,
                "data_dir": "state",
                "restart_initial_s": 0.2,
                "restart_max_s": 2,
            },
            "lane": {
                "site": SITE,
                "lane": "lane-1",
                "direction": "entry",
                "policy": {"show_s": 0.2},
            },
            "trust": {"issuers": "issuers"},
            "watchlist": {"trusted_keys": "watchlist-keys"},
            "card_reader": {"readers": [f"={agent_pcsc.reader_names[0]}"]},
            "mrz_reader": {"port": str(directory / "mrz-tty")},
            "uplink": {
                "broker": {
                    "host": broker.host,
                    "port": broker.tls_port,
                    "ca_file": str(broker.ca.cert_path),
                    "cert_file": str(identity.cert_path),
                    "key_file": str(identity.key_path),
                    "keepalive_s": 5,
                    "connect_timeout_s": 3,
                },
                "delivery": {"window": 64, "ack_timeout_s": 5},
                "backoff": {"initial_s": 0.05, "max_s": 0.4},
            },
            "ui": {"port": 0},
            "health": {"interval_s": 1},
        }
        for name, table_values in overrides.items():
            settings.setdefault(name, {}).update(table_values)
        rig = KioskRig(
            device_id,
            directory,
            agent_pcsc,
            issuer,
            key,
            key_id,
            write_config(directory, settings),
            mrz,
        )
        rigs.append(rig)
        return rig

    yield build
    for rig in rigs:
        with contextlib.suppress(Exception):
            rig.stop()
        rig.kill()
        rig.mrz.__exit__(None, None, None)
