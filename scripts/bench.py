"""Benchmark the tracker on a generated clip, optionally side by side with the official predictor.

    python scripts/bench.py --model-dir om_model [--frames 60] [--backend onnx|openvino] [--precision ...] [--objects 1 2 4]
    python scripts/bench.py --model-dir om_model --frames 40 --official CHECKPOINT [--pairs onnx:fp32,openvino:bf16]
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
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from loguru import logger

from acl_models.base import BackendError, Pending
from acl_models.bundle import ModelBundle, open_bundle, open_bundle_with
from acl_models.manifest import ModelFolderError, load_constants, load_manifest
from acl_models.onnx_runner import OnnxRunner
from acl_models.openvino_runner import INT8_GRAPHS, INT8_KEY, PRECISIONS, openvino_problem, supported_precisions
from acl_models.replay_runner import Recording, RecordingError, RecordingRunner
from acl_models.select import DEFAULT_PRECISION
from app.live import heap
from app.media.textured_clip import make_frames, scaled_clip, write_jpeg_folder
from app.samurai import preprocess
from app.samurai.config import load_config
from app.samurai.multi_tracker import MultiObjectTracker
from app.samurai.tracker import SamuraiTracker

RSS_REFERENCE_FRAME = 100
# Frames are generated once and replayed in a loop, so that a 3000-frame run
# measures the tracker's memory, not the clip's.
CLIP_FRAMES = 120
# Source resolutions of the CPU-side report: a small camera mode and full HD.
NULL_MODEL_SIZES = "640x360,1920x1080"
MEMORY_REPORT_EVERY = 500
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
VARIANTS = ("fp32", "fp16", "int8")
# The exact pair every other pair's decisions are compared with.
REFERENCE_PAIR = "onnx:fp32"
DEFAULT_PAIRS = ("onnx:fp32,onnx:int8,openvino:f32,openvino:bf16,openvino:int8,"
                 "onnx:fp32+overlap,openvino:f32+overlap,openvino:bf16+overlap")
# --overlap: the pairs timed both ways; a pair's suffix that asks for overlapped frames.
OVERLAP_PAIRS = "onnx:fp32,openvino:f32,openvino:bf16"
OVERLAP_SUFFIX = "+overlap"
LATENCY_PERCENTILES = (50, 95)
OFFICIAL = "official"
REPO = Path(__file__).resolve().parents[1]


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

    def submit(self, inputs):
        """Counts the time the caller spends submitting and waiting, not the run beside it."""
        self.calls += 1
        start = time.perf_counter()
        try:
            return _TimedPending(self, self.runner.submit(inputs))
        finally:
            self.seconds += time.perf_counter() - start

    def close(self):
        self.runner.close()


class _TimedPending(Pending):
    def __init__(self, owner: TimedRunner, pending: Pending):
        self._owner, self._pending = owner, pending

    def _collect(self):
        start = time.perf_counter()
        try:
            return self._pending.wait()
        finally:
            self._owner.seconds += time.perf_counter() - start


def parse_pair(pair: str) -> tuple[str, str, bool]:
    """"openvino:bf16+overlap" -> ("openvino", "bf16", True)."""
    overlap = pair.endswith(OVERLAP_SUFFIX)
    backend, _, precision = pair.removesuffix(OVERLAP_SUFFIX).partition(":")
    return backend, precision, overlap


def open_pair(model_dir: Path, backend: str, precision: str, overlap: bool = False) -> ModelBundle:
    """The models of one backend/precision pair: ONNX Runtime takes an exported variant, OpenVINO a precision.

    Overlapped, the image encoder and the other sub-models share the cores (acl_models.select.split_threads).
    """
    if backend == "onnx":
        return open_bundle(model_dir, backend, variant=precision, overlap=overlap)
    return open_bundle(model_dir, backend, precision=precision, overlap=overlap)


def bench_tracker(
    model_dir: Path, frames, box, mode: str, num_frames: int, backend: str = "onnx", precision: str = "fp32",
    objects: int = 1, runners=None, keep_masks: bool = False, overlap: bool = False,
) -> dict:
    """Track `objects` objects (the first on `box`); `runners` from an earlier call are reused (and stay open).

    With `overlap` the next frame's image encoder runs while this frame's objects are tracked.
    A frame's latency runs from when the loop takes it (to encode it) to its result.
    """
    manifest = load_manifest(model_dir)
    runners = runners or open_pair(model_dir, backend, precision, overlap).wrap(TimedRunner).runners
    for runner in runners.values():
        runner.seconds, runner.calls = 0.0, 0
    bundle = ModelBundle(manifest, load_constants(manifest), runners)
    tracker = MultiObjectTracker(bundle, load_config(None, manifest.model_size, mode))
    for obj_id, obj_box in enumerate([box, *EXTRA_BOXES][:objects], start=1):
        tracker.add(obj_id, obj_box)
    stage_ms: dict[str, float] = {}
    reference_rss = None
    tokens, masks, logits, latency_ms = [], [], [], []
    taken: dict[int, float] = {}

    def source():
        for i in range(num_frames):
            taken[i] = time.perf_counter()
            yield i, frames[i % len(frames)], None

    started = time.perf_counter()
    for frame in tracker.encoder.frames(source(), overlap):
        result = tracker.track(frame)
        latency_ms.append(1000.0 * (time.perf_counter() - taken.pop(frame.frame_idx)))
        for k, v in result.timings.items():
            stage_ms[k] = stage_ms.get(k, 0.0) + v
        if keep_masks:
            tokens.append(result.objects[1].mask_index)
            masks.append(np.packbits(result.objects[1].mask))
            logits.append(result.objects[1].low_res_logits)
        if frame.frame_idx == min(RSS_REFERENCE_FRAME, num_frames // 2):
            reference_rss = rss_mb()
    last_frame_at = time.time()
    elapsed = time.perf_counter() - started
    model_s = sum(r.seconds for r in runners.values())
    image_encoder_calls = runners["image_encoder"].calls
    return {
        "runners": runners,
        "frame_ms": 1000.0 * elapsed / num_frames,
        "fps": num_frames / elapsed,
        "loop_s": elapsed,
        "last_frame_at": last_frame_at,
        "latency_ms": latency_ms,
        "stage_ms": {k: v / num_frames for k, v in stage_ms.items()},
        "overhead_pct": 100.0 * (elapsed - model_s) / elapsed,
        "image_encoder_calls": image_encoder_calls,
        "rss_growth_mb": rss_mb() - reference_rss,
        "state_bytes": tracker.state_nbytes(),
        "tokens": tokens,
        "masks": masks,
        "logits": logits,
    }


def record_null_models(model_dir: Path, frames, box, mode: str, variant: str, path: Path) -> int:
    """Run the real models over the first RECORDED_FRAMES frames, save every output; returns the frame count."""
    bundle = open_bundle_with(model_dir, OnnxRunner, variant).wrap(RecordingRunner)
    manifest = bundle.manifest
    tracker = SamuraiTracker(bundle, load_config(None, manifest.model_size, mode))
    for i, frame in enumerate(frames[:RECORDED_FRAMES]):
        tracker.step(i, frame, box if i == 0 else None)
    Recording.from_runners(manifest, bundle.runners).save(path)
    bundle.close()
    return len(frames[:RECORDED_FRAMES])


def bench_null_models(model_dir: Path, recording: Path, frames, box, config, num_frames: int, repeats: int) -> dict:
    """Median CPU ms (process time) per stage per tracked frame (the prompt frame excluded) over `repeats` runs."""
    manifest = load_manifest(model_dir)
    replay = Recording.load(recording, manifest)
    per_frame: list[dict[str, float]] = []
    for _ in range(repeats):
        tracker = SamuraiTracker(replay.bundle(manifest), config)
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


def report_memory(args, frames, boxes) -> None:
    """Tracker state and RSS along a long run on null models (recorded first when the recording is missing)."""
    recording = args.recording or args.model_dir / "null_models.npz"
    manifest = load_manifest(args.model_dir)
    config = load_config(None, manifest.model_size, args.mode)
    box = prompt_box(boxes[0])
    if not recording.is_file():
        count = record_null_models(args.model_dir, frames, box, args.mode, args.variant, recording)
        print(f"recorded {count} frames of sub-model outputs into {recording}")
    replay = Recording.load(recording, manifest)
    tracker = SamuraiTracker(replay.bundle(manifest), config)
    print(f"memory over {args.frames} frames ({args.mode} mode, null models replaying {recording}):")
    started = time.perf_counter()
    for i in range(args.frames):
        tracker.step(i, frames[i % len(frames)], box if i == 0 else None)
        if (i + 1) % MEMORY_REPORT_EVERY == 0 or i + 1 == args.frames:
            print(f"  frame {i + 1:>6}: tracker state {tracker.state_nbytes() / 2**20:.3f} MB, RSS {rss_mb():.0f} MB, "
                  f"{time.perf_counter() - started:.0f} s", flush=True)


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


def bench_official(checkpoint: Path, image_size: int, folder: Path, box) -> dict:
    """The official predictor on a JPEG folder, timed from the prompt frame to the last frame."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    predictor = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml", str(checkpoint), device="cpu",
        hydra_overrides_extra=[f"++model.image_size={image_size}"],
    )
    masks = []
    with torch.inference_mode():
        state = predictor.init_state(str(folder))
        started = time.perf_counter()
        predictor.add_new_points_or_box(state, 0, 1, box=list(box))
        for _, _, logits in predictor.propagate_in_video(state):
            masks.append(np.packbits((logits[0, 0] > 0).numpy()))
    last_frame_at = time.time()
    elapsed = time.perf_counter() - started
    return {"fps": len(masks) / elapsed, "loop_s": elapsed, "last_frame_at": last_frame_at, "tokens": [], "masks": masks}


