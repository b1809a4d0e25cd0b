"""``borderlane-edge sim``: virtual devices for development, demos and manual testing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import click

from edge.documents.cbic import CbicHolder
from edge.documents.emrtd.countries import issuer_matches
from edge.documents.emrtd.lds import ImageFormat, image_format
from edge.documents.mrz import MrzError
from edge.documents.mrz import parse as parse_mrz
from edge.sim.cards import DEMO_AID, IsoCard
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import IssueError as CbicIssueError
from edge.sim.cbic_issue import (
    IssuerKey,
    create_issuer,
    issue_card_file,
    load_card_image,
    load_issuer,
    save_card_image,
    save_issuer,
)
from edge.sim.emrtd_chip import (
    CHIP_TAMPERS,
    ISSUE_TAMPERS,
    EmrtdChip,
    IssueError,
    country_for_state,
    issue_passport_image,
    load_or_create_pki,
    load_passport_image,
    save_passport_image,
)
from edge.sim.mrz_reader import (
    SIM_FRAMINGS,
    NobodyReading,
    VirtualMrzReader,
    WireFormat,
    split_documents,
    synthetic_documents,
)
from edge.sim.population import DEFAULT_FILLER
from edge.sim.travellers import (
    DEFAULT_SITE,
    REMOVAL_GAP_S,
    LaneDriver,
    Population,
    PopulationError,
    make_population,
)
from edge.sim.vpcd import VPCD_DEFAULT_PORT, VirtualCard, VpcdClient, VpcdUnavailable

from .common import BadArgument, OneLineErrors

__all__ = ["sim"]

sim = click.Group(
    "sim",
    help="Virtual devices (vpcd cards, a pty MRZ reader) for development and demos.",
)


def _parse_aids(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[bytes, ...]:
    aids = []
    for value in values:
        try:
            aid = bytes.fromhex(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not hex") from None
        if not 5 <= len(aid) <= 16:
            raise click.BadParameter(f"{value!r}: an AID is 5..16 bytes, got {len(aid)}")
        aids.append(aid)
    return tuple(aids)


#: The issuer key id `sim issue-cbic` makes when its directory holds none.
DEFAULT_CBIC_ISSUER = "bz-cbic-test-1"
_CBIC_TAMPERS = ("bad-issuer-signature", "cloned")
_CHIP_TAMPERS = tuple(t.value for t in CHIP_TAMPERS)
_ISSUE_TAMPERS = tuple(t.value for t in ISSUE_TAMPERS)


@sim.command("card", cls=OneLineErrors)
@click.option("--host", default="127.0.0.1", show_default=True, help="Where vpcd listens.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=VPCD_DEFAULT_PORT,
    show_default=True,
    help="vpcd slot port (the second slot is port + 1).",
)
@click.option(
    "--aid",
    "aids",
    multiple=True,
    metavar="HEX",
    callback=_parse_aids,
    help=f"Minimal card: an application it holds; repeatable. [default: {DEMO_AID.hex().upper()}]",
)
@click.option(
    "--cbic",
    "cbic_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="IMAGE",
    help="Insert the CBIC of this card image (from `sim issue-cbic`).",
)
@click.option(
    "--passport",
    "passport_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="IMAGE",
    help="Insert the ePassport chip of this passport image (from `sim issue-passport`).",
)
@click.option(
    "--tamper",
    "tampers",
    multiple=True,
    type=click.Choice(_CBIC_TAMPERS + _CHIP_TAMPERS + _ISSUE_TAMPERS),
    metavar="DEFECT",
    help="Make the card misbehave; repeatable. CBIC: bad-issuer-signature, cloned. "
    "Passport: wrong-mac, wrong-mrz, altered-dg1 (unknown-csca, expired-ds and ds-country are "
    "made by `sim issue-passport --tamper`).",
)
@click.option(
    "--extended-length/--no-extended-length",
    default=True,
    show_default=True,
    help="Passport: take extended APDUs, or answer them 6700 as a chip without them does.",
)
@click.option(
    "--max-block",
    type=click.IntRange(1, 65536),
    metavar="N",
    help="Passport: the most bytes one READ BINARY returns; asking for more gets 6700.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every APDU.")
def card(
    host: str,
    port: int,
    aids: tuple[bytes, ...],
    cbic_path: Path | None,
    passport_path: Path | None,
    tampers: tuple[str, ...],
    extended_length: bool,
    max_block: int | None,
    verbose: bool,
) -> None:
    """Insert a virtual card into a running vpcd reader until Ctrl-C.

    By default a minimal ISO 7816-4 card: it answers SELECT by AID (9000, or 6A82 for
    an AID it does not hold) and GET CHALLENGE. With --cbic, a Cross-Border
    Identification Card; with --passport, an ePassport chip (BAC, secure messaging,
    EF.COM, DG1, DG2, EF.SOD). PC/SC applications see it in the reader "Virtual PCD 00 00"
    (port 35963) or "Virtual PCD 00 01" (port 35964) of Debian's vpcd setup.

    \b
    Examples:
      borderlane-edge sim card
      borderlane-edge sim card --port 35964          # the second slot
      borderlane-edge sim card --aid A0000002471001 --aid F0424C414E4501 -v
      borderlane-edge sim card --cbic worker.json
      borderlane-edge sim card --cbic worker.json --tamper cloned
      borderlane-edge sim card --passport anna.json --no-extended-length --max-block 223
      borderlane-edge sim card --passport anna.json --tamper altered-dg1
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    virtual, description = _card_to_insert(
        aids, cbic_path, passport_path, tampers, extended_length, max_block
    )
    client = VpcdClient(virtual, host, port)
    if isinstance(virtual, CbicCard | EmrtdChip):
        virtual.unplug = client.remove
    try:
        client.insert()
    except VpcdUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"card inserted into vpcd at {host}:{port} (ATR {virtual.atr.hex().upper()});")
    for line in description:
        click.echo(line)
    click.echo("press Ctrl-C to remove it")
    try:
        # Short waits keep Ctrl-C responsive whatever the platform's lock semantics.
        while not client.wait(0.5):
            pass
    except KeyboardInterrupt:
        client.remove()
        click.echo("card removed")
        return
    raise click.ClickException(f"vpcd at {host}:{port} closed the connection (pcscd stopped?)")


