// LiteRT.js (@litertjs/core) running a .tflite artifact: the page's second engine,
// and the very code the Node runner (toolkit/runtimes/js/litertjs_runner.mjs) runs.
//
// Backends map to the package's wasm builds (wasm/ folder, served under vendor/):
//   wasm           litert_wasm_internal (relaxed SIMD), or _compat where the browser
//                  lacks relaxed SIMD; one thread
//   wasm-threaded  litert_wasm_threaded_internal: needs a cross-origin-isolated page
//                  (SharedArrayBuffer) and relaxed SIMD
//   webgpu         litert_wasm_jspi_internal where JSPI exists (ops the WebGPU delegate
//                  lacks then run on wasm), else the plain build; needs an adapter
// A backend that cannot start leaves the engine on `wasm` with a note saying why; the
// caller (badge, bench row) shows it and never presents it as the one asked for.
//
// Memory is managed by hand: every Tensor made here is deleted here, and memory()
// reports the live count and where the wasm allocator's top sits, which climbs when
// C++ buffers leak.

import { ioTensors } from './tflite.js';
import { adapterInfo, webgpuAdapter } from './gpu.js';

export const BACKENDS = ['wasm', 'wasm-threaded', 'webgpu'];
const BUILD_FILES = {
  plain: 'litert_wasm_internal.js',
  compat: 'litert_wasm_compat_internal.js',
  threaded: 'litert_wasm_threaded_internal.js',
  jspi: 'litert_wasm_jspi_internal.js',
};
const LOG_LINES = 50;

let loaded = null; // {build, wasmDir}: loadLiteRt is global to the page or process

// LiteRT's C++ side writes every log line to stderr (console.error in a page). Route by
// severity, so an INFO line is not a console error and a real error still is one.
function routeLog(line, log) {
  const text = String(line);
  log.push(text);
  if (log.length > LOG_LINES) log.shift();
  if (/^(INFO|I\d{4} )/.test(text)) console.debug(text);
  else if (/^(WARNING|W\d{4} )/.test(text)) console.warn(text);
  else console.error(text);
}

