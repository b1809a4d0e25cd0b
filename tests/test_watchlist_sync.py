"""Watchlist versions from the console to kiosks over a real Mosquitto (TLS, client
certificates, the contract ACL): broadcast deltas, the retained manifest, catch-ups answered
from the console's signed history, and everything a kiosk must refuse.

Kiosks are real :class:`~edge.uplink.Uplink` sessions given to a :class:`WatchlistSync` as the
agent gives them (:class:`~edge.agent.transport.UplinkTransport`); the console is a real
:class:`WatchlistPublisher` and :class:`CatchupResponder` on the console's certificate. The
sync's own logic offline (what it asks, what it refuses to lose) is tested at the end on an
in-memory transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

import mqtt_schemas
from console.watchlist import (
    CatchupLimiter,
    CatchupResponder,
    WatchlistHistory,
    WatchlistPublisher,
    publish_trust,
    send_steps,
)
from edge.agent.transport import UplinkTransport
from edge.lane.screening import ScreeningQuery, StoreScreener
from edge.screening.delta import ApplyResult, apply_chunks
from edge.screening.store import WatchlistStore
from edge.screening.sync import ChunkStaging, StagingFull, SyncSettings, WatchlistSync
from edge.screening.transport import Offline, PayloadHandler, Scope
from edge.uplink import Outbox, StaticClock, Uplink
from mqtt_schemas import topics
from mqtt_schemas.envelope import clock_state, utc_now, uuid7
from mqtt_schemas.trust import TrustedKey, sign_trust_update
from mqtt_schemas.watchlist import (
    entry_from_record,
    generate_key,
    make_chunks,
    private_key_pem,
    sign_chunks,
    snapshot_changes,
)

pytestmark = pytest.mark.timeout(30)

KEY_ID = "wl-test"
KEY = generate_key()
TRUSTED = {KEY_ID: KEY.public_key()}
NODE = "console-1"
SETTINGS = SyncSettings(delta_grace_s=0.3, retry_s=2.0)

PEOPLE = {
    "p-garcia": ("GARCIA LOPEZ", "JUAN CARLOS", "1975-03-02"),
    "p-haddad": ("HADDAD", "SAMIR", "1981-11-20"),
    "p-novak": ("NOVAK", "PETRA", "1990-06-14"),
    "p-okafor": ("OKAFOR", "CHINEDU", "1968-01-30"),
    "p-ortega": ("ORTEGA SALAS", "MARIA ELENA", "1984-07-09"),
    "p-ivanov": ("IVANOV", "DMITRI", "1972-09-17"),
}


def person(entry_id: str, list_name: str = "national-wanted") -> tuple[str, str, dict]:
    surname, given, birth = PEOPLE[entry_id]
    return entry_from_record(
        {
            "id": entry_id,
            "kind": "person",
            "names": [{"surname": surname, "given_names": given}],
            "birth_date": birth,
            "list": list_name,
            "category": "wanted",
        }
    )


def document(number: int) -> tuple[str, str, dict]:
    return entry_from_record(
        {
            "id": f"d{number}",
            "kind": "document",
            "number": f"G{number:08d}",
            "issuing_state": "MEX",
            "status": "stolen",
            "list": "interpol-sltd",
        }
    )


V1 = [person("p-garcia"), person("p-haddad"), document(1), document(2)]
V2 = [*V1, person("p-ortega")]
V3 = [*V2[:-1], person("p-novak"), document(3)]  # Ortega removed, Novak and d3 added


def query(entry_id: str) -> ScreeningQuery:
    surname, given, birth = PEOPLE[entry_id]
    return ScreeningQuery(surname, given, birth, None, None, None, None)


def store_entries(path: Path) -> set[tuple[str, str, str]]:
    with WatchlistStore(path, readonly=True) as store:
        return {(k, i, json.dumps(e, sort_keys=True)) for k, i, e in store.entries()}


def as_set(entries) -> set[tuple[str, str, str]]:
    return {(k, i, json.dumps(e, sort_keys=True)) for k, i, e in entries}


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# The two sides


@dataclass
class Console:
    history: WatchlistHistory
    publisher: WatchlistPublisher
    mqtt: aiomqtt.Client
    responder: CatchupResponder
    db: str | Path

    async def publish(self, entries) -> int:
        return (await self.publisher.publish_list(self.mqtt, entries)).version

    async def send_chunk(self, chunk: dict[str, Any], for_device: str | None = None) -> None:
        """Publish one chunk as the console would, with fresh publication fields."""
        payload = {
            **chunk,
            "id": uuid7(),
            "device_id": NODE,
            "seq": 1,
            "time": utc_now(),
            "clock": clock_state(),
        }
        if for_device:
            payload["for_device"] = for_device
        await self.mqtt.publish(
            topics.fleet_topic("watchlist/deltas"), json.dumps(payload).encode(), qos=1
        )


@contextlib.asynccontextmanager
async def console_side(broker, db: str | Path, **publisher_options) -> AsyncIterator[Console]:
    """The console's history, publisher and catch-up responder on the console database *db*:
    ``console_db`` (SQLite and PostgreSQL) where the test is about what the console keeps and
    answers, a SQLite path where only the kiosk's side is tested."""
    endpoint = broker.console_endpoint()
    history = WatchlistHistory(db)
    publisher = WatchlistPublisher(history, KEY, KEY_ID, node_id=NODE, **publisher_options)
    responder = CatchupResponder(
        history, endpoint, node_id=NODE, publisher=publisher, client_id=f"wl-{uuid7()[-8:]}"
    )
    stop = asyncio.Event()
    task = asyncio.create_task(responder.run(stop))
    try:
        async with asyncio.timeout(10):
            await responder.ready.wait()
        async with broker.client("console") as mqtt:
            yield Console(history, publisher, mqtt, responder, db)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        history.close()


