"""The web bundle: the demo page, its engines, models and samples as one static folder.

    OUT/index.html, app.js, ...            the page (relative URLs only)
    OUT/vendor/                            TF.js: tf.min.js, backends, *.wasm
    OUT/vendor/litertjs/                   LiteRT.js: index.js and its wasm builds
    OUT/vendor/ort/                        ONNX Runtime Web: its modules and wasm builds
    OUT/artifacts/manifest.json            a manifest of the engines' artifacts only
    OUT/artifacts/tfjs/..., tflite/...     the models (TF.js, .tflite), hash-checked
    OUT/artifacts/samples/                 the labelled test images, if recorded
    OUT/bundle.json, README.md, _headers   what it is, how to host it

`engine` picks what ships: `tfjs` (the TF.js artifacts, about 3 MB of engine),
`litertjs` (the .tflite artifacts, about 38 MB: LiteRT.js's four wasm builds), `both`
(those two), `onnx` (the .onnx artifacts, about 44 MB: ONNX Runtime Web's wasm build
and its WebGPU one) or `all` (the three).

It has the layout `cnnx serve` serves, so the page runs from any static host (or
`cnnx serve OUT/artifacts`). Built through the writer every bundle shares
(toolkit/packaging/bundle.py: staged folder, zip before the swap): an interrupted build
leaves nothing, and an existing OUT is an error, never merged.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from toolkit.core.atomic import write_text_atomic
from toolkit.core.limits import read_json
from toolkit.core.progress import ProgressFn, no_progress
from toolkit.data.images import check_image
from toolkit.errors import ArtifactError, DataError, UsageError
from toolkit.graph.tfjs_model import read_tfjs_model
from toolkit.manifest import ArtifactEntry, Manifest, load_manifest
from toolkit.packaging.bundle import Stages, bundle_record, model_record, writing_bundle
from toolkit.packaging.contents import check_bundle_contents
from toolkit.web.page import (
    ARTIFACTS_PREFIX,
    ENGINE_FORMATS,
    ENGINE_NAMES,
    PAGE_FILES,
    SAMPLES_DIR,
    SECURITY_HEADERS,
    VENDOR_PREFIX,
    vendor_files,
    web_demo_dir,
)

WEB_ENGINES = {
    "tfjs": ("tfjs",),
    "litertjs": ("litertjs",),
    "both": ("tfjs", "litertjs"),
    "onnx": ("onnx",),
    "all": ("tfjs", "litertjs", "onnx"),
}
EXPORT_FOR = {
    "tfjs": "cnnx export --to tfjs",
    "litertjs": "cnnx export --to tflite",
    "onnx": "cnnx export --to onnx",
}
BACKENDS_FOR = {
    "tfjs": "wasm|webgl|cpu|webgpu",
    "litertjs": "wasm|wasm-threaded|webgpu",
    "onnx": "wasm|wasm-threaded|webgpu",
}
FORMAT_NAMES = {"tfjs": "TF.js", "tflite": "TFLite", "onnx": "ONNX"}

README = """# cnnx web bundle

A static page that classifies images in the browser with {engines} ({artifacts}).
Everything it loads is in this folder (no CDN); every URL is relative.

Host it with any static file server, for example:

    python3 -m http.server 8000 --bind 127.0.0.1 --directory .

then open http://127.0.0.1:8000/. Opening index.html from disk (file://) does not
work: browsers refuse fetch() of local files.

The wasm backends use threads only when the page is cross-origin isolated; the
`_headers` file sets the two headers that need (Cross-Origin-Opener-Policy and
Cross-Origin-Embedder-Policy) on hosts that read it (Netlify, Cloudflare Pages).
Elsewhere the page still works, single-threaded and with coarser timers.

URL parameters: `?model=ID` ({artifacts}), `?engine={engine_ids}` and `?backend=`
{backends}. `bundle.json` records the source manifest and the sha256 of every file.
"""


def _web_manifest(manifest: Manifest, root: Path, engines: tuple[str, ...]) -> Manifest:
    """The source manifest reduced to the engines' artifacts, rooted at the bundle."""
    kept = {}
    for engine in engines:
        found = {k: e for k, e in manifest.artifacts.items() if e.format == ENGINE_FORMATS[engine]}
        if not found:
            kind = FORMAT_NAMES[ENGINE_FORMATS[engine]]
            raise ArtifactError(
                f"{manifest.path} has no {kind} artifact for {ENGINE_NAMES[engine]} (it has: "
                f"{', '.join(sorted(manifest.artifacts)) or 'none'})",
                f"make one with: {EXPORT_FOR[engine]} --out {manifest.root}",
            )
        kept.update(found)
    return Manifest(
        root=root,
        input=manifest.input,
        labels=list(manifest.labels),
        artifacts=kept,
        source=dict(manifest.source),
        eval_data=manifest.eval_data,
        versions=dict(manifest.versions),
        command=manifest.command,
        created=manifest.created,
    )


