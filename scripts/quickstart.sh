#!/usr/bin/env bash
# Set everything up and track an object on a generated clip.
# Uses checkpoints/sam2.1_hiera_tiny.pt when present; otherwise a random-weight
# checkpoint, which exercises the whole pipeline but cannot track anything real.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
CKPT=checkpoints/sam2.1_hiera_tiny.pt
if [ ! -f "$CKPT" ]; then
    echo "No official checkpoint at $CKPT: using RANDOM weights (pipeline check only, masks are meaningless)."
    echo "For real tracking put sam2.1_hiera_tiny.pt from the SAM 2.1 release into checkpoints/ and run this again."
    CKPT=checkpoints/random_sam2.1_hiera_tiny.pt
    [ -f "$CKPT" ] || $PY scripts/make_random_checkpoint.py --model-size t --seed 0 --out "$CKPT"
fi
$PY convert/export_onnx.py --checkpoint "$CKPT" --out om_model
$PY scripts/make_clip.py --out demo/clip --frames 60
$PY app/run.py --video demo/clip --bbox-file demo/clip_groundtruth.txt --model-dir om_model \
    --output out --save-video --no-display
echo "Results: out/track.txt, out/track.mp4, out/summary.json"
