#!/usr/bin/env python3
"""Classify images on a Raspberry Pi with LiteRT or ONNX Runtime: files, folders or a camera.

    python3 classify.py                          # the bundled test images, with accuracy
    python3 classify.py photo.jpg some_folder/   # images and folders
    python3 classify.py --camera --frames 10     # picamera2, else OpenCV's camera 0
    python3 classify.py --bench 200              # latency percentiles
    python3 classify.py --model float32 --json   # the float model, machine-readable
    python3 classify.py --model onnx_float32     # the ONNX model, when the bundle has one

Needs only ai-edge-litert, numpy and Pillow (requirements.txt); the ONNX model also
onnxruntime (requirements-onnx.txt). Preprocessing comes
from input_spec.json, written with the models, and pictures become the model's input
through pixels.py, the same file cnnx used to calibrate and verify them (resize, crop,
colour order, normalisation): the same picture gives the same pixels here as there.
Exit codes: 0 ok, 2 usage, 3 an image or path is unusable, 4 a model file is missing or
does not match its sha256, 5 no camera.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


def load_pixel_rule():
    """pixels.py beside this file, under a private name (nothing else shadows it)."""
    spec = importlib.util.spec_from_file_location("cnnx_bundle_pixels", HERE / "pixels.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / 'pixels.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PIXELS = load_pixel_rule()


class BundleError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def load_interpreter_module():
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        try:  # older Raspberry Pi OS images ship the former name
            from tflite_runtime import interpreter
        except ImportError:
            raise BundleError("ai-edge-litert is not installed: run ./setup.sh", 4) from None
    return interpreter


class LiteRT:
    """A .tflite model in LiteRT's interpreter."""

    name = "litert"

    def __init__(self, content: bytes, threads: int, reference: bool) -> None:
        litert = load_interpreter_module()
        options = {}
        if reference:
            # LiteRT's own kernels without the XNNPACK delegate: their integer arithmetic
            # is the same on every CPU, so int8 outputs match x86 bit for bit. XNNPACK
            # (the default, faster) may round a rare int8 value one step apart.
            resolver = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            options["experimental_op_resolver_type"] = resolver
        with native_stderr_silenced():  # LiteRT's C++ INFO line about XNNPACK
            self.interpreter = litert.Interpreter(
                model_content=content, num_threads=threads, **options
            )
            self.interpreter.allocate_tensors()
        # name, shape, dtype and (scale, zero point) of the input and the output
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The raw output tensor of one image."""
        self.interpreter.set_tensor(self.input["index"], tensor)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])[0].copy()


class OnnxRuntime:
    """A .onnx model in an ONNX Runtime session on the CPU: float32 in and out (its int8
    models quantize inside the graph), a batch dimension of any size or 1."""

    name = "onnxruntime"

    def __init__(self, content: bytes, threads: int, reference: bool) -> None:
        if reference:
            raise BundleError("--reference-kernels is LiteRT's; the ONNX model has none", 2)
        try:
            import onnxruntime
        except ImportError:
            raise BundleError(
                "onnxruntime is not installed: run ./setup.sh (requirements-onnx.txt)", 4
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # like LiteRT's num_threads
        options.inter_op_num_threads = 1  # one chain of ops: nothing to run beside it
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(
            content, options, providers=["CPUExecutionProvider"]
        )
        source, target = self.session.get_inputs()[0], self.session.get_outputs()[0]
        # The batch dimension may be symbolic (a name, or None): one image is batch 1.
        shape = [1, *(int(d) if isinstance(d, int) else -1 for d in source.shape[1:])]
        self.input = {
            "name": source.name,
            "shape": shape,
            "dtype": np.float32,
            "quantization": (0.0, 0),
        }
        self.output = {"name": target.name, "dtype": np.float32, "quantization": (0.0, 0)}

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The output of one image."""
        return self.session.run([self.output["name"]], {self.input["name"]: tensor})[0][0]


ENGINES: dict[str, type[LiteRT] | type[OnnxRuntime]] = {".tflite": LiteRT, ".onnx": OnnxRuntime}


