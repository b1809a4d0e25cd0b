"""``borderlane-console watchlist ...``: signing keys, signed versions, publishing, catch-ups.

Signing is the console's job: ``keygen``, ``diff`` and ``sign`` make keys, changes and signed
chunks from list files offline (a thin layer over :mod:`mqtt_schemas.watchlist`, where what is
signed is defined once for both sides); ``publish``, ``status`` and ``serve`` keep the fleet's
versions (over :mod:`console.watchlist`). Every failure is one line and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from mqtt_schemas import PayloadError, TopicError
from mqtt_schemas.list_formats import FORMATS
from mqtt_schemas.trust import TrustedKey, TrustError, sign_trust_update
from mqtt_schemas.validation import JsonError, parse_json
from mqtt_schemas.watchlist import (
    KEY_ID,
    MAX_CHUNK_CHANGES,
    WatchlistError,
    diff,
    list_entries,
    load_private_key,
    load_public_key,
    make_chunks,
    sign_chunks,
    sign_file,
    snapshot_changes,
    write_key_pair,
)

from .. import connection
from ..store import StoreError, describe, open_database
from ..watchlist import (
    DEFAULT_GROUP,
    CatchupLimiter,
    CatchupResponder,
    WatchlistHistory,
    WatchlistPublisher,
    WatchlistSetupError,
    publish_trust,
)
from .options import (
    EXISTING_FILE,
    broker_options,
    configure_logging,
    db_option,
    one_line_errors,
    run_until_stopped,
)

__all__ = ["watchlist"]

F = TypeVar("F", bound=Callable[..., Any])

_one_line_errors = one_line_errors(
    WatchlistSetupError, WatchlistError, StoreError, TopicError, ValueError
)
_broker_options = broker_options(node_id_use="stamped on the watchlist messages it sends")


_db_option = db_option("the watchlist history lives there")

_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="The list files' format: jsonl, csv, un-xml (the UN Security Council Consolidated "
    "List), ftm (OpenSanctions / FollowTheMoney entities) [default: from each file's name "
    "and first bytes].",
)


def _key_options(command: F) -> F:
    command = click.option(
        "--key-id", required=True, help="The id kiosks trust the signing key under."
    )(command)
    return click.option(
        "--signing-key",
        required=True,
        type=EXISTING_FILE,
        help="Ed25519 private key (PEM), kept apart from every TLS key "
        "(make one with 'borderlane-console watchlist keygen').",
    )(command)


def _publisher(history: WatchlistHistory, signing_key: Path, key_id: str, node: str, **kw: Any):
    if not KEY_ID.fullmatch(key_id):
        raise WatchlistSetupError(f"key id {key_id!r}: 1-64 of A-Z a-z 0-9 . _ -")
    key = load_private_key(signing_key.read_bytes())
    return WatchlistPublisher(history, key, key_id, node_id=node, **kw)


@click.group("watchlist")
def watchlist() -> None:
    """Signed watchlist versions: make keys and deltas, publish them, answer catch-ups.

    \b
    Examples:
      borderlane-console watchlist keygen --key-id wl-2026a --out keys/
      borderlane-console watchlist diff v1.jsonl v2.jsonl > changes.jsonl
      borderlane-console watchlist sign --key keys/wl-2026a.key.pem --key-id wl-2026a \\
          --from-version 1 changes.jsonl > delta-1-2.jsonl
      borderlane-console watchlist publish --db console.db --signing-key wl.key.pem \\
          --key-id wl-2026a --broker broker:8884 --cafile ca.crt --cert console.crt \\
          --key console.key lists/national.jsonl
      borderlane-console watchlist status --db console.db
      borderlane-console watchlist serve --db console.db --signing-key wl.key.pem \\
          --key-id wl-2026a --broker broker:8884 --cafile ca.crt --cert console.crt \\
          --key console.key
    """


@watchlist.command("publish")
@_db_option
@_key_options
@_broker_options
@click.option(
    "--snapshot/--no-snapshot",
    default=None,
    help="Keep a snapshot of the new version [default: every 50 versions, or when due].",
)
@click.option("--max-changes", default=5000, show_default=True, type=click.IntRange(1, 5000))
@_format_option
@click.argument("list_file", metavar="LIST.jsonl", type=EXISTING_FILE)
@_one_line_errors
def publish_command(
    db: str,
    signing_key: Path,
    key_id: str,
    endpoint: connection.Endpoint,
    node_id: str,
    snapshot: bool | None,
    max_changes: int,
    fmt: str | None,
    list_file: Path,
) -> None:
    """Make LIST.jsonl the fleet's watchlist: the next version, signed, stored, broadcast.

    LIST holds the whole list, one entry per line (the kiosk's list-file format: JSON Lines,
    or CSV when its name ends in .csv), or is the UN consolidated list (XML) or OpenSanctions
    / FollowTheMoney entities (see 'watchlist diff --help'). The
    changes from the current version are signed as a delta (version 1 is a snapshot), stored
    for catch-ups, broadcast to every kiosk, and announced in the retained manifest. An
    unchanged list publishes nothing new.

    \b
    Example:
      borderlane-console watchlist publish --db console.db --signing-key wl.key.pem \\
          --key-id wl-2026a --broker broker:8884 --cafile ca.crt --cert console.crt \\
          --key console.key lists/national.jsonl
    """
    with list_file.open("rb") as handle:
        entries = list(list_entries(handle, str(list_file), fmt))
    history = WatchlistHistory(db)
    try:
        publisher = _publisher(history, signing_key, key_id, node_id, max_changes=max_changes)
        published = asyncio.run(_publish(publisher, endpoint, node_id, entries, snapshot))
    finally:
        history.close()
    click.echo(f"{published.describe()} ({len(entries)} entries)")


async def _publish(publisher, endpoint, node, entries, snapshot):
    mqtt = connection.client(
        endpoint,
        f"{node}-watchlist-publish-{uuid.uuid4().hex[:8]}",
        session_expiry=0,
        receive_maximum=16,
        manual_ack=False,
    )
    async with mqtt:
        return await publisher.publish_list(mqtt, entries, snapshot=snapshot)


@watchlist.command("status")
@_db_option
@_one_line_errors
def status_command(db: str) -> None:
    """Print the latest version (its manifest) and what history is kept, as JSON.

    \b
    Example:
      borderlane-console watchlist status --db console.db
    """
    open_database(db, readonly=True).dispose()  # "no console database at ..." if missing
    history = WatchlistHistory(db)
    try:
        status = history.status()
    finally:
        history.close()
    if status["manifest"] is None:
        raise click.ClickException(f"{describe(db)}: no watchlist published yet")
    click.echo(json.dumps(status, indent=2))


@watchlist.command("serve", short_help="Answer kiosks' catch-up requests (runs until stopped).")
@_db_option
@_key_options
@_broker_options
@click.option("--group", default=DEFAULT_GROUP, show_default=True, help="Shared subscription.")
@click.option("--client-id", help="MQTT client id (default: NODE-watchlist-GROUP).")
@click.option(
    "--chunks-per-hour",
    type=click.IntRange(1),
    default=5000,
    show_default=True,
    help="Most chunks one kiosk is sent in any hour.",
)
@click.option(
    "--snapshots-per-hour",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Most snapshots one kiosk is sent in any hour.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log MQTT traffic too.")
@_one_line_errors
def serve_command(
    db: str,
    signing_key: Path,
    key_id: str,
    endpoint: connection.Endpoint,
    node_id: str,
    group: str,
    client_id: str | None,
    chunks_per_hour: int,
    snapshots_per_hour: int,
    verbose: bool,
) -> None:
    """Answer kiosks' watchlist catch-ups from the stored history until SIGINT or SIGTERM.

    Each kiosk that asks gets, on its own deltas topic, the deltas it lacks or a snapshot
    then the deltas after it, within its hourly budget (a kiosk asking for the whole list
    again and again is not resent it). The signing key makes a fresh snapshot when a kiosk asks for
    one newer than the latest kept. Several may run with one --group: one answers each.
    On (re)connect it re-announces the latest manifest.

    \b
    Example:
      borderlane-console watchlist serve --db console.db --signing-key wl.key.pem \\
          --key-id wl-2026a --broker broker:8884 --cafile ca.crt --cert console.crt \\
          --key console.key &
    """
    configure_logging(verbose)
    history = WatchlistHistory(db)
    try:
        publisher = _publisher(history, signing_key, key_id, node_id)
        responder = CatchupResponder(
            history,
            endpoint,
            node_id=node_id,
            publisher=publisher,
            group=group,
            client_id=client_id,
            limiter=CatchupLimiter(
                chunks_per_hour=chunks_per_hour, snapshots_per_hour=snapshots_per_hour
            ),
        )
        run_until_stopped(responder.run)
    finally:
        history.close()


# ---------------------------------------------------------------------------------------------
# Offline: keys, changes and signed chunks as files (no database, no broker)


def _write_lines(items: Iterable[Any], output: IO[str]) -> None:
    for item in items:
        output.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")


_OUTPUT = click.option(
    "-o",
    "--output",
    type=click.File("w", lazy=True),  # lazy: a command that fails leaves no empty file behind
    default="-",
    help="Where to write [default: standard output].",
)


@watchlist.command("keygen")
@click.option("--key-id", help="Name of the key [default: wl-<fingerprint>].")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for KEY_ID.key.pem (mode 0600) and KEY_ID.pub.pem.",
)
@_one_line_errors
def keygen_command(key_id: str | None, out: Path) -> None:
    """Make an Ed25519 watchlist-signing key pair (never a TLS key); print its id and fingerprint.

    The private key stays on the console's signing host (publish and serve take it as
    --signing-key); kiosks are given the public key and trust it under its key id
    (their [watchlist] trusted_keys directory). An existing key is never overwritten.

    \b
    Example:
      borderlane-console watchlist keygen --key-id wl-2026a --out keys/
    """
    key_id, fingerprint = write_key_pair(out, key_id)
    click.echo(f"{key_id} {fingerprint}")


@watchlist.command("diff")
@click.argument("old", type=click.File("rb"))
@click.argument("new", type=click.File("rb"))
@_format_option
@_OUTPUT
@_one_line_errors
def diff_command(old: IO[bytes], new: IO[bytes], fmt: str | None, output: IO[str]) -> None:
    """The changes from list OLD to list NEW, one JSON change per line (unsigned).

    \b
    OLD and NEW are list files, each found from its name and first bytes (or as --format):
      jsonl   our JSON Lines, one entry per line
      csv     our CSV with a header row (*.csv)
      un-xml  the UN Security Council Consolidated List (consolidated.xml): individuals
              become persons un:REFERENCE_NUMBER and their documents; entities
              (organisations) are left out
      ftm     OpenSanctions / FollowTheMoney entities, one JSON object a line: Persons
              become os:ID, their Passport and Identification entities documents

    Adds and updates come in NEW's order, then removes. A bad record stops it, naming the
    file and line (or XML element): a signed delta is made from a whole list or not at all.
    Feed the result to 'watchlist sign'.

    \b
    Examples:
      borderlane-console watchlist diff lists-1287.jsonl lists-1288.jsonl > changes.jsonl
      borderlane-console watchlist diff consolidated-old.xml consolidated.xml -o changes.jsonl
      borderlane-console watchlist diff empty.jsonl entities.ftm.json > changes.jsonl
    """
    _write_lines(diff(list_entries(old, old.name, fmt), list_entries(new, new.name, fmt)), output)


@watchlist.command("sign")
@click.argument("changes", type=click.File("rb"))
@click.option(
    "--key",
    "key_path",
    required=True,
    type=EXISTING_FILE,
    help="The Ed25519 private key (PEM).",
)
@click.option("--key-id", required=True, help="The id kiosks trust the key under.")
@click.option("--from-version", type=click.IntRange(min=0), help="A delta from this version.")
@click.option(
    "--snapshot",
    "snapshot_version",
    type=click.IntRange(min=0),
    metavar="VERSION",
    help="A snapshot of this version instead (CHANGES is then a list file).",
)
@click.option(
    "--chunk-size",
    "max_changes",
    type=click.IntRange(1, MAX_CHUNK_CHANGES),
    default=MAX_CHUNK_CHANGES,
    show_default=True,
    help="Changes per chunk at most.",
)
@_format_option
@_OUTPUT
@_one_line_errors
def sign_command(
    changes: IO[bytes],
    key_path: Path,
    key_id: str,
    from_version: int | None,
    snapshot_version: int | None,
    max_changes: int,
    fmt: str | None,
    output: IO[str],
) -> None:
    """Cut a delta (or snapshot) into signed chunks, one chunk per line.

    With --from-version N, CHANGES is a changes file (from 'watchlist diff') and the chunks
    make the delta N -> N+1. With --snapshot V, CHANGES is a list file (any format 'watchlist
    diff' reads; --format names it) and the chunks make the snapshot of version V. Each
    chunk is signed over its canonical encoding and carries the digest of all the changes,
    so each is verifiable alone and none can be dropped, moved or swapped with another
    delta's unnoticed. A kiosk checks them with
    'borderlane-edge watchlist verify' or applies them with 'borderlane-edge watchlist apply'.

    \b
    Examples:
      borderlane-console watchlist sign --key wl-2026a.key.pem --key-id wl-2026a \\
          --from-version 1287 changes.jsonl > delta-1288.jsonl
      borderlane-console watchlist sign --key wl-2026a.key.pem --key-id wl-2026a \\
          --snapshot 1300 lists-1300.jsonl > snapshot-1300.jsonl
    """
    if (from_version is None) == (snapshot_version is None):  # exit 2, as click's own checks
        raise click.UsageError("give either --from-version or --snapshot")
    if fmt is not None:
        if snapshot_version is None:
            raise click.UsageError("--format names a list file's format: with --snapshot only")
        # what sign_file does for a snapshot, with the list read in the format given
        key = load_private_key(key_path.read_bytes())
        snapshot = snapshot_changes(list_entries(changes, changes.name, fmt))
        chunks = make_chunks(
            "snapshot",
            snapshot,
            to_version=snapshot_version,
            key_id=key_id,
            max_changes=max_changes,
        )
        signed = sign_chunks(chunks, key)
        _write_lines(signed, output)
        click.echo(f"{len(signed)} chunks, {len(snapshot)} changes", err=True)
        return
    signed, count = sign_file(
        changes,
        changes.name,
        key_path.read_bytes(),
        key_id,
        from_version=from_version,
        snapshot_version=snapshot_version,
        max_changes=max_changes,
    )
    _write_lines(signed, output)
    click.echo(f"{len(signed)} chunks, {count} changes", err=True)


# ---------------------------------------------------------------------------------------------
# Trust updates: which key signs which versions (mqtt_schemas.trust)

_KEY_SPEC = re.compile(
    r"^(?P<key_id>[A-Za-z0-9][A-Za-z0-9._-]{0,63})=(?P<path>[^:]+):(?P<start>\d+):"
    r"(?P<end>\d*):(?P<state>active|retired|revoked)(?::(?P<reason>.{1,200}))?$"
)


@watchlist.group("trust")
def trust_group() -> None:
    """Trust updates: which watchlist key signs which versions, signed by an offline anchor.

    \b
    Examples:
      borderlane-console watchlist keygen --key-id wl-anchor-2026 --out anchor/   # offline
      borderlane-console watchlist trust sign --anchor-key anchor/wl-anchor-2026.key.pem \\
          --anchor-id wl-anchor-2026 --sequence 2 \\
          --key wl-2026a=keys/wl-2026a.pub.pem:1:1288:retired \\
          --key wl-2026b=keys/wl-2026b.pub.pem:1289::active -o trust-2.json
      borderlane-console watchlist trust publish trust-2.json --db console.db \\
          --broker broker:8884 --cafile ca.crt --cert console.crt --key console.key
    """


@trust_group.command("sign")
@click.option("--anchor-key", required=True, type=EXISTING_FILE, help="The anchor's private key.")
@click.option("--anchor-id", required=True, help="The id kiosks hold the anchor under.")
@click.option("--sequence", required=True, type=click.IntRange(1), help="Higher than the last.")
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    metavar="ID=PUB.pem:FROM:UNTIL:STATE[:REASON]",
    help="A signing key, its first and last version (UNTIL empty: still signing) and its "
    "state: active, retired or revoked (repeat).",
)
@_OUTPUT
@_one_line_errors
def trust_sign_command(
    anchor_key: Path, anchor_id: str, sequence: int, keys: tuple[str, ...], output: IO[str]
) -> None:
    """Sign a trust update with the anchor's key (on the offline host that keeps it)."""
    trusted = []
    for spec in keys:
        found = _KEY_SPEC.match(spec)
        if found is None:
            raise click.BadParameter(
                f"{spec!r}: ID=PUB.pem:FROM:UNTIL:STATE[:REASON]", param_hint="--key"
            )
        public = load_public_key(Path(found["path"]).read_bytes())
        end = int(found["end"]) if found["end"] else None
        trusted.append(TrustedKey(found["key_id"], public, int(found["start"]), end,
                                  found["state"], found["reason"]))  # fmt: skip
    try:
        update = sign_trust_update(
            trusted, sequence=sequence, anchor=load_private_key(anchor_key.read_bytes()),
            anchor_id=anchor_id,
        )  # fmt: skip
    except TrustError as exc:
        raise click.ClickException(str(exc)) from None
    output.write(json.dumps(update, indent=1) + "\n")


@trust_group.command("publish")
@click.argument("update_file", type=EXISTING_FILE)
@_db_option
@_broker_options
@_one_line_errors
def trust_publish_command(
    update_file: Path, db: str, endpoint: connection.Endpoint, node_id: str
) -> None:
    """Publish a signed trust update, retained, for every kiosk (they check the anchor's
    signature and the sequence; the console does not need the anchor's key)."""
    try:
        update = parse_json(update_file.read_bytes())
    except JsonError as exc:
        raise click.ClickException(f"{update_file}: {exc}") from None
    history = WatchlistHistory(db)

    async def send() -> dict[str, Any]:
        mqtt = connection.client(endpoint, f"{node_id}-watchlist-trust", session_expiry=0,
                                 receive_maximum=16, manual_ack=False)  # fmt: skip
        async with mqtt:
            return await publish_trust(mqtt, history, node_id, update)

    try:
        payload = asyncio.run(send())
    except PayloadError as exc:
        raise click.ClickException(f"{update_file}: not a trust update ({exc})") from None
    finally:
        history.close()
    click.echo(f"published trust update {payload['sequence']} ({len(payload['keys'])} keys)")
