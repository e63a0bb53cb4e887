"""Bundles for devices and the web, built from an artifacts folder's manifest alone.

`package(target, artifacts_dir, out)` is the one call: `cnnx package` and `cnnx demo`
use it. Each target lives in its own module, imported only when asked for.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from toolkit.core.progress import ProgressFn, no_progress
from toolkit.core.writelock import output_lock, refuse_overlap
from toolkit.errors import RuntimeUnavailable, UsageError

BUNDLE_TARGETS = ("android", "rpi", "web")


def package(
    target: str,
    artifacts_dir: Path,
    out: Path | None = None,
    *,
    force: bool = False,
    make_zip: bool = True,
    engine: str | None = None,
    progress: ProgressFn = no_progress,
    wait: bool = False,
) -> Path:
    """Build the `target` bundle from artifacts_dir into out (default ./bundles/TARGET).

    Returns the bundle folder; with make_zip a zip of it sits beside it (TARGET.zip).
    `engine` (web only): tfjs (the default), litertjs or both. `progress` hears of each
    stage as it starts (task "bundle": models, metadata, the self-test, the zip).
    `out` (and its zip) never overlap the artifacts folder, whatever `force` says; one
    package writes `out` at a time (another waits with `wait`, else fails).
    """
    if target not in BUNDLE_TARGETS:
        raise UsageError(
            f"unknown bundle target {target!r}", f"choose one of {', '.join(BUNDLE_TARGETS)}"
        )
    if engine is not None and target != "web":
        raise UsageError(f"--engine applies to --target web, not {target}")
    artifacts_dir = Path(artifacts_dir)
    out = Path(out) if out is not None else Path.cwd() / "bundles" / target
    refuse_overlap(out, {"artifacts folder": artifacts_dir})
    if make_zip:
        refuse_overlap(out.with_suffix(".zip"), {"artifacts folder": artifacts_dir})
    with output_lock(out, wait=wait):
        return _package(target, artifacts_dir, out, force, make_zip, engine, progress)


def _package(
    target: str,
    artifacts_dir: Path,
    out: Path,
    force: bool,
    make_zip: bool,
    engine: str | None,
    progress: ProgressFn,
) -> Path:
    if target == "rpi":
        from toolkit.packaging.rpi import package_rpi

        return package_rpi(artifacts_dir, out, force=force, make_zip=make_zip, progress=progress)
    if target == "android":
        from toolkit.packaging.android import package_android

        return package_android(
            artifacts_dir, out, force=force, make_zip=make_zip, progress=progress
        )
    return _package_web(
        artifacts_dir,
        out,
        force=force,
        make_zip=make_zip,
        engine=engine or "tfjs",
        progress=progress,
    )


def _package_web(
    artifacts_dir: Path,
    out: Path,
    *,
    force: bool,
    make_zip: bool,
    engine: str,
    progress: ProgressFn,
) -> Path:
    """The web bundle is toolkit/packaging/web.py's `package_web(artifacts_dir, out_dir)`."""
    try:
        web = importlib.import_module("toolkit.packaging.web")
    except ModuleNotFoundError as error:
        if error.name != "toolkit.packaging.web":
            raise
        raise RuntimeUnavailable(
            "the web bundle is not available in this cnnx (toolkit/packaging/web.py is missing)",
            "use --target rpi or --target android",
        ) from None
    return Path(
        web.package_web(
            artifacts_dir, out, force=force, engine=engine, make_zip=make_zip, progress=progress
        )
    )
