#!/usr/bin/env bash
# Create .venv and install the project with its export, serve, publish, test, eval (plots), openvino,
# quantize (NNCF, for convert/quantize_int8.py) and cluster (Ray) extras.
# torch is pinned to 2.13.0 (CPU); sam2 is built without its CUDA extension and
# without its torchvision requirement, which the video predictor does not import.
# System packages for the live tests: GStreamer's RTSP server (run with the system
# python3) and a browser with its WebDriver (Debian's chromium; on Ubuntu, whose
# chromium is a snap, the runner's preinstalled Chrome and chromedriver), and Debian's Mosquitto MQTT broker,
# which the tests start on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
              gstreamer1.0-plugins-ugly gstreamer1.0-rtsp mosquitto systemd)
if grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
    APT_PACKAGES+=(chromium chromium-driver)
fi
MISSING=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || MISSING+=("$package")
done
if [ ${#MISSING[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${MISSING[@]}"
fi
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[export,serve,publish,test,eval,openvino,quantize,cluster]"
SAM2_BUILD_CUDA=0 .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -r requirements-sam2.txt
.venv/bin/python -c "import torch, sam2, onnxruntime, openvino, nncf, ray; print(f'set-up done: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}, ray {ray.__version__}')"
