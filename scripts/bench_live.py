"""Benchmark the tracking loop: a live source at a fixed rate, and files pipelined vs one after another.

    python scripts/bench_live.py --model-dir om_model [--live-seconds 20] [--source-fps 30] [--file-frames 60]

Live: a synthetic camera delivers a generated clip at `--source-fps` (paced like a
real one) to the pipelined loop; prints tracker FPS, latency p50/p95 (capture →
result ready) and dropped frames, against the bound one tracker step + one source
frame + 20 ms. Files: the same frame folder is tracked with the loop pipelined and
sequential (`--sequential`), alternating, each writing track.txt, masks and a
video as the CLI does; prints both FPS, their ratio and the share of the
sequential frame spent outside the models (decode, preprocessing, writing), the
most that overlapping can win.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np
from loguru import logger

from acl_models.bundle import open_bundle_with
from acl_models.onnx_runner import OnnxRunner
from app.benchmarks.speed.timing import TimedRunner
from app.live.control import TrackController
from app.live.pipeline import TrackingLoop
from app.live.stats import LoopStats
from app.live.tracked import Tracked
from app.media.drawing import annotate
from app.media.live_sources import CameraSource
from app.media.outputs import MaskWriter, TrackWriter
from app.media.sources import FolderSource
from app.media.textured_clip import make_frames, write_jpeg_folder
from app.media.video_file import VideoWriter
from app.samurai.boxes import Box
from app.samurai.config import load_config
from app.samurai.multi_tracker import MultiObjectTracker

# The bound of the live target: one tracker step + one source frame + this.
LATENCY_MARGIN_MS = 20.0
MS_PER_S = 1000.0
FILE_ROUNDS = 2
VIDEO_FPS = 30.0


class PacedCamera:
    """A camera at a fixed frame rate that loops over `frames` (RGB) until released."""

    def __init__(self, frames: list[np.ndarray], fps: float):
        self.frames = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
        self.period, self.reads, self._next = 1.0 / fps, 0, time.monotonic()
        self.fps = fps

    def isOpened(self) -> bool:
        return True

    def read(self):
        self._next += self.period
        time.sleep(max(0.0, self._next - time.monotonic()))
        frame = self.frames[self.reads % len(self.frames)]
        self.reads += 1
        return True, frame

    def release(self) -> None:
        """Nothing to free."""

    def get(self, prop: int) -> float:
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0


class Models:
    def __init__(self, model_dir: Path, variant: str, mode: str, threads: int | None):
        self.bundle = open_bundle_with(model_dir, lambda path: OnnxRunner(path, threads=threads), variant).wrap(TimedRunner)
        self.runners = self.bundle.runners
        self.config = load_config(None, self.bundle.manifest.model_size, mode)

    def tracker(self) -> MultiObjectTracker:
        return MultiObjectTracker(self.bundle, self.config)

    def model_seconds(self) -> float:
        return sum(r.seconds for r in self.runners.values())

    def reset(self) -> None:
        for runner in self.runners.values():
            runner.seconds = 0.0


def bench_live(models: Models, frames, box, fps: float, seconds: float) -> tuple[LoopStats, float, int, list[float]]:
    """Loop stats, mean step ms, dropped frames, and each result's wait in ms (latency minus its own step)."""
    camera = PacedCamera(frames, fps)
    source = CameraSource(0, capture_factory=lambda _device: camera)
    controller = TrackController(source.size)
    controller.track(Box(*box))
    started = time.monotonic()

    def stop_after(stats: LoopStats) -> None:
        if time.monotonic() - started >= seconds:
            controller.stop()

    waits: list[float] = []

    def record_wait(item: Tracked) -> None:
        if item.result is not None:
            step_s = sum(item.timings.values()) / MS_PER_S
            waits.append(MS_PER_S * (item.ready - item.frame.captured - step_s))

    loop = TrackingLoop(source, models.tracker, controller, [record_wait], on_frame=stop_after)
    try:
        stats = loop.run()
    finally:
        source.close()
    step_ms = sum(stats.stage_ms.values()) / max(stats.frames, 1)
    return stats, step_ms, loop.dropped, waits


