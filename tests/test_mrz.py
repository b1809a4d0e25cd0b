"""ICAO Doc 9303 MRZs: what the kiosk reads from a passport, identity card or visa.

The specimens of Doc 9303 (Parts 4 to 7) are read field by field; then long TD1/TD2 document
numbers, the state codes of Part 3, dates and their centuries, the input shapes readers send,
the OCR repairs that are made (and those refused), and properties over generated documents.
"""

from __future__ import annotations

import datetime
import doctest
import json
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edge.documents import icao_states, mrz
from edge.documents.mrz import MrzDocument, MrzError, check_digit, compose, parse

# Every century and "expired" judgement below is made as of this day.
TODAY = datetime.date(2025, 6, 1)

# Doc 9303 Part 4, Appendix A: the TD3 passport of Anna Maria Eriksson of Utopia.
TD3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
# Doc 9303 Part 5: her TD1 identity card.
TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)
# Doc 9303 Part 6: the TD2 card.
TD2 = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6"
# Doc 9303 Part 7: the visas, for a holder of unspecified nationality (XXX).
MRVA = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL8988901C4XXX4009078F96121096ZE184226B<<<<<<"
MRVB = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL8988901C4XXX4009078F9612109<<<<<<<<"
# Doc 9303's TD1 with a 12-character document number (Part 11, Appendix D.2, after Part 5).
TD1_LONG = (
    "I<UTOD23145890<7349<<<<<<<<<<<\n3407127M9507122UTO<<<<<<<<<<<2\nSTEVENSON<<PETER<JOHN<<<<<<<<<"
)

UTO_ISSUER = "issuing state 'UTO' is a specimen code (Utopia, only on Doc 9303 specimens)"
UTO_NATIONAL = "nationality 'UTO' is a specimen code (Utopia, only on Doc 9303 specimens)"

ERIKSSON = {
    "issuing_state": "UTO",
    "surname": "ERIKSSON",
    "given_names": "ANNA MARIA",
    "name_truncated": False,
    "nationality": "UTO",
    "birth_date": "1974-08-12",
    "sex": "F",
    "expiry_date": "2012-04-15",
    "optional_data_2": "",
    "valid": True,
    "corrections": [],
}
VISA = {
    **ERIKSSON,
    "document_type": "V",
    "document_number": "L8988901C",
    "nationality": "XXX",
    "birth_date": "1940-09-07",
    "expiry_date": "1996-12-10",
    "checks": {"document_number": True, "birth_date": True, "expiry_date": True},
    "warnings": [UTO_ISSUER, "document expired on 1996-12-10"],
}
SPECIMENS = {
    "TD3 passport (Part 4)": (
        TD3,
        {
            **ERIKSSON,
            "format": "TD3",
            "document_type": "P",
            "document_number": "L898902C3",
            "optional_data": "ZE184226B",  # the personal number
            "checks": {
                "document_number": True,
                "birth_date": True,
                "expiry_date": True,
                "personal_number": True,
                "composite": True,
            },
            "warnings": [UTO_ISSUER, UTO_NATIONAL, "document expired on 2012-04-15"],
        },
    ),
    "TD1 card (Part 5)": (
        TD1,
        {
            **ERIKSSON,
            "format": "TD1",
            "document_type": "I",
            "document_number": "D23145890",
            "optional_data": "",
            "checks": {
                "document_number": True,
                "birth_date": True,
                "expiry_date": True,
                "composite": True,
            },
            "warnings": [UTO_ISSUER, UTO_NATIONAL, "document expired on 2012-04-15"],
        },
    ),
    "TD2 card (Part 6)": (
        TD2,
        {
            **ERIKSSON,
            "format": "TD2",
            "document_type": "I",
            "document_number": "D23145890",
            "optional_data": "",
            "checks": {
                "document_number": True,
                "birth_date": True,
                "expiry_date": True,
                "composite": True,
            },
            "warnings": [UTO_ISSUER, UTO_NATIONAL, "document expired on 2012-04-15"],
        },
    ),
    # Part 7's MRV-A optional data really does start with "6" (no check digit there).
    "MRV-A visa (Part 7)": (MRVA, {**VISA, "format": "MRVA", "optional_data": "6ZE184226B"}),
    "MRV-B visa (Part 7)": (MRVB, {**VISA, "format": "MRVB", "optional_data": ""}),
    "TD1 card with a 12-character number (Part 11, D.2)": (
        TD1_LONG,
        {
            **ERIKSSON,
            "format": "TD1",
            "document_type": "I",
            "surname": "STEVENSON",
            "given_names": "PETER JOHN",
            "document_number": "D23145890734",
            "birth_date": "1934-07-12",
            "sex": "M",
            "expiry_date": "1995-07-12",
            "optional_data": "",
            "checks": {
                "document_number": True,
                "birth_date": True,
                "expiry_date": True,
                "composite": True,
            },
            "warnings": [UTO_ISSUER, UTO_NATIONAL, "document expired on 1995-07-12"],
        },
    ),
}


