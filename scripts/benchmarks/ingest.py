"""Console ingest throughput: 50 kiosks publish crossings; how many per second are stored and acked,
on each database backend (SQLite, PostgreSQL) with 1, 2 and 4 ingest workers.

Everything is real and on this machine: Mosquitto with TLS client certificates (one per kiosk,
from a throw-away CA) on free ports, each ingest worker a ``borderlane-console ingest`` process of
its own (one share group, one client id each: how a deployment scales past one core), and the
kiosks as MQTT clients in this process. The kiosks speak MQTT 5 over TLS with their own
certificates through :mod:`_lean_mqtt`, a minimal client written for this benchmark: ~22 µs of
CPU per crossing where paho-mqtt took ~55 µs, CPU the kiosks' own hardware pays in the field and
that this shared 2-core machine would otherwise take from the broker, workers and database.

Each kiosk behaves like an outbox: it publishes its crossings (QoS 1, serialised in advance, as
an outbox stores them) as fast as the broker's flow control (its Receive Maximum) and its window
of unacked records allow, frees a slot for each id the console acks, and
republishes a record still unacked after a timeout.

Each run (backend x workers) has a fresh broker and a fresh database: a SQLite file, or a new
database on one PostgreSQL server started for the benchmark (``tests/harness/postgres.py``,
``durable=True``: fsync and synchronous_commit on, PostgreSQL's defaults otherwise).

Figures per run, from the moment every kiosk starts publishing:

* stored: all crossings committed in the console database (polled every 10 ms once the kiosks
  have 90% of their acks; a poll that already finds them all is marked as an upper bound);
* acked: every kiosk has received the ack of each of its crossings;
* ack latency (publish to ack received) p50 and p99, the mean batch the workers committed, and
  the CPU time per crossing of the workers, the database server, the broker and the simulated
  kiosks, with how busy the whole machine was (other people's jobs included).

After each run every published id must be in the database exactly once and the workers must
report exactly that many stored: a benchmark that loses or doubles records fails.

Targets (the issue's): SQLite with 1 worker >= 5,000 crossings/s stored and acked; PostgreSQL,
the best of its worker counts, >= 10,000/s. The rest are reported as measured.

Quick mode: sqlite x 1 and postgresql x 1 workers, 2 kiosks x 50 crossings.
``BENCH_INGEST_RUNS`` picks runs, e.g. ``postgresql:1,postgresql:2``. ``BENCH_INGEST_COMMAND``
replaces ``borderlane-console`` in the workers' command line, e.g. with a profiler wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib.util
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

import mqtt_schemas
from mqtt_schemas import topics
from mqtt_schemas.envelope import utc_now, uuid7
from provisioning.broker import BrokerConfig, Mosquitto
from provisioning.pki import Identity
from provisioning.pki import Pki as Authorities

from . import Figure, at_least
from ._lean_mqtt import LeanPublisher, utf8

SQLITE_TARGET_PER_S = 5000
"""SQLite, one worker: crossings stored and acked per second."""
POSTGRES_TARGET_PER_S = 10000
"""PostgreSQL, the best of the worker counts."""
BACKENDS = ("sqlite", "postgresql")
WORKER_COUNTS = (1, 2, 4)
QUICK_RUNS = (("sqlite", 1), ("postgresql", 1))
WINDOW = 50
"""Unacked records per kiosk. 50 kiosks x 50 stay below what Mosquitto holds for one worker
(its receive maximum, 2,000, plus the default max_queued_messages, 1,000), so the broker never
drops; a kiosk outbox must bound its window the same way."""
REPUBLISH_AFTER_S = 10.0
POLL_FROM = 0.9
"""The database is polled for the stored count once the kiosks have this share of their acks
(a count on PostgreSQL scans the table: polling all along would take CPU from the run)."""
CONSOLE = Path(sys.executable).parent / "borderlane-console"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class KioskRun:
    device_id: str
    payloads: list[tuple[str, bytes]]
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    republished: int = 0
    done_at: float = 0.0


@dataclass
class Pki:
    """The throw-away CA and every identity, made once for all runs."""

    authorities: Authorities
    console: Identity
    kiosks: dict[str, Identity]

    @property
    def ca(self):
        """The service CA, by which clients recognise the broker."""
        return self.authorities.services


def _pki(root: Path, kiosk_count: int) -> Pki:
    authorities = Authorities.create(root / "pki", "Bench")
    authorities.services.issue_server("broker", hosts=["127.0.0.1"])
    names = [f"kiosk-bench-{n:02d}" for n in range(1, kiosk_count + 1)]
    return Pki(
        authorities,
        authorities.services.issue_service_client("console"),
        {name: authorities.devices.issue_client(name) for name in names},
    )


def _payloads(device_id: str, count: int) -> list[tuple[str, bytes]]:
    template = mqtt_schemas.examples("crossing")["valid"][0]["payload"]
    made = []
    for seq in range(1, count + 1):
        payload = copy.deepcopy(template)
        payload.update(id=uuid7(), device_id=device_id, seq=seq, time=utc_now())
        made.append((payload["id"], json.dumps(payload, separators=(",", ":")).encode()))
    return made


def _client(
    host: str, port: int, ca: Path, identity: Identity, on_message: Callable[[str, bytes], None]
) -> LeanPublisher:
    return LeanPublisher(
        host,
        port,
        ca,
        identity.cert_path,
        identity.key_path,
        f"bench-{identity.name}",
        on_message,
    )


class Progress:
    """Acks received by all kiosks together (for when to start polling the database)."""

    def __init__(self) -> None:
        self.acked = 0


class Kiosk:
    """One simulated kiosk: its outbox's window of unacked records, and the console's acks."""

    def __init__(self, run: KioskRun, window: int, progress: Progress) -> None:
        self.run = run
        self.topic = utf8(topics.device_topic(run.device_id, "crossings"))
        self.by_id = dict(run.payloads)
        self.slots = asyncio.Semaphore(window)
        self.remaining = set(self.by_id)
        self.finished = asyncio.Event()
        self.progress = progress
        self.client: LeanPublisher | None = None

    def on_message(self, topic: str, payload: bytes) -> None:
        """An ack from the console: free a slot for each of our records it acknowledges."""
        now = time.perf_counter()
        run = self.run
        for record_id in json.loads(payload)["acked"]:
            if record_id in self.remaining:
                self.remaining.discard(record_id)
                self.progress.acked += 1
                run.latencies.append(now - run.sent_at[record_id])
                self.slots.release()
        if not self.remaining:
            run.done_at = now
            self.finished.set()

    async def publish(self, record_id: str) -> None:
        # The kiosk learns what was stored from the console's acks, not from PUBACKs.
        assert self.client is not None
        self.run.sent_at[record_id] = time.perf_counter()
        await self.client.publish(self.topic, self.by_id[record_id])

    async def republish_stale(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            cutoff = time.perf_counter() - REPUBLISH_AFTER_S
            for record_id in [r for r in self.remaining if self.run.sent_at.get(r, 1e18) < cutoff]:
                self.run.republished += 1
                await self.publish(record_id)

    async def send_all(self, start: asyncio.Event) -> None:
        janitor = asyncio.create_task(self.republish_stale())
        try:
            await start.wait()
            for record_id, _ in self.run.payloads:
                await self.slots.acquire()
                await self.publish(record_id)
            await self.finished.wait()
        finally:
            janitor.cancel()
            await asyncio.gather(janitor, return_exceptions=True)


# -- databases --------------------------------------------------------------------------------


class SqliteTarget:
    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = str(path)

    def stored_rows(self) -> int:
        """Rows in ``crossings`` (``max(rowid)``: nothing is deleted, so it is the count)."""
        if not self.path.exists():
            return 0
        with (
            contextlib.closing(sqlite3.connect(self.path, timeout=10)) as conn,
            contextlib.suppress(sqlite3.OperationalError),
        ):
            (rows,) = conn.execute("SELECT max(rowid) FROM crossings").fetchone()
            return rows or 0
        return 0

    def stored_ids(self) -> tuple[int, int, set[str]]:
        """(rows, distinct ids, the ids) in ``crossings``."""
        with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as conn:
            rows, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT id) FROM crossings"
            ).fetchone()
            ids = {r for (r,) in conn.execute("SELECT id FROM crossings")}
        return rows, distinct, ids

    def server_pids(self) -> list[int]:
        return []  # in the workers' own processes

    def close(self) -> None:
        pass


class PostgresTarget:
    backend = "postgresql"

    def __init__(self, server: Any, name: str) -> None:
        self.server = server
        self.name = name
        self.db = server.create_database(name)
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None:
            self._conn = self.server.connect(self.name, autocommit=True)
        return self._conn

    def stored_rows(self) -> int:
        try:
            return self._connection().execute("SELECT count(*) FROM crossings").fetchone()[0]
        except psycopg.Error:  # not created yet, or the connection broke: ask again next time
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return 0

    def stored_ids(self) -> tuple[int, int, set[str]]:
        conn = self._connection()
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM crossings"
        ).fetchone()
        ids = {r for (r,) in conn.execute("SELECT id FROM crossings")}
        return rows, distinct, ids

    def server_pids(self) -> list[int]:
        """The postmaster and its children (backends, WAL writer, checkpointer...)."""
        root = self.server.pid
        pids = [root]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[1]) == root:
                        pids.append(int(entry.name))
        return pids

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.server.drop_database(self.name)


def _postgres_server_class() -> type:
    """``PostgresServer`` from the test harness, imported by path (scripts are not a package
    of the tests; the harness module needs only pytest, psycopg and SQLAlchemy to import)."""
    path = ROOT / "tests" / "harness" / "postgres.py"
    spec = importlib.util.spec_from_file_location("borderlane_bench_postgres", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PostgresServer


# -- CPU --------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {pid: _cpu_seconds(pid) for pid in pids}


def _machine_ticks() -> tuple[int, int, int]:
    """(busy, iowait, total) clock ticks of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle, iowait = values[3], values[4]
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle - iowait, iowait, total


