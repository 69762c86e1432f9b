import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from compose.report import ReportConfig, write_report
from compose.video_writer import write_video
from scene4d.dynamic_object import DynamicObject
from scene4d.errors import InputError
from scene4d.fit.rig import save_rig
from scene4d.gaussians import Gaussians
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory

VOID = {"img", "meta", "source", "br", "hr", "input", "link"}
H, W = 24, 32


class Page(HTMLParser):
    """Collects what the tests look at and checks that every element is closed in order."""

    def __init__(self, text: str):
        super().__init__()
        self.stack, self.rows, self.images, self.sources, self.links = [], [], [], [], []
        self.divs, self.cell, self.text = [], None, []
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed elements: {self.stack}"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "source":
            self.sources.append(attrs)
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "div":
            self.divs.append(attrs)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag in ("td", "th"):
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self.cell is not None:
            self.cell.append(data)

    def row(self, first: str) -> list[str]:
        return next(r for r in self.rows if r and r[0] == first)

    def image(self, alt: str) -> np.ndarray:
        return decode_png(next(i["src"] for i in self.images if i["alt"] == alt))


def decode_png(uri: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    data = base64.b64decode(uri[len(prefix):], validate=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def line_colours(image: np.ndarray) -> int:
    """How many of matplotlib's first five default line colours a BGR(A) plot shows, counting a colour when over
    100 pixels have it (more than its legend sample)."""
    cycle = [(0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e), (0x2c, 0xa0, 0x2c), (0xd6, 0x27, 0x28), (0x94, 0x67, 0xbd)]
    rgb = image[..., 2::-1].astype(int)
    return sum(int((np.abs(rgb - colour).max(-1) <= 8).sum() > 100) for colour in cycle)


def stage(backend, seconds, outputs, **extra):
    return {"status": "done", "settings": {}, "backend": backend, "backend_reason": f"because {backend}",
            "outputs": outputs, "metrics": {"count": 3}, "wall_time_s": seconds, "peak_rss_mb": 321.0,
            "peak_cuda_mb": None, **extra}


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)


def decode_only_run(root: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2)]
    for t, frame in enumerate(frames):
        write_png(root / "frames" / f"{t:05d}.png", frame)
    (root / "frames" / "frames.json").write_text(json.dumps({"num_frames": 2, "width": W, "height": H}))
    manifest = {"created": "2025-01-01T00:00:00+00:00", "command": "run.py --video /data/clip.mp4",
                "versions": {"python": "3.11.7", "torch": "2.x"},
                "stages": {"decode": stage("pyav", 1.5, ["frames"], settings={"input": "/data/clip.mp4"})}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return frames


def full_run(root: Path) -> list[np.ndarray]:
    frames = decode_only_run(root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["stages"]["masks"] = stage("given", 2.5, ["masks", "contact_sheets/masks.png"])
    (root / "manifest.json").write_text(json.dumps(manifest))
    for t in range(2):
        mask = np.zeros((H, W), np.uint8)
        mask[10 + t:16 + t, 12:20] = 255
        write_png(root / "masks" / "1" / f"{t:05d}.png", mask)
    (root / "masks" / "objects.json").write_text(json.dumps(
        {"num_frames": 2, "width": W, "height": H, "method": "given",
         "objects": [{"id": 1, "name": "ball", "frames_visible": 2, "mean_area": 48.0}]}))
    history = [{"stage": "static", "step": s, "total": 1.0 / (s + 1), "rgb": 0.5 / (s + 1), "gaussians": 10}
               for s in (0, 10, 19)]
    history += [{"stage": "motion", "step": s, "total": 0.2, "arap": 0.01 * (s + 1), "gaussians": 10} for s in (0, 9)]
    fit = {"info": {"object_id": 1, "name": "ball", "reference_frame": 1}, "num_gaussians": 40,
           "stage_seconds": {"static": 3.0, "motion": 4.0},
           "metrics": {"train": {"frames": [0], "psnr": 31.25, "ssim": 0.9, "iou": 0.8}, "per_frame": []},
           "history": history}
    (root / "objects" / "1").mkdir(parents=True)
    (root / "objects" / "1" / "fit.json").write_text(json.dumps(fit))
    write_png(root / "contact_sheets" / "masks.png", np.full((8, 40, 3), 200, np.uint8))
    write_video(root / "scene" / "videos" / "input.mp4", [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(4)],
                fps=4)
    return frames


def test_report_of_a_run(tmp_path):
    frames = full_run(tmp_path)
    path = write_report(tmp_path, expected_stages=["decode", "masks", "fit"])
    assert path == tmp_path / "report.html"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    page = Page(path.read_text())

    assert page.row("decode")[1:7] == ["done", "pyav", "because pyav", "1.5 s", "321 MiB", "frames"]
    assert page.row("masks")[1:6] == ["done", "given", "because given", "2.5 s", "321 MiB"]
    assert page.row("fit")[1] == "not run"
    assert page.row("total wall time")[1] == "4.0 s"
    assert page.row("input")[1] == "/data/clip.mp4"

    assert [d["id"] for d in page.divs if "object" in d.get("class", "").split()] == ["object-1"]
    assert page.row("train.psnr")[1] == "31.25" and page.row("gaussians")[1] == "40"
    assert page.row("fit time")[1] == "7.0 s"
    for image in page.images:
        decode_png(image["src"])
    # The input crop is the reference frame (1) around its mask (rows 11..16, columns 12..19) with the margin.
    crop = page.image("input")
    np.testing.assert_array_equal(crop, cv2.cvtColor(frames[1][3:H, 4:28], cv2.COLOR_RGB2BGR))
    assert page.image("mask").shape == (H - 3, 24) and page.image("mask").max() == 255
    assert line_colours(page.image("losses")) == 3  # total, rgb, arap from fit.json's history (no losses.png)
    assert page.image("masks").shape[:2] == (8, 40)  # the contact sheet
    assert {"render", "error", "depth (preprocessing)", "trajectory"} & {i["alt"] for i in page.images} == set()

    video = (tmp_path / "scene" / "videos" / "input.mp4").read_bytes()
    (source,) = page.sources
    assert base64.b64decode(source["src"].split(",", 1)[1]) == video
    for reference in [s["src"] for s in page.sources] + [i["src"] for i in page.images] + page.links:
        assert reference.startswith("data:") or (
            not Path(reference).is_absolute() and (tmp_path / reference).resolve().is_relative_to(tmp_path.resolve()))


def test_fit_pictures_are_used_when_present(tmp_path):
    full_run(tmp_path)
    folder = tmp_path / "objects" / "1"
    losses = np.zeros((30, 50, 3), np.uint8)
    losses[:, :25] = (255, 0, 0)
    write_png(folder / "losses.png", losses)
    panels = np.concatenate([np.full((10, 7, 3), v, np.uint8) for v in (10, 120, 250)], axis=1)
    write_png(folder / "renders" / "frame_00001.png", panels)
    page = Page(write_report(tmp_path).read_text())
    src = next(i["src"] for i in page.images if i["alt"] == "losses")
    assert base64.b64decode(src.split(",", 1)[1]) == (folder / "losses.png").read_bytes()
    assert (page.image("render") == 120).all() and (page.image("error") == 250).all()


def test_trajectory_is_plotted_from_the_rig(tmp_path):
    import torch

    full_run(tmp_path)
    gaussians = Gaussians.from_points(torch.zeros(4, 3), torch.rand(4, 3), sh_degree=0, scale=0.1, opacity=0.5)
    path = torch.tensor([[0.0, 0.0, 2.0], [0.5, 0.1, 2.0], [1.0, 0.0, 2.5], [1.5, 0.0, 3.0]])
    trajectory = RigidTrajectory(4, path)
    model = DynamicObject(gaussians, ControlPointDeformation(torch.zeros(2, 3), 4, radius=0.3), trajectory)
    save_rig(model, tmp_path / "objects" / "1" / "rig", {"object_id": 1, "num_frames": 2})
    page = Page(write_report(tmp_path).read_text())
    assert line_colours(page.image("trajectory")) == 3  # x, y and z


def test_large_videos_are_linked(tmp_path):
    full_run(tmp_path)
    page = Page(write_report(tmp_path, config=ReportConfig(embed_video_mb=0.0)).read_text())
    (source,) = page.sources
    assert source["src"] == "scene/videos/input.mp4"
    with av.open(str(tmp_path / source["src"])) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert "linked" in "".join(page.text)


def test_wide_pictures_are_downscaled(tmp_path):
    full_run(tmp_path)
    write_png(tmp_path / "contact_sheets" / "masks.png", np.full((20, 400, 3), 90, np.uint8))
    page = Page(write_report(tmp_path, config=ReportConfig(max_image_width=100)).read_text())
    sheet = page.image("masks")
    assert sheet.shape[:2] == (5, 100) and (sheet == 90).all()


def test_decode_only_run_says_the_rest_did_not_run(tmp_path):
    decode_only_run(tmp_path)
    page = Page(write_report(tmp_path, expected_stages=["decode", "masks", "fit"]).read_text())
    assert page.row("decode")[2] == "pyav"
    assert page.row("masks")[1] == page.row("fit")[1] == "not run"
    assert page.images == [] and page.sources == []
    assert "".join(page.text).count("not run") == 2 + 4  # two stages; objects, sheets, scene metrics, videos


def test_not_a_run_directory(tmp_path):
    with pytest.raises(InputError, match="manifest.json"):
        write_report(tmp_path)
