"""A SavedModel classifier that needs TensorFlow ops TFLite's builtin ops lack.

`tf.image.extract_patches` (ExtractImagePatches) and `tf.math.cumprod` (Cumprod) have no
TFLite kernel: a converter allowed SELECT_TF_OPS keeps them as Flex ops, which only the
Flex delegate runs. Both are pure computation, so the graph policy lets the model in and
the refusal comes from the export, where it belongs.
"""

from __future__ import annotations

from pathlib import Path

SIZE = 16
CLASSES = 3
FLEX_OPS = ("FlexCumprod", "FlexExtractImagePatches")


def flex_savedmodel(path: Path) -> Path:
    import tensorflow as tf

    class Patches(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
        def serve(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
            patches = tf.image.extract_patches(image, [1, 4, 4, 1], [1, 4, 4, 1], [1] * 4, "VALID")
            pooled = tf.reduce_mean(patches, axis=[1, 2])[:, :CLASSES]
            scores = tf.math.cumprod(1.0 + pooled / 255.0, axis=1)
            return {"probabilities": tf.nn.softmax(scores)}

    module = Patches()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return Path(path)
