"""Clock jumps on the kiosk (issue 14, item 5): the kiosk process runs under libfaketime, its
wall clock moved by days forward and back while it records, publishes and drains; the broker
and the console keep the real time.

* Records: ``seq`` stays strictly increasing and every id unique across the jumps; ids keep
  their order within each stretch of constant clock (a step back of days is followed, by
  design: see ``mqtt_schemas.envelope``), and the console stores each record exactly once.
* The console flags the skew: a kiosk whose heartbeats are stamped days off the console's
  receive time raises ``clock-skew`` (and the fleet view shows by how much); it clears once
  the clock is right again.
* Certificates: a kiosk clock past the broker certificate's expiry, or before its start, cannot
  connect and says why (``certificate has expired`` / ``not yet valid``) in its uplink state,
  keeps recording, and connects and drains once the clock is right.
* Retention: the real agent, its clock a year ahead, refers a traveller; the clock is set right;
  the traveller's identity still leaves the kiosk within the review retention (by the kiosk
  database's lifetime, which no clock jump stretches), not a year later.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from console import alerts
from console.settings import Settings
from console.store import open_database
from harness import chaos
from harness.console import rows
from harness.uplink import UplinkBroker

DAY = 86400.0


def shift(timestamp_file: Path, offset: str) -> None:
    """Move the kiosk's wall clock (it re-reads the file within a second)."""
    timestamp_file.write_text(offset + "\n")


def stored(db: Path, device: str) -> list[tuple[int, str, float]]:
    """The console's crossings of *device* by seq: (seq, id, kiosk time - receive time)."""
    found = []
    for seq, record_id, stamped, received in rows(
        db, "SELECT seq, id, time, received_at FROM crossings WHERE device_id = ?", device
    ):
        offset = alerts.parse_time(stamped) - alerts.parse_time(received)
        found.append((seq, record_id, offset.total_seconds()))
    return sorted(found)


def skew_alerts(db: Path, device: str) -> set[str]:
    """Evaluate the alert rules now (as ``alerts watch`` does) and list the kiosk's open ones."""
    engine = open_database(db)
    try:
        alerts.evaluate(engine, Settings())
        with engine.connect() as conn:
            return {a.rule for a in alerts.list_alerts(conn, open_only=True, device_id=device)}
    finally:
        engine.dispose()


@pytest.mark.chaos
def test_clock_jumps_forward_and_back_by_days(uplink_broker: UplinkBroker, tmp_path: Path) -> None:
    device = "kiosk-clock"
    console_db, kiosk_db, clock = tmp_path / "console.db", tmp_path / "kiosk.db", tmp_path / "ft"
    shift(clock, "+0")
    with chaos.console(uplink_broker, console_db) as console:
        console.wait(lambda: console.words("ready"), 15, "the console subscribed")
        with chaos.kiosk(
            uplink_broker,
            device,
            kiosk_db,
            every=0.02,
            count=10**6,  # until stopped: under libfaketime its pace varies tenfold with load
            health=0.5,
            env=chaos.faketime_env(clock),
        ) as kiosk:

            def recorded_at(offset_days: int) -> int:
                return sum(
                    1 for *_, off in stored(console_db, device) if round(off / DAY) == offset_days
                )

            def heartbeat_skew() -> float | None:
                with open_database(console_db, readonly=True).connect() as conn:
                    (status,) = alerts.fleet_status(conn, device_id=device)
                return status.clock_skew_s

            chaos.wait_until(lambda: recorded_at(0) >= 5, 30, "records at the right time", kiosk)
            assert "clock-skew" not in skew_alerts(console_db, device)

            shift(clock, "+3d")
            chaos.wait_until(lambda: recorded_at(3) >= 5, 30, "records three days ahead", kiosk)
            chaos.wait_until(
                lambda: (heartbeat_skew() or 0) > 2.9 * DAY, 20, "a skewed heartbeat", kiosk
            )
            assert "clock-skew" in skew_alerts(console_db, device)

            shift(clock, "-2d")  # five days back
            chaos.wait_until(lambda: recorded_at(-2) >= 5, 30, "records two days behind", kiosk)
            chaos.wait_until(lambda: (heartbeat_skew() or 0) < -1.9 * DAY, 20, "behind now", kiosk)
            assert "clock-skew" in skew_alerts(console_db, device)

            shift(clock, "+0")
            right = recorded_at(0)
            chaos.wait_until(lambda: recorded_at(0) >= right + 5, 30, "right again", kiosk)
            chaos.wait_until(
                lambda: abs(heartbeat_skew() or DAY) < 60, 20, "a right heartbeat", kiosk
            )
            assert "clock-skew" not in skew_alerts(console_db, device)
            kiosk.stop()
        # What is still in the outbox drains on a restart (by the real clock), recording nothing.
        with chaos.kiosk(uplink_broker, device, kiosk_db, every=0.02, count=0) as drain:
            ((count,),) = chaos.kiosk_db(kiosk_db, "SELECT crossings FROM lane_state")
            chaos.wait_until(lambda: len(stored(console_db, device)) == count, 30, "drained", drain)
            drain.stop()
        console.stop()

    records = stored(console_db, device)
    seqs = [seq for seq, _, _ in records]
    ids = [record_id for _, record_id, _ in records]
    assert len(set(ids)) == len(ids) == count  # nothing lost, nothing doubled
    assert seqs == sorted(set(seqs))  # strictly increasing, whatever the clock did
    assert set(ids) == set(chaos.recorded(kiosk))
    # Stretches of one clock offset, in seq order: right, 3 days ahead, 2 behind, right again.
    # Within each, ids sort as they were made (seq order).
    stretches: list[tuple[int, list[str]]] = []
    for _, record_id, offset in records:
        band = round(offset / DAY)
        if not stretches or stretches[-1][0] != band:
            stretches.append((band, []))
        stretches[-1][1].append(record_id)
    assert [band for band, _ in stretches] == [0, 3, -2, 0]
    for _, stretch in stretches:
        assert stretch == sorted(stretch)