@dataclass
class Kiosk:
    uplink: Uplink
    sync: WatchlistSync
    store_path: Path
    applied: list[ApplyResult] = field(default_factory=list)

    def screen(self, entry_id: str) -> list[str]:
        """What the lane's screener finds for that person: the lists of the hits."""
        with WatchlistStore(self.store_path, readonly=True) as store:
            result = StoreScreener(store).screen(query(entry_id), 0.8)
        return [hit.list for hit in result.hits]


@contextlib.asynccontextmanager
async def kiosk(
    broker, tmp_path: Path, device_id: str = "kiosk-a", **sync_options: Any
) -> AsyncIterator[Kiosk]:
    """A kiosk's uplink and watchlist sync, connected for the block (state kept on disk)."""
    home = tmp_path / device_id
    home.mkdir(exist_ok=True)
    config = broker.uplink_config(device_id)
    clock = StaticClock()
    outbox = Outbox(home / "outbox.db", device_id, clock, config.outbox)
    applied: list[ApplyResult] = []
    sync = WatchlistSync(
        home / "watchlist.db",
        TRUSTED,
        device_id,
        settings=SETTINGS,
        on_applied=applied.append,
        **sync_options,
    )
    async with sync, Uplink(config, outbox, clock) as uplink:
        sync.attach(UplinkTransport(uplink))
        runner = asyncio.create_task(uplink.run())
        try:
            await uplink.wait_connected(10)
            yield Kiosk(uplink, sync, home / "watchlist.db", applied)
        finally:
            await uplink.stop()
            await runner


# ---------------------------------------------------------------------------------------------
# Delivery


