#!/usr/bin/env bash
# Install cnnx's dependency floor or ceiling in a scratch venv and run a part of the suite.
#
#   bash scripts/check_dependency_range.sh floor|ceiling DIR [PYTEST ARGS...]
#
# floor:   the oldest release pyproject.toml allows of every direct dependency at once
#          (scripts/dependency-floor.txt), the tfjs, android and onnx extras included.
# ceiling: the newest releases PyPI offers within the ranges. The tfjs extra would hold
#          TensorFlow at 2.19 (tensorflow-decision-forests pins it), so the ceiling takes
#          the path docs/dependencies.md gives users of a newer TensorFlow: tensorflowjs
#          without its dependencies, plus the few its converter imports.
#
# DIR is the scratch venv (replaced). What pip resolved is left in DIR/freeze.txt; the
# tests run against this checkout's sources. Nothing here is part of make or CI: the
# range is checked by hand when it moves (docs/dependencies.md records the last runs).
set -euo pipefail

if [[ $# -lt 2 || ( $1 != floor && $1 != ceiling ) ]]; then
    echo "usage: $0 floor|ceiling DIR [PYTEST ARGS...]" >&2
    exit 2
fi
KIND=$1
VENV=$2
shift 2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
# Export, every runtime in Python and Node, sources, verify, Android metadata + MediaPipe,
# the ONNX family (tf2onnx, ONNX Runtime's quantization tools and sessions).
TESTS=(tests/test_exporters.py tests/test_export.py tests/test_runtimes.py
    tests/test_sources.py tests/test_verify.py tests/test_android.py
    tests/test_android_metadata.py tests/test_dependencies.py tests/test_onnx.py)
[[ $# -gt 0 ]] && TESTS=("$@")

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
start=$SECONDS
if [[ $KIND == floor ]]; then
    "${PIP[@]}" install -q -c "$ROOT/scripts/dependency-floor.txt" "$ROOT[dev,tfjs,android,onnx]"
else
    "${PIP[@]}" install -q "$ROOT[dev,android]"
    "${PIP[@]}" install -q --no-deps "tensorflowjs>=4.22,<5"
    "${PIP[@]}" install -q tensorflow-hub jax importlib_resources
fi
"${PIP[@]}" freeze --exclude cnnx >"$VENV/freeze.txt"
echo "$KIND: installed in $((SECONDS - start)) s:" \
    "$(grep -iE '^(tensorflow|tf.keras|keras|numpy|protobuf|ai.edge.litert|tensorflowjs|tensorflow.decision.forests|mediapipe|onnx|onnxruntime|tf2onnx|typer|rich|pillow|matplotlib|playwright|psutil)==' \
        "$VENV/freeze.txt" | tr '\n' ' ')"
cd "$ROOT"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
