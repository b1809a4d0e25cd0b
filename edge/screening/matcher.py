"""Screening a traveller against the kiosk's watchlist: candidates from indexes, then a score.

Documents
    One index seek: the OCR-folded number (:func:`~mqtt_schemas.name_matching.document_key`) and
    the issuing state. Score 1.0 when the number is exactly as listed, 0.95 when it matches
    only once OCR confusions are folded, 0.9 when the traveller's issuing state is unknown.

Persons
    1. The query's surname and given names become units (tokens, joined tokens, particle
       forms; see :mod:`mqtt_schemas.name_matching`), each with its phonetic code. A unit the list's
       vocabulary does not know (a misspelling, most likely) also gets the codes of the
       vocabulary's texts one edit away (SymSpell deletions, an index, not a scan).
    2. Candidates come from the blocking index only, never a scan: every pair of units about
       different tokens with a surname unit among them (order-free, so swapped, dropped and
       added parts still meet; given-name pairs such as JOSE LUIS are never keys), and every
       single unit whose key is rare (a common one, MOHAMMED or GARCIA, over ``SINGLE_LIMIT``
       rows, is not read at all; its pairs are). When the traveller's birth date is known,
       every seek is a range over the birth years around it (and unknown dates), and a row
       whose date conflicts is dropped unread, because a conflicting date always scores below
       the threshold (``MAX_WITH_DOB_CONFLICT``). At most ``MAX_CANDIDATES`` candidates,
       those sharing the most keys first, are scored.
    3. Each name of a candidate is aligned with the query's: units are paired greedily by
       similarity (exact 1.0; joined/prefixed/stripped forms and other spellings 0.97, a
       spelling by another romanization only when it is the other side's very token; same
       phonetic skeleton
       0.6 + 0.4 x edit similarity, if the spellings are at least half alike; within 1, 2 or 3
       edits by length: the edit similarity; a truncated token 0.85; an initial 0.8), each
       token used once. The name score is the weighted mean similarity, less 0.30 for each
       token that conflicts with one in the same field of the other name (JOSE *LUIS* vs
       JOSE *MANUEL*; an initial the other token does not start with, HANS *O* vs HANS
       *JOACHIM*) and 0.03 for each token only one side has (a dropped middle name or
       second surname, at most 4 counted). There is no match unless at least two tokens match
       (one when either name has only one), and a surname token of each side takes part
       (GEORGE BUSH is not GEORGE HABBASH). A listed name with an organisation's word in it
       (FOUNDATION, LTD, BANK ...: :func:`~mqtt_schemas.name_matching.is_organisation`) is not
       compared: a person does not hit the KHALIFA HAFTAR FOUNDATION.
    4. Birth date, nationality and sex move the score: a birth date agreeing at full
       precision +0.10, at month +0.05, at year +0.02 (partial dates compare at the coarser
       precision); a near miss (a year off by one, day and month swapped, one digit off) -0.05;
       unknown -0.03; a conflict -0.40, which no name can outweigh. Nationality in common
       +0.03, none in common -0.05 (both sides as the MRZ writes them: DEU is D). Sex
       agreeing +0.02, conflicting -0.20. A partial name the
       birth date does not confirm (missing, near, or agreeing on the year only) loses 0.10
       (0.05 with the year agreeing).
    5. Finally, how likely is the match to be a coincidence? The expected number of people,
       in a population the list's size, who would match as well by chance: those bearing the
       matched name (the list's own token frequencies, multiplied, names of one culture taken
       as going together; a token's frequency is the larger of the list's and the lane's
       travellers', from the population table, :mod:`edge.screening.population`, when the
       store has one), times the chance that birth date, nationality and sex agree as
       these do (a full date 1/21900, a year 1/60, none 1; a near date counts only as often
       as a listed person's own date is mistyped), each conflicting name token x10. Above
       ``CHANCE_GATE`` the hit keeps 0.75 of its score, below the default threshold, with a
       reason saying so. This is what keeps the many MOHAMMED AL-RASHIDs and JOSE GARCIAs
       listed without a full birth date, or born the same year, from stopping every namesake
       at the border, while a rare name, or a common one with its full birth date, still hits.
       ``CHANCE_GATE`` is roughly the false-positive rate the matcher allows per traveller;
       lowering it trades recall on entries without a full birth date for fewer false hits.
    6. Except: the full name as listed, after normalisation (:func:`same_name`: the same
       tokens in any order or field, or the same letters joined; or every token of both names
       aligned as another transliteration writes it, ``SAME_SPELLING``), with a birth date the
       list gives that agrees (the same year where the list gives only a year), is always a
       hit, at the threshold at least, whatever the chance of a namesake; its first reason
       says so (``exact-name``). Where the list gives no birth date the chance gate still
       decides: hitting every namesake there stopped 0.2 (own set) to 0.5 (field set) of the
       travellers not on the list in the benchmark.

Every hit carries its reasons in the ``screening-hit@1`` shape: ``{part, how, detail}``.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import OSA

from mqtt_schemas.name_matching import (
    MIN_FUZZY_LENGTH,
    Name,
    Unit,
    code_hash,
    deletions,
    document_key,
    is_organisation,
    pair_key,
    parse_name,
    parse_stored,
    phonetic,
    state_code,
    tokens,
)
from mqtt_schemas.watchlist import ACTIONS, COUNTRY, PARTIAL_DATE, STATUSES

from .population import Population
from .population import load as load_population
from .store import WatchlistStore, date_number

__all__ = [
    "DEFAULT_THRESHOLD",
    "Hit",
    "Query",
    "QueryError",
    "Screener",
]

DEFAULT_THRESHOLD = 0.80

DOB_FULL = 0.10
DOB_MONTH = 0.05
DOB_YEAR = 0.02
DOB_NEAR = -0.05
DOB_UNKNOWN = -0.03
DOB_CONFLICT = -0.40
NATIONALITY_AGREES = 0.03
NATIONALITY_CONFLICT = -0.05
SEX_AGREES = 0.02
SEX_CONFLICT = -0.20
MAX_WITH_DOB_CONFLICT = 1.0 + DOB_CONFLICT + NATIONALITY_AGREES + SEX_AGREES
"""The best score a candidate whose birth year is 2+ years off can reach."""

BIRTH_YEARS = 60
"""Birth years a list spans, for the chance that two dates agree by coincidence."""
NEAR_CHANCE = {2: 0.25, 3: 0.045}
"""Given the same year, the chance that a month (one digit off) or a day-month (swapped, or a
digit off) is near another by coincidence."""
NEAR_IF_SAME = 0.05
"""How often a listed person's own birth date is near, not equal, to the one on the list (a
typo): a near date is evidence only in that proportion."""
NATIONALITY_FACTOR = {1: 0.17, 0: 1.0, -1: 8.0}
"""Agreeing, unknown, conflicting nationality: the chance that it agrees by coincidence
(about 0.15) over the chance that it does for the listed person (0.9); a conflict, the other
way round (0.85 / 0.1)."""
SEX_FACTOR = {1: 0.6, 0: 1.0, -1: 20.0}
CONFLICT_FACTOR = 10.0
"""Each name token that conflicts with the list's (JOSE LUIS vs JOSE MANUEL)."""
CULTURE_AFFINITY = 5.0
"""How much likelier a name token is alongside another of its culture than on the list as a
whole (about one over the share of the commonest naming cultures)."""
POPULATION_FLOOR = 1000
"""A list smaller than this is taken as a sample of a population this size."""
CHANCE_GATE = 0.025
"""The expected number of people, in a population the list's size, who would match an entry
as well as the traveller does by coincidence (a common name and a birth year that happens to
agree, say) must stay below this for a hit. About the false-positive rate it allows."""
FULL_SUPPORT = 2
"""A birth date agreeing to the month at least; 1 is the year only, 0 nothing (missing, near)."""
UNCONFIRMED_PARTIAL = (-0.10, -0.05)
"""By birth-date support (0, 1), when the name matches only in part (parts dropped or added)."""
COMMON_FACTOR = 0.75
"""A match many people could make by chance (see CHANCE_GATE) keeps only this much of its
score: below the default threshold, still shown at a lower one."""
CONFLICT_PENALTY = 0.30
EXTRA_PENALTY = 0.03
MAX_EXTRAS = 4
MIN_NAME_SCORE = 0.5

