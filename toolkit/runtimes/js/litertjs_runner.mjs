// LiteRT.js (@litertjs/core) in Node, driven by toolkit/runtimes/litertjs_node.py.
//
// The same wasm builds and the same engine code (web_demo/engine_litertjs.js) as the
// page, without the browser: one long-lived process per loaded model, speaking
// protocol.mjs. Node 20 needs --experimental-wasm-relaxed-simd for the relaxed-SIMD
// builds (the Python side passes it); without it LiteRT.js picks its compat build. The
// Python side also starts it with --no-liftoff: every wasm function compiled by TurboFan at
// its first call, never recompiled while it is timed (litertjs_node.py says why).
// Commands:
//   load    {model: path/to/model.tflite, backend: "wasm"|"wasm-threaded", threads?}
//           -> {backend, init_ms, features, node_flags, inputs, outputs}
//   predict {shape} + float32 -> {shape} + float32 probabilities
//   time    {shape, runs} + float32 -> {samples_ms, runs, block, timer_step_ms, pre_ms, post_ms}
//           (web_demo/timed_loop.js: model.run alone, one row)
//   profile {shape, runs} + float32 -> {total_ms, run_ms, copies_ms, await_ms, timer_step_ms}
//   memory  {} -> {rss, peak_rss, live_tensors, heap_bytes, heap_top}
//   close   {} -> {} and exit

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { floatsOf, peakRss, quietConsole, serve } from "./protocol.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WEB_DEMO = path.resolve(HERE, "..", "..", "..", "web_demo");
const NODE_MODULES = process.env.CNNX_NODE_MODULES || path.join(WEB_DEMO, "node_modules");
const GLUE = path.join(HERE, "litertjs_glue.cjs");
const { loadGlue } = createRequire(import.meta.url)(GLUE);

quietConsole();

// What the glue expects of a browser: `self`, importScripts() to run a build's .js, and
// navigator.hardwareConcurrency to size the threaded build's pthread pool.
globalThis.self = globalThis;
globalThis.navigator ??= { hardwareConcurrency: os.availableParallelism() };
globalThis.importScripts = (file) => {
  process.env.CNNX_LITERTJS_GLUE = file; // for the pthreads, which run litertjs_glue.cjs
  globalThis.Module = { ...(globalThis.Module ?? {}), mainScriptUrlOrBlob: GLUE };
  globalThis.ModuleFactory = loadGlue(file);
};

let engine = null;

async function load(header) {
  const start = performance.now();
  const litert = await import(pathToFileURL(path.join(NODE_MODULES, "@litertjs", "core", "dist", "index.js")));
  const { LiteRtEngine } = await import(pathToFileURL(path.join(WEB_DEMO, "engine_litertjs.js")));
  const wasmDir = pathToFileURL(path.join(NODE_MODULES, "@litertjs", "core", "wasm") + path.sep).href;
  engine = await LiteRtEngine.start(litert, wasmDir, header.backend || "wasm", {
    isolated: true, // Node always has SharedArrayBuffer
    threads: header.threads,
  });
  if (engine.note) throw new Error(engine.note);
  const io = await engine.load(new Uint8Array(readFileSync(header.model)));
  return {
    backend: engine.backend,
    init_ms: performance.now() - start,
    features: engine.features,
    node_flags: process.execArgv, // the V8 flags the wasm runs under (litertjs_node.node_args)
    ...io,
  };
}

async function predict(header, payload) {
  const rows = header.shape[0];
  const probs = await engine.predict(floatsOf(header, payload), rows);
  return [{ shape: [rows, probs.length / rows] }, probs];
}

// The engine's run alone on a ready tensor, pre and post apart (web_demo/timed_loop.js).
async function time(header, payload) {
  const { timeStages } = await import(pathToFileURL(path.join(WEB_DEMO, "timed_loop.js")));
  return timeStages(engine.timingStages(floatsOf(header, payload)), header.runs);
}

function memory() {
  const usage = process.memoryUsage();
  const wasm = engine ? engine.memory() : {};
  return {
    rss: usage.rss,
    peak_rss: peakRss(),
    live_tensors: wasm.liveTensors,
    heap_bytes: wasm.heapBytes,
    heap_top: wasm.heapTop,
  };
}

async function handle(header, payload) {
  switch (header.cmd) {
    case "load":
      return [await load(header), null];
    case "predict":
      return predict(header, payload);
    case "time":
      return [await time(header, payload), null];
    case "profile":
      return [await engine.profile(floatsOf(header, payload), header.runs), null];
    case "memory":
      return [memory(), null];
    default:
      throw new Error(`unknown command ${JSON.stringify(header.cmd)}`);
  }
}

serve(handle);