def _card_to_insert(
    aids: tuple[bytes, ...],
    cbic_path: Path | None,
    passport_path: Path | None,
    tampers: tuple[str, ...],
    extended_length: bool,
    max_block: int | None,
) -> tuple[VirtualCard, list[str]]:
    """The card ``sim card``'s options ask for, and lines describing it."""
    if cbic_path and passport_path:
        raise BadArgument("--cbic and --passport: one card at a time")
    if aids and (cbic_path or passport_path):
        raise BadArgument("--aid is for the minimal card; a CBIC or passport has its own AID")
    if passport_path is None and (not extended_length or max_block is not None):
        raise BadArgument("--no-extended-length and --max-block are for --passport")
    wrong = [t for t in tampers if t not in (_CBIC_TAMPERS if cbic_path else _CHIP_TAMPERS)]
    if cbic_path is None and passport_path is None and tampers:
        raise BadArgument("--tamper needs --cbic or --passport")
    if passport_path is not None and wrong:
        late = [t for t in wrong if t in _ISSUE_TAMPERS]
        if late:
            raise BadArgument(
                f"--tamper {late[0]} is made at issuance: "
                f"borderlane-edge sim issue-passport ... --tamper {late[0]}"
            )
        raise BadArgument(
            f"--tamper {wrong[0]} is for a CBIC; a passport takes {', '.join(_CHIP_TAMPERS)}"
        )
    if cbic_path is not None and wrong:
        raise BadArgument(
            f"--tamper {wrong[0]} is for a passport; a CBIC takes {', '.join(_CBIC_TAMPERS)}"
        )
    tampered = f" (tampered: {', '.join(tampers)})" if tampers else ""
    if cbic_path is not None:
        try:
            image = load_card_image(cbic_path)
            cbic = CbicCard.from_image(
                image,
                bad_issuer_signature="bad-issuer-signature" in tampers,
                cloned="cloned" in tampers,
            )
            number = CbicHolder.decode(image.holder_data).card_number
        except OSError as exc:
            raise BadArgument(f"--cbic {cbic_path}: {exc.strerror}") from None
        except ValueError as exc:  # not JSON, not a card image, holder data that does not decode
            raise BadArgument(f"--cbic {cbic_path}: {exc}") from None
        return cbic, [f"CBIC {number}{tampered}"]
    if passport_path is not None:
        try:
            passport = load_passport_image(passport_path)
            chip = EmrtdChip.from_image(
                passport, tamper=tampers, extended_length=extended_length, max_block=max_block
            )
        except IssueError as exc:
            raise BadArgument(f"--passport {passport_path}: {exc}") from None
        lengths = "extended length" if extended_length else "no extended length"
        block = f", at most {max_block} bytes per read" if max_block else ""
        return chip, [
            f"ePassport chip ({lengths}{block}){tampered}; its printed MRZ:",
            *(f"  {line}" for line in passport.printed_mrz.splitlines()),
        ]
    return IsoCard(aids or (DEMO_AID,)), []


