"""Issue 14: hostile watchlist files and deltas fail with one line, never a traceback.

First the four values of the issue (``NaN``, nesting 100,000 deep, an integer of 5,000 digits,
a lone surrogate) through the real command lines: the kiosk's ``watchlist apply|verify|import``
and the console's ``watchlist diff|sign``; each must print one line, exit non-zero and leave the
store as it was. Then property tests: whatever the bytes, each reader of a list file, a changes
file or a delta chunk returns or raises its own error (``make fuzz`` runs the same readers for
minutes under a coverage-guided fuzzer, ``fuzz/``).
"""

from __future__ import annotations

import functools
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from console.cli import cli as console_cli
from edge.cli import cli as edge_cli
from edge.screening.delta import (
    DeltaRejected,
    StreamApply,
    apply_chunks,
    load_trust,
    verify_chunks,
)
from edge.screening.store import WatchlistStore
from mqtt_schemas.list_formats import FORMATS, ListFormatError, read_list
from mqtt_schemas.validation import MAX_DEPTH, JsonError, parse_json
from mqtt_schemas.watchlist import (
    WatchlistError,
    diff,
    entry_from_record,
    generate_key,
    load_private_key,
    make_chunks,
    read_changes,
    sign_chunks,
    snapshot_changes,
    verify_chunk,
    write_key_pair,
)

EDGE = Path(sys.executable).parent / "borderlane-edge"

#: The issue's values, each as JSON text to put where a value goes, and what the reason says.
HOSTILE = {
    "nan": ("NaN", "NaN is not a JSON number"),
    "deep": ("[" * 100_000 + "]" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),
    "digits": ("9" * 5000, "an integer of more than 4300 digits"),
    "surrogate": ('"\\ud800"', "a \\u escape of a lone surrogate"),
}
DOCUMENT = {
    "id": "d1",
    "kind": "document",
    "number": "A0000001",
    "issuing_state": "MEX",
    "status": "lost",
    "list": "interpol-sltd",
}


