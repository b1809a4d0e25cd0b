"""No personal value in any log line, on either side, even at DEBUG.

One end-to-end run on the real parts (the agent process on pcscd+vpcd and a pty MRZ reader,
Mosquitto with TLS, the console's ingest worker): travellers tap cards and show a passport,
every one of them referred to an officer (a kiosk without a watchlist refers everyone, so the
review queue and the screening-hit records hold their identities); a hostile kiosk sends
records whose personal fields break the contract in the ways that end up in a quarantine
reason. Then the agent's log and the console's log are searched for every traveller's names,
document number and birth date (in every form it was written in).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

import pytest

import mqtt_schemas
from edge.documents.mrz import check_digit
from harness.agent import sample
from harness.console import Kiosk, crossing, rows, running_worker
from mqtt_schemas.envelope import uuid7

pytestmark = pytest.mark.asyncio

SAMPLES = ("resident-worker", "expired-frequent-crosser", "student")
HOSTILE = {
    "surname": "QUETZALLI-VILLANUEVA",
    "given_names": "ITZEL XIADANI",
    "document_number": "ZQ7781234",
    "birth_date": "1991-07-19",
}


def passport_mrz() -> str:
    """A TD3 MRZ (ICAO 9303's specimen holder), check digits right."""
    line1 = "P<UTOERIKSSON<<ANNA<MARIA".ljust(44, "<")
    number, birth, expiry = "L898902C3", "740812", "310415"
    body = number + check_digit(number) + "UTO" + birth + check_digit(birth) + "F" + expiry
    optional = "ZE184226B".ljust(14, "<")
    body += check_digit(expiry) + optional + check_digit(optional)
    composite = body[0:10] + body[13:20] + body[21:43]
    return line1 + "\n" + body + check_digit(composite)


def personal_values() -> set[str]:
    """Every name part, document number and birth date of the run's travellers."""
    values = {"ERIKSSON", "L898902C3", "740812", "1974-08-12", "ZE184226B"}
    for name in SAMPLES:
        holder = sample(name)
        values.update(holder["surname"].split() + holder["given_names"].split())
        values.add(holder["card_number"])
        birth = holder["date_of_birth"]
        values.update({birth, birth[2:].replace("-", "")})
    values.update(HOSTILE["surname"].split("-") + HOSTILE["given_names"].split())
    values.update({HOSTILE["document_number"], HOSTILE["birth_date"], "19/07/1991"})
    return {value for value in values if len(value) >= 4}  # "Ana" would match "banana"


def forms(value: str) -> list[str]:
    """*value* as a log line might show it: as text, as the hex of its UTF-8 bytes (an APDU)."""
    data = value.encode("utf-8")
    return [re.escape(value), re.escape(data.hex(" ")), re.escape(data.hex())]


def leaks(text: str) -> list[str]:
    found = []
    for value in sorted(personal_values()):
        pattern = "|".join(forms(value))
        if not any(c.isdigit() for c in value):  # a name: a whole word ("Anna", not "Annals")
            pattern = rf"(?<![^\W\d_])(?:{pattern})(?![^\W\d_])"
        for match in re.finditer(pattern, text, re.IGNORECASE):
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            found.append(f"{value!r} in: {text[start : end if end >= 0 else None][:300]}")
    return found


def hostile_payloads(device_id: str) -> list[tuple[str, bytes]]:
    """Records (channel, bytes) whose personal fields fail the contract, each one quarantined."""
    hit = mqtt_schemas.examples("screening-hit")["valid"][0]["payload"]
    hit.update(id=uuid7(), device_id=device_id, seq=1, crossing_id=uuid7())
    bad_birth = {**hit, "id": uuid7(), "seq": 2}
    bad_birth["traveller"] = {**hit["traveller"], "birth_date": "19/07/1991"}
    bad_number = {**hit, "id": uuid7(), "seq": 3}
    bad_number["traveller"] = {
        **hit["traveller"],
        "surname": HOSTILE["surname"],
        "given_names": HOSTILE["given_names"],
        "document_number": HOSTILE["document_number"].lower(),
        "birth_date": HOSTILE["birth_date"],
    }
    bad_sex = {**hit, "id": uuid7(), "seq": 4}
    bad_sex["traveller"] = {**bad_number["traveller"], "document_number": "ZQ7781234", "sex": 7}
    long_name = {**hit, "id": uuid7(), "seq": 5}
    long_name["traveller"] = {**bad_sex["traveller"], "sex": "F", "surname": "ITZEL" * 40}
    record = crossing(device_id, 6)
    record["document"] = {**record["document"], "number": f"{HOSTILE['document_number']}!"}
    other = crossing("kiosk-logs-someone-else", 7)
    other["document"] = {**other["document"], "number": HOSTILE["document_number"]}
    broken = json.dumps(bad_number)[:-40].encode()  # not JSON: cut inside the traveller
    hits = [("hits", json.dumps(p).encode()) for p in (bad_birth, bad_number, bad_sex, long_name)]
    crossings = [("crossings", json.dumps(p).encode()) for p in (record, other)]
    return [*hits, *crossings, ("hits", broken)]


async def until(condition, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_no_traveller_name_document_number_or_birth_date_is_logged_by_kiosk_or_console(
    uplink_broker, kiosk_rig, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)  # the console runs in this process: every logger, DEBUG
    rig = kiosk_rig(
        uplink_broker,
        "kiosk-logs-1",
        watchlist_version=0,  # no list yet: every traveller is referred, with a review item
        agent={"log_level": "debug"},
        lane={"policy": {"show_s": 0.2, "chip_wait_s": 0.5}},
    )
    db = tmp_path / "console.db"
    async with running_worker(uplink_broker, db):
        rig.start()
        for name in SAMPLES:
            card = rig.card(sample(name))
            assert await asyncio.to_thread(rig.tap, card), rig.log_text()
        await asyncio.to_thread(rig.mrz.wait_open, 10)
        before = rig.recorded()
        await asyncio.to_thread(rig.mrz.send, passport_mrz())
        await until(lambda: rig.recorded() == before + 1)
        reviews = rig.query("SELECT personal FROM lane_reviews WHERE personal IS NOT NULL")
        assert len(reviews) == len(SAMPLES) + 1  # the identities are on the kiosk, not the log
        await until(lambda: rig.outbox_depth() == 0, timeout=30)  # stored and acked

        hostile = hostile_payloads("kiosk-logs-2")
        async with Kiosk(uplink_broker, "kiosk-logs-2") as kiosk:
            for channel, payload in hostile:
                await kiosk.publish(channel, payload)
            await kiosk.wait_ack_count(1, timeout=10)
            deadline = time.monotonic() + 10
            while len(kiosk.rejected()) < len(hostile) - 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            rejected = kiosk.rejected()
        assert rig.stop() == 0
    quarantined = rows(db, "SELECT reason FROM quarantine")
    assert len(quarantined) >= len(hostile) - 1, quarantined
    assert len(rejected) >= len(hostile) - 2  # the cut-off one has no id to reject by

    agent_log = rig.log_text()
    # this process's log, but for the simulated cards' own (the test's side, not a product's)
    console_log = "\n".join(
        f"{record.name} {record.levelname} {record.getMessage()}"
        for record in caplog.records
        if not record.name.startswith("edge.sim")
    )
    assert "DEBUG" in agent_log and "DEBUG" in console_log  # really logged at DEBUG
    assert leaks(agent_log) == []
    assert leaks(console_log) == []
    # the ack goes back to the kiosk, which logs what was rejected: value-free as well
    assert leaks("\n".join(rejected.values())) == []
