"""Track one or several objects in a video, a frame folder, a camera or a network stream.

    python app/run.py --video SRC --bbox x,y,w,h [--bbox x,y,w,h ...] [--output out/] [--save-video] [--save-masks]
                      [--no-display] [--log-decisions FILE.jsonl]
    python app/run.py --video rtsp://user:pass@camera/stream --serve 8080   # draw the boxes in a browser

Objects are numbered 1..N in the order their boxes are given. One object writes
`track.txt` and binary masks; several write `track_<id>.txt` each and indexed
masks whose pixel value is the object id.

The loop itself (threads, queues, latency) is `app.live.pipeline`; the page is `app.serve`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from acl_models.base import BackendError
from acl_models.openvino_runner import EXPERIMENTAL_PRECISIONS, PRECISIONS
from acl_models.bundle import choose_bundle
from acl_models.manifest import Manifest, ModelFolderError
from acl_models.select import BACKENDS, DEFAULT_PRECISION
from app.live import heap
from app.live.control import DEFAULT_OBJECT, Prompt, TrackController
from app.live.latency import LatencyStats
from app.live.pipeline import POLL_S, LoopStats, Output, Tracked, TrackingLoop
from app.live.progress import Progress, progress_report
from app.live.signals import StopRequested, StopSignals
from app.live.window import DesktopWindow, has_display, window_works
from app.media.credentials import (
    URL_VARIABLES,
    command_line_warning,
    mask_credentials,
    redact_log_record,
    secrets_on_command_line,
    url_from_environment,
)
from app.media.drawing import annotate
from app.media.earlier_runs import keep_earlier_run, run_start_time
from app.media.outputs import (
    MAX_OBJECT_ID,
    SUMMARY_FILE,
    TRACK_FILE,
    DecisionLog,
    LabelMaskWriter,
    LiveTrackWriter,
    MaskWriter,
    OutputError,
    OutputFailed,
    TrackWriter,
    VideoWriter,
    prepare_folder,
    track_file,
    write_summary,
)
from app.media.prompt import PromptError, command_line_boxes
from app.media.source_spec import LiveOptions, open_source
from app.media.sources import FrameSource, SourceError, SourceLostError
from app.media.streams import quiet_native_logs
from app.options import OptionError, OptionParser, check_options, frame_count, seconds
from app.publish.events import EventStream, Sink
from app.publish.health import HealthCheck
from app.publish.jsonl import JsonLinesSink
from app.publish.mqtt import BrokerAddress, MqttPublisher, PublishError, parse_publish_url
from app.publish.sd_notify import HealthNotifier
from app.samurai.boxes import Box
from app.samurai.config import ConfigError, load_config
from app.samurai.decisions import decision_record
from app.samurai.multi_tracker import MultiObjectTracker
from app.samurai.tracker import LOST, TRACKING
from app.serve.address import ServeError, allowed_host_name

if TYPE_CHECKING:  # prometheus-client comes with the serve extra
    from app.publish.metrics import RunMetrics

# Exit codes (docs/service.md): a finished or requested stop (Stop, SIGTERM, SIGHUP, Ctrl-C) is 0; bad input is 2
# (a service should not restart on it); a stream away longer than --reconnect-s is 3 (it should); a result file
# that could not be written (a full disk) is 4 (a restart would fail again); a second signal, which forces the
# exit, is 130.
EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_SOURCE_LOST = 3
EXIT_OUTPUT_FAILED = 4
EXIT_INTERRUPTED = 130
DEFAULT_VIDEO_FPS = 30.0
PERCENTILE_MEDIAN, PERCENTILE_HIGH = 50.0, 95.0


class ServeSetupError(ImportError):
    """--serve without its optional packages; the message says how to install them."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OptionParser(description="SAMURAI object tracking on ONNX Runtime or an Ascend NPU")
    parser.add_argument(
        "--video",
        help="video file, folder of JPEG/PNG frames, camera (cam0, /dev/video0) or stream URL (rtsp://, http://); "
        f"default ${URL_VARIABLES['--video']}, which keeps a password off the process list",
    )
    parser.add_argument("--bbox", action="append", help="first-frame box x,y,w,h in pixels; repeat for several objects")
    parser.add_argument("--bbox-file", type=Path, help="file whose first line is x,y,w,h (LaSOT style)")
    parser.add_argument("--boxes-file", type=Path, help="one x,y,w,h line per object (objects 1..N)")
    parser.add_argument("--model-dir", type=Path, default=Path("om_model"))
    parser.add_argument("--config", type=Path, help="tracker YAML (default configs/samurai.yaml)")
    parser.add_argument("--mode", choices=["samurai", "sam2"], help="override the config's mode")
    parser.add_argument(
        "--backend", choices=list(BACKENDS), default="auto",
        help="auto: the NPU when pyACL and the .om files are there, else OpenVINO when installed, else ONNX Runtime",
    )
    parser.add_argument(
        "--precision", choices=[p for p in PRECISIONS if p not in EXPERIMENTAL_PRECISIONS], default=DEFAULT_PRECISION,
        help="OpenVINO's compute precision; bf16 keeps every decision on the test clips and is the fast CPU choice "
        "where the CPU has it (an error where it does not)",
    )
    parser.add_argument(
        "--onnx-variant", choices=["fp32", "fp16", "int8"], default="fp32",
        help="ONNX Runtime graphs: the fp32 export or, as an experiment, its --fp16/--int8 variant "
        "(both change some decisions)",
    )
    parser.add_argument("--output", type=Path, default=Path("out"))
    parser.add_argument("--save-video", action="store_true", help="write OUTPUT/track.mp4 with the mask and box")
    parser.add_argument("--save-masks", action="store_true", help="write OUTPUT/masks/00000.png, ...")
    parser.add_argument("--no-display", action="store_true", help="do not open a window")
    parser.add_argument("--max-frames", type=frame_count, help="stop after this many frames")
    parser.add_argument(
        "--log-decisions", type=Path, metavar="FILE.jsonl",
        help="per frame and object: state, predicted IoUs, object score, chosen mask, Kalman box, memory frames",
    )
    parser.add_argument(
        "--serve", metavar="[HOST:]PORT",
        help="web page to draw the box and watch the track (host 127.0.0.1 unless given; others need the token)",
    )
    parser.add_argument("--token", help="access token of the page on a non-loopback --serve (default: generated)")
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="read the token from FILE (a service: not on the command line, not in the log)")
    parser.add_argument("--allowed-host", action="append", default=[], type=allowed_host_name, metavar="NAME",
                        help="a name the page may be reached by besides its address and localhost (a DNS name, a "
                             "proxy's); repeatable. Requests with any other Host are refused (DNS rebinding)")
    parser.add_argument(
        "--publish", metavar="mqtt://[USER:PASS@]HOST[:PORT]/PREFIX",
        help="the result stream on an MQTT broker (mqtts:// for TLS); commands come in on PREFIX/cmd; "
        f"default ${URL_VARIABLES['--publish']}, which keeps a password off the process list",
    )
    parser.add_argument(
        "--events", metavar="FILE.jsonl",
        help="the result stream as JSON lines (docs/service.md), - for standard output (logs stay on stderr)",
    )
    parser.add_argument("--stream-timeout", type=seconds, default=10.0, metavar="S",
                        help="give up opening or reading a stream after S seconds")
    parser.add_argument("--reconnect-s", type=seconds, default=60.0, metavar="S",
                        help="keep reconnecting a stream that dropped for up to S seconds")
    parser.add_argument("--sequential", action="store_true",
                        help="read, track and write one after another (no worker threads), for comparison")
    parser.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=False,
                        help="files and folders: encode the next frame while this frame's objects are tracked "
                             "(same results; the cores are split between the two, so measure it with "
                             "scripts/bench.py --overlap first: on 2 quiet cores it was slower); live sources never "
                             "overlap (it would add latency)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    # Secrets given on the command line are warned about once the log is set up (main).
    args.exposed = secrets_on_command_line({"--video": args.video, "--publish": args.publish, "--token": args.token})
    args.video = url_from_environment("--video", args.video, os.environ)
    args.publish = url_from_environment("--publish", args.publish, os.environ)
    if args.video is None:
        parser.error(f"the following arguments are required: --video (or ${URL_VARIABLES['--video']})")
    return args