SINGLE_LIMIT = 64
"""A single unit code with more rows than this (in the birth-year window) is not read."""
PAIR_LIMIT = 256
"""Rows read per pair key at most when the traveller's birth date is unknown."""
WINDOW_LIMIT = 2000
"""Rows read per pair key at most within the birth-date window (before dropping conflicts)."""
MAX_CANDIDATES = 64
SAME_DAY_WEIGHT = 8
SAME_YEAR_WEIGHT = 4
"""A candidate the list gives only the traveller's birth year (or year and month) for."""
MAX_FUZZY_CODES = 12
WELL_KNOWN = 20
"""A text this many listed persons bear is taken as spelt right: it gets the fuzzy codes of
texts DOMINANT times commoner only."""
DOMINANT = 3
MAX_HITS = 50

_DOCUMENT_NUMBER = re.compile(r"[A-Z0-9]{1,24}")


class QueryError(ValueError):
    """A query that cannot be screened; the message names the field."""


# ---------------------------------------------------------------------------------------------
# Queries and hits


@dataclass(frozen=True)
class Query:
    """One traveller, as the document states them; any field may be missing."""

    id: str | None = None
    surname: str = ""
    given_names: str = ""
    birth_date: str | None = None
    nationality: tuple[str, ...] = ()
    sex: str | None = None
    document_number: str | None = None
    issuing_state: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Query:
        """A query from its JSON form; :class:`QueryError` names a malformed field."""
        if not isinstance(data, dict):
            raise QueryError("a query is a JSON object")
        known = set(cls.__dataclass_fields__)
        for key in data:
            if key not in known:
                raise QueryError(f"{key}: unknown field (known: {', '.join(sorted(known))})")

        def text(name: str) -> str | None:
            value = data.get(name)
            if value is None or value == "":
                return None
            if not isinstance(value, str):
                raise QueryError(f"{name}: a string expected")
            return value

        query_id = data.get("id")
        if query_id is not None and not isinstance(query_id, str | int):
            raise QueryError("id: a string expected")
        birth_date = text("birth_date")
        if birth_date is not None and not PARTIAL_DATE.fullmatch(birth_date):
            raise QueryError(
                f"birth_date: YYYY, YYYY-MM or YYYY-MM-DD expected, got {birth_date!r}"
            )
        nationality = data.get("nationality")
        if nationality in (None, ""):
            nationality = []
        elif isinstance(nationality, str):
            nationality = [nationality]
        if not isinstance(nationality, list) or not all(
            isinstance(c, str) and COUNTRY.fullmatch(state_code(c)) for c in nationality
        ):
            raise QueryError("nationality: a state code (or a list of them) expected")
        sex = text("sex")
        if sex is not None:
            sex = sex.upper()
            if sex not in ("M", "F", "X"):
                raise QueryError(f"sex: M, F or X expected, got {sex!r}")
        number = text("document_number")
        if number is not None:
            number = re.sub(r"[\s<\-./]", "", number).upper()
            if not _DOCUMENT_NUMBER.fullmatch(number):
                raise QueryError("document_number: letters and digits expected")
        state = text("issuing_state")
        if state is not None:
            state = state_code(state)
            if not COUNTRY.fullmatch(state):
                raise QueryError(f"issuing_state: a state code expected, got {state!r}")
        return cls(
            id=None if query_id is None else str(query_id),
            surname=text("surname") or "",
            given_names=text("given_names") or "",
            birth_date=birth_date,
            nationality=tuple(state_code(c) for c in nationality),
            sex=sex,
            document_number=number,
            issuing_state=state,
        )


