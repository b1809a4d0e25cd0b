"""Fill a console database with a country's year of border traffic, for the console benchmarks.

::

    .venv/bin/python scripts/console_data.py --db .bench/console.db \\
        --crossings 10000000 --hits 200000 --kiosks 1000

Everything goes through the console's own write path (``console.store.Store.apply``), so every
column the console derives from a record (search keys, counters) is filled exactly as ingest
fills it. The records are the contract's examples with realistic variety: 1,000 kiosks at 40
posts, a year of crossings (entries and exits, CBICs and passports, a dozen nationalities),
2% of them referred with a screening hit naming the traveller (names from several scripts),
an officer decision for most hits (a fifth of them escalations), and each kiosk's availability
and latest heartbeat. Seeded: the same arguments give the same data.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mqtt_schemas  # noqa: E402
from console.records import Availability, Health, Record  # noqa: E402
from console.store import Store  # noqa: E402
from mqtt_schemas.envelope import uuid7  # noqa: E402

POSTS = 40
BATCH = 5000
NATIONALITIES = ("BLZ", "GTM", "MEX", "HND", "SLV", "USA", "CAN", "GBR", "DEU", "CHN", "IND", "NGA")
SURNAMES = (
    "CAL", "GARCIA", "HERNANDEZ", "LOPEZ", "MARTINEZ", "GONZALEZ", "PEREZ", "SANCHEZ", "RAMIREZ",
    "FLORES", "CHO", "POP", "COC", "BOL", "YOUNG", "SMITH", "WILLIAMS", "MÜLLER", "SCHMIDT",
    "ИВАНОВ", "ПЕТРОВ", "王", "李", "AL-RASHID", "BEN DAVID", "O'NEILL", "DE LA CRUZ", "NGUYEN",
)  # fmt: skip
GIVEN = (
    "JOSE MANUEL", "MARIA", "ANA LUCIA", "JUAN", "CARLOS", "LUIS", "ROSA", "PEDRO", "ELENA",
    "JOHN", "MARY", "ДМИТРИЙ", "АННА", "伟", "芳", "MOHAMMED", "FATIMA", "JOSÉ", "NOÉMIE",  # noqa: RUF001
)  # fmt: skip
LISTS = ("national-wanted", "interpol-red", "immigration-watch", "labour-violations")


def sites() -> list[str]:
    return [f"bz-post-{n:02d}" for n in range(POSTS)]


def kiosk_ids(count: int) -> list[str]:
    return [f"kiosk-{n:04d}" for n in range(count)]


def _example(name: str) -> dict:
    return copy.deepcopy(mqtt_schemas.examples(name)["valid"][0]["payload"])


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def records(crossings: int, hits: int, kiosks: int, seed: int) -> Iterator[Record]:
    """Crossings, and for the referred ones a hit and (mostly) an officer decision."""
    rng = random.Random(seed)
    devices = kiosk_ids(kiosks)
    posts = sites()
    site_of = {device: posts[n % POSTS] for n, device in enumerate(devices)}
    seqs = dict.fromkeys(devices, 0)
    crossing_t, hit_t, decision_t = (
        _example("crossing"),
        _example("screening-hit"),
        _example("officer-decision"),
    )
    end = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    span = 365 * 86400
    refer_every = max(1, crossings // max(hits, 1))
    for n in range(crossings):
        device = devices[rng.randrange(kiosks)]
        seqs[device] += 1
        when = end - dt.timedelta(seconds=span * (1 - n / crossings))
        referred = hits and n % refer_every == 0
        crossing_id = uuid7()
        payload = dict(crossing_t)
        payload.update(
            id=crossing_id,
            device_id=device,
            seq=seqs[device],
            time=_iso(when),
            site=site_of[device],
            lane=f"lane-{rng.randrange(1, 5)}",
            direction="entry" if rng.random() < 0.5 else "exit",
        )
        kind = "cbic" if rng.random() < 0.6 else "passport"
        document = dict(crossing_t["document"])
        nationality = rng.choice(NATIONALITIES)
        document.update(
            kind=kind,
            document_type="IC" if kind == "cbic" else "P",
            nationality=nationality,
            issuing_state="BLZ" if kind == "cbic" else nationality,
            number=f"{'CB' if kind == 'cbic' else 'P'}{rng.randrange(10**7):07d}",
            birth_year=rng.randrange(1940, 2012),
        )
        if kind == "passport":
            document.pop("category", None)
        payload["document"] = document
        payload["screening"] = {
            "watchlist_version": 1288,
            "hit_count": 1 if referred else 0,
            "hits": [],
        }
        payload["decision"] = {"outcome": "refer" if referred else "pass", "reasons": []}
        if referred:
            payload["decision"]["reasons"] = ["watchlist-hit"]
        yield _record("crossings", payload)
        if not referred:
            continue
        hit = dict(hit_t)
        hit_id = uuid7()
        seqs[device] += 1
        hit.update(
            id=uuid7(),
            device_id=device,
            seq=seqs[device],
            time=_iso(when + dt.timedelta(milliseconds=5)),
            crossing_id=crossing_id,
            site=site_of[device],
            lane=payload["lane"],
            direction=payload["direction"],
        )
        hit["traveller"] = {
            **hit_t["traveller"],
            "surname": rng.choice(SURNAMES),
            "given_names": rng.choice(GIVEN),
            "nationality": nationality,
            "document_number": document["number"],
            "issuing_state": document["issuing_state"],
        }
        entry = dict(hit_t["hits"][0])
        entry.update(hit_id=hit_id, list=rng.choice(LISTS), entry_id=f"e-{rng.randrange(10**6)}")
        hit["hits"] = [entry]
        yield _record("hits", hit)
        if rng.random() < 0.9:
            seqs[device] += 1
            decided = _iso(when + dt.timedelta(minutes=rng.randrange(1, 30)))
            decision = dict(decision_t)
            decision.update(
                id=uuid7(),
                device_id=device,
                seq=seqs[device],
                time=decided,
                crossing_id=crossing_id,
                hit_id=hit_id,
                officer_id=f"BDF-{rng.randrange(1, 400):04d}",
                decision=rng.choices(("admit", "refuse", "escalate"), (7, 1, 2))[0],
                decided_at=decided,
            )
            yield _record("decisions", decision)


def _record(channel: str, payload: dict) -> Record:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Record(channel, payload["id"], payload["device_id"], text, payload)


def device_items(kiosks: int, seed: int) -> list[Availability | Health]:
    """Each kiosk's birth and latest heartbeat (a few offline, as a real fleet has)."""
    rng = random.Random(seed + 1)
    health_t = _example("health")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    items: list[Availability | Health] = []
    for device in kiosk_ids(kiosks):
        offline = rng.random() < 0.03
        items.append(
            Availability(
                device,
                uuid7(),
                "offline" if offline else "online",
                1,
                "connection-lost" if offline else None,
                None if offline else "0.2.0",
                _iso(now - dt.timedelta(minutes=rng.randrange(1, 600))),
                "{}",
            )
        )
        health = dict(health_t)
        health.update(id=uuid7(), device_id=device, seq=2, session=1, time=_iso(now))
        text = json.dumps(health, separators=(",", ":"))
        items.append(Health(device, health["id"], 2, 1, health["time"], text))
    return items


