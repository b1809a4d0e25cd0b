"""What every camera backend shares: the frame, the errors, the decoders, the backend protocol.

A *frame* is what the lane gets: an RGB picture as a read-only numpy array (height x width x 3,
``uint8``) and when it was captured. The pixels are a traveller's face: personal data. Nothing
here logs them, writes them anywhere or puts them in an error message; a frame's ``repr``
leaves the pixels out.

Every failure of a camera is a :class:`CameraError`; no ``OSError``, Pillow error or
libcamera exception escapes :mod:`edge.devices`:

================================  ===========================================================
exception                         meaning
================================  ===========================================================
:class:`CameraUnavailable`        the camera cannot be opened, or went away (unplugged)
:class:`CameraTimeout`            no fresh frame in time: a stuck camera, or one just replugged
:class:`CameraFrameError`         the camera sent data that is no picture (truncated, corrupt)
================================  ===========================================================
"""

from __future__ import annotations

import errno
import io
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "MAX_PIXELS",
    "CameraError",
    "CameraFrameError",
    "CameraTimeout",
    "CameraUnavailable",
    "Frame",
    "FrameSource",
    "RawFrame",
    "decode_image",
    "describe_os_error",
    "rotate",
    "yuyv_to_rgb",
]

MAX_PIXELS = 40_000_000
"""The largest picture decoded (a 40 MP file); beyond it a file is refused, not decoded: a
small PNG can claim a huge size (a decompression bomb) and take the kiosk's memory."""


class CameraError(Exception):
    """Base of every camera error; ``device`` names the camera (``v4l2 /dev/video0``)."""

    def __init__(self, message: str, *, device: str | None = None) -> None:
        super().__init__(message)
        self.device = device


class CameraUnavailable(CameraError):
    """The camera is not there (unplugged, no such device), or cannot be used (busy, denied,
    not a camera)."""


class CameraTimeout(CameraError, TimeoutError):
    """No fresh frame within the capture timeout."""


class CameraFrameError(CameraError):
    """The data the camera (or a file) delivered is not a picture we can decode."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured picture, upright (``rotation`` applied), as RGB."""

    image: np.ndarray = field(repr=False)
    """Height x width x 3, ``uint8``, RGB, read-only (shared by whoever looks at it)."""
    captured_at: float
    """``time.monotonic()`` when the sensor delivered it (the driver's timestamp if it has one)."""
    captured_utc: datetime
    """The same moment on the wall clock, for records."""
    sequence: int
    """Frames returned by this camera since it was opened (1, 2, ...)."""
    source: str
    """The backend and device (``v4l2 /dev/video0``), never the picture's contents."""

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, eq=False)
class RawFrame:
    """What a backend returns: the picture as it came (not yet rotated) and when."""

    image: np.ndarray = field(repr=False)
    captured_at: float


class FrameSource(Protocol):
    """A backend: the I/O of one camera, nothing else (no retries, no state, no timeouts).

    :class:`edge.devices.camera.ManagedCamera` opens it, reads from it under a timeout,
    closes it when it fails and makes a new one to reopen: a backend object is used once.
    ``read`` may be cancelled at any point (the capture timeout); a backend that reads in a
    thread then abandons that thread, and is closed.
    """

    name: str
    """``v4l2 /dev/video0``, ``picamera2``, ``virtual <path>``: for logs and health."""

    async def open(self) -> None:
        """Find and start the camera; :class:`CameraUnavailable` if it cannot be used."""
        ...

    async def read(self) -> RawFrame:
        """The next frame the camera delivers (waiting for it); :class:`CameraError`."""
        ...

    async def close(self) -> None:
        """Stop and release the camera. Never raises."""
        ...