def first_boxes(args: argparse.Namespace) -> list[tuple[str, Box]]:
    """(where the box came from, box) per object, in object-id order; empty when the boxes are to be drawn."""
    return command_line_boxes(args.bbox, args.bbox_file, args.boxes_file, MAX_OBJECT_ID)


def queue_boxes(controller: TrackController, labelled: list[tuple[str, Box]]) -> list[Box]:
    """Objects 1..N from the command line's boxes, as checked (clipped to the frame).

    An error names the box's origin when there are several.
    """
    checked = []
    for obj_id, (label, box) in enumerate(labelled, start=1):
        try:
            checked.append(controller.track(Prompt(box, object_id=obj_id)))
        except PromptError as exc:
            raise (PromptError(f"{label}: {exc}") if len(labelled) > 1 else exc) from None
    return checked


@dataclass
class ObjectSummary:
    """What summary.json says about one object of a multi-object run."""

    frames: int = 0
    lost_frames: int = 0
    state: str = TRACKING


class FileOutputs:
    """track.txt (or track_<id>.txt), masks, video and decision log for each tracked frame.

    `several`: the run has several objects from the start; otherwise the default
    object writes the single-object files and any other object (added from the
    web page) gets its own track_<id>.txt. A live source writes one line per
    tracked frame and frames.txt (frames_<id>.txt) beside it (LiveTrackWriter).
    """

    def __init__(self, stack: ExitStack, args: argparse.Namespace, several: bool, fps: float,
                 size: tuple[int, int], image_size: int, live: bool = False, run: str | None = None):
        self.stack, self.output, self.several, self.image_size = stack, args.output, several, image_size
        self.live = live  # one track line per tracked frame, with frames.txt (LiveTrackWriter)
        self.tracks: dict[int, TrackWriter] = {}
        self.objects: dict[int, ObjectSummary] = {}
        self.masks = None
        if args.save_masks:
            self.masks = stack.enter_context(LabelMaskWriter(args.output) if several else MaskWriter(args.output))
        self.video = stack.enter_context(VideoWriter(args.output, fps, size)) if args.save_video else None
        self.decisions = stack.enter_context(DecisionLog(args.log_decisions, run)) if args.log_decisions else None

    def _track_writer(self, obj_id: int) -> TrackWriter:
        if obj_id not in self.tracks:
            name = TRACK_FILE if obj_id == DEFAULT_OBJECT and not self.several else track_file(obj_id)
            writer = LiveTrackWriter(self.output, name) if self.live else TrackWriter(self.output, name)
            self.tracks[obj_id] = self.stack.enter_context(writer)
        return self.tracks[obj_id]

    def __call__(self, item: Tracked) -> None:
        if not item.results or not item.record:
            return
        index = item.frame.index
        for obj_id, result in item.results.items():
            if self.live:
                self._track_writer(obj_id).write(index, result.box, item.frame.timestamp)
            else:
                self._track_writer(obj_id).write(index, result.box)
            summary = self.objects.setdefault(obj_id, ObjectSummary())
            summary.frames += 1
            summary.lost_frames += result.state == LOST
            summary.state = result.state
            if self.decisions is not None:
                self.decisions.write(decision_record(obj_id, result, self.image_size))
        masks = {obj_id: result.mask for obj_id, result in item.results.items()}
        if isinstance(self.masks, LabelMaskWriter):
            self.masks.write(index, masks)
        elif self.masks is not None and DEFAULT_OBJECT in masks:
            self.masks.write(index, masks[DEFAULT_OBJECT])
        if self.video is not None:
            self.video.write(annotate(item.frame.image, item.results))


