"""``borderlane-edge card``: read a CBIC or an ePassport chip the way the lane does, from the shell.

A thin layer: the kiosk's card reader driver (:mod:`edge.devices.card_reader`) finds the reader
and the card and carries the APDUs; :func:`edge.documents.card.read_card` reads and verifies
in a worker thread; :mod:`edge.trust` loads the issuer keys and CSCA certificates. This module
parses options, waits, and prints.

Personal data (names, dates, numbers) goes to standard output only; nothing here logs it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import click

from edge.devices.apdu_transport import ExchangeStats
from edge.devices.card_reader import (
    CardInserted,
    CardReader,
    CardReaderConfig,
    CardReaderError,
    CardRemovedError,
    CardTimeout,
    CardUnresponsive,
    PcscUnavailable,
    ReaderAdded,
    ReaderBusy,
    ReaderRemoved,
    ReaderUnavailable,
    WatcherStatusChanged,
)
from edge.documents.apdu import CommandApdu, ResponseApdu
from edge.documents.card import (
    BacRefused,
    CardDocument,
    CardReadError,
    MrzRequired,
    read_card,
)
from edge.documents.cbic import IssuerTrustList
from edge.documents.checks import CheckResult
from edge.documents.emrtd.bac import BacKeys
from edge.documents.mrz import MrzDocument, MrzError
from edge.documents.mrz import parse as parse_mrz
from edge.trust import TrustStoreError, load_csca_store, load_trust_list

from .common import BadArgument, OneLineErrors

__all__ = ["card"]

#: Exit statuses of ``card read``.
EXIT_READ, EXIT_FAILED, EXIT_USAGE, EXIT_NO_CARD = 0, 1, 2, 3

card = click.Group("card", help="Smart cards: read a CBIC or an ePassport chip and verify it.")


class ReadFailed(click.ClickException):
    """The card appeared but could not be read to the end: one line, exit status 1."""

    exit_code = EXIT_FAILED


class NoCard(click.ClickException):
    """No reader or no card within the timeout: one line, exit status 3."""

    exit_code = EXIT_NO_CARD


@dataclass(frozen=True)
class _Outcome:
    reader: str
    document: CardDocument
    stats: ExchangeStats
    elapsed: float


Transmit = Callable[[CommandApdu], ResponseApdu]


@card.command("read", cls=OneLineErrors)
@click.option(
    "--reader",
    "reader_pattern",
    metavar="NAME",
    help="Which reader: part of its name (any case), a glob, or =EXACT NAME. "
    "[default: the first reader a card is in]",
)
@click.option(
    "--mrz",
    "mrz_text",
    metavar="TEXT",
    help="The passport's printed MRZ (lines separated by newlines or spaces, or joined): "
    "the chip's BAC keys, and what DG1 must match. Required for an ePassport.",
)
@click.option(
    "--csca",
    "csca_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="CSCA certificates to trust for Passive Authentication: PEM or DER files, ICAO master "
    "lists (.ml), or directories of them; repeatable.",
)
@click.option(
    "--issuers",
    "issuers_path",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="CBIC issuer keys to trust: a directory of <key id>.pem, or a JSON trust list.",
)
@click.option(
    "--site",
    metavar="SITE",
    help="This lane's crossing point id (e.g. bz-santa-elena), for a CBIC's crossing_point "
    "check. [default: none; the check is skipped]",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="S",
    help="How long to wait for a reader and a card.",
)
@click.option(
    "--extended-length/--no-extended-length",
    default=None,
    help="Use extended APDUs with the card, or never. [default: as its ATR says]",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Log the reader and card events on standard error."
)
def read_command(
    reader_pattern: str | None,
    mrz_text: str | None,
    csca_paths: tuple[Path, ...],
    issuers_path: Path | None,
    site: str | None,
    as_json: bool,
    timeout: float,
    extended_length: bool | None,
    verbose: bool,
) -> None:
    """Wait for a card, read it, verify it, and print what it says and every check.

    Waits for a card reader and a card in it (a card already there counts), then
    reads it in an exclusive session: a Cross-Border Identification Card if it has
    the CBIC application, else an ePassport chip, opened with the keys of --mrz (BAC).
    A CBIC is checked against the issuer keys of --issuers, this lane's --site and
    today's date; an ePassport by Passive Authentication against the CSCAs of --csca,
    and DG1 is compared with --mrz. Without --issuers or --csca, the signature checks
    fail and say so. The face image is described (format, size), never printed.

    Exit status: 0 the card was read, whatever the checks say; 1 the read failed
    (card pulled, BAC refused...), one line on standard error; 2 a usage error (an
    ePassport without --mrz too); 3 no reader or no card within --timeout.

    \b
    Examples:
      borderlane-edge card read --issuers /etc/borderlane/cbic-issuers --site bz-santa-elena
      borderlane-edge card read --csca csca-uto.pem --mrz \\
          'P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<
           L898902C36UTO7408122F1204159ZE184226B<<<<<10'
      borderlane-edge card read --reader OMNIKEY --json --issuers issuers | jq '.checks[]'

    \b
    Without hardware (pcscd with vsmartcard-vpcd; the card in one terminal):
      borderlane-edge sim issue-cbic edge/sim/samples/resident-worker.json \\
          --issuer-dir issuer --out worker.json
      borderlane-edge sim card --cbic worker.json          # --tamper cloned, ...
      borderlane-edge card read --issuers issuer --site bz-santa-elena
      borderlane-edge sim issue-passport --pki-dir pki --out anna.json --mrz \\
          'P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<
           L898902C36UTO7408122F1204159ZE184226B<<<<<10'
      borderlane-edge sim card --passport anna.json        # --tamper altered-dg1, ...
      borderlane-edge card read --csca pki/csca.pem --mrz 'P<UTOERIKSSON<<...'
    """
    # The driver logs readers, ATRs and PC/SC trouble, never what a card holds; by default only
    # errors, so that a failure is the one line below.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    mrz = _parse_mrz(mrz_text)
    try:
        issuers = load_trust_list(issuers_path) if issuers_path else IssuerTrustList()
        cscas = load_csca_store(csca_paths)
    except TrustStoreError as error:
        raise BadArgument(str(error)) from None
    try:
        config = CardReaderConfig(
            readers=(reader_pattern,) if reader_pattern else (),
            extended_length=extended_length,
        )
    except ValueError as error:
        raise BadArgument(f"--reader: {error}") from None

    def read(transmit: Transmit, extended: bool) -> CardDocument:
        return read_card(
            transmit,
            issuers=issuers,
            site=site,
            today=date.today(),
            cscas=cscas,
            mrz=mrz,
            extended_length=extended,
        )

    try:
        outcome = asyncio.run(_read(config, timeout, reader_pattern, read))
    except BacRefused as error:
        raise ReadFailed(_bac_refused(error, mrz)) from None
    except click.ClickException:
        raise
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as error:  # a bug: still one line, never a traceback over personal data
        raise ReadFailed(f"internal error: {type(error).__name__}: {error}") from None
    if as_json:
        click.echo(json.dumps(_as_json(outcome), indent=2, ensure_ascii=False))
    else:
        for line in _as_text(outcome):
            click.echo(line)


def _parse_mrz(text: str | None) -> MrzDocument | None:
    if text is None:
        return None
    try:
        document = parse_mrz(text)
        BacKeys.from_mrz_document(document)  # an MRZ that opens no chip (a visa) fails here
    except (MrzError, ValueError) as error:
        raise BadArgument(f"--mrz: {error}") from None
    return document


def _bac_refused(error: BacRefused, mrz: MrzDocument | None) -> str:
    """The one line for a chip that refused the MRZ's keys, with the likeliest reason."""
    failed = [name for name, ok in (mrz.checks.items() if mrz else ()) if not ok]
    if failed:
        hint = f"the --mrz check digits fail ({', '.join(failed)}): is it misread?"
    else:
        hint = "is --mrz this passport's MRZ?"
    return f"BAC refused: {error}; {hint}"


