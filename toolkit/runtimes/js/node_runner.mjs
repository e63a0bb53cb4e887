// TF.js graph models in Node, driven by toolkit/runtimes/tfjs_node.py.
//
// One long-lived process per loaded model, so a measured latency is inference, not
// process start. Protocol on stdin/stdout, one request at a time:
//
//   request:  one JSON line {"cmd": ..., ...[, "nbytes": N]} then N raw bytes
//   response: one line "CNNX1 " + JSON {"ok": true|false, ...[, "nbytes": M]} then M bytes
//
// Tensors travel as raw little-endian float32 bytes with their "shape" in the header.
// Anything TF.js itself prints goes to stderr (console.log is redirected), and the
// reader on the Python side ignores stdout lines without the "CNNX1 " prefix.
//
// Commands:
//   load    {model: path/to/model.json, backend: "wasm"|"cpu"}
//           -> {backend, init_ms, tfjs_version, inputs, outputs}
//   predict {shape} + float32 -> {shape, infer_ms} + float32 probabilities
//   time    {shape, runs} + float32 -> {samples_ms: [...]}  (performance.now per run)
//   memory  {} -> {rss, peak_rss, heap_used, external, array_buffers}
//   close   {} -> {} and exit

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";

const HERE = path.dirname(fileURLToPath(import.meta.url));
// Repo-relative default: toolkit/runtimes/js -> web_demo/node_modules.
const NODE_MODULES =
  process.env.CNNX_NODE_MODULES || path.resolve(HERE, "..", "..", "..", "web_demo", "node_modules");
const PREFIX = "CNNX1 ";

// Keep stdout for the protocol only.
console.log = console.error;
console.info = console.error;
console.warn = console.error;

const requireFrom = createRequire(path.join(NODE_MODULES, "cnnx-resolve.js"));
let tf = null;
let model = null;
let inputName = null;
let peakRss = 0;

function send(header, payload) {
  const body = payload ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) : null;
  const head = { ...header };
  if (body) head.nbytes = body.length;
  process.stdout.write(PREFIX + JSON.stringify(head) + "\n");
  if (body) process.stdout.write(body);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}

// A Node Buffer may be a view into a larger pooled ArrayBuffer: copy exactly its bytes.
function toArrayBuffer(buffer) {
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
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
        for (const shard of group.paths) shards.push(readFileSync(path.join(dir, shard)));
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
  const shape = header.shape;
  const count = shape.reduce((a, b) => a * b, 1);
  if (payload.length !== count * 4) {
    throw new Error(`payload has ${payload.length} bytes, shape ${JSON.stringify(shape)} needs ${count * 4}`);
  }
  // Copy into a fresh, 4-byte-aligned buffer before viewing it as float32.
  const values = new Float32Array(count);
  new Uint8Array(values.buffer).set(payload);
  return tf.tensor(values, shape, "float32");
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

async function time(header, payload) {
  const x = inputTensor(header, payload);
  const samples = [];
  for (let i = 0; i < header.runs; i++) {
    const start = performance.now();
    const y = run(x);
    await y.data(); // forces the computation, as predict does
    samples.push(performance.now() - start);
    y.dispose();
  }
  x.dispose();
  return { samples_ms: samples };
}

function memory() {
  const usage = process.memoryUsage();
  peakRss = Math.max(peakRss, usage.rss);
  return {
    rss: usage.rss,
    peak_rss: peakRss,
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
    case "close":
      return [{}, null];
    default:
      throw new Error(`unknown command ${JSON.stringify(header.cmd)}`);
  }
}

// Requests are framed: a JSON line, then exactly header.nbytes bytes.
let pending = Buffer.alloc(0);
let busy = false;

function nextRequest() {
  const newline = pending.indexOf(10);
  if (newline < 0) return null;
  const header = JSON.parse(pending.subarray(0, newline).toString("utf8"));
  const size = header.nbytes || 0;
  if (pending.length < newline + 1 + size) return null;
  const payload = Buffer.from(pending.subarray(newline + 1, newline + 1 + size));
  pending = pending.subarray(newline + 1 + size);
  return [header, payload];
}

async function drain() {
  if (busy) return;
  busy = true;
  for (;;) {
    let request;
    try {
      request = nextRequest();
    } catch (error) {
      send({ ok: false, error: `bad request: ${error.message}` });
      process.exit(2);
    }
    if (!request) break;
    const [header, payload] = request;
    try {
      const [result, data] = await handle(header, payload);
      send({ ok: true, ...result }, data);
    } catch (error) {
      send({ ok: false, error: String((error && error.message) || error) });
    }
    if (header.cmd === "close") process.exit(0);
  }
  busy = false;
}

process.stdin.on("data", (chunk) => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  drain();
});
process.stdin.on("end", () => process.exit(0));
