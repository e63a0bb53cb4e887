// cnnx web demo: classify images with an exported model, on TF.js or LiteRT.js.
//
// Everything the page needs to know comes from artifacts/manifest.json: the labels,
// the input spec (size, colour, scale/offset or mean/std) and the artifacts (TF.js
// graph models for TF.js, .tflite files for LiteRT.js; engines.js).
// The same file runs under `cnnx serve` and from a `cnnx package --target web` bundle,
// so every URL is relative. window.cnnx exposes a small API for automation.

import {
  ENGINES,
  artifactsOf,
  badge,
  defaultArtifact,
  defaultBackend,
  engineOf,
  enginesOf,
  loadArtifact,
  startEngine,
} from './engines.js';
import { timeStages } from './timed_loop.js';

const ARTIFACTS = 'artifacts/';
const TOP_K = 5;
const params = new URLSearchParams(location.search);

const $ = (id) => document.getElementById(id);

const state = {
  manifest: null,
  spec: null,
  labels: [],
  artifactId: null,
  engine: null, // the running engine (engines.js): name, backend, note, features
  requestedBackend: null,
  backend: null,
  loadMs: null,
  firstMs: null,
  samples: [],
  sampleInputs: new Map(), // sample index -> preprocessed Float32Array
  current: null, // {input: Float32Array, truth: string|null}
  webcam: null, // {stream, running}
  busy: Promise.resolve(),
};

// ---------------------------------------------------------------- preprocessing

// The pixel rule of toolkit/data/pixels.py, integer for integer, so a picture becomes
// the same model input here as in Python and on the Raspberry Pi: the picture is read
// at its own size (no canvas scaling, no colour management), converted to RGB or gray
// (Pillow's luma), centre-cropped if the spec says so, resized with exact integer tap
// weights, then normalised in float32 steps as numpy does.

function specFrom(manifest) {
  const s = manifest.input;
  const channels = Number(s.channels);
  return {
    height: Number(s.height),
    width: Number(s.width),
    channels,
    color: channels === 1 ? 'GRAY' : (s.color === 'BGR' ? 'BGR' : 'RGB'),
    scale: s.scale ?? 1,
    offset: s.offset ?? 0,
    mean: s.mean ?? null,
    std: s.std ?? null,
    resize: s.resize ?? 'bilinear',
    crop: s.crop ?? 'none',
  };
}

const WEIGHT_BITS = 16;
const ONE = 2 ** WEIGHT_BITS;

// For each output index: the first input index and integer weights summing to ~2**16.
// Positions are in units of 1 / (2 * sizeOut) input pixels, so all of it is integer.
function taps(sizeIn, sizeOut, method) {
  const result = [];
  for (let o = 0; o < sizeOut; o++) {
    const centre = (2 * o + 1) * sizeIn;
    if (method === 'nearest') {
      result.push({ first: Math.min(Math.floor(centre / (2 * sizeOut)), sizeIn - 1), weights: [ONE] });
      continue;
    }
    const support = 2 * Math.max(sizeIn, sizeOut);
    const lo = Math.max(0, Math.floor((centre - support) / (2 * sizeOut)) - 1);
    const hi = Math.min(sizeIn - 1, Math.floor((centre + support) / (2 * sizeOut)) + 1);
    let weights = [];
    let first = -1;
    for (let i = lo; i <= hi; i++) {
      const w = Math.max(0, support - Math.abs((2 * i + 1) * sizeOut - centre));
      if (w > 0 && first < 0) first = i;
      if (first >= 0) weights.push(w);
    }
    while (weights.length && weights[weights.length - 1] === 0) weights.pop();
    const total = weights.reduce((a, b) => a + b, 0);
    weights = weights.map((w) => Math.floor((w * 2 * ONE + total) / (2 * total)));
    result.push({ first, weights });
  }
  return result;
}

function cropBox(width, height, targetHeight, targetWidth, crop) {
  if (crop !== 'centre') return [0, 0, width, height];
  if (width * targetHeight > height * targetWidth) {
    const kept = Math.max(1, Math.floor((height * targetWidth) / targetHeight));
    const left = Math.floor((width - kept) / 2);
    return [left, 0, left + kept, height];
  }
  const kept = Math.max(1, Math.floor((width * targetHeight) / targetWidth));
  const top = Math.floor((height - kept) / 2);
  return [0, top, width, top + kept];
}