def start_server(args: argparse.Namespace, controller: TrackController, source: FrameSource, stack: ExitStack):
    """The web page, API, metrics and health, and the run's metrics, or (None, None) without --serve.

    The hub the page shows is one of the loop's outputs.
    """
    if args.serve is None:
        return None, None
    try:
        from app.publish.health import HealthCheck
        from app.publish.metrics import CONTENT_TYPE, RunMetrics
        from app.serve.server import Probes, WebServer
    except ImportError as exc:
        raise ServeSetupError(f"--serve needs the serve extra ({exc.name} is missing): pip install -e '.[serve]'") from None
    from app.publish.sse import SseBroadcaster
    from app.serve.address import parse_serve, read_token_file, warn_if_others_can_read
    from app.serve.hub import FrameHub

    host, port = parse_serve(args.serve)
    token = read_token_file(args.token_file, args.token) if args.token_file else args.token
    if args.token_file:
        warn_if_others_can_read(args.token_file)
    metrics = RunMetrics(source, controller)
    probes = Probes(metrics.exposition, CONTENT_TYPE, HealthCheck(source, controller, args.stream_timeout))
    events = SseBroadcaster(controller.status, on_lost=metrics.client_lost)
    metrics.count_clients(lambda: len(events.clients))
    server = WebServer(controller, FrameHub(), host, port, token, events, probes, args.allowed_host)
    stack.callback(server.close)
    return server, metrics