class Classifier:
    """One model, its labels and its preprocessing, as described by the bundle files."""

    def __init__(self, variant: str, threads: int, reference: bool = False) -> None:
        bundle = json.loads((HERE / "bundle.json").read_text(encoding="utf-8"))
        models = bundle["models"]
        if variant not in models:
            raise BundleError(f"no {variant!r} model in this bundle (it has {sorted(models)})", 2)
        model = models[variant]
        path = HERE / model["file"]
        if not path.is_file():
            raise BundleError(f"model file {path} is missing", 4)
        content = path.read_bytes()
        if hashlib.sha256(content).hexdigest() != model["sha256"]:
            raise BundleError(f"{path} does not match its sha256 in bundle.json", 4)
        self.variant = variant
        self.spec = json.loads((HERE / "input_spec.json").read_text(encoding="utf-8"))
        self.labels = (HERE / "labels.txt").read_text(encoding="utf-8").splitlines()
        self.engine = ENGINES[path.suffix](content, threads, reference)
        self.input, self.output = self.engine.input, self.engine.output
        dims = [int(d) for d in self.input["shape"][1:]]
        # A dimension the model leaves open (-1) is the input spec's.
        self.height, self.width, self.channels = (
            d if d > 0 else int(s) for d, s in zip(dims, self.spec["shape"], strict=True)
        )

    def pixels(self, image: Image.Image) -> np.ndarray:
        """A picture of any size -> raw uint8 [H, W, C]: the spec's crop, resize and mode."""
        return PIXELS.picture_pixels(
            image,
            self.height,
            self.width,
            self.channels,
            self.spec.get("resize", "bilinear"),
            self.spec.get("crop", "none"),
        )

    def tensor(self, pixels: np.ndarray) -> np.ndarray:
        """Raw pixels -> the model's input: the spec's float, quantized if the input is.

        For a uint8-input model exported from raw 0..255 pixels the scale is 1 and the
        zero point 0, so this is the camera's bytes unchanged.
        """
        x = PIXELS.model_input(pixels, self.spec)
        dtype = np.dtype(self.input["dtype"])
        if dtype.kind in "iu":
            scale, zero_point = self.input["quantization"]
            info = np.iinfo(dtype)
            q = np.round(x / np.float32(scale)) + zero_point
            return np.clip(q, info.min, info.max).astype(dtype)[None]
        return x.astype(dtype)[None]

    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities as float32, the raw output tensor) for one image."""
        raw = self.engine.run(self.tensor(pixels))
        dtype = np.dtype(self.output["dtype"])
        if dtype.kind in "iu":
            scale, zero_point = self.output["quantization"]
            scores = (raw.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
            return scores.astype(np.float32), raw
        return raw.astype(np.float32), raw

    def top(self, scores: np.ndarray, k: int) -> list[dict]:
        # Stable sort: ties (common in uint8 outputs) resolve to the lower index everywhere.
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            {"index": int(i), "label": self.labels[int(i)], "score": float(scores[i])}
            for i in order
        ]


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null; Python errors still raise as usual."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def default_images() -> str:
    """The bundled test images, named relative to the current folder when inside it."""
    folder = HERE / "test_images"
    try:
        return str(folder.relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def image_paths(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise BundleError(f"{path} does not exist", 3)
    if not found:
        raise BundleError(f"no images in {' '.join(paths)}", 3)
    return found


def ground_truth(paths: list[Path]) -> dict[Path, dict]:
    """Known labels for images in a folder that carries a ground_truth.json."""
    truth: dict[Path, dict] = {}
    for folder in {p.resolve().parent for p in paths}:
        table = folder / "ground_truth.json"
        if table.is_file():
            for record in json.loads(table.read_text(encoding="utf-8"))["images"]:
                truth[(folder / record["file"]).resolve()] = record
    return truth


def classify_files(classifier: Classifier, paths: list[Path], k: int) -> dict:
    truth = ground_truth(paths)
    results = []
    for path in paths:
        try:
            with Image.open(path) as image:
                pixels = classifier.pixels(image)
        except OSError as error:
            raise BundleError(f"cannot read image {path}: {error}", 3) from None
        scores, raw = classifier.run(pixels)
        result = {
            "file": str(path),
            "top": classifier.top(scores, k),
            "scores": [float(s) for s in scores],
            "raw": raw.tolist(),
        }
        known = truth.get(path.resolve())
        if known is not None:
            result["expected"] = {"index": known["index"], "label": known["label"]}
            result["correct"] = result["top"][0]["index"] == known["index"]
        results.append(result)
    checked = [r for r in results if "correct" in r]
    summary = {"images": len(results)}
    if checked:
        correct = sum(r["correct"] for r in checked)
        summary.update(correct=correct, labelled=len(checked), accuracy=correct / len(checked))
    return {"results": results, "summary": summary}


def bench(classifier: Classifier, pixels: np.ndarray, runs: int, warmup: int = 5) -> dict:
    tensor = classifier.tensor(pixels)
    run = classifier.engine.run  # input in, inference, output read back
    for _ in range(warmup):
        run(tensor)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(tensor)
        times.append((time.perf_counter() - start) * 1000.0)
    ms = np.asarray(times)
    return {
        "runs": runs,
        "warmup": warmup,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std()),
        "min_ms": float(ms.min()),
    }


def camera_frames(count: int):
    """RGB frames from picamera2 if present, else OpenCV's camera 0."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        Picamera2 = None
    if Picamera2 is not None:
        camera = Picamera2()
        camera.configure(
            camera.create_preview_configuration(main={"size": (640, 480), "format": "RGB888"})
        )
        camera.start()
        try:
            for _ in range(count):
                # libcamera's "RGB888" is stored B, G, R in memory.
                yield Image.fromarray(camera.capture_array()[..., ::-1].copy())
        finally:
            camera.stop()
        return
    try:
        import cv2
    except ImportError:
        raise BundleError("no camera library: install picamera2 or opencv-python", 5) from None
    capture = cv2.VideoCapture(0)
    if not capture.isOpened():
        raise BundleError("OpenCV cannot open camera 0", 5)
    try:
        for _ in range(count):
            ok, frame = capture.read()
            if not ok:
                raise BundleError("the camera returned no frame", 5)
            yield Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()


