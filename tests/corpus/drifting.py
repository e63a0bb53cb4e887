"""A model where plain int8 drifts: Conv -> Activation -> BatchNormalization blocks.

The shape of CIFAR-10 models found in the wild (Keras 2 era): each block applies the
activation before the BatchNormalization, so the converter cannot fold the BN into the
convolution and it stays as a per-channel MUL and ADD after the ReLU. Then
GlobalMaxPooling, Dropout, a Dense layer and a separate softmax Activation. Full int8
rounds every one of those activations to 256 levels and the error compounds over the
blocks; int16x8 keeps the answers.

`drifting_run(folder)` builds the model, saves it as .keras and trains it briefly on
`shapes` through cnnx's own training (`--resume` of that file), so the run folder is a
real cnnx run: model, SavedModel, the dataset named for calibration and evaluation.
About 40 s on a quiet 2-core machine, so it ships under tests/models/ (`python -m
tests.factories drifting` trains it again); the drifting_run fixture copies it.
"""

from __future__ import annotations

from pathlib import Path

from tests.factories import conv_act_bn

SIZE = 2000  # shapes images: 1,600 train, 200 val, 200 test
EPOCHS = 10
LEARNING_RATE = 1e-2


def drifting_run(folder: Path) -> Path:
    """Train the Conv -> Activation -> BN model into `folder` (a cnnx run folder)."""
    from toolkit.data import DataSpec
    from toolkit.train.training import TrainConfig, train

    folder = Path(folder)
    run = folder / "run"
    data = DataSpec(kind="shapes", seed=0, size=SIZE, image_size=32)
    start = folder / "conv_act_bn.keras"
    folder.mkdir(parents=True, exist_ok=True)
    conv_act_bn((32, 32, 3), 10).save(start)  # shapes: 10 classes
    result = train(
        TrainConfig(
            data=data,
            epochs=EPOCHS,
            batch_size=32,
            learning_rate=LEARNING_RATE,
            seed=0,
            out=run,
            resume=start,
        )
    )
    if result.test_accuracy < 0.3:
        raise RuntimeError(f"the drifting model did not learn: {result.test_accuracy:.3f}")
    return result.run_dir
