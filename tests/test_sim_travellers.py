"""Synthetic travellers (edge/sim/population.py, edge/sim/travellers.py) and ``sim population``.

A population is checked the way a kiosk uses it: its trust files load with the kiosk's own
loaders, its watchlist imports with the real importer, and the real matcher at the lane's
threshold finds exactly the travellers it lists. Then the driver walks travellers through the
real devices (pcscd + vpcd, a pseudo-terminal MRZ reader, the real drivers) into a real Lane,
whose outbox records what the population expects.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.devices.card_config import CardReaderConfig
from edge.devices.card_reader import CardReader
from edge.devices.mrz_reader import MrzReader, MrzReaderConfig
from edge.lane import Lane, LaneConfig, LaneState, StoreScreener
from edge.lane.screening import ScreeningQuery
from edge.screening.importers import import_files
from edge.screening.store import WatchlistStore
from edge.sim.pcscd import PcscStack
from edge.sim.travellers import (
    LaneDriver,
    Population,
    PopulationError,
    Traveller,
    make_population,
)
from edge.trust import load_csca_store, load_trust_list
from edge.uplink.outbox import Outbox
from harness.pcsc import wait_for_card
from mqtt_schemas.envelope import StaticClock

SITE = "bz-santa-elena"
SEED = 7


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Population:
    """200 travellers, 10% of them listed, and the default few thousand filler entries."""
    return make_population(
        tmp_path_factory.mktemp("population") / "pop", 200, seed=SEED, watchlisted=0.1, site=SITE
    )


@pytest.fixture(scope="module")
def watchlist_db(population: Population, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The population's watchlist, imported as `borderlane-edge watchlist import` does."""
    path = tmp_path_factory.mktemp("watchlist") / "watchlist.db"
    with WatchlistStore(path) as store:
        report = import_files(store, [population.watchlist_path], progress=False)
        store.set_version(1, source="population")
    assert report.errors == []
    return path


def identity(traveller: Traveller) -> ScreeningQuery:
    """What the lane screens: the document's holder fields."""
    holder = traveller.holder
    return ScreeningQuery(
        surname=holder["surname"],
        given_names=holder["given_names"],
        birth_date=holder["date_of_birth"],
        nationality=holder["nationality"],
        sex=holder["sex"],
        document_number=holder.get("card_number") or holder.get("document_number"),
        issuing_state=holder["issuing_state"],
    )


def document_number(traveller: Traveller) -> str:
    return traveller.holder.get("card_number") or traveller.holder["document_number"]


# -- the population --------------------------------------------------------------------------


def test_a_population_is_the_same_for_the_same_seed(tmp_path: Path, population) -> None:
    again = make_population(
        tmp_path / "again", 200, seed=SEED, watchlisted=0.1, site=SITE, today=population.today
    )
    other = make_population(
        tmp_path / "other", 200, seed=SEED + 1, watchlisted=0.1, site=SITE, today=population.today
    )
    for name in ("travellers.jsonl", "watchlist.jsonl"):
        mine = (population.directory / name).read_bytes()
        assert (again.directory / name).read_bytes() == mine
        assert (other.directory / name).read_bytes() != mine
    assert again.counts == population.counts


def test_most_travellers_pass_and_every_kind_of_referral_is_there(population) -> None:
    expected = Counter(t.expect.label for t in population.travellers)
    kinds = Counter(t.kind for t in population.travellers)
    assert kinds == {"cbic": 140, "passport": 60}
    assert expected["pass"] == 200 - 20 - 6 - 6
    assert expected["refer:document-expired"] == 6
    assert expected["refer:not-valid-at-site"] == 6
    listed = [t for t in population.travellers if t.listed_as]
    assert len(listed) == 20
    # the lists' actions are mixed: refer, deny (an arrest warrant), alert
    assert {t.expect.reason for t in listed} == {
        "watchlist-hit",
        "watchlist-deny",
        "watchlist-alert",
    }
    assert {t.kind for t in listed} == {"cbic", "passport"}
    wrong_site = [t for t in population.travellers if t.expect.reason == "not-valid-at-site"]
    assert all(t.kind == "cbic" and SITE not in t.holder["valid_at"] for t in wrong_site)


