"""The memory bank keeps constant-size state and picks the frames the official rules pick."""

from __future__ import annotations

import numpy as np
import pytest

from app.samurai.memory_bank import MemoryBank, MemoryEntry, from_bfloat16, pad_rows, to_bfloat16
from app.samurai.motion_selection import SamuraiParams

NUM_MASKMEM, MAX_PTRS = 7, 16


def _entry(i: int, iou: float = 0.9, score: float = 1.0, kf: float | None = None) -> MemoryEntry:
    return MemoryEntry(i, np.zeros((1, 64, 8, 8), np.uint16), np.zeros(256, np.float32), iou, score, kf)


def _official_samurai_frames(frame_idx: int, valid: set[int]) -> list[int]:
    """SAMURAI's scan over an unbounded history (SAMURAI.md section 3)."""
    kept: list[int] = []
    for i in range(frame_idx - 1, 1, -1):
        if i in valid:
            kept.insert(0, i)
        if len(kept) >= MAX_PTRS - 1:
            break
    if frame_idx - 1 not in kept:
        kept.append(frame_idx - 1)
    return [0] + [t for t in kept[-(NUM_MASKMEM - 1) :] if t != 0]


@pytest.mark.parametrize("mode", ["samurai", "sam2"])
def test_state_is_constant_after_the_bound(mode):
    rng = np.random.default_rng(0)
    bank = MemoryBank(NUM_MASKMEM, MAX_PTRS, mode, SamuraiParams())
    bank = bank.with_prompt(_entry(0))
    sizes = {}
    for i in range(1, 301):
        bank = bank.add(_entry(i, iou=float(rng.uniform(0.3, 1.0))))
        sizes[i] = bank.nbytes()
    bound = MAX_PTRS + NUM_MASKMEM
    assert sizes[300] == sizes[bound] > 0
    assert len(bank.pointers) == MAX_PTRS - 1 and len(bank.recent) == NUM_MASKMEM - 1


def test_samurai_selection_equals_unbounded_scan():
    """Long stretches of unreliable frames: the bank still finds the same old reliable frames."""
    rng = np.random.default_rng(1)
    bank = MemoryBank(NUM_MASKMEM, MAX_PTRS, "samurai", SamuraiParams())
    bank = bank.with_prompt(_entry(0))
    valid: set[int] = set()
    for i in range(1, 400):
        selected = [e.frame_idx for _, e in bank.memory_frames(i)]
        assert selected == _official_samurai_frames(i, valid), f"frame {i}"
        reliable = rng.random() < (0.05 if 100 < i < 300 else 0.7)
        iou = 0.9 if reliable else 0.4
        bank = bank.add(_entry(i, iou=iou))
        if reliable and i >= 2:
            valid.add(i)


def test_sam2_slots_and_pointers():
    bank = MemoryBank(NUM_MASKMEM, MAX_PTRS, "sam2", SamuraiParams())
    bank = bank.with_prompt(_entry(0))
    for i in range(1, 30):
        bank = bank.add(_entry(i))
    slots = bank.memory_frames(30)
    assert [(t, e.frame_idx) for t, e in slots] == [(0, 0)] + [(p, 30 - (7 - p)) for p in range(1, 7)]
    distances = [d for d, _ in bank.object_pointers(30)]
    assert distances == [30] + list(range(1, 16))


def test_bfloat16_round_trip_rounds_to_nearest_even():
    import torch

    x = np.random.default_rng(2).standard_normal(10000).astype(np.float32) * 10
    expected = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(from_bfloat16(to_bfloat16(x)), expected)


@pytest.mark.parametrize("rows, length", [(1, 1), (1, 7), (3, 7), (7, 7), (5, 16)])
def test_pad_rows_keeps_the_rows_and_flags_them(rows, length):
    values = np.arange(rows * 2, dtype=np.float64).reshape(rows, 2) + 1
    padded, valid = pad_rows(values, length)
    assert padded.shape == (length, 2) and padded.dtype == np.float32 and valid.dtype == np.float32
    np.testing.assert_array_equal(padded[:rows], values)
    assert not padded[rows:].any()
    np.testing.assert_array_equal(valid, [1.0] * rows + [0.0] * (length - rows))


def test_pad_rows_refuses_more_rows_than_the_model_takes():
    with pytest.raises(ValueError, match="8 rows do not fit the model's 7"):
        pad_rows(np.zeros((8, 3)), 7)
