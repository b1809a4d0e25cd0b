"""Machine Readable Zones (ICAO Doc 9303): parse them, check them, repair OCR slips, compose them.

The MRZ is the block of OCR-B text at the foot of a passport's data page, on the back of an
identity card or across a visa. Doc 9303 defines five layouts, told apart by their shape and,
for visas, by their first character:

======  =====  ==========================================  ========
format  shape  documents                                   Doc 9303
======  =====  ==========================================  ========
TD1     3x30   identity cards, residence permits (ID-1)    Part 5
TD2     2x36   identity cards, travel documents (ID-2)     Part 6
TD3     2x44   passport books (ID-3)                       Part 4
MRVA    2x44   full-size visas (first character ``V``)     Part 7
MRVB    2x36   smaller visas (first character ``V``)       Part 7
======  =====  ==========================================  ========

Only ``A``-``Z``, ``0``-``9`` and the filler ``<`` appear. Every field has a fixed place and is
padded with fillers. The holder's name is ``PRIMARY<<SECONDARY<NAMES``, dates are ``YYMMDD``,
and *check digits* protect the document number, the dates, the TD3 personal number and, in
TD1/TD2/TD3, a *composite* of all of them (visas have no composite). A check digit is the sum
of the character values (digits as themselves, ``A``-``Z`` as 10-35, ``<`` as 0) weighted
7, 3, 1, 7, 3, 1..., modulo 10: see :func:`check_digit`.

>>> text = (
...     "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\\n"
...     "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
... )
>>> doc = parse(text, today=datetime.date(2025, 1, 1))
>>> doc.format, doc.surname, doc.given_names, doc.document_number
('TD3', 'ERIKSSON', 'ANNA MARIA', 'L898902C3')
>>> doc.birth_date, doc.expiry_date, doc.valid
('1974-08-12', '2012-04-15', True)
>>> doc.warnings[-1]
'document expired on 2012-04-15'
>>> compose("TD1", document_type="ID", issuing_state="D", surname="Mustermann",
...         given_names="Erika", document_number="T22000129", nationality="D", sex="X",
...         birth_date=datetime.date(1964, 8, 12), expiry_date=datetime.date(2020, 10, 31))
'IDD<<T220001293<<<<<<<<<<<<<<<\\n6408125<2010315D<<<<<<<<<<<<<4\\nMUSTERMANN<<ERIKA<<<<<<<<<<<<<'

That is the German identity card specimen (Erika Mustermann), to the character.

What :func:`parse` forgives, and what it does not
-------------------------------------------------
Readers send MRZs in many shapes, so :func:`parse` accepts CR, LF or CRLF between lines, the
lines joined into one string (90, 72 or 88 characters) or separated by spaces, surrounding
spaces and blank lines, and lowercase. The *content* is strict: any other character, or a shape
that is none of the five, raises :class:`MrzError` with one line saying what is wrong. Anything
wrong *inside* a well-formed MRZ (a failing check digit, an impossible date, an unknown state
code) does not raise: the result says ``valid=False`` and lists ``checks`` and ``warnings``.

Dates: two digits of year
-------------------------
``YYMMDD`` leaves the century open. A birth date is taken in the latest century that does not
put it after *today* (nobody is born in the future; people over 100 are read 100 years too
young, which no rule on two digits can avoid). An expiry date is taken in the window from 79
years ago to :data:`EXPIRY_YEARS_AHEAD` (20) years ahead: documents are issued for at most 10
years (some identity cards 15), so ``45`` read in 2025 is 2045, and ``46`` is 1946. Unknown
parts (Doc 9303 lets ``<`` stand for an unknown day or month of birth) and impossible dates
(month 13, 30 February) give ``None`` and a warning, never an exception.

OCR repair: only what a check digit (or the code list) confirms
---------------------------------------------------------------
Readers confuse ``O``/``0``, ``I``/``1``, ``B``/``8``, ``S``/``5``, ``Z``/``2``, ``G``/``6``,
``D``/``0`` and ``Q``/``0``. Where a field can only hold digits (dates, check digits), a
confusable letter there is certainly a misread; it is replaced by its digit if, and only if,
the field then passes its own check digit. That is safe: the weights 7, 3 and 1 are prime to
10, so one wrong digit always changes a check digit, and a field that passes after its letters
became digits holds the digits that were printed (unless it had two faults at once). Where a
field can only hold letters (issuing state, nationality), digits are replaced only when exactly
one reading is on the ICAO code list and the code as read is not (``GB0`` stays: both ``GBO``
and ``GBD`` are codes). Names and optional data have no check digit of their own and are
never touched; nor is the TD3 personal number, for the reason that follows.

Document numbers are not repaired either, except a check digit read as a letter. They mix
letters and digits, so a confusion there cannot be seen, only guessed, and the guess cannot be
confirmed: a check digit detects a wrong character but cannot say *which* one. Measured on
random numbers with one character misread, the rule "the check digit fails and exactly one
confusable substitution makes it pass" restores about 56% of true confusions, but it also turns
about 20% of other misreads (``3`` read as ``8``, say) into a *different* number that passes
every check: a wrong identity marked valid, where a refused read costs one more scan. The
composite cannot arbitrate, as it weighs the document number exactly as the number's own check
digit does, and ``G``/``6`` (16 and 6) weigh the same modulo 10, so that confusion passes every
check digit unseen. So when the number is the only fault and exactly one substitution would
make it pass, that reading is offered in ``warnings`` and nothing more; a caller holding
independent evidence (the chip: BAC succeeds only with the right number) may try it.

Every repair is listed in ``corrections``; ``checks`` and ``valid`` describe the repaired text,
which is what ``lines`` holds.
"""

