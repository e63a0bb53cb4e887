"""Names from files (labels, class folders, paths) are data: Rich markup in them is
printed as it is, a newline never shifts a labels.txt, a folder name that is not UTF-8
still makes a label, and 100,000 classes are checked without a classes x classes array.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tests.cli import cnnx
from tests.corpus.artifacts import fake_tfjs_artifacts
from tests.corpus.images import good_image
from toolkit.data.folder import list_classes
from toolkit.measure.parity import per_class_accuracy, reference_checks
from toolkit.packaging.bundle import write_labels

MARKUP = ("[/]", "[bold]b", "c[/bold]")


def test_markup_in_a_path_and_in_labels_is_printed_as_it_is(tmp_path: Path) -> None:
    fake_tfjs_artifacts(tmp_path / "artifacts", labels=MARKUP)
    out = "web [/]bundle"
    packaged = cnnx("package", "--target", "web", "artifacts", "--out", out, cwd=tmp_path)
    assert packaged.returncode == 0, packaged.stderr
    assert f"web bundle: {out}\n" in packaged.stdout
    assert (tmp_path / out / "index.html").is_file()
    described = cnnx("info", "artifacts", cwd=tmp_path)
    assert described.returncode == 0, described.stderr
    assert "[/], [bold]b, c[/bold]" in described.stdout
    missing = cnnx("info", "no[/]such[bold].keras", cwd=tmp_path)
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 3 and len(lines) == 1, missing.stderr
    assert "no[/]such[bold].keras" in lines[0]


def test_a_newline_in_a_label_never_shifts_a_labels_file(tmp_path: Path) -> None:
    labels = ["cat\ndog", "bird\r\n", "", "x\u2028y", "caf\udce9", "fish"]
    target = tmp_path / "labels.txt"
    write_labels(labels, target)
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines == ["cat dog", "bird", "class_2", "x y", "caf\ufffd", "fish"]


def test_class_folders_with_odd_names_make_one_line_labels(tmp_path: Path) -> None:
    root = tmp_path / "images"
    names = [b"caf\xe9", b"new\nline", b"[bold]markup"]
    for index, raw in enumerate(names):
        folder = os.path.join(os.fsencode(root), raw)
        os.makedirs(folder)
        good_image(Path(os.fsdecode(folder)) / "a.png", seed=index)
    classes = list_classes(root)
    assert sorted(classes) == sorted(["caf\ufffd", "new\nline", "[bold]markup"])
    write_labels(sorted(classes), tmp_path / "labels.txt")
    assert len((tmp_path / "labels.txt").read_text(encoding="utf-8").splitlines()) == 3


def test_a_100000_class_model_is_checked_without_a_dense_confusion_matrix() -> None:
    classes, images = 100_000, 64
    labels = np.arange(1000, 1000 + images)  # one image each of 48 classes...
    labels[:8], labels[8:16] = 7, 99_999  # ...and eight of two classes, enough to compare
    predicted = labels.copy()
    predicted[:7] = 99_999  # most of class 7 called 99,999 and the other way round
    predicted[8:15] = 7
    probs = np.zeros((images, classes), dtype=np.float32)
    probs[np.arange(images), predicted] = 1.0
    accuracy = per_class_accuracy(predicted, labels, classes)
    assert len(accuracy) == classes
    assert accuracy[7] == 1 / 8 and accuracy[99_999] == 1 / 8 and accuracy[1020] == 1.0
    assert accuracy[0] is None
    names = [f"c{i}" for i in range(classes)]
    checks = reference_checks(probs, labels, names)
    swaps = [check for check in checks if check.metric == "label_swap"]
    assert len(swaps) == 1 and "'c7' and 'c99999'" in swaps[0].note