@pytest.mark.asyncio
async def test_a_fresh_kiosk_gets_the_snapshot_then_a_published_delta_finds_the_new_person(
    uplink_broker, tmp_path, console_db
) -> None:
    async with console_side(uplink_broker, console_db) as console:
        assert await console.publish(V1) == 1
        async with kiosk(uplink_broker, tmp_path) as k:
            # Version 0 at connect: the manifest makes it ask for a snapshot.
            await until(lambda: k.sync.version == 1)
            assert k.sync.asked[0] == {
                "have_version": 0,
                "want": "snapshot",
                "reason": "startup",
                "window": 2,
            }
            assert [r.kind for r in k.applied] == ["snapshot"]
            assert store_entries(k.store_path) == as_set(V1)
            assert k.screen("p-ortega") == []

            with WatchlistStore(k.store_path, readonly=True) as lane_store:
                lane = StoreScreener(lane_store)  # the lane's own connection, open throughout
                assert lane.screen(query("p-ortega"), 0.8).hits == ()
                assert await console.publish(V2) == 2
                await until(lambda: k.sync.version == 2)
                result = lane.screen(query("p-ortega"), 0.8)
            assert result.version == 2
            assert [hit.entry_id for hit in result.hits] == ["p-ortega"]
            assert [r.describe().split(":")[0] for r in k.applied][-1] == "applied delta 1 -> 2"
            assert len(k.sync.asked) == 1, "the broadcast delta needed no catch-up"


@pytest.mark.asyncio
async def test_a_list_published_with_the_console_cli_reaches_the_kiosk(
    uplink_broker, tmp_path, console_db
):
    key_file = tmp_path / "wl.key.pem"
    key_file.write_bytes(private_key_pem(KEY))
    list_file = tmp_path / "list.jsonl"
    identity = uplink_broker.identity("console")
    db = console_db

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = Path(sys.executable).parent / "borderlane-console"
        return subprocess.run([str(command), *args], capture_output=True, text=True)

    def publish(entries) -> subprocess.CompletedProcess[str]:
        list_file.write_text(
            "".join(json.dumps({"id": i, "kind": k, **e}) + "\n" for k, i, e in entries)
        )
        return cli(
            "watchlist", "publish", "--db", db, "--signing-key", str(key_file),
            "--key-id", KEY_ID,
            "--broker", f"{uplink_broker.host}:{uplink_broker.config.service_port}",
            "--cafile", str(uplink_broker.ca.cert_path), "--cert", str(identity.cert_path),
            "--key", str(identity.key_path), "--node-id", NODE, str(list_file),
        )  # fmt: skip

    first = await asyncio.to_thread(publish, V1)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "version 1: 4 changes, with a snapshot (4 entries)"
    async with console_side(uplink_broker, db), kiosk(uplink_broker, tmp_path) as k:
        await until(lambda: k.sync.version == 1)  # the responder answers from the CLI's history
        assert k.screen("p-ortega") == []

        second = await asyncio.to_thread(publish, V2)
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == "version 2: 1 changes in 1 delta chunks (5 entries)"
        await until(lambda: k.sync.version == 2)
        assert k.screen("p-ortega") == ["national-wanted"]
        assert len(k.sync.asked) == 1, "version 2 came by broadcast"

    status = await asyncio.to_thread(cli, "watchlist", "status", "--db", db)
    assert json.loads(status.stdout)["manifest"]["version"] == 2
    again = await asyncio.to_thread(publish, V2)
    assert again.stdout.strip() == "unchanged: version 2 (5 entries)"
    list_file.write_text('{"id": "x", "kind": "person"}\n')
    bad = await asyncio.to_thread(
        cli, "watchlist", "publish", "--db", db, "--signing-key", str(key_file),
        "--key-id", KEY_ID, "--broker", "127.0.0.1:1", "--cafile", str(uplink_broker.ca.cert_path),
        "--cert", str(identity.cert_path), "--key", str(identity.key_path), str(list_file),
    )  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.strip() == f"Error: {list_file}:1: line/names: required field is missing"


