"""Watchlist deltas and snapshots applied as they stream: chunk by chunk in one transaction,
the whole digest checked before the commit, anything wrong rolled back.

First :class:`~edge.screening.delta.StreamApply` on a store; then the kiosk's
:class:`~edge.screening.sync.WatchlistSync` on an in-memory transport (the test plays the
console): hostile chunks, a restart half way, the windows it asks for; then a kiosk restored
from an old backup catching up over a real Mosquitto from the console's history, through
deltas and through a snapshot.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from console.store.schema import watchlist_versions
from edge.screening.delta import DeltaRejected, StreamApply, apply_chunks, apply_stream
from edge.screening.store import WatchlistStore
from edge.screening.sync import SyncSettings, WatchlistSync
from edge.screening.transport import Offline, PayloadHandler, Scope
from mqtt_schemas.watchlist import (
    diff,
    entry_from_record,
    generate_key,
    make_chunks,
    sign_chunks,
    snapshot_changes,
)

pytestmark = pytest.mark.timeout(60)

KEY_ID = "wl-test"
KEY = generate_key()
TRUSTED = {KEY_ID: KEY.public_key()}
ROOT = Path(__file__).resolve().parent.parent


def person(n: int, surname: str = "CHUN") -> tuple[str, str, dict]:
    return entry_from_record(
        {
            "id": f"p{n:03d}",
            "kind": "person",
            "names": [f"{surname}, ELIAS {n}"],
            "birth_date": f"{1950 + n % 50}",
            "list": "national-wanted",
        }
    )


def document(n: int, status: str = "stolen") -> tuple[str, str, dict]:
    return entry_from_record(
        {
            "id": f"d{n:03d}",
            "kind": "document",
            "number": f"A{n:07d}",
            "issuing_state": "MEX",
            "status": status,
            "list": "interpol-sltd",
        }
    )


V1 = [person(n) for n in range(10)] + [document(n) for n in range(10)]
V2 = [person(n) for n in range(2, 14)] + [document(n, "lost") for n in range(10)]
BIG = [person(n, "MAYA") for n in range(40)] + [document(n) for n in range(40)]


def signed(kind, changes, *, to_version, from_version=None, key=KEY, size=3, digest=None):
    chunks = make_chunks(
        kind,
        changes,
        from_version=from_version,
        to_version=to_version,
        key_id=KEY_ID,
        max_changes=size,
    )
    if digest is not None:  # a console that signs a wrong digest (every chunk the same)
        chunks = [{**chunk, "changes_sha256": digest} for chunk in chunks]
    return sign_chunks(chunks, key)


def snapshot(entries, version: int, **options) -> list[dict]:
    return signed("snapshot", snapshot_changes(entries), to_version=version, **options)


def delta(old, new, source: int, **options) -> list[dict]:
    return signed("delta", diff(old, new), from_version=source, to_version=source + 1, **options)


def forge(chunk: dict) -> dict:
    chunk = copy.deepcopy(chunk)
    chunk["changes"][0]["entry_id"] = "p999"  # a change slipped in: the signature breaks
    return chunk


def fingerprint(path: Path) -> tuple[int, list[str]]:
    with WatchlistStore(path, readonly=True) as store:
        return store.version, list(store.connection.iterdump())


def entries(path: Path) -> list[tuple[str, str, dict]]:
    with WatchlistStore(path, readonly=True) as store:
        return sorted(store.entries())


@pytest.fixture
def store_path(tmp_path) -> Path:
    """A store at version 1 holding V1."""
    path = tmp_path / "watchlist.db"
    with WatchlistStore(path) as store:
        apply_chunks(store, snapshot(V1, 1), TRUSTED)
    return path


# ---------------------------------------------------------------------------------------------
# StreamApply


def test_a_delta_applies_chunk_by_chunk_and_the_lane_sees_it_only_at_the_commit(store_path):
    chunks = delta(V1, V2, 1)
    assert len(chunks) > 3
    with WatchlistStore(store_path) as store, WatchlistStore(store_path, readonly=True) as lane:
        stream = StreamApply(store, TRUSTED)
        for number, chunk in enumerate(chunks, 1):
            stream.feed(chunk)
            assert (stream.next_index, stream.done) == (number, number == len(chunks))
            assert lane.version == 1 and sorted(lane.entries()) == sorted(V1)
        result = stream.finish()
        assert (result.kind, result.from_version, result.to_version) == ("delta", 1, 2)
        assert (result.added, result.updated, result.removed) == (4, 10, 2)
        assert lane.version == 2 and sorted(lane.entries()) == sorted(V2)
        assert store.status()["applied_from"] == "delta 1 -> 2"
        assert store.status()["changes_sha256"] == chunks[0]["changes_sha256"]


def test_a_snapshot_streams_from_any_iterable_one_chunk_at_a_time(store_path):
    fed: list[int] = []

    def one_by_one():
        for chunk in snapshot(BIG, 5, size=7):
            fed.append(chunk["chunk_index"])
            yield chunk

    with WatchlistStore(store_path) as store:
        result = apply_stream(store, one_by_one(), TRUSTED)
    assert result.added == len(BIG) and fed == list(range(12))
    assert entries(store_path) == sorted(BIG)


@pytest.mark.parametrize("k", [0, 2, 5])
def test_a_bad_signature_in_chunk_k_rolls_back_everything_before_it(store_path, k):
    before = fingerprint(store_path)
    chunks = snapshot(BIG, 2, size=7)
    chunks[k] = forge(chunks[k])
    with WatchlistStore(store_path) as store, pytest.raises(DeltaRejected) as refused:
        apply_stream(store, chunks, TRUSTED)
    assert refused.value.reason == "bad-signature"
    assert f"chunk {k + 1} of 12" in str(refused.value)
    assert fingerprint(store_path) == before


def test_a_digest_mismatch_at_the_end_rolls_back(store_path):
    before = fingerprint(store_path)
    wrong = hashlib.sha256(b"something else").hexdigest()
    chunks = delta(V1, V2, 1, digest=wrong)  # every chunk signed, all of them agree
    with WatchlistStore(store_path) as store:
        stream = StreamApply(store, TRUSTED)
        for chunk in chunks:
            stream.feed(chunk)  # each chunk alone is fine, and applied
        with pytest.raises(DeltaRejected) as refused:
            stream.finish()
    assert refused.value.reason == "digest-mismatch"
    assert fingerprint(store_path) == before


@pytest.mark.parametrize(
    ("arrange", "reason"),
    [
        (lambda c, other: [c[0], other[1], *c[2:]], "mixed"),
        (lambda c, other: [c[0], c[0], *c[1:]], "duplicate"),
        (lambda c, other: [c[0], c[2], c[1], *c[3:]], "reordered"),
        (lambda c, other: c[1:], "reordered"),
        (lambda c, other: c[:-1], "truncated"),
    ],
    ids=["another-delta", "duplicate", "reordered", "first-missing", "truncated"],
)
def test_chunks_out_of_their_signed_place_are_refused_and_roll_back(store_path, arrange, reason):
    before = fingerprint(store_path)
    chunks = delta(V1, V2, 1)
    other = delta(V1, [*V1[2:], person(50), person(51)], 1, size=1)  # same versions
    with WatchlistStore(store_path) as store, pytest.raises(DeltaRejected) as refused:
        apply_stream(store, arrange(chunks, other), TRUSTED)
    assert refused.value.reason == reason, str(refused.value)
    assert fingerprint(store_path) == before


def test_a_stream_that_does_not_follow_the_version_is_refused_at_its_first_chunk(store_path):
    before = fingerprint(store_path)
    with WatchlistStore(store_path) as store:
        for chunks, reason in [
            (delta(V2, V1, 2), "gap"),
            (delta(V1, V2, 0), "replay"),
            (snapshot(V2, 0), "older"),
        ]:
            with pytest.raises(DeltaRejected) as refused:
                StreamApply(store, TRUSTED).feed(chunks[0])
            assert refused.value.reason == reason
    assert fingerprint(store_path) == before


def test_a_process_killed_half_way_leaves_the_old_version(store_path):
    """A power cut mid-apply: chunks were written in the open transaction, never committed."""
    chunks = snapshot(BIG, 9, size=7)
    (store_path.parent / "chunks.json").write_text(json.dumps(chunks[:6]))
    public = {KEY_ID: KEY.public_key()}
    code = f"""
