// The page's three engines and the artifacts each runs, as the manifest lists them:
// TF.js runs the `tfjs` graph models, LiteRT.js the `tflite` files (the very files the
// Android and Raspberry Pi bundles carry), ONNX Runtime Web the `onnx` files. All take
// preprocessed float32 NHWC rows and return float32 probabilities, so the rest of the
// page never asks which one runs.

import { BACKENDS as LITERTJS_BACKENDS, LiteRtEngine } from './engine_litertjs.js';
import { BACKENDS as ONNX_BACKENDS, OnnxEngine } from './engine_onnx.js';
import { BACKENDS as TFJS_BACKENDS, TfjsEngine } from './engine_tfjs.js';

export const ENGINES = {
  tfjs: { label: 'TF.js', format: 'tfjs', backends: TFJS_BACKENDS, preferred: 'tfjs_float32' },
  litertjs: { label: 'LiteRT.js', format: 'tflite', backends: LITERTJS_BACKENDS, preferred: 'tflite_float32' },
  onnx: { label: 'ONNX Runtime Web', format: 'onnx', backends: ONNX_BACKENDS, preferred: 'onnx_float32' },
};

const VENDOR = new URL('vendor/', location.href).href;

export function engineOf(manifest, id) {
  const format = manifest.artifacts[id]?.format;
  return Object.keys(ENGINES).find((name) => ENGINES[name].format === format) ?? null;
}

export function artifactsOf(manifest, engine) {
  return Object.entries(manifest.artifacts ?? {})
    .filter(([, entry]) => entry.format === ENGINES[engine].format)
    .map(([id]) => id)
    .sort();
}

// The engines this manifest gives artifacts to, TF.js first.
export function enginesOf(manifest) {
  return Object.keys(ENGINES).filter((engine) => artifactsOf(manifest, engine).length);
}

export function defaultArtifact(manifest, engine) {
  const ids = artifactsOf(manifest, engine);
  return ids.includes(ENGINES[engine].preferred) ? ENGINES[engine].preferred : ids[0];
}

// LiteRT.js and ONNX Runtime Web run threaded where the page may (cross-origin
// isolated), else on one thread.
export function defaultBackend(engine) {
  if (engine === 'litertjs' || engine === 'onnx') return globalThis.crossOriginIsolated ? 'wasm-threaded' : 'wasm';
  return 'wasm';
}

// options: {threads, build} from the URL (LiteRT.js; threads for ONNX Runtime Web too).
export async function startEngine(engine, backend, options = {}) {
  if (engine === 'tfjs') return TfjsEngine.start(VENDOR, backend);
  if (engine === 'litertjs') {
    const litert = await import('@litertjs/core');
    return LiteRtEngine.start(litert, new URL('litertjs/', VENDOR).href, backend, options);
  }
  if (engine === 'onnx') return OnnxEngine.start(new URL('ort/', VENDOR).href, backend, options);
  throw new Error(`unknown engine ${JSON.stringify(engine)}; choose one of ${Object.keys(ENGINES).join(', ')}`);
}

// Load artifact `id` into a started engine; dims: [height, width, channels].
export async function loadArtifact(engine, manifest, root, id, dims) {
  const path = manifest.artifacts[id].path.replace(/\/+$/, '');
  if (engine.name === 'tfjs') {
    return engine.load(root + (path.endsWith('.json') ? path : `${path}/model.json`), dims);
  }
  const response = await fetch(root + path);
  if (!response.ok) throw new Error(`GET ${root + path} answered ${response.status}`);
  return engine.load(new Uint8Array(await response.arrayBuffer()), dims);
}

export function badge(engine) {
  const { label } = ENGINES[engine.name];
  if (engine.note) return `${label} · ${engine.note}`;
  const f = engine.features;
  const bits = [label, engine.backend];
  if (engine.name === 'tfjs' && f.simd) bits.push('SIMD');
  if (engine.name === 'litertjs' && engine.backend !== 'webgpu') bits.push(f.relaxedSimd ? 'relaxed SIMD' : 'compat build');
  if (engine.backend !== 'webgpu' && (f.threads || engine.name !== 'tfjs')) bits.push(`${f.threadCount} thread${f.threadCount === 1 ? '' : 's'}`);
  if (f.adapter) bits.push(`${f.adapter.name}${f.adapter.software ? ' (software adapter)' : ''}`);
  if (f.renderer) bits.push(`${f.renderer.name}${f.renderer.software ? ' (software renderer)' : ''}`);
  if (f.fullyDelegated === false && engine.backend === 'webgpu') bits.push('some ops on wasm');
  bits.push(f.isolated ?? globalThis.crossOriginIsolated ? 'isolated' : 'not isolated');
  return bits.join(' · ');
}
