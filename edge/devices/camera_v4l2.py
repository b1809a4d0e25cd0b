"""The USB webcam backend: Video4Linux2 through its ioctls, in ~200 lines and no dependency.

Why no library: the candidates were ``linuxpy`` (pure Python, and ``v4l2py``, its former
name), ``v4l2-python3`` (ctypes definitions only) and ``opencv-python-headless``. The first two
are GPL (3.0-or-later, 2.0): linking them into the kiosk image would put the whole image under
the GPL, and Borderlane is Apache-2.0. OpenCV is Apache-2.0 but a 40-60 MB wheel (with its own
FFmpeg) for what is, here, eight ioctls and an mmap; its ``read()`` also blocks with no
timeout. What a kiosk needs from V4L2 is small and stable (the ABI has not changed since
Linux 3.x): open, ``VIDIOC_QUERYCAP``, ``S_FMT``, ``S_PARM``, ``S_CTRL``, ``REQBUFS``,
``QUERYBUF`` + mmap, ``QBUF``/``DQBUF``, ``STREAMON``/``OFF``. The structures below are
checked against the kernel's own ``<linux/videodev2.h>`` by ``tests/test_camera_v4l2.py``
(compiled with the C compiler the build already needs): the ioctl numbers encode each
structure's size, so a wrong layout cannot go unnoticed.

I/O design, like the serial MRZ reader: the device is opened non-blocking and its file
descriptor is watched by the event loop (``loop.add_reader``); a frame is dequeued when the
kernel says one is done. No thread waits in the driver, so a capture timeout or a cancellation
is immediate and clean, and an idle kiosk sleeps in epoll. Unplugging shows as the descriptor
turning readable with an error: ``DQBUF`` then fails with ``ENODEV``.

Freshness: the driver fills up to four buffers while nobody reads; a read drains every done
buffer, gives the rest back at once and keeps the newest, and its kernel timestamp
(``CLOCK_MONOTONIC``, as ``time.monotonic``) says how old it is.

Decoding (MJPEG with Pillow, YUYV with numpy) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import logging
import mmap
import os
import time
from dataclasses import dataclass

import numpy as np

from .camera_config import CameraConfig, PixelFormat
from .camera_frames import (
    CameraFrameError,
    CameraUnavailable,
    RawFrame,
    decode_image,
    describe_os_error,
    yuyv_to_rgb,
)

__all__ = ["IOCTLS", "V4l2Source", "decode_frame", "fourcc"]

log = logging.getLogger(__name__)

# --- the kernel's structures (linux/videodev2.h) ---------------------------------------------

u8, u32, s32 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_int32


class Capability(ctypes.Structure):
    _fields_ = [
        ("driver", u8 * 16),
        ("card", u8 * 32),
        ("bus_info", u8 * 32),
        ("version", u32),
        ("capabilities", u32),
        ("device_caps", u32),
        ("reserved", u32 * 3),
    ]


class PixFormat(ctypes.Structure):
    _fields_ = [
        ("width", u32),
        ("height", u32),
        ("pixelformat", u32),
        ("field", u32),
        ("bytesperline", u32),
        ("sizeimage", u32),
        ("colorspace", u32),
        ("priv", u32),
        ("flags", u32),
        ("ycbcr_enc", u32),
        ("quantization", u32),
        ("xfer_func", u32),
    ]


class _FormatUnion(ctypes.Union):
    # raw_data is 200 bytes; v4l2_window holds pointers, so the union is pointer-aligned
    _fields_ = [("pix", PixFormat), ("raw_data", u8 * 200), ("_align", ctypes.c_void_p)]


class Format(ctypes.Structure):
    _fields_ = [("type", u32), ("fmt", _FormatUnion)]


class Fract(ctypes.Structure):
    _fields_ = [("numerator", u32), ("denominator", u32)]


class CaptureParm(ctypes.Structure):
    _fields_ = [
        ("capability", u32),
        ("capturemode", u32),
        ("timeperframe", Fract),
        ("extendedmode", u32),
        ("readbuffers", u32),
        ("reserved", u32 * 4),
    ]


class _ParmUnion(ctypes.Union):
    _fields_ = [("capture", CaptureParm), ("raw_data", u8 * 200)]


class StreamParm(ctypes.Structure):
    _fields_ = [("type", u32), ("parm", _ParmUnion)]


class Control(ctypes.Structure):
    _fields_ = [("id", u32), ("value", s32)]


class RequestBuffers(ctypes.Structure):
    _fields_ = [
        ("count", u32),
        ("type", u32),
        ("memory", u32),
        ("capabilities", u32),
        ("flags", u8),
        ("reserved", u8 * 3),
    ]


class Timeval(ctypes.Structure):
    # the C library's struct timeval: long, long. On 32-bit ARM the kernel accepts this
    # layout and the 64-bit time_t one alike (the ioctl number tells them apart by size).
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timecode(ctypes.Structure):
    _fields_ = [
        ("type", u32),
        ("flags", u32),
        ("frames", u8),
        ("seconds", u8),
        ("minutes", u8),
        ("hours", u8),
        ("userbits", u8 * 4),
    ]


class _BufferM(ctypes.Union):
    _fields_ = [("offset", u32), ("userptr", ctypes.c_ulong), ("planes", ctypes.c_void_p)]


class Buffer(ctypes.Structure):
    _fields_ = [
        ("index", u32),
        ("type", u32),
        ("bytesused", u32),
        ("flags", u32),
        ("field", u32),
        ("timestamp", Timeval),
        ("timecode", Timecode),
        ("sequence", u32),
        ("memory", u32),
        ("m", _BufferM),
        ("length", u32),
        ("reserved2", u32),
        ("request_fd", s32),
    ]


def _ioc(direction: int, number: int, size: int) -> int:
    # asm-generic/ioctl.h (x86, ARM, arm64): dir << 30 | size << 16 | type << 8 | nr
    return direction << 30 | size << 16 | ord("V") << 8 | number


_R, _W, _RW = 2, 1, 3
IOCTLS = {
    "VIDIOC_QUERYCAP": _ioc(_R, 0, ctypes.sizeof(Capability)),
    "VIDIOC_S_FMT": _ioc(_RW, 5, ctypes.sizeof(Format)),
    "VIDIOC_REQBUFS": _ioc(_RW, 8, ctypes.sizeof(RequestBuffers)),
    "VIDIOC_QUERYBUF": _ioc(_RW, 9, ctypes.sizeof(Buffer)),
    "VIDIOC_QBUF": _ioc(_RW, 15, ctypes.sizeof(Buffer)),
    "VIDIOC_DQBUF": _ioc(_RW, 17, ctypes.sizeof(Buffer)),
    "VIDIOC_STREAMON": _ioc(_W, 18, ctypes.sizeof(ctypes.c_int)),
    "VIDIOC_STREAMOFF": _ioc(_W, 19, ctypes.sizeof(ctypes.c_int)),
    "VIDIOC_S_PARM": _ioc(_RW, 22, ctypes.sizeof(StreamParm)),
    "VIDIOC_S_CTRL": _ioc(_RW, 28, ctypes.sizeof(Control)),
}
"""The ioctl request numbers, computed from the structures above."""

BUF_TYPE_VIDEO_CAPTURE = 1
MEMORY_MMAP = 1
FIELD_NONE = 1
CAP_VIDEO_CAPTURE = 0x00000001
CAP_STREAMING = 0x04000000
CAP_DEVICE_CAPS = 0x80000000
BUF_FLAG_ERROR = 0x00000040
BUF_FLAG_TIMESTAMP_MASK = 0x0000E000
BUF_FLAG_TIMESTAMP_MONOTONIC = 0x00002000
CID_AUTOGAIN = 0x00980912
CID_GAIN = 0x00980913
CID_EXPOSURE_AUTO = 0x009A0901
CID_EXPOSURE_ABSOLUTE = 0x009A0902  # in 100 µs units
CID_FOCUS_ABSOLUTE = 0x009A090A
CID_FOCUS_AUTO = 0x009A090C
EXPOSURE_MANUAL = 1
EXPOSURE_APERTURE_PRIORITY = 3  # "auto" on UVC webcams (they reject V4L2_EXPOSURE_AUTO, 0)
BUFFERS = 4

_GONE = frozenset({errno.ENODEV, errno.ENXIO, errno.EIO, errno.ENOENT})
"""What the kernel answers once a USB camera was unplugged."""


def fourcc(code: str) -> int:
    """``"MJPG"`` -> V4L2's pixel format number (four characters, little-endian)."""
    return int.from_bytes(code.encode("ascii"), "little")