def generate(
    target: str | Path, crossings: int, hits: int, kiosks: int, seed: int = 1, quiet: bool = False
) -> int:
    """Fill *target* (a new console database); return how many records were stored."""
    store = Store.open(target)
    stored = 0
    started = time.monotonic()
    try:
        store.apply(device_items(kiosks, seed), "console-data", _iso(dt.datetime.now(dt.UTC)))
        batch: list[Record] = []
        for record in records(crossings, hits, kiosks, seed):
            batch.append(record)
            if len(batch) >= BATCH:
                stored += store.apply(batch, "console-data", record.payload["time"]).stored
                batch = []
                if not quiet and stored % 500_000 < BATCH:
                    rate = stored / (time.monotonic() - started)
                    print(f"console-data: {stored:,} records ({rate:,.0f}/s)", file=sys.stderr)
        if batch:
            stored += store.apply(batch, "console-data", batch[-1].payload["time"]).stored
    finally:
        store.close()
    return stored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="a new SQLite file or a postgresql:// URL")
    parser.add_argument("--crossings", type=int, default=10_000_000)
    parser.add_argument("--hits", type=int, default=200_000)
    parser.add_argument("--kiosks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    stored = generate(args.db, args.crossings, args.hits, args.kiosks, args.seed)
    print(f"console-data: {stored:,} records stored in {args.db}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
