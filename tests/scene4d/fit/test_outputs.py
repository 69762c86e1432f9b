"""Per-object outputs: every file parses and agrees with the model; metrics against hand-computed values."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from matplotlib import colormaps

from scene4d.conventions import normalized_time
from scene4d.dynamic_object import DynamicObject
from scene4d.fit.config import FitConfig
from scene4d.fit.fit_object import FitResult, fit_object
from scene4d.fit.init import Initialisation
from scene4d.fit.observations import ObjectObservations
from scene4d.fit.outputs import (ERROR_SATURATION, INTERIOR_MARGIN, PSNR_CAP_DB, crop_boxes, evaluate_object, hidden_frames,
                                 mask_interior, posed_to_gaussians, render_frames, write_object_outputs)
from scene4d.fit.rig import load_rig
from scene4d.gaussians import Gaussians
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory
from scene4d.ply import load_ply
from tests.conftest import look_at

WIDTH, HEIGHT, FRAMES = 64, 48, 4


def _object(num: int = 300, seed: int = 0) -> DynamicObject:
    """A blob of Gaussians (colours in [0.2, 0.8]) sliding along x and turning about y over the clip."""
    g = torch.Generator().manual_seed(seed)
    points = torch.nn.functional.normalize(torch.randn(num, 3, generator=g), dim=1) * 0.3 * torch.rand(num, 1, generator=g)
    colors = 0.2 + 0.6 * torch.rand(num, 3, generator=g)
    gaussians = Gaussians.from_points(points, colors, sh_degree=0, scale=0.06, opacity=0.9)
    deformation = ControlPointDeformation(points[:8], num_knots=4, radius=0.3)
    trajectory = RigidTrajectory(4, translations=torch.tensor([[-0.3, 0.0, 0.0], [-0.1, 0.05, 0.0],
                                                               [0.1, 0.0, 0.1], [0.3, -0.05, 0.0]]))
    with torch.no_grad():
        trajectory.rotation_knots[:, 1] = torch.linspace(0.0, 0.6, 4)
        trajectory.log_scale_knots[:] = math.log(1.1)
    return DynamicObject(gaussians, deformation, trajectory)


def _observations(model: DynamicObject) -> ObjectObservations:
    """Observations that are the model's own renders over black (frame 3 held out)."""
    eyes = torch.tensor([[0.0, 0.0, -2.5]]).repeat(FRAMES, 1) + torch.linspace(0, 0.2, FRAMES)[:, None] * torch.tensor([1.0, 0.0, 0.0])
    viewmats = look_at(eyes, torch.zeros(3))
    Ks = torch.tensor([[60.0, 0.0, WIDTH / 2], [0.0, 60.0, HEIGHT / 2], [0.0, 0.0, 1.0]]).repeat(FRAMES, 1, 1)
    times = normalized_time(torch.arange(FRAMES), FRAMES)
    with torch.no_grad():
        outputs = model.render(times, viewmats, Ks, WIDTH, HEIGHT, torch.zeros(FRAMES, 3))
    images = torch.cat([o.colors for o in outputs]).clamp(0.0, 1.0)
    masks = (torch.cat([o.alphas for o in outputs]) > 0.5).float()
    return ObjectObservations(
        images=images, masks=masks, valid=torch.ones_like(masks), depth=torch.cat([o.depths for o in outputs]),
        depth_weights=masks.clone(), viewmats=viewmats, Ks=Ks, tracks=torch.zeros(0, FRAMES, 2),
        track_visibility=torch.zeros(0, FRAMES, dtype=torch.bool), train_frames=torch.tensor([0, 1, 2]))


def _result(model: DynamicObject) -> FitResult:
    init = Initialisation(model, reference_frame=0, extent=0.6, track_anchors=torch.zeros(0, 3),
                          track_rows=torch.zeros(0, dtype=torch.long))
    history = [{"stage": "static", "step": 0, "total": 1.0, "rgb": 0.5, "gaussians": 300},
               {"stage": "static", "step": 9, "total": 0.5, "rgb": 0.2, "gaussians": 300},
               {"stage": "motion", "step": 0, "total": 0.4, "rgb": 0.2, "arap": 0.0, "gaussians": 300}]
    return FitResult(model=model, init=init, history=history, stage_seconds={"static": 1.0, "motion": 2.0})


@pytest.fixture(scope="module")
def exact():
    model = _object()
    return model, _observations(model)