# -- one run ----------------------------------------------------------------------------------


class Worker:
    """One ``borderlane-console ingest`` process; its log is read as it comes (a full pipe
    would stall it)."""

    def __init__(self, command: list[str], db: str) -> None:
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            # as a deployment would: a database URL (and its password) off the command line
            env={**os.environ, "BORDERLANE_CONSOLE_DB": db},
        )
        self.lines: list[str] = []
        self.connected = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            if "connected to" in line:
                self.connected.set()
        self.connected.set()  # exited: whoever waits looks at poll()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_connected(self, timeout: float) -> None:
        if not self.connected.wait(timeout) or self.process.poll() is not None:
            raise RuntimeError(f"an ingest worker did not connect: {self.log[-2000:]}")

    def stop(self, timeout: float = 60) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(10)

    def summary(self) -> tuple[int, int, int, int]:
        """(messages, stored, quarantined, commits) from the worker's last log line."""
        found = re.search(
            r"ingest stopped: (\d+) messages, (\d+) stored, \d+ duplicates, (\d+) quarantined, "
            r"(\d+) commits",
            self.log,
        )
        if self.process.returncode != 0 or found is None:
            raise RuntimeError(
                f"an ingest worker failed ({self.process.returncode}): {self.log[-2000:]}"
            )
        messages, stored, quarantined, commits = (int(g) for g in found.groups())
        return messages, stored, quarantined, commits


