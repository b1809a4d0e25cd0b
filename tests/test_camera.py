"""The camera layer through the virtual camera: frames, freshness, timeouts, unplug, health.

The virtual camera (``edge.sim.camera``) is a real backend reading real image files; the
driver layer under test (:class:`ManagedCamera`) is the one a kiosk runs over picamera2 and
V4L2. Unplug is the folder renamed away, a stuck camera a ``.stuck`` file: what a test, the
demo or a technician can do from outside the process. Waits are on the camera's state with
timeouts: nothing sleeps and hopes.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.devices.camera import (
    CameraConfig,
    CameraConfigError,
    CameraFrameError,
    CameraStatus,
    CameraTimeout,
    CameraUnavailable,
    ManagedCamera,
    open_camera,
)
from edge.devices.camera_frames import RawFrame, decode_image, rotate
from edge.sim.camera import VirtualSource, set_dark, set_stuck


def colour_image(path: Path, rgb: tuple[int, int, int], size=(80, 60)) -> Path:
    Image.new("RGB", size, rgb).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three flat-colour PNGs, played in name order: red, green, blue."""
    folder = tmp_path / "camera"
    folder.mkdir()
    for name, rgb in (("a", (200, 0, 0)), ("b", (0, 200, 0)), ("c", (0, 0, 200))):
        colour_image(folder / f"{name}.png", rgb)
    return folder


def fast(source: Path, **overrides) -> CameraConfig:
    settings = {
        "backend": "virtual",
        "source": str(source),
        "fps": 50,
        "capture_timeout_s": 0.3,
        "probe_interval_s": 0.1,
        "reconnect_initial_s": 0.02,
        "reconnect_max_s": 0.1,
        **overrides,
    }
    return CameraConfig.from_dict(settings)


def status(camera: ManagedCamera, wanted: str):
    return camera.wait_state(lambda s: s.status == wanted, timeout=5)


def dominant(image: np.ndarray) -> int:
    return int(np.argmax(image.reshape(-1, 3).mean(axis=0)))


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"backend": "usb"}, "backend"),
        ({"backend": "v4l2", "device": "video0"}, "device"),
        ({"backend": "virtual"}, "source"),
        ({"backend": "v4l2", "rotation": 45}, "rotation"),
        ({"backend": "v4l2", "rotation": True}, "rotation"),
        ({"backend": "v4l2", "exposure": "bright"}, "exposure"),
        ({"backend": "v4l2", "exposure": 0}, "exposure"),
        ({"backend": "v4l2", "gain": -1}, "gain"),
        ({"backend": "v4l2", "focus": "near"}, "focus"),
        ({"backend": "v4l2", "width": True}, "width"),
        ({"backend": "v4l2", "fps": 0}, "fps"),
        ({"backend": "v4l2", "pixel_format": "h264"}, "pixel_format"),
        ({"backend": "v4l2", "capture_timeout_s": 0}, "capture_timeout_s"),
        ({"backend": "v4l2", "reconnect_initial_s": 5, "reconnect_max_s": 1}, "reconnect_max_s"),
        ({"backend": "v4l2", "exposure_us": 100}, "exposure_us"),
        ({"device": "/dev/video0"}, "backend"),
    ],
)
@pytest.mark.asyncio
async def test_every_bad_setting_is_named(settings, field):
    with pytest.raises(CameraConfigError) as caught:
        CameraConfig.from_dict(settings)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ") and "\n" not in str(caught.value)


@pytest.mark.asyncio
async def test_good_settings_and_their_defaults():
    config = CameraConfig.from_dict({"backend": "picamera2", "exposure": 8000, "focus": 2.5})
    assert (config.width, config.height, config.rotation, config.gain) == (1280, 720, 0, "auto")
    assert config.exposure == 8000 and config.focus == 2.5 and config.backend == "picamera2"


# -- frames -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_capture_is_an_upright_read_only_rgb_array_with_its_capture_time(folder):
    async with open_camera(fast(folder, rotation=90)) as camera:
        before = time.monotonic()
        frame = await camera.capture()
        assert frame.image.dtype == np.uint8 and frame.image.shape == (80, 60, 3)  # turned
        assert not frame.image.flags.writeable
        assert frame.image[0, 0].tolist() == [200, 0, 0]  # a.png: red, as RGB not BGR
        assert before - 0.05 <= frame.captured_at <= time.monotonic()
        assert frame.sequence == 1 and frame.source == f"virtual {folder}"
        assert "image" not in repr(frame)  # pixels are personal data: never in a log line
        assert camera.state.status is CameraStatus.READY


