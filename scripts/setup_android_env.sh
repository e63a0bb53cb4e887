#!/usr/bin/env bash
# A venv of its own for the TFLite metadata writer and MediaPipe Tasks (make android-env).
#
#   bash scripts/setup_android_env.sh CACHE_DIR
#
# tflite-support 0.4.4 (the metadata writer Android's ML tooling reads) needs protobuf 3
# and its own pybind build: it cannot share TensorFlow's venv. MediaPipe Tasks (the
# ImageClassifier that runs the same task code as on Android) installs cleanly beside it.
# cnnx talks to this venv only through a worker subprocess (JSON in, JSON out).
#
# CACHE_DIR is the venv: CACHE_DIR/bin/python is the interpreter the worker runs with;
# CACHE_DIR/.cnnx-stamp says what was built (a second run with the same pins exits at once).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 CACHE_DIR" >&2
    exit 2
fi
mkdir -p "$(dirname "$1")"
CACHE="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
PYTHON="${PYTHON:-python3.11}"

# The set pip resolved for Python 3.11 from tflite-support==0.4.4 + mediapipe==1.2.3
# (the newest of each there), frozen so every machine gets the same one.
read -r -d '' PINS <<'EOF' || true
tflite-support==0.4.4
mediapipe==1.2.3
absl-py==2.5.1
certifi==2026.10.19.post1
cffi==2.1.1
contourpy==1.3.3
cycler==0.12.1
flatbuffers==25.12.19
fonttools==4.68.0
kiwisolver==1.5.1
matplotlib==3.11.2
numpy==2.4.6
opencv-contrib-python==5.1.0.95
packaging==26.3
pillow==13.0.0
protobuf==3.20.3
pybind11==3.1.0
pycparser==3.12
pyparsing==3.3.3
python-dateutil==4.0.0
sounddevice==0.5.6
tzdata==2026.6
EOF

stamp_text() {
    printf '%s\n' "$PINS"
    "$PYTHON" -c 'import sys; print(sys.version.split()[0])'
}
if [[ -f "$CACHE/.cnnx-stamp" && "$(cat "$CACHE/.cnnx-stamp")" == "$(stamp_text)" && -x "$CACHE/bin/python" ]]; then
    echo "android-env: ready in $CACHE"
    exit 0
fi
start=$SECONDS

# tflite-support's native module links libusb-1.0 (a Debian package, not a wheel).
if ! ldconfig -p | grep -q 'libusb-1.0.so.0'; then
    echo "android-env: installing Debian's libusb-1.0-0"
    if [[ $(id -u) -eq 0 ]]; then
        apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null; }
    else
        echo "android-env: libusb-1.0-0 is missing; install it: sudo apt-get install libusb-1.0-0" >&2
        exit 1
    fi
fi

# Built beside its final place and renamed: an interrupted run leaves no half venv.
WORK="$CACHE.build-$$"
rm -rf "$WORK"
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m venv "$WORK"
printf '%s\n' "$PINS" >"$WORK/cnnx-pins.txt"
"$WORK/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$WORK/cnnx-pins.txt" 2>&1 |
    grep -v "^WARNING: Location" >&2 || true
"$WORK/bin/python" - <<'EOF'
from tflite_support.metadata_writers import image_classifier  # noqa: F401
from mediapipe.tasks.python import vision  # noqa: F401
import mediapipe
print("android-env: tflite-support 0.4.4, mediapipe", mediapipe.__version__)
EOF

stamp_text >"$WORK/.cnnx-stamp"
# A venv's scripts record its build path; its python finds its packages from
# pyvenv.cfg beside it, so the renamed venv works (cnnx only runs CACHE_DIR/bin/python).
rm -rf "$CACHE"
mv "$WORK" "$CACHE"
echo "android-env: ready in $CACHE ($((SECONDS - start)) s, $(du -sh "$CACHE" | cut -f1))"
