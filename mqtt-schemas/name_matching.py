"""Names and document numbers as the matcher compares them. Pure functions, no I/O.

Shared by both sides: the kiosk's watchlist matcher and the console's crossing search read a
name the same way (the console imports no kiosk code, so this lives in the contract package).

A name goes through :func:`transliterate` (Unicode NFKC; Cyrillic, Greek, Arabic, Chinese and
every other script to Latin with ``anyascii``, ISC licence, plus a few rules for Arabic and
Greek that ``anyascii`` leaves to the reader), then :func:`tokens` (upper case, diacritics
gone, apostrophes joined, every other separator a space, OCR digits read as letters), then
:func:`parse_name`, which marks particles (DE, DEL, AL, BIN, VAN ...) and builds the *units*
the matcher aligns and indexes:

* every core token (not a particle);
* every pair of adjacent core tokens of one field, joined (``XIAO MING`` -> ``XIAOMING``,
  ``ABD AL AZIZ`` -> ``ABDALAZIZ``), so joined and split spellings meet;
* every particle run joined to the token it introduces (``DE LA CRUZ`` -> ``DELACRUZ``,
  ``AL RASHID`` -> ``ALRASHID``);
* every token that starts with a particle, without it (``ALRASHID`` -> ``RASHID``);
* every token in a Latvian or Lithuanian spelling of a Slavic name, as the Russian
  transliteration writes it (``baltic``: ``SERGEJS`` -> ``SERGEY``, ``LAVROVAS`` -> ``LAVROV``,
  ``JURIJS`` -> ``YURIY``): the nominative ending gone and J read as Y;
* every token (and pair joined) as other romanizations and orthographies write it
  (``spelling``, :func:`other_spellings`: Wade-Giles ``HSIAO`` -> ``XIAO``, Greek
  ``KARAGIANNIS`` -> ``KARAYANNIS``, Mayan ``COC`` -> ``KOK``, ``XO`` -> ``SHO``), met only
  by the other side's very token;
* the first surname token and the first given name joined, in both orders (``crossed``:
  ``USMANOV, ALISHER`` -> ``USMANOVALISHER``, ``ALISHERUSMANOV``; ``POL, POT`` -> ``POLPOT``), so
  a name written as one word from structured fields still meets it.

:func:`is_organisation` tells a listed name that is an organisation's (a foundation, a company
named after a person) from a person's, so that a traveller does not hit it.

:func:`phonetic` reduces a token to a consonant skeleton tuned for transliteration variants
(MOHAMMED, MUHAMMAD, mhmd; ALEKSANDR, ALEXANDER; KHALID, CHALID; PAPADOPOULOS,
Papadopoylos); :func:`code_hash` turns it into the 31-bit integer the index stores.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

from anyascii import anyascii

__all__ = [
    "PARTICLES",
    "Name",
    "PersonIndex",
    "Unit",
    "code_hash",
    "deletions",
    "document_key",
    "index_names",
    "index_person",
    "is_organisation",
    "pair_key",
    "parse_name",
    "parse_stored",
    "person_tokens",
    "phonetic",
    "state_code",
    "store_form",
    "stored_keys",
    "tokens",
    "transliterate",
]

# ---------------------------------------------------------------------------------------------
# Documents

# OCR confusions on both sides of the comparison fold to one character, so a document read as
# "G1O5B3221" finds the entry "G10583221" (and the other way round).
_OCR_FOLD = str.maketrans("OQDILZSGB", "000112568")
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


def document_key(number: str) -> str:
    """The number a document entry is indexed by: upper case, fillers, spaces and dashes gone,
    OCR-confusable letters folded to digits (O Q D -> 0, I L -> 1, Z -> 2, S -> 5, G -> 6,
    B -> 8)."""
    return _NOT_ALNUM.sub("", number.upper()).translate(_OCR_FOLD)


_STATE_ALIASES = {"DEU": "D"}  # ICAO writes Germany as D; lists sometimes use the ISO code


def state_code(state: str) -> str:
    """An issuing state as ICAO writes it in the MRZ: upper case, fillers removed."""
    code = state.replace("<", "").strip().upper()
    return _STATE_ALIASES.get(code, code)


# ---------------------------------------------------------------------------------------------
# Transliteration

_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
_ARABIC_MARKS = re.compile(r"[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_GREEK = re.compile(r"[\u0370-\u03ff\u1f00-\u1fff]")
# Scripts written without spaces between syllables that anyascii romanizes syllable by
# syllable: each syllable becomes its own token (joined units bring them back together).
_SYLLABIC = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002fa1f]"
)
_ALEF = "\u0627\u0623\u0625\u0622\u0671"
_WEAK_ARABIC = "\u0621\u0626\u0624\u0639"  # hamza forms and ain: a vowel onset, else silent
_VOWEL_LETTERS = ("\u0627", "\u0648", "\u064a", "\u0649", "\u06cc")  # alif, waw, ya, alif maqsura


def _arabic_word(word: str) -> str:
    # anyascii writes Arabic as its consonant skeleton; these rules keep the vowels the
    # script does write (long vowels, ta marbuta, alif maqsura) where Latin spellings have
    # them, and split off the article, so that the skeleton meets the Latin spelling's.
    word = _ARABIC_MARKS.sub("", word)
    prefix = ""
    if word.startswith("\u0627\u0644") and len(word) > 3:  # al-
        prefix, word = "AL ", word[2:]
    out = []
    for index, char in enumerate(word):
        if char in _ALEF or (index == 0 and char in _WEAK_ARABIC):
            out.append("A")
        elif char in _WEAK_ARABIC:
            continue
        elif char == "\u0648":  # waw: a consonant before a vowel letter, else the vowel u
            out.append("W" if index == 0 or word[index + 1 : index + 2] in _VOWEL_LETTERS else "U")
        elif char in "\u064a\u06cc":  # ya: a consonant before a vowel letter, else i
            out.append("Y" if index == 0 or word[index + 1 : index + 2] in _VOWEL_LETTERS else "I")
        elif char in "\u0629\u0649":  # ta marbuta, alif maqsura
            out.append("A")
        else:
            out.append(anyascii(char))
    return prefix + "".join(out)


def _greek_word(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = unicodedata.normalize("NFC", plain).lower()
    pairs = (("ου", "ou"), ("ευ", "ev"), ("αυ", "av"), ("γγ", "ng"), ("γξ", "nx"))  # noqa: RUF001
    for greek, latin in pairs:
        plain = plain.replace(greek, latin)
    plain = plain.replace("γχ", "nch").replace("μπ", "b" if plain.startswith("μπ") else "mp")
    if plain.startswith("ντ"):
        plain = "d" + plain[2:]
    return anyascii(plain)


def transliterate(text: str) -> str:
    """*text* in Latin letters (any script in; case and diacritics may remain)."""
    text = unicodedata.normalize("NFKC", text)
    if text.isascii():
        return text
    words = []
    for word in text.split():
        if _ARABIC.search(word):
            words.append(_arabic_word(word))
        elif _GREEK.search(word):
            words.append(_greek_word(word))
        elif _SYLLABIC.search(word):
            words.append(" ".join(anyascii(c) if _SYLLABIC.match(c) else c for c in word))
        else:
            words.append(anyascii(word))
    return " ".join(words)


_APOSTROPHES = re.compile(r"['`\u2018\u2019\u02bc\u02bb\u00b4]")
_OCR_LETTERS = str.maketrans("0125680", "OIZSGBO")  # an OCR'd name with digits in it
_SEPARATORS = re.compile(r"[^A-Z]+")


def tokens(text: str) -> list[str]:
    """The tokens of a name field: ``"García-López, Mª"`` -> ``["GARCIA", "LOPEZ", "MA"]``."""
    latin = anyascii(transliterate(text)).upper()
    latin = _APOSTROPHES.sub("", latin).translate(_OCR_LETTERS)
    return [t for t in _SEPARATORS.split(latin) if t]


# ---------------------------------------------------------------------------------------------
# Particles and units


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


PARTICLES = _words(
    "AL EL UL BIN IBN BEN BINT BENT BN BNT ABU ABOU "
    "DE DEL DELA DELLA DELLE DEI DES DU DA DAS DOS DO DI LA LE LOS LAS Y E "
    "VAN VON DER DEN TER TEN ZU"
)
"""Connecting words of compound names. They never count as a name part on their own, but
joined units keep them (DELACRUZ, ALRASHID, BINLADEN)."""
_STRIPPABLE = re.compile(
    r"^(VANDER|VANDEN|DELOS|ABOU|DELA|BIN|IBN|BEN|ABU|DEL|DOS|DAS|VAN|VON|AL|EL|UL|DE|DI|DA|DU)"
    r"(?=.{4})"
)
"""Particles written joined to the name they introduce (a name of four letters or more)."""


_BALTIC = re.compile(r"([A-Z]{2,}?[B-DF-HJ-NP-TV-Z])(?:S|AS|US|IS)")
"""A Latvian or Lithuanian masculine ending (-S, -AS, -US, -IS) on a stem of three letters or
more ending in a consonant (IGORAS, IGORS; LAVROVAS; SERGEJS: Latvian and Lithuanian write the
Russian short i, and YE, YU, YA, as J)."""
_BALTIC_KH = re.compile(r"(?<![CSZKTPG])H")
"""Latvian and Lithuanian write the Russian KH (X) as H: MIHAILS is MIKHAIL."""


def baltic_form(token: str) -> str | None:
    """A Latvian/Lithuanian spelling of a name as the Russian transliteration writes it, the
    nominative ending gone, J read as Y, C as TS and H as KH (``SERGEJS`` -> ``SERGEY``,
    ``LAVROVAS`` -> ``LAVROV``, ``IGORAS`` -> ``IGOR``, ``MIHAILAS`` -> ``MIKHAIL``), or
    ``None`` when *token* has no such ending."""
    match = _BALTIC.fullmatch(token)
    if match is None:
        return None
    stem = match.group(1).replace("J", "Y").replace("C", "TS")  # Latvian C is TS (KUZNECOVS)
    return _BALTIC_KH.sub("KH", stem)


# Wade-Giles, the older romanization of Chinese (Taiwan's passports, older lists), as pinyin:
# one syllable, apostrophes lost (so CH may be J, Q or ZH; K, T, P may be G, D, B or
# themselves: the phonetic skeleton already meets the aspirated reading).
_WADE_GILES = re.compile(
    r"(HS|CH|TS|TZ|SH|[KTPMFNLHYWSJ])?"
    r"(IANG|IUNG|IEN|IEH|IAO|ANG|ENG|ING|UNG|UAN|UEI|UEH|IH|AI|AO|AN|EN|IA|IN|IU|OU|UA|UI|UN"
    r"|UO|EI|A|E|I|O|U)"
)
_WG_INITIAL = {"HS": ("X",), "TS": ("Z",), "TZ": ("Z",), "K": ("G",), "T": ("D",), "P": ("B",)}
_WG_FINAL = {"IEN": "IAN", "IEH": "IE", "UEH": "UE", "IH": "I", "UNG": "ONG", "IUNG": "IONG"}


def wade_giles_forms(token: str) -> tuple[str, ...]:
    """A Wade-Giles syllable as pinyin writes it (``HSIAO`` -> ``XIAO``, ``CHING`` -> ``JING``
    and ``QING``, ``KUO`` -> ``GUO``, ``CHIH`` -> ``ZHI``, ``YUNG`` -> ``YONG``, ``LO`` ->
    ``LUO``); nothing when *token* is not one syllable or pinyin writes it alike."""
    match = _WADE_GILES.fullmatch(token)
    if match is None:
        return ()
    initial, written = match.group(1) or "", match.group(2)
    final = _WG_FINAL.get(written, written)
    if initial == "CH":
        initials: tuple[str, ...] = ("J", "Q") if final[0] in "IU" and written != "IH" else ()
        if final[0] != "I" or written == "IH":
            initials += ("ZH",)  # CHIH: ZHI, CHU: ZHU (and JU), CHA: ZHA
    elif initial in ("L", "N", "T") and final == "O":
        initials, final = _WG_INITIAL.get(initial, (initial,)), "UO"
    else:
        initials = _WG_INITIAL.get(initial, (initial,))
    forms = (i + final for i in initials)
    return tuple(f for f in dict.fromkeys(forms) if f != token)


_GREEK_Y = re.compile(r"GI(?=[AEOU])")
"""Greek GI before a vowel (Γι) is written Y as often: GIANNIS YANNIS, KARAGIANNIS KARAYANNIS."""
_MAYAN_K = re.compile(r"QU(?=[EI])|C(?![HEIY])")
"""The Mayan orthographies of Guatemala and Belize (1987 on) write K where the colonial one
wrote C and QU: COC KOK, CAAL KAL, MAQUIN MAKIN."""
_MAYAN_X = re.compile(r"^X(?=[AEIOU])|(?<=[AEIOU])X$")
"""X in Mayan (and in Chinese pinyin) sounds SH, and Belizean spellings write it so: XO SHO,
AX ASH."""


def other_spellings(token: str) -> tuple[str, ...]:
    """*token* as other romanizations and orthographies write it, by general rules (not lists
    of names): Wade-Giles as pinyin (:func:`wade_giles_forms`), Greek GI as Y, CHR for a Greek
    initial HR (HRISTOS), Y for a Slavic initial JE (JEGOROVA), the modern Mayan K for C and
    QU, SH for a Mayan X.

    Each is a unit of kind ``spelling``, which meets the other side's plain tokens exactly (a
    spelling is not compared by sound or edits: two approximations on top of each other find
    namesakes), so one direction of each rule serves both sides."""
    return _other_spellings(token) if len(token) > 1 else ()


@lru_cache(maxsize=65536)
def _other_spellings(token: str) -> tuple[str, ...]:
    forms = list(wade_giles_forms(token))
    forms.append(_GREEK_Y.sub("Y", token))
    if token.startswith("HR"):
        forms.append("C" + token)
    if token.startswith("JE"):
        forms.append("Y" + token[1:])  # Slavic JE (Latvian, German): JEKATERINA YEKATERINA
    mayan = _MAYAN_K.sub("K", token)
    forms.append(mayan)
    forms.append(_MAYAN_X.sub("SH", mayan))
    return tuple(f for f in dict.fromkeys(forms) if f != token and len(f) > 1)


ORGANISATION_WORDS = _words(
    "FOUNDATION FUNDACION FONDATION STIFTUNG FUND FONDS COMPANY CO CORP CORPORATION "
    "INCORPORATED INC LLC LLP LTD LIMITED PLC GMBH AG SA SARL SAS SPA BV NV OOO ZAO OAO PAO "
    "GROUP HOLDING HOLDINGS TRADING BANK ASSOCIATION ASOCIACION SOCIETY MINISTRY ORGANIZATION "
    "ORGANISATION INSTITUTE INSTITUTO UNIVERSITY AGENCY ENTERPRISES INDUSTRIES INTERNATIONAL "
    "SHIPPING AIRLINES AIRWAYS BRIGADE BRIGADES MOVEMENT FRONT PARTY ARMY COMMITTEE COUNCIL"
)
"""Words that make a listed name an organisation's (legal forms, kinds of bodies)."""


