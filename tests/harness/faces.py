"""Real photographs of faces for the edge.face tests, from registry packages, never a hub.

* ``astronaut``: Eileen Collins, NASA's public-domain portrait shipped in scikit-image's wheel;
* ``cameraman``: scikit-image's cameraman (a real face, turned away from the camera);
* ``lfw_faces`` / ``lfw_non_faces``: scikit-image's 100 Labeled Faces in the Wild crops and
  100 non-face patches (25x25 grey, upscaled here);
* ``specimen``: the sim's specimen portrait (edge/sim/samples), the card holders' face;
* no faces: scikit-image's cat (``chelsea``), coffee cup and rocket.

Frames the lane would see are built from these by what a camera does: framing in 640x480,
turning, dimming, blurring, a second traveller stepping in.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageFilter

SPECIMEN = Path(__file__).resolve().parents[2] / "edge" / "sim" / "samples" / "specimen-face.jpg"

ASTRONAUT_FACE = (110, 20, 350, 340)
"""A head-and-shoulders crop of the astronaut (left, top, right, bottom): passport framing."""


@functools.cache
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@functools.cache
def specimen() -> np.ndarray:
    return np.asarray(Image.open(SPECIMEN).convert("RGB"))


def cameraman() -> np.ndarray:
    return grey_to_rgb(skimage.data.camera())


def no_face_images() -> dict[str, np.ndarray]:
    return {
        "cat": skimage.data.chelsea(),
        "coffee": skimage.data.coffee(),
        "rocket": skimage.data.rocket(),
        "grey": np.full((480, 640, 3), 128, dtype=np.uint8),
    }


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))


def lfw(faces: bool) -> list[np.ndarray]:
    """scikit-image's LFW subset (first 100 faces, last 100 not), each upscaled 4x and set in
    a grey 200x200 frame, as a face half a metre from a camera would be."""
    patches = skimage.data.lfw_subset()
    chosen = patches[:100] if faces else patches[100:]
    frames = []
    for patch in chosen:
        grey = Image.fromarray((patch * 255).astype(np.uint8)).resize((100, 100), Image.BICUBIC)
        frame = np.full((200, 200), 128, dtype=np.uint8)
        frame[50:150, 50:150] = np.asarray(grey)
        frames.append(grey_to_rgb(frame))
    return frames


def framed(image: np.ndarray, box: tuple[int, int, int, int], height: int = 480) -> np.ndarray:
    """*box* of *image* scaled to *height* and centred in a 640x480 grey frame (a kiosk's)."""
    crop = Image.fromarray(image).crop(box)
    width = round(crop.width * height / crop.height)
    crop = crop.resize((width, height), Image.BICUBIC)
    frame = Image.new("RGB", (640, 480), (128, 128, 128))
    frame.paste(crop, ((640 - width) // 2, (480 - height) // 2))
    return np.asarray(frame)


def kiosk_frame() -> np.ndarray:
    """The astronaut as a traveller at the kiosk: head and shoulders filling a 640x480 frame."""
    return framed(astronaut(), ASTRONAUT_FACE)


def turned(image: np.ndarray, degrees: float) -> np.ndarray:
    """*image* turned counter-clockwise by *degrees* about its centre (a tilted head)."""
    return np.asarray(Image.fromarray(image).rotate(degrees, resample=Image.BILINEAR))


def dimmed(image: np.ndarray, factor: float) -> np.ndarray:
    """*image* with its light scaled by *factor* (an unlit booth)."""
    return (image.astype(np.float32) * factor).astype(np.uint8)


def blurred(image: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def two_travellers() -> np.ndarray:
    """The astronaut and the specimen side by side in one 640x480 frame, alike in size."""
    frame = Image.new("RGB", (640, 480), (128, 128, 128))
    left = Image.fromarray(astronaut()).crop(ASTRONAUT_FACE).resize((300, 400), Image.BICUBIC)
    right = Image.fromarray(specimen()).resize((300, 400), Image.BICUBIC)
    frame.paste(left, (10, 40))
    frame.paste(right, (330, 40))
    return np.asarray(frame)


def encoded(image: np.ndarray, kind: str, **options) -> bytes:
    """*image* encoded by Pillow as *kind* (``JPEG``, ``JPEG2000``, ``PNG``)."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, kind, **options)
    return buffer.getvalue()


@functools.cache
def analyzer():
    """One analyzer with the default settings for the whole session (models load once)."""
    from edge.face import FaceAnalyzer

    return FaceAnalyzer.from_config()
