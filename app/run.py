"""Track one object in a video, a frame folder or a camera.

    python app/run.py --video SRC --bbox x,y,w,h [--output out/] [--save-video] [--save-masks] [--no-display]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np
from loguru import logger
from tqdm import tqdm

from acl_models.base import BackendError
from acl_models.openvino_runner import PRECISIONS
from acl_models.select import BACKENDS, DEFAULT_PRECISION, choose_backend, runner_factory
from app.config import ConfigError, load_config
from app.model_bundle import ModelFolderError, load_constants, load_manifest, open_runners
from app.outputs import MaskWriter, OutputError, TrackWriter, VideoWriter, annotate, box_from_mask, write_summary
from app.prompt import Box, PromptError, parse_bbox, read_bbox_file, validate_bbox
from app.sources import SourceError, open_source
from app.tracker import SamuraiTracker

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
WINDOW = "SAMURAI"
DEFAULT_VIDEO_FPS = 30.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SAMURAI single-object tracking on ONNX Runtime or an Ascend NPU")
    parser.add_argument("--video", required=True, help="video file, folder of JPEG/PNG frames, or camera (cam0, /dev/video0)")
    parser.add_argument("--bbox", help="first-frame box x,y,w,h in pixels")
    parser.add_argument("--bbox-file", type=Path, help="file whose first line is x,y,w,h (LaSOT style)")
    parser.add_argument("--model-dir", type=Path, default=Path("om_model"))
    parser.add_argument("--config", type=Path, help="tracker YAML (default configs/samurai.yaml)")
    parser.add_argument("--mode", choices=["samurai", "sam2"], help="override the config's mode")
    parser.add_argument(
        "--backend", choices=list(BACKENDS), default="auto",
        help="auto: the NPU when pyACL and the .om files are there, else OpenVINO when installed, else ONNX Runtime",
    )
    parser.add_argument(
        "--precision", choices=list(PRECISIONS), default=DEFAULT_PRECISION,
        help="OpenVINO's compute precision; bf16 keeps every decision on the test clips and is the fast CPU choice "
        "where the CPU has it (an error where it does not)",
    )
    parser.add_argument(
        "--onnx-variant", choices=["fp32", "fp16", "int8"], default="fp32",
        help="ONNX Runtime graphs: the fp32 export or its --fp16/--int8 variant (both change some decisions)",
    )
    parser.add_argument("--output", type=Path, default=Path("out"))
    parser.add_argument("--save-video", action="store_true", help="write OUTPUT/track.mp4 with the mask and box")
    parser.add_argument("--save-masks", action="store_true", help="write OUTPUT/masks/00000.png, ...")
    parser.add_argument("--no-display", action="store_true", help="do not open a window")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def initial_box(args: argparse.Namespace, first_image: np.ndarray, display: bool) -> Box:
    if args.bbox:
        return parse_bbox(args.bbox)
    if args.bbox_file:
        return read_bbox_file(args.bbox_file)
    if not display:
        raise PromptError("no box given and no display to draw one; pass --bbox x,y,w,h or --bbox-file FILE")
    try:
        x, y, w, h = cv2.selectROI(WINDOW, cv2.cvtColor(first_image, cv2.COLOR_RGB2BGR), showCrosshair=False)
    except cv2.error as exc:
        raise PromptError("this OpenCV build cannot open a window; pass --bbox x,y,w,h") from exc
    return Box(float(x), float(y), float(w), float(h))


def show(image: np.ndarray, mask: np.ndarray, box) -> bool:
    """Draw the result; False when the user pressed q or Esc."""
    cv2.imshow(WINDOW, cv2.cvtColor(annotate(image, mask, box), cv2.COLOR_RGB2BGR))
    return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)


def window_works() -> bool:
    """opencv-python-headless has no GUI: tracking goes on without a window, with a warning."""
    try:
        cv2.namedWindow(WINDOW)
    except cv2.error:
        logger.warning("this OpenCV build cannot open windows (headless); install opencv-python to see the tracking")
        return False
    return True


def track(args: argparse.Namespace) -> dict:
    manifest = load_manifest(args.model_dir)
    config = load_config(args.config, manifest.model_size, args.mode)
    constants = load_constants(manifest)
    # An ONNX Runtime variant asks for ONNX Runtime, as an OpenVINO precision asks for OpenVINO.
    requested = "onnx" if args.backend == "auto" and args.onnx_variant != "fp32" else args.backend
    backend, _ = choose_backend(args.model_dir, requested)
    if backend != "onnx" and args.onnx_variant != "fp32":
        raise BackendError(f"--onnx-variant applies to ONNX Runtime, not {backend}; use --backend onnx")
    factory = runner_factory(backend, args.model_dir, precision=args.precision)
    display = not args.no_display and has_display() and window_works()
    totals: dict[str, float] = {}
    frames_done = 0
    started = time.perf_counter()
    with ExitStack() as stack:
        source = stack.enter_context(open_source(args.video))
        runners = open_runners(manifest, factory, args.onnx_variant)
        for runner in runners.values():
            stack.callback(runner.close)
        num_frames = source.num_frames
        if args.max_frames:
            num_frames = min(num_frames or args.max_frames, args.max_frames)
        tracker = SamuraiTracker(runners, manifest, constants, config, num_frames=num_frames)
        writer = stack.enter_context(TrackWriter(args.output))
        masks = stack.enter_context(MaskWriter(args.output)) if args.save_masks else None
        video = None
        progress = stack.enter_context(tqdm(total=num_frames, unit="frame", disable=source.is_live))
        box = None
        try:
            for frame in source:
                if box is None:
                    width, height = frame.image.shape[1], frame.image.shape[0]
                    box = validate_bbox(initial_box(args, frame.image, display), width, height)
                    logger.info("tracking box {} from frame {} of {}", box, frame.index, args.video)
                    if args.save_video:
                        video = stack.enter_context(VideoWriter(args.output, source.fps or DEFAULT_VIDEO_FPS, (width, height)))
                result = tracker.step(frame.index, frame.image, box.xyxy() if frames_done == 0 else None)
                out_box = box_from_mask(result.mask)
                writer.write(frame.index, out_box)
                if masks is not None:
                    masks.write(frame.index, result.mask)
                if video is not None:
                    video.write(frame.image, result.mask, out_box)
                for stage, ms in result.timings.items():
                    totals[stage] = totals.get(stage, 0.0) + ms
                frames_done += 1
                progress.update(1)
                progress.set_postfix(fps=f"{frames_done / (time.perf_counter() - started):.2f}")
                if display and not show(frame.image, result.mask, out_box):
                    break
                if args.max_frames and frames_done >= args.max_frames:
                    break
        except KeyboardInterrupt:
            logger.warning("interrupted after {} frames; outputs in {} are complete up to there", frames_done, args.output)
            raise
        finally:
            elapsed = time.perf_counter() - started
            summary = {
                "frames": frames_done,
                "fps": frames_done / elapsed if elapsed > 0 else 0.0,
                "stage_ms_mean": {k: v / max(frames_done, 1) for k, v in totals.items()},
                "backend": backend,
                "onnx_variant": args.onnx_variant if backend == "onnx" else None,
                "precision": args.precision if backend == "openvino" else None,
                "mode": config.mode,
                "model_size": manifest.model_size,
                "image_size": manifest.image_size,
                "checkpoint_sha256": manifest.checkpoint_sha256,
                "state_bytes": tracker.state_nbytes() if frames_done else 0,
            }
            if frames_done:
                write_summary(args.output / "summary.json", summary)
    if frames_done == 0:
        raise SourceError(f"{args.video} gave no readable frame")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if args.verbose else "INFO", format="<level>{level: <7}</level> {message}")
    try:
        summary = track(args)
    except (ModelFolderError, ConfigError, SourceError, PromptError, BackendError, OutputError) as exc:
        logger.error("{}", exc)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in summary["stage_ms_mean"].items())
    logger.info(
        "{} frames at {:.2f} FPS ({}); results in {}", summary["frames"], summary["fps"], stages, args.output
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
