"""Who may use the kiosk's officer screen: the officer directory (scrypt PIN hashes, on the
kiosk so it works with no network) and ``borderlane-edge ui officer-add``."""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner

from edge.cli.ui import ui
from edge.ui import OfficerDirectory, OfficerDirectoryError, add_officer


def test_an_added_officer_logs_in_with_their_pin_only(tmp_path) -> None:
    path = tmp_path / "officers.json"
    assert add_officer(path, "BDF-2231", "482916") is True
    assert add_officer(path, "BDF-0001", "1234") is True
    directory = OfficerDirectory.load(path)
    assert len(directory) == 2 and "BDF-2231" in directory
    assert directory.verify("BDF-2231", "482916")
    assert not directory.verify("BDF-2231", "482917")
    assert not directory.verify("BDF-0001", "482916")  # someone else's PIN
    assert not directory.verify("BDF-9999", "482916")  # nobody
    # no PIN in clear, and the file is its owner's only
    assert "482916" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_changing_a_pin_replaces_the_old_one(tmp_path) -> None:
    path = tmp_path / "officers.json"
    add_officer(path, "BDF-2231", "482916")
    assert add_officer(path, "BDF-2231", "777777") is False
    directory = OfficerDirectory.load(path)
    assert directory.verify("BDF-2231", "777777") and not directory.verify("BDF-2231", "482916")


@pytest.mark.parametrize(
    ("officer_id", "pin", "error"),
    [
        ("Marisol Castillo", "482916", "officer id"),  # a name, not a badge number
        ("", "482916", "officer id"),
        ("BDF-2231", "12", "4 to 12 digits"),
        ("BDF-2231", "abcd", "4 to 12 digits"),
    ],
)
def test_bad_officer_ids_and_pins_are_refused(tmp_path, officer_id, pin, error) -> None:
    path = tmp_path / "officers.json"
    with pytest.raises(OfficerDirectoryError, match=error):
        add_officer(path, officer_id, pin)
    assert not path.exists()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("not json", "not a readable JSON file"),
        ('{"people": {}}', 'expected {"officers"'),
        ('{"officers": {"BDF-1": {"kdf": "md5"}}}', "kdf 'scrypt'"),
        ('{"officers": {"BDF-1": {"kdf": "scrypt", "n": 3}}}', "n, r, p, salt and hash"),
    ],
)
def test_a_broken_directory_file_is_named_with_its_problem(tmp_path, content, error) -> None:
    path = tmp_path / "officers.json"
    path.write_text(content)
    with pytest.raises(OfficerDirectoryError, match=error) as raised:
        OfficerDirectory.load(path)
    assert str(path) in str(raised.value)
    with pytest.raises(OfficerDirectoryError):  # and it is not overwritten by an add
        add_officer(path, "BDF-2231", "482916")
    assert path.read_text() == content


def test_officer_add_prompts_for_the_pin_twice_and_never_echoes_it(tmp_path) -> None:
    path = tmp_path / "officers.json"
    result = CliRunner().invoke(
        ui, ["officer-add", "--file", str(path), "--officer-id", "BDF-2231"], input="482916\n" * 2
    )
    assert result.exit_code == 0, result.output
    assert "added officer BDF-2231" in result.output
    assert "482916" not in result.output
    assert OfficerDirectory.load(path).verify("BDF-2231", "482916")
    assert list(json.loads(path.read_text())["officers"]) == ["BDF-2231"]


def test_officer_add_refuses_a_bad_pin_in_one_line(tmp_path) -> None:
    path = tmp_path / "officers.json"
    result = CliRunner().invoke(
        ui, ["officer-add", "--file", str(path), "--officer-id", "BDF-2231", "--pin", "12"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == "Error: a PIN is 4 to 12 digits"
    assert not path.exists()
