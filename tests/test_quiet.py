"""cnnx's TensorFlow import (toolkit/core/quiet.py), in a fresh interpreter: TensorFlow's
C++ start-up logs are discarded, and the packages TensorFlow and Keras probe for at import
(jax, pandas, matplotlib) stay unimported until something asks for them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = """
import json, sys
from toolkit.core.quiet import OPTIONAL_AT_IMPORT, silence_tensorflow
silence_tensorflow()
import keras
import tensorflow as tf
tf.constant(1.0) + 1.0  # the runtime started, not just the module
loaded = sorted(name for name in OPTIONAL_AT_IMPORT if name in sys.modules)
import jax, matplotlib.pyplot, pandas  # what asks for them later gets them
print(json.dumps({"loaded_with_tensorflow": loaded, "keras": keras.__version__}))
"""


def test_tensorflow_starts_quietly_and_without_the_packages_it_probes_for() -> None:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=root, check=False
    )
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["loaded_with_tensorflow"] == [] and said["keras"].startswith("3.")
    assert done.stderr == ""
