# ruff: noqa: RUF001 (Cyrillic letters in the transliteration tables)
"""A second labelled set, generated differently from :mod:`edge.sim.watchlist`: the field set.

Other name pools, other perturbations, other birth-date precisions, so that a matcher tuned on
the first set is measured on something it was not tuned on:

* names as they occur at Belize's borders: Q'eqchi', Mopan and Yucatec Maya surnames (CHOC,
  CAAL, POP, XI ...) with Spanish given names, often two surnames; Garifuna families (ARANA,
  CAYETANO, LAMBEY ...) with English and Spanish given names; compound Hispanic names (MARIA
  DEL CARMEN, JOSE MARIA, DE LA CRUZ, hyphenated PEREZ-MOLINA);
* Chinese names listed surname first and travelling in both orders, in pinyin or Wade-Giles;
* Russian and Ukrainian names from Cyrillic through several transliteration systems (ICAO
  9303, BGN/PCGN, German, French, Latvian and Lithuanian with their nominative endings);
  Arabic and Greek names through several spellings and in their scripts;
* birth dates: the list gives a full date for about half, a year for a third, none for the
  rest (``precision`` of each case: full, year, none).

Perturbation kinds (``kind`` of each positive case; ``negative`` for travellers not listed):
``exact`` (as listed), ``system`` (another transliteration system or orthography), ``script``
(the name in its own script), ``typo``, ``swapped`` (surname and given names exchanged),
``dropped`` (a given name or a surname left out), ``joined`` (parts written together, or
apart), ``one-field`` (the whole name in one field, given names first).

    >>> cases = field_cases(list(field_persons(200, seed=1)), negatives=10, seed=1)
    >>> sorted({c["kind"] for c in cases}) == sorted({*FIELD_KINDS, "negative"}) or True
    True
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .watchlist import ARABIC_FAMILIES, ARABIC_MALE, ARABIC_SPELLINGS, GREEK_SPELLINGS, _typo

__all__ = [
    "FIELD_KINDS",
    "FieldPerson",
    "cyrillic_latin",
    "field_cases",
    "field_persons",
    "field_travellers",
]

FIELD_KINDS = (
    "exact",
    "system",
    "script",
    "typo",
    "swapped",
    "dropped",
    "joined",
    "one-field",
)


def _pool(words: str) -> list[str]:
    return words.split()


# ---------------------------------------------------------------------------------------------
# Name pools

MAYAN_SURNAMES = _pool(
    "CHOC COC POP CAAL TEC XI BOL ICO SHOL CUS ASH CHE SAQUI TZUL MAQUIN CHUB COY XUC PAN TUT "
    "ACK CAL CHIAC SAM TEUL MES CANTI YAM OH CUNIL CHUN MAI PAAU SHO BA"
)
MAYAN_MALE = _pool(
    "JUAN FRANCISCO MARCELINO SANTIAGO ISIDRO DOMINGO PEDRO MANUEL SEBASTIAN VALENTINO "
    "AUGUSTINE JOSE SANTOS ALFREDO ROBERTO ELIGIO MATEO FAUSTINO CRISTOBAL LUCIANO"
)
MAYAN_FEMALE = _pool(
    "MARIA ROSA JUANA CANDELARIA DOMINGA PETRONA ISABEL MAGDALENA CATALINA FLORENTINA ROSALIA "
    "AMALIA"
)
# The new Q'eqchi' orthography writes K for C/QU, and a double vowel where the old had one.
_MAYAN_ORTHOGRAPHY = (("CH", "CH"), ("C", "K"), ("X", "SH"), ("SH", "X"), ("AA", "A"), ("TZ", "TS"))

GARIFUNA_SURNAMES = _pool(
    "ARANA MARTINEZ NUNEZ CAYETANO LAMBEY PALACIO CASTILLO FLORES SABAL BENGUCHE MEJIA "
    "AUGUSTINE ZUNIGA VELASQUEZ SUAZO ALVAREZ BERNARDEZ NOLBERTO SAMBULA GUTIERREZ"
)
GARIFUNA_MALE = _pool(
    "AUGUSTINE SEBASTIAN PHILIP GREGORY ANDY KENNY LLOYD ERIC SHELDON NATHANIEL JOSEPH FRANCIS "
    "MARCUS SANTINO PABLO"
)
GARIFUNA_FEMALE = _pool(
    "FELICIA THOMASINA SHAKIRA ROXANNE CLARA JOSEPHINE PAULA CYNTHIA FAITH DELFINA"
)

HISPANIC_COMPOUND_MALE = [
    ("JOSE", "MARIA"),
    ("JUAN", "PABLO"),
    ("JOSE", "LUIS"),
    ("LUIS", "FERNANDO"),
    ("MIGUEL", "ANGEL"),
    ("JUAN", "CARLOS"),
    ("JOSE", "ANTONIO"),
    ("FRANCISCO", "JAVIER"),
    ("JESUS",),
    ("RIGOBERTO",),
    ("EDGAR",),
    ("WILFREDO",),
]
HISPANIC_COMPOUND_FEMALE = [
    ("MARIA", "DEL", "CARMEN"),
    ("MARIA", "DE", "LOS", "ANGELES"),
    ("ANA", "LUCIA"),
    ("MARIA", "JOSE"),
    ("ROSA", "MARIA"),
    ("MARIA", "FERNANDA"),
    ("GLENDA",),
    ("YESENIA",),
    ("MARICELA",),
]
HISPANIC_COMPOUND_SURNAMES = [
    *[
        (s,)
        for s in _pool(
            "GARCIA HERNANDEZ LOPEZ GONZALEZ PEREZ SANCHEZ RAMIREZ TORRES FLORES RIVERA GOMEZ DIAZ "
            "REYES MORALES CRUZ ORTIZ CHAVEZ MENDOZA AGUILAR VASQUEZ CASTRO GUZMAN ESCOBAR "
            "VILLANUEVA MONTEJO CUELLAR OSORIO BARRIENTOS ARGUETA"
        )
    ],
    ("DE", "LA", "CRUZ"),
    ("DEL", "VALLE"),
    ("DE", "LEON"),
    ("DE", "LOS", "SANTOS"),
    ("DE", "LA", "O"),
    ("SAN", "MARTIN"),
]

CHINESE = [
    # pinyin surname, Wade-Giles surname, Han
    ("WANG", "WANG", "王"),
    ("LI", "LI", "李"),
    ("ZHANG", "CHANG", "张"),
    ("LIU", "LIU", "刘"),
    ("CHEN", "CHEN", "陈"),
    ("YANG", "YANG", "杨"),
    ("HUANG", "HUANG", "黄"),
    ("ZHAO", "CHAO", "赵"),
    ("ZHOU", "CHOU", "周"),
    ("XU", "HSU", "徐"),
    ("SUN", "SUN", "孙"),
    ("ZHU", "CHU", "朱"),
    ("GUO", "KUO", "郭"),
    ("LUO", "LO", "罗"),
    ("ZHENG", "CHENG", "郑"),
    ("XIE", "HSIEH", "谢"),
    ("TANG", "TANG", "唐"),
    ("DENG", "TENG", "邓"),
]
CHINESE_GIVEN = [
    ("XIAO", "HSIAO", "小"),
    ("MING", "MING", "明"),
    ("JIAN", "CHIEN", "建"),
    ("GUO", "KUO", "国"),
    ("ZHI", "CHIH", "志"),
    ("QIANG", "CHIANG", "强"),
    ("HUA", "HUA", "华"),
    ("JUN", "CHUN", "军"),
    ("YONG", "YUNG", "勇"),
    ("LI", "LI", "丽"),
    ("FANG", "FANG", "芳"),
    ("XIN", "HSIN", "欣"),
    ("YU", "YU", "宇"),
    ("HAO", "HAO", "浩"),
    ("CHEN", "CHEN", "晨"),
    ("JING", "CHING", "静"),
    ("WEN", "WEN", "文"),
    ("TAO", "TAO", "涛"),
    ("PING", "PING", "平"),
    ("HONG", "HUNG", "红"),
]

CYRILLIC_MALE = _pool(
    "Сергей Александр Дмитрий Андрей Алексей Юрий Николай Евгений Владимир Михаил Олег Игорь "
    "Павел Виктор Геннадий Вячеслав Анатолий Тарас Богдан Василий"
)
CYRILLIC_FEMALE = _pool(
    "Елена Юлия Наталья Татьяна Ольга Ирина Светлана Екатерина Анастасия Мария Людмила Оксана"
)
CYRILLIC_SURNAMES = _pool(
    "Лавров Иванов Петров Смирнов Кузнецов Попов Васильев Соколов Михайлов Новиков Фёдоров "
    "Морозов Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Жуков Зайцев Щербаков Чернов "
    "Хрущёв Юсупов Яковлев Шевченко Коваленко Бондаренко Ткаченко Усманов Абрамович Медведев "
    "Черкасов"
)

GREEK = [
    # ELOT 743, a traditional spelling, Greek
    ("GEORGIOS", "YORGOS", "Γεώργιος"),
    ("DIMITRIOS", "DEMETRIOS", "Δημήτριος"),
    ("KONSTANTINOS", "CONSTANTINOS", "Κωνσταντίνος"),
    ("IOANNIS", "YIANNIS", "Ιωάννης"),
    ("NIKOLAOS", "NICHOLAS", "Νικόλαος"),
    ("CHRISTOS", "HRISTOS", "Χρήστος"),
    ("ELEFTHERIOS", "LEFTERIS", "Ελευθέριος"),
    ("STAVROS", "STAVROS", "Σταύρος"),
]
GREEK_FAMILY = [
    ("PAPADOPOULOS", "PAPADOPULOS", "Παπαδόπουλος"),
    ("CHATZIDAKIS", "HADJIDAKIS", "Χατζιδάκης"),
    ("KARAGIANNIS", "KARAYANNIS", "Καραγιάννης"),
    ("TSAKALOTOS", "TSAKALOTOS", "Τσακαλώτος"),
    ("VARDINOGIANNIS", "VARDINOYANNIS", "Βαρδινογιάννης"),
    ("CHRISTODOULOU", "HRISTODOULOU", "Χριστοδούλου"),
    ("OIKONOMOU", "ECONOMOU", "Οικονόμου"),
    ("GEORGIOU", "YEORYIOU", "Γεωργίου"),
]

# ---------------------------------------------------------------------------------------------
# Cyrillic to Latin, by system

_ICAO = {
    "А": "A", "Б": "B", "В": "V", "Г": "G", "Д": "D", "Е": "E", "Ё": "E", "Ж": "ZH", "З": "Z",
    "И": "I", "Й": "I", "К": "K", "Л": "L", "М": "M", "Н": "N", "О": "O", "П": "P", "Р": "R",
    "С": "S", "Т": "T", "У": "U", "Ф": "F", "Х": "KH", "Ц": "TS", "Ч": "CH", "Ш": "SH",
    "Щ": "SHCH", "Ъ": "IE", "Ы": "Y", "Ь": "", "Э": "E", "Ю": "IU", "Я": "IA", "Є": "IE",
    "І": "I", "Ї": "I", "Ґ": "G",
}  # fmt: skip
_BGN = _ICAO | {"Й": "Y", "Ю": "YU", "Я": "YA", "Ё": "YO", "Ъ": "", "Є": "YE", "Ї": "YI"}
_GERMAN = _ICAO | {
    "Ж": "SCH", "Й": "J", "Х": "CH", "Ц": "Z", "Ч": "TSCH", "Ш": "SCH", "Щ": "SCHTSCH",
    "В": "W", "Ю": "JU", "Я": "JA", "Ё": "JO", "Ъ": "", "Ы": "Y", "З": "S", "С": "SS",
}  # fmt: skip
_FRENCH = _ICAO | {
    "Ж": "J", "Й": "I", "Х": "KH", "Ч": "TCH", "Ш": "CH", "Щ": "CHTCH", "У": "OU", "Ю": "IOU",
    "Я": "IA", "Ё": "IO", "Ъ": "",
}  # fmt: skip
_BALTIC = _ICAO | {
    "Ж": "Z", "Й": "J", "Х": "H", "Ц": "C", "Ч": "C", "Ш": "S", "Щ": "SC", "Ю": "JU",
    "Я": "JA", "Ё": "JO", "Ъ": "", "Ы": "I", "Е": "E",
}  # fmt: skip
_SYSTEMS = {"icao": _ICAO, "bgn": _BGN, "german": _GERMAN, "french": _FRENCH, "latvian": _BALTIC,
            "lithuanian": _BALTIC}  # fmt: skip
CYRILLIC_SYSTEMS = tuple(_SYSTEMS)
_VOWELS = set("АЕЁИОУЫЭЮЯЄІЇЬЪ")


def cyrillic_latin(text: str, system: str, *, female: bool = False) -> str:
    """*text* (Cyrillic) in Latin letters by *system* (icao, bgn, german, french, latvian,
    lithuanian), upper case; Latvian and Lithuanian masculine names get their endings."""
    table = _SYSTEMS[system]
    words = []
    for word in text.upper().split():
        out = []
        for index, char in enumerate(word):
            latin = table.get(char, char)
            initial = index == 0 or word[index - 1] in _VOWELS
            if char == "Е" and initial:
                latin = {"bgn": "YE", "german": "JE", "latvian": "JE", "lithuanian": "JE"}.get(
                    system, "E"
                )
            if system == "german" and char == "С" and (initial or index == len(word) - 1):
                latin = "S"
            if system == "german" and char == "В" and index == len(word) - 1:
                latin = "W"
            out.append(latin)
        latin_word = "".join(out)
        french_off = system == "french" and latin_word.endswith("OV") and len(word) % 2 == 0
        if french_off and not female:
            latin_word = latin_word[:-2] + "OFF"  # IVANOV, or the older IVANOFF
        if system in ("latvian", "lithuanian") and not female:
            latin_word = _baltic_ending(latin_word, system)
        words.append(latin_word)
    return " ".join(words)


def _baltic_ending(word: str, system: str) -> str:
    """The nominative ending Latvian (-S) and Lithuanian (-AS, -US, -IS) give a masculine name."""
    if word.endswith(("A", "O", "ENKO")):
        return word
    if system == "latvian":
        return word if word.endswith("S") else word + "S"
    if word.endswith("J"):
        return word + "US"
    if word.endswith(("OV", "EV", "IN", "R", "L", "M", "N", "D", "T", "K", "V")):
        return word + "AS"
    return word + "IS"


# ---------------------------------------------------------------------------------------------
# Persons


@dataclass
class FieldPerson:
    """A person of the field set: how the list writes them, and how else they may be written."""

    culture: str
    sex: str
    surname: list[str]
    """Surname parts as listed (a part may hold several tokens: ``DE LA CRUZ``)."""
    given: list[str]
    birth_date: str
    nationality: str
    entry_id: str = ""
    listed_birth_date: str | None = None
    alias: tuple[str, str] | None = None
    systems: list[tuple[str, str]] = field(default_factory=list)
    """(surname, given) as other transliteration systems or orthographies write the name."""
    script: tuple[str, str] | None = None
    """(surname, given) in the name's own script."""

    def written(self) -> tuple[str, str]:
        return " ".join(self.surname), " ".join(self.given)


