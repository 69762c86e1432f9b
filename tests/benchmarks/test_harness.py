"""The benchmark harness: report writers, the synthetic evaluation's alignment and track math, argument parsing."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from benchmarks import harness
from benchmarks.__main__ import parse_args
from benchmarks.synthetic.cameras import intrinsics, look_at, orbit
from benchmarks.synthetic_eval import (_depth_errors, cameras_into_prediction, points_into_target,
                                       similarity_from_cameras, track_errors)
from scene4d.contracts.cameras import Cameras
from scene4d.metrics.camera import absolute_trajectory_error, relative_pose_error

# ---------------------------------------------------------------- writers


def _report() -> dict:
    fit = {"name": "fit", "title": "Per-object fit", "about": "Fit quality.", "settings": {"clips": ["a", "b"]},
           "tables": [[["clip", "clip", None], ["train_psnr", "train PSNR", 2], ["gaussians", "Gaussians", 0],
                       ["ious", "per object", 3]]],
           "rows": [{"clip": "a", "train_psnr": 27.123456, "gaussians": 5120, "ious": [0.91234, 0.5]},
                    {"clip": "b", "train_psnr": None, "gaussians": 17, "ious": []}],
           "errors": [{"item": "c", "error": "InputError: no frames", "traceback": "..."}],
           "wall_s": 12.34, "cpu_s": 20.5, "load_before": 3.5, "load_after": 4.25}
    synthetic = {"name": "synthetic", "title": "Synthetic", "about": "GT.",
                 "settings": {"seeds": [0], "overrides": ["fit.static_iters=5"]},
                 "tables": [[["scene", "scene", None], ["ate", "ATE", 3]],
                            [["scene", "scene", None], ["points", "points", 0]]],
                 "rows": [{"scene": "seed 0", "ate": 0.0123456, "points": 12,
                           "stages": {"fit": {"backend": "cpu-kernel", "wall_s": 61.26, "peak_rss_mb": 812.4}}}],
                 "errors": [], "wall_s": 100.0, "cpu_s": 150.0, "load_before": 1.0, "load_after": 2.0}
    machine = {"cpu_count": 2, "cpu_affinity": 2, "cpu_model": "x86_64", "platform": "Linux", "python": "3.11.7",
               "torch": "2.4.0", "torch_threads": 2, "torch_interop_threads": 2, "opencv": "4.9", "opencv_threads": 2,
               "requested_threads": 2, "load_average": [9.5, 9.0, 8.0], "commit": "abc1234", "dirty": True}
    return {"command": "python -m benchmarks --quick", "date": "2025-01-01T00:00:00+00:00", "json": "b.json",
            "preset": "quick", "machine": machine, "sections": [fit, synthetic], "wall_s": 112.3, "cpu_s": 170.5}


def _tables(markdown: str) -> list[list[list[str]]]:
    """Every markdown table as rows of cells (header first, separator dropped)."""
    tables, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def test_markdown_tables_have_the_columns_and_the_json_numbers(tmp_path):
    report = _report()
    harness.write_outputs(report, tmp_path / "B.md", tmp_path / "b.json")
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved == report
    markdown = (tmp_path / "B.md").read_text()
    timing, fit, synthetic, points, stages = _tables(markdown)

    assert timing[0] == ["section", "wall s", "CPU s", "load before", "load after"]
    assert timing[1] == ["fit", "12.3", "20.5", "3.50", "4.25"]
    assert fit[0] == ["clip", "train PSNR", "Gaussians", "per object"]
    for cells, row in zip(fit[1:], saved["sections"][0]["rows"]):
        assert cells[0] == row["clip"]
        if row["train_psnr"] is None:
            assert cells[1] == "-"
        else:
            assert abs(float(cells[1]) - row["train_psnr"]) <= 0.005
        assert int(cells[2]) == row["gaussians"]
        assert [float(v) for v in cells[3].split(",") if v] == pytest.approx(row["ious"], abs=5e-4)
    assert synthetic == [["scene", "ATE"], ["seed 0", "0.012"]]
    assert points == [["scene", "points"], ["seed 0", "12"]]
    assert stages == [["scene", "stage", "backend", "wall s", "peak RSS MiB"],
                      ["seed 0", "fit", "cpu-kernel", "61.3", "812"]]
    for fact in ("python -m benchmarks --quick", "2025-01-01T00:00:00+00:00", "abc1234", "2 CPUs", "torch 2.4.0",
                 "2 intra-op", "9.5, 9.0, 8.0", "`b.json`", "fit.static_iters=5"):
        assert fact in markdown
    assert "**failed** c: InputError: no frames" in markdown


def test_json_writer_accepts_numpy_values(tmp_path):
    report = _report()
    report["sections"][0]["rows"][0].update(train_psnr=np.float32(30.5), gaussians=np.int64(3), ious=np.ones(2))
    harness.write_outputs(report, tmp_path / "B.md", tmp_path / "b.json")
    row = json.loads((tmp_path / "b.json").read_text())["sections"][0]["rows"][0]
    assert (row["train_psnr"], row["gaussians"], row["ious"]) == (30.5, 3, [1.0, 1.0])


def test_format_value():
    assert harness.format_value(None, 2) == "-"
    assert harness.format_value(1.23456, 2) == "1.23"
    assert harness.format_value(7, 1) == "7.0"
    assert harness.format_value(True, 2) == "True"
    assert harness.format_value([0.5, None], 1) == "0.5, -"
    assert harness.format_value("a|b", None) == "a|b"
    assert harness.markdown_table([["k", "K", None]], [{"k": "a|b"}]).splitlines()[2] == "| a/b |"


# ---------------------------------------------------------------- arguments and clips


def test_sections_parse_in_order_without_duplicates():
    assert parse_args(["--sections", "fit,render,fit"]).sections == ["fit", "render"]
    assert parse_args(["--sections", "all"]).sections == list(harness.SECTIONS)
    assert parse_args([]).sections == list(harness.SECTIONS)


@pytest.mark.parametrize("argv, message", [
    (["--sections", "render,depth"], "unknown section 'depth' (choose from render, masks, cameras, fit, synthetic"),
    (["--sections", ","], "no section given"),
    (["--clips", "no_such_clip"], "unknown clip 'no_such_clip'"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_bad_arguments_end_with_a_clear_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_clip_selection(tmp_path, monkeypatch):
    for clip, masks in (("a", True), ("b", False), ("c", True)):
        (tmp_path / clip / "frames").mkdir(parents=True)
        if masks:
            (tmp_path / clip / "masks").mkdir()
    monkeypatch.setattr(harness, "DATA", tmp_path)
    assert harness.select_clips(None, None, needs_masks=False) == ["a", "b", "c"]
    assert harness.select_clips(None, None, needs_masks=True) == ["a", "c"]
    assert harness.select_clips(["b", "c"], None, needs_masks=True) == ["c"]
    assert harness.select_clips(["b", "c"], ["a", "b"], needs_masks=False) == ["a", "b"]


# ---------------------------------------------------------------- synthetic evaluation math


SCALE, TRANSLATION = 0.37, np.array([0.5, -2.0, 1.25])
ROTATION = Rotation.from_rotvec([0.3, -0.8, 0.5]).as_matrix()


def _into_prediction_world(points: np.ndarray) -> np.ndarray:
    """True-world points in a reconstruction's world related by x_true = s R x + t."""
    return (points - TRANSLATION) @ ROTATION / SCALE


