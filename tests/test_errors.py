"""The error helpers: quoted reasons are shortened at a word, never mid-word."""

from __future__ import annotations

import pytest

from toolkit.errors import CnnxError, describe_internal, first_line, shorten

KERAS_MESSAGE = (
    "Could not deserialize class 'InputLayer' because its parent module "
    "keras.src.engine.input_layer cannot be imported. Full object config: "
    "{'module': 'keras.layers', 'class_name': 'InputLayer', 'config': {'batch_input_shape': "
    "[None, 28, 28, 1]}}. Make sure custom classes are decorated with "
    "`@keras.saving.register_keras_serializable()` and that the config returned by "
    "`get_config()` are explicitly deserialized in the custom class's `from_config()`"
)


@pytest.mark.parametrize("limit", [20, 57, 80, 120, 200, 299])
def test_shorten_cuts_at_a_word_and_says_so(limit: int) -> None:
    text = shorten(KERAS_MESSAGE, limit)
    assert len(text) <= limit
    assert text.endswith(" ...")
    kept = text.removesuffix(" ...")
    words, kept_words = KERAS_MESSAGE.split(), kept.split()
    # Every kept word is a whole word of the original, in order (the last may lose a comma).
    assert kept_words[:-1] == words[: len(kept_words) - 1]
    assert kept_words[-1] == words[len(kept_words) - 1].rstrip(",;:-(")


def test_shorten_keeps_short_text_and_joins_lines() -> None:
    assert shorten("one\n  two\tthree") == "one two three"
    assert shorten("x" * 250) == "x" * 250  # one word longer than the limit stays whole
    assert shorten("y" * 250 + " tail", 100) == "y" * 250 + " ..."


def test_first_line_of_an_error() -> None:
    error = ValueError(KERAS_MESSAGE + "\nsecond line")
    line = first_line(error)
    assert "\n" not in line and len(line) <= 200 and line.endswith(" ...")
    assert first_line(ValueError("")) == "ValueError"


def test_one_line_is_never_cut() -> None:
    error = CnnxError("a " * 300, "do b")
    assert error.one_line().endswith("(do b)")


# What TensorFlow put in its message when a distributed batch reached the wrong place.
TENSOR_DUMP = (
    "Attempt to convert a value (PerReplica:{\n  0: <tf.Tensor: shape=(32, 32, 32, 3), "
    "dtype=float32, numpy=\narray([[[[132., 179., 173.],\n" + "[133., 193., 160.], " * 2000
)


def test_an_internal_error_never_quotes_a_tensor() -> None:
    line = describe_internal(ValueError(TENSOR_DUMP))
    assert line == "internal error: ValueError: Attempt to convert a value <values left out>"
    long = describe_internal(RuntimeError("word " * 400))
    assert len(long) < 260 and long.endswith("word ...") and "\n" not in long


def test_the_cli_prints_one_short_line_and_the_whole_text_under_debug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import typer
    from typer.testing import CliRunner

    from toolkit.cli.common import handles_errors

    @handles_errors
    def broken() -> None:
        raise ValueError(TENSOR_DUMP)

    app = typer.Typer()
    app.command()(broken)
    monkeypatch.delenv("CNNX_DEBUG", raising=False)
    quiet = CliRunner().invoke(app, [])
    assert quiet.exit_code == 1
    assert quiet.stderr == (
        "cnnx: error: internal error: ValueError: Attempt to convert a value <values left "
        "out> (rerun with CNNX_DEBUG=1 for the traceback)\n"
    )
    monkeypatch.setenv("CNNX_DEBUG", "1")
    loud = CliRunner().invoke(app, [])
    assert "[133., 193., 160.]" in loud.stderr and "Traceback" in loud.stderr