@pytest.mark.asyncio
async def test_a_kiosk_offline_during_two_deltas_catches_up_on_reconnect(
    uplink_broker, tmp_path, console_db
):
    async with console_side(uplink_broker, console_db) as console:
        await console.publish(V1)
        async with kiosk(uplink_broker, tmp_path) as k:
            await until(lambda: k.sync.version == 1)
        # Offline longer than the broker keeps the kiosk's session (its queued messages):
        # two versions go by, broadcast to nobody.
        async with uplink_broker.client("kiosk-a", identifier="kiosk-a", clean_start=True):
            pass  # a clean start with no session expiry discards the kiosk's session
        assert await console.publish(V2) == 2
        assert await console.publish(V3) == 3
        async with kiosk(uplink_broker, tmp_path) as k:
            # Reconnect: the retained manifest says 3; the kiosk at 1 asks, gets both deltas.
            await until(lambda: k.sync.version == 3)
            # One window of one step per answer: after delta 1 -> 2 it asks for what follows.
            assert k.sync.asked == [
                {"have_version": 1, "want": "auto", "reason": "startup", "window": 2},
                {"have_version": 2, "want": "auto", "reason": "continue", "window": 2},
            ]
            assert [r.describe().split(":")[0] for r in k.applied] == [
                "applied delta 1 -> 2",
                "applied delta 2 -> 3",
            ]
            assert store_entries(k.store_path) == as_set(V3)
            assert k.screen("p-novak") == ["national-wanted"] and k.screen("p-ortega") == []
            assert k.sync.health()["age_s"] is not None


@pytest.mark.asyncio
async def test_forged_untrusted_and_misaddressed_chunks_change_nothing(uplink_broker, tmp_path):
    """The kiosk's refusals: the console's database plays no part (SQLite only)."""
    async with console_side(uplink_broker, tmp_path / "console.db") as console:
        await console.publish(V1)
        async with kiosk(uplink_broker, tmp_path) as k:
            await until(lambda: k.sync.version == 1)
            assert k.sync.component()["state"] == "ok"
            changes = [{"op": "add", "kind": "person", "entry_id": "p-ortega",
                        "entry": person("p-ortega")[2]}]  # fmt: skip
            genuine = make_chunks("delta", changes, from_version=1, to_version=2, key_id=KEY_ID)

            # Signed by the real key, but addressed to another kiosk.
            await console.send_chunk(sign_chunks(genuine, KEY)[0], for_device="kiosk-b")
            # Signed under a key the kiosk does not trust.
            other = make_chunks("delta", changes, from_version=1, to_version=2, key_id="wl-evil")
            await console.send_chunk(sign_chunks(other, generate_key())[0])
            await until(lambda: "untrusted-key" in k.sync.component().get("detail", ""))
            # Claiming the trusted key id, signed by another key.
            await console.send_chunk(sign_chunks(genuine, generate_key())[0])
            await until(lambda: "bad-signature" in k.sync.component().get("detail", ""))
            # Genuine, then altered after signing.
            altered = copy.deepcopy(sign_chunks(genuine, KEY)[0])
            altered["changes"][0]["entry"]["action"] = "alert"
            await console.send_chunk(altered)
            await asyncio.sleep(0.2)

            component = k.sync.component()
            assert component["state"] == "degraded"
            assert component["detail"].startswith("refused a watchlist chunk (bad-signature)")
            assert k.sync.version == 1 and k.applied[-1].kind == "snapshot"
            assert k.screen("p-ortega") == []
            with WatchlistStore(k.store_path, readonly=True) as store:
                assert store.version == 1
            assert store_entries(k.store_path) == as_set(V1)
            assert _staged(k) == [], "nothing refused was staged"

            # The genuine delta still gets through, and the kiosk is healthy again.
            await console.publish(V2)
            await until(lambda: k.sync.version == 2)
            assert k.sync.component()["state"] == "ok"


def _staged(k: Kiosk) -> list[tuple]:
    path = k.sync.staging_path
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT key, received, chunk_count FROM staged").fetchall()
    finally:
        conn.close()


