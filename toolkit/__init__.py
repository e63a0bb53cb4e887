"""cnnx: export Keras/TensorFlow image classifiers and prove the exports still agree."""

__version__ = "0.1.0"
