"""LiteRT.js's wasm builds in Node: the `litertjs-node` runtime.

The page's LiteRT.js engine (web_demo/engine_litertjs.js) with the same
`@litertjs/core` wasm builds, outside the browser: one long-lived
`node js/litertjs_runner.mjs` process per model, the TF.js Node runner's protocol and
time limits (tfjs_node.py's NodeRunner). What it takes to run there:

- the glue of each build is plain CommonJS in a package marked "type": "module", so the
  runner evaluates it as CommonJS (js/litertjs_glue.cjs), in the pthreads too;
- Node 20's V8 has relaxed SIMD behind `--experimental-wasm-relaxed-simd`, which the
  runner is started with where node takes it: it runs the builds the browser runs
  (without it LiteRT.js would fall back to its compat build, and the threaded build
  refuses to load; a node whose V8 ships relaxed SIMD may no longer know the flag);
- the threaded build sizes its pthread pool from navigator.hardwareConcurrency, which
  Node 20 lacks: the runner gives it the machine's parallelism;
- V8 compiles the wasm with TurboFan, its optimizing compiler, from each function's first
  call (`--no-liftoff`, where node takes it), so a node runs the same code all its life
  (see TURBOFAN_ONLY_FLAG).

Backends: `wasm` (one thread) and `wasm-threaded`. No WebGPU in Node.
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from toolkit.errors import ArtifactError
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes import RuntimeInfo
from toolkit.runtimes.tfjs_node import (
    CALL_TIMEOUT,
    LOAD_TIMEOUT,
    NodeModel,
    NodeRunner,
    node_binary,
    node_modules,
)
from toolkit.runtimes.tfjs_shared import backend_option, npm_version

RUNNER = Path(__file__).resolve().parent / "js" / "litertjs_runner.mjs"
RELAXED_SIMD_FLAG = "--experimental-wasm-relaxed-simd"
# By default V8 runs wasm first as Liftoff (baseline) code and recompiles a function with
# TurboFan once it has run enough, in the background, for as long as the process lives.
# On the seed CNN the last of those recompilations came after some 5,000 runs and changed
# the process's speed for the rest of its life: 11 % slower in 6 nodes of 6, and 2.5x
# slower in 2 of 8 others, so two nodes timing the same wasm side by side disagreed by up
# to 2.5x. Compiled by TurboFan alone, at each function's first call, 6 nodes of 6 kept
# one speed, the fastest, from their second thousand runs on.
TURBOFAN_ONLY_FLAG = "--no-liftoff"
BACKENDS = ("wasm", "wasm-threaded")
PACKAGE = "@litertjs/core"


@functools.cache
def node_args(binary: str) -> tuple[str, ...]:
    """The flags LiteRT.js's wasm runs under in Node (the runner's, and any loop timed
    beside it): relaxed SIMD and TurboFan alone, each where this node accepts it (an
    unknown flag stops node)."""
    return tuple(flag for flag in (RELAXED_SIMD_FLAG, TURBOFAN_ONLY_FLAG) if _accepts(binary, flag))


def _accepts(binary: str, flag: str) -> bool:
    try:
        probe = subprocess.run([binary, flag, "-e", "0"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def load(manifest: Manifest, entry: ArtifactEntry, **options: Any) -> NodeModel:
    """Start a runner and load a .tflite `entry`; options: backend, threads, timeout (s)."""
    backend = backend_option(options, BACKENDS, "litertjs-node")
    if entry.format != "tflite":
        raise ArtifactError(f"litertjs-node runs tflite artifacts, not {entry.format!r}")
    timeout = float(options.get("timeout") or CALL_TIMEOUT)
    path = manifest.artifact_path(entry, check=bool(options.get("check", True)))
    modules = node_modules(PACKAGE)
    env = dict(os.environ, CNNX_NODE_MODULES=str(modules))
    start = time.perf_counter()
    what = f"{entry.id} on litertjs-node/{backend}"
    runner = NodeRunner(what, env, RUNNER, node_args(node_binary()))
    request: dict[str, Any] = {"cmd": "load", "model": str(path), "backend": backend}
    if options.get("threads") and backend == "wasm-threaded":
        request["threads"] = int(options["threads"])
    try:
        response, _ = runner.call(
            request, timeout=timeout if options.get("timeout") else max(timeout, LOAD_TIMEOUT)
        )
    except BaseException:
        runner.kill()
        raise
    features = response.get("features") or {}
    info = RuntimeInfo(
        runtime="litertjs-node",
        backend=backend,
        threads=int(features.get("threadCount") or 1),
        init_ms=float(response.get("init_ms", (time.perf_counter() - start) * 1e3)),
        max_batch=1,  # rows are looped: the .tflite has a static batch of 1
        details={
            "engine": "LiteRT.js",
            "engine_version": npm_version(modules, PACKAGE),
            "node_pid": runner.pid,
            "wasm_build": features.get("build"),
            "wasm_relaxed_simd": features.get("relaxedSimd"),
            "node_flags": response.get("node_flags"),
            "fully_delegated": features.get("fullyDelegated"),
            "start_ms": (time.perf_counter() - start) * 1e3,
        },
    )
    return NodeModel(manifest, entry, runner, info, timeout)
