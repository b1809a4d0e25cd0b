"""Loading list files into the store: our JSON Lines and CSV, the UN Security Council
Consolidated List (XML) and OpenSanctions / FollowTheMoney entities (JSON lines); bad records
reported and skipped.

JSON Lines: one entry per line, as :func:`mqtt_schemas.watchlist.entry_from_record` reads it::

    {"id": "nw-1", "kind": "person", "names": [{"surname": "CHUN", "given_names": "ELIAS"}],
     "birth_date": "1988-11", "nationality": ["BLZ"], "sex": "M", "list": "national-wanted",
     "category": "wanted", "action": "refer"}
    {"id": "sltd:MEX:G10583221", "kind": "document", "number": "G10583221",
     "issuing_state": "MEX", "document_type": "P", "status": "stolen", "list": "interpol-sltd"}

CSV: a header row naming the columns, in any order (absent columns are empty)::

    id,kind,surname,given_names,aliases,birth_date,nationality,sex,list,category,action,
    number,issuing_state,document_type,status

``aliases`` holds more names as ``SURNAME, GIVEN NAMES`` separated by ``|``; ``nationality``
holds state codes separated by spaces or ``;``.

The UN list (``consolidated.xml``) and FtM entities (``entities.ftm.json``) are mapped to the
same entries as :mod:`mqtt_schemas.list_formats` says (ids ``un:REF`` and ``os:ID``, the
source's list name, organisations ignored). Every format is read by
:func:`mqtt_schemas.list_formats.read_list`, the same reader the console uses to make deltas
from list files; what is kiosk-only here is putting the entries into the store.
"""

from __future__ import annotations

import gc
import io
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

from mqtt_schemas.list_formats import DocumentRows, open_list, read_list_blocks
from mqtt_schemas.watchlist import WatchlistError

from .store import Loader, StoreError, WatchlistStore

__all__ = ["ImportReport", "import_files"]


@dataclass
class ImportReport:
    persons: int = 0
    documents: int = 0
    replaced: int = 0
    errors: list[str] = field(default_factory=list)
    """``FILE:LINE: problem`` (``FILE: INDIVIDUAL #N (...): problem`` for XML) for every
    record skipped (the first 1000)."""
    skipped: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    """Records not imported by design, by what they are (``UN ENTITY (an organisation...)``)."""
    notes: list[str] = field(default_factory=list)
    """``WHERE: what was left out`` of records imported otherwise (the first 1000)."""
    noted: int = 0
    formats: dict[str, str] = field(default_factory=dict)
    """File name -> the format it was read as."""

    def add_error(self, message: str) -> None:
        self.skipped += 1
        if len(self.errors) < 1000:
            self.errors.append(message)

    def add_note(self, message: str) -> None:
        self.noted += 1
        if len(self.notes) < 1000:
            self.notes.append(message)

    def summary(self) -> str:
        """One line: what was imported, replaced, skipped, ignored and left out."""
        text = (
            f"imported {self.persons} persons and {self.documents} documents "
            f"({self.replaced} replaced, {self.skipped} records skipped"
        )
        if self.ignored:
            text += ", ignored: " + ", ".join(f"{n} {what}" for what, n in self.ignored.items())
        if self.noted:
            text += f", {self.noted} fields left out"
        return text + ")"


class _Counting(io.RawIOBase):
    """Counts the bytes read through it, for the progress bar."""

    def __init__(self, raw: IO[bytes], advance: Callable[[int], None]) -> None:
        self.raw = raw
        self.advance = advance

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self.advance(count)
        return count or 0


def import_files(
    store: WatchlistStore,
    paths: list[Path],
    *,
    progress: bool | None = None,
    batch: int = 20000,
    fmt: str | None = None,
) -> ImportReport:
    """Import list files into *store* (adding or replacing entries) through one
    :class:`~edge.screening.store.Loader`: into an empty store in one transaction (a bulk
    load), else in transactions of *batch* entries. *fmt* (``jsonl``, ``csv``, ``un-xml``,
    ``ftm``) is the files' format; without it each file's is found from its name and first
    bytes. A progress bar is shown on standard error when it is a terminal."""
    report = ImportReport()
    show = sys.stderr.isatty() if progress is None else progress
    # An import makes millions of small objects, many kept to the end (the index cache); the
    # cyclic garbage collector would go over them again and again for cycles they never make
    # (a fifth of the time of a million persons). Off while importing, as it was after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _import_files(store, paths, show, batch, fmt, report)
    finally:
        if collecting:
            gc.enable()
    return report


def _import_files(
    store: WatchlistStore,
    paths: list[Path],
    show: bool,
    batch: int,
    fmt: str | None,
    report: ImportReport,
) -> None:
    loader = store.loader(commit_every=batch)
    try:
        for path in paths:
            name = "-" if str(path) == "-" else str(path)
            raw: IO[bytes]
            if name == "-":
                raw, size = sys.stdin.buffer, 0
            else:
                raw, size = open(path, "rb", buffering=1 << 16), path.stat().st_size  # noqa: SIM115
            try:
                if show and size:
                    with click.progressbar(
                        length=size, label=f"importing {path.name}", file=sys.stderr
                    ) as bar:
                        counted = io.BufferedReader(_Counting(raw, bar.update), 1 << 16)
                        _import_stream(loader, counted, fmt, name, report)
                else:
                    _import_stream(loader, raw, fmt, name, report)
            finally:
                if name != "-":
                    raw.close()
    except BaseException:
        loader.abort()
        raise
    loader.finish()
    report.replaced = loader.replaced


def _import_stream(
    loader: Loader, stream: IO[bytes], fmt: str | None, name: str, report: ImportReport
) -> None:
    fmt, stream = open_list(stream, name, fmt)
    report.formats[name] = fmt
    for event in read_list_blocks(stream, name, fmt):
        if isinstance(event, DocumentRows):
            loader.documents(event.rows)
            report.documents += len(event.rows)
            continue
        if event.entry is None:
            if event.error is not None:
                report.add_error(str(event.error))
            elif event.ignored is not None:
                report.ignored[event.ignored] += 1
            elif event.note is not None:
                report.add_note(f"{event.where}: {event.note}")
            continue
        try:
            kind, entry_id, entry = event.entry
            if kind == "document":
                loader.document(entry_id, entry)
                report.documents += 1
            else:
                loader.person(entry_id, entry)
                report.persons += 1
        except (WatchlistError, StoreError) as exc:
            report.add_error(f"{event.where}: {exc}")
