"""Face detectors as plugins behind one small interface (as Frigate's detectors are).

A detector is anything with ``detect(frame) -> list[Detection]`` (a :class:`Detector`); the
settings name one from :data:`DETECTORS`, where :func:`register_detector` adds more (a Coral
TPU or Hailo build later) without touching the analyzer. The first are MediaPipe's BlazeFace
models on LiteRT:

* ``blazeface-short``: 128x128 input, faces within about 2 m (the kiosk's traveller, portraits);
* ``blazeface-full``: 192x192 input, faces up to about 5 m (small faces in a wide frame);
* ``blazeface`` (the default): short range, then full range on frames where it found nothing.

Pre- and post-processing are ours, following MediaPipe's graphs (face_detection_*_common.pbtxt):
the frame is letterboxed into the square input scaled to [-1, 1]; each anchor of an SSD grid
regresses a box and six keypoints relative to itself; scores are sigmoids; overlapping boxes are
merged by weighted non-maximum suppression (a score-weighted mean of the cluster, steadier than
keeping the best one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from .models import load_interpreter

__all__ = [
    "DETECTORS",
    "BlazeFace",
    "Cascade",
    "Detection",
    "Detector",
    "make_detector",
    "register_detector",
    "ssd_anchors",
    "weighted_nms",
]


@dataclass(frozen=True)
class Detection:
    """A face found in a frame, in the frame's pixel coordinates.

    ``box`` is (left, top, right, bottom); ``keypoints`` is a (6, 2) array: the two eyes (the
    image-left one first), nose tip, mouth centre, and the two ear tragions.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


class Detector(Protocol):
    """What the analyzer needs from a detector: faces in an RGB uint8 frame."""

    name: str

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


DetectorFactory = Callable[[float, Path | None, int], Detector]
"""Builds a detector from (minimum score, model directory or None, CPU threads)."""

DETECTORS: dict[str, DetectorFactory] = {}
"""Detector plugins by the name ``FaceSettings.detector`` uses."""


def register_detector(name: str) -> Callable[[DetectorFactory], DetectorFactory]:
    """Decorator: make a detector factory available under *name*."""

    def register(factory: DetectorFactory) -> DetectorFactory:
        DETECTORS[name] = factory
        return factory

    return register


def make_detector(name: str, min_score: float, model_dir: Path | None, threads: int) -> Detector:
    """The detector registered as *name* (the settings have checked that it exists)."""
    return DETECTORS[name](min_score, model_dir, threads)


def ssd_anchors(size: int, strides: tuple[int, ...], per_cell: tuple[int, ...]) -> np.ndarray:
    """Anchor centres (N, 2), normalised to [0, 1], in the order the model emits its outputs.

    MediaPipe's SsdAnchorsCalculator with fixed-size anchors reduces to this: for each feature
    map (one per distinct stride), every cell's centre repeated once per anchor of that cell.
    """
    anchors = []
    for stride, count in zip(strides, per_cell, strict=True):
        cells = size // stride
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        xs, ys = np.meshgrid(centres, centres)
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        anchors.append(np.repeat(grid, count, axis=0))
    return np.concatenate(anchors)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    left = np.maximum(box[0], boxes[:, 0])
    top = np.maximum(box[1], boxes[:, 1])
    right = np.minimum(box[2], boxes[:, 2])
    bottom = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Merge overlapping detections: each cluster becomes its score-weighted mean.

    *boxes* (N, 4) as left, top, right, bottom; *keypoints* (N, K, 2); *scores* (N,). Returns
    (box, keypoints, best score) per cluster, best first.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), dtype=bool)
    merged = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (_iou(boxes[i], boxes) > iou_threshold)
        cluster[i] = True
        weights = scores[cluster] / scores[cluster].sum()
        box = (boxes[cluster] * weights[:, None]).sum(axis=0)
        points = (keypoints[cluster] * weights[:, None, None]).sum(axis=0)
        merged.append((box, points, float(scores[i])))
        remaining &= ~cluster
    return merged