def test_exact_render_scores_perfectly(exact):
    model, obs = exact
    scores = evaluate_object(model, obs, torch.arange(FRAMES))
    assert scores["psnr"] == PSNR_CAP_DB
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert scores["iou"] == 1.0
    assert [row["frame"] for row in scores["per_frame"]] == list(range(FRAMES))


def test_metrics_match_hand_computed_values(exact):
    model, obs = exact
    shifted = ObjectObservations(**{**vars(obs)})
    shifted.images = (obs.images + 0.1 * obs.masks).clamp(0.0, 1.0)  # colours <= 0.8: no clamping inside
    mask = obs.masks[1, ..., 0] > 0.5
    area = int(mask.sum())
    # Extra mask pixels the render does not cover: a block in a corner, 3 of whose pixels another object covers.
    masks, valid = obs.masks.clone(), obs.valid.clone()
    masks[1, :4, :5] = 1.0
    valid[1, 0, :3] = 0.0
    shifted.masks, shifted.valid = masks, valid
    scores = evaluate_object(model, shifted, torch.tensor([1]))
    row = scores["per_frame"][0]
    # Squared error 0.01 on the object's pixels, 0 on the corner's (the image there is the render).
    assert not mask[:4, :5].any()
    assert row["psnr"] == pytest.approx(-10 * math.log10(0.01 * area / (area + 20)), abs=1e-3)
    assert row["iou"] == pytest.approx(area / (area + 20 - 3), abs=1e-6)
    assert row["mask_pixels"] == area + 20


def test_mask_interior_is_the_mask_eroded_except_along_the_image_edge():
    masks = torch.zeros(2, 12, 14, dtype=torch.bool)
    masks[0, 2:9, 3:11] = True  # a 7 x 8 block inside the image
    masks[1, :6, :5] = True  # a block in the corner, cut off by the image's edge
    interior = mask_interior(masks, 2)
    expected = torch.zeros_like(masks)
    expected[0, 4:7, 5:9] = True
    expected[1, :4, :3] = True
    assert torch.equal(interior, expected)
    # Brute force: a pixel is interior when every in-image pixel within 2 (Chebyshev) is in the mask.
    g = torch.Generator().manual_seed(3)
    blobs = torch.rand(3, 20, 24, generator=g) < 0.85
    brute = torch.zeros_like(blobs)
    for f, y, x in torch.cartesian_prod(torch.arange(3), torch.arange(20), torch.arange(24)).tolist():
        brute[f, y, x] = bool(blobs[f, max(y - 2, 0):y + 3, max(x - 2, 0):x + 3].all())
    assert torch.equal(mask_interior(blobs, 2), brute)


def test_interior_psnr_leaves_out_the_outline(exact):
    model, obs = exact
    frames = torch.tensor([0, 1])
    interior = mask_interior(obs.masks[frames, ..., 0] > 0.5, INTERIOR_MARGIN)
    outline = (obs.masks[frames, ..., 0] > 0.5) & ~interior
    assert interior.any() and outline.any()
    for region, psnr_key, exact_key in ((outline, "psnr", "psnr_interior"), (interior, "psnr_interior", None)):
        changed = ObjectObservations(**{**vars(obs)})
        images = obs.images.clone()
        images[frames] = torch.where(region[..., None], (images[frames] + 0.1).clamp(max=1.0), images[frames])
        changed.images = images
        rows = evaluate_object(model, changed, frames)["per_frame"]
        for row, here, inside in zip(rows, region, interior):
            offset = (images[row["frame"]] - obs.images[row["frame"]])[here]
            mse_here = float(offset.square().mean())
            pixels = inside if psnr_key == "psnr_interior" else obs.masks[row["frame"], ..., 0] > 0.5
            expected = -10 * math.log10(mse_here * int(here.sum()) / int(pixels.sum()))
            assert row[psnr_key] == pytest.approx(expected, abs=1e-3)
            if exact_key is not None:  # an error on the outline only leaves the interior exact
                assert row[exact_key] == PSNR_CAP_DB