import json, os, sys
sys.path.insert(0, {str(ROOT)!r})
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from edge.screening.delta import StreamApply
from edge.screening.store import WatchlistStore
trusted = {{{KEY_ID!r}: load_pem_public_key(sys.stdin.buffer.read())}}
store = WatchlistStore({str(store_path)!r})
stream = StreamApply(store, trusted)
for chunk in json.loads(open({str(store_path.parent / "chunks.json")!r}).read()):
    stream.feed(chunk)
print(stream.next_index, flush=True)
os._exit(9)  # no rollback, no close
"""
    from mqtt_schemas.watchlist import public_key_pem

    done = subprocess.run(
        [sys.executable, "-c", code],
        input=public_key_pem(public[KEY_ID]),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 9, done.stderr.decode()
    assert done.stdout.strip() == b"6"
    assert fingerprint(store_path)[0] == 1 and entries(store_path) == sorted(V1)
    # And the redo from the start applies.
    with WatchlistStore(store_path) as store:
        apply_stream(store, chunks, TRUSTED)
    assert fingerprint(store_path)[0] == 9 and entries(store_path) == sorted(BIG)


# ---------------------------------------------------------------------------------------------
# The kiosk's sync on an in-memory transport


class MemoryTransport:
    """The test plays the console: ``deliver`` hands a payload to the sync's handler."""

    def __init__(self) -> None:
        self.handlers: dict[tuple[Scope, str], PayloadHandler] = {}
        self.published: list[dict[str, Any]] = []
        self.online = True

    def subscribe(self, channel: str, handler: PayloadHandler, *, scope: Scope) -> None:
        self.handlers[(scope, channel)] = handler

    async def publish(self, channel: str, body: dict[str, Any]) -> None:
        if not self.online:
            raise Offline("not connected (test)")
        assert channel == "watchlist/catchup"
        self.published.append(body)

    async def manifest(self, version: int) -> None:
        await self.handlers[("fleet", "watchlist/manifest")]({"version": version})

    async def answer(self, chunk: dict[str, Any]) -> None:
        """A chunk on the kiosk's own topic (a catch-up answer)."""
        await self.handlers[("device", "watchlist/deltas")]({**chunk, "for_device": "kiosk-a"})

    async def broadcast(self, chunk: dict[str, Any]) -> None:
        await self.handlers[("fleet", "watchlist/deltas")](chunk)


