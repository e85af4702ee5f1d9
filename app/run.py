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
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from acl_models.base import BackendError
from acl_models.manifest import ModelFolderError
from app.command_line import parse_args
from app.live import heap
from app.live.commands import MAX_PROMPT_POINTS, Command
from app.live.control import TrackController
from app.live.feed import POLL_S
from app.live.file_outputs import FileChoices, FileOutputs, VideoFormat
from app.live.health import HealthCheck
from app.live.pipeline import TrackingLoop
from app.live.progress import Progress, progress_report
from app.live.prompt_masks import PromptMasks
from app.live.prompt_file import schedule
from app.live.signals import StopRequested, StopSignals
from app.live.stats import LoopStats
from app.live.summary import PERCENTILE_HIGH, log_summary, objects_section, run_summary
from app.live.tracked import Output
from app.live.window import DesktopWindow
from app.media.credentials import command_line_warning, redact_log_record
from app.media.earlier_runs import keep_earlier_run, run_start_time
from app.media.outputs import SUMMARY_FILE, write_summary
from app.media.prompt import PromptError
from app.media.source_spec import LiveOptions, open_source
from app.media.sources import FrameSource, SourceError, SourceLostError
from app.media.streams import quiet_native_logs
from app.media.whole_files import OutputError, OutputFailed, prepare_folder
from app.options import OptionError, check_options
from app.plan import Plan, plan_run, what_ran
from app.publish.events import EventStream, Sink
from app.publish.mqtt import BrokerAddress, PublishError, parse_publish_url
from app.publish.sd_notify import HealthNotifier
from app.publish.sinks import add_publisher, open_sinks
from app.samurai.boxes import Box
from app.samurai.config import ConfigError
from app.samurai.multi_tracker import MultiObjectTracker
from app.serve.address import ServeError
from app.serve.start import ServeSetupError, start_server

if TYPE_CHECKING:  # prometheus-client and Starlette come with the serve extra
    from app.serve.metrics import RunMetrics
    from app.serve.server import WebServer

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


def queue_boxes(controller: TrackController, labelled: list[tuple[str, Box]]) -> list[Box]:
    """Objects 1..N from the command line's boxes, as checked (clipped to the frame).

    An error names the box's origin when there are several.
    """
    checked = []
    for obj_id, (label, box) in enumerate(labelled, start=1):
        try:
            checked.append(controller.track(box, obj_id))
        except PromptError as exc:
            raise (PromptError(f"{label}: {exc}") if len(labelled) > 1 else exc) from None
    return checked


def progress_line(progress: Progress, metrics: RunMetrics | None = None) -> Callable[[LoopStats], None]:
    """The progress report after each frame, and the metrics' counts when serving them."""

    def update(stats: LoopStats) -> None:
        if metrics is not None:
            metrics.on_frame(stats)
        progress.update(stats)

    return update


def track(args: argparse.Namespace, signals: StopSignals) -> dict:
    """The run's summary; the output folders and the --events file are checked before any model loads."""
    started = run_start_time()
    broker = parse_publish_url(args.publish) if args.publish else None
    prepare_folder(args.output, "--output")
    if args.log_decisions:
        prepare_folder(args.log_decisions.parent, f"--log-decisions {args.log_decisions}: folder")
    with ExitStack() as publishing:
        return _track(args, signals, open_sinks(args.events, publishing), broker, started)


@dataclass
class Opened:
    """What the run opened around its source before any model loads: the controller that the page, the window,
    MQTT and the signals talk to, the objects queued from the command line, the page and the result stream's
    sinks."""

    source: FrameSource
    controller: TrackController
    prompt_boxes: list[Box]
    server: WebServer | None
    metrics: RunMetrics | None
    sinks: list[Sink]
    scheduled: dict[int, list[Command]]  # --prompts by frame


def open_around_source(args: argparse.Namespace, plan: Plan, sinks: list[Sink], broker: BrokerAddress | None,
                       stack: ExitStack, serving: ExitStack) -> Opened:
    """The source (on `stack`), and on `serving`, which outlives the loop: systemd's notifier, the page, MQTT."""
    source = stack.enter_context(open_source(args.video, LiveOptions(args.stream_timeout, args.reconnect_s)))
    controller = TrackController(source.size, plan.models.manifest.hyper.get(MAX_PROMPT_POINTS))
    # systemd's READY=1 and watchdog, until the run ends; a stream may stay away up to --reconnect-s.
    serving.enter_context(HealthNotifier(HealthCheck(source, controller, args.stream_timeout),
                                         args.reconnect_s + args.stream_timeout))
    prompt_boxes = queue_boxes(controller, plan.boxes)
    scheduled = {}
    if plan.prompts:
        scheduled = schedule(args.prompts, plan.prompts, source.size, source.num_frames,
                             range(1, len(plan.boxes) + 1), plan.models.manifest.hyper.get(MAX_PROMPT_POINTS))
    server, metrics = start_server(args, controller, source, serving)
    sinks = add_publisher(sinks, broker, controller, serving)
    return Opened(source, controller, prompt_boxes, server, metrics, sinks, scheduled)


