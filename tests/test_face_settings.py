"""``FaceSettings``: the ``[face]`` table is strict, and a bad key is named in full."""

from __future__ import annotations

import pytest

from edge.face import DEFAULT_THRESHOLDS, MEASURES, FaceSettings, FaceSettingsError


def test_defaults_cover_every_measure():
    settings = FaceSettings.from_dict({})
    assert settings == FaceSettings()
    assert set(settings.thresholds) == set(MEASURES) == set(DEFAULT_THRESHOLDS)
    assert settings.detector == "blazeface" and settings.match_threshold == 0.5


def test_given_values_are_kept_and_other_thresholds_keep_their_default():
    settings = FaceSettings.from_dict(
        {
            "detector": "blazeface-full",
            "match_threshold": 0.55,
            "threads": 2,
            "max_faces": 2,
            "min_detection_score": 0.6,
            "model_dir": "/opt/borderlane/models",
            "thresholds": {"Sharpness": 70, "BackgroundUniformity": 30},
        }
    )
    assert settings.detector == "blazeface-full"
    assert (settings.match_threshold, settings.threads, settings.max_faces) == (0.55, 2, 2)
    assert str(settings.model_dir) == "/opt/borderlane/models"
    assert settings.thresholds["Sharpness"] == 70
    assert settings.thresholds["BackgroundUniformity"] == 30
    assert settings.thresholds["EyesOpen"] == DEFAULT_THRESHOLDS["EyesOpen"]
    with pytest.raises(TypeError):
        settings.thresholds["EyesOpen"] = 0  # read-only: one analyzer, one set of rules


@pytest.mark.parametrize(
    ("table", "path", "words"),
    [
        ({"treshold": 1}, "face.treshold", "unknown key"),
        ({"thresholds": {"Sharpnes": 50}}, "face.thresholds.Sharpnes", "unknown measure"),
        ({"thresholds": {"Sharpness": 101}}, "face.thresholds.Sharpness", "0..100"),
        ({"thresholds": {"Sharpness": 50.5}}, "face.thresholds.Sharpness", "whole number"),
        ({"thresholds": {"Sharpness": True}}, "face.thresholds.Sharpness", "whole number"),
        ({"thresholds": [1, 2]}, "face.thresholds", "table"),
        ({"detector": "haar"}, "face.detector", "blazeface-full"),
        ({"match_threshold": "0.5"}, "face.match_threshold", "number in 0..1"),
        ({"match_threshold": 1.5}, "face.match_threshold", "number in 0..1"),
        ({"threads": 0}, "face.threads", "1..8"),
        ({"max_faces": 2.0}, "face.max_faces", "whole number"),
        ({"min_detection_score": 0}, "face.min_detection_score", "0.05..0.99"),
        ({"model_dir": ""}, "face.model_dir", "folder"),
    ],
)
def test_a_bad_key_is_named(table, path, words):
    with pytest.raises(FaceSettingsError) as caught:
        FaceSettings.from_dict(table)
    assert caught.value.path == path
    assert words in str(caught.value)


def test_a_table_is_required():
    with pytest.raises(FaceSettingsError, match="expected a table"):
        FaceSettings.from_dict(["detector"])