SETTINGS = SyncSettings(delta_grace_s=0.2, retry_s=0.5, staging_expiry_s=5.0, window_chunks=4)


async def synced(path: Path, transport: MemoryTransport, **options) -> WatchlistSync:
    sync = WatchlistSync(path, TRUSTED, "kiosk-a", settings=options.pop("settings", SETTINGS))
    sync.attach(transport)
    return sync


@pytest.mark.asyncio
async def test_the_sync_applies_a_snapshot_window_by_window(tmp_path):
    """Answers come four chunks at a time; the kiosk asks for the next window as it goes."""
    path = tmp_path / "watchlist.db"
    transport = MemoryTransport()
    chunks = snapshot(BIG, 3, size=7)  # 12 chunks
    async with await synced(path, transport) as sync:
        await transport.manifest(3)
        assert transport.published == [
            {"have_version": 0, "want": "snapshot", "reason": "startup", "window": 4}
        ]
        for chunk in chunks[:4]:
            await transport.answer(chunk)
        assert sync.version == 0 and sync.applying == "snapshot of version 3: chunk 5 of 12"
        asks = transport.published[1:]
        assert [a["reason"] for a in asks] == ["continue"]
        assert asks[0]["resume"] == {
            "kind": "snapshot",
            "to_version": 3,
            "changes_sha256": chunks[0]["changes_sha256"],
            "from_chunk": 4,
        }
        for chunk in chunks[4:]:
            await transport.answer(chunk)
        assert [a["resume"]["from_chunk"] for a in transport.published[1:]] == [4, 8]
        assert sync.version == 3 and sync.applying is None
        assert entries(path) == sorted(BIG)
        assert sync.component()["state"] == "ok"