// uint8 [h, w, c] (row-major) -> uint8 [height, width, c].
function resizePixels(src, h, w, c, height, width, method) {
  if (h === height && w === width) return Uint8Array.from(src);
  const across = new Float64Array(h * width * c);
  taps(w, width, method).forEach(({ first, weights }, o) => {
    for (let y = 0; y < h; y++) {
      for (let k = 0; k < c; k++) {
        let acc = 0;
        for (let t = 0; t < weights.length; t++) acc += weights[t] * src[(y * w + first + t) * c + k];
        across[(y * width + o) * c + k] = acc;
      }
    }
  });
  const out = new Uint8Array(height * width * c);
  const half = 2 ** (2 * WEIGHT_BITS - 1);
  const scale = 2 ** (2 * WEIGHT_BITS);
  taps(h, height, method).forEach(({ first, weights }, o) => {
    for (let x = 0; x < width * c; x++) {
      let acc = 0;
      for (let t = 0; t < weights.length; t++) acc += weights[t] * across[(first + t) * width * c + x];
      out[o * width * c + x] = Math.min(255, Math.max(0, Math.floor((acc + half) / scale)));
    }
  });
  return out;
}

// Pillow's "L": ITU-R 601-2 luma in integers.
const luma = (r, g, b) => (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;

// Pillow's alpha_composite over opaque white (7-bit fixed point, its own rounding).
function onWhite(value, alpha) {
  if (alpha === 255) return value;
  const coef1 = alpha * 128;
  const tmp = value * coef1 + 255 * (255 * 128 - coef1) + (0x80 << 7);
  return (((tmp >> 8) + tmp) >> 8) >> 7;
}

// A picture's RGBA at its own size -> uint8 [H, W, C] at the model's (RGB or gray).
function modelPixels(rgba, width, height, spec) {
  const c = spec.channels;
  const [left, top, right, bottom] = cropBox(width, height, spec.height, spec.width, spec.crop);
  const w = right - left;
  const h = bottom - top;
  const picked = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = ((top + y) * width + left + x) * 4;
      const a = rgba[p + 3];
      const r = onWhite(rgba[p], a);
      const g = onWhite(rgba[p + 1], a);
      const b = onWhite(rgba[p + 2], a);
      const q = (y * w + x) * c;
      if (c === 1) picked[q] = luma(r, g, b);
      else [picked[q], picked[q + 1], picked[q + 2]] = [r, g, b];
    }
  }
  return resizePixels(picked, h, w, c, spec.height, spec.width, spec.resize);
}

// Raw pixels at the model's size -> the float32 tensor data it takes. `stride` values
// per pixel: the model's channels, or 3/4 for RGB(A) given to a gray model. The
// arithmetic is rounded to float32 at each step, as numpy does in pixels.model_input.
function toInput(pixels, stride, spec) {
  const { height, width, channels } = spec;
  const count = height * width;
  if (pixels.length !== count * stride) {
    throw new Error(`expected ${count * stride} pixel values for ${width}x${height}, got ${pixels.length}`);
  }
  const out = new Float32Array(count * channels);
  const f = Math.fround;
  const mean = spec.mean && spec.mean.map(f);
  const std = spec.std && spec.std.map(f);
  const scale = f(spec.scale);
  const offset = f(spec.offset);
  const bgr = spec.color === 'BGR';
  for (let p = 0; p < count; p++) {
    const at = p * stride;
    let values;
    if (channels === 1) values = [stride === 1 ? pixels[at] : luma(pixels[at], pixels[at + 1], pixels[at + 2])];
    else values = bgr ? [pixels[at + 2], pixels[at + 1], pixels[at]] : [pixels[at], pixels[at + 1], pixels[at + 2]];
    for (let k = 0; k < channels; k++) {
      const x = values[k];
      out[p * channels + k] = mean
        ? f(f(x - mean[k % mean.length]) / std[k % std.length])
        : f(f(x * scale) + offset);
    }
  }
  return out;
}

const work = document.createElement('canvas');
const workCtx = work.getContext('2d', { willReadFrequently: true });

// Any drawable (bitmap, video) -> uint8 [H, W, C] by the pixel rule, shown in the preview.
function pixelsOf(source) {
  const width = source.videoWidth || source.naturalWidth || source.width;
  const height = source.videoHeight || source.naturalHeight || source.height;
  work.width = width;
  work.height = height;
  workCtx.clearRect(0, 0, width, height);
  workCtx.drawImage(source, 0, 0); // its own size: no smoothing involved
  const pixels = modelPixels(workCtx.getImageData(0, 0, width, height).data, width, height, state.spec);
  drawPreview(pixels);
  return pixels;
}