async def _wait_stored(
    target: SqliteTarget | PostgresTarget,
    progress: Progress,
    count: int,
    deadline: float,
) -> tuple[float, bool]:
    """When ``crossings`` first holds *count* rows, and whether the first poll found them all
    (then the time is an upper bound)."""
    while progress.acked < POLL_FROM * count:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"fewer than {count} crossings acked in time")
        await asyncio.sleep(0.01)

    def poll() -> tuple[float, bool]:
        first = True
        while time.perf_counter() < deadline:
            if target.stored_rows() >= count:
                return time.perf_counter(), first
            first = False
            time.sleep(0.01)
        raise TimeoutError(f"fewer than {count} crossings stored in time")

    return await asyncio.to_thread(poll)


async def _measure(
    root: Path,
    pki: Pki,
    target: SqliteTarget | PostgresTarget,
    workers: int,
    per_kiosk: int,
) -> dict[str, float]:
    config = BrokerConfig.local(
        pki.authorities, root / "broker", devices=tuple(pki.kiosks), persistence=False
    )
    runs = [KioskRun(name, _payloads(name, per_kiosk)) for name in pki.kiosks]
    published = {record_id for r in runs for record_id, _ in r.payloads}
    total = len(published)
    progress = Progress()
    command = os.environ.get("BENCH_INGEST_COMMAND", str(CONSOLE)).split()
    processes: list[Worker] = []
    with Mosquitto(config) as broker:
        try:
            for n in range(1, workers + 1):
                processes.append(
                    Worker(
                        [
                            *command, "ingest",
                            "--broker", f"127.0.0.1:{config.service_port}",
                            "--cafile", str(pki.ca.cert_path),
                            "--cert", str(pki.console.cert_path),
                            "--key", str(pki.console.key_path),
                            "--group", "bench", "--client-id", f"bench-ingest-{n}",
                            *os.environ.get("BENCH_INGEST_ARGS", "").split(),
                        ],
                        target.db,
                    )
                )  # fmt: skip
            for process in processes:
                await asyncio.to_thread(process.wait_connected, 60)
            kiosks = [Kiosk(r, WINDOW, progress) for r in runs]
            async with contextlib.AsyncExitStack() as stack:
                for kiosk in kiosks:
                    identity = pki.kiosks[kiosk.run.device_id]
                    client = _client(
                        "127.0.0.1", config.tls_port, pki.ca.cert_path, identity, kiosk.on_message
                    )
                    kiosk.client = await stack.enter_async_context(client)
                    await client.subscribe(topics.device_topic(kiosk.run.device_id, "acks"))
                start = asyncio.Event()
                tasks = [asyncio.create_task(kiosk.send_all(start)) for kiosk in kiosks]
                worker_pids = [p.process.pid for p in processes]
                database_before = _cpu_by_pid(target.server_pids())
                cpu_workers = sum(map(_cpu_seconds, worker_pids))
                cpu_broker = _cpu_seconds(broker.pid)
                cpu_kiosks = time.process_time()
                machine_before = _machine_ticks()
                started = time.perf_counter()
                start.set()
                stored_at, stored_bound = await _wait_stored(target, progress, total, started + 300)
                async with asyncio.timeout(300):
                    await asyncio.gather(*tasks)
                elapsed = time.perf_counter() - started
                machine = [b - a for a, b in zip(machine_before, _machine_ticks(), strict=True)]
                cpu_kiosks = time.process_time() - cpu_kiosks
                cpu_workers = sum(map(_cpu_seconds, worker_pids)) - cpu_workers
                cpu_broker = _cpu_seconds(broker.pid) - cpu_broker
                database_after = _cpu_by_pid(target.server_pids())
                cpu_database = sum(
                    cpu - database_before.get(pid, 0.0) for pid, cpu in database_after.items()
                )
            for process in processes:
                await asyncio.to_thread(process.stop)
        finally:
            for process in processes:
                process.stop()
    summaries = [process.summary() for process in processes]
    messages = sum(s[0] for s in summaries)
    stored = sum(s[1] for s in summaries)
    quarantined = sum(s[2] for s in summaries)
    commits = sum(s[3] for s in summaries)
    rows, distinct, ids = await asyncio.to_thread(target.stored_ids)
    if stored != total or quarantined or rows != total or distinct != total or ids != published:
        raise RuntimeError(
            f"{target.backend} x {workers}: {total} crossings published; the workers report "
            f"{stored} stored and {quarantined} quarantined; the database holds {rows} rows, "
            f"{distinct} distinct ids, {len(ids & published)} of the published ones"
        )
    latencies = sorted(x for r in runs for x in r.latencies)
    acked_at = max(r.done_at for r in runs)
    # A worker acks only after its commit: everything was stored by the last ack at the latest.
    stored_at = min(stored_at, acked_at)
    busy, iowait, ticks = machine
    cores = os.cpu_count() or 1
    ours = cpu_workers + cpu_database + cpu_broker + cpu_kiosks
    return {
        "stored_per_s": total / (stored_at - started),
        "stored_bound": stored_bound,
        "acked_per_s": total / (acked_at - started),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "batch": messages / max(commits, 1),
        "commits": commits,
        "worker_cpu": 1e6 * cpu_workers / total,
        "database_cpu": 1e6 * cpu_database / total,
        "broker_cpu": 1e6 * cpu_broker / total,
        "kiosks_cpu": 1e6 * cpu_kiosks / total,
        # Cores' worth over the run: the whole machine, and what was not ours (other jobs).
        "machine_cores": cores * busy / max(ticks, 1),
        "iowait_cores": cores * iowait / max(ticks, 1),
        "others_cores": max(0.0, cores * busy / max(ticks, 1) - ours / elapsed),
        "republished": sum(r.republished for r in runs),
        "total": total,
    }