def progress_line(progress: Progress, metrics: RunMetrics | None = None) -> Callable[[LoopStats], None]:
    """The progress report after each frame, and the metrics' counts when serving them."""

    def update(stats: LoopStats) -> None:
        if metrics is not None:
            metrics.on_frame(stats)
        progress.update(stats)

    return update


def percentiles(figure: LatencyStats) -> dict[str, float]:
    return {"p50": figure.percentile(PERCENTILE_MEDIAN), "p95": figure.percentile(PERCENTILE_HIGH)}


def run_summary(args: argparse.Namespace, loop: TrackingLoop, source_name: str, backend: str, mode: str,
                manifest: Manifest, started: str) -> dict:
    """What summary.json records: when it started, throughput, latency, drops and what ran (no secret: the
    source's password masked)."""
    stats = loop.stats
    return {
        "started": started,
        "source": source_name,
        "frames": stats.frames,
        "fps": stats.fps,
        "per_frame": "latency" if loop.source.is_live else "step",
        "latency_ms": percentiles(stats.latency) if loop.source.is_live else None,
        "step_ms": percentiles(stats.step),
        "dropped": stats.dropped,
        "pipelined": not args.sequential,
        "overlap": loop.overlap,
        "stage_ms_mean": {k: v / max(stats.frames, 1) for k, v in stats.stage_ms.items()},
        "backend": backend,
        "onnx_variant": args.onnx_variant if backend == "onnx" else None,
        "precision": args.precision if backend == "openvino" else None,
        "mode": mode,
        "model_size": manifest.model_size,
        "image_size": manifest.image_size,
        "checkpoint_sha256": manifest.checkpoint_sha256,
        "state_bytes": loop.state_nbytes(),
    }


def open_sinks(args: argparse.Namespace, stack: ExitStack) -> list[Sink]:
    """The result stream's sinks given on the command line, checked before any model loads."""
    sinks: list[Sink] = []
    if args.events:
        sinks.append(JsonLinesSink(args.events))
        stack.callback(sinks[-1].close)
    return sinks


def track(args: argparse.Namespace, signals: StopSignals) -> dict:
    started = run_start_time()
    broker = parse_publish_url(args.publish) if args.publish else None
    prepare_folder(args.output, "--output")
    if args.log_decisions:
        prepare_folder(args.log_decisions.parent, f"--log-decisions {args.log_decisions}: folder")
    with ExitStack() as publishing:
        return _track(args, signals, open_sinks(args, publishing), broker, started)


