"""``borderlane-edge camera``: check the kiosk's camera from the shell, as the agent uses it."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import click

from edge.agent.config import AgentConfigError, load_config
from edge.devices.camera import (
    CameraConfig,
    CameraConfigError,
    CameraError,
    CameraFrameError,
    Frame,
    open_camera,
)

from .common import BadArgument, OneLineErrors
from .run import agent_version

__all__ = ["camera"]

camera = click.Group("camera", help="The kiosk's face camera: take a picture with it.")

FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}


class CameraFailed(click.ClickException):
    """The camera gave no picture: one ``Error: ...`` line, exit status 1."""

    exit_code = 1


@camera.command("snapshot", cls=OneLineErrors)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="kiosk.toml: use its [camera] table.",
)
@click.option("--device", help="A V4L2 device (a USB webcam) instead of --config.")
@click.option(
    "--source",
    type=click.Path(path_type=Path),
    help="Image file or folder for the virtual camera, instead of --config.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the frame (.jpg or .png).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.5, 120),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the camera to open and deliver a frame.",
)
def snapshot(
    config_path: Path | None,
    device: str | None,
    source: Path | None,
    output: Path,
    timeout: float,
) -> None:
    """Take one frame with the camera, exactly as the agent would, and write it to a file.

    The frame is upright (the configured rotation applied) and fresh; the line printed
    says its size, which camera took it and how long opening and capturing took. The file
    shows a person: it is written readable by its owner only (0600). A camera that is
    absent, busy, stuck or sends broken frames is one line on standard error, exit
    status 1; a bad option or configuration, exit status 2. Stop the agent first if it
    holds the camera (a V4L2 device or the Pi camera serves one process at a time).

    \b
    Examples:
      borderlane-edge camera snapshot --config /etc/borderlane/kiosk.toml -o frame.jpg
      borderlane-edge camera snapshot --device /dev/video0 -o webcam.png
      borderlane-edge camera snapshot --source tests/faces -o virtual.jpg
    """
    if sum(x is not None for x in (config_path, device, source)) != 1:
        raise BadArgument("give exactly one of --config, --device and --source")
    kind = FORMATS.get(output.suffix.lower())
    if kind is None:
        raise BadArgument(f"--output: {output.name} must end in .jpg, .jpeg or .png")
    settings = _settings(config_path, device, source, timeout)
    # The driver's warnings (camera down, retrying) would repeat the one line said below.
    logging.getLogger("edge.devices").setLevel(logging.ERROR)
    started = time.monotonic()
    try:
        frame = asyncio.run(_capture(settings, timeout))
    except CameraError as exc:
        raise CameraFailed(f"{exc.device or 'camera'}: {exc}") from None
    elapsed = time.monotonic() - started
    from PIL import Image  # late: only once there is a frame to write

    try:
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
        with os.fdopen(descriptor, "wb") as file:
            Image.fromarray(frame.image).save(file, kind)
    except OSError as exc:
        raise CameraFailed(f"{output}: {exc.strerror or exc}") from None
    click.echo(f"{output}: {frame.width}x{frame.height} from {frame.source} in {elapsed:.2f} s")


def _settings(
    config_path: Path | None, device: str | None, source: Path | None, timeout: float
) -> CameraConfig:
    if config_path is not None:
        try:
            config = load_config(config_path, agent_version=agent_version())
        except AgentConfigError as exc:
            raise BadArgument(f"{config_path}: {exc}") from None
        if config.camera is None:
            raise BadArgument(f"{config_path}: no [camera] table, or enabled = false")
        return config.camera
    values: dict[str, object] = {"capture_timeout_s": min(timeout, 60)}
    if device is not None:
        values.update(backend="v4l2", device=device)
    else:
        values.update(backend="virtual", source=str(source))
    try:
        return CameraConfig.from_dict(values)
    except CameraConfigError as exc:
        raise BadArgument(str(exc)) from None


async def _capture(settings: CameraConfig, timeout: float) -> Frame:
    """Open, capture one fresh frame, close. An absent or stuck camera fails at once (the
    capture timeout); broken frames are retried until *timeout* (a webcam's first frames
    after power-up often are)."""
    async with open_camera(settings) as cam:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await cam.capture()
            except CameraFrameError:
                if time.monotonic() >= deadline:
                    raise
