"""The console database's life: a versioned schema on SQLite and PostgreSQL, a release 0.1
database upgraded in place by ``borderlane-console db upgrade``, and online backups."""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import text

from console.cli import cli
from console.records import classify
from console.store import Store, StoreError, admin, migrations, open_database
from console.store.schema import metadata
from console.watchlist import WatchlistHistory
from harness.console import crossing, rows
from mqtt_schemas import topics

RELEASE_0_1 = Path(__file__).parent / "data" / "console-release-0.1.sql"
NOW = "2026-12-04T10:00:00.000Z"
ROLLUP = (
    "SELECT site, day, direction, outcome, count FROM crossing_counts "
    "ORDER BY site, day, direction, outcome"
)
COUNTED = (
    "SELECT site, day, direction, outcome, count(*) FROM crossings "
    "GROUP BY site, day, direction, outcome ORDER BY site, day, direction, outcome"
)


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def release_0_1_database(path: Path, *, with_watchlist: bool = True) -> Path:
    """A console database exactly as release 0.1's store wrote it (tests/data holds its dump:
    two kiosks' crossings, availability, heartbeats, a quarantined message, two watchlist
    versions)."""
    conn = sqlite3.connect(path)
    conn.executescript(RELEASE_0_1.read_text())
    if not with_watchlist:  # a 0.1 console that never published a watchlist has no such tables
        conn.executescript(
            "DROP TABLE watchlist_chunks; DROP TABLE watchlist_entries; "
            "DROP TABLE watchlist_versions;"
        )
    conn.close()
    return path


def store_crossings(target: str | Path, device_id: str, seqs: range) -> None:
    store = Store.open(target)
    try:
        records = [
            classify(topics.device_topic(device_id, "crossings"), json.dumps(payload).encode())
            for payload in (crossing(device_id, seq) for seq in seqs)
        ]
        assert store.apply(records, "console-1", NOW).stored == len(seqs)
    finally:
        store.close()


# -- the schema -----------------------------------------------------------------------------


def test_a_new_database_gets_the_newest_schema_and_it_matches_the_schema_module(console_db):
    """The migrations build exactly the tables the code queries, on both backends."""
    engine = open_database(console_db)
    try:
        with engine.connect() as conn:
            assert migrations.state(conn).kind == "current"
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()
    assert admin.schema_version(console_db).current == migrations.head()


def test_a_database_of_a_newer_release_is_refused_not_written(console_db):
    open_database(console_db).dispose()
    engine = open_database(console_db)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="9999 is newer than this release knows"):
        open_database(console_db)
    result = run("db", "status", "--db", console_db)
    assert result.exit_code == 1 and "newer than this release knows" in result.output


