"""A thousand kiosks against one broker and console, and a broker crash (issue 14, item 6).

Everything is real and on this machine: Mosquitto with TLS client certificates (one per kiosk,
issued once and cached under ``.bench/fleet/pki``, the dynamic-security rules knowing every
kiosk from the start), the console's ingest worker(s) as ``borderlane-console ingest``
processes on SQLite, and the kiosks in a few processes of their own
(:mod:`benchmarks._fleet_kiosks`: asyncio, one TLS connection and certificate per kiosk, the
uplink's own reconnect back-off, an outbox that keeps every record until the console acks it).

The load: each kiosk sends a ``health@1`` heartbeat every 30 s (the agent's default) and
crossings at random, 3 a minute on average (a self-service lane at a busy land border: one
traveller every ~20 s at peak), so 1,000 kiosks make ~50 crossings/s and ~33 heartbeats/s.

The run: the kiosks connect over a ramp of 20 s; after 60 s of steady traffic the broker is
killed (SIGKILL, as a crash or power cut: its in-memory sessions and queued messages are lost,
persistence is on but only written at shutdown or autosave) and started again at once on the
same ports; the kiosks notice their connection drop, reconnect with jittered back-off and
resend what was not acked. Sixty seconds after the last kiosk is back, the crossings stop and
the kiosks wait until every record is acked.

Figures: how long until every kiosk is connected again (from the kill) and the peak
reconnections per second (from the kiosks' own CONNACK times, 1 s bins); the ack latency
(published to acked, p50 and p99) in the steady period and the time from the broker's return
until every crossing made before all kiosks were back is acked; the ingest workers' CPU (steady
share of a core, CPU seconds from the kill to the end) and peak RSS; the broker's peak RSS
after the restart; and crossings stored of those published, which must be all of them, once
each (the database's rows and distinct ids against the ids the kiosks made).

Quick mode: 20 kiosks in 2 processes, 60 crossings a minute each, heartbeats every 1 s, a few
seconds on either side of the restart. ``BENCH_FLEET_KIOSKS``, ``BENCH_FLEET_PROCESSES`` and
``BENCH_FLEET_WORKERS`` change the full run's 1,000 kiosks, 4 processes and 1 ingest worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioning.broker import BrokerConfig, Mosquitto
from provisioning.pki import Identity, Pki, PkiError

from . import Figure, at_least
from ._fleet_kiosks import raise_fd_limit
from .ingest import CONSOLE, ROOT, SqliteTarget, Worker, _cpu_seconds

CACHE = ROOT / ".bench" / "fleet"
SCRIPTS = ROOT / "scripts"


@dataclass(frozen=True)
class Plan:
    """One run's shape."""

    kiosks: int
    processes: int
    workers: int
    crossings_per_min: float
    heartbeat_s: float
    ramp_s: float
    steady_s: float
    after_s: float
    drain_timeout_s: float
    ack_timeout_s: float | None
    """Resend an unacked record after this long; ``None``: the uplink's own (30 s)."""
    restart: str
    """``kill`` (SIGKILL, a crash) or ``stop`` (SIGTERM: the broker saves its sessions)."""

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        if quick:
            return cls(20, 2, 1, 60, 1, 0.5, 3, 2, 20, 2, "kill")
        return cls(
            int(os.environ.get("BENCH_FLEET_KIOSKS", 1000)),
            int(os.environ.get("BENCH_FLEET_PROCESSES", 4)),
            int(os.environ.get("BENCH_FLEET_WORKERS", 1)),
            3, 30, 20, 60, 60, 120, None,
            os.environ.get("BENCH_FLEET_RESTART", "kill"),
        )  # fmt: skip


def kiosk_names(count: int) -> list[str]:
    return [f"kiosk-fleet-{n:04d}" for n in range(1, count + 1)]