def _sample_files(manifest: Manifest) -> list[str]:
    """samples/samples.json and the images it names (relative to the artifacts root)."""
    index = manifest.root / SAMPLES_DIR / "samples.json"
    if not index.is_file():
        return []
    data = read_json(index, "samples index", DataError)
    records = data.get("samples") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise DataError(f"{index} holds no list of samples")
    files = [f"{SAMPLES_DIR}/samples.json"]
    for record in records:
        name = record.get("file") if isinstance(record, dict) else None
        if not isinstance(name, str):
            raise DataError(f"{index}: malformed sample record {record!r}")
        path = (manifest.root / SAMPLES_DIR / name).resolve()
        if not path.is_relative_to((manifest.root / SAMPLES_DIR).resolve()) or not path.is_file():
            raise DataError(f"{index} names {name!r}, which is not a file in {SAMPLES_DIR}/")
        check_image(path)  # visitors' browsers decode it: a regular file under the pixel limit
        files.append(f"{SAMPLES_DIR}/{name}")
    return files


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def package_web(
    artifacts_dir: Path,
    out_dir: Path,
    *,
    force: bool = False,
    engine: str = "tfjs",
    make_zip: bool = True,
    progress: ProgressFn = no_progress,
) -> Path:
    """Write the web bundle of ARTIFACTS_DIR for `engine` (tfjs, litertjs, both, onnx or
    all) to
    OUT_DIR (and OUT_DIR.zip); return OUT_DIR.

    Raises PathError if OUT_DIR exists (unless force, which replaces it whole),
    ArtifactError if an engine has no artifact or a file does not match its sha256,
    RuntimeUnavailable if the engine is not installed in web_demo/node_modules.
    """
    if engine not in WEB_ENGINES:
        raise UsageError(f"unknown web engine {engine!r}", f"choose {', '.join(WEB_ENGINES)}")
    engines = WEB_ENGINES[engine]
    manifest = load_manifest(Path(artifacts_dir))
    out_dir = Path(out_dir)
    page_dir = web_demo_dir()
    vendor = vendor_files(page_dir, engines)
    subset = _web_manifest(manifest, out_dir / ARTIFACTS_PREFIX, engines)
    for entry in subset.artifacts.values():
        manifest.check_files(entry)  # never ship a model that changed after export
        if entry.format == "tfjs":  # every shard it names inside its folder
            read_tfjs_model(manifest.artifact_path(entry, check=False), check_graph=False)
    samples = _sample_files(manifest)

    stages = Stages(progress, "web", ["page", "models", "samples"], make_zip=make_zip)
    with writing_bundle(out_dir, force=force, make_zip=make_zip, stages=stages) as tmp:
        stages.start("page")
        for name in PAGE_FILES:
            _copy(page_dir / name, tmp / name)
        for name, source in vendor.items():
            _copy(source, tmp / VENDOR_PREFIX / name)
        artifacts = tmp / ARTIFACTS_PREFIX
        stages.start("models")
        for entry in subset.artifacts.values():
            for file_record in entry.files:
                _copy(manifest.root / file_record["path"], artifacts / file_record["path"])
        stages.start("samples")
        for relative in samples:
            _copy(manifest.root / relative, artifacts / relative)
        dataclasses.replace(subset, root=artifacts).save()

        readme = README.format(
            engines=" and ".join(ENGINE_NAMES[e] for e in engines),
            artifacts=", ".join(sorted(subset.artifacts)),
            engine_ids="|".join(engines),
            backends=" or ".join(f"`{BACKENDS_FOR[e]}` ({ENGINE_NAMES[e]})" for e in engines),
        )
        write_text_atomic(tmp / "README.md", readme)
        headers = "".join(f"  {k}: {v}\n" for k, v in SECURITY_HEADERS.items())
        write_text_atomic(tmp / "_headers", f"/*\n{headers}")
        models: dict[str, Any] = {
            artifact_id: model_record(tmp, _model_file(entry), entry, engine=_engine(entry))
            for artifact_id, entry in sorted(subset.artifacts.items())
        }
        bundle_record(tmp, "web", manifest, models=models, samples=max(0, len(samples) - 1))
        check_bundle_contents(tmp)
    return out_dir


def _model_file(entry: ArtifactEntry) -> str:
    """The file the page loads: a TF.js model.json, or the .tflite or .onnx file itself."""
    suffix = "/model.json" if entry.format == ENGINE_FORMATS["tfjs"] else ""
    return f"{ARTIFACTS_PREFIX}/{entry.path}{suffix}"


def _engine(entry: ArtifactEntry) -> str:
    return next(name for name, fmt in ENGINE_FORMATS.items() if fmt == entry.format)
