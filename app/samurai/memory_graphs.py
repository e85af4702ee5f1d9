"""The memory-attention and memory-encoder graphs, fed from an object's `MemoryBank` at their static shapes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from acl_models.base import ModelRunner
from app.samurai.memory_bank import MemoryBank, from_bfloat16, pad_rows, to_bfloat16

if TYPE_CHECKING:  # the algorithm reads a bundle; opening one (and its runtimes) is the caller's business
    from acl_models.bundle import ModelBundle


def attend_memory(bundle: ModelBundle, memory: MemoryBank, t: int, vision_feat: np.ndarray) -> np.ndarray:
    """Memory attention at the graph's static shape: memories and pointers zero-padded, validity flags set."""
    constants, num_maskmem = bundle.constants, memory.num_maskmem
    frames = memory.memory_frames(t)
    rows, memory_valid = pad_rows(np.concatenate([from_bfloat16(e.features) for _, e in frames]), num_maskmem)
    slots = [num_maskmem - t_pos - 1 for t_pos, _ in frames]
    memory_pos, _ = pad_rows(constants["memory_pos"] + _slot_encodings(bundle, slots), num_maskmem)
    pointers = memory.object_pointers(t)
    # The graph's pointer count; the bank's may be lower for a short video.
    max_ptrs = int(bundle.manifest.hyper["max_obj_ptrs_in_encoder"])
    obj_ptrs, obj_ptr_valid = pad_rows(np.stack([p for _, p in pointers]), max_ptrs)
    offsets = np.array([d for d, _ in pointers], dtype=np.float32) / np.float32(memory.max_obj_ptrs - 1)
    out = _run_declared(
        bundle.runners["memory_attention"],
        {
            "vision_feat": vision_feat,
            "vision_pos": constants["vision_pos"],
            "memory": rows,
            "memory_pos": memory_pos,
            "memory_valid": memory_valid,
            "obj_ptrs": obj_ptrs,
            "obj_ptr_offsets": pad_rows(offsets, max_ptrs)[0],
            "obj_ptr_valid": obj_ptr_valid,
        },
    )
    return out["pix_feat_with_mem"]


def _slot_encodings(bundle: ModelBundle, slots: list[int]) -> np.ndarray:
    """The memory slots' temporal encodings, shaped to add to `memory_pos`: per channel of a feature map (SAM 2.1),
    or per channel of every token (EdgeTAM's perceiver memories, manifest `memory_layout.kind` "tokens")."""
    encodings = bundle.constants["maskmem_tpos_enc"][slots]
    if bundle.manifest.memory_layout.get("kind") == "tokens":
        return encodings[:, None, :]
    return encodings[:, :, None, None]


def _run_declared(runner: ModelRunner, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run with the feeds the graph declares: a family's graph leaves out inputs its model does not use
    (EdgeTAM: no pointer offsets, no object score in the memory encoder)."""
    return runner.run({name: value for name, value in feeds.items() if name in runner.input_names})


def encode_memory(bundle: ModelBundle, vision_feat, mask_logits, object_score, binarize: bool) -> np.ndarray:
    out = _run_declared(
        bundle.runners["memory_encoder"],
        {
            "vision_feat": vision_feat,
            "mask_logits": mask_logits[None, None],
            "object_score_logits": np.array([[object_score]], dtype=np.float32),
            "binarize": np.array([1.0 if binarize else 0.0], dtype=np.float32),
        },
    )
    return to_bfloat16(out["maskmem_feat"])