def is_organisation(core: Iterable[str]) -> bool:
    """Whether a name's tokens are an organisation's (``KHALIFA HAFTAR FOUNDATION``)."""
    return any(token in ORGANISATION_WORDS for token in core)


@dataclass(frozen=True, slots=True)
class Unit:
    """Something the matcher can align: a token, or tokens joined, or a token stripped."""

    text: str
    mask: int
    """Bit *i* set when the unit stands for core token *i* of the name."""
    field: int
    """0 surname, 1 given names."""
    kind: str
    """token, joined, prefixed (particles joined on), stripped (a joined particle removed),
    baltic (a Latvian/Lithuanian spelling as the Russian transliteration), spelling (another
    romanization or orthography: :func:`other_spellings`) or crossed (the first
    surname and given name joined, either order)."""
    shown: str = ""
    """How the unit is written in the name it comes from (``AL RASHID`` for ``ALRASHID``)."""

    @property
    def display(self) -> str:
        return self.shown or self.text


@dataclass(frozen=True, slots=True)
class Name:
    """One name variant, parsed: its core tokens and its units."""

    core: tuple[str, ...]
    fields: tuple[int, ...]
    """The field (0 surname, 1 given) of each core token."""
    units: tuple[Unit, ...]

    @property
    def surname_mask(self) -> int:
        return sum(1 << i for i, f in enumerate(self.fields) if f == 0)

    @property
    def keyed_units(self) -> tuple[Unit, ...]:
        """The units that make index keys (initials are too common to index)."""
        return tuple(u for u in self.units if len(u.text) > 1)