from __future__ import annotations

import datetime
import itertools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import icao_states

__all__ = [
    "EXPIRY_YEARS_AHEAD",
    "FORMATS",
    "MrzDocument",
    "MrzError",
    "check_digit",
    "compose",
    "parse",
]

#: The five layouts, by the name :attr:`MrzDocument.format` gives them.
FORMATS = ("TD1", "TD2", "TD3", "MRVA", "MRVB")

#: How far ahead an expiry date may lie; a later reading of the two-digit year is a past one.
EXPIRY_YEARS_AHEAD = 20

# (line, index) of one character, and (line, start, end) of a field; lines and indexes from 0.
_Cell = tuple[int, int]
_Span = tuple[int, int, int]


class MrzError(ValueError):
    """The text is not an MRZ: wrong shape or a character an MRZ never holds.

    The message is one line, e.g. ``invalid character '$' at line 2, column 7``.
    """


# --- check digits -----------------------------------------------------------------------------

_VALUES = {
    **{str(digit): digit for digit in range(10)},
    **{chr(ord("A") + i): 10 + i for i in range(26)},
    "<": 0,
}
# Long enough for any MRZ field: a TD3 composite is 39 characters.
_WEIGHTS = (7, 3, 1) * 16


def check_digit(field: str) -> str:
    """The Doc 9303 check digit of *field*: values weighted 7-3-1, summed, modulo 10.

    >>> check_digit("L898902C3"), check_digit("740812"), check_digit("<<<<<<<<<<<<<<")
    ('6', '2', '0')

    Raises :class:`ValueError` for a character an MRZ never holds.
    """
    weights = _WEIGHTS if len(field) <= len(_WEIGHTS) else itertools.cycle((7, 3, 1))
    try:
        return str(sum(map(operator.mul, map(_VALUES.__getitem__, field), weights)) % 10)
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is not an MRZ character (in {field!r})") from None


# --- layouts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where each field of one format lies. Document code and issuing state never move."""

    format: str
    lines: int
    width: int
    name: _Span
    document_number: _Span
    document_number_check: _Cell
    nationality: _Span
    birth_date: _Span
    birth_date_check: _Cell
    sex: _Cell
    expiry_date: _Span
    expiry_date_check: _Cell
    optional_data: _Span
    personal_number_check: _Cell | None = None
    optional_data_2: _Span | None = None
    composite: tuple[_Span, ...] = ()
    composite_check: _Cell | None = None
    # TD1 and TD2: a number over 9 characters spills into the optional data (see _number).
    long_numbers: bool = False
    default_type: str = "P"


_DOCUMENT_CODE: _Span = (0, 0, 2)
_ISSUING_STATE: _Span = (0, 2, 5)


def _two_line(
    format: str, width: int, *, personal_number: bool, composite: bool, default_type: str
) -> _Layout:
    """TD2, TD3 and both visas share line 2 up to the optional data; only the tail differs."""
    end = width - (personal_number + composite)  # the optional data ends before the checks
    return _Layout(
        format,
        2,
        width,
        name=(0, 5, width),
        document_number=(1, 0, 9),
        document_number_check=(1, 9),
        nationality=(1, 10, 13),
        birth_date=(1, 13, 19),
        birth_date_check=(1, 19),
        sex=(1, 20),
        expiry_date=(1, 21, 27),
        expiry_date_check=(1, 27),
        optional_data=(1, 28, end),
        personal_number_check=(1, end) if personal_number else None,
        composite=((1, 0, 10), (1, 13, 20), (1, 21, width - 1)) if composite else (),
        composite_check=(1, width - 1) if composite else None,
        long_numbers=format == "TD2",
        default_type=default_type,
    )


