"""Every shell example in the README runs (issue 21, item 3): a README that drifts from the code
fails here.

Each fenced ``sh`` block is run with bash (``set -e -o pipefail``), the project's console scripts
first on PATH, in a temporary directory per README section, where the repository's top-level
folders are linked so that examples may name ``edge/sim/samples/...``. The blocks of a section
run in order in that directory, so a later one uses what an earlier one made.

A block that cannot run here is marked, on the line right above its opening fence, with an HTML
comment (invisible on GitHub); markers may be stacked, one per line:

``<!-- example: skip (REASON) -->``
    not run; the reason is required (a running broker, systemd, a terminal to type a PIN in...).
``<!-- example: given NAME[=PATH] ... -->``
    copy, before the block, each file the example takes as given: ``tests/data/readme/NAME``,
    or PATH in the repository, to NAME in the section's directory.
``<!-- example: setup COMMAND -->``
    run COMMAND first (hidden from the reader: keys the example's author already has...).

A block without a marker must run: a new example is tested from the moment it is written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GIVEN = ROOT / "tests" / "data" / "readme"
BIN = Path(sys.executable).parent

_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
_MARKER = re.compile(r"^<!--\s*example:\s*(.*?)\s*-->\s*$")
_SKIP = re.compile(r"^skip\s+\((.+)\)$")


class ReadmeError(ValueError):
    """The README's markers cannot be understood; the message names the line."""


@dataclass
class Block:
    line: int
    code: str
    skip: str | None = None
    given: list[tuple[str, Path]] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)


@dataclass
class Section:
    title: str
    line: int
    blocks: list[Block] = field(default_factory=list)


def parse(text: str) -> list[Section]:
    """The README's sections and their sh blocks with their markers."""
    sections = [Section("(top)", 1)]
    lines = text.splitlines()
    markers: list[tuple[int, str]] = []
    fence: str | None = None
    body: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        if fence is not None:
            if line.strip() == "```":
                if fence == "sh":
                    sections[-1].blocks.append(_block(start, "\n".join(body), markers))
                fence, body, markers = None, [], []
            else:
                body.append(line)
            continue
        if line.startswith("```"):
            fence, start = line[3:].strip(), number
            if fence != "sh":
                markers = []
            continue
        marker = _MARKER.match(line)
        if marker and marker[1] is not None:
            markers.append((number, marker[1]))
            continue
        if markers:  # a marker belongs to the fence right below it, nothing else
            raise ReadmeError(f"README.md:{markers[0][0]}: an example marker not above a block")
        heading = _HEADING.match(line)
        if heading:
            sections.append(Section(heading[2], number))
    return [section for section in sections if section.blocks]


def _block(line: int, code: str, markers: list[tuple[int, str]]) -> Block:
    block = Block(line, code)
    for number, text in markers:
        word, _, rest = text.partition(" ")
        if word == "skip":
            found = _SKIP.match(text)
            if not found or not found[1].strip():
                raise ReadmeError(f"README.md:{number}: skip needs a reason: skip (why)")
            block.skip = found[1].strip()
        elif word == "given" and rest.split():
            for item in rest.split():
                name, _, source = item.partition("=")
                block.given.append((name, ROOT / source if source else GIVEN / name))
        elif word == "setup" and rest.strip():
            block.setup.append(rest.strip())
        else:
            raise ReadmeError(f"README.md:{number}: unknown example marker {text!r}")
    return block


SECTIONS = parse(README.read_text(encoding="utf-8"))


def test_the_readme_has_examples_and_every_skipped_one_says_why():
    blocks = [block for section in SECTIONS for block in section.blocks]
    assert len(blocks) >= 20
    run = [block for block in blocks if block.skip is None]
    assert len(run) >= 7  # most of what a newcomer types first runs here
    for block in blocks:
        for _, source in block.given:
            assert source.is_file(), f"README.md:{block.line}: given {source} is missing"


def test_markers_are_checked(tmp_path):
    with pytest.raises(ReadmeError, match="skip needs a reason"):
        parse("# A\n<!-- example: skip -->\n```sh\nls\n```\n")
    with pytest.raises(ReadmeError, match="unknown example marker"):
        parse("# A\n<!-- example: maybe -->\n```sh\nls\n```\n")
    with pytest.raises(ReadmeError, match="not above a block"):
        parse("# A\n<!-- example: skip (x) -->\n\ntext\n```sh\nls\n```\n")
    (section,) = parse("# A\n<!-- example: given a.jsonl b=x/y -->\n```sh\ncat a.jsonl\n```\n")
    assert section.blocks[0].given == [("a.jsonl", GIVEN / "a.jsonl"), ("b", ROOT / "x/y")]


def _workdir(tmp_path: Path) -> Path:
    for entry in ROOT.iterdir():  # the repository's folders, as the README's paths name them
        if not entry.name.startswith(".") and entry.is_dir():
            (tmp_path / entry.name).symlink_to(entry)
    return tmp_path


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -e -o pipefail\n" + script],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )


@pytest.mark.parametrize(
    "section",
    [s for s in SECTIONS if any(b.skip is None for b in s.blocks)],
    ids=lambda s: f"{s.title} (line {s.line})",
)
def test_the_sections_examples_run(section: Section, tmp_path: Path) -> None:
    work = _workdir(tmp_path)
    for block in section.blocks:
        if block.skip is not None:
            continue
        for name, source in block.given:
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, work / name)
        for command in block.setup:
            done = _bash(command, work)
            assert done.returncode == 0, f"README.md:{block.line}: setup {command}: {done.stderr}"
        done = _bash(block.code, work)
        assert done.returncode == 0, (
            f"README.md:{block.line}: the example failed (exit {done.returncode}):\n"
            f"{block.code}\n--- stderr:\n{done.stderr}"
        )
        assert "Traceback" not in done.stderr, done.stderr