def _track(args: argparse.Namespace, signals: StopSignals, sinks: list[Sink], broker: BrokerAddress | None,
           started: str) -> dict:
    # Checked before the source opens; the runners open once the source says whether frames overlap.
    models = choose_bundle(args.model_dir, args.backend, args.onnx_variant, args.precision)
    manifest, backend = models.manifest, models.backend
    config = load_config(args.config, manifest.model_size, args.mode)
    boxes = first_boxes(args)
    display = args.serve is None and not args.no_display and has_display() and window_works()
    if not boxes and args.serve is None and not display and broker is None:
        raise PromptError("no box given and no display to draw one; pass --bbox x,y,w,h, --bbox-file FILE, "
                          "--serve PORT or --publish URL (a box then comes on PREFIX/cmd)")
    source_name = mask_credentials(args.video)
    stats = LoopStats()
    with ExitStack() as serving:
        with ExitStack() as stack:
            source = stack.enter_context(open_source(args.video, LiveOptions(args.stream_timeout, args.reconnect_s)))
            controller = TrackController(source.size)
            # systemd's READY=1 and watchdog, until the run ends; a stream may stay away up to --reconnect-s.
            serving.enter_context(HealthNotifier(HealthCheck(source, controller, args.stream_timeout),
                                                 args.reconnect_s + args.stream_timeout))
            prompt_boxes = queue_boxes(controller, boxes)
            server, metrics = start_server(args, controller, source, serving)
            if broker is not None:
                publisher = MqttPublisher(broker, controller, server.hub.frame if server is not None else None)
                serving.callback(publisher.close)
                sinks = [*sinks, publisher]
            overlap = args.overlap and not source.is_live
            logger.info("loading the {} models from {}", backend, args.model_dir)
            # Overlapped, the CPU runtimes' threads split between the encoder and the rest.
            bundle = stack.enter_context(models.open(overlap=overlap))
            num_frames = source.num_frames
            if args.max_frames:
                num_frames = min(num_frames or args.max_frames, args.max_frames)
            keep_earlier_run(args.output)
            files = FileOutputs(stack, args, len(boxes) > 1, source.fps or DEFAULT_VIDEO_FPS, source.size,
                                manifest.image_size, live=source.is_live, run=started)
            outputs: list[Output] = [files]
            if server is not None:
                outputs.append(server.hub)
            if display:
                outputs.append(DesktopWindow(controller))
            stream_sinks = [*sinks, *([server.events] if server is not None else [])]
            events = EventStream(stream_sinks, run=started) if stream_sinks else None
            if events is not None:
                outputs.append(events)
            progress = stack.enter_context(progress_report(num_frames, source.is_live, PERCENTILE_HIGH))
            loop = TrackingLoop(
                source,
                lambda: MultiObjectTracker(bundle, config, num_frames=num_frames),
                controller,
                outputs,
                pipelined=not args.sequential,
                overlap=overlap,
                max_frames=args.max_frames,
                on_frame=progress_line(progress, metrics),
            )
            if events is not None:
                stack.callback(loop.guard.attempt, events.end)  # after the loop, before the files close
            logger.info("reading {}", source_name)
            signals.attach(controller)
            try:
                stats = loop.run()
            except KeyboardInterrupt:
                logger.warning(
                    "interrupted after {} frames; outputs in {} are complete up to there", loop.stats.frames, args.output
                )
                raise
            finally:
                stats = loop.stats
                if metrics is not None:
                    metrics.sync(stats)
                summary = run_summary(args, loop, source_name, backend, config.mode, manifest, started)
                if len(files.objects) > 1:
                    summary["objects"] = {
                        str(k): {"prompt_box": str(prompt_boxes[k - 1]) if k <= len(prompt_boxes) else None, **asdict(v)}
                        for k, v in sorted(files.objects.items())
                    }
                if stats.frames:
                    loop.guard.attempt(write_summary, args.output / SUMMARY_FILE, summary)
        if server is not None and not controller.stopped:
            logger.info("{} ended; outputs in {} are complete; the page stays up until Ctrl-C or Stop",
                        source_name, args.output)
            while not controller.wait_stopped(POLL_S):
                pass
    if loop.failure is not None:
        raise loop.failure
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
    if args.exposed:
        logger.warning("{}", command_line_warning(args.exposed))
    heap.keep_freed_pages()
    signals = StopSignals()
    try:
        check_options(args, argv)
        with signals:
            summary = track(args, signals)
    except StopRequested:
        return EXIT_OK
    except ImportError:
        # A stop signal during the lazy import of a native runtime (onnxruntime, openvino) raises
        # StopRequested inside that module's initialisation, which Python reports as an ImportError.
        if signals.stopped_before_start:
            return EXIT_OK
        raise
    except SourceLostError as exc:
        logger.error("{}", exc)
        return EXIT_SOURCE_LOST
    except OutputFailed as exc:
        logger.error("{}", exc)
        return EXIT_OUTPUT_FAILED
    except (
        ModelFolderError, ConfigError, SourceError, PromptError, BackendError, OutputError, ServeError, ServeSetupError,
        PublishError, OptionError,
    ) as exc:
        logger.error("{}", exc)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if summary["frames"] == 0:
        logger.warning("stopped before tracking started; no frame was tracked")
        return EXIT_OK
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in summary["stage_ms_mean"].items())
    name = summary["per_frame"]
    figure = summary[f"{name}_ms"]
    logger.info(
        "{} frames at {:.2f} FPS ({}); {} p50 {:.0f} ms, p95 {:.0f} ms; {} dropped; results in {}",
        summary["frames"], summary["fps"], stages, name, figure["p50"], figure["p95"], summary["dropped"], args.output,
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