def _is_particle(field_tokens: list[str], index: int) -> bool:
    # A particle introduces a later non-particle token of its field; alone, or last, it is a
    # name (Vietnamese LE, Dutch VAN as a surname).
    if field_tokens[index] not in PARTICLES:
        return False
    return any(t not in PARTICLES for t in field_tokens[index + 1 :])


def parse_name(surname: list[str], given: list[str]) -> Name:
    """The :class:`Name` of a surname and given names, both already :func:`tokens`."""
    core: list[str] = []
    fields: list[int] = []
    units: list[Unit] = []
    for field, field_tokens in enumerate((surname, given)):
        pending: list[str] = []  # particles before the next core token
        previous: tuple[int, list[str]] | None = None  # (core index, tokens since it)
        for index, token in enumerate(field_tokens):
            if _is_particle(field_tokens, index):
                pending.append(token)
                if previous is not None:
                    previous[1].append(token)
                continue
            position = len(core)
            bit = 1 << position
            core.append(token)
            fields.append(field)
            units.append(Unit(token, bit, field, "token"))
            if pending:
                shown = " ".join((*pending, token))
                units.append(Unit("".join(pending) + token, bit, field, "prefixed", shown))
            joined_particle = _STRIPPABLE.match(token)
            if joined_particle:
                prefix = joined_particle.group(1)
                shown = f"{token} without {prefix}"
                units.append(Unit(token[len(prefix) :], bit, field, "stripped", shown))
            baltic = baltic_form(token)
            if baltic is not None:
                units.append(Unit(baltic, bit, field, "baltic", f"{token} as {baltic}"))
            for spelling in other_spellings(token):
                units.append(Unit(spelling, bit, field, "spelling", f"{token} as {spelling}"))
            if previous is not None and len(token) > 1 and len(core[previous[0]]) > 1:
                parts = (core[previous[0]], *previous[1], token)
                mask = bit | (1 << previous[0])
                units.append(Unit("".join(parts), mask, field, "joined", " ".join(parts)))
                shown = " ".join(parts)
                for text in _joined_spellings(parts):
                    units.append(Unit(text, mask, field, "spelling", f"{shown} as {text}"))
            previous = (position, [])
            pending = []
    first = [fields.index(f) if f in fields else -1 for f in (0, 1)]
    if min(first) >= 0 and len(core[first[0]]) > 1 and len(core[first[1]]) > 1:
        surname, given = core[first[0]], core[first[1]]
        mask = (1 << first[0]) | (1 << first[1])
        units.append(Unit(surname + given, mask, 0, "crossed", f"{surname} {given}"))
        units.append(Unit(given + surname, mask, 0, "crossed", f"{given} {surname}"))
    return Name(tuple(core), tuple(fields), tuple(units))


