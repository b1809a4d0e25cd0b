"""Processes for the chaos tests: a recording kiosk and a console ingest worker, each a real
process (to put in a network namespace, under libfaketime, or to kill -9), and a broker bound
to an address other than loopback.

Run as a program (``PYTHONPATH=tests python -m harness.chaos ...``):

``kiosk SETTINGS_JSON DB [--every S] [--count N] [--health S]``
    A kiosk's uplink (:class:`~edge.uplink.Uplink` on its durable outbox) and a lane that
    records a crossing every *S* seconds, *N* in all, each in one transaction with a durable
    counter (``lane_state.crossings``), as the real lane does. Prints ``recorded SEQ ID`` once
    each is committed, ``state STATE ERROR`` whenever the uplink's connection state changes
    (what the heartbeat's ``uplink`` component reports) and publishes a heartbeat
    (``health@1``) every *--health* seconds while connected. Runs until SIGTERM.

``console CONFIG_JSON``
    The console's ingest worker (:class:`~console.ingest.IngestWorker`) with the configuration
    given; prints ``ready`` and ``lost`` as its subscription comes and goes. Runs until
    SIGTERM, then commits, acks and disconnects as the real one does.

The test side reads their output with :class:`Process`, which stamps each line with the
test's monotonic clock as it arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mqtt_schemas
from edge.uplink import NotConnected, Outbox, StaticClock, Uplink, UplinkConfig
from mqtt_schemas.envelope import ENVELOPE_FIELDS, uuid7
from provisioning.broker import BrokerConfig, Mosquitto
from provisioning.pki import Pki

from .uplink import TESTS, UplinkBroker, UplinkPki, crossing_body

# -- the test side -------------------------------------------------------------------------------


class Process:
    """A child process whose stdout lines are collected, each with its arrival time."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self.popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.stderr.append(line)

    def words(self, first: str) -> list[tuple[float, list[str]]]:
        """The lines starting with *first*, split, with their arrival times."""
        with self._changed:
            lines = list(self.lines)
        return [(at, line.split(" ")) for at, line in lines if line.split(" ", 1)[0] == first]

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Until *condition()* holds; fails with the process's output after *timeout*."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{what}: not within {timeout} s\n{self.output()}")
                if self.popen.poll() is not None and not condition():
                    self._changed.wait(0.2)  # let the readers finish
                    if not condition():
                        raise AssertionError(f"{what}: the process exited\n{self.output()}")
                self._changed.wait(min(left, 0.1))

    def output(self) -> str:
        tail = "\n".join(line for _, line in self.lines[-40:])
        return f"{' '.join(self.argv)}\n--- stdout (tail)\n{tail}\n--- stderr\n" + "".join(
            self.stderr[-60:]
        )

    def kill(self) -> None:
        """SIGKILL, as a power cut."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        for reader in self._readers:
            reader.join(5)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"ignored SIGTERM\n{self.output()}") from None
        for reader in self._readers:
            reader.join(5)
        return self.popen.returncode

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, *processes: Process
) -> None:
    """Poll *condition* until it holds; on failure show what *processes* printed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = "\n".join(process.output() for process in processes)
            raise AssertionError(f"{what}: not within {timeout} s\n{shown}")
        time.sleep(0.05)


def python(module_args: list[str], prefix: list[str] | None = None) -> list[str]:
    """The command line of ``python -m harness.chaos *module_args*`` (after *prefix*)."""
    return [*(prefix or []), sys.executable, "-m", "harness.chaos", *module_args]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a chaos process: tests/ on the path, unbuffered, plus *extra*."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def kiosk(
    broker: UplinkBroker,
    device_id: str,
    db: Path,
    *,
    every: float,
    count: int,
    health: float = 0,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
    **broker_settings: Any,
) -> Process:
    """Start a recording kiosk (see the module documentation) against *broker*."""
    settings = broker.uplink_settings(device_id)
    settings["broker"].update(broker_settings)
    args = ["kiosk", json.dumps(settings), str(db), f"--every={every}", f"--count={count}"]
    return Process(python([*args, f"--health={health}"], prefix), env or child_env())


def console(
    broker: UplinkBroker,
    db: Path,
    *,
    keepalive: int = 60,
    prefix: list[str] | None = None,
) -> Process:
    """Start a console ingest worker process on *db* against *broker* (its own client id and
    share group, a broker session that outlives a partition)."""
    endpoint = broker.console_endpoint()
    unique = uuid7()[-12:]
    config = {
        "db": str(db),
        "endpoint": {k: str(v) for k, v in dataclasses.asdict(endpoint).items()},
        "node_id": "console-1",
        "client_id": f"chaos-{unique}",
        "group": f"chaos-{unique}",
        "session_expiry": 600,
        "max_delay": 0.01,
        "reconnect_min": 0.1,
        "reconnect_max": 0.5,
        "keepalive": keepalive,
    }
    return Process(python(["console", json.dumps(config)], prefix), child_env())


def faketime_env(timestamp_file: Path) -> dict[str, str]:
    """The environment of a chaos process whose wall clock is shifted by what
    *timestamp_file* says (libfaketime's offset syntax: ``+0``, ``+3d``, ``-2d``), re-read every
    second, so the test moves the clock while the process runs.

    Only the wall clock moves (``CLOCK_REALTIME``: ``time.time``, datetimes, the TLS
    certificate check); the monotonic clocks do not, as on a real kiosk whose clock is set
    (were they faked too, a step back of days would freeze every asyncio timer). In this mode
    libfaketime 0.9.10 fails ``time.sleep`` with EINVAL (its ``clock_nanosleep`` wrapper; asyncio
    does not call it, and the kiosk's uplink and lane are asyncio) and makes every hand-over
    between threads slow (tens of milliseconds): such a kiosk records a few crossings a second."""
    libraries = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not libraries:
        raise AssertionError("libfaketime not found; run `make system-packages` as root")
    return child_env(
        LD_PRELOAD=str(libraries[0]),
        FAKETIME_TIMESTAMP_FILE=str(timestamp_file),
        FAKETIME_CACHE_DURATION="1",  # re-read each second: FAKETIME_NO_CACHE slows every call
        FAKETIME_DONT_FAKE_MONOTONIC="1",
        NO_FAKE_STAT="1",  # file times stay real (and each stat call stays fast)
    )


