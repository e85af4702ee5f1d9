"""Which NPU precision keeps the tracker's decisions? ONNX Runtime imitations of each mode, end to end.

`scripts/precision_study.py` runs it and prints the tables.

For every mode of convert/precision.py (all float16; float16 with the
sensitive nodes in float32; float32) the exported graphs are rewritten to
round where the NPU would (`convert.precision.imitate`), then:
1. per sub-model error: the float32 tracker runs the clip and every sub-model
   call is repeated on the imitation with the same inputs; the largest
   |difference| per sub-model, also relative to the output's range;
2. decisions: the tracker runs the clip on the imitation alone; per frame the
   chosen mask token and the box of the frame-sized mask are compared with the
   float32 run (token flips, lowest box IoU, lowest mask IoU).
A mode keeps the decisions when no token flips, every box IoU is at least
MIN_BOX_IOU, every mask IoU at least MIN_MASK_IOU (the mask is what the user
gets; a random-weight model's masks are scattered, so their boxes span the
frame and cannot show a change) and no sub-model output of the imitation is
inf or NaN. The
cheapest mode that keeps them on every checkpoint studied is what
convert/atc_all.sh converts with by default; docs/ascend.md has the measured
table (demo, random and stress checkpoints: convert/*_checkpoint.py).
Last, the cost of `fp16_fp32_sensitive` per graph: the nodes `--keep_dtype`
keeps in float32 and the casts ATC inserts around them (convert.precision.keep_cost).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acl_models.bundle import ModelBundle, open_bundle_with
from acl_models.manifest import MANIFEST_FILE, SUBMODELS, load_constants, load_manifest
from acl_models.onnx_runner import OnnxRunner
from app.benchmarks.metrics import box_iou
from app.samurai.boxes import BoxXYWH, box_or_missing
from app.samurai.config import TrackerConfig
from app.samurai.results import FrameResult
from app.samurai.tracker import SamuraiTracker
from convert.precision import KEEP_SENSITIVE_FP32, MODES, imitate, keep_cost

# A decision is kept when the same token is chosen and the frame's box moves less than this (IoU).
MIN_BOX_IOU = 0.95
# ... and the frame's mask keeps at least this IoU with float32's (a tenth of it may change).
MIN_MASK_IOU = 0.9
CLIPS = ("demo", "textured")


@dataclass
class ModeReport:
    mode: str
    errors: dict[str, tuple[float, float]] = field(default_factory=dict)  # sub-model -> (max abs, relative to range)
    flips: list[int] = field(default_factory=list)  # frames whose chosen token differs from float32
    min_box_iou: float = 1.0
    min_mask_iou: float = 1.0
    nonfinite: int = 0  # inf / NaN values in the imitation's sub-model outputs over the clip

    @property
    def keeps_decisions(self) -> bool:
        return (
            not self.flips and self.min_box_iou >= MIN_BOX_IOU and self.min_mask_iou >= MIN_MASK_IOU and not self.nonfinite
        )


class _TeeRunner:
    """Runs the float32 runner and repeats each call on the imitation, recording the largest difference."""

    def __init__(self, reference, other):
        self.reference, self.other = reference, other
        self.path, self.input_names, self.output_names = reference.path, reference.input_names, reference.output_names
        self.takes_pixels = reference.takes_pixels
        self.max_abs = 0.0
        self.scale = 0.0
        self.nonfinite = 0

    def run(self, inputs):
        expected = self.reference.run(inputs)
        got = self.other.run(inputs)
        for name, value in expected.items():
            finite = np.isfinite(got[name])
            self.nonfinite += int(finite.size - finite.sum())
            self.max_abs = max(self.max_abs, float(np.max(np.abs(np.where(finite, got[name], 0.0) - value))))
            self.scale = max(self.scale, float(np.max(np.abs(value))))
        return expected

    def close(self):
        self.reference.close()
        self.other.close()


def clip_frames(clip: str, num_frames: int) -> tuple[list[np.ndarray], tuple[float, float, float, float]]:
    """Generated frames and the first box (x1, y1, x2, y2): the demo clip or the textured random-weight clip."""
    if clip == "demo":
        from app.media.colour_clip import make_frames
    else:
        from app.media.textured_clip import make_frames
    frames, boxes = make_frames(num_frames)
    x, y, w, h = boxes[0]
    return frames, (x, y, x + w, y + h)


def imitation_dir(model_dir: Path, mode: str, dest: Path) -> Path:
    """A copy of the model folder whose graphs imitate `mode`."""
    manifest = load_manifest(model_dir)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_dir / MANIFEST_FILE, dest / MANIFEST_FILE)
    for meta in manifest.constants.values():
        shutil.copy(model_dir / meta["file"], dest / meta["file"])
    for name in SUBMODELS:
        file = manifest.models[name]["file"]
        imitate(model_dir / file, dest / file, mode)
    return dest


def _track(bundle: ModelBundle, frames, box, config: TrackerConfig) -> list[FrameResult]:
    """Track the clip with `bundle`, then close it."""
    with bundle:
        tracker = SamuraiTracker(bundle, config, num_frames=len(frames))
        return [tracker.step(i, f, box if i == 0 else None) for i, f in enumerate(frames)]


def _box_agreement(a: BoxXYWH | None, b: BoxXYWH | None) -> float:
    """IoU of two results' boxes; 1 when neither has one (the same decision: no object)."""
    if a == b:
        return 1.0
    return float(box_iou(np.array([box_or_missing(a)], float), np.array([box_or_missing(b)], float))[0])


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def study(model_dir: Path, frames, box, modes=MODES, threads: int | None = None, config=TrackerConfig()) -> list[ModeReport]:
    """One report per mode, against the float32 graphs of `model_dir`."""
    manifest = load_manifest(model_dir)
    constants = load_constants(manifest)

    def runner(path: Path) -> OnnxRunner:
        return OnnxRunner(path, threads=threads)

    reference = _track(open_bundle_with(model_dir, runner), frames, box, config)
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            report = ModeReport(mode)
            folder = imitation_dir(model_dir, mode, Path(tmp) / mode)
            tees = {
                name: _TeeRunner(runner(model_dir / manifest.models[name]["file"]), runner(folder / manifest.models[name]["file"]))
                for name in SUBMODELS
            }
            _track(ModelBundle(manifest, constants, tees), frames, box, config)
            report.errors = {name: (t.max_abs, t.max_abs / max(t.scale, 1.0)) for name, t in tees.items()}
            report.nonfinite = sum(t.nonfinite for t in tees.values())
            results = _track(open_bundle_with(folder, runner), frames, box, config)
            for ours, ref in zip(results, reference):
                if ours.mask_index != ref.mask_index:
                    report.flips.append(ref.frame_idx)
                report.min_box_iou = min(report.min_box_iou, _box_agreement(ours.box, ref.box))
                report.min_mask_iou = min(report.min_mask_iou, _mask_iou(ours.mask, ref.mask))
            reports.append(report)
    return reports


