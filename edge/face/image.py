"""Images in: portraits from documents and files decoded, frames checked, regions cropped.

A document's portrait (ePassport DG2, CBIC) is JPEG or JPEG 2000 (a JP2 file or a bare J2K
codestream); files given to the CLI may also be PNG. :func:`decode_portrait` takes the bytes and
returns an RGB array, or raises :class:`~edge.face.errors.PortraitError` with one line saying
why. Everything else in the package works on ``numpy`` arrays of shape (height, width, 3), dtype
uint8, RGB: :func:`check_frame` says so once at the door.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import PortraitError

__all__ = ["MAX_PIXELS", "check_frame", "decode_portrait", "image_format", "rotated_crop"]

MAX_PIXELS = 40_000_000
"""Largest image we decode (a 12 MP camera frame fits three times): a small file claiming more
is a decompression bomb, refused before its pixels are allocated."""

_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),  # JP2 file (ISO/IEC 15444-1 annex I)
    (b"\xff\x4f\xff\x51", "JPEG 2000"),  # bare J2K codestream: SOC then SIZ
    (b"\x89PNG\r\n\x1a\n", "PNG"),
)


def image_format(data: bytes) -> str | None:
    """The format the bytes start like (``JPEG``, ``JPEG 2000``, ``PNG``), or None."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None


def decode_portrait(data: bytes) -> np.ndarray:
    """Decode a JPEG, JPEG 2000 or PNG image to an RGB uint8 array (EXIF rotation applied).

    Raises :class:`PortraitError` for anything else, a truncated or corrupt file, or an image
    larger than :data:`MAX_PIXELS`. The message never includes the image's content.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PortraitError(f"expected image bytes, got {type(data).__name__}")
    data = bytes(data)
    kind = image_format(data)
    if kind is None:
        raise PortraitError("not a JPEG, JPEG 2000 or PNG image")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit and raises above twice it; ours is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise PortraitError(f"{kind} image of {width}x{height} pixels is too large")
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = image.convert("RGB")
    except PortraitError:
        raise
    except Image.DecompressionBombError:
        # Pillow's own refusal, at open, of a header claiming over twice its limit
        raise PortraitError(f"{kind} image is too large (over {MAX_PIXELS:,} pixels)") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        # Pillow reports a truncated or corrupt file as any of these.
        raise PortraitError(f"corrupt or truncated {kind} image") from None
    if rgb.width < 1 or rgb.height < 1:
        raise PortraitError(f"{kind} image has no pixels")
    return np.asarray(rgb, dtype=np.uint8)


def check_frame(frame: np.ndarray) -> np.ndarray:
    """*frame* if it is an RGB image array (H, W, 3) of uint8, else :class:`PortraitError`."""
    if not isinstance(frame, np.ndarray):
        raise PortraitError(f"expected an RGB image array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise PortraitError(
            f"expected an RGB uint8 array (H, W, 3), got {frame.dtype} {frame.shape}"
        )
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise PortraitError(f"image of {frame.shape[1]}x{frame.shape[0]} pixels is too small")
    return frame


def rotated_crop(
    image: Image.Image, centre: tuple[float, float], side: float, angle: float, size: int
) -> tuple[Image.Image, np.ndarray]:
    """A *size*x*size* crop of the square of *side* pixels around *centre*, turned by *angle*.

    *angle* (radians, image coordinates: y down) is the direction of the crop's x axis in the
    image, so a face whose eyes lie along *angle* comes out upright. Returns the crop and the
    2x3 matrix that maps crop pixel coordinates back to image coordinates (for landmarks).
    """
    scale = side / size
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    half = size / 2
    cx, cy = centre
    # image = M @ (u, v, 1): the crop's centre lands on *centre*, its axes turned by *angle*
    matrix = np.array(
        [
            [cos, -sin, cx - half * cos + half * sin],
            [sin, cos, cy - half * sin - half * cos],
        ]
    )
    crop = image.transform(
        (size, size), Image.Transform.AFFINE, tuple(matrix.ravel()), Image.Resampling.BILINEAR
    )
    return crop, matrix