def test_the_directory_loads_back_as_it_was_made(population) -> None:
    loaded = Population.load(population.directory)
    assert loaded.travellers == population.travellers
    assert (loaded.seed, loaded.site, loaded.today) == (SEED, SITE, population.today)
    assert loaded.counts == population.counts


def test_the_trust_files_load_with_the_kiosks_loaders(population) -> None:
    trust = load_trust_list(population.cbic_trust_dir)
    store = load_csca_store([population.csca_dir])
    issuers = {t.issuer for t in population.travellers if t.kind == "cbic"}
    assert issuers <= set(trust.key_ids)
    assert len(store) >= len({t.issuer for t in population.travellers if t.kind == "passport"})
    # the private keys stay in issuer/, never beside the trust files
    assert not list(population.trust_dir.rglob("*.key"))
    assert list((population.directory / "issuer").rglob("*.key"))


def test_the_watchlist_imports_with_listed_travellers_and_filler(population) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "watchlist",
            "import",
            "--db",
            str(population.directory / "cli.db"),
            str(population.watchlist_path),
        ],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in population.watchlist_path.read_text().splitlines()]
    persons = [r for r in records if r["kind"] == "person"]
    assert len(persons) == 20 + 3000
    assert sum(r["kind"] == "document" for r in records) == 300
    listed = {t.listed_as for t in population.travellers if t.listed_as}
    for record in (r for r in persons if r["id"] in listed):
        assert record["birth_date"] and record["action"] in ("refer", "deny", "alert")


def test_the_real_matcher_hits_the_listed_travellers_and_nobody_else(
    population, watchlist_db
) -> None:
    with WatchlistStore(watchlist_db, readonly=True) as store:
        screener = StoreScreener(store)
        missed, false_hits = [], []
        for traveller in population.travellers:
            hits = {h.entry_id for h in screener.screen(identity(traveller), 0.80).hits}
            if traveller.listed_as is not None and traveller.listed_as not in hits:
                missed.append(traveller.number)
            if traveller.listed_as is None and hits:
                false_hits.append(traveller.number)
    assert missed == []
    assert len(false_hits) <= 2  # of 180 travellers not listed, against 3,020 persons


def test_impossible_shares_are_refused_naming_the_problem(tmp_path: Path) -> None:
    with pytest.raises(PopulationError, match="watchlisted is a share"):
        make_population(tmp_path / "a", 10, seed=1, watchlisted=1.5)
    with pytest.raises(PopulationError, match="exceed 1"):
        make_population(tmp_path / "b", 10, seed=1, watchlisted=0.6, expired=0.6)
    make_population(tmp_path / "c", 5, seed=1, filler=0)
    with pytest.raises(PopulationError, match="already holds a population"):
        make_population(tmp_path / "c", 5, seed=1, filler=0)
    with pytest.raises(PopulationError, match="not a population"):
        Population.load(tmp_path)


def test_a_damaged_population_file_is_reported_with_its_line(tmp_path: Path) -> None:
    made = make_population(tmp_path / "pop", 3, seed=2, passports=0, filler=0)
    lines = made.travellers_path.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["holder"]["date_of_birth"] = "31/12/1980"
    made.travellers_path.write_text("\n".join([lines[0], json.dumps(broken), "{not json"]) + "\n")
    with pytest.raises(PopulationError, match=r"travellers.jsonl:3: "):
        Population.load(made.directory)
    made.travellers_path.write_text("\n".join([lines[0], json.dumps(broken)]) + "\n")
    loaded = Population.load(made.directory)
    with pytest.raises(PopulationError, match=r"traveller 1: cannot issue the document: .*date"):
        loaded.card_for(loaded.travellers[1])


# -- the driver, through the real devices into a real lane -----------------------------------