def cheapest_keeping(reports: list[ModeReport]) -> str:
    """The cheapest mode that keeps every decision in all `reports` (float32 always does)."""
    keeping = {r.mode for r in reports if r.keeps_decisions}
    failing = {r.mode for r in reports if not r.keeps_decisions}
    return next(mode for mode in MODES if mode in keeping - failing or mode == "fp32")


def format_table(clip: str, reports: list[ModeReport]) -> str:
    lines = [
        f"clip {clip}: | mode | " + " | ".join(f"{n} max abs (rel.)" for n in SUBMODELS)
        + " | token flips | min box IoU | min mask IoU | non-finite | keeps decisions |",
    ]
    for r in reports:
        errors = " | ".join(f"{r.errors[n][0]:.2e} ({r.errors[n][1]:.1e})" for n in SUBMODELS)
        flips = f"{len(r.flips)} {r.flips[:5]}" if r.flips else "0"
        lines.append(
            f"| {r.mode} | {errors} | {flips} | {r.min_box_iou:.3f} | {r.min_mask_iou:.3f} | {r.nonfinite} | "
            f"{'yes' if r.keeps_decisions else 'no'} |"
        )
    return "\n".join(lines)


def format_cost(model_dir: Path) -> str:
    """Per graph: nodes, float32 nodes `fp16_fp32_sensitive` keeps (by op type) and the casts ATC adds for them."""
    import onnx

    manifest = load_manifest(model_dir)
    lines = [
        f"cost of {KEEP_SENSITIVE_FP32}: | graph | nodes | kept in float32 (by op) | folded at compile time | "
        "casts float16 -> float32 | casts float32 -> float16 |"
    ]
    for name in SUBMODELS:
        cost = keep_cost(onnx.load(str(model_dir / manifest.models[name]["file"]), load_external_data=False))
        kept = ", ".join(f"{op} {n}" for op, n in sorted(cost.kept.items()))
        lines.append(
            f"| {name} | {cost.nodes} | {sum(cost.kept.values())} ({kept}) | {cost.folded} | "
            f"{cost.casts_in} | {cost.casts_out} |"
        )
    return "\n".join(lines)
