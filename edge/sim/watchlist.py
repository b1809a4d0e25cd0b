"""Synthetic watchlists and labelled travellers, for tests and benchmarks. Deterministic by seed.

Persons come from six name cultures with realistic structure: Hispanic (two surnames,
DE LA / DEL particles, two given names), Arabic (AL- family names written with a hyphen, a
space or joined, BIN chains, compound ABDUL names; Arabic script), Chinese (one-syllable
surname, one or two syllable given name written joined or apart; Han characters), Slavic
(patronymics, -OV/-OVA surnames; Cyrillic), Greek (Greek script) and English. Pools are
weighted so that a few names are very common (MOHAMMED, GARCIA, WANG) and a synthetic long tail
of surnames makes the vocabulary realistic. Birth dates are full for most entries, a year or a
month for some, absent for a few.

:func:`labelled_queries` makes travellers for measuring accuracy: variants of listed persons
in eight classes (transliteration, typo, order, dropped, added, joined, script, alias) and
persons not on the list with common names and random birth dates (class ``negative``).

    >>> persons = list(generate_persons(1000, seed=7))     # (record, profile) pairs
    >>> record, profile = persons[0]
    >>> record["kind"], sorted(record)[:3]
    ('person', ['action', 'birth_date', 'category'])
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

from anyascii import anyascii

__all__ = [
    "CLASSES",
    "Profile",
    "document_number",
    "generate_documents",
    "generate_persons",
    "labelled_queries",
    "negative_query",
    "positive_query",
]

CLASSES = (
    "transliteration",
    "typo",
    "order",
    "dropped",
    "added",
    "joined",
    "script",
    "alias",
)
"""Variant classes of listed persons in the labelled set (plus ``negative``)."""


def _pool(words: str) -> list[str]:
    return words.split()


def _pairs(text: str) -> list[tuple[str, str]]:
    """``"LATIN:script LATIN:script"`` -> pairs."""
    return [tuple(item.split(":", 1)) for item in text.split()]  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Name pools

HISPANIC_MALE = _pool(
    "JOSE JUAN LUIS CARLOS JORGE MIGUEL PEDRO JESUS MANUEL FRANCISCO ANTONIO ALEJANDRO RICARDO "
    "FERNANDO RAFAEL DAVID DANIEL JAVIER SERGIO ROBERTO EDUARDO ANDRES DIEGO MARIO OSCAR RAUL "
    "HECTOR ARTURO ENRIQUE GUILLERMO PABLO VICTOR ALBERTO ERNESTO GERARDO RUBEN SANTIAGO "
    "EMILIO IGNACIO ALFONSO RODRIGO GUSTAVO ARMANDO FELIPE JULIO CESAR HUGO RAMON"
)
HISPANIC_FEMALE = _pool(
    "MARIA ANA LUISA CARMEN JOSEFINA GUADALUPE ROSA TERESA PATRICIA ELENA MARTHA LAURA ISABEL "
    "SOFIA VALENTINA CAMILA DANIELA GABRIELA ALEJANDRA ADRIANA VERONICA LUCIA CLAUDIA SILVIA "
    "MONICA BEATRIZ LETICIA YOLANDA GLORIA PILAR DOLORES MERCEDES ESPERANZA CONSUELO ROCIO "
    "XIMENA PAOLA ANDREA NATALIA"
)
HISPANIC_SURNAMES = _pool(
    "GARCIA RODRIGUEZ MARTINEZ HERNANDEZ LOPEZ GONZALEZ PEREZ SANCHEZ RAMIREZ TORRES FLORES "
    "RIVERA GOMEZ DIAZ CRUZ MORALES REYES GUTIERREZ ORTIZ CHAVEZ RAMOS RUIZ JIMENEZ MENDOZA "
    "AGUILAR VASQUEZ CASTILLO ROMERO HERRERA MEDINA VARGAS CASTRO GUZMAN FERNANDEZ SALAZAR "
    "ROJAS SOTO CONTRERAS SILVA ROMAN MUNOZ NUNEZ ALVAREZ DOMINGUEZ VEGA CABRERA CAMPOS "
    "ESTRADA NAVARRO MOLINA DELGADO ACOSTA SANDOVAL PENA RIOS LUNA JUAREZ CARRILLO MIRANDA"
)
HISPANIC_PARTICLE_SURNAMES = [
    ("DE", "LA", "CRUZ"),
    ("DEL", "RIO"),
    ("DE", "LEON"),
    ("DE", "LOS", "SANTOS"),
    ("DE", "LA", "TORRE"),
    ("DEL", "VALLE"),
    ("DE", "LA", "ROSA"),
]

ARABIC_MALE = _pairs(
    "MOHAMMED:محمد AHMED:أحمد ALI:علي OMAR:عمر KHALID:خالد YOUSSEF:يوسف HASSAN:حسن "
    "HUSSEIN:حسين IBRAHIM:إبراهيم ABDULLAH:عبدالله MUSTAFA:مصطفى SAID:سعيد TARIQ:طارق "
    "HAMZA:حمزة BILAL:بلال KARIM:كريم WALID:وليد SAMIR:سمير NASSER:ناصر FAISAL:فيصل "
    "JAMAL:جمال SALEH:صالح MAHMOUD:محمود OSAMA:أسامة ZIAD:زياد ADNAN:عدنان RASHID:رشيد "
    "SALMAN:سلمان AYMAN:أيمن MAJID:ماجد NABIL:نبيل HAMID:حامد SULEIMAN:سليمان FAHAD:فهد"
)
ARABIC_FEMALE = _pairs(
    "FATIMA:فاطمة AISHA:عائشة MARYAM:مريم ZAINAB:زينب KHADIJA:خديجة NOUR:نور LAYLA:ليلى "
    "SALMA:سلمى HIND:هند RANIA:رانيا YASMIN:ياسمين AMINA:أمينة HALA:هالة SARA:سارة "
    "HUDA:هدى MANAL:منال SAMIRA:سميرة NADIA:نادية"
)
ARABIC_COMPOUND = [
    (("ABDUL", "RAHMAN"), "عبد الرحمن"),
    (("ABDUL", "AZIZ"), "عبد العزيز"),
    (("ABDUL", "KARIM"), "عبد الكريم"),
    (("ABDUL", "LATIF"), "عبد اللطيف"),
]
ARABIC_FAMILIES = _pairs(
    "AL-RASHID:الرشيد AL-MASRI:المصري HADDAD:حداد KHOURY:خوري NASSER:ناصر SALEH:صالح "
    "AL-AHMAD:الأحمد AL-SAYED:السيد HAMDAN:حمدان MANSOUR:منصور AL-HASHEMI:الهاشمي "
    "AL-QAHTANI:القحطاني AL-ZAHRANI:الزهراني AL-SHAMMARI:الشمري ABBAS:عباس AZIZ:عزيز "
    "AL-TAMIMI:التميمي AL-OTAIBI:العتيبي ISMAIL:إسماعيل BAKR:بكر AL-FARSI:الفارسي "
    "AL-BAGHDADI:البغدادي SHARIF:شريف DARWISH:درويش OTHMAN:عثمان AL-AMIN:الأمين "
    "HAMADI:حمادي AL-JABRI:الجابري AL-KUBAISI:الكبيسي QASSEM:قاسم AL-HAKIM:الحكيم "
    "KHALIL:خليل AL-NAJJAR:النجار SAAD:سعد AL-SHEIKH:الشيخ"
)
ARABIC_SPELLINGS = {
    "MOHAMMED": ["MUHAMMAD", "MOHAMAD", "MOHAMED", "MOHAMMAD", "MUHAMMED"],
    "AHMED": ["AHMAD", "AHMET"],
    "OMAR": ["UMAR", "OMER"],
    "KHALID": ["KHALED", "CHALID"],
    "YOUSSEF": ["YUSUF", "YOUSEF", "YOUSSOUF", "YOSEF"],
    "HASSAN": ["HASAN"],
    "HUSSEIN": ["HUSSAIN", "HUSAYN", "HOSSEIN"],
    "IBRAHIM": ["IBRAHEEM", "EBRAHIM"],
    "ABDULLAH": ["ABDALLAH", "ABDULA"],
    "MUSTAFA": ["MOSTAFA", "MUSTAPHA"],
    "SAID": ["SAEED", "SAYED"],
    "TARIQ": ["TAREK", "TARIK"],
    "KARIM": ["KAREEM"],
    "WALID": ["WALEED"],
    "SAMIR": ["SAMEER"],
    "NASSER": ["NASIR", "NASER"],
    "FAISAL": ["FAYSAL"],
    "SALEH": ["SALIH"],
    "MAHMOUD": ["MAHMUD", "MAHMOOD"],
    "OSAMA": ["USAMA", "OUSSAMA"],
    "ZIAD": ["ZIYAD"],
    "RASHID": ["RACHID", "RASHEED"],
    "FATIMA": ["FATMA", "FATEMA"],
    "AISHA": ["AICHA", "AYESHA"],
    "MARYAM": ["MARIAM"],
    "ZAINAB": ["ZEINAB", "ZAYNAB"],
    "KHADIJA": ["KHADIJAH"],
    "LAYLA": ["LEILA", "LAILA"],
    "YASMIN": ["YASMINE"],
    "MANSOUR": ["MANSUR"],
    "HASHEMI": ["HASHIMI"],
    "QAHTANI": ["KAHTANI"],
    "OTHMAN": ["OSMAN", "UTHMAN"],
    "KHOURY": ["KHURI"],
    "SHARIF": ["SHERIF"],
    "QASSEM": ["KASSEM", "QASIM"],
    "SULEIMAN": ["SULAYMAN", "SOLIMAN"],
    "FAHAD": ["FAHD"],
    "MAJID": ["MAJEED"],
    "HAMID": ["HAMEED"],
    "SAAD": ["SAD"],
}

CHINESE_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹")
CHINESE_GIVEN = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红文辉建国海云飞龙凤宇浩晨欣怡梅兰婷雪琳晓"
)

SLAVIC_MALE = _pool(
    "ALEKSANDR SERGEY DMITRIY ANDREY ALEKSEY IVAN MAKSIM VLADIMIR NIKOLAY MIKHAIL YURIY PAVEL "
    "OLEG VIKTOR IGOR ROMAN ARTEM YEVGENIY KONSTANTIN ANTON DENIS VADIM BORIS GRIGORIY"
)
SLAVIC_FEMALE = _pool(
    "OLGA TATYANA NATALYA YELENA IRINA SVETLANA YEKATERINA ANNA MARIYA YULIYA ANASTASIYA "
    "LYUDMILA GALINA OKSANA VALENTINA NADEZHDA DARYA POLINA"
)
SLAVIC_SURNAMES = _pool(
    "IVANOV SMIRNOV KUZNETSOV POPOV VASILYEV PETROV SOKOLOV MIKHAYLOV NOVIKOV FEDOROV MOROZOV "
    "VOLKOV ALEKSEYEV LEBEDEV SEMENOV YEGOROV PAVLOV KOZLOV STEPANOV NIKOLAYEV ORLOV ANDREYEV "
    "MAKAROV NIKITIN ZAKHAROV ZAYTSEV SOLOVYEV BORISOV YAKOVLEV GRIGORYEV ROMANOV VOROBYEV "
    "SERGEYEV KUZMIN FROLOV ALEKSANDROV KOROLEV GUSEV KISELEV MAKSIMOV POLYAKOV SOROKIN "
    "VINOGRADOV KOVALEV BELOV MEDVEDEV ANTONOV TARASOV ZHUKOV BARANOV KOMAROV DAVYDOV "
    "SHCHERBAKOV CHERNOV KHRUSHCHEV"
)
SLAVIC_PATRONYMIC_ROOTS = _pool(
    "ALEKSANDR SERGEY DMITRIY ANDREY ALEKSEY IVAN VLADIMIR NIKOLAY MIKHAIL YURIY PAVEL OLEG "
    "VIKTOR IGOR PETR"
)

GREEK_MALE = _pairs(
    "GEORGIOS:Γεώργιος DIMITRIOS:Δημήτριος KONSTANTINOS:Κωνσταντίνος IOANNIS:Ιωάννης "
    "NIKOLAOS:Νικόλαος PANAGIOTIS:Παναγιώτης VASILEIOS:Βασίλειος CHRISTOS:Χρήστος "
    "ATHANASIOS:Αθανάσιος MICHAIL:Μιχαήλ EVANGELOS:Ευάγγελος SPYRIDON:Σπυρίδων "
    "ANTONIOS:Αντώνιος ANASTASIOS:Αναστάσιος THEODOROS:Θεόδωρος"
)
GREEK_FEMALE = _pairs(
    "MARIA:Μαρία ELENI:Ελένη AIKATERINI:Αικατερίνη VASILIKI:Βασιλική SOFIA:Σοφία "
    "ANGELIKI:Αγγελική DIMITRA:Δήμητρα GEORGIA:Γεωργία ANNA:Άννα IRINI:Ειρήνη"
)
GREEK_SURNAMES = _pairs(
    "PAPADOPOULOS:Παπαδόπουλος PAPAGEORGIOU:Παπαγεωργίου NIKOLAOU:Νικολάου "
    "GEORGIOU:Γεωργίου KARAGIANNIS:Καραγιάννης VASILEIOU:Βασιλείου OIKONOMOU:Οικονόμου "
    "PAPADAKIS:Παπαδάκης DIMITRIOU:Δημητρίου IOANNOU:Ιωάννου MAKRIS:Μακρής "
    "ANTONIOU:Αντωνίου KONSTANTINIDIS:Κωνσταντινίδης PAPANIKOLAOU:Παπανικολάου "
    "ALEXIOU:Αλεξίου CHRISTODOULOU:Χριστοδούλου GEORGIADIS:Γεωργιάδης "
    "PAPAIOANNOU:Παπαϊωάννου ATHANASIOU:Αθανασίου PAPPAS:Παππάς"
)
GREEK_SPELLINGS = {
    "GEORGIOS": ["GIORGOS", "YIORGOS"],
    "DIMITRIOS": ["DEMETRIOS", "DIMITRIS"],
    "KONSTANTINOS": ["CONSTANTINOS", "KOSTANTINOS"],
    "IOANNIS": ["YANNIS", "IOANIS"],
    "NIKOLAOS": ["NICOLAOS", "NIKOLAS"],
    "PANAGIOTIS": ["PANAYIOTIS", "PANAGHIOTIS"],
    "VASILEIOS": ["VASILIOS", "VASSILIOS", "BASILEIOS"],
    "CHRISTOS": ["CHRYSTOS", "KHRISTOS", "HRISTOS"],
    "MICHAIL": ["MICHAEL", "MIHAIL"],
    "EVANGELOS": ["EVANGHELOS", "EVAGGELOS"],
    "SPYRIDON": ["SPIRIDON", "SPYROS"],
    "THEODOROS": ["THODOROS", "TEODOROS"],
    "AIKATERINI": ["EKATERINI", "AIKATERINH"],
    "ELENI": ["HELENI", "ELENH"],
    "VASILIKI": ["VASSILIKI"],
    "PAPADOPOULOS": ["PAPADOPOYLOS", "PAPADOPULOS"],
    "GEORGIOU": ["GEORGIOY", "YEORGIOU"],
    "PAPAGEORGIOU": ["PAPAGIORGIOU", "PAPAYEORGIOU"],
    "KARAGIANNIS": ["KARAYIANNIS", "KARAGIANIS"],
    "OIKONOMOU": ["IKONOMOU", "ECONOMOU"],
    "CHRISTODOULOU": ["CHRISTODOULOY", "HRISTODOULOU"],
}

ENGLISH_MALE = _pool(
    "JOHN MICHAEL DAVID JAMES ROBERT WILLIAM RICHARD THOMAS CHARLES CHRISTOPHER DANIEL MATTHEW "
    "ANTHONY MARK PAUL STEVEN ANDREW KENNETH JOSHUA KEVIN BRIAN GEORGE EDWARD RONALD TIMOTHY "
    "JASON JEFFREY RYAN JACOB GARY"
)
ENGLISH_FEMALE = _pool(
    "MARY PATRICIA JENNIFER LINDA ELIZABETH BARBARA SUSAN JESSICA SARAH KAREN NANCY LISA BETTY "
    "MARGARET SANDRA ASHLEY KIMBERLY EMILY DONNA MICHELLE DOROTHY CAROL AMANDA MELISSA DEBORAH"
)
ENGLISH_SURNAMES = _pool(
    "SMITH JOHNSON WILLIAMS BROWN JONES MILLER DAVIS WILSON ANDERSON TAYLOR THOMAS MOORE "
    "JACKSON MARTIN LEE THOMPSON WHITE HARRIS CLARK LEWIS ROBINSON WALKER YOUNG ALLEN KING "
    "WRIGHT SCOTT HILL GREEN ADAMS BAKER NELSON CARTER MITCHELL ROBERTS TURNER PHILLIPS "
    "CAMPBELL PARKER EVANS EDWARDS COLLINS STEWART MORRIS MURPHY COOK ROGERS MORGAN COOPER "
    "PETERSON BAILEY REED KELLY HOWARD COX WARD RICHARDSON WATSON BROOKS WOOD BENNETT GRAY "
    "HUGHES PRICE SANDERS MYERS LONG ROSS FOSTER O'BRIEN O'CONNOR MCDONALD"
)

# Syllables of the synthetic long tail of surnames, per culture.
_TAIL = {
    "hispanic": (
        _pool("BAR CEL DO RA MEN TE VI LLA NU ZA BE GAL TOR MA QUE SAL VAL OR"),
        _pool("EZ ADO ERO ARES ILLA ENO OS IZ"),
    ),
    "arabic": (
        _pool("RAH MAN SAL HAD KAR NAJ DAR ZAH QAS FAR JAB BAH TAM SHA"),
        _pool("I AN OUN ANI AWI ALI"),
    ),
    "slavic": (
        _pool("BEL GOR KRAS VOL DOB MIL STAR ZEL BOG LES RUD SOK TVER KLIM"),
        _pool("OV EV IN SKIY ENKO OVSKIY NIKOV YAKOV"),
    ),
    "greek": (
        _pool("KAR PAP STAV MAV LAMP THEO XEN KOS DRA ZER NIK ANDR"),
        _pool("OPOULOS IDIS AKIS OU ATOS ELIS"),
    ),
    "english": (
        _pool("ASH BRAD CRAN DUN FAIR HART KEN LANG MAR PEN RADE STAN THORN WEST"),
        _pool("SON TON LEY FORD WORTH BY HAM FIELD"),
    ),
}

_COUNTRIES = {
    "hispanic": _pool("MEX GTM HND SLV COL ESP BLZ NIC PER VEN"),
    "arabic": _pool("SAU EGY SYR IRQ JOR LBN YEM MAR DZA TUN"),
    "chinese": _pool("CHN TWN SGP MYS HKG"),
    "slavic": _pool("RUS UKR BLR SRB BGR KAZ"),
    "greek": _pool("GRC CYP"),
    "english": _pool("GBR USA CAN AUS BLZ IRL NZL"),
}
CULTURES = ("hispanic", "arabic", "chinese", "slavic", "greek", "english")
_CULTURE_WEIGHTS = (25, 20, 15, 15, 5, 20)
_CULTURE_CUM = list(accumulate(_CULTURE_WEIGHTS))

_LISTS = (
    # list, category, action, share of persons, birth dates (full, month, year, none) in %
    ("national-wanted", "wanted", "refer", 45, (97, 1, 1.5, 0.5)),
    ("interpol-red", "wanted", "refer", 25, (95, 1, 3, 1)),
    ("deportation-order", "deportation-order", "refer", 15, (98, 1, 0.5, 0.5)),
    ("missing-persons", "missing-person", "alert", 8, (85, 3, 7, 5)),
    ("sanctions", "sanctions", "deny", 7, (55, 10, 25, 10)),
)
"""Border watchlists are mostly national wanted and immigration records, which give a full
birth date; sanctions lists, a small share of the persons, often give only a year or none."""
_LIST_CUM = list(accumulate(entry[3] for entry in _LISTS))


def _zipf(n: int, exponent: float = 0.9) -> list[float]:
    return list(accumulate(1.0 / (i + 1) ** exponent for i in range(n)))


_CUM = {}


def _pick(rng: random.Random, items: list[Any], key: str) -> Any:
    cum = _CUM.get(key)
    if cum is None or len(cum) != len(items):
        cum = _CUM[key] = _zipf(len(items))
    return rng.choices(items, cum_weights=cum)[0]


# ---------------------------------------------------------------------------------------------
# Profiles: a person as generated, from which list entries and traveller queries are written


@dataclass
class Part:
    """Tokens that belong together (DE LA CRUZ, AL RASHID, XIAO MING) and how they are written:
    ``" "`` apart, ``"-"`` hyphenated or ``""`` joined."""

    tokens: tuple[str, ...]
    sep: str = " "
    script: str | None = None

    def text(self, sep: str | None = None) -> str:
        return (self.sep if sep is None else sep).join(self.tokens)


@dataclass
class Profile:
    culture: str
    sex: str
    given: list[Part]
    surname: list[Part]
    birth_date: str
    nationality: list[str]
    entry_id: str = ""
    listed_birth_date: str | None = None
    listed_nationality: list[str] = field(default_factory=list)
    listed_sex: str | None = None
    alias: tuple[str, str] | None = None
    """An alias the entry also lists: (surname, given names)."""
    listing: tuple[str, str, str] = ("national-wanted", "wanted", "refer")
    """The list, category and action of the entry."""

    def written(self) -> tuple[str, str]:
        """(surname, given names) as the list writes them."""
        return (
            " ".join(p.text() for p in self.surname),
            " ".join(p.text() for p in self.given),
        )

    def script_name(self) -> tuple[str, str] | None:
        if self.culture not in ("arabic", "chinese", "slavic", "greek"):
            return None
        if self.culture == "slavic":
            return (
                " ".join(to_cyrillic(p.text(" ")) for p in self.surname),
                " ".join(to_cyrillic(p.text(" ")) for p in self.given),
            )
        if self.culture == "chinese":
            return (
                "".join(p.script or "" for p in self.surname),
                "".join(p.script or "" for p in self.given),
            )
        if any(p.script is None for p in self.surname + self.given):
            return None
        return (
            " ".join(p.script or "" for p in self.surname),
            " ".join(p.script or "" for p in self.given),
        )


_CYRILLIC = (
    *zip(("SHCH", "ZH", "KH", "TS", "CH", "SH", "YU", "YA", "YE"), "ЩЖХЦЧШЮЯЕ", strict=True),
    ("IY", "ИЙ"),
    *zip("ABVGDEZIKLMNOPRSTUFY", "АБВГДЕЗИКЛМНОПРСТУФЫ", strict=True),
)


def to_cyrillic(text: str) -> str:
    """A Latin (ICAO-style) Russian name in Cyrillic, capitalized as a name is."""
    out = []
    for word in text.split():
        index, letters = 0, []
        while index < len(word):
            for latin, cyrillic in _CYRILLIC:
                if word.startswith(latin, index):
                    # Y after a vowel is the short i; YE after a consonant is just E.
                    if latin == "Y" and letters and letters[-1] in "АЕИОУЫЭЮЯ":
                        cyrillic = "Й"
                    letters.append(cyrillic)
                    index += len(latin)
                    break
            else:
                index += 1
        cyr = "".join(letters)
        out.append(cyr[:1] + cyr[1:].lower())
    return " ".join(out)


def _synthetic_surname(rng: random.Random, culture: str) -> str:
    roots, endings = _TAIL[culture]
    root = rng.choice(roots) + (rng.choice(roots).lower() if rng.random() < 0.5 else "")
    return (root + rng.choice(endings)).upper()


def _birth_date(rng: random.Random) -> str:
    year = rng.randint(1940, 2006)
    month = rng.randint(1, 12)
    day = rng.randint(1, 28)
    return f"{year:04d}-{month:02d}-{day:02d}"


def _hispanic(rng: random.Random, sex: str) -> tuple[list[Part], list[Part]]:
    pool, key = (HISPANIC_MALE, "hm") if sex == "M" else (HISPANIC_FEMALE, "hf")
    given = [Part((_pick(rng, pool, key),))]
    if rng.random() < 0.6:
        second = _pick(rng, pool, key)
        if second != given[0].tokens[0]:
            given.append(Part((second,)))

    def surname() -> Part:
        roll = rng.random()
        if roll < 0.08:
            return Part(rng.choice(HISPANIC_PARTICLE_SURNAMES))
        if roll < 0.45:
            return Part((_synthetic_surname(rng, "hispanic"),))
        return Part((_pick(rng, HISPANIC_SURNAMES, "hs"),))

    surnames = [surname()]
    if rng.random() < 0.85:
        surnames.append(surname())
    return given, surnames


def _arabic(rng: random.Random, sex: str) -> tuple[list[Part], list[Part]]:
    pool, key = (ARABIC_MALE, "am") if sex == "M" else (ARABIC_FEMALE, "af")
    if sex == "M" and rng.random() < 0.1:
        tokens, script = rng.choice(ARABIC_COMPOUND)
        given = [Part(tokens, sep=rng.choice((" ", " ", "")), script=script)]
    else:
        latin, script = _pick(rng, pool, key)
        given = [Part((latin,), script=script)]
    chain = rng.random()
    if chain < 0.6:
        connector = rng.random() < 0.35
        if connector:
            given.append(
                Part(("BIN" if sex == "M" else "BINT",), script="بن" if sex == "M" else "بنت")
            )
        latin, script = _pick(rng, ARABIC_MALE, "am")
        given.append(Part((latin,), script=script))
        if chain < 0.2:
            if connector:
                given.append(Part(("BIN",), script="بن"))
            latin, script = _pick(rng, ARABIC_MALE, "am")
            given.append(Part((latin,), script=script))
    if rng.random() < 0.3:
        family = _synthetic_surname(rng, "arabic")
        article = rng.random() < 0.5
        tokens = ("AL", family) if article else (family,)
        surname = Part(tokens, sep=rng.choice(("-", " ", "")), script=None)
    else:
        latin, script = _pick(rng, ARABIC_FAMILIES, "afam")
        tokens = tuple(latin.split("-"))
        sep = rng.choice(("-", "-", " ", "")) if len(tokens) > 1 else " "
        surname = Part(tokens, sep=sep, script=script)
    return given, [surname]


def _chinese(rng: random.Random, sex: str) -> tuple[list[Part], list[Part]]:
    han_surname = _pick(rng, CHINESE_SURNAMES, "cs")
    syllables = [rng.choice(CHINESE_GIVEN)]
    if rng.random() < 0.7:
        syllables.append(rng.choice(CHINESE_GIVEN))
    tokens = tuple(anyascii(c).upper() for c in syllables)
    roll = rng.random()
    sep = "" if roll < 0.7 else (" " if roll < 0.9 else "-")
    given = [Part(tokens, sep=sep, script="".join(syllables))]
    return given, [Part((anyascii(han_surname).upper(),), script=han_surname)]


def _patronymic(father: str, sex: str) -> str:
    """SERGEY -> SERGEEVICH / SERGEEVNA, DMITRIY -> DMITRIEVICH, IVAN -> IVANOVICH."""
    if father.endswith("IY"):
        stem, suffix = father[:-2] + "I", "EVICH"
    elif father.endswith(("EY", "AY")):
        stem, suffix = father[:-1], "EVICH"
    else:
        stem, suffix = father, "OVICH"
    return stem + (suffix if sex == "M" else suffix[:-3] + "NA")


def _slavic(rng: random.Random, sex: str) -> tuple[list[Part], list[Part]]:
    pool, key = (SLAVIC_MALE, "sm") if sex == "M" else (SLAVIC_FEMALE, "sf")
    given = [Part((_pick(rng, pool, key),))]
    if rng.random() < 0.5:
        given.append(Part((_patronymic(_pick(rng, SLAVIC_PATRONYMIC_ROOTS, "sp"), sex),)))
    if rng.random() < 0.35:
        surname = _synthetic_surname(rng, "slavic")
    else:
        surname = _pick(rng, SLAVIC_SURNAMES, "ss")
    if sex == "F" and surname.endswith(("OV", "EV", "IN")):
        surname += "A"
    elif sex == "F" and surname.endswith("SKIY"):
        surname = surname[:-2] + "AYA"
    return given, [Part((surname,))]


def _greek(rng: random.Random, sex: str) -> tuple[list[Part], list[Part]]:
    pool, key = (GREEK_MALE, "gm") if sex == "M" else (GREEK_FEMALE, "gf")
    latin, script = _pick(rng, pool, key)
    given = [Part((latin,), script=script)]
    if rng.random() < 0.3:
        surname = Part((_synthetic_surname(rng, "greek"),))
    else:
        latin, script = _pick(rng, GREEK_SURNAMES, "gs")
        surname = Part((latin,), script=script)
    return given, [surname]


def _english(rng: random.Random, sex: str) -> tuple[list[Part], list[Part]]:
    pool, key = (ENGLISH_MALE, "em") if sex == "M" else (ENGLISH_FEMALE, "ef")
    given = [Part((_pick(rng, pool, key),))]
    if rng.random() < 0.5:
        given.append(Part((_pick(rng, pool, key),)))
    if rng.random() < 0.35:
        surnames = [Part((_synthetic_surname(rng, "english"),))]
    else:
        surnames = [Part((_pick(rng, ENGLISH_SURNAMES, "es"),))]
    if rng.random() < 0.05:
        surnames = [Part((surnames[0].tokens[0], _pick(rng, ENGLISH_SURNAMES, "es")), sep="-")]
    return given, surnames


_BUILDERS = {
    "hispanic": _hispanic,
    "arabic": _arabic,
    "chinese": _chinese,
    "slavic": _slavic,
    "greek": _greek,
    "english": _english,
}


def new_profile(rng: random.Random, culture: str | None = None) -> Profile:
    """A random person (not yet listed)."""
    if culture is None:
        culture = rng.choices(CULTURES, cum_weights=_CULTURE_CUM)[0]
    sex = "M" if rng.random() < 0.7 else "F"
    given, surname = _BUILDERS[culture](rng, sex)
    countries = _COUNTRIES[culture]
    nationality = [rng.choice(countries)]
    if rng.random() < 0.1:
        other = rng.choice(countries)
        if other != nationality[0]:
            nationality.append(other)
    return Profile(culture, sex, given, surname, _birth_date(rng), nationality)


def _listed(rng: random.Random, profile: Profile) -> Profile:
    """What the list knows of the person: its list, birth date precision, nationality, sex,
    an alias."""
    listing = rng.choices(_LISTS, cum_weights=_LIST_CUM)[0]
    full, month, year, _ = listing[4]
    roll = rng.random() * 100
    if roll < full:
        listed = profile.birth_date
    elif roll < full + month:
        listed = profile.birth_date[:7]
    elif roll < full + month + year:
        listed = profile.birth_date[:4]
    else:
        listed = None
    nationality = profile.nationality if rng.random() < 0.95 else []
    sex = profile.sex if rng.random() < 0.97 else None
    alias = None
    if rng.random() < 0.2:
        # Lists give other spellings of names written in another script (transliterations)
        # and the name in that script; a Latin-script name has no transliteration to vary.
        if profile.culture in _TRANSLITERATED:
            alias = _transliterated(rng, profile) or None
        if alias is None:
            script = profile.script_name()
            alias = script if script and rng.random() < 0.5 else None
    return replace(
        profile,
        listing=listing[:3],
        listed_birth_date=listed,
        listed_nationality=list(nationality),
        listed_sex=sex,
        alias=alias,
    )


def _record(profile: Profile) -> dict[str, Any]:
    list_name, category, action = profile.listing
    surname, given = profile.written()
    names = [{"surname": surname, "given_names": given} if given else {"surname": surname}]
    if profile.alias is not None:
        alias_surname, alias_given = profile.alias
        alias = {"surname": alias_surname}
        if alias_given:
            alias["given_names"] = alias_given
        names.append(alias)
    record: dict[str, Any] = {"id": profile.entry_id, "kind": "person", "names": names}
    if profile.listed_birth_date:
        record["birth_date"] = profile.listed_birth_date
    record["nationality"] = profile.listed_nationality
    if profile.listed_sex:
        record["sex"] = profile.listed_sex
    record |= {"list": list_name, "category": category, "action": action}
    return record


def generate_persons(count: int, seed: int) -> Iterator[tuple[dict[str, Any], Profile]]:
    """``count`` listed persons: (list-file record, profile)."""
    rng = random.Random(f"persons-{seed}")
    for index in range(count):
        profile = new_profile(rng)
        profile.entry_id = f"p{index:08d}"
        profile = _listed(rng, profile)
        yield _record(profile), profile


# ---------------------------------------------------------------------------------------------
# Documents

_STATES = _pool(
    "MEX GTM HND SLV BLZ COL USA CAN GBR ESP FRA D ITA RUS UKR CHN IND SAU EGY SYR IRQ JOR "
    "LBN GRC CYP TUR PAK NGA BRA ARG PER VEN NIC CRI PAN"
)
_DOC_SPACE = 26 * 10**8
_DOC_STEP = 1_000_003  # prime, coprime with the space: index -> number is a bijection
_STATUS = (("stolen", 50), ("lost", 35), ("revoked", 10), ("invalid", 5))
_STATUS_CUM = list(accumulate(w for _, w in _STATUS))


def document_number(index: int, seed: int) -> tuple[str, str]:
    """(issuing state, number) of generated document *index*: unique for index < 2.6e9."""
    value = (index * _DOC_STEP + seed * 7919) % _DOC_SPACE
    letter, digits = divmod(value, 10**8)
    state = _STATES[(index * 7 + seed) % len(_STATES)]
    return state, f"{chr(65 + letter)}{digits:08d}"


def generate_documents(count: int, seed: int) -> Iterator[str]:
    """``count`` document list lines (JSON text, one per document)."""
    rng = random.Random(f"documents-{seed}")
    statuses = [s for s, _ in _STATUS]
    for index in range(count):
        state, number = document_number(index, seed)
        status = rng.choices(statuses, cum_weights=_STATUS_CUM)[0]
        kind = "P" if rng.random() < 0.7 else "ID"
        yield (
            f'{{"id":"sltd:{state}:{number}","kind":"document","number":"{number}",'
            f'"issuing_state":"{state}","document_type":"{kind}","status":"{status}",'
            f'"list":"interpol-sltd"}}'
        )


# ---------------------------------------------------------------------------------------------
# Variants and labelled queries

_KEYBOARD = dict(
    item.split(":")
    for item in [
        "Q:WA",
        "W:QES",
        "E:WRD",
        "R:ETF",
        "T:RYG",
        "Y:TUH",
        "U:YIJ",
        "I:UOK",
        "O:IPL",
        "P:OL",
        "A:QSZ",
        "S:AWDZ",
        "D:SEFX",
        "F:DRGC",
        "G:FTHV",
        "H:GYJB",
        "J:HUKN",
        "K:JILM",
        "L:KOP",
        "Z:ASX",
        "X:ZSDC",
        "C:XDFV",
        "V:CFGB",
        "B:VGHN",
        "N:BHJM",
        "M:NJK",
    ]
)


def _typo(rng: random.Random, word: str) -> str:
    letters = list(word)
    position = rng.randrange(1, len(letters))  # the first letter is rarely mistyped
    operation = rng.random()
    if operation < 0.3:
        letters[position] = rng.choice(_KEYBOARD.get(letters[position], "E"))
    elif operation < 0.55:
        del letters[position]
    elif operation < 0.8:
        letters.insert(
            position, letters[position - 1] if rng.random() < 0.5 else rng.choice("AEIOU")
        )
    elif position < len(letters) - 1:
        letters[position], letters[position + 1] = letters[position + 1], letters[position]
    else:
        letters[position - 1], letters[position] = letters[position], letters[position - 1]
    return "".join(letters)


_GENERIC_SPELLINGS = {
    "slavic": (
        ("KS", "X"),
        ("IY", "I"),
        ("IY", "II"),
        ("YE", "E"),
        ("YU", "IU"),
        ("YA", "IA"),
        ("KH", "H"),
        ("Y", "I"),
        ("V", "W"),
        ("EY", "EI"),
        ("ZH", "J"),
    ),
    "hispanic": (("Z", "S"), ("LL", "Y"), ("V", "B"), ("C", "K"), ("Y", "I")),
    "greek": (("OU", "U"), ("K", "C"), ("I", "Y"), ("CH", "H"), ("G", "Y")),
    "arabic": (("OU", "U"), ("EE", "I"), ("Q", "K"), ("KH", "H"), ("A", "E")),
    "chinese": (("X", "HS"), ("ZH", "CH"), ("Q", "CH")),
    "english": (("PH", "F"), ("Y", "I"), ("C", "K")),
}
_KNOWN_SPELLINGS = {**ARABIC_SPELLINGS, **GREEK_SPELLINGS}
_TRANSLITERATED = frozenset(("arabic", "chinese", "slavic", "greek"))


def _respell(rng: random.Random, culture: str, token: str) -> str | None:
    known = _KNOWN_SPELLINGS.get(token)
    if known:
        return rng.choice(known)
    rules = [(a, b) for a, b in _GENERIC_SPELLINGS[culture] if a in token[1:]]
    if not rules:
        return None
    old, new = rng.choice(rules)
    position = token.find(old, 1)
    return token[:position] + new + token[position + len(old) :]


def _transliterated(rng: random.Random, profile: Profile) -> tuple[str, str] | None:
    """The name with one or two tokens spelt as another transliteration would."""
    parts = [(0, i) for i in range(len(profile.surname))] + [
        (1, i) for i in range(len(profile.given))
    ]
    rng.shuffle(parts)
    changed = 0
    surname = [Part(p.tokens, p.sep) for p in profile.surname]
    given = [Part(p.tokens, p.sep) for p in profile.given]
    for side, index in parts:
        target = (surname, given)[side][index]
        for position, token in enumerate(target.tokens):
            if token in ("AL", "BIN", "BINT", "DE", "LA", "DEL", "LOS"):
                continue
            new = _respell(rng, profile.culture, token)
            if new and new != token:
                tokens = list(target.tokens)
                tokens[position] = new
                target.tokens = tuple(tokens)
                changed += 1
                break
        if changed >= (2 if rng.random() < 0.3 else 1):
            break
    if not changed:
        return None
    return " ".join(p.text() for p in surname), " ".join(p.text() for p in given)


def _query(
    profile: Profile, surname: str, given: str, query_id: str, rng: random.Random
) -> dict[str, Any]:
    query: dict[str, Any] = {
        "id": query_id,
        "surname": surname,
        "given_names": given,
        "birth_date": profile.birth_date,
        "nationality": rng.choice(profile.nationality),
        "sex": profile.sex,
    }
    return query


def _core_count(parts: list[Part]) -> int:
    return sum(
        1
        for p in parts
        for t in p.tokens
        if t not in ("AL", "BIN", "BINT", "DE", "LA", "DEL", "LOS")
    )


def positive_query(
    rng: random.Random, profile: Profile, variant: str, query_id: str
) -> dict[str, Any] | None:
    """A traveller query for the listed *profile*, changed as *variant* says; ``None`` when the
    person's name has nothing to change that way."""
    surname, given = profile.written()
    if variant == "transliteration":
        changed = _transliterated(rng, profile)
        if changed is None:
            return None
        surname, given = changed
    elif variant == "typo":
        words = [w for w in (surname + " " + given).split() if len(w) >= 5]
        if not words:
            return None
        target = rng.choice(words)
        new = _typo(rng, target)
        surname = " ".join(new if w == target else w for w in surname.split())
        given = " ".join(new if w == target else w for w in given.split())
    elif variant == "order":
        if not given:
            return None
        surname, given = given, surname
    elif variant == "dropped":
        if len(profile.given) >= 2 and _core_count(profile.given) >= 2:
            kept = [p for p in profile.given if p.tokens not in (("BIN",), ("BINT",))]
            drop = rng.randrange(1, len(kept))
            given = " ".join(p.text() for i, p in enumerate(kept) if i != drop)
        elif len(profile.surname) >= 2:
            surname = profile.surname[0].text()
        else:
            return None
    elif variant == "added":
        extra = {
            "hispanic": HISPANIC_MALE if profile.sex == "M" else HISPANIC_FEMALE,
            "arabic": [n for n, _ in ARABIC_MALE],
            "chinese": ["WEI", "LI", "JUN"],
            "slavic": SLAVIC_MALE if profile.sex == "M" else SLAVIC_FEMALE,
            "greek": [n for n, _ in (GREEK_MALE if profile.sex == "M" else GREEK_FEMALE)],
            "english": ENGLISH_MALE if profile.sex == "M" else ENGLISH_FEMALE,
        }[profile.culture]
        given = (given + " " + rng.choice(extra)).strip()
    elif variant == "joined":
        compound = [
            (side, i)
            for side, parts in enumerate((profile.surname, profile.given))
            for i, p in enumerate(parts)
            if len(p.tokens) > 1
        ]
        if not compound:
            return None
        side, index = rng.choice(compound)
        parts = [Part(p.tokens, p.sep) for p in (profile.surname, profile.given)[side]]
        part = parts[index]
        part.sep = " " if part.sep == "" else ""
        text = " ".join(p.text() for p in parts)
        surname, given = (text, given) if side == 0 else (surname, text)
    elif variant == "script":
        script = profile.script_name()
        if script is None:
            return None
        surname, given = script
    elif variant == "alias":
        if profile.alias is None:
            return None
        surname, given = profile.alias
    else:
        raise ValueError(f"unknown variant {variant!r}")
    if (surname, given) == profile.written() and variant not in ("alias",):
        return None
    return _query(profile, surname, given, query_id, rng)


