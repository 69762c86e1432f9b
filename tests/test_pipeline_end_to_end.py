"""The whole pipeline, every stage, on a tiny synthetic clip (fast) and on a real clip (slow)."""

import json
from pathlib import Path

import av
import pytest

from benchmarks.synthetic.generate import generate_scene
from benchmarks.synthetic.io import write_scene
from compose.pipeline import STAGES
from run import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

TINY = [
    "video.long_side=0",
    "fit.static_iters=6", "fit.motion_iters=4", "fit.joint_iters=2", "fit.init_points=150",
    "fit.control_points=8", "fit.max_gaussians=2000",
    "background.iterations=4", "background.init_points=2000",
    "compose.refine.iterations=1",
    "views.frames_per_path=3", "views.cameras_per_batch=3",
    "export.frame_stride=2",
]


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _check_run(run: Path, num_frames: int, object_ids: list[int]) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    assert [name for name in manifest["stages"]] == [s.name for s in STAGES]
    for name, record in manifest["stages"].items():
        assert record["status"] == "done", name
        assert record["backend"], name
        assert record["wall_time_s"] >= 0 and record["peak_rss_mb"] > 0
    for object_id in object_ids:
        fit = json.loads((run / "objects" / str(object_id) / "fit.json").read_text())
        assert fit["metrics"]["train"]["psnr"] > 5.0
        assert (run / "scene" / "objects" / str(object_id) / "rig" / "canonical.ply").is_file()
    assert _decoded_frames(run / "videos" / "input.mp4") == num_frames
    transforms = json.loads((run / "export" / "transforms.json").read_text())
    assert len(transforms["frames"]) == num_frames
    assert any((run / "export").rglob("*.ply"))
    report = (run / "report.html").read_text()
    assert all(s.name in report for s in STAGES)


def test_every_stage_runs_on_a_tiny_synthetic_clip(tmp_path, capsys):
    scene = generate_scene(seed=3, num_frames=4, width=64, height=48, num_objects=1, camera_motion="static",
                           num_extra_views=0)
    write_scene(scene, tmp_path / "clip")
    run = tmp_path / "run"
    code = main(["--video", str(tmp_path / "clip" / "frames"), "--masks", str(tmp_path / "clip" / "masks"),
                 "--out", str(run), *TINY])
    assert code == 0, capsys.readouterr().err
    _check_run(run, num_frames=4, object_ids=[1])
    assert "report.html" in capsys.readouterr().out
    # A second run resumes every stage.
    assert main(["--video", str(tmp_path / "clip" / "frames"), "--masks", str(tmp_path / "clip" / "masks"),
                 "--out", str(run), *TINY]) == 0
    assert capsys.readouterr().out.count("resumed") == len(STAGES)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "ds4d_stroller").is_dir(), reason="shared clips not present")
def test_stroller_with_given_masks_end_to_end(tmp_path):
    run = tmp_path / "stroller"
    code = main(["--video", str(SHARED / "ds4d_stroller" / "frames"), "--masks", str(SHARED / "ds4d_stroller" / "masks"),
                 "--out", str(run), "--preset", "quick"])
    assert code == 0
    _check_run(run, num_frames=10, object_ids=[1, 2])