# -- side by side, one process per run ---------------------------------------


@dataclass
class Run:
    whole_s: float
    loop_s: float
    overhead_pct: float | None
    tokens: list[int]
    masks: list[np.ndarray]


def child_main(args: argparse.Namespace) -> int:
    """One timed run in this process; the result goes to args.result as .npz."""
    from PIL import Image

    folder = args.clip
    box = tuple(json.loads(folder.with_suffix(".json").read_text()))
    if args.child == OFFICIAL:
        out = bench_official(args.official, load_manifest(args.model_dir).image_size, folder, box)
        overhead = np.nan
    else:
        # Read as the official predictor's init_state does: every frame before the loop.
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"))]
        backend, precision, overlap = parse_pair(args.child)
        out = bench_tracker(
            args.model_dir, frames, box, args.mode, len(frames), backend, precision, keep_masks=True, overlap=overlap
        )
        overhead = out["overhead_pct"]
    np.savez(
        args.result, loop_s=out["loop_s"], last_frame_at=out["last_frame_at"], overhead_pct=overhead,
        tokens=np.asarray(out["tokens"], dtype=np.int64), masks=np.stack(out["masks"]),
    )
    return 0


def run_child(name: str, args: argparse.Namespace, clip: Path, result: Path) -> Run:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--clip", str(clip),
               "--result", str(result), "--model-dir", str(args.model_dir), "--mode", args.mode]
    if args.official:
        command += ["--official", str(args.official)]
    # Idle OpenMP threads of the official predictor sleep, as ONNX Runtime's do here: on
    # shared cores PyTorch's default spin-waiting makes it several times slower, which
    # would flatter the tracker.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    spawned_at = time.time()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{name} run failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
    data = np.load(result)
    overhead = float(data["overhead_pct"])
    return Run(
        whole_s=float(data["last_frame_at"]) - spawned_at, loop_s=float(data["loop_s"]),
        overhead_pct=None if np.isnan(overhead) else overhead, tokens=data["tokens"].tolist(), masks=list(data["masks"]),
    )


