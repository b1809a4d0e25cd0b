"""Portrait quality the ISO/IEC 29794-5 way, measure by measure, each a 0-100 score.

The measures carry the names BSI's OFIQ (the standard's reference implementation) gives them, so
a figure here can be read beside OFIQ's. Each has a *native* value in a stated unit (pixels,
degrees, a fraction) and a quality score 0-100 mapped from it; the mapping is ours, simple and
documented per measure (OFIQ's own mappings use trained models we do not run on a Pi). A
measure passes when its score reaches its threshold (``FaceSettings.thresholds``).

The face region for the image measures is a square turned with the eyes, from the eyes to the
mouth and cheek to cheek (no hair, no background), cropped at 96x96: luminance statistics,
sharpness and illumination uniformity are computed there, so a face's size in the frame does not
change them.

Each failing measure maps to one piece of advice for the traveller (:data:`ADVICE`, English and
Spanish), most useful first: a traveller told "move closer" and "hold still" at once does
neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .detectors import Detection
from .image import rotated_crop
from .landmarks import MESH, Mesh

__all__ = [
    "ADVICE",
    "MEASURES",
    "Advice",
    "Measure",
    "advice_for",
    "assess",
    "pose_angles",
]

MEASURES = (
    "SingleFacePresent",
    "InterEyeDistance",
    "HeadSize",
    "LeftwardCropOfTheFaceImage",
    "RightwardCropOfTheFaceImage",
    "MarginAboveOfTheFaceImage",
    "MarginBelowOfTheFaceImage",
    "HeadPoseYaw",
    "HeadPosePitch",
    "HeadPoseRoll",
    "EyesOpen",
    "MouthClosed",
    "Sharpness",
    "LuminanceMean",
    "UnderExposurePrevention",
    "OverExposurePrevention",
    "IlluminationUniformity",
    "BackgroundUniformity",
)
"""Every measure, in the order the advice is chosen (first failing measure, first advice)."""

CROP_SIZE = 96


@dataclass(frozen=True)
class Measure:
    """One quality measure of one face: native value (its unit in ``unit``), score, verdict."""

    name: str
    native: float | None
    unit: str
    score: int
    threshold: int
    direction: str = ""  # "low" or "high" where the fix depends on which side failed

    @property
    def passed(self) -> bool:
        return self.score >= self.threshold

    def to_dict(self) -> dict:
        native = None if self.native is None else round(self.native, 4)
        return {
            "native": native,
            "unit": self.unit,
            "score": self.score,
            "threshold": self.threshold,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class Advice:
    """What the traveller should change: a stable code and the words for the screen."""

    code: str
    en: str
    es: str


ADVICE = {
    advice.code: advice
    for advice in (
        Advice("look_at_camera", "Look at the camera", "Mire a la cámara"),
        Advice(
            "one_person",
            "Only one person in front of the camera",
            "Solo una persona frente a la cámara",
        ),
        Advice("move_closer", "Move closer", "Acérquese"),
        Advice("move_back", "Move back a little", "Aléjese un poco"),
        Advice("centre_face", "Centre your face on the screen", "Centre su cara en la pantalla"),
        Advice("head_straight", "Keep your head straight", "Mantenga la cabeza recta"),
        Advice("open_eyes", "Open your eyes", "Abra los ojos"),
        Advice("close_mouth", "Close your mouth", "Cierre la boca"),
        Advice("hold_still", "Hold still", "No se mueva"),
        Advice("too_dark", "Too dark", "Demasiado oscuro"),
        Advice("too_bright", "Too bright", "Demasiado claro"),
        Advice("even_light", "Face the screen squarely", "Póngase de frente a la pantalla"),
        Advice(
            "plain_background", "Stand in front of the screen", "Colóquese frente a la pantalla"
        ),
    )
}  # fmt: skip
"""The advice, by code (the lane and the traveller screen key on the code)."""

_ADVICE_FOR = {
    "SingleFacePresent": "one_person",
    "InterEyeDistance": "move_closer",
    "HeadSize": ("move_closer", "move_back"),
    "LeftwardCropOfTheFaceImage": "centre_face",
    "RightwardCropOfTheFaceImage": "centre_face",
    "MarginAboveOfTheFaceImage": "centre_face",
    "MarginBelowOfTheFaceImage": "centre_face",
    "HeadPoseYaw": "look_at_camera",
    "HeadPosePitch": "look_at_camera",
    "HeadPoseRoll": "head_straight",
    "EyesOpen": "open_eyes",
    "MouthClosed": "close_mouth",
    "Sharpness": "hold_still",
    "LuminanceMean": ("too_dark", "too_bright"),
    "UnderExposurePrevention": "too_dark",
    "OverExposurePrevention": "too_bright",
    "IlluminationUniformity": "even_light",
    "BackgroundUniformity": "plain_background",
}


def advice_for(measures: Mapping[str, Measure], faces: int) -> list[Advice]:
    """The advice for the failing *measures*, most useful first, each piece once."""
    codes: list[str] = []
    if faces == 0:
        light = measures.get("LuminanceMean")
        if light is None or light.passed:
            return [ADVICE["look_at_camera"]]
        codes.append("too_dark" if light.direction == "low" else "too_bright")
        return [ADVICE[code] for code in codes]
    for name in MEASURES:
        measure = measures.get(name)
        if measure is None or measure.passed:
            continue
        code = _ADVICE_FOR[name]
        if isinstance(code, tuple):
            code = code[0] if measure.direction == "low" else code[1]
        if code not in codes:
            codes.append(code)
    return [ADVICE[code] for code in codes]


def _ramp(value: float, zero: float, full: float) -> int:
    """0 at *zero*, 100 at *full*, linear between (either order), clipped."""
    return round(100 * min(1.0, max(0.0, (value - zero) / (full - zero))))


def _band(value: float, low: float, high: float, zero_low: float, zero_high: float) -> int:
    """100 inside [low, high], falling linearly to 0 at *zero_low* and *zero_high*."""
    if value < low:
        return _ramp(value, zero_low, low)
    if value > high:
        return _ramp(value, zero_high, high)
    return 100


def _cos2(degrees: float) -> int:
    return round(100 * max(0.0, math.cos(math.radians(degrees))) ** 2)


def pose_angles(mesh: Mesh) -> tuple[float, float, float]:
    """Head pose (yaw, pitch, roll) in degrees from the mesh's 3D points; 0, 0, 0 is frontal.

    The face's own axes: x from cheek to cheek, y from forehead to chin; their cross product is
    the face's normal. Yaw and pitch are the normal's turn from the camera axis, roll the eye
    line's turn from level. Signs: positive yaw turns the face to the image's right, positive
    pitch raises the chin, positive roll tilts the image-right eye down.
    """
    p = mesh.points
    across = p[MESH.RIGHT_CHEEK] - p[MESH.LEFT_CHEEK]
    down = p[MESH.CHIN] - p[MESH.FOREHEAD]
    normal = np.cross(across, down)  # away from the camera for a frontal face (z grows away)
    yaw = math.degrees(math.atan2(-normal[0], normal[2]))
    pitch = math.degrees(math.atan2(normal[1], normal[2]))
    eyes = mesh.right_eye - mesh.left_eye
    roll = math.degrees(math.atan2(eyes[1], eyes[0]))
    return yaw, pitch, roll


def _opening(points: np.ndarray, lids: tuple, corners: tuple[int, int]) -> float:
    """Eye aspect ratio: mean lid gap over the corner-to-corner width."""
    gap = np.mean([np.linalg.norm(points[a, :2] - points[b, :2]) for a, b in lids])
    width = np.linalg.norm(points[corners[0], :2] - points[corners[1], :2])
    return float(gap / max(width, 1e-6))


def _face_crop(image: Image.Image, mesh: Mesh) -> np.ndarray:
    """Luminance (0-255, float) of the inner face, eyes level, CROP_SIZE square."""
    p = mesh.points
    eyes_mid = (mesh.left_eye + mesh.right_eye) / 2
    mouth = (p[MESH.MOUTH_CORNERS[0], :2] + p[MESH.MOUTH_CORNERS[1], :2]) / 2
    centre = (eyes_mid + mouth) / 2
    side = 0.8 * float(np.linalg.norm(p[MESH.RIGHT_CHEEK, :2] - p[MESH.LEFT_CHEEK, :2]))
    eyes = mesh.right_eye - mesh.left_eye
    angle = math.atan2(eyes[1], eyes[0])
    crop, _ = rotated_crop(image, (centre[0], centre[1]), max(side, 4.0), angle, CROP_SIZE)
    return np.asarray(crop.convert("L"), dtype=np.float32)


def _sharpness(luma: np.ndarray) -> float:
    """Fine detail left in the face: the 4-neighbour Laplacian's variance over the face's own
    luminance variance, in percent. Blur removes the first and barely the second; dividing
    keeps a dim but sharp face sharp (both scale with the light squared)."""
    lap = luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4 * luma[1:-1, 1:-1]
    return float(100 * lap.var() / max(float(luma.var()), 1.0))


def _uniformity(luma: np.ndarray) -> float:
    """Histogram intersection of the face's left and right halves (1: lit alike)."""
    half = luma.shape[1] // 2
    bins = np.linspace(0, 256, 17)
    left, _ = np.histogram(luma[:, :half], bins)
    right, _ = np.histogram(luma[:, half:], bins)
    return float(np.minimum(left / left.sum(), right / right.sum()).sum())


