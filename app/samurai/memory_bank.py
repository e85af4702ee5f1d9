"""The memory bank: which past frames and object pointers condition the current frame.

The official predictor keeps every frame's memory for the whole video. Its
selection rules only ever read (a) the prompt frame, (b) the last
`num_maskmem - 1` frames (SAM 2), (c) the most recent `num_maskmem - 1` frames
that passed SAMURAI's reliability test plus the previous frame (SAMURAI), and
(d) pointers of the last `max_obj_ptrs - 1` frames. Keeping just those gives the
same choices with memory that does not grow with video length.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from app.samurai.motion_selection import SamuraiParams, is_memory_candidate

# SAMURAI scans earlier frames down to this relative index (frame 1 only enters as "previous frame").
SAMURAI_FIRST_SCANNED_FRAME = 2
_BF16_SHIFT = 16


def to_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns (round to nearest even), as the official predictor stores memories."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> _BF16_SHIFT) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> _BF16_SHIFT).astype(np.uint16)


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << _BF16_SHIFT).view(np.float32)



def pad_rows(rows: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """`rows` (n, ...) as float32 zero-padded to (length, ...), and (length,) float32 validity: 1 for the n real rows.

    Memory attention takes a static number of memory frames and pointers; the
    validity flags mask the padding out of its attention keys.
    """
    if rows.shape[0] > length:
        raise ValueError(f"{rows.shape[0]} rows do not fit the model's {length}")
    padded = np.zeros((length, *rows.shape[1:]), dtype=np.float32)
    padded[: rows.shape[0]] = rows
    valid = np.zeros(length, dtype=np.float32)
    valid[: rows.shape[0]] = 1.0
    return padded, valid

@dataclass
class MemoryEntry:
    """One frame's contribution: its memory feature (bfloat16 bits) and object pointer."""

    frame_idx: int
    features: np.ndarray  # (1, mem_dim, h, w) uint16 bfloat16 bits
    obj_ptr: np.ndarray  # (hidden_dim,) float32
    best_iou: float
    object_score: float
    kf_score: float | None = None


def _keep_last(entries: tuple[MemoryEntry, ...], entry: MemoryEntry, length: int) -> tuple[MemoryEntry, ...]:
    """`entries` with `entry` appended, cut to the last `length` (none for 0), as a bounded deque keeps them."""
    kept = (*entries, entry)
    return kept[max(len(kept) - length, 0) :]


@dataclass(frozen=True)
class MemoryBank:
    """One object's memories and pointers; immutable: `add` returns a new bank and shares the entries."""

    num_maskmem: int
    max_obj_ptrs: int
    mode: str
    params: SamuraiParams
    prompt: MemoryEntry | None = None
    recent: tuple[MemoryEntry, ...] = ()  # the last num_maskmem - 1 tracked frames
    reliable: tuple[MemoryEntry, ...] = ()  # the last num_maskmem - 1 that passed SAMURAI's test
    pointers: tuple[MemoryEntry, ...] = ()  # the last max_obj_ptrs - 1 tracked frames

    def emptied(self) -> MemoryBank:
        """A bank of the same capacity with nothing in it."""
        return MemoryBank(self.num_maskmem, self.max_obj_ptrs, self.mode, self.params)

    def with_prompt(self, entry: MemoryEntry) -> MemoryBank:
        """This bank with `entry` as its prompt frame."""
        return replace(self, prompt=entry)

    def add(self, entry: MemoryEntry) -> MemoryBank:
        """This bank with a tracked (non-prompt) frame stored."""
        reliable = self.reliable
        if entry.frame_idx >= SAMURAI_FIRST_SCANNED_FRAME and is_memory_candidate(
            entry.best_iou, entry.object_score, entry.kf_score, self.params
        ):
            reliable = _keep_last(reliable, entry, self.num_maskmem - 1)
        return replace(
            self,
            recent=_keep_last(self.recent, entry, self.num_maskmem - 1),
            reliable=reliable,
            pointers=_keep_last(self.pointers, entry, self.max_obj_ptrs - 1),
        )

    def memory_frames(self, frame_idx: int) -> list[tuple[int, MemoryEntry]]:
        """(temporal slot, entry) pairs: the prompt in slot 0, then slots 1..num_maskmem-1, most recent last."""
        chosen = [(0, self.prompt)]
        if self.mode == "sam2":
            by_frame = {e.frame_idx: e for e in self.recent}
            for t_pos in range(1, self.num_maskmem):
                entry = by_frame.get(frame_idx - (self.num_maskmem - t_pos))
                if entry is not None:
                    chosen.append((t_pos, entry))
            return chosen
        picked = [e for e in self.reliable if e.frame_idx < frame_idx]
        previous = self.recent[-1] if self.recent else None
        if previous is not None and previous.frame_idx == frame_idx - 1 and all(e is not previous for e in picked):
            picked.append(previous)
        picked = picked[-(self.num_maskmem - 1) :]
        first_slot = self.num_maskmem - len(picked)
        chosen.extend((first_slot + i, entry) for i, entry in enumerate(picked))
        return chosen

    def object_pointers(self, frame_idx: int) -> list[tuple[int, np.ndarray]]:
        """(signed frame distance, pointer): the prompt's first, then the recent frames, nearest first."""
        pointers = [(frame_idx - self.prompt.frame_idx, self.prompt.obj_ptr)]
        for entry in reversed(self.pointers):
            distance = frame_idx - entry.frame_idx
            if 0 < distance < self.max_obj_ptrs:
                pointers.append((distance, entry.obj_ptr))
        return pointers

    def nbytes(self) -> int:
        entries = {id(e): e for e in (self.prompt, *self.recent, *self.reliable, *self.pointers) if e is not None}
        return sum(e.features.nbytes + e.obj_ptr.nbytes for e in entries.values())