@pytest.mark.chaos
def test_a_kiosk_clock_outside_the_broker_certificate_says_so(tmp_path: Path) -> None:
    """The broker's certificate is valid for one day from now. A kiosk clock three days ahead
    finds it expired, three days behind finds it not yet valid: the kiosk reports that, goes
    on recording, and connects and drains once its clock is right."""
    device, count = "kiosk-cert-clock", 20
    pki = chaos.pki_for(tmp_path / "pki", days=1)
    clock = tmp_path / "faketime"
    console_db = tmp_path / "console.db"
    shift(clock, "+3d")
    with (
        chaos.broker_on(pki, tmp_path / "mosquitto", "127.0.0.1") as broker,
        chaos.console(broker, console_db) as console,
    ):
        console.wait(lambda: console.words("ready"), 15, "the console subscribed")
        with chaos.kiosk(
            broker,
            device,
            tmp_path / "kiosk.db",
            every=0.05,
            count=count,
            env=chaos.faketime_env(clock),
        ) as kiosk:

            def errors() -> str:
                return "\n".join(" ".join(words) for _, words in kiosk.words("state"))

            kiosk.wait(lambda: "certificate has expired" in errors(), 20, "expired reported")
            shift(clock, "-3d")
            kiosk.wait(lambda: "certificate is not yet valid" in errors(), 20, "not yet valid")
            assert "connected" not in [state for _, state in chaos.states(kiosk)]
            assert kiosk.popen.poll() is None  # no crash
            kiosk.wait(lambda: len(chaos.recorded(kiosk)) >= 3, 20, "the lane went on")
            assert rows(console_db, "SELECT count(*) FROM crossings")[0][0] == 0

            shift(clock, "+0")
            kiosk.wait(lambda: len(chaos.recorded(kiosk)) == count, 60, "all recorded")
            chaos.wait_until(lambda: len(stored(console_db, device)) == count, 30, "drained", kiosk)
            kiosk.stop()
        console.stop()
    assert {i for _, i, _ in stored(console_db, device)} == set(chaos.recorded(kiosk))


def test_the_skew_rule_holds_past_its_threshold_either_way() -> None:
    """``clock-skew`` at its threshold, both ways, from the configured minutes."""
    received = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)
    settings = Settings()
    limit = settings.alerts.clock_skew_minutes * 60

    def rules(skew_s: float) -> set[str]:
        stamped = received + dt.timedelta(seconds=skew_s)
        device = {
            "device_id": "kiosk-a",
            "state": "online",
            "health_received_at": alerts.format_time(received),
            "health": {"time": alerts.format_time(stamped), "clock": {"synced": True}},
        }
        return {f.rule for f in alerts.findings(device, settings, received)}

    assert "clock-skew" not in rules(limit) | rules(-limit)
    assert "clock-skew" in rules(limit + 1) & rules(-limit - 1)


@pytest.mark.chaos
def test_a_referred_travellers_identity_leaves_within_the_retention_after_a_year_ahead_clock(
    uplink_broker: UplinkBroker, kiosk_rig, tmp_path: Path
) -> None:
    retention_s = 8
    clock = tmp_path / "ft"
    shift(clock, "+365d")
    rig = kiosk_rig(
        uplink_broker,
        "kiosk-retention",
        watchlist_version=0,  # no list yet: every traveller is referred, with a review item
        lane={"policy": {"show_s": 0.2, "review_retention_s": retention_s}},
    )
    rig.start(env=chaos.faketime_env(clock))
    assert rig.tap(rig.worker_card(), timeout=20), rig.log_text()
    ((created_ms, personal),) = rig.query("SELECT created_ms, personal FROM lane_reviews")
    referred = time.monotonic()
    assert personal is not None  # the officer needs the identity, for now
    assert created_ms / 1000 - time.time() > 364 * DAY  # written a year ahead

    shift(clock, "+0")  # the clock is set right: by the wall clock the item is a year young
    chaos.wait_until(
        lambda: rig.query("SELECT personal IS NULL FROM lane_reviews") == [(1,)],
        retention_s + 10,
        "the identity cleared",
    )
    cleared = time.monotonic() - referred
    # Not before its time either: the lifetime measure counts from the referral.
    assert retention_s - 1 <= cleared <= retention_s + 2 + 1.5, f"cleared after {cleared:.1f} s"
    print(f"cleared {cleared:.1f} s after the referral (retention {retention_s} s)")
    assert rig.stop() == 0