def bench_file(models: Models, folder: Path, box, pipelined: bool, out: Path) -> tuple[float, float]:
    """(FPS, share of the wall time spent outside the models) over the folder, writing what the CLI writes."""
    models.reset()
    with ExitStack() as stack:
        source = stack.enter_context(FolderSource(folder))
        track = stack.enter_context(TrackWriter(out))
        masks = stack.enter_context(MaskWriter(out))
        video = stack.enter_context(VideoWriter(out, VIDEO_FPS, source.size))

        def write(item: Tracked) -> None:
            if item.result is not None:
                track.write(item.frame.index, item.result.box)
                masks.write(item.frame.index, item.result.mask)
                video.write(annotate(item.frame.image, item.results))

        controller = TrackController(source.size)
        controller.track(Box(*box))
        started = time.perf_counter()
        stats = TrackingLoop(source, models.tracker, controller, [write], pipelined=pipelined).run()
        elapsed = time.perf_counter() - started
    return stats.frames / elapsed, 1.0 - models.model_seconds() / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("om_model"))
    parser.add_argument("--variant", choices=["fp32", "fp16", "int8"], default="fp32")
    parser.add_argument("--mode", choices=["samurai", "sam2"], default="samurai")
    parser.add_argument("--size", default="640x480", help="frame size WxH of the generated source")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores; 1 leaves the other "
                        "cores free as an NPU does)")
    parser.add_argument("--source-fps", type=float, default=30.0)
    parser.add_argument("--live-seconds", type=float, default=20.0, help="0 skips the live benchmark")
    parser.add_argument("--file-frames", type=int, default=60, help="0 skips the file benchmark")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    frames, boxes = make_frames(max(args.file_frames, 2), width=width, height=height)
    models = Models(args.model_dir, args.variant, args.mode, args.threads)
    if args.live_seconds > 0:
        stats, step_ms, dropped, waits = bench_live(models, frames, boxes[0], args.source_fps, args.live_seconds)
        bound = step_ms + MS_PER_S / args.source_fps + LATENCY_MARGIN_MS
        p50, p95 = stats.latency.percentile(50), stats.latency.percentile(95)
        print(f"live {args.size} at {args.source_fps:g} FPS for {args.live_seconds:g} s "
              f"(ONNX Runtime {args.variant}): tracker {stats.fps:.2f} FPS over {stats.frames} frames")
        print(f"  latency p50 {p50:.0f} ms, p95 {p95:.0f} ms (bound: step {step_ms:.0f} ms + frame "
              f"{MS_PER_S / args.source_fps:.0f} ms + {LATENCY_MARGIN_MS:.0f} ms = {bound:.0f} ms: "
              f"{'met' if p95 <= bound else 'NOT met'}); dropped {dropped} frames")
        frame_ms = MS_PER_S / args.source_fps
        wait_p95 = float(np.percentile(waits, 95)) if waits else 0.0
        print(f"  age of a frame when its step starts (latency minus that step): p95 {wait_p95:.0f} ms "
              f"(bound: frame {frame_ms:.0f} ms + {LATENCY_MARGIN_MS:.0f} ms: "
              f"{'met' if wait_p95 <= frame_ms + LATENCY_MARGIN_MS else 'NOT met'})")
    if args.file_frames > 0:
        results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_jpeg_folder(Path(tmp) / "frames", frames[: args.file_frames])
            for _ in range(FILE_ROUNDS):
                for pipelined in (False, True):
                    results[pipelined].append(bench_file(models, folder, boxes[0], pipelined, Path(tmp) / "out"))
        sequential = statistics.median(fps for fps, _ in results[False])
        pipelined = statistics.median(fps for fps, _ in results[True])
        share = statistics.median(s for _, s in results[False])
        print(f"files {args.size}, {args.file_frames} frames, track.txt + masks + video, median of {FILE_ROUNDS} "
              f"alternating runs: sequential {sequential:.2f} FPS, pipelined {pipelined:.2f} FPS, "
              f"ratio {pipelined / sequential:.2f}x")
        print(f"  sequential time outside the models: {100 * share:.0f} % "
              f"(pipelining can at best reach {1 / (1 - share):.2f}x)")
    return 0


if __name__ == "__main__":
    logger.remove()
    sys.exit(main())
