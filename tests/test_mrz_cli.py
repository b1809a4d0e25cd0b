"""``borderlane-edge mrz parse``: a technician reads an MRZ from the shell and gets JSON back.

Exit status 0 for anything that is an MRZ (valid or not), 2 and one line on stderr for anything
else. The exit codes and stderr are checked on the installed command, in a real process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_mrz import SPECIMENS, TODAY

from edge.cli import cli

EDGE = Path(sys.executable).parent / "borderlane-edge"

LINE_1 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"
LINE_2 = "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
TD3 = f"{LINE_1}\n{LINE_2}\n"


def edge(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(EDGE), "mrz", "parse", *args], input=stdin, capture_output=True, timeout=60
    )


def invoke(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, ["mrz", "parse", *args], input=stdin)


# --- the installed command: exit codes and stderr ---------------------------------------------


def test_an_mrz_on_stdin_prints_one_json_object_and_exits_0() -> None:
    result = edge("--today", "2025-06-01", stdin=TD3.encode())
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["surname"], document["document_number"], document["valid"]) == (
        "ERIKSSON",
        "L898902C3",
        True,
    )
    assert result.stderr == b""


def test_a_failing_check_digit_still_parses_and_exits_0() -> None:
    result = edge(LINE_1, LINE_2[:-1] + "9")  # composite check digit 9 instead of 0
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert document["checks"]["composite"] is False


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"hello\n", "expected 2 lines of 44, 2 of 36 or 3 of 30 characters; got 1 line of 5"),
        (b"", "expected 2 lines of 44, 2 of 36 or 3 of 30 characters; got no text"),
        (TD3.replace("<", "$", 1).encode(), "invalid character '$' at line 1, column 2"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", "standard input is not UTF-8 text"),
        (b"P<UTO\xc3\x28", "standard input is not UTF-8 text (byte 6)"),
        (bytes(range(256)) * 4, "standard input is not UTF-8 text"),
    ],
    ids=["text", "empty", "bad character", "PNG", "invalid UTF-8", "every byte"],
)
def test_what_is_not_an_mrz_exits_2_with_one_line_on_stderr(stdin: bytes, message: str) -> None:
    result = edge(stdin=stdin)
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().startswith(f"Error: {message}")
    assert result.stderr.count(b"\n") == 1
    assert b"Traceback" not in result.stderr


def test_nul_bytes_are_text_but_not_an_mrz() -> None:
    result = edge(stdin=TD3.replace("L", "\x00", 1).encode())
    assert result.returncode == 2
    assert result.stderr == b"Error: invalid character '\\x00' at line 2, column 1\n"


# --- everything else, in process --------------------------------------------------------------


def test_each_argument_is_a_line_or_one_argument_holds_them_all() -> None:
    as_lines = invoke(LINE_1, LINE_2, "--today", "2025-06-01")
    joined = invoke(LINE_1 + LINE_2, "--today", "2025-06-01")
    assert as_lines.exit_code == joined.exit_code == 0
    assert as_lines.output == joined.output
    assert json.loads(as_lines.output)["format"] == "TD3"


def test_a_dash_reads_standard_input() -> None:
    result = invoke("-", "--today", "2025-06-01", stdin=TD3)
    assert result.exit_code == 0
    assert json.loads(result.output)["given_names"] == "ANNA MARIA"


def test_the_output_is_the_documents_json_with_every_key() -> None:
    document = json.loads(invoke(LINE_1, LINE_2, "--today", "2025-06-01").output)
    assert set(document) >= {
        "format",
        "document_type",
        "issuing_state",
        "surname",
        "given_names",
        "document_number",
        "nationality",
        "birth_date",
        "sex",
        "expiry_date",
        "optional_data",
        "valid",
        "checks",
        "corrections",
        "warnings",
    }


def test_today_fixes_the_century_and_the_expiry_judgement() -> None:
    in_2010 = json.loads(invoke(LINE_1, LINE_2, "--today", "2010-01-01").output)
    in_2025 = json.loads(invoke(LINE_1, LINE_2, "--today", "2025-06-01").output)
    assert in_2010["expiry_date"] == in_2025["expiry_date"] == "2012-04-15"
    assert "document expired on 2012-04-15" not in in_2010["warnings"]
    assert "document expired on 2012-04-15" in in_2025["warnings"]


def test_a_date_that_is_not_yyyy_mm_dd_is_a_usage_error() -> None:
    result = invoke(LINE_1, LINE_2, "--today", "1.6.2025")
    assert result.exit_code == 2
    assert "'1.6.2025' does not match the format '%Y-%m-%d'" in result.output


def test_repairs_show_in_the_output() -> None:
    result = invoke(LINE_1, LINE_2.replace("7408122", "74O8122"), "--today", "2025-06-01")
    document = json.loads(result.output)
    assert document["valid"] is True
    assert document["corrections"][0]["from"] == "O"


def test_help_shows_examples_and_the_group_is_registered() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "borderlane-edge mrz parse < scan.txt" in result.output
    top = CliRunner().invoke(cli, ["--help"])
    assert "mrz" in top.output


@pytest.mark.parametrize(("text", "expected"), SPECIMENS.values(), ids=SPECIMENS.keys())
def test_every_doc_9303_specimen_gives_its_fields(text: str, expected: dict) -> None:
    result = invoke("--today", TODAY.isoformat(), stdin=text)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert {key: printed[key] for key in expected} == expected


# --- mrz listen: the kiosk's serial driver, from the shell -------------------------------------


def test_listen_prints_each_read_from_a_serial_reader_as_a_json_line(mrz_sim) -> None:
    reader = mrz_sim()
    listener = subprocess.Popen(
        [str(EDGE), "mrz", "listen", "--port", str(reader.link), "--count", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stderr.readline().startswith("reader connected ")
        reader.send(TD3)
        out, err = listener.communicate(timeout=30)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    line = json.loads(out)
    assert line["ok"] is True
    assert line["document"]["document_number"] == "L898902C3"


def test_listen_refuses_a_bad_setting_in_one_line() -> None:
    result = subprocess.run(
        [str(EDGE), "mrz", "listen", "--port", "/dev/ttyUSB0", "--prefix", "zz"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: prefix: 'zz' is not hex (e.g. '1B4D')"
    )
