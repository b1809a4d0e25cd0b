"""``borderlane-console export crossings``: JSON Lines and CSV, and one-line errors; the exports
run on SQLite and on PostgreSQL (``console_db``)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from console.cli import cli
from console.records import classify
from console.store import Store
from console.store.queries import CROSSING_COLUMNS
from harness.console import crossing
from mqtt_schemas import topics


@pytest.fixture
def db(console_db):
    store = Store.open(console_db)
    records = [crossing("kiosk-e1", seq, time=f"2026-11-24T08:00:0{seq}Z") for seq in (3, 1, 2)]
    topic = topics.device_topic("kiosk-e1", "crossings")
    pretty = json.dumps(records[0], indent=2).encode()  # stored as received, over lines
    raws = [pretty] + [json.dumps(r).encode() for r in records[1:]]
    store.apply([classify(topic, raw) for raw in raws], "console-1", "2026-11-24T09:00:00.000Z")
    store.close()
    return console_db, sorted(records, key=lambda r: r["time"])


def run(*args: str):
    return CliRunner().invoke(cli, ["export", "crossings", *args], catch_exceptions=False)


def test_jsonl_has_each_full_record_on_one_line_in_time_order(db):
    path, records = db
    result = run("--db", path)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [json.loads(line) for line in lines] == records


def test_csv_has_the_main_fields_as_columns(db, tmp_path):
    path, records = db
    out = tmp_path / "crossings.csv"
    result = run("--db", path, "--format", "csv", "--out", str(out))
    assert result.exit_code == 0 and "3 crossings written to" in result.output
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert tuple(table[0]) == CROSSING_COLUMNS
    assert [row["id"] for row in table] == [r["id"] for r in records]
    first = table[0]
    assert (first["site"], first["outcome"], first["watchlist_version"], first["clock_synced"]) == (
        records[0]["site"],
        "pass",
        str(records[0]["screening"]["watchlist_version"]),
        "1",
    )


def test_errors_are_one_line(tmp_path):
    """SQLite only: a missing file and a file that is not a database are SQLite's errors (an
    unreachable PostgreSQL is in test_console_database and test_console_database_outage)."""
    missing = run("--db", str(tmp_path / "missing.db"))
    assert missing.exit_code == 1
    assert missing.output.strip() == f"Error: no console database at {tmp_path / 'missing.db'}"
    (tmp_path / "notes.txt").write_text("hello")
    garbage = run("--db", str(tmp_path / "notes.txt"))
    assert garbage.exit_code == 1 and len(garbage.output.strip().splitlines()) == 1


def test_help_shows_examples():
    result = run("--help")
    assert "Examples:" in result.output and "--format csv" in result.output