def run(command: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(command), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def invoke(group: click.Group, *args: str | Path) -> Result:
    """The same command in this process (a subprocess costs a second of imports)."""
    return CliRunner().invoke(group, [str(a) for a in args], catch_exceptions=True)


def one_line_error(result: subprocess.CompletedProcess | Result, reason: str) -> None:
    code = (
        result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code
    )
    assert code != 0, result.stdout
    if isinstance(result, Result):
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    assert reason in result.stderr


def with_value(line: str, value: str) -> str:
    """A JSON object line with one more field, ``"x": <value>``, spliced in as text."""
    assert line.endswith("}")
    return line[:-1] + ',"x":' + value + "}"


def jsonl(items: list[dict]) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> dict[str, Path]:
    """Keys, a store at version 1 (one document), a changes file and the valid delta 1 -> 2."""
    directory = tmp_path_factory.mktemp("watchlist")
    keys = directory / "keys"
    keys.mkdir()
    key_id, _ = write_key_pair(keys, "wl-1")
    key = load_private_key((keys / "wl-1.key.pem").read_bytes())
    old = snapshot_changes([entry_from_record(DOCUMENT)])
    new = [entry_from_record(DOCUMENT | {"status": "stolen"})]
    changes = diff([entry_from_record(DOCUMENT)], new)
    store = directory / "v1.db"
    with WatchlistStore(store) as writer:
        snapshot = make_chunks("snapshot", old, to_version=1, key_id=key_id)
        apply_chunks(writer, sign_chunks(snapshot, key), load_trust(directory=keys))
    delta = make_chunks("delta", changes, from_version=1, to_version=2, key_id=key_id)
    paths = {"keys": keys, "key": keys / "wl-1.key.pem", "store": store}
    for name, items in (("changes", changes), ("delta", sign_chunks(delta, key))):
        paths[name] = directory / f"{name}.jsonl"
        paths[name].write_text(jsonl(items))
    return paths


def status(db: Path) -> dict:
    with WatchlistStore(db, readonly=True) as store:
        return store.status()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_delta_is_one_line_and_leaves_the_store_as_it_was(signed, tmp_path, name):
    value, reason = HOSTILE[name]
    db = tmp_path / "kiosk.db"
    shutil.copyfile(signed["store"], db)
    before = status(db)
    hostile = tmp_path / "delta.jsonl"
    hostile.write_text(with_value(signed["delta"].read_text().strip(), value) + "\n")

    result = run(EDGE, "watchlist", "apply", "--db", db, "--trust-dir", signed["keys"], hostile)
    one_line_error(result, reason)
    assert f"{hostile}:1: not a JSON chunk" in result.stderr
    assert status(db) == before
    verified = invoke(edge_cli, "watchlist", "verify", "--trust-dir", signed["keys"], hostile)
    one_line_error(verified, reason)


def test_the_genuine_delta_applies_through_the_same_command(signed, tmp_path) -> None:
    """What the test above spoils is a delta the kiosk takes."""
    db = tmp_path / "kiosk.db"
    shutil.copyfile(signed["store"], db)
    args = ["watchlist", "apply", "--db", db, "--trust-dir", signed["keys"], signed["delta"]]
    result = invoke(edge_cli, *args)
    assert result.exit_code == 0, result.output
    assert status(db)["version"] == 2


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_console_refuses_a_hostile_list_or_changes_line_in_one_line(signed, tmp_path, name):
    value, reason = HOSTILE[name]
    hostile = tmp_path / "list.jsonl"
    hostile.write_text(with_value(json.dumps(DOCUMENT), value) + "\n")
    one_line_error(invoke(console_cli, "watchlist", "diff", hostile, hostile), reason)
    changes = tmp_path / "changes.jsonl"
    changes.write_text(with_value(signed["changes"].read_text().strip(), value) + "\n")
    sign = ["watchlist", "sign", "--key", signed["key"], "--key-id", "wl-1"]
    one_line_error(invoke(console_cli, *sign, "--from-version", "1", changes), reason)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_import_reports_a_hostile_line_and_imports_the_rest(tmp_path, name):
    value, reason = HOSTILE[name]
    person = {"id": "p1", "schema": "Person", "properties": {"name": ["Ana Diaz"]}}
    files = {tmp_path / "list.jsonl": DOCUMENT, tmp_path / "entities.ftm.json": person}
    for path, good in files.items():
        path.write_text(with_value(json.dumps(good), value) + "\n" + json.dumps(good) + "\n")
    db = tmp_path / "kiosk.db"
    result = invoke(edge_cli, "watchlist", "import", "--db", db, *files)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 1
    for path in files:
        (error,) = [line for line in result.stderr.splitlines() if line.startswith(f"{path}:1")]
        assert reason in error
    assert status(db)["counts"] == {"persons": 1, "documents": 1}


# -- every reader, whatever the bytes ---------------------------------------------------------

KEY = generate_key()
TRUSTED = {"wl-1": KEY.public_key()}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Lines that look like each format, so that the readers get past their first check.
LIST_SEEDS = {
    "jsonl": json.dumps(DOCUMENT).encode(),
    "csv": b"id,kind,surname,given_names,birth_date,list\np1,person,DIAZ,ANA,1980-02,national\n",
    "ftm": b'{"id":"p1","schema":"Person","properties":{"name":["Ana Diaz"],"birthDate":["1980"]}}',
    "un-xml": b"<CONSOLIDATED_LIST><INDIVIDUALS><INDIVIDUAL><DATAID>1</DATAID><FIRST_NAME>ANA"
    b"</FIRST_NAME><REFERENCE_NUMBER>QDi.1</REFERENCE_NUMBER><UN_LIST_TYPE>Al-Qaida"
    b"</UN_LIST_TYPE></INDIVIDUAL></INDIVIDUALS></CONSOLIDATED_LIST>",
}


@st.composite
def list_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A format and bytes for it: random, or a seed line with bytes cut, changed or inserted."""
    fmt = draw(st.sampled_from(FORMATS))
    seed = LIST_SEEDS[fmt]
    if draw(st.booleans()):
        return fmt, draw(st.binary(max_size=300))
    at = draw(st.integers(0, len(seed)))
    cut = draw(st.integers(0, 8))
    return fmt, seed[:at] + draw(st.binary(max_size=12)) + seed[at + cut :] + b"\n" + seed


@settings(max_examples=200, deadline=None)
@given(list_files())
@example(("jsonl", b'{"id":"x","kind":"person","names":' + b"[" * 100_000))
@example(("ftm", b'{"id":"x","schema":"Person","properties":' + b"[" * 5000))
@example(("ftm", b'{"id":"p1","schema":"Person","properties":{"name":["A"]},"datasets":true}'))
@example(("csv", b"id,kind\n\x00,\xff\n"))
@example(("csv", b'id,kind,"zHatus\nnw-1",x\n'))  # make fuzz (list_csv): a header with a line break
@example(("un-xml", b'<!DOCTYPE x [<!ENTITY a "b">]><CONSOLIDATED_LIST/>'))
@example(("un-xml", b'<?xml version="1.0" encoding="UTF-9"?><X/>'))  # make fuzz (list_un_xml)
@example(("un-xml", b'<?xml version="1.0" encoding="UTF-7"?><X/>'))  # make fuzz (list_un_xml)
@example(("csv", b"id,kind,nationality\nnw-1,person\n"))  # make fuzz (list_csv): a short row
def test_list_readers_yield_events_and_raise_nothing(file: tuple[str, bytes]) -> None:
    list_property(*file)


def list_property(fmt: str, data: bytes) -> None:
    """A list file of format ``fmt``: events, each error one line of the format's own type."""
    for event in read_list(io.BytesIO(data), "list", fmt):
        if event.error is not None:
            assert isinstance(event.error, ListFormatError | ValueError)
            assert "\n" not in str(event.error)
        if event.entry is not None:
            kind, entry_id, _entry = event.entry
            assert kind in ("person", "document") and entry_id


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_a_changes_file_reads_or_raises_watchlist_error(data: bytes) -> None:
    changes_property(data)


def changes_property(data: bytes) -> None:
    """A changes file (the console signs it): WatchlistError only."""
    try:
        read_changes(io.BytesIO(data), "changes.jsonl")
    except WatchlistError as exc:
        assert "\n" not in str(exc)


@given(json_values)
def test_a_list_record_reads_or_raises_watchlist_error(record) -> None:
    try:
        entry_from_record(record)
    except WatchlistError as exc:
        assert "\n" not in str(exc)


def genuine_chunks() -> list[dict]:
    changes = [
        {"op": "add", "kind": "document", "entry_id": f"d{i}", "entry": DOCUMENT_ENTRY}
        for i in range(3)
    ]
    return sign_chunks(
        make_chunks("delta", changes, from_version=0, to_version=1, key_id="wl-1", max_changes=2),
        KEY,
    )


DOCUMENT_ENTRY = {k: v for k, v in DOCUMENT.items() if k not in ("id", "kind")} | {
    "action": "refer"
}
GENUINE = genuine_chunks()
GENUINE_LINE = json.dumps(GENUINE[0]).encode()


@st.composite
def spoiled_chunks(draw: st.DrawFn) -> tuple[list[dict], bool]:
    """The genuine chunks with one value replaced, anywhere, and whether to sign again (a
    trusted signer's mistake: the deeper checks must still hold)."""
    chunks = [json.loads(json.dumps(chunk)) for chunk in GENUINE]
    target: object = draw(st.sampled_from(chunks))
    path = []
    while isinstance(target, dict | list) and target and draw(st.booleans()):
        key = draw(
            st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target)))
        )
        path.append((target, key))
        target = target[key]
    if path:
        parent, key = path[-1]
        parent[key] = draw(json_values)
    else:
        chunks[draw(st.integers(0, len(chunks) - 1))] = draw(json_values)
    resign = draw(st.booleans())
    if resign:
        chunks = [resigned(chunk) for chunk in chunks]
    return chunks, resign