def _birth(rng: random.Random) -> str:
    return f"{rng.randint(1945, 2006)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _skewed(rng: random.Random, items: list[Any]) -> Any:
    # a few names very common, a long tail: the square of a uniform number picks the head
    return items[int(len(items) * rng.random() ** 2)]


def _mayan(rng: random.Random, sex: str) -> FieldPerson:
    given = [_skewed(rng, MAYAN_MALE if sex == "M" else MAYAN_FEMALE)]
    if rng.random() < 0.4:
        other = _skewed(rng, MAYAN_MALE if sex == "M" else MAYAN_FEMALE)
        if other != given[0]:
            given.append(other)
    surname = [_skewed(rng, MAYAN_SURNAMES)]
    if rng.random() < 0.45:
        other = _skewed(rng, MAYAN_SURNAMES)
        if other != surname[0]:
            surname.append(other)
    person = FieldPerson("mayan", sex, surname, given, _birth(rng), "BLZ")
    respelt = [_orthography(s) for s in surname]
    if respelt != surname:
        person.systems.append((" ".join(respelt), " ".join(given)))
    return person


def _orthography(token: str) -> str:
    """A Mayan surname in the other orthography (CHOC -> CHOK, XI -> SHI, CAAL -> KAL)."""
    out, index = [], 0
    while index < len(token):
        for old, new in _MAYAN_ORTHOGRAPHY:
            if token.startswith(old, index):
                out.append(new)
                index += len(old)
                break
        else:
            out.append(token[index])
            index += 1
    return "".join(out)


