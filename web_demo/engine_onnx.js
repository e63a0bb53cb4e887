// ONNX Runtime Web (onnxruntime-web) running the `.onnx` artifacts: the page's third engine.
//
// Every ONNX artifact takes and gives float32 with a dynamic batch (the int8 one
// quantizes inside its graph), so a batch is one session.run. Backends:
// - wasm: the wasm execution provider on one thread;
// - wasm-threaded: the same on several threads, which needs the cross-origin isolation
//   that cnnx serve's COOP/COEP headers give (SharedArrayBuffer);
// - webgpu: the WebGPU execution provider (its own build), where an adapter exists.
// A backend that cannot start leaves the engine on wasm with a note saying why; so does
// a float16 model on an adapter without shader-f16 (its float16 kernels need it).

import { webgpuAdapter } from './gpu.js';

export const BACKENDS = ['wasm', 'wasm-threaded', 'webgpu'];

export class OnnxEngine {
  constructor(ort) {
    this.ort = ort;
    this.name = 'onnx';
    this.session = null;
    this.features = {};
    this.version = ort.env.versions?.web ?? null;
  }

  // vendor: the folder of onnxruntime-web's dist files; options: {threads} from the URL.
  static async start(vendor, requested, options = {}) {
    if (!BACKENDS.includes(requested)) {
      throw new Error(`ONNX Runtime Web has no backend ${JSON.stringify(requested)}; choose one of ${BACKENDS.join(', ')}`);
    }
    const isolated = Boolean(globalThis.crossOriginIsolated);
    let why = '';
    let adapter = null;
    let shaderF16 = false;
    if (requested === 'wasm-threaded' && !isolated) {
      why = 'the page is not cross-origin isolated, so there is no SharedArrayBuffer';
    } else if (requested === 'webgpu') {
      const found = await webgpuAdapter();
      if (found.adapter) {
        adapter = found.info;
        shaderF16 = found.adapter.features.has('shader-f16');
      } else why = found.reason;
    }
    const backend = why ? 'wasm' : requested;
    // The WebGPU build carries the wasm provider too, but is twice the download.
    const ort = await import(`${vendor}${backend === 'webgpu' ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs'}`);
    ort.env.wasm.wasmPaths = vendor; // beside the script under vendor/; never a CDN
    ort.env.logLevel = 'error';
    const threads = backend === 'wasm-threaded' ? Number(options.threads) || Math.min(4, navigator.hardwareConcurrency || 2) : 1;
    ort.env.wasm.numThreads = threads;
    const engine = new OnnxEngine(ort);
    engine.requested = requested;
    engine.backend = backend;
    engine.noAdapter = requested === 'webgpu' && !adapter;
    engine.note = why ? `${requested} unavailable (${why}); using wasm` : '';
    engine.features = {
      isolated,
      simd: true, // onnxruntime-web ships SIMD builds only
      threadCount: backend === 'webgpu' ? 1 : threads,
      ...(adapter ? { adapter, shaderF16 } : {}),
    };
    return engine;
  }

  // bytes: the .onnx file; dims: [height, width, channels].
  async load(bytes, dims) {
    this.disposeModel();
    try {
      this.session = await this.createSession(bytes);
    } catch (error) {
      // ONNX Runtime Web's WebGPU kernels for float16 tensors need the adapter's
      // shader-f16 feature ("Program Transpose requires f16 but the device does not
      // support it"): such a model cannot run on this adapter, by design of the device.
      if (this.backend !== 'webgpu' || this.features.shaderF16 || !/\bf16\b/.test(error.message)) throw error;
      this.backend = 'wasm';
      this.missingFeature = 'shader-f16';
      this.note = 'webgpu unavailable for this model (its float16 ops need shader-f16, which this WebGPU adapter lacks); using wasm';
      this.session = await this.createSession(bytes);
    }
    if (this.session.inputNames.length !== 1 || this.session.outputNames.length !== 1) {
      const { inputNames, outputNames } = this.session;
      this.disposeModel();
      throw new Error(`the model has ${inputNames.length} inputs and ${outputNames.length} outputs; cnnx runs one of each`);
    }
    this.dims = dims;
    return { inputs: this.session.inputNames, outputs: this.session.outputNames };
  }

  createSession(bytes) {
    return this.ort.InferenceSession.create(bytes, {
      executionProviders: [this.backend === 'webgpu' ? 'webgpu' : 'wasm'],
      graphOptimizationLevel: 'all',
    });
  }

  async predict(input, rows = 1) {
    const [height, width, channels] = this.dims;
    const size = height * width * channels;
    const x = new this.ort.Tensor('float32', input.subarray(0, rows * size), [rows, height, width, channels]);
    const outputs = await this.session.run({ [this.session.inputNames[0]]: x });
    const y = outputs[this.session.outputNames[0]];
    try {
      // getData() reads a WebGPU tensor back; on wasm it is already on the CPU.
      return Float32Array.from(await y.getData());
    } finally {
      y.dispose();
    }
  }

  // The timed loop's stages (timed_loop.js): the session's run alone on a tensor made
  // once; reading the output back (getData) timed apart. The output stays on the CPU on
  // every provider (ONNX Runtime Web's default output location), so a run is finished
  // work, WebGPU's included.
  timingStages(input) {
    const [height, width, channels] = this.dims;
    const [inputName] = this.session.inputNames;
    const [outputName] = this.session.outputNames;
    const row = input.subarray(0, height * width * channels);
    return {
      prepare: () => new this.ort.Tensor('float32', row.slice(), [1, height, width, channels]),
      run: (x) => this.session.run({ [inputName]: x }),
      finish: async (outputs) => Float32Array.from(await outputs[outputName].getData()),
      // An input tensor, or the map of output tensors a run gives.
      dispose: (t) => (t instanceof this.ort.Tensor ? [t] : Object.values(t)).forEach((y) => y.dispose()),
    };
  }

  disposeModel() {
    this.session?.release();
    this.session = null;
  }
}
