"""Issue 14: kiosk.toml, whatever a technician (or a broken disk) wrote, is read or refused
with one AgentConfigError naming the key, never an exception of another kind.

Two levels: the text (``load_config``: TOML syntax, encodings, nesting, huge numbers) and the
values (``parse_config`` over the shipped example with one value replaced by anything TOML can
hold, dates and NaN included, or one key added). ``make fuzz`` runs both for minutes
(``fuzz/``); a crash either finds becomes an example or a named test here.
"""

from __future__ import annotations

import copy
import datetime
import functools
import math
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge.agent.config import AgentConfigError, load_config, parse_config
from edge.cli import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "images" / "kiosk.example.toml"
EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")
EXAMPLE_DATA = tomllib.loads(EXAMPLE_TEXT)
BASE = Path("/etc/borderlane")


def _keys(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for key, value in data.items():
        found.append((*prefix, key))
        if isinstance(value, dict):
            found += _keys(value, (*prefix, key))
    return found


KEY_PATHS = _keys(EXAMPLE_DATA)

toml_values = st.recursive(
    st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.dates()
    | st.times()
    | st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


def config_property(data: dict[str, Any]) -> None:
    """A parsed kiosk.toml: a configuration, or AgentConfigError whose message is one line."""
    try:
        parse_config(data, base=BASE, path=BASE / "kiosk.toml", agent_version="1.0.0")
    except AgentConfigError as error:
        assert "\n" not in str(error)


def config_text_property(data: bytes, directory: Path) -> None:
    """kiosk.toml as bytes on disk: a configuration, or AgentConfigError only."""
    path = directory / "kiosk.toml"
    path.write_bytes(data)
    try:
        load_config(path, agent_version="1.0.0")
    except AgentConfigError as error:
        assert "\n" not in str(error)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(KEY_PATHS), value=toml_values, extra=st.booleans())
@example(key=("lane", "policy", "hit_threshold"), value=math.nan, extra=False)
@example(key=("health", "interval_s"), value=10**5000, extra=False)
@example(key=("ui", "port"), value=datetime.time(1, 2), extra=False)
@example(key=("agent", "device_id"), value="kiosk\nbz", extra=False)
def test_any_value_for_any_key(key: tuple[str, ...], value: Any, extra: bool) -> None:
    data = copy.deepcopy(EXAMPLE_DATA)
    table = data
    for part in key[:-1]:
        table = table[part]
    if extra:  # a key the agent does not know, beside the one chosen
        table = table[key[-1]] if isinstance(table[key[-1]], dict) else table
        table["unknown\n key"] = value
    else:
        table[key[-1]] = value
    config_property(data)


@st.composite
def spoiled_texts(draw: st.DrawFn) -> bytes:
    """The shipped example with a few bytes changed, cut or inserted, or any text at all."""
    raw = EXAMPLE_TEXT.encode()
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + draw(st.binary(max_size=20)) + raw[at + draw(st.integers(0, 20)) :]


@settings(max_examples=200, deadline=None)
@given(spoiled_texts())
@example(b"a = " + b"[" * 100_000)
@example(b"a = " + b"{a = " * 2000)
@example(b"[agent]\ndevice_id = " + b"9" * 5000)
@example(b"\xff\xfe[agent]")
def test_any_kiosk_toml_text(tmp_path_factory, data: bytes) -> None:
    config_text_property(data, tmp_path_factory.mktemp("toml"))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a = " + "[" * 100_000, "nested too deeply"),
        ("[agent]\ndevice_id = " + "9" * 5000, "more than 4300 digits"),
    ],
)
def test_run_check_refuses_hostile_toml_in_one_line(tmp_path, text: str, words: str) -> None:
    """Found by the test above: tomllib's RecursionError and int()'s ValueError escaped."""
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["run", "--config", str(path), "--check"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.output


def kiosk_toml_property(data: bytes) -> None:
    """kiosk.toml's bytes, for make fuzz: written to a private directory and loaded."""
    config_text_property(data, _scratch())


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="fuzz-kiosk-toml-"))


#: The fuzz targets of this area by name (fuzz/fuzz_<name>.py runs each under atheris).
PROPERTIES = {"kiosk_toml": kiosk_toml_property}