@pytest.mark.asyncio
async def test_a_gap_makes_the_kiosk_ask_for_the_missing_deltas(
    uplink_broker, tmp_path, console_db
):
    async with console_side(uplink_broker, console_db) as console:
        await console.publish(V1)
        async with kiosk(uplink_broker, tmp_path) as k:
            await until(lambda: k.sync.version == 1)
            # Versions 2 and 3 are made, but only delta 2 -> 3 reaches the kiosk.
            await console.history.call(console.publisher.prepare, V2)
            await console.history.call(console.publisher.prepare, V3)
            await send_steps(console.mqtt, console.history, NODE, [("delta", 3)])

            await until(lambda: k.sync.version == 3)
            assert k.sync.asked[-1] == {
                "have_version": 1,
                "want": "delta",
                "reason": "gap",
                "window": 2,
            }
            assert store_entries(k.store_path) == as_set(V3)
            assert _staged(k) == []


@pytest.mark.asyncio
async def test_a_multi_chunk_delta_applies_chunk_by_chunk_and_commits_only_when_complete(
    uplink_broker, tmp_path, console_db
):
    async with console_side(uplink_broker, console_db, max_changes=2) as console:
        await console.publish(V1)
        async with kiosk(uplink_broker, tmp_path) as k:
            await until(lambda: k.sync.version == 1)
            bigger = [*V3, person("p-ortega"), person("p-ivanov"), person("p-okafor")]
            await console.history.call(console.publisher.prepare, bigger)  # 5 changes
            count = await console.history.call(console.history.chunk_count, ("delta", 2))
            assert count == 3
            chunks = [
                await console.history.call(console.history.chunk, ("delta", 2), index)
                for index in range(count)
            ]

            await console.send_chunk(chunks[2])  # any order: ahead of its turn, it is staged
            await console.send_chunk(chunks[0])  # applied at once, not committed
            await console.send_chunk(chunks[0])  # a redelivery is harmless
            await until(lambda: k.sync.applying == "delta 1 -> 2: chunk 2 of 3")
            assert [row[1:] for row in _staged(k)] == [(1, 3)], "only chunk 3 waits"
            await asyncio.sleep(0.2)
            assert k.sync.version == 1 and k.screen("p-novak") == [], "the lane sees version 1"

            await console.send_chunk(chunks[1])
            await until(lambda: k.sync.version == 2)
            assert store_entries(k.store_path) == as_set(bigger)
            assert _staged(k) == [], "the staging is dropped once applied"
            assert k.sync.applying is None


@pytest.mark.asyncio
async def test_resync_asks_for_a_snapshot_and_gets_one(uplink_broker, tmp_path, console_db):
    async with console_side(uplink_broker, console_db) as console:
        await console.publish(V1)
        await console.publish(V2)
        async with kiosk(uplink_broker, tmp_path) as k:
            await until(lambda: k.sync.version == 2)
            asked = await k.sync.resync()
            assert asked == {"have_version": 2, "want": "snapshot", "reason": "resync", "window": 2}
            # The latest snapshot is of version 1, older than the kiosk: one of 2 is made.
            await until(lambda: k.applied[-1].kind == "snapshot")
            assert k.applied[-1].to_version == 2
            assert store_entries(k.store_path) == as_set(V2)
            with WatchlistStore(k.store_path, readonly=True) as store:
                assert store.status()["applied_from"] == "snapshot of version 2"


@pytest.mark.asyncio
async def test_health_reports_the_watchlist_as_the_contract_says(uplink_broker, tmp_path):
    """The kiosk's heartbeat: the console's database plays no part (SQLite only)."""
    example = mqtt_schemas.examples("health")["valid"][0]["payload"]

    def heartbeat(sync: WatchlistSync) -> dict[str, Any]:
        payload = copy.deepcopy(example)
        payload["watchlist"] = sync.health()
        payload["components"]["watchlist"] = sync.component()
        mqtt_schemas.validate("health", payload)
        return payload

    async with console_side(uplink_broker, tmp_path / "console.db") as console:
        sync = WatchlistSync(tmp_path / "alone" / "watchlist.db", TRUSTED, "kiosk-a")
        async with sync:
            never = heartbeat(sync)
        assert never["watchlist"] == {"version": 0, "applied_at": None, "age_s": None}
        assert never["components"]["watchlist"]["state"] == "starting"

        await console.publish(V1)
        async with kiosk(uplink_broker, tmp_path) as k:
            await until(lambda: k.sync.version == 1)
            current = heartbeat(k.sync)
            assert current["watchlist"]["version"] == 1
            assert current["watchlist"]["applied_at"].endswith("Z")
            assert 0 <= current["watchlist"]["age_s"] < 5
            assert current["components"]["watchlist"]["state"] == "ok"


