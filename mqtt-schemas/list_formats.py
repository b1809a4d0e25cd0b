"""Published watchlists read into the list model: the UN Security Council Consolidated List
(XML) and OpenSanctions / FollowTheMoney entities (JSON lines), beside our JSONL and CSV.

Both sides read lists through here: the kiosk's ``borderlane-edge watchlist import`` and the
console's ``borderlane-console watchlist diff|sign|publish``. Every reader is pure (bytes in,
events out) and streams: a 100 MB list is read in bounded memory.

:func:`read_list` yields one :class:`ListEvent` per thing worth telling, in file order:

``entry``   ``(kind, entry_id, entry)``, valid under :func:`~mqtt_schemas.watchlist.check_entry`;
``error``   a record skipped, with where (``FILE:LINE`` or ``FILE: INDIVIDUAL #3 (DATAID ...)``)
            and why (an instance of the format's one error type: :class:`JsonlListError`,
            :class:`UNListError` or :class:`FtMListError`); the reader goes on with the next;
``ignored`` a record that is not a person or a document by design (a UN ``ENTITY``, an FtM
            ``Company``): counted, never imported, so that a person cannot hit an
            organisation named after them;
``note``    part of a record left out (a nationality no table knows, a low-quality alias).

A file that is not the format at all (not XML, another root element, a DTD) is one ``error``
event and the end of that file. XML is parsed with :mod:`defusedxml` and no DTD is accepted at
all: no entity expansion (billion laughs), no external entities, nothing fetched.

How the sources map (``docs`` of each reader below say more):

=====================  ==========================================  ============================
model                  UN consolidated list                        FollowTheMoney
=====================  ==========================================  ============================
entry id               ``un:`` + REFERENCE_NUMBER (``un:QDi.001``)  ``os:`` + entity id
list                   ``un-sc-`` + UN_LIST_TYPE (``un-sc-dprk``)   the entity's dataset
names                  the full name, Good aliases, original       name, alias, previousName,
                       script; Low aliases left out (note)          last/first names; not
                                                                    weakAlias (note)
birth_date             the most precise date every given date      the same, over birthDate
                       agrees with; none if one is approximate
                       or a range of years
nationality            country names -> ICAO codes                 ISO alpha-2 -> ICAO codes
documents              INDIVIDUAL_DOCUMENT -> ``<person id>:doc:   Passport / Identification
                       <NUMBER>``                                   (by holder), passportNumber
=====================  ==========================================  ============================

State codes are ICAO's (Doc 9303): ISO 3166-1 alpha-3 except Germany, ``D``, as a traveller's
MRZ writes it. Person entries get category ``sanctions`` and action ``refer``. Document
entries get status ``invalid`` (the model has no status for "the holder is listed") and
``document_type`` ``P`` for a passport, ``I`` for an identity document, none otherwise; a
document without an issuing state takes its holder's one nationality, or is left out (note).
"""

from __future__ import annotations

import datetime
import functools
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree
import pycountry

from .identifiers import COUNTRY, DOCUMENT_NUMBER, NAME
from .validation import parse_json
from .watchlist import (
    ACTIONS,
    DOCUMENT_TYPE,
    ENTRY_ID,
    STATUSES,
    WatchlistError,
    check_entry,
    entry_from_record,
    read_list_records,
)

__all__ = [
    "FORMATS",
    "DocumentRow",
    "DocumentRows",
    "FtMListError",
    "JsonlListError",
    "ListEvent",
    "ListFormatError",
    "UNListError",
    "country_code",
    "open_list",
    "read_list",
    "read_list_blocks",
    "sniff_format",
]

FORMATS = ("jsonl", "csv", "un-xml", "ftm")
"""The list formats, as ``--format`` names them."""

Entry = tuple[str, str, dict[str, Any]]

MAX_NAMES = 32
MAX_NAME_LENGTH = 200
MAX_NATIONALITIES = 10
MAX_FTM_LINE = 16 << 20
"""The longest FtM line read (OpenSanctions' longest entities are a few hundred KiB)."""


