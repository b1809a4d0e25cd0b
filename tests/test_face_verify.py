"""1:1 verification with dlib's ResNet embedding: the same person in two pictures, another
person, no face; and the model files are the ones whose SHA-256 we recorded."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edge.face import FaceAnalyzer, FaceModelError, Verification, decode_portrait
from edge.face.models import MODELS, model_path, read_model
from edge.face.verify import similarity
from harness import faces


def verify(live, portrait) -> Verification:
    return faces.analyzer().verify(live, portrait)


@pytest.mark.parametrize(
    "portrait",
    [
        pytest.param(lambda: faces.astronaut(), id="the-original-photo"),
        pytest.param(lambda: faces.dimmed(faces.astronaut(), 0.45), id="dimmed"),
        pytest.param(lambda: faces.turned(faces.astronaut(), 12), id="turned"),
        pytest.param(
            lambda: decode_portrait(
                faces.encoded(faces.blurred(faces.astronaut(), 1.0), "JPEG", quality=30)
            ),
            id="blurred-jpeg-q30",
        ),
    ],
)
def test_the_same_person_is_same(portrait):
    result = verify(faces.kiosk_frame(), portrait())
    assert result.decision == "same", result
    assert result.similarity >= result.threshold
    assert result.model_id == "dlib-resnet-v1"


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(faces.specimen, id="specimen"),
        pytest.param(faces.cameraman, id="cameraman"),
    ],
)
def test_another_person_is_different(other):
    result = verify(faces.kiosk_frame(), other())
    assert result.decision == "different", result
    assert result.similarity < result.threshold
    assert result.live_face and result.portrait_face


def test_identical_pictures_score_one_and_the_score_is_symmetric():
    a, b = faces.kiosk_frame(), faces.specimen()
    assert verify(a, a).similarity == pytest.approx(1.0)
    assert verify(a, b).similarity == pytest.approx(verify(b, a).similarity)
    assert similarity(np.zeros(128), np.ones(128)) == 0.0  # far apart: clipped at 0


@pytest.mark.parametrize("side", ["live", "portrait", "both"])
def test_no_face_on_either_side_is_no_face(side):
    cat = faces.no_face_images()["cat"]
    live = cat if side in ("live", "both") else faces.kiosk_frame()
    portrait = cat if side in ("portrait", "both") else faces.specimen()
    result = verify(live, portrait)
    assert result.decision == "no_face" and result.similarity is None
    assert result.live_face == (side == "portrait")
    assert result.portrait_face == (side == "live")
    assert result.to_dict()["similarity"] is None


def test_a_known_live_face_is_not_detected_again():
    analysis = faces.analyzer().analyze(faces.kiosk_frame())
    given = verify(faces.kiosk_frame(), faces.astronaut())
    reused = faces.analyzer().verify(
        faces.kiosk_frame(), faces.astronaut(), live_face=analysis.best_face
    )
    assert reused.similarity == pytest.approx(given.similarity)


def test_the_threshold_comes_from_the_settings():
    lenient = FaceAnalyzer.from_config({"match_threshold": 0.05})
    result = lenient.verify(faces.kiosk_frame(), faces.specimen())
    assert result.threshold == 0.05 and result.decision == "same"


def test_every_model_file_has_its_recorded_digest():
    for name in MODELS:
        path, content = read_model(name)
        assert path.is_file() and len(content) > 100_000, name


def test_models_can_be_loaded_from_a_folder(tmp_path):
    for name in ("blazeface-short", "blazeface-full", "face-landmark"):
        shutil.copy(model_path(name), tmp_path)
    analyzer = FaceAnalyzer.from_config({"model_dir": str(tmp_path)})
    assert len(analyzer.analyze(faces.kiosk_frame()).faces) == 1


def test_an_altered_model_is_refused(tmp_path):
    for name in ("blazeface-short", "blazeface-full", "face-landmark"):
        shutil.copy(model_path(name), tmp_path)
    landmark = tmp_path / MODELS["face-landmark"].filename
    data = bytearray(landmark.read_bytes())
    data[len(data) // 2] ^= 0xFF
    landmark.write_bytes(bytes(data))
    with pytest.raises(
        FaceModelError, match=r"face-landmark: .* has SHA-256 [0-9a-f]{64}, expected"
    ):
        FaceAnalyzer.from_config({"model_dir": str(tmp_path)})


def test_a_missing_model_is_named(tmp_path):
    with pytest.raises(FaceModelError, match="model blazeface-short: no file"):
        FaceAnalyzer.from_config({"model_dir": str(tmp_path), "detector": "blazeface-short"})
