"""Track one object in a video, a frame folder, a camera or a network stream.

    python app/run.py --video SRC --bbox x,y,w,h [--output out/] [--save-video] [--save-masks] [--no-display]
    python app/run.py --video rtsp://user:pass@camera/stream --serve 8080   # draw the box in a browser

The loop itself (threads, queues, latency) is `app.pipeline`; the page is `app.serve`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from loguru import logger
from tqdm import tqdm

from acl_models.base import BackendError
from acl_models.select import choose_backend, runner_factory
from app.config import ConfigError, load_config
from app.control import Prompt, TrackController
from app.credentials import mask_credentials, redact_log_record
from app.model_bundle import Manifest, ModelFolderError, load_constants, load_manifest, open_runners
from app.outputs import MaskWriter, OutputError, TrackWriter, VideoWriter, write_summary
from app.pipeline import POLL_S, LoopStats, Output, Tracked, TrackingLoop
from app.prompt import Box, PromptError, parse_bbox, read_bbox_file
from app.serve.address import ServeError
from app.sources import LiveOptions, SourceError, open_source
from app.streams import quiet_native_logs
from app.tracker import SamuraiTracker
from app.window import DesktopWindow, has_display, window_works

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
DEFAULT_VIDEO_FPS = 30.0
PERCENTILE_MEDIAN, PERCENTILE_HIGH = 50.0, 95.0


class ServeSetupError(ImportError):
    """--serve without its optional packages; the message says how to install them."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SAMURAI single-object tracking on ONNX Runtime or an Ascend NPU")
    parser.add_argument(
        "--video", required=True,
        help="video file, folder of JPEG/PNG frames, camera (cam0, /dev/video0) or stream URL (rtsp://, http://)",
    )
    parser.add_argument("--bbox", help="first-frame box x,y,w,h in pixels")
    parser.add_argument("--bbox-file", type=Path, help="file whose first line is x,y,w,h (LaSOT style)")
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
        "--serve", metavar="[HOST:]PORT",
        help="web page to draw the box and watch the track (host 127.0.0.1 unless given; others need the token)",
    )
    parser.add_argument("--token", help="access token of the page on a non-loopback --serve (default: generated)")
    parser.add_argument("--stream-timeout", type=float, default=10.0, metavar="S",
                        help="give up opening or reading a stream after S seconds")
    parser.add_argument("--reconnect-s", type=float, default=60.0, metavar="S",
                        help="keep reconnecting a stream that dropped for up to S seconds")
    parser.add_argument("--sequential", action="store_true",
                        help="read, track and write one after another (no worker threads), for comparison")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def first_box(args: argparse.Namespace) -> Box | None:
    if args.bbox:
        return parse_bbox(args.bbox)
    if args.bbox_file:
        return read_bbox_file(args.bbox_file)
    return None


def file_outputs(track: TrackWriter, masks: MaskWriter | None, video: VideoWriter | None) -> Output:
    """track.txt, masks and video for each tracked frame (frames only shown while waiting are not tracked)."""

    def write(item: Tracked) -> None:
        if item.result is None or not item.record:
            return
        track.write(item.frame.index, item.box)
        if masks is not None:
            masks.write(item.frame.index, item.result.mask)
        if video is not None:
            video.write(item.frame.image, item.result.mask, item.box)

    return write


def start_server(args: argparse.Namespace, controller: TrackController, stack: ExitStack):
    """The web page and API, or None without --serve; the hub it shows is one of the loop's outputs."""
    if args.serve is None:
        return None
    try:
        from app.serve.server import WebServer
    except ImportError as exc:
        raise ServeSetupError(f"--serve needs the serve extra ({exc.name} is missing): pip install -e '.[serve]'") from None
    from app.serve.address import parse_serve
    from app.serve.hub import FrameHub

    host, port = parse_serve(args.serve)
    server = WebServer(controller, FrameHub(), host, port, args.token)
    stack.callback(server.close)
    return server


def progress_line(progress: tqdm) -> Callable[[LoopStats], None]:
    def update(stats: LoopStats) -> None:
        progress.update(1)
        progress.set_postfix(
            fps=f"{stats.fps:.2f}",
            latency=f"{stats.latency.recent_ms():.0f}ms",
            p95=f"{stats.latency.percentile(PERCENTILE_HIGH):.0f}ms",
            dropped=stats.dropped,
        )

    return update