@pytest.mark.asyncio
async def test_a_folder_plays_in_name_order_at_the_frame_rate_and_loops(folder):
    async with open_camera(fast(folder, fps=20)) as camera:
        started = time.monotonic()
        seen = [dominant(frame.image) async for frame in camera.frames(0.5)]
        elapsed = time.monotonic() - started
    # the keeper's first probe may take one frame; the order is the names' order, looping
    assert 7 <= len(seen) <= 11, seen
    offset = seen[0]
    assert seen == [(offset + i) % 3 for i in range(len(seen))]
    assert 0.45 <= elapsed <= 0.7


@pytest.mark.asyncio
async def test_images_replaced_while_playing_show_from_the_next_frame(folder):
    async with open_camera(fast(folder.joinpath("a.png"))) as camera:
        assert dominant((await camera.capture()).image) == 0
        colour_image(folder / "b.png", (0, 0, 255), size=(40, 30))
        (folder / "b.png").replace(folder / "a.png")  # atomically, as a demo would
        frame = await camera.capture()
        assert dominant(frame.image) == 2 and frame.image.shape == (30, 40, 3)


@pytest.mark.asyncio
async def test_large_pictures_are_shrunk_to_fit_and_decoded_off_the_event_loop(tmp_path):
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8)  # 12 MP, slow to decode
    Image.fromarray(noise).save(tmp_path / "big.jpg", quality=95)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    config = fast(tmp_path / "big.jpg", width=640, height=480, capture_timeout_s=10, fps=5)
    async with open_camera(config) as camera:
        tick = asyncio.create_task(ticker())
        started = time.process_time()
        frame = await camera.capture()
        decode_cpu = time.process_time() - started
        tick.cancel()
    assert frame.image.shape == (480, 640, 3)
    # the loop kept ticking while the JPEG was decoded in a worker thread
    assert gaps and max(gaps) < 0.1, (max(gaps), decode_cpu)


@pytest.mark.asyncio
async def test_dark_frames_are_delivered_while_the_lamp_is_out(folder):
    async with open_camera(fast(folder / "a.png")) as camera:
        bright = (await camera.capture()).image.mean()
        set_dark(folder / "a.png")
        dark = (await camera.capture()).image.mean()
        set_dark(folder / "a.png", False)
        again = (await camera.capture()).image.mean()
    assert dark < bright / 10 and again == bright
    assert camera.state.status is not CameraStatus.READY  # closed now


# -- failures ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_camera_that_is_unplugged_goes_down_and_comes_back_when_replugged(folder):
    async with open_camera(fast(folder)) as camera:
        await camera.capture()
        away = folder.with_name("unplugged")
        folder.rename(away)
        with pytest.raises(CameraUnavailable) as caught:
            await camera.capture()
        assert "No such file" in str(caught.value)
        state = await status(camera, "down")
        assert not state.open and "No such file" in state.detail
        down_since = state.since
        away.rename(folder)
        state = await status(camera, "ready")  # reopened by the keeper, with no capture
        assert state.reopens >= 1 and state.since > down_since
        assert (await camera.capture()).image.shape == (60, 80, 3)


@pytest.mark.asyncio
async def test_a_camera_missing_at_start_is_retried_with_backoff_until_it_appears(tmp_path):
    opened: list[float] = []
    config = fast(tmp_path / "later", reconnect_initial_s=0.05, reconnect_max_s=0.2)

    def factory() -> VirtualSource:
        opened.append(time.monotonic())
        return VirtualSource(config)

    async with ManagedCamera(config, factory) as camera:
        await camera.wait_state(lambda s: "No such file" in s.detail, timeout=5)
        await asyncio.sleep(1.0)
        (tmp_path / "later").mkdir()
        colour_image(tmp_path / "later" / "x.png", (1, 2, 3))
        await status(camera, "ready")
    gaps = np.diff(opened[:-1])
    # doubling from 0.05 to 0.2, each drawn from [d/2, d]: no spinning, no lock-step
    assert 4 <= len(opened) <= 16, len(opened)
    assert gaps.min() >= 0.02 and gaps.max() <= 0.25, gaps


