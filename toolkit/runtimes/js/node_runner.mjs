// TF.js graph models in Node, driven by toolkit/runtimes/tfjs_node.py.
//
// One long-lived process per loaded model, so a measured latency is inference, not
// process start. The protocol (framing, errors) is protocol.mjs's. Commands:
//   load    {model: path/to/model.json, backend: "wasm"|"cpu"}
//           -> {backend, init_ms, tfjs_version, inputs, outputs}
//   predict {shape} + float32 -> {shape, infer_ms} + float32 probabilities
//   time    {shape, runs} + float32 -> {samples_ms, runs, block, timer_step_ms, pre_ms, post_ms}
//           (web_demo/timed_loop.js: execute alone, one row)
//   memory  {} -> {rss, peak_rss, heap_used, external, array_buffers}
//   close   {} -> {} and exit

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { performance } from "node:perf_hooks";
import { floatsOf, peakRss, quietConsole, serve } from "./protocol.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
// Repo-relative default: toolkit/runtimes/js -> web_demo/node_modules.
const NODE_MODULES =
  process.env.CNNX_NODE_MODULES || path.resolve(HERE, "..", "..", "..", "web_demo", "node_modules");

quietConsole();

const requireFrom = createRequire(path.join(NODE_MODULES, "cnnx-resolve.js"));
let tf = null;
let model = null;
let inputName = null;

// A Node Buffer may be a view into a larger pooled ArrayBuffer: copy exactly its bytes.
function toArrayBuffer(buffer) {
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
}

// A shard path that climbs out of the model's folder is refused (cnnx checks it too,
// before starting this runner): model.json is a file anyone can edit.
function insideFolder(dir, shard) {
  const root = path.resolve(dir);
  const full = path.resolve(root, String(shard));
  if (!full.startsWith(root + path.sep)) throw new Error(`weight path ${shard} is outside ${root}`);
  return full;
}

function fileHandler(modelJsonPath) {
  return {
    async load() {
      const json = JSON.parse(readFileSync(modelJsonPath, "utf8"));
      const dir = path.dirname(modelJsonPath);
      const specs = [];
      const shards = [];
      for (const group of json.weightsManifest || []) {
        specs.push(...group.weights);
        for (const shard of group.paths) shards.push(readFileSync(insideFolder(dir, shard)));
      }
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        signature: json.signature,
        userDefinedMetadata: json.userDefinedMetadata,
        modelInitializer: json.modelInitializer,
        weightSpecs: specs,
        weightData: toArrayBuffer(Buffer.concat(shards)),
      };
    },
  };
}

function inputTensor(header, payload) {
  return tf.tensor(floatsOf(header, payload), header.shape, "float32");
}

function firstTensor(out) {
  if (out instanceof tf.Tensor) return out;
  if (Array.isArray(out)) {
    out.slice(1).forEach((t) => t.dispose());
    return out[0];
  }
  const values = Object.values(out);
  values.slice(1).forEach((t) => t.dispose());
  return values[0];
}

function run(x) {
  const feed = inputName ? { [inputName]: x } : x;
  return firstTensor(model.predict(feed));
}

async function load(header) {
  const start = performance.now();
  tf = requireFrom("@tensorflow/tfjs");
  const backend = header.backend || "wasm";
  if (backend === "wasm") requireFrom("@tensorflow/tfjs-backend-wasm");
  const ok = await tf.setBackend(backend);
  await tf.ready();
  // A failed backend falls back silently: check which one really runs.
  if (!ok || tf.getBackend() !== backend) {
    throw new Error(`backend ${backend} did not start (running ${tf.getBackend()})`);
  }
  model = await tf.loadGraphModel(fileHandler(header.model));
  const inputs = model.inputs.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype }));
  const outputs = model.outputs.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype }));
  const sigInputs = Object.keys((model.signature && model.signature.inputs) || {});
  inputName = model.inputs.length === 1 ? model.inputs[0].name : sigInputs[0] || null;
  return {
    backend: tf.getBackend(),
    init_ms: performance.now() - start,
    tfjs_version: tf.version.tfjs,
    inputs,
    outputs,
  };
}

async function predict(header, payload) {
  const x = inputTensor(header, payload);
  const start = performance.now();
  const y = run(x);
  const values = await y.data();
  const inferMs = performance.now() - start;
  const shape = y.shape;
  x.dispose();
  y.dispose();
  return [{ shape, infer_ms: inferMs }, new Float32Array(values)];
}

const WEB_DEMO = path.resolve(HERE, "..", "..", "..", "web_demo");

// The graph executed alone on a ready tensor, its result kept on the backend; making the
// tensor and downloading the result timed apart (web_demo/timed_loop.js).
async function time(header, payload) {
  const { timeStages } = await import(pathToFileURL(path.join(WEB_DEMO, "timed_loop.js")));
  const values = floatsOf(header, payload);
  const shape = [1, ...header.shape.slice(1)];
  const first = (y) => (y instanceof tf.Tensor ? y : Array.isArray(y) ? y[0] : Object.values(y)[0]);
  const stages = {
    prepare: () => tf.tensor(values.subarray(0, values.length / header.shape[0]), shape, "float32"),
    run: (x) => model.execute(inputName ? { [inputName]: x } : x),
    finish: (y) => first(y).data(),
    dispose: (t) => tf.dispose(t),
  };
  return timeStages(stages, header.runs);
}

function memory() {
  const usage = process.memoryUsage();
  return {
    rss: usage.rss,
    peak_rss: peakRss(),
    heap_used: usage.heapUsed,
    external: usage.external,
    array_buffers: usage.arrayBuffers,
    num_tensors: tf ? tf.memory().numTensors : 0,
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
    case "memory":
      return [memory(), null];
    default:
      throw new Error(`unknown command ${JSON.stringify(header.cmd)}`);
  }
}

serve(handle);
