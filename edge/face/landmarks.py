"""MediaPipe's face-landmark model (the 468-point face mesh) on LiteRT.

The detector's box and eyes give a region of interest as MediaPipe's face_landmark graph
builds it: a square 1.5 times the box's longer side, turned so the eyes lie level. That region
is cropped to the model's 192x192 input in [0, 1]; the model returns 468 (x, y, z) points in the
crop's pixels and a face-presence logit. The points are mapped back into the frame; z keeps the
crop's scale (pixels of the frame), with smaller z nearer the camera.

The indices below name the points the quality measures use (from the canonical face mesh).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .detectors import Detection
from .image import rotated_crop
from .models import load_interpreter

__all__ = ["MESH", "FaceMesh", "Mesh"]

ROI_SCALE = 1.5  # MediaPipe's face_detection_front_detection_to_roi: scale_x/y 1.5
PRESENCE_THRESHOLD = 0.5


class MESH:
    """Indices into the 468-point mesh, named from the image's point of view.

    "Image-left" is the subject's right: the mesh is not mirrored.
    """

    LEFT_EYE_CONTOUR = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
    RIGHT_EYE_CONTOUR = (
        263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466,
    )  # fmt: skip
    # eyelids (upper, lower) and corners (outer, inner) of each eye
    LEFT_EYE_LIDS = ((159, 145), (158, 153), (160, 144))
    LEFT_EYE_CORNERS = (33, 133)
    RIGHT_EYE_LIDS = ((386, 374), (385, 380), (387, 373))
    RIGHT_EYE_CORNERS = (263, 362)
    UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
    MOUTH_CORNERS = (78, 308)
    FOREHEAD, CHIN = 10, 152
    LEFT_CHEEK, RIGHT_CHEEK = 234, 454
    NOSE_TIP = 1


@dataclass(frozen=True)
class Mesh:
    """The 468 points (x, y, z) of one face in frame pixels, and the model's presence score."""

    points: np.ndarray
    presence: float

    @property
    def left_eye(self) -> np.ndarray:
        """Centre of the image-left eye (x, y): the mean of its contour."""
        return self.points[list(MESH.LEFT_EYE_CONTOUR), :2].mean(axis=0)

    @property
    def right_eye(self) -> np.ndarray:
        """Centre of the image-right eye (x, y)."""
        return self.points[list(MESH.RIGHT_EYE_CONTOUR), :2].mean(axis=0)


class FaceMesh:
    """The landmark model; :meth:`landmarks` runs it on one detected face."""

    def __init__(self, model_dir: Path | None = None, threads: int = 1) -> None:
        self._interpreter = load_interpreter("face-landmark", model_dir, threads)
        (entry,) = self._interpreter.get_input_details()
        self._input = entry["index"]
        self.size = int(entry["shape"][1])
        # outputs: the mesh (1, 1, 1, 1404) and the presence logit (1, 1, 1, 1)
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: -d["shape"][-1])
        self._points, self._presence = outputs[0]["index"], outputs[1]["index"]

    def landmarks(self, image: Image.Image, detection: Detection) -> Mesh | None:
        """The mesh of the face *detection* found in *image*, or None if the model sees none."""
        left, top, right, bottom = detection.box
        centre = ((left + right) / 2, (top + bottom) / 2)
        side = max(right - left, bottom - top) * ROI_SCALE
        eye_a, eye_b = detection.keypoints[0], detection.keypoints[1]
        angle = math.atan2(eye_b[1] - eye_a[1], eye_b[0] - eye_a[0])
        crop, matrix = rotated_crop(image, centre, side, angle, self.size)
        tensor = (np.asarray(crop, dtype=np.float32) / 255.0)[np.newaxis]
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._points).reshape(-1, 3)
        logit = float(self._interpreter.get_tensor(self._presence).ravel()[0])
        presence = 1.0 / (1.0 + math.exp(-max(-80.0, min(80.0, logit))))
        if presence < PRESENCE_THRESHOLD:
            return None
        points = np.empty_like(raw, dtype=np.float64)
        points[:, :2] = raw[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        points[:, 2] = raw[:, 2] * (side / self.size)
        return Mesh(points, presence)
