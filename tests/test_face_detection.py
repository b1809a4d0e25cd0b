"""Face detection and landmarks on real photographs: BlazeFace on LiteRT, then the face mesh.

Checked against an independent detector (dlib's HOG frontal detector and 5-point landmarks),
against scikit-image's 100 LFW faces and 100 non-face patches, on images with no face and two
faces, and on turned, dimmed and blurred frames.
"""

from __future__ import annotations

import dlib
import numpy as np
import pytest

from edge.face import DETECTORS, Detection, FaceSettings, PortraitError, register_detector
from edge.face.analyzer import FaceAnalyzer
from edge.face.detectors import make_detector, ssd_anchors, weighted_nms
from edge.face.models import model_path
from harness import faces


def iou(a, b) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_anchors_follow_mediapipes_grids():
    short = ssd_anchors(128, (8, 16), (2, 6))
    full = ssd_anchors(192, (4,), (1,))
    assert short.shape == (16 * 16 * 2 + 8 * 8 * 6, 2) == (896, 2)
    assert full.shape == (48 * 48, 2)
    # first cell of the first map, twice (two anchors), then the next cell along x
    np.testing.assert_allclose(short[:3], [[0.5 / 16, 0.5 / 16]] * 2 + [[1.5 / 16, 0.5 / 16]])
    np.testing.assert_allclose(short[-1], [7.5 / 8, 7.5 / 8])


def test_weighted_nms_merges_a_cluster_and_keeps_a_separate_face():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=np.float32)
    points = np.zeros((3, 6, 2), dtype=np.float32)
    points[:, 0] = [[2, 2], [4, 2], [52, 52]]
    scores = np.array([0.9, 0.6, 0.8], dtype=np.float32)
    merged = weighted_nms(boxes, points, scores, 0.3)
    assert [round(score, 2) for _, _, score in merged] == [0.9, 0.8]
    # the cluster is the score-weighted mean: 0.6 of the way to the first box
    np.testing.assert_allclose(merged[0][0], [0.4, 0, 10.4, 10], atol=1e-5)
    np.testing.assert_allclose(merged[0][1][0], [2.8, 2], atol=1e-5)
    np.testing.assert_allclose(merged[1][0], boxes[2])


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_each_detector_finds_the_astronaut_where_dlib_does(name):
    (hog_box,) = [
        (r.left(), r.top(), r.right(), r.bottom())
        for r in dlib.get_frontal_face_detector()(faces.astronaut(), 1)
        if r.top() < 300  # dlib's HOG also fires on the suit's badge below the face
    ]
    found = make_detector(name, 0.5, None, 1).detect(faces.astronaut())
    assert len(found) == 1
    assert found[0].score > 0.8
    assert iou(found[0].box, hog_box) > 0.6


def test_eye_centres_agree_with_dlibs_landmarks():
    image = faces.astronaut()
    (face,) = faces.analyzer().analyze(image).faces
    predictor = dlib.shape_predictor(str(model_path("dlib-shape-5")))
    shape = predictor(image, dlib.rectangle(*(round(v) for v in face.box)))
    corners = np.array([(p.x, p.y) for p in shape.parts()], dtype=float)
    # dlib's 5 points: image-right eye's two corners, image-left eye's two, under the nose
    dlib_left, dlib_right = corners[2:4].mean(axis=0), corners[0:2].mean(axis=0)
    left, right = face.eyes
    ied = np.linalg.norm(dlib_right - dlib_left)
    assert np.linalg.norm(left - dlib_left) < 0.15 * ied
    assert np.linalg.norm(right - dlib_right) < 0.15 * ied


def test_lfw_faces_are_found_and_non_faces_are_not():
    found = sum(bool(faces.analyzer().faces(frame)) for frame in faces.lfw(faces=True))
    false_alarms = sum(bool(faces.analyzer().faces(frame)) for frame in faces.lfw(faces=False))
    assert found >= 95, f"{found} of 100 LFW faces found"
    assert false_alarms <= 3, f"{false_alarms} of 100 non-face patches taken for faces"


@pytest.mark.parametrize("name", sorted(faces.no_face_images()))
def test_images_without_a_face_give_no_face(name):
    analysis = faces.analyzer().analyze(faces.no_face_images()[name])
    assert analysis.faces == ()
    assert analysis.best_face is None
    assert not analysis.usable
    assert analysis.quality["SingleFacePresent"].score == 0


def test_two_travellers_are_two_faces_largest_first():
    analysis = faces.analyzer().analyze(faces.two_travellers())
    assert len(analysis.faces) == 2
    (a, b) = analysis.faces
    assert (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]) >= (b.box[2] - b.box[0]) * (
        b.box[3] - b.box[1]
    )
    # one on each half of the frame
    assert sorted(f.box[0] < 320 for f in analysis.faces) == [False, True]


@pytest.mark.parametrize("degrees", [-45, -20, 20, 45, 90])
def test_turned_faces_are_found_and_their_eyes_follow(degrees):
    upright = faces.analyzer().analyze(faces.kiosk_frame()).best_face
    face = faces.analyzer().analyze(faces.turned(faces.kiosk_frame(), degrees)).best_face
    assert face is not None and face.mesh is not None
    # the eyes turned about the frame's centre by the same angle (y points down)
    angle = np.radians(-degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([320, 240])
    expected = (np.array(upright.eyes) - centre) @ rotation.T + centre
    ied = np.linalg.norm(upright.eyes[1] - upright.eyes[0])
    assert np.linalg.norm(np.array(face.eyes) - expected, axis=1).max() < 0.2 * ied


def test_a_dim_frame_still_shows_the_face():
    assert len(faces.analyzer().analyze(faces.dimmed(faces.kiosk_frame(), 0.15)).faces) == 1


def test_a_detector_plugin_is_chosen_by_the_settings():
    calls = []

    class Everywhere:
        name = "test-everywhere"

        def detect(self, frame):
            calls.append(frame.shape)
            keypoints = np.array(
                [[270, 200], [370, 200], [320, 250], [320, 300], [230, 220], [410, 220]]
            )
            return [Detection((220.0, 120.0, 420.0, 340.0), 0.99, keypoints.astype(float))]

    register_detector("test-everywhere")(lambda score, folder, threads: Everywhere())
    try:
        analyzer = FaceAnalyzer.from_config({"detector": "test-everywhere"})
        analysis = analyzer.analyze(faces.kiosk_frame())
    finally:
        del DETECTORS["test-everywhere"]
    assert calls == [(480, 640, 3)]
    # the plugin's box lies on the astronaut's face, so the mesh confirms it
    assert len(analysis.faces) == 1 and analysis.faces[0].score == 0.99
    assert FaceSettings.from_dict({}).detector == "blazeface"


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((480, 640), dtype=np.uint8),
        np.zeros((480, 640, 4), dtype=np.uint8),
        np.zeros((480, 640, 3), dtype=np.float32),
        np.zeros((4, 4, 3), dtype=np.uint8),
        [[0, 0, 0]],
    ],
    ids=["grey", "rgba", "float", "tiny", "list"],
)
def test_a_frame_that_is_not_rgb_uint8_is_refused(frame):
    with pytest.raises(PortraitError):
        faces.analyzer().analyze(frame)