def read(text: str) -> MrzDocument:
    return parse(text, today=TODAY)


def replace(text: str, line: int, position: int, new: str) -> str:
    """*text* with *new* written at *line*, *position* (both from 1, as Doc 9303 counts)."""
    lines = text.split("\n")
    row = lines[line - 1]
    lines[line - 1] = row[: position - 1] + new + row[position - 1 + len(new) :]
    return "\n".join(lines)


def passport(**fields) -> str:
    """A TD3 for Jane Doe of New Zealand, with *fields* changed."""
    values = {
        "issuing_state": "NZL",
        "surname": "DOE",
        "given_names": "JANE",
        "document_number": "AB6543210",
        "nationality": "NZL",
        "birth_date": datetime.date(1980, 1, 2),
        "sex": "F",
        "expiry_date": datetime.date(2030, 3, 4),
        **fields,
    }
    return compose(values.pop("format", "TD3"), **values)


# --- the specimens ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), SPECIMENS.values(), ids=SPECIMENS.keys())
def test_every_doc_9303_specimen_reads_field_by_field(text: str, expected: dict) -> None:
    document = read(text)
    assert document.to_dict() == {**expected, "lines": text.split("\n")}
    assert json.loads(json.dumps(document.to_dict())) == document.to_dict()


@pytest.mark.parametrize(("text", "expected"), SPECIMENS.values(), ids=SPECIMENS.keys())
def test_compose_writes_every_specimen_back_to_the_character(text: str, expected: dict) -> None:
    document = read(text)
    assert (
        compose(
            document.format,
            document_type=document.document_type,
            issuing_state=document.issuing_state,
            surname=document.surname,
            given_names=document.given_names,
            document_number=document.document_number,
            nationality=document.nationality,
            birth_date=datetime.date.fromisoformat(document.birth_date),
            sex=document.sex,
            expiry_date=datetime.date.fromisoformat(document.expiry_date),
            optional_data=document.optional_data,
        )
        == text
    )


def test_the_german_identity_card_specimen_comes_out_of_compose_exactly() -> None:
    # Erika Mustermann's card: "D" for Germany, "<" for an unspecified sex, "ID" as its code.
    text = compose(
        "TD1",
        document_type="ID",
        issuing_state="D",
        surname="Mustermann",
        given_names="Erika",
        document_number="T22000129",
        nationality="D",
        birth_date=datetime.date(1964, 8, 12),
        sex="X",
        expiry_date=datetime.date(2020, 10, 31),
    )
    assert text == (
        "IDD<<T220001293<<<<<<<<<<<<<<<\n"
        "6408125<2010315D<<<<<<<<<<<<<4\n"
        "MUSTERMANN<<ERIKA<<<<<<<<<<<<<"
    )
    document = read(text)
    assert (document.issuing_state, document.nationality, document.sex) == ("D", "D", "X")
    assert document.warnings == ["document expired on 2020-10-31"]


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(mrz).failed == 0
    assert doctest.testmod(icao_states).failed == 0


