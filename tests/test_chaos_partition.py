"""Network partitions (issue 14, item 5): the link between a kiosk, or the console, and the
broker goes silent: no process is killed, no connection is reset; packets just vanish, both
ways, at a veth in a real network namespace (``harness.netns``).

Each side must notice by its keepalive alone, the kiosk must go on recording crossings into its
outbox meanwhile, and after the link returns everything drains: the console stores exactly the
crossings the kiosk committed, each once. Counted on both sides: the kiosk's durable lane
counter and the ids it reported committed against the rows of the console's database.

Keepalive is 5 s here (the lowest the kiosk's configuration allows). Left to itself paho would
notice only within 2 x keepalive + 1 s (a PINGREQ after one keepalive of silence, given up one
keepalive later); both sides make it ping sooner (``mqtt_schemas.liveness``), so each must notice
within its keepalive. The broker, by the MQTT rule, gives up after 1.5 x keepalive.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.store import StoreError
from harness import chaos
from harness.console import rows
from harness.netns import free_subnet, namespace
from harness.uplink import UplinkPki

KEEPALIVE = 5
NOTICE_S = KEEPALIVE
"""How long a side may take to notice a silent link: its keepalive (the module documentation)."""
BROKER_GIVES_UP_S = 1.5 * KEEPALIVE + 5
"""By then the broker has dropped the silent client (measured with Mosquitto 2.0.11: 9.7-10.2 s,
1.5 x keepalive and up to 2.7 s more until the log line: its keepalive check is not immediate)."""
COUNT = 120
EVERY = 0.1

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def subnet() -> ipaddress.IPv4Network:
    return free_subnet()


@pytest.fixture(scope="module")
def pki(subnet: ipaddress.IPv4Network, tmp_path_factory: pytest.TempPathFactory) -> UplinkPki:
    """A broker certificate naming the host's end of the veth pair, where the broker listens."""
    return chaos.pki_for(tmp_path_factory.mktemp("chaos-pki"), str(subnet[1]))


def stored(db: Path, device_id: str) -> list[str]:
    return [row[0] for row in rows(db, "SELECT id FROM crossings WHERE device_id = ?", device_id)]


def console_count(db: Path, device_id: str) -> int:
    try:
        return len(stored(db, device_id))
    except StoreError:  # the worker has not made the database yet
        return 0


def assert_drained(kiosk: chaos.Process, db: Path, kiosk_db: Path, device_id: str) -> None:
    """Everything the kiosk committed is stored by the console, once; its outbox is empty."""
    kiosk.wait(lambda: len(chaos.recorded(kiosk)) == COUNT, 30, "the lane recorded them all")
    chaos.wait_until(
        lambda: console_count(db, device_id) == COUNT, 40, "the console stored them all"
    )
    chaos.wait_until(
        lambda: chaos.kiosk_db(kiosk_db, "SELECT count(*) FROM uplink_outbox")[0][0] == 0,
        20,
        "the kiosk's outbox drained",
    )
    ids = stored(db, device_id)
    assert len(ids) == len(set(ids)) == COUNT  # nothing doubled
    assert set(ids) == set(chaos.recorded(kiosk))  # nothing lost, nothing made up
    assert chaos.kiosk_db(kiosk_db, "SELECT crossings FROM lane_state") == [(COUNT,)]


@pytest.fixture
def net(subnet: ipaddress.IPv4Network) -> Iterator:
    with namespace(subnet) as ns:
        yield ns


