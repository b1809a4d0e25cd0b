"""Watchlist over the air: a 1,000,000-person snapshot reaches a kiosk at version 0 over MQTT.

Everything is real and on this machine: Mosquitto with TLS client certificates from a
throw-away CA on a free port; the console's :class:`~console.watchlist.CatchupResponder`
answering from a console history (SQLite) that holds the signed snapshot; and, in a process
of its own, the kiosk's :class:`~edge.uplink.Uplink` and
:class:`~edge.screening.sync.WatchlistSync` as the agent wires them. The kiosk sees the
retained manifest, asks for a catch-up (``watchlist-catchup@2``, a window of chunks at a
time), verifies and applies every chunk as it comes in one store transaction, checks the
whole digest and commits.

The persons are :func:`edge.sim.watchlist.generate_persons` (seed 12); the signed chunks are
written straight into the console's history tables (one chunk in memory at a time) rather
than through :meth:`~console.watchlist.WatchlistPublisher.prepare`, which diffs whole lists
in memory: the console's side is not what is measured.

Figures:

* snapshot apply time: from the kiosk's first catch-up request to the commit of the version.
* peak RSS of the kiosk process (``VmHWM``; target <= 256 MB, what a kiosk agent may take).
* bytes over the air: the MQTT payloads the kiosk received (chunk bodies with their
  publication fields), against the snapshot's signed chunks as the console stores them.

Quick mode: 2,000 persons in chunks of 200; the figures then judge nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import Figure, at_most

RSS_TARGET_MB = 256
DEVICE = "kiosk-bench-ota"
NODE = "console-bench"
KEY_ID = "wl-bench-ota"
SEED = 12
ROOT = Path(__file__).resolve().parents[2]


def _build_history(db: Path, persons: int, key_pem: bytes, max_changes: int) -> dict[str, Any]:
    """Sign a snapshot of *persons* generated persons as version 1 in the console history
    at *db*, streaming: two passes over the generator, one chunk in memory at a time."""
    from sqlalchemy import insert

    from console.store import open_database
    from console.store.schema import watchlist_chunks, watchlist_versions
    from edge.sim.watchlist import generate_persons
    from mqtt_schemas.envelope import utc_now
    from mqtt_schemas.watchlist import (
        CHUNK_SCHEMA,
        MAX_CHUNK_BYTES,
        canonical,
        entry_from_record,
        load_private_key,
        sign_chunks,
    )

    key = load_private_key(key_pem)

    def changes():
        # generate_persons numbers its entries p00000000, p00000001, ...: already in the
        # (kind, entry_id) order of a snapshot.
        for record, _ in generate_persons(persons, SEED):
            kind, entry_id, entry = entry_from_record(record)
            yield {"op": "add", "kind": kind, "entry_id": entry_id, "entry": entry}

    # Pass 1: the digest and where each chunk ends (as make_chunks cuts them).
    digest, sizes, count, size = hashlib.sha256(), [], 0, 0
    for change in changes():
        line = canonical(change) + b"\n"
        digest.update(line)
        if count and (count >= max_changes or size + len(line) > MAX_CHUNK_BYTES):
            sizes.append(count)
            count = size = 0
        count += 1
        size += len(line)
    sizes.append(count)
    header = {
        "schema": CHUNK_SCHEMA,
        "kind": "snapshot",
        "to_version": 1,
        "chunk_count": len(sizes),
        "key_id": KEY_ID,
        "changes_sha256": digest.hexdigest(),
    }
    # Pass 2: sign and store each chunk.
    engine = open_database(db)
    stored = 0
    with engine.begin() as conn:
        source = changes()
        for index, n in enumerate(sizes):
            group = [next(source) for _ in range(n)]
            (chunk,) = sign_chunks([{**header, "chunk_index": index, "changes": group}], key)
            body = json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))
            stored += len(body)
            conn.execute(
                insert(watchlist_chunks).values(
                    kind="snapshot", version=1, chunk_index=index, body=body
                )
            )
        conn.execute(
            insert(watchlist_versions).values(
                version=1,
                published_at=utc_now(),
                key_id=KEY_ID,
                persons=persons,
                documents=0,
                snapshot_chunks=len(sizes),
                snapshot_bytes=stored,
                snapshot_sha256=digest.hexdigest(),
            )
        )
    engine.dispose()
    return {"chunks": len(sizes), "stored_bytes": stored}


# ---------------------------------------------------------------------------------------------
# The kiosk, in its own process (python -c ... kiosk_main CONFIG.json)


def kiosk_main(config_path: str) -> None:
    """Uplink + WatchlistSync until the store holds version 1; prints one JSON line."""
    settings = json.loads(Path(config_path).read_text())
    print(json.dumps(asyncio.run(_kiosk(settings))), flush=True)


async def _kiosk(settings: dict[str, Any]) -> dict[str, Any]:
    from edge.agent.transport import UplinkTransport
    from edge.screening.delta import load_trust
    from edge.screening.sync import SyncSettings, WatchlistSync
    from edge.uplink import Outbox, StaticClock, Uplink, UplinkConfig
    from edge.uplink import session as uplink_session

    received = {"bytes": 0, "chunks": 0}
    dispatch = uplink_session.Uplink._dispatch

    async def counting(self, message):  # the payload bytes as they came off the wire
        if str(message.topic).endswith("/watchlist/deltas"):
            received["bytes"] += len(message.payload)
            received["chunks"] += 1
        await dispatch(self, message)

    uplink_session.Uplink._dispatch = counting  # this process only: a measuring tap

    home = Path(settings["home"])
    config = UplinkConfig.from_dict(settings["uplink"])
    clock = StaticClock()
    outbox = Outbox(home / "outbox.db", DEVICE, clock, config.outbox)
    trusted = load_trust(directory=Path(settings["keys"]))
    asked_at: list[float] = []
    applied_at: list[float] = []
    sync = WatchlistSync(
        home / "watchlist.db",
        trusted,
        DEVICE,
        settings=SyncSettings(retry_s=60.0),
        on_applied=lambda result: applied_at.append(time.perf_counter()),
    )
    original_ask = sync._ask

    async def timed_ask(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if not asked_at:
            asked_at.append(time.perf_counter())
        return await original_ask(*args, **kwargs)

    sync._ask = timed_ask  # type: ignore[method-assign]

    async def trace() -> None:  # BENCH_OTA_TRACE=1: the process's memory every 5 s
        while True:
            await asyncio.sleep(5)
            status = Path("/proc/self/status").read_text().splitlines()
            memory = [line.split()[:2] for line in status if line.startswith(("VmRSS", "Rss"))]
            print(sync.applying, memory, file=sys.stderr, flush=True)

    tracer = asyncio.create_task(trace()) if os.environ.get("BENCH_OTA_TRACE") else None
    async with sync, Uplink(config, outbox, clock) as uplink:
        sync.attach(UplinkTransport(uplink))
        runner = asyncio.create_task(uplink.run())
        try:
            async with asyncio.timeout(settings["timeout_s"]):
                while sync.version < 1:
                    await asyncio.sleep(0.05)
        finally:
            await uplink.stop()
            await runner
    if tracer is not None:
        tracer.cancel()
    outbox.close()
    status = Path("/proc/self/status").read_text()
    peak_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    from edge.screening.store import WatchlistStore

    with WatchlistStore(home / "watchlist.db", readonly=True) as store:
        counts = store.counts()
    return {
        "apply_s": applied_at[0] - asked_at[0],
        "peak_rss_mb": peak_kb / 1024,
        "received_bytes": received["bytes"],
        "received_chunks": received["chunks"],
        "persons": counts["persons"],
        "asked": len(sync.asked),
    }


# ---------------------------------------------------------------------------------------------
# The console and the broker, in this process


async def _serve(
    endpoint: Any, history_db: Path, kiosk_config: Path, timeout_s: float
) -> dict[str, Any]:
    from console.watchlist import CatchupResponder, WatchlistHistory

    history = WatchlistHistory(history_db)
    responder = CatchupResponder(history, endpoint, node_id=NODE, client_id="bench-ota-console")
    stop = asyncio.Event()
    task = asyncio.create_task(responder.run(stop))
    try:
        async with asyncio.timeout(30):
            await responder.ready.wait()  # the retained manifest is out: version 1
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from benchmarks.watchlist_ota import kiosk_main; kiosk_main(sys.argv[2])"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            str(ROOT / "scripts"),
            str(kiosk_config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        async with asyncio.timeout(timeout_s + 30):
            out, err = await process.communicate()
        if os.environ.get("BENCH_OTA_TRACE"):
            print(err.decode()[-5000:], file=sys.stderr)
        if process.returncode != 0:
            raise RuntimeError(f"the kiosk process failed:\n{err.decode()[-3000:]}")
        return json.loads(out.decode().strip().splitlines()[-1])
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        history.close()


def run(quick: bool, persons: int | None = None) -> list[Figure]:
    from console import connection
    from edge.screening.sync import SyncSettings
    from mqtt_schemas.watchlist import write_key_pair
    from provisioning.broker import BrokerConfig, Mosquitto
    from provisioning.pki import Pki

    persons = persons or (2000 if quick else 1_000_000)
    max_changes = 200 if quick else 5000
    timeout_s = 120.0 if quick else 3600.0
    with tempfile.TemporaryDirectory(prefix="bench-wl-ota-") as tmp:
        root = Path(tmp)
        pki = Pki.create(root / "pki", "Bench Watchlist")
        ca = pki.services  # clients recognise the broker by it
        ca.issue_server("broker", hosts=["127.0.0.1", "localhost"])
        kiosk = pki.devices.issue_client(DEVICE)
        console = ca.issue_service_client("console")
        broker = BrokerConfig.local(pki, root / "mosquitto", devices=(DEVICE,), persistence=False)
        keys = root / "keys"
        write_key_pair(keys, KEY_ID)
        key_pem = (keys / f"{KEY_ID}.key.pem").read_bytes()
        (keys / f"{KEY_ID}.key.pem").unlink()  # the kiosk trusts the public key only
        history_db = root / "console.db"
        started = time.perf_counter()
        built = _build_history(history_db, persons, key_pem, max_changes)
        sign_s = time.perf_counter() - started
        home = root / "kiosk"
        home.mkdir()
        kiosk_config = root / "kiosk.json"
        kiosk_config.write_text(
            json.dumps(
                {
                    "home": str(home),
                    "keys": str(keys),
                    "timeout_s": timeout_s,
                    "uplink": {
                        "device_id": DEVICE,
                        "agent_version": "0.0.0+bench",
                        "broker": {
                            "host": "127.0.0.1",
                            "port": broker.tls_port,
                            "ca_file": str(ca.cert_path),
                            "cert_file": str(kiosk.cert_path),
                            "key_file": str(kiosk.key_path),
                        },
                    },
                }
            )
        )
        endpoint = connection.Endpoint(
            host="127.0.0.1",
            port=broker.service_port,
            ca_file=ca.cert_path,
            cert_file=console.cert_path,
            key_file=console.key_path,
        )
        with Mosquitto(broker):
            result = asyncio.run(_serve(endpoint, history_db, kiosk_config, timeout_s))
    if result["persons"] != persons:
        raise AssertionError(f"the kiosk holds {result['persons']} persons of {persons}")
    window = f"window {SyncSettings().window_chunks} chunks"
    return [
        Figure(
            f"snapshot of {persons:,} persons over MQTT (TLS): apply time",
            result["apply_s"],
            "s",
            note=f"{built['chunks']} chunks, {window}; first catch-up to commit",
        ),
        at_most(
            "peak RSS of the kiosk process while applying it",
            result["peak_rss_mb"],
            "MB",
            RSS_TARGET_MB,
            "VmHWM of the process running Uplink + WatchlistSync",
        ),
        Figure(
            "bytes over the air (chunk payloads received)",
            result["received_bytes"] / 1e6,
            "MB",
            note=f"{result['received_chunks']} payloads; signed chunks stored: "
            f"{built['stored_bytes'] / 1e6:,.1f} MB",
        ),
        Figure(
            "apply rate",
            persons / result["apply_s"],
            "persons/s",
            note=f"console side: snapshot generated and signed in {sign_s:,.1f} s",
        ),
    ]