# -- the matrix -------------------------------------------------------------------------------


def _selected_runs(quick: bool) -> list[tuple[str, int]]:
    chosen = os.environ.get("BENCH_INGEST_RUNS", "").strip()
    if not chosen:
        if quick:
            return list(QUICK_RUNS)
        return [(backend, n) for backend in BACKENDS for n in WORKER_COUNTS]
    runs = []
    for item in chosen.split(","):
        backend, _, count = item.strip().partition(":")
        if backend not in BACKENDS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"BENCH_INGEST_RUNS: {item!r} is not BACKEND:WORKERS ({BACKENDS})")
        runs.append((backend, int(count)))
    return runs


def _label(backend: str, workers: int) -> str:
    return f"{backend}, {workers} worker{'s' if workers > 1 else ''}"


def _run_figures(backend: str, workers: int, r: dict, load: str, quick: bool) -> list[Figure]:
    label = _label(backend, workers)
    bound = "; the first poll found them all (an upper bound)" if r["stored_bound"] else ""
    stored_note = f"{load}{bound}"
    acked_note = (
        f"ack latency p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms; "
        f"{r['republished']} republished after a timeout"
    )
    if backend == "sqlite" and workers == 1:
        figures = [
            at_least(f"{label}: crossings stored", r["stored_per_s"], "crossings/s",
                     SQLITE_TARGET_PER_S, stored_note),
            at_least(f"{label}: crossings acked", r["acked_per_s"], "crossings/s",
                     SQLITE_TARGET_PER_S, acked_note),
        ]  # fmt: skip
    else:
        figures = [
            Figure(
                f"{label}: crossings stored", r["stored_per_s"], "crossings/s", note=stored_note
            ),
            Figure(f"{label}: crossings acked", r["acked_per_s"], "crossings/s", note=acked_note),
        ]
    figures.append(
        Figure(
            f"{label}: mean batch committed", r["batch"], "messages", note=f"{r['commits']} commits"
        )
    )
    if not quick:  # a quick run is too short for CPU clock ticks
        parts = [
            f"workers {r['worker_cpu']:.0f}",
            *([f"postgres {r['database_cpu']:.0f}"] if backend == "postgresql" else []),
            f"broker {r['broker_cpu']:.0f}",
            f"kiosks {r['kiosks_cpu']:.0f}",
        ]
        total = r["worker_cpu"] + r["database_cpu"] + r["broker_cpu"] + r["kiosks_cpu"]
        note = (
            f"{', '.join(parts)}; machine busy {r['machine_cores']:.2f} of {os.cpu_count()} "
            f"cores (other jobs {r['others_cores']:.2f}), iowait {r['iowait_cores']:.2f}"
        )
        figures.append(Figure(f"{label}: CPU per crossing, all processes", total, "us", note=note))
    return figures