@lru_cache(maxsize=65536)
def _joined_spellings(parts: tuple[str, ...]) -> tuple[str, ...]:
    """Two tokens (and the particles between them) joined, either token in another spelling
    (:func:`other_spellings`): MING HSIAO as MINGXIAO."""
    first, *between, last = parts
    middle = "".join(between)
    firsts, lasts = (first, *other_spellings(first)), (last, *other_spellings(last))
    texts = dict.fromkeys(a + middle + b for a in firsts for b in lasts)
    texts.pop(first + middle + last, None)
    return tuple(texts)


@lru_cache(maxsize=8192)
def parse_stored(stored: str) -> tuple[Name, ...]:
    """A stored entry's names: ``"SURNAME TOKENS/GIVEN TOKENS|..."`` (see :func:`store_form`)."""
    names = []
    for variant in stored.split("|"):
        surname, _, given = variant.partition("/")
        names.append(parse_name(surname.split(), given.split()))
    return tuple(names)


def store_form(names: list[tuple[list[str], list[str]]]) -> str:
    """How a person's names are stored for the matcher: tokens, fields by ``/``, names by ``|``."""
    return "|".join(" ".join(s) + "/" + " ".join(g) for s, g in names)


# ---------------------------------------------------------------------------------------------
# Phonetic skeleton