_LAYOUTS = {
    "TD1": _Layout(
        "TD1",
        3,
        30,
        name=(2, 0, 30),
        document_number=(0, 5, 14),
        document_number_check=(0, 14),
        nationality=(1, 15, 18),
        birth_date=(1, 0, 6),
        birth_date_check=(1, 6),
        sex=(1, 7),
        expiry_date=(1, 8, 14),
        expiry_date_check=(1, 14),
        optional_data=(0, 15, 30),
        optional_data_2=(1, 18, 29),
        composite=((0, 5, 30), (1, 0, 7), (1, 8, 15), (1, 18, 29)),
        composite_check=(1, 29),
        long_numbers=True,
        default_type="I",
    ),
    "TD2": _two_line("TD2", 36, personal_number=False, composite=True, default_type="I"),
    "TD3": _two_line("TD3", 44, personal_number=True, composite=True, default_type="P"),
    "MRVA": _two_line("MRVA", 44, personal_number=False, composite=False, default_type="V"),
    "MRVB": _two_line("MRVB", 36, personal_number=False, composite=False, default_type="V"),
}


# --- the parsed document ----------------------------------------------------------------------


@dataclass(frozen=True)
class MrzDocument:
    """What an MRZ says, whether its check digits hold, and what was repaired or is doubtful.

    Text fields have their fillers stripped; names have ``<`` turned into spaces. Dates are ISO
    ``YYYY-MM-DD`` strings, or ``None`` when unknown or impossible (a warning says which).
    """

    format: str
    """``"TD1"``, ``"TD2"``, ``"TD3"``, ``"MRVA"`` or ``"MRVB"``."""
    document_type: str
    """The document code: ``"P"``, ``"PT"``, ``"I"``, ``"ID"``, ``"AC"``, ``"V"``..."""
    issuing_state: str
    """Issuing state or organization (Doc 9303 Part 3 code, e.g. ``"UTO"``, ``"D"``, ``"XOM"``)."""
    surname: str
    """The primary identifier."""
    given_names: str
    """The secondary identifier, names separated by single spaces."""
    name_truncated: bool
    """The name field is full to its last character, so the issuer may have truncated it."""
    document_number: str
    """The whole number, TD1/TD2 overflow included."""
    nationality: str
    birth_date: str | None
    sex: str
    """``"M"``, ``"F"`` or ``"X"`` (the MRZ's ``<``: unspecified)."""
    expiry_date: str | None
    optional_data: str
    """TD3: the personal number; TD1: optional data of line 1; others: the optional data."""
    optional_data_2: str
    """TD1 only: the optional data of line 2 (Doc 9303 keeps the two fields apart)."""
    valid: bool
    """Every check digit passes (after repairs, which ``corrections`` lists). Only that: an
    impossible date or an unknown state code can come with ``valid=True``; see ``warnings``."""
    checks: dict[str, bool]
    """Each check digit's verdict: ``document_number``, ``birth_date``, ``expiry_date``, then
    ``personal_number`` (TD3) and ``composite`` (TD1, TD2, TD3)."""
    corrections: list[dict[str, Any]]
    """OCR repairs: ``field``, ``line`` and ``position`` (from 1, as Doc 9303 counts),
    ``from``, ``to``, ``reason``."""
    warnings: list[str]
    """Doubts that do not make the MRZ unreadable: unknown codes, impossible dates, expiry..."""
    lines: tuple[str, ...]
    """The MRZ lines, normalized and with the repairs applied."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (what ``borderlane-edge mrz parse`` prints)."""
        return {
            "format": self.format,
            "document_type": self.document_type,
            "issuing_state": self.issuing_state,
            "surname": self.surname,
            "given_names": self.given_names,
            "name_truncated": self.name_truncated,
            "document_number": self.document_number,
            "nationality": self.nationality,
            "birth_date": self.birth_date,
            "sex": self.sex,
            "expiry_date": self.expiry_date,
            "optional_data": self.optional_data,
            "optional_data_2": self.optional_data_2,
            "valid": self.valid,
            "checks": dict(self.checks),
            "corrections": [dict(c) for c in self.corrections],
            "warnings": list(self.warnings),
            "lines": list(self.lines),
        }


# --- parse ------------------------------------------------------------------------------------

_SHAPES = {(3, 30): "TD1", (2, 36): "TD2", (2, 44): "TD3"}
_JOINED = {90: (3, 30), 72: (2, 36), 88: (2, 44)}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_INVALID = re.compile(r"[^A-Z0-9<]")
# Only ASCII: str.upper() would turn "ß" into "SS" and shift every column after it.
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
_A_DIGIT = re.compile(r"[0-9]")