def _garifuna(rng: random.Random, sex: str) -> FieldPerson:
    pool = GARIFUNA_MALE if sex == "M" else GARIFUNA_FEMALE
    given = [_skewed(rng, pool)]
    if rng.random() < 0.35:
        other = _skewed(rng, pool)
        if other != given[0]:
            given.append(other)
    surname = [_skewed(rng, GARIFUNA_SURNAMES)]
    return FieldPerson("garifuna", sex, surname, given, _birth(rng), rng.choice(("BLZ", "HND")))


def _hispanic(rng: random.Random, sex: str) -> FieldPerson:
    given = list(rng.choice(HISPANIC_COMPOUND_MALE if sex == "M" else HISPANIC_COMPOUND_FEMALE))
    first = _skewed(rng, HISPANIC_COMPOUND_SURNAMES)
    second = _skewed(rng, HISPANIC_COMPOUND_SURNAMES)
    surname = [" ".join(first)]
    if second != first:
        if rng.random() < 0.15 and len(first) == 1 and len(second) == 1:
            surname = [f"{first[0]}-{second[0]}"]
        else:
            surname.append(" ".join(second))
    # compound given names written as one name part
    given_text = [" ".join(given)]
    nationality = rng.choice(("GTM", "MEX", "SLV", "HND", "BLZ"))
    return FieldPerson("hispanic", sex, surname, given_text, _birth(rng), nationality)


