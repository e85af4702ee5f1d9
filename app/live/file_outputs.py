"""The result files of a run: track.txt (or track_<id>.txt), masks, video and decision log for each tracked frame.

One of the loop's outputs (it runs on the writer thread); it also counts what summary.json says of each object.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from app.live.control import DEFAULT_OBJECT
from app.live.summary import ObjectSummary
from app.live.tracked import Tracked
from app.media.drawing import annotate
from app.media.outputs import (
    TRACK_FILE,
    DecisionLog,
    LabelMaskWriter,
    LiveTrackWriter,
    MaskWriter,
    TrackWriter,
    mask_dir,
    track_file,
)
from app.media.video_file import VideoWriter
from app.samurai.decisions import decision_record
from app.samurai.results import LOST


@dataclass(frozen=True)
class FileChoices:
    """Which files the command line asked for, and where."""

    folder: Path
    save_masks: bool = False
    save_video: bool = False
    log_decisions: Path | None = None


@dataclass(frozen=True)
class VideoFormat:
    """What the results are drawn on: the source's frame size and rate, and the model's input size."""

    fps: float
    size: tuple[int, int]
    image_size: int


class FileOutputs:
    """track.txt (or track_<id>.txt), masks, video and decision log for each tracked frame.

    `several`: the run has several objects from the start; otherwise the default
    object writes the single-object files and any other object (added by a
    prompt) gets its own track_<id>.txt and masks_<id>/. A live source writes one line per
    tracked frame and frames.txt (frames_<id>.txt) beside it (LiveTrackWriter).
    """

    def __init__(self, stack: ExitStack, choices: FileChoices, several: bool, video: VideoFormat,
                 live: bool = False, run: str | None = None):
        self.stack, self.output, self.several, self.image_size = stack, choices.folder, several, video.image_size
        self.live = live  # one track line per tracked frame, with frames.txt (LiveTrackWriter)
        self.tracks: dict[int, TrackWriter] = {}
        self.objects: dict[int, ObjectSummary] = {}
        self.masks = None
        self.added_masks: dict[int, MaskWriter] = {}  # objects added to a single-object run, by id
        if choices.save_masks:
            self.masks = stack.enter_context(LabelMaskWriter(self.output) if several else MaskWriter(self.output))
        self.video = None
        if choices.save_video:
            self.video = stack.enter_context(VideoWriter(self.output, video.fps, video.size))
        self.decisions = stack.enter_context(DecisionLog(choices.log_decisions, run)) if choices.log_decisions else None

    def _track_writer(self, obj_id: int) -> TrackWriter:
        if obj_id not in self.tracks:
            name = TRACK_FILE if obj_id == DEFAULT_OBJECT and not self.several else track_file(obj_id)
            writer = LiveTrackWriter(self.output, name) if self.live else TrackWriter(self.output, name)
            self.tracks[obj_id] = self.stack.enter_context(writer)
        return self.tracks[obj_id]

    def _mask_writer(self, obj_id: int) -> MaskWriter:
        """A single-object run's masks/ for its first object, masks_<id>/ for one a prompt added."""
        if obj_id == DEFAULT_OBJECT:
            return self.masks
        if obj_id not in self.added_masks:
            self.added_masks[obj_id] = self.stack.enter_context(MaskWriter(self.output, mask_dir(obj_id)))
        return self.added_masks[obj_id]

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
        elif self.masks is not None:
            for obj_id, mask in masks.items():
                self._mask_writer(obj_id).write(index, mask)
        if self.video is not None:
            self.video.write(annotate(item.frame.image, item.results))