def test_error_map_shows_the_colour_offset(exact, tmp_path):
    model, obs = exact
    shifted = ObjectObservations(**{**vars(obs)})
    shifted.images = (obs.images + 0.1 * obs.masks).clamp(0.0, 1.0)
    write_object_outputs(_result(model), shifted, tmp_path / "1", {"object_id": 1})
    _, alphas = render_frames(model, obs, torch.arange(FRAMES))
    top, bottom, left, right = crop_boxes(obs.masks, alphas)[2]
    image, render, heat = _panels(tmp_path / "1" / "renders" / "frame_00002.png")
    inside = (obs.masks[2, top:bottom, left:right, 0] > 0.5).numpy()
    assert abs(image[inside].astype(int) - render[inside] - 0.1 * 255).max() <= 1
    assert abs(heat[inside].astype(int) - _heat_bgr(0.1 / ERROR_SATURATION)).max() <= 1
    fit = json.loads((tmp_path / "1" / "fit.json").read_text())
    assert fit["metrics"]["train"]["psnr"] == pytest.approx(20.0, abs=1e-3)


def test_crop_boxes_follow_the_object_with_one_size():
    masks = torch.zeros(4, 40, 60, 1)
    masks[0, 10:20, 5:15] = 1.0  # 10 x 10
    masks[1, 2:8, 50:58] = 1.0  # 6 x 8, near the top right corner
    masks[3, 25:37, 30:33] = 1.0  # 12 x 3; frame 2 is empty
    alphas = torch.zeros(4, 40, 60)
    alphas[3, 30:38, 20:24] = 0.9  # the render reaches further left and down than the mask
    # Largest extent over the frames: 13 rows (frame 3, 25..38) by 13 columns (frame 3, 20..33), plus 8 each side.
    boxes = crop_boxes(masks, alphas)
    assert boxes[3] == (11, 40, 12, 41)  # centred on columns 20..33; rows pushed up to stay inside
    assert boxes[0] == (0, 29, 0, 29)  # pushed inside at the top left
    assert boxes[1] == (0, 29, 31, 60)  # and at the top right
    assert boxes[2] == boxes[1]  # no object: the previous frame's window
    assert crop_boxes(torch.zeros(2, 5, 6, 1), torch.zeros(2, 5, 6)) == [(0, 5, 0, 6)] * 2


def test_hidden_frames_are_unseen_frames_with_a_mask(exact):
    _, obs = exact
    assert hidden_frames(obs).tolist() == [3]
    empty = ObjectObservations(**{**vars(obs)})
    empty.masks = obs.masks.clone()
    empty.masks[3] = 0.0
    assert hidden_frames(empty).tolist() == []


def test_evaluate_no_frames_and_bad_frames(exact):
    model, obs = exact
    nothing = evaluate_object(model, obs, torch.zeros(0, dtype=torch.long))
    assert nothing == {"frames": [], "psnr": None, "psnr_interior": None, "ssim": None, "iou": None,
                       "per_frame": []}
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        evaluate_object(model, obs, torch.tensor([4]))
    with pytest.raises(ValueError, match="frame indices"):
        evaluate_object(model, obs, torch.zeros(2, 2, dtype=torch.long))