function drawPreview(pixels) {
  const { height, width, channels } = state.spec;
  const shown = new ImageData(width, height);
  for (let p = 0; p < width * height; p++) {
    for (let k = 0; k < 3; k++) shown.data[p * 4 + k] = pixels[p * channels + (channels === 1 ? 0 : k)];
    shown.data[p * 4 + 3] = 255;
  }
  const small = document.createElement('canvas');
  small.width = width;
  small.height = height;
  small.getContext('2d').putImageData(shown, 0, 0);
  const preview = $('preview');
  const ctx = preview.getContext('2d');
  ctx.imageSmoothingEnabled = false; // show the pixels the model sees
  ctx.clearRect(0, 0, preview.width, preview.height);
  ctx.drawImage(small, 0, 0, preview.width, preview.height);
}

// A picture file or URL decoded as it is stored: no colour management, alpha kept
// apart, EXIF orientation applied (as Pillow's exif_transpose).
async function decodePicture(blob) {
  return createImageBitmap(blob, {
    colorSpaceConversion: 'none',
    premultiplyAlpha: 'none',
    imageOrientation: 'from-image',
  });
}

// ---------------------------------------------------------------- the model

// One prediction on the running engine: float32 rows in, probabilities out.
async function runModel(input, batch = 1) {
  const started = performance.now();
  const probs = await state.engine.predict(input, batch);
  return { probs, ms: performance.now() - started };
}

function topK(probs, k = TOP_K) {
  return Array.from(probs, (p, i) => ({ index: i, label: state.labels[i] ?? `class ${i}`, probability: p }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, k);
}

function zeros() {
  const { height, width, channels } = state.spec;
  return new Float32Array(height * width * channels);
}

async function loadModel() {
  const { height, width, channels } = state.spec;
  const started = performance.now();
  await loadArtifact(state.engine, state.manifest, ARTIFACTS, state.artifactId, [height, width, channels]);
  state.loadMs = performance.now() - started;
  state.backend = state.engine.backend; // an engine may leave a backend a model cannot run on
  // The first call compiles kernels / shaders: time it apart from the warm ones.
  state.firstMs = (await runModel(zeros())).ms;
}

// Start `engine` on `backend` (a backend that cannot start leaves the engine on another
// one, with a note that the badge shows) and load the current artifact into it.
async function switchBackend(name, engine = engineOf(state.manifest, state.artifactId)) {
  state.engine?.disposeModel();
  state.engine = null;
  state.requestedBackend = name;
  state.engine = await startEngine(engine, name, { threads: params.get('threads'), build: params.get('build') });
  await loadModel();
  await renderBackend();
  return info();
}

// Serialise calls so a benchmark, a webcam frame and a click never interleave.
function exclusive(task) {
  const run = state.busy.then(task, task);
  state.busy = run.catch(() => undefined);
  return run;
}

// ---------------------------------------------------------------- rendering

function setError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = !message;
}

async function renderBackend() {
  const status = $('backend-status');
  status.textContent = badge(state.engine);
  status.classList.toggle('warn', Boolean(state.engine.note));
  const name = state.engine.name;
  $('engine').value = name;
  const backends = $('backend');
  backends.replaceChildren(...ENGINES[name].backends.map((b) => new Option(b, b)));
  backends.value = state.backend;
  $('artifact').value = state.artifactId;
  const entry = state.manifest.artifacts[state.artifactId];
  $('model-summary').textContent =
    `${state.artifactId} (${entry.precision}, ${formatBytes(entry.size)}) · ` +
    `${state.labels.length} classes · loaded in ${state.loadMs.toFixed(0)} ms, first run ${state.firstMs.toFixed(1)} ms`;
}

