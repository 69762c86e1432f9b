import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def frames_dir(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    return folder


def _assert_one_line_error(result, pattern):
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("scene4d: ")]
    assert len(errors) == 1 and errors[0].startswith("error: ") and pattern in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_video_is_one_line_and_writes_nothing(tmp_path):
    result = _run("--video", "missing.mp4", "--out", tmp_path / "run", cwd=tmp_path)
    _assert_one_line_error(result, "missing.mp4 does not exist")
    assert not (tmp_path / "run").exists()


def test_bad_override_preset_and_stage(tmp_path, frames_dir):
    _assert_one_line_error(_run("--video", frames_dir, "video.nope=1", cwd=tmp_path), "Key 'nope'")
    _assert_one_line_error(_run("--video", frames_dir, "--preset", "nope", cwd=tmp_path), "unknown preset")
    _assert_one_line_error(_run("--video", frames_dir, "--stages", "paint", cwd=tmp_path), "unknown stage 'paint'")


def test_corrupt_video_marks_stage_failed_without_outputs(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 50)
    result = _run("--video", bad, "--out", tmp_path / "run", cwd=tmp_path)
    _assert_one_line_error(result, "bad.mp4")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["decode"]["status"] == "failed"
    assert not (tmp_path / "run" / "frames").exists()


def test_decode_writes_frames_and_manifest_then_resumes(tmp_path, frames_dir):
    out = tmp_path / "run"
    result = _run("--video", frames_dir, "--out", out, "--stages", "decode", "video.long_side=30", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    decode = manifest["stages"]["decode"]
    assert decode["status"] == "done" and decode["backend"] == "image-folder"
    assert decode["metrics"]["num_frames"] == 4 and (decode["metrics"]["width"], decode["metrics"]["height"]) == (30, 20)
    assert sorted(p.name for p in (out / "frames").iterdir())[:2] == ["00000.png", "00001.png"]
    assert "decode" in result.stdout and "ran" in result.stdout

    again = _run("--video", frames_dir, "--out", out, "--stages", "decode", "video.long_side=30", cwd=tmp_path)
    assert again.returncode == 0 and "resumed" in again.stdout
    changed = _run("--video", frames_dir, "--out", out, "--stages", "decode", "video.long_side=20", cwd=tmp_path)
    assert changed.returncode == 0 and "ran" in changed.stdout
    assert json.loads((out / "manifest.json").read_text())["stages"]["decode"]["metrics"]["width"] == 20


def test_show_config_prints_yaml(tmp_path):
    result = _run("--show-config", "video.stride=3", cwd=tmp_path)
    assert result.returncode == 0 and "stride: 3" in result.stdout
