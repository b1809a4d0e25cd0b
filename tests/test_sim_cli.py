"""``borderlane-edge sim issue-cbic``, ``sim issue-passport`` and ``sim card --cbic/--passport``.

What a technician does: issue a card or a passport into an image file, insert it into the vpcd
reader with ``sim card``, and read it from a PC/SC application. The issuing commands run
in-process (CliRunner); insertion runs the installed command in a real process and reads the card
through pyscard in this one, as the kiosk would, with the trust anchors the commands printed.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edge.cli import cli
from edge.documents.apdu import CommandApdu, ResponseApdu
from edge.documents.cbic import read_cbic
from edge.documents.emrtd.bac import BacKeys
from edge.documents.emrtd.lds import Dg1, LdsFile
from edge.documents.emrtd.passive_auth import CscaStore, verify
from edge.documents.emrtd.reader import read_emrtd
from edge.documents.mrz import parse as parse_mrz
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import SAMPLES_DIR, load_card_image
from edge.sim.emrtd_chip import EmrtdChip, PassportImage, load_passport_image
from edge.sim.emrtd_pki import SPECIMEN_MRZ
from edge.sim.pcscd import PcscStack
from edge.trust import load_trust_list
from harness.pcsc import pyscard_transmit, wait_for_card

EDGE = Path(sys.executable).parent / "borderlane-edge"
MRZ = f"{SPECIMEN_MRZ[:44]}\n{SPECIMEN_MRZ[44:]}"
KEYS = BacKeys.from_mrz_document(parse_mrz(MRZ))
WORKER = SAMPLES_DIR / "resident-worker.json"


def sim(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["sim", *args], input=input)


def direct(card: CbicCard | EmrtdChip):
    """A ``transmit`` straight into a card object, for checking images without PC/SC."""

    def transmit(command: CommandApdu) -> ResponseApdu:
        return ResponseApdu.parse(card.transmit(command.to_bytes()))

    return transmit


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a passport (anna.json, PKI in pki/) and a CBIC (worker.json, issuer/)."""
    where = tmp_path_factory.mktemp("issued")
    passport = sim(
        "issue-passport",
        "--mrz",
        MRZ,
        "--pki-dir",
        str(where / "pki"),
        "--out",
        str(where / "anna.json"),
    )
    assert passport.exit_code == 0, passport.output
    cbic = sim(
        "issue-cbic",
        str(WORKER),
        "--issuer-dir",
        str(where / "issuer"),
        "--out",
        str(where / "worker.json"),
    )
    assert cbic.exit_code == 0, cbic.output
    return where


# -- issuing ---------------------------------------------------------------------------------------


def test_issue_passport_makes_the_pki_once_and_says_where_the_csca_is(
    issued: Path, tmp_path: Path
) -> None:
    image = load_passport_image(issued / "anna.json")
    assert Dg1.parse(image.files[LdsFile.DG1]).mrz == SPECIMEN_MRZ
    assert image.printed_mrz == MRZ and image.keys == KEYS
    assert {p.name for p in (issued / "pki").iterdir()} == {
        "csca.pem",
        "csca.key",
        "ds.pem",
        "ds.key",
    }
    # a second passport from the same PKI, MRZ from a file, another face
    (tmp_path / "anna.mrz").write_text(MRZ + "\n")
    face = SAMPLES_DIR / "specimen-face.jpg"
    shutil.copy(face, tmp_path / "face.jpg")
    result = sim(
        "issue-passport",
        "--mrz-file",
        str(tmp_path / "anna.mrz"),
        "--pki-dir",
        str(issued / "pki"),
        "--face",
        str(tmp_path / "face.jpg"),
        "--out",
        str(tmp_path / "again.json"),
    )
    assert result.exit_code == 0, result.output
    csca = (issued / "pki" / "csca.pem").resolve()
    assert result.output.splitlines() == [
        f"issued ePassport L898902C3 -> {tmp_path / 'again.json'}",
        f"using the test PKI of UT in {issued / 'pki'}",
        f"CSCA certificate for the kiosk (--csca): {csca}",
    ]
    again = load_passport_image(tmp_path / "again.json")
    store = CscaStore()
    store.load(csca.read_bytes())
    files = again.files
    report = verify(files[LdsFile.SOD], {1: files[LdsFile.DG1], 2: files[LdsFile.DG2]}, store)
    assert report.passed, report.failures


