#!/usr/bin/env bash
# Set up this bundle on a Raspberry Pi (Raspberry Pi OS bookworm, 64-bit): a venv with
# the pinned requirements. Safe to run twice. Camera support (optional) comes from
# Raspberry Pi OS's python3-picamera2, which the venv sees through --system-site-packages.
set -euo pipefail
cd "$(dirname "$0")"

if [[ "$(uname -m)" != "aarch64" ]]; then
    echo "setup.sh: this is $(uname -m); the pinned LiteRT wheels are for 64-bit Raspberry Pi OS (aarch64)" >&2
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup.sh: python3 is $(python3 -V 2>&1); the pins are tested with Python 3.11 (bookworm)" >&2
fi
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv --system-site-packages .venv
fi
requirements=(-r requirements.txt)
# The ONNX model's runtime, in bundles that carry one.
[[ -f requirements-onnx.txt ]] && requirements+=(-r requirements-onnx.txt)
.venv/bin/pip install --quiet --disable-pip-version-check "${requirements[@]}"
.venv/bin/python classify.py --top-k 1 >/dev/null
echo "Ready. Try: .venv/bin/python classify.py   (the bundled test images, with accuracy)"