def cached_pki(directory: Path, count: int) -> tuple[Pki, Identity, list[Identity]]:
    """The benchmark's CA, broker and console identities and *count* kiosk certificates, made
    once in *directory* and reused (1,000 EC keys take a while to make). Runs at the same time
    (someone's ``make test`` runs the quick mode) take turns."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / "pki.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _cached_pki(directory, count)


def _cached_pki(directory: Path, count: int) -> tuple[Pki, Identity, list[Identity]]:
    pki = Pki.open_or_create(directory, "Fleet Bench")
    try:
        pki.services.identity("broker")
    except PkiError:
        pki.services.issue_server("broker", hosts=["127.0.0.1"])
    try:
        console = pki.services.identity("console")
    except PkiError:
        console = pki.services.issue_service_client("console")
    kiosks = []
    for name in kiosk_names(count):
        try:
            kiosks.append(pki.devices.identity(name))
        except PkiError:
            kiosks.append(pki.devices.issue_client(name))
    return pki, console, kiosks


class IngestWorker(Worker):
    """:class:`ingest.Worker` that also notes when each of its connections was made."""

    def __init__(self, command: list[str], db: str) -> None:
        self.connected_at: list[float] = []
        super().__init__(command, db)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if "connected to" in line:
                self.connected_at.append(time.time())
                self.connected.set()
        self.connected.set()


def _memory_kib(pid: int | None, field: str) -> int:
    """``VmRSS`` or ``VmHWM`` (peak RSS) of *pid* from /proc, in KiB (0 if gone)."""
    if pid is None:
        return 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class KioskProcess:
    """One process of simulated kiosks; its ``connected N`` lines are read as they come."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._fleet_kiosks", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(SCRIPTS), str(ROOT)])},
        )
        self.connected = 0
        self.done = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("connected "):
                self.connected = int(line.split()[1])
            elif line.strip() == "done":
                self.done.set()
        self.done.set()

    def stop(self) -> None:
        """Ask it to stop the crossings, drain its outboxes and write its results."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class Sampler:
    """Peak RSS of the broker (whichever process it is now) and the workers, every 250 ms."""

    def __init__(self, broker: Mosquitto, worker_pids: list[int]) -> None:
        self.broker, self.worker_pids = broker, worker_pids
        self.broker_peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.broker_peak_kib = max(self.broker_peak_kib, _memory_kib(self.broker.pid, "VmRSS"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _wait(condition: Any, timeout: float, what: str, processes: list[KioskProcess]) -> float:
    """Wait until *condition()*; fail when it takes *timeout* or a kiosk process ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        if any(p.process.poll() is not None for p in processes):
            raise RuntimeError(f"fleet: a kiosk process ended while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"fleet: {what} within {timeout:.0f} s")
        time.sleep(0.02)
    return time.time()


def _measure(plan: Plan, root: Path) -> dict[str, Any]:
    raise_fd_limit()  # Mosquitto inherits it: one descriptor per kiosk
    pki, console, kiosks = cached_pki(CACHE / "pki", plan.kiosks)
    config = BrokerConfig.local(
        pki, root / "broker", devices=tuple(k.name for k in kiosks), persistence=True
    )
    target = SqliteTarget(root / "console.db")
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        broker = Mosquitto(config)
        broker.start(timeout=30)
        stack.callback(broker.stop)
        workers: list[IngestWorker] = []
        stack.callback(lambda: [w.stop() for w in workers])
        for n in range(1, plan.workers + 1):
            workers.append(
                IngestWorker(
                    [
                        str(CONSOLE), "ingest",
                        "--broker", f"127.0.0.1:{config.service_port}",
                        "--cafile", str(pki.services.cert_path),
                        "--cert", str(console.cert_path), "--key", str(console.key_path),
                        "--group", "fleet", "--client-id", f"fleet-ingest-{n}",
                    ],
                    target.db,
                )
            )  # fmt: skip
        for worker in workers:
            worker.wait_connected(60)
        worker_pids = [w.process.pid for w in workers]
        sampler = Sampler(broker, worker_pids)
        stack.callback(sampler.close)

        processes: list[KioskProcess] = []
        stack.callback(lambda: [p.kill() for p in processes])
        share = -(-plan.kiosks // plan.processes)
        for number in range(plan.processes):
            mine = kiosks[number * share : (number + 1) * share]
            settings = {
                "host": "127.0.0.1",
                "port": config.tls_port,
                "ca": str(pki.services.cert_path),
                "kiosks": [[k.name, str(k.cert_path), str(k.key_path)] for k in mine],
                "crossings_per_min": plan.crossings_per_min,
                "heartbeat_s": plan.heartbeat_s,
                "ramp_s": plan.ramp_s,
                "drain_timeout_s": plan.drain_timeout_s,
                "ack_timeout_s": plan.ack_timeout_s,
                "seed": number,
                "results": str(root / f"kiosks-{number}.json"),
            }
            path = root / f"kiosks-{number}.config.json"
            path.write_text(json.dumps(settings))
            processes.append(KioskProcess(path))

        def connected() -> int:
            return sum(p.connected for p in processes)

        started = time.time()
        ready = _wait(
            lambda: connected() == plan.kiosks, plan.ramp_s + 120, "all kiosks connected", processes
        )
        cpu_ready = sum(map(_cpu_seconds, worker_pids))
        time.sleep(plan.steady_s)
        cpu_kill = sum(map(_cpu_seconds, worker_pids))
        kiosks_cpu_kill = sum(_cpu_seconds(p.process.pid) for p in processes)
        killed = time.time()
        if plan.restart == "kill":
            broker.kill()
        else:
            broker.stop(timeout=30)
        broker.start(timeout=30)
        back_up = time.time()
        # The kernel closes every connection of the dead broker: wait to see them go, then back.
        with contextlib.suppress(TimeoutError):
            _wait(lambda: connected() < plan.kiosks, 5, "kiosks noticed", processes)
        all_back = _wait(
            lambda: connected() == plan.kiosks, 300, "all kiosks reconnected", processes
        )
        broker_cpu_storm = _cpu_seconds(broker.pid)  # the new broker's, since its start
        kiosks_cpu_storm = sum(_cpu_seconds(p.process.pid) for p in processes) - kiosks_cpu_kill
        time.sleep(plan.after_s)
        stopped = time.time()
        for process in processes:
            process.stop()
        for process in processes:
            if not process.done.wait(plan.drain_timeout_s + 60):
                raise TimeoutError("fleet: a kiosk process did not finish")
        drained = time.time()
        cpu_end = sum(map(_cpu_seconds, worker_pids))
        worker_peak_kib = max(_memory_kib(pid, "VmHWM") for pid in worker_pids)
        broker_peak_kib = max(sampler.broker_peak_kib, _memory_kib(broker.pid, "VmHWM"))
        load_after = os.getloadavg()
        for worker in workers:
            worker.stop()
        if plan.kiosks > 20:  # not quick runs, which other people's tests make at any time
            _keep_logs(broker, workers)
        summaries = [w.summary() for w in workers]
    results = [k for n in range(plan.processes) for k in _load(root / f"kiosks-{n}.json")]
    rows, distinct, ids = target.stored_ids()
    return {
        "results": results,
        "started": started,
        "ready": ready,
        "killed": killed,
        "back_up": back_up,
        "all_back_seen": all_back,
        "stopped": stopped,
        "drained": drained,
        "cpu_steady_cores": (cpu_kill - cpu_ready) / (killed - ready),
        "cpu_steady_s": cpu_kill - cpu_ready,
        "cpu_after_kill_s": cpu_end - cpu_kill,
        "cpu_total_s": cpu_end,
        "worker_peak_mib": worker_peak_kib / 1024,
        "broker_peak_mib": broker_peak_kib / 1024,
        "broker_cpu_storm_s": broker_cpu_storm,
        "kiosks_cpu_storm_s": kiosks_cpu_storm,
        "console_back": max(min(t for t in w.connected_at if t > killed) for w in workers),
        "rows": rows,
        "distinct": distinct,
        "ids": ids,
        "worker_stored": sum(s[1] for s in summaries),
        "quarantined": sum(s[2] for s in summaries),
        "load": (load_before[0], load_after[0]),
    }


def _keep_logs(broker: Mosquitto, workers: list[IngestWorker]) -> None:
    """The broker's and the workers' logs of the last run, in ``.bench/fleet/last-run/``."""
    kept = CACHE / "last-run"
    kept.mkdir(parents=True, exist_ok=True)
    (kept / "mosquitto.log").write_text(broker.log())
    for number, worker in enumerate(workers, 1):
        (kept / f"ingest-{number}.log").write_text(worker.log)


def _load(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _figures(plan: Plan, m: dict[str, Any]) -> list[Figure]:
    kiosks = m["results"]
    killed, back_up = m["killed"], m["back_up"]
    # Each kiosk's first connection after the kill.
    returns = [min((t for t in k["connects"] if t > killed), default=None) for k in kiosks]
    back = [t for t in returns if t is not None]
    all_back_s = max(back) - killed
    per_second = Counter(int(t - killed) for t in back)
    per_100ms = Counter(int(10 * (t - killed)) for t in back)
    peak_s, peak = per_second.most_common(1)[0]
    failed = sum(k["failed_attempts"] for k in kiosks)
    # Each kiosk's first attempt after the kill: where the back-off's jitter put it.
    tried = sorted(
        min((t for t in k["attempts"] if t > killed), default=killed) - killed for k in kiosks
    )

    records = [r for k in kiosks for r in k["records"]]  # [id, created, first_sent, acked, sends]
    published = {r[0] for r in records if r[2]}
    steady = [r[3] - r[2] for r in records if m["ready"] <= r[2] and 0 < r[3] < killed]
    # The backlog: every crossing made before the last kiosk was back, acked after the kill.
    backlog = [r for r in records if r[1] < max(back) and r[3] > killed]
    drain_s = max(r[3] for r in backlog) - back_up if backlog else 0.0
    unacked = [r for r in records if not r[3]]
    resent = sum(r[4] - 1 for r in records if r[4] > 1)
    exact = (
        m["rows"] == m["distinct"] == len(published) == m["worker_stored"]
        and m["ids"] == published
        and not unacked
        and not m["quarantined"]
    )
    load = "load average {:.1f} before, {:.1f} after".format(*m["load"])
    shape = (
        f"{plan.kiosks} kiosks in {plan.processes} processes, {plan.crossings_per_min:g} "
        f"crossings/min and a heartbeat every {plan.heartbeat_s:g} s each, {plan.workers} "
        f"SQLite ingest worker{'s' if plan.workers > 1 else ''}"
    )
    return [
        at_least("kiosks connected again after the broker restart", len(back), "kiosks",
                 plan.kiosks, f"{shape}; {load}"),
        Figure("all kiosks connected again, from the kill", all_back_s, "s",
               note=f"broker listening again {back_up - killed:.2f} s after the kill; first "
                    f"attempts {tried[0]:.2f}-{tried[-1]:.2f} s after it; {failed} refused or "
                    f"failed attempts in all; CPU until all back: broker "
                    f"{m['broker_cpu_storm_s']:.1f} s, kiosk processes "
                    f"{m['kiosks_cpu_storm_s']:.1f} s"),
        Figure("peak reconnections per second", peak, "connections/s",
               note=f"in second {peak_s} after the kill; busiest 100 ms: "
                    f"{per_100ms.most_common(1)[0][1]}; mean over the storm "
                    f"{len(back) / max(all_back_s, 0.001):.0f}/s"),
        Figure("ack latency p50, steady", 1000 * statistics.median(steady), "ms",
               note=f"published to acked, {len(steady)} crossings before the kill"),
        Figure("ack latency p99, steady", 1000 * _percentile(steady, 0.99), "ms"),
        Figure("backlog drained, from the broker's return", max(drain_s, 0.001), "s",
               note=f"{len(backlog)} crossings made before all kiosks were back and acked after "
                    f"the kill; {resent} publishes were resends; the ingest workers were "
                    f"subscribed again {m['console_back'] - killed:.1f} s after the kill"),
        Figure("console ingest CPU, steady", 100 * m["cpu_steady_cores"], "% of a core",
               note=f"{m['cpu_steady_s']:.1f} CPU s in {m['killed'] - m['ready']:.0f} s; "
                    f"{m['cpu_after_kill_s']:.1f} CPU s from the kill to the end, "
                    f"{m['cpu_total_s']:.1f} in all"),
        Figure("console ingest peak RSS", m["worker_peak_mib"], "MiB", note="VmHWM"),
        Figure("broker peak RSS", m["broker_peak_mib"], "MiB",
               note="the restarted broker's VmHWM or the highest sample of either"),
        Figure("crossings stored of those published", m["rows"], "crossings",
               f"= {len(published)}", exact,
               note=f"{m['distinct']} distinct ids, {len(unacked)} never acked, "
                    f"{m['quarantined']} quarantined"),
    ]  # fmt: skip


def run(quick: bool) -> list[Figure]:
    plan = Plan.for_mode(quick)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        measured = _measure(plan, Path(tmp))
    figures = _figures(plan, measured)
    print(
        "fleet: " + "; ".join(f"{f.name} {f.value:,.1f} {f.unit}" for f in figures),
        file=sys.stderr,
    )
    return figures
