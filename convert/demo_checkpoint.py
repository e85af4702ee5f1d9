"""A SYNTHETIC demonstration checkpoint that tracks by colour. It is NOT SAM 2.1.

`scripts/make_demo_checkpoint.py` writes it.

Real SAM 2.1 weights cannot be fetched here, and random weights give masks of
scattered pixels, so neither shows a tracker at work. This module takes the
unchanged SAM 2.1 hiera-t architecture and sets every weight by hand (all
others are zero) so that it becomes a colour segmenter:

* it segments red-ish pixels (mask token 1, and the single-mask token 0 used on
  the prompt frame), green-ish pixels (token 2) and both (token 3);
* each mask's predicted IoU grows with how much of that colour the whole frame
  holds, so the green mask's predicted IoU overtakes the red one's when a green
  object becomes bigger than a red one;
* the object-score logit grows with the area where red-ish pixels are
  seen and is negative when no red is in view, so the object is "lost"
  while the target is out of the frame and "tracking" again when it returns;
* memory attention only normalises the frame's own feature: memory and
  object pointers are computed but change nothing.

It cannot track anything else: it ignores shape, texture and motion, and it
ignores the prompt box too (the prompt frame's mask is every red-ish pixel),
so the target must be the one red object in view. Use it with
the colour clip (`app/media/colour_clip.py`), on which plain SAM 2 selection jumps to a growing
green distractor while SAMURAI's motion-aware selection keeps the red target.

The file has the official format (`{"model": state_dict}`) and loads and
exports through the same code as a real checkpoint.

How the weights are set (C is a constant channel that every stage carries):
the patch embedding writes C and each 4x4 pixel cell's mean redness
R = r - (g+b)/2 and greenness G = g - (r+b)/2. Every attention and MLP branch has a zero output
projection, so residual streams carry only what is put in; position embeddings
are zero. One exception: the first Hiera block's windowed attention, with zero
queries and keys, attends uniformly and writes each 32x32-pixel window's mean of
R - G into a channel of its own. At each stage change the block's `proj` reads
the LayerNorm'ed stream minus a channel that is zero before the norm, which
removes the mean the norm subtracted and leaves x / std, std being set by C;
max pooling leaves the window means unchanged. The decoder's stride-4 feature
is GELU(k R), GELU(k G) and a constant, straight from the patch embedding, so
each mask token's constant hypernetwork output is a colour threshold. The IoU
token attends uniformly (zero queries) over the stride-16 feature and so reads
the frame's mean of R - G, which its head turns into opposite IoU logits for
red and green. Presence: the first block's MLP writes GELU(k (R - threshold)),
which is positive only on red-ish cells; the stage changes max-pool it, so a
stride-16 cell holds it when any of its stride-4 cells is red; the object-score
token reads its frame mean, the fraction of red cells, which its head turns
into a logit that is negative below PRESENT_FRACTION of the cells.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from convert.checkpoint import CHECKPOINT_NAMES, build_model

MODEL_SIZE = "t"
# Image size only shapes buffers that are not saved; the state dict is size-free.
_BUILD_IMAGE_SIZE = 512
DEFAULT_OUT = Path("checkpoints") / f"demo_colour_{CHECKPOINT_NAMES[MODEL_SIZE]}"

# SAM 2's input normalisation (sam2/utils/misc.py), undone by the patch embedding
# so that colours are measured on the 0..1 pixel scale.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
# Per (r, g, b): redness r - (g+b)/2 and greenness g - (r+b)/2 are 0 on any grey.
REDNESS = (1.0, -0.5, -0.5)
GREENNESS = (-0.5, 1.0, -0.5)
# The patch embedding is a 7x7 stride-4 conv with padding 3: taps 3..6 cover
# exactly the output's own 4x4 pixel cell, whose centre is where SAM's bilinear
# mask upsampling puts that low-res pixel.
CELL_TAPS = slice(3, 7)

# Trunk channels (the same at every Hiera stage, all others zero). ZERO stays
# zero so that, after a LayerNorm, it holds minus the normalised mean; DIFF gets
# the window means of R - G from the first block's attention.
T_CONST, T_ZERO, T_RED, T_GREEN, T_DIFF, T_PRESENT = range(6)
TRUNK_SIGNALS = (T_CONST, T_RED, T_GREEN, T_DIFF, T_PRESENT)
# Value of the constant channel. Colour channels are <= 1, so C dominates each
# LayerNorm's std and normalising is linear to within (1/C)^2 = 1 %.
CONST_VALUE = 10.0
# The block whose windowed attention averages R - G: the first one, at stride 4
# with 8x8-token windows, which tile the stride-4 map exactly for any image size
# that is a multiple of 32, so the frame mean of the window means is exact.
MEAN_BLOCK = 0

# Channels of the 256-d stride-16 vision feature: the lowest-frequency sine
# channels of the position encoding (sin of x or y over ~8000), which is ~1e-3
# there, so the 0.1 * pos that memory attention adds does not reach them.
V_CONST, V_ZERO, V_DIFF = 122, 124, 126
# The lowest-frequency sine channel of the x half of the encoding (~7e-4).
V_PRESENT = 254

# Stride-4 mask feature (32 channels after conv_s0 and GELU).
M_CONST, M_RED, M_GREEN = range(3)
MASK_CONST = 1.0  # GELU(1) = 0.84: a positive constant for the mask thresholds
MASK_GAIN = 10.0  # GELU(10 R) = 10 R to 0.2 % for R >= 0.3, and ~0 for R <= -0.3
# Half the redness of a saturated red such as the demo clip's (200, 40, 40),
# whose redness is 0.63: pixels above it are the object.
MASK_THRESHOLD = 0.3
# Logit per unit of GELU(k R) above the threshold: the mask ranges from about -30
# (background) to +30, so few pixels sit within SAM's stability band (+-0.05)
# and the prompt frame's single mask is kept (stability >= 0.98).
MASK_LOGIT_SCALE = 10.0
# Mask tokens: 0 single-mask output (prompt frame), 1..3 the multimask outputs.
TOKEN_SINGLE, TOKEN_RED, TOKEN_GREEN, TOKEN_BOTH = range(4)
TOKEN_COLOURS = {
    TOKEN_SINGLE: (M_RED,),  # the prompted target is the red object
    TOKEN_RED: (M_RED,),
    TOKEN_GREEN: (M_GREEN,),
    TOKEN_BOTH: (M_RED, M_GREEN),
}

# Decoder token stream (256-d): every token is held at TOKEN_CONST_VALUE on
# TK_CONST by its LayerNorm biases, then gets the frame's mean R - G on TK_DIFF.
TK_CONST, TK_ZERO, TK_DIFF, TK_PRESENT = range(4)
TOKEN_CONST_VALUE = 10.0
# The frame's mean of R - G (about 0.94 x (red area - green area) / frame area
# for the demo colours) is copied to IoU-head hidden unit H_DIFF, shifted by
# HIDDEN_OFFSET so that the ReLUs pass it unchanged (|mean R - G| <= 1.5).
H_DIFF = 0
HIDDEN_OFFSET = 2.0
# Predicted IoU = sigmoid(IOU_TIE_LOGIT + slope * mean(R - G)): the red and
# green masks tie at sigmoid(1) = 0.73 when the two areas are equal; a 1 % of
# frame area difference moves each logit by ~0.2.
IOU_TIE_LOGIT = 1.0
IOU_SLOPE = 20.0
IOU_SLOPES = {TOKEN_SINGLE: IOU_SLOPE, TOKEN_RED: IOU_SLOPE, TOKEN_GREEN: -IOU_SLOPE, TOKEN_BOTH: 0.0}
# "Both colours" is never the best guess; sigmoid(-1.5) = 0.18 keeps it last.
IOU_BOTH_LOGIT = -1.5
# Presence channel: PRESENT_SCALE * GELU(MASK_GAIN (R - MASK_THRESHOLD)), about
# 0.33 on the demo red and ~0 elsewhere; scaled down like the colour channels
# (<= 1) so that the trunk's LayerNorms stay dominated by the constant channel.
PRESENT_SCALE = 0.1
PRESENT_HIDDEN = 0  # the block MLP's hidden unit that computes it
# The object counts as present when red-ish cells make up more than this
# fraction of the stride-16 grid (2.6 of 256 cells at 256 px; the demo target,
# fully in view, covers ~4 %, a 15 px sliver of it at the frame's edge ~1.5 %).
# Each further 1 % of red cells adds OBJECT_SCORE_SLOPE * 0.01 * 0.33 = 4 to
# the object-score logit, so no demo frame's score is within 1 of 0.
PRESENT_FRACTION = 0.01
OBJECT_SCORE_SLOPE = 1200.0
# The presence value of a cell of the demo red (200, 40, 40), whose redness is 0.63.
DEMO_REDNESS = 0.63
DEMO_PRESENT_VALUE = PRESENT_SCALE * MASK_GAIN * (DEMO_REDNESS - MASK_THRESHOLD)


def _layer_norm_std(const: float, dim: int) -> float:
    """Std that a LayerNorm sees in a `dim`-vector holding only `const`."""
    return const * math.sqrt(dim - 1) / dim


def _gelu(x: float) -> float:
    return float(F.gelu(torch.tensor(x)))


def _set_trunk(sd: dict[str, torch.Tensor], trunk: torch.nn.Module) -> None:
    prefix = "image_encoder.trunk."
    weight = sd[prefix + "patch_embed.proj.weight"]
    bias = sd[prefix + "patch_embed.proj.bias"]
    cell = (CELL_TAPS.stop - CELL_TAPS.start) ** 2
    bias[T_CONST] = CONST_VALUE
    for channel, axis in ((T_RED, REDNESS), (T_GREEN, GREENNESS)):
        for rgb, (coefficient, mean, std) in enumerate(zip(axis, IMAGE_MEAN, IMAGE_STD)):
            # pixel = normalised * std + mean, averaged over the cell.
            weight[channel, rgb, CELL_TAPS, CELL_TAPS] = coefficient * std / cell
            bias[channel] += coefficient * mean
    # Window mean of R - G: zero queries and keys give uniform attention, the
    # value is (LN(x)_R - LN(x)_G) * std = R - G (the norm's mean cancels).
    mean_block = trunk.blocks[MEAN_BLOCK]
    sd[f"{prefix}blocks.{MEAN_BLOCK}.norm1.weight"].fill_(1.0)
    qkv = sd[f"{prefix}blocks.{MEAN_BLOCK}.attn.qkv.weight"]
    value_row = 2 * mean_block.dim_out + T_DIFF  # rows are q, k, v of dim_out each (one head)
    std = _layer_norm_std(CONST_VALUE, mean_block.dim)
    qkv[value_row, T_RED] = std
    qkv[value_row, T_GREEN] = -std
    sd[f"{prefix}blocks.{MEAN_BLOCK}.attn.proj.weight"][T_DIFF, T_DIFF] = 1.0
    # Presence: the same block's MLP computes GELU(k (R - threshold)) from the
    # LayerNorm'ed redness (again minus the normalised ZERO channel, times the std).
    sd[f"{prefix}blocks.{MEAN_BLOCK}.norm2.weight"].fill_(1.0)
    fc1 = sd[f"{prefix}blocks.{MEAN_BLOCK}.mlp.layers.0.weight"]
    fc1[PRESENT_HIDDEN, T_RED] = MASK_GAIN * std
    fc1[PRESENT_HIDDEN, T_ZERO] = -MASK_GAIN * std
    sd[f"{prefix}blocks.{MEAN_BLOCK}.mlp.layers.0.bias"][PRESENT_HIDDEN] = -MASK_GAIN * MASK_THRESHOLD
    sd[f"{prefix}blocks.{MEAN_BLOCK}.mlp.layers.1.weight"][T_PRESENT, PRESENT_HIDDEN] = PRESENT_SCALE
    for index, block in enumerate(trunk.blocks):
        if block.dim == block.dim_out:
            continue  # an identity, but for the window mean above
        # Stage change: shortcut = maxpool(proj(LayerNorm(x))). Subtracting the
        # normalised ZERO channel undoes the mean subtraction, and the gain
        # undoes the division by the std, so CONST stays CONST_VALUE.
        sd[f"{prefix}blocks.{index}.norm1.weight"].fill_(1.0)
        proj = sd[f"{prefix}blocks.{index}.proj.weight"]
        gain = _layer_norm_std(CONST_VALUE, block.dim)
        for channel in TRUNK_SIGNALS:
            proj[channel, channel] = gain
            proj[channel, T_ZERO] = -gain


def _set_neck_and_high_res(sd: dict[str, torch.Tensor], neck: torch.nn.Module) -> None:
    # Neck conv i reads trunk level n - i (conv 0: stride 32, ..., conv n: stride 4);
    # the stride-32 and stride-8 convs stay zero.
    stride16, stride4 = len(neck.convs) - 3, len(neck.convs) - 1
    vision = sd[f"image_encoder.neck.convs.{stride16}.conv.weight"][..., 0, 0]
    vision[V_CONST, T_CONST] = 1.0
    vision[V_DIFF, T_DIFF] = 1.0
    vision[V_PRESENT, T_PRESENT] = 1.0
    # The stride-4 level passes the colours to conv_s0, which scales them for the mask feature.
    high_res = sd[f"image_encoder.neck.convs.{stride4}.conv.weight"][..., 0, 0]
    high_res[T_RED, T_RED] = 1.0
    high_res[T_GREEN, T_GREEN] = 1.0
    conv_s0 = sd["sam_mask_decoder.conv_s0.weight"][..., 0, 0]
    conv_s0[M_RED, T_RED] = MASK_GAIN
    conv_s0[M_GREEN, T_GREEN] = MASK_GAIN
    sd["sam_mask_decoder.conv_s0.bias"][M_CONST] = MASK_CONST


def _set_mask_tokens(sd: dict[str, torch.Tensor]) -> None:
    # With output_upscaling's last conv at zero, the stride-4 feature is
    # GELU(conv_s0 output); a token's mask is its constant hypernetwork output
    # dotted with it: MASK_LOGIT_SCALE * (sum of its colours' GELU(k x) - k * threshold).
    offset = -MASK_LOGIT_SCALE * MASK_GAIN * MASK_THRESHOLD / _gelu(MASK_CONST)
    for token, colours in TOKEN_COLOURS.items():
        hyper = sd[f"sam_mask_decoder.output_hypernetworks_mlps.{token}.layers.2.bias"]
        hyper[M_CONST] = offset
        for colour in colours:
            hyper[colour] = MASK_LOGIT_SCALE


def _set_token_stream(sd: dict[str, torch.Tensor], num_layers: int) -> None:
    prefix = "sam_mask_decoder.transformer."
    for layer in range(num_layers):
        # Token norms output their bias only: every token is the same constant,
        # whatever the prompt. norm4 normalises the image stream (the keys).
        for norm in ("norm1", "norm2", "norm3"):
            sd[f"{prefix}layers.{layer}.{norm}.bias"][TK_CONST] = TOKEN_CONST_VALUE
        sd[f"{prefix}layers.{layer}.norm4.weight"].fill_(1.0)
    # Final token-to-image attention: zero queries attend uniformly, so every
    # token receives the frame's mean of R - G from the LayerNorm'ed keys.
    v_proj = sd[prefix + "final_attn_token_to_image.v_proj.weight"]
    vision_std = _layer_norm_std(CONST_VALUE, v_proj.shape[1])
    v_proj[0, V_DIFF] = vision_std
    v_proj[0, V_ZERO] = -vision_std
    sd[prefix + "final_attn_token_to_image.out_proj.weight"][TK_DIFF, 0] = 1.0
    # Value row 1 (head 0, like row 0) carries the frame's mean presence.
    v_proj[1, V_PRESENT] = vision_std
    v_proj[1, V_ZERO] = -vision_std
    sd[prefix + "final_attn_token_to_image.out_proj.weight"][TK_PRESENT, 1] = 1.0
    sd[prefix + "norm_final_attn.weight"].fill_(1.0)


def _set_heads(sd: dict[str, torch.Tensor], token_dim: int) -> None:
    head = "sam_mask_decoder.iou_prediction_head.layers."
    token_std = _layer_norm_std(TOKEN_CONST_VALUE, token_dim)
    sd[head + "0.weight"][H_DIFF, TK_DIFF] = token_std
    sd[head + "0.weight"][H_DIFF, TK_ZERO] = -token_std
    sd[head + "0.bias"][H_DIFF] = HIDDEN_OFFSET
    sd[head + "1.weight"][H_DIFF, H_DIFF] = 1.0
    for token, slope in IOU_SLOPES.items():
        sd[head + "2.weight"][token, H_DIFF] = slope
        tie = IOU_BOTH_LOGIT if token == TOKEN_BOTH else IOU_TIE_LOGIT
        sd[head + "2.bias"][token] = tie - slope * HIDDEN_OFFSET
    # Object score = slope * (mean presence - threshold); the ReLUs pass the
    # mean presence, which is >= 0 but for GELU's tiny negative tail.
    score = "sam_mask_decoder.pred_obj_score_head.layers."
    sd[score + "0.weight"][H_DIFF, TK_PRESENT] = token_std
    sd[score + "0.weight"][H_DIFF, TK_ZERO] = -token_std
    sd[score + "1.weight"][H_DIFF, H_DIFF] = 1.0
    sd[score + "2.weight"][0, H_DIFF] = OBJECT_SCORE_SLOPE
    sd[score + "2.bias"][0] = -OBJECT_SCORE_SLOPE * PRESENT_FRACTION * DEMO_PRESENT_VALUE


def demo_state_dict() -> dict[str, torch.Tensor]:
    """The hand-set hiera-t state dict: every tensor zero except those set above."""
    model = build_model(MODEL_SIZE, _BUILD_IMAGE_SIZE)
    sd = {name: torch.zeros_like(tensor) for name, tensor in model.state_dict().items()}
    _set_trunk(sd, model.image_encoder.trunk)
    _set_neck_and_high_res(sd, model.image_encoder.neck)
    _set_mask_tokens(sd)
    _set_token_stream(sd, len(model.sam_mask_decoder.transformer.layers))
    _set_heads(sd, model.hidden_dim)
    # Memory attention keeps only its final LayerNorm: the stream passes unchanged
    # apart from normalisation, which the decoder's norm4 applies anyway. The
    # memory encoder and pointer projection stay zero: memory changes nothing.
    sd["memory_attention.norm.weight"].fill_(1.0)
    return sd