# --- check digits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "digit"),
    [
        ("520727", "3"),  # Doc 9303 Part 3's worked example: a date
        ("AB2134<<<", "5"),  # ... and a document number with fillers
        ("L898902C3", "6"),
        ("D23145890734", "9"),  # a long TD1 number: the check covers all 12, without the "<"
        ("<<<<<<<<<<<<<<", "0"),
        ("", "0"),
    ],
)
def test_check_digits_weigh_7_3_1(field: str, digit: str) -> None:
    assert check_digit(field) == digit


def test_a_check_digit_of_something_no_mrz_holds_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'a' is not an MRZ character"):
        check_digit("abc")


# --- long document numbers (TD1, TD2) ---------------------------------------------------------


def test_a_long_td1_number_spills_into_the_optional_data_behind_a_filler() -> None:
    # Positions 6-14 hold the first 9 characters, 15 is "<", then the rest, its check digit, "<".
    line = TD1_LONG.split("\n")[0]
    assert (line[5:14], line[14], line[15:18], line[18], line[19]) == (
        "D23145890",
        "<",
        "734",
        "9",
        "<",
    )
    assert read(TD1_LONG).document_number == "D23145890734"


def test_optional_data_after_a_long_number_is_kept_apart_from_it() -> None:
    text = passport(format="TD1", document_number="D23145890734", optional_data="XY12")
    assert text.split("\n")[0] == "I<NZLD23145890<7349<XY12<<<<<<"
    document = read(text)
    assert (document.document_number, document.optional_data, document.valid) == (
        "D23145890734",
        "XY12",
        True,
    )


def test_td2_numbers_spill_the_same_way() -> None:
    # Doc 9303 Part 6 applies Part 5's rule to the 7 characters of TD2 optional data.
    text = passport(
        format="TD2",
        document_type="I",
        issuing_state="UTO",
        nationality="UTO",
        surname="STEVENSON",
        given_names="PETER JOHN",
        document_number="D23145890734",
        birth_date=datetime.date(1934, 7, 12),
        sex="M",
        expiry_date=datetime.date(1995, 7, 12),
    )
    assert text.split("\n")[1] == "D23145890<UTO3407127M95071227349<<<8"
    assert read(text).document_number == "D23145890734"


def test_a_long_number_with_a_failing_check_digit_reads_but_is_not_valid() -> None:
    document = read(replace(TD1_LONG, 1, 19, "8"))
    assert document.document_number == "D23145890734"
    assert document.checks["document_number"] is False
    assert not document.valid


@pytest.mark.parametrize(
    ("format", "number", "message"),
    [
        ("TD1", "A" * 23, "longer than 15 characters"),  # 22 is the most a TD1 can hold
        ("TD2", "A" * 15, "longer than 7 characters"),  # 14 for a TD2
        ("TD3", "A" * 10, "only TD1 and TD2 have room for more"),
        ("MRVA", "A" * 10, "only TD1 and TD2 have room for more"),
    ],
)
def test_compose_refuses_numbers_the_format_has_no_room_for(format, number, message) -> None:
    with pytest.raises(ValueError, match=message):
        passport(
            format=format, document_type="V" if format == "MRVA" else None, document_number=number
        )


# --- state codes (Doc 9303 Part 3) ------------------------------------------------------------


# Doc 9303 Part 3, Section 5, beyond ISO 3166-1 (grouped as its text groups them).
PART_3_CODES = (  # noqa: SIM905 (a list of 25 one-word strings reads better this way)
    "D "  # Germany
    "EUE GBD GBN GBO GBP GBS RKS UNA UNK UNO "  # reserved with the ISO 3166 agency
    "XXA XXB XXC XXX "  # people without a defined nationality
    "XBA XIM XCC XCE XCO XEC XPO XES XMP XOM XDC"  # other issuing authorities
).split()


@pytest.mark.parametrize("code", [*PART_3_CODES, "DEU", "FRA", "NZL", "TZA"])
def test_doc_9303_codes_are_known_and_short_ones_lose_their_fillers(code: str) -> None:
    document = read(passport(issuing_state=code, nationality=code))
    assert (document.issuing_state, document.nationality) == (code, code)
    assert document.warnings == []