_SPECIAL = {
    # digraphs, in the order they are tried at each position
    "SHCH": "S",
    "TSCH": "K",
    "SCH": "S",
    "TCH": "K",
    "DZH": "J",
    "CH": "K",
    "KH": "K",
    "CK": "K",
    "CZ": "K",
    "SH": "S",
    "SZ": "S",
    "ZH": "J",
    "DJ": "J",
    "DZ": "J",
    "PH": "F",
    "TH": "T",
    "GH": "G",
    "TS": "S",
    "TZ": "S",
    "QU": "K",
}
_SPECIAL_RE = re.compile(
    "|".join(_SPECIAL)
    + r"|^G(?=[EIY])"  # Greek GEORGIOS = YIORGOS, GIANNIS = YANNIS: a vowel onset
    + r"|C(?=[EIY])"  # soft C
    + r"|(?<=[AEIOUY])J$"  # SERGEJ = SERGEY, ANDREJ = ANDREY
)
_SPECIAL_OUT = {**_SPECIAL, "G": "*", "C": "S", "J": "*"}
# Single letters to symbols: vowels "*", H "h" (both dropped but at the start), others by
# class. The digraph outputs (S K J F T G *) are fixed points, so one pass after them works.
_SINGLE = str.maketrans(
    {
        **dict.fromkeys("AEIOUY", "*"),
        "H": "h",
        **{c: c for c in "BFGJKLMNPRST"},
        "C": "K",
        "D": "T",
        "Q": "K",
        "V": "F",
        "W": "F",  # IWANOW = IVANOV, KOWALSKI = KOVALSKI
        "X": "KS",
        "Z": "S",
    }
)
_REPEATS = re.compile(r"(.)\1+")