@sim.command("issue-cbic", cls=OneLineErrors)
@click.argument("holder", type=click.Path(dir_okay=False, path_type=Path), metavar="HOLDER.json")
@click.option(
    "--issuer-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="The issuer's keys (<key id>.key, .pem); a new key is made there the first time.",
)
@click.option(
    "--key-id",
    metavar="ID",
    help="Which issuer key in DIR signs (made if absent). "
    f"[default: the only one, or {DEFAULT_CBIC_ISSUER}]",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="IMAGE",
    help="The card image to write (JSON; it holds the card's private key).",
)
def issue_cbic(holder: Path, issuer_dir: Path, key_id: str | None, out: Path) -> None:
    """Issue a CBIC: sign the holder data of HOLDER.json and write a card image.

    HOLDER.json names the profile's fields (see edge/sim/samples/*.json, and a
    "portrait" image file beside it if the card carries one). The card key is made
    now. The kiosk trusts the issuer through DIR's .pem files.

    \b
    Examples:
      borderlane-edge sim issue-cbic edge/sim/samples/resident-worker.json \\
          --issuer-dir ~/borderlane/issuer --out worker.json
      borderlane-edge sim card --cbic worker.json
    """
    issuer, new = _cbic_issuer(issuer_dir, key_id)
    try:
        image = issue_card_file(holder, issuer)
    except OSError as exc:
        raise BadArgument(f"{exc.filename or holder}: {exc.strerror}") from None
    except CbicIssueError as exc:
        raise BadArgument(f"{holder}: {exc}") from None
    try:
        if new:  # kept only once it has signed a card: a bad holder file leaves DIR as it was
            save_issuer(issuer, issuer_dir)
            click.echo(f"created issuer key {issuer_dir / issuer.key_id}.key")
        save_card_image(image, out)
    except OSError as exc:
        raise click.ClickException(f"cannot write {exc.filename or out}: {exc.strerror}") from None
    number = CbicHolder.decode(image.holder_data).card_number
    click.echo(f"issued CBIC {number} signed by {issuer.key_id} -> {out}")
    click.echo(f"kiosk trust list: {issuer_dir / issuer.key_id}.pem")


def _cbic_issuer(directory: Path, key_id: str | None) -> tuple[IssuerKey, bool]:
    """The issuer key to sign with, and whether it is new (then the caller saves it)."""
    keys = sorted(directory.glob("*.key")) if directory.is_dir() else []
    if key_id is None and len(keys) > 1:
        names = ", ".join(k.stem for k in keys)
        raise BadArgument(f"--issuer-dir {directory} holds several keys ({names}): pick --key-id")
    if key_id is None and keys:
        key_id = keys[0].stem
    key_id = key_id or DEFAULT_CBIC_ISSUER
    path = directory / f"{key_id}.key"
    try:
        if path.exists():
            return load_issuer(path), False
        return create_issuer(key_id), True
    except CbicIssueError as exc:
        raise BadArgument(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"issuer key {path}: {exc.strerror}") from None


