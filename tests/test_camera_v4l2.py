"""The V4L2 (USB webcam) backend: its ABI against the kernel's header, its decoders, its errors.

What cannot run here: this machine's kernel has no video4linux support (no /dev/video*, no
major 81 driver, no loadable modules, so no v4l2loopback), so streaming from a real device
(S_FMT, REQBUFS, mmap, DQBUF) is not exercised. What is:

- the structure layouts and ioctl numbers, compared with ``<linux/videodev2.h>`` compiled by
  the C compiler (``build-essential`` is a system package of the project);
- the decoders on real MJPEG and YUYV bytes, good, corrupt and short;
- every way opening fails before streaming, on real device nodes: a missing /dev/videoN, a
  regular file, a character device that is no camera (/dev/null's numbers, a pty), and a
  video node (major 81) with no driver behind it, as after an unplug; then the node removed.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import textwrap

import numpy as np
import pytest
from PIL import Image

from edge.devices.camera import CameraFrameError, CameraStatus, CameraUnavailable, open_camera
from edge.devices.camera_config import CameraConfig, PixelFormat
from edge.devices.camera_v4l2 import IOCTLS, V4l2Source, decode_frame, fourcc

HEADER_PROGRAM = textwrap.dedent(
    """
    #include <stdio.h>
    #include <linux/videodev2.h>
    #define SHOW(name) printf(#name " %lu\\n", (unsigned long)name)
    int main(void) {
        SHOW(VIDIOC_QUERYCAP); SHOW(VIDIOC_S_FMT); SHOW(VIDIOC_REQBUFS);
        SHOW(VIDIOC_QUERYBUF); SHOW(VIDIOC_QBUF); SHOW(VIDIOC_DQBUF);
        SHOW(VIDIOC_STREAMON); SHOW(VIDIOC_STREAMOFF); SHOW(VIDIOC_S_PARM);
        SHOW(VIDIOC_S_CTRL);
        printf("MJPG %lu\\nYUYV %lu\\n", (unsigned long)V4L2_PIX_FMT_MJPEG,
               (unsigned long)V4L2_PIX_FMT_YUYV);
        return 0;
    }
    """
)


def test_the_ioctl_numbers_match_the_kernels_header(tmp_path):
    # Each number encodes its structure's size: equal numbers mean equal layouts.
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler is needed (scripts/system-packages.sh: build-essential)"
    source = tmp_path / "v4l2.c"
    source.write_text(HEADER_PROGRAM)
    subprocess.run([compiler, str(source), "-o", str(tmp_path / "v4l2")], check=True)
    output = subprocess.run([str(tmp_path / "v4l2")], capture_output=True, text=True, check=True)
    kernel = {
        name: int(value) for name, value in (line.split() for line in output.stdout.splitlines())
    }
    assert {name: kernel[name] for name in IOCTLS} == IOCTLS
    assert (fourcc("MJPG"), fourcc("YUYV")) == (kernel["MJPG"], kernel["YUYV"])


# -- decoding ---------------------------------------------------------------------------------


def jpeg(image: np.ndarray, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=95, **options)
    return out.getvalue()


def without_huffman_tables(data: bytes) -> bytes:
    """The JPEG as many UVC webcams send MJPEG: no DHT segment (the decoder must supply the
    standard tables)."""
    out, at = bytearray(data[:2]), 2
    while data[at + 1] != 0xDA:  # up to start of scan
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if data[at + 1] != 0xC4:
            out += data[at : at + 2 + length]
        at += 2 + length
    return bytes(out + data[at:])


_X, _Y = np.meshgrid(np.arange(64) * 4, np.arange(48) * 5)
GRADIENT = np.dstack([_X, _Y, np.full((48, 64), 90)]).astype(np.uint8)


@pytest.mark.parametrize("strip", [False, True], ids=["with-tables", "webcam-mjpeg"])
def test_mjpeg_frames_decode_to_rgb(strip):
    data = jpeg(GRADIENT)
    if strip:
        data = without_huffman_tables(data)
        assert b"\xff\xc4" not in data[: data.index(b"\xff\xda")]
    image = decode_frame(data, PixelFormat.MJPEG, 64, 48, 128, "v4l2 /dev/video0")
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - GRADIENT).mean() < 3  # JPEG is lossy, not wrong


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\0" * 4096,  # a buffer the webcam never filled
        jpeg(GRADIENT)[:300],  # cut short: USB bandwidth ran out mid-frame
        b"\xff\xd8" + os.urandom(2000),  # starts like a JPEG, is noise
    ],
    ids=["empty", "zeros", "truncated", "noise"],
)
def test_a_broken_mjpeg_frame_is_a_frame_error(data):
    with pytest.raises(CameraFrameError) as caught:
        decode_frame(data, PixelFormat.MJPEG, 64, 48, 128, "v4l2 /dev/video0")
    assert caught.value.device == "v4l2 /dev/video0"


def yuyv(pixels: list[tuple[int, int, int, int]], padding: int = 0) -> bytes:
    """One row of Y0 U Y1 V groups, padded as a driver may pad each row."""
    return bytes(b for group in pixels for b in group) + b"\0" * padding


def test_yuyv_frames_decode_to_bt601_rgb_with_row_padding():
    # white, black, red, (Y0 U Y1 V): two pixels per group; two rows, 4 bytes of padding each
    row = yuyv([(235, 128, 235, 128), (16, 128, 16, 128), (81, 90, 81, 240)], padding=4)
    image = decode_frame(row + row, PixelFormat.YUYV, 6, 2, 16, "cam")
    assert image.shape == (2, 6, 3)
    assert image[0, 0].tolist() == [255, 255, 255] and image[1, 1].tolist() == [255, 255, 255]
    assert image[0, 2].tolist() == [0, 0, 0]
    red = image[0, 4].astype(int)
    assert red[0] >= 250 and red[1] <= 3 and red[2] <= 3


def test_yuyv_decodes_what_a_bt601_encoder_made_within_rounding():
    # pixel pairs of one colour: 4:2:2 loses nothing on them, so any error is the decoder's
    pairs = np.random.default_rng(5).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    rgb = np.repeat(pairs, 2, axis=1)
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    packed = np.stack([y[:, 0::2], u[:, 0::2], y[:, 1::2], v[:, 0::2]], axis=-1)
    data = np.round(packed).astype(np.uint8).tobytes()
    image = decode_frame(data, PixelFormat.YUYV, 16, 8, 32, "cam")
    assert np.abs(image.astype(int) - rgb).max() <= 3


@pytest.mark.parametrize(
    "data, width, stride, words",
    [
        (b"\x10\x80" * 10, 6, 12, "short YUYV frame"),
        (b"\x10\x80" * 100, 5, 10, "even width"),
    ],
)
def test_a_short_or_odd_yuyv_frame_is_a_frame_error(data, width, stride, words):
    with pytest.raises(CameraFrameError, match=words):
        decode_frame(data, PixelFormat.YUYV, width, 4, stride, "cam")


# -- opening, on real device nodes ------------------------------------------------------------


def config(device: str) -> CameraConfig:
    return CameraConfig.from_dict(
        {
            "backend": "v4l2",
            "device": device,
            "capture_timeout_s": 0.2,
            "reconnect_initial_s": 0.02,
            "reconnect_max_s": 0.05,
        }
    )


@pytest.fixture
def dev(tmp_path):
    """Where the test's device nodes go (a kiosk's are under /dev; any absolute path works)."""
    return tmp_path


async def opening_error(device: str) -> str:
    source = V4l2Source(config(device))
    with pytest.raises(CameraUnavailable) as caught:
        await source.open()
    await source.close()  # closing a source that never opened is harmless
    assert source._fd == -1  # nothing left open
    assert caught.value.device == f"v4l2 {device}"
    return str(caught.value)


@pytest.mark.asyncio
async def test_a_missing_device_node_is_unavailable(dev):
    assert "ENOENT" in await opening_error(str(dev / "video7"))


@pytest.mark.asyncio
async def test_a_regular_file_or_a_char_device_that_is_no_camera_is_not_a_v4l2_device(dev):
    (dev / "video0").write_bytes(b"\0" * 1024)
    assert await opening_error(str(dev / "video0")) == f"{dev}/video0 is not a V4L2 device"
    os.mknod(dev / "video1", 0o600 | 0o020000, os.makedev(1, 3))  # /dev/null's numbers
    assert await opening_error(str(dev / "video1")) == f"{dev}/video1 is not a V4L2 device"
    primary, secondary = os.openpty()
    try:
        assert "is not a V4L2 device" in await opening_error(os.ttyname(secondary))
    finally:
        os.close(primary)
        os.close(secondary)


@pytest.mark.asyncio
async def test_an_unplugged_camera_goes_down_and_its_node_vanishing_is_seen(dev):
    node = dev / "video0"
    os.mknod(node, 0o600 | 0o020000, os.makedev(81, 0))  # video4linux, no driver behind it
    async with open_camera(config(str(node))) as camera:
        state = await camera.wait_state(lambda s: "unplugged?" in s.detail, timeout=5)
        assert state.status is CameraStatus.DOWN and not state.open
        with pytest.raises(CameraUnavailable, match="no device behind it"):
            await camera.capture()
        node.unlink()  # udev removes the node once the device is gone
        state = await camera.wait_state(lambda s: "ENOENT" in s.detail, timeout=5)
        assert state.status is CameraStatus.DOWN and state.failures >= 2
