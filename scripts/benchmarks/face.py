"""Faces on the kiosk: per-frame analysis time, 1:1 verification time, and match error rates.

Figures (issue 15):

* detection + landmarks + every quality measure on one 640x480 frame, CPU time on one core
  (LiteRT with one thread; target <= 30 ms): a traveller's frame (the short-range detector
  answers) and an empty frame (both detectors run: the worst case);
* decoding a JPEG 2000 portrait (a DG2's) and one 1:1 verification (two dlib embeddings);
* the match rates at the configured threshold (``FaceSettings.match_threshold``): true-match
  rate on genuine pairs (1 - FRR; Frontex: FRR <= 5%) and true-non-match rate on impostor
  pairs (1 - FAR; FAR <= 0.1%), shown as rates that are never 0 so the table stays readable.

The labelled photographs are few, and the figures say so. Real second photos of one person
come from the test images of the ``face_recognition`` 1.3.0 source distribution (MIT; fetched
from PyPI with pip into .bench/face-data, SHA-256 checked): five distinct photos of one person
(10 genuine pairs) and one of another; with scikit-image's astronaut and cameraman and the sim's
specimen portrait, 5 identities and 26 impostor pairs. Genuine pairs are also made by what a
camera does to a photo (turn 10 degrees, mirror, dim, blur, JPEG at quality 25, JPEG 2000 at
0.5 bit per pixel, half size): reported apart, they are not second photos. 26 impostor pairs
cannot show a FAR of 0.1% (that takes thousands); they show that nothing near the threshold
was seen. ``--quick`` uses the local images only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edge.face import FaceAnalyzer, decode_portrait
from edge.face.verify import similarity

from . import Figure, Proportion, at_least, at_most

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".bench" / "face-data"
SDIST = "face_recognition-1.3.0.tar.gz"
SDIST_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
# distinct photos only: 32bit.png is obama2.jpg again, in another format
PHOTOS = {
    "obama.jpg": "obama",
    "obama2.jpg": "obama",
    "obama3.jpg": "obama",
    "obama_partial_face.jpg": "obama",
    "obama_partial_face2.jpg": "obama",
    "biden.jpg": "biden",
}


def _faces_harness():
    """tests/harness/faces.py, imported by path (scripts are not a package of the tests)."""
    spec = importlib.util.spec_from_file_location(
        "borderlane_bench_faces", ROOT / "tests" / "harness" / "faces.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _registry_photos() -> dict[str, tuple[str, np.ndarray]]:
    """The face_recognition sdist's photos, by file name: (identity, RGB); {} without PyPI."""
    archive = DATA / SDIST
    if not archive.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        subprocess.run(
            [*pip, "--no-binary", ":all:", "face_recognition==1.3.0", "-d", str(DATA)],
            check=False,
            capture_output=True,
            timeout=300,
        )
    if not archive.exists():
        print("face: PyPI unreachable; local images only", file=sys.stderr)
        return {}
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{archive}: SHA-256 {digest}, expected {SDIST_SHA256}")
    photos = {}
    with tarfile.open(archive) as tar:
        for name, identity in PHOTOS.items():
            member = tar.extractfile(f"face_recognition-1.3.0/tests/test_images/{name}")
            assert member is not None
            photos[name] = (identity, decode_portrait(member.read()))
    return photos


