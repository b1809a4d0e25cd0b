"""Faces on the kiosk: detection, landmarks, ISO/IEC 29794-5 portrait quality, 1:1 verification.

Pure inference: images in (numpy RGB arrays, or a document portrait's bytes), numbers out. No
camera, no network, no storage, no lane: the lane feeds frames and decides. Models come from
registry packages installed with the kiosk (:mod:`edge.face.models`), checked by SHA-256.

The API the lane uses:

* :class:`FaceSettings` (the ``[face]`` table, strict), :class:`FaceAnalyzer`
  (``from_config``, ``analyze``, ``verify``), :class:`Analysis`, :class:`BestFrame`,
  :class:`Verification`;
* :func:`decode_portrait` for DG2 / CBIC portraits (JPEG, JPEG 2000, PNG);
* :class:`FaceError` and its kinds: :class:`PortraitError` (bad image), :class:`FaceModelError`
  (a model missing or altered), :class:`FaceSettingsError` (bad configuration).
"""

from .analyzer import Analysis, BestFrame, Face, FaceAnalyzer
from .detectors import DETECTORS, Detection, Detector, register_detector
from .errors import FaceError, FaceModelError, FaceSettingsError, PortraitError
from .image import decode_portrait
from .quality import ADVICE, MEASURES, Advice, Measure
from .settings import DEFAULT_THRESHOLDS, FaceSettings
from .verify import Verification

__all__ = [
    "ADVICE",
    "DEFAULT_THRESHOLDS",
    "DETECTORS",
    "MEASURES",
    "Advice",
    "Analysis",
    "BestFrame",
    "Detection",
    "Detector",
    "Face",
    "FaceAnalyzer",
    "FaceError",
    "FaceModelError",
    "FaceSettings",
    "FaceSettingsError",
    "Measure",
    "PortraitError",
    "Verification",
    "decode_portrait",
    "register_detector",
]
