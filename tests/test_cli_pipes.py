"""Every command that writes to standard output behaves in a pipe (issue 21, item 2).

``borderlane-console export crossings --db … --format csv | head -2`` printed ``Error: cannot
write None: Broken pipe`` and exited 1. A command whose reader has gone must stop quietly with
status 0, as Unix tools do under ``head``. Each command below runs for real (its console
script, a subprocess) with its standard output a pipe whose reading end is already closed, so
its very first write meets EPIPE whatever it prints and however it buffers; and, to know the
case is not empty, the same command is run in-process first and must print something. A few
run into a real ``head -1`` with output well beyond a pipe's 64 KiB buffer.

Commands left out, with why: those that need a broker, a card reader or a running agent
(``ingest``, ``command send``, ``watchlist publish|serve``, ``watchlist trust publish``,
``watchlist status`` (of what was published),
``devices serve-enrollment|revoke|decommission``, ``web``, ``enroll``, ``card read``,
``sim card``, ``sim travellers``, ``mrz listen``, ``run`` without ``--check``); those that
prompt for a password on the terminal (``users add``, ``users set-password``); those that
write only to standard error (``watchlist import``, ``storage setup|unlock|lock``); ``storage
status``, which needs an ext4 with encryption (``tests/test_encryption_at_rest.py``). They share
the entry point's handling (``PipeSafeGroup``) with the commands below.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from console.cli import cli as console_cli
from console.records import classify
from console.store import Store
from edge.cli import cli as edge_cli
from harness.console import availability, crossing
from mqtt_schemas import topics
from provisioning.cli import cli as provision_cli

BIN = Path(sys.executable).parent
CLIS = {
    "borderlane-edge": edge_cli,
    "borderlane-console": console_cli,
    "borderlane-provision": provision_cli,
}
MRZ = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
LISTS = Path(__file__).parent / "data" / "readme"  # two versions of a small list

# name -> the command line, in a copy of the workspace (relative paths); stdin where it reads it
CASES: dict[str, tuple[str, ...]] = {
    "edge --help": ("borderlane-edge", "--help"),
    "edge mrz parse": ("borderlane-edge", "mrz", "parse", *MRZ),
    "edge screen": ("borderlane-edge", "screen", "--db", "wl.db"),
    "edge watchlist status": ("borderlane-edge", "watchlist", "status", "--db", "wl.db"),
    "edge watchlist export": ("borderlane-edge", "watchlist", "export", "--db", "wl.db"),
    "edge watchlist population status": (
        "borderlane-edge", "watchlist", "population", "status", "--db", "wl.db",
    ),
    "edge watchlist verify": (
        "borderlane-edge", "watchlist", "verify", "--trust-dir", "keys", "delta-1-2.jsonl",
    ),
    "edge watchlist apply": (
        "borderlane-edge", "watchlist", "apply", "--db", "wl.db", "--trust-dir", "keys",
        "delta-1-2.jsonl",
    ),
    "edge sim issue-cbic": (
        "borderlane-edge", "sim", "issue-cbic", "holder.json", "--issuer-dir", "issuer",
        "--out", "card.json",
    ),
    "edge storage new-key": ("borderlane-edge", "storage", "new-key", "new.key"),
    "edge ui officer-add": (
        "borderlane-edge", "ui", "officer-add", "--file", "officers.json",
        "--officer-id", "bz-off-117", "--pin", "123456",
    ),
    "edge run --check": ("borderlane-edge", "run", "--config", "kiosk.toml", "--check"),
    "console --help": ("borderlane-console", "--help"),
    "console contract topics": ("borderlane-console", "contract", "topics"),
    "console contract validate": (
        "borderlane-console", "contract", "validate", "crossing", "crossing.json",
    ),
    "console export crossings": (
        "borderlane-console", "export", "crossings", "--db", "console.db", "--format", "csv",
    ),
    "console db status": ("borderlane-console", "db", "status", "--db", "console.db"),
    "console db upgrade": ("borderlane-console", "db", "upgrade", "--db", "console.db"),
    "console watchlist keygen": (
        "borderlane-console", "watchlist", "keygen", "--key-id", "wl-b", "--out", "keys2",
    ),
    "console watchlist diff": ("borderlane-console", "watchlist", "diff", "v1.jsonl", "v2.jsonl"),
    "console watchlist sign": (
        "borderlane-console", "watchlist", "sign", "--key", "keys/wl-a.key.pem",
        "--key-id", "wl-a", "--snapshot", "1", "v1.jsonl",
    ),
    "console watchlist trust sign": (
        "borderlane-console", "watchlist", "trust", "sign", "--anchor-key", "keys/wl-a.key.pem",
        "--anchor-id", "wl-a", "--sequence", "1", "--key", "wl-a=keys/wl-a.pub.pem:1::active",
    ),
    "console users list": ("borderlane-console", "users", "list", "--db", "console.db"),
    "console users token": ("borderlane-console", "users", "token", "ada", "--db", "console.db"),
    "console users disable": (
        "borderlane-console", "users", "disable", "bob", "--db", "console.db",
    ),
    "console devices token": (
        "borderlane-console", "devices", "token", "kiosk-bz-09", "--post", "bz-santa-elena",
        "--by", "ada", "--db", "console.db",
    ),
    "console alerts watch --once": (
        "borderlane-console", "alerts", "watch", "--once", "--db", "console.db",
    ),
    "console alerts list": ("borderlane-console", "alerts", "list", "--db", "alerted.db"),
    "console audit verify": ("borderlane-console", "audit", "verify", "--db", "console.db"),
    "console audit list": ("borderlane-console", "audit", "list", "--db", "console.db"),
    "console audit purge": ("borderlane-console", "audit", "purge", "--db", "console.db"),
    "provision --help": ("borderlane-provision", "--help"),
    "provision pki init": ("borderlane-provision", "pki", "init", "--pki", "pki2"),
    "provision pki issue": (
        "borderlane-provision", "pki", "issue", "device", "kiosk-bz-02", "--pki", "pki",
    ),
    "provision pki revoke": (
        "borderlane-provision", "pki", "revoke", "kiosk-bz-01", "--reason", "stolen",
        "--pki", "pki",
    ),
    "provision broker config": (
        "borderlane-provision", "broker", "config", "--pki", "pki", "--out", "broker",
        "--run-as", "nobody",
    ),
}  # fmt: skip
STDIN = {
    "edge screen": "".join(
        json.dumps({"id": f"q{n}", "surname": "GARCIA LOPEZ", "given_names": "JOSE"}) + "\n"
        for n in range(3)
    ),
}
# what a command prints on standard error by design after its output (a note), if it gets there
STDERR = {"console watchlist sign": "1 chunks, 3 changes\n"}


def invoke(argv: tuple[str, ...], workdir: Path, stdin: str | None = None):
    """The command in this process, in *workdir*: quick, and its output readable."""
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        return CliRunner().invoke(CLIS[argv[0]], list(argv[1:]), input=stdin)
    finally:
        os.chdir(previous)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, uplink_pki) -> Path:
    """What the commands work on, made by the commands themselves where they can."""
    work = tmp_path_factory.mktemp("pipes")

    def ok(*argv: str, stdin: str | None = None) -> str:
        result = invoke(argv, work, stdin)
        assert result.exit_code == 0, (argv, result.output)
        return result.stdout

    ok("borderlane-provision", "pki", "init", "--pki", "pki")
    ok("borderlane-provision", "pki", "issue", "device", "kiosk-bz-01", "--pki", "pki")
    ok("borderlane-provision", "pki", "issue", "server", "broker", "--host", "localhost",
       "--pki", "pki")  # fmt: skip
    for name in ("v1.jsonl", "v2.jsonl"):
        shutil.copy(LISTS / name, work / name)
    ok("borderlane-console", "watchlist", "keygen", "--key-id", "wl-a", "--out", "keys")
    sign = ("borderlane-console", "watchlist", "sign", "--key", "keys/wl-a.key.pem")
    (work / "snapshot-1.jsonl").write_text(
        ok(*sign, "--key-id", "wl-a", "--snapshot", "1", "v1.jsonl")
    )
    (work / "changes.jsonl").write_text(
        ok("borderlane-console", "watchlist", "diff", "v1.jsonl", "v2.jsonl")
    )
    (work / "delta-1-2.jsonl").write_text(
        ok(*sign, "--key-id", "wl-a", "--from-version", "1", "changes.jsonl")
    )
    ok("borderlane-edge", "watchlist", "apply", "--db", "wl.db", "--trust-dir", "keys",
       "snapshot-1.jsonl")  # fmt: skip
    shutil.copy(
        Path(__file__).parents[1] / "edge" / "sim" / "samples" / "resident-worker.json",
        work / "holder.json",
    )
    (work / "crossing.json").write_text(json.dumps(crossing("kiosk-bz-01", 1)))
    store = Store.open(str(work / "console.db"))
    topic = topics.device_topic("kiosk-bz-01", "crossings")
    records = [json.dumps(crossing("kiosk-bz-01", seq)).encode() for seq in range(1, 4)]
    store.apply([classify(topic, raw) for raw in records], "console-1", "2026-12-05T09:00:00Z")
    online = json.dumps(availability("kiosk-bz-01", "online", 1, 10)).encode()
    store.apply(
        [classify(topics.device_topic("kiosk-bz-01", "availability"), online)],
        "console-1",
        "2020-01-01T00:00:00Z",
    )
    store.close()
    ok("borderlane-console", "users", "add", "ada", "--db", "console.db", "--name", "Ada Lopez",
       "--agency", "immigration", "--role", "admin", "--level", "4", "--no-forced-change",
       stdin="correct horse battery\ncorrect horse battery\n")  # fmt: skip
    ok("borderlane-console", "users", "add", "bob", "--db", "console.db", "--name", "Bob Bel",
       "--agency", "immigration", "--role", "admin", "--level", "4",
       stdin="correct horse battery\ncorrect horse battery\n")  # fmt: skip
    # an entry in the audit log (a token is audited), and a kiosk gone quiet for an alert
    ok("borderlane-console", "devices", "token", "kiosk-bz-08", "--post", "bz-santa-elena",
       "--by", "ada", "--db", "console.db")  # fmt: skip
    shutil.copy(work / "console.db", work / "alerted.db")  # the alert raised there already
    ok("borderlane-console", "alerts", "watch", "--once", "--db", "alerted.db")
    identity = uplink_pki.identity("kiosk-bz-pipes")
    (work / "kiosk.toml").write_text(
        "[agent]\ndevice_id = 'kiosk-bz-pipes'\ndata_dir = 'state'\n"
        "[lane]\nsite = 'bz-santa-elena'\nlane = 'lane-1'\ndirection = 'entry'\n"
        "[card_reader]\nenabled = false\n"
        f"[uplink.broker]\nhost = '127.0.0.1'\nca_file = '{uplink_pki.ca.cert_path}'\n"
        f"cert_file = '{identity.cert_path}'\nkey_file = '{identity.key_path}'\n"
    )
    return work


def fresh(workspace: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(workspace, copy)
    return copy


FORK_SERVER = r"""
import json, os, sys
from edge.cli import main as edge
from console.cli import main as console
from provisioning.cli import main as provision
MAINS = {"borderlane-edge": edge, "borderlane-console": console, "borderlane-provision": provision}
for line in sys.stdin:
    case = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the command's own process: its entry point as its console script calls it
        os.chdir(case["cwd"])
        os.dup2(os.open(case["stdin"], os.O_RDONLY), 0)
        if case["stdout"]:
            out = os.open(case["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        else:  # a pipe whose reading end is closed: the first write meets EPIPE
            read, out = os.pipe()
            os.close(read)
        os.dup2(out, 1)
        os.dup2(os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        sys.argv = case["argv"]
        try:
            MAINS[case["argv"][0]]()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        try:
            sys.stdout.flush()  # as the interpreter does at exit (os._exit does not)
        except BrokenPipeError:
            code = 120  # what Python itself exits with when that flush fails
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


def run_all(cases: list[dict]) -> list[int]:
    """Each case in a process of its own, forked from one interpreter that imported the three
    command lines once (starting 38 interpreters took half a minute on the 2 shared cores)."""
    done = subprocess.run(
        [sys.executable, "-c", FORK_SERVER],
        input="".join(json.dumps(case) + "\n" for case in cases),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_every_command_stops_quietly_when_its_reader_has_gone(workspace, tmp_path):
    cases, where = [], []
    for name, argv in CASES.items():  # each twice: printing to a file, then to a closed pipe
        for closed in (False, True):
            work = fresh(workspace, tmp_path, f"{name}-{'closed' if closed else 'file'}")
            (work / ".stdin").write_text(STDIN.get(name, ""))
            where.append((name, closed, work))
            cases.append(
                {
                    "argv": list(argv),
                    "cwd": str(work),
                    "stdin": str(work / ".stdin"),
                    "stdout": None if closed else str(work / ".stdout"),
                    "stderr": str(work / ".stderr"),
                }
            )
    wrong = {}
    for (name, closed, work), code in zip(where, run_all(cases), strict=True):
        stderr = (work / ".stderr").read_text()
        if not closed:  # the case is not empty: it prints
            if code != 0 or not (work / ".stdout").read_text().strip():
                wrong[f"{name} (to a file)"] = (code, stderr)
        elif code != 0 or stderr not in ("", STDERR.get(name, "")):
            wrong[name] = (code, stderr)
    assert wrong == {}


def test_the_console_scripts_themselves_exit_quietly():
    """The installed scripts, each in an interpreter of its own: --help into a closed pipe,
    and an unknown command, which is still an error on standard error."""
    for script in CLIS:
        read, write = os.pipe()
        os.close(read)
        try:
            done = subprocess.run(
                [str(BIN / script), "--help"], stdout=write, stderr=subprocess.PIPE, timeout=60
            )
        finally:
            os.close(write)
        assert (done.returncode, done.stderr) == (0, b""), script
        wrong = subprocess.run(
            [str(BIN / script), "no-such-command"], capture_output=True, text=True, timeout=60
        )
        assert wrong.returncode == 2 and "No such command" in wrong.stderr


def into_head(command: str, workdir: Path, lines: int) -> tuple[str, int, str]:
    """``COMMAND | head -LINES`` in bash: what head printed, the command's own exit status and
    its standard error."""
    script = f'{command} 2>.stderr | head -{lines}; echo "${{PIPESTATUS[0]}}" > .status'
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=60,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    status = int((workdir / ".status").read_text())
    return done.stdout, status, (workdir / ".stderr").read_text()


def test_the_issues_csv_export_into_head_2(workspace, tmp_path):
    """The issue's case, with ~500 kB of CSV: far beyond what the pipe buffers."""
    work = fresh(workspace, tmp_path, "big")
    store = Store.open(str(work / "console.db"))
    topic = topics.device_topic("kiosk-bz-01", "crossings")
    records = [json.dumps(crossing("kiosk-bz-01", 10 + n)).encode() for n in range(2000)]
    store.apply([classify(topic, raw) for raw in records], "console-1", "2026-12-05T09:00:00Z")
    store.close()
    command = "borderlane-console export crossings --db console.db --format csv"
    printed, status, stderr = into_head(command, work, 2)
    assert (status, stderr) == (0, "")
    assert len(printed.splitlines()) == 2 and printed.startswith("id,")


def test_a_big_diff_and_a_simulator_that_runs_until_stopped_into_head_1(workspace, tmp_path):
    work = fresh(workspace, tmp_path, "diff")
    person = json.loads((LISTS / "v1.jsonl").read_text().splitlines()[0])
    for name, birth in (("old.jsonl", "1980-02-03"), ("new.jsonl", "1981-02-03")):
        (work / name).write_text(
            "".join(
                json.dumps({**person, "id": f"p{n}", "birth_date": birth}) + "\n"
                for n in range(3000)
            )
        )
    printed, status, stderr = into_head(
        "borderlane-console watchlist diff old.jsonl new.jsonl", work, 1
    )
    assert (status, stderr) == (0, "")
    assert json.loads(printed)["op"] == "update"
    # a line per document sent, forever, once a program opens the device (cat here): the first
    # write after head left ends it
    # (the simulator may also meet the closed pipe before it waits: then nobody opens the tty)
    opener = (
        "(for _ in $(seq 100); do [ -e tty ] && exec cat tty; sleep 0.05; done) >/dev/null 2>&1 & "
    )
    printed, status, stderr = into_head(
        opener + "borderlane-edge sim mrz-reader --link tty --every 0.05 </dev/null", work, 1
    )
    assert (status, stderr) == (0, "")
    assert printed == "MRZ reader on tty\n"