def test_issue_passport_tampers_are_made_with_the_pkis_keys(issued: Path, tmp_path: Path) -> None:
    result = sim(
        "issue-passport",
        "--mrz",
        MRZ,
        "--pki-dir",
        str(issued / "pki"),
        "--out",
        str(tmp_path / "bad.json"),
        "--tamper",
        "expired-ds",
        "--tamper",
        "ds-country",
    )
    assert result.exit_code == 0, result.output
    assert "(defects: expired-ds, ds-country)" in result.output
    image = load_passport_image(tmp_path / "bad.json")
    assert image.printed_mrz.startswith("P<D<<ERIKSSON")  # the data page says so too
    store = CscaStore()
    store.load((issued / "pki" / "csca.pem").read_bytes())
    report = verify(image.files[LdsFile.SOD], {1: image.files[LdsFile.DG1]}, store)
    failed = [c.name for c in report.failures]
    assert failed == ["ds_certificate_validity", "ds_country_matches_issuer"]


def test_issue_cbic_makes_the_issuer_key_once(issued: Path, tmp_path: Path) -> None:
    image = load_card_image(issued / "worker.json")
    assert {p.name for p in (issued / "issuer").iterdir()} == {
        "bz-cbic-test-1.key",
        "bz-cbic-test-1.pem",
    }
    result = sim(
        "issue-cbic",
        str(SAMPLES_DIR / "student.json"),
        "--issuer-dir",
        str(issued / "issuer"),
        "--out",
        str(tmp_path / "student.json"),
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"issued CBIC CB5520931 signed by bz-cbic-test-1 -> {tmp_path / 'student.json'}",
        f"kiosk trust list: {issued / 'issuer' / 'bz-cbic-test-1.pem'}",
    ]
    trust = load_trust_list(issued / "issuer")
    for card in (image, load_card_image(tmp_path / "student.json")):
        reading = read_cbic(
            direct(CbicCard.from_image(card)),
            trust=trust,
            today=date(2026, 11, 24),
            site="bz-santa-elena",
        )
        assert reading.verification.check("issuer_signature").passed


# -- inserting, and reading through pcscd -------------------------------------------------------


