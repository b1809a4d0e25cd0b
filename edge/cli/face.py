"""``borderlane-edge face``: what the kiosk's face checks see in an image, from the shell.

For technicians setting up a camera or looking into a referral: the same analyzer, settings and
threshold as the lane, on image files (JPEG, JPEG 2000, PNG).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np

from edge.face import (
    Analysis,
    FaceAnalyzer,
    FaceModelError,
    FaceSettings,
    FaceSettingsError,
    PortraitError,
    decode_portrait,
)

from .common import BadArgument, OneLineErrors

__all__ = ["face"]

face = click.Group(
    "face", help="Face detection, portrait quality (ISO/IEC 29794-5) and 1:1 comparison."
)

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="kiosk.toml whose [face] table to use. [default: the built-in settings]",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")


def _settings(config_path: Path | None) -> FaceSettings:
    if config_path is None:
        return FaceSettings()
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadArgument(f"{config_path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadArgument(f"{config_path}: not TOML ({exc})") from None
    try:
        return FaceSettings.from_dict(data.get("face", {}))
    except FaceSettingsError as exc:
        raise BadArgument(f"{config_path}: {exc}") from None


def _read(path: Path) -> np.ndarray:
    """The image in *path* as RGB, or one line naming the file and the problem (exit 2)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadArgument(f"{path}: {exc.strerror}") from None
    try:
        return decode_portrait(data)
    except PortraitError as exc:
        raise BadArgument(f"{path}: {exc}") from None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Hide what LiteRT's C++ logs on file descriptor 2 while it loads ("Created TensorFlow
    Lite XNNPACK delegate"): a technician's terminal should show our lines only."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _analyzer(settings: FaceSettings) -> FaceAnalyzer:
    try:
        with _quiet_stderr():
            return FaceAnalyzer.from_config(settings)
    except FaceModelError as exc:
        raise click.ClickException(str(exc)) from None


def _point(values: object) -> str:
    return "(" + ", ".join(f"{float(v):.1f}" for v in values) + ")"  # type: ignore[union-attr]


def _text(path: Path, analysis: Analysis) -> str:
    lines = [f"{path}: {analysis.width}x{analysis.height}"]
    if not analysis.faces:
        lines.append("  faces: []")
    for number, found in enumerate(analysis.faces, 1):
        left, right = found.eyes
        box = ", ".join(f"{v:.0f}" for v in found.box)
        lines.append(
            f"  face {number}: box ({box}) score {found.score:.3f} "
            f"eyes {_point(left)} {_point(right)}"
        )
    lines.append(f"  usable: {'yes' if analysis.usable else 'no'}")
    for name, measure in analysis.quality.items():
        verdict = "pass" if measure.passed else "FAIL"
        native = "-" if measure.native is None else f"{measure.native:.4g} {measure.unit}"
        lines.append(
            f"    {name:<28} {measure.score:>3} / {measure.threshold:<3} {verdict}  ({native})"
        )
    for advice in analysis.advice:
        lines.append(f"  advice: {advice.en} / {advice.es}")
    return "\n".join(lines)


@face.command("check", cls=OneLineErrors)
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@_config_option
@_json_option
def check_command(images: tuple[Path, ...], config_path: Path | None, as_json: bool) -> None:
    """Find the faces in each IMAGE and score every quality measure, as the lane does.

    Per image: each face's box (left, top, right, bottom in pixels), detector score and eye
    centres, largest first; then every quality measure of the largest face (OFIQ's names),
    its 0-100 score against its threshold, and the advice the traveller would see. An image
    with no face prints "faces: []" and exits 0; a file that is not a JPEG, JPEG 2000 or PNG
    image exits 2 with one line. --json prints one JSON object per image, one per line.

    \b
    Examples:
      borderlane-edge face check frame.jpg
      borderlane-edge face check portrait.jp2 --json | jq '.quality.Sharpness'
      borderlane-edge face check --config /etc/borderlane/kiosk.toml shots/*.png
    """
    settings = _settings(config_path)
    frames = [_read(path) for path in images]  # every file checked before any work
    analyzer = _analyzer(settings)
    for path, frame in zip(images, frames, strict=True):
        analysis = analyzer.analyze(frame)
        if as_json:
            click.echo(json.dumps({"image": str(path), **analysis.to_dict()}, ensure_ascii=False))
        else:
            click.echo(_text(path, analysis))


@face.command("compare", cls=OneLineErrors)
@click.argument("image_a", type=click.Path(path_type=Path))
@click.argument("image_b", type=click.Path(path_type=Path))
@_config_option
@_json_option
def compare_command(image_a: Path, image_b: Path, config_path: Path | None, as_json: bool) -> None:
    """Compare the largest face in IMAGE_A with the largest in IMAGE_B (1:1 verification).

    Prints the similarity (0-1, higher is more alike; dlib's ResNet embedding) and the
    decision at the configured threshold: "same" or "different", or "no_face" when either
    image has none (exit 0 all the same: the lane refers such a traveller).

    \b
    Examples:
      borderlane-edge face compare live.jpg dg2-portrait.jp2
      borderlane-edge face compare a.png b.png --json | jq -r .decision
      borderlane-edge face compare --config /etc/borderlane/kiosk.toml a.jpg b.jpg
    """
    settings = _settings(config_path)
    live, portrait = _read(image_a), _read(image_b)
    analyzer = _analyzer(settings)
    try:
        result = analyzer.verify(live, portrait)
    except FaceModelError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    shown = "-" if result.similarity is None else f"{result.similarity:.4f}"
    click.echo(f"similarity: {shown}")
    click.echo(f"threshold: {result.threshold}")
    click.echo(f"decision: {result.decision}")
    if result.decision == "no_face":
        missing = [
            str(p)
            for p, ok in ((image_a, result.live_face), (image_b, result.portrait_face))
            if not ok
        ]
        click.echo(f"no face in: {', '.join(missing)}")