# ---------------------------------------------------------------------------------------------
# Without a broker: the lane's connection and the staging bounds


def test_the_lanes_connection_sees_list_names_right_after_a_snapshot_elsewhere(tmp_path):
    path = tmp_path / "watchlist.db"
    v1 = [person("p-garcia", "national-wanted"), person("p-haddad", "sanctions")]
    v2 = [person("p-haddad", "sanctions")]  # the lists table is rebuilt: ids change

    def snapshot(entries, version) -> None:
        chunks = sign_chunks(
            make_chunks("snapshot", snapshot_changes(entries), to_version=version, key_id=KEY_ID),
            KEY,
        )
        with WatchlistStore(path) as writer:
            apply_chunks(writer, chunks, TRUSTED)

    snapshot(v1, 1)
    with WatchlistStore(path, readonly=True) as lane_store:
        lane = StoreScreener(lane_store)
        assert [h.list for h in lane.screen(query("p-garcia"), 0.8).hits] == ["national-wanted"]
        assert [h.list for h in lane.screen(query("p-haddad"), 0.8).hits] == ["sanctions"]
        snapshot(v2, 2)
        result = lane.screen(query("p-haddad"), 0.8)
        assert (result.version, [h.list for h in result.hits]) == (2, ["sanctions"])
        assert lane.screen(query("p-garcia"), 0.8).hits == ()


def test_staging_drops_stale_partial_deltas_and_keeps_to_its_budget(tmp_path):
    changes = [
        {"op": "add", "kind": "document", "entry_id": f"d{n}", "entry": document(n)[2]}
        for n in range(40)
    ]

    def chunks(source: int) -> list[dict]:
        unsigned = make_chunks(
            "delta", changes, from_version=source, to_version=source + 1, key_id=KEY_ID,
            max_changes=10,
        )  # fmt: skip
        return sign_chunks(unsigned, KEY)

    staging = ChunkStaging(tmp_path / "s.db", max_bytes=1 << 20, expiry_s=60)
    try:
        old = staging.add(chunks(1)[0], now=1000.0)
        assert (old.received, old.chunk_count, old.complete) == (1, 4, False)
        fresh = staging.add(chunks(2)[0], now=1070.0)  # the first stopped arriving 70 s ago
        assert [s.key for s in staging.all()] == [fresh.key]

        size = staging.bytes()
        staging.max_bytes = size * 7 // 2  # room for three chunks, not four
        for chunk in chunks(3)[:2]:
            staging.add(chunk, now=1080.0)
        staging.add(chunks(4)[0], now=1090.0)  # evicts the stalest partial delta (2 -> 3)
        assert {s.describe() for s in staging.all()} == {"delta 3 -> 4", "delta 4 -> 5"}
        assert staging.bytes() <= staging.max_bytes
        staging.max_bytes = 10
        with pytest.raises(StagingFull):
            staging.add(chunks(4)[1], now=1100.0)
    finally:
        staging.close()


# ---------------------------------------------------------------------------------------------
# The sync's own logic on an in-memory transport (no broker): what it subscribes to, what it
# asks, and that being offline loses nothing