def _background(gray: np.ndarray, scale: float, face: tuple[float, float, float, float]) -> float:
    """Mean gradient magnitude (grey levels per pixel) outside the head and body, or NaN.

    *gray* is the frame in luminance, downscaled by *scale*; *face* the landmarks' box in frame
    pixels. The head and body are a box widened by half the face's width each side, raised by
    two thirds of its height (hair), down to the bottom of the frame (neck, shoulders).
    """
    left, top, right, bottom = (v * scale for v in face)
    width, height = right - left, bottom - top
    gx = np.abs(np.diff(gray, axis=1))[:-1, :]
    gy = np.abs(np.diff(gray, axis=0))[:, :-1]
    magnitude = np.hypot(gx, gy)
    mask = np.ones(magnitude.shape, dtype=bool)
    x0, x1 = max(0, int(left - width / 2)), max(0, math.ceil(right + width / 2))
    y0 = max(0, int(top - 2 * height / 3))
    mask[y0:, x0:x1] = False
    if mask.sum() < 0.05 * mask.size:
        return math.nan  # a tight crop: too little background to judge
    return float(magnitude[mask].mean())


def _luminance(measure: Callable[..., None], mean: float) -> None:
    direction = "low" if mean < 0.25 else "high"
    measure("LuminanceMean", mean, "of full scale", _band(mean, 0.25, 0.75, 0.0, 1.0), direction)


