"""The camera's settings (``[camera]`` in kiosk.toml), checked on construction.

Kept apart from the drivers so that reading a configuration imports neither numpy nor any
camera library: ``borderlane-edge run --check`` stays fast on a kiosk with no camera.

One table serves the three backends; a setting a backend cannot apply is said so here:

============ ========================= ==============================================
setting      picamera2 (Pi camera)     v4l2 (USB webcam)
============ ========================= ==============================================
exposure     ``ExposureTime`` (µs)     ``exposure_time_absolute`` (100 µs units)
gain         ``AnalogueGain`` (1.0 up) ``gain`` (the device's own raw scale)
focus        ``LensPosition`` dioptres ``focus_absolute`` (the device's raw scale)
============ ========================= ==============================================

The virtual camera (``edge.sim.camera``) plays image files and ignores exposure, gain and
focus; its frames are the files' own size, shrunk to fit ``width`` x ``height``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["Backend", "CameraConfig", "CameraConfigError", "PixelFormat"]


class Backend(enum.StrEnum):
    PICAMERA2 = "picamera2"
    """The Raspberry Pi camera through libcamera (``pip install borderlane[camera]``)."""
    V4L2 = "v4l2"
    """A USB (UVC) webcam, or any Video4Linux2 capture device, through its /dev/videoN."""
    VIRTUAL = "virtual"
    """Image files played as frames (``edge.sim.camera``): tests, demos, a bench kiosk."""


class PixelFormat(enum.StrEnum):
    """What a V4L2 camera sends; both are turned into RGB."""

    MJPEG = "mjpeg"
    """Compressed: every UVC webcam offers it at high resolutions and frame rates."""
    YUYV = "yuyv"
    """Uncompressed 4:2:2: no JPEG artefacts, but USB 2.0 carries it only at low rates."""


class CameraConfigError(ValueError):
    """A camera setting is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class CameraConfig:
    """Which camera, how it captures, and how long to wait for it. Errors name the field."""

    backend: Backend
    device: str = "/dev/video0"
    """V4L2 only: the device node; a stable udev name (``/dev/v4l/by-id/...``) survives
    replugging into another USB port."""
    source: Path | None = None
    """Virtual only: an image file (JPEG, PNG) or a directory of them, played in name order."""
    width: int = 1280
    height: int = 720
    fps: float = 15.0
    pixel_format: PixelFormat = PixelFormat.MJPEG
    """V4L2 only."""
    exposure: Literal["auto"] | int = "auto"
    """``"auto"`` or a fixed exposure time in microseconds."""
    gain: Literal["auto"] | float = "auto"
    """``"auto"`` or a fixed gain (see the module's table for its unit per backend)."""
    focus: Literal["auto"] | float = "auto"
    """``"auto"`` (continuous autofocus, where the lens has it) or a fixed lens position."""
    rotation: Literal[0, 90, 180, 270] = 0
    """Degrees clockwise that make the sensor's picture upright (a camera mounted sideways)."""
    capture_timeout_s: float = 2.0
    """A capture that has no fresh frame after this long fails with ``CameraTimeout``."""
    max_age_ms: int = 250
    """A frame older than this (waiting in the driver's queue) is skipped, never returned."""
    probe_interval_s: float = 5.0
    """While nobody captures, one frame this often keeps the health report honest."""
    reconnect_initial_s: float = 0.5
    """First wait before reopening a lost camera; doubles per failure up to the max."""
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        _choice(self, "backend", Backend)
        _choice(self, "pixel_format", PixelFormat)
        if self.backend is Backend.V4L2 and (
            not isinstance(self.device, str) or not self.device.startswith("/")
        ):
            raise CameraConfigError(
                "device", f"the path of a device node such as /dev/video0, got {self.device!r}"
            )
        if self.backend is Backend.VIRTUAL:
            if self.source is None:
                raise CameraConfigError(
                    "source", "required for the virtual camera: a file or folder"
                )
            if not isinstance(self.source, Path):
                raise CameraConfigError("source", f"a file or folder path, got {self.source!r}")
        _integer("width", self.width, 16, 8192)
        _integer("height", self.height, 16, 8192)
        _number("fps", self.fps, 0.1, 240)
        if self.exposure != "auto":
            _integer("exposure", self.exposure, 1, 10_000_000, "'auto' or microseconds ")
        if self.gain != "auto":
            _number("gain", self.gain, 0, 10_000, "'auto' or ")
        if self.focus != "auto":
            _number("focus", self.focus, 0, 10_000, "'auto' or a lens position ")
        if isinstance(self.rotation, bool) or self.rotation not in (0, 90, 180, 270):
            raise CameraConfigError("rotation", f"0, 90, 180 or 270, got {self.rotation!r}")
        _number("capture_timeout_s", self.capture_timeout_s, 0.05, 60)
        _integer("max_age_ms", self.max_age_ms, 1, 60_000)
        _number("probe_interval_s", self.probe_interval_s, 0.1, 3600)
        _number("reconnect_initial_s", self.reconnect_initial_s, 0.01, 3600)
        _number("reconnect_max_s", self.reconnect_max_s, self.reconnect_initial_s, 3600)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CameraConfig:
        """Build from a configuration table: unknown keys refused, ``source`` made a Path."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                raise CameraConfigError(key, f"unknown setting (known: {', '.join(sorted(known))})")
        if "backend" not in values:
            raise CameraConfigError("backend", "missing: picamera2, v4l2 or virtual")
        arguments = dict(values)
        if isinstance(arguments.get("source"), str) and arguments["source"]:
            arguments["source"] = Path(arguments["source"])
        return cls(**arguments)


def _choice(config: CameraConfig, name: str, kind: type[enum.StrEnum]) -> None:
    value = getattr(config, name)
    try:
        object.__setattr__(config, name, kind(value))
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise CameraConfigError(name, f"one of {choices}, got {value!r}") from None


def _integer(name: str, value: object, low: int, high: int, what: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CameraConfigError(name, f"{what}an integer in {low}..{high}, got {value!r}")


def _number(name: str, value: object, low: float, high: float, what: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise CameraConfigError(name, f"{what}a number in {low:g}..{high:g}, got {value!r}")