def test_germany_is_written_d_with_two_fillers() -> None:
    assert passport(issuing_state="D").startswith("P<D<<DOE")


def test_an_unknown_code_is_a_warning_not_an_error() -> None:
    document = read(passport(issuing_state="ABC", nationality="ZZZ"))
    assert document.valid  # check digits do not cover state codes
    assert document.warnings == [
        "unknown issuing state code 'ABC' (not in ICAO Doc 9303 Part 3)",
        "unknown nationality code 'ZZZ' (not in ICAO Doc 9303 Part 3)",
    ]


def test_the_code_list_has_every_iso_code_and_doc_9303_s_own() -> None:
    assert len(icao_states.ISO_3166_ALPHA3) == 249
    assert icao_states.name("D<<") == "Germany"
    assert icao_states.is_specimen("UTO") and icao_states.is_known("UTO")
    assert not icao_states.is_known("ZZZ")


# --- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        ("250601", "2025-06-01"),  # born today
        ("250602", "1925-06-02"),  # tomorrow in this century is impossible: a century ago
        ("000229", "2000-02-29"),  # 2000 was a leap year
        ("991231", "1999-12-31"),
    ],
)
def test_a_birth_date_is_never_in_the_future(birth: str, expected: str) -> None:
    assert read(passport(birth_date=birth)).birth_date == expected


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        ("450101", "2045-01-01"),  # 20 years ahead: still ahead
        ("460101", "1946-01-01"),  # 21 years ahead: no document lasts that long, so the past
        ("300304", "2030-03-04"),
        ("120415", "2012-04-15"),
    ],
)
def test_an_expiry_date_lies_at_most_20_years_ahead(expiry: str, expected: str) -> None:
    assert read(passport(expiry_date=expiry)).expiry_date == expected


def test_today_moves_the_century_window() -> None:
    in_2010 = datetime.date(2010, 1, 1)
    assert parse(passport(birth_date="150101"), today=in_2010).birth_date == "1915-01-01"
    assert parse(passport(birth_date="150101"), today=TODAY).birth_date == "2015-01-01"
    assert parse(passport(expiry_date="300101"), today=in_2010).expiry_date == "2030-01-01"
    assert parse(passport(expiry_date="310101"), today=in_2010).expiry_date == "1931-01-01"
    specimen = parse(TD3, today=in_2010)
    assert specimen.expiry_date == "2012-04-15"
    assert "document expired on 2012-04-15" not in specimen.warnings


@pytest.mark.parametrize(
    ("field", "raw", "warning"),
    [
        ("birth_date", "741312", "impossible birth date 741312 (1974-13-12)"),
        ("birth_date", "740230", "impossible birth date 740230 (1974-02-30)"),
        ("expiry_date", "970229", "impossible expiry date 970229 (1997-02-29)"),
        ("expiry_date", "300000", "impossible expiry date 300000 (2030-00-00)"),
        # Doc 9303 Part 3: an unknown day (or month) of birth is written with fillers
        ("birth_date", "7408<<", "birth date unknown or partly unknown (7408<<)"),
        ("birth_date", "<<<<<<", "birth date unknown or partly unknown (<<<<<<)"),
    ],
)
def test_impossible_and_unknown_dates_are_none_with_a_warning(field, raw, warning) -> None:
    document = read(passport(**{field: raw}))
    assert getattr(document, field) is None
    assert warning in document.warnings
    assert document.valid  # the check digits were computed over what is printed, and hold


def test_expiry_is_judged_against_today() -> None:
    assert "document expired on 2025-05-31" in read(passport(expiry_date="250531")).warnings
    assert read(passport(expiry_date="250601")).warnings == []  # valid through its last day


# --- names, sex, document codes ---------------------------------------------------------------