def run(quick: bool) -> list[Figure]:
    kiosks, per_kiosk = (2, 50) if quick else (50, 1000)
    matrix = _selected_runs(quick)
    load = f"{kiosks} kiosks x {per_kiosk}, TLS, window {WINDOW}"
    figures: list[Figure] = []
    best: tuple[float, int] | None = None
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ingest-")))
        pki = _pki(tmp, kiosks)
        server = None
        if any(backend == "postgresql" for backend, _ in matrix):
            # Started here, on the main thread, which outlives it (see PostgresServer).
            server = stack.enter_context(_postgres_server_class()(durable=True))
        for number, (backend, workers) in enumerate(matrix, 1):
            root = tmp / f"run-{number}"
            root.mkdir()
            if backend == "sqlite":
                target = SqliteTarget(root / "console.db")
            else:
                target = PostgresTarget(server, f"bench_ingest_{number}")
            try:
                r = asyncio.run(_measure(root, pki, target, workers, per_kiosk))
            finally:
                target.close()
            print(
                f"ingest {_label(backend, workers)}: stored {r['stored_per_s']:,.0f}/s, "
                f"acked {r['acked_per_s']:,.0f}/s, batch {r['batch']:.0f}, "
                f"machine {r['machine_cores']:.2f} cores (others {r['others_cores']:.2f})",
                file=sys.stderr,
            )
            figures += _run_figures(backend, workers, r, load, quick)
            if backend == "postgresql" and (best is None or r["acked_per_s"] > best[0]):
                best = (r["acked_per_s"], workers)
    if best is not None:
        counts = "/".join(str(n) for b, n in matrix if b == "postgresql")
        counts += " workers" if counts != "1" else " worker"
        figures.append(
            at_least(
                f"postgresql, best of {counts}: crossings stored and acked",
                best[0],
                "crossings/s",
                POSTGRES_TARGET_PER_S,
                f"{best[1]} worker{'s' if best[1] > 1 else ''} (acked, the later of the two)",
            )
        )
    return figures