@dataclass(frozen=True)
class Hit:
    """One watchlist entry the traveller matched, with the matcher's reasons."""

    entry_id: str
    kind: str
    score: float
    list: str
    action: str
    reasons: tuple[dict[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "kind": self.kind,
            "score": self.score,
            "list": self.list,
            "action": self.action,
            "reasons": list(self.reasons),
        }


def _reason(part: str, how: str, detail: str) -> dict[str, str]:
    return {"part": part, "how": how, "detail": detail[:300]}


# ---------------------------------------------------------------------------------------------
# Token and name similarity

_MAX_EDITS = (0, 0, 0, 0, 1, 1, 1, 2, 2, 2)  # by the shorter token's length; 3 from 10
MIN_TRUNCATED = 6
"""A prefix this long of a longer token is taken as the token cut short (MRZ truncation)."""
_JOINED = ("joined", "crossed")
_JOINED_KINDS = frozenset(("token", "joined", "crossed", "prefixed", "stripped"))
"""Unit kinds whose exact match is the same letters joined or split, not another spelling."""


def token_similarity(a: str, b: str) -> tuple[float, str]:
    """How alike two tokens are, in [0, 1], and how (exact, phonetic, fuzzy, ...)."""
    if a == b:
        return 1.0, "exact"
    la, lb = len(a), len(b)
    if la == 1 or lb == 1:
        return (0.8, "initial") if a[0] == b[0] else (0.0, "")
    longer = la if la > lb else lb
    code = phonetic(a)
    if code == phonetic(b):
        similarity = 1.0 - OSA.distance(a, b) / longer
        # The same skeleton from spellings less than half alike, or a one-letter skeleton
        # (LI, LIU; YU, HAO) from spellings not nearly alike, is a coincidence. An Arabic
        # skeleton (HSN) half like its vowelled spelling (HASSAN) is not.
        if similarity >= (0.5 if len(code) > 1 else 0.75):
            return 0.6 + 0.4 * similarity, "phonetic"
    shorter = lb if la > lb else la
    allowed = _MAX_EDITS[shorter] if shorter < len(_MAX_EDITS) else 3
    if allowed and longer - shorter <= allowed:
        distance = OSA.distance(a, b, score_cutoff=allowed)
        if distance <= allowed:
            return 1.0 - distance / longer, "fuzzy"
    if shorter >= MIN_TRUNCATED and (a.startswith(b) or b.startswith(a)):
        return 0.85, "truncated"
    return 0.0, ""


@dataclass(slots=True)
class NameMatch:
    entry: Name
    score: float
    pairs: list[tuple[Unit, Unit, float, str]]
    conflicts: list[tuple[str, str, int]]
    extras: list[tuple[str, str, int]]
    swapped: bool


def same_name(query: Name, entry: Name) -> bool:
    """Whether two names are the same full name after normalisation: the same tokens, in any
    order and either field, or the same letters once the tokens are joined (ZHANG XIAOMING,
    ZHANG XIAO MING, XIAOMING ZHANG; POL POT, POLPOT). A single token is never enough."""
    q, e = query.core, entry.core
    if max(len(q), len(e)) < 2 or not q or not e:
        return False
    if len(q) == len(e) and sorted(q) == sorted(e):
        return True
    return bool(_joined_forms(query) & _joined_forms(entry))


SAME_SPELLING = 0.9
"""A token pair at least this alike (joined, Baltic, or the same skeleton from spellings three
quarters alike: MOHAMMED MUHAMMAD, PETROW PETROV, SERGEJ SERGEY) is one name written by another
transliteration."""


_ALIKE = ("exact", "joined", "transliteration", "phonetic")
_MISSPELT = ("phonetic", "fuzzy", "truncated")


def _spelt_alike(match: NameMatch) -> bool:
    """Whether an alignment pairs every token of both names, each pair the same name as
    another transliteration writes it (see SAME_SPELLING): the same full name, normalised."""
    if match.conflicts or match.extras or len(match.entry.core) < 2:
        return False
    return all(how in _ALIKE and score >= SAME_SPELLING for _, _, score, how in match.pairs)


def _joined_forms(name: Name) -> set[str]:
    surname = "".join(t for t, f in zip(name.core, name.fields, strict=True) if f == 0)
    given = "".join(t for t, f in zip(name.core, name.fields, strict=True) if f == 1)
    return {surname + given, given + surname}


def _popcount(mask: int) -> int:
    return mask.bit_count()


def compare_names(
    query: Name, entry: Name, cache: dict[tuple[str, str], tuple[float, str]] | None = None
) -> NameMatch | None:
    """Align two names; ``None`` when they do not match at all (see the module docs).

    *cache* memoizes token similarities across calls (the caller bounds its size).
    """
    if cache is None:
        cache = {}
    candidates = []
    for qu in query.units:
        qt = qu.text
        q_virtual = qu.kind != "token"
        for eu in entry.units:
            e_virtual = eu.kind != "token"
            if q_virtual and e_virtual and (qu.kind not in _JOINED or eu.kind not in _JOINED):
                continue  # particle and Baltic forms meet the other side's plain tokens
            key = (qt, eu.text)
            found = cache.get(key)
            if found is None:
                found = cache[key] = token_similarity(qt, eu.text)
            score, how = found
            if score <= 0.0:
                continue
            if how != "exact" and "spelling" in (qu.kind, eu.kind):
                continue  # another spelling meets the very token, or nothing
            if q_virtual or e_virtual:
                if how == "exact":
                    how = (
                        "joined"
                        if _JOINED_KINDS.issuperset((qu.kind, eu.kind))
                        else "transliteration"
                    )
                    score = 0.97
                weight = max(qu.mask.bit_count(), eu.mask.bit_count())
                candidates.append((score, weight, False, qu, eu, how))
            else:
                candidates.append((score, 1, True, qu, eu, how))
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1], c[2]), reverse=True)
    used_q = used_e = 0
    pairs = []
    total = weights = 0.0
    strong = 0
    same_field = cross_field = 0
    for score, weight, _, qu, eu, how in candidates:
        if qu.mask & used_q or eu.mask & used_e:
            continue
        used_q |= qu.mask
        used_e |= eu.mask
        pairs.append((qu, eu, score, how))
        total += score * weight
        weights += weight
        if how != "initial":
            strong += min(_popcount(qu.mask), _popcount(eu.mask)) if how != "joined" else weight
        if qu.field == eu.field:
            same_field += 1
        else:
            cross_field += 1
    q_strong = sum(1 for t in query.core if len(t) > 1)
    e_strong = sum(1 for t in entry.core if len(t) > 1)
    if strong < min(2, q_strong, e_strong) or strong == 0:
        return None
    q_surname, e_surname = query.surname_mask, entry.surname_mask
    if (q_surname and not used_q & q_surname) or (e_surname and not used_e & e_surname):
        return None
    swapped = cross_field > same_field
    left_q = [(t, query.fields[i], i) for i, t in enumerate(query.core) if not used_q & (1 << i)]
    left_e = [(t, entry.fields[i], i) for i, t in enumerate(entry.core) if not used_e & (1 << i)]
    conflicts = []
    extras = []
    for field_q in (0, 1):
        field_e = 1 - field_q if swapped else field_q
        mine = [x for x in left_q if x[1] == field_q]
        theirs = [x for x in left_e if x[1] == field_e]
        # Tokens left over on both sides conflict (JOSE LUIS vs JOSE MANUEL), and so does an
        # initial with a token it cannot stand for (HANS O vs HANS JOACHIM); an initial that
        # could (HANS J) has been aligned already.
        for (qt, _, _), (et, _, _) in zip(mine, theirs, strict=False):
            conflicts.append((qt, et, field_q))
        n = min(len(mine), len(theirs))
        extras += [(t, "query", f) for t, f, _ in mine[n:]]
        extras += [(t, "entry", f) for t, f, _ in theirs[n:]]
    base = total / weights
    score = base - CONFLICT_PENALTY * len(conflicts) - EXTRA_PENALTY * min(len(extras), MAX_EXTRAS)
    if score < MIN_NAME_SCORE:
        return None
    return NameMatch(entry, score, pairs, conflicts, extras, swapped)