@pytest.mark.asyncio
async def test_a_forged_chunk_k_is_refused_and_the_genuine_one_completes_the_apply(store_path):
    """Nothing of a forged chunk is applied, and it does not undo the chunks before it: an
    injected message cannot make a kiosk drop 90% of a snapshot. Should the genuine chunk
    never come, the apply is rolled back (see the stall test below)."""
    before = fingerprint(store_path)
    transport = MemoryTransport()
    chunks = delta(V1, V2, 1)
    async with await synced(store_path, transport) as sync:
        await transport.manifest(2)
        await transport.answer(chunks[0])
        await transport.answer(chunks[1])
        await transport.answer(forge(chunks[2]))
        assert sync.version == 1 and sync.applying == "delta 1 -> 2: chunk 3 of 6"
        assert fingerprint(store_path) == before, "store and version as before"
        component = sync.component()
        assert component["state"] == "degraded"
        assert "bad-signature" in component["detail"] and "\n" not in component["detail"]
        for chunk in chunks[2:]:
            await transport.answer(chunk)
        assert sync.version == 2 and entries(store_path) == sorted(V2)
        assert sync.component()["state"] == "ok"


@pytest.mark.asyncio
async def test_an_apply_that_fails_in_the_store_rolls_back_and_asks_for_a_snapshot(tmp_path):
    path = tmp_path / "watchlist.db"
    with WatchlistStore(path) as store:
        apply_chunks(store, snapshot(V1[1:], 1), TRUSTED)  # p000 is missing here
    before = fingerprint(path)
    transport = MemoryTransport()
    chunks = delta(V1, V2, 1)  # removes p000: "diverged"
    async with await synced(path, transport) as sync:
        await transport.manifest(2)
        for chunk in chunks:
            await transport.answer(chunk)
        assert sync.version == 1 and fingerprint(path) == before
        assert transport.published[-1] == {
            "have_version": 1,
            "want": "snapshot",
            "reason": "restore",
            "window": 4,
        }
        for chunk in snapshot(V2, 2):
            await transport.answer(chunk)
        assert sync.version == 2 and entries(path) == sorted(V2)


@pytest.mark.asyncio
async def test_a_digest_mismatch_rolls_the_sync_back(store_path):
    before = fingerprint(store_path)
    transport = MemoryTransport()
    wrong = hashlib.sha256(b"not these changes").hexdigest()
    async with await synced(store_path, transport) as sync:
        await transport.manifest(2)
        for chunk in delta(V1, V2, 1, digest=wrong):
            await transport.answer(chunk)
        assert sync.version == 1 and fingerprint(store_path) == before
        assert "digest-mismatch" in sync.component()["detail"]


