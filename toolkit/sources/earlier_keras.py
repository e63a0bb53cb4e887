"""`.keras` files from an earlier Keras 3 minor that the installed Keras refuses.

Keras drops layer arguments between minors: Keras 3.4 saved `RandomRotation(value_range=
...)`, which later releases reject as an unknown keyword, so the whole file does not
load. Augmentation layers pass their input through unchanged at inference, so for them
(and only them) such an argument changes nothing cnnx exports: the file is rebuilt from
its own config with those arguments dropped, by Keras' own loader on a copy of the
archive whose config.json is amended, and the warning and the manifest name each one.
The rebuild also frees a batch dimension fixed in an InputLayer (`batch_shape: [32,
...]`), which only said how the model was trained. An unknown argument of any other
layer may change what the model computes: that file is refused, naming layer and
argument.
"""

from __future__ import annotations

import inspect
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ModelError

# Keras layers that are the identity at inference (training=False): data augmentation.
# RandomCrop is not among them: at inference it crops to its target size.
AUGMENTATION = frozenset(
    {
        "AugMix", "CutMix", "MixUp", "RandAugment", "RandomBrightness",
        "RandomColorDegeneration", "RandomColorJitter", "RandomContrast",
        "RandomElasticTransform", "RandomErasing", "RandomFlip", "RandomGaussianBlur",
        "RandomGrayscale", "RandomHue", "RandomInvert", "RandomPerspective",
        "RandomPosterization", "RandomRotation", "RandomSaturation", "RandomSharpness",
        "RandomShear", "RandomTranslation", "RandomZoom", "Solarization",
    }
)  # fmt: skip
MODELS = frozenset({"Functional", "Sequential", "Model"})
# Keyword arguments every Keras layer takes beyond its classes' signatures (Layer pops them).
LAYER_KEYWORDS = frozenset({"input_dim", "input_shape"})


@dataclass(frozen=True)
class Dropped:
    """One argument the installed Keras does not know, on one layer."""

    layer: str
    class_name: str
    argument: str

    def __str__(self) -> str:
        return f"{self.layer} ({self.class_name}): {self.argument}"


@dataclass(frozen=True)
class Rebuild:
    """What the rebuild changes in a config: arguments dropped, the batch size freed."""

    dropped: tuple[Dropped, ...]
    batch: int | None  # the batch size an InputLayer fixed, now free

    def __bool__(self) -> bool:
        return bool(self.dropped) or self.batch is not None

    def warning(self, version: str) -> str:
        said = []
        if self.dropped:
            said.append(
                f"dropped the arguments Keras {version} does not know from augmentation "
                f"layers, which do nothing at inference: {', '.join(map(str, self.dropped))}"
            )
        if self.batch is not None:
            said.append(f"freed the batch size its InputLayer fixed at {self.batch}")
        return "rebuilt from its config: " + "; ".join(said)

    def record(self, written_by: str) -> dict[str, Any]:
        """The manifest's account of the rebuild (source.rebuilt)."""
        return {
            "written_by_keras": written_by or None,
            "dropped": [
                {"layer": d.layer, "class": d.class_name, "argument": d.argument}
                for d in self.dropped
            ],
            "freed_batch": self.batch,
        }


def plan(config: Any, path: Path) -> Rebuild:
    """What rebuilding `config` in the installed Keras takes; ModelError, naming layer and
    argument, when a layer other than augmentation has an argument Keras does not know."""
    import keras

    dropped: list[Dropped] = []
    refused: list[Dropped] = []
    for layer in _layers(config):
        name = str(layer["config"].get("name", "?"))
        cls = getattr(keras.layers, str(layer["class_name"]), None)
        if cls is None:
            continue  # a custom or unknown class: Keras' own loader says what is wrong
        for argument in sorted(set(layer["config"]) - known_arguments(cls)):
            entry = Dropped(name, str(layer["class_name"]), argument)
            (dropped if entry.class_name in AUGMENTATION else refused).append(entry)
    if refused:
        first = refused[0]
        more = f" (and {', '.join(map(str, refused[1:]))})" if refused[1:] else ""
        raise ModelError(
            f"{path}: layer {first.layer!r} ({first.class_name}) has argument "
            f"{first.argument!r}, which Keras {keras.__version__} does not know{more}",
            "only augmentation layers are rebuilt without such arguments; save the model "
            f"again with Keras {keras.__version__}, or install the Keras that wrote it",
        )
    batches = {
        shape[0]
        for layer in _layers(config)
        if layer["class_name"] == "InputLayer"
        and isinstance(shape := layer["config"].get("batch_shape"), list)
        and shape
        and isinstance(shape[0], int)
    }
    return Rebuild(tuple(dropped), max(batches) if batches else None)


def known_arguments(cls: type) -> frozenset[str]:
    """The keyword arguments a Keras layer class takes: every __init__ up its classes."""
    names = set(LAYER_KEYWORDS)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(inspect.signature(init).parameters)
    return frozenset(names - {"self", "args", "kwargs"})


def amended(config: Any, rebuild: Rebuild) -> Any:
    """`config` with the dropped arguments removed and every InputLayer's batch freed."""
    if isinstance(config, list):
        return [amended(value, rebuild) for value in config]
    if not isinstance(config, dict):
        return config
    config = {key: amended(value, rebuild) for key, value in config.items()}
    inner = config.get("config")
    if isinstance(inner, dict) and "class_name" in config:
        gone = {d.argument for d in rebuild.dropped if d.layer == inner.get("name")}
        if gone and config["class_name"] in AUGMENTATION:
            config["config"] = inner = {k: v for k, v in inner.items() if k not in gone}
        shape = inner.get("batch_shape")
        if config["class_name"] == "InputLayer" and isinstance(shape, list) and shape:
            config["config"] = {**inner, "batch_shape": [None, *shape[1:]]}
    return config


def load_rebuilt(path: Path, config: Any, rebuild: Rebuild, *, unsafe: bool) -> Any:
    """The model of `path` loaded by Keras from a copy whose config.json is amended."""
    import keras

    with tempfile.TemporaryDirectory(prefix="cnnx-keras-") as scratch:
        copy = Path(scratch) / "model.keras"
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
            for info in source.infolist():
                if info.filename == "config.json":
                    target.writestr("config.json", json.dumps(amended(config, rebuild)))
                    continue
                with source.open(info) as read, target.open(info.filename, "w") as write:
                    shutil.copyfileobj(read, write)
        return keras.saving.load_model(copy, compile=False, safe_mode=not unsafe)


def _layers(config: Any) -> Iterator[dict[str, Any]]:
    """Every layer config (class_name + config with a name) inside models' layer lists."""
    if isinstance(config, list):
        for value in config:
            yield from _layers(value)
    elif isinstance(config, dict):
        inner = config.get("config")
        if isinstance(inner, dict):
            if config.get("class_name") not in MODELS and "name" in inner:
                yield config
            yield from _layers(inner.get("layers", []))
