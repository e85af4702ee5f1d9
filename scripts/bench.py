"""Benchmark the tracker on a generated clip, optionally side by side with the official predictor.

    python scripts/bench.py --model-dir om_model [--frames 60] [--backend onnx|openvino] [--precision ...] [--objects 1 2 4]
    python scripts/bench.py --model-dir om_model --frames 40 --official CHECKPOINT [--pairs onnx:fp32,openvino:bf16]
        [--compare OTHER_MODEL_DIR ...]
    taskset -c 0 python scripts/bench.py --model-dir om_model --null-models [--recording FILE]
    python scripts/bench.py --model-dir om_model --memory [--frames 3000] [--recording FILE]

Alone it prints FPS, mean ms per stage, the share of frame time spent outside
the sub-models (preprocessing, memory bank, selection, post-processing), peak
RSS and the RSS growth between frame 100 (or the middle) and the end.

With --official every backend/precision pair and the official PyTorch
predictor run as separate processes on the same JPEG folder, alternated, each
--repeats times, and both are timed the same two ways: the whole process
(from its start to its last frame: imports, model loading or compilation,
reading the frames, tracking) and in the loop (from the prompt frame to the
last frame, per frame). It prints the medians, each pair's ratio to the
official predictor, and each pair's decisions against the exact ONNX Runtime
fp32 run: frames whose chosen mask token differs, and the lowest mask IoU.
The official predictor is the export's family's: for an EdgeTAM export, the
official EdgeTAM code run with the official EdgeTAM environment's Python
(scripts/setup_official_edgetam.sh). Each `--compare` export (e.g. hiera-t
beside EdgeTAM, at the same image size) adds its exact ONNX Runtime row to the
alternation, and the speed-up of every pair over it is printed last.

`--null-models` measures only the CPU side: the four sub-models are replaced
by instant replays of their outputs (recorded from a real run into FILE first,
default MODEL_DIR/null_models.npz, when that file does not exist), and
it prints the median CPU milliseconds per stage per tracked frame for each
`--sizes` source resolution.

`--memory` tracks --frames frames (3000 for a long run) with the same null
models and prints the tracker's state size and the process RSS every
MEMORY_REPORT_EVERY frames: both must stay flat, where the official predictor
keeps every frame's memory and grows without bound.

With --objects, the same runners track 1, 2, 4 ... objects one after the other
and it prints each count's frame time against the target: the image encoder
runs once per frame, so N objects should cost at most encoder + N x (the
one-object frame time without the encoder), + 5 %.

`--overlap` times each pair (default OVERLAP_PAIRS) sequentially and with the
next frame's image encoder overlapping this frame's per-object stages (the
runners opened once each way, the two schedules alternated, --repeats rounds,
for each --objects count): in-loop ms and FPS per frame, and the per-frame
latency from the moment a frame is taken (read, then encoded) to its result.
It checks that both schedules give bit-identical masks, chosen tokens and logits.
A pair written BACKEND:PRECISION+overlap (also with --official) runs overlapped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loguru import logger

from acl_models.base import BackendError
from acl_models.manifest import ModelFolderError
from acl_models.openvino_runner import PRECISIONS
from acl_models.replay_runner import RecordingError
from acl_models.select import DEFAULT_PRECISION
from app.benchmarks.speed.null_models import MEMORY_REPORT_EVERY, default_recording, report_memory, report_null_models
from app.benchmarks.speed.official import child_run, side_by_side
from app.benchmarks.speed.overlap import bench_overlap
from app.benchmarks.speed.pairs import DEFAULT_PAIRS, OVERLAP_PAIRS, OVERLAP_SUFFIX
from app.benchmarks.speed.single import report_objects, report_single
from app.benchmarks.speed.tracking import CLIP_FRAMES, MAX_OBJECTS, BenchSettings, SizeError, prompt_box
from app.live import heap
from app.media.textured_clip import make_frames
from app.samurai import preprocess

# Source resolutions of the CPU-side report: a small camera mode and full HD.
NULL_MODEL_SIZES = "640x360,1920x1080"
VARIANTS = ("fp32", "fp16", "int8")
EXIT_BAD_INPUT = 2


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("om_model"))
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--mode", choices=["samurai", "sam2"], default="samurai")
    parser.add_argument("--backend", choices=["onnx", "openvino"], default="onnx")
    parser.add_argument("--variant", choices=VARIANTS, default="fp32", help="ONNX Runtime graphs to time")
    parser.add_argument("--precision", choices=list(PRECISIONS), default=DEFAULT_PRECISION, help="OpenVINO precision")
    parser.add_argument("--official", type=Path, help="checkpoint: time the official PyTorch predictor side by side")
    parser.add_argument("--compare", type=Path, nargs="+", default=(), metavar="MODEL_DIR",
                        help="with --official: also time these exports' exact ONNX Runtime path (e.g. hiera-t)")
    parser.add_argument("--pairs", help=f"backend:precision[{OVERLAP_SUFFIX}] pairs to time against the official "
                        f"predictor (default {DEFAULT_PAIRS}) or with --overlap (default {OVERLAP_PAIRS})")
    parser.add_argument("--overlap", action="store_true",
                        help="time each pair sequential and with overlapped frames, for each --objects count")
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternated runs per pair with --official, runs per source size with --null-models, "
                             "interleaved rounds with --objects (medians)")
    parser.add_argument("--null-models", action="store_true",
                        help="time only the CPU side, with the sub-models replaying --recording")
    parser.add_argument("--recording", type=Path,
                        help="with --null-models: recorded sub-model outputs, made from a real run when missing "
                             "(default MODEL_DIR/null_models.npz)")
    parser.add_argument("--memory", action="store_true",
                        help=f"tracker state and RSS every {MEMORY_REPORT_EVERY} frames over --frames, on null models")
    parser.add_argument("--sizes", default=NULL_MODEL_SIZES, help="with --null-models: source sizes WxH,WxH")
    parser.add_argument("--resize", choices=list(preprocess.RESIZES), help="frame resize (default: the config's)")
    parser.add_argument("--no-heap-tuning", action="store_true",
                        help="leave glibc's heap thresholds at their defaults (app/run.py fixes them)")
    parser.add_argument("--objects", type=int, nargs="+", metavar="N",
                        help=f"also time N objects per frame for each N (1..{MAX_OBJECTS}), e.g. 1 2 4")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser, parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> BenchSettings:
    # Absolute: the side-by-side runs' processes start in the repository, not where the user stands.
    return BenchSettings(args.model_dir.resolve(), args.frames, args.mode, args.repeats)


def _clip(args: argparse.Namespace):
    """The generated clip (at most CLIP_FRAMES frames, replayed in a loop) and its ground-truth boxes."""
    return make_frames(min(args.frames, CLIP_FRAMES))


def _fail(exc: Exception) -> int:
    print(f"ERROR {exc}", file=sys.stderr)
    return EXIT_BAD_INPUT


def command_child(args: argparse.Namespace) -> int:
    return child_run(_settings(args), args.child, args.clip, args.result, args.official)


def command_official(args: argparse.Namespace) -> int:
    try:
        return side_by_side(_settings(args), args.official.resolve(), args.pairs,
                            [sys.executable, str(Path(__file__).resolve())],
                            tuple(folder.resolve() for folder in args.compare))
    except RuntimeError as exc:  # a timed process failed: its last line says why
        return _fail(exc)


def command_overlap(args: argparse.Namespace) -> int:
    frames, boxes = _clip(args)
    try:
        return bench_overlap(_settings(args), args.pairs, args.objects, frames, prompt_box(boxes[0]))
    except (ModelFolderError, BackendError) as exc:
        return _fail(exc)


def command_memory(args: argparse.Namespace) -> int:
    frames, boxes = _clip(args)
    try:
        report_memory(_settings(args), args.recording or default_recording(args.model_dir), args.variant, frames, boxes)
    except (RecordingError, ModelFolderError, BackendError) as exc:
        return _fail(exc)
    return 0


def command_null_models(args: argparse.Namespace, heap_tuned: bool) -> int:
    frames, boxes = _clip(args)
    try:
        report_null_models(_settings(args), args.recording or default_recording(args.model_dir), args.variant,
                           args.resize, args.sizes, heap_tuned, frames, boxes)
    except (RecordingError, ModelFolderError, BackendError, SizeError) as exc:
        return _fail(exc)
    return 0


def command_single(args: argparse.Namespace) -> int:
    frames, boxes = _clip(args)
    box = prompt_box(boxes[0])
    precision = args.variant if args.backend == "onnx" else args.precision
    ours = report_single(_settings(args), frames, box, args.backend, precision)
    if args.objects:
        report_objects(_settings(args), args.objects, frames, box, ours["runners"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_args(argv)
    heap_tuned = not args.no_heap_tuning and heap.keep_freed_pages()
    if args.child:
        return command_child(args)
    if args.official:
        return command_official(args)
    if args.objects and not all(1 <= n <= MAX_OBJECTS for n in args.objects):
        parser.error(f"--objects takes counts from 1 to {MAX_OBJECTS}")
    if args.overlap:
        return command_overlap(args)
    if args.memory:
        return command_memory(args)
    if args.null_models:
        return command_null_models(args, heap_tuned)
    return command_single(args)


if __name__ == "__main__":
    logger.remove()
    logger.add(sys.stderr, level="INFO", format="{message}")
    sys.exit(main())
