"""The distribution ships every package, and its three commands answer --help and --version."""

from __future__ import annotations

import configparser
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("borderlane-edge", "borderlane-console", "borderlane-provision")
SCRIPTS = Path(sys.executable).parent  # the console scripts installed beside this Python


def listed_packages() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return set(config["options"]["packages"].split())


def package_directories() -> set[str]:
    found = set()
    for top, directory in (
        ("edge", "edge"),
        ("console", "console"),
        ("provisioning", "provisioning"),
        ("mqtt_schemas", "mqtt-schemas"),
    ):
        for init in (ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / directory)
            found.add(".".join((top, *relative.parts)))
    return found


def test_setup_cfg_lists_every_package_directory():
    # Packages are listed by hand (find: cannot see mqtt-schemas/); a forgotten one would be
    # missing from the wheel while the editable install hides it.
    assert listed_packages() == package_directories()


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_shows_examples(command):
    result = subprocess.run(
        [SCRIPTS / command, "--help"], capture_output=True, text=True, check=True
    )
    assert f"Usage: {command}" in result.stdout
    assert "Examples:" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_command_version_is_the_distributions(command):
    result = subprocess.run(
        [SCRIPTS / command, "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"{command}, version {version('borderlane')}"


def unit_settings(path: Path) -> dict[str, list[str]]:
    """A systemd unit's ``[Service]`` settings, every value of a repeated key kept."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


SERVICES = sorted((ROOT / "images" / "systemd").glob("*.service"))


@pytest.mark.parametrize("unit", SERVICES, ids=lambda path: path.name)
def test_every_service_keeps_what_it_creates_private(unit):
    # Kiosk and console state is personal data: the state directory 0700 and whatever the
    # process creates 0600, even where the code forgot to say so.
    settings = unit_settings(unit)
    assert settings.get("UMask") == ["0077"]
    if "StateDirectory" in settings:
        assert settings.get("StateDirectoryMode") == ["0700"]


def test_the_unit_checks_see_every_service():
    names = {path.name for path in SERVICES}
    assert {"borderlane-edge.service", "borderlane-console-web.service"} <= names