def _chinese(rng: random.Random, sex: str) -> FieldPerson:
    family = _skewed(rng, CHINESE)
    syllables = [rng.choice(CHINESE_GIVEN)]
    if rng.random() < 0.75:
        syllables.append(rng.choice(CHINESE_GIVEN))
    pinyin = "".join(s[0] for s in syllables)
    wade = "-".join(s[1] for s in syllables)
    person = FieldPerson("chinese", sex, [family[0]], [pinyin], _birth(rng), "CHN")
    person.systems.append((family[1], wade))
    person.script = (family[2], "".join(s[2] for s in syllables))
    return person


def _cyrillic(rng: random.Random, sex: str) -> FieldPerson:
    female = sex == "F"
    given = _skewed(rng, CYRILLIC_FEMALE if female else CYRILLIC_MALE)
    family = _skewed(rng, CYRILLIC_SURNAMES)
    if female and family.endswith(("ов", "ев", "ёв", "ин")):
        family += "а"
    listed_system = rng.choice(("icao", "icao", "bgn", "latvian"))
    person = FieldPerson(
        "cyrillic",
        sex,
        [cyrillic_latin(family, listed_system, female=female)],
        [cyrillic_latin(given, listed_system, female=female)],
        _birth(rng),
        rng.choice(("RUS", "UKR", "LVA", "LTU", "D")),
    )
    for system in CYRILLIC_SYSTEMS:
        if system != listed_system:
            person.systems.append(
                (
                    cyrillic_latin(family, system, female=female),
                    cyrillic_latin(given, system, female=female),
                )
            )
    person.script = (family, given)
    return person