def test_a_database_with_other_tables_is_not_taken_over(tmp_path):
    path = tmp_path / "other.db"
    sqlite3.connect(path).executescript("CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
    with pytest.raises(StoreError, match="not a console database"):
        Store.open(path)


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "console.db"
    store_crossings(path, "kiosk-p1", range(1, 3))
    for made in (path, *tmp_path.glob("console.db-*")):
        assert stat.S_IMODE(made.stat().st_mode) == 0o600, made.name


# -- upgrading a release 0.1 database -------------------------------------------------------


def test_a_release_0_1_database_is_refused_until_db_upgrade(tmp_path):
    path = release_0_1_database(tmp_path / "console.db")
    with pytest.raises(StoreError, match=r"made by an earlier release.*db upgrade"):
        Store.open(path)
    status = run("db", "status", "--db", str(path))
    assert status.exit_code == 1
    assert "release 0.1 schema; run borderlane-console db upgrade" in status.output


@pytest.mark.parametrize("with_watchlist", [True, False], ids=["with-watchlist", "no-watchlist"])
def test_db_upgrade_keeps_every_record_and_the_console_carries_on(tmp_path, with_watchlist):
    path = release_0_1_database(tmp_path / "console.db", with_watchlist=with_watchlist)
    before = {
        table: rows(path, f"SELECT * FROM {table} ORDER BY 1")
        for table in ("crossings", "quarantine", "devices", "availability_log", "console_nodes")
    }

    upgraded = run("db", "upgrade", "--db", str(path))

    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output.strip() == (
        f"upgraded to schema version {migrations.head()} "
        "(applied 0002, 0003, 0004, 0005, 0006, 0007, 0008)"
    )
    for table, found in before.items():  # every row, every column it had (later ones added)
        columns = ", ".join(found[0].keys()) if found else "*"
        assert rows(path, f"SELECT {columns} FROM {table} ORDER BY 1") == found, table
    assert rows(path, "SELECT count(*) FROM crossings WHERE document_key IS NULL")[0][0] == 0
    assert run("db", "status", "--db", str(path)).output.strip().endswith("(current)")
    assert run("db", "upgrade", "--db", str(path)).output.strip() == (
        "already at the current schema version"
    )
    # the counts rollup was filled from the crossings 0.1 stored
    assert rows(path, ROLLUP) == rows(path, COUNTED)
    # the console works on it: new crossings stored, the ack counter goes on from 0.1's
    store_crossings(path, "kiosk-l1", range(6, 9))
    assert len(rows(path, "SELECT id FROM crossings WHERE device_id = ?", "kiosk-l1")) == 8
    assert rows(path, "SELECT seq FROM console_nodes")[0][0] > before["console_nodes"][0][1]
    history = WatchlistHistory(path)
    try:
        assert history.version() == (2 if with_watchlist else 0)
    finally:
        history.close()


def test_db_upgrade_names_a_missing_database_in_one_line(tmp_path):
    result = run("db", "upgrade", "--db", str(tmp_path / "nowhere.db"))
    assert result.exit_code == 1
    assert result.output == f"Error: no console database at {tmp_path / 'nowhere.db'}\n"
    assert not (tmp_path / "nowhere.db").exists()


# -- backups ------------------------------------------------------------------------------


def test_a_backup_taken_while_ingest_commits_is_consistent_and_private(tmp_path):
    path = tmp_path / "console.db"
    store_crossings(path, "kiosk-b1", range(1, 201))
    stop = threading.Event()
    written: list[int] = []

    def keep_writing() -> None:
        seq = 1000
        while not stop.is_set():
            store_crossings(path, "kiosk-b2", range(seq, seq + 50))
            written.append(50)
            seq += 50

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        while not written:  # the backup overlaps commits
            stop.wait(0.01)
        result = run("db", "backup", "--db", str(path), "--out", str(tmp_path / "copy.db"))
    finally:
        stop.set()
        writer.join()

    assert result.exit_code == 0, result.output
    copy = tmp_path / "copy.db"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert rows(copy, "PRAGMA integrity_check") == [("ok",)]
    copied = rows(copy, "SELECT device_id, count(*) FROM crossings GROUP BY device_id")
    counts = dict(copied)
    assert counts["kiosk-b1"] == 200
    assert counts.get("kiosk-b2", 0) % 50 == 0, "a batch is in the copy whole or not at all"
    assert admin.schema_version(copy).kind == "current"


def test_a_backup_never_overwrites_and_postgresql_is_sent_to_its_own_tools(tmp_path):
    path = tmp_path / "console.db"
    store_crossings(path, "kiosk-b3", range(1, 3))
    (tmp_path / "taken.db").write_text("keep me")
    taken = run("db", "backup", "--db", str(path), "--out", str(tmp_path / "taken.db"))
    assert taken.exit_code == 1 and "exists: a backup never overwrites" in taken.output
    assert (tmp_path / "taken.db").read_text() == "keep me"
    postgres = run(
        "db", "backup", "--db", "postgresql://console:s3cret@db.example/console", "--out", "x"
    )
    assert postgres.exit_code == 1
    assert "pg_dump" in postgres.output and "s3cret" not in postgres.output


def test_an_unreachable_postgresql_is_one_line_without_its_password(tmp_path):
    url = "postgresql://console:s3cret@127.0.0.1:1/console"
    for args in (
        ("db", "status", "--db", url),
        ("db", "upgrade", "--db", url),
        ("export", "crossings", "--db", url),
    ):
        result = run(*args)
        assert result.exit_code == 1, args
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith("Error: ") and "127.0.0.1" in result.output
        assert "s3cret" not in result.output and "Traceback" not in result.output


def test_more_threads_than_a_pool_holds_share_one_engine(console_db):
    """The web console serves with eight threads: a SQLite engine once kept one connection per
    thread and closed another thread's connection at the sixth (a crash, not an error)."""
    engine = open_database(console_db)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                with engine.begin() as conn:
                    conn.execute(text("SELECT count(*) FROM crossings")).scalar_one()
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(12)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        engine.dispose()
    assert errors == []
