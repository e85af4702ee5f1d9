"""OUTPUT/prompt_masks/: each mask prompt's mask as a PNG, so that its `prompt` record replays it.

A record stays small (a mask never inline): it names the PNG relative to the
output folder, FRAME_ID.png (FRAME_ID_2.png for a second mask on that frame and
object). The dispatcher names the file on the loop thread; this output writes
it on the writer thread, whole (a rename), where a full disk stops the run as
any result file's does.
"""

from __future__ import annotations

from pathlib import Path

from app.live.tracked import Tracked
from app.media.outputs import PROMPT_MASK_DIR
from app.media.whole_files import WriteFailed, replace_atomically


class PromptMasks:
    """An output of the loop: writes the masks of the prompts applied on a frame under `output`/prompt_masks/;
    the dispatcher's `MaskNames`."""

    def __init__(self, output: Path):
        self.output = output
        self._given: dict[tuple[int, int], int] = {}  # masks named so far per (frame, object)

    def name(self, frame: int, obj_id: int) -> str:
        """The next mask's file name for this frame and object, relative to the output folder."""
        count = self._given[frame, obj_id] = self._given.get((frame, obj_id), 0) + 1
        suffix = "" if count == 1 else f"_{count}"
        return f"{PROMPT_MASK_DIR}/{frame:05d}_{obj_id}{suffix}.png"

    def __call__(self, item: Tracked) -> None:
        for applied in item.prompts:
            name = applied.content.get("mask")
            if applied.mask_png is None or name is None:
                continue
            path = self.output / name
            try:
                path.parent.mkdir(exist_ok=True)
            except OSError as exc:
                raise WriteFailed(exc.errno, exc.strerror or str(exc), str(path.parent)) from None
            replace_atomically(path, applied.mask_png)