def print_result(result: dict) -> None:
    best = ", ".join(f"{t['label']} {t['score']:.3f}" for t in result["top"])
    mark = ""
    if "correct" in result:
        mark = "  ok" if result["correct"] else f"  WRONG (is {result['expected']['label']})"
    print(f"{result['file']}: {best}{mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="images or folders (default: test_images/)")
    parser.add_argument(
        "--model",
        choices=("int8", "float32", "onnx_float32"),
        default="int8",
        help="the model of bundle.json to run (onnx_float32: with ONNX Runtime)",
    )
    parser.add_argument("--top-k", type=int, default=3, metavar="K")
    parser.add_argument(
        "--threads", type=int, default=4, help="inference threads (a Pi 4 has 4 cores)"
    )
    parser.add_argument("--bench", type=int, default=0, metavar="N", help="time N runs")
    parser.add_argument("--camera", action="store_true", help="classify camera frames")
    parser.add_argument("--frames", type=int, default=0, help="camera frames (0: until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--reference-kernels",
        action="store_true",
        help="LiteRT's built-in kernels, no XNNPACK: slower, int8 bit-exact across CPUs",
    )
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.threads < 1 or args.bench < 0 or args.frames < 0:
        parser.error("--top-k and --threads must be >= 1; --bench and --frames >= 0")
    try:
        paths = [] if args.camera else image_paths(args.paths or [default_images()])
        started = time.perf_counter()
        classifier = Classifier(args.model, args.threads, args.reference_kernels)
        load_ms = (time.perf_counter() - started) * 1000.0
        k = min(args.top_k, len(classifier.labels))
        report: dict = {
            "model": args.model,
            "runtime": classifier.engine.name,
            "threads": args.threads,
            "kernels": "reference" if args.reference_kernels else "default",
            "machine": platform.machine(),
            "python": platform.python_version(),
            "load_ms": load_ms,  # reading, checking and loading the model
        }
        if args.camera:
            frames = camera_frames(args.frames or sys.maxsize)
            for number, frame in enumerate(frames):
                scores, _ = classifier.run(classifier.pixels(frame))
                top = classifier.top(scores, k)
                if args.json:
                    print(json.dumps({"frame": number, "top": top}), flush=True)
                else:
                    print(
                        f"frame {number}: "
                        + ", ".join(f"{t['label']} {t['score']:.3f}" for t in top),
                        flush=True,
                    )
            return 0
        report.update(classify_files(classifier, paths, k))
        if args.bench:
            with Image.open(paths[0]) as image:
                report["bench"] = bench(classifier, classifier.pixels(image), args.bench)
    except BundleError as error:
        print(f"classify.py: error: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(report))
        return 0
    for result in report["results"]:
        print_result(result)
    summary = report["summary"]
    if "accuracy" in summary:
        print(f"accuracy: {summary['correct']}/{summary['labelled']} = {summary['accuracy']:.3f}")
    if "bench" in report:
        b = report["bench"]
        print(
            f"latency over {b['runs']} runs ({args.model}, {args.threads} threads): "
            f"p50 {b['p50_ms']:.2f} ms, p90 {b['p90_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms, "
            f"mean {b['mean_ms']:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
