#!/usr/bin/env bash
# A separate environment holding the official EdgeTAM code, for the tests that compare this project's
# EdgeTAM modules and graphs with it (tests/official_edgetam.py). Not needed to export or track.
#
# The official code is the PyPI package `edgetam-dimos`, whose top-level package is `sam2`, the same
# name as SAM 2.1's `sam2==1.1.0` in .venv: it needs its own environment. It builds RepViT-M1 through
# `timm`, which imports a few `torchvision` names; scripts/official_edgetam/standin/ stands in for those
# (for the tests and `scripts/bench.py --official` only; export and tracking need neither).
# To stay fast (no second torch), the environment installs only these two packages, without their
# dependencies, and reads everything else (torch, hydra, iopath, ...) from .venv behind its own
# site-packages, so its `sam2` is EdgeTAM's.
#
#   bash scripts/setup_official_edgetam.sh [.venv/bin/python] [.venv-edgetam-official]
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_PYTHON=${1:-.venv/bin/python}
VENV=${2:-.venv-edgetam-official}
TIMM=timm==1.0.31
EDGETAM=edgetam-dimos==1.0.1
"$BASE_PYTHON" -m venv --clear "$VENV"
"$VENV/bin/python" -m pip install --quiet --no-deps "$TIMM" "$EDGETAM"
BASE_SITE=$("$BASE_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
OWN_SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$BASE_SITE" > "$OWN_SITE/zz_project_venv.pth"
echo "official EdgeTAM environment ready in $VENV"