def assess(
    image: Image.Image,
    gray: np.ndarray,
    gray_scale: float,
    faces: list[tuple[Detection, Mesh | None]],
    thresholds: Mapping[str, int],
) -> dict[str, Measure]:
    """Every measure for the first face of *faces* (the largest), by name.

    *image* is the frame; *gray* its luminance downscaled by *gray_scale* (for the background).
    With no face, ``SingleFacePresent`` (0) and the whole frame's ``LuminanceMean`` (so the
    lane can say "too dark" when darkness hides the face); with a face but no mesh, every other
    measure scores 0.
    """

    def measure(name: str, native: float | None, unit: str, score: int, direction: str = ""):
        measures[name] = Measure(name, native, unit, score, thresholds[name], direction)

    measures: dict[str, Measure] = {}
    if not faces:
        measure("SingleFacePresent", 0, "faces", 0)
        # no face to measure: the whole frame's light tells "too dark" from "nobody there"
        _luminance(measure, float(gray.mean()) / 255 if gray.size else 0.0)
        return measures
    areas = sorted((d.width * d.height for d, _ in faces), reverse=True)
    second = areas[1] / areas[0] if len(areas) > 1 else 0.0
    # a face far behind the traveller (small) matters less than one beside them
    measure("SingleFacePresent", len(faces), "faces", round(100 * (1 - second)))
    mesh = faces[0][1]
    if mesh is None:
        for name in MEASURES[1:]:
            measure(name, None, "", 0)
        return measures

    height, width = image.height, image.width
    p = mesh.points
    eyes_mid = (mesh.left_eye + mesh.right_eye) / 2
    ied = float(np.linalg.norm(mesh.right_eye - mesh.left_eye))
    # ISO/IEC 19794-5 token frontal images: at least 60 px between the eyes; 90 px recommended
    measure("InterEyeDistance", ied, "pixels", _ramp(ied, 30, 90))
    head = float(np.linalg.norm(p[MESH.CHIN, :2] - p[MESH.FOREHEAD, :2])) / height
    direction = "low" if head < 0.25 else "high"
    measure("HeadSize", head, "of image height", _band(head, 0.25, 0.75, 0.05, 1.0), direction)
    # crop and margins: room from the eyes' midpoint to each edge, in inter-eye distances;
    # a head reaches about 1.2 IED sideways, 2 above the eyes (crown), 2 below (chin and neck)
    unit = max(ied, 1.0)
    margins = (
        ("LeftwardCropOfTheFaceImage", eyes_mid[0] / unit, 1.2),
        ("RightwardCropOfTheFaceImage", (width - eyes_mid[0]) / unit, 1.2),
        ("MarginAboveOfTheFaceImage", eyes_mid[1] / unit, 2.0),
        ("MarginBelowOfTheFaceImage", (height - eyes_mid[1]) / unit, 2.0),
    )
    for name, ratio, needed in margins:
        measure(name, float(ratio), "inter-eye distances", _ramp(ratio, 0.0, needed))
    yaw, pitch, roll = pose_angles(mesh)
    measure("HeadPoseYaw", yaw, "degrees", _cos2(yaw))
    measure("HeadPosePitch", pitch, "degrees", _cos2(pitch))
    measure("HeadPoseRoll", roll, "degrees", _cos2(roll))
    eyes = min(
        _opening(p, MESH.LEFT_EYE_LIDS, MESH.LEFT_EYE_CORNERS),
        _opening(p, MESH.RIGHT_EYE_LIDS, MESH.RIGHT_EYE_CORNERS),
    )
    # eye aspect ratio: about 0.3 open, under 0.1 closed
    measure("EyesOpen", eyes, "lid gap / eye width", _ramp(eyes, 0.08, 0.2))
    lips = np.linalg.norm(p[MESH.UPPER_INNER_LIP, :2] - p[MESH.LOWER_INNER_LIP, :2])
    corners = p[MESH.MOUTH_CORNERS[0], :2] - p[MESH.MOUTH_CORNERS[1], :2]
    mouth = float(lips / max(np.linalg.norm(corners), 1e-6))
    measure("MouthClosed", mouth, "lip gap / mouth width", _ramp(mouth, 0.4, 0.1))

    luma = _face_crop(image, mesh)
    sharp = _sharpness(luma)
    # sharp faces measure 5 to 20; a Gaussian blur of 1.5 face-crop pixels brings them to 1-3
    score = _ramp(math.log10(max(sharp, 1e-3)), math.log10(1.5), math.log10(6.0))
    measure("Sharpness", sharp, "% Laplacian / luminance variance", score)
    _luminance(measure, float(luma.mean()) / 255)
    # OFIQ's ranges: under-exposed at grey level 25 or less, over-exposed at 247 or more
    dark = float((luma <= 25).mean())
    measure("UnderExposurePrevention", dark, "fraction of face", _ramp(dark, 0.5, 0.0))
    bright = float((luma >= 247).mean())
    measure("OverExposurePrevention", bright, "fraction of face", _ramp(bright, 0.5, 0.0))
    uniform = _uniformity(luma)
    measure("IlluminationUniformity", uniform, "histogram intersection", _ramp(uniform, 0.3, 0.9))
    box = (p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max())
    gradient = _background(gray, gray_scale, box)
    if math.isnan(gradient):
        measure("BackgroundUniformity", None, "grey levels per pixel", 100)
    else:
        measure("BackgroundUniformity", gradient, "grey levels per pixel", _ramp(gradient, 25, 3))
    return measures