def open_outputs(args: argparse.Namespace, plan: Plan, opened: Opened,
                 stack: ExitStack) -> tuple[FileOutputs, list[Output], EventStream | None]:
    """The earlier run moved aside, then the files, the page's picture, the window and the result stream."""
    keep_earlier_run(args.output)
    source = opened.source
    files = FileOutputs(stack, FileChoices(args.output, args.save_masks, args.save_video, args.log_decisions),
                        len(plan.boxes) > 1,
                        VideoFormat(source.fps or DEFAULT_VIDEO_FPS, source.size, plan.models.manifest.image_size),
                        live=source.is_live, run=plan.started)
    outputs: list[Output] = [files]
    if opened.server is not None:
        outputs.append(opened.server.hub)
    if plan.display:
        outputs.append(DesktopWindow(opened.controller))
    stream_sinks = [*opened.sinks, *([opened.server.events] if opened.server is not None else [])]
    events = EventStream(stream_sinks, run=plan.started) if stream_sinks else None
    if events is not None:
        outputs.append(events)
    return files, outputs, events


def open_loop(args: argparse.Namespace, plan: Plan, opened: Opened,
              stack: ExitStack) -> tuple[TrackingLoop, FileOutputs]:
    """The runners, then the outputs (an earlier run is moved aside only once the models opened) and the loop."""
    overlap = args.overlap and not opened.source.is_live
    logger.info("loading the {} models from {}", plan.models.backend, args.model_dir)
    # Overlapped, the CPU runtimes' threads split between the encoder and the rest.
    bundle = stack.enter_context(plan.models.open(overlap=overlap))
    files, outputs, events = open_outputs(args, plan, opened, stack)
    num_frames = opened.source.num_frames
    if args.max_frames:
        num_frames = min(num_frames or args.max_frames, args.max_frames)
    progress = stack.enter_context(progress_report(num_frames, opened.source.is_live, PERCENTILE_HIGH))
    masks = PromptMasks(args.output)  # before the result stream: a mask is on disk when its record is out
    outputs.insert(1, masks)
    loop = TrackingLoop(
        opened.source,
        lambda: MultiObjectTracker(bundle, plan.config, num_frames=num_frames),
        opened.controller,
        outputs,
        pipelined=not args.sequential,
        overlap=overlap,
        max_frames=args.max_frames,
        on_frame=progress_line(progress, opened.metrics),
        scheduled=opened.scheduled,
        mask_names=masks,
    )
    if events is not None:
        stack.callback(loop.guard.attempt, events.end)  # after the loop, before the files close
    return loop, files


def run_loop(args: argparse.Namespace, plan: Plan, opened: Opened, loop: TrackingLoop, files: FileOutputs,
             signals: StopSignals) -> dict:
    """Track until the source ends or a stop; summary.json is written however the loop ends, once it tracked."""
    logger.info("reading {}", plan.source_name)
    signals.attach(opened.controller)
    try:
        loop.run()
    except KeyboardInterrupt:
        logger.warning(
            "interrupted after {} frames; outputs in {} are complete up to there", loop.stats.frames, args.output
        )
        raise
    finally:
        if opened.metrics is not None:
            opened.metrics.sync(loop.stats)
        summary = run_summary(loop, plan.source_name, what_ran(args, plan), plan.started)
        if len(files.objects) > 1:
            summary["objects"] = objects_section(files.objects, opened.prompt_boxes)
        if loop.stats.frames:
            loop.guard.attempt(write_summary, args.output / SUMMARY_FILE, summary)
    return summary


def _track(args: argparse.Namespace, signals: StopSignals, sinks: list[Sink], broker: BrokerAddress | None,
           started: str) -> dict:
    """Plan, open, run; the page stays up after the source ends until a stop; the loop's failure is raised once
    everything closed."""
    plan = plan_run(args, broker, started)
    with ExitStack() as serving:
        with ExitStack() as stack:
            opened = open_around_source(args, plan, sinks, broker, stack, serving)
            loop, files = open_loop(args, plan, opened, stack)
            summary = run_loop(args, plan, opened, loop, files, signals)
        if opened.server is not None and not opened.controller.stopped:
            logger.info("{} ended; outputs in {} are complete; the page stays up until Ctrl-C or Stop",
                        plan.source_name, args.output)
            while not opened.controller.wait_stopped(POLL_S):
                pass
    if loop.failure is not None:
        raise loop.failure
    if loop.stats.frames == 0 and not opened.controller.stopped:
        raise SourceError(f"{plan.source_name} gave no frame to track")
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
    log_summary(summary, args.output)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
