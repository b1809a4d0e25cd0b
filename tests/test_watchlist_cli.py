"""The watchlist command-line contract, run as technicians and benchmarks run it.

The kiosk's ``borderlane-edge watchlist import|status|export|verify|apply|reindex`` and
``borderlane-edge screen``; the console's ``borderlane-console watchlist keygen|diff|sign``
(signing is the console's job), and the kiosk's deprecated names for those three, which still
work for one release and say where they went. JSON Lines in and out, one-line errors, non-zero
exit on failure, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EDGE = Path(sys.executable).parent / "borderlane-edge"
CONSOLE = Path(sys.executable).parent / "borderlane-console"

LIST_V1 = [
    {
        "id": "garcia",
        "kind": "person",
        "names": ["GARCIA LOPEZ, JUAN CARLOS"],
        "birth_date": "1975-03-02",
        "nationality": ["MEX"],
        "sex": "M",
        "list": "national-wanted",
        "action": "deny",
    },
    {
        "id": "habbash",
        "kind": "person",
        "names": [{"surname": "HABBASH", "given_names": "GEORGE"}],
        "birth_date": "1926-08-02",
        "sex": "M",
        "list": "national-wanted",
        "action": "refer",
    },
    {
        "id": "sltd:MEX:G10583221",
        "kind": "document",
        "number": "G10583221",
        "issuing_state": "MEX",
        "document_type": "P",
        "status": "stolen",
        "list": "interpol-sltd",
    },
]
LIST_V2 = [
    LIST_V1[0],
    {**LIST_V1[2], "status": "revoked"},
    {
        "id": "ivanov",
        "kind": "person",
        "names": ["IVANOV, ALEKSANDR"],
        "birth_date": "1970-01-15",
        "list": "interpol-red",
        "action": "refer",
    },
]


def run(
    *args: str, stdin: str | None = None, cwd: Path | None = None, command: Path = EDGE
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(command), *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def console(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run(*args, stdin=stdin, command=CONSOLE)


def write_jsonl(path: Path, items: list) -> Path:
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items))
    return path


def jsonl(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def lists(tmp_path):
    return write_jsonl(tmp_path / "v1.jsonl", LIST_V1), write_jsonl(tmp_path / "v2.jsonl", LIST_V2)


@pytest.fixture
def db(tmp_path, lists):
    path = tmp_path / "watchlist.db"
    result = run("watchlist", "import", "--db", str(path), str(lists[0]))
    assert result.returncode == 0, result.stderr
    return path


# ---------------------------------------------------------------------------------------------
# import, status, export


def test_import_reports_bad_lines_by_number_and_imports_the_rest(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text(
        json.dumps(LIST_V1[0])
        + "\n"
        + "{broken\n"
        + json.dumps({**LIST_V1[2], "issuing_state": "Mexico"})
        + "\n"
        + json.dumps(LIST_V1[1])
        + "\n"
    )
    db = tmp_path / "w.db"
    result = run("watchlist", "import", "--db", str(db), str(path))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith(str(path))]
    assert [e.split(": ")[0] for e in errors] == [f"{path}:2", f"{path}:3"]
    assert "2 persons and 0 documents" in result.stderr
    status = json.loads(run("watchlist", "status", "--db", str(db)).stdout)
    assert status["counts"] == {"persons": 2, "documents": 0}
    assert status["version"] == 0


def test_import_csv(tmp_path):
    path = tmp_path / "sltd.csv"
    path.write_text(
        "id,kind,number,issuing_state,status,list\nd1,document,X123,MEX,lost,interpol-sltd\n"
    )
    db = tmp_path / "w.db"
    assert run("watchlist", "import", "--db", str(db), str(path)).returncode == 0
    exported = jsonl(run("watchlist", "export", "--db", str(db)).stdout)
    assert exported == [
        {
            "id": "d1",
            "kind": "document",
            "number": "X123",
            "issuing_state": "MEX",
            "status": "lost",
            "list": "interpol-sltd",
            "action": "refer",
        }
    ]


def test_import_of_a_missing_file_is_one_line_and_exit_1(tmp_path):
    result = run(
        "watchlist", "import", "--db", str(tmp_path / "w.db"), str(tmp_path / "none.jsonl")
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("Error: ")


# ---------------------------------------------------------------------------------------------
# screen


def test_screen_writes_one_line_per_query_with_hits_best_first(db):
    queries = [
        {
            "id": "t1",
            "surname": "GARSIA LOPES",
            "given_names": "JUAN KARLOS",
            "birth_date": "1975-03-02",
            "nationality": "MEX",
            "sex": "M",
            "document_number": "G1O583221",
            "issuing_state": "MEX",
        },
        {"id": "t2", "surname": "BUSH", "given_names": "GEORGE", "birth_date": "1926-08-02"},
        {"id": "t3"},
        {"id": 4, "surname": "HABASH", "given_names": "GEORGE"},
    ]
    result = run("screen", "--db", str(db), stdin="".join(json.dumps(q) + "\n" for q in queries))
    assert result.returncode == 0, result.stderr
    answers = jsonl(result.stdout)
    assert [a["id"] for a in answers] == ["t1", "t2", "t3", 4]
    first = answers[0]["hits"]
    assert {h["entry_id"] for h in first} == {"garcia", "sltd:MEX:G10583221"}
    assert [h["score"] for h in first] == sorted((h["score"] for h in first), reverse=True)
    for hit in first:
        assert {"entry_id", "kind", "score", "reasons"} <= set(hit)
        assert hit["reasons"] and all({"part", "how", "detail"} == set(r) for r in hit["reasons"])
    assert answers[1]["hits"] == [] and answers[2]["hits"] == []
    # HABASH, no birth date: found on the whole (rare) name, the missing date said
    [habbash] = answers[3]["hits"]
    assert habbash["entry_id"] == "habbash"
    assert {"part": "birth-date", "how": "missing", "detail": "the traveller's is unknown"} in (
        habbash["reasons"]
    )
    stricter = run("screen", "--db", str(db), "--threshold", "0.95", stdin=json.dumps(queries[3]))
    assert jsonl(stricter.stdout)[0]["hits"] == []


def test_a_bad_query_line_gets_an_error_line_and_the_run_goes_on(db):
    stdin = (
        json.dumps({"id": "a", "surname": "GARCIA", "birth_date": "1975-13-40"})
        + "\n"
        + "{nope\n"
        + json.dumps(
            {
                "id": "c",
                "surname": "GARCIA LOPEZ",
                "given_names": "JUAN CARLOS",
                "birth_date": "1975-03-02",
            }
        )
        + "\n"
    )
    result = run("screen", "--db", str(db), stdin=stdin)
    assert result.returncode == 1
    answers = jsonl(result.stdout)
    assert answers[0]["id"] == "a" and "birth_date" in answers[0]["error"]
    assert answers[1]["id"] is None and "line 2" in answers[1]["error"]
    assert answers[2]["id"] == "c" and answers[2]["hits"][0]["entry_id"] == "garcia"


def test_screen_timing_and_threshold_validation(db):
    result = run("screen", "--db", str(db), "--timing", stdin='{"id": "x", "surname": "CHUN"}\n')
    assert jsonl(result.stdout)[0]["ms"] >= 0
    bad = run("screen", "--db", str(db), "--threshold", "1.5", stdin="")
    assert bad.returncode == 2 and "threshold" in bad.stderr


def test_screen_needs_an_existing_store(tmp_path):
    result = run("screen", "--db", str(tmp_path / "none.db"), stdin="{}\n")
    assert result.returncode == 1 and result.stderr.startswith("Error: ")


# ---------------------------------------------------------------------------------------------
# keys, diff and sign on the console; verify and apply on the kiosk


@pytest.fixture
def keys(tmp_path):
    directory = tmp_path / "keys"
    result = console("watchlist", "keygen", "--key-id", "wl-2026a", "--out", str(directory))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "wl-2026a" and result.stderr == ""
    assert (directory / "wl-2026a.key.pem").stat().st_mode & 0o777 == 0o600
    return directory


def sign(keys: Path, changes: Path, *extra: str) -> subprocess.CompletedProcess:
    return console(
        "watchlist",
        "sign",
        "--key",
        str(keys / "wl-2026a.key.pem"),
        "--key-id",
        "wl-2026a",
        *extra,
        str(changes),
    )


def test_the_console_to_kiosk_round_trip(tmp_path, lists, keys):
    db = tmp_path / "kiosk.db"
    # A snapshot of version 1 ...
    snapshot = tmp_path / "snapshot-1.jsonl"
    result = sign(keys, lists[0], "--snapshot", "1", "--chunk-size", "2")
    assert result.returncode == 0, result.stderr
    snapshot.write_text(result.stdout)
    assert len(jsonl(result.stdout)) == 2
    result = run("watchlist", "apply", "--db", str(db), "--trust-dir", str(keys), str(snapshot))
    assert result.returncode == 0, result.stderr
    assert "snapshot of version 1" in result.stdout
    # ... then the delta 1 -> 2 from the two list versions.
    changes = tmp_path / "changes.jsonl"
    changes.write_text(console("watchlist", "diff", str(lists[0]), str(lists[1])).stdout)
    assert [c["op"] for c in jsonl(changes.read_text())] == ["update", "add", "remove"]
    delta = tmp_path / "delta-2.jsonl"
    delta.write_text(sign(keys, changes, "--from-version", "1").stdout)
    trust = f"wl-2026a={keys / 'wl-2026a.pub.pem'}"
    verified = run("watchlist", "verify", "--trust", trust, str(delta))
    assert verified.returncode == 0 and "delta 1 -> 2: 3 changes" in verified.stdout
    applied = run("watchlist", "apply", "--db", str(db), "--trust", trust, str(delta))
    assert applied.returncode == 0, applied.stderr
    assert "1 added, 1 updated, 1 removed" in applied.stdout
    status = json.loads(run("watchlist", "status", "--db", str(db)).stdout)
    assert status["version"] == 2 and status["applied_at"]
    exported = jsonl(run("watchlist", "export", "--db", str(db)).stdout)
    assert sorted(e["id"] for e in exported) == sorted(e["id"] for e in LIST_V2)
    # Applying it again is a replay: refused, one line, exit 1, store unchanged.
    again = run("watchlist", "apply", "--db", str(db), "--trust", trust, str(delta))
    assert again.returncode == 1
    assert again.stderr.startswith("Error: rejected (replay)") and again.stderr.count("\n") == 1
    assert json.loads(run("watchlist", "status", "--db", str(db)).stdout)["version"] == 2


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda lines: lines[:-1], "truncated"),
        (lambda lines: lines[::-1], "reordered"),
        (lambda lines: [lines[0].replace('"A0000000"', '"A0000001"'), *lines[1:]], "bad-signature"),
    ],
)
def test_apply_refuses_tampered_deltas_with_the_reason(tmp_path, keys, tamper, reason):
    changes = write_jsonl(
        tmp_path / "changes.jsonl",
        [
            {
                "op": "add",
                "kind": "document",
                "entry_id": f"d{i}",
                "entry": {
                    "number": f"A{i:07d}",
                    "issuing_state": "MEX",
                    "status": "lost",
                    "list": "interpol-sltd",
                    "action": "refer",
                },
            }
            for i in range(5)
        ],
    )
    lines = sign(keys, changes, "--from-version", "0", "--chunk-size", "2").stdout.splitlines()
    delta = tmp_path / "delta.jsonl"
    delta.write_text("\n".join(tamper(lines)) + "\n")
    db = tmp_path / "kiosk.db"
    run("watchlist", "import", "--db", str(db), str(write_jsonl(tmp_path / "empty.jsonl", [])))
    result = run("watchlist", "apply", "--db", str(db), "--trust-dir", str(keys), str(delta))
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: rejected ({reason})"), result.stderr
    assert (
        json.loads(run("watchlist", "status", "--db", str(db)).stdout)["counts"]["documents"] == 0
    )


def test_apply_with_an_untrusted_key(tmp_path, lists, keys):
    other = tmp_path / "other"
    console("watchlist", "keygen", "--key-id", "wl-other", "--out", str(other))
    snapshot = tmp_path / "s.jsonl"
    snapshot.write_text(sign(keys, lists[0], "--snapshot", "3").stdout)
    result = run(
        "watchlist",
        "apply",
        "--db",
        str(tmp_path / "k.db"),
        "--trust-dir",
        str(other),
        str(snapshot),
    )
    assert result.returncode == 1 and "rejected (untrusted-key)" in result.stderr


def test_sign_needs_exactly_one_kind(tmp_path, lists, keys):
    result = sign(keys, lists[0])
    assert result.returncode == 2 and "--from-version or --snapshot" in result.stderr


def test_console_key_diff_and_sign_errors_are_one_line(tmp_path, lists, keys):
    again = console("watchlist", "keygen", "--key-id", "wl-2026a", "--out", str(keys))
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert again.stderr.startswith("Error: ") and "already there" in again.stderr
    bad_id = console("watchlist", "keygen", "--key-id", "wl/2026", "--out", str(keys))
    assert bad_id.returncode == 1 and "key id 'wl/2026'" in bad_id.stderr

    broken = write_jsonl(tmp_path / "broken.jsonl", [LIST_V1[0], {"id": "x", "kind": "person"}])
    result = console("watchlist", "diff", str(lists[0]), str(broken))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"Error: {broken}:2: line/names: required field is missing\n"

    changes = tmp_path / "changes.jsonl"
    changes.write_text('{"op": "add", "kind": "person"}\n')
    result = sign(keys, changes, "--from-version", "1", "-o", str(tmp_path / "delta.jsonl"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: {changes}:1: line 1/entry_id")
    assert not (tmp_path / "delta.jsonl").exists(), "a failed sign leaves no empty file"


def test_the_console_diffs_and_signs_csv_list_files(tmp_path, keys):
    old = tmp_path / "sltd-1.csv"
    old.write_text("id,kind,number,issuing_state,status,list\nd1,document,X123,MEX,lost,sltd\n")
    new = tmp_path / "sltd-2.csv"
    new.write_text(old.read_text().replace("lost", "stolen"))
    changes = console("watchlist", "diff", str(old), str(new))
    assert [(c["op"], c["entry"]["status"]) for c in jsonl(changes.stdout)] == [
        ("update", "stolen")
    ]
    snapshot = sign(keys, new, "--snapshot", "2")
    assert snapshot.returncode == 0, snapshot.stderr
    assert snapshot.stderr == "1 chunks, 1 changes\n"


# ---------------------------------------------------------------------------------------------
# The kiosk's old names for keygen, diff and sign: deprecated, working, and saying so


@pytest.mark.parametrize("name", ["keygen", "diff", "sign"])
def test_the_kiosks_old_signing_commands_still_work_and_say_where_they_went(
    tmp_path, lists, keys, name
):
    arguments = {
        "keygen": ["--key-id", "wl-old", "--out", str(tmp_path / "old-keys")],
        "diff": [str(lists[0]), str(lists[1])],
        "sign": [
            "--key", str(keys / "wl-2026a.key.pem"), "--key-id", "wl-2026a",
            "--snapshot", "1", str(lists[0]),
        ],
    }[name]  # fmt: skip
    old = run("watchlist", name, *arguments)
    assert old.returncode == 0, old.stderr
    warning, *rest = old.stderr.splitlines()
    assert warning == (
        f"borderlane-edge watchlist {name} is deprecated: use borderlane-console watchlist {name}"
    )
    if name == "keygen":
        assert old.stdout.split()[0] == "wl-old"
        assert (tmp_path / "old-keys" / "wl-old.key.pem").stat().st_mode & 0o777 == 0o600
        return
    # The same output as the console's command: the same changes; for sign the very same
    # chunks (Ed25519 signatures are deterministic) and the same summary line after the warning.
    new = console("watchlist", name, *arguments)
    assert new.returncode == 0, new.stderr
    assert old.stdout == new.stdout and jsonl(old.stdout)
    assert rest == new.stderr.splitlines()


def test_the_kiosks_old_sign_fails_as_the_console_does(tmp_path, lists, keys):
    result = run("watchlist", "sign", "--key", str(keys / "wl-2026a.key.pem"), "--key-id", "x",
                 str(lists[0]))  # fmt: skip
    assert result.returncode == 2 and "--from-version or --snapshot" in result.stderr
    assert result.stderr.startswith("borderlane-edge watchlist sign is deprecated")


# ---------------------------------------------------------------------------------------------
# help


@pytest.mark.parametrize(
    ("program", "command"),
    [
        ("borderlane-edge", ("screen",)),
        ("borderlane-edge", ("watchlist",)),
        *[
            ("borderlane-edge", ("watchlist", c))
            for c in ("import", "status", "export", "reindex", "verify", "apply")
        ],
        ("borderlane-console", ("watchlist",)),
        *[("borderlane-console", ("watchlist", c)) for c in ("keygen", "diff", "sign")],
    ],
)
def test_every_command_has_help_with_examples(program, command):
    # In-process (the contract tests above run the installed command): help is static text.
    from click.testing import CliRunner

    from console.cli import cli as console_cli
    from edge.cli import cli as edge_cli

    cli = edge_cli if program == "borderlane-edge" else console_cli
    result = CliRunner().invoke(cli, [*command, "--help"], prog_name=program)
    assert result.exit_code == 0
    assert "Example" in result.output


@pytest.mark.parametrize("name", ["keygen", "diff", "sign"])
def test_the_kiosks_old_names_point_to_the_console_in_help(name):
    from click.testing import CliRunner

    from edge.cli import cli

    listing = CliRunner().invoke(cli, ["watchlist", "--help"]).output
    assert f"Deprecated: use borderlane-console watchlist {name}." in " ".join(listing.split())
    result = CliRunner().invoke(cli, ["watchlist", name, "--help"])
    assert result.exit_code == 0
    assert f"borderlane-console watchlist {name}" in result.output