def available_pairs(requested: str, model_dir: Path) -> list[str]:
    """The requested pairs this machine and this export can run; says which it leaves out."""
    manifest = load_manifest(model_dir)
    pairs = []
    for pair in requested.split(","):
        backend, precision, _ = parse_pair(pair)
        if backend == "onnx":
            ok = precision == "fp32" or precision in manifest.models["image_encoder"].get("variants", {})
            why = f"no {precision} export (convert/export_onnx.py --{precision})"
        else:
            problem = openvino_problem()
            ok = problem is None and precision in supported_precisions()
            why = problem or f"this CPU does not run {precision} in OpenVINO"
            if ok and precision == "int8" and not all(INT8_KEY in manifest.models[n] for n in INT8_GRAPHS):
                ok, why = False, f"no quantised graphs (python convert/quantize_int8.py --models {model_dir})"
        if ok:
            pairs.append(pair)
        else:
            print(f"skipping {pair}: {why}")
    return pairs


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.unpackbits(a).astype(bool), np.unpackbits(b).astype(bool)
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def side_by_side(args: argparse.Namespace) -> int:
    pairs = available_pairs(args.pairs or DEFAULT_PAIRS, args.model_dir)
    if REFERENCE_PAIR not in pairs:
        pairs.insert(0, REFERENCE_PAIR)
    names = [OFFICIAL, *pairs]
    runs: dict[str, list[Run]] = {name: [] for name in names}
    frames, boxes = make_frames(args.frames)
    x, y, w, h = boxes[0]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_jpeg_folder(Path(tmp) / "clip", frames)
        clip.with_suffix(".json").write_text(json.dumps([x, y, x + w, y + h]))
        for repeat in range(args.repeats):
            # Alternate the order so that a slow spell on the shared machine does not hit one side only.
            for name in names if repeat % 2 == 0 else names[::-1]:
                runs[name].append(run_child(name, args, clip, Path(tmp) / "result.npz"))
                logger.info("run {}/{} {}: whole {:.1f} s", repeat + 1, args.repeats, name, runs[name][-1].whole_s)
    official = runs[OFFICIAL]
    official_whole = statistics.median(r.whole_s for r in official)
    official_loop = statistics.median(r.loop_s for r in official)
    reference = runs[REFERENCE_PAIR][0]
    print(f"{args.frames} frames, {args.mode} mode, median of {args.repeats} alternated runs per row, one process each; "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'run':<16}{'whole s':>9}{'FPS':>7}{'ratio':>7}{'loop ms/f':>11}{'FPS':>7}{'ratio':>7}"
          f"{'overhead':>10}{'flips':>7}{'min IoU':>9}")
    for name in names:
        whole = statistics.median(r.whole_s for r in runs[name])
        loop = statistics.median(r.loop_s for r in runs[name])
        overheads = [r.overhead_pct for r in runs[name] if r.overhead_pct is not None]
        overhead = f"{statistics.median(overheads):.1f} %" if overheads else "-"
        agreement = f"{'-':>7}{'-':>9}"
        if name != OFFICIAL:
            first = runs[name][0]
            flips = sum(a != b for a, b in zip(first.tokens, reference.tokens))
            iou = min(_mask_iou(a, b) for a, b in zip(first.masks, reference.masks))
            agreement = f"{flips:>7}{iou:>9.3f}"
        print(f"{name:<16}{whole:>9.1f}{args.frames / whole:>7.2f}{official_whole / whole:>6.2f}x"
              f"{1000 * loop / args.frames:>11.0f}{args.frames / loop:>7.2f}{official_loop / loop:>6.2f}x"
              f"{overhead:>10}{agreement}")
    return 0


