"""``borderlane-edge watchlist ...`` and ``borderlane-edge screen``: the kiosk's watchlist.

Technicians and benchmarks use these; the lane calls the same Python API
(:mod:`edge.screening`). Every command prints one-line errors and exits non-zero on failure.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from edge.screening.delta import DeltaRejected, apply_chunks, load_trust, verify_chunks
from edge.screening.importers import file_format, import_files, read_records
from edge.screening.matcher import DEFAULT_THRESHOLD, Query, QueryError, Screener
from edge.screening.store import StoreError, WatchlistStore
from mqtt_schemas.watchlist import (
    KEY_ID,
    MAX_CHUNK_CHANGES,
    WatchlistError,
    check_change,
    diff,
    entry_from_record,
    generate_key,
    key_fingerprint,
    load_private_key,
    make_chunks,
    private_key_pem,
    public_key_pem,
    record_from_entry,
    sign_chunks,
    snapshot_changes,
)

__all__ = ["screen", "watchlist"]

F = TypeVar("F", bound=Callable[..., Any])


class Failed(click.ClickException):
    """One ``Error: ...`` line on standard error, exit status 1."""

    exit_code = 1


def _one_line_errors(command: F) -> F:
    """Turn the errors a command can meet into one line and a non-zero exit, never a trace."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (StoreError, WatchlistError) as exc:
            raise Failed(str(exc)) from None
        except DeltaRejected as exc:
            raise Failed(f"rejected ({exc.reason}): {exc}; the store is unchanged") from None
        except sqlite3.Error as exc:
            raise Failed(f"database: {exc}") from None
        except OSError as exc:
            raise Failed(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None

    return wrapper  # type: ignore[return-value]


DB_OPTION = click.option(
    "--db",
    "db",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The watchlist store (SQLite).",
)


def _open(db: Path, *, readonly: bool = False) -> WatchlistStore:
    if readonly and not db.exists():
        raise Failed(f"{db}: no watchlist store there")
    return WatchlistStore(db, readonly=readonly)


def _json_lines(path: Path, what: str) -> Iterator[tuple[int, Any]]:
    stream = sys.stdin.buffer if str(path) == "-" else open(path, "rb")  # noqa: SIM115
    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                raise Failed(f"{path}:{number}: not a JSON {what} ({exc})") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _write_lines(items: Iterator[Any] | list[Any], output: Path | None) -> None:
    out = sys.stdout if output is None or str(output) == "-" else open(output, "w")  # noqa: SIM115
    try:
        for item in items:
            out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()


def _list_entries(paths: tuple[Path, ...]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Entries of list files; a bad line fails the command (a delta must be exact)."""
    for path in paths:
        stream = sys.stdin.buffer if str(path) == "-" else open(path, "rb")  # noqa: SIM115
        try:
            for number, record in read_records(stream, file_format(path)):
                if isinstance(record, Exception):
                    raise Failed(f"{path}:{number}: {record}")
                try:
                    yield entry_from_record(record)
                except WatchlistError as exc:
                    raise Failed(f"{path}:{number}: {exc}") from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()


def _trust_option(command: F) -> F:
    command = click.option(
        "--trust-dir",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help="Trust every KEY_ID.pub.pem in this directory.",
    )(command)
    return click.option(
        "--trust",
        "trust",
        multiple=True,
        metavar="KEY_ID=PUB.pem",
        help="Trust this public key under this key id (repeatable).",
    )(command)


def _trusted(trust: tuple[str, ...], trust_dir: Path | None) -> dict[str, Any]:
    pairs = []
    for spec in trust:
        key_id, sep, path = spec.partition("=")
        if not sep or not key_id or not path:
            raise click.UsageError(f"--trust {spec!r}: expected KEY_ID=PUB.pem")
        pairs.append((key_id, Path(path)))
    return load_trust(pairs, trust_dir)


def _read_chunks(paths: tuple[Path, ...]) -> list[dict[str, Any]]:
    chunks = []
    for path in paths:
        chunks += [chunk for _, chunk in _json_lines(path, "chunk")]
    return chunks


# ---------------------------------------------------------------------------------------------
# watchlist


@click.group("watchlist")
def watchlist() -> None:
    """The watchlist kept on the kiosk: import lists, sign and apply deltas.

    \b
    Examples:
      borderlane-edge watchlist import --db wl.db persons.jsonl sltd.csv
      borderlane-edge watchlist status --db wl.db
      borderlane-edge watchlist keygen --key-id wl-2026a --out keys/
      borderlane-edge watchlist diff v1.jsonl v2.jsonl > changes.jsonl
      borderlane-edge watchlist sign --key keys/wl-2026a.key.pem --key-id wl-2026a \\
          --from-version 1 changes.jsonl > delta-1-2.jsonl
      borderlane-edge watchlist apply --db wl.db --trust-dir keys/ delta-1-2.jsonl
    """


@watchlist.command("import")
@DB_OPTION
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@_one_line_errors
def import_command(db: Path, files: tuple[Path, ...], quiet: bool) -> None:
    """Add list files to the store (an entry already there is replaced).

    FILES are JSON Lines (one entry per line, .jsonl) or CSV (.csv, with a header row:
    id, kind, surname, given_names, aliases, birth_date, nationality, sex, list, category,
    action, number, issuing_state, document_type, status). A bad line is reported with its
    line number and skipped; the rest is imported, and the exit status is then 1. Importing
    does not change the watchlist version: only signed deltas and snapshots do.

    \b
    A JSON Lines entry:
      {"id": "nw-1", "kind": "person", "names": [{"surname": "CHUN", "given_names":
       "ELIAS"}, "CHUN, ELIAS R"], "birth_date": "1988-11", "nationality": ["BLZ"],
       "sex": "M", "list": "national-wanted", "category": "wanted", "action": "refer"}
      {"id": "sltd:MEX:G10583221", "kind": "document", "number": "G10583221",
       "issuing_state": "MEX", "document_type": "P", "status": "stolen",
       "list": "interpol-sltd"}

    \b
    Examples:
      borderlane-edge watchlist import --db wl.db persons.jsonl documents.jsonl
      borderlane-edge watchlist import --db wl.db sltd.csv
      zcat sltd.jsonl.gz | borderlane-edge watchlist import --db wl.db -
    """
    for path in files:
        if str(path) != "-" and not path.is_file():
            raise Failed(f"{path}: no such file")
    started = time.perf_counter()
    with _open(db) as store:
        report = import_files(store, list(files), progress=None if not quiet else False)
    for error in report.errors:
        click.echo(error, err=True)
    if report.skipped > len(report.errors):
        click.echo(f"... and {report.skipped - len(report.errors)} more", err=True)
    if not quiet:
        click.echo(
            f"imported {report.persons} persons and {report.documents} documents "
            f"({report.replaced} replaced, {report.skipped} lines skipped) "
            f"in {time.perf_counter() - started:.1f} s",
            err=True,
        )
    if report.skipped:
        sys.exit(1)


@watchlist.command("status")
@DB_OPTION
@_one_line_errors
def status_command(db: Path) -> None:
    """Print the store's version, when it was applied and its entry counts, as JSON.

    \b
    Example:
      borderlane-edge watchlist status --db wl.db
    """
    with _open(db, readonly=True) as store:
        click.echo(json.dumps(store.status()))


@watchlist.command("export")
@DB_OPTION
@click.option("-o", "--output", type=click.Path(path_type=Path, allow_dash=True), help="[stdout]")
@_one_line_errors
def export_command(db: Path, output: Path | None) -> None:
    """Write every entry of the store as a list file (JSON Lines).

    \b
    Example:
      borderlane-edge watchlist export --db wl.db -o kiosk-list.jsonl
    """
    with _open(db, readonly=True) as store:
        _write_lines((record_from_entry(*item) for item in store.entries()), output)


@watchlist.command("reindex")
@DB_OPTION
@_one_line_errors
def reindex_command(db: Path) -> None:
    """Rebuild the name index from the stored entries (after a matcher upgrade says so).

    \b
    Example:
      borderlane-edge watchlist reindex --db wl.db
    """
    with _open(db) as store:
        count = store.reindex()
    click.echo(f"re-indexed {count} persons", err=True)


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
    """Make an Ed25519 watchlist-signing key pair (never a TLS key).

    The private key stays on the console's signing host; kiosks are given the public key
    and trust it under its key id.

    \b
    Example:
      borderlane-edge watchlist keygen --key-id wl-2026a --out keys/
    """
    key = generate_key()
    key_id = key_id or f"wl-{key_fingerprint(key)[:12]}"
    if not KEY_ID.fullmatch(key_id):
        raise Failed(f"key id {key_id!r}: letters, digits, '.', '_' and '-' only (up to 64)")
    out.mkdir(parents=True, exist_ok=True)
    private, public = out / f"{key_id}.key.pem", out / f"{key_id}.pub.pem"
    if private.exists() or public.exists():
        raise Failed(f"{private}: a key with this id is already there")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_pem(key))
    public.write_bytes(public_key_pem(key))
    click.echo(f"{key_id} {key_fingerprint(key)}")


@watchlist.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, allow_dash=True), help="[stdout]")
@_one_line_errors
def diff_command(old: Path, new: Path, output: Path | None) -> None:
    """The changes from list OLD to list NEW, one JSON change per line (unsigned).

    OLD and NEW are list files (JSON Lines or CSV). Adds and updates come in NEW's order,
    then removes. Feed the result to 'watchlist sign'.

    \b
    Example:
      borderlane-edge watchlist diff lists-1287.jsonl lists-1288.jsonl > changes.jsonl
    """
    _write_lines(diff(_list_entries((old,)), _list_entries((new,))), output)


@watchlist.command("sign")
@click.argument("changes", type=click.Path(path_type=Path, allow_dash=True))
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
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
    type=click.IntRange(1, MAX_CHUNK_CHANGES),
    default=MAX_CHUNK_CHANGES,
    show_default=True,
    help="Changes per chunk at most.",
)
@click.option("-o", "--output", type=click.Path(path_type=Path, allow_dash=True), help="[stdout]")
@_one_line_errors
def sign_command(
    changes: Path,
    key_path: Path,
    key_id: str,
    from_version: int | None,
    snapshot_version: int | None,
    chunk_size: int,
    output: Path | None,
) -> None:
    """Cut a delta (or snapshot) into signed chunks, one chunk per line.

    With --from-version N, CHANGES is a changes file (from 'watchlist diff') and the chunks
    make the delta N -> N+1. With --snapshot V, CHANGES is a list file and the chunks make
    the snapshot of version V. Each chunk is signed over its canonical encoding and carries
    the digest of all the changes, so each is verifiable alone and none can be dropped,
    moved or swapped with another delta's unnoticed.

    \b
    Examples:
      borderlane-edge watchlist sign --key wl-2026a.key.pem --key-id wl-2026a \\
          --from-version 1287 changes.jsonl > delta-1288.jsonl
      borderlane-edge watchlist sign --key wl-2026a.key.pem --key-id wl-2026a \\
          --snapshot 1300 lists-1300.jsonl > snapshot-1300.jsonl
    """
    if (from_version is None) == (snapshot_version is None):
        raise click.UsageError("give either --from-version or --snapshot")
    key = load_private_key(key_path.read_bytes())
    if snapshot_version is not None:
        items = snapshot_changes(_list_entries((changes,)))
        chunks = make_chunks(
            "snapshot", items, to_version=snapshot_version, key_id=key_id, max_changes=chunk_size
        )
    else:
        items = []
        for number, change in _json_lines(changes, "change"):
            try:
                check_change(change, f"line {number}")
            except WatchlistError as exc:
                raise Failed(f"{changes}:{number}: {exc}") from None
            items.append(change)
        assert from_version is not None
        chunks = make_chunks(
            "delta",
            items,
            from_version=from_version,
            to_version=from_version + 1,
            key_id=key_id,
            max_changes=chunk_size,
        )
    _write_lines(sign_chunks(chunks, key), output)
    click.echo(f"{len(chunks)} chunks, {len(items)} changes", err=True)


@watchlist.command("verify")
@click.argument("chunks", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@_trust_option
@_one_line_errors
def verify_command(
    chunks: tuple[Path, ...], trust: tuple[str, ...], trust_dir: Path | None
) -> None:
    """Check a delta's or snapshot's chunks without applying them.

    Every signature must verify under a trusted key, and the chunks must make the whole
    delta, in order. Prints what it is; exits 1 with the reason otherwise.

    \b
    Example:
      borderlane-edge watchlist verify --trust wl-2026a=wl-2026a.pub.pem delta-1288.jsonl
    """
    delta = verify_chunks(_read_chunks(chunks), _trusted(trust, trust_dir))
    click.echo(
        f"{delta.describe()}: {len(delta.changes)} changes, signed by "
        f"{', '.join(sorted(delta.key_ids))}, changes sha256 {delta.changes_sha256}"
    )


@watchlist.command("apply")
@DB_OPTION
@click.argument("chunks", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@_trust_option
@_one_line_errors
def apply_command(
    db: Path, chunks: tuple[Path, ...], trust: tuple[str, ...], trust_dir: Path | None
) -> None:
    """Verify a delta or snapshot and apply it to the store, all or nothing.

    A delta applies only to the version it was made from; a snapshot replaces the store
    unless it is older. A forged, untrusted, replayed, older, out-of-order or incomplete
    delta is refused with its reason (exit 1) and the store is left as it was.

    \b
    Examples:
      borderlane-edge watchlist apply --db wl.db --trust-dir /etc/borderlane/watchlist-keys \\
          delta-1288.jsonl
      borderlane-edge watchlist apply --db wl.db --trust wl-2026b=wl-2026b.pub.pem \\
          snapshot-1300.jsonl
    """
    loaded = _read_chunks(chunks)
    trusted = _trusted(trust, trust_dir)
    with _open(db) as store:
        result = apply_chunks(store, loaded, trusted)
    click.echo(result.describe())


# ---------------------------------------------------------------------------------------------
# screen


@click.command("screen")
@DB_OPTION
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Report hits scoring at least this.",
)
@click.option("--timing", is_flag=True, help='Add "ms" (time spent screening) to each line.')
@_one_line_errors
def screen(db: Path, threshold: float, timing: bool) -> None:
    """Screen travellers read as JSON Lines on standard input against the watchlist.

    \b
    Each input line is one traveller (any field may be absent):
      {"id": "t1", "surname": "GARCIA LOPEZ", "given_names": "JUAN CARLOS",
       "birth_date": "1975-03-02", "nationality": "MEX", "sex": "M",
       "document_number": "G10583221", "issuing_state": "MEX"}
    Each output line answers one input line, hits best first:
      {"id": "t1", "hits": [{"entry_id": "nw-7", "kind": "person", "score": 0.97,
       "list": "national-wanted", "action": "refer", "reasons": [{"part": "surname",
       "how": "exact", "detail": "GARCIA"}, ...]}]}
    A line that is not a valid query gets {"id": ..., "error": "..."} and the run goes on
    (exit status 1 at the end).

    \b
    Examples:
      borderlane-edge screen --db wl.db < travellers.jsonl > hits.jsonl
      echo '{"id":"1","surname":"HABASH","given_names":"GEORGE"}' | \\
          borderlane-edge screen --db wl.db --threshold 0.7
    """
    with _open(db, readonly=True) as store:
        screener = Screener(store, threshold=threshold)
        # Screening makes little cyclic garbage; what the collector would walk through is the
        # interpreter's own long-lived objects and the matcher's caches. Freezing those keeps
        # full collections from adding tens of milliseconds to a traveller now and then.
        gc.collect()
        gc.freeze()
        bad = 0
        out = sys.stdout
        for number, line in enumerate(sys.stdin.buffer, start=1):
            if not line.strip():
                continue
            query_id: Any = None
            try:
                data = json.loads(line)
                if isinstance(data, dict):
                    query_id = data.get("id")
                query = Query.from_dict(data)
            except (ValueError, QueryError) as exc:
                bad += 1
                message = str(exc) if isinstance(exc, QueryError) else f"not JSON ({exc})"
                answer: dict[str, Any] = {"id": query_id, "error": f"line {number}: {message}"}
                out.write(json.dumps(answer, ensure_ascii=False) + "\n")
                out.flush()
                continue
            started = time.perf_counter()
            hits = screener.screen(query)
            elapsed = time.perf_counter() - started
            answer = {"id": query_id, "hits": [hit.to_dict() for hit in hits]}
            if timing:
                answer["ms"] = round(elapsed * 1000, 3)
            out.write(json.dumps(answer, ensure_ascii=False, separators=(",", ":")) + "\n")
            out.flush()  # one answer per traveller as it comes: screen can serve a pipe
    if bad:
        sys.exit(1)
