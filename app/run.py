"""Track one or several objects in a video, a frame folder or a camera.

    python app/run.py --video SRC --bbox x,y,w,h [--bbox x,y,w,h ...] [--output out/] [--save-video] [--save-masks]
                      [--no-display] [--log-decisions FILE.jsonl]

Objects are numbered 1..N in the order their boxes are given. One object writes
`track.txt` and binary masks; several write `track_<id>.txt` each and indexed
masks whose pixel value is the object id.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from loguru import logger
from tqdm import tqdm

from acl_models.base import BackendError
from acl_models.select import choose_backend, runner_factory
from app.config import ConfigError, load_config
from app.model_bundle import ModelFolderError, load_constants, load_manifest, open_runners
from app.multi_tracker import MultiFrameResult, MultiObjectTracker
from app.outputs import (
    MAX_OBJECT_ID,
    TRACK_FILE,
    DecisionLog,
    LabelMaskWriter,
    MaskWriter,
    OutputError,
    TrackWriter,
    VideoWriter,
    annotate,
    annotate_objects,
    box_from_mask,
    decision_record,
    track_file,
    write_summary,
)
from app.prompt import Box, PromptError, parse_bbox, read_bbox_file, read_boxes_file, validate_bbox
from app.sources import SourceError, open_source
from app.tracker import LOST, TRACKING

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
WINDOW = "SAMURAI"
DEFAULT_VIDEO_FPS = 30.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SAMURAI object tracking on ONNX Runtime or an Ascend NPU")
    parser.add_argument("--video", required=True, help="video file, folder of JPEG/PNG frames, or camera (cam0, /dev/video0)")
    parser.add_argument("--bbox", action="append", help="first-frame box x,y,w,h in pixels; repeat for several objects")
    parser.add_argument("--bbox-file", type=Path, help="file whose first line is x,y,w,h (LaSOT style)")
    parser.add_argument("--boxes-file", type=Path, help="one x,y,w,h line per object (objects 1..N)")
    parser.add_argument("--model-dir", type=Path, default=Path("om_model"))
    parser.add_argument("--config", type=Path, help="tracker YAML (default configs/samurai.yaml)")
    parser.add_argument("--mode", choices=["samurai", "sam2"], help="override the config's mode")
    parser.add_argument("--backend", choices=["auto", "onnx", "acl"], default="auto")
    parser.add_argument(
        "--onnx-variant", choices=["fp32", "fp16", "int8"], default="fp32",
        help="ONNX Runtime graphs: the fp32 export or its --fp16/--int8 variant (int8 is the fast CPU choice)",
    )
    parser.add_argument("--output", type=Path, default=Path("out"))
    parser.add_argument("--save-video", action="store_true", help="write OUTPUT/track.mp4 with the mask and box")
    parser.add_argument("--save-masks", action="store_true", help="write OUTPUT/masks/00000.png, ...")
    parser.add_argument("--no-display", action="store_true", help="do not open a window")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument(
        "--log-decisions", type=Path, metavar="FILE.jsonl",
        help="per frame and object: state, predicted IoUs, object score, chosen mask, Kalman box, memory frames",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def initial_boxes(args: argparse.Namespace, first_image: np.ndarray, display: bool) -> list[tuple[str, Box]]:
    """(where the box came from, box) per object, in object-id order."""
    given = [name for name in ("bbox", "bbox_file", "boxes_file") if getattr(args, name)]
    if len(given) > 1:
        raise PromptError("give the boxes one way: --bbox (repeatable), --bbox-file or --boxes-file")
    if args.bbox:
        if len(args.bbox) == 1:
            return [("--bbox", parse_bbox(args.bbox[0]))]
        return [(f"--bbox #{i}", _parse_labelled(f"--bbox #{i}", text)) for i, text in enumerate(args.bbox, start=1)]
    if args.bbox_file:
        return [(str(args.bbox_file), read_bbox_file(args.bbox_file))]
    if args.boxes_file:
        return [(f"{args.boxes_file} line {number}", box) for number, box in read_boxes_file(args.boxes_file)]
    if not display:
        raise PromptError("no box given and no display to draw one; pass --bbox x,y,w,h or --bbox-file FILE")
    try:
        x, y, w, h = cv2.selectROI(WINDOW, cv2.cvtColor(first_image, cv2.COLOR_RGB2BGR), showCrosshair=False)
    except cv2.error as exc:
        raise PromptError("this OpenCV build cannot open a window; pass --bbox x,y,w,h") from exc
    return [("the drawn box", Box(float(x), float(y), float(w), float(h)))]


def _parse_labelled(label: str, text: str) -> Box:
    try:
        return parse_bbox(text)
    except PromptError as exc:
        raise PromptError(f"{label}: {exc}") from None


def validated_boxes(labelled: list[tuple[str, Box]], width: int, height: int) -> dict[int, Box]:
    """Object id -> box clipped to the frame; an error names the box's origin when there are several."""
    if len(labelled) > MAX_OBJECT_ID:
        raise PromptError(f"{len(labelled)} boxes given; at most {MAX_OBJECT_ID} objects fit the indexed masks")
    if len(labelled) == 1:
        return {1: validate_bbox(labelled[0][1], width, height)}
    boxes = {}
    for obj_id, (label, box) in enumerate(labelled, start=1):
        try:
            boxes[obj_id] = validate_bbox(box, width, height)
        except PromptError as exc:
            raise PromptError(f"{label}: {exc}") from None
    return boxes