def bench_objects(args: argparse.Namespace, frames, box, runners) -> None:
    """Frame time for each object count, on the same runners, against encoder + N x rest + 5 %.

    The counts take turns for `--repeats` rounds and each figure is the median
    over the rounds, so that a load change on a shared machine hits every count alike.
    """
    counts = sorted({1, *args.objects})
    rounds = [
        {n: bench_tracker(args.model_dir, frames, box, args.mode, args.frames, objects=n, runners=runners) for n in counts}
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


def _same_run(a: dict, b: dict) -> bool:
    """Bit-identical chosen tokens, masks and low-res logits of object 1."""
    return a["tokens"] == b["tokens"] and all(
        np.array_equal(x, y) for key in ("masks", "logits") for x, y in zip(a[key], b[key], strict=True)
    )


def bench_overlap(args: argparse.Namespace, frames, box) -> int:
    """Each pair sequential and overlapped, for each object count, alternated over --repeats rounds (medians)."""
    counts = args.objects or [1]
    print(f"sequential vs overlapped frames: {args.frames} frames per run, {args.mode} mode, median of {args.repeats} "
          f"alternated rounds; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{'pair':<16}{'objects':>8}{'seq ms/f':>10}{'FPS':>7}{'lat p50':>9}{'p95':>6}"
          f"{'ovl ms/f':>10}{'FPS':>7}{'lat p50':>9}{'p95':>6}{'speed-up':>10}{'latency':>9}  identical")
    for pair in available_pairs(args.pairs or OVERLAP_PAIRS, args.model_dir):
        backend, precision, _ = parse_pair(pair)
        opened = {
            overlap: open_pair(args.model_dir, backend, precision, overlap).wrap(TimedRunner).runners
            for overlap in (False, True)
        }
        runs: dict[tuple[int, bool], list[dict]] = {(n, o): [] for n in counts for o in (False, True)}
        for repeat in range(args.repeats):
            for overlap in (False, True) if repeat % 2 == 0 else (True, False):
                for n in counts:
                    runs[n, overlap].append(bench_tracker(
                        args.model_dir, frames, box, args.mode, args.frames, objects=n, runners=opened[overlap],
                        keep_masks=True, overlap=overlap,
                    ))
        for n in counts:
            figures = []
            for overlap in (False, True):
                done = runs[n, overlap]
                frame_ms = statistics.median(r["frame_ms"] for r in done)
                latency = [statistics.median(float(np.percentile(r["latency_ms"], q)) for r in done)
                           for q in LATENCY_PERCENTILES]
                figures.append((frame_ms, latency))
            (seq_ms, seq_lat), (ovl_ms, ovl_lat) = figures
            identical = all(_same_run(a, b) for a, b in zip(runs[n, False], runs[n, True]))
            print(f"{pair:<16}{n:>8}{seq_ms:>10.0f}{1000 / seq_ms:>7.2f}{seq_lat[0]:>9.0f}{seq_lat[1]:>6.0f}"
                  f"{ovl_ms:>10.0f}{1000 / ovl_ms:>7.2f}{ovl_lat[0]:>9.0f}{ovl_lat[1]:>6.0f}"
                  f"{seq_ms / ovl_ms:>9.2f}x{100 * (ovl_lat[0] / seq_lat[0] - 1):>+8.0f}%"
                  f"  {'yes' if identical else 'NO'}")
        for runners in opened.values():
            for runner in runners.values():
                runner.close()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("om_model"))
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--mode", choices=["samurai", "sam2"], default="samurai")
    parser.add_argument("--backend", choices=["onnx", "openvino"], default="onnx")
    parser.add_argument("--variant", choices=VARIANTS, default="fp32", help="ONNX Runtime graphs to time")
    parser.add_argument("--precision", choices=list(PRECISIONS), default=DEFAULT_PRECISION, help="OpenVINO precision")
    parser.add_argument("--official", type=Path, help="checkpoint: time the official PyTorch predictor side by side")
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
                        help=f"also time N objects per frame for each N (1..{len(EXTRA_BOXES) + 1}), e.g. 1 2 4")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    heap_tuned = not args.no_heap_tuning and heap.keep_freed_pages()
    if args.child:
        return child_main(args)
    if args.official:
        return side_by_side(args)
    if args.objects and not all(1 <= n <= len(EXTRA_BOXES) + 1 for n in args.objects):
        parser.error(f"--objects takes counts from 1 to {len(EXTRA_BOXES) + 1}")
    frames, boxes = make_frames(min(args.frames, CLIP_FRAMES))
    box = prompt_box(boxes[0])
    if args.overlap:
        try:
            return bench_overlap(args, frames, box)
        except (ModelFolderError, BackendError) as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            return 2
    if args.memory:
        try:
            report_memory(args, frames, boxes)
        except (RecordingError, ModelFolderError, BackendError) as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            return 2
        return 0
    if args.null_models:
        try:
            report_null_models(args, frames, boxes, heap_tuned)
        except (RecordingError, ModelFolderError, BackendError, argparse.ArgumentTypeError) as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            return 2
        return 0
    precision = args.variant if args.backend == "onnx" else args.precision
    ours = bench_tracker(args.model_dir, frames, box, args.mode, args.frames, args.backend, precision)
    print(f"tracker ({args.mode}, {args.backend} {precision}): {ours['fps']:.2f} FPS over {args.frames} frames")
    print("  mean ms per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in ours["stage_ms"].items()))
    print(f"  non-model overhead: {ours['overhead_pct']:.1f} % of frame time")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
          f"growth after frame {min(RSS_REFERENCE_FRAME, args.frames // 2)}: {ours['rss_growth_mb']:.1f} MB, "
          f"tracker state {ours['state_bytes'] / 2**20:.2f} MB")
    if args.objects:
        bench_objects(args, frames, box, ours["runners"])
    return 0


if __name__ == "__main__":
    logger.remove()
    logger.add(sys.stderr, level="INFO", format="{message}")
    sys.exit(main())