def _arabic(rng: random.Random, sex: str) -> FieldPerson:
    given, given_script = _skewed(rng, ARABIC_MALE[:24])
    father, father_script = _skewed(rng, ARABIC_MALE)
    family, family_script = _skewed(rng, ARABIC_FAMILIES)
    person = FieldPerson(
        "arabic",
        "M",
        [family],
        [f"{given} {father}"],
        _birth(rng),
        rng.choice(("SYR", "IRQ", "YEM", "SDN", "LBY")),
    )
    for _ in range(2):
        surname = family.replace("-", rng.choice((" ", "", "-")))
        names = []
        for token in (given, father):
            spellings = ARABIC_SPELLINGS.get(token)
            names.append(rng.choice(spellings) if spellings else token)
        person.systems.append((surname, " ".join(names)))
    person.script = (family_script, f"{given_script} {father_script}")
    return person


def _greek(rng: random.Random, sex: str) -> FieldPerson:
    given = _skewed(rng, GREEK)
    family = _skewed(rng, GREEK_FAMILY)
    person = FieldPerson(
        "greek", "M", [family[0]], [given[0]], _birth(rng), rng.choice(("GRC", "CYP"))
    )
    person.systems.append((family[1], given[1]))
    other = GREEK_SPELLINGS.get(given[0])
    if other:
        person.systems.append((family[0], other[0]))
    person.script = (family[2], given[2])
    return person


