#!/usr/bin/env bash
# Create .venv and install the project with its export, test, eval (plots) and openvino extras.
# torch is pinned to 2.13.0 (CPU); sam2 is built without its CUDA extension and
# without its torchvision requirement, which the video predictor does not import.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[export,test,eval,openvino]"
SAM2_BUILD_CUDA=0 .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -r requirements-sam2.txt
.venv/bin/python -c "import torch, sam2, onnxruntime, openvino; print(f'set-up done: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}')"