def test_posed_gaussians_render_like_the_model(exact):
    model, obs = exact
    times = normalized_time(torch.arange(FRAMES), FRAMES)
    with torch.no_grad():
        posed = model.posed(times)
    plain = posed_to_gaussians(posed, 2)
    torch.testing.assert_close(plain.get_scales(), posed.scales[2], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(plain.get_opacities(), posed.opacities, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plain.colors(), posed.colors)


def _heat_bgr(value: float) -> np.ndarray:
    rgb = colormaps["inferno"](value)[:3]
    return (np.array(rgb[::-1]) * 255 + 0.5).astype(np.uint8)


def _panels(path) -> list[np.ndarray]:
    """The three side-by-side panels of a render PNG (BGR)."""
    panels = _read_png(path)
    assert panels.shape[1] % 3 == 0
    third = panels.shape[1] // 3
    return [panels[:, i * third:(i + 1) * third] for i in range(3)]


def _read_png(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} does not read as an image"
    return image


def test_write_outputs_of_the_exact_model(exact, tmp_path):
    model, obs = exact
    folder = tmp_path / "objects" / "1"
    fit = write_object_outputs(_result(model), obs, folder, {"object_id": 1, "name": "blob"}, FitConfig())
    on_disk = json.loads((folder / "fit.json").read_text())
    assert on_disk == fit
    assert on_disk["metrics"]["train"]["frames"] == [0, 1, 2]
    assert on_disk["metrics"]["train"]["psnr"] == PSNR_CAP_DB
    assert on_disk["metrics"]["hidden"] == {"frames": [3], "psnr": PSNR_CAP_DB, "psnr_interior": PSNR_CAP_DB,
                                            "ssim": pytest.approx(1.0, abs=1e-5), "iou": 1.0}
    assert on_disk["config"]["seed"] == 0 and on_disk["stage_seconds"] == {"static": 1.0, "motion": 2.0}
    assert on_disk["info"] == {"num_frames": FRAMES, "reference_frame": 0, "extent": 0.6, "object_id": 1,
                               "name": "blob"}

    colors, alphas = render_frames(model, obs, torch.arange(FRAMES))
    boxes = crop_boxes(obs.masks, alphas)
    for frame, (top, bottom, left, right) in enumerate(boxes):
        alpha = _read_png(folder / "renders" / f"alpha_{frame:05d}.png")
        assert alpha.shape == (HEIGHT, WIDTH)
        assert (abs(alpha.astype(float) / 255 - alphas[frame].numpy()) <= 0.5 / 255 + 1e-6).all()
        image, render, heat = _panels(folder / "renders" / f"frame_{frame:05d}.png")
        assert abs(image.astype(int) - render).max() <= 1  # the render equals the input
        inside = (obs.masks[frame, top:bottom, left:right, 0] > 0.5).numpy()
        assert inside.any() and (heat[inside] == _heat_bgr(0.0)).all()
    for name in ("trajectory.png", "losses.png"):
        assert _read_png(folder / name).shape[2] >= 3
    rig, info = load_rig(folder / "rig")
    assert info["object_id"] == 1
    torch.testing.assert_close(rig.posed(torch.tensor([0.7])).means, model.posed(torch.tensor([0.7])).means.detach())

    with torch.no_grad():
        posed = model.posed(normalized_time(torch.arange(FRAMES), FRAMES))
    for frame in range(FRAMES):
        ply = load_ply(folder / "ply" / f"frame_{frame:05d}.ply")
        torch.testing.assert_close(ply.get_means(), posed.means[frame], rtol=0.0, atol=1e-5)
        torch.testing.assert_close(ply.get_scales(), posed.scales[frame], rtol=1e-5, atol=1e-7)
    assert not (folder / "ply" / f"frame_{FRAMES:05d}.ply").exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["1"]  # no temporary folder left behind


def test_failed_write_keeps_the_previous_outputs(exact, tmp_path):
    model, obs = exact
    folder = tmp_path / "1"
    write_object_outputs(_result(model), obs, folder, {"object_id": 1})
    before = (folder / "fit.json").read_text()
    broken = _result(model)
    broken.history = [{"stage": "static", "total": 1.0}]  # no step: the loss plot fails half-way through
    with pytest.raises(KeyError):
        write_object_outputs(broken, obs, folder, {"object_id": 2})
    assert (folder / "fit.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]


@pytest.mark.parametrize("deformation, priors", [("control_points", {"arap", "smoothness"}),
                                                 ("hexplane", {"smoothness", "plane_tv", "plane_time"})])
def test_outputs_of_a_short_fit(exact, tmp_path, deformation, priors):
    _, obs = exact
    config = FitConfig(static_iters=6, motion_iters=4, joint_iters=4, init_points=200, control_points=8,
                       densify=False, frames_per_step=1, deformation=deformation)
    result = fit_object(obs, config, progress=False)
    fit = write_object_outputs(result, obs, tmp_path / "2", {"object_id": 2}, config)
    assert {"train", "hidden", "per_frame"} <= set(fit["metrics"])
    assert [r["seen"] for r in fit["metrics"]["per_frame"]] == [True, True, True, False]
    expected = evaluate_object(result.model, obs, torch.tensor([3]))
    assert fit["metrics"]["hidden"]["psnr"] == pytest.approx(expected["psnr"])
    assert 0.0 < fit["metrics"]["train"]["iou"] <= 1.0
    assert {row["stage"] for row in fit["history"]} == {"static", "motion", "joint"}
    motion_row = next(row for row in fit["history"] if row["stage"] == "motion")
    assert {"arap", "smoothness", "plane_tv", "plane_time"} & set(motion_row) == priors
    times = normalized_time(torch.arange(FRAMES), FRAMES)
    with torch.no_grad():
        posed = result.model.posed(times)
        rig, _ = load_rig(tmp_path / "2" / "rig")
        assert torch.equal(rig.posed(times).means, posed.means)
    for frame in range(FRAMES):
        ply = load_ply(tmp_path / "2" / "ply" / f"frame_{frame:05d}.ply")
        assert ply.num_gaussians == result.model.gaussians.num_gaussians
        torch.testing.assert_close(ply.get_means(), posed.means[frame], rtol=0.0, atol=1e-5)
