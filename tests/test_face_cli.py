"""``borderlane-edge face check`` and ``face compare``, run as a technician runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from harness import faces

COMMAND = Path(sys.executable).parent / "borderlane-edge"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [COMMAND, "face", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faces")
    paths = {
        "traveller": folder / "traveller.jpg",
        "portrait": folder / "dg2.jp2",
        "other": folder / "specimen.jpg",
        "cat": folder / "cat.png",
        "two": folder / "two.png",
        "text": folder / "notes.jpg",
    }
    Image.fromarray(faces.kiosk_frame()).save(paths["traveller"], quality=92)
    Image.fromarray(faces.astronaut()).save(paths["portrait"])  # JPEG 2000
    Image.fromarray(faces.specimen()).save(paths["other"], quality=92)
    Image.fromarray(faces.no_face_images()["cat"]).save(paths["cat"])
    Image.fromarray(faces.two_travellers()).save(paths["two"])
    paths["text"].write_text("not a picture\n")
    return paths


def test_check_prints_faces_and_every_measure_per_image(images):
    result = run("check", str(images["traveller"]), str(images["cat"]), str(images["portrait"]))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # LiteRT's own start-up chatter is kept off the terminal
    out = result.stdout
    assert f"{images['traveller']}: 640x480" in out
    assert "face 1: box (" in out and "eyes (" in out
    assert "usable: yes" in out
    for name in ("SingleFacePresent", "InterEyeDistance", "HeadPoseYaw", "Sharpness"):
        assert name in out
    cat = out.split(f"{images['cat']}:")[1].split(f"{images['portrait']}:")[0]
    assert "faces: []" in cat and "advice: Look at the camera / Mire a la cámara" in cat
    portrait = out.split(f"{images['portrait']}:")[1]
    assert "advice: Move closer / Acérquese" in portrait


def test_check_json_is_one_object_per_image(images):
    result = run("check", "--json", str(images["two"]), str(images["cat"]))
    assert result.returncode == 0, result.stderr
    two, cat = (json.loads(line) for line in result.stdout.splitlines())
    assert two["image"] == str(images["two"]) and len(two["faces"]) == 2
    assert set(two["faces"][0]) == {"box", "score", "eyes", "landmarks"}
    assert two["quality"]["SingleFacePresent"]["passed"] is False
    assert two["advice"][0]["code"] == "one_person"
    assert cat["faces"] == [] and cat["usable"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("check", "{text}"), "{text}: not a JPEG, JPEG 2000 or PNG image"),
        (("check", "{traveller}", "/nonexistent.jpg"), "/nonexistent.jpg: No such file"),
        (("compare", "{traveller}", "{text}"), "{text}: not a JPEG, JPEG 2000 or PNG image"),
        (("check",), "Missing argument"),
    ],
)
def test_what_cannot_be_read_is_one_line_and_exit_2(images, args, message):
    names = {key: str(path) for key, path in images.items()}
    result = run(*(arg.format(**names) for arg in args))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert message.format(**names) in lines[0]


def test_compare_says_same_and_different(images):
    same = run("compare", str(images["traveller"]), str(images["portrait"]))
    assert same.returncode == 0, same.stderr
    assert "decision: same" in same.stdout and "similarity: 0." in same.stdout
    different = run("compare", "--json", str(images["traveller"]), str(images["other"]))
    result = json.loads(different.stdout)
    assert result["decision"] == "different" and result["similarity"] < result["threshold"]


def test_compare_without_a_face_is_no_face(images):
    result = run("compare", str(images["traveller"]), str(images["cat"]))
    assert result.returncode == 0
    assert "decision: no_face" in result.stdout
    assert f"no face in: {images['cat']}" in result.stdout


def test_the_config_files_face_table_is_used(images, tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text("[face]\nmatch_threshold = 0.99\n[face.thresholds]\nMouthClosed = 100\n")
    compare = run(
        "compare",
        "--json",
        "--config",
        str(config),
        *map(str, (images["traveller"], images["portrait"])),
    )
    assert json.loads(compare.stdout)["decision"] == "different"
    check = run("check", "--json", "--config", str(config), str(images["traveller"]))
    assert json.loads(check.stdout)["quality"]["MouthClosed"]["threshold"] == 100
    config.write_text("[face]\nmatch_treshold = 0.5\n")
    bad = run("check", "--config", str(config), str(images["traveller"]))
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        f"Error: {config}: face.match_treshold: unknown key (known: detector, match_threshold, "
        "max_faces, min_detection_score, model_dir, threads, thresholds)"
    )


@pytest.mark.parametrize("command", ["check", "compare"])
def test_help_has_examples(command):
    result = run(command, "--help")
    assert result.returncode == 0
    assert "Examples:" in result.stdout and f"borderlane-edge face {command}" in result.stdout
