"""Quality and time of the weight-free object masks on the shared clips with ground-truth masks.

For each clip (frames resized to ``--long-side``):

- motion segmentation: foreground IoU (union of all objects against the union of the ground truth, averaged
  over frames) and per-object IoU (whole-clip IoU of each ground-truth object with the segmented object
  Hungarian-matched to it, 0 when none is; averaged over the ground-truth objects);
- propagation: only frame 0 of the ground truth is given; mean per-object IoU over all other frames.

Example:
    python benchmarks/masks_bench.py --long-side 384 --json masks.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from preprocess.masks.config import MotionConfig, PropagationConfig
from preprocess.masks.given import load_given_masks
from preprocess.masks.motion import segment_motion
from preprocess.masks.propagate import propagate_labels
from preprocess.video import VideoConfig, load_frames

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = ["ds4d_kid-football", "ds4d_rollerblade", "ds4d_stroller", "dinotracker_horsejump"]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def foreground_iou(masks: np.ndarray, truth: np.ndarray) -> float:
    """Mean over frames of the IoU of (O, T, H, W) masks' union with (T, H, W) int truth's foreground."""
    union = masks.any(axis=0) if masks.shape[0] else np.zeros(truth.shape, bool)
    return float(np.mean([_iou(union[t], truth[t] > 0) for t in range(truth.shape[0])]))


def object_iou(masks: np.ndarray, truth: np.ndarray, object_ids: list[int]) -> list[float]:
    """Per ground-truth object, the whole-clip IoU with its Hungarian-matched segmented object (0 if none)."""
    scores = np.array([[_iou(mask, truth == object_id) for mask in masks] for object_id in object_ids])
    result = np.zeros(len(object_ids))
    if scores.size:
        rows, cols = linear_sum_assignment(-scores)
        result[rows] = scores[rows, cols]
    return result.tolist()


def propagation_iou(labels: np.ndarray, truth: np.ndarray, object_ids: list[int]) -> float:
    """Mean per-object IoU over frames 1..T-1 of propagated label maps."""
    return float(np.mean([_iou(labels[t] == i, truth[t] == i) for t in range(1, truth.shape[0])
                          for i in object_ids]))


def run_clip(clip: str, long_side: int) -> dict:
    frames = load_frames(DATA / clip / "frames", VideoConfig(long_side=long_side))
    given = load_given_masks(DATA / clip / "masks", frames)
    truth = given.labels
    start = time.perf_counter()
    masks, _ = segment_motion(frames.images, MotionConfig(long_side=long_side))
    motion_s = time.perf_counter() - start
    start = time.perf_counter()
    propagated = propagate_labels(frames.images, truth[:1], np.array([0]), given.object_ids,
                                  PropagationConfig(long_side=long_side))
    propagation_s = time.perf_counter() - start
    per_object = object_iou(masks, truth, given.object_ids)
    return {"clip": clip, "frames": frames.num_frames, "size": f"{frames.width}x{frames.height}",
            "objects": len(given.object_ids), "found": int(masks.shape[0]),
            "foreground_iou": foreground_iou(masks, truth), "object_iou": float(np.mean(per_object)),
            "object_ious": per_object, "motion_s": motion_s,
            "propagation_iou": propagation_iou(propagated, truth, given.object_ids), "propagation_s": propagation_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", nargs="+", default=CLIPS)
    parser.add_argument("--long-side", type=int, default=384, help="frames are resized to this longer side")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    rows = [run_clip(clip, args.long_side) for clip in args.clips]
    print("| clip | frames | size | objects (found) | fg IoU | per-object IoU | motion s | propagation IoU | "
          "propagation s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per = ", ".join(f"{x:.2f}" for x in r["object_ious"])
        print(f"| {r['clip']} | {r['frames']} | {r['size']} | {r['objects']} ({r['found']}) | "
              f"{r['foreground_iou']:.3f} | {r['object_iou']:.3f} ({per}) | {r['motion_s']:.1f} | "
              f"{r['propagation_iou']:.3f} | {r['propagation_s']:.1f} |")
    means = {k: float(np.mean([r[k] for r in rows])) for k in ("foreground_iou", "object_iou", "propagation_iou")}
    print(f"| mean | | | | {means['foreground_iou']:.3f} | {means['object_iou']:.3f} | | "
          f"{means['propagation_iou']:.3f} | |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "means": means}, indent=2) + "\n")


if __name__ == "__main__":
    main()
