"""Document portraits and image files: JPEG, JPEG 2000 (JP2 and bare J2K), PNG, and refusals."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image
from PIL import features as pil_features

from edge.face import PortraitError, decode_portrait
from edge.face.image import MAX_PIXELS, image_format
from harness import faces

PORTRAIT = faces.framed(faces.astronaut(), faces.ASTRONAUT_FACE, height=320)[:, 160:480]


def test_pillow_has_openjpeg():
    # the ePassport's DG2 is often JPEG 2000: the kiosk must read it
    assert pil_features.check("jpg_2000")


@pytest.mark.parametrize(
    ("kind", "options", "tolerance", "name"),
    [
        ("PNG", {}, 0, "PNG"),
        ("JPEG2000", {}, 0, "JPEG 2000"),  # lossless JP2
        ("JPEG2000", {"quality_mode": "rates", "quality_layers": [40]}, 12, "JPEG 2000"),
        ("JPEG2000", {"no_jp2": True}, 0, "JPEG 2000"),  # a bare codestream, as some DG2s
        ("JPEG", {"quality": 90}, 12, "JPEG"),
    ],
    ids=["png", "jp2", "jp2-lossy", "j2k", "jpeg"],
)
def test_a_portrait_decodes_to_the_same_picture(kind, options, tolerance, name):
    data = faces.encoded(PORTRAIT, kind, **options)
    assert image_format(data) == name
    decoded = decode_portrait(data)
    assert decoded.shape == PORTRAIT.shape and decoded.dtype == np.uint8
    difference = np.abs(decoded.astype(int) - PORTRAIT.astype(int)).mean()
    assert difference <= tolerance


def test_a_jpeg2000_portrait_is_analysed_and_matches_its_original():
    portrait = decode_portrait(faces.encoded(PORTRAIT, "JPEG2000", no_jp2=True))
    analysis = faces.analyzer().analyze(portrait)
    assert len(analysis.faces) == 1
    result = faces.analyzer().verify(faces.kiosk_frame(), portrait)
    assert result.decision == "same"


def test_a_grey_portrait_becomes_rgb():
    grey = np.asarray(Image.fromarray(PORTRAIT).convert("L"))
    decoded = decode_portrait(faces.encoded(grey, "JPEG2000"))
    assert decoded.shape == PORTRAIT.shape
    assert (decoded[..., 0] == decoded[..., 1]).all()


def test_the_exif_orientation_is_applied():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(PORTRAIT).save(buffer, "JPEG", exif=exif, quality=95)
    decoded = decode_portrait(buffer.getvalue())
    assert decoded.shape == (PORTRAIT.shape[1], PORTRAIT.shape[0], 3)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "not a JPEG, JPEG 2000 or PNG"),
        (b"GIF89a" + bytes(100), "not a JPEG, JPEG 2000 or PNG"),
        (b"%PDF-1.7\n", "not a JPEG, JPEG 2000 or PNG"),
        (faces.encoded(PORTRAIT, "JPEG2000")[:400], "corrupt or truncated JPEG 2000"),
        (faces.encoded(PORTRAIT, "JPEG2000", no_jp2=True)[:300], "corrupt or truncated JPEG 2000"),
        (faces.encoded(PORTRAIT, "PNG")[:200], "corrupt or truncated PNG"),
        (b"\xff\xd8\xff" + bytes(64), "corrupt or truncated JPEG"),
    ],
    ids=["empty", "gif", "pdf", "jp2-cut", "j2k-cut", "png-cut", "jpeg-garbage"],
)
def test_what_is_not_a_usable_image_raises_portrait_error(data, words):
    with pytest.raises(PortraitError, match=words):
        decode_portrait(data)


@pytest.mark.parametrize("side", [8000, 20000])  # ours refuses the first, Pillow the second
def test_a_decompression_bomb_is_refused_before_decoding(side):
    # a PNG whose header claims side x side pixels (64 or 400 MP) in a few hundred bytes
    small = faces.encoded(np.zeros((8, 8, 3), dtype=np.uint8), "PNG")
    header = bytearray(small)
    header[16:24] = side.to_bytes(4, "big") * 2
    header[29:33] = zlib.crc32(bytes(header[12:29])).to_bytes(4, "big")  # IHDR's CRC
    assert side * side > MAX_PIXELS
    with pytest.raises(PortraitError, match="too large"):
        decode_portrait(bytes(header))


def test_not_bytes_is_refused():
    with pytest.raises(PortraitError, match="expected image bytes"):
        decode_portrait("portrait.jpg")  # type: ignore[arg-type]
