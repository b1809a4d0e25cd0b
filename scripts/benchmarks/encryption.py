"""What encrypting the kiosk's state at rest costs: the same workloads, plain and encrypted.

Two ext4 file systems of the same size, each in a file on the same disk and mounted through a
loop device (as root): one with a plain state directory, one with the state directory
encrypted as ``images/encrypt-state.sh`` does it (fscrypt v2, AES-256-XTS contents, AES-256-CTS
names; ``edge.agent.encryption``). On each, alternately, so that a change in the shared
machine's load falls on both:

* outbox enqueue, one transaction per record (with a lane-state update, as the lane commits a
  crossing): each commit is an fsync of the WAL (``synchronous=FULL``);
* outbox enqueue, batched (5,000 records per transaction): bytes through SQLite and the
  kernel's encryption, few fsyncs;
* watchlist screening per traveller (a synthetic list of listed persons from
  ``edge.sim.watchlist``, imported with the store's loader; the screener as the lane uses it):
  warm (the pages in the page cache: already decrypted, encryption costs nothing) and cold
  (the store's page cache dropped before every traveller with ``posix_fadvise(DONTNEED)``, so
  every page the screener touches is read from the loop device again and, when encrypted,
  decrypted again; only these files' cache is dropped, nothing else on the shared machine; the
  loop device's backing file mostly stays cached, so this measures the decryption, not a disk);
* 64 MiB written and fsynced, then read back cold: the raw cost of the cipher.

Each figure is given plain and encrypted, and the encrypted one's time as a percentage of the
plain one's (103: 3% slower). The loop devices add their own cost to both, so the figures
compare the two; they are not what an SD card gives. Quick mode: tiny workloads; the figures
then judge nothing.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mqtt_schemas
from edge.agent.encryption import lock, setup
from edge.screening.matcher import Query, Screener
from edge.screening.store import WatchlistStore
from edge.sim.watchlist import generate_persons
from edge.uplink import Outbox
from edge.uplink.config import OutboxLimits
from mqtt_schemas.envelope import SystemClock
from mqtt_schemas.watchlist import entry_from_record

from . import Figure

MiB = 1 << 20
SEED = 20261204
KINDS = ("plain", "encrypted")


def run(quick: bool) -> list[Figure]:
    if os.geteuid() != 0:
        raise SystemExit("encryption benchmark: run as root (it mounts file systems)")
    commits, batched, persons, travellers, raw_mib = (
        (20, 500, 1_000, 20, 4) if quick else (300, 20_000, 50_000, 400, 64)
    )
    measured: dict[str, dict[str, float]] = {kind: {} for kind in KINDS}
    with (
        tempfile.TemporaryDirectory(prefix="borderlane-bench-") as work,
        _disks(Path(work), 512 if not quick else 64) as states,
    ):
        for kind in KINDS:  # the list built once per file system, before any figure
            _build_watchlist(states[kind] / "watchlist.db", persons)
        queries = _queries(persons, travellers)
        for kind in KINDS:
            measured[kind] |= _outbox(states[kind], commits, batched)
        for kind in KINDS:
            measured[kind] |= _screening(states[kind] / "watchlist.db", queries)
        for kind in KINDS:
            measured[kind] |= _raw(states[kind], raw_mib)
    return _figures(measured, persons, batched)


_FIGURES = [
    # key, name, unit, higher is better
    ("commit", "outbox enqueue, one transaction per record", "records/s", True),
    ("commit_p50", "outbox enqueue, one transaction per record, p50", "ms", False),
    ("batched", "outbox enqueue, batched (5,000 per transaction)", "records/s", True),
    ("warm_p50", "screening per traveller, warm cache, p50", "ms", False),
    ("warm_p99", "screening per traveller, warm cache, p99", "ms", False),
    ("cold_p50", "screening per traveller, cold (cache dropped), p50", "ms", False),
    ("cold_p99", "screening per traveller, cold (cache dropped), p99", "ms", False),
    ("write", "64 MiB written + fsync", "MiB/s", True),
    ("read", "64 MiB read, cold", "MiB/s", True),
]


def _figures(measured: dict[str, dict[str, float]], persons: int, batched: int) -> list[Figure]:
    figures = []
    for key, name, unit, higher_better in _FIGURES:
        plain, encrypted = measured["plain"][key], measured["encrypted"][key]
        slower = (plain / encrypted - 1) if higher_better else (encrypted / plain - 1)
        note = f"{persons:,} listed persons" if "screening" in name else ""
        for kind, value in (("plain", plain), ("encrypted", encrypted)):
            figures.append(Figure(f"{name}: {kind} ext4", value, unit, note=note))
        figures.append(Figure(f"{name}: encrypted's time", 100 * (1 + slower), "% of plain's"))
    return figures


# -- the two file systems ---------------------------------------------------------------------


@contextlib.contextmanager
def _disks(work: Path, size_mib: int) -> Iterator[dict[str, Path]]:
    """A plain and an encrypted state directory, each on its own loop-mounted ext4."""
    mounted: list[Path] = []
    material = os.urandom(64)
    states: dict[str, Path] = {}
    try:
        for kind in KINDS:
            image, mount = work / f"{kind}.img", work / kind
            with image.open("wb") as out:
                out.truncate(size_mib * MiB)
            subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "encrypt", str(image)], check=True)
            mount.mkdir()
            subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
            mounted.append(mount)
            states[kind] = mount / "borderlane"
            if kind == "encrypted":
                setup(states[kind], material)
            else:
                states[kind].mkdir(mode=0o700)
        yield states
    finally:
        if "encrypted" in states:
            with contextlib.suppress(Exception):  # files still open: unmounting drops it anyway
                lock(states["encrypted"], material)
        for mount in mounted:
            if subprocess.run(["umount", str(mount)], check=False).returncode:
                subprocess.run(["umount", "-l", str(mount)], check=False)


def _drop_cache(path: Path) -> None:
    """This file's pages out of the page cache (written back first): the next read is from the
    device, and decrypted again."""
    for name in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            descriptor = os.open(name, os.O_RDONLY)
            try:
                os.fdatasync(descriptor)
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


# -- the workloads ----------------------------------------------------------------------------


def _crossing() -> dict[str, Any]:
    example = mqtt_schemas.examples("crossing")["valid"][0]["payload"]
    return {k: v for k, v in example.items() if k not in ("schema", "id", "device_id", "seq",
                                                            "time", "clock")}  # fmt: skip


def _outbox(state: Path, commits: int, batched: int) -> dict[str, float]:
    body = _crossing()
    limits = OutboxLimits(reserve_free_bytes=4 * MiB, alarm_free_bytes=8 * MiB)
    with Outbox(state / "kiosk.db", "kiosk-bench-crypt", SystemClock(), limits) as outbox:
        outbox.db.execute("CREATE TABLE IF NOT EXISTS lane (id INTEGER PRIMARY KEY, n INTEGER)")
        outbox.db.execute("INSERT OR IGNORE INTO lane VALUES (1, 0)")
        times = []
        for _ in range(commits):
            started = time.perf_counter()
            with outbox.transaction() as tx:
                tx.execute("UPDATE lane SET n = n + 1 WHERE id = 1")
                tx.enqueue("crossings", body)
            times.append(time.perf_counter() - started)
        started = time.perf_counter()
        for first in range(0, batched, 5000):
            with outbox.transaction() as tx:
                for _ in range(min(5000, batched - first)):
                    tx.enqueue("crossings", body)
        batched_s = time.perf_counter() - started
        outbox.purge([record.id for record in outbox.pending(0, commits + batched)])
    return {
        "commit": commits / sum(times),
        "commit_p50": 1000 * statistics.median(times),
        "batched": batched / batched_s,
    }


def _build_watchlist(path: Path, persons: int) -> None:
    with WatchlistStore(path) as store:
        loader = store.loader()
        try:
            for record, _profile in generate_persons(persons, SEED):
                _kind, entry_id, entry = entry_from_record(record)
                loader.person(entry_id, entry)
            loader.finish()
        except BaseException:
            loader.abort()
            raise


def _queries(persons: int, travellers: int) -> list[Query]:
    """Travellers presenting a listed person's written names (every one a hit to rank)."""
    step = max(1, persons // travellers)
    queries = []
    for index, (record, _profile) in enumerate(generate_persons(persons, SEED)):
        if index % step == 0 and len(queries) < travellers:
            queries.append(Query.from_dict(record["names"][0]))
    return queries


def _screening(path: Path, queries: list[Query]) -> dict[str, float]:
    with WatchlistStore(path, readonly=True) as store:
        screener = Screener(store)
        for query in queries[: max(1, len(queries) // 10)]:  # warm-up
            screener.screen(query)
        warm = _latencies(screener, queries)
        cold = _latencies(screener, queries, before=lambda: _drop_cache(path))
    return {
        "warm_p50": statistics.median(warm),
        "warm_p99": _p99(warm),
        "cold_p50": statistics.median(cold),
        "cold_p99": _p99(cold),
    }


def _latencies(
    screener: Screener, queries: list[Query], before: Callable[[], None] = lambda: None
) -> list[float]:
    """Milliseconds per traveller; *before* runs ahead of each, outside the measure."""
    times = []
    for query in queries:
        before()
        started = time.perf_counter()
        screener.screen(query)
        times.append(1000 * (time.perf_counter() - started))
    return times


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


def _raw(state: Path, mib: int) -> dict[str, float]:
    path, block = state / "raw.bin", os.urandom(MiB)
    started = time.perf_counter()
    with path.open("wb", buffering=0) as out:
        for _ in range(mib):
            out.write(block)
        os.fsync(out.fileno())
    write_s = time.perf_counter() - started
    _drop_cache(path)
    started = time.perf_counter()
    with path.open("rb", buffering=0) as source:
        while source.read(MiB):
            pass
    read_s = time.perf_counter() - started
    path.unlink()
    return {"write": mib / write_s, "read": mib / read_s}