function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return '?';
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(2)} MB`;
}

function renderResult(result, truth) {
  const list = document.createElement('ol');
  list.className = 'top';
  for (const item of result.top) {
    const li = document.createElement('li');
    const pct = (item.probability * 100).toFixed(1);
    const name = document.createElement('span');
    name.className = 'label';
    name.textContent = item.label;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.style.width = `${Math.max(0, Math.min(100, item.probability * 100))}%`;
    bar.append(fill);
    const value = document.createElement('span');
    value.className = 'pct';
    value.textContent = `${pct}%`;
    li.append(name, bar, value);
    if (truth !== null && item.label === truth) li.classList.add('truth');
    list.append(li);
  }
  $('results').replaceChildren(list);
  $('latency').textContent = `${result.ms.toFixed(2)} ms (${ENGINES[state.engine.name].label} ${state.backend})`;
  const top1 = result.top[0]?.label;
  $('truth').textContent = truth === null ? '–' : `${truth} ${top1 === truth ? '✓' : '✗'}`;
}

// ---------------------------------------------------------------- inputs

// A head that gives logits (the manifest says so) is shown through a softmax.
function shownScores(scores) {
  if (state.manifest.source?.output?.kind !== 'logits') return scores;
  const top = Math.max(...scores);
  const exp = Array.from(scores, (s) => Math.exp(s - top));
  const total = exp.reduce((a, b) => a + b, 0);
  return Float32Array.from(exp, (e) => e / total);
}

async function classifyInput(input, truth = null) {
  const { probs: scores, ms } = await runModel(input);
  const probs = shownScores(scores);
  const result = { top: topK(probs), probs: Array.from(probs), ms, engine: state.engine.name, backend: state.backend };
  state.current = { input, truth };
  renderResult(result, truth);
  return result;
}

function classifySource(source, truth = null) {
  return exclusive(() => classifyInput(toInput(pixelsOf(source), state.spec.channels, state.spec), truth));
}

async function loadImage(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
  return decodePicture(await response.blob());
}

function sampleUrl(record) {
  return `${ARTIFACTS}samples/${record.file.split('/').map(encodeURIComponent).join('/')}`;
}

async function sampleInput(index) {
  if (!state.sampleInputs.has(index)) {
    const img = await loadImage(sampleUrl(state.samples[index]));
    state.sampleInputs.set(index, toInput(pixelsOf(img), state.spec.channels, state.spec));
  }
  return state.sampleInputs.get(index);
}

function classifySample(index) {
  const record = state.samples[index];
  if (!record) throw new Error(`no sample ${index} (there are ${state.samples.length})`);
  return exclusive(async () => {
    const input = await sampleInput(index);
    // Show the image even when its pixels come from the cache.
    const img = await loadImage(sampleUrl(record));
    pixelsOf(img);
    const result = await classifyInput(input, record.label);
    return { index, file: record.file, truth: record.label, ...result };
  });
}

async function classifyFile(file) {
  if (!file) return;
  if (!file.type.startsWith('image/')) {
    setError(`${file.name} is not an image (type ${file.type || 'unknown'})`);
    return;
  }
  try {
    const bitmap = await decodePicture(file);
    await classifySource(bitmap);
    bitmap.close();
    setError('');
  } catch (error) {
    setError(`Could not read ${file.name}: ${error.message}`);
  }
}

function parseSamples(data) {
  const records = Array.isArray(data) ? data : (data.samples ?? []);
  return records
    .map((r) => {
      const file = r.file ?? r.path ?? r.name;
      let label = typeof r.label_name === 'string' ? r.label_name : (r.label ?? null);
      if (typeof label === 'number') label = state.labels[label] ?? String(label);
      return file ? { file: String(file), label } : null;
    })
    .filter(Boolean);
}

async function loadSamples() {
  const response = await fetch(`${ARTIFACTS}samples/samples.json`);
  if (!response.ok) {
    $('samples-note').textContent = 'This artifacts folder has no sample images.';
    return;
  }
  state.samples = parseSamples(await response.json());
  const list = $('samples');
  list.replaceChildren();
  state.samples.forEach((record, index) => {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'sample';
    button.setAttribute('aria-label', `Sample ${index + 1}${record.label ? `, true label ${record.label}` : ''}`);
    const img = document.createElement('img');
    img.src = sampleUrl(record);
    img.alt = '';
    img.width = 56;
    img.height = 56;
    const caption = document.createElement('span');
    caption.textContent = record.label ?? `#${index + 1}`;
    button.append(img, caption);
    button.addEventListener('click', () => classifySample(index).catch((e) => setError(e.message)));
    li.append(button);
    list.append(li);
  });
}