def describe_os_error(exc: OSError) -> str:
    """``ENOENT: No such file or directory (/dev/video0)``: one line for health and logs."""
    if exc.strerror:
        name = errno.errorcode.get(exc.errno or 0, "")
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{name + ': ' if name else ''}{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def decode_image(
    data: bytes | io.BufferedIOBase,
    *,
    formats: tuple[str, ...] = ("JPEG", "PNG"),
    fit: tuple[int, int] | None = None,
    device: str | None = None,
) -> np.ndarray:
    """A JPEG or PNG (bytes or an open binary file) as an RGB array; :class:`CameraFrameError`.

    *fit* (width, height) shrinks a larger picture to fit, keeping its proportions (a JPEG is
    decoded at a reduced scale directly, which is much cheaper than decoding it whole). EXIF
    orientation is applied, so a photo taken on a phone comes out upright. An MJPEG frame
    without Huffman tables (as many webcams send them) decodes as well: libjpeg supplies the
    standard tables.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream, formats=list(formats)) as picture:
                if picture.width * picture.height > MAX_PIXELS:
                    raise CameraFrameError(
                        f"a {picture.width}x{picture.height} picture: more than "
                        f"{MAX_PIXELS // 1_000_000} MP",
                        device=device,
                    )
                if fit is not None and picture.format == "JPEG":
                    picture.draft("RGB", fit)
                picture.load()
                upright = ImageOps.exif_transpose(picture)
                rgb = upright.convert("RGB")
                if fit is not None and (rgb.width > fit[0] or rgb.height > fit[1]):
                    rgb.thumbnail(fit)
                array = np.asarray(rgb)
    except CameraFrameError:
        raise
    except UnidentifiedImageError:
        raise CameraFrameError(f"not a {' or '.join(formats)} picture", device=device) from None
    except Image.DecompressionBombError:
        raise CameraFrameError(
            f"refused: claims more than {MAX_PIXELS // 1_000_000} MP", device=device
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow says what it could not read ("image file is truncated", "cannot identify
        # image file"); that text never holds pixel data.
        raise CameraFrameError(f"not a decodable picture: {exc}", device=device) from None
    except Image.DecompressionBombWarning:
        raise CameraFrameError(
            f"refused: claims more than {MAX_PIXELS // 1_000_000} MP", device=device
        ) from None
    array.flags.writeable = False
    return array


def yuyv_to_rgb(
    data: bytes | memoryview, width: int, height: int, stride: int | None = None
) -> np.ndarray:
    """A YUYV (YUY2, 4:2:2) frame as an RGB array; :class:`CameraFrameError` if it is short.

    *stride* is the bytes per row as the driver reports it (``bytesperline``): some drivers pad
    each row. The colours are BT.601 with limited range (Y 16-235), what UVC webcams send.
    Integer arithmetic in 16.16 fixed point (no float rounding surprises), vectorised.
    """
    stride = stride or width * 2
    if width % 2 or stride < width * 2:
        raise CameraFrameError(
            f"YUYV needs an even width and stride >= 2 x width ({width}, {stride})"
        )
    needed = stride * height
    if len(data) < needed:
        raise CameraFrameError(f"short YUYV frame: {len(data)} bytes, {needed} needed")
    rows = np.frombuffer(data, dtype=np.uint8, count=needed).reshape(height, stride)
    packed = rows[:, : width * 2]
    pairs = packed.reshape(height, width // 2, 4).astype(np.int32)
    y = np.empty((height, width), dtype=np.int32)
    y[:, 0::2] = pairs[:, :, 0]
    y[:, 1::2] = pairs[:, :, 2]
    u = np.repeat(pairs[:, :, 1], 2, axis=1) - 128
    v = np.repeat(pairs[:, :, 3], 2, axis=1) - 128
    c = (y - 16) * 76309  # 1.164 in 16.16
    rgb = np.empty((height, width, 3), dtype=np.int32)
    rgb[:, :, 0] = c + 104597 * v  # 1.596
    rgb[:, :, 1] = c - 25675 * u - 53279 * v  # 0.392, 0.813
    rgb[:, :, 2] = c + 132201 * u  # 2.017
    rgb += 32768  # round
    rgb >>= 16
    out = np.clip(rgb, 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


def rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    """*image* turned *degrees* clockwise (0, 90, 180, 270), contiguous and read-only."""
    if degrees == 0:
        return image
    turned = np.ascontiguousarray(np.rot90(image, k=-(degrees // 90)))
    turned.flags.writeable = False
    return turned
