"""The rules of the house (``ARCHITECTURE.md``), held by reading every module's imports.

Each rule says which modules must not import which others, and why. The checker parses each
source file with :mod:`ast` (nothing is imported or run) and looks at every import in it:

* ``import a.b`` and ``from a.b import c`` (which may import the module ``a.b.c``);
* relative imports, resolved against the module's own package (``from ..uplink import x`` in
  ``edge/screening/sync.py`` is ``edge.uplink``);
* imports anywhere in the file: inside functions, ``try`` blocks and ``if TYPE_CHECKING:``
  (a type-only import still makes the module know the other);
* ``importlib.import_module("a.b")`` and ``__import__("a.b")`` with a literal name.

A rule names modules by dotted prefix, whole components only: ``edge.uplink`` covers
``edge.uplink`` and ``edge.uplink.session``, never ``edge.uplinks``. A failure names the file,
the line and the rule::

    edge/screening/sync.py:63: edge.screening must not import edge.uplink (screening knows no
    network: it gets a transport)

Tests and scripts are not checked: they wire the two sides together on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SOURCES = {
    "edge": "edge",
    "console": "console",
    "provisioning": "provisioning",
    "mqtt_schemas": "mqtt-schemas",
}
"""Top-level package -> its directory under the repository root (as setup.cfg's package_dir)."""

IO_MODULES = (
    # network and serial lines, cards, processes, the event loop's streams and sockets
    "socket", "ssl", "select", "selectors", "asyncio", "subprocess", "multiprocessing",
    "serial", "smartcard", "picamera2",
    # storage
    "sqlite3", "sqlite_utils", "sqlalchemy", "shutil",
    # MQTT and HTTP
    "aiomqtt", "paho", "requests", "urllib.request", "http", "aiohttp",
)  # fmt: skip
"""What pure code never imports. Not ``os``, ``io`` or ``pathlib``: their pure parts
(``os.urandom``, ``io.BytesIO``, path arithmetic) are fair use, and what they would add is
caught in review; everything here exists only to talk to the world."""


@dataclass(frozen=True)
class Rule:
    """*modules* (minus *exempt*) must not import anything under *forbidden*, because *why*."""

    name: str
    modules: tuple[str, ...]
    forbidden: tuple[str, ...]
    why: str
    exempt: tuple[str, ...] = ()


RULES = (
    Rule(
        "documents-are-pure",
        ("edge.documents",),
        (
            "edge.devices",
            "edge.uplink",
            "edge.lane",
            "edge.screening",
            "edge.ui",
            "edge.agent",
            "edge.sim",
            "edge.cli",
            "edge.trust",
        ),
        "documents is pure parsing and verification: given bytes, it returns facts",
    ),
    Rule(
        "face-is-pure",
        ("edge.face",),
        (
            "edge.devices",
            "edge.uplink",
            "edge.lane",
            "edge.screening",
            "edge.ui",
            "edge.agent",
            "edge.sim",
            "edge.cli",
            "edge.trust",
            "edge.documents",
        ),
        "face is pure inference: given pixels, it returns faces, measures and a similarity; "
        "the camera reads, the lane decides",
    ),
    Rule(
        "pure-code-does-no-io",
        ("edge.documents", "edge.face"),
        IO_MODULES,
        "documents and face never do I/O: the devices read, the agent stores and sends",
    ),
    Rule(
        "devices-never-decide",
        ("edge.devices",),
        ("edge.lane", "edge.screening", "edge.agent", "edge.uplink", "edge.ui", "edge.cli"),
        "devices do hardware I/O only and report what they read; the lane decides",
    ),
    Rule(
        "screening-knows-no-network",
        ("edge.screening",),
        ("edge.uplink",),
        "screening knows no network: it gets a transport",
    ),
    Rule(
        "console-never-imports-the-kiosk",
        ("console",),
        ("edge",),
        "the console shares only mqtt_schemas with the kiosk",
    ),
    Rule(
        "kiosk-never-imports-the-server-side",
        ("edge",),
        ("console", "provisioning"),
        "the kiosk shares only mqtt_schemas with the console",
    ),
    Rule(
        "only-the-uplink-talks-mqtt",
        ("edge",),
        ("aiomqtt", "paho"),
        "the uplink is the kiosk's only MQTT talker; its other parts get a transport",
        exempt=("edge.uplink",),
    ),
    Rule(
        "picamera2-only-in-its-backend",
        ("edge",),
        ("picamera2", "libcamera"),
        "only the Pi camera backend imports picamera2 (when a camera is opened): the rest of the "
        "kiosk runs where libcamera does not (a USB webcam kiosk, tests, the console's machines)",
        exempt=("edge.devices.camera_picamera2",),
    ),
    Rule(
        "the-access-policy-is-one-pure-table",
        ("console.access",),
        (
            "console.web",
            "console.store",
            "console.cli",
            "console.ingest",
            "console.accounts",
            "console.audit",
            "flask",
            "werkzeug",
            "sqlalchemy",
        ),
        "the policy decides from who asks and what about, nothing else: no request, no database",
    ),
    Rule(
        "the-store-knows-no-web",
        ("console.store",),
        ("console.web", "console.cli", "flask"),
        "web and cli are thin layers over the store; the store never reaches back into them",
    ),
    Rule(
        "the-contract-depends-on-neither-side",
        ("mqtt_schemas",),
        ("edge", "console", "provisioning"),
        "the wire contract is shared by both sides and depends on nothing of either",
    ),
)


def under(name: str, prefix: str) -> bool:
    """Whether module *name* is *prefix* or inside it (whole dotted components only)."""
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, directory: Path, top: str) -> tuple[str, str]:
    """``(module, package)`` of a source file: ``edge/screening/sync.py`` is module
    ``edge.screening.sync`` in package ``edge.screening``; an ``__init__.py`` is its package."""
    parts = [top, *path.relative_to(directory).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def imported_names(tree: ast.AST, package: str) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every import in *tree*, relative ones made absolute.

    ``from a import b`` yields both ``a`` and ``a.b``: ``b`` may be a submodule
    (``from edge import uplink``), and only the second name shows it.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # "from ." is the package itself, each further dot one up
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            yield node.lineno, node.args[0].value


def violations(root: Path, rule: Rule) -> list[str]:
    """Every import under *root* that breaks *rule*, one ``file:line: message`` each.

    *root* holds the source directories of :data:`SOURCES` (the repository, or a planted tree
    in a test). An import is reported once per line even if several of its names match.
    """
    found: list[str] = []
    for top, directory_name in SOURCES.items():
        directory = root / directory_name
        for path in sorted(directory.rglob("*.py")):
            module, package = module_name(path, directory, top)
            subject = next((m for m in rule.modules if under(module, m)), None)
            if subject is None or any(under(module, e) for e in rule.exempt):
                continue
            tree = ast.parse(path.read_bytes(), filename=str(path))
            reported: set[int] = set()
            for line, name in imported_names(tree, package):
                banned = next((f for f in rule.forbidden if under(name, f)), None)
                if banned is not None and line not in reported:
                    reported.add(line)
                    where = path.relative_to(root).as_posix()
                    found.append(f"{where}:{line}: {subject} must not import {banned} ({rule.why})")
    return found


# ---------------------------------------------------------------------------------------------
# The rules, on this repository


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_house_rule(rule: Rule) -> None:
    broken = violations(ROOT, rule)
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_every_rule_covers_code_that_exists(rule: Rule) -> None:
    # A renamed package or a misspelt prefix would make its rule pass by checking nothing.
    # (A rule may also name a package to come, as edge.face: one existing one is enough.)
    modules = {
        module_name(path, ROOT / directory, top)[0]
        for top, directory in SOURCES.items()
        for path in (ROOT / directory).rglob("*.py")
    }
    assert any(under(module, prefix) for module in modules for prefix in rule.modules)


# ---------------------------------------------------------------------------------------------
# The checker itself: it must find what is planted, or the rules above could pass vacuously


def plant(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def rule(name: str) -> Rule:
    return next(r for r in RULES if r.name == name)


def test_the_checker_reports_a_planted_forbidden_import_with_file_and_line(tmp_path):
    plant(tmp_path, "edge/documents/__init__.py", "")
    plant(tmp_path, "edge/documents/x.py", '"""A planted module."""\n\nimport edge.devices\n')
    assert violations(tmp_path, rule("documents-are-pure")) == [
        "edge/documents/x.py:3: edge.documents must not import edge.devices "
        "(documents is pure parsing and verification: given bytes, it returns facts)"
    ]


def test_the_checker_sees_relative_function_level_and_submodule_imports(tmp_path):
    plant(
        tmp_path,
        "edge/screening/sync.py",
        "from . import store\n"  # edge.screening.store: allowed
        "from ..uplink.errors import NotConnected\n"  # line 2
        "def attach():\n"
        "    from edge import uplink\n"  # line 4: the submodule edge.uplink
        "    import importlib\n"
        "    return importlib.import_module('edge.uplink.session')\n",  # line 6
    )
    plant(tmp_path, "edge/screening/__init__.py", "from ..uplinks import x\n")  # not uplink
    plant(tmp_path, "edge/documents/emrtd/reader.py", "def f():\n    from ...lane import m\n")
    plant(tmp_path, "edge/face/quality.py", "import asyncio\nfrom serial import Serial\n")
    assert [v.split(" (")[0] for v in violations(tmp_path, rule("screening-knows-no-network"))] == [
        "edge/screening/sync.py:2: edge.screening must not import edge.uplink",
        "edge/screening/sync.py:4: edge.screening must not import edge.uplink",
        "edge/screening/sync.py:6: edge.screening must not import edge.uplink",
    ]
    assert [v.split(" (")[0] for v in violations(tmp_path, rule("documents-are-pure"))] == [
        "edge/documents/emrtd/reader.py:2: edge.documents must not import edge.lane"
    ]
    assert [v.split(" (")[0] for v in violations(tmp_path, rule("pure-code-does-no-io"))] == [
        "edge/face/quality.py:1: edge.face must not import asyncio",
        "edge/face/quality.py:2: edge.face must not import serial",
    ]


def test_the_checker_knows_the_contracts_directory_and_the_uplinks_exemption(tmp_path):
    plant(tmp_path, "mqtt-schemas/__init__.py", "from edge.uplink import clock\n")
    plant(tmp_path, "edge/uplink/session.py", "import aiomqtt\n")  # the one MQTT talker
    plant(tmp_path, "edge/agent/agent.py", "from paho.mqtt import client\n")
    plant(tmp_path, "console/cli/x.py", "import edge\n")
    plant(tmp_path, "edge/devices/camera_picamera2.py", "from picamera2 import Picamera2\n")
    plant(tmp_path, "edge/sim/camera.py", "def f():\n    import picamera2\n")
    messages = [v.split(" (")[0] for r in RULES for v in violations(tmp_path, r)]
    assert messages == [
        "console/cli/x.py:1: console must not import edge",
        "edge/agent/agent.py:1: edge must not import paho",
        "edge/sim/camera.py:2: edge must not import picamera2",
        "mqtt-schemas/__init__.py:1: mqtt_schemas must not import edge",
    ]