async function toggleWebcam() {
  const button = $('webcam');
  const video = $('video');
  if (state.webcam) {
    state.webcam.running = false;
    state.webcam.stream.getTracks().forEach((t) => t.stop());
    state.webcam = null;
    video.hidden = true;
    button.textContent = 'Start webcam';
    button.setAttribute('aria-pressed', 'false');
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: false });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    state.webcam = { stream, running: true };
    button.textContent = 'Stop webcam';
    button.setAttribute('aria-pressed', 'true');
    setError('');
    const loop = async () => {
      if (!state.webcam?.running) return;
      await classifySource(video);
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  } catch (error) {
    setError(`The webcam is not available: ${error.message}`);
  }
}

// ---------------------------------------------------------------- benchmark

function percentile(sorted, q) {
  // Linear interpolation between closest ranks, as numpy.percentile does by default.
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function stats(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const mean = times.reduce((s, t) => s + t, 0) / times.length;
  const variance = times.reduce((s, t) => s + (t - mean) ** 2, 0) / times.length;
  return {
    runs: times.length,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    mean,
    std: Math.sqrt(variance),
    min: sorted[0],
    max: sorted[sorted.length - 1],
  };
}

function median(values) {
  return values.length ? percentile([...values].sort((a, b) => a - b), 0.5) : null;
}

// Time `runs` inferences in the page (timed_loop.js: the engine's run alone on a ready
// input, back to back, in blocks long enough for the clock's step to vanish; handing the
// input over and reading the output back timed apart as pre_ms and post_ms), after
// `warmup` untimed predictions. One row: the current image, or the first row of `input`
// (base64 float32). first_ms is the cold first inference after loading, never in the
// warm figures. `times` adds every sample as `timed` (timed_loop.js's answer).
function bench(runs = 100, { warmup = 10, input = null, times: keepTimes = false } = {}) {
  return exclusive(async () => {
    const x = input ? decodeFloats(input) : (state.current?.input ?? zeros());
    for (let i = 0; i < warmup; i++) await runModel(x, 1);
    const timed = await timeStages(state.engine.timingStages(x), runs);
    return {
      engine: state.engine.name,
      backend: state.backend,
      artifact: state.artifactId,
      batch: 1,
      crossOriginIsolated,
      ...stats(timed.samples_ms),
      runs: timed.runs,
      samples: timed.samples_ms.length,
      block: timed.block,
      timer_step_ms: timed.timer_step_ms,
      pre_ms: median(timed.pre_ms),
      post_ms: median(timed.post_ms),
      first_ms: state.firstMs,
      ...(keepTimes ? { timed } : {}),
    };
  });
}

async function runBenchForm(event) {
  event.preventDefault();
  const button = $('bench-run');
  const runs = Math.min(10000, Math.max(1, Number($('bench-runs').value) || 100));
  button.disabled = true;
  $('bench-out').innerHTML = '<p class="muted">Running…</p>';
  try {
    const r = await bench(runs);
    const rows = [
      ['p50', `${r.p50.toFixed(3)} ms`],
      ['p90', `${r.p90.toFixed(3)} ms`],
      ['mean', `${r.mean.toFixed(3)} ± ${r.std.toFixed(3)} ms`],
      ['in', `${r.pre_ms.toFixed(3)} ms before each run (input made ready)`],
      ...(r.post_ms === null ? [] : [['out', `${r.post_ms.toFixed(3)} ms after (output read back)`]]),
      ['first', `${r.first_ms.toFixed(1)} ms (cold, after loading)`],
      ['runs', `${r.runs} on ${ENGINES[r.engine].label} ${r.backend}, timed in blocks of ${r.block} (clock step ${(r.timer_step_ms * 1000).toFixed(1)} µs)`],
    ];
    const dl = document.createElement('dl');
    dl.className = 'facts bench';
    for (const [k, v] of rows) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      dl.append(dt, dd);
    }
    $('bench-out').replaceChildren(dl);
  } catch (error) {
    setError(`Benchmark failed: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- automation API

function decodeFloats(base64) {
  // Native decoding where the browser has it: a per-character callback over a batch of
  // 224x224 pictures takes seconds.
  const bytes = Uint8Array.fromBase64
    ? Uint8Array.fromBase64(base64)
    : Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

function encodeBytes(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function encodeFloats(floats) {
  return encodeBytes(new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength));
}

// A picture (URL, data: URL included) -> what the page feeds the model: its pixels at the
// model's size and the float32 input, both base64. `spec` overrides fields of the
// manifest's input spec (size, resize, crop, color, normalisation) for this call only.
async function preprocess(url, spec = {}) {
  const merged = { ...state.spec, ...spec };
  merged.color = merged.channels === 1 ? 'GRAY' : merged.color;
  const bitmap = await loadImage(url);
  work.width = bitmap.width;
  work.height = bitmap.height;
  workCtx.clearRect(0, 0, bitmap.width, bitmap.height);
  workCtx.drawImage(bitmap, 0, 0);
  const rgba = workCtx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const pixels = modelPixels(rgba, bitmap.width, bitmap.height, merged);
  bitmap.close();
  return { pixels: encodeBytes(pixels), input: encodeFloats(toInput(pixels, merged.channels, merged)) };
}

// Already preprocessed float32 NHWC data (base64 of little-endian floats) -> the
// model's output as base64 float32 [batch, K]. What the browser runtime adapter calls.
function predictInput(base64, batch = 1) {
  return exclusive(async () => {
    const { probs, ms } = await runModel(decodeFloats(base64), batch);
    return { output: encodeFloats(probs), shape: [batch, probs.length / batch], ms };
  });
}

// The same from a URL that answers the float32 bytes (application/octet-stream): how the
// browser runtime adapter sends its batches, since megabytes of base64 through
// page.evaluate cost far more than the model.
function predictUrl(url, batch = 1) {
  return exclusive(async () => {
    const answer = await fetch(url, { cache: 'no-store' });
    if (!answer.ok) throw new Error(`input ${url}: HTTP ${answer.status}`);
    const input = new Float32Array(await answer.arrayBuffer());
    const { probs, ms } = await runModel(input, batch);
    return { output: encodeFloats(probs), shape: [batch, probs.length / batch], ms };
  });
}

// Raw uint8 pixels at the model's size (RGB or RGBA, row-major), preprocessed per
// the manifest like an uploaded image.
function predictPixels(pixels) {
  const { height, width } = state.spec;
  const stride = pixels.length / (height * width);
  if (stride !== 3 && stride !== 4) {
    throw new Error(`expected ${height}x${width} RGB or RGBA pixels, got ${pixels.length} values`);
  }
  return exclusive(async () => {
    const { probs, ms } = await runModel(toInput(pixels, stride, state.spec));
    return { top: topK(probs), probs: Array.from(probs), ms };
  });
}

function info() {
  const engine = state.engine;
  return {
    artifact: state.artifactId,
    artifacts: selectable(),
    engine: engine?.name ?? null,
    engines: enginesOf(state.manifest),
    requestedBackend: state.requestedBackend,
    backend: state.backend,
    backendNote: engine?.note ?? '',
    noAdapter: Boolean(engine?.noAdapter),
    missingFeature: engine?.missingFeature ?? '', // the adapter lacks what this model needs
    features: engine?.features ?? {},
    loadMs: state.loadMs,
    firstMs: state.firstMs,
    labels: state.labels,
    input: state.spec,
    samples: state.samples.length,
    tfVersion: engine?.name === 'tfjs' ? engine.version : null,
    engineVersion: engine?.version ?? null,
    engineLog: engine?.log?.slice(-10) ?? [],
    crossOriginIsolated,
  };
}

// Every artifact the page can run, TF.js ones first.
function selectable() {
  return enginesOf(state.manifest).flatMap((engine) => artifactsOf(state.manifest, engine));
}

// Switch to artifact `id`; one of the other engine restarts on that engine's default.
async function setArtifact(id) {
  if (!selectable().includes(id)) {
    throw new Error(`no artifact ${JSON.stringify(id)} this page can run (have ${selectable().join(', ')})`);
  }
  return exclusive(async () => {
    const engine = engineOf(state.manifest, id);
    state.artifactId = id;
    if (engine !== state.engine.name) return switchBackend(defaultBackend(engine), engine);
    await loadModel();
    await renderBackend();
    return info();
  });
}

function setEngine(name) {
  if (!enginesOf(state.manifest).includes(name)) {
    throw new Error(`no ${JSON.stringify(name)} engine here (have ${enginesOf(state.manifest).join(', ')})`);
  }
  return setArtifact(defaultArtifact(state.manifest, name));
}

// ---------------------------------------------------------------- start-up

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
  return response.json();
}

function wireUi() {
  const engineSelect = $('engine');
  const artifactSelect = $('artifact');
  for (const engine of enginesOf(state.manifest)) {
    engineSelect.add(new Option(ENGINES[engine].label, engine));
    const group = document.createElement('optgroup');
    group.label = ENGINES[engine].label;
    group.append(...artifactsOf(state.manifest, engine).map((id) => new Option(id, id)));
    artifactSelect.append(group);
  }
  engineSelect.value = state.engine.name;
  artifactSelect.value = state.artifactId;
  engineSelect.addEventListener('change', () => setEngine(engineSelect.value).catch((e) => setError(e.message)));
  artifactSelect.addEventListener('change', () => setArtifact(artifactSelect.value).catch((e) => setError(e.message)));

  const backendSelect = $('backend');
  backendSelect.addEventListener('change', () =>
    exclusive(() => switchBackend(backendSelect.value)).catch((e) => setError(e.message)),
  );

  const file = $('file');
  file.addEventListener('change', () => classifyFile(file.files[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    classifyFile(event.dataTransfer.files[0]);
  });
  // A file dropped beside the zone must not navigate away from the page.
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());

  if (navigator.mediaDevices?.getUserMedia) {
    const webcam = $('webcam');
    webcam.hidden = false;
    webcam.setAttribute('aria-pressed', 'false');
    webcam.addEventListener('click', toggleWebcam);
  }
  $('bench-form').addEventListener('submit', runBenchForm);
  for (const id of ['engine', 'artifact', 'backend', 'bench-run']) $(id).disabled = false;
  const { height, width, channels } = state.spec;
  $('input-shape').textContent = `${width}×${height}×${channels} ${state.spec.color}`;
}

// ?model=ID, ?engine=tfjs|litertjs|onnx and ?backend=NAME, checked against the manifest; a
// value the page cannot honour is said in the error box, never swapped in silence.
function fromUrl() {
  const engines = enginesOf(state.manifest);
  if (!engines.length) throw new Error('artifacts/manifest.json names no TF.js or TFLite artifact');
  const problems = [];
  let engine = params.get('engine');
  if (engine && !engines.includes(engine)) {
    problems.push(`no ${engine} engine here (have ${engines.join(', ')})`);
    engine = null;
  }
  let artifact = params.get('model');
  if (artifact && !selectable().includes(artifact)) {
    problems.push(`no artifact ${artifact} this page can run`);
    artifact = null;
  }
  if (artifact && engine && engineOf(state.manifest, artifact) !== engine) {
    problems.push(`${artifact} runs on ${engineOf(state.manifest, artifact)}, not ${engine}`);
  }
  engine = artifact ? engineOf(state.manifest, artifact) : (engine ?? engines[0]);
  artifact = artifact ?? defaultArtifact(state.manifest, engine);
  let backend = params.get('backend');
  if (backend && !ENGINES[engine].backends.includes(backend)) {
    problems.push(`${ENGINES[engine].label} has no backend ${backend}`);
    backend = null;
  }
  if (problems.length) setError(`${problems.join('; ')}: showing ${artifact}.`);
  return { engine, artifact, backend: backend ?? defaultBackend(engine) };
}

async function start() {
  state.manifest = await fetchJson(`${ARTIFACTS}manifest.json`);
  state.spec = specFrom(state.manifest);
  state.labels = state.manifest.labels;
  const chosen = fromUrl();
  state.artifactId = chosen.artifact;
  await switchBackend(chosen.backend, chosen.engine);
  await loadSamples();
  wireUi();
  document.body.dataset.ready = 'true';
  return info();
}

const ready = start();
ready.catch((error) => {
  setError(`The demo could not start: ${error.message}`);
  $('backend-status').textContent = 'not running';
  document.body.dataset.ready = 'error';
});

globalThis.cnnx = {
  ready,
  info,
  setBackend: (name) => exclusive(() => switchBackend(name)),
  setArtifact,
  setEngine,
  classifySample,
  predictPixels,
  predictInput,
  predictUrl,
  preprocess,
  bench,
  memory: () => state.engine.memory(),
  // The running engine itself: for a benchmark's own loop beside bench()'s
  // (benchmarks/browser_bench.py), never for the page's work.
  engine: () => state.engine,
  // Where a LiteRT.js prediction's time goes (engine_litertjs.js profile()).
  profile: (runs = 200) =>
    exclusive(async () => {
      if (!state.engine.profile) throw new Error(`profile() measures LiteRT.js, not ${state.engine.name}`);
      return state.engine.profile(state.current?.input ?? zeros(), runs);
    }),
  get samples() {
    return state.samples.map((s) => ({ ...s }));
  },
};