@sim.command("issue-passport", cls=OneLineErrors)
@click.option(
    "--mrz",
    "mrz_text",
    metavar="TEXT",
    help="The data page's MRZ: lines separated by newlines or spaces, or joined.",
)
@click.option(
    "--mrz-file",
    type=click.File("r"),
    metavar="FILE",
    help="Read the MRZ from FILE (- for standard input).",
)
@click.option(
    "--pki-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="The test PKI (csca.pem, ds.pem, keys); made there the first time, for the MRZ's "
    "issuing state.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="IMAGE",
    help="The passport image to write (JSON).",
)
@click.option(
    "--face",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="JPEG",
    help="The portrait for DG2, JPEG or JPEG 2000. [default: a synthetic specimen face]",
)
@click.option(
    "--tamper",
    "tampers",
    multiple=True,
    type=click.Choice(_ISSUE_TAMPERS),
    metavar="DEFECT",
    help="Issue a defective passport; repeatable: unknown-csca (signed under another CSCA), "
    "expired-ds (DS certificate expired), ds-country (issuing state is not the DS's country).",
)
def issue_passport(
    mrz_text: str | None,
    mrz_file: TextIO | None,
    pki_dir: Path,
    out: Path,
    face: Path | None,
    tampers: tuple[str, ...],
) -> None:
    """Issue an ePassport: EF.COM, DG1 (the MRZ), DG2 (a face), EF.SOD signed by a test DS.

    The chip's BAC keys come from the MRZ. The first run makes a test CSCA and Document
    Signer in --pki-dir for the MRZ's issuing state (one directory per issuing state); the
    kiosk trusts the passports through the CSCA certificate it prints.

    \b
    Examples:
      borderlane-edge sim issue-passport --pki-dir ~/borderlane/pki --out anna.json \\
          --mrz 'P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<
                 L898902C36UTO7408122F1204159ZE184226B<<<<<10'
      borderlane-edge sim issue-passport --pki-dir ~/borderlane/pki --mrz-file anna.mrz \\
          --face portrait.jpg --out anna.json
      borderlane-edge sim issue-passport --pki-dir ~/borderlane/pki --mrz-file anna.mrz \\
          --tamper expired-ds --out expired.json
      borderlane-edge sim card --passport anna.json
    """
    if (mrz_text is None) == (mrz_file is None):
        raise BadArgument("give the MRZ with --mrz TEXT or --mrz-file FILE (one of them)")
    text = mrz_text if mrz_text is not None else mrz_file.read()  # type: ignore[union-attr]
    try:
        document = parse_mrz(text)
    except MrzError as exc:
        raise BadArgument(f"MRZ: {exc}") from None
    portrait = None
    if face is not None:
        try:
            portrait = face.read_bytes()
        except OSError as exc:
            raise BadArgument(f"--face {face}: {exc.strerror}") from None
        if image_format(portrait) is ImageFormat.UNKNOWN:
            raise BadArgument(f"--face {face}: not a JPEG or JPEG 2000 image")
    try:
        pki, created = load_or_create_pki(pki_dir, country_for_state(document.issuing_state))
    except IssueError as exc:
        raise BadArgument(f"--pki-dir: {exc}") from None
    if not issuer_matches(pki.country, document.issuing_state) and "ds-country" not in tampers:
        raise BadArgument(
            f"the PKI in {pki_dir} signs for {pki.country}, the MRZ's issuing state is "
            f"{document.issuing_state}: use one --pki-dir per issuing state"
        )
    try:
        image = issue_passport_image(text, pki=pki, face=portrait, tamper=tampers)
    except IssueError as exc:
        raise BadArgument(str(exc)) from None
    try:
        save_passport_image(image, out)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    made = "created" if created else "using"
    defects = f" (defects: {', '.join(tampers)})" if tampers else ""
    click.echo(f"issued ePassport {document.document_number}{defects} -> {out}")
    click.echo(f"{made} the test PKI of {pki.country} in {pki_dir}")
    click.echo(f"CSCA certificate for the kiosk (--csca): {(pki_dir / 'csca.pem').resolve()}")


