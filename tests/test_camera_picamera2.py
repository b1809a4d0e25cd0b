"""The Pi camera backend against a stand-in for ``picamera2.Picamera2``.

libcamera cannot run off a Raspberry Pi, so this is the one place the house rules allow a
stand-in: :class:`FakePicamera2` has the methods and attribute the backend uses
(``create_video_configuration``, ``configure``, ``camera_controls``, ``set_controls``,
``start``, ``capture_array``, ``stop``, ``close``) and behaves as picamera2 does on the
failures that matter: no camera (the constructor raises), a camera in use, a sensor that stops
streaming (``capture_array`` blocks), a lost camera (``capture_array`` raises). Everything
above it (:class:`ManagedCamera`: timeouts, reopening, health) is the real code. The one path
tested without a stand-in: picamera2 not installed, as on this machine.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge.devices.camera import (
    CameraFrameError,
    CameraStatus,
    CameraUnavailable,
    ManagedCamera,
    open_camera,
)
from edge.devices.camera_config import CameraConfig
from edge.devices.camera_picamera2 import (
    AF_MODE_CONTINUOUS,
    AF_MODE_MANUAL,
    Picamera2Source,
    controls_for,
)

MODULE3_CONTROLS = {  # a Camera Module 3: autofocus
    name: (0, 1, 0)
    for name in (
        "AeEnable",
        "ExposureTime",
        "AnalogueGain",
        "AfMode",
        "LensPosition",
        "FrameDurationLimits",
    )
}
V2_CONTROLS = {k: v for k, v in MODULE3_CONTROLS.items() if k not in ("AfMode", "LensPosition")}


class Sensor:
    """What the stand-in cameras share: is a camera there, is one open, how it misbehaves."""

    def __init__(self) -> None:
        self.present = True
        self.in_use = False
        self.hang = threading.Event()  # set: capture_array blocks until cleared by stop()
        self.lost = False
        self.bad_frames = 0
        self.instances: list[FakePicamera2] = []
        self.controls = dict(MODULE3_CONTROLS)


class FakePicamera2:
    sensor: Sensor  # set per test by make_class

    def __init__(self) -> None:
        if not self.sensor.present:
            raise IndexError("list index out of range")  # picamera2 with no camera attached
        if self.sensor.in_use:
            raise RuntimeError("Failed to acquire camera: Device or resource busy")
        self.sensor.in_use = True
        self.sensor.instances.append(self)
        self.camera_controls = self.sensor.controls
        self.calls: list[tuple] = []
        self.config: dict | None = None
        self.running = False
        self.released = threading.Event()

    def create_video_configuration(self, main, queue=True, buffer_count=6, **rest):
        self.calls.append(("create_video_configuration", main, queue, buffer_count))
        return {"main": dict(main), "queue": queue}

    def configure(self, config):
        self.calls.append(("configure", config))
        self.config = config

    def set_controls(self, controls):
        unknown = set(controls) - set(self.camera_controls)
        if unknown:  # as libcamera: one unadvertised control fails the whole call
            raise RuntimeError(f"Control {sorted(unknown)[0]} is not advertised by libcamera")
        self.calls.append(("set_controls", dict(controls)))

    def start(self):
        self.running = True

    def capture_array(self, name="main"):
        assert self.running and name == "main"
        while self.sensor.hang.is_set():  # a sensor that stopped streaming
            if self.released.wait(0.01):
                raise RuntimeError("Camera stopped")
        if self.sensor.lost:
            raise RuntimeError("Camera frontend has timed out!")
        width, height = self.config["main"]["size"]
        if self.sensor.bad_frames:
            self.sensor.bad_frames -= 1
            return np.zeros((height, width), np.float32)  # not an 8-bit picture
        time.sleep(0.005)
        # picamera2 pads rows (here to a multiple of 32 pixels); the frame is RGB-ordered
        padded = (width + 31) // 32 * 32
        frame = np.zeros((height, padded, 3), np.uint8)
        frame[:, :, 0] = 200  # red
        frame[:, width:] = 7  # the padding
        return frame

    def stop(self):
        self.running = False
        self.released.set()

    def close(self):
        self.sensor.in_use = False


@pytest.fixture
def sensor() -> Sensor:
    return Sensor()


def camera_for(sensor: Sensor, **settings) -> ManagedCamera:
    config = CameraConfig.from_dict(
        {
            "backend": "picamera2",
            "width": 100,
            "height": 40,
            "capture_timeout_s": 0.3,
            "probe_interval_s": 0.1,
            "reconnect_initial_s": 0.02,
            "reconnect_max_s": 0.1,
            **settings,
        }
    )
    fake = type("Picamera2", (FakePicamera2,), {"sensor": sensor})
    return ManagedCamera(config, lambda: Picamera2Source(config, camera_class=fake))


@pytest.mark.asyncio
async def test_the_stream_is_configured_and_frames_come_as_rgb(sensor):
    async with camera_for(sensor, exposure=8000, gain=2.0, focus=1.5, fps=20) as camera:
        frame = await camera.capture()
        assert frame.image.shape == (40, 100, 3)  # the row padding trimmed
        assert frame.image[..., 0].min() == 200 and frame.image[..., 1:].max() == 0
        calls = sensor.instances[0].calls
    assert calls[0] == (
        "create_video_configuration",
        {"size": (100, 40), "format": "BGR888"},
        False,
        2,
    )
    assert calls[2] == (
        "set_controls",
        {
            "FrameDurationLimits": (50000, 50000),
            "AeEnable": False,
            "ExposureTime": 8000,
            "AnalogueGain": 2.0,
            "AfMode": AF_MODE_MANUAL,
            "LensPosition": 1.5,
        },
    )
    assert not sensor.in_use  # closed on leaving the block


def test_controls_a_camera_does_not_have_are_left_out():
    config = CameraConfig.from_dict({"backend": "picamera2"})
    assert controls_for(config, MODULE3_CONTROLS)["AfMode"] == AF_MODE_CONTINUOUS
    assert controls_for(config, MODULE3_CONTROLS)["AeEnable"] is True
    assert "AfMode" not in controls_for(config, V2_CONTROLS)  # a v2 module: fixed focus


@pytest.mark.asyncio
async def test_a_fixed_focus_camera_opens_with_the_controls_it_has(sensor):
    sensor.controls = dict(V2_CONTROLS)
    async with camera_for(sensor, focus=2.0) as camera:
        await camera.capture()
    assert camera.state.frames >= 1


@pytest.mark.asyncio
async def test_no_camera_at_start_is_down_until_one_is_connected(sensor):
    sensor.present = False
    async with camera_for(sensor) as camera:
        state = await camera.wait_state(lambda s: "cannot open" in s.detail, timeout=5)
        assert state.status is CameraStatus.DOWN and "list index out of range" in state.detail
        sensor.present = True
        await camera.wait_state(lambda s: s.status is CameraStatus.READY, timeout=5)


@pytest.mark.asyncio
async def test_a_lost_camera_goes_down_and_is_reopened(sensor):
    async with camera_for(sensor) as camera:
        await camera.capture()
        sensor.lost = True
        with pytest.raises(CameraUnavailable, match="timed out"):
            await camera.capture()
        assert camera.state.status is CameraStatus.DOWN
        assert not sensor.in_use  # the broken camera was released
        sensor.lost = False
        state = await camera.wait_state(lambda s: s.status is CameraStatus.READY, timeout=5)
        assert state.reopens >= 1 and len(sensor.instances) >= 2


@pytest.mark.asyncio
async def test_a_stuck_sensor_times_out_and_the_camera_is_stopped_and_reopened(sensor):
    async with camera_for(sensor, probe_interval_s=10) as camera:
        await camera.capture()
        sensor.hang.set()
        started = time.monotonic()
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await camera.capture()
        assert time.monotonic() - started < 1.5  # two timeouts of 0.3 s, no hang
        first = sensor.instances[0]
        # the stuck capture was freed by stopping the camera, which was closed and reopened
        await camera.wait_state(lambda s: s.reopens >= 1, timeout=5)
        assert first.released.is_set() and not first.running
        sensor.hang.clear()
        await camera.wait_state(lambda s: s.status is CameraStatus.READY, timeout=5)
        assert len(sensor.instances) >= 2


@pytest.mark.asyncio
async def test_bad_frame_data_is_one_error_type_and_the_next_frame_recovers(sensor):
    async with camera_for(sensor, probe_interval_s=10) as camera:
        await camera.capture()
        sensor.bad_frames = 1
        with pytest.raises(CameraFrameError, match="no 8-bit picture"):
            await camera.capture()
        assert camera.state.status is CameraStatus.DEGRADED
        await camera.capture()
        assert camera.state.status is CameraStatus.READY


@pytest.mark.asyncio
async def test_without_picamera2_installed_the_camera_says_how_to_install_it():
    config = CameraConfig.from_dict(
        {"backend": "picamera2", "reconnect_initial_s": 1, "reconnect_max_s": 1}
    )
    async with open_camera(config) as camera:  # the real import, which fails here
        with pytest.raises(
            CameraUnavailable, match=r"picamera2 is not installed.*borderlane\[camera\]"
        ):
            await camera.capture()
        assert camera.state.status is CameraStatus.DOWN