class MemoryTransport:
    """A :class:`~edge.screening.transport.Transport` in memory: the test plays the console.

    ``deliver`` hands a payload to the handler subscribed to a channel, as the uplink would
    after validating it; ``published`` keeps what the sync sent; while ``online`` is false,
    ``publish`` raises :class:`Offline` as the real transport does without a connection.
    """

    def __init__(self) -> None:
        self.handlers: dict[tuple[Scope, str], PayloadHandler] = {}
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.online = True

    def subscribe(self, channel: str, handler: PayloadHandler, *, scope: Scope) -> None:
        assert (scope, channel) not in self.handlers, "one handler a channel"
        self.handlers[(scope, channel)] = handler

    async def publish(self, channel: str, body: dict[str, Any]) -> None:
        if not self.online:
            raise Offline("not connected (test)")
        self.published.append((channel, body))

    async def deliver(self, scope: Scope, channel: str, payload: dict[str, Any]) -> None:
        await self.handlers[(scope, channel)](payload)


def manifest(version: int) -> dict[str, Any]:
    """The parts of a ``watchlist-manifest`` the sync reads (the transport validated the rest)."""
    return {"version": version}


def snapshot_chunks(entries, version: int) -> list[dict[str, Any]]:
    return sign_chunks(
        make_chunks("snapshot", snapshot_changes(entries), to_version=version, key_id=KEY_ID),
        KEY,
    )


@pytest.mark.asyncio
async def test_the_sync_asks_for_a_snapshot_through_its_transport_and_applies_the_answer(
    tmp_path,
):
    transport = MemoryTransport()
    async with WatchlistSync(tmp_path / "watchlist.db", TRUSTED, "kiosk-a") as sync:
        sync.attach(transport)
        assert set(transport.handlers) == {
            ("fleet", "watchlist/manifest"),
            ("fleet", "watchlist/deltas"),
            ("device", "watchlist/deltas"),
        }
        await transport.deliver("fleet", "watchlist/manifest", manifest(1))
        assert transport.published == [
            (
                "watchlist/catchup",
                {"have_version": 0, "want": "snapshot", "reason": "startup", "window": 2},
            )
        ]
        assert sync.component()["state"] == "down"  # no list yet: travellers are referred

        for chunk in snapshot_chunks(V1, 1):  # the console's answer, on the kiosk's own topic
            await transport.deliver(
                "device", "watchlist/deltas", {**chunk, "for_device": "kiosk-a"}
            )
        assert sync.version == 1 and sync.component()["state"] == "ok"
        assert store_entries(tmp_path / "watchlist.db") == as_set(V1)
        assert len(transport.published) == 1, "up to date: nothing more asked"


@pytest.mark.asyncio
async def test_offline_the_sync_asks_nothing_it_cannot_send_and_resync_says_so(tmp_path):
    transport = MemoryTransport()
    transport.online = False
    async with WatchlistSync(tmp_path / "watchlist.db", TRUSTED, "kiosk-a") as sync:
        with pytest.raises(Offline, match="no transport attached"):
            await sync.resync()  # before the agent attaches one: offline too

        sync.attach(transport)
        await transport.deliver("fleet", "watchlist/manifest", manifest(1))  # never raises
        with pytest.raises(Offline, match="not connected"):
            await sync.resync()
        assert sync.asked == [] and sync.version == 0, "nothing counted as asked, nothing lost"

        transport.online = True
        assert await sync.resync() == {
            "have_version": 0,
            "want": "snapshot",
            "reason": "resync",
            "window": 2,
        }
        assert sync.asked == [transport.published[-1][1]]