def _parse_hex(ctx: click.Context, param: click.Parameter, value: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not hex (e.g. 1B4D)") from None


@sim.command("mrz-reader")
@click.option(
    "--link",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also name the device with this symlink, as udev does (/dev/serial/by-id/...).",
)
@click.option(
    "--framing",
    type=click.Choice(SIM_FRAMINGS),
    default="crlf",
    show_default=True,
    help="Line endings, or STX ... ETX around each document (CR between its lines).",
)
@click.option("--joined", is_flag=True, help="Send each MRZ as one line (88, 72 or 90 chars).")
@click.option(
    "--prefix",
    metavar="HEX",
    default="",
    callback=_parse_hex,
    help="Vendor bytes before each document.",
)
@click.option(
    "--suffix",
    metavar="HEX",
    default="",
    callback=_parse_hex,
    help="Vendor bytes after each document.",
)
@click.option("--chunk", type=click.IntRange(min=1), metavar="N", help="Write N bytes at a time.")
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="S",
    help="Seconds between chunks.",
)
@click.option(
    "--noise",
    type=click.FloatRange(0, 1),
    default=0.0,
    metavar="P",
    help="Probability of an OCR confusion (O/0, I/1...) per character and of garbage "
    "before a document.",
)
@click.option(
    "--every",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    metavar="S",
    help="Seconds between documents.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="Exit after N documents. Default: each given document once, then wait for Ctrl-C; "
    "generated travellers forever.",
)
@click.option("--seed", type=int, help="Repeatable noise and travellers.")
@click.argument("files", nargs=-1, type=click.File("r"), metavar="[MRZ-FILE|-]...")
def mrz_reader(
    link: Path | None,
    framing: str,
    joined: bool,
    prefix: bytes,
    suffix: bytes,
    chunk: int | None,
    delay: float,
    noise: float,
    every: float,
    count: int | None,
    seed: int | None,
    files: tuple[TextIO, ...],
) -> None:
    """Play a serial MRZ reader on a pseudo-terminal until Ctrl-C (which unplugs it).

    Prints the device to open, waits until a program opens it, then sends a document every
    --every seconds: those in MRZ-FILEs (several per file, separated by blank lines; - reads
    stdin), or else the ICAO specimens followed by made-up travellers.

    \b
    Examples:
      borderlane-edge sim mrz-reader
      borderlane-edge sim mrz-reader --link /tmp/serial/by-id/usb-Acme_MRZ-if00
      borderlane-edge sim mrz-reader --framing stx-etx --prefix 1B4D --every 0.5
      borderlane-edge sim mrz-reader --chunk 7 --delay 0.01 --noise 0.05 --seed 1
      printf 'P<UTO...\\nL898...\\n' | borderlane-edge sim mrz-reader --count 1 -
    """
    wire = WireFormat(framing, joined, prefix, suffix)
    documents: Iterator[str] = synthetic_documents(seed)
    if files:
        given = [document for f in files for document in split_documents(f.read())]
        if not given:
            raise click.ClickException("no MRZ in the given files")
        documents = iter(given)
    # A technician watches this live, often through a pipe (| tee): one line per event.
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    try:
        reader = VirtualMrzReader(wire, link=link, chunk=chunk, delay=delay, noise=noise, seed=seed)
    except OSError as exc:
        raise click.ClickException(f"cannot plug the reader in: {exc}") from None
    # SIGTERM (systemd, `kill`) unplugs cleanly too: the link must not be left dangling.
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    interrupted = False
    try:
        wait_at_end = bool(files) and count is None
        interrupted = _play(reader, documents, every, count, wait_at_end=wait_at_end)
    finally:
        if not interrupted:  # else keep ignoring Ctrl-C: the process is on its way out
            for number, handler in handlers.items():
                signal.signal(number, handler)
    click.echo("unplugged")


def _play(
    reader: VirtualMrzReader,
    documents: Iterator[str],
    every: float,
    count: int | None,
    *,
    wait_at_end: bool,
) -> bool:
    """Send the documents until done or Ctrl-C (then True), and unplug."""
    wire = reader.wire
    with reader:
        click.echo(f"MRZ reader on {reader.device}")
        config = f"port={reader.device!r}, framing={wire.driver_framing!r}"
        config += f", prefix=bytes.fromhex({wire.prefix.hex()!r})" if wire.prefix else ""
        config += f", suffix=bytes.fromhex({wire.suffix.hex()!r})" if wire.suffix else ""
        click.echo(f"driver: MrzReaderConfig({config}); Ctrl-C unplugs")
        try:
            _feed(reader, documents, every, count)
            if wait_at_end:
                click.echo("every document sent; Ctrl-C unplugs")
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            # A second Ctrl-C must not cut the unplugging short and leave the link behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            return True
        except NobodyReading as exc:
            raise click.ClickException(str(exc)) from None
    return False