# ---------------------------------------------------------------------------------------------
# Birth dates, nationality, sex


def _date_parts(value: str) -> tuple[int, ...]:
    return tuple(int(p) for p in value.split("-"))


def _number_parts(bdate: int) -> tuple[int, ...]:
    """The parts of an index ``bdate`` (see :func:`~edge.screening.store.date_number`)."""
    year, month, day = bdate // 10000, bdate // 100 % 100, bdate % 100
    return (year,) if not month else (year, month) if not day else (year, month, day)


def _one_digit_apart(a: int, b: int) -> bool:
    x, y = f"{a:02d}", f"{b:02d}"
    return (x[0] == y[0]) != (x[1] == y[1])


def date_relation(q: tuple[int, ...], e: tuple[int, ...]) -> str:
    """How two partial dates relate: ``exact`` (to the coarser precision), ``near`` (a year off
    by one, day and month swapped, a day or month one digit off) or ``conflict``."""
    precision = min(len(q), len(e))
    if q[:precision] == e[:precision]:
        return "exact"
    if abs(q[0] - e[0]) == 1 and q[1:precision] == e[1:precision]:
        return "near"
    if q[0] == e[0] and precision >= 2:
        if precision == 3 and (q[1], q[2]) == (e[2], e[1]):
            return "near"  # day and month swapped
        if precision == 3 and q[1] == e[1] and _one_digit_apart(q[2], e[2]):
            return "near"
        if (precision == 2 or q[2] == e[2]) and _one_digit_apart(q[1], e[1]):
            return "near"
    return "conflict"