class ListFormatError(WatchlistError):
    """A record of a list file (or the whole file) that cannot be read; ``where`` says which.

    ``reason``: ``bad-record`` (that record is skipped), ``not-the-format`` (the file is not
    a list of that format), ``bad-xml`` (not well-formed from there on), ``refused`` (hostile
    XML: a DTD, entities).
    """

    def __init__(self, reason: str, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(reason, f"{where}: {problem}")


class JsonlListError(ListFormatError):
    """A line of one of our list files (JSON Lines or CSV)."""


class UNListError(ListFormatError):
    """A record of the UN Security Council Consolidated List (XML)."""


class FtMListError(ListFormatError):
    """A line of a FollowTheMoney / OpenSanctions entity file (JSON lines)."""


@dataclass(frozen=True, slots=True)
class ListEvent:
    """One thing a list reader has to say (see the module documentation)."""

    where: str
    entry: Entry | None = None
    error: ListFormatError | None = None
    ignored: str | None = None
    note: str | None = None


# ---------------------------------------------------------------------------------------------
# Choosing the format


_FTM_HINT = re.compile(rb'"schema"\s*:\s*"[A-Z][A-Za-z]*"')
_OURS_HINT = re.compile(rb'"kind"\s*:')


def sniff_format(head: bytes, name: str = "") -> str:
    """The format of a list file from its first bytes (*head*) and its *name*.

    ``.csv`` is CSV; a file whose first character is ``<`` (or named ``.xml``) the UN list;
    JSON whose first object names a FollowTheMoney ``schema`` (and no ``kind``) FtM; anything
    else our JSON Lines. ``--format`` overrides this.
    """
    lower = name.lower()
    if lower.endswith(".csv"):
        return "csv"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<") or lower.endswith(".xml"):
        return "un-xml"
    first = text.split(b"\n", 1)[0]
    if _FTM_HINT.search(first) and not _OURS_HINT.search(first):
        return "ftm"
    return "jsonl"


SNIFF_BYTES = 4096


class _Prefixed(io.RawIOBase):
    """*head*, then the rest of *stream*: a stream that cannot peek, read past its head."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self.head = head
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            count = min(len(buffer), len(self.head))
            buffer[:count] = self.head[:count]
            self.head = self.head[count:]
            return count
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def open_list(stream: IO[bytes], name: str, fmt: str | None = None) -> tuple[str, IO[bytes]]:
    """``(format, stream to read)`` of a list file: *fmt* when given (``--format``), else
    :func:`sniff_format` over the file's first bytes, which the returned stream still has."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown list format {fmt!r} (one of {', '.join(FORMATS)})")
        return fmt, stream
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return sniff_format(peek(SNIFF_BYTES)[:SNIFF_BYTES], name), stream
    head = stream.read(SNIFF_BYTES)
    rest = io.BufferedReader(_Prefixed(head, stream))
    return sniff_format(head, name), rest


# ---------------------------------------------------------------------------------------------
# Countries: names (UN) and alpha-2 codes (FtM) to ICAO state codes


_ICAO = {"DEU": "D"}
"""Where Doc 9303 writes a state otherwise than ISO 3166-1 alpha-3."""

_COUNTRY_NAMES = {
    # UN terminology that pycountry's names do not spell so
    "democratic republic of the congo": "COD",
    "state of palestine": "PSE",
    "republic of korea": "KOR",
    "kosovo": "RKS",
    "united states": "USA",
    "united kingdom": "GBR",
    "russia": "RUS",
    "iran": "IRN",
    "syria": "SYR",
    "north korea": "PRK",
    "south korea": "KOR",
    "turkey": "TUR",
}
_ALPHA2_EXTRA = {"XK": "RKS"}
"""Codes FollowTheMoney uses beside ISO 3166-1: Kosovo."""
_PARENTHESISED = re.compile(r"(.+?)\s*\((.+)\)")


@functools.lru_cache(maxsize=4096)
def country_code(value: str) -> str | None:
    """The ICAO state code of a country *value*: a name as the UN writes it (``Iraq``,
    ``Iran (Islamic Republic of)``, ``Türkiye``), an ISO alpha-2 code as FollowTheMoney does
    (``ru``, ``xk``) or an alpha-3 code; ``None`` when no table knows it.

    >>> country_code("Germany"), country_code("Iran (Islamic Republic of)"), country_code("ru")
    ('D', 'IRN', 'RUS')
    """
    text = " ".join(value.split())
    if not text:
        return None
    key = text.casefold().removeprefix("the ")
    if key in _COUNTRY_NAMES:
        return _COUNTRY_NAMES[key]
    if len(text) == 2 and text.isalpha():
        code = text.upper()
        if code in _ALPHA2_EXTRA:
            return _ALPHA2_EXTRA[code]
        country = pycountry.countries.get(alpha_2=code)
        return _ICAO.get(country.alpha_3, country.alpha_3) if country else None
    candidates = [text]
    parts = _PARENTHESISED.fullmatch(text)
    if parts:  # "Bolivia (Plurinational State of)" is "Plurinational State of Bolivia"
        candidates += [f"{parts[2]} {parts[1]}", parts[1]]
    for candidate in candidates:
        try:
            alpha3 = pycountry.countries.lookup(candidate).alpha_3
        except LookupError:
            continue
        return _ICAO.get(alpha3, alpha3)
    return None


# ---------------------------------------------------------------------------------------------
# Shared mapping helpers


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SLUG = re.compile(r"[^a-z0-9]+")


def _clean(text: str | None) -> str:
    return " ".join(_CONTROL.sub(" ", text or "").split())


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.casefold()).strip("-")