def _feed(
    reader: VirtualMrzReader, documents: Iterator[str], every: float, count: int | None
) -> None:
    for sent, document in enumerate(documents, start=1):
        if not reader.is_open():
            click.echo(f"waiting for a program to open {reader.device}")
            reader.wait_open()
        size = reader.send(document)
        first_line = document.splitlines()[0] if document else ""
        click.echo(f"sent document {sent} ({size} bytes): {first_line}")
        time.sleep(every)  # also gives the last document time to be read before an exit
        if count is not None and sent >= count:
            return


# -- synthetic travellers -------------------------------------------------------------------------


def _share_option(name: str, default: float, help: str) -> Callable[[Any], Any]:
    """A population share: a fraction of the travellers, 0..1."""
    return click.option(
        name,
        type=click.FloatRange(0, 1),
        default=default,
        show_default=True,
        metavar="SHARE",
        help=help,
    )


@sim.command("population", cls=OneLineErrors)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="A new directory for the population (refused if it already holds one).",
)
@click.option(
    "--size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="How many travellers.",
)
@click.option("--seed", type=int, required=True, help="The same seed makes the same people.")
@_share_option("--watchlisted", 0.05, "Share on the watchlist (actions refer, deny, alert).")
@_share_option("--passports", 0.3, "Share with an ePassport (the others carry a CBIC).")
@_share_option("--expired", 0.03, "Share with an expired document.")
@_share_option("--wrong-site", 0.03, "Share with a CBIC valid only at other crossings.")
@click.option(
    "--site",
    default=DEFAULT_SITE,
    show_default=True,
    help="The crossing point the lane stands at (its config's lane.site).",
)
@click.option(
    "--filler",
    type=click.IntRange(min=0),
    default=DEFAULT_FILLER,
    show_default=True,
    help="Persons on the watchlist besides the listed travellers (namesakes to tell apart).",
)
def population(
    out: Path,
    size: int,
    seed: int,
    watchlisted: float,
    passports: float,
    expired: float,
    wrong_site: float,
    site: str,
    filler: int,
) -> None:
    """Make a population of synthetic travellers for simulated lanes (`sim travellers`).

    Writes DIR/travellers.jsonl (who carries which document, and what the lane should
    decide), DIR/watchlist.jsonl (the listed travellers and filler, for `watchlist
    import`), the kiosk's trust files under DIR/trust/ and the issuers' private keys under
    DIR/issuer/. Most travellers pass; the others are listed, expired or at the wrong site.

    \b
    Examples:
      borderlane-edge sim population --out pop --size 500 --seed 7
      borderlane-edge sim population --out pop --seed 7 --watchlisted 0.2 --passports 0.5
      borderlane-edge watchlist import --db watchlist.db pop/watchlist.jsonl
      borderlane-edge card read --issuers pop/trust/cbic-issuers --csca pop/trust/csca
    """
    try:
        made = make_population(
            out,
            size,
            seed=seed,
            watchlisted=watchlisted,
            passports=passports,
            expired=expired,
            wrong_site=wrong_site,
            site=site,
            filler=filler,
        )
    except PopulationError as exc:
        raise BadArgument(str(exc)) from None
    counts = made.counts
    click.echo(
        f"{size} travellers in {out}: {counts.get('cbic', 0)} CBIC, "
        f"{counts.get('passport', 0)} passport; expected {counts['pass']} pass, "
        f"{counts['listed']} listed, {counts['expired']} expired, "
        f"{counts['wrong_site']} wrong site"
    )
    click.echo(f"travellers:         {made.travellers_path}")
    click.echo(
        f"watchlist:          {made.watchlist_path} ({counts['listed']} listed, "
        f"{counts['filler_persons']} filler persons, {counts['filler_documents']} documents)"
    )
    click.echo(f"CBIC trust list:    {made.cbic_trust_dir}")
    click.echo(f"CSCA certificates:  {made.csca_dir}")
    click.echo(f"lane site:          {made.site}")