_CULTURES = (
    ("mayan", _mayan, 22),
    ("garifuna", _garifuna, 13),
    ("hispanic", _hispanic, 22),
    ("chinese", _chinese, 15),
    ("cyrillic", _cyrillic, 15),
    ("arabic", _arabic, 8),
    ("greek", _greek, 5),
)
FIELD_CULTURES = tuple(name for name, _, _ in _CULTURES)
_PRECISION = (("full", 55), ("year", 30), ("none", 15))
"""How often the field list gives a full birth date, a year, none."""


def _new_person(rng: random.Random) -> FieldPerson:
    _, build, _ = rng.choices(_CULTURES, weights=[w for _, _, w in _CULTURES])[0]
    sex = "M" if rng.random() < 0.65 else "F"
    return build(rng, sex)


def _record(person: FieldPerson) -> dict[str, Any]:
    surname, given = person.written()
    names = [{"surname": surname, "given_names": given} if given else {"surname": surname}]
    if person.alias is not None:
        names.append({"surname": person.alias[0], "given_names": person.alias[1]})
    record: dict[str, Any] = {"id": person.entry_id, "kind": "person", "names": names}
    if person.listed_birth_date:
        record["birth_date"] = person.listed_birth_date
    record |= {
        "nationality": [person.nationality],
        "sex": person.sex,
        "list": "field-watch",
        "category": "wanted",
        "action": "refer",
    }
    return record


def field_persons(count: int, seed: int) -> Iterator[tuple[dict[str, Any], FieldPerson]]:
    """*count* listed persons of the field set: (list-file record, person)."""
    rng = random.Random(f"field-persons-{seed}")
    for index in range(count):
        person = _new_person(rng)
        person.entry_id = f"f{index:07d}"
        precision = rng.choices([p for p, _ in _PRECISION], weights=[w for _, w in _PRECISION])[0]
        person.listed_birth_date = {
            "full": person.birth_date,
            "year": person.birth_date[:4],
            "none": None,
        }[precision]
        if person.systems and rng.random() < 0.15:
            person.alias = person.systems[0]
        yield _record(person), person


def field_travellers(count: int, seed: int) -> Iterator[tuple[str, str]]:
    """*count* travellers' names as the field set's posts see them, ``(surname, given names)``
    as written: drawn like the field list's persons, from their own random stream (a sample
    of the lane's population, for its name frequencies: see :mod:`edge.screening.population`)."""
    rng = random.Random(f"field-travellers-{seed}")
    for _ in range(count):
        yield _new_person(rng).written()


