"""A virtual camera: image files played as frames, through the kiosk's real camera layer.

``[camera] backend = "virtual"`` with ``source`` an image file or a folder of them (JPEG or
PNG, played in name order, looping) makes a camera that behaves like a webcam: frames come at
``fps``, the driver layer (:class:`edge.devices.camera.ManagedCamera`) times them out, skips
stale ones, reopens it and reports its health exactly as for real hardware. Tests, the demo
and a bench kiosk without a camera use it.

What a technician or a test can do to it, from any process, through the file system:

============================  ===============================================================
do                            the camera
============================  ===============================================================
rename or delete the folder   is unplugged: reads fail (``CameraUnavailable``); put it back
                              and the camera comes back (replug)
create ``.stuck`` in it       is stuck: opens, but delivers no frame until the file goes
create ``.dark`` in it        delivers dark frames (a lamp failed, a hand over the lens)
put a file that is no image   delivers a corrupt frame (``CameraFrameError``) when it plays
replace or add images         plays them from the next frame on (the folder is read per frame)
============================  ===============================================================

For a single-file ``source`` the markers go in the file's folder. :func:`set_stuck` and
:func:`set_dark` write the markers.

The pictures may be faces of people: like a real camera, this never logs them; errors name
the file, never its contents.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np

from edge.devices.camera_config import CameraConfig
from edge.devices.camera_frames import (
    CameraFrameError,
    CameraUnavailable,
    RawFrame,
    decode_image,
    describe_os_error,
)

__all__ = ["DARK", "IMAGE_SUFFIXES", "STUCK", "VirtualSource", "set_dark", "set_stuck"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
STUCK = ".stuck"
DARK = ".dark"
DARK_FACTOR = 0.04
"""Dark frames keep 4% of the light: a face is there but nothing can find it."""
STUCK_POLL_S = 0.05
_CACHE_SIZE = 32


def _control_folder(source: Path) -> Path:
    return source if source.is_dir() or not source.suffix else source.parent


def set_stuck(source: Path, stuck: bool = True) -> None:
    """Make the virtual camera playing *source* stuck (no frames) or free it again."""
    _marker(_control_folder(source) / STUCK, stuck)


def set_dark(source: Path, dark: bool = True) -> None:
    """Make the virtual camera playing *source* deliver dark frames, or normal ones again."""
    _marker(_control_folder(source) / DARK, dark)


def _marker(path: Path, on: bool) -> None:
    if on:
        path.touch()
    else:
        path.unlink(missing_ok=True)


class VirtualSource:
    """The virtual camera's backend (a :class:`~edge.devices.camera_frames.FrameSource`)."""

    def __init__(self, config: CameraConfig) -> None:
        assert config.source is not None  # CameraConfig requires it for this backend
        self.config = config
        self.path = config.source
        self.name = f"virtual {self.path}"
        self._control = _control_folder(self.path)
        self._interval = 1.0 / config.fps
        self._next_at = 0.0
        self._played = 0
        self._cache: dict[tuple[str, int, int], np.ndarray] = {}

    async def open(self) -> None:
        """Like plugging a camera in: the source must hold at least one image."""
        self._images()
        self._next_at = time.monotonic()

    async def read(self) -> RawFrame:
        """The next frame, at ``fps``: waits for its time, as a camera's frames arrive."""
        delay = self._next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        while (self._control / STUCK).exists():  # no frame while stuck; the timeout ends it
            await asyncio.sleep(STUCK_POLL_S)
        images = self._images()
        path = images[self._played % len(images)]
        self._played += 1
        now = time.monotonic()
        self._next_at = max(self._next_at + self._interval, now)
        image = await asyncio.to_thread(self._decode, path)
        if (self._control / DARK).exists():
            image = (image * DARK_FACTOR).astype(np.uint8)
            image.flags.writeable = False
        return RawFrame(image, now)

    async def close(self) -> None:
        self._cache.clear()

    def _images(self) -> list[Path]:
        """The pictures to play, in name order; CameraUnavailable if there are none."""
        try:
            if self.path.is_dir():
                found = sorted(
                    p
                    for p in self.path.iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                )
            else:
                os.stat(self.path)  # raises FileNotFoundError when unplugged
                found = [self.path]
        except OSError as exc:
            raise CameraUnavailable(describe_os_error(exc), device=self.name) from None
        if not found:
            raise CameraUnavailable(f"no JPEG or PNG images in {self.path}", device=self.name)
        return found

    def _decode(self, path: Path) -> np.ndarray:
        """Decode *path* (cached by name, size and modification time; a replaced file is
        decoded again)."""
        try:
            info = path.stat()
            key = (str(path), info.st_mtime_ns, info.st_size)
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            with path.open("rb") as file:
                image = decode_image(
                    file, fit=(self.config.width, self.config.height), device=self.name
                )
        except FileNotFoundError as exc:  # removed between the listing and now: unplugged
            raise CameraUnavailable(describe_os_error(exc), device=self.name) from None
        except OSError as exc:
            raise CameraFrameError(
                f"{path.name}: {describe_os_error(exc)}", device=self.name
            ) from None
        except CameraFrameError as exc:
            raise CameraFrameError(f"{path.name}: {exc}", device=self.name) from None
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = image
        return image