def _special(match: re.Match[str]) -> str:
    return _SPECIAL_OUT[match.group()]


@lru_cache(maxsize=65536)
def phonetic(token: str) -> str:
    """The consonant skeleton of an upper-case token: transliteration variants share it.

    Vowels go (a leading vowel, H, Y or soft G becomes ``A``), doubled letters count once, and
    consonants that transliterations interchange share a symbol: C/K/Q/CH/KH/TCH, S/Z/SH/TS,
    D/T, V/W/F/PH, J/ZH/DJ, X = KS.
    """
    symbols = _SPECIAL_RE.sub(_special, _REPEATS.sub(r"\1", token)).translate(_SINGLE)
    head = "A" if symbols[:1] in ("*", "h") else ""
    skeleton = head + symbols.replace("*", "").replace("h", "")
    return skeleton or token


def code_hash(code: str) -> int:
    """A 31-bit, never zero, stable integer for a phonetic code (CRC-32 based)."""
    return (zlib.crc32(code.encode("ascii")) & 0x7FFFFFFF) or 1


def pair_key(a: int, b: int) -> int:
    """The index key of two codes together, order-free; above every single-code key."""
    low, high = (a, b) if a <= b else (b, a)
    return (low << 31) | high


def deletions(token: str) -> set[str]:
    """*token* and every string one deletion away: the fuzzy vocabulary's variants (SymSpell).

    Two tokens within one edit (a substitution, an insertion, a deletion or most adjacent
    transpositions) share a variant.
    """
    return {token} | {token[:i] + token[i + 1 :] for i in range(len(token))}


MIN_FUZZY_LENGTH = 4
"""Shorter tokens get no fuzzy vocabulary entries: one edit away from too much."""


@dataclass(frozen=True, slots=True)
class PersonIndex:
    """What the store keeps to find a person: stored names, index keys, vocabulary."""

    stored: str
    keys: frozenset[int]
    vocabulary: frozenset[str]
    """Unit texts the fuzzy vocabulary should know (tokens and joined tokens)."""


