"""Runs the official EdgeTAM modules on given inputs; executed by tests/official_edgetam.py in the official environment.

    python run_official.py CHECKPOINT IMAGE_SIZE CASES.pt OUT.pt

CASES.pt holds {case: {input name: tensor}}; OUT.pt receives {case: [tensors]} and
`"state_shapes"`: the official model's parameter names and shapes. The model is
the official video predictor built from EdgeTAM's own config with the weights of
CHECKPOINT; `pretrained` is forced off (the trunk's ImageNet weights would be
downloaded, and the checkpoint replaces them anyway), and the query grid of the
v2 cross-attention is set to the image size's feature grid, which EdgeTAM's
config fixes at 64x64 (1024 px).
"""

from __future__ import annotations

import sys

import torch

# The official trunk asks timm for pretrained weights; nothing may be downloaded here.
import sam2.modeling.backbones.timm as official_timm  # noqa: E402  (after the stand-in is on sys.path)

_create_model = official_timm.create_model
official_timm.create_model = lambda name, **kwargs: _create_model(name, **{**kwargs, "pretrained": False})

from sam2.build_sam import build_sam2_video_predictor  # noqa: E402

BACKBONE_STRIDE = 16


def build(checkpoint: str, image_size: int, target: str | None = None):
    """The official EdgeTAM video predictor, or `target` (a subclass of it) built from the same config."""
    side = image_size // BACKBONE_STRIDE
    overrides = [
        f"++model.image_size={image_size}",
        f"++model.memory_attention.layer.cross_attention.q_sizes=[{side},{side}]",
    ]
    if target is not None:
        overrides.append(f"++model._target_={target}")
    return build_sam2_video_predictor(
        "configs/edgetam.yaml", ckpt_path=checkpoint, device="cpu", hydra_overrides_extra=overrides
    ).eval()


def run_case(model, name: str, x: dict) -> list[torch.Tensor]:
    if name == "trunk":
        return list(model.image_encoder.trunk(x["image"]))
    if name == "image_encoder":
        return list(model.forward_image(x["image"])["backbone_fpn"])
    if name == "perceiver":
        return list(model.spatial_perceiver(x["feature"], x["pos"]))
    if name.startswith("memory_attention"):
        return [model.memory_attention(
            curr=[x["curr"]], curr_pos=[x["curr_pos"]], memory=x["memory"], memory_pos=x["memory_pos"],
            num_obj_ptr_tokens=int(x["num_obj_ptr_tokens"]), num_spatial_mem=int(x["num_spatial_mem"]),
        )]
    if name.startswith("memory_encoder"):
        side = model.image_size // BACKBONE_STRIDE
        features, pos = model._encode_new_memory(
            current_vision_feats=[x["vision_feat"].flatten(2).permute(2, 0, 1)],
            feat_sizes=[(side, side)],
            pred_masks_high_res=x["mask_high_res"],
            object_score_logits=x["object_score_logits"],
            is_mask_from_pts=bool(x["from_prompt"]),
        )
        return [features, pos[0]]
    if name.startswith("mask_decoder"):
        points = None
        if int((x["point_labels"] != -1).sum()) > 0:
            points = {"point_coords": x["point_coords"], "point_labels": x["point_labels"]}
        out = model._forward_sam_heads(
            backbone_features=x["pix_feat"], point_inputs=points,
            mask_inputs=x["mask_input"] if float(x["mask_valid"]) > 0.5 else None,
            high_res_features=[x["high_res_feat0"], x["high_res_feat1"]], multimask_output=True,
        )
        multimasks, _, ious, _, _, obj_ptr, score = out
        return [multimasks, ious, obj_ptr, score]
    raise ValueError(f"unknown case {name}")


def main() -> int:
    checkpoint, image_size, cases_path, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    torch.set_num_threads(1)
    model = build(checkpoint, image_size)
    cases = torch.load(cases_path, weights_only=True)
    out: dict = {"state_shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}
    with torch.no_grad():
        for name, inputs in cases.items():
            out[name] = run_case(model, name, inputs)
    torch.save(out, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