def _camera_versions(faces, image: np.ndarray) -> dict[str, np.ndarray]:
    """What a camera or a document printer does to a photo: the synthetic genuine pairs."""
    jp2 = io.BytesIO()
    Image.fromarray(image).save(jp2, "JPEG2000", quality_mode="rates", quality_layers=[48])
    return {
        "turned 10": faces.turned(image, 10),
        "mirrored": np.ascontiguousarray(image[:, ::-1]),
        "dimmed 0.4": faces.dimmed(image, 0.4),
        "blurred 1.5": faces.blurred(image, 1.5),
        "jpeg q25": decode_portrait(faces.encoded(image, "JPEG", quality=25)),
        "jpeg2000 0.5 bpp": decode_portrait(jp2.getvalue()),
        "half size": np.asarray(
            Image.fromarray(image).resize((image.shape[1] // 2, image.shape[0] // 2))
        ),
    }


def _cpu_ms(operation, count: int) -> float:
    operation()  # warm: first LiteRT invocations allocate
    started = time.process_time()
    for _ in range(count):
        operation()
    return (time.process_time() - started) / count * 1000


def run(quick: bool) -> list[Figure]:
    faces = _faces_harness()
    analyzer = FaceAnalyzer.from_config({"threads": 1})
    load = f"one core; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    frames = 3 if quick else 200
    traveller, empty = faces.kiosk_frame(), faces.no_face_images()["grey"]
    figures = [
        at_most(
            "analyze 640x480 frame, traveller",
            _cpu_ms(lambda: analyzer.analyze(traveller), frames),
            "ms CPU",
            30,
            load,
        ),
        at_most(
            "analyze 640x480 frame, no face (both detectors)",
            _cpu_ms(lambda: analyzer.analyze(empty), frames),
            "ms CPU",
            30,
            load,
        ),
    ]
    portrait = faces.encoded(faces.framed(faces.astronaut(), faces.ASTRONAUT_FACE), "JPEG2000")
    figures.append(
        Figure(
            "decode JPEG 2000 portrait 640x480",
            _cpu_ms(lambda: decode_portrait(portrait), frames),
            "ms CPU",
            note=f"{len(portrait) // 1024} KiB lossless; {load}",
        )
    )
    live = faces.kiosk_frame()
    document = faces.specimen()
    figures.append(
        Figure(
            "verify one pair (detect + embed both)",
            _cpu_ms(lambda: analyzer.verify(live, document), 2 if quick else 30),
            "ms CPU",
            note=f"dlib ResNet; {load}",
        )
    )
    figures += _match_rates(faces, analyzer, quick)
    return figures


def _match_rates(faces, analyzer: FaceAnalyzer, quick: bool) -> list[Figure]:
    photos = {} if quick else _registry_photos()
    photos["astronaut"] = ("astronaut", faces.astronaut())
    photos["cameraman"] = ("cameraman", faces.cameraman())
    photos["specimen"] = ("specimen", faces.specimen())
    embeddings = {name: analyzer.embed(image) for name, (_, image) in photos.items()}
    missing = [name for name, e in embeddings.items() if e is None]
    if missing:
        raise RuntimeError(f"no face found in {', '.join(missing)}")
    threshold = analyzer.settings.match_threshold
    genuine, impostor = [], []
    for a, b in itertools.combinations(photos, 2):
        score = similarity(embeddings[a], embeddings[b])
        (genuine if photos[a][0] == photos[b][0] else impostor).append(score)
    synthetic = []
    for name, (_, image) in photos.items():
        for version in _camera_versions(faces, image).values():
            embedding = analyzer.embed(version)
            # a version whose face is lost is a non-match, as the lane would refer it
            synthetic.append(0.0 if embedding is None else similarity(embeddings[name], embedding))
    identities = len({identity for identity, _ in photos.values()})
    figures = []
    if genuine:
        figures.append(
            at_least(
                "true-match rate, real second photos (1 - FRR)",
                Proportion(np.mean(np.array(genuine) >= threshold)),
                "rate",
                0.95,
                f"{len(genuine)} pairs, 1 identity; lowest similarity {min(genuine):.3f}, "
                f"threshold {threshold}",
            )
        )
    figures += [
        Figure(
            "true-match rate, camera-made pairs (1 - FRR)",
            Proportion(np.mean(np.array(synthetic) >= threshold)),
            "rate",
            note=f"{len(synthetic)} synthetic pairs of {len(photos)} photos; "
            f"lowest {min(synthetic):.3f}",
        ),
        at_least(
            "true-non-match rate (1 - FAR)",
            Proportion(np.mean(np.array(impostor) < threshold)),
            "rate",
            0.999,
            f"{len(impostor)} impostor pairs, {identities} identities; highest similarity "
            f"{max(impostor):.3f}: too few pairs to show 0.1%",
        ),
    ]
    return figures
