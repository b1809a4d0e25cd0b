"""``FaceAnalyzer``: the one object the lane holds. Frames in, faces and quality out.

::

    analyzer = FaceAnalyzer.from_config(FaceSettings.from_dict(config.get("face", {})))
    analysis = analyzer.analyze(frame)          # RGB uint8 (H, W, 3), e.g. 640x480
    analysis.usable, analysis.advice[0].en      # "Move closer"
    portrait = decode_portrait(dg2_image_bytes) # JPEG / JPEG 2000 / PNG -> RGB array
    result = analyzer.verify(best.frame, portrait)
    result.decision                             # "same", "different" or "no_face"

Per frame: the detector finds faces; the landmark model runs on the largest ``max_faces`` of them
(a face it does not confirm is dropped: the detector's false alarms rarely survive it); the
quality measures are taken on the largest face. :class:`BestFrame` keeps the best frame the lane
has offered within its time budget. Nothing here reads a camera, a file or the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .detectors import Detection, make_detector
from .image import check_frame
from .landmarks import FaceMesh, Mesh
from .quality import Advice, Measure, advice_for, assess
from .settings import FaceSettings
from .verify import Embedder, Verification, similarity

__all__ = ["Analysis", "BestFrame", "Face", "FaceAnalyzer"]

GRAY_WIDTH = 160
"""Width the frame is reduced to for the background measure (detail there is not wanted)."""


@dataclass(frozen=True)
class Face:
    """One face: the detector's box, score and keypoints, and the landmark mesh."""

    detection: Detection
    mesh: Mesh | None

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.detection.box

    @property
    def score(self) -> float:
        return self.detection.score

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres of the image-left and image-right eyes: the mesh's, else the detector's."""
        if self.mesh is not None:
            return self.mesh.left_eye, self.mesh.right_eye
        a, b = self.detection.keypoints[0], self.detection.keypoints[1]
        return (a, b) if a[0] <= b[0] else (b, a)

    def to_dict(self) -> dict:
        left, right = self.eyes
        return {
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "eyes": {
                "left": [round(float(v), 1) for v in left],
                "right": [round(float(v), 1) for v in right],
            },
            "landmarks": self.mesh is not None,
        }


@dataclass(frozen=True)
class Analysis:
    """What one frame shows: the faces (largest first) and the largest face's quality."""

    faces: tuple[Face, ...]
    quality: Mapping[str, Measure]
    advice: tuple[Advice, ...]
    width: int
    height: int

    @property
    def best_face(self) -> Face | None:
        """The face the quality measures (and a verification) are about: the largest."""
        return self.faces[0] if self.faces else None

    @property
    def usable(self) -> bool:
        """One face with landmarks, every measure at or above its threshold."""
        return self.best_face is not None and all(m.passed for m in self.quality.values())

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(name for name, m in self.quality.items() if not m.passed)

    def rank(self) -> tuple[bool, int, int]:
        """Orders frames: usable first, then more measures passed, then higher scores."""
        passed = sum(m.passed for m in self.quality.values())
        return self.usable, passed, sum(m.score for m in self.quality.values())

    def to_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "faces": [face.to_dict() for face in self.faces],
            "usable": self.usable,
            "quality": {name: m.to_dict() for name, m in self.quality.items()},
            "advice": [{"code": a.code, "en": a.en, "es": a.es} for a in self.advice],
        }


@dataclass
class BestFrame:
    """The best frame offered so far, by :meth:`Analysis.rank`; the lane owns the time budget.

    The frame is copied: a camera backend may reuse its buffer for the next frame.
    """

    frame: np.ndarray | None = None
    analysis: Analysis | None = None
    offered: int = field(default=0)

    def offer(self, frame: np.ndarray, analysis: Analysis) -> bool:
        """Keep *frame* if it is better than the best so far; True if it was kept."""
        self.offered += 1
        if self.analysis is not None and analysis.rank() <= self.analysis.rank():
            return False
        self.frame, self.analysis = frame.copy(), analysis
        return True


class FaceAnalyzer:
    """Detector, landmark model and quality measures; the matcher loads on first use."""

    def __init__(self, settings: FaceSettings) -> None:
        self.settings = settings
        self.detector = make_detector(
            settings.detector, settings.min_detection_score, settings.model_dir, settings.threads
        )
        self.mesh = FaceMesh(settings.model_dir, settings.threads)
        self._embedder: Embedder | None = None

    @classmethod
    def from_config(cls, settings: FaceSettings | Mapping[str, Any] | None = None) -> FaceAnalyzer:
        """An analyzer from settings, or from a ``[face]`` table (checked), or the defaults.

        Loads and checks the models (their SHA-256): a :class:`FaceModelError` here means the
        kiosk cannot take faces at all, which the agent reports at start.
        """
        if settings is None:
            settings = FaceSettings()
        elif not isinstance(settings, FaceSettings):
            settings = FaceSettings.from_dict(settings)
        return cls(settings)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.settings.model_dir)
        return self._embedder

    def faces(self, frame: np.ndarray, image: Image.Image | None = None) -> list[Face]:
        """The faces in *frame* that the landmark model confirms, largest first."""
        frame = check_frame(frame)
        image = image or Image.fromarray(frame)
        detections = sorted(self.detector.detect(frame), key=lambda d: -d.width * d.height)
        faces = []
        for detection in detections[: self.settings.max_faces]:
            mesh = self.mesh.landmarks(image, detection)
            if mesh is not None:
                faces.append(Face(detection, mesh))
        return faces

    def analyze(self, frame: np.ndarray) -> Analysis:
        """Faces and quality of one RGB uint8 frame; raises PortraitError if it is not one."""
        frame = check_frame(frame)
        image = Image.fromarray(frame)
        faces = self.faces(frame, image)
        scale = min(1.0, GRAY_WIDTH / image.width)
        small = image.convert("L")
        if scale < 1.0:
            size = (GRAY_WIDTH, max(1, round(image.height * scale)))
            small = small.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        gray = np.asarray(small, dtype=np.float32)
        measures = assess(
            image,
            gray,
            scale,
            [(face.detection, face.mesh) for face in faces],
            self.settings.thresholds,
        )
        return Analysis(
            faces=tuple(faces),
            quality=measures,
            advice=tuple(advice_for(measures, len(faces))),
            width=image.width,
            height=image.height,
        )

    def embed(self, frame: np.ndarray, face: Face | None = None) -> np.ndarray | None:
        """The embedding of *face* (default: the largest face) in *frame*, or None if none."""
        if face is None:
            faces = self.faces(frame)
            if not faces:
                return None
            face = faces[0]
        return self.embedder.embed(check_frame(frame), face.detection)

    def verify(
        self,
        live: np.ndarray,
        portrait: np.ndarray,
        *,
        live_face: Face | None = None,
        portrait_face: Face | None = None,
    ) -> Verification:
        """Compare the largest face of *live* with the largest of *portrait* (RGB arrays).

        Pass ``live_face`` (e.g. ``best.analysis.best_face``) to skip detecting it again.
        """
        live_embedding = self.embed(live, live_face)
        portrait_embedding = self.embed(portrait, portrait_face)
        threshold = self.settings.match_threshold
        if live_embedding is None or portrait_embedding is None:
            return Verification(
                None,
                threshold,
                "no_face",
                self.embedder.model_id,
                live_embedding is not None,
                portrait_embedding is not None,
            )
        value = similarity(live_embedding, portrait_embedding)
        decision = "same" if value >= threshold else "different"
        return Verification(value, threshold, decision, self.embedder.model_id, True, True)
