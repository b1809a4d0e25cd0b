"""``borderlane-edge watchlist ...`` and ``borderlane-edge screen``: the kiosk's watchlist.

Technicians and benchmarks use these; the lane calls the same Python API
(:mod:`edge.screening`). Every command prints one-line errors and exits non-zero on failure.

The kiosk keeps, checks and applies a list (import, status, export, reindex, verify, apply);
it never signs one. Making keys, changes and signed chunks is the console's job
(``borderlane-console watchlist keygen|diff|sign``). The old names here still work for
release 0.2, with a line on standard error saying where they went; they call the same
:mod:`mqtt_schemas.watchlist` functions as the console's commands (the kiosk never imports
console code), and go in 0.3.
"""

from __future__ import annotations

import functools
import gc
import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from edge.screening.delta import DeltaRejected, apply_chunks, load_trust, verify_chunks
from edge.screening.importers import import_files
from edge.screening.matcher import DEFAULT_THRESHOLD, Query, QueryError, Screener
from edge.screening.population import PopulationError
from edge.screening.population import info as population_info
from edge.screening.population import install as install_population
from edge.screening.population import read as read_population
from edge.screening.store import StoreError, WatchlistStore
from mqtt_schemas.list_formats import FORMATS
from mqtt_schemas.validation import parse_json
from mqtt_schemas.watchlist import (
    MAX_CHUNK_CHANGES,
    WatchlistError,
    diff,
    list_entries,
    record_from_entry,
    sign_file,
    write_key_pair,
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
                yield number, parse_json(line)
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
    """The watchlist kept on the kiosk: import lists, verify and apply signed deltas.

    Deltas and keys are made on the console: borderlane-console watchlist keygen|diff|sign
    (the same names here are deprecated and go in release 0.3).

    \b
    Examples:
      borderlane-edge watchlist import --db wl.db persons.jsonl sltd.csv
      borderlane-edge watchlist import --db wl.db consolidated.xml entities.ftm.json
      borderlane-edge watchlist status --db wl.db
      borderlane-edge watchlist verify --trust-dir keys/ delta-1-2.jsonl
      borderlane-edge watchlist apply --db wl.db --trust-dir keys/ delta-1-2.jsonl
    """


FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="The files' format [default: from each file's name and first bytes: .csv is CSV, "
    "XML the UN list, JSON lines of FtM entities ftm, else our JSON Lines].",
)


@watchlist.command("import")
@DB_OPTION
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@FORMAT_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option("--verbose", "-v", is_flag=True, help="Also list each field left out of a record.")
@_one_line_errors
def import_command(
    db: Path, files: tuple[Path, ...], fmt: str | None, quiet: bool, verbose: bool
) -> None:
    """Add list files to the store (an entry already there is replaced).

    \b
    FILES are, each found from its name and first bytes (or all as --format says):
      jsonl   our JSON Lines, one entry per line (.jsonl)
      csv     our CSV with a header row (.csv): id, kind, surname, given_names, aliases,
              birth_date, nationality, sex, list, category, action, number,
              issuing_state, document_type, status
      un-xml  the UN Security Council Consolidated List (consolidated.xml): individuals
              become persons un:REFERENCE_NUMBER (list un-sc-<list type>) and their
              documents; entities (organisations) are ignored
      ftm     OpenSanctions / FollowTheMoney entities, one JSON object a line
              (entities.ftm.json): Persons become os:ID (list: the dataset), their
              Passport and Identification entities documents; companies are ignored

    A bad record is reported with its line number (or XML element) and the reason, and
    skipped; the rest is imported, and the exit status is then 1. A file that is not its
    format at all is one line. Records that are no person (organisations, vessels) are
    counted as ignored; parts of a record left out (a low-quality alias, a nationality no
    table knows) are counted, and listed with --verbose. Importing does not change the
    watchlist version: only signed deltas and snapshots do.

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
      borderlane-edge watchlist import --db wl.db consolidated.xml
      borderlane-edge watchlist import --db wl.db entities.ftm.json
      zcat sltd.jsonl.gz | borderlane-edge watchlist import --db wl.db -
      zcat entities.ftm.json.gz | borderlane-edge watchlist import --db wl.db --format ftm -
    """
    for path in files:
        if str(path) != "-" and not path.is_file():
            raise Failed(f"{path}: no such file")
    started = time.perf_counter()
    with _open(db) as store:
        report = import_files(store, list(files), progress=None if not quiet else False, fmt=fmt)
    for error in report.errors:
        click.echo(error, err=True)
    if report.skipped > len(report.errors):
        click.echo(f"... and {report.skipped - len(report.errors)} more", err=True)
    if verbose:
        for note in report.notes:
            click.echo(note, err=True)
        if report.noted > len(report.notes):
            click.echo(f"... and {report.noted - len(report.notes)} more left out", err=True)
    if not quiet:
        click.echo(f"{report.summary()} in {time.perf_counter() - started:.1f} s", err=True)
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


