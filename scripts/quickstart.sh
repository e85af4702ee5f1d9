#!/usr/bin/env bash
# Set everything up, export the model and track the target of a generated clip.
# With an official checkpoint at checkpoints/sam2.1_hiera_tiny.pt that model is
# used; otherwise a SYNTHETIC colour-tracking checkpoint (scripts/make_demo_checkpoint.py),
# which runs the real SAM 2.1 architecture but only follows red-ish objects.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
CKPT=checkpoints/sam2.1_hiera_tiny.pt
if [ -f "$CKPT" ]; then
    echo "Using the official checkpoint $CKPT."
else
    echo "No official checkpoint at $CKPT: using the SYNTHETIC colour-tracker demo model (not SAM 2.1)."
    echo "For real tracking put sam2.1_hiera_tiny.pt from the SAM 2.1 release into checkpoints/ and run this again."
    CKPT=checkpoints/demo_colour_sam2.1_hiera_tiny.pt
    [ -f "$CKPT" ] || $PY scripts/make_demo_checkpoint.py --out "$CKPT"
fi
$PY convert/export_onnx.py --checkpoint "$CKPT" --out om_model
$PY scripts/make_demo_clip.py --out demo/colour_clip
$PY app/run.py --video demo/colour_clip --bbox-file demo/colour_clip_groundtruth.txt --model-dir om_model \
    --output out --save-video --no-display
echo "Results: out/track.txt, out/track.mp4 (mask and box drawn), out/summary.json"
$PY scripts/eval.py sequence out/track.txt demo/colour_clip_groundtruth.txt
# A second clip: the target leaves the view and comes back; the tracker says when it is lost.
$PY scripts/make_demo_clip.py --leave --out demo/leave_clip
$PY app/run.py --video demo/leave_clip --bbox-file demo/leave_clip_groundtruth.txt --model-dir om_model \
    --output out_leave --no-display --log-decisions out_leave/decisions.jsonl
$PY scripts/summarise_decisions.py out_leave/decisions.jsonl
