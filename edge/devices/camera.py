"""The kiosk's camera: one async interface over the Pi camera, a USB webcam or a virtual camera.

Hardware I/O only: it captures pictures and says how the camera is doing; it never judges a
face (``edge.face`` does) nor decides anything (the lane does)::

    camera = open_camera(CameraConfig.from_dict(table))     # backend from the configuration
    async with camera:                        # returns at once: the camera may be unplugged
        frame = await camera.capture()        # the next fresh frame: frame.image is RGB
        async for frame in camera.frames(3.0):    # or every frame for 3 s
            ...
        camera.state                          # ready / degraded / down, detail, since

Backends (each a :class:`~edge.devices.camera_frames.FrameSource`, I/O only):

- ``picamera2``: the Raspberry Pi camera through libcamera (:mod:`.camera_picamera2`);
- ``v4l2``: a USB webcam through Video4Linux2, MJPEG or YUYV (:mod:`.camera_v4l2`);
- ``virtual``: image files played as frames (:mod:`edge.sim.camera`).

:class:`ManagedCamera` gives all three the same behaviour, tested once:

- **never blocking the event loop**: V4L2 waits on its file descriptor in the loop; picamera2
  and the virtual camera decode in a worker thread;
- **fresh frames only**: a frame older than ``max_age_ms`` (one that waited in the driver's
  queue while nobody captured) is skipped;
- **a capture that hangs times out** after ``capture_timeout_s`` (:class:`CameraTimeout`); two
  in a row and the camera is closed and opened again, a stuck driver's usual cure;
- **unplug and replug**: a lost camera is reopened in the background, with a jittered,
  doubling wait (:class:`~edge.devices.backoff.Backoff`), for ever;
- **health**: while nobody captures, one frame every ``probe_interval_s`` checks the camera
  still delivers, so :attr:`ManagedCamera.state` is true when the console looks, not only
  when a traveller stands there.

State (:class:`CameraState`): ``ready`` (the last frame came), ``degraded`` (the last one or
two captures failed: a timeout, a corrupt frame), ``down`` (cannot be opened, or failing
three times in a row). ``detail`` says why; ``since`` when the status last changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

from .backoff import Backoff
from .camera_config import Backend, CameraConfig, CameraConfigError, PixelFormat
from .camera_frames import (
    CameraError,
    CameraFrameError,
    CameraTimeout,
    CameraUnavailable,
    Frame,
    FrameSource,
    RawFrame,
    describe_os_error,
    rotate,
)
from .state_waiters import StateWaiters

__all__ = [
    "Backend",
    "Camera",
    "CameraConfig",
    "CameraConfigError",
    "CameraError",
    "CameraFrameError",
    "CameraState",
    "CameraStatus",
    "CameraTimeout",
    "CameraUnavailable",
    "Frame",
    "FrameSource",
    "ManagedCamera",
    "PixelFormat",
    "open_camera",
    "source_factory",
]

log = logging.getLogger(__name__)

RESET_AFTER_TIMEOUTS = 2
"""Consecutive timeouts after which the camera is closed and opened again."""
DOWN_AFTER_FAILURES = 3
"""Consecutive failed captures after which an open camera counts as ``down``."""


class CameraStatus(enum.StrEnum):
    READY = "ready"
    """Open, and the last capture (or probe) brought a fresh frame."""
    DEGRADED = "degraded"
    """Open, but the last capture failed (timed out, a corrupt frame); or not yet proven."""
    DOWN = "down"
    """Not open (unplugged, busy, not a camera), or failing capture after capture."""


@dataclass(frozen=True)
class CameraState:
    """A snapshot for the health report. Replaced, never mutated: safe to keep and compare."""

    status: CameraStatus
    since: datetime
    """When ``status`` last changed (UTC)."""
    detail: str = ""
    source: str = ""
    open: bool = False
    frames: int = 0
    """Frames returned (captures and probes) since the camera object was made."""
    failures: int = 0
    """Failed captures in a row (0 once a frame comes)."""
    stale_skipped: int = 0
    """Frames dropped for being older than ``max_age_ms``."""
    reopens: int = 0
    """Times the camera was opened again after the first time."""
    last_error: str | None = None
    """The most recent error, kept after recovery so a flapping camera shows why it flaps."""
    last_frame_utc: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["status"] = self.status.value
        for key in ("since", "last_frame_utc"):
            if values[key] is not None:
                values[key] = values[key].isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return values


class Camera(Protocol):
    """What the lane uses: ``async with camera: frame = await camera.capture()``."""

    async def __aenter__(self) -> Camera: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def capture(self) -> Frame:
        """The next fresh frame; :class:`CameraError` (unavailable, timeout, bad frame)."""
        ...

    def frames(self, seconds: float) -> AsyncIterator[Frame]:
        """Fresh frames, one after another, for *seconds*."""
        ...

    @property
    def state(self) -> CameraState: ...


class ManagedCamera(StateWaiters[CameraState]):
    """A camera that survives its backend: timeouts, stale frames, reopening, health.

    *factory* makes a new, unopened backend each time the camera is (re)opened: a backend
    whose read was abandoned (a thread stuck in a driver call) is never reused.
    """

    def __init__(
        self,
        config: CameraConfig,
        factory: Callable[[], FrameSource],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._factory = factory
        self._backoff = Backoff(
            config.reconnect_initial_s, config.reconnect_max_s, rng or random.Random()
        )
        self._source: FrameSource | None = None
        self._name = ""
        self._lock = asyncio.Lock()
        self._keeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._opened_before = False
        self._sequence = 0
        self._last_frame_at = 0.0
        self._retry_at = 0.0
        self._waiters = []
        self._state = CameraState(CameraStatus.DOWN, datetime.now(UTC), "opening")

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> ManagedCamera:
        if self._keeper is not None:
            raise RuntimeError("this camera is already open (cameras are not reusable)")
        self._keeper = asyncio.create_task(self._keep(), name="camera-keeper")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the background keeper and close the camera. Safe to call twice."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        await self._drop("closed")

    # -- capturing ----------------------------------------------------------------------------

    @property
    def state(self) -> CameraState:
        return self._state

    async def capture(self) -> Frame:
        """The next frame no older than ``max_age_ms``, upright, as RGB.

        Opens the camera first if it is closed (a traveller is waiting: no backoff then).
        Raises :class:`CameraUnavailable`, :class:`CameraTimeout` or :class:`CameraFrameError`;
        the state says the same for the health report.
        """
        async with self._lock:
            return await self._capture()

    async def frames(self, seconds: float) -> AsyncIterator[Frame]:
        """Every fresh frame for *seconds* (the face check's time budget), then stop.

        A corrupt frame is skipped (the next one may be fine); a camera that is lost or stuck
        ends the iteration with its :class:`CameraError`. A capture still waiting when the
        budget runs out is abandoned quietly.
        """
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    frame = await self.capture()
            except TimeoutError as exc:
                if isinstance(exc, CameraTimeout):
                    raise
                return  # the budget ran out while waiting
            except CameraFrameError:
                continue
            yield frame

    # -- internals ----------------------------------------------------------------------------

    async def _capture(self) -> Frame:
        config = self.config
        if self._source is None:
            await self._open()
        source = self._source
        assert source is not None
        deadline = time.monotonic() + config.capture_timeout_s
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    raw = await source.read()
                if self._fresh(raw):
                    return self._success(raw)
        except TimeoutError:
            error: CameraError = CameraTimeout(
                f"no fresh frame within {config.capture_timeout_s:g} s", device=self._name
            )
        except CameraError as exc:
            error = exc
        except OSError as exc:  # a backend's unexpected OSError is still a lost camera
            error = CameraUnavailable(describe_os_error(exc), device=self._name)
        await self._failure(error)
        raise error

    def _fresh(self, raw: RawFrame) -> bool:
        age_ms = (time.monotonic() - raw.captured_at) * 1000
        if age_ms <= self.config.max_age_ms:
            return True
        self._update(stale_skipped=self._state.stale_skipped + 1)
        return False

    def _success(self, raw: RawFrame) -> Frame:
        self._sequence += 1
        self._last_frame_at = time.monotonic()
        now = datetime.now(UTC)
        captured_utc = datetime.fromtimestamp(
            time.time() - (time.monotonic() - raw.captured_at), UTC
        )
        self._backoff.reset()
        self._update(
            status=CameraStatus.READY,
            detail="",
            failures=0,
            frames=self._state.frames + 1,
            last_frame_utc=now,
        )
        return Frame(
            image=rotate(raw.image, self.config.rotation),
            captured_at=raw.captured_at,
            captured_utc=captured_utc,
            sequence=self._sequence,
            source=self._name,
        )

    async def _failure(self, error: CameraError) -> None:
        failures = self._state.failures + 1
        reason = str(error)
        if isinstance(error, CameraUnavailable):
            await self._drop(reason)
            return
        if isinstance(error, CameraTimeout) and failures >= RESET_AFTER_TIMEOUTS:
            log.warning("camera %s: %s, %d in a row; reopening it", self._name, reason, failures)
            await self._drop(f"{reason} ({failures} in a row)")
            self._update(failures=failures)
            return
        log.warning("camera %s: %s", self._name, reason)
        status = CameraStatus.DOWN if failures >= DOWN_AFTER_FAILURES else CameraStatus.DEGRADED
        detail = reason if failures == 1 else f"{reason} ({failures} in a row)"
        self._update(status=status, detail=detail, failures=failures, last_error=reason)

    async def _open(self) -> None:
        source = self._factory()
        self._name = source.name
        try:
            await source.open()
        except CameraError as exc:
            await _close_quietly(source, self.config.capture_timeout_s)
            self._lost(str(exc))
            raise CameraUnavailable(str(exc), device=source.name) from None
        except OSError as exc:
            await _close_quietly(source, self.config.capture_timeout_s)
            self._lost(describe_os_error(exc))
            raise CameraUnavailable(describe_os_error(exc), device=source.name) from None
        self._source = source
        reopens = self._state.reopens + (1 if self._opened_before else 0)
        self._opened_before = True
        log.info("camera %s opened", source.name)
        # Open is not proof: the first frame makes it ready (a stuck camera opens fine).
        failing = self._state.failures >= DOWN_AFTER_FAILURES
        last = self._state.last_error
        self._update(
            status=CameraStatus.DOWN if failing else CameraStatus.DEGRADED,
            detail=f"reopened after: {last}; no frame yet" if last else "opened; no frame yet",
            open=True,
            source=source.name,
            reopens=reopens,
        )

    async def _drop(self, reason: str) -> None:
        source, self._source = self._source, None
        if source is not None:
            await _close_quietly(source, self.config.capture_timeout_s)
            log.info("camera %s closed: %s", source.name, reason)
        if reason != "closed":
            self._lost(reason)
        else:
            self._update(status=CameraStatus.DOWN, detail="closed", open=False)

    def _lost(self, reason: str) -> None:
        # An absent camera is retried for ever: say the first failure loudly, repeats quietly.
        level = logging.DEBUG if reason == self._state.last_error else logging.WARNING
        log.log(level, "camera %s down: %s", self._name, reason)
        self._update(
            status=CameraStatus.DOWN,
            detail=reason,
            open=False,
            failures=self._state.failures + 1,
            last_error=reason,
        )
        self._retry_at = time.monotonic() + self._backoff.next_delay()
        self._wake.set()

    async def _keep(self) -> None:
        """Open the camera, reopen it when lost (after the backoff), probe it when idle."""
        while True:
            if self._source is None:
                wait = self._retry_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._probe()  # opens it (unless a capture did meanwhile)
                continue
            idle = time.monotonic() - self._last_frame_at
            wait = self.config.probe_interval_s - idle
            if self._state.status is not CameraStatus.READY:
                wait = min(wait, self._backoff_wait())
            if wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            await self._probe()

    def _backoff_wait(self) -> float:
        return max(self._retry_at - time.monotonic(), self.config.reconnect_initial_s)

    async def _probe(self) -> None:
        async with self._lock:
            idle = time.monotonic() - self._last_frame_at
            if self._state.status is CameraStatus.READY and idle < self.config.probe_interval_s:
                return  # a capture proved it while we waited for the lock
            with contextlib.suppress(CameraError):
                await self._capture()


async def _close_quietly(source: FrameSource, timeout: float) -> None:
    """Close *source*, giving up after *timeout*: a driver stuck in a call may never return."""
    try:
        async with asyncio.timeout(timeout):
            await source.close()
    except TimeoutError:
        log.warning("camera %s did not close within %g s; abandoned", source.name, timeout)
    except Exception:  # close never raises by contract; a backend bug must not stop the kiosk
        log.exception("camera %s failed to close", source.name)


def source_factory(config: CameraConfig) -> Callable[[], FrameSource]:
    """Makes backend objects for *config*; each backend's module is imported only when used
    (picamera2 exists only on a Pi; the virtual camera only where tests or demos run)."""
    if config.backend is Backend.V4L2:
        from .camera_v4l2 import V4l2Source

        return lambda: V4l2Source(config)
    if config.backend is Backend.PICAMERA2:
        from .camera_picamera2 import Picamera2Source

        return lambda: Picamera2Source(config)
    from edge.sim.camera import VirtualSource

    return lambda: VirtualSource(config)


def open_camera(config: CameraConfig, *, rng: random.Random | None = None) -> ManagedCamera:
    """The camera *config* describes, ready for ``async with``."""
    return ManagedCamera(config, source_factory(config), rng=rng)