def draw(image: np.ndarray, step: MultiFrameResult, boxes: dict[int, tuple]) -> np.ndarray:
    if len(boxes) == 1:
        (result,), (box,) = step.objects.values(), boxes.values()
        return annotate(image, result.mask, box)
    return annotate_objects(image, {k: (r.mask, boxes[k]) for k, r in step.objects.items()})


def show(annotated: np.ndarray) -> bool:
    """Show an annotated frame; False when the user pressed q or Esc."""
    cv2.imshow(WINDOW, cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
    return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)


@dataclass
class ObjectSummary:
    """What summary.json says about one object of a multi-object run."""

    prompt_box: str
    frames: int = 0
    lost_frames: int = 0
    state: str = TRACKING


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
    backend, _ = choose_backend(args.model_dir, args.backend)
    if backend == "acl" and args.onnx_variant != "fp32":
        raise BackendError("--onnx-variant applies to ONNX Runtime; on the NPU choose convert/atc_all.sh --precision")
    display = not args.no_display and has_display() and window_works()
    totals: dict[str, float] = {}
    frames_done = 0
    started = time.perf_counter()
    with ExitStack() as stack:
        source = stack.enter_context(open_source(args.video))
        runners = open_runners(manifest, runner_factory(backend, args.model_dir), args.onnx_variant)
        for runner in runners.values():
            stack.callback(runner.close)
        num_frames = source.num_frames
        if args.max_frames:
            num_frames = min(num_frames or args.max_frames, args.max_frames)
        tracker = MultiObjectTracker(runners, manifest, constants, config, num_frames=num_frames)
        decisions = stack.enter_context(DecisionLog(args.log_decisions)) if args.log_decisions else None
        video = masks = None
        writers: dict[int, TrackWriter] = {}
        objects: dict[int, ObjectSummary] = {}
        progress = stack.enter_context(tqdm(total=num_frames, unit="frame", disable=source.is_live))
        try:
            for frame in source:
                if not objects:
                    width, height = frame.image.shape[1], frame.image.shape[0]
                    boxes = validated_boxes(initial_boxes(args, frame.image, display), width, height)
                    for obj_id, box in boxes.items():
                        logger.info("tracking object {} from box {} on frame {} of {}", obj_id, box, frame.index, args.video)
                        tracker.add(obj_id, box.xyxy())
                        objects[obj_id] = ObjectSummary(str(box))
                    several = len(boxes) > 1
                    for obj_id in boxes:
                        name = track_file(obj_id) if several else TRACK_FILE
                        writers[obj_id] = stack.enter_context(TrackWriter(args.output, name))
                    if args.save_masks:
                        masks = stack.enter_context(LabelMaskWriter(args.output) if several else MaskWriter(args.output))
                    if args.save_video:
                        video = stack.enter_context(VideoWriter(args.output, source.fps or DEFAULT_VIDEO_FPS, (width, height)))
                step = tracker.step(frame.index, frame.image)
                out_boxes = {obj_id: box_from_mask(r.mask) for obj_id, r in step.objects.items()}
                for obj_id, result in step.objects.items():
                    writers[obj_id].write(frame.index, out_boxes[obj_id])
                    summary_of = objects[obj_id]
                    summary_of.frames += 1
                    summary_of.lost_frames += result.state == LOST
                    summary_of.state = result.state
                    if decisions is not None:
                        decisions.write(decision_record(obj_id, result, out_boxes[obj_id], manifest.image_size))
                if masks is not None and several:
                    masks.write(frame.index, {obj_id: r.mask for obj_id, r in step.objects.items()})
                elif masks is not None:
                    masks.write(frame.index, step.objects[1].mask)
                annotated = draw(frame.image, step, out_boxes) if video is not None or display else None
                if video is not None:
                    video.write_annotated(annotated)
                for stage, ms in step.timings.items():
                    totals[stage] = totals.get(stage, 0.0) + ms
                frames_done += 1
                progress.update(1)
                progress.set_postfix(fps=f"{frames_done / (time.perf_counter() - started):.2f}")
                if display and not show(annotated):
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
                "mode": config.mode,
                "model_size": manifest.model_size,
                "image_size": manifest.image_size,
                "checkpoint_sha256": manifest.checkpoint_sha256,
                "state_bytes": tracker.state_nbytes() if frames_done else 0,
            }
            if len(objects) > 1:
                summary["objects"] = {str(k): asdict(v) for k, v in objects.items()}
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