def test_a_name_filling_its_field_may_have_been_truncated() -> None:
    text = passport(format="TD1", document_type="I", surname="ABCDEFGHIJKL", given_names="M" * 16)
    document = read(text)
    assert document.name_truncated
    assert "name field is full: the name may be truncated" in document.warnings
    assert not read(TD1).name_truncated


def test_names_split_at_the_double_filler() -> None:
    document = read(passport(surname="VAN DER BERG", given_names="ANNA MARIA SOFIA"))
    assert (document.surname, document.given_names) == ("VAN DER BERG", "ANNA MARIA SOFIA")
    only = read(passport(surname="SUKARNO", given_names=""))
    assert (only.surname, only.given_names) == ("SUKARNO", "")
    assert passport(surname="Jean-Luc").split("\n")[0].startswith("P<NZLJEAN<LUC<<JANE<")
    assert read(passport(surname=" van  der - berg ")).surname == "VAN DER BERG"


def test_digits_in_a_name_are_reported_but_never_repaired() -> None:
    document = read(replace(TD3, 1, 8, "1"))  # ER1KSSON
    assert document.surname == "ER1KSSON"
    assert "name field holds digits, which names never do (OCR error?)" in document.warnings
    assert document.corrections == []


def test_sex_is_m_f_or_x_for_the_filler() -> None:
    assert read(passport(sex="X")).sex == "X"
    assert passport(sex="X").split("\n")[1][20] == "<"
    odd = read(replace(TD3, 2, 21, "Q"))
    assert odd.sex == "X"
    assert "sex 'Q' is not M, F or < (unspecified); read as X" in odd.warnings


def test_a_document_code_doc_9303_does_not_define_for_the_format_is_a_warning() -> None:
    document = read(replace(TD3, 1, 1, "X"))
    assert document.document_type == "X"
    assert "document code 'X<': Doc 9303 starts a TD3 code with P" in document.warnings


# --- what readers send ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        TD3.replace("\n", "\r\n"),
        TD3.replace("\n", "\r"),
        TD3.replace("\n", ""),  # one 88-character string
        TD3.replace("\n", " "),
        "\n\n  " + TD3.replace("\n", "  \n\n\t") + "\r\n\r\n",
        TD3.lower(),
    ],
    ids=["CRLF", "CR", "joined", "space", "padding and blank lines", "lowercase"],
)
def test_readers_line_endings_padding_and_case_are_forgiven(variant: str) -> None:
    assert read(variant) == read(TD3)


@pytest.mark.parametrize("text", [TD1, TD2, MRVB, TD1_LONG])
def test_every_format_may_arrive_as_one_joined_line(text: str) -> None:
    assert read(text.replace("\n", "")) == read(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "got no text"),
        (" \r\n\n ", "got no text"),
        ("P<UTO", "got 1 line of 5"),
        (TD3[:-1], "got 2 lines of 44 and 43"),
        (TD1[:-1], "got 3 lines of 30, 30 and 29"),
        (TD3.replace("\n", "")[:-1], "got 1 line of 87"),
        (TD3 + "\n" + TD3, "got 4 lines of 44, 44, 44 and 44"),
        ("\n".join(["A"] * 7), "got 7 lines"),
        (TD3 + "\n" + "<" * 44, "got 3 lines of 44, 44 and 44"),
        (TD2 + "\n" + "<" * 36, "got 3 lines of 36, 36 and 36"),
    ],
)
def test_text_of_no_mrz_shape_is_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(MrzError) as raised:
        read(text)
    assert str(raised.value) == (
        f"expected 2 lines of 44, 2 of 36 or 3 of 30 characters; {message}"
    )


@pytest.mark.parametrize(
    ("line", "position", "char"),
    [(2, 7, "$"), (2, 15, " "), (3, 30, "ß"), (2, 1, "\x00"), (1, 12, "é")],
)
def test_a_character_no_mrz_holds_is_named_with_its_place(line, position, char) -> None:
    with pytest.raises(MrzError) as raised:
        read(replace(TD1, line, position, char))
    assert str(raised.value) == f"invalid character {char!r} at line {line}, column {position}"