def name_fields(name: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The surname and given-name tokens of a ``{"surname", "given_names"}`` name."""
    return tokens(name.get("surname") or ""), tokens(name.get("given_names") or "")


def unit_keys(
    units: Iterable[Unit], codes: Mapping[Unit, Iterable[int]], *, all_singles: bool = False
) -> set[int]:
    """The blocking keys of a name's units.

    Pairs: every two units about different tokens, one of them at least from the surname
    (crossed units, which stand for a surname and a given name at once, make none).
    A hit needs a surname token of the list's name and one of the traveller's to take part,
    and two tokens to match, so any hit shares such a pair, and given-name pairs (the
    commonest: JOSE LUIS, MOHAMMED ALI) are never needed. Singles: the surname units (all
    units with *all_singles*, or when the name has one token or no surname).
    """
    keyed = [u for u in units if codes.get(u)]
    has_surname = any(u.field == 0 for u in keyed)
    single_token = len({u.mask for u in keyed if u.kind == "token"}) <= 1
    keys: set[int] = set()
    for unit in keyed:
        if all_singles or single_token or not has_surname or unit.field == 0:
            keys.update(codes[unit])
    paired = [u for u in keyed if u.kind != "crossed"]  # a crossed unit: a single key only
    for first, second in combinations(paired, 2):
        if first.mask & second.mask:
            continue
        if has_surname and first.field and second.field:
            continue
        for a in codes[first]:
            for b in codes[second]:
                keys.add(pair_key(a, b))
    return keys


def stored_keys(stored: str) -> frozenset[int]:
    """The index keys of a person from its stored names (the same at insert and at removal).

    The keys :func:`unit_keys` makes of each stored name's :attr:`Name.keyed_units`, computed
    without making the units: an import indexes a million persons, and units (objects, hashed
    into a dictionary) were most of that time. :func:`_variant_keys` says how.
    """
    return _stored_index(stored)[0]


# Codes of unit texts, shared by every name indexed: tokens and joined pairs repeat across
# persons (IVANOV, SERGEY, MOHAMMED ALI), a code is a phonetic skeleton and a CRC. Bounded:
# emptied when full, as the names of a million persons hold more distinct texts than that.
_CODES: dict[str, int] = {}
_CODES_MAX = 400_000


def _code(text: str) -> int:
    code = _CODES.get(text)
    if code is None:
        if len(_CODES) >= _CODES_MAX:
            _CODES.clear()
        code = _CODES[text] = code_hash(phonetic(text))
    return code


@lru_cache(maxsize=65536)
def _token_codes(token: str) -> tuple[int, ...]:
    """The codes of the keyed units one core token makes on its own: itself (unless an
    initial), without a joined particle (``stripped``), as a Baltic spelling (``baltic``)."""
    codes = [_code(token)] if len(token) > 1 else []
    joined_particle = _STRIPPABLE.match(token)
    if joined_particle:
        codes.append(_code(token[len(joined_particle.group(1)) :]))
    baltic = baltic_form(token)
    if baltic is not None:
        codes.append(_code(baltic))
    codes += (_code(spelling) for spelling in other_spellings(token))
    return tuple(codes)


def _variant_keys(
    surname: list[str], given: list[str], keys: set[int], vocabulary: set[str], core: set[str]
) -> None:
    """Add to *keys* what ``unit_keys(parse_name(surname, given).keyed_units, ...)`` gives,
    to *vocabulary* the texts of its token and joined units of :data:`MIN_FUZZY_LENGTH` or
    more, to *core* its core tokens.

    The same walk as :func:`parse_name`, but each keyed unit is only ``(code, mask, field)``
    and crossed units are kept apart (single keys only). Which units exist, which are keyed
    (more than one letter) and which pairs make keys follow :func:`parse_name` and
    :func:`unit_keys` exactly; ``tests/test_screening_names.py`` compares the two on lists.
    """
    units: list[tuple[int, int, int]] = []  # (code, mask, field) of every keyed unit
    token_masks = 0  # masks of keyed token units, OR-ed: how many distinct tokens are keyed
    token_count = 0
    firsts: list[str | None] = [None, None]
    first_bits = [0, 0]
    position = 0
    for field, field_tokens in ((0, surname), (1, given)):
        pending: list[str] = []
        previous: tuple[str, int] | None = None  # (core token, its bit)
        between: list[str] = []  # particles since the previous core token
        for index, token in enumerate(field_tokens):
            if token in PARTICLES and any(t not in PARTICLES for t in field_tokens[index + 1 :]):
                pending.append(token)
                if previous is not None:
                    between.append(token)
                continue
            bit = 1 << position
            position += 1
            if firsts[field] is None:
                firsts[field], first_bits[field] = token, bit
            core.add(token)
            for code in _token_codes(token):
                units.append((code, bit, field))
            if len(token) >= MIN_FUZZY_LENGTH:
                vocabulary.add(token)
            if len(token) > 1:
                token_masks |= bit
                token_count += 1
            if pending:
                units.append((_code("".join(pending) + token), bit, field))
            if previous is not None and len(token) > 1 and len(previous[0]) > 1:
                parts = (previous[0], *between, token)
                text = "".join(parts)
                units.append((_code(text), bit | previous[1], field))
                if len(text) >= MIN_FUZZY_LENGTH:
                    vocabulary.add(text)
                for text in _joined_spellings(parts):
                    units.append((_code(text), bit | previous[1], field))
            previous, between, pending = (token, bit), [], []
    crossed: list[int] = []
    first_surname, first_given = firsts
    if first_surname and first_given and len(first_surname) > 1 and len(first_given) > 1:
        crossed = [_code(first_surname + first_given), _code(first_given + first_surname)]
    has_surname = bool(crossed) or any(field == 0 for _, _, field in units)
    if token_count <= 1 or not has_surname:
        keys.update(code for code, _, _ in units)
    else:
        keys.update(code for code, _, field in units if field == 0)
    keys.update(crossed)
    count = len(units)
    for i in range(count):
        code_a, mask_a, field_a = units[i]
        for j in range(i + 1, count):
            code_b, mask_b, field_b = units[j]
            if mask_a & mask_b or (has_surname and field_a and field_b):
                continue
            keys.add((code_a << 31) | code_b if code_a <= code_b else (code_b << 31) | code_a)


def _index_sets(stored: str) -> tuple[set[int], set[str], set[str]]:
    """The index keys, fuzzy vocabulary and core tokens of a person's stored names."""
    keys: set[int] = set()
    vocabulary: set[str] = set()
    core: set[str] = set()
    for variant in stored.split("|"):
        surname, _, given = variant.partition("/")
        _variant_keys(surname.split(), given.split(), keys, vocabulary, core)
    return keys, vocabulary, core


@lru_cache(maxsize=8192)
def _stored_index(stored: str) -> tuple[frozenset[int], frozenset[str], frozenset[str]]:
    keys, vocabulary, core = _index_sets(stored)
    return frozenset(keys), frozenset(vocabulary), frozenset(core)


def person_tokens(stored: str) -> frozenset[str]:
    """The distinct core tokens of a person's names: what the vocabulary counts per person."""
    return _stored_index(stored)[2]


@lru_cache(maxsize=65536)
def _field_form(text: str) -> str:
    # A name field's tokens as stored: surnames and given names repeat across a list.
    return " ".join(tokens(text))


def index_person(names: Iterable[Mapping[str, str]]) -> PersonIndex:
    """The :class:`PersonIndex` of a person entry's names."""
    stored, keys, vocabulary, _ = index_names(names)
    return PersonIndex(stored, frozenset(keys), frozenset(vocabulary))


def index_names(
    names: Iterable[Mapping[str, str]],
) -> tuple[str, tuple[int, ...], tuple[str, ...], tuple[str, ...]]:
    """What :func:`index_person` and :func:`person_tokens` give, in tuples: stored form, index
    keys, vocabulary and core tokens (a bulk load's form: no cache, no objects kept)."""
    # store_form([name_fields(name) for name in names]), each field's tokens found once
    stored = "|".join(
        _field_form(name.get("surname") or "") + "/" + _field_form(name.get("given_names") or "")
        for name in names
    )
    keys, vocabulary, core = _index_sets(stored)
    return stored, tuple(keys), tuple(vocabulary), tuple(core)
