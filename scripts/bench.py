"""Benchmark the tracker on a generated clip, optionally side by side with the official predictor.

    python scripts/bench.py --model-dir om_model [--frames 60] [--official CHECKPOINT] [--objects 1 2 4]
    taskset -c 0 python scripts/bench.py --model-dir om_model --null-models [--recording FILE]

Prints FPS, mean ms per stage, the share of frame time spent outside the
sub-models (preprocessing, memory bank, selection, post-processing), peak RSS
and the RSS growth between frame 100 (or the middle) and the end.

`--null-models` measures only the CPU side: the four sub-models are replaced
by instant replays of their outputs (recorded from a real run into FILE first,
default MODEL_DIR/null_models.npz, when that file does not exist), and
it prints the median CPU milliseconds per stage per tracked frame for each
`--sizes` source resolution.

With --objects, the same runners track 1, 2, 4 ... objects one after the other
and it prints each count's frame time against the target: the image encoder
runs once per frame, so N objects should cost at most encoder + N x (the
one-object frame time without the encoder), + 5 %.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from loguru import logger

from acl_models.base import BackendError
from acl_models.onnx_runner import OnnxRunner
from app import heap, preprocess
from app.config import load_config
from app.model_bundle import ModelFolderError, load_constants, load_manifest, open_runners
from app.multi_tracker import MultiObjectTracker
from app.tracker import SamuraiTracker
from scripts.make_clip import make_frames, scaled_clip, write_jpeg_folder
from scripts.null_models import Recording, RecordingError, RecordingRunner

RSS_REFERENCE_FRAME = 100
# Frames are generated once and replayed in a loop, so that a 3000-frame run
# measures the tracker's memory, not the clip's.
CLIP_FRAMES = 120
# Source resolutions of the CPU-side report: a small camera mode and full HD.
NULL_MODEL_SIZES = "640x360,1920x1080"
# Frames recorded from the real models for the replays (cycled after that).
RECORDED_FRAMES = 12
# The CPU side is timed in CPU time of the process, not wall time: on a shared
# machine other processes' turns on the core would otherwise count as ours.
CPU_CLOCK = time.process_time
# Extra objects' boxes (x1, y1, x2, y2) on the generated clip: background patches.
EXTRA_BOXES = [(200.0, 20.0, 260.0, 70.0), (20.0, 150.0, 100.0, 210.0), (150.0, 10.0, 190.0, 60.0),
               (240.0, 170.0, 300.0, 230.0), (10.0, 10.0, 60.0, 50.0), (120.0, 180.0, 170.0, 230.0), (260.0, 90.0, 310.0, 140.0)]
# Shared stages: they run once per frame whatever the number of objects.
SHARED_STAGES = ("preprocess", "image_encoder")
MULTI_OBJECT_SLACK = 1.05


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


class TimedRunner:
    """Wraps a runner and accumulates its run time."""

    def __init__(self, runner):
        self.runner, self.seconds, self.calls = runner, 0.0, 0
        self.path, self.input_names, self.output_names = runner.path, runner.input_names, runner.output_names
        self.takes_pixels = runner.takes_pixels

    def run(self, inputs):
        self.calls += 1
        start = time.perf_counter()
        try:
            return self.runner.run(inputs)
        finally:
            self.seconds += time.perf_counter() - start

    def close(self):
        self.runner.close()


def bench_tracker(model_dir: Path, frames, box, mode: str, num_frames: int, variant: str, objects: int = 1, runners=None) -> dict:
    manifest = load_manifest(model_dir)
    runners = runners or {k: TimedRunner(v) for k, v in open_runners(manifest, OnnxRunner, variant).items()}
    for runner in runners.values():
        runner.seconds, runner.calls = 0.0, 0
    tracker = MultiObjectTracker(runners, manifest, load_constants(manifest), load_config(None, manifest.model_size, mode))
    for obj_id, obj_box in enumerate([box, *EXTRA_BOXES][:objects], start=1):
        tracker.add(obj_id, obj_box)
    stage_ms: dict[str, float] = {}
    reference_rss = None
    started = time.perf_counter()
    for i in range(num_frames):
        result = tracker.step(i, frames[i % len(frames)])
        for k, v in result.timings.items():
            stage_ms[k] = stage_ms.get(k, 0.0) + v
        if i == min(RSS_REFERENCE_FRAME, num_frames // 2):
            reference_rss = rss_mb()
    elapsed = time.perf_counter() - started
    model_s = sum(r.seconds for r in runners.values())
    image_encoder_calls = runners["image_encoder"].calls
    return {
        "runners": runners,
        "frame_ms": 1000.0 * elapsed / num_frames,
        "fps": num_frames / elapsed,
        "stage_ms": {k: v / num_frames for k, v in stage_ms.items()},
        "overhead_pct": 100.0 * (elapsed - model_s) / elapsed,
        "image_encoder_calls": image_encoder_calls,
        "rss_growth_mb": rss_mb() - reference_rss,
        "state_bytes": tracker.state_nbytes(),
    }


def record_null_models(model_dir: Path, frames, box, mode: str, variant: str, path: Path) -> int:
    """Run the real models over the first RECORDED_FRAMES frames, save every output; returns the frame count."""
    manifest = load_manifest(model_dir)
    runners = {k: RecordingRunner(v) for k, v in open_runners(manifest, OnnxRunner, variant).items()}
    tracker = SamuraiTracker(runners, manifest, load_constants(manifest), load_config(None, manifest.model_size, mode))
    for i, frame in enumerate(frames[:RECORDED_FRAMES]):
        tracker.step(i, frame, box if i == 0 else None)
    Recording.from_runners(manifest, runners).save(path)
    for runner in runners.values():
        runner.close()
    return len(frames[:RECORDED_FRAMES])


def bench_null_models(model_dir: Path, recording: Path, frames, box, config, num_frames: int, repeats: int) -> dict:
    """Median CPU ms (process time) per stage per tracked frame (the prompt frame excluded) over `repeats` runs."""
    manifest = load_manifest(model_dir)
    constants = load_constants(manifest)
    replay = Recording.load(recording, manifest)
    per_frame: list[dict[str, float]] = []
    for _ in range(repeats):
        tracker = SamuraiTracker(replay.runners(manifest), manifest, constants, config)
        tracker.clock = tracker.encoder.clock = CPU_CLOCK
        for i in range(num_frames):
            started = CPU_CLOCK()
            result = tracker.step(i, frames[i % len(frames)], box if i == 0 else None)
            total = 1000.0 * (CPU_CLOCK() - started)
            if i:
                per_frame.append({**result.timings, "other": total - sum(result.timings.values()), "total": total})
    resize_ms = []
    for frame in frames:
        started = CPU_CLOCK()
        preprocess.resize_frame(frame, manifest.image_size, config.resize)
        resize_ms.append(1000.0 * (CPU_CLOCK() - started))
    medians = {k: float(np.median([f[k] for f in per_frame])) for k in per_frame[0]}
    return {"stage_ms": medians, "resize_ms": float(np.median(resize_ms)), "frames": len(per_frame)}


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a WIDTHxHEIGHT source size such as 640x360")
    return int(width), int(height)


def prompt_box(box_xywh) -> tuple[float, float, float, float]:
    x, y, w, h = box_xywh
    return (x, y, x + w, y + h)


def report_null_models(args, frames, boxes, heap_tuned: bool) -> None:
    recording = args.recording or args.model_dir / "null_models.npz"
    manifest = load_manifest(args.model_dir)
    config = load_config(None, manifest.model_size, args.mode)
    if args.resize:
        config = dataclasses.replace(config, resize=args.resize)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if not recording.is_file():
        clip, clip_boxes = scaled_clip(frames, boxes, *sizes[0])
        count = record_null_models(args.model_dir, clip, prompt_box(clip_boxes[0]), args.mode, args.variant, recording)
        print(f"recorded {count} frames of sub-model outputs into {recording}")
    print(f"CPU time in ms per tracked frame outside the models (null models replaying {recording}; "
          f"resize {config.resize}; {args.mode} mode, {manifest.image_size} px; "
          f"heap thresholds {'fixed' if heap_tuned else 'default'}; "
          f"median over {args.repeats} runs x {args.frames - 1} frames):")
    for width, height in sizes:
        clip, clip_boxes = scaled_clip(frames, boxes, width, height)
        figures = bench_null_models(
            args.model_dir, recording, clip, prompt_box(clip_boxes[0]), config, args.frames, args.repeats
        )
        stages = figures["stage_ms"]
        print(f"  {width}x{height}: total {stages.pop('total'):.2f}; "
              + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
              + f" (resize alone {figures['resize_ms']:.2f})")


def bench_official(checkpoint: Path, image_size: int, folder: Path, box) -> float:
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    predictor = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml", str(checkpoint), device="cpu",
        hydra_overrides_extra=[f"++model.image_size={image_size}"],
    )
    with torch.inference_mode():
        state = predictor.init_state(str(folder))
        predictor.add_new_points_or_box(state, 0, 1, box=list(box))
        started = time.perf_counter()
        count = sum(1 for _ in predictor.propagate_in_video(state))
    return count / (time.perf_counter() - started)


def bench_objects(args: argparse.Namespace, frames, box, runners) -> None:
    """Frame time for each object count, on the same runners, against encoder + N x rest + 5 %.

    The counts take turns for `--repeats` rounds and each figure is the median
    over the rounds, so that a load change on a shared machine hits every count alike.
    """
    counts = sorted({1, *args.objects})
    rounds = [
        {n: bench_tracker(args.model_dir, frames, box, args.mode, args.frames, args.variant, n, runners) for n in counts}
        for _ in range(args.repeats)
    ]
    frame_ms = {n: statistics.median(r[n]["frame_ms"] for r in rounds) for n in counts}
    encoder = statistics.median(sum(r[1]["stage_ms"].get(k, 0.0) for k in SHARED_STAGES) for r in rounds)
    rest = frame_ms[1] - encoder
    print(f"objects (same runners, {args.frames} frames per run, median of {args.repeats} interleaved rounds): "
          f"encoder {encoder:.1f} ms/frame, one object's rest {rest:.1f} ms")
    for n in args.objects:
        target = (encoder + n * rest) * MULTI_OBJECT_SLACK
        image_encoder_runs = max(r[n]["image_encoder_calls"] for r in rounds) / args.frames
        verdict = "meets" if frame_ms[n] <= target else "MISSES"
        print(f"  N={n}: {frame_ms[n]:.1f} ms/frame ({1000.0 / frame_ms[n]:.2f} FPS), image encoder {image_encoder_runs:.0f}x "
              f"per frame; target encoder + N x rest + 5 % = {target:.1f} ms: {verdict}")
        stages = {k: statistics.median(r[n]["stage_ms"].get(k, 0.0) for r in rounds) for k in rounds[0][n]["stage_ms"]}
        print("    ms per frame, all objects: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("om_model"))
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--mode", choices=["samurai", "sam2"], default="samurai")
    parser.add_argument("--variant", choices=["fp32", "fp16", "int8"], default="fp32", help="ONNX graphs to time")
    parser.add_argument("--official", type=Path, help="checkpoint: also time the official PyTorch predictor")
    parser.add_argument("--null-models", action="store_true",
                        help="time only the CPU side, with the sub-models replaying --recording")
    parser.add_argument("--recording", type=Path,
                        help="with --null-models: recorded sub-model outputs, made from a real run when missing "
                             "(default MODEL_DIR/null_models.npz)")
    parser.add_argument("--sizes", default=NULL_MODEL_SIZES, help="with --null-models: source sizes WxH,WxH")
    parser.add_argument("--repeats", type=int, default=3,
                        help="with --null-models: runs per source size; with --objects: interleaved rounds (median)")
    parser.add_argument("--resize", choices=list(preprocess.RESIZES), help="frame resize (default: the config's)")
    parser.add_argument("--no-heap-tuning", action="store_true",
                        help="leave glibc's heap thresholds at their defaults (app/run.py fixes them)")
    parser.add_argument("--objects", type=int, nargs="+", metavar="N",
                        help=f"also time N objects per frame for each N (1..{len(EXTRA_BOXES) + 1}), e.g. 1 2 4")
    args = parser.parse_args(argv)
    heap_tuned = not args.no_heap_tuning and heap.keep_freed_pages()
    if args.objects and not all(1 <= n <= len(EXTRA_BOXES) + 1 for n in args.objects):
        parser.error(f"--objects takes counts from 1 to {len(EXTRA_BOXES) + 1}")
    frames, boxes = make_frames(min(args.frames, CLIP_FRAMES))
    box = prompt_box(boxes[0])
    if args.null_models:
        try:
            report_null_models(args, frames, boxes, heap_tuned)
        except (RecordingError, ModelFolderError, BackendError, argparse.ArgumentTypeError) as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            return 2
        return 0
    ours = bench_tracker(args.model_dir, frames, box, args.mode, args.frames, args.variant)
    print(f"tracker ({args.mode}, ONNX Runtime {args.variant}): {ours['fps']:.2f} FPS over {args.frames} frames")
    print("  mean ms per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in ours["stage_ms"].items()))
    print(f"  non-model overhead: {ours['overhead_pct']:.1f} % of frame time")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
          f"growth after frame {min(RSS_REFERENCE_FRAME, args.frames // 2)}: {ours['rss_growth_mb']:.1f} MB, "
          f"tracker state {ours['state_bytes'] / 2**20:.2f} MB")
    if args.objects:
        bench_objects(args, frames, box, ours["runners"])
    if args.official:
        manifest = load_manifest(args.model_dir)
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_jpeg_folder(Path(tmp), frames)
            official = bench_official(args.official, manifest.image_size, folder, box)
        print(f"official PyTorch predictor: {official:.2f} FPS; ratio tracker/official = {ours['fps'] / official:.2f}x")
    return 0


if __name__ == "__main__":
    logger.remove()
    sys.exit(main())