class BlazeFace:
    """MediaPipe's BlazeFace on LiteRT; see the module's docstring for the steps."""

    RAW_SCORE_LIMIT = 80.0  # MediaPipe clips at 100; exp(100) overflows float32
    IOU_THRESHOLD = 0.3  # MediaPipe's min_suppression_threshold

    def __init__(
        self,
        name: str,
        model: str,
        strides: tuple[int, ...],
        per_cell: tuple[int, ...],
        min_score: float,
        model_dir: Path | None,
        threads: int,
    ) -> None:
        self.name = name
        self.min_score = min_score
        self._interpreter = load_interpreter(model, model_dir, threads)
        (entry,) = self._interpreter.get_input_details()
        self._input = entry["index"]
        self.size = int(entry["shape"][1])
        # outputs: regressors (1, N, 16) and classificators (1, N, 1); told apart by shape
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: -d["shape"][-1])
        self._regressors, self._scores = outputs[0]["index"], outputs[1]["index"]
        self.anchors = ssd_anchors(self.size, strides, per_cell)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces in *frame* (RGB uint8), best first, in the frame's pixel coordinates."""
        height, width = frame.shape[:2]
        tensor, scale, offset = self._letterbox(frame)
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._regressors)[0]
        logits = self._interpreter.get_tensor(self._scores)[0, :, 0]
        logits = np.clip(logits, -self.RAW_SCORE_LIMIT, self.RAW_SCORE_LIMIT)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep] / self.size, scores[keep], self.anchors[keep]
        centres = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1)
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        detections = []
        for box, points, score in weighted_nms(
            boxes[valid], keypoints[valid], scores[valid], self.IOU_THRESHOLD
        ):
            # from the model's square input (normalised) back to the frame's pixels
            box = (box * self.size - np.tile(offset, 2)) / scale
            points = (points * self.size - offset) / scale
            box = np.clip(box, 0, [width, height, width, height])
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            detections.append(Detection(tuple(float(v) for v in box), score, points))
        return detections

    def _letterbox(self, frame: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """The frame scaled to fit the model's square input, centred, padded black, in [-1, 1].

        Returns the input tensor, the scale (input pixels per frame pixel) and the offset of
        the frame's top-left corner in the input.
        """
        height, width = frame.shape[:2]
        scale = self.size / max(width, height)
        inner = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = np.asarray(
            Image.fromarray(frame).resize(inner, Image.Resampling.BILINEAR, reducing_gap=2.0)
        )
        offset = np.array([(self.size - inner[0]) // 2, (self.size - inner[1]) // 2])
        tensor = np.full((1, self.size, self.size, 3), -1.0, dtype=np.float32)
        tensor[0, offset[1] : offset[1] + inner[1], offset[0] : offset[0] + inner[0]] = (
            resized.astype(np.float32) / 127.5 - 1.0
        )
        # the scale actually applied on each axis differs from *scale* by rounding; use x's
        return tensor, inner[0] / width, offset.astype(np.float32)


@register_detector("blazeface-short")
def _blazeface_short(min_score: float, model_dir: Path | None, threads: int) -> Detector:
    # face_detection_short_range_common.pbtxt: strides 8, 16, 16, 16 with 2 anchors per
    # cell and layer, so 16x16x2 + 8x8x6 = 896 anchors
    return BlazeFace(
        "blazeface-short", "blazeface-short", (8, 16), (2, 6), min_score, model_dir, threads
    )


@register_detector("blazeface-full")
def _blazeface_full(min_score: float, model_dir: Path | None, threads: int) -> Detector:
    # face_detection_full_range_common.pbtxt: one layer of stride 4, one anchor per cell:
    # 48x48 = 2304 anchors
    return BlazeFace("blazeface-full", "blazeface-full", (4,), (1,), min_score, model_dir, threads)


class Cascade:
    """Detectors tried in turn: the first that finds a face answers for the frame."""

    def __init__(self, name: str, detectors: list[Detector]) -> None:
        self.name = name
        self.detectors = detectors

    def detect(self, frame: np.ndarray) -> list[Detection]:
        for detector in self.detectors:
            found = detector.detect(frame)
            if found:
                return found
        return []


@register_detector("blazeface")
def _blazeface(min_score: float, model_dir: Path | None, threads: int) -> Detector:
    # The short-range model misses faces under about a quarter of the frame's height, the
    # full-range one misses some that fill it: short range first (the traveller at the kiosk),
    # full range only when it sees nothing (a traveller still approaching is told "move
    # closer" rather than "look at the camera"); 3-4 ms more, on empty frames only.
    return Cascade(
        "blazeface",
        [
            _blazeface_short(min_score, model_dir, threads),
            _blazeface_full(min_score, model_dir, threads),
        ],
    )