def negative_query(rng: random.Random, query_id: str) -> dict[str, Any]:
    """A traveller not on the list: common names (the head of each pool), a random birth date."""
    culture = rng.choices(CULTURES, cum_weights=_CULTURE_CUM)[0]
    while True:
        profile = new_profile(rng, culture)
        # Common names only: no synthetic tail surnames.
        tail = any(t not in _COMMON_TOKENS for p in profile.surname for t in p.tokens)
        if not tail:
            break
    surname, given = profile.written()
    return _query(profile, surname, given, query_id, rng)


_COMMON_TOKENS = frozenset(
    HISPANIC_SURNAMES
    + [t for p in HISPANIC_PARTICLE_SURNAMES for t in p]
    + [t for latin, _ in ARABIC_FAMILIES for t in latin.split("-")]
    + [anyascii(c).upper() for c in CHINESE_SURNAMES]
    + SLAVIC_SURNAMES
    + [s + "A" for s in SLAVIC_SURNAMES]
    + [latin for latin, _ in GREEK_SURNAMES]
    + ENGLISH_SURNAMES
    + [t for s in ENGLISH_SURNAMES for t in s.split("-")]
)


def labelled_queries(profiles: list[Profile], negatives: int, seed: int) -> list[dict[str, Any]]:
    """Labelled travellers: ``{"query", "expect" (entry id or None), "class"}``.

    Each profile gives one positive, its variant class chosen in turn among those its name
    allows; then *negatives* travellers not on the list.
    """
    rng = random.Random(f"labelled-{seed}")
    cases = []
    for number, profile in enumerate(profiles):
        start = number % len(CLASSES)
        for offset in range(len(CLASSES)):
            variant = CLASSES[(start + offset) % len(CLASSES)]
            query = positive_query(rng, profile, variant, f"q{number:06d}")
            if query is not None:
                cases.append({"query": query, "expect": profile.entry_id, "class": variant})
                break
    for number in range(negatives):
        query = negative_query(rng, f"n{number:06d}")
        cases.append({"query": query, "expect": None, "class": "negative"})
    return cases