def _date_parts(value: str) -> tuple[int, ...]:
    """``(year[, month[, day]])`` of a partial ISO date, or ValueError."""
    text = value.strip()
    if "T" in text:
        text = text.split("T", 1)[0]
    match = re.fullmatch(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?", text)
    if not match:
        raise ValueError(f"birth date {value!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
    parts = tuple(int(p) for p in match.groups() if p is not None)
    year = parts[0]
    if not 1800 <= year <= datetime.date.today().year:
        raise ValueError(f"birth date {value!r}: the year is out of range")
    try:
        datetime.date(year, parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
    except ValueError:
        raise ValueError(f"birth date {value!r} is not a date") from None
    return parts


def _agreed_date(dates: Iterable[tuple[int, ...] | None]) -> str | None:
    """The most precise partial date every one of *dates* agrees with (``None`` stands for a
    date the list gives only roughly, which agrees with nothing more precise than nothing)."""
    common: tuple[int, ...] | None = None
    for parts in dates:
        if parts is None:
            return None
        if common is None:
            common = parts
            continue
        length = 0
        while length < min(len(common), len(parts)) and common[length] == parts[length]:
            length += 1
        common = common[:length]
        if not common:
            return None
    if not common:
        return None
    return "-".join([f"{common[0]:04d}", *(f"{p:02d}" for p in common[1:])])


def _entry_id(prefix: str, source_id: str, error: type[ListFormatError], where: str) -> str:
    entry_id = f"{prefix}{source_id.strip()}"
    if not source_id.strip() or not ENTRY_ID.fullmatch(entry_id):
        raise error(
            "bad-record",
            where,
            f"source id {source_id!r} does not make an entry id ([A-Za-z0-9._:-], up to 128)",
        )
    return entry_id


class _Names:
    """The names of one person: deduplicated, cleaned, at most 32 and 200 characters each."""

    def __init__(self) -> None:
        self.names: list[dict[str, str]] = []
        self.seen: set[tuple[str, str]] = set()
        self.notes: list[str] = []

    def add(self, surname: str | None, given_names: str | None = None) -> None:
        surname, given = _clean(surname), _clean(given_names)
        if not surname and given:
            surname, given = given, ""
        if not surname:
            return
        key = (surname.casefold(), given.casefold())
        if key in self.seen:
            return
        self.seen.add(key)
        if len(surname) > MAX_NAME_LENGTH or len(given) > MAX_NAME_LENGTH:
            self.notes.append(f"name longer than {MAX_NAME_LENGTH} characters left out")
            return
        if len(self.names) >= MAX_NAMES:
            self.notes.append(f"more than {MAX_NAMES} names: {surname!r} left out")
            return
        self.names.append(
            {"surname": surname, "given_names": given} if given else {"surname": surname}
        )


def _nationalities(values: Iterable[str], notes: list[str]) -> list[str]:
    codes: list[str] = []
    for value in values:
        code = country_code(value)
        if code is None:
            notes.append(f"nationality {value!r} is no known country: left out")
        elif code not in codes:
            if len(codes) >= MAX_NATIONALITIES:
                notes.append(f"more than {MAX_NATIONALITIES} nationalities: {value!r} left out")
            else:
                codes.append(code)
    return codes


_SEXES = {"male": "M", "female": "F", "m": "M", "f": "F"}


def _document_type(kind: str) -> str | None:
    text = kind.casefold()
    if "passport" in text:
        return "P"
    if "identi" in text or "id card" in text or "national id" in text:
        return "I"
    return None


def _document(
    person_id: str,
    number: str,
    state: str | None,
    kind: str,
    list_name: str,
    nationality: list[str],
    notes: list[str],
) -> Entry | None:
    """A document entry of a listed person's document, or ``None`` (with a note)."""
    cleaned = re.sub(r"[^0-9A-Za-z]", "", number).upper()
    if not cleaned or len(cleaned) > 24:
        notes.append(f"document number {number!r} is not 1 to 24 letters and digits: left out")
        return None
    code = country_code(state) if state else None
    if code is None:
        if len(nationality) != 1:
            what = f"issuing state {state!r} is no known country" if state else "no issuing state"
            notes.append(f"document {cleaned}: {what}: left out")
            return None
        code = nationality[0]
    entry: dict[str, Any] = {
        "number": cleaned,
        "issuing_state": code,
        "status": "invalid",
        "list": list_name,
        "action": "refer",
    }
    document_type = _document_type(kind)
    if document_type:
        entry["document_type"] = document_type
    entry_id = f"{person_id}:doc:{cleaned}"
    if not ENTRY_ID.fullmatch(entry_id):
        notes.append(f"document {cleaned}: entry id {entry_id!r} too long: left out")
        return None
    check_entry("document", entry, path=entry_id)
    return "document", entry_id, entry


# ---------------------------------------------------------------------------------------------
# Reading any format


def read_list(stream: IO[bytes], source: str, fmt: str) -> Iterator[ListEvent]:
    """The events of a list file of format *fmt* (one of :data:`FORMATS`); *source* names
    the file in ``where``."""
    if fmt in ("jsonl", "csv"):
        return _read_ours(stream, source, fmt)
    if fmt == "un-xml":
        return read_un_xml(stream, source)
    if fmt == "ftm":
        return read_ftm(stream, source)
    raise ValueError(f"unknown list format {fmt!r} (one of {', '.join(FORMATS)})")


def _read_ours(stream: IO[bytes], source: str, fmt: str, offset: int = 0) -> Iterator[ListEvent]:
    for number, record in read_list_records(stream, fmt):
        where = f"{source}:{number + offset}"
        if isinstance(record, Exception):
            yield ListEvent(where, error=JsonlListError("bad-record", where, str(record)))
            continue
        try:
            yield ListEvent(where, entry=entry_from_record(record))
        except WatchlistError as exc:
            yield ListEvent(where, error=JsonlListError("bad-record", where, str(exc)))


# ---------------------------------------------------------------------------------------------
# Our JSON Lines in blocks: the importer's fast lane for documents

DocumentRow = tuple[str, str, str, str | None, str, str, str]
"""A document entry in one tuple: ``(entry_id, number, issuing_state, document_type or None,
status, list, action)``, each value what :func:`entry_from_record` makes of the line."""


@dataclass(frozen=True, slots=True)
class DocumentRows:
    """Consecutive document lines of our JSON Lines, every one valid, read in one go."""

    where: str
    """``FILE:LINE`` of the first of them."""
    rows: list[DocumentRow]


def _bare(pattern: re.Pattern[str]) -> str:
    return pattern.pattern.removeprefix("^").removesuffix("$")


# A document line as our writers write it (the keys in this order, no spaces, no escapes,
# every value already as entry_from_record leaves it: upper case, no fillers, valid). None of
# the character classes takes a quote, a backslash or a line break, so a line that matches
# is one JSON object whose values are the groups as they stand, and entry_from_record would
# accept it and give back the same values. Every other line takes the strict way.
_DOCUMENT_LINE = (
    rf'\{{"id":"({_bare(ENTRY_ID)})","kind":"document","number":"({_bare(DOCUMENT_NUMBER)})",'
    rf'"issuing_state":"({_bare(COUNTRY)})"(?:,"document_type":"({_bare(DOCUMENT_TYPE)})")?,'
    rf'"status":"({"|".join(STATUSES)})","list":"({_bare(NAME)})"'
    rf'(?:,"action":"({"|".join(ACTIONS)})")?\}}\r?\n'
)
_DOCUMENT_LINES = re.compile("^" + _DOCUMENT_LINE, re.MULTILINE)
_ONE_DOCUMENT_LINE = re.compile(_DOCUMENT_LINE)
BLOCK_BYTES = 1 << 22
"""How much of a JSON Lines file :func:`read_list_blocks` reads at a time."""


def read_list_blocks(
    stream: IO[bytes], source: str, fmt: str
) -> Iterator[ListEvent | DocumentRows]:
    """:func:`read_list`'s events, in file order, but for our JSON Lines each run of document
    lines in the shape our writers write comes as one :class:`DocumentRows`.

    For an importer of millions of documents: a block of lines is checked by one regular
    expression instead of a JSON parse and :func:`entry_from_record` per line, and no object
    is made per line. A line of any other shape (a person, other key order, spaces, escapes,
    lower case, a bad record) goes through :func:`read_list` as before, so what is accepted,
    what it becomes and how a bad line is reported do not change.
    """
    if fmt != "jsonl":
        yield from read_list(stream, source, fmt)
        return
    number = 0  # lines before the block
    rest = b""
    while True:
        data = stream.read(BLOCK_BYTES)
        block = rest + data
        if data:
            cut = block.rfind(b"\n") + 1
            block, rest = block[:cut], block[cut:]
            if not block:  # one line longer than a block: read on
                continue
        elif not block:
            return
        elif not block.endswith(b"\n"):  # the last line, without its line break
            block += b"\n"
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            good = block.rfind(b"\n", 0, exc.start) + 1
            number = yield from _read_text(block[:good].decode("utf-8"), source, number)
            # The reader of record says where (and stops there, as it does).
            yield from _read_ours(io.BytesIO(block[good:]), source, "jsonl", number)
            return
        if '"kind":"document"' not in text:  # no document in the fast shape: persons, say
            yield from _read_ours(io.BytesIO(block), source, "jsonl", number)
            # A carriage return alone ends a line for the reader of record: count as it does.
            number += text.count("\n") + text.count("\r") - text.count("\r\n")
        else:
            number = yield from _read_text(text, source, number)
        if not data:
            return


def _read_text(text: str, source: str, number: int) -> Iterator[ListEvent | DocumentRows]:
    """The events of *text* (whole lines, each ending in a line break) whose first line is
    line *number* + 1; returns the number of the last."""
    found = _DOCUMENT_LINES.findall(text)
    if len(found) == text.count("\n"):  # every line one document (a match is one line)
        if found:
            yield DocumentRows(f"{source}:{number + 1}", _document_rows(found))
        return number + len(found)
    # Line by line: runs of documents in the fast shape, runs of other lines read as before.
    rows: list[DocumentRow] = []
    others: list[str] = []
    first = 0
    for line in text[:-1].split("\n"):
        number += 1
        match = _ONE_DOCUMENT_LINE.fullmatch(line + "\n")
        if match is None:
            if rows:
                yield DocumentRows(f"{source}:{first}", rows)
                rows = []
            if not others:
                first = number
            others.append(line)
            # A carriage return alone ends a line for the reader of record: count as it does.
            number += line.count("\r") - line.endswith("\r")
            continue
        if others:
            yield from _read_others(others, source, first)
            others = []
        if not rows:
            first = number
        rows += _document_rows((match.groups(),))
    if rows:
        yield DocumentRows(f"{source}:{first}", rows)
    if others:
        yield from _read_others(others, source, first)
    return number


def _read_others(lines: list[str], source: str, first: int) -> Iterator[ListEvent]:
    data = "\n".join(lines).encode("utf-8") + b"\n"
    return _read_ours(io.BytesIO(data), source, "jsonl", first - 1)


def _document_rows(found: Iterable[tuple[Any, ...]]) -> list[DocumentRow]:
    # An optional field absent is "" from findall and None from a match: both mean absent.
    return [
        (entry_id, number, state, kind or None, status, name, action or "refer")
        for entry_id, number, state, kind, status, name, action in found
    ]


# ---------------------------------------------------------------------------------------------
# UN Security Council Consolidated List


def _text(element: Element, tag: str) -> str:
    child = element.find(tag)
    return _clean(child.text) if child is not None else ""


def read_un_xml(stream: IO[bytes], source: str) -> Iterator[ListEvent]:
    """The events of the UN Security Council Consolidated List (``consolidated.xml``).

    ``CONSOLIDATED_LIST/INDIVIDUALS/INDIVIDUAL`` become person entries and their
    ``INDIVIDUAL_DOCUMENT`` document entries; ``ENTITIES/ENTITY`` (organisations) are
    ignored. Per individual:

    - id ``un:REFERENCE_NUMBER`` (``un:DATAID`` without one); list ``un-sc-`` and the
      ``UN_LIST_TYPE`` (``Al-Qaida`` -> ``un-sc-al-qaida``);
    - names: FIRST_NAME to FOURTH_NAME joined in the list's order as one name (the list does
      not say which part is the family name; the matcher takes such a name in any order),
      ``NAME_ORIGINAL_SCRIPT``, and every ``INDIVIDUAL_ALIAS`` of QUALITY ``Good`` (or
      ``a.k.a.``); ``Low`` quality aliases are left out with a note, as the UN itself calls
      them insufficient to identify anyone;
    - birth date: from every ``INDIVIDUAL_DATE_OF_BIRTH``: an ``EXACT`` ``DATE`` or ``YEAR``
      as given, a ``BETWEEN`` range within one year as that year; the entry keeps the most
      precise date all of them agree with, and none when they disagree or one is
      ``APPROXIMATELY`` (or a range over years): a wrong date would make a listed person a
      conflict, no date only leaves it to the name;
    - nationality: ``NATIONALITY/VALUE`` country names; sex: ``GENDER`` Male / Female.

    An individual without a name or with a date that is no date is skipped and reported as
    ``FILE: INDIVIDUAL #N (DATAID ..., REF)``.
    """
    try:
        events = defusedxml.ElementTree.iterparse(stream, events=("start", "end"), forbid_dtd=True)
        stack: list[Element] = []
        counts = {"INDIVIDUAL": 0, "ENTITY": 0}
        for event, element in events:
            if event == "start":
                if not stack and element.tag != "CONSOLIDATED_LIST":
                    yield _un_fatal(
                        source,
                        "not-the-format",
                        f"the root element is {element.tag!r}, not CONSOLIDATED_LIST: "
                        "not the UN Security Council Consolidated List",
                    )
                    return
                stack.append(element)
                continue
            stack.pop()
            tag = element.tag
            if tag not in counts or len(stack) != 2:
                continue
            counts[tag] += 1
            where = f"{source}: {tag} #{counts[tag]}"
            dataid = _text(element, "DATAID")
            reference = _text(element, "REFERENCE_NUMBER")
            label = ", ".join(
                part for part in (f"DATAID {dataid}" if dataid else "", reference) if part
            )
            if label:
                where += f" ({label})"
            if tag == "ENTITY":
                yield ListEvent(where, ignored="UN ENTITY (an organisation, not a person)")
            else:
                yield from _un_individual(element, where, dataid, reference)
            stack[-1].remove(element)  # bounded memory: what is read is let go
    except defusedxml.DefusedXmlException as exc:
        yield _un_fatal(
            source,
            "refused",
            f"refused: the XML declares a DTD or entities ({type(exc).__name__}); "
            "the UN list has none and none is ever expanded or fetched",
        )
    except ParseError as exc:
        line, column = exc.position
        problem = str(exc).split(":", 1)[0]
        yield _un_fatal(
            source,
            "bad-xml",
            f"line {line}, column {column + 1}: not well-formed XML ({problem}); "
            "the rest of the file is not read",
        )
    except (LookupError, ValueError) as exc:  # the XML declaration names an encoding Python
        # does not know (LookupError) or one expat cannot read ("multi-byte encodings are not
        # supported")
        yield _un_fatal(source, "bad-xml", f"not readable XML ({exc}); the file is not read")


def _un_fatal(source: str, reason: str, problem: str) -> ListEvent:
    return ListEvent(source, error=UNListError(reason, source, problem))


def _un_individual(
    element: Element, where: str, dataid: str, reference: str
) -> Iterator[ListEvent]:
    notes: list[str] = []
    try:
        if reference:
            entry_id = _entry_id("un:", reference, UNListError, where)
        else:
            entry_id = _entry_id("un:", dataid, UNListError, where)
        list_type = _slug(_text(element, "UN_LIST_TYPE"))
        list_name = f"un-sc-{list_type}"[:64].rstrip("-") if list_type else "un-sc"
        names = _Names()
        full = " ".join(
            part
            for part in (
                _text(element, t)
                for t in ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")
            )
            if part
        )
        names.add(full)
        names.add(_text(element, "NAME_ORIGINAL_SCRIPT"))
        for alias in element.iter("INDIVIDUAL_ALIAS"):
            name = _text(alias, "ALIAS_NAME")
            quality = _text(alias, "QUALITY").casefold()
            if not name:
                continue
            if quality == "low":
                notes.append(f"low-quality alias {name!r} left out")
                continue
            names.add(name)
        notes += names.notes
        if not names.names:
            raise UNListError("bad-record", where, "no name (FIRST_NAME ... FOURTH_NAME are empty)")
        entry: dict[str, Any] = {"names": names.names}
        dates = []
        for birth in element.iter("INDIVIDUAL_DATE_OF_BIRTH"):
            dates.append(_un_birth_date(birth, where))
        dates = [d for d in dates if d != ()]
        birth_date = _agreed_date(dates)
        if birth_date:
            entry["birth_date"] = birth_date
        elif dates:
            notes.append("birth dates approximate or disagreeing: no birth date kept")
        values = [_clean(v.text) for n in element.iter("NATIONALITY") for v in n.iter("VALUE")]
        nationality = _nationalities([v for v in values if v], notes)
        if nationality:
            entry["nationality"] = nationality
        sex = _SEXES.get(_text(element, "GENDER").casefold())
        if sex:
            entry["sex"] = sex
        entry |= {"list": list_name, "category": "sanctions", "action": "refer"}
        check_entry("person", entry, path=entry_id)
        documents = []
        seen: set[str] = set()
        for document in element.iter("INDIVIDUAL_DOCUMENT"):
            number = _text(document, "NUMBER")
            if not number:
                continue
            state = _text(document, "ISSUING_COUNTRY") or _text(document, "COUNTRY_OF_ISSUE")
            made = _document(
                entry_id,
                number,
                state,
                _text(document, "TYPE_OF_DOCUMENT"),
                list_name,
                nationality,
                notes,
            )
            if made and made[1] not in seen:
                seen.add(made[1])
                documents.append(made)
    except UNListError as exc:
        yield ListEvent(where, error=exc)
        return
    except WatchlistError as exc:
        yield ListEvent(where, error=UNListError("bad-record", where, str(exc)))
        return
    yield ListEvent(where, entry=("person", entry_id, entry))
    for document_entry in documents:
        yield ListEvent(where, entry=document_entry)
    for note in notes:
        yield ListEvent(where, note=note)


def _un_birth_date(birth: Element, where: str) -> tuple[int, ...] | None:
    """``()`` for no date at all, ``None`` for a rough one, else the date's parts."""
    kind = _text(birth, "TYPE_OF_DATE").upper()
    try:
        if kind == "BETWEEN":
            low, high = _text(birth, "FROM_YEAR"), _text(birth, "TO_YEAR")
            if not low or not high:
                return None
            first, last = _date_parts(low), _date_parts(high)
            if first[0] > last[0]:
                raise ValueError(f"FROM_YEAR {low} is after TO_YEAR {high}")
            return first[:1] if first[0] == last[0] else None
        value = _text(birth, "DATE") or _text(birth, "YEAR")
        if not value:
            return ()
        parts = _date_parts(value)
        return None if kind.startswith("APPROX") else parts
    except ValueError as exc:
        raise UNListError("bad-record", where, f"INDIVIDUAL_DATE_OF_BIRTH: {exc}") from None


# ---------------------------------------------------------------------------------------------
# FollowTheMoney / OpenSanctions entities


_DOCUMENT_SCHEMATA = ("Passport", "Identification")
_PERSON_NAME_PROPS = ("name", "alias", "previousName")


@dataclass
class _Holder:
    entry_id: str
    list_name: str
    nationality: list[str]
    documents: set[str]
    """The ids of the document entries made for the person so far: each once."""


def read_ftm(stream: IO[bytes], source: str) -> Iterator[ListEvent]:
    """The events of FollowTheMoney entities, one JSON object a line, as OpenSanctions
    publishes them (``entities.ftm.json``; the nested ``targets.nested.json`` too).

    A ``Person`` (``{"id", "schema": "Person", "properties": {...}, "datasets": [...]}``)
    becomes a person entry ``os:ID`` whose list is its dataset (``opensanctions`` when it has
    several); names from ``name``, ``alias``, ``previousName`` and ``lastName`` with
    ``firstName`` / ``middleName`` / ``secondName`` (``weakAlias`` left out with a note);
    ``birthDate`` as the UN reader's dates; ``nationality`` and ``citizenship`` ISO alpha-2
    codes; ``gender``. ``passportNumber`` and ``idNumber`` become document entries.
    ``Passport`` and ``Identification`` entities become document entries of their ``holder``
    (``os:HOLDER:doc:NUMBER``), wherever the holder appears in the file; a document whose
    holder is no ``Person`` of the file is reported at the end. Other schemata (companies,
    vessels, sanctions, addresses) are ignored and counted.

    Memory: a few bytes per person id (to link documents that come later), and the documents
    whose holder has not come yet.
    """
    holders: dict[str, _Holder] = {}
    pending: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    number = 0
    while True:
        line = stream.readline(MAX_FTM_LINE + 1)
        if not line:
            break
        number += 1
        if not line.strip():
            continue
        where = f"{source}:{number}"
        if len(line) > MAX_FTM_LINE:
            while line and not line.endswith(b"\n"):  # skip the rest, a bounded piece at a time
                line = stream.readline(MAX_FTM_LINE)
            problem = f"longer than {MAX_FTM_LINE} bytes: not an entity"
            yield ListEvent(where, error=FtMListError("bad-record", where, problem))
            continue
        try:
            entity = parse_json(line)  # JsonError, a ValueError, says "not UTF-8" too
        except ValueError as exc:
            yield ListEvent(where, error=FtMListError("bad-record", where, f"not JSON ({exc})"))
            continue
        try:
            schema = _ftm_schema(entity, where)
            if schema == "Person":
                events, holder = _ftm_person(entity, where)
                yield from events
                if holder is not None:
                    holders[entity["id"]] = holder
                    for doc_where, document in pending.pop(entity["id"], ()):
                        yield from _ftm_document(document, holder, doc_where)
            elif schema in _DOCUMENT_SCHEMATA:
                holder_id = _ftm_holder(entity, where)
                if holder_id in holders:
                    yield from _ftm_document(entity, holders[holder_id], where)
                else:
                    pending.setdefault(holder_id, []).append((where, entity))
            else:
                yield ListEvent(where, ignored=f"FtM {schema} (not a person or a document)")
        except FtMListError as exc:
            yield ListEvent(where, error=exc)
        except WatchlistError as exc:
            yield ListEvent(where, error=FtMListError("bad-record", where, str(exc)))
    for documents in pending.values():
        for where, entity in documents:
            what = f"FtM {entity['schema']} whose holder is no Person of the file"
            yield ListEvent(where, ignored=what)


def _ftm_schema(entity: Any, where: str) -> str:
    if not isinstance(entity, dict) or not isinstance(entity.get("schema"), str):
        raise FtMListError(
            "bad-record", where, 'an FtM entity {"id", "schema", "properties"} expected'
        )
    if not isinstance(entity.get("id"), str) or not entity["id"]:
        raise FtMListError("bad-record", where, "the entity has no id")
    properties = entity.get("properties", {})
    if not isinstance(properties, dict):
        raise FtMListError("bad-record", where, "properties: an object expected")
    return entity["schema"]


def _values(entity: dict[str, Any], prop: str, where: str) -> list[Any]:
    values = entity.get("properties", {}).get(prop, [])
    if isinstance(values, str | dict):
        values = [values]
    if not isinstance(values, list):
        raise FtMListError("bad-record", where, f"properties.{prop}: a list of values expected")
    return values


def _strings(entity: dict[str, Any], prop: str, where: str) -> list[str]:
    values = _values(entity, prop, where)
    if not all(isinstance(v, str) for v in values):
        raise FtMListError("bad-record", where, f"properties.{prop}: strings expected")
    return [text for text in (_clean(v) for v in values) if text]


def _ftm_person(entity: dict[str, Any], where: str) -> tuple[list[ListEvent], _Holder | None]:
    notes: list[str] = []
    entry_id = _entry_id("os:", entity["id"], FtMListError, where)
    datasets = entity.get("datasets") or []
    if not isinstance(datasets, list):  # true, 7: a TypeError below (make fuzz, list_ftm)
        raise FtMListError("bad-record", where, "datasets: a list expected")
    names_of = {d if NAME.fullmatch(d) else _slug(d) for d in datasets if isinstance(d, str)}
    names_of.discard("")
    list_name = names_of.pop() if len(names_of) == 1 else "opensanctions"
    if not list_name[0].isalpha():
        list_name = f"os-{list_name}"
    list_name = list_name[:64].rstrip("-")
    names = _Names()
    for prop in _PERSON_NAME_PROPS:
        for name in _strings(entity, prop, where):
            names.add(name)
    surnames = _strings(entity, "lastName", where)
    given = " ".join(
        _strings(entity, "firstName", where)
        + _strings(entity, "secondName", where)
        + _strings(entity, "middleName", where)
    )
    for surname in surnames:
        names.add(surname, given)
    for weak in _strings(entity, "weakAlias", where):
        notes.append(f"weak alias {weak!r} left out")
    notes += names.notes
    if not names.names:
        raise FtMListError("bad-record", where, "a Person without a name (name, alias, lastName)")
    entry: dict[str, Any] = {"names": names.names}
    dates = []
    for value in _strings(entity, "birthDate", where):
        try:
            dates.append(_date_parts(value))
        except ValueError as exc:
            raise FtMListError("bad-record", where, f"properties.birthDate: {exc}") from None
    birth_date = _agreed_date(dates)
    if birth_date:
        entry["birth_date"] = birth_date
    elif dates:
        notes.append("birth dates disagree: no birth date kept")
    countries = _strings(entity, "nationality", where) + _strings(entity, "citizenship", where)
    nationality = _nationalities(countries, notes)
    if nationality:
        entry["nationality"] = nationality
    sexes = {_SEXES.get(g.casefold()) for g in _strings(entity, "gender", where)}
    if len(sexes) == 1 and None not in sexes:
        entry["sex"] = sexes.pop()
    entry |= {"list": list_name, "category": "sanctions", "action": "refer"}
    check_entry("person", entry, path=entry_id)
    holder = _Holder(entry_id, list_name, nationality, set())
    events = [ListEvent(where, entry=("person", entry_id, entry))]
    for prop, kind in (("passportNumber", "passport"), ("idNumber", "identification")):
        for number in _strings(entity, prop, where):
            made = _document(entry_id, number, None, kind, list_name, nationality, notes)
            if made and made[1] not in holder.documents:
                holder.documents.add(made[1])
                events.append(ListEvent(where, entry=made))
    # the nested form (targets.nested.json) embeds the person's documents
    for prop in ("identification", "passport", "passports"):
        for value in _values(entity, prop, where):
            if isinstance(value, dict) and value.get("schema") in _DOCUMENT_SCHEMATA:
                events += _ftm_document(value, holder, where)
    events += [ListEvent(where, note=note) for note in notes]
    return events, holder


def _ftm_holder(entity: dict[str, Any], where: str) -> str:
    holders = _values(entity, "holder", where)
    ids = [h["id"] if isinstance(h, dict) else h for h in holders]
    if len(ids) != 1 or not isinstance(ids[0], str) or not ids[0]:
        raise FtMListError(
            "bad-record", where, f"{entity['schema']}: one holder (a Person id) expected"
        )
    return ids[0]


def _ftm_document(entity: dict[str, Any], holder: _Holder, where: str) -> list[ListEvent]:
    notes: list[str] = []
    numbers = _strings(entity, "number", where) or _strings(entity, "passportNumber", where)
    if not numbers:
        return [
            ListEvent(
                where,
                error=FtMListError("bad-record", where, f"{entity['schema']} without a number"),
            )
        ]
    countries = _strings(entity, "country", where)
    kind = " ".join([entity["schema"], *_strings(entity, "type", where)])
    events = []
    for number in numbers:
        made = _document(
            holder.entry_id,
            number,
            countries[0] if countries else None,
            kind,
            holder.list_name,
            holder.nationality,
            notes,
        )
        if made and made[1] not in holder.documents:
            holder.documents.add(made[1])
            events.append(ListEvent(where, entry=made))
    return events + [ListEvent(where, note=note) for note in notes]
