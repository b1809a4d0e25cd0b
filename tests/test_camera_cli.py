"""``borderlane-edge camera snapshot``: one frame to a file, or one line saying why not."""

from __future__ import annotations

import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge.cli import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    folder = tmp_path / "faces"
    folder.mkdir()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(folder / "one.png")
    return folder


def snapshot(*args: str):
    return CliRunner().invoke(cli, ["camera", "snapshot", *args])


def test_a_frame_from_the_kiosks_configuration_is_written_private_and_upright(tmp_path, faces):
    kiosk = tmp_path / "kiosk.toml"
    kiosk.write_text(
        textwrap.dedent(
            """
            [agent]
            device_id = "kiosk-bz-01"
            data_dir = "state"
            [lane]
            site = "bz-santa-elena"
            lane = "lane-1"
            direction = "entry"
            [uplink.broker]
            host = "127.0.0.1"
            ca_file = "ca.crt"
            cert_file = "kiosk.crt"
            key_file = "kiosk.key"
            [camera]
            backend = "virtual"
            source = "faces"
            rotation = 90
            """
        )
    )
    out = tmp_path / "frame.jpg"
    out.write_bytes(b"old")
    out.chmod(0o644)  # an older, readable file is made private
    result = snapshot("--config", str(kiosk), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out}: 48x64 from virtual {faces} in ")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    image = np.asarray(Image.open(out))
    assert image.shape == (64, 48, 3) and abs(int(image[..., 1].mean()) - 200) < 8


@pytest.mark.parametrize(
    "args, status, words",
    [
        (["--device", "/dev/null"], 1, "v4l2 /dev/null: /dev/null is not a V4L2 device"),
        (["--device", "/nonexistent/video0"], 1, "ENOENT"),
        (["--source", "/nonexistent/faces"], 1, "No such file or directory"),
        (["--device", "video0"], 2, "device: the path of a device node"),
        ([], 2, "exactly one of --config, --device and --source"),
        (["--device", "/dev/video0", "--source", "x"], 2, "exactly one of"),
    ],
)
def test_every_failure_is_one_line_and_an_exit_status(tmp_path, args, status, words):
    result = snapshot(*args, "-o", str(tmp_path / "x.png"))
    assert result.exit_code == status
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.output
    assert not (tmp_path / "x.png").exists()


def test_a_bad_file_type_and_a_broken_picture_say_so_as_a_process(tmp_path, faces):
    result = snapshot("--source", str(faces), "-o", str(tmp_path / "x.gif"))
    assert result.exit_code == 2 and "must end in .jpg, .jpeg or .png" in result.output
    (faces / "one.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    command = ["camera", "snapshot", "--source", str(faces), "-o", str(tmp_path / "x.jpg")]
    process = subprocess.run(
        [sys.executable, "-m", "edge", *command, "--timeout", "0.5"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert process.returncode == 1 and process.stdout == ""
    assert process.stderr.strip().splitlines() == [
        f"Error: virtual {faces}: one.png: not a JPEG or PNG picture"
    ]