@pytest.mark.asyncio
async def test_hostile_chunks_are_refused_and_the_sync_goes_on(store_path):
    before = fingerprint(store_path)
    transport = MemoryTransport()
    chunks = delta(V1, V2, 1)
    other = delta(
        V1, [*V1[2:], person(50), person(51)], 1, size=1
    )  # signed, same versions, another delta
    huge_count = {**chunks[1], "chunk_count": 10**9}
    claims_all = {**chunks[1], "chunk_count": 100_000, "chunk_index": 99_999}  # unsigned claim
    too_many = copy.deepcopy(chunks[1])
    too_many["changes"] = too_many["changes"] * 2000  # 6,000 changes in one chunk
    unsigned = {k: v for k, v in chunks[1].items() if k != "signature"}
    not_a_chunk = {"schema": "watchlist-delta-chunk@1", "kind": "delta"}
    async with await synced(store_path, transport) as sync:
        await transport.manifest(2)
        await transport.answer(chunks[0])
        for hostile in (huge_count, claims_all, too_many, unsigned, not_a_chunk, other[1]):
            await transport.answer(hostile)  # never raises: refused or set aside
        assert sync.applying == f"delta 1 -> 2: chunk 2 of {len(chunks)}"
        await transport.answer(chunks[0])  # a duplicate
        assert fingerprint(store_path) == before
        for chunk in chunks[1:]:
            await transport.answer(chunk)
        assert sync.version == 2 and entries(store_path) == sorted(V2)
        # The other delta of 1 -> 2, set aside in staging, is dropped as obsolete.
        staging = sqlite3.connect(sync.staging_path)
        try:
            assert staging.execute("SELECT count(*) FROM staged_chunks").fetchone() == (0,)
        finally:
            staging.close()


@pytest.mark.asyncio
async def test_out_of_order_chunks_wait_in_staging_and_apply_in_order(store_path):
    transport = MemoryTransport()
    chunks = delta(V1, V2, 1)
    following = delta(V2, [*V2, person(60)], 2)
    async with await synced(store_path, transport) as sync:
        await transport.broadcast(following[0])  # the next delta, early: staged
        for chunk in reversed(chunks):  # the last first
            await transport.broadcast(chunk)
        assert sync.version == 3, "chunk 1 came last, then everything applied in order"
        assert entries(store_path) == sorted([*V2, person(60)])


@pytest.mark.asyncio
async def test_a_restart_half_way_rolls_back_and_the_kiosk_redoes_it(store_path):
    before = fingerprint(store_path)
    chunks = snapshot(BIG, 4, size=7)
    transport = MemoryTransport()
    async with await synced(store_path, transport) as sync:
        await transport.manifest(4)
        for chunk in chunks[:5]:
            await transport.answer(chunk)
        assert sync.applying == "snapshot of version 4: chunk 6 of 12"
    # Stopped half way (the agent restarts): nothing of it was kept.
    assert fingerprint(store_path) == before
    transport = MemoryTransport()
    async with await synced(store_path, transport) as sync:
        await transport.manifest(4)
        assert transport.published == [
            {"have_version": 1, "want": "auto", "reason": "startup", "window": 4}
        ]
        for chunk in chunks:
            await transport.answer(chunk)
        assert sync.version == 4 and entries(store_path) == sorted(BIG)


@pytest.mark.asyncio
async def test_a_lost_window_is_asked_for_again_and_a_dead_apply_is_rolled_back(store_path):
    before = fingerprint(store_path)
    chunks = snapshot(BIG, 4, size=7)
    transport = MemoryTransport()
    settings = SyncSettings(delta_grace_s=0.2, retry_s=0.3, staging_expiry_s=1.2, window_chunks=4)
    async with await synced(store_path, transport, settings=settings) as sync:
        await transport.manifest(4)
        for chunk in chunks[:6]:
            await transport.answer(chunk)
        asked = len(transport.published)
        await asyncio.sleep(0.8)  # chunk 7 never comes
        retries = [a for a in transport.published[asked:] if a["reason"] == "retry"]
        assert retries and retries[0]["resume"]["from_chunk"] == 6
        await asyncio.sleep(1.2)  # nothing for longer than staging_expiry_s
        assert sync.applying is None and fingerprint(store_path) == before
        assert "stalled" in sync.component()["detail"]


# ---------------------------------------------------------------------------------------------
# A kiosk restored from an old backup catches up over the broker