def compare_birth_dates(
    query: str | None, entry: str | None
) -> tuple[float, dict[str, str], int, float]:
    """For two partial birth dates: the score change, the reason, how far they support a name
    match (2: they agree to the month or day, 1: to the year only, 0: not at all), and the
    chance that they agree that well by coincidence."""
    if not entry:
        return DOB_UNKNOWN, _reason("birth-date", "missing", "the list gives no birth date"), 0, 1.0
    if not query:
        return DOB_UNKNOWN, _reason("birth-date", "missing", "the traveller's is unknown"), 0, 1.0
    q, e = _date_parts(query), _date_parts(entry)
    precision = min(len(q), len(e))
    relation = date_relation(q, e)
    if relation == "exact":
        if precision == 3:
            return DOB_FULL, _reason("birth-date", "exact", entry), 2, 1 / (BIRTH_YEARS * 365)
        bonus = DOB_MONTH if precision == 2 else DOB_YEAR
        chance = 1 / (BIRTH_YEARS * 12) if precision == 2 else 1 / BIRTH_YEARS
        detail = f"list {entry} agrees with {query}"
        return bonus, _reason("birth-date", "partial-date", detail), precision, chance
    detail = f"list {entry}, traveller {query}"
    if relation == "near":
        # a year off (2 ways) or, at full precision, day and month swapped or one digit off
        chance = (
            2 / BIRTH_YEARS
            if precision == 1
            else 4 / (BIRTH_YEARS * (12 if precision == 2 else 365))
        )
        return DOB_NEAR, _reason("birth-date", "near", detail), 0, chance / NEAR_IF_SAME
    return DOB_CONFLICT, _reason("birth-date", "conflict", detail), 0, 0.0


def compare_nationality(
    query: tuple[str, ...], entry: list[str]
) -> tuple[float, dict[str, str] | None]:
    if not query or not entry:
        return 0.0, None
    # Both sides as the MRZ writes them: a list's DEU is a document's D.
    query = tuple(state_code(c) for c in query)
    entry = [state_code(c) for c in entry]
    common = sorted(set(query) & set(entry))
    if common:
        return NATIONALITY_AGREES, _reason("nationality", "exact", " ".join(common))
    detail = f"list {' '.join(entry)}, traveller {' '.join(query)}"
    return NATIONALITY_CONFLICT, _reason("nationality", "conflict", detail)


def compare_sex(query: str | None, entry: str | None) -> tuple[float, dict[str, str] | None]:
    if query not in ("M", "F") or entry not in ("M", "F"):
        return 0.0, None
    if query == entry:
        return SEX_AGREES, _reason("sex", "exact", entry)
    return SEX_CONFLICT, _reason("sex", "conflict", f"list {entry}, traveller {query}")


# ---------------------------------------------------------------------------------------------
# The screener


_FIELD_PART = ("surname", "given-names")


def _name_reasons(match: NameMatch) -> list[dict[str, str]]:
    reasons = []
    for qu, eu, score, how in match.pairs:
        detail = eu.display if how == "exact" else f"{qu.display} ~ {eu.display} ({score:.2f})"
        reasons.append(_reason(_FIELD_PART[eu.field], how, detail))
    if match.swapped:
        reasons.append(_reason("name-order", "swapped", "surname and given names swapped"))
    for q_token, e_token, field_q in match.conflicts:
        reasons.append(
            _reason(_FIELD_PART[field_q], "conflict", f"traveller {q_token}, list {e_token}")
        )
    for token, side, field_no in match.extras:
        where = "only the traveller's name" if side == "query" else "only the list's name"
        reasons.append(_reason(_FIELD_PART[field_no], "extra", f"{token}: in {where}"))
    return reasons