@watchlist.group("population")
def population_group() -> None:
    """The lane's population table: how common each name token is among its travellers.

    The matcher takes a token's frequency as the larger of the list's and this table's, so a
    partial match on a name common at the post (and rare on the list) is not taken for a rare
    coincidence. See edge/screening/population.py for the file format.
    """


@population_group.command("import")
@DB_OPTION
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_one_line_errors
def population_import_command(db: Path, file: Path) -> None:
    """Replace the store's population table with FILE's, in one transaction.

    \b
    Example:
      borderlane-edge watchlist population import --db wl.db post-17.population
    """
    try:
        table = read_population(file)
    except PopulationError as exc:
        raise Failed(f"{file}: {exc}; the store is unchanged") from None
    if not db.exists():
        raise Failed(f"{db}: no watchlist store there")
    with _open(db) as store:
        install_population(store, table, source=file.name)
    click.echo(f"{len(table.counts)} tokens of {table.travellers} travellers imported", err=True)


@population_group.command("status")
@DB_OPTION
@_one_line_errors
def population_status_command(db: Path) -> None:
    """Print the store's population table (travellers, tokens, when, from what) as JSON, or
    null when it has none.

    \b
    Example:
      borderlane-edge watchlist population status --db wl.db
    """
    with _open(db, readonly=True) as store:
        click.echo(json.dumps(population_info(store.connection)))


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


# ---------------------------------------------------------------------------------------------
# Deprecated: signing moved to the console. Kept for release 0.2 so that scripts go on working;
# remove in 0.3. Same arguments and options as borderlane-console watchlist keygen|diff|sign,
# and the same mqtt_schemas.watchlist functions behind them: the outputs are identical.


def _moved(name: str) -> Callable[[F], F]:
    """Register the command as the deprecated ``watchlist NAME``, which says where it went."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            click.echo(
                f"borderlane-edge watchlist {name} is deprecated: "
                f"use borderlane-console watchlist {name}",
                err=True,
            )
            return command(*args, **kwargs)

        short = f"Deprecated: use borderlane-console watchlist {name}."
        registered = watchlist.command(name, short_help=short)(_one_line_errors(wrapper))
        return registered  # type: ignore[return-value]

    return decorate


@_moved("keygen")
@click.option("--key-id")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def keygen_command(key_id: str | None, out: Path) -> None:
    """Deprecated: use 'borderlane-console watchlist keygen' (the same options).

    \b
    Example:
      borderlane-console watchlist keygen --key-id wl-2026a --out keys/
    """
    click.echo(" ".join(write_key_pair(out, key_id)))


@_moved("diff")
@click.argument("old", type=click.File("rb"))
@click.argument("new", type=click.File("rb"))
@click.option("-o", "--output", type=click.Path(path_type=Path, allow_dash=True))
def diff_command(old: IO[bytes], new: IO[bytes], output: Path | None) -> None:
    """Deprecated: use 'borderlane-console watchlist diff' (the same arguments).

    \b
    Example:
      borderlane-console watchlist diff v1.jsonl v2.jsonl > changes.jsonl
    """
    _write_lines(diff(list_entries(old, old.name), list_entries(new, new.name)), output)


@_moved("sign")
@click.argument("changes", type=click.File("rb"))
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--key-id", required=True)
@click.option("--from-version", type=click.IntRange(min=0))
@click.option("--snapshot", "snapshot_version", type=click.IntRange(min=0))
@click.option(
    "--chunk-size",
    "max_changes",
    type=click.IntRange(1, MAX_CHUNK_CHANGES),
    default=MAX_CHUNK_CHANGES,
)
@click.option("-o", "--output", type=click.Path(path_type=Path, allow_dash=True))
def sign_command(changes: IO[bytes], key_path: str, output: Path | None, **options: Any) -> None:
    """Deprecated: use 'borderlane-console watchlist sign' (the same arguments and options).

    \b
    Example:
      borderlane-console watchlist sign --key keys/wl-2026a.key.pem --key-id wl-2026a \\
          --from-version 1 changes.jsonl > delta-1-2.jsonl
    """
    if (options["from_version"] is None) == (options["snapshot_version"] is None):
        raise click.UsageError("give either --from-version or --snapshot")
    signed, count = sign_file(changes, changes.name, Path(key_path).read_bytes(), **options)
    _write_lines(signed, output)
    click.echo(f"{len(signed)} chunks, {count} changes", err=True)
