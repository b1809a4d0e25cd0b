"""The audit log (console.audit, `borderlane-console audit`): the hash chain grows and verifies,
any edit, deletion or insertion is named at the entry where it is, a purge keeps the chain
verifiable, and appends racing from threads and processes never fork it. Every test runs on
SQLite and PostgreSQL (``console_db``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from console import audit
from console.access import Principal
from console.cli import cli
from console.store import open_database
from mqtt_schemas.envelope import format_time

ROOT = Path(__file__).resolve().parent.parent
ALICE = Principal(7, "alice", "immigration", "officer", 2, frozenset({"bz-santa-elena"}))
BRUNO = Principal(9, "bruno", "justice", "auditor", 3)
DAY0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def engine(console_db):
    engine = open_database(console_db)
    yield engine
    engine.dispose()


def add(engine, count, *, start_day=0, who=ALICE, **details):
    """*count* entries, one a day from DAY0 + *start_day*, each with its own query and records."""
    made = []
    for n in range(count):
        day = start_day + n
        fields = {
            "purpose": "investigation" if n % 2 else "other",
            "purpose_text": f"case {day}",
            "query": {"document_number": f"CB{day:07d}", "names": ["José", "Ñúñez"]},
            "records": [f"crossing-{day}", f"crossing-{day}b"],
            "address": f"10.0.0.{day % 250}",
            "at": format_time(DAY0 + dt.timedelta(days=day)),
            **details,
        }
        made.append(audit.append(engine, who, "crossings.search", **fields))
    return made


def check(console_db):
    """verify() on a read-only engine, in one snapshot (as the CLI does)."""
    reader = open_database(console_db, readonly=True)
    try:
        with audit.reading(reader) as conn:
            return audit.verify(conn)
    finally:
        reader.dispose()


def sql(engine, statement, **params):
    with engine.begin() as conn:
        return conn.execute(text(statement), params)


def rows(engine):
    with engine.connect() as conn:
        return [
            dict(r._mapping) for r in conn.execute(text("SELECT * FROM audit_log ORDER BY seq"))
        ]


# -- the chain ------------------------------------------------------------------------------


def test_the_chain_grows_by_one_and_each_entry_names_the_hash_before_it(engine, console_db):
    assert check(console_db).describe() == "audit log intact: 0 entries"
    made = add(engine, 5)
    assert [e.seq for e in made] == [1, 2, 3, 4, 5]
    assert made[0].prev_hash == audit.GENESIS
    assert [e.prev_hash for e in made[1:]] == [e.hash for e in made[:-1]]
    stored = rows(engine)
    for entry, row in zip(made, stored, strict=True):
        assert audit.Entry.from_row(row) == entry
        assert audit.entry_hash(row["prev_hash"], row) == row["hash"]
    first = stored[0]
    assert (
        first["user_id"],
        first["username"],
        first["agency"],
        first["role"],
        first["level"],
    ) == (
        7,
        "alice",
        "immigration",
        "officer",
        2,
    )
    assert first["at"] == "2026-01-01T00:00:00.000Z"
    assert (first["action"], first["purpose"], first["purpose_text"]) == (
        "crossings.search",
        "other",
        "case 0",
    )
    assert json.loads(first["query"]) == {
        "document_number": "CB0000000",
        "names": ["José", "Ñúñez"],
    }
    assert json.loads(first["records"]) == ["crossing-0", "crossing-0b"]
    assert first["address"] == "10.0.0.0"
    result = check(console_db)
    assert result.intact and result.entries == 5 and (result.first_seq, result.last_seq) == (1, 5)
    assert result.last_hash == made[-1].hash
    assert result.describe() == "audit log intact: 5 entries from seq 1 to 5"


def test_the_hash_is_sha256_of_the_previous_hash_and_the_canonical_fields(engine):
    (entry,) = add(engine, 1)
    fields = {name: getattr(entry, name) for name in audit.HASHED_FIELDS}
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    import hashlib

    assert entry.hash == hashlib.sha256((audit.GENESIS + body).encode()).hexdigest()


def test_entries_are_listed_newest_first_and_filtered(engine):
    add(engine, 4)
    add(engine, 2, start_day=10, who=BRUNO)
    audit.append(engine, BRUNO, "audit.view", purpose="audit", at="2026-02-01T00:00:00Z")
    with engine.connect() as conn:
        assert [e.seq for e in audit.entries(conn)] == [7, 6, 5, 4, 3, 2, 1]
        assert [e.seq for e in audit.entries(conn, username="bruno")] == [7, 6, 5]
        assert [e.seq for e in audit.entries(conn, action="audit.view")] == [7]
        assert [e.seq for e in audit.entries(conn, since="2026-01-03", until="2026-01-12")] == [
            5,
            4,
            3,
        ]
        assert [e.seq for e in audit.entries(conn, before_seq=5, limit=2)] == [4, 3]
        entry = next(audit.entries(conn, limit=1))
    assert entry.as_dict()["query"] == {} and entry.as_dict()["records"] == []


@pytest.mark.parametrize(
    "purpose, purpose_text, problem",
    [
        (None, None, "a purpose is required"),
        ("", "case 1", "a purpose is required"),
        ("curiosity", None, "unknown purpose 'curiosity'"),
        ("other", None, "purpose 'other' needs a text"),
        ("other", "   ", "purpose 'other' needs a text"),
        ("investigation", "x" * 501, "longer than 500"),
        ("investigation", "case\x001", "control characters"),
    ],
)
def test_an_entry_needs_a_known_purpose_and_nothing_is_written_without(
    engine, purpose, purpose_text, problem
):
    with pytest.raises(audit.AuditError, match=problem):
        audit.append(engine, ALICE, "crossings.search", purpose=purpose, purpose_text=purpose_text)
    assert rows(engine) == []


# -- tampering ------------------------------------------------------------------------------

CHANGES = {
    "at": lambda v: "2025-12-31T23:59:59.000Z",
    "user_id": lambda v: v + 1,
    "username": lambda v: v + "x",
    "agency": lambda v: "police",
    "role": lambda v: "supervisor",
    "level": lambda v: 4,
    "action": lambda v: "crossing.view",
    "purpose": lambda v: "audit",
    "purpose_text": lambda v: None,
    "query": lambda v: v.replace("CB", "XX"),
    "records": lambda v: "[]",
    "address": lambda v: "192.0.2.1",
    "hash": lambda v: ("0" if v[0] != "0" else "1") + v[1:],
    "prev_hash": lambda v: ("0" if v[0] != "0" else "1") + v[1:],
}


def test_editing_any_field_of_any_entry_names_exactly_that_entry(engine, console_db):
    add(engine, 6)
    original = {row["seq"]: row for row in rows(engine)}
    assert set(CHANGES) == set(original[1]) - {"seq"}, "every column but seq is edited here"
    for column, change in CHANGES.items():
        for seq in (1, 3, 6):
            value = original[seq][column]
            sql(
                engine, f"UPDATE audit_log SET {column} = :v WHERE seq = :s", v=change(value), s=seq
            )
            result = check(console_db)
            assert not result, f"{column} of seq {seq} edited, yet intact"
            assert result.broken.seq == seq, (column, seq, result.describe())
            problem = "prev_hash" if column == "prev_hash" else "hash"
            assert result.broken.problem == problem, (column, seq, result.describe())
            assert (result.entries, result.last_seq) == (seq - 1, seq - 1 or None)
            sql(engine, f"UPDATE audit_log SET {column} = :v WHERE seq = :s", v=value, s=seq)
    assert check(console_db).intact


def test_the_verdict_line_says_which_entry_and_what(engine, console_db):
    add(engine, 4)
    sql(engine, "UPDATE audit_log SET purpose_text = 'nothing to see' WHERE seq = 3")
    assert check(console_db).describe() == (
        "audit log broken at seq 3: its hash does not match its contents (edited)"
    )


def test_renumbering_an_entry_leaves_a_gap_where_it_was(engine, console_db):
    add(engine, 5)
    sql(engine, "UPDATE audit_log SET seq = 99 WHERE seq = 3")
    result = check(console_db)
    assert (result.broken.seq, result.broken.problem) == (4, "gap")
    assert result.describe() == "audit log broken at seq 4: gap in seq: entry 3 is missing"


@pytest.mark.parametrize(
    "deleted, seq, detail",
    [
        ((3,), 4, "gap in seq: entry 3 is missing"),
        ((2, 3, 4), 5, "gap in seq: entries 2 to 4 are missing"),
        ((1,), 2, "gap in seq: entry 1 is missing"),
    ],
)
def test_deleting_entries_names_the_gap(engine, console_db, deleted, seq, detail):
    add(engine, 6)
    for gone in deleted:
        sql(engine, "DELETE FROM audit_log WHERE seq = :s", s=gone)
    result = check(console_db)
    assert (result.broken.seq, result.broken.problem, result.broken.detail) == (seq, "gap", detail)
    assert result.entries == min(deleted) - 1


def _insert(engine, **row):
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    sql(engine, f"INSERT INTO audit_log ({columns}) VALUES ({values})", **row)


def test_inserting_an_entry_is_named_where_it_does_not_fit(engine, console_db):
    made = add(engine, 4)
    forged = {**rows(engine)[-1], "seq": 5, "username": "mallory", "prev_hash": made[-1].hash}
    forged["hash"] = "f" * 64  # not made by the chain's rule
    _insert(engine, **forged)
    result = check(console_db)
    assert (result.broken.seq, result.broken.problem) == (5, "hash")

    sql(engine, "DELETE FROM audit_log WHERE seq = 5")
    early = {**rows(engine)[0], "seq": 0}  # ahead of the first entry
    _insert(engine, **early)
    result = check(console_db)
    assert (result.broken.seq, result.broken.problem) == (0, "gap")
    assert "before the chain's start" in result.describe()


def test_replacing_an_entry_with_a_well_formed_forgery_breaks_the_link_after_it(engine, console_db):
    add(engine, 5)
    kept = {row["seq"]: row for row in rows(engine)}
    sql(engine, "DELETE FROM audit_log WHERE seq = 3")
    forged = {**kept[3], "username": "mallory"}
    forged["hash"] = audit.entry_hash(forged["prev_hash"], forged)  # a valid entry 3 of its own
    _insert(engine, **forged)
    result = check(console_db)
    assert (result.broken.seq, result.broken.problem) == (4, "prev_hash")
    assert result.describe() == (
        "audit log broken at seq 4: its prev_hash is not the hash of seq 3"
    )


def test_a_rewritten_tail_verifies_but_its_head_differs_from_the_one_kept(engine, console_db):
    """What a hash chain cannot do alone: the head printed by `audit verify` must be kept
    elsewhere and compared."""
    add(engine, 4)
    head = check(console_db).last_hash
    row = rows(engine)[-1]
    sql(engine, "DELETE FROM audit_log WHERE seq = 4")
    forged = {**row, "username": "mallory"}
    forged["hash"] = audit.entry_hash(forged["prev_hash"], forged)
    _insert(engine, **forged)
    result = check(console_db)
    assert result.intact and result.last_hash != head


# -- retention ------------------------------------------------------------------------------


def test_purge_deletes_the_oldest_entries_and_anchors_the_chain(engine, console_db):
    made = add(engine, 10)  # one a day from 2026-01-01
    with engine.begin() as conn:
        assert audit.purge(conn, "2026-01-05") == 4
    assert [r["seq"] for r in rows(engine)] == [5, 6, 7, 8, 9, 10]
    anchor = sql(engine, "SELECT id, seq, hash FROM audit_anchor").all()
    assert [tuple(a) for a in anchor] == [(1, 4, made[3].hash)]
    result = check(console_db)
    assert result.intact and (result.anchor_seq, result.first_seq, result.last_seq) == (4, 5, 10)
    assert result.describe() == "audit log intact: 6 entries from seq 5 to 10"

    after = audit.append(engine, ALICE, "crossing.view", purpose="border-control")
    assert (after.seq, after.prev_hash) == (11, made[-1].hash)
    with engine.begin() as conn:  # nothing older than that now: nothing to do
        assert audit.purge(conn, "2026-01-05T00:00:00Z") == 0
        assert audit.purge(conn, "2026-01-08") == 3
    assert [tuple(a) for a in sql(engine, "SELECT seq, hash FROM audit_anchor").all()] == [
        (7, made[6].hash)
    ]
    assert check(console_db).intact

    sql(engine, "DELETE FROM audit_log WHERE seq = 8")  # the first kept entry, deleted
    result = check(console_db)
    assert (result.broken.seq, result.broken.problem) == (9, "gap")


def test_purging_every_entry_leaves_the_anchor_to_go_on_from(engine, console_db):
    made = add(engine, 3)
    with engine.begin() as conn:
        assert audit.purge(conn, "2026-02-01") == 3
    assert rows(engine) == []
    assert check(console_db).describe() == "audit log intact: 0 entries (purged up to seq 3)"
    entry = audit.append(engine, ALICE, "crossing.view", purpose="border-control")
    assert (entry.seq, entry.prev_hash) == (4, made[-1].hash)
    assert check(console_db).describe() == "audit log intact: 1 entry from seq 4 to 4"


def test_purge_never_deletes_an_entry_younger_than_the_cutoff(engine, console_db):
    """Entries are chained in the order written; a node with a fast clock may write a later
    time before an earlier one. The purge stops at the first young entry."""
    add(engine, 3)  # days 0, 1, 2
    add(engine, 1, start_day=40)  # seq 4: a clock far ahead
    add(engine, 2, start_day=3)  # seq 5, 6: days 3, 4
    with engine.begin() as conn:
        assert audit.purge(conn, "2026-01-10") == 3
    assert [r["seq"] for r in rows(engine)] == [4, 5, 6]
    assert check(console_db).intact


def test_purge_refuses_the_future_and_a_broken_chain(engine, console_db):
    add(engine, 5)
    tomorrow = format_time(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    with pytest.raises(audit.AuditError, match="in the future"), engine.begin() as conn:
        audit.purge(conn, tomorrow)
    records = rows(engine)[1]["records"]
    sql(engine, "UPDATE audit_log SET records = '[]' WHERE seq = 2")
    broken = pytest.raises(audit.AuditError, match="not purged: audit log broken at seq 2")
    with broken, engine.begin() as conn:
        audit.purge(conn, "2026-01-04")
    sql(engine, "DELETE FROM audit_log WHERE seq = 4")  # the link after the purged part too
    sql(engine, "UPDATE audit_log SET records = :r WHERE seq = 2", r=records)
    with pytest.raises(audit.AuditError, match="broken at seq"), engine.begin() as conn:
        audit.purge(conn, "2026-01-04")
    assert len(rows(engine)) == 4
    assert sql(engine, "SELECT count(*) FROM audit_anchor").scalar() == 0


def test_verify_can_resume_from_an_intact_result(engine, console_db):
    add(engine, 3)
    reader = open_database(console_db, readonly=True)
    try:
        with audit.reading(reader) as conn:
            first = audit.verify(conn)
        add(engine, 2, start_day=3)
        sql(engine, "UPDATE audit_log SET username = 'x' WHERE seq = 1")  # before the resume
        with audit.reading(reader) as conn:
            resumed = audit.verify(conn, resume=first)
        assert resumed.intact and (resumed.entries, resumed.first_seq, resumed.last_seq) == (
            5,
            1,
            5,
        )
        with audit.reading(reader) as conn:
            assert audit.verify(conn).broken.seq == 1  # a full walk sees it
        sql(engine, "UPDATE audit_log SET username = 'alice' WHERE seq = 1")
        with engine.begin() as conn:
            audit.purge(conn, "2026-01-02")
        with audit.reading(reader) as conn:  # the start moved: a full walk
            again = audit.verify(conn, resume=resumed)
        assert again.intact and (again.entries, again.first_seq) == (4, 2)
    finally:
        reader.dispose()


# -- concurrency ----------------------------------------------------------------------------


def _single_chain(console_db, count):
    result = check(console_db)
    assert result.intact, result.describe()
    assert (result.entries, result.first_seq, result.last_seq) == (count, 1, count)


def test_appends_racing_from_threads_make_one_chain(engine, console_db):
    # SQLite: at most 4 threads besides this one. The store's SQLite engine is made on the URL
    # "sqlite://", so SQLAlchemy gives it a SingletonThreadPool (5 connections, one a thread),
    # which closes a connection another thread is using once a sixth thread connects: a
    # segmentation fault. Reported to console/store/database.py's owner; QueuePool fixes it.
    threads, each = (8 if console_db.startswith("postgresql") else 4), 25
    start = threading.Barrier(threads)
    errors = []

    def work(worker):
        who = Principal(worker, f"user{worker}", "immigration", "officer", 2)
        start.wait()
        try:
            for n in range(each):
                audit.append(
                    engine,
                    who,
                    "crossings.search",
                    purpose="border-control",
                    records=[f"{worker}-{n}"],
                )
        except Exception as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert not errors, errors
    _single_chain(console_db, threads * each)
    assert {json.loads(r["records"])[0] for r in rows(engine)} == {
        f"{w}-{n}" for w in range(threads) for n in range(each)
    }


APPENDER = textwrap.dedent(
    """
    import sys, time
    from console import audit
    from console.access import Principal
    from console.store import open_database
    db, worker, count, at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    engine = open_database(db)
    who = Principal(worker, f"node{worker}", "immigration", "officer", 2)
    time.sleep(max(0.0, at - time.time()))
    for n in range(count):
        audit.append(engine, who, "crossing.view", purpose="border-control",
                     records=[f"{worker}-{n}"])
    """
)


def test_appends_racing_from_processes_make_one_chain(engine, console_db):
    """Console nodes (processes) appending to one database at the same moment."""
    processes, each = 3, 30
    start_at = time.time() + 3  # all three are up and connected by then
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    running = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, console_db, str(w), str(each), str(start_at)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(processes)
    ]
    for process in running:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    _single_chain(console_db, processes * each)


# -- the command line -----------------------------------------------------------------------


def run(*args):
    return CliRunner().invoke(cli, ["audit", *args])


def test_cli_verify_says_intact_with_the_head_or_names_the_break(engine, console_db):
    made = add(engine, 3)
    result = run("verify", "--db", console_db)
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"audit log intact: 3 entries from seq 1 to 3, last hash {made[-1].hash}\n"
    )
    sql(engine, "UPDATE audit_log SET address = '203.0.113.9' WHERE seq = 2")
    result = run("verify", "--db", console_db)
    assert result.exit_code == 1
    assert result.output == (
        "audit log broken at seq 2: its hash does not match its contents (edited)\n"
    )
    sql(engine, "DELETE FROM audit_log WHERE seq = 2")
    result = run("verify", "--db", console_db)
    assert (result.exit_code, result.output) == (
        1,
        "audit log broken at seq 3: gap in seq: entry 2 is missing\n",
    )


def test_cli_purge_uses_the_retention_and_keeps_the_chain(engine, console_db, tmp_path):
    now = dt.datetime.now(dt.UTC)
    for days_ago in (800, 400, 100, 1):
        at = format_time(now - dt.timedelta(days=days_ago))
        audit.append(engine, ALICE, "crossing.view", purpose="border-control", at=at)
    result = run("purge", "--db", console_db)  # the default retention: 730 days
    assert result.exit_code == 0, result.output
    assert result.output.startswith("purged 1 audit entry older than ")
    settings = tmp_path / "console.toml"
    settings.write_text("[audit]\nretention_days = 365\n")
    result = run("purge", "--db", console_db, "--settings", str(settings))
    assert result.output.startswith("purged 1 audit entry") and "(365 days)" in result.output
    result = run("purge", "--db", console_db, "--older-than-days", "30")
    assert result.output.startswith("purged 1 audit entry") and "(30 days)" in result.output
    assert [r["seq"] for r in rows(engine)] == [4]
    assert run("verify", "--db", console_db).output.startswith(
        "audit log intact: 1 entry from seq 4 to 4"
    )


def test_cli_purge_reads_the_retention_from_the_instance_folder(engine, console_db, tmp_path):
    """The daily unit runs ``audit purge`` with the web console's instance folder (from
    $BORDERLANE_CONSOLE_INSTANCE): its console.toml sets the retention, and a folder without
    one means the default."""
    now = dt.datetime.now(dt.UTC)
    for days_ago in (800, 400, 1):
        at = format_time(now - dt.timedelta(days=days_ago))
        audit.append(engine, ALICE, "crossing.view", purpose="border-control", at=at)
    instance = tmp_path / "web"
    instance.mkdir()
    result = run("purge", "--db", console_db, "--instance", str(instance))
    assert result.exit_code == 0 and "(730 days)" in result.output, result.output
    (instance / "console.toml").write_text("[audit]\nretention_days = 365\n")
    result = run("purge", "--db", console_db, "--instance", str(instance))
    assert result.output.startswith("purged 1 audit entry") and "(365 days)" in result.output
    missing = run("purge", "--db", console_db, "--instance", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1 and "no such instance folder" in missing.output


def test_cli_list_prints_json_lines_newest_first(engine, console_db):
    add(engine, 3)
    add(engine, 2, start_day=5, who=BRUNO)
    result = run("list", "--db", console_db, "--user", "alice", "--limit", "2")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["seq"] for line in lines] == [3, 2]
    assert lines[0]["username"] == "alice" and lines[0]["records"] == ["crossing-2", "crossing-2b"]
    assert lines[0]["query"]["names"] == ["José", "Ñúñez"]
    result = run("list", "--db", console_db, "--since", "2026-01-05", "--limit", "0")
    assert [json.loads(line)["seq"] for line in result.output.splitlines()] == [5, 4]
    result = run("list", "--db", console_db, "--since", "yesterday")
    assert result.exit_code == 1 and result.output.startswith("Error: since: not an ISO 8601")


def test_cli_errors_are_one_line(tmp_path):
    missing = str(tmp_path / "nothing.db")
    for command in ("verify", "list", "purge"):
        result = run(command, "--db", missing)
        assert result.exit_code == 1
        assert result.output == f"Error: no console database at {missing}\n", result.output
    assert not Path(missing).exists()


def test_cli_help_has_examples():
    for command in ((), ("verify",), ("purge",), ("list",)):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Examples:" in result.output
        assert "borderlane-console audit" in result.output


# -- the purpose prompt ---------------------------------------------------------------------

SECRET = "TRAVELLER-RECORD-CB4410275"


def _probe_blueprint():
    """Views as the referral and search pages will be: personal, under @purpose_required."""
    from flask import Blueprint, jsonify

    from console.web.access import require
    from console.web.purpose import audit_read, purpose_args, purpose_required

    bp = Blueprint("probe", __name__)

    @bp.get("/probe/<site>")
    @require("crossings.search")
    @purpose_required
    def search(site):
        audit_read(["crossing-1", "crossing-2"])
        return f"<p id='found'>{SECRET} at {site}</p><p id='next'>{purpose_args()}</p>"

    @bp.get("/api/probe")
    @require("crossings.search")
    @purpose_required
    def api():
        audit_read(["crossing-3"], query={"asked": "by the API"})
        return jsonify(found=SECRET)

    @bp.get("/probe-forgetful")
    @require("crossings.search")
    @purpose_required
    def forgetful():
        return SECRET

    @bp.get("/probe-devices")
    @require("fleet.view")
    @purpose_required
    def not_personal():
        assert audit_read(["kiosk-1"]) is None
        return "devices only"

    return bp


@pytest.fixture
def web(console_db, tmp_path):
    from harness.console_web import serve_console

    with serve_console(console_db, tmp_path / "instance") as web:
        web.app.register_blueprint(_probe_blueprint())
        web.engine = open_database(console_db)
        yield web
        web.engine.dispose()


def test_a_personal_page_asks_for_the_purpose_and_keeps_the_query(web):
    client = web.client("officer")
    response = client.get("/probe/bz-santa-elena?document=CB1&page=2&page=3")
    page = response.get_data(True)
    assert response.status_code == 200 and 'id="purpose-form"' in page
    assert SECRET not in page
    assert 'action="/probe/bz-santa-elena"' in page
    for name, value in (("document", "CB1"), ("page", "2"), ("page", "3")):
        assert f'<input type="hidden" name="{name}" value="{value}">' in page
    for code in audit.PURPOSES:
        assert f'<option value="{code}"' in page
    assert rows(web.engine) == []


def test_with_a_purpose_the_view_runs_and_its_read_is_audited(web):
    client = web.client("officer")
    response = client.get(
        "/probe/bz-santa-elena?document=CB1&page=2&page=3"
        "&purpose=investigation&purpose_text=case+2026/114"
    )
    assert response.status_code == 200 and SECRET in response.get_data(True)
    purpose = {"purpose": "investigation", "purpose_text": "case 2026/114"}
    assert f"<p id='next'>{purpose}</p>" in response.get_data(True)
    (entry,) = rows(web.engine)
    officer = web.accounts.find("officer")
    assert (entry["user_id"], entry["username"], entry["agency"], entry["role"]) == (
        officer.id,
        "officer",
        "immigration",
        "officer",
    )
    assert (entry["level"], entry["action"], entry["address"]) == (
        2,
        "crossings.search",
        "127.0.0.1",
    )
    assert (entry["purpose"], entry["purpose_text"]) == ("investigation", "case 2026/114")
    assert json.loads(entry["query"]) == {
        "site": "bz-santa-elena",
        "document": "CB1",
        "page": ["2", "3"],
    }
    assert json.loads(entry["records"]) == ["crossing-1", "crossing-2"]
    assert check(web.db).intact


@pytest.mark.parametrize(
    "query, problem",
    [
        ("purpose=curiosity", "unknown purpose"),
        ("purpose=other", "needs a text"),
        ("purpose=other&purpose_text=+", "needs a text"),
    ],
)
def test_a_bad_purpose_shows_the_form_again_with_the_problem(web, query, problem):
    response = web.client("officer").get(f"/probe/bz-santa-elena?{query}")
    page = response.get_data(True)
    assert response.status_code == 400 and 'id="purpose-problem"' in page and problem in page
    assert SECRET not in page and rows(web.engine) == []


def test_the_api_answers_400_naming_the_purpose_parameter(web):
    headers = web.bearer("officer")
    response = web.app.test_client().get("/api/probe", headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("purpose: a purpose is required")
    response = web.app.test_client().get("/api/probe?purpose=other", headers=headers)
    assert response.get_json()["error"].startswith("purpose_text: purpose 'other' needs")
    response = web.app.test_client().get("/api/probe?purpose=border-control", headers=headers)
    assert response.get_json() == {"found": SECRET}
    (entry,) = rows(web.engine)
    assert json.loads(entry["query"]) == {"asked": "by the API"}


def test_no_audit_no_read(web, monkeypatch):
    client = web.client("officer")
    response = client.get("/probe-forgetful?purpose=audit")
    assert response.status_code == 500 and SECRET not in response.get_data(True)

    def broken(*args, **kwargs):
        raise RuntimeError("the audit log cannot be written")

    monkeypatch.setattr(audit, "append", broken)
    response = client.get("/probe/bz-santa-elena?purpose=audit")
    assert response.status_code == 500 and SECRET not in response.get_data(True)
    assert rows(web.engine) == []


def test_a_view_that_reads_nothing_personal_asks_no_purpose(web):
    response = web.client("technician").get("/probe-devices")
    assert (response.status_code, response.get_data(True)) == (200, "devices only")
    assert rows(web.engine) == []


# -- the auditor's page ---------------------------------------------------------------------


def test_the_auditor_sees_the_log_and_the_reading_is_audited(web):
    made = add(web.engine, 3)
    client = web.client("auditor")
    assert 'id="purpose-form"' in client.get("/audit/").get_data(True)
    response = client.get("/audit/?purpose=audit&purpose_text=quarterly+review")
    page = response.get_data(True)
    assert response.status_code == 200
    assert "audit log intact: 3 entries from seq 1 to 3" in page
    for entry in made:
        assert f'id="entry-{entry.seq}"' in page
    assert "CB0000002" in page and "case 2" in page
    newest = rows(web.engine)[-1]
    assert (newest["seq"], newest["username"], newest["action"]) == (4, "auditor", "audit.view")
    assert (newest["purpose"], newest["purpose_text"]) == ("audit", "quarterly review")
    assert json.loads(newest["records"]) == ["audit:3", "audit:2", "audit:1"]
    page = client.get("/audit/?purpose=audit").get_data(True)  # its own entry shows next time
    assert 'id="entry-4"' in page and "audit log intact: 4 entries from seq 1 to 4" in page


@pytest.mark.parametrize("role", ["admin", "technician", "officer", "supervisor", "analyst"])
def test_every_other_role_is_refused_the_audit_log(web, role):
    add(web.engine, 1)
    client = web.client(role)
    for path in ("/audit/", "/audit/?purpose=audit"):
        assert client.get(path).status_code == 403
    assert len(rows(web.engine)) == 1


def test_nobody_logged_in_is_sent_to_the_login_page(web):
    response = web.app.test_client().get("/audit/?purpose=audit")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_audit_page_filters_and_pages_with_the_purpose_kept(web):
    add(web.engine, 55)
    add(web.engine, 2, start_day=100, who=BRUNO)
    client = web.client("auditor")
    page = client.get("/audit/?purpose=audit").get_data(True)
    assert page.count('<tr id="entry-') == 50 and 'id="entry-57"' in page
    older = re.search(r'id="older" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "before=8" in older and "purpose=audit" in older
    page = client.get(older).get_data(True)
    assert page.count('<tr id="entry-') == 7 and 'id="entry-1"' in page
    assert 'id="older"' not in page
    page = client.get("/audit/?purpose=audit&user=bruno").get_data(True)
    assert page.count('<tr id="entry-') == 2
    page = client.get(
        "/audit/?purpose=audit&since=2026-01-03&until=2026-01-04&action=crossings.search"
    ).get_data(True)
    assert re.findall(r'<tr id="entry-(\d+)"', page) == ["4", "3"]
    response = client.get("/audit/?purpose=audit&since=last+week")
    assert response.status_code == 400 and "since: a date YYYY-MM-DD" in response.get_data(True)
    response = client.get("/audit/?purpose=audit&before=x")
    assert response.status_code == 400 and "before:" in response.get_data(True)


def test_a_long_export_shows_its_first_record_ids_and_how_many_more(web):
    audit.append(
        web.engine,
        ALICE,
        "crossings.search",
        purpose="audit",
        records=[f"crossing-{n:02d}" for n in range(25)],
    )
    page = web.client("auditor").get("/audit/?purpose=audit").get_data(True)
    assert "<summary>25</summary>" in page
    assert "crossing-19" in page and "crossing-20" not in page and "and 5 more" in page


def test_the_audit_page_shows_a_broken_chain(web):
    add(web.engine, 4)
    sql(web.engine, "UPDATE audit_log SET records = '[]' WHERE seq = 2")
    web.app.config["AUDIT_FULL_CHECK_SECONDS"] = 0  # walk the whole chain on every view
    page = web.client("auditor").get("/audit/?purpose=audit").get_data(True)
    assert "audit log broken at seq 2: its hash does not match its contents (edited)" in page
    assert 'id="entry-4"' in page


# -- in a browser ---------------------------------------------------------------------------


def test_an_auditor_logs_in_gives_the_purpose_and_reads_the_log_in_chromium(console_web, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import Select, WebDriverWait

    engine = open_database(console_web.db)
    try:
        made = add(engine, 2, purpose="investigation", purpose_text="browser test case")
        console_web.login(page, "auditor")
        page.find_element(By.LINK_TEXT, "Audit log").click()
        form = WebDriverWait(page, 10).until(shown.presence_of_element_located((By.ID, "purpose")))
        Select(form).select_by_value("audit")
        page.find_element(By.ID, "purpose_text").send_keys("annual review 2026")
        page.find_element(By.ID, "purpose-submit").click()
        table = WebDriverWait(page, 10).until(
            shown.presence_of_element_located((By.ID, "audit-entries"))
        )
        assert page.find_element(By.ID, "chain").text.startswith("intact")
        for entry in made:
            row = table.find_element(By.ID, f"entry-{entry.seq}")
            assert "browser test case" in row.text and "investigation" in row.text
        assert "purpose=audit" in page.current_url
        with engine.connect() as conn:
            newest = next(audit.entries(conn, limit=1))
        assert (newest.username, newest.action, newest.purpose) == (
            "auditor",
            "audit.view",
            "audit",
        )
        assert newest.purpose_text == "annual review 2026"
        assert f"audit:{made[-1].seq}" in newest.record_ids
    finally:
        engine.dispose()