def one_of_each(population: Population) -> list[Traveller]:
    """A good CBIC, a good passport, an expired and a wrong-site document, a listed card
    holder and a listed passport holder."""

    def first(kind: str, label: str, listed: bool = False) -> Traveller:
        return next(
            t
            for t in population.travellers
            if (kind == "any" or t.kind == kind)
            and t.expect.label.startswith(label)
            and (t.listed_as is not None) == listed
        )

    return [
        first("cbic", "pass"),
        first("passport", "pass"),
        first("any", "refer:document-expired"),
        first("cbic", "refer:not-valid-at-site"),
        first("cbic", "refer:watchlist", listed=True),
        first("passport", "refer:watchlist", listed=True),
    ]


async def walk_into_lane(
    stack: PcscStack, population: Population, watchlist_db: Path, tmp_path: Path, **driver
) -> tuple[LaneDriver, list[dict], list]:
    """Run a real Lane on slot 0's reader and an MRZ port the driver plugs in; walk."""
    link = tmp_path / "serial" / "usb-Sim_MRZ-if00"
    config = LaneConfig.from_dict(
        {"site": population.site, "lane": "lane-1", "direction": "entry", "policy": {"show_s": 0}}
    )
    card_reader = CardReader(CardReaderConfig(readers=("=" + stack.reader_names[0],)))
    walker = LaneDriver(population, vpcd_port=stack.vpcd_port, mrz_link=link, **driver)
    events = []
    with (
        Outbox(tmp_path / "kiosk.db", "kiosk-sim-01", StaticClock()) as outbox,
        WatchlistStore(watchlist_db, readonly=True) as store,
    ):
        lane = Lane(
            config,
            outbox=outbox,
            screener=StoreScreener(store),
            issuers=load_trust_list(population.cbic_trust_dir),
            cscas=load_csca_store([population.csca_dir]),
            today=lambda: population.today,
        )
        lane.add_listener(events.append)
        walking = asyncio.create_task(walker.run())
        while walker.mrz_reader is None and not walking.done():  # plugged in as run() starts
            await asyncio.sleep(0.01)
        mrz = MrzReader(MrzReaderConfig(port=str(link), reconnect_initial=0.05))
        async with card_reader, mrz:
            lane_task = asyncio.create_task(lane.run_devices(card_reader, mrz))
            await walking
            # the last traveller's read may still be ending (a pulled card is confirmed gone)
            for _ in range(100):
                if lane.state in (LaneState.IDLE, LaneState.SHOW):
                    break
                await asyncio.sleep(0.05)
            lane_task.cancel()
            await asyncio.gather(lane_task, return_exceptions=True)
        crossings = [json.loads(r.payload) for r in outbox.pending(0, 1000)]
    return walker, [c for c in crossings if c.get("schema", "").startswith("crossing")], events


def test_the_driver_walks_travellers_and_the_lane_decides_as_expected(
    pcsc_stack, population, watchlist_db, tmp_path
) -> None:
    travellers = one_of_each(population)
    log_path = tmp_path / "presented.jsonl"
    walker, crossings, _ = asyncio.run(
        walk_into_lane(
            pcsc_stack,
            population,
            watchlist_db,
            tmp_path,
            travellers=travellers,
            count=len(travellers),
            interval_s=0.5,
            log_path=log_path,
        )
    )
    assert walker.presented == Counter(t.kind for t in travellers)
    assert {"cbic", "passport"} <= set(walker.presented)
    by_number = {c["document"]["number"]: c for c in crossings}
    assert len(crossings) == len(travellers)
    for traveller in travellers:
        crossing = by_number[document_number(traveller)]
        decision = crossing["decision"]
        assert decision["outcome"] == traveller.expect.outcome, traveller.expect
        if traveller.expect.reason is None:
            assert decision["reasons"] == []
        else:
            assert traveller.expect.reason in decision["reasons"]
        hits = [hit["entry_id"] for hit in crossing["screening"]["hits"]]
        assert hits == ([traveller.listed_as] if traveller.listed_as else [])
    # one line per traveller, and nothing personal in it
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [(line["sequence"], line["kind"], line["expect"]) for line in lines] == [
        (n, t.kind, t.expect.label) for n, t in enumerate(travellers, start=1)
    ]
    text = log_path.read_text()
    for traveller in travellers:
        assert traveller.holder["surname"] not in text
        assert document_number(traveller) not in text
        assert traveller.holder["date_of_birth"] not in text
    # the reader is empty and the MRZ port gone
    assert wait_for_card(pcsc_stack.reader_names[0], present=False) == b""
    assert not (tmp_path / "serial" / "usb-Sim_MRZ-if00").exists()