def run_summary(args: argparse.Namespace, loop: TrackingLoop, source_name: str, backend: str, mode: str,
                manifest: Manifest) -> dict:
    """What summary.json records: throughput, latency, drops and what ran (the source's password masked)."""
    stats = loop.stats
    return {
        "source": source_name,
        "frames": stats.frames,
        "fps": stats.fps,
        "latency_ms": {"p50": stats.latency.percentile(PERCENTILE_MEDIAN), "p95": stats.latency.percentile(PERCENTILE_HIGH)},
        "dropped": stats.dropped,
        "pipelined": not args.sequential,
        "stage_ms_mean": {k: v / max(stats.frames, 1) for k, v in stats.stage_ms.items()},
        "backend": backend,
        "onnx_variant": args.onnx_variant if backend == "onnx" else None,
        "mode": mode,
        "model_size": manifest.model_size,
        "image_size": manifest.image_size,
        "checkpoint_sha256": manifest.checkpoint_sha256,
        "state_bytes": loop.state_nbytes(),
    }


def track(args: argparse.Namespace) -> dict:
    manifest = load_manifest(args.model_dir)
    config = load_config(args.config, manifest.model_size, args.mode)
    constants = load_constants(manifest)
    backend, _ = choose_backend(args.model_dir, args.backend)
    if backend == "acl" and args.onnx_variant != "fp32":
        raise BackendError("--onnx-variant applies to ONNX Runtime; on the NPU choose convert/atc_all.sh --precision")
    box = first_box(args)
    display = args.serve is None and not args.no_display and has_display() and window_works()
    if box is None and args.serve is None and not display:
        raise PromptError("no box given and no display to draw one; pass --bbox x,y,w,h, --bbox-file FILE or --serve PORT")
    source_name = mask_credentials(args.video)
    stats = LoopStats()
    with ExitStack() as serving:
        with ExitStack() as stack:
            source = stack.enter_context(open_source(args.video, LiveOptions(args.stream_timeout, args.reconnect_s)))
            controller = TrackController(source.size)
            if box is not None:
                controller.track(Prompt(box))
            server = start_server(args, controller, serving)
            runners = open_runners(manifest, runner_factory(backend, args.model_dir), args.onnx_variant)
            for runner in runners.values():
                stack.callback(runner.close)
            num_frames = source.num_frames
            if args.max_frames:
                num_frames = min(num_frames or args.max_frames, args.max_frames)
            outputs = [
                file_outputs(
                    stack.enter_context(TrackWriter(args.output)),
                    stack.enter_context(MaskWriter(args.output)) if args.save_masks else None,
                    stack.enter_context(VideoWriter(args.output, source.fps or DEFAULT_VIDEO_FPS, source.size))
                    if args.save_video
                    else None,
                )
            ]
            if server is not None:
                outputs.append(server.hub)
            if display:
                outputs.append(DesktopWindow(controller))
            progress = stack.enter_context(tqdm(total=num_frames, unit="frame"))
            loop = TrackingLoop(
                source,
                lambda: SamuraiTracker(runners, manifest, constants, config, num_frames=num_frames),
                controller,
                outputs,
                pipelined=not args.sequential,
                max_frames=args.max_frames,
                on_frame=progress_line(progress),
            )
            logger.info("reading {}", source_name)
            try:
                stats = loop.run()
            except KeyboardInterrupt:
                logger.warning(
                    "interrupted after {} frames; outputs in {} are complete up to there", loop.stats.frames, args.output
                )
                raise
            finally:
                stats = loop.stats
                summary = run_summary(args, loop, source_name, backend, config.mode, manifest)
                if stats.frames:
                    write_summary(args.output / "summary.json", summary)
        if server is not None and not controller.stopped:
            logger.info("{} ended; outputs in {} are complete; the page stays up until Ctrl-C or Stop",
                        source_name, args.output)
            while not controller.wait_stopped(POLL_S):
                pass
    if stats.frames == 0 and not controller.stopped:
        raise SourceError(f"{source_name} gave no frame to track")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.verbose:
        quiet_native_logs()
    logger.remove()
    logger.configure(patcher=redact_log_record)
    logger.add(sys.stderr, level="DEBUG" if args.verbose else "INFO", format="<level>{level: <7}</level> {message}")
    try:
        summary = track(args)
    except (
        ModelFolderError, ConfigError, SourceError, PromptError, BackendError, OutputError, ServeError, ServeSetupError
    ) as exc:
        logger.error("{}", exc)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if summary["frames"] == 0:
        logger.warning("stopped before tracking started; no frame was tracked")
        return 0
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in summary["stage_ms_mean"].items())
    latency = summary["latency_ms"]
    logger.info(
        "{} frames at {:.2f} FPS ({}); latency p50 {:.0f} ms, p95 {:.0f} ms; {} dropped; results in {}",
        summary["frames"], summary["fps"], stages, latency["p50"], latency["p95"], summary["dropped"], args.output,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