def test_mrz_error_is_a_value_error() -> None:
    assert issubclass(MrzError, ValueError)


# --- OCR repair: made when a check digit confirms it --------------------------------------------


def test_a_letter_in_a_date_is_repaired_when_its_check_digit_confirms_it() -> None:
    document = read(replace(TD3, 2, 16, "O"))  # 74O812: birth date, position 16
    assert document.birth_date == "1974-08-12"
    assert document.valid
    assert document.corrections == [
        {
            "field": "birth_date",
            "line": 2,
            "position": 16,
            "from": "O",
            "to": "0",
            "reason": "a digit field read with a letter; the repaired field passes its check digit",
        }
    ]
    assert document.lines == tuple(TD3.split("\n"))  # lines hold the repaired text


def test_several_letters_in_one_date_are_repaired_together() -> None:
    document = read(replace(TD3, 2, 22, "I2O4IS"))  # 120415 read as I2O4IS
    assert document.expiry_date == "2012-04-15"
    assert [(c["from"], c["to"]) for c in document.corrections] == [
        ("I", "1"),
        ("O", "0"),
        ("I", "1"),
        ("S", "5"),
    ]
    assert document.valid


def test_check_digits_read_as_their_look_alikes_are_all_repaired() -> None:
    repaired = {
        (2, 10): ("G", "document_number_check"),
        (2, 20): ("Z", "birth_date_check"),
        (2, 43): ("I", "personal_number_check"),
        (2, 44): ("O", "composite_check"),
    }
    for (line, position), (letter, field) in repaired.items():
        document = read(replace(TD3, line, position, letter))
        assert [c["field"] for c in document.corrections] == [field]
        assert document.valid


def test_a_letter_in_a_date_stays_when_the_check_digit_does_not_confirm_the_repair() -> None:
    text = replace(replace(TD3, 2, 16, "O"), 2, 20, "3")  # 74O812, check digit 3 instead of 2
    document = read(text)
    assert document.corrections == []
    assert document.birth_date is None
    assert "birth date '74O812' is not a date" in document.warnings
    assert document.checks["birth_date"] is False and not document.valid


def test_a_digit_in_a_state_code_is_repaired_when_only_one_reading_is_a_code() -> None:
    document = read(replace(replace(TD3, 1, 5, "0"), 2, 13, "0"))  # UT0 twice
    assert (document.issuing_state, document.nationality) == ("UTO", "UTO")
    assert [(c["field"], c["from"], c["to"]) for c in document.corrections] == [
        ("issuing_state", "0", "O"),
        ("nationality", "0", "O"),
    ]
    german = read(replace(passport(issuing_state="D"), 1, 3, "0"))  # 0<< can only be D<<
    assert german.issuing_state == "D"


def test_a_state_code_with_two_possible_readings_is_left_as_read() -> None:
    # GB0 could be GBO (British Overseas Citizen) or GBD (Overseas Territories Citizen).
    document = read(replace(passport(nationality="GBD"), 2, 13, "0"))
    assert document.nationality == "GB0"
    assert document.corrections == []
    assert "unknown nationality code 'GB0' (not in ICAO Doc 9303 Part 3)" in document.warnings


def test_a_misread_document_number_is_never_repaired_only_a_reading_suggested() -> None:
    document = read(replace(TD3, 2, 6, "O"))  # L8989O2C3: 0 read as O
    assert document.document_number == "L8989O2C3"
    assert document.corrections == []
    assert not document.valid
    assert document.warnings[0] == (
        "document number fails its check digit; reading 'O' at line 2, position 6 as '0' would "
        "pass every check (not applied: a check digit cannot confirm it)"
    )


def test_no_reading_is_suggested_when_another_check_fails_too() -> None:
    text = replace(replace(TD3, 2, 6, "O"), 2, 20, "3")  # and a wrong birth-date check digit
    assert not any("would pass" in warning for warning in read(text).warnings)