def test_travellers_pulling_their_card_early_record_nothing(
    pcsc_stack, population, watchlist_db, tmp_path
) -> None:
    cards = [t for t in population.travellers if t.kind == "cbic" and t.expect.outcome == "pass"]
    walker, crossings, events = asyncio.run(
        walk_into_lane(
            pcsc_stack,
            population,
            watchlist_db,
            tmp_path,
            travellers=cards[:3],
            count=3,
            interval_s=0.5,
            pull_early=1.0,
        )
    )
    assert walker.expected == {"cancelled": 3}
    assert crossings == []  # each read was cut short: nothing to record
    removed = [
        e
        for e in events
        if e.state is LaneState.IDLE and e.message and e.message.key == "lane.card_removed"
    ]
    assert len(removed) == 3


def test_stopping_mid_walk_leaves_the_reader_empty_and_the_port_closed(
    pcsc_stack, population, tmp_path
) -> None:
    link = tmp_path / "mrz-link"
    passport = next(t for t in population.travellers if t.kind == "passport")
    card = next(t for t in population.travellers if t.kind == "cbic")
    reader = pcsc_stack.reader_names[0]

    async def walk_then_stop() -> LaneDriver:
        walker = LaneDriver(
            population,
            vpcd_port=pcsc_stack.vpcd_port,
            mrz_link=link,
            travellers=[card, passport],
            dwell_s=30,
            chip_dwell_s=30,
        )
        walking = asyncio.create_task(walker.run())
        # the card is on the reader for half a minute: pcscd sees it, then we stop
        await asyncio.to_thread(wait_for_card, reader, present=True)
        assert walker.card_in_reader and link.is_symlink()
        device = os.readlink(link)
        walker.stop()
        await asyncio.wait_for(walking, 2)
        assert not walker.card_in_reader
        assert not Path(device).exists()  # the pseudo-terminal itself is gone
        return walker

    walker = asyncio.run(walk_then_stop())
    assert walker.presented == {"cbic": 1}
    assert wait_for_card(reader, present=False) == b""
    assert not link.exists() and not link.is_symlink()
    assert not walker.mrz_reader.plugged


def test_cancelling_the_walk_cleans_up_too(pcsc_stack, population, tmp_path) -> None:
    card = next(t for t in population.travellers if t.kind == "cbic")
    reader = pcsc_stack.reader_names[0]

    async def walk_then_cancel() -> LaneDriver:
        walker = LaneDriver(
            population, vpcd_port=pcsc_stack.vpcd_port, travellers=[card], dwell_s=30
        )
        walking = asyncio.create_task(walker.run())
        await asyncio.to_thread(wait_for_card, reader, present=True)
        walking.cancel()
        await asyncio.gather(walking, return_exceptions=True)
        assert not walker.card_in_reader
        return walker

    asyncio.run(walk_then_cancel())
    assert wait_for_card(reader, present=False) == b""


def test_the_driver_refuses_settings_that_cannot_work(population) -> None:
    passport = next(t for t in population.travellers if t.kind == "passport")
    with pytest.raises(ValueError, match="need an MRZ reader"):
        LaneDriver(population, vpcd_port=1, travellers=[passport])
    with pytest.raises(ValueError, match="dwell"):
        LaneDriver(population, vpcd_port=1, mrz_link="/tmp/x", dwell_s=0)
    with pytest.raises(ValueError, match="pull_early"):
        LaneDriver(population, vpcd_port=1, mrz_link="/tmp/x", pull_early=2)