class Screener:
    """Screens travellers against a :class:`WatchlistStore` (open it read-only on the lane)."""

    def __init__(self, store: WatchlistStore, *, threshold: float = DEFAULT_THRESHOLD) -> None:
        store.check_index_format()
        self.store = store
        self.threshold = threshold
        self._persons: int | None = None
        self._travellers: Population | None = None
        self.last_candidates = 0
        """How many persons the last screening scored (for benchmarks and tests)."""

    # -- public -------------------------------------------------------------------------------

    def screen(self, query: Query, threshold: float | None = None) -> list[Hit]:
        """Every entry the traveller matches at or above *threshold*, best first (at most 50)."""
        threshold = self.threshold if threshold is None else threshold
        if self.store.refresh():  # another connection applied a delta: recount the list
            self._persons = None
            self._travellers = load_population(self.store.connection)
        hits = self._document_hits(query, threshold) + self._person_hits(query, threshold)
        hits.sort(key=lambda h: (-h.score, h.kind, h.entry_id))
        return hits[:MAX_HITS]

    # -- documents ----------------------------------------------------------------------------

    def _document_hits(self, query: Query, threshold: float) -> list[Hit]:
        if not query.document_number:
            return []
        key = document_key(query.document_number)
        if query.issuing_state:
            rows = self.store.connection.execute(
                "SELECT entry_id, number, state, document_type, status, list_id, action "
                "FROM documents WHERE nkey = ? AND state = ?",
                (key, query.issuing_state),
            ).fetchall()
        else:
            rows = self.store.connection.execute(
                "SELECT entry_id, number, state, document_type, status, list_id, action "
                "FROM documents WHERE nkey = ? LIMIT 50",
                (key,),
            ).fetchall()
        hits = []
        for entry_id, number, state, document_type, status, list_id, action in rows:
            reasons = []
            if number == query.document_number:
                score = 1.0
                reasons.append(_reason("document-number", "exact", number))
            else:
                score = 0.95
                reasons.append(
                    _reason(
                        "document-number",
                        "ocr-confusable",
                        f"{query.document_number} ~ {number} (O/0, I/1, B/8 ... folded)",
                    )
                )
            if query.issuing_state:
                reasons.append(_reason("issuing-state", "exact", state))
            else:
                score -= 0.1
                reasons.append(_reason("issuing-state", "missing", f"list {state}"))
            status_name = STATUSES[status]
            type_note = f" ({document_type})" if document_type else ""
            reasons.append(_reason("status", "listed", f"{status_name}{type_note}"))
            if score >= threshold:
                hits.append(
                    Hit(
                        entry_id,
                        "document",
                        round(score, 3),
                        self.store.list_name(list_id),
                        ACTIONS[action],
                        tuple(reasons),
                    )
                )
        return hits

    # -- persons ------------------------------------------------------------------------------

    def _unit_codes(self, units: tuple[Unit, ...]) -> dict[Unit, list[int]]:
        """Each unit's phonetic code and the codes of the list's texts one edit away: all of
        them for a text the list does not know or knows only rarely (a misspelling, most
        likely, on one side or the other), and for a text the list knows well, those far
        commoner than it (GARKIA -> GARCIA, RACHID -> RASHID, but not GARCIA -> GARCIAS)."""
        codes = {u: [code_hash(phonetic(u.text))] for u in units}
        fuzzy = [u for u in units if len(u.text) >= MIN_FUZZY_LENGTH]
        if not fuzzy:
            return codes
        variants: dict[str, list[Unit]] = defaultdict(list)
        for unit in fuzzy:
            for variant in deletions(unit.text):
                variants[variant].append(unit)
        connection = self.store.connection
        neighbours: dict[Unit, set[str]] = defaultdict(set)
        for variant, text in connection.execute(
            "SELECT variant, text FROM vocab WHERE variant IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(variants)),),
        ):
            for unit in variants[variant]:
                if text != unit.text:
                    neighbours[unit].add(text)
        if not neighbours:
            return codes
        texts = {u.text for u in fuzzy} | {t for found in neighbours.values() for t in found}
        counts = dict(
            connection.execute(
                "SELECT token, persons FROM vocab_tokens "
                "WHERE token IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(texts)),),
            ).fetchall()
        )
        for unit, found in neighbours.items():
            own = counts.get(unit.text, 0)
            if own >= WELL_KNOWN:
                found = {t for t in found if counts.get(t, 0) >= DOMINANT * own}
            # the commonest first, if there are too many
            for text in sorted(found, key=lambda t: -counts.get(t, 0)):
                code = code_hash(phonetic(text))
                if code not in codes[unit]:
                    codes[unit].append(code)
                    if len(codes[unit]) > MAX_FUZZY_CODES:
                        break
        return codes

    def _seek(self, key: int, window: tuple[int, int] | None, limit: int) -> list[tuple[int, int]]:
        """``(pid, bdate)`` rows of one key: within the birth-date window and of unknown
        date, or all of them without a window; at most *limit*."""
        if window is None:
            sql = "SELECT pid, bdate FROM person_keys WHERE key = ? LIMIT ?"
            return self.store.connection.execute(sql, (key, limit)).fetchall()
        return self.store.connection.execute(
            "SELECT pid, bdate FROM person_keys WHERE key = ?1 AND bdate = 0 UNION ALL "
            "SELECT pid, bdate FROM person_keys WHERE key = ?1 AND bdate BETWEEN ?2 AND ?3 "
            "LIMIT ?4",
            (key, *window, limit),
        ).fetchall()

    def candidates(self, query: Query, qname: Name, threshold: float) -> dict[int, int]:
        """Candidate person ids with how many keys they share with the query.

        With the traveller's birth date known and a threshold that a conflicting date can never
        reach, every seek is narrowed to the birth years around it, and a candidate whose date
        conflicts is dropped before it is read.
        """
        units = qname.keyed_units
        if not units:
            return {}
        codes = self._unit_codes(units)
        window = None
        compatible: dict[int, bool] = {0: True}
        if query.birth_date and threshold > MAX_WITH_DOB_CONFLICT:
            born = _date_parts(query.birth_date)
            window = ((born[0] - 1) * 10000, (born[0] + 1) * 10000 + 1231)

            def fits(bdate: int) -> bool:
                known = compatible.get(bdate)
                if known is None:
                    known = compatible[bdate] = (
                        date_relation(born, _number_parts(bdate)) != "conflict"
                    )
                return known

        else:

            def fits(bdate: int) -> bool:
                return True

        weights: dict[int, int] = defaultdict(int)
        pair_keys: set[int] = set()
        has_surname = any(u.field == 0 for u in units)
        for i, first in enumerate(units):
            for second in units[i + 1 :]:
                if first.mask & second.mask or (has_surname and first.field and second.field):
                    continue  # the same token twice, or given names only (never indexed)
                for a in codes[first]:
                    for b in codes[second]:
                        pair_keys.add(pair_key(a, b))
        limit = PAIR_LIMIT if window is None else WINDOW_LIMIT
        same_day = date_number(query.birth_date) if query.birth_date else -1
        same_year = {same_day // 10000 * 10000, same_day // 100 * 100} - {same_day}

        def bonus(bdate: int) -> int:
            # A candidate born on the traveller's very birth date comes first, then one the
            # list gives the traveller's birth year (or month) for.
            if bdate == same_day:
                return SAME_DAY_WEIGHT
            return SAME_YEAR_WEIGHT if bdate in same_year else 0

        for key in pair_keys:
            for pid, bdate in self._seek(key, window, limit):
                if fits(bdate):
                    weights[pid] += 2 + bonus(bdate)
        for single in {c for u in units for c in codes[u]}:
            rows = self._seek(single, window, SINGLE_LIMIT + 1)
            if len(rows) <= SINGLE_LIMIT:
                for pid, bdate in rows:
                    if fits(bdate):
                        weights[pid] += 1 + bonus(bdate)
        return weights

    def _person_hits(self, query: Query, threshold: float) -> list[Hit]:
        if not query.surname and not query.given_names:
            return []
        qname = parse_name(tokens(query.surname), tokens(query.given_names))
        weights = self.candidates(query, qname, threshold)
        if len(weights) > MAX_CANDIDATES:
            chosen = heapq.nlargest(MAX_CANDIDATES, weights, key=weights.__getitem__)
        else:
            chosen = list(weights)
        self.last_candidates = len(chosen)
        if not chosen:
            return []
        rows = self.store.connection.execute(
            "SELECT entry_id, stored, birth_date, nationality, sex, list_id, action "
            "FROM persons WHERE pid IN (SELECT value FROM json_each(?))",
            (json.dumps(chosen),),
        )
        hits = []
        similarities: dict[tuple[str, str], tuple[float, str]] = {}  # this traveller's
        token_counts: dict[str, int] = {}
        for entry_id, stored, birth_date, nationality, sex, list_id, action in rows:
            hit = self._score_person(
                query,
                qname,
                stored,
                birth_date,
                nationality,
                sex,
                threshold,
                similarities,
                token_counts,
            )
            if hit is not None:
                score, reasons = hit
                hits.append(
                    Hit(entry_id, "person", score, self.store.list_name(list_id), action, reasons)
                )
        return hits

    def _score_person(
        self,
        query: Query,
        qname: Name,
        stored: str,
        birth_date: str | None,
        nationality: str | None,
        sex: str | None,
        threshold: float,
        similarities: dict[tuple[str, str], tuple[float, str]],
        token_counts: dict[str, int],
    ) -> tuple[float, tuple[dict[str, str], ...]] | None:
        best: NameMatch | None = None
        letter_for_letter = False
        for name in parse_stored(stored):
            if is_organisation(name.core):
                continue  # a foundation or a company named after a person is not the person
            match = compare_names(qname, name, similarities)
            if match is not None and (best is None or match.score > best.score):
                best = match
            letter_for_letter = letter_for_letter or same_name(qname, name)
        exact = letter_for_letter or (best is not None and _spelt_alike(best))
        if best is None:
            return None
        # Cheap bound first: the most the other fields could add.
        if not exact and best.score + DOB_FULL + NATIONALITY_AGREES + SEX_AGREES < threshold:
            return None
        dob, dob_reason, support, dob_chance = compare_birth_dates(query.birth_date, birth_date)
        # The full name as listed, and a birth date the list gives that agrees (the same year
        # where the list gives a year): always a hit, whatever the chance of a namesake. So is
        # the full name letter for letter where nothing tells the two apart (the list gives no
        # birth date, or the traveller's is unknown): the list identifies its person by name
        # alone there, and a traveller bearing it is that person as far as the list can say.
        # Another transliteration is not enough then (ELENA for YELENA, but ZHANG for ZHENG):
        # with no birth date to confirm it, the chance gate decides.
        how = dob_reason["how"]
        always = (exact and how in ("exact", "partial-date")) or (
            letter_for_letter and how == "missing"
        )
        nat, nat_reason = compare_nationality(
            query.nationality, nationality.split() if nationality else []
        )
        sx, sex_reason = compare_sex(query.sex, sex)
        score = best.score + dob + nat + sx
        if always:
            score = max(score, threshold, DEFAULT_THRESHOLD)
        if score < threshold:
            return None
        reasons = _name_reasons(best)
        if exact:
            born = f"born {birth_date} as listed" if birth_date else "no birth date listed"
            detail = "the full name as listed" + (f", {born}: always a hit" if always else "")
            reasons.insert(0, _reason("name", "exact-name", detail))
        reasons.append(dob_reason)
        reasons += [r for r in (nat_reason, sex_reason) if r is not None]
        if always:
            return round(min(1.0, score), 3), tuple(reasons[:32])
        if support < FULL_SUPPORT and (best.conflicts or best.extras):
            # The birth date does not confirm the name (it is missing, near, or agrees on the
            # year only), and only part of the name matches.
            score += UNCONFIRMED_PARTIAL[support]
            reasons.append(
                _reason("name", "unconfirmed", "only part of the name, unconfirmed by a birth date")
            )
            if score < threshold:
                return None
        # How many people would match this well by coincidence, in a population the list's
        # size: those bearing the matched name, times the chance that their birth date,
        # nationality and sex agree as well as these do. A hit must be unlikely to be one.
        people = self._namesakes(best, token_counts)
        chance = people * dob_chance
        chance *= NATIONALITY_FACTOR[(nat > 0) - (nat < 0)] * SEX_FACTOR[(sx > 0) - (sx < 0)]
        chance *= CONFLICT_FACTOR ** len(best.conflicts)
        score = min(1.0, max(0.0, score))
        if chance > CHANCE_GATE:
            score *= COMMON_FACTOR
            reasons.append(
                _reason(
                    "name",
                    "common",
                    f"about {people:.3g} people in {self._population():,} bear this name, and "
                    f"{chance:.2g} would match as well by chance",
                )
            )
            if score < threshold:
                return None
        score = round(min(1.0, max(0.0, score)), 3)
        return score, tuple(reasons[:32])

    def _population(self) -> int:
        """The population the list's name frequencies are taken to describe: the list's size,
        but at least POPULATION_FLOOR (in a small list every name looks common)."""
        if self._persons is None:
            self._persons = max(POPULATION_FLOOR, self.store.counts()["persons"])
        return self._persons

    def _namesakes(self, match: NameMatch, counts: dict[str, int]) -> float:
        """How many people, in a population the size of the list, would bear the matched name:
        the frequencies of its tokens (on the list, or among the lane's travellers where the
        population table says they are commoner there), multiplied, each after the first taken as
        CULTURE_AFFINITY times likelier alongside the others than alone (names of one culture
        go together: JOSE with GARCIA, GEORGIOS with PAPADOPOULOS). *counts* caches token
        counts for the traveller being screened."""
        consumed = 0
        misspelt = []
        for qu, eu, _, how in match.pairs:
            if how == "initial":
                continue
            if how in _MISSPELT and qu.kind == "token" and eu.kind == "token":
                # A token the traveller spells otherwise is a coincidence only as often as
                # people bear the traveller's spelling: often for MARIO against MARIA or ZHENG
                # against ZHANG, hardly ever for FLORRS against FLORES (a slip, not a name).
                misspelt.append(qu.text)
            else:
                consumed |= eu.mask
        entry = match.entry
        matched = [t for i, t in enumerate(entry.core) if consumed & (1 << i) and len(t) > 1]
        matched += [t for t in misspelt if len(t) > 1]
        population = self._population()
        if not matched:
            return float(population)
        missing = [t for t in matched if t not in counts]
        if missing:
            found = dict(
                self.store.connection.execute(
                    "SELECT token, persons FROM vocab_tokens "
                    "WHERE token IN (SELECT value FROM json_each(?))",
                    (json.dumps(missing),),
                ).fetchall()
            )
            travellers = self._travellers
            for token in missing:
                # As common as the list says, or as the lane's travellers bear it if commoner.
                among = round(travellers.share(token) * population) if travellers else 0
                counts[token] = max(1, found.get(token, 1), among)
        frequencies = sorted(counts[t] / population for t in matched)
        people = float(population) * frequencies[0]
        for frequency in frequencies[1:]:
            people *= min(1.0, CULTURE_AFFINITY * frequency)
        return people