def parse(text: str, *, today: datetime.date | None = None) -> MrzDocument:
    """Read the MRZ in *text*: detect its format, extract, check and (cautiously) repair it.

    *today* anchors the century of two-digit years and the "expired" warning; it defaults to
    the system date. Raises :class:`MrzError` if *text* is not an MRZ; everything else, failing
    check digits included, comes back in the :class:`MrzDocument`.
    """
    lines = _normalize(text)
    shape = (len(lines), len(lines[0]))
    format = _SHAPES[shape]
    if lines[0][0] == "V":  # a visa has the shape of a TD3 or a TD2; its code tells it apart
        format = "MRVA" if format == "TD3" else "MRVB" if format == "TD2" else format
    layout = _LAYOUTS[format]
    if today is None:
        today = datetime.date.today()
    elif isinstance(today, datetime.datetime):  # a datetime would not compare with dates
        today = today.date()
    grid = _Grid(lines)
    warnings: list[str] = []
    _repair(grid, layout, warnings)
    return _read(grid, layout, today, warnings)


def _normalize(text: str) -> tuple[str, ...]:
    """The MRZ lines in *text*, upper case; raises MrzError unless they have an MRZ's shape."""
    lines = [line.strip() for line in _LINE_BREAK.split(text)]
    lines = [line.translate(_UPPER) for line in lines if line]
    if len(lines) == 1 and len(lines[0].split()) > 1:
        lines = lines[0].split()  # lines joined by spaces or tabs
    if len(lines) == 1 and len(lines[0]) in _JOINED:
        count, width = _JOINED[len(lines[0])]
        lines = [lines[0][i * width : (i + 1) * width] for i in range(count)]
    if (len(lines), len(lines[0]) if lines else 0) not in _SHAPES or len(set(map(len, lines))) > 1:
        raise MrzError(
            "expected 2 lines of 44, 2 of 36 or 3 of 30 characters; got " + _describe(lines)
        )
    for number, line in enumerate(lines, 1):
        if bad := _INVALID.search(line):
            raise MrzError(
                f"invalid character {bad.group()!r} at line {number}, column {bad.start() + 1}"
            )
    return tuple(lines)


def _describe(lines: list[str]) -> str:
    if not lines:
        return "no text"
    if len(lines) == 1:
        return f"1 line of {len(lines[0])}"
    if len(lines) > 4:
        return f"{len(lines)} lines"
    lengths = [str(len(line)) for line in lines]
    return f"{len(lines)} lines of {', '.join(lengths[:-1])} and {lengths[-1]}"


class _Grid:
    """The MRZ lines being read; repairs go through :meth:`put`, which records them."""

    __slots__ = ("corrections", "rows")

    def __init__(self, lines: tuple[str, ...]) -> None:
        self.rows = list(lines)
        self.corrections: list[dict[str, Any]] = []

    def text(self, span: _Span) -> str:
        line, start, end = span
        return self.rows[line][start:end]

    def cell(self, cell: _Cell) -> str:
        return self.rows[cell[0]][cell[1]]

    def put(self, cell: _Cell, char: str, field: str, reason: str) -> None:
        line, index = cell
        row = self.rows[line]
        self.corrections.append(
            {
                "field": field,
                "line": line + 1,
                "position": index + 1,
                "from": row[index],
                "to": char,
                "reason": reason,
            }
        )
        self.rows[line] = row[:index] + char + row[index + 1 :]


@dataclass(frozen=True)
class _Number:
    """Where the document number and its check digit are, TD1/TD2 overflow included."""

    spans: tuple[_Span, ...]  # the number field, then any overflow (without its check digit)
    check: _Cell
    optional_start: int  # where the optional data proper starts, after any overflow

    def value(self, grid: _Grid) -> str:
        return "".join(grid.text(span) for span in self.spans)

    @property
    def cells(self) -> list[_Cell]:
        return [(line, i) for line, start, end in self.spans for i in range(start, end)]


def _number(grid: _Grid, layout: _Layout) -> _Number:
    """Locate the document number.

    Doc 9303 Parts 5 and 6: a number longer than 9 characters puts its first 9 in the number
    field, a ``<`` where the check digit would be, then the rest of the number and its check
    digit at the start of the optional data, closed by a ``<``. The check digit covers the
    whole number without that ``<`` (``D23145890734`` -> ``9``).
    """
    opt_line, opt_start, _ = layout.optional_data
    if layout.long_numbers and grid.cell(layout.document_number_check) == "<":
        optional = grid.text(layout.optional_data)
        length = optional.find("<")
        if length == -1:
            length = len(optional)
        if length:
            overflow = (opt_line, opt_start, opt_start + length - 1)
            check = (opt_line, opt_start + length - 1)
            return _Number((layout.document_number, overflow), check, opt_start + length + 1)
    return _Number((layout.document_number,), layout.document_number_check, opt_start)


