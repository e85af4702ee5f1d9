"""The official EdgeTAM video predictor over a JPEG folder, one box on frame 0 (run in the official environment).

    python run_predictor.py CHECKPOINT IMAGE_SIZE FOLDER X1 Y1 X2 Y2 OUT.pt [SAMURAI_OVERRIDES_JSON]

OUT.pt receives {"masks": {frame: bool mask at frame size}, "logits": {frame: low-res logits},
"scores": {frame: object-score logit}}. Hole filling uses a CPU connected-components
function, as the official code does on a GPU (tests/reference_predictor.py). With
SAMURAI overrides (a JSON object, `{}` for the official values) the predictor is the
project's SAMURAI reference (tests/reference_predictor.py) on the official EdgeTAM
modules, and OUT.pt also holds its per-frame decision "log".
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.reference_predictor

import sam2.utils.misc as misc  # noqa: E402
from run_official import build  # noqa: E402

from tests.reference_predictor import OFFICIAL_PARAMS, cpu_connected_components  # noqa: E402

REFERENCE = "tests.reference_predictor.SamuraiReferencePredictor"


def _plain(log) -> dict:
    """A FrameLog as plain values (the Kalman mean as a list), loadable with torch.load(weights_only=True)."""
    return {**asdict(log), "kf_mean": None if log.kf_mean is None else log.kf_mean.tolist()}


def main() -> int:
    checkpoint, image_size, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    box = [float(v) for v in sys.argv[4:8]]
    samurai = json.loads(sys.argv[9]) if len(sys.argv) > 9 else None
    torch.set_num_threads(1)
    misc.get_connected_components = cpu_connected_components
    predictor = build(checkpoint, image_size, REFERENCE if samurai is not None else None)
    if samurai is not None:
        predictor.setup_samurai(replace(OFFICIAL_PARAMS["t"], **samurai))
    with torch.inference_mode():
        state = predictor.init_state(folder)
        predictor.add_new_points_or_box(state, 0, 1, box=box)
        masks = {i: (m[0, 0] > 0) for i, _, m in predictor.propagate_in_video(state)}
        outputs = state["output_dict_per_obj"][0]
        outputs = {**outputs["cond_frame_outputs"], **outputs["non_cond_frame_outputs"]}
    torch.save({
        "masks": masks,
        "logits": {i: out["pred_masks"][0, 0].clone() for i, out in outputs.items()},
        "scores": {i: float(out["object_score_logits"][0, 0]) for i, out in outputs.items()},
        "log": {i: _plain(log) for i, log in predictor.log.items()} if samurai is not None else {},
    }, sys.argv[8])
    return 0


if __name__ == "__main__":
    sys.exit(main())
