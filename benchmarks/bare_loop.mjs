// A bare run loop in Node, written apart from web_demo/timed_loop.js, for
// benchmarks/browser_bench.py to put beside the Node runners' rows:
//
//   node [--experimental-wasm-relaxed-simd --no-liftoff] bare_loop.mjs ENGINE MODEL BACKEND THREADS
//   then per round, on stdin: "RUNS BLOCK"  ->  {"samples_ms": [ms per run of each block]}
//
// ENGINE litertjs (MODEL a .tflite; BACKEND wasm or wasm-threaded) or tfjs (MODEL a
// model.json; BACKEND wasm). One input made once; each round RUNS runs back to back in
// blocks of BLOCK, each block timed as a whole.
// The engine is set up as the runners set it up (the same builds, threads and backend),
// and for LiteRT.js started with the runner's V8 flags (litertjs_node.node_args: TurboFan
// alone, so neither node's code changes while they are compared); only the loop is this
// file's own.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const WEB_DEMO = path.join(ROOT, "web_demo");
const NODE_MODULES = process.env.CNNX_NODE_MODULES || path.join(WEB_DEMO, "node_modules");
const [engineName, model, backend, threads] = process.argv.slice(2);
const require = createRequire(path.join(NODE_MODULES, "cnnx-resolve.js"));

async function litertjs() {
  const glue = path.join(ROOT, "toolkit", "runtimes", "js", "litertjs_glue.cjs");
  const { loadGlue } = createRequire(import.meta.url)(glue);
  globalThis.self = globalThis;
  globalThis.navigator ??= { hardwareConcurrency: os.availableParallelism() };
  globalThis.importScripts = (file) => {
    process.env.CNNX_LITERTJS_GLUE = file;
    globalThis.Module = { ...(globalThis.Module ?? {}), mainScriptUrlOrBlob: glue };
    globalThis.ModuleFactory = loadGlue(file);
  };
  console.log = console.error; // LiteRT logs on stdout: keep it for the answer
  const litert = await import(pathToFileURL(path.join(NODE_MODULES, "@litertjs", "core", "dist", "index.js")));
  const { LiteRtEngine } = await import(pathToFileURL(path.join(WEB_DEMO, "engine_litertjs.js")));
  const wasmDir = pathToFileURL(path.join(NODE_MODULES, "@litertjs", "core", "wasm") + path.sep).href;
  const engine = await LiteRtEngine.start(litert, wasmDir, backend, { isolated: true, threads: Number(threads) });
  await engine.load(new Uint8Array(readFileSync(model)));
  const size = engine.shape.reduce((a, b) => a * b, 1);
  const values = engine.io.inputs[0].dtype === "uint8" ? new Uint8Array(size).fill(128) : new Float32Array(size).fill(0.5);
  const x = new litert.Tensor(values, engine.shape);
  return { run: () => engine.model.run(x), drop: (ys) => ys.forEach((y) => y.delete()), awaits: true };
}

async function tfjs() {
  const tf = require("@tensorflow/tfjs");
  require("@tensorflow/tfjs-backend-wasm");
  await tf.setBackend(backend);
  const json = JSON.parse(readFileSync(model, "utf8"));
  const specs = json.weightsManifest.flatMap((group) => group.weights);
  const shards = json.weightsManifest.flatMap((group) => group.paths.map((p) => readFileSync(path.join(path.dirname(model), p))));
  const weights = Buffer.concat(shards);
  const graph = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: specs,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    }),
  );
  const shape = graph.inputs[0].shape.map((d) => (d > 0 ? d : 1));
  const x = tf.fill(shape, 0.5);
  return { run: () => graph.execute(x), drop: (y) => tf.dispose(y), awaits: false };
}

const { run, drop, awaits } = engineName === "litertjs" ? await litertjs() : await tfjs();

async function loop(runs, block) {
  const samples = [];
  for (let done = 0; done < runs; done += block) {
    const results = [];
    const start = performance.now();
    if (awaits) for (let k = 0; k < block; k++) results.push(await run());
    else for (let k = 0; k < block; k++) results.push(run());
    samples.push((performance.now() - start) / block);
    results.forEach(drop);
  }
  return samples;
}

// Long-lived, as the runner beside it: one line "RUNS BLOCK" per round on stdin, one
// JSON line back. The untimed first runs pay for compiling each wasm function (at its
// first call, by TurboFan where node was given --no-liftoff).
await loop(200, 1);
process.stdout.write("ready\n");
let pending = "";
process.stdin.on("data", async (chunk) => {
  pending += chunk;
  let newline;
  while ((newline = pending.indexOf("\n")) >= 0) {
    const [runs, block] = pending.slice(0, newline).split(" ").map(Number);
    pending = pending.slice(newline + 1);
    process.stdout.write(JSON.stringify({ samples_ms: await loop(runs, block) }) + "\n");
  }
});
process.stdin.on("end", () => process.exit(0));
