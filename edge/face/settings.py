"""``FaceSettings``: the ``[face]`` table of kiosk.toml, checked strictly.

Unknown keys are refused (a misspelt threshold must not silently keep its default), and every
value is range-checked; the error names the key's full path::

    [face]
    detector = "blazeface"           # or "blazeface-short" / "blazeface-full" alone
    match_threshold = 0.5            # similarity at or above which two faces are "same"

    [face.thresholds]                # 0-100 per OFIQ measure; omitted ones keep their default
    Sharpness = 60
    BackgroundUniformity = 0         # 0 makes a measure advisory: scored, never failing
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .detectors import DETECTORS
from .errors import FaceSettingsError
from .quality import MEASURES

__all__ = ["DEFAULT_THRESHOLDS", "MATCH_THRESHOLD", "FaceSettings"]

DEFAULT_THRESHOLDS: Mapping[str, int] = MappingProxyType(
    {
        "SingleFacePresent": 50,  # a second face at least half the size of the first fails
        "InterEyeDistance": 50,  # 60 pixels
        "HeadSize": 50,
        "LeftwardCropOfTheFaceImage": 90,
        "RightwardCropOfTheFaceImage": 90,
        "MarginAboveOfTheFaceImage": 90,
        "MarginBelowOfTheFaceImage": 75,
        "HeadPoseYaw": 88,  # about ±20 degrees (score 100·cos²)
        "HeadPosePitch": 88,
        "HeadPoseRoll": 88,
        "EyesOpen": 50,
        "MouthClosed": 50,
        "Sharpness": 50,
        "LuminanceMean": 50,
        "UnderExposurePrevention": 60,
        "OverExposurePrevention": 60,
        "IlluminationUniformity": 40,
        # a live frame has whatever stands behind the traveller: scored for the officer, advisory
        "BackgroundUniformity": 0,
    }
)
"""The threshold of each measure when the settings do not give one."""

MATCH_THRESHOLD = 0.5
"""Similarity (1 - dlib distance) at or above which two faces are the same person.

dlib's published operating point, distance 0.6 (similarity 0.4), is tuned for accuracy on LFW
(99.38%), not for the border's false-match rate of 0.1% or less. We take distance 0.5: stricter,
because the labelled pairs we can measure offline (``make bench``, README "Face checks") are too
few to show 0.1% by themselves: there, real second photos of one person scored 0.57 to 0.75 and
no impostor pair above 0.36."""


@dataclass(frozen=True)
class FaceSettings:
    """Everything the face package can be told; build it with :meth:`from_dict`."""

    detector: str = "blazeface"
    min_detection_score: float = 0.5
    max_faces: int = 4
    threads: int = 1
    match_threshold: float = MATCH_THRESHOLD
    model_dir: Path | None = None
    thresholds: Mapping[str, int] = field(default_factory=lambda: DEFAULT_THRESHOLDS)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "face") -> FaceSettings:
        """Settings from a TOML table; :class:`FaceSettingsError` names any bad key.

        *path* prefixes the key in messages (``face.thresholds.Sharpness``). A relative
        ``model_dir`` is kept as given: the caller resolves it against the config's folder.
        """
        if not isinstance(data, Mapping):
            raise FaceSettingsError(path, f"expected a table, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise FaceSettingsError(
                    f"{path}.{key}", f"unknown key (known: {', '.join(sorted(known))})"
                )
        detector = data.get("detector", cls.detector)
        if detector not in DETECTORS:
            raise FaceSettingsError(
                f"{path}.detector", f"one of {', '.join(sorted(DETECTORS))}, got {detector!r}"
            )
        model_dir = data.get("model_dir")
        if model_dir is not None and (not isinstance(model_dir, str) or not model_dir):
            raise FaceSettingsError(f"{path}.model_dir", f"a folder path, got {model_dir!r}")
        table = data.get("thresholds", {})
        if not isinstance(table, Mapping):
            raise FaceSettingsError(f"{path}.thresholds", "expected a table of measure = 0..100")
        thresholds = dict(DEFAULT_THRESHOLDS)
        for name, value in table.items():
            if name not in MEASURES:
                raise FaceSettingsError(
                    f"{path}.thresholds.{name}", f"unknown measure (known: {', '.join(MEASURES)})"
                )
            thresholds[name] = int(_number(value, f"{path}.thresholds.{name}", 0, 100, whole=True))
        return cls(
            detector=detector,
            min_detection_score=_number(
                data.get("min_detection_score", cls.min_detection_score),
                f"{path}.min_detection_score",
                0.05,
                0.99,
            ),
            max_faces=int(
                _number(
                    data.get("max_faces", cls.max_faces), f"{path}.max_faces", 1, 16, whole=True
                )
            ),
            threads=int(
                _number(data.get("threads", cls.threads), f"{path}.threads", 1, 8, whole=True)
            ),
            match_threshold=_number(
                data.get("match_threshold", cls.match_threshold), f"{path}.match_threshold", 0, 1
            ),
            model_dir=Path(model_dir).expanduser() if model_dir else None,
            thresholds=MappingProxyType(thresholds),
        )


def _number(value: Any, path: str, low: float, high: float, whole: bool = False) -> float:
    kinds = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        what = "a whole number" if whole else "a number"
        raise FaceSettingsError(path, f"{what} in {low:g}..{high:g}, got {value!r}")
    return float(value)