def _predicted_viewmats(true_viewmats: np.ndarray) -> np.ndarray:
    """The true cameras as a reconstruction in that world would have them (built from centres and axes)."""
    c2w = np.linalg.inv(true_viewmats)
    pred = np.repeat(np.eye(4)[None], len(c2w), axis=0)
    pred[:, :3, :3] = ROTATION.T @ c2w[:, :3, :3]
    pred[:, :3, 3] = _into_prediction_world(c2w[:, :3, 3])
    return np.linalg.inv(pred)


def test_similarity_transformed_reconstruction_aligns_exactly():
    true = orbit(np.array([0.0, 0.4, 0.5]), 4.5, 2.2, np.linspace(-8.0, 8.0, 10))  # a short, nearly straight arc
    pred = torch.from_numpy(_predicted_viewmats(true))
    true = torch.from_numpy(true)
    assert float(absolute_trajectory_error(pred, true)) < 1e-9
    assert float(absolute_trajectory_error(pred, true, align="none")) > 1.0
    assert [float(v) for v in relative_pose_error(pred, true)] == pytest.approx([0.0, 0.0], abs=1e-6)
    scale, rotation, translation = similarity_from_cameras(pred, true, 4.5 / SCALE, 4.5)
    assert float(scale) == pytest.approx(SCALE)
    np.testing.assert_allclose(rotation.numpy(), ROTATION, atol=1e-9)
    np.testing.assert_allclose(translation.numpy(), TRANSLATION, atol=1e-9)