def test_a_g_read_for_a_6_escapes_every_check_digit() -> None:
    # G is worth 16 and 6 is worth 6: the same modulo 10, whatever the weight. Doc 9303's
    # check digits cannot see this confusion; only another source (the chip) can.
    document = read(replace(passport(document_number="AB6543210"), 2, 3, "G"))
    assert document.document_number == "ABG543210"
    assert document.valid


# --- compose refuses what it cannot write ----------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"format": "TD4"}, "unknown MRZ format 'TD4'"),
        ({"surname": "O'NEILL"}, "cannot be written in an MRZ"),
        ({"surname": "A" * 40}, "does not fit the 39 characters of a TD3"),
        ({"issuing_state": "UTOPIA"}, "longer than 3 characters"),
        ({"issuing_state": ""}, "not a code of 1 to 3 letters"),
        ({"nationality": "U1O"}, "'1' cannot be written"),
        ({"document_number": ""}, "document number is empty"),
        ({"document_number": "AB-12"}, "'-' cannot be written"),
        ({"sex": "U"}, "sex 'U' is not M, F or X"),
        ({"birth_date": "1974-08-12"}, "neither a date, None nor 6 MRZ characters"),
        ({"optional_data": "A" * 15}, "longer than 14 characters"),
        ({"optional_data_2": "X"}, "a TD3 has no second optional data field"),
        ({"document_type": "V"}, "does not fit a TD3"),
        ({"format": "MRVA", "document_type": "P"}, "does not fit a MRVA"),
    ],
)
def test_compose_refuses_fields_it_cannot_write(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        passport(**fields)


def test_compose_writes_an_unused_personal_number_with_a_filler_check_digit() -> None:
    line = passport().split("\n")[1]
    assert line[28:43] == "<" * 15  # Doc 9303 Part 4 allows "<" or "0" there
    assert read(passport()).checks["personal_number"]
    assert read(replace(passport(), 2, 43, "0")).checks["personal_number"]


# --- properties over generated documents -----------------------------------------------------

ALNUM = string.ascii_uppercase + string.digits
WIDTHS = {"TD1": 30, "TD2": 31, "TD3": 39, "MRVA": 39, "MRVB": 31}  # of the name field
LONGEST_NUMBER = {"TD1": 22, "TD2": 14, "TD3": 9, "MRVA": 9, "MRVB": 9}
OPTIONAL = {"TD1": 15, "TD2": 7, "TD3": 14, "MRVA": 16, "MRVB": 8}
words = st.lists(st.text(string.ascii_uppercase, min_size=1, max_size=8), min_size=1, max_size=3)


@st.composite
def documents(draw, formats=mrz.FORMATS) -> tuple[str, dict]:
    """A composed MRZ and the fields parse should give back."""
    format = draw(st.sampled_from(formats))
    first = {"TD1": "ACI", "TD2": "ACI", "TD3": "P", "MRVA": "V", "MRVB": "V"}[format]
    document_type = draw(st.sampled_from(first)) + draw(st.sampled_from(["", "<", "D", "T"]))
    surname = " ".join(draw(words))
    given_names = " ".join(draw(st.one_of(st.just([]), words)))
    name_length = len(surname) + (len(given_names) + 2 if given_names else 0)
    assume(name_length <= WIDTHS[format])
    number = draw(st.text(ALNUM, min_size=1, max_size=LONGEST_NUMBER[format]))
    room = OPTIONAL[format] - (len(number) - 9 + 2 if len(number) > 9 else 0)
    optional_data = draw(st.text(ALNUM + "<", max_size=room))
    optional_data_2 = draw(st.text(ALNUM + "<", max_size=11)) if format == "TD1" else ""
    fields = {
        "document_type": document_type,
        "issuing_state": draw(st.sampled_from(sorted(icao_states.CODES))),
        "surname": surname,
        "given_names": given_names,
        "document_number": number,
        "nationality": draw(st.sampled_from(sorted(icao_states.CODES))),
        "birth_date": draw(
            st.dates(TODAY.replace(year=TODAY.year - 100) + datetime.timedelta(days=1), TODAY)
        ),
        "sex": draw(st.sampled_from("MFX")),
        "expiry_date": draw(
            st.dates(datetime.date(TODAY.year - 79, 1, 1), datetime.date(TODAY.year + 20, 12, 31))
        ),
        "optional_data": optional_data,
        "optional_data_2": optional_data_2,
    }
    expected = {
        **fields,
        "format": format,
        "document_type": document_type.strip("<"),
        "birth_date": fields["birth_date"].isoformat(),
        "expiry_date": fields["expiry_date"].isoformat(),
        "optional_data": optional_data.strip("<"),
        "optional_data_2": optional_data_2.strip("<"),
        "name_truncated": name_length == WIDTHS[format],
    }
    return compose(format, **fields), expected


@given(documents())
def test_every_composed_mrz_parses_back_field_by_field(document: tuple[str, dict]) -> None:
    text, expected = document
    parsed = read(text)
    assert {key: getattr(parsed, key) for key in expected} == expected
    assert parsed.valid and parsed.corrections == []
    assert "\n".join(parsed.lines) == text
    assert read(text.replace("\n", "")) == parsed


@st.composite
def mutations(draw) -> str:
    text, _ = draw(documents())
    at = draw(st.integers(0, len(text)))
    junk = st.text(st.characters(codec="utf-8"), max_size=3)
    return draw(
        st.one_of(
            st.just(text[:at]),  # truncated
            st.just(text[:at] + text[at + 1 :]),  # a character lost
            junk.map(lambda s: text[:at] + s + text[at:]),  # characters added
            st.sampled_from(ALNUM + "<").map(lambda c: text[:at] + c + text[at + 1 :]),
            junk.map(lambda s: text[:at] + s + text[at + len(s) :]),  # substituted
            st.just(text.lower().swapcase()),
        )
    )


@given(st.one_of(mutations(), st.text(), st.text(ALNUM + "<\n", max_size=100)))
def test_nothing_but_mrz_error_ever_escapes(text: str) -> None:
    try:
        document = read(text)
    except MrzError as exc:
        assert "\n" not in str(exc)
    else:
        json.dumps(document.to_dict())


DIGIT_LOOK_ALIKES = {"0": "ODQ", "1": "I", "2": "Z", "5": "S", "6": "G", "8": "B"}


@given(documents(), st.data())
def test_a_look_alike_letter_in_a_date_is_always_repaired(document, data) -> None:
    text, _ = document
    layout = mrz._LAYOUTS[read(text).format]
    line, start, end = data.draw(st.sampled_from([layout.birth_date, layout.expiry_date]))
    index = data.draw(st.integers(start, end - 1))
    digit = text.split("\n")[line][index]
    assume(digit in DIGIT_LOOK_ALIKES)
    letter = data.draw(st.sampled_from(DIGIT_LOOK_ALIKES[digit]))
    repaired = read(replace(text, line + 1, index + 1, letter))
    assert "\n".join(repaired.lines) == text
    assert repaired.valid
    assert [(c["from"], c["to"]) for c in repaired.corrections] == [(letter, digit)]


@given(documents(), st.data())
def test_a_confusion_in_a_document_number_is_caught_unless_it_is_g_for_6(document, data) -> None:
    text, expected = document
    number = expected["document_number"]
    assume(len(number) <= 9)
    layout = mrz._LAYOUTS[expected["format"]]
    line, start, _ = layout.document_number
    index = data.draw(st.integers(0, len(number) - 1))
    original = number[index]
    look_alikes = DIGIT_LOOK_ALIKES.get(original, "") + mrz._DIGIT_FOR_LETTER.get(original, "")
    assume(look_alikes)
    misread = data.draw(st.sampled_from(look_alikes))
    document = read(replace(text, line + 1, start + index + 1, misread))
    assert document.corrections == []  # never repaired
    assert document.valid == ({original, misread} == {"G", "6"})
    for warning in document.warnings:  # a suggested reading is always the printed one
        if "would pass" in warning:
            assert warning.split(" as ")[1].startswith(repr(original))
