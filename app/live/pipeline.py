"""The tracking loop around the tracker: read → prepare → track → write, pipelined or one after another.

Pipelined, three threads overlap: a feed thread decodes and prepares frame N+1
(`MultiObjectTracker.prepare_input`) while the calling thread runs the models on
frame N, and an output thread writes frame N-1 (track.txt, masks, video, the web
overlay). Queues between them are bounded. A file or folder loses no frame: a
full queue makes the feed wait (back-pressure). A live source always works on
the newest frame: the feed keeps one prepared frame and replaces it when a newer
one arrives, counting the replaced one as dropped, so a result is never older
than one tracker step plus one source frame; it prepares frames only shortly
before the models will want one, so a fast camera does not steal their CPU.

A file or folder also overlaps frames (`overlap`): once frame N is encoded, the
loop takes frame N+1 and submits its image encoder, which the backend runs in
the background while frame N's objects are tracked; the arithmetic is the same,
only the order changes. A live source does not: it would take the newest frame
one per-object pass earlier, and its result would be that much older (measured:
+44 to +117 % latency on a 2-core CPU at 512 px), while a live run's figure is latency.

An output that cannot write its file (a full disk, a quota, an I/O error: an
`OSError`) stops the run as a requested stop does (`OutputGuard`): the loop ends
after the frame it is on, nothing more is handed to the outputs, every file is
closed complete up to there, and the first such error is the run's `failure`.

The tracker knows nothing of this: it is called from one thread, one frame at a time.
What to track comes from a `TrackController` (the command line's boxes, the web
page, MQTT) and from a prompt file's commands scheduled by frame: the command
line's boxes start on the first frame; every other prompt for frame K is applied
after frame K was tracked and before it is written (`PromptDispatcher`), on a
decoded frame the loop still holds (`FrameHistory`).

This module is the loop; its parts live beside it: the feed thread (`feed.py`), the output
thread (`output_writer.py`) and its guard (`output_guard.py`), what the outputs get (`tracked.py`)
and the run's counts (`stats.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loguru import logger

from app.live.commands import REMOVE, Command
from app.live.control import DEFAULT_OBJECT, WAITING, LoopStatus, ObjectStatus, Queued, TrackController
from app.live.dispatch import AppliedPrompt, MaskNames, PromptDispatcher
from app.live.feed import POLL_S, Feed, Prepared
from app.live.frame_history import FrameHistory
from app.live.output_guard import OutputGuard
from app.live.output_writer import OutputWriter
from app.live.stats import MS_PER_S, LoopStats
from app.live.tracked import Output, Tracked
from app.media.prompt import PromptError
from app.media.sources import Frame, FrameSource
from app.media.whole_files import OutputFailed
from app.samurai.boxes import box_or_missing
from app.samurai.frame_encoder import PendingFrame
from app.samurai.multi_tracker import MultiFrameResult, MultiObjectTracker
from app.samurai.results import FrameResult


class TrackingLoop:
    """Runs the tracker over a source as the controller directs; see the module docstring."""

    def __init__(
        self,
        source: FrameSource,
        make_tracker: Callable[[], MultiObjectTracker],
        controller: TrackController,
        outputs: list[Output],
        *,
        pipelined: bool = True,
        overlap: bool = True,
        max_frames: int | None = None,
        on_frame: Callable[[LoopStats], None] | None = None,
        scheduled: dict[int, list[Command]] | None = None,
        mask_names: MaskNames | None = None,
    ):
        self.source = source
        self.make_tracker = make_tracker
        self.controller = controller
        self.outputs = outputs
        self.pipelined = pipelined
        self.overlap = overlap and not source.is_live
        self.max_frames = max_frames
        self.on_frame = on_frame
        self.stats = LoopStats()
        self.guard = OutputGuard(controller.stop)
        # Made when the run starts (`_start`), not before: a loop that never runs builds no tracker.
        self._tracker: MultiObjectTracker | None = None
        self.history = FrameHistory(0)  # nothing is held before the run starts
        self.mask_names = mask_names  # where mask prompts' masks are kept (app/live/prompt_masks.py); None: not kept
        self.dispatcher = PromptDispatcher(self.history, mask_names)
        # A prompt file's commands by frame (--prompts), applied when that frame has been tracked.
        self._scheduled = {k: [Queued(c) for c in v] for k, v in (scheduled or {}).items()}
        self._pending: list[Queued] = []  # commands given before the first frame that wait for it
        self._tracking = False  # any object to track; read by the feed thread
        self._last_recorded = -1
        self._objects: dict[int, ObjectStatus] = {}
        self._tracking_since: float | None = None
        self._feed: Feed | None = None
        self._dropped: list[int] = []  # dropped since the last frame handed to the outputs
        # Overlapped: the next frame, taken from the feed while this one was tracked, and its submitted encoder.
        self._ahead: tuple[Prepared, PendingFrame | None] | None = None

    def _prepare(self, frame: Frame) -> Prepared:
        """Runs on the feed thread; a frame that arrives while waiting for a box is only shown."""
        if not self._tracking:
            return Prepared(frame, None)
        start = time.perf_counter()
        model_input = self._tracker.prepare_input(frame.image)
        return Prepared(frame, model_input, MS_PER_S * (time.perf_counter() - start))

    def state_nbytes(self) -> int:
        return 0 if self._tracker is None else self._tracker.state_nbytes()

    @property
    def failure(self) -> OutputFailed | None:
        """Why the outputs stopped the run (a file that could not be written), None when none did."""
        return self.guard.failure

    @property
    def dropped(self) -> int:
        feed = self._feed.dropped if self._feed is not None else 0
        return feed + getattr(self.source, "dropped", 0)

    def run(self) -> LoopStats:
        """Track until the source ends, `max_frames` are tracked, the controller stops or an output cannot write
        (`failure`); outputs are complete."""
        self._start()
        self._feed = Feed(self.source, self._prepare, self.pipelined)
        writer = OutputWriter(self.outputs, self.pipelined, self.guard)
        self._first_boxes()
        try:
            while not self.controller.stopped:
                item, encoding = self._ahead or (self._feed.get(lambda: self.controller.stopped), None)
                self._ahead = None
                if item is None:
                    break
                self.history.add(item.frame)
                if self._waits_for_prompt(item.frame.index):
                    self._hold(item.frame, writer)
                self._frame(item, encoding, writer)
                if self.max_frames and self.stats.frames >= self.max_frames:
                    break
        finally:
            try:
                self._feed.close()
            finally:
                self.stats.dropped = self.dropped
                writer.close()
                self._publish(self._last_recorded, ended=True)
        return self.stats

    def _start(self) -> None:
        """Make the tracker, and the history of the decoded frames a prompt may name: as many as the tracker keeps
        states for (its config's `prompt_history`), so that both refuse the same frames."""
        self._tracker = self.make_tracker()
        self.history = FrameHistory(self._tracker.config.prompt_history)
        self.dispatcher = PromptDispatcher(self.history, self.mask_names)

    def _first_boxes(self) -> None:
        """The boxes given before the loop starts with no frame (the command line's) start on the first frame, as
        the official predictor's first prompt; any other command waits for that frame to be tracked."""
        for queued in self.controller.take_commands():
            prompt = queued.command.prompt
            if queued.command.frame is None and prompt.box is not None and not prompt.points and not prompt.remove:
                self._tracker.add(prompt.obj_id, prompt.box.xyxy())
                self._objects.setdefault(prompt.obj_id, ObjectStatus())
                logger.info("started tracking box {} as object {} from the first frame", prompt.box, prompt.obj_id)
            else:
                self._pending.append(queued)
        self._tracking = bool(self._tracker.objects)

    def _waits_for_prompt(self, index: int) -> bool:
        """Whether a file holds this frame until a prompt comes: only before its first tracked frame, and only when
        the prompt file has none for this frame or a later one. A file whose objects were all removed goes on
        without any: nothing may be left to send one (a prompt file's removal, with no page)."""
        if self._tracking or self.source.is_live or self.stats.frames:
            return False
        return not any(frame >= index for frame in self._scheduled)

    def _hold(self, frame: Frame, writer: OutputWriter) -> None:
        """A file waiting for its first prompt shows this frame until a prompt (or a stop) comes."""
        writer.put(Tracked(frame, dropped=self._take_dropped()))
        self._publish(frame.index)
        if self.controller.wait_for_prompt(0.0):
            return
        logger.info("waiting for a box on frame {}", frame.index)
        while not self.controller.stopped and not self.controller.wait_for_prompt(POLL_S):
            writer.check()
            self._publish(frame.index)  # waiting is not stuck (the health check)

    def _frame(self, item: Prepared, encoding: PendingFrame | None, writer: OutputWriter) -> None:
        """Track the frame (when any object is), apply the prompts due on it, then hand it to the outputs."""
        frame = item.frame
        started = time.monotonic()
        dropped = self._take_dropped()  # before this frame; one removed on it is dropped from the next
        step = self._step(item, encoding) if self._tracking else MultiFrameResult(frame.index, {})
        results, timings = dict(step.objects), dict(step.timings)
        applied = self._dispatch(frame, results, timings, writer)
        self._tracking = bool(self._tracker.objects)
        if not results:
            writer.put(Tracked(frame, dropped=dropped, prompts=applied))
            self._publish(frame.index)
            return
        if item.model_input is not None:
            timings["preprocess"] = item.prepare_ms
        self._finish(Tracked(frame, results, timings=timings, dropped=dropped, prompts=applied), started, writer)

    def _dispatch(self, frame: Frame, results: dict[int, FrameResult], timings: dict[str, float],
                  writer: OutputWriter) -> list[AppliedPrompt]:
        """Apply the prompts due now (the prompt file's for this frame, then the doors'); `results` (this frame's)
        take the corrected ones. A prompt refused here is one warning, and the door that sent it is told."""
        due = [*self._scheduled.pop(frame.index, []), *self._pending, *self.controller.take_commands()]
        self._pending = []
        applied = []
        for queued in due:
            prompt = queued.command.prompt
            restart = prompt.obj_id in self._tracker.objects
            try:
                outcome = self.dispatcher.apply(self._tracker, queued.command, frame)
            except PromptError as exc:
                logger.warning("prompt for object {} refused: {}", prompt.obj_id, exc)
                if queued.on_refused is not None:
                    queued.on_refused(str(exc))
                continue
            done, result = outcome.applied, outcome.result
            self.stats.prompts.append(done)
            if prompt.box is not None and not prompt.points:
                logger.info("{} tracking box {} as object {} from frame {}", "restarted" if restart else "started",
                            prompt.box, done.obj_id, done.frame)
            else:
                logger.info("{} prompt applied to object {} on frame {}", done.kind, done.obj_id, done.frame)
            if done.kind == REMOVE:
                self._objects.pop(done.obj_id, None)
                self._dropped.append(done.obj_id)
                applied.append(done)
                continue
            self._objects[done.obj_id] = ObjectStatus(result.state, box_or_missing(result.box),
                                                      round(result.object_score, 3))
            if outcome.frame.index == frame.index:
                results[done.obj_id] = result
                applied.append(done)
                for stage, ms in result.timings.items():
                    timings[stage] = timings.get(stage, 0.0) + ms
            else:
                # An older frame: its line is written unless it already is; the page has moved past it.
                record = outcome.frame.index > self._last_recorded
                writer.put(Tracked(outcome.frame, {done.obj_id: result}, record, timings=dict(result.timings),
                                   prompts=[done]))
                if record:
                    self._last_recorded = outcome.frame.index
        return applied

    def _take_dropped(self) -> list[int]:
        dropped, self._dropped = self._dropped, []
        return dropped

    def _step(self, item: Prepared, encoding: PendingFrame | None) -> MultiFrameResult:
        """Every tracked object's step on this frame (its encoder already submitted when overlapped)."""
        frame = item.frame
        if self._tracking_since is None:
            self._tracking_since = time.monotonic() - item.prepare_ms / MS_PER_S
        if encoding is not None:
            encoded = encoding.wait()
        else:
            encoded = self._tracker.encoder.encode(frame.index, frame.image, item.model_input)
        if self.overlap and not (self.max_frames and self.stats.frames + 1 >= self.max_frames):
            self._take_ahead()
        return self._tracker.track(encoded)

    def _finish(self, tracked: Tracked, started: float, writer: OutputWriter) -> None:
        """Hand a tracked frame to the outputs and count it."""
        frame, results, timings = tracked.frame, tracked.results, tracked.timings
        done = tracked.ready = time.monotonic()
        if self._tracking_since is None:  # the first objects came from prompts on this frame
            self._tracking_since = started
        writer.put(tracked)
        self._last_recorded = frame.index
        stats = self.stats
        stats.frames += 1
        stats.tracking_s = done - self._tracking_since
        # A file frame read ahead while the run waited for its box starts its latency when tracking starts.
        stats.latency.add(MS_PER_S * (done - max(frame.captured, self._tracking_since)), done)
        stats.step.add(MS_PER_S * (done - started), done)
        stats.dropped = self.dropped
        for stage, ms in timings.items():
            stats.stage_ms[stage] = stats.stage_ms.get(stage, 0.0) + ms
        for object_id, result in results.items():
            if object_id not in self._tracker.objects:
                continue  # removed on this frame: its result here is its last
            # The status shows a lost object's box as track.txt writes it.
            score = round(result.object_score, 3)
            self._objects[object_id] = ObjectStatus(result.state, box_or_missing(result.box), score)
        self._publish(frame.index)
        if self.on_frame is not None:
            self.on_frame(stats)

    def _take_ahead(self) -> None:
        """Take the next frame now and submit its image encoder, to run while this frame's objects are tracked.

        A frame prepared before tracking started has no model input yet; it is encoded when its turn comes.
        """
        item = self._feed.get(lambda: self.controller.stopped)
        if item is None:
            return
        encoding = None
        if item.model_input is not None:
            encoding = self._tracker.encoder.submit(item.frame.index, item.frame.image, item.model_input)
        self._ahead = (item, encoding)

    def _publish(self, frame_index: int, ended: bool = False) -> None:
        objects = dict(self._objects) if self._objects else {DEFAULT_OBJECT: ObjectStatus(WAITING)}
        self.controller.publish(
            LoopStatus(
                frame=frame_index,
                fps=self.stats.latency.recent_fps(),
                latency_ms=self.stats.latency.recent_ms(),
                step_ms=self.stats.step.recent_ms(),
                live=self.source.is_live,
                dropped=self.dropped,
                ended=ended,
                objects=objects,
                held=self.history.held(),
                history=self.history.length,
            )
        )