def test_held_out_cameras_see_the_reconstruction_as_the_true_cameras_see_the_truth():
    true = torch.from_numpy(orbit(np.array([0.0, 0.4, 0.5]), 4.5, 2.2, np.linspace(-8.0, 8.0, 6)))
    pred = torch.from_numpy(_predicted_viewmats(true.numpy()))
    similarity = similarity_from_cameras(pred, true, 4.5 / SCALE, 4.5)
    held_out = torch.from_numpy(orbit(np.array([0.0, 0.4, 0.5]), 4.5, 2.6, np.linspace(22.0, 38.0, 6)))
    mapped = cameras_into_prediction(held_out, *similarity)
    np.testing.assert_allclose(torch.linalg.det(mapped[:, :3, :3]).numpy(), 1.0, atol=1e-9)

    points = np.random.default_rng(0).uniform(-1, 1, size=(50, 3))
    true_camera = np.einsum("cij,nj->cni", held_out[:, :3, :3].numpy(), points) + held_out[:, None, :3, 3].numpy()
    pred_points = _into_prediction_world(points)
    pred_camera = np.einsum("cij,nj->cni", mapped[:, :3, :3].numpy(), pred_points) + mapped[:, None, :3, 3].numpy()
    np.testing.assert_allclose(pred_camera[..., :2] / pred_camera[..., 2:], true_camera[..., :2] / true_camera[..., 2:],
                               atol=1e-9)
    np.testing.assert_allclose(pred_camera[..., 2] * SCALE, true_camera[..., 2], atol=1e-9)
    np.testing.assert_allclose(points_into_target(torch.from_numpy(pred_points), *similarity).numpy(), points,
                               atol=1e-9)


def test_depth_errors_per_region_with_own_and_alignment_scale():
    truth = torch.linspace(1.0, 4.0, 2 * 4 * 5).reshape(2, 4, 5)
    objects = torch.zeros(2, 4, 5, dtype=torch.bool)
    objects[:, 1:3, 1:4] = True
    rendered = torch.where(objects, truth * 2.0, truth * 3.0)  # objects placed too close relative to the background
    alphas = torch.ones(2, 4, 5)
    alphas[:, 0, 0] = 0.2  # transparent: not counted, whatever its depth
    rendered[:, 0, 0] = 100.0
    errors = _depth_errors(rendered, alphas, truth, objects, scale=1 / 3)
    assert errors["depth_absrel_objects"] == pytest.approx(0.0, abs=1e-6)
    assert errors["depth_absrel_background"] == pytest.approx(0.0, abs=1e-6)
    assert errors["depth_absrel_objects_sim3"] == pytest.approx(1 / 3, abs=1e-6)
    assert errors["depth_absrel_background_sim3"] == pytest.approx(0.0, abs=1e-6)
    assert errors["opaque_fraction"] == pytest.approx(38 / 40)


class _FakeScene:
    """One object whose Gaussians are given per frame (T, N, 3); renders a constant depth map."""

    def __init__(self, means: torch.Tensor, front_depth: float, width: int, height: int):
        self.means, self.front_depth, self.size = means, front_depth, (height, width)
        self.objects = [SimpleNamespace(object_id=1)]
        self.num_frames = means.shape[0]

    def posed(self, time, include_background, object_ids):
        return SimpleNamespace(means=self.means[round(time * (self.num_frames - 1))])

    def render(self, time, viewmats, Ks, width, height, include_background, object_ids):
        return SimpleNamespace(depths=torch.full((1, height, width, 1), self.front_depth)), None