@contextmanager
def inserted(stack: PcscStack, *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``borderlane-edge sim card ARGS`` in slot 1 until the block ends (then Ctrl-C)."""
    reader = stack.reader_names[1]
    port = str(stack.vpcd_port + 1)
    process = subprocess.Popen(
        [str(EDGE), "sim", "card", "--port", port, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_card(reader, present=True, timeout=10)
        yield reader, process
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
        assert process.returncode == 0, err
        assert "card removed" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    wait_for_card(reader, present=False)


def test_an_inserted_passport_reads_and_verifies_through_pcscd(
    pcsc_stack: PcscStack, issued: Path
) -> None:
    image = issued / "anna.json"
    with inserted(pcsc_stack, "--passport", str(image), "--no-extended-length") as (reader, _):
        atr = wait_for_card(reader, present=True)
        with pyscard_transmit(reader) as transmit:
            result = read_emrtd(transmit, KEYS, extended_length=True)
    assert atr == EmrtdChip.ATR
    # the chip refused the extended read: one fallback, one more BAC
    assert (result.stats.authentications, result.stats.fallbacks) == (2, 1)
    assert result.files == dict(PassportImage.from_json((image).read_text()).files)
    store = CscaStore()
    store.load((issued / "pki" / "csca.pem").read_bytes())
    report = verify(
        result.files[LdsFile.SOD],
        result.data_groups(),
        store,
        printed_mrz=MRZ,
        at=datetime.now(UTC),
    )
    assert report.passed, report.failures


def test_an_inserted_cbic_reads_through_pcscd_and_a_tamper_shows(
    pcsc_stack: PcscStack, issued: Path
) -> None:
    args = ("--cbic", str(issued / "worker.json"), "--tamper", "cloned")
    with inserted(pcsc_stack, *args) as (reader, _), pyscard_transmit(reader) as transmit:
        reading = read_cbic(
            transmit,
            trust=load_trust_list(issued / "issuer"),
            today=date(2026, 11, 24),
            site="bz-santa-elena",
        )
    assert reading.verification.failed == ("card_authentication",)


# -- bad arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["card", "--tamper", "cloned"], 2, "--tamper needs --cbic or --passport"),
        (["card", "--passport", "x.json", "--tamper", "cloned"], 2, "is for a CBIC"),
        (["card", "--passport", "x.json", "--tamper", "expired-ds"], 2, "made at issuance"),
        (["card", "--cbic", "x.json", "--tamper", "wrong-mac"], 2, "is for a passport"),
        (["card", "--cbic", "a", "--passport", "b"], 2, "one card at a time"),
        (["card", "--max-block", "100"], 2, "are for --passport"),
        (["card", "--aid", "A000000247", "--cbic", "x.json"], 2, "--aid is for the minimal"),
        (["card", "--tamper", "bogus"], 2, "Invalid value for '--tamper': 'bogus' is not one"),
        (["card", "--passport", "/nonexistent.json"], 2, "No such file or directory"),
        (["card", "--passport", "{worker}"], 2, "not a passport image"),
        (["card", "--cbic", "{anna}"], 2, "not a CBIC card image"),
        (["issue-passport", "--pki-dir", "p", "--out", "o"], 2, "--mrz TEXT or --mrz-file"),
        (
            ["issue-passport", "--mrz", "P<UTO", "--pki-dir", "p", "--out", "o"],
            2,
            "MRZ: expected 2 lines of 44",
        ),
        (["issue-passport", "--mrz", MRZ, "--out", "o"], 2, "Missing option '--pki-dir'"),
        (
            [
                "issue-passport",
                "--mrz",
                MRZ,
                "--pki-dir",
                "{pki}",
                "--out",
                "o",
                "--face",
                "{anna}",
            ],
            2,
            "not a JPEG or JPEG 2000 image",
        ),
        (
            [
                "issue-passport",
                "--mrz",
                MRZ.replace("UTO", "D<<", 1),
                "--pki-dir",
                "{pki}",
                "--out",
                "o",
            ],
            2,
            "the PKI in",
        ),
        (
            ["issue-passport", "--mrz", MRZ, "--pki-dir", "{pki}", "--out", "/proc/o"],
            1,
            "cannot write /proc/o",
        ),
        (
            ["issue-cbic", "/nonexistent.json", "--issuer-dir", "i", "--out", "o"],
            2,
            "/nonexistent.json: No such file or directory",
        ),
        (
            ["issue-cbic", "{anna}", "--issuer-dir", "{issuer}", "--out", "o"],
            2,
            "holder file: missing",
        ),
    ],
)
def test_bad_arguments_get_one_line(
    issued: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list,
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    names = {
        "anna": issued / "anna.json",
        "worker": issued / "worker.json",
        "pki": issued / "pki",
        "issuer": issued / "issuer",
    }
    result = sim(*(a.format(**names) for a in args))
    assert result.exit_code == code, result.output
    assert result.stdout == ""  # nothing done, nothing said
    assert not any(Path().iterdir()), "an unusable command line must leave nothing behind"
    assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_the_installed_command_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(EDGE),
            "sim",
            "issue-passport",
            "--mrz",
            "hello",
            "--pki-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "o.json"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: MRZ: expected 2 lines")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "csca.pem").exists()  # nothing made for an unusable MRZ


def test_help_shows_examples() -> None:
    for command in ("card", "issue-cbic", "issue-passport"):
        result = sim(command, "--help")
        assert result.exit_code == 0 and "Examples:" in result.output
        assert f"borderlane-edge sim {command}" in result.output


def test_the_image_is_json_a_technician_can_read(issued: Path) -> None:
    document = json.loads((issued / "anna.json").read_text())
    assert document["document_number"] == "L898902C3"
    assert document["printed_mrz"] == MRZ.splitlines()