@pytest.mark.asyncio
async def test_a_kiosk_asking_for_the_whole_list_again_and_again_is_not_resent_it(
    uplink_broker, tmp_path
):
    """A stolen, reprogrammed kiosk must not make the console resend the list at will: a few
    snapshots an hour, a budget of chunks per hour; refusals cost the console nothing."""
    now = [1000.0]
    limiter = CatchupLimiter(chunks_per_hour=4, snapshots_per_hour=1, clock=lambda: now[0])
    history = WatchlistHistory(tmp_path / "console.db")
    publisher = WatchlistPublisher(history, KEY, KEY_ID, node_id=NODE)
    responder = CatchupResponder(
        history, uplink_broker.console_endpoint(), node_id=NODE, limiter=limiter
    )

    def ask(device: str, want: str, have: int) -> Any:
        example = mqtt_schemas.examples("watchlist-catchup")["valid"][0]["payload"]
        body = {**example, "device_id": device, "have_version": have, "want": want,
                "reason": "resync"}  # fmt: skip
        topic = topics.device_topic(device, "watchlist/catchup")
        return responder.answer(mqtt, topic, json.dumps(body).encode())

    try:
        async with uplink_broker.client("console") as mqtt:
            await publisher.publish_list(mqtt, V1)
            await publisher.publish_list(mqtt, V2)
            # So many snapshots an hour (one, here):
            assert await ask("kiosk-greedy", "snapshot", 0) > 0
            assert await ask("kiosk-greedy", "snapshot", 0) == 0
            assert await ask("kiosk-honest", "snapshot", 0) > 0  # others are not affected
            # A budget of chunks per hour, whatever is asked: the deltas run out too.
            answered = [await ask("kiosk-greedy", "delta", 1) for _ in range(5)]
            assert answered[0] > 0 and answered[-1] == 0
            now[0] += 3601  # an hour later it is answered again
            assert await ask("kiosk-greedy", "snapshot", 0) > 0
    finally:
        history.close()
    assert limiter.refused >= 2


@pytest.mark.asyncio
async def test_a_trust_update_retires_the_signing_key_and_a_revocation_refuses_its_chunks(
    uplink_broker, tmp_path
):
    """The anchor's trust update reaches the kiosk retained; a chunk signed by a key outside
    its versions is refused, the new key's delta applies; the update is kept across restarts
    and an older one replayed changes nothing."""
    anchor = generate_key()
    new_key, new_id = generate_key(), "wl-next"
    anchors = {"wl-anchor": anchor.public_key()}

    def update(sequence: int, old_state: str) -> dict[str, Any]:
        keys = [TrustedKey(KEY_ID, KEY.public_key(), 1, 1, old_state),
                TrustedKey(new_id, new_key.public_key(), 2, None, "active")]  # fmt: skip
        return sign_trust_update(keys, sequence=sequence, anchor=anchor, anchor_id="wl-anchor")

    async with console_side(uplink_broker, tmp_path / "console.db") as console:
        await console.publish(V1)  # version 1, signed by the key in service then
        async with kiosk(uplink_broker, tmp_path, anchors=anchors) as k:
            await until(lambda: k.sync.version == 1)
            await publish_trust(console.mqtt, console.history, NODE, update(1, "retired"))
            await until(lambda: getattr(k.sync.trusted, "sequence", 0) == 1)
            # Whoever still holds the retired key cannot sign version 2 with it.
            changes = [{"op": "add", "kind": "person", "entry_id": "p-ortega",
                        "entry": person("p-ortega")[2]}]  # fmt: skip
            forged = make_chunks("delta", changes, from_version=1, to_version=2, key_id=KEY_ID)
            await console.send_chunk(sign_chunks(forged, KEY)[0])
            await until(lambda: "signs up to version 1" in k.sync.component().get("detail", ""))
            assert k.sync.version == 1
            # The new key's delta applies.
            fresh = WatchlistPublisher(console.history, new_key, new_id, node_id=NODE)
            await fresh.publish_list(console.mqtt, V2)
            await until(lambda: k.sync.version == 2)
        # Restarted, the kiosk holds update 1 still; a revocation comes, then an old replay.
        async with kiosk(uplink_broker, tmp_path, anchors=anchors) as k:
            assert getattr(k.sync.trusted, "sequence", 0) == 1
            await publish_trust(console.mqtt, console.history, NODE, update(2, "revoked"))
            await until(lambda: getattr(k.sync.trusted, "sequence", 0) == 2)
            await publish_trust(console.mqtt, console.history, NODE, update(1, "retired"))
            await asyncio.sleep(0.5)
            assert k.sync.trusted.sequence == 2
            assert not k.sync.trusted.allows(KEY_ID, 1)  # revoked: not even its own versions
            assert stat.S_IMODE(k.sync.trust_path.stat().st_mode) == 0o600
