"""``borderlane-edge card read`` end to end: the installed command, the kiosk's card reader driver,
libpcsclite, the session's real pcscd with vpcd, and virtual cards inserted from this process.

Each test runs the command as a subprocess pointed at the test stack (``pcsc_stack.env``), so
nothing in between is mocked. pcscd notices a card only on its ~0.4 s presence poll, so the
module keeps one card position in reader slot 1 (the harness's ``card_slot``) and swaps cards
behind it; the command finds that card already present. Tests that need an empty reader use
slot 0, which no other module holds while this one runs. The card-pulled tests come last: a
pulled card costs the next test a presence poll.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edge.documents.apdu import StatusWord
from edge.sim.cards import IsoCard
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import SAMPLES_DIR, create_issuer, issue_card, save_issuer
from edge.sim.emrtd_chip import EmrtdChip, PassportPki, issue_passport_image
from edge.sim.emrtd_pki import SPECIMEN_MRZ, make_crl
from edge.sim.pcscd import PcscStack
from edge.sim.vpcd import VirtualCard, VpcdClient
from harness.pcsc import CardSlot, wait_for_card
from mqtt_schemas import examples, validate

EDGE = Path(sys.executable).parent / "borderlane-edge"
SITE = "bz-santa-elena"
TODAY = date.today()  # the command checks expiry against the system date
ISSUER = create_issuer("bz-cbic-test-1")
WORKER = json.loads((SAMPLES_DIR / "resident-worker.json").read_text(encoding="utf-8")) | {
    "issue_date": (TODAY - timedelta(days=400)).isoformat(),
    "expiry_date": (TODAY + timedelta(days=400)).isoformat(),
}
WORKER_IMAGE = issue_card(WORKER, ISSUER)
PRINTED_MRZ = f"{SPECIMEN_MRZ[:44]}\n{SPECIMEN_MRZ[44:]}"
PKI = PassportPki.create("UT")
PASSPORT = issue_passport_image(PRINTED_MRZ, pki=PKI)

CBIC_CHECKS = [
    "holder_data_format",
    "issuer_signature",
    "card_authentication",
    "expiry",
    "crossing_point",
]
PA_CHECKS = [
    "sod_parsed",
    "ds_signature",
    "ds_certificate_chain",
    "ds_certificate_validity",
    "ds_certificate_key_usage",
    "csca_certificate_validity",
    "ds_certificate_revocation",
    "dg1_hash",
    "dg2_hash",
    "dg1_matches_printed_mrz",
    "ds_country_matches_issuer",
]


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kiosk's trust files: CBIC issuer keys in issuer/, the CSCA and its CRL in csca.pem."""
    directory = tmp_path_factory.mktemp("trust")
    save_issuer(ISSUER, directory / "issuer")
    crl = x509.load_der_x509_crl(make_crl(PKI.csca))
    (directory / "csca.pem").write_bytes(
        PKI.csca.pem + crl.public_bytes(serialization.Encoding.PEM)
    )
    return directory


