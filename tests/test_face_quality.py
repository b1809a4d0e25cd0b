"""Portrait quality (ISO/IEC 29794-5, OFIQ's measure names) on real photographs made worse the
ways a kiosk camera makes them worse, and the advice the traveller gets for each."""

from __future__ import annotations

import numpy as np
import pytest

from edge.face import ADVICE, MEASURES, BestFrame, FaceAnalyzer
from harness import faces


def analyze(frame):
    return faces.analyzer().analyze(frame)


def codes(analysis) -> list[str]:
    return [advice.code for advice in analysis.advice]


def test_a_well_framed_traveller_passes_every_measure():
    analysis = analyze(faces.kiosk_frame())
    assert analysis.usable, analysis.failed
    assert list(analysis.quality) == list(MEASURES)
    assert analysis.advice == ()
    for measure in analysis.quality.values():
        assert 0 <= measure.score <= 100
    # the portrait of a frontal face: pose near zero
    for name in ("HeadPoseYaw", "HeadPosePitch", "HeadPoseRoll"):
        assert abs(analysis.quality[name].native) < 12, name


def test_a_face_too_far_away_is_told_to_move_closer():
    analysis = analyze(faces.framed(faces.astronaut(), faces.ASTRONAUT_FACE, height=200))
    assert "InterEyeDistance" in analysis.failed
    assert codes(analysis)[0] == "move_closer"


def test_a_face_too_near_is_told_to_move_back():
    # only the eyes to the chin fill the frame
    close = faces.framed(faces.astronaut(), (165, 85, 285, 185), height=480)
    analysis = analyze(close)
    assert analysis.best_face is not None
    assert "HeadSize" in analysis.failed
    assert "move_back" in codes(analysis)


def test_a_face_at_the_edge_of_the_frame_is_told_to_centre():
    frame = np.full((480, 640, 3), 128, dtype=np.uint8)
    frame[:, :380] = faces.kiosk_frame()[:, 260:]  # the left cheek touches the frame's edge
    analysis = analyze(frame)
    assert analysis.best_face is not None
    assert "LeftwardCropOfTheFaceImage" in analysis.failed
    assert "centre_face" in codes(analysis)


@pytest.mark.parametrize("degrees", [15, -15])
def test_head_roll_is_measured_and_small_tilts_pass(degrees):
    upright = analyze(faces.kiosk_frame()).quality["HeadPoseRoll"].native
    analysis = analyze(faces.turned(faces.kiosk_frame(), degrees))
    roll = analysis.quality["HeadPoseRoll"]
    # turning the picture counter-clockwise tilts the image-right eye up: negative roll
    assert roll.native == pytest.approx(upright - degrees, abs=5)
    assert roll.passed


@pytest.mark.parametrize("degrees", [45, -45, 90])
def test_a_tilted_head_is_told_to_keep_straight(degrees):
    analysis = analyze(faces.turned(faces.kiosk_frame(), degrees))
    assert "HeadPoseRoll" in analysis.failed
    assert "head_straight" in codes(analysis)


def test_mirroring_the_face_mirrors_yaw_and_roll():
    frame = faces.kiosk_frame()
    plain = analyze(frame).quality
    mirrored = analyze(np.ascontiguousarray(frame[:, ::-1])).quality
    for name in ("HeadPoseYaw", "HeadPoseRoll"):
        assert mirrored[name].native == pytest.approx(-plain[name].native, abs=4), name
    assert mirrored["HeadPosePitch"].native == pytest.approx(plain["HeadPosePitch"].native, abs=3)


def test_a_face_turned_away_is_told_to_look_at_the_camera():
    analysis = analyze(faces.cameraman())  # the cameraman looks at his camera, not ours
    assert analysis.best_face is not None
    assert abs(analysis.quality["HeadPoseYaw"].native) > 25
    assert "HeadPoseYaw" in analysis.failed
    assert "look_at_camera" in codes(analysis)


