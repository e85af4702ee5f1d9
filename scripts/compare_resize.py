"""Time each frame-resize choice and compare the tracking decisions it leads to with the exact one.

    python scripts/compare_resize.py --model-dir om_model --clip demo [--frames 40] [--sizes 640x360,1920x1080]

The generated clip (`demo`: the colour clip for the synthetic demo checkpoint;
`textured`: the textured clip, for any checkpoint) is scaled to each source
size; every resize in `app.samurai.preprocess.RESIZES` is timed on its frames (median
CPU ms per frame) and the clip is tracked once per resize with the real
models. Per resize it prints the time, the frames whose chosen decoder mask is
the one `pil_bicubic` (the official loader's resize) chose, the IoU of the
track's boxes with `pil_bicubic`'s (mean and minimum) and with the clip's
ground truth (mean).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from loguru import logger

from acl_models.base import BackendError
from acl_models.bundle import ModelBundle, open_bundle_with
from acl_models.manifest import ModelFolderError
from acl_models.onnx_runner import OnnxRunner
from app.benchmarks.metrics import box_agreement, box_iou
from app.benchmarks.speed.timing import CPU_CLOCK
from app.benchmarks.speed.tracking import parse_size, prompt_box
from app.live import heap
from app.media import colour_clip, textured_clip
from app.samurai import preprocess
from app.samurai.boxes import box_or_missing
from app.samurai.config import load_config
from app.samurai.tracker import SamuraiTracker

EXACT = "pil_bicubic"
CLIPS = {"demo": colour_clip.make_frames, "textured": textured_clip.make_frames}
DEFAULT_SIZES = "640x360,1920x1080"


@dataclasses.dataclass(frozen=True)
class Row:
    resize: str
    resize_ms: float
    same_mask: int  # tracked frames whose chosen decoder mask is the exact resize's choice
    tracked: int
    iou_mean: float  # box IoU with the exact resize's boxes
    iou_min: float
    truth_iou: float  # mean box IoU with the ground truth

    def line(self) -> str:
        return (f"  {self.resize:<20} {self.resize_ms:>9.2f} {self.same_mask:>5}/{self.tracked:<4} "
                f"{self.iou_mean:>8.3f} {self.iou_min:>8.3f} {self.truth_iou:>11.3f}")


HEADER = f"  {'resize':<20} {'ms/frame':>9} {'same mask':>10} {'IoU mean':>8} {'IoU min':>8} {'truth IoU':>11}"


def time_resize(frames: list[np.ndarray], size: int, resize: str, repeats: int) -> float:
    """Median CPU ms of one frame's resize."""
    times = []
    for _ in range(repeats):
        for frame in frames:
            started = CPU_CLOCK()
            preprocess.resize_frame(frame, size, resize)
            times.append(1000.0 * (CPU_CLOCK() - started))
    return float(np.median(times))


def track(bundle: ModelBundle, frames: list[np.ndarray], box_xywh, resize: str) -> tuple[list[int], np.ndarray]:
    """Chosen decoder mask per frame and (N, 4) x, y, w, h boxes of the track."""
    config = dataclasses.replace(load_config(None, bundle.manifest.model_size), resize=resize)
    tracker = SamuraiTracker(bundle, config, num_frames=len(frames))
    results = [tracker.step(i, f, prompt_box(box_xywh) if i == 0 else None) for i, f in enumerate(frames)]
    return [r.mask_index for r in results], np.array([box_or_missing(r.box) for r in results], dtype=np.float64)


def compare(bundle: ModelBundle, frames, boxes, resize_ms: dict[str, float]) -> list[Row]:
    truth = np.asarray(boxes, dtype=np.float64)
    exact_masks, exact_boxes = track(bundle, frames, boxes[0], EXACT)
    rows = []
    for resize in preprocess.RESIZES:
        masks, track_boxes = (
            (exact_masks, exact_boxes) if resize == EXACT else track(bundle, frames, boxes[0], resize)
        )
        # Frame 0 is the prompt frame: its decision is fixed by the prompt, not tracked.
        same = sum(m == e for m, e in zip(masks[1:], exact_masks[1:]))
        agreement = box_agreement(track_boxes, exact_boxes)[1:]
        rows.append(Row(resize, resize_ms[resize], same, len(frames) - 1, float(agreement.mean()),
                        float(agreement.min()), float(box_iou(track_boxes, truth).mean())))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("om_model"))
    parser.add_argument("--clip", choices=list(CLIPS), default="demo")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="source sizes WxH,WxH")
    parser.add_argument("--repeats", type=int, default=3, help="timing passes over the frames")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads per model (default: all cores; "
                                                     "1 is much faster on a machine other jobs share)")
    args = parser.parse_args(argv)
    try:
        if args.frames < 2:
            raise ValueError(f"--frames must be at least 2 (a prompt frame and a tracked one), got {args.frames}")
        sizes = [parse_size(s) for s in args.sizes.split(",")]
        frames, boxes = CLIPS[args.clip](args.frames)
        bundle = open_bundle_with(args.model_dir, lambda path: OnnxRunner(path, threads=args.threads))
    except (ValueError, ModelFolderError, BackendError) as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 2
    heap.keep_freed_pages()
    clips = [textured_clip.scaled_clip(frames, boxes, width, height) for width, height in sizes]
    manifest = bundle.manifest
    with bundle:
        # Timed before any inference, so that no runtime thread shares the CPU clock.
        resize_ms = [{r: time_resize(clip, manifest.image_size, r, args.repeats) for r in preprocess.RESIZES}
                     for clip, _ in clips]
        for (width, height), (scaled, scaled_boxes), times in zip(sizes, clips, resize_ms):
            print(f"{args.clip} clip at {width}x{height}, {args.frames} frames, hiera-{manifest.model_size} "
                  f"at {manifest.image_size} px, samurai mode (decisions against {EXACT}):")
            print(HEADER)
            for row in compare(bundle, scaled, scaled_boxes, times):
                print(row.line(), flush=True)
    return 0


if __name__ == "__main__":
    logger.remove()
    sys.exit(main())