@sim.command("travellers", cls=OneLineErrors)
@click.option(
    "--population",
    "population_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="A population made by `sim population`.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Where vpcd listens.")
@click.option(
    "--vpcd-port",
    type=click.IntRange(1, 65535),
    default=VPCD_DEFAULT_PORT,
    show_default=True,
    help="The kiosk's card reader: its vpcd slot port.",
)
@click.option(
    "--mrz-link",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Plug a virtual MRZ reader in here (a symlink to a pty; name it in the kiosk's "
    "config). Needed when the population has passports.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    metavar="S",
    help=f"Seconds the reader stays empty between travellers (at least {REMOVAL_GAP_S}).",
)
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Stop after N travellers.")
@click.option(
    "--dwell",
    type=click.FloatRange(min=0, min_open=True),
    default=0.5,
    show_default=True,
    metavar="S",
    help="Seconds a card stays on the reader once the kiosk reads it.",
)
@click.option(
    "--chip-dwell",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    metavar="S",
    help="Seconds a passport stays on the reader once the kiosk reads it.",
)
@click.option(
    "--read-wait",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    metavar="S",
    help="Seconds a traveller waits for the kiosk to start reading before taking the "
    "document back.",
)
@click.option(
    "--pull-early",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    metavar="SHARE",
    help="Share of travellers who take their document away mid-read.",
)
@click.option("--seed", type=int, help="Walk the travellers in a random order (per seed).")
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Append one JSON line per traveller (number, kind, expected outcome; no personal data).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what the driver does.")
def travellers(
    population_dir: Path,
    host: str,
    vpcd_port: int,
    mrz_link: Path | None,
    interval: float,
    count: int | None,
    dwell: float,
    chip_dwell: float,
    read_wait: float,
    pull_early: float,
    seed: int | None,
    log_path: Path | None,
    verbose: bool,
) -> None:
    """Walk a population's travellers up to one kiosk's card and MRZ readers.

    A CBIC holder puts the card on the vpcd reader; a passport holder scans the data page on
    the virtual MRZ reader at --mrz-link, then puts the passport on the card reader. Runs
    until Ctrl-C, SIGTERM or --count, takes the last card away, unplugs the MRZ reader, and
    prints a one-line summary.

    \b
    Examples:
      borderlane-edge sim travellers --population pop --vpcd-port 35963 \\
          --mrz-link /tmp/kiosk-1/usb-Sim_MRZ-if00
      borderlane-edge sim travellers --population pop --vpcd-port 35964 \\
          --mrz-link /tmp/kiosk-2/mrz --interval 2 --seed 2 --log kiosk-2.jsonl
      borderlane-edge sim travellers --population pop --vpcd-port 35963 \\
          --mrz-link /tmp/k1/mrz --count 20 --pull-early 0.05
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        loaded = Population.load(population_dir)
        holders = sum(t.kind == "passport" for t in loaded.travellers)
        if holders and mrz_link is None:
            raise BadArgument(
                f"{population_dir} has {holders} passport holders: give --mrz-link PATH "
                "for their MRZ reader"
            )
        driver = LaneDriver(
            loaded,
            host=host,
            vpcd_port=vpcd_port,
            mrz_link=mrz_link,
            interval_s=interval,
            dwell_s=dwell,
            chip_dwell_s=chip_dwell,
            read_wait_s=read_wait,
            count=count,
            seed=seed,
            pull_early=pull_early,
            log_path=log_path,
        )
    except (PopulationError, ValueError) as exc:
        raise BadArgument(str(exc)) from None
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    where = f"; MRZ reader at {mrz_link}" if mrz_link else ""
    click.echo(
        f"walking {len(loaded.travellers)} travellers to vpcd {host}:{vpcd_port}{where}; "
        "Ctrl-C stops"
    )
    try:
        asyncio.run(_walk(driver))
    except OSError as exc:  # the MRZ link cannot be made, the log cannot be written...
        message = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
        raise click.ClickException(message) from None
    except PopulationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(driver.summary())


async def _walk(driver: LaneDriver) -> None:
    """Run the driver; SIGINT and SIGTERM stop it cleanly (card out, reader unplugged)."""
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, driver.stop)
    try:
        await driver.run()
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