def test_tracks_follow_the_gaussians_on_the_front_surface():
    width, height, num_frames = 64, 48, 3
    K = intrinsics(width, height, 60.0)
    true_viewmats = np.stack([look_at(np.array([0.3 * f, -5.0, 0.5]), np.zeros(3)) for f in range(num_frames)])
    start = np.array([[-0.3, 0.0, 0.2], [0.2, 0.1, -0.1], [0.0, -0.2, 0.0]])
    velocity = np.array([0.2, 0.05, -0.1])
    tracks3d = start[:, None] + velocity * np.arange(num_frames)[None, :, None]  # (P, T, 3)
    pixels = np.einsum("ij,ptj->pti", K, np.einsum("tij,ptj->pti", true_viewmats[:, :3, :3], tracks3d)
                       + true_viewmats[:, :3, 3])
    depth = pixels[:, 0, 2]
    tracks2d = pixels[..., :2] / pixels[..., 2:]
    tracks2d[:, 0, 0] += 0.1  # the first frame's truth is 0.1 px off the fitted points ...
    # ... and decoys sit exactly on it, twice as far, staying put: nearer in 2D than the right Gaussians.
    rays = np.concatenate([tracks2d[:, 0], np.ones((3, 1))], axis=1) @ np.linalg.inv(K).T
    decoys = (2.0 * depth[:, None] * rays - true_viewmats[0, :3, 3]) @ true_viewmats[0, :3, :3]
    true_means = np.concatenate([np.repeat(decoys[None], num_frames, axis=0), tracks3d.transpose(1, 0, 2)], axis=1)
    means = torch.from_numpy(_into_prediction_world(true_means))
    pred_viewmats = _predicted_viewmats(true_viewmats)
    cameras = Cameras(np.repeat(K[None], num_frames, axis=0), pred_viewmats, width, height)
    gt = {"tracks3d": tracks3d, "tracks2d": tracks2d, "labels": np.ones(3, dtype=np.int32),
          "visibility": np.ones((3, num_frames), dtype=bool)}
    front = float(depth.max()) / SCALE  # the tracks' depth in the reconstruction's units
    similarity = similarity_from_cameras(torch.from_numpy(pred_viewmats), torch.from_numpy(true_viewmats),
                                         5.0 / SCALE, 5.0)
    errors = track_errors(_FakeScene(means, front, width, height), cameras, gt, similarity, width, height)
    assert errors["track_points"] == 3 * (num_frames - 1)
    assert errors["track_epe3d"] == pytest.approx(0.0, abs=1e-6)
    assert errors["track_epe2d_px"] == pytest.approx(0.0, abs=1e-6)
    still = np.linalg.norm(tracks2d[:, 1:] - tracks2d[:, :1], axis=-1).mean()
    assert errors["track_epe2d_static_px"] == pytest.approx(still)

    # Without a front surface (depth 0 everywhere) the 2D attachment cannot tell the decoys apart and picks them.
    errors = track_errors(_FakeScene(means, 0.0, width, height), cameras, gt, similarity, width, height)
    assert errors["track_epe3d"] == pytest.approx(0.0, abs=1e-6)
    assert errors["track_epe2d_px"] > 1.0
    assert math.isfinite(errors["track_epe2d_px"])


def test_readme_block_of_the_preset_is_replaced_and_the_rest_kept():
    report = _report()
    (quick_open, quick_close), (full_open, full_close) = harness.readme_markers("quick"), harness.readme_markers("full")
    readme = (f"# Tool\n\n## Results\nhand-written\n{quick_open}\nold tables\n{quick_close}\n"
              f"{full_open}\nfull tables\n{full_close}\ntail\n")
    spliced = harness.splice_readme(readme, report)
    assert spliced.startswith("# Tool\n\n## Results\nhand-written\n" + quick_open + "\n### Benchmarks, quick preset\n")
    assert spliced.endswith(f"{quick_close}\n{full_open}\nfull tables\n{full_close}\ntail\n")
    assert "old tables" not in spliced
    assert "#### Per-object fit" in spliced and _tables(spliced) == _tables(harness.write_markdown(report))
    assert harness.splice_readme(spliced, report) == spliced
    with pytest.raises(ValueError, match="no .* block"):
        harness.splice_readme("# Tool\n", report)


def test_readme_without_the_block_is_refused_before_running(tmp_path, capsys):
    (tmp_path / "README.md").write_text(f"# Tool\n{harness.readme_markers('full')[0]}\n")
    with pytest.raises(SystemExit):
        parse_args(["--quick", "--readme", str(tmp_path / "README.md")])
    assert "has no block for this preset's tables" in capsys.readouterr().err
