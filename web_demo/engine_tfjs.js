// TF.js (@tensorflow/tfjs 4.22) running a graph model: the page's first engine.
//
// The dist bundles are loaded on demand from vendor/ (a bundle made for LiteRT.js alone
// does not carry them). After tf.setBackend the engine believes only tf.getBackend():
// a backend that fails to start makes TF.js keep another one without an error, and the
// note then says so. webgl and webgpu name the GPU they compute on (gpu.js): headless,
// that is SwiftShader, a software one.

import { adapterInfo, webglRenderer, webgpuAdapter } from './gpu.js';

export const BACKENDS = ['wasm', 'webgl', 'cpu', 'webgpu'];

const scripts = new Map();

function loadScript(src) {
  if (!scripts.has(src)) {
    scripts.set(
      src,
      new Promise((resolve, reject) => {
        const script = document.createElement('script');
        script.src = src;
        script.onload = resolve;
        script.onerror = () => reject(new Error(`could not load ${src}`));
        document.head.append(script);
      }),
    );
  }
  return scripts.get(src);
}

function pickOutput(tf, out) {
  if (out instanceof tf.Tensor) return out;
  if (Array.isArray(out)) return out[0];
  return out.probabilities ?? Object.values(out)[0];
}

export class TfjsEngine {
  constructor(tf) {
    this.tf = tf;
    this.name = 'tfjs';
    this.model = null;
    this.features = {};
  }

  static async start(vendor, requested) {
    if (!BACKENDS.includes(requested)) {
      throw new Error(`TF.js has no backend ${JSON.stringify(requested)}; choose one of ${BACKENDS.join(', ')}`);
    }
    await loadScript(`${vendor}tf.min.js`);
    await loadScript(`${vendor}tf-backend-wasm.min.js`);
    const tf = globalThis.tf;
    // The wasm binaries sit beside the script under vendor/; never a CDN.
    tf.wasm.setWasmPaths(vendor);
    const engine = new TfjsEngine(tf);
    engine.requested = requested;
    let reason = '';
    let adapter = null;
    if (requested === 'webgpu') {
      const found = await webgpuAdapter();
      if (found.adapter) {
        adapter = found.info;
        await loadScript(`${vendor}tf-backend-webgpu.min.js`);
      } else {
        reason = found.reason;
        engine.noAdapter = true;
      }
    }
    if (!reason) {
      try {
        if (!(await tf.setBackend(requested))) reason = 'it failed to initialise';
      } catch (error) {
        reason = error.message;
      }
    }
    await tf.ready();
    engine.backend = tf.getBackend();
    engine.note = engine.backend === requested ? '' : `${requested} unavailable${reason ? ` (${reason})` : ''}; using ${engine.backend}`;
    engine.features = await engine.backendFeatures(adapter);
    return engine;
  }

  async backendFeatures(adapter) {
    const tf = this.tf;
    if (this.backend === 'webgpu') {
      const info = tf.backend().adapterInfo;
      return { adapter: info ? adapterInfo(info) : adapter };
    }
    if (this.backend === 'webgl') {
      const gl = this.webglContext();
      return gl ? { renderer: webglRenderer(gl) } : {};
    }
    if (this.backend !== 'wasm') return {};
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    let threadCount = 1;
    try {
      threadCount = tf.wasm.getThreadsCount();
    } catch {
      threadCount = 1;
    }
    return { simd, threads, threadCount };
  }

  // The webgl backend's own context (what its shaders run on), else a fresh canvas's.
  webglContext() {
    const own = this.tf.backend().gpgpu?.gl;
    if (own) return own;
    const canvas = document.createElement('canvas');
    return canvas.getContext('webgl2') ?? canvas.getContext('webgl');
  }

  get version() {
    return this.tf.version.tfjs;
  }

  // dims: [height, width, channels] of the manifest's input spec.
  async load(url, dims) {
    this.disposeModel();
    this.dims = dims;
    this.model = await this.tf.loadGraphModel(url);
  }

  // Preprocessed float32 NHWC rows -> float32 probabilities, every tensor disposed.
  async predict(input, rows = 1) {
    const tf = this.tf;
    const [height, width, channels] = this.dims;
    const y = tf.tidy(() => {
      const x = tf.tensor4d(input, [rows, height, width, channels], 'float32');
      // A model exported with a static batch of 1 takes one row per call.
      if (rows > 1 && this.model.inputs[0]?.shape?.[0] === 1) {
        return tf.concat(tf.split(x, rows).map((row) => pickOutput(tf, this.model.predict(row))));
      }
      return pickOutput(tf, this.model.predict(x));
    });
    try {
      return await y.data();
    } finally {
      y.dispose();
    }
  }

  // One row's inference in the steps timed_loop.js times apart: the input tensor, the
  // graph executed with its result kept on the backend, the download. On wasm and cpu the
  // kernels have run when execute returns. A GPU backend (webgl, webgpu) only queues them:
  // reading the result is the one wait for the GPU TF.js offers, so there the run ends
  // with the download and nothing is left to time apart (no post_ms).
  timingStages(input) {
    const tf = this.tf;
    const [height, width, channels] = this.dims;
    const execute = (x) => this.model.execute(x);
    const gpu = this.backend === 'webgl' || this.backend === 'webgpu';
    return {
      prepare: () => tf.tensor4d(input.subarray(0, height * width * channels), [1, height, width, channels], 'float32'),
      run: gpu
        ? async (x) => {
            const y = execute(x);
            await pickOutput(tf, y).data();
            return y;
          }
        : execute,
      finish: gpu ? null : (y) => pickOutput(tf, y).data(),
      dispose: (t) => tf.dispose(t),
    };
  }

  memory() {
    const { numTensors, numBytes } = this.tf.memory();
    return { numTensors, numBytes };
  }

  disposeModel() {
    if (this.model) {
      this.model.dispose();
      this.model = null;
    }
  }
}