def _console(broker, db, **options):
    from console.watchlist import CatchupResponder, WatchlistHistory, WatchlistPublisher
    from mqtt_schemas.envelope import uuid7

    history = WatchlistHistory(db)
    publisher = WatchlistPublisher(history, KEY, KEY_ID, node_id="console-1", **options)
    responder = CatchupResponder(
        history,
        broker.console_endpoint(),
        node_id="console-1",
        publisher=publisher,
        client_id=f"wl-{uuid7()[-8:]}",
    )
    return history, publisher, responder


async def _restored_kiosk_catches_up(broker, tmp_path, db, *, drop_deltas: bool):
    from edge.agent.transport import UplinkTransport
    from edge.uplink import Outbox, StaticClock, Uplink

    v3 = [*V2, *(person(n) for n in range(70, 75))]  # delta 2 -> 3: 5 chunks of 1 change
    versions = [V1, V2, v3, [*v3, person(75)], [*v3[1:], person(75), document(99)]]
    history, publisher, responder = _console(broker, db, max_changes=1, snapshot_every=100)
    stop = asyncio.Event()
    task: asyncio.Task | None = None
    try:
        for entries_of_version in versions:
            await history.call(publisher.prepare, entries_of_version)
        if drop_deltas:  # the console no longer has the deltas after version 2
            await history.call(publisher.snapshot)

            def forget() -> None:
                with history.engine.begin() as conn:
                    conn.execute(
                        update(watchlist_versions)
                        .where(watchlist_versions.c.version > 2)
                        .values(delta_chunks=None)
                    )

            await history.call(forget)
        # The responder announces the latest version (the retained manifest) as it connects.
        task = asyncio.create_task(responder.run(stop))
        async with asyncio.timeout(10):
            await responder.ready.wait()
        # The kiosk's store, restored from a backup made at version 2.
        home = tmp_path / "kiosk"
        home.mkdir()
        with WatchlistStore(home / "watchlist.db") as store:
            apply_chunks(store, snapshot(V2, 2), TRUSTED)
        config = broker.uplink_config("kiosk-a")
        clock = StaticClock()
        outbox = Outbox(home / "outbox.db", "kiosk-a", clock, config.outbox)
        applied = []
        sync = WatchlistSync(
            home / "watchlist.db", TRUSTED, "kiosk-a", settings=SETTINGS, on_applied=applied.append
        )
        async with sync, Uplink(config, outbox, clock) as uplink:
            sync.attach(UplinkTransport(uplink))
            runner = asyncio.create_task(uplink.run())
            try:
                async with asyncio.timeout(30):
                    while sync.version < 5:
                        await asyncio.sleep(0.05)
            finally:
                await uplink.stop()
                await runner
        outbox.close()
        assert entries(home / "watchlist.db") == sorted(versions[-1])
        return [r.describe().split(":")[0] for r in applied], sync.asked
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 10)
        history.close()


@pytest.mark.asyncio
async def test_a_kiosk_restored_from_an_old_backup_catches_up_through_the_deltas(
    uplink_broker, tmp_path, console_db
):
    applied, asked = await _restored_kiosk_catches_up(
        uplink_broker, tmp_path, console_db, drop_deltas=False
    )
    assert applied == [
        "applied delta 2 -> 3",
        "applied delta 3 -> 4",
        "applied delta 4 -> 5",
    ]
    assert asked[0] == {"have_version": 2, "want": "auto", "reason": "startup", "window": 4}
    # Delta 2 -> 3 (5 chunks) takes two windows of 4 chunks.
    assert any(a.get("resume", {}).get("from_chunk") == 4 for a in asked)


@pytest.mark.asyncio
async def test_a_kiosk_restored_from_an_old_backup_catches_up_through_a_snapshot(
    uplink_broker, tmp_path, console_db
):
    applied, asked = await _restored_kiosk_catches_up(
        uplink_broker, tmp_path, console_db, drop_deltas=True
    )
    assert applied == ["applied snapshot of version 5"]
    assert any(a.get("resume", {}).get("kind") == "snapshot" for a in asked)