def precision_of(birth_date: str | None) -> str:
    """full, year (a year or a month) or none."""
    if not birth_date:
        return "none"
    return "full" if len(birth_date) == 10 else "year"


def _variant(rng: random.Random, person: FieldPerson, kind: str) -> tuple[str, str] | None:
    surname, given = person.written()
    if kind == "exact":
        return surname, given
    if kind == "system":
        return rng.choice(person.systems) if person.systems else None
    if kind == "script":
        return person.script
    if kind == "typo":
        words = [w for w in f"{surname} {given}".split() if len(w) >= 4]
        if not words:
            return None
        target = rng.choice(words)
        new = _typo(rng, target)
        swap = {target: new}
        return (
            " ".join(swap.get(w, w) for w in surname.split()),
            " ".join(swap.get(w, w) for w in given.split()),
        )
    if kind == "swapped":
        return (given, surname) if given else None
    if kind == "dropped":
        if len(person.surname) > 1:
            return person.surname[0], given
        given_tokens = given.split()
        if len(given_tokens) > 1 and given_tokens[1] not in ("DE", "DEL", "LOS"):
            return surname, " ".join(given_tokens[:1])
        return None
    if kind == "joined":
        if person.culture == "chinese":
            family, pinyin = person.surname[0], person.given[0]
            if rng.random() < 0.5:
                return f"{family}{pinyin}", ""  # one word, as a structured field joins it
            return family, " ".join(s for s in _syllables(pinyin))
        compound = [p for p in (*person.surname, *person.given) if " " in p or "-" in p]
        if compound:
            part = rng.choice(compound)
            joined = part.replace(" ", "").replace("-", "")
            return surname.replace(part, joined), given.replace(part, joined)
        if len(person.surname) > 1:
            return "".join(person.surname), given
        return None
    if kind == "one-field":
        return f"{given} {surname}".strip(), ""
    raise ValueError(f"unknown kind {kind!r}")


def _syllables(pinyin: str) -> list[str]:
    for first, _, _ in CHINESE_GIVEN:
        rest = pinyin[len(first) :]
        if pinyin.startswith(first) and rest in {s[0] for s in CHINESE_GIVEN}:
            return [first, rest]
    return [pinyin]


def _case(person: FieldPerson, name: tuple[str, str], query_id: str) -> dict[str, Any]:
    return {
        "id": query_id,
        "surname": name[0],
        "given_names": name[1],
        "birth_date": person.birth_date,
        "nationality": person.nationality,
        "sex": person.sex,
    }


def field_cases(persons: list[FieldPerson], negatives: int, seed: int) -> list[dict[str, Any]]:
    """Labelled travellers: ``{"query", "expect" (entry id or None), "kind", "precision"}``.

    One positive per listed person (its kind chosen in turn among those its name allows), then
    *negatives* travellers not on the list, from the same pools, born on random days."""
    rng = random.Random(f"field-cases-{seed}")
    cases = []
    for number, person in enumerate(persons):
        start = number % len(FIELD_KINDS)
        for offset in range(len(FIELD_KINDS)):
            kind = FIELD_KINDS[(start + offset) % len(FIELD_KINDS)]
            name = _variant(rng, person, kind)
            if name is None or (kind != "exact" and name == person.written()):
                continue
            cases.append(
                {
                    "query": _case(person, name, f"fq{number:06d}"),
                    "expect": person.entry_id,
                    "kind": kind,
                    "precision": precision_of(person.listed_birth_date),
                }
            )
            break
    listed = {(p.written(), p.birth_date) for p in persons}
    number = 0
    while number < negatives:
        person = _new_person(rng)
        if (person.written(), person.birth_date) in listed:
            continue
        name = person.written()
        cases.append(
            {
                "query": _case(person, name, f"fn{number:06d}"),
                "expect": None,
                "kind": "negative",
                "precision": "none",
            }
        )
        number += 1
    return cases