def resigned(chunk: object) -> object:
    """``chunk`` signed again with the trusted key, where it can be (a float cannot)."""
    if not isinstance(chunk, dict) or chunk.get("key_id") != "wl-1":
        return chunk
    try:
        return sign_chunks([chunk], KEY)[0]
    except WatchlistError:
        return chunk


def chunks_property(chunks: list[object]) -> None:
    """Chunks as a kiosk receives them: each verifies or is refused (WatchlistError), and the
    delta verifies or is rejected (DeltaRejected), one line each."""
    for chunk in chunks:
        try:
            verify_chunk(chunk, TRUSTED)
        except WatchlistError as exc:
            assert "\n" not in str(exc)
    try:
        verify_chunks(chunks, TRUSTED)  # type: ignore[arg-type]
    except DeltaRejected as exc:
        assert exc.reason and "\n" not in str(exc)


def chunk_line_property(data: bytes) -> None:
    """A chunk file's first line replaced by ``data`` (as ``watchlist apply`` reads it), the
    other chunks genuine; the first byte says whether to sign it again with the trusted key."""
    if not data:
        return
    try:
        chunk = parse_json(data[1:])
    except JsonError:
        return
    chunks_property([resigned(chunk) if data[0] & 1 else chunk, *GENUINE[1:]])


@settings(max_examples=200, deadline=None)
@given(spoiled_chunks())
def test_spoiled_chunks_verify_or_are_rejected(spoiled) -> None:
    chunks_property(spoiled[0])


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=400) | st.binary(max_size=20).map(lambda b: b"\x01" + GENUINE_LINE[:-20] + b)
)
def test_any_first_line_of_a_chunk_file(data: bytes) -> None:
    chunk_line_property(data)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spoiled=spoiled_chunks())
def test_spoiled_chunks_apply_whole_or_leave_the_store_as_it_was(tmp_path_factory, spoiled) -> None:
    chunks, _ = spoiled
    path = tmp_path_factory.mktemp("spoiled") / "watchlist.db"
    with WatchlistStore(path) as store:
        before = store.status()
        stream = StreamApply(store, TRUSTED)
        try:
            for chunk in chunks:
                stream.feed(chunk)
            stream.finish()
        except DeltaRejected as exc:
            assert "\n" not in str(exc)
        finally:
            stream.abort()  # a refused chunk leaves the transaction to the caller
        if store.version == 1:
            return
        assert store.status() == before
        with pytest.raises(DeltaRejected) as refused:  # what one refuses, the other does too
            apply_chunks(store, chunks, TRUSTED)
        assert "\n" not in str(refused.value)
        assert store.status() == before


#: The fuzz targets of this area by name (fuzz/fuzz_<name>.py runs each under atheris).
PROPERTIES = {
    **{f"list_{fmt.replace('-', '_')}": functools.partial(list_property, fmt) for fmt in FORMATS},
    "changes": changes_property,
    "chunk": chunk_line_property,
}