FOURCC = {PixelFormat.MJPEG: fourcc("MJPG"), PixelFormat.YUYV: fourcc("YUYV")}


def decode_frame(
    data: bytes, pixel_format: PixelFormat, width: int, height: int, stride: int, device: str
) -> np.ndarray:
    """One V4L2 buffer's bytes as an RGB array; :class:`CameraFrameError` if they are no
    picture (a webcam sends a truncated MJPEG frame when USB bandwidth runs short)."""
    if pixel_format is PixelFormat.MJPEG:
        if not data.startswith(b"\xff\xd8"):
            raise CameraFrameError("an MJPEG frame that is no JPEG", device=device)
        return decode_image(data, formats=("JPEG",), device=device)
    try:
        return yuyv_to_rgb(data, width, height, stride)
    except CameraFrameError as exc:
        raise CameraFrameError(str(exc), device=device) from None


@dataclass(frozen=True)
class _Stream:
    width: int
    height: int
    stride: int


class V4l2Source:
    """A V4L2 capture device (a :class:`~edge.devices.camera_frames.FrameSource`)."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self.path = config.device
        self.name = f"v4l2 {self.path}"
        self._fd = -1
        self._maps: list[mmap.mmap] = []
        self._stream = _Stream(config.width, config.height, config.width * 2)
        self._streaming = False

    # -- open ---------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open, check it is a streaming capture device, set format, rate, controls, start.

        Every step is a quick ioctl (the driver answers at once), so it runs on the loop.
        """
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise CameraUnavailable(self._why_not(exc), device=self.name) from None
        try:
            self._check_capabilities()
            self._set_format()
            self._set_rate()
            self._set_controls()
            self._start()
        except OSError as exc:
            await self.close()
            raise CameraUnavailable(describe_os_error(exc), device=self.name) from None
        except CameraUnavailable:
            await self.close()
            raise

    def _why_not(self, exc: OSError) -> str:
        if exc.errno in (errno.ENXIO, errno.ENODEV):
            return f"{self.path}: a device node with no device behind it (unplugged?)"
        return describe_os_error(exc)

    def _ioctl(self, name: str, argument: ctypes.Structure | ctypes.c_int) -> None:
        fcntl.ioctl(self._fd, IOCTLS[name], argument)

    def _check_capabilities(self) -> None:
        capability = Capability()
        try:
            self._ioctl("VIDIOC_QUERYCAP", capability)
        except OSError as exc:
            if exc.errno in (errno.ENOTTY, errno.EINVAL):
                raise CameraUnavailable(
                    f"{self.path} is not a V4L2 device", device=self.name
                ) from None
            raise
        caps = capability.capabilities
        if caps & CAP_DEVICE_CAPS:
            caps = capability.device_caps
        if not caps & CAP_VIDEO_CAPTURE:
            card = bytes(capability.card).rstrip(b"\0").decode(errors="replace")
            raise CameraUnavailable(
                f"{self.path} ({card}) "
                "does not capture video (a webcam's metadata node? try the other /dev/video)",
                device=self.name,
            )
        if not caps & CAP_STREAMING:
            raise CameraUnavailable(f"{self.path} cannot stream to memory", device=self.name)

    def _set_format(self) -> None:
        config = self.config
        wanted = FOURCC[config.pixel_format]
        form = Format(type=BUF_TYPE_VIDEO_CAPTURE)
        pix = form.fmt.pix
        pix.width, pix.height, pix.pixelformat, pix.field = (
            config.width,
            config.height,
            wanted,
            FIELD_NONE,
        )
        self._ioctl("VIDIOC_S_FMT", form)
        pix = form.fmt.pix
        if pix.pixelformat != wanted:
            other = "yuyv" if config.pixel_format is PixelFormat.MJPEG else "mjpeg"
            raise CameraUnavailable(
                f"{self.path} does not send {config.pixel_format.value.upper()}; "
                f"try pixel_format = {other!r}",
                device=self.name,
            )
        if (pix.width, pix.height) != (config.width, config.height):
            log.info(
                "camera %s: %dx%d asked, the device gives %dx%d",
                self.path,
                config.width,
                config.height,
                pix.width,
                pix.height,
            )
        self._stream = _Stream(pix.width, pix.height, pix.bytesperline or pix.width * 2)

    def _set_rate(self) -> None:
        parm = StreamParm(type=BUF_TYPE_VIDEO_CAPTURE)
        parm.parm.capture.timeperframe = Fract(1000, round(self.config.fps * 1000))
        try:
            self._ioctl("VIDIOC_S_PARM", parm)
        except OSError as exc:  # some devices have one fixed rate: not a reason to refuse
            log.info("camera %s: frame rate not set (%s)", self.path, describe_os_error(exc))

    def _set_controls(self) -> None:
        config = self.config
        controls: list[tuple[str, int, int]] = []
        if config.exposure == "auto":
            controls.append(("exposure auto", CID_EXPOSURE_AUTO, EXPOSURE_APERTURE_PRIORITY))
        else:
            controls += [
                ("exposure manual", CID_EXPOSURE_AUTO, EXPOSURE_MANUAL),
                ("exposure", CID_EXPOSURE_ABSOLUTE, max(1, round(config.exposure / 100))),
            ]
        if config.gain == "auto":
            controls.append(("gain auto", CID_AUTOGAIN, 1))
        else:
            controls += [("gain manual", CID_AUTOGAIN, 0), ("gain", CID_GAIN, round(config.gain))]
        if config.focus == "auto":
            controls.append(("focus auto", CID_FOCUS_AUTO, 1))
        else:
            controls += [
                ("focus manual", CID_FOCUS_AUTO, 0),
                ("focus", CID_FOCUS_ABSOLUTE, round(config.focus)),
            ]
        for what, cid, value in controls:
            try:
                self._ioctl("VIDIOC_S_CTRL", Control(cid, value))
            except OSError as exc:
                if exc.errno in _GONE:
                    raise
                # most webcams lack some of these (no autofocus, no gain): say so, go on
                log.info("camera %s: %s not set (%s)", self.path, what, describe_os_error(exc))

    def _start(self) -> None:
        request = RequestBuffers(count=BUFFERS, type=BUF_TYPE_VIDEO_CAPTURE, memory=MEMORY_MMAP)
        self._ioctl("VIDIOC_REQBUFS", request)
        if request.count < 2:
            raise CameraUnavailable(
                f"{self.path}: too few buffers ({request.count})", device=self.name
            )
        for index in range(request.count):
            buffer = Buffer(index=index, type=BUF_TYPE_VIDEO_CAPTURE, memory=MEMORY_MMAP)
            self._ioctl("VIDIOC_QUERYBUF", buffer)
            self._maps.append(
                mmap.mmap(
                    self._fd, buffer.length, mmap.MAP_SHARED, mmap.PROT_READ, offset=buffer.m.offset
                )
            )
            self._ioctl("VIDIOC_QBUF", buffer)
        self._ioctl("VIDIOC_STREAMON", ctypes.c_int(BUF_TYPE_VIDEO_CAPTURE))
        self._streaming = True

    # -- read ---------------------------------------------------------------------------------

    async def read(self) -> RawFrame:
        """The newest done frame; waits on the descriptor for one when none is done yet."""
        if self._fd < 0:
            raise CameraUnavailable("the camera is closed", device=self.name)
        while True:
            newest = self._drain()
            if newest is not None:
                data, captured_at = newest
                stream = self._stream
                image = await asyncio.to_thread(
                    decode_frame,
                    data,
                    self.config.pixel_format,
                    stream.width,
                    stream.height,
                    stream.stride,
                    self.name,
                )
                return RawFrame(image, captured_at)
            await self._readable()

    def _drain(self) -> tuple[bytes, float] | None:
        """Dequeue every done buffer and give each back at once, except the newest good one,
        which is copied out before it goes back: a slow reader gets the latest frame, and the
        driver always has buffers to fill."""
        held: Buffer | None = None
        try:
            while True:
                buffer = Buffer(type=BUF_TYPE_VIDEO_CAPTURE, memory=MEMORY_MMAP)
                try:
                    self._ioctl("VIDIOC_DQBUF", buffer)
                except BlockingIOError:
                    break
                if buffer.flags & BUF_FLAG_ERROR or buffer.bytesused == 0:
                    log.debug("camera %s: a frame flagged corrupt by the driver", self.path)
                    self._ioctl("VIDIOC_QBUF", buffer)
                    continue
                if held is not None:
                    self._ioctl("VIDIOC_QBUF", held)
                held = buffer
            if held is None:
                return None
            newest = (self._maps[held.index][: held.bytesused], self._timestamp(held))
            self._ioctl("VIDIOC_QBUF", held)
            return newest
        except OSError as exc:
            raise CameraUnavailable(self._lost(exc), device=self.name) from None

    def _timestamp(self, buffer: Buffer) -> float:
        if buffer.flags & BUF_FLAG_TIMESTAMP_MASK == BUF_FLAG_TIMESTAMP_MONOTONIC:
            return buffer.timestamp.tv_sec + buffer.timestamp.tv_usec / 1e6
        return time.monotonic()  # a driver with no usable timestamp: now is the best we know

    def _lost(self, exc: OSError) -> str:
        if exc.errno in _GONE:
            return f"{self.path} went away ({describe_os_error(exc)})"
        return describe_os_error(exc)

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self._fd
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(fd)

    # -- close --------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop streaming, unmap and close; whatever state the device is in. Never raises."""
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        if self._streaming:
            self._streaming = False
            with contextlib.suppress(OSError):  # unplugged: nothing to stop
                fcntl.ioctl(fd, IOCTLS["VIDIOC_STREAMOFF"], ctypes.c_int(BUF_TYPE_VIDEO_CAPTURE))
        for mapped in self._maps:
            mapped.close()
        self._maps.clear()
        with contextlib.suppress(OSError):
            os.close(fd)
