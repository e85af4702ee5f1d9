"""The CPU side alone: the sub-models replaced by instant replays of recorded outputs.

`report_null_models` times each stage outside the models per source size; `report_memory` follows the tracker's
state and the process RSS over a long run, which must both stay flat.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from acl_models.bundle import open_bundle_with
from acl_models.manifest import load_manifest
from acl_models.onnx_runner import OnnxRunner
from acl_models.replay_runner import Recording, RecordingRunner
from app.benchmarks.speed.timing import CPU_CLOCK, rss_mb
from app.benchmarks.speed.tracking import BenchSettings, parse_size, prompt_box
from app.media.textured_clip import scaled_clip
from app.samurai import preprocess
from app.samurai.config import TrackerConfig, load_config
from app.samurai.tracker import SamuraiTracker

MEMORY_REPORT_EVERY = 500
# Frames recorded from the real models for the replays (cycled after that).
RECORDED_FRAMES = 12
RECORDING_FILE = "null_models.npz"


def default_recording(model_dir: Path) -> Path:
    """Where the replays are kept when no --recording is given: beside the models they replay."""
    return model_dir / RECORDING_FILE


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


def bench_null_models(model_dir: Path, recording: Path, frames, box, config: TrackerConfig, num_frames: int,
                      repeats: int) -> dict:
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


def report_memory(settings: BenchSettings, recording: Path, variant: str, frames, boxes) -> None:
    """Tracker state and RSS along a long run on null models (recorded first when the recording is missing)."""
    manifest = load_manifest(settings.model_dir)
    config = load_config(None, manifest.model_size, settings.mode)
    box = prompt_box(boxes[0])
    if not recording.is_file():
        count = record_null_models(settings.model_dir, frames, box, settings.mode, variant, recording)
        print(f"recorded {count} frames of sub-model outputs into {recording}")
    replay = Recording.load(recording, manifest)
    tracker = SamuraiTracker(replay.bundle(manifest), config)
    print(f"memory over {settings.frames} frames ({settings.mode} mode, null models replaying {recording}):")
    started = time.perf_counter()
    for i in range(settings.frames):
        tracker.step(i, frames[i % len(frames)], box if i == 0 else None)
        if (i + 1) % MEMORY_REPORT_EVERY == 0 or i + 1 == settings.frames:
            print(f"  frame {i + 1:>6}: tracker state {tracker.state_nbytes() / 2**20:.3f} MB, RSS {rss_mb():.0f} MB, "
                  f"{time.perf_counter() - started:.0f} s", flush=True)


def report_null_models(settings: BenchSettings, recording: Path, variant: str, resize: str | None, sizes: str,
                       heap_tuned: bool, frames, boxes) -> None:
    """Median CPU ms per stage outside the models for each source size of `sizes` ("WxH,WxH")."""
    manifest = load_manifest(settings.model_dir)
    config = load_config(None, manifest.model_size, settings.mode)
    if resize:
        config = dataclasses.replace(config, resize=resize)
    parsed = [parse_size(s) for s in sizes.split(",")]
    if not recording.is_file():
        clip, clip_boxes = scaled_clip(frames, boxes, *parsed[0])
        count = record_null_models(settings.model_dir, clip, prompt_box(clip_boxes[0]), settings.mode, variant,
                                   recording)
        print(f"recorded {count} frames of sub-model outputs into {recording}")
    print(f"CPU time in ms per tracked frame outside the models (null models replaying {recording}; "
          f"resize {config.resize}; {settings.mode} mode, {manifest.image_size} px; "
          f"heap thresholds {'fixed' if heap_tuned else 'default'}; "
          f"median over {settings.repeats} runs x {settings.frames - 1} frames):")
    for width, height in parsed:
        clip, clip_boxes = scaled_clip(frames, boxes, width, height)
        figures = bench_null_models(
            settings.model_dir, recording, clip, prompt_box(clip_boxes[0]), config, settings.frames, settings.repeats
        )
        stages = figures["stage_ms"]
        print(f"  {width}x{height}: total {stages.pop('total'):.2f}; "
              + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
              + f" (resize alone {figures['resize_ms']:.2f})")
