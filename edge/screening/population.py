"""How common each name token is among the travellers a lane serves: the population table.

The matcher's chance gate (:mod:`edge.screening.matcher`, step 5) asks how many people would
match a listed entry as well as the traveller does by coincidence. The list's own token
frequencies answer that badly where the lane's travellers are not like the list: at a post on
Belize's western border CHOC, POP and TEUL are among the commonest surnames, yet rare on a
list of a million people from everywhere, so a partial match on them (TEUL CHOC JUANA against
a listed COC JUANA born 1966) looks like a rare coincidence when it is an everyday one. The
population table gives, for each name token, how many of a sample of the lane's travellers
bear it; the matcher takes a token's frequency as the larger of the list's and the table's.

The console counts it from the crossings of the posts a kiosk serves (token counts only, with
small counts suppressed, so the table names nobody) and it reaches the kiosk as a file:

    borderlane-population 1
    travellers 250000
    CHOC 8123
    JUANA 4410
    ...

The first line names the format, the second the number of travellers counted, then one token
(as :func:`~mqtt_schemas.name_matching.tokens` writes it: A to Z) and the number of travellers
bearing it per line, separated by one space or tab, each token once. Anything else is a
:class:`PopulationError` naming the line. ``borderlane-edge watchlist population import``
replaces the store's table with a file's in one transaction; a store without a table screens
with the list's frequencies alone.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mqtt_schemas.name_matching import tokens

from .store import WatchlistStore

__all__ = [
    "FORMAT_LINE",
    "MIN_COUNT",
    "Population",
    "PopulationError",
    "count_tokens",
    "info",
    "install",
    "load",
    "parse",
    "read",
    "write",
]

FORMAT_LINE = "borderlane-population 1"
MIN_COUNT = 10
"""Tokens fewer travellers than this bear are left out of a table: a rare token could point
at a person, and tells the chance gate nothing the list does not."""
MAX_TOKENS = 2_000_000
"""More lines than this is not a population table (a million travellers bear far fewer)."""
MAX_LINE = 200
_TOKEN = re.compile(r"[A-Z]{1,64}")
_COUNT = re.compile(r"[1-9][0-9]{0,11}")
_SEPARATOR = re.compile(r"[ \t]")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS population_tokens (
    token TEXT PRIMARY KEY,
    travellers INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS population_info (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    travellers INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    imported_at TEXT NOT NULL,
    source TEXT NOT NULL
);
"""


class PopulationError(ValueError):
    """A population file that cannot be used; the message names the line and the reason."""


@dataclass(frozen=True)
class Population:
    """*travellers* counted, and how many of them bear each token (those at least MIN_COUNT
    bear, or the minimum the table was made with)."""

    travellers: int
    counts: Mapping[str, int] = field(default_factory=dict)

    def share(self, token: str) -> float:
        """The share of the travellers bearing *token* (0 when the table does not give it)."""
        return self.counts.get(token, 0) / self.travellers if self.travellers else 0.0


def count_tokens(names: Iterable[tuple[str, str]], *, min_count: int = MIN_COUNT) -> Population:
    """The table of travellers' names, each ``(surname, given names)`` as the document writes
    them: each token counted once per traveller, those fewer than *min_count* bear left out."""
    if min_count < 1:
        raise ValueError("min_count must be at least 1")
    counter: Counter[str] = Counter()
    travellers = 0
    for surname, given in names:
        travellers += 1
        counter.update(set(tokens(surname or "")) | set(tokens(given or "")))
    kept = {token: count for token, count in counter.items() if count >= min_count}
    return Population(travellers, dict(sorted(kept.items())))


def write(population: Population, path: Path) -> None:
    """Write *population* to *path* in the file format (mode 0600, replaced atomically)."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(f"{FORMAT_LINE}\ntravellers {population.travellers}\n")
        for token, count in sorted(population.counts.items()):
            out.write(f"{token} {count}\n")
    os.replace(temporary, path)


def parse(lines: Iterable[str]) -> Population:
    """A :class:`Population` from the file's lines; :class:`PopulationError` names the first
    line that is not as the module docs say (so a damaged file changes nothing)."""
    travellers = 0
    counts: dict[str, int] = {}
    number = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if len(line) > MAX_LINE:
            raise PopulationError(f"line {number}: longer than {MAX_LINE} characters")
        if number == 1:
            if line != FORMAT_LINE:
                raise PopulationError(f"line 1: {FORMAT_LINE!r} expected")
            continue
        parts = _SEPARATOR.split(line)
        if len(parts) != 2:
            raise PopulationError(f"line {number}: a token and a count expected")
        key, value = parts
        if not _COUNT.fullmatch(value):
            raise PopulationError(f"line {number}: a positive whole number expected")
        count = int(value)
        if number == 2:
            if key != "travellers":
                raise PopulationError("line 2: 'travellers N' expected")
            travellers = count
            continue
        if not _TOKEN.fullmatch(key):
            raise PopulationError(f"line {number}: a token is A to Z only, as names are matched")
        if key in counts:
            raise PopulationError(f"line {number}: {key} given twice")
        if count > travellers:
            raise PopulationError(f"line {number}: more travellers than the {travellers} counted")
        if len(counts) >= MAX_TOKENS:
            raise PopulationError(f"line {number}: more than {MAX_TOKENS:,} tokens")
        counts[key] = count
    if number < 2:
        raise PopulationError(f"line {number + 1}: the file ends before 'travellers N'")
    return Population(travellers, counts)


def read(path: Path) -> Population:
    """:func:`parse` a file; bytes that are not ASCII are a :class:`PopulationError` too."""
    with open(path, "rb") as stream:
        number = 0

        def decoded() -> Iterable[str]:
            nonlocal number
            for number, raw in enumerate(stream, start=1):  # noqa: B007 (read in except)
                yield raw.decode("ascii")

        try:
            return parse(decoded())
        except UnicodeDecodeError:
            raise PopulationError(f"line {number}: not ASCII") from None


def install(store: WatchlistStore, population: Population, *, source: str) -> None:
    """Replace the store's population table with *population*, in one transaction."""
    store.connection.executescript(_SCHEMA)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with store.transaction():
        store.connection.execute("DELETE FROM population_tokens")
        store.connection.executemany(
            "INSERT INTO population_tokens (token, travellers) VALUES (?, ?)",
            sorted(population.counts.items()),
        )
        store.connection.execute(
            "INSERT OR REPLACE INTO population_info (id, travellers, tokens, imported_at, source)"
            " VALUES (1, ?, ?, ?, ?)",
            (population.travellers, len(population.counts), now, source),
        )


def load(connection: sqlite3.Connection) -> Population | None:
    """The store's population table, or ``None`` when it has none (never imported)."""
    try:
        row = connection.execute("SELECT travellers FROM population_info WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # no such table: the store has never had one
        return None
    if row is None:
        return None
    counts = dict(connection.execute("SELECT token, travellers FROM population_tokens"))
    return Population(int(row[0]), counts)


def info(connection: sqlite3.Connection) -> dict[str, object] | None:
    """What ``population status`` shows: travellers, tokens, when and from what it came."""
    try:
        row = connection.execute(
            "SELECT travellers, tokens, imported_at, source FROM population_info WHERE id = 1"
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    if row is None:
        return None
    return dict(zip(("travellers", "tokens", "imported_at", "source"), row, strict=True))