def _passes(field: str, check: str) -> bool:
    return check_digit(field) == check


def _personal_number_passes(field: str, check: str) -> bool:
    # Doc 9303 Part 4: an unused (all-filler) personal number may have < or 0 as check digit.
    return check_digit(field) == check or (check == "<" and field == "<" * len(field))


def _composite(rows: list[str], layout: _Layout) -> str:
    return "".join(rows[line][start:end] for line, start, end in layout.composite)


def _checks(grid: _Grid, layout: _Layout, number: _Number) -> dict[str, bool]:
    checks = {
        "document_number": _passes(number.value(grid), grid.cell(number.check)),
        "birth_date": _passes(grid.text(layout.birth_date), grid.cell(layout.birth_date_check)),
        "expiry_date": _passes(grid.text(layout.expiry_date), grid.cell(layout.expiry_date_check)),
    }
    if layout.personal_number_check:
        checks["personal_number"] = _personal_number_passes(
            grid.text(layout.optional_data), grid.cell(layout.personal_number_check)
        )
    if layout.composite_check:
        checks["composite"] = _passes(
            _composite(grid.rows, layout), grid.cell(layout.composite_check)
        )
    return checks


# --- OCR repair -------------------------------------------------------------------------------

# What readers confuse: the digit each letter is mistaken for, and the letters each digit is.
_DIGIT_FOR_LETTER = {"O": "0", "D": "0", "Q": "0", "I": "1", "B": "8", "S": "5", "Z": "2", "G": "6"}
_LETTERS_FOR_DIGIT = {"0": "ODQ", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G"}
_LOOK_ALIKE_LETTER = re.compile(f"[{''.join(_DIGIT_FOR_LETTER)}]")
_LOOK_ALIKE_DIGIT = re.compile(f"[{''.join(_LETTERS_FOR_DIGIT)}]")

_DIGIT_FIELD = "a digit field read with a letter; the repaired field passes its check digit"
_CHECK_DIGIT = "a check digit read as a letter; the repaired check digit holds"
_STATE_CODE = "a state code read with a digit; only this reading is on the ICAO code list"


def _repair(grid: _Grid, layout: _Layout, warnings: list[str]) -> None:
    """Undo the OCR confusions a check digit or the code list confirms (module docstring)."""
    for field, span, check in (
        ("birth_date", layout.birth_date, layout.birth_date_check),
        ("expiry_date", layout.expiry_date, layout.expiry_date_check),
    ):
        _repair_digits(grid, field, span, check)
    if layout.personal_number_check:
        _repair_check(
            grid,
            "personal_number_check",
            layout.personal_number_check,
            lambda digit: _personal_number_passes(grid.text(layout.optional_data), digit),
        )
    _repair_code(grid, "issuing_state", _ISSUING_STATE)
    _repair_code(grid, "nationality", layout.nationality)
    _repair_document_number(grid, layout, warnings)
    if layout.composite_check:
        composite = _composite(grid.rows, layout)
        _repair_check(
            grid, "composite_check", layout.composite_check, lambda d: _passes(composite, d)
        )


def _repair_digits(grid: _Grid, field: str, span: _Span, check: _Cell) -> None:
    if not _LOOK_ALIKE_LETTER.search(grid.text(span) + grid.cell(check)):
        return
    line, start, end = span
    cells = [(line, i) for i in range(start, end)] + [check]
    read = [grid.cell(cell) for cell in cells]
    fixed = [_DIGIT_FOR_LETTER.get(char, char) for char in read]
    if fixed[-1] not in _DIGITS or any(c not in _DIGITS and c != "<" for c in fixed[:-1]):
        return  # another kind of misread as well: nothing confirms a repair
    if not _passes("".join(fixed[:-1]), fixed[-1]):
        return
    for cell, old, new in zip(cells, read, fixed, strict=True):
        if old != new:
            name = field if cell != check else f"{field}_check"
            grid.put(cell, new, name, _DIGIT_FIELD)


def _repair_check(grid: _Grid, field: str, cell: _Cell, holds: Callable[[str], bool]) -> None:
    read = grid.cell(cell)
    if read in _DIGIT_FOR_LETTER and holds(_DIGIT_FOR_LETTER[read]):
        grid.put(cell, _DIGIT_FOR_LETTER[read], field, _CHECK_DIGIT)


def _repair_code(grid: _Grid, field: str, span: _Span) -> None:
    code = grid.text(span)
    if not _LOOK_ALIKE_DIGIT.search(code) or icao_states.is_known(code):
        return
    readings = {
        "".join(letters)
        for letters in itertools.product(*(_LETTERS_FOR_DIGIT.get(char, char) for char in code))
    }
    known = [reading for reading in readings if icao_states.is_known(reading)]
    if len(known) != 1:
        return  # no reading, or several, on the list: nothing confirms one
    line, start, _ = span
    for offset, (old, new) in enumerate(zip(code, known[0], strict=True)):
        if old != new:
            grid.put((line, start + offset), new, field, _STATE_CODE)


def _repair_document_number(grid: _Grid, layout: _Layout, warnings: list[str]) -> None:
    """Repair a check digit read as a letter; only *suggest* a repair of the number itself."""
    number = _number(grid, layout)
    value, check = number.value(grid), grid.cell(number.check)
    if _passes(value, check):
        return
    if check in _DIGIT_FOR_LETTER:  # the check digit itself was misread, if it then holds
        _repair_check(grid, "document_number_check", number.check, lambda d: _passes(value, d))
        return  # and if it does not, two faults in one field: nothing to suggest
    others = _checks(grid, layout, number)
    del others["document_number"]
    others.pop("composite", None)  # judged per candidate below
    if check not in _DIGITS or not all(others.values()):
        return
    candidates = []
    for index, (cell, char) in enumerate(zip(number.cells, value, strict=True)):
        for alternative in _DIGIT_FOR_LETTER.get(char, _LETTERS_FOR_DIGIT.get(char, "")):
            candidate = value[:index] + alternative + value[index + 1 :]
            if _passes(candidate, check) and _composite_holds(grid, layout, cell, alternative):
                candidates.append((cell, char, alternative))
    if len(candidates) == 1:
        (line, index), char, alternative = candidates[0]
        warnings.append(
            f"document number fails its check digit; reading {char!r} at line {line + 1}, "
            f"position {index + 1} as {alternative!r} would pass every check (not applied: "
            "a check digit cannot confirm it)"
        )


def _composite_holds(grid: _Grid, layout: _Layout, cell: _Cell, char: str) -> bool:
    if not layout.composite_check:
        return True  # visas have no composite
    rows = list(grid.rows)
    line, index = cell
    rows[line] = rows[line][:index] + char + rows[line][index + 1 :]
    return _passes(_composite(rows, layout), grid.cell(layout.composite_check))


# --- reading the fields -----------------------------------------------------------------------

_DOCUMENT_CODES = {"TD1": "ACI", "TD2": "ACI", "TD3": "P", "MRVA": "V", "MRVB": "V"}


def _read(grid: _Grid, layout: _Layout, today: datetime.date, warnings: list[str]) -> MrzDocument:
    number = _number(grid, layout)
    checks = _checks(grid, layout, number)

    document_code = grid.text(_DOCUMENT_CODE)
    if document_code[0] not in _DOCUMENT_CODES[layout.format]:
        expected = " or ".join(_DOCUMENT_CODES[layout.format])
        warnings.append(
            f"document code {document_code!r}: Doc 9303 starts a {layout.format} code with "
            f"{expected}"
        )
    issuing_state = grid.text(_ISSUING_STATE).rstrip("<")
    nationality = grid.text(layout.nationality).rstrip("<")
    for what, code in (("issuing state", issuing_state), ("nationality", nationality)):
        if warning := _code_warning(what, code):
            warnings.append(warning)

    name_field = grid.text(layout.name)
    surname, given_names = _names(name_field)
    name_truncated = name_field[-1] != "<"
    if name_truncated:
        warnings.append("name field is full: the name may be truncated")
    if _A_DIGIT.search(name_field):
        warnings.append("name field holds digits, which names never do (OCR error?)")

    document_number = number.value(grid).rstrip("<")

    birth_date = _date(grid.text(layout.birth_date), "birth date", today, warnings, birth=True)
    expiry_date = _date(grid.text(layout.expiry_date), "expiry date", today, warnings)
    if expiry_date is not None and expiry_date < today.isoformat():
        warnings.append(f"document expired on {expiry_date}")

    sex = grid.cell(layout.sex)
    if sex == "<":
        sex = "X"
    elif sex not in "MF":
        warnings.append(f"sex {sex!r} is not M, F or < (unspecified); read as X")
        sex = "X"

    opt_line, _, opt_end = layout.optional_data
    optional_data = grid.rows[opt_line][number.optional_start : opt_end].strip("<")
    optional_data_2 = grid.text(layout.optional_data_2).strip("<") if layout.optional_data_2 else ""

    return MrzDocument(
        format=layout.format,
        document_type=document_code.strip("<"),
        issuing_state=issuing_state,
        surname=surname,
        given_names=given_names,
        name_truncated=name_truncated,
        document_number=document_number,
        nationality=nationality,
        birth_date=birth_date,
        sex=sex,
        expiry_date=expiry_date,
        optional_data=optional_data,
        optional_data_2=optional_data_2,
        valid=all(checks.values()),
        checks=checks,
        corrections=grid.corrections,
        warnings=warnings,
        lines=tuple(grid.rows),
    )


def _code_warning(what: str, code: str) -> str | None:
    if code in icao_states.SPECIMEN:
        name = icao_states.SPECIMEN[code]
        return f"{what} {code!r} is a specimen code ({name}, only on Doc 9303 specimens)"
    if code not in icao_states.CODES:
        return f"unknown {what} code {code!r} (not in ICAO Doc 9303 Part 3)"
    return None


def _names(field: str) -> tuple[str, str]:
    """``ERIKSSON<<ANNA<MARIA<<<`` -> ``("ERIKSSON", "ANNA MARIA")``."""
    primary, _, secondary = field.rstrip("<").partition("<<")
    return (
        " ".join(part for part in primary.split("<") if part),
        " ".join(part for part in secondary.split("<") if part),
    )


def _date(
    raw: str, what: str, today: datetime.date, warnings: list[str], *, birth: bool = False
) -> str | None:
    """``YYMMDD`` as an ISO date with its century inferred (module docstring), or ``None``."""
    if "<" in raw:
        warnings.append(f"{what} unknown or partly unknown ({raw})")
        return None
    if not raw.isdigit():  # ASCII only by now: isdigit() cannot meet other digits
        warnings.append(f"{what} {raw!r} is not a date")
        return None
    yy, month, day = int(raw[:2]), int(raw[2:4]), int(raw[4:])
    if birth:
        year = today.year // 100 * 100 + yy
        if (year, month, day) > (today.year, today.month, today.day):
            year -= 100
    else:
        oldest = today.year + EXPIRY_YEARS_AHEAD - 99
        year = oldest + (yy - oldest) % 100
    try:
        return datetime.date(year, month, day).isoformat()
    except ValueError:
        warnings.append(f"impossible {what} {raw} ({year}-{raw[2:4]}-{raw[4:]})")
        return None


# --- compose ----------------------------------------------------------------------------------

# Between names: one filler, whatever separated them (spaces, hyphens, several of them).
_NAME_SEPARATORS = str.maketrans({" ": "<", "-": "<"})
_FILLERS = re.compile("<+")


def compose(
    format: str,
    *,
    document_type: str | None = None,
    issuing_state: str,
    surname: str,
    given_names: str = "",
    document_number: str,
    nationality: str,
    birth_date: datetime.date | str | None,
    sex: str,
    expiry_date: datetime.date | str | None,
    optional_data: str = "",
    optional_data_2: str = "",
) -> str:
    """Build the MRZ of a document from its fields, every check digit computed.

    The inverse of :func:`parse`: the virtual reader, synthetic travellers and the virtual
    chip's DG1 use it. Returns the lines joined with ``"\\n"``.

    - *format*: one of :data:`FORMATS`. *document_type* defaults to ``P`` (TD3), ``I``
      (TD1, TD2) or ``V`` (visas); a visa's code starts with ``V`` and no other's does.
    - *issuing_state*, *nationality*: codes of 1 to 3 letters (``"D"`` is written ``D<<``).
    - *surname*, *given_names*: letters, with spaces or hyphens between names. A name that does
      not fit raises :class:`ValueError` (truncating a name is the issuer's decision); a name
      that fills the field exactly is what a truncated one looks like.
    - *document_number*: letters and digits. TD1 (up to 22 characters) and TD2 (up to 14)
      write a number over 9 characters as Doc 9303 Parts 5 and 6 say: the overflow and its
      check digit open the optional data.
    - *birth_date*, *expiry_date*: a date, ``None`` (unknown: ``<<<<<<``) or the six MRZ
      characters themselves (``"7408<<"``) for partly unknown dates.
    - *sex*: ``M``, ``F``, or ``X`` (written ``<``).
    - *optional_data*: TD3 personal number (its check digit computed), TD1 line-1 optional data,
      or the optional data of TD2 and visas. *optional_data_2*: TD1 line-2 optional data.

    Lowercase is accepted; any other character an MRZ cannot hold raises :class:`ValueError`.
    """
    if format not in _LAYOUTS:
        raise ValueError(f"unknown MRZ format {format!r}; expected one of {', '.join(FORMATS)}")
    layout = _LAYOUTS[format]
    rows = [["<"] * layout.width for _ in range(layout.lines)]

    def put(span: _Span | _Cell, value: str, what: str) -> None:
        line, start, end = span if len(span) == 3 else (*span, span[1] + 1)
        if len(value) > end - start:
            raise ValueError(f"{what} {value!r} is longer than {end - start} characters")
        rows[line][start : start + len(value)] = value

    code = _mrz_text("document type", document_type or layout.default_type, letters=True)
    if not 1 <= len(code) <= 2 or code[0] == "<" or (code[0] == "V") != format.startswith("MRV"):
        raise ValueError(f"document type {code!r} does not fit a {format} (only visas start V)")
    put(_DOCUMENT_CODE, code, "document type")
    for what, span, value in (
        ("issuing state", _ISSUING_STATE, issuing_state),
        ("nationality", layout.nationality, nationality),
    ):
        state = _mrz_text(what, value, letters=True)
        if not state or "<" in state:
            raise ValueError(f"{what} {value!r} is not a code of 1 to 3 letters")
        put(span, state, what)

    primary, secondary = (
        _mrz_text(what, _FILLERS.sub("<", value.translate(_NAME_SEPARATORS)).strip("<"), True)
        for what, value in (("surname", surname), ("given names", given_names))
    )
    name = primary + ("<<" + secondary if secondary else "")
    width = layout.name[2] - layout.name[1]
    if len(name) > width:
        raise ValueError(f"name {name!r} does not fit the {width} characters of a {format}")
    put(layout.name, name, "name")

    number = _mrz_text("document number", document_number).rstrip("<")
    if not number:
        raise ValueError("document number is empty")
    number_check = check_digit(number if len(number) > 9 else number.ljust(9, "<"))
    optional = _mrz_text("optional data", optional_data)
    optional_what = "optional data"
    if len(number) <= 9:
        put(layout.document_number, number, "document number")
        put(layout.document_number_check, number_check, "check digit")
    elif layout.long_numbers and "<" not in number:
        put(layout.document_number, number[:9], "document number")
        # the check-digit position stays "<": it says "the number goes on in the optional data"
        optional = f"{number[9:]}{number_check}<{optional}"
        optional_what = "document number overflow, check digit, filler and optional data"
    else:
        raise ValueError(
            f"document number {number!r} is longer than 9 characters; only TD1 and TD2 have "
            "room for more, and then for letters and digits only"
        )

    for what, span, check, value in (
        ("birth date", layout.birth_date, layout.birth_date_check, birth_date),
        ("expiry date", layout.expiry_date, layout.expiry_date_check, expiry_date),
    ):
        raw = _mrz_date(what, value)
        put(span, raw, what)
        put(check, check_digit(raw), "check digit")

    sex_code = {"M": "M", "F": "F", "X": "<", "<": "<"}.get(sex.upper())
    if sex_code is None:
        raise ValueError(f"sex {sex!r} is not M, F or X")
    put(layout.sex, sex_code, "sex")

    put(layout.optional_data, optional, optional_what)
    if layout.personal_number_check:
        field = "".join(rows[1][layout.optional_data[1] : layout.optional_data[2]])
        put(layout.personal_number_check, "<" if not optional else check_digit(field), "check")
    if optional_data_2:
        if not layout.optional_data_2:
            raise ValueError(f"a {format} has no second optional data field")
        put(layout.optional_data_2, _mrz_text("optional data 2", optional_data_2), "data")
    if layout.composite_check:
        text = _composite(["".join(row) for row in rows], layout)
        put(layout.composite_check, check_digit(text), "check digit")
    return "\n".join("".join(row) for row in rows)


def _mrz_text(what: str, value: str, letters: bool = False) -> str:
    text = value.translate(_UPPER)
    if bad := (re.search(r"[^A-Z<]", text) if letters else _INVALID.search(text)):
        raise ValueError(f"{what} {value!r}: {bad.group()!r} cannot be written in an MRZ")
    return text


def _mrz_date(what: str, value: datetime.date | str | None) -> str:
    if value is None:
        return "<<<<<<"
    if isinstance(value, datetime.date):
        return value.strftime("%y%m%d")
    if re.fullmatch(r"[0-9<]{6}", value):
        return value
    raise ValueError(f"{what} {value!r} is neither a date, None nor 6 MRZ characters")