def test_a_dark_frame_is_too_dark_but_not_blurred():
    analysis = analyze(faces.dimmed(faces.kiosk_frame(), 0.12))
    assert analysis.best_face is not None
    assert {"LuminanceMean", "UnderExposurePrevention"} <= set(analysis.failed)
    assert analysis.quality["LuminanceMean"].native < 0.15
    assert "Sharpness" not in analysis.failed  # dim light is not motion blur
    assert "too_dark" in codes(analysis)


def test_a_frame_too_dark_to_find_a_face_says_too_dark():
    analysis = analyze(faces.dimmed(faces.cameraman(), 0.1))
    assert analysis.faces == ()
    assert codes(analysis) == ["too_dark"]


def test_an_empty_frame_asks_to_look_at_the_camera():
    analysis = analyze(faces.no_face_images()["grey"])
    assert codes(analysis) == ["look_at_camera"]
    assert ADVICE["look_at_camera"].es == "Mire a la cámara"


def test_an_overexposed_face_is_too_bright():
    frame = faces.kiosk_frame().astype(np.int32)
    analysis = analyze(np.clip(frame * 1.9 + 40, 0, 255).astype(np.uint8))
    assert analysis.best_face is not None
    assert "OverExposurePrevention" in analysis.failed
    assert "too_bright" in codes(analysis)


@pytest.mark.parametrize("radius", [2.5, 4])
def test_a_blurred_face_is_told_to_hold_still(radius):
    analysis = analyze(faces.blurred(faces.kiosk_frame(), radius))
    assert analysis.best_face is not None
    assert "Sharpness" in analysis.failed
    assert "hold_still" in codes(analysis)


def test_sharpness_falls_as_blur_grows():
    scores = [
        analyze(faces.blurred(faces.kiosk_frame(), radius)).quality["Sharpness"].native
        for radius in (0.01, 1, 2, 3)
    ]
    assert scores == sorted(scores, reverse=True)


def test_a_second_traveller_is_told_one_person():
    analysis = analyze(faces.two_travellers())
    assert "SingleFacePresent" in analysis.failed
    assert codes(analysis)[0] == "one_person"


def test_a_lit_side_and_a_dark_side_is_uneven_illumination():
    frame = faces.kiosk_frame().astype(np.float32)
    frame[:, 320:] *= 0.25  # light from the left only
    analysis = analyze(frame.astype(np.uint8))
    plain = analyze(faces.kiosk_frame())
    uneven = analysis.quality["IlluminationUniformity"]
    assert uneven.score < plain.quality["IlluminationUniformity"].score
    assert not uneven.passed


def test_background_uniformity_tells_a_plain_wall_from_a_busy_scene():
    plain = analyze(faces.kiosk_frame()).quality["BackgroundUniformity"]
    busy = analyze(faces.astronaut()).quality["BackgroundUniformity"]  # flag and shuttle
    assert plain.score == 100
    assert busy.score < 60
    assert busy.passed  # advisory by default: threshold 0


def test_thresholds_come_from_the_settings():
    strict = FaceAnalyzer.from_config({"thresholds": {"MouthClosed": 100, "Sharpness": 0}})
    analysis = strict.analyze(faces.kiosk_frame())
    assert analysis.quality["MouthClosed"].threshold == 100
    assert "MouthClosed" in analysis.failed  # the astronaut smiles
    assert codes(analysis) == ["close_mouth"]


def test_the_best_frame_is_kept_and_copied():
    best = BestFrame()
    dark = faces.dimmed(faces.kiosk_frame(), 0.12)
    good = faces.kiosk_frame().copy()
    assert best.offer(dark, analyze(dark))
    assert best.offer(good, analyze(good))
    assert not best.offer(dark, analyze(dark))
    good[:] = 0  # a camera reusing its buffer must not change the kept frame
    assert best.analysis.usable and best.frame.any()
    assert best.offered == 3


def test_every_measure_has_advice_in_english_and_spanish():
    from edge.face.quality import _ADVICE_FOR

    assert set(_ADVICE_FOR) == set(MEASURES)
    for advice in ADVICE.values():
        assert advice.en and advice.es and advice.en != advice.es