# -- the command line --------------------------------------------------------------------------

EDGE = Path(sys.executable).parent / "borderlane-edge"


def sim(*args: str):
    return CliRunner().invoke(cli, ["sim", *args])


def test_both_commands_explain_themselves_with_examples() -> None:
    for command in ("population", "travellers"):
        result = sim(command, "--help")
        assert result.exit_code == 0
        assert "Examples:" in result.output
        assert f"borderlane-edge sim {command} --" in result.output


def test_sim_population_makes_a_directory_and_says_where_everything_is(tmp_path: Path) -> None:
    out = tmp_path / "pop"
    result = sim("population", "--out", str(out), "--size", "40", "--seed", "3", "--filler", "50")
    assert result.exit_code == 0, result.output
    assert "40 travellers" in result.output
    assert f"watchlist:          {out / 'watchlist.jsonl'}" in result.output
    assert str(out / "trust" / "cbic-issuers") in result.output
    assert str(out / "trust" / "csca") in result.output
    made = Population.load(out)
    assert len(made.travellers) == 40 and made.seed == 3
    load_trust_list(out / "trust" / "cbic-issuers")
    load_csca_store([out / "trust" / "csca"])


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["population", "--out", "{tmp}/a", "--seed", "1", "--watchlisted", "2"], "--watchlisted"),
        (["population", "--out", "{tmp}/a", "--seed", "1", "--site", "Santa Elena"], "site"),
        (
            [
                "population",
                "--out",
                "{tmp}/b",
                "--seed",
                "1",
                "--watchlisted",
                "0.6",
                "--expired",
                "0.6",
            ],
            "exceed 1",
        ),
        (["travellers", "--population", "{tmp}", "--vpcd-port", "1"], "not a population"),
        (["travellers", "--population", "{pop}", "--vpcd-port", "1"], "--mrz-link"),
    ],
)
def test_bad_input_is_one_line_and_a_usage_exit(tmp_path, population, args, problem) -> None:
    args = [a.format(tmp=tmp_path, pop=population.directory) for a in args]
    result = sim(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and problem in lines[0]


def test_sim_travellers_walks_until_sigterm_then_cleans_up(pcsc_stack, tmp_path: Path) -> None:
    made = make_population(tmp_path / "pop", 6, seed=5, passports=0, filler=0)
    link = tmp_path / "kiosk" / "mrz"
    log_path = tmp_path / "presented.jsonl"
    reader = pcsc_stack.reader_names[0]
    process = subprocess.Popen(
        [
            str(EDGE),
            "sim",
            "travellers",
            "--population",
            str(made.directory),
            "--vpcd-port",
            str(pcsc_stack.vpcd_port),
            "--mrz-link",
            str(link),
            "--interval",
            "0.5",
            "--log",
            str(log_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_card(reader, present=True, timeout=10)  # the first traveller's card
        assert link.is_symlink()  # the MRZ reader the kiosk's config names
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("presented 1 travellers (1 cbic)"), out
    assert not link.exists() and not link.is_symlink()
    assert wait_for_card(reader, present=False) == b""
    assert len(log_path.read_text().splitlines()) == 1


def test_sim_travellers_stops_by_itself_after_count(pcsc_stack, tmp_path: Path) -> None:
    made = make_population(tmp_path / "pop", 4, seed=6, passports=0, filler=0)
    result = subprocess.run(
        [
            str(EDGE),
            "sim",
            "travellers",
            "--population",
            str(made.directory),
            "--vpcd-port",
            str(pcsc_stack.vpcd_port),
            "--count",
            "2",
            "--interval",
            "0.5",
            "--dwell",
            "0.2",
            "--read-wait",
            "0.3",  # no kiosk reads in this test
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("presented 2 travellers (2 cbic)")
