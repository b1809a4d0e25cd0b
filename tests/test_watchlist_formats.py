"""Published lists in, entries out: the UN Security Council Consolidated List and
OpenSanctions / FollowTheMoney entities, imported on the kiosk and made into deltas on the
console (``mqtt_schemas.list_formats``).

The sample files under ``tests/data/watchlist/`` are small lists written for these tests from
the formats' public documentation (the UN's ``consolidated.xml`` structure, FollowTheMoney's
``Person``, ``Passport`` and ``Identification`` schemata); every person in them is invented.
Each record there says, in a comment or by its id, what it is for.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from edge.screening.importers import import_files
from edge.screening.matcher import Query, Screener
from edge.screening.store import WatchlistStore
from mqtt_schemas.list_formats import (
    FtMListError,
    UNListError,
    country_code,
    open_list,
    read_list,
    sniff_format,
)
from mqtt_schemas.watchlist import WatchlistError, check_entry, list_entries

DATA = Path(__file__).parent / "data" / "watchlist"
UN_LIST = DATA / "un-consolidated.xml"
FTM_LIST = DATA / "opensanctions.ftm.json"
EDGE = Path(sys.executable).parent / "borderlane-edge"
CONSOLE = Path(sys.executable).parent / "borderlane-console"


@pytest.fixture
def store(tmp_path):
    with WatchlistStore(tmp_path / "watchlist.db") as opened:
        yield opened


def run(command: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(command), *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def events(path: Path, fmt: str | None = None) -> list:
    with path.open("rb") as handle:
        fmt, stream = open_list(handle, path.name, fmt)
        return list(read_list(stream, path.name, fmt))


def screen(store: WatchlistStore, **traveller: str) -> list[dict]:
    return [hit.to_dict() for hit in Screener(store).screen(Query.from_dict(traveller))]


# ---------------------------------------------------------------------------------------------
# The UN Security Council Consolidated List


def test_un_individuals_become_persons_with_their_documents_and_the_entity_is_ignored(store):
    report = import_files(store, [UN_LIST], progress=False)

    assert report.formats == {str(UN_LIST): "un-xml"}
    assert (report.persons, report.documents, report.skipped) == (5, 3, 2)
    assert report.ignored == {"UN ENTITY (an organisation, not a person)": 1}
    assert store.counts() == {"persons": 5, "documents": 3}
    # the UN's own reference number is the id; the regime (UN_LIST_TYPE) names the list
    assert store.get("person", "un:QDi.901") == {
        "names": [
            {"surname": "TARIQ ANWAR AL-SAYYED"},  # FIRST_NAME .. FOURTH_NAME in the list's order
            {"surname": "طارق أنور السيد"},  # NAME_ORIGINAL_SCRIPT
            {"surname": "Tariq Anwar al-Sayid"},  # the Good alias; the Low one is left out
        ],
        "birth_date": "1971-04-12",
        "nationality": ["IRQ", "SYR"],  # "Iraq", "Syrian Arab Republic"
        "sex": "M",
        "list": "un-sc-al-qaida",
        "category": "sanctions",
        "action": "refer",
    }
    # the person's documents: ids that name their holder, ICAO state codes, number cleaned
    assert store.get("document", "un:QDi.901:doc:A1234567") == {
        "number": "A1234567",
        "issuing_state": "IRQ",
        "document_type": "P",
        "status": "invalid",
        "list": "un-sc-al-qaida",
        "action": "refer",
    }
    assert store.get("document", "un:QDi.901:doc:00778899")["issuing_state"] == "SYR"


def test_un_birth_dates_keep_what_every_given_date_agrees_with(store):
    import_files(store, [UN_LIST], progress=False)
    birth = {
        entry_id: store.get("person", entry_id).get("birth_date")
        for entry_id in ("un:QDi.901", "un:IQi.902", "un:KPi.903", "un:SOi.904", "un:QDi.907")
    }
    assert birth == {
        "un:QDi.901": "1971-04-12",  # EXACT DATE
        "un:IQi.902": None,  # APPROXIMATELY 1958 and EXACT 1959: no date rather than a wrong one
        "un:KPi.903": "1965",  # BETWEEN 1965 and 1965
        "un:SOi.904": None,  # BETWEEN 1980 and 1983
        "un:QDi.907": "1976",  # two EXACT dates of 1976
    }


def test_un_country_names_become_the_icao_codes_a_traveller_document_carries(store):
    import_files(store, [UN_LIST], progress=False)
    assert store.get("person", "un:IQi.902")["nationality"] == ["IRN"]  # Iran (Islamic Rep. of)
    assert store.get("person", "un:QDi.907")["nationality"] == ["D"]  # Germany, as the MRZ
    # "Atlantis" is no country: left out, and said so; the DPRK stays
    assert store.get("person", "un:KPi.903")["nationality"] == ["PRK"]
    # a document without an issuing state takes the holder's one nationality
    assert store.get("document", "un:KPi.903:doc:381420089")["issuing_state"] == "PRK"


def test_un_bad_individuals_are_reported_by_element_and_reason_and_the_rest_imported(store):
    report = import_files(store, [UN_LIST], progress=False)
    assert report.errors == [
        f"{UN_LIST}: INDIVIDUAL #5 (DATAID 6900005, QDi.905): "
        "no name (FIRST_NAME ... FOURTH_NAME are empty)",
        f"{UN_LIST}: INDIVIDUAL #6 (DATAID 6900006, QDi.906): "
        "INDIVIDUAL_DATE_OF_BIRTH: birth date '1970-13-45' is not a date",
    ]
    assert store.get("person", "un:QDi.907") is not None  # the one after them is there
    # what was left out of records imported otherwise
    assert [note.split("): ", 1)[1] for note in report.notes] == [
        "low-quality alias 'Abu Anwar' left out",
        "birth dates approximate or disagreeing: no birth date kept",
        "nationality 'Atlantis' is no known country: left out",
        "birth dates approximate or disagreeing: no birth date kept",
    ]


def test_a_person_never_hits_the_organisation_named_after_them(store):
    import_files(store, [UN_LIST], progress=False)
    hits = screen(store, surname="AL-SAYYED TRADING COMPANY", given_names="TARIQ ANWAR")
    assert all(hit["entry_id"] != "un:QDe.901" for hit in hits)
    assert "un:QDe.901" not in {entry_id for _, entry_id, _ in store.entries()}


def test_a_traveller_matching_a_un_individual_is_a_hit_that_names_the_un_reference(store):
    import_files(store, [UN_LIST], progress=False)
    hits = screen(
        store,
        surname="AL SAYYED",
        given_names="TARIQ ANWAR",
        birth_date="1971-04-12",
        nationality="IRQ",
        sex="M",
    )
    assert hits and hits[0]["entry_id"] == "un:QDi.901"
    assert hits[0]["list"] == "un-sc-al-qaida"
    # and the listed passport, as the MRZ reader gives it
    hits = screen(store, document_number="A1234567", issuing_state="IRQ")
    assert [hit["entry_id"] for hit in hits] == ["un:QDi.901:doc:A1234567"]


def test_the_un_list_is_read_in_bounded_memory():
    individual = (
        "<INDIVIDUAL><DATAID>{n}</DATAID><FIRST_NAME>PERSON</FIRST_NAME>"
        "<SECOND_NAME>NUMBER {n}</SECOND_NAME><UN_LIST_TYPE>Al-Qaida</UN_LIST_TYPE>"
        "<REFERENCE_NUMBER>QDi.{n}</REFERENCE_NUMBER><COMMENTS1>{pad}</COMMENTS1>"
        "<NATIONALITY><VALUE>Iraq</VALUE></NATIONALITY></INDIVIDUAL>"
    )
    pad = "x" * 1000
    body = "".join(individual.format(n=n, pad=pad) for n in range(8000))
    xml = f"<CONSOLIDATED_LIST><INDIVIDUALS>{body}</INDIVIDUALS></CONSOLIDATED_LIST>".encode()
    assert len(xml) > 9_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in list_entries(io.BytesIO(xml), "big.xml"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 8000
    assert peak < 2_000_000, f"peak {peak} bytes for a {len(xml)}-byte list"


# ---------------------------------------------------------------------------------------------
# Hostile and broken XML


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE CONSOLIDATED_LIST [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<CONSOLIDATED_LIST><INDIVIDUALS><INDIVIDUAL><DATAID>1</DATAID>
<FIRST_NAME>&lol3;</FIRST_NAME><REFERENCE_NUMBER>QDi.1</REFERENCE_NUMBER>
</INDIVIDUAL></INDIVIDUALS></CONSOLIDATED_LIST>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE CONSOLIDATED_LIST [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<CONSOLIDATED_LIST><INDIVIDUALS><INDIVIDUAL><DATAID>1</DATAID>
<FIRST_NAME>&secret;</FIRST_NAME><REFERENCE_NUMBER>QDi.1</REFERENCE_NUMBER>
</INDIVIDUAL></INDIVIDUALS></CONSOLIDATED_LIST>
"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["laughs", "external"])
def test_hostile_xml_is_refused_in_one_line_and_nothing_is_expanded(xml, tmp_path):
    path = tmp_path / "consolidated.xml"
    path.write_bytes(xml)
    [event] = events(path)
    assert isinstance(event.error, UNListError) and event.error.reason == "refused"
    assert str(event.error).startswith("consolidated.xml: refused: the XML declares a DTD")

    result = run(EDGE, "watchlist", "import", "--db", str(tmp_path / "w.db"), str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == f"{path}: {event.error.problem}"
    assert "imported 0 persons and 0 documents" in result.stderr
    assert "root:" not in result.stderr and "lollol" not in result.stderr


def test_xml_broken_midway_keeps_what_came_before_and_says_where_it_broke(tmp_path):
    path = tmp_path / "consolidated.xml"
    text = UN_LIST.read_text()
    cut = text.index("<!-- Bad: no name at all -->")
    path.write_text(text[:cut] + "<INDIVIDUAL><DATAID>9</DATAID><FIRST_NAME>BROKEN</INDIVIDUAL>")
    found = events(path)
    assert [e.entry[1] for e in found if e.entry and e.entry[0] == "person"] == [
        "un:QDi.901",
        "un:IQi.902",
        "un:KPi.903",
        "un:SOi.904",
    ]
    last = found[-1].error
    assert isinstance(last, UNListError) and last.reason == "bad-xml"
    assert "not well-formed XML (mismatched tag)" in str(last)
    assert "the rest of the file is not read" in str(last)


def test_a_file_that_is_not_the_un_list_is_one_line(tmp_path):
    other = tmp_path / "other.xml"
    other.write_text("<sdnList><sdnEntry/></sdnList>")
    [event] = events(other)
    assert event.error.reason == "not-the-format"
    assert "the root element is 'sdnList', not CONSOLIDATED_LIST" in str(event.error)

    text = tmp_path / "notes.txt"
    text.write_text("just some text\n")
    result = run(
        EDGE, "watchlist", "import", "--db", str(tmp_path / "w.db"), "--format", "un-xml", str(text)
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith(f"{text}: line 1, column 1: not well-formed")


# ---------------------------------------------------------------------------------------------
# OpenSanctions / FollowTheMoney entities


def test_ftm_persons_become_persons_and_their_passports_documents_whatever_the_order(store):
    report = import_files(store, [FTM_LIST], progress=False)

    assert report.formats == {str(FTM_LIST): "ftm"}  # found from the content, not the name
    assert (report.persons, report.documents) == (3, 2)
    assert store.get("person", "os:os-test-p1") == {
        "names": [
            {"surname": "Sergei Ivanovich Volkov"},
            {"surname": "Сергей Иванович Волков"},  # aliases, in any script
            {"surname": "Sergejs Volkovs"},
            {"surname": "Volkov", "given_names": "Sergei"},  # lastName, firstName
        ],
        "birth_date": "1962",  # 1962-05-01 and 1962: what both agree with
        "nationality": ["RUS", "LVA"],  # nationality ru, citizenship lv
        "sex": "M",
        "list": "test_sanctions",  # the source's dataset name
        "category": "sanctions",
        "action": "refer",
    }
    # a Passport entity after its holder, an Identification before it: both linked by holder
    assert store.get("document", "os:os-test-p1:doc:771234567") == {
        "number": "771234567",
        "issuing_state": "RUS",
        "document_type": "P",
        "status": "invalid",
        "list": "test_sanctions",
        "action": "refer",
    }
    assert store.get("document", "os:os-test-p2:doc:AB5555")["document_type"] == "I"
    # an entity in several datasets is listed under opensanctions; Germany is D
    assert store.get("person", "os:os-test-p5")["list"] == "opensanctions"
    assert store.get("person", "os:os-test-p5")["nationality"] == ["D"]


def test_ftm_bad_lines_are_reported_by_number_and_companies_ignored(store):
    report = import_files(store, [FTM_LIST], progress=False)
    assert report.errors == [
        f"{FTM_LIST}:7: a Person without a name (name, alias, lastName)",
        f"{FTM_LIST}:8: properties.birthDate: birth date 'circa 1950' is not YYYY, YYYY-MM "
        "or YYYY-MM-DD",
        f"{FTM_LIST}:10: not JSON (Expecting value: line 1 column 1 (char 0))",
    ]
    assert report.ignored == {
        "FtM Company (not a person or a document)": 1,
        "FtM Sanction (not a person or a document)": 1,
        "FtM Passport whose holder is no Person of the file": 1,  # the company's
    }
    assert f"{FTM_LIST}:1: weak alias 'Seryoga' left out" in report.notes
    # passportNumber without a country, and two nationalities to choose from: left out
    assert f"{FTM_LIST}:1: document 721234567: no issuing state: left out" in report.notes


def test_ftm_nested_documents_and_errors_of_its_own_type():
    line = {
        "id": "n1",
        "schema": "Person",
        "properties": {
            "name": ["Ana Lima"],
            "nationality": ["br"],
            "identification": [
                {"id": "p", "schema": "Passport", "properties": {"number": ["FZ123456"]}}
            ],
        },
        "datasets": ["br_list"],
    }
    found = list(read_list(io.BytesIO(json.dumps(line).encode() + b"\n[1]\n"), "n.json", "ftm"))
    assert [e.entry[1] for e in found if e.entry] == ["os:n1", "os:n1:doc:FZ123456"]
    assert isinstance(found[-1].error, FtMListError) and found[-1].where == "n.json:2"


def test_an_ftm_line_beyond_the_limit_is_skipped_without_being_held(monkeypatch):
    monkeypatch.setattr("mqtt_schemas.list_formats.MAX_FTM_LINE", 1000)
    person = {"id": "p", "schema": "Person", "properties": {"name": ["Ana Lima"]}}
    data = b'{"id": "' + b"x" * 5000 + b'"}\n' + json.dumps(person).encode() + b"\n"
    found = list(read_list(io.BytesIO(data), "big.json", "ftm"))
    assert str(found[0].error) == "big.json:1: longer than 1000 bytes: not an entity"
    assert found[1].entry[1] == "os:p" and found[1].where == "big.json:2"


def test_the_progress_bar_reads_the_un_list_as_it_goes(store, capsys):
    report = import_files(store, [UN_LIST], progress=True)
    assert (report.persons, report.documents) == (5, 3)
    assert "importing un-consolidated.xml" in capsys.readouterr().err


def test_a_traveller_matching_an_ftm_person_written_otherwise_is_a_hit(store):
    import_files(store, [FTM_LIST], progress=False)
    hits = screen(store, surname="VOLKOV", given_names="SERGEI", birth_date="1962-05-01")
    assert hits and hits[0]["entry_id"] == "os:os-test-p1"
    hits = screen(store, document_number="771234567", issuing_state="RUS")
    assert [hit["entry_id"] for hit in hits] == ["os:os-test-p1:doc:771234567"]


# ---------------------------------------------------------------------------------------------
# Formats, codes and the command lines


def test_the_format_is_found_from_the_name_and_the_first_bytes():
    assert sniff_format(b"id,kind,surname\n", "list.csv") == "csv"
    assert sniff_format(b'\xef\xbb\xbf<?xml version="1.0"?><CONSOLIDATED_LIST>', "-") == "un-xml"
    assert sniff_format(b'{"id": "Q1", "schema": "Person", "properties": {}}\n', "x.json") == "ftm"
    assert sniff_format(b'{"id": "nw-1", "kind": "person", "names": []}\n', "x.jsonl") == "jsonl"
    assert sniff_format(b"", "-") == "jsonl"
    # a stream that cannot peek still gives its first bytes to the reader
    fmt, stream = open_list(io.BytesIO(FTM_LIST.read_bytes()), "-")
    assert fmt == "ftm" and stream.read() == FTM_LIST.read_bytes()


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("Iraq", "IRQ"),
        ("Germany", "D"),
        ("de", "D"),
        ("Iran (Islamic Republic of)", "IRN"),
        ("Bolivia (Plurinational State of)", "BOL"),
        ("Democratic People's Republic of Korea", "PRK"),
        ("Democratic Republic of the Congo", "COD"),
        ("United Kingdom of Great Britain and Northern Ireland", "GBR"),
        ("Türkiye", "TUR"),
        ("ru", "RUS"),
        ("xk", "RKS"),
        ("Atlantis", None),
        ("zz", None),
    ],
)
def test_country_names_and_codes_become_icao_state_codes(value, code):
    assert country_code(value) == code


def test_every_entry_of_the_samples_is_valid_in_the_list_model():
    for path in (UN_LIST, FTM_LIST):
        for event in events(path):
            if event.entry:
                kind, _, entry = event.entry
                check_entry(kind, entry)


def test_import_command_counts_what_it_did_and_takes_an_explicit_format(tmp_path):
    db = tmp_path / "w.db"
    renamed = tmp_path / "un.data"  # neither name nor --format needed: XML is sniffed
    renamed.write_bytes(UN_LIST.read_bytes())
    result = run(EDGE, "watchlist", "import", "--db", str(db), str(renamed), str(FTM_LIST))
    assert result.returncode == 1  # records were skipped
    summary = result.stderr.splitlines()[-1]
    assert summary.startswith(
        "imported 8 persons and 5 documents (0 replaced, 5 records skipped, ignored: "
        "1 UN ENTITY (an organisation, not a person), 1 FtM Company (not a person or a "
        "document), 1 FtM Sanction (not a person or a document), 1 FtM Passport whose holder "
        "is no Person of the file, 6 fields left out) in "
    )
    assert "left out" not in result.stderr.replace("fields left out", "")  # notes: -v only
    verbose = run(EDGE, "watchlist", "import", "--db", str(db), "-v", str(UN_LIST))
    assert "low-quality alias 'Abu Anwar' left out" in verbose.stderr

    # --format says what a file is when its content would say otherwise
    as_jsonl = run(EDGE, "watchlist", "import", "--db", str(db), "--format", "jsonl", str(FTM_LIST))
    assert as_jsonl.returncode == 1 and f"{FTM_LIST}:1: kind: person or document" in as_jsonl.stderr

    help_text = run(EDGE, "watchlist", "import", "--help").stdout
    assert "--format [jsonl|csv|un-xml|ftm]" in help_text
    assert "borderlane-edge watchlist import --db wl.db consolidated.xml" in help_text


def test_console_diff_of_an_ftm_file_makes_a_delta_the_kiosk_applies(tmp_path):
    # the console: an empty list, then the FtM file, diffed, signed
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    ftm = tmp_path / "entities.ftm.json"
    good = [line for line in FTM_LIST.read_text().splitlines() if line.startswith("{")]
    good = [line for line in good if '"os-test-p3"' not in line and '"os-test-p4"' not in line]
    ftm.write_text("\n".join(good) + "\n")
    changes = tmp_path / "changes.jsonl"
    assert (
        run(
            CONSOLE, "watchlist", "keygen", "--key-id", "wl-test", "--out", str(tmp_path)
        ).returncode
        == 0
    )
    result = run(CONSOLE, "watchlist", "diff", str(empty), str(ftm), "-o", str(changes))
    assert result.returncode == 0, result.stderr
    added = [json.loads(line) for line in changes.read_text().splitlines()]
    assert [(c["op"], c["entry_id"]) for c in added] == [
        ("add", "os:os-test-p1"),
        ("add", "os:os-test-p1:doc:771234567"),
        ("add", "os:os-test-p2"),
        ("add", "os:os-test-p2:doc:AB5555"),
        ("add", "os:os-test-p5"),
    ]
    delta = tmp_path / "delta-0-1.jsonl"
    key = tmp_path / "wl-test.key.pem"
    signed = run(
        CONSOLE, "watchlist", "sign", "--key", str(key), "--key-id", "wl-test",
        "--from-version", "0", str(changes), "-o", str(delta),
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr

    # the kiosk: verify and apply, then screen
    db = tmp_path / "kiosk.db"
    trust = f"wl-test={tmp_path / 'wl-test.pub.pem'}"
    applied = run(EDGE, "watchlist", "apply", "--db", str(db), "--trust", trust, str(delta))
    assert applied.returncode == 0, applied.stderr
    with WatchlistStore(db, readonly=True) as kiosk:
        assert kiosk.version == 1
        assert kiosk.counts() == {"persons": 3, "documents": 2}
        assert (
            screen(kiosk, surname="VOLKOV", given_names="SERGEI")[0]["entry_id"] == "os:os-test-p1"
        )


def test_console_diff_stops_at_a_bad_record_naming_it(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = run(CONSOLE, "watchlist", "diff", str(empty), str(UN_LIST))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: {UN_LIST}: INDIVIDUAL #5 (DATAID 6900005, QDi.905): "
        "no name (FIRST_NAME ... FOURTH_NAME are empty)"
    )
    assert "--format [jsonl|csv|un-xml|ftm]" in run(CONSOLE, "watchlist", "diff", "--help").stdout


def test_strict_reading_raises_the_format_error_as_a_watchlist_error():
    with (
        UN_LIST.open("rb") as handle,
        pytest.raises(WatchlistError, match=r"INDIVIDUAL #5 .*: no name"),
    ):
        list(list_entries(handle, UN_LIST.name))
