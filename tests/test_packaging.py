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
