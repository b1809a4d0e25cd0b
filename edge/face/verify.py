"""1:1 verification: is the live face the document's portrait? dlib's ResNet face embedding.

dlib's ``dlib_face_recognition_resnet_model_v1`` (public domain, shipped by the
``face-recognition-models`` package) maps an aligned 150x150 face chip to 128 numbers; two photos
of one person lie close together (Euclidean distance; dlib reports 99.38% on LFW at 0.6). The
chip is aligned by dlib's 5-point shape predictor (CC0) run inside our detector's box: the
embedding was trained on that alignment, so we keep it rather than align from our mesh.

We report ``similarity = 1 - distance`` (clipped at 0: higher is more alike, 1 is identical) so
a threshold reads the same way as every other score; the threshold is
``FaceSettings.match_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .detectors import Detection
from .models import read_model

__all__ = ["MODEL_ID", "Embedder", "Verification", "similarity"]

MODEL_ID = "dlib-resnet-v1"
"""Names the embedding in records, so scores from another model are never compared to it."""


@dataclass(frozen=True)
class Verification:
    """The outcome of one 1:1 comparison.

    ``decision`` is ``same`` or ``different`` at ``threshold``; ``no_face`` when either image
    has no usable face (``live_face`` / ``portrait_face`` say which), and then ``similarity``
    is None. The lane refers the traveller on anything but ``same``.
    """

    similarity: float | None
    threshold: float
    decision: str
    model_id: str
    live_face: bool
    portrait_face: bool

    def to_dict(self) -> dict:
        return {
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "threshold": self.threshold,
            "decision": self.decision,
            "model_id": self.model_id,
            "live_face": self.live_face,
            "portrait_face": self.portrait_face,
        }


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """1 - the Euclidean distance between two embeddings, clipped at 0."""
    return max(0.0, 1.0 - float(np.linalg.norm(a - b)))


class Embedder:
    """dlib's shape predictor and ResNet, loaded once (about 0.3 s), reused for every pair."""

    model_id = MODEL_ID

    def __init__(self, model_dir: Path | None = None) -> None:
        import dlib  # a compiled extension of 30 MB: loaded only by those who verify

        shape_path, _ = read_model("dlib-shape-5", model_dir)
        net_path, _ = read_model("dlib-resnet-v1", model_dir)
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(shape_path))
        self._net = dlib.face_recognition_model_v1(str(net_path))

    def embed(self, frame: np.ndarray, detection: Detection) -> np.ndarray:
        """The 128-number embedding of the face *detection* found in *frame* (RGB uint8)."""
        left, top, right, bottom = (round(v) for v in detection.box)
        shape = self._shape(frame, self._dlib.rectangle(left, top, right, bottom))
        return np.asarray(self._net.compute_face_descriptor(frame, shape), dtype=np.float64)