def card_read(
    stack: PcscStack, *args: str | Path, reader: str | None = None, timeout: float = 3.0
) -> subprocess.CompletedProcess[str]:
    """``borderlane-edge card read ARGS`` against the test stack, on slot 1 unless told."""
    command = [str(EDGE), "card", "read", "--timeout", str(timeout)]
    command += ["--reader", reader if reader is not None else stack.reader_names[1]]
    result = subprocess.run(
        [*command, *map(str, args)],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def read_json(
    stack: PcscStack, slot: CardSlot, card: VirtualCard, *args: str | Path
) -> dict[str, Any]:
    slot.put(card)
    result = card_read(stack, "--json", *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def results(output: Mapping[str, Any]) -> dict[str, str]:
    return {check["name"]: check["result"] for check in output["checks"]}


def failed(output: Mapping[str, Any]) -> list[str]:
    return [check["name"] for check in output["checks"] if check["result"] == "fail"]


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The error line of a command that must fail with ``code``, printing nothing else."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def as_crossing(output: Mapping[str, Any]) -> dict[str, Any]:
    """A valid crossing record of the contract, carrying what the command printed."""
    record = copy.deepcopy(examples("crossing")["valid"][0]["payload"])
    record["document"] = output["document"]
    record["checks"] = output["checks"]
    return record


# -- CBIC --------------------------------------------------------------------------------------


def test_a_genuine_cbic_passes_every_check(
    pcsc_stack: PcscStack, card_slot: CardSlot, trust: Path
) -> None:
    args = ("--issuers", trust / "issuer", "--site", SITE)
    output = read_json(pcsc_stack, card_slot, CbicCard.from_image(WORKER_IMAGE), *args)
    assert output["reader"] == card_slot.reader and output["kind"] == "cbic"
    assert results(output) == dict.fromkeys(CBIC_CHECKS, "pass")
    assert output["document"] == {
        "kind": "cbic",
        "document_type": "IC",
        "category": "resident-worker",
        "issuing_state": "BLZ",
        "nationality": "BLZ",
        "number": "CB4410275",
        "expiry_date": WORKER["expiry_date"],
        "birth_year": 1988,
    }
    assert output["holder"]["surname"] == "Castillo"
    assert output["holder"]["valid_at"] == [SITE]
    assert output["apdus"] == 4 and output["bytes"] > 300 and output["elapsed_ms"] > 0
    validate("crossing", as_crossing(output))  # the contract's document and check objects

    text = card_read(pcsc_stack, *args)  # the same card, for people
    assert text.returncode == 0 and text.stderr == ""
    lines = text.stdout.splitlines()
    assert lines[0] == "CBIC CB4410275 (resident-worker), issued by BLZ"
    assert "  given names  Marisol Andrea" in lines
    assert f"  valid at     {SITE}" in lines
    assert "  pass     card_authentication  the card holds the key in its signed data" in lines
    assert "5 checks: 5 pass" in lines
    assert lines[-1].startswith("read in ") and lines[-1].endswith(f"reader {card_slot.reader}")


TAMPERED_CBICS = [
    pytest.param({"bad_issuer_signature": True}, {}, "issuer_signature", id="bad issuer signature"),
    pytest.param({"cloned": True}, {}, "card_authentication", id="cloned"),
    pytest.param(
        {}, {"expiry_date": (TODAY - timedelta(days=1)).isoformat()}, "expiry", id="expired"
    ),
    pytest.param({}, {"valid_at": ["bz-benque-viejo"]}, "crossing_point", id="other crossing"),
]


@pytest.mark.parametrize(("switches", "holder_changes", "check"), TAMPERED_CBICS)
def test_a_tampered_cbic_names_exactly_its_failing_check(
    pcsc_stack: PcscStack,
    card_slot: CardSlot,
    trust: Path,
    switches: dict[str, bool],
    holder_changes: dict[str, Any],
    check: str,
) -> None:
    image = issue_card(WORKER | holder_changes, ISSUER) if holder_changes else WORKER_IMAGE
    card = CbicCard.from_image(image, **switches)
    output = read_json(pcsc_stack, card_slot, card, "--issuers", trust / "issuer", "--site", SITE)
    assert failed(output) == [check]
    assert results(output) == dict.fromkeys(CBIC_CHECKS, "pass") | {check: "fail"}


def test_without_trust_or_site_the_cbic_checks_say_what_was_not_given(
    pcsc_stack: PcscStack, card_slot: CardSlot
) -> None:
    output = read_json(pcsc_stack, card_slot, CbicCard.from_image(WORKER_IMAGE))
    checks = {check["name"]: check for check in output["checks"]}
    assert checks["issuer_signature"]["result"] == "fail"
    assert "no issuer keys were given" in checks["issuer_signature"]["detail"]
    assert checks["crossing_point"]["result"] == "skipped"
    assert "no crossing point given" in checks["crossing_point"]["detail"]


# -- ePassport ---------------------------------------------------------------------------------


def test_a_genuine_passport_passes_passive_authentication(
    pcsc_stack: PcscStack, card_slot: CardSlot, trust: Path
) -> None:
    args = ("--mrz", PRINTED_MRZ, "--csca", trust / "csca.pem")
    output = read_json(pcsc_stack, card_slot, EmrtdChip.from_image(PASSPORT), *args)
    assert output["kind"] == "passport"
    assert results(output) == dict.fromkeys(PA_CHECKS, "pass")  # the CRL is in csca.pem
    assert output["document"] == {
        "kind": "passport",
        "document_type": "P",
        "issuing_state": "UTO",
        "nationality": "UTO",
        "number": "L898902C3",
        "expiry_date": "2012-04-15",
        "birth_year": 1974,
    }
    assert output["holder"]["face"] == {
        "format": "jpeg",
        "media_type": "image/jpeg",
        "width": 300,
        "height": 400,
        "bytes": output["holder"]["face"]["bytes"],
    }
    assert output["source"] == "DG1"
    # SELECT CBIC (refused), then BAC and EF.COM, DG1, DG2, SOD in short reads
    assert output["apdus"] > 1 + 3 + 4 * 2 and output["bytes"] > 7000
    validate("crossing", as_crossing(output))

    text = card_read(pcsc_stack, *args)
    assert text.returncode == 0 and text.stderr == ""
    lines = text.stdout.splitlines()
    assert lines[0] == "ePassport L898902C3 (type P), issued by UTO"
    assert "  given names  ANNA MARIA" in lines
    assert any(line.startswith("  face         JPEG, 300x400, ") for line in lines)
    assert "11 checks: 11 pass" in lines


def test_without_csca_the_chain_check_says_none_was_given(
    pcsc_stack: PcscStack, card_slot: CardSlot
) -> None:
    chip = EmrtdChip.from_image(PASSPORT)
    output = read_json(pcsc_stack, card_slot, chip, "--mrz", SPECIMEN_MRZ)  # joined: one line
    checks = {check["name"]: check for check in output["checks"]}
    assert failed(output) == ["ds_certificate_chain"]
    assert checks["ds_certificate_chain"]["detail"].startswith("no CSCA was given")
    for name in ("csca_certificate_validity", "ds_certificate_revocation"):
        assert checks[name] == {"name": name, "result": "skipped", "detail": "no CSCA was given"}


TAMPERED_PASSPORTS = [
    pytest.param("altered-dg1", ["dg1_hash", "dg1_matches_printed_mrz"], id="altered DG1"),
    pytest.param("unknown-csca", ["ds_certificate_chain"], id="unknown CSCA"),
    pytest.param("expired-ds", ["ds_certificate_validity"], id="expired DS"),
    pytest.param("ds-country", ["ds_country_matches_issuer"], id="DS of another country"),
]


@pytest.mark.parametrize(("tamper", "checks"), TAMPERED_PASSPORTS)
def test_a_tampered_passport_names_exactly_its_failing_checks(
    pcsc_stack: PcscStack, card_slot: CardSlot, trust: Path, tamper: str, checks: list[str]
) -> None:
    if tamper == "altered-dg1":
        image, chip = PASSPORT, EmrtdChip.from_image(PASSPORT, tamper=tamper)
    else:
        image = issue_passport_image(PRINTED_MRZ, pki=PKI, tamper=tamper)
        chip = EmrtdChip.from_image(image)
    args = ("--mrz", image.printed_mrz, "--csca", trust / "csca.pem")
    output = read_json(pcsc_stack, card_slot, chip, *args)
    assert failed(output) == checks
    expected = dict.fromkeys(PA_CHECKS, "pass") | dict.fromkeys(checks, "fail")
    if tamper == "unknown-csca":  # what needs the issuing CSCA cannot be done without it
        expected |= dict.fromkeys(
            ["csca_certificate_validity", "ds_certificate_revocation"], "skipped"
        )
    assert results(output) == expected


def test_a_passport_with_a_wrong_mac_fails_the_read_in_one_line(
    pcsc_stack: PcscStack, card_slot: CardSlot
) -> None:
    card_slot.put(EmrtdChip.from_image(PASSPORT, tamper="wrong-mac"))
    error = one_line_error(card_read(pcsc_stack, "--mrz", PRINTED_MRZ), 1)
    assert "secure messaging failed: the response MAC is wrong" in error


def test_a_passport_that_refuses_the_mrz_keys_says_bac_refused(
    pcsc_stack: PcscStack, card_slot: CardSlot
) -> None:
    card_slot.put(EmrtdChip.from_image(PASSPORT, tamper="wrong-mrz"))
    error = one_line_error(card_read(pcsc_stack, "--mrz", PRINTED_MRZ), 1)
    assert error.startswith("Error: BAC refused: EXTERNAL AUTHENTICATE answered 6300")
    assert error.endswith("is --mrz this passport's MRZ?")
    assert "ERIKSSON" not in error  # no personal data in the error


def test_a_misread_mrz_is_named_as_the_likely_cause(
    pcsc_stack: PcscStack, card_slot: CardSlot
) -> None:
    card_slot.put(EmrtdChip.from_image(PASSPORT))
    misread = PRINTED_MRZ.replace("1204159", "1204169")  # an OCR slip in the expiry date
    error = one_line_error(card_read(pcsc_stack, "--mrz", misread), 1)
    assert error.startswith("Error: BAC refused: ")
    assert "the --mrz check digits fail (expiry_date" in error


def test_a_passport_without_mrz_is_a_usage_error(
    pcsc_stack: PcscStack, card_slot: CardSlot
) -> None:
    card_slot.put(EmrtdChip.from_image(PASSPORT))
    error = one_line_error(card_read(pcsc_stack), 2)
    assert (
        error == "Error: the card is an ePassport: give its printed MRZ with --mrz to open the chip"
    )


def test_a_card_that_is_neither_fails_in_one_line(
    pcsc_stack: PcscStack, card_slot: CardSlot
) -> None:
    card_slot.put(IsoCard())
    error = one_line_error(card_read(pcsc_stack), 1)
    assert error == (
        f"Error: the card is neither a CBIC nor an ePassport (SELECT answered "
        f"{StatusWord.FILE_NOT_FOUND})"
    )


# -- no card, bad arguments --------------------------------------------------------------------


def test_no_card_within_the_timeout_exits_3(pcsc_stack: PcscStack) -> None:
    empty = pcsc_stack.reader_names[0]
    wait_for_card(empty, present=False)
    started = time.monotonic()
    error = one_line_error(card_read(pcsc_stack, reader=empty, timeout=0.5), 3)
    assert error == f"Error: no card in {empty} within 0.5 s"
    assert time.monotonic() - started < 5
    error = one_line_error(card_read(pcsc_stack, reader="OMNIKEY", timeout=0.3), 3)
    assert error == "Error: no card reader matching 'OMNIKEY' appeared within 0.3 s"


def test_no_pcscd_exits_3_and_says_so(pcsc_stack: PcscStack, tmp_path: Path) -> None:
    env = pcsc_stack.env | {"PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")}
    result = subprocess.run(
        [str(EDGE), "card", "read", "--timeout", "0.5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    error = one_line_error(result, 3)
    assert error.startswith("Error: no card reader within 0.5 s: is pcscd running?")


def test_a_card_inserted_while_waiting_is_read(pcsc_stack: PcscStack, trust: Path) -> None:
    reader = pcsc_stack.reader_names[0]
    wait_for_card(reader, present=False)
    command = [str(EDGE), "card", "read", "--reader", reader, "--timeout", "10", "--json"]
    process = subprocess.Popen(
        [*command, "--issuers", str(trust / "issuer"), "--site", SITE],
        env=pcsc_stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.3)  # the command is waiting for events by now (or soon: no matter)
        with VpcdClient(CbicCard.from_image(WORKER_IMAGE), port=pcsc_stack.vpcd_port):
            out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert results(json.loads(out)) == dict.fromkeys(CBIC_CHECKS, "pass")
    wait_for_card(reader, present=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mrz", "NOT AN MRZ"], "Error: --mrz: "),
        (["--mrz", "V<UTOERIKSSON<<ANNA<MARIA" + "<" * 19 + SPECIMEN_MRZ[44:]], "Error: --mrz: "),
        (["--csca", "/nonexistent/csca.pem"], "Error: /nonexistent/csca.pem: no such file"),
        (["--issuers", "/nonexistent"], "Error: /nonexistent: "),
        (["--timeout", "0"], "Error: Invalid value for '--timeout'"),
        (["--bogus"], "Error: No such option '--bogus'"),
    ],
    ids=["not an MRZ", "visa MRZ", "missing CSCA", "missing issuers", "zero timeout", "option"],
)
def test_bad_arguments_exit_2_before_waiting_for_a_card(
    pcsc_stack: PcscStack, args: list[str], message: str
) -> None:
    started = time.monotonic()
    error = one_line_error(card_read(pcsc_stack, *args, timeout=20), 2)
    assert error.startswith(message), error
    assert time.monotonic() - started < 5


def test_help_shows_examples_with_the_virtual_cards(pcsc_stack: PcscStack) -> None:
    result = subprocess.run(
        [str(EDGE), "card", "read", "--help"], capture_output=True, text=True, check=True
    )
    assert "borderlane-edge sim issue-cbic" in result.stdout
    assert "borderlane-edge sim card --passport anna.json" in result.stdout
    assert "Exit status: 0 the card was read" in result.stdout


# -- pulled mid-read (last: the slot needs a presence poll to come back) -----------------------


@pytest.mark.parametrize(
    "card",
    [
        pytest.param(lambda: CbicCard.from_image(WORKER_IMAGE, pull_after=2), id="CBIC"),
        pytest.param(lambda: EmrtdChip.from_image(PASSPORT, pull_after=8), id="passport"),
    ],
)
def test_a_card_pulled_mid_read_fails_cleanly_without_hanging(
    pcsc_stack: PcscStack, card_slot: CardSlot, card: Any
) -> None:
    pulled = card()
    card_slot.put(pulled)
    started = time.monotonic()
    result = card_read(pcsc_stack, "--mrz", PRINTED_MRZ)
    elapsed = time.monotonic() - started
    error = one_line_error(result, 1)
    assert error == "Error: the card was removed during the read; put it back and try again"
    assert pulled.pulled and elapsed < 5, f"took {elapsed:.1f}s"
    assert card_slot.client is not None and not card_slot.client.inserted


def test_the_slot_reads_again_after_a_pull(
    pcsc_stack: PcscStack, card_slot: CardSlot, trust: Path
) -> None:
    args = ("--issuers", trust / "issuer", "--site", SITE)
    output = read_json(pcsc_stack, card_slot, CbicCard.from_image(WORKER_IMAGE), *args)
    assert results(output) == dict.fromkeys(CBIC_CHECKS, "pass")