def test_kiosk_broker_partition(net, pki: UplinkPki, tmp_path: Path) -> None:
    """The kiosk's link goes silent for longer than the broker's keepalive: the kiosk notices
    within its keepalive, records on, and drains once the link is back; the broker noticed too
    (it published the kiosk's will, which the console stored)."""
    device = "kiosk-partition"
    db, kiosk_db = tmp_path / "console.db", tmp_path / "kiosk.db"
    with (
        chaos.broker_on(pki, tmp_path / "mosquitto", net.host_ip) as broker,
        chaos.console(broker, db) as console,
    ):
        console.wait(lambda: console.words("ready"), 15, "the console subscribed")
        with chaos.kiosk(
            broker,
            device,
            kiosk_db,
            every=EVERY,
            count=COUNT,
            prefix=net.command([]),
            keepalive_s=KEEPALIVE,
        ) as kiosk:
            kiosk.wait(lambda: "connected" in dict(chaos.states(kiosk)).values(), 15, "up")
            chaos.wait_until(
                lambda: console_count(db, device) >= 10, 15, "crossings flowing", kiosk, console
            )

            net.partition()
            cut = time.monotonic()
            before = len(chaos.recorded(kiosk))
            kiosk.wait(
                lambda: any(s != "connected" for at, s in chaos.states(kiosk) if at > cut),
                NOTICE_S + 2,
                "the kiosk noticed the partition",
            )
            noticed = min(at for at, s in chaos.states(kiosk) if at > cut) - cut
            assert noticed <= NOTICE_S, f"the kiosk noticed after {noticed:.1f} s"
            print(f"the kiosk noticed the partition after {noticed:.1f} s")
            # The broker gives the kiosk up as well (and publishes its will).
            chaos.wait_until(
                lambda: f"{device} has exceeded timeout" in broker.process.log(),
                BROKER_GIVES_UP_S + 10,
                "the broker noticed the partition",
                kiosk,
            )
            broker_noticed = time.monotonic() - cut
            print(f"the broker noticed the partition after {broker_noticed:.1f} s")
            during = len(chaos.recorded(kiosk)) - before
            stored_during = console_count(db, device)
            assert during >= 20, f"the lane recorded {during} crossings while cut off"
            assert net.partitioned

            net.heal()
            healed = time.monotonic()
            kiosk.wait(
                lambda: any(s == "connected" for at, s in chaos.states(kiosk) if at > healed),
                10,
                "the kiosk reconnected",
            )
            assert_drained(kiosk, db, kiosk_db, device)
            assert stored_during < COUNT
            kiosk.stop()
        console.stop()
    assert broker_noticed <= BROKER_GIVES_UP_S, f"the broker noticed after {broker_noticed:.1f} s"
    wills = rows(
        db,
        "SELECT reason FROM availability_log WHERE device_id = ? AND state = 'offline'",
        device,
    )
    assert ("connection-lost",) in [tuple(w) for w in wills], wills


def test_console_broker_partition(net, pki: UplinkPki, tmp_path: Path) -> None:
    """The console's link goes silent: its ingest worker notices within its keepalive and
    reconnects once the link is back; the kiosk, still connected, keeps every unacked record
    and the console ends up with each exactly once."""
    device = "kiosk-console-cut"
    db, kiosk_db = tmp_path / "console.db", tmp_path / "kiosk.db"
    with (
        chaos.broker_on(pki, tmp_path / "mosquitto", net.host_ip) as broker,
        chaos.console(broker, db, keepalive=KEEPALIVE, prefix=net.command([])) as console,
    ):
        console.wait(lambda: console.words("ready"), 15, "the console subscribed")
        with chaos.kiosk(broker, device, kiosk_db, every=EVERY, count=COUNT) as kiosk:
            chaos.wait_until(
                lambda: console_count(db, device) >= 10, 15, "crossings flowing", kiosk, console
            )

            net.partition()
            cut = time.monotonic()
            console.wait(
                lambda: any(at > cut for at, _ in console.words("lost")),
                NOTICE_S + 2,
                "the console noticed the partition",
            )
            noticed = min(at for at, _ in console.words("lost") if at > cut) - cut
            assert noticed <= NOTICE_S, f"the console noticed after {noticed:.1f} s"
            print(f"the console noticed the partition after {noticed:.1f} s")
            time.sleep(max(0.0, cut + BROKER_GIVES_UP_S - time.monotonic()))
            # The kiosk's own link is fine: it stayed connected and recorded on.
            assert [s for at, s in chaos.states(kiosk) if at > cut] == []
            stored_during = console_count(db, device)

            net.heal()
            healed = time.monotonic()
            console.wait(
                lambda: any(at > healed for at, _ in console.words("ready")),
                10,
                "the console reconnected",
            )
            assert_drained(kiosk, db, kiosk_db, device)
            assert stored_during < COUNT
            kiosk.stop()
        console.stop()