# -- waiting and reading ---------------------------------------------------------------------


async def _read(
    config: CardReaderConfig,
    timeout: float,
    pattern: str | None,
    read: Callable[[Transmit, bool], CardDocument],
) -> _Outcome:
    """Wait for a card, read it in an exclusive session; errors become one-line exceptions."""
    reader = CardReader(config)
    async with reader:
        name = await _wait_for_card(reader, timeout, pattern)
        started = time.perf_counter()
        try:
            async with reader.session(name) as session:
                extended = session.capabilities.extended_length
                document = await asyncio.to_thread(read, session.transmit, extended)
                elapsed = time.perf_counter() - started
                return _Outcome(name, document, session.stats.copy(), elapsed)
        except MrzRequired:
            raise BadArgument(
                "the card is an ePassport: give its printed MRZ with --mrz to open the chip"
            ) from None
        except BacRefused:
            raise
        except CardReadError as error:
            raise ReadFailed(str(error)) from None
        except CardReaderError as error:
            raise ReadFailed(_driver_failure(error)) from None


def _driver_failure(error: CardReaderError) -> str:
    """One line for what went wrong between the kiosk and the card."""
    if isinstance(error, CardRemovedError):
        return "the card was removed during the read; put it back and try again"
    if isinstance(error, CardTimeout):
        return f"the card stopped answering: {error}"
    if isinstance(error, CardUnresponsive):
        return f"the card does not answer: {error}"
    if isinstance(error, ReaderBusy):
        return f"the reader is in use by another application: {error}"
    if isinstance(error, ReaderUnavailable):
        return f"the card reader went away: {error}"
    if isinstance(error, PcscUnavailable):
        return f"pcscd went away: {error}"
    return f"communication with the card failed: {error}"