function roundHalfEven(x) {
  // numpy's np.round: halves go to the even neighbour.
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export class LiteRtEngine {
  constructor(litert, options) {
    this.litert = litert;
    this.name = 'litertjs';
    this.options = options;
    this.log = [];
    this.model = null;
    this.io = null;
    this.liveTensors = 0;
    this.features = {};
  }

  // Start the backend asked for, or wasm with `note` saying why not.
  static async start(litert, wasmDir, requested, options = {}) {
    if (!BACKENDS.includes(requested)) {
      throw new Error(`LiteRT.js has no backend ${JSON.stringify(requested)}; choose one of ${BACKENDS.join(', ')}`);
    }
    const engine = new LiteRtEngine(litert, options);
    engine.requested = requested;
    const relaxedSimd = await litert.supportsFeature('relaxedSimd');
    const jspi = await litert.supportsFeature('jspi');
    const isolated = options.isolated ?? Boolean(globalThis.crossOriginIsolated);
    let why = '';
    let adapter = null;
    if (requested === 'wasm-threaded') {
      if (!isolated) why = 'the page is not cross-origin isolated, so there is no SharedArrayBuffer';
      else if (!relaxedSimd) why = 'the threaded build needs relaxed SIMD, which this browser lacks';
      else if (!(await litert.supportsFeature('threads'))) why = 'this browser cannot run wasm threads';
    } else if (requested === 'webgpu') {
      const found = await webgpuAdapter();
      adapter = found.adapter && found.info;
      if (!found.adapter) {
        why = found.reason;
        engine.noAdapter = true;
      }
    }
    engine.backend = why ? 'wasm' : requested;
    engine.note = why ? `${requested} unavailable (${why}); using wasm` : '';
    let build = relaxedSimd ? 'plain' : 'compat';
    if (engine.backend === 'wasm-threaded') build = 'threaded';
    if (engine.backend === 'webgpu' && jspi) build = 'jspi';
    if (engine.backend === 'wasm' && options.build === 'compat') build = 'compat'; // diagnostics
    await engine.loadBuild(wasmDir, build);
    const wasm = litert.getGlobalLiteRt().liteRtWasm;
    const device = engine.backend === 'webgpu' ? litert.getWebGpuDevice() : null;
    if (engine.backend === 'webgpu' && !device) {
      throw new Error('LiteRT.js found a WebGPU adapter but could not create a device on it');
    }
    engine.features = {
      build: BUILD_FILES[build].replace(/\.js$/, ''),
      relaxedSimd: build !== 'compat' && relaxedSimd,
      jspi: build === 'jspi',
      isolated,
      threadCount: build === 'threaded' ? wasm.getThreadCount() : 1,
      ...(adapter ? { adapter: device.adapterInfo ? adapterInfo(device.adapterInfo) : adapter } : {}),
    };
    return engine;
  }

  async loadBuild(wasmDir, build) {
    if (loaded && loaded.build === build && loaded.wasmDir === wasmDir) return;
    if (loaded) this.litert.unloadLiteRt();
    loaded = null;
    const log = this.log;
    // The emscripten glue reads print/printErr from the global Module it is handed.
    globalThis.Module = {
      ...(globalThis.Module ?? {}),
      print: (line) => console.debug(String(line)),
      printErr: (line) => routeLog(line, log),
    };
    const file = new URL(BUILD_FILES[build], wasmDir).href;
    await this.litert.loadLiteRt(file.startsWith('file:') ? new URL(file).pathname : file);
    loaded = { build, wasmDir };
  }

  // bytes: the .tflite file. Reads its I/O tensors (with quantization), compiles it.
  async load(bytes) {
    this.disposeModel();
    this.io = ioTensors(bytes);
    if (this.io.inputs.length !== 1 || this.io.outputs.length !== 1) {
      throw new Error(`the model has ${this.io.inputs.length} inputs and ${this.io.outputs.length} outputs; cnnx runs one of each`);
    }
    for (const tensor of [this.io.inputs[0], this.io.outputs[0]]) {
      if (!['float32', 'uint8'].includes(tensor.dtype)) {
        throw new Error(
          `tensor ${tensor.name} is ${tensor.dtype}: LiteRT.js tensors hold float32, int32 or uint8 ` +
            '(export int8 with --io uint8 or float32)',
        );
      }
      if (tensor.dtype === 'uint8' && !tensor.scale) throw new Error(`tensor ${tensor.name} is uint8 without a scale`);
    }
    const cpuOptions = this.options.threads ? { cpuOptions: { numThreads: Number(this.options.threads) } } : {};
    this.model = await this.litert.loadAndCompile(bytes, { accelerator: this.backend === 'webgpu' ? 'webgpu' : 'wasm', ...cpuOptions });
    if (this.backend === 'wasm-threaded') this.features.threadCount = this.model.options.cpuOptions.numThreads;
    const details = this.model.getInputDetails()[0];
    this.shape = Array.from(details.shape);
    if (this.shape.some((d) => d < 1)) {
      // LiteRT.js 2.5 has no resize: a -1 batch stays -1 and no tensor matches it.
      this.disposeModel();
      throw new Error(
        `LiteRT.js runs static shapes; this model takes [${this.shape}] (cnnx export writes a static batch of 1)`,
      );
    }
    // On wasm, ops outside XNNPACK run on LiteRT's own CPU kernels, still in wasm; on
    // webgpu, ops the delegate lacks run on wasm.
    this.features.fullyDelegated = this.model.isFullyAccelerated;
    this.classes = this.io.outputs[0].shape.reduce((a, b) => a * b, 1);
    return this.io;
  }

  tensor(values) {
    const tensor = new this.litert.Tensor(values, this.shape);
    this.liveTensors++;
    return tensor;
  }

  free(tensor) {
    tensor.delete();
    this.liveTensors--;
  }

  quantizeRow(input, offset) {
    const spec = this.io.inputs[0];
    const size = this.shape.reduce((a, b) => a * b, 1);
    if (spec.dtype === 'float32') return input.subarray(offset, offset + size);
    const out = new Uint8Array(size);
    const scale = Math.fround(spec.scale);
    for (let i = 0; i < size; i++) {
      const q = roundHalfEven(Math.fround(input[offset + i] / scale)) + spec.zeroPoint;
      out[i] = Math.min(255, Math.max(0, q));
    }
    return out;
  }

  dequantize(values, out, offset) {
    const spec = this.io.outputs[0];
    if (spec.dtype === 'float32') {
      out.set(values, offset);
      return;
    }
    const scale = Math.fround(spec.scale);
    for (let i = 0; i < values.length; i++) out[offset + i] = Math.fround(Math.fround(values[i] - spec.zeroPoint) * scale);
  }

  async runRow(values) {
    const x = this.tensor(values);
    let outputs = [];
    try {
      outputs = await this.model.run(x);
      this.liveTensors += outputs.length;
      return await outputs[0].data();
    } finally {
      this.free(x);
      for (const y of outputs) this.free(y);
    }
  }

  // Preprocessed float32 NHWC rows -> float32 probabilities [rows * K]. The artifact
  // has a static batch of 1: one run per row.
  async predict(input, rows = 1) {
    const size = this.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(rows * this.classes);
    for (let r = 0; r < rows; r++) {
      this.dequantize(await this.runRow(this.quantizeRow(input, r * size)), out, r * this.classes);
    }
    return out;
  }

  // One row's inference in the steps timed_loop.js times apart: a ready tensor (the row
  // quantized for a uint8 model), model.run alone, the download and dequantizing. On
  // webgpu the run ends when its result is read, the one wait for the GPU there is.
  timingStages(input) {
    const out = new Float32Array(this.classes);
    const run = (x) => this.model.run(x);
    return {
      prepare: () => this.tensor(this.quantizeRow(input, 0)),
      run:
        this.backend === 'webgpu'
          ? async (x) => {
              const outputs = await run(x);
              outputs.values = await outputs[0].data();
              return outputs;
            }
          : run,
      finish: async (outputs) => this.dequantize(outputs.values ?? (await outputs[0].data()), out, 0),
      dispose: (t) => (Array.isArray(t) ? t.forEach((y) => y.delete()) : this.free(t)),
    };
  }

  // Where a prediction's time goes (ms, medians of `runs`): the whole predict, the
  // awaited model.run alone on a ready tensor, the compiled model's own run under it
  // (LiteRT.js's C++ call, without the JS checks and wrapping of model.run), the tensor
  // copies in and out, one await of a settled promise, and the clock's step.
  async profile(input, runs = 200) {
    const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
    const total = [];
    const run = [];
    const invoke = [];
    const copies = [];
    const awaits = [];
    const values = this.quantizeRow(input, 0);
    // A field LiteRT.js 2.5 does not document: measured when there, never relied on.
    const compiled = this.model.liteRtCompiledModel;
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      await this.predict(input, 1);
      total.push(performance.now() - t);
      const x = this.tensor(values);
      if (compiled?.run) {
        t = performance.now();
        const buffers = await compiled.run(0, [x.liteRtTensorBuffer]);
        invoke.push(performance.now() - t);
        for (const b of buffers) b.delete();
      }
      t = performance.now();
      const outputs = await this.model.run(x);
      run.push(performance.now() - t);
      this.liveTensors += outputs.length;
      t = performance.now();
      const y = this.tensor(values);
      await outputs[0].data();
      copies.push(performance.now() - t);
      this.free(y);
      this.free(x);
      for (const o of outputs) this.free(o);
      t = performance.now();
      for (let k = 0; k < 100; k++) await null;
      awaits.push((performance.now() - t) / 100);
    }
    let step = Infinity;
    for (let i = 0, last = performance.now(); i < 20000; i++) {
      const now = performance.now();
      if (now > last) step = Math.min(step, now - last);
      last = now;
    }
    return {
      total_ms: median(total),
      run_ms: median(run),
      compiled_run_ms: invoke.length ? median(invoke) : null,
      copies_ms: median(copies),
      await_ms: median(awaits),
      timer_step_ms: step,
    };
  }

  memory() {
    const wasm = this.litert.getGlobalLiteRt().liteRtWasm;
    // A fresh 64 KiB block lands at the allocator's top: it climbs when blocks leak.
    const probe = wasm._malloc(1 << 16);
    wasm._free(probe);
    return { liveTensors: this.liveTensors, heapBytes: wasm.HEAPU8.length, heapTop: probe };
  }

  disposeModel() {
    if (this.model) {
      this.model.delete();
      this.model = null;
    }
  }
}
