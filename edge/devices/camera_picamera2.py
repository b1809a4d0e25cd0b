"""The Raspberry Pi camera backend, through picamera2 (libcamera).

Thin on purpose: picamera2 does the work, this maps the kiosk's settings onto it and keeps its
blocking calls off the event loop. picamera2 is imported when the camera is opened, not when
this module is: it exists only on a Pi (``pip install borderlane[camera]``, with Raspberry Pi
OS's ``python3-libcamera``), and a kiosk with a USB webcam never needs it.

- The stream is configured ``BGR888``: in picamera2's (DRM's) naming that is 24-bit pixels
  *stored* R, G, B, which numpy reads as RGB with no copy. (``RGB888`` is stored B, G, R.)
- ``queue=False``: ``capture_array`` waits for a frame that starts after the request, so a
  returned frame is never one that sat in a queue (fresh by construction).
- Controls are set only when the camera advertises them: a camera module without autofocus
  (v1, v2, HQ) has no ``AfMode``; asking for it would fail the whole ``set_controls``.
- ``capture_array`` blocks until the frame is complete: it runs in a worker thread. When it
  hangs (a sensor that stopped streaming), the capture timeout abandons that thread and the
  camera is closed and opened anew (:class:`~edge.devices.camera.ManagedCamera`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import numpy as np

from .camera_config import CameraConfig
from .camera_frames import CameraFrameError, CameraUnavailable, RawFrame

__all__ = ["Picamera2Source", "controls_for"]

log = logging.getLogger(__name__)

AF_MODE_MANUAL = 0
AF_MODE_CONTINUOUS = 2
"""libcamera's ``AfModeEnum``: Manual, Auto (one scan on request), Continuous."""


def controls_for(config: CameraConfig, available: dict[str, Any]) -> dict[str, Any]:
    """The libcamera controls for *config*, limited to what the camera advertises."""
    wanted: dict[str, Any] = {"FrameDurationLimits": (round(1e6 / config.fps),) * 2}
    if config.exposure != "auto" or config.gain != "auto":
        wanted["AeEnable"] = False  # a fixed value is ignored while auto exposure runs
    else:
        wanted["AeEnable"] = True
    if config.exposure != "auto":
        wanted["ExposureTime"] = int(config.exposure)
    if config.gain != "auto":
        wanted["AnalogueGain"] = float(config.gain)
    if config.focus == "auto":
        wanted["AfMode"] = AF_MODE_CONTINUOUS
    else:
        wanted.update(AfMode=AF_MODE_MANUAL, LensPosition=float(config.focus))
    missing = sorted(set(wanted) - set(available))
    if missing:
        log.info("camera: settings this camera does not have, left out: %s", ", ".join(missing))
    return {name: value for name, value in wanted.items() if name in available}


def _load() -> Any:
    try:
        from picamera2 import Picamera2  # late: only on a Pi, only when a camera is opened
    except ImportError as exc:
        raise CameraUnavailable(
            f"picamera2 is not installed ({exc.name or exc}): install python3-picamera2 "
            "or borderlane[camera]",
            device="picamera2",
        ) from None
    return Picamera2


class Picamera2Source:
    """A Pi camera (a :class:`~edge.devices.camera_frames.FrameSource`).

    *camera_class* is ``picamera2.Picamera2`` unless given (tests give a stand-in: libcamera
    cannot run off a Pi).
    """

    def __init__(self, config: CameraConfig, *, camera_class: Any = None) -> None:
        self.config = config
        self.name = "picamera2"
        self._camera_class = camera_class
        self._camera: Any = None
        # capture_array and close must not overlap: close waits for a capture to end
        self._busy = threading.Lock()

    async def open(self) -> None:
        """Open the first camera, configure the stream and start it."""
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        camera_class = self._camera_class or _load()
        config = self.config
        try:
            camera = camera_class()
        except (RuntimeError, IndexError, OSError) as exc:  # no camera; busy; pipeline error
            raise CameraUnavailable(f"cannot open the Pi camera: {exc}", device=self.name) from None
        self._camera = camera
        try:
            stream = camera.create_video_configuration(
                main={"size": (config.width, config.height), "format": "BGR888"},
                queue=False,
                buffer_count=2,
            )
            camera.configure(stream)
            camera.set_controls(controls_for(config, dict(camera.camera_controls)))
            camera.start()
        except (RuntimeError, ValueError, OSError) as exc:
            self._close()
            raise CameraUnavailable(
                f"cannot start the Pi camera: {exc}", device=self.name
            ) from None

    async def read(self) -> RawFrame:
        return await asyncio.to_thread(self._read)

    def _read(self) -> RawFrame:
        camera = self._camera
        if camera is None:
            raise CameraUnavailable("the Pi camera is closed", device=self.name)
        with self._busy:
            try:
                array = camera.capture_array("main")
            except (RuntimeError, OSError) as exc:  # libcamera lost the sensor
                raise CameraUnavailable(f"capture failed: {exc}", device=self.name) from None
            captured_at = time.monotonic()
        return RawFrame(self._checked(array), captured_at)

    def _checked(self, array: Any) -> np.ndarray:
        """The frame as H x W x 3 uint8; picamera2 pads rows to a multiple of 16 or 32
        pixels on some sensors, so trim to the configured width."""
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3:
            raise CameraFrameError("the Pi camera returned no 8-bit picture", device=self.name)
        if array.shape[2] == 4:  # XBGR8888 on some pipelines: drop the padding byte
            array = array[:, :, :3]
        if array.shape[2] != 3 or array.shape[1] < self.config.width:
            raise CameraFrameError(
                f"the Pi camera returned a {array.shape} array, not "
                f"{self.config.height}x{self.config.width}x3",
                device=self.name,
            )
        image = np.ascontiguousarray(array[:, : self.config.width])
        image.flags.writeable = False
        return image

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        # Wait for a capture in progress to end, but not for ever: stopping the camera under
        # a capture stuck in libcamera is what may free it.
        held = self._busy.acquire(timeout=self.config.capture_timeout_s / 2)
        try:
            for step in (camera.stop, camera.close):
                try:
                    step()
                except Exception as exc:  # closing must release what it can, whatever fails
                    log.debug("picamera2 %s: %s", step.__name__, exc)
        finally:
            if held:
                self._busy.release()