async def _wait_for_card(reader: CardReader, timeout: float, pattern: str | None) -> str:
    """The reader a card is in (already, or once inserted); :class:`NoCard` after ``timeout``."""
    readers: set[str] = set()
    status: WatcherStatusChanged | None = None
    try:
        async with asyncio.timeout(timeout):
            async for event in reader.events():
                match event:
                    case ReaderAdded(name):
                        readers.add(name)
                    case ReaderRemoved(name):
                        readers.discard(name)
                    case CardInserted(name, _, mute) if mute:
                        raise ReadFailed(f"the card in {name} does not answer to reset (mute)")
                    case CardInserted(name):
                        return name
                    case WatcherStatusChanged():
                        status = event
    except TimeoutError:
        pass
    else:
        raise NoCard("the card reader watcher stopped")
    wait = f"{timeout:g} s"
    if status is not None and status.state == "pcscd_unavailable":
        raise NoCard(f"no card reader within {wait}: is pcscd running? ({status.detail})")
    if not readers:
        matching = f" matching {pattern!r}" if pattern else ""
        raise NoCard(f"no card reader{matching} appeared within {wait}")
    raise NoCard(f"no card in {', '.join(sorted(readers))} within {wait}")


# -- printing ----------------------------------------------------------------------------------

_KIND_NAMES = {
    "cbic": "CBIC",
    "passport": "ePassport",
    "id_card": "eID card",
    "visa": "visa",
    "other": "eMRTD",
}


def _as_json(outcome: _Outcome) -> dict[str, Any]:
    document = outcome.document
    stats = outcome.stats
    return {
        "reader": outcome.reader,
        "kind": document.kind,
        "document": dict(document.document) if document.document is not None else None,
        "holder": dict(document.holder),
        "source": document.source,
        "checks": [check.to_json() for check in document.checks],
        "apdus": stats.apdus,
        "bytes": stats.bytes_sent + stats.bytes_received,
        "elapsed_ms": round(outcome.elapsed * 1000, 1),
    }


def _as_text(outcome: _Outcome) -> list[str]:
    document = outcome.document
    lines = _summary(document)
    lines.append("checks:")
    width = max((len(check.name) for check in document.checks), default=0)
    for check in document.checks:
        detail = f"  {check.detail}" if check.detail else ""
        lines.append(f"  {check.result!s:<7}  {check.name:<{width}}{detail}")
    counts: dict[str, int] = {}
    for check in document.checks:
        counts[str(check.result)] = counts.get(str(check.result), 0) + 1
    tally = ", ".join(f"{counts[r]} {r}" for r in map(str, CheckResult) if r in counts)
    lines.append(f"{len(document.checks)} checks: {tally}")
    stats = outcome.stats
    lines.append(
        f"read in {outcome.elapsed * 1000:.0f} ms: {stats.apdus} APDUs, "
        f"{stats.bytes_sent + stats.bytes_received:,} bytes, reader {outcome.reader}"
    )
    return lines


def _summary(document: CardDocument) -> list[str]:
    kind = _KIND_NAMES.get(document.kind, document.kind)
    summary = document.document
    if summary is None:
        return [f"{kind}: holder data unreadable (see holder_data_format)"]
    head = f"{kind} {summary['number']}"
    if summary.get("category"):
        head += f" ({summary['category']})"
    elif document.kind != "cbic":
        head += f" (type {summary['document_type']})"
    lines = [f"{head}, issued by {summary['issuing_state']}"]
    holder: Mapping[str, Any] = document.holder
    rows = [
        ("surname", holder.get("surname")),
        ("given names", holder.get("given_names") or "-"),
        ("born", f"{holder.get('date_of_birth') or 'unknown'}, sex {holder.get('sex') or '-'}"),
        ("nationality", summary["nationality"]),
    ]
    if document.kind == "cbic":
        rows += [
            ("community", holder.get("community")),
            ("valid at", ", ".join(holder.get("valid_at", ()))),
            ("valid", f"{holder.get('issue_date')} to {summary['expiry_date']}"),
        ]
    else:
        rows.append(("expires", summary["expiry_date"] or "no expiry date"))
        rows.append(("face", _face_text(holder.get("face") or {})))
        if document.source != "DG1":
            rows.append(("data from", document.source))
    lines += [f"  {label:<12} {value}" for label, value in rows]
    return lines


def _face_text(face: Mapping[str, Any]) -> str:
    if "error" in face:
        return f"unreadable: {face['error']}"
    names = {"jpeg": "JPEG", "jpeg2000": "JPEG 2000"}
    size = f"{face['width']}x{face['height']}, " if face.get("width") else ""
    return f"{names.get(face['format'], face['format'])}, {size}{face['bytes']:,} bytes"