def recorded(process: Process) -> list[str]:
    """The ids the kiosk reported committed, in order (a line cut short by a kill -9 reports
    nothing: the durable lane counter still counts its record)."""
    return [w[2] for _, w in process.words("recorded") if len(w) == 3 and len(w[2]) == 36]


def states(process: Process) -> list[tuple[float, str]]:
    """The kiosk's connection-state changes: (arrival time, state)."""
    return [(at, words[1]) for at, words in process.words("state")]


def kiosk_db(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the kiosk database (read-only, beside a running kiosk: WAL readers never block)."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


@contextlib.contextmanager
def broker_on(pki: UplinkPki, directory: Path, address: str) -> Iterator[UplinkBroker]:
    """A broker (as ``uplink_broker``: TLS, client certificates, the access rules) listening
    on *address*, for clients in another network namespace; *pki*'s broker certificate must
    name *address*."""
    config = dataclasses.replace(BrokerConfig.local(pki.pki, directory), bind_address=address)
    broker = UplinkBroker(pki, config, Mosquitto(config), host=address)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def pki_for(directory: Path, *addresses: str, days: int = 825) -> UplinkPki:
    """A PKI whose broker certificate names loopback and *addresses*, valid *days*."""
    pki = Pki.create(directory, "Borderlane Chaos Test")
    pki.services.issue_server("broker", hosts=["localhost", "127.0.0.1", *addresses], days=days)
    return UplinkPki(pki)


# -- the programs ---------------------------------------------------------------------------------


def _health_body(uplink: Uplink) -> dict[str, Any]:
    example = mqtt_schemas.examples("health")["valid"][0]["payload"]
    body = {k: v for k, v in example.items() if k not in ENVELOPE_FIELDS}
    status = uplink.status()
    body.update(status.health_fields())
    body["components"] = {"uplink": status.component()}
    return body


async def _kiosk(settings: str, db: str, every: float, count: int, health: float) -> None:
    config = UplinkConfig.from_dict(json.loads(settings))
    clock = StaticClock()  # "synced": a kiosk whose time is wrong rarely knows it
    outbox = Outbox(db, config.device_id, clock, config.outbox)
    outbox.db.execute(
        "CREATE TABLE IF NOT EXISTS lane_state (id INTEGER PRIMARY KEY, crossings INTEGER)"
    )
    outbox.db.execute("INSERT OR IGNORE INTO lane_state VALUES (1, 0)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def lane() -> None:
        (done,) = outbox.db.execute("SELECT crossings FROM lane_state").fetchone()
        for number in range(done, count):
            with outbox.transaction() as tx:
                tx.execute("UPDATE lane_state SET crossings = crossings + 1 WHERE id = 1")
                record = tx.enqueue("crossings", crossing_body(number))
            print("recorded", record.seq, record.id, flush=True)  # only once committed
            await asyncio.sleep(every)

    async def watch(uplink: Uplink) -> None:
        last = None
        while True:
            status = uplink.status()
            if status.state != last:
                last = status.state
                print("state", status.state.value, status.last_error or "", flush=True)
            await asyncio.sleep(0.02)

    async def heartbeat(uplink: Uplink) -> None:
        while health > 0:
            with contextlib.suppress(NotConnected):
                await uplink.publish_now("health", _health_body(uplink))
            await asyncio.sleep(health)

    async with Uplink(config, outbox, clock) as uplink:
        tasks = [
            asyncio.create_task(uplink.run()),
            asyncio.create_task(lane()),
            asyncio.create_task(watch(uplink)),
            asyncio.create_task(heartbeat(uplink)),
        ]
        await stop.wait()
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
    await asyncio.gather(tasks[0], return_exceptions=True)


async def _console(config_json: str) -> None:
    from console.connection import Endpoint
    from console.ingest import IngestConfig, IngestWorker

    options = json.loads(config_json)
    where = options.pop("endpoint")
    endpoint = Endpoint(
        where["host"],
        int(where["port"]),
        Path(where["ca_file"]),
        Path(where["cert_file"]),
        Path(where["key_file"]),
    )
    worker = IngestWorker(IngestConfig(endpoint=endpoint, **options))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def watch() -> None:
        last = None
        while True:
            ready = worker.ready.is_set()
            if ready != last:
                last = ready
                print("ready" if ready else "lost", worker.stats.stored, flush=True)
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        await worker.run(stop)
    finally:
        watcher.cancel()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="harness.chaos")
    modes = parser.add_subparsers(dest="mode", required=True)
    k = modes.add_parser("kiosk")
    k.add_argument("settings")
    k.add_argument("db")
    k.add_argument("--every", type=float, default=0.1)
    k.add_argument("--count", type=int, default=100)
    k.add_argument("--health", type=float, default=0)
    c = modes.add_parser("console")
    c.add_argument("config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.mode == "kiosk":
        asyncio.run(_kiosk(args.settings, args.db, args.every, args.count, args.health))
    else:
        asyncio.run(_console(args.config))


if __name__ == "__main__":
    main(sys.argv[1:])