@pytest.mark.asyncio
async def test_a_stuck_camera_times_out_is_reopened_and_recovers(folder):
    config = fast(folder, capture_timeout_s=0.2, probe_interval_s=10)
    async with open_camera(config) as camera:
        await camera.capture()
        set_stuck(folder)
        started = time.monotonic()
        with pytest.raises(CameraTimeout, match=r"no fresh frame within 0\.2 s"):
            await camera.capture()
        assert 0.19 <= time.monotonic() - started < 0.5  # the timeout, not a hang
        assert camera.state.status is CameraStatus.DEGRADED and camera.state.open
        with pytest.raises(CameraTimeout):
            await camera.capture()
        state = camera.state  # two in a row: closed, to be opened afresh
        assert state.status is CameraStatus.DOWN and "2 in a row" in state.detail
        reopened = await camera.wait_state(lambda s: s.reopens >= 1, timeout=5)
        assert reopened.open
        set_stuck(folder, False)
        state = await status(camera, "ready")
        assert state.failures == 0 and "in a row" in (state.last_error or "")


@pytest.mark.asyncio
async def test_a_corrupt_frame_is_one_error_type_and_the_next_good_frame_recovers(folder):
    noise = np.random.default_rng(3).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "b.png")
    whole = (folder / "b.png").read_bytes()
    (folder / "b.png").write_bytes(whole[: len(whole) // 2])  # cut off mid-transfer
    async with open_camera(fast(folder, probe_interval_s=10)) as camera:
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append(dominant((await camera.capture()).image))
            except CameraFrameError as exc:
                outcomes.append(str(exc))
                assert camera.state.status is CameraStatus.DEGRADED
                assert "b.png" in camera.state.detail
        errors = [o for o in outcomes if isinstance(o, str)]
        assert len(errors) == 1 and "not a decodable picture" in errors[0]
        assert camera.state.status is CameraStatus.READY
        # a time budget skips the bad frame and goes on
        frames = [frame async for frame in camera.frames(0.3)]
        assert frames and all(f.image.shape == (60, 80, 3) for f in frames)


class StaleFirst:
    """A backend whose first two frames waited in a queue for a second (as V4L2 buffers do
    while nobody reads); the third is fresh."""

    name = "stale-first"

    def __init__(self) -> None:
        self.reads = 0

    async def open(self) -> None:
        pass

    async def read(self) -> RawFrame:
        self.reads += 1
        age = 1.0 if self.reads <= 2 else 0.0
        return RawFrame(np.full((4, 4, 3), self.reads, np.uint8), time.monotonic() - age)

    async def close(self) -> None:
        pass


@pytest.mark.asyncio
async def test_frames_older_than_max_age_are_skipped_never_returned(tmp_path):
    config = fast(tmp_path, max_age_ms=100, probe_interval_s=60)
    source = StaleFirst()
    async with ManagedCamera(config, lambda: source) as camera:
        frame = await camera.capture()
    assert frame.image[0, 0, 0] == 3 and camera.state.stale_skipped == 2


# -- decoding ---------------------------------------------------------------------------------


def test_pictures_that_are_not_pictures_are_one_error_type():
    png = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(png, "PNG")
    assert decode_image(png.getvalue()).shape == (10, 20, 3)
    bad = [
        b"",
        b"GIF89a" + b"\0" * 20,  # a picture, not one we take
        png.getvalue()[:45],  # truncated in its pixels
        b"\xff\xd8\xff\xe0" + b"\0" * 100,  # a JPEG header and nothing
    ]
    for data in bad:
        with pytest.raises(CameraFrameError):
            decode_image(data)


def test_a_picture_claiming_a_huge_size_is_refused_before_it_is_decoded():
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")  # 400 MP; a few kB on disk
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(CameraFrameError, match="refused: claims more than 40 MP"):
        decode_image(bomb.getvalue())


def test_rotation_is_clockwise():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = 255  # top left
    assert rotate(image, 90)[0, -1, 0] == 255  # -> top right
    assert rotate(image, 180)[-1, -1, 0] == 255
    assert rotate(image, 270)[-1, 0, 0] == 255
    assert rotate(image, 0) is image
