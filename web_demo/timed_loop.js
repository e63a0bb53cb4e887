// The timed loop of every JavaScript engine (the page's bench, the Node runners): the rule
// of toolkit/measure/timing.py. The timed region is the engine's run alone, on an input handed
// over once, back to back; handing the input over (`prepare`: a tensor made, a row
// quantized) and reading the output back (`finish`: the download, dequantizing) are timed
// in loops of their own and reported apart as pre_ms and post_ms; inputs and outputs are
// disposed outside every timed region.
//
// A page's clock is coarse (5 us when cross-origin isolated, 100 us otherwise), so each
// step is timed in blocks of calls back to back, enough for the clock's step to be at
// most STEP_SHARE of a block; a sample is its block's time per call.

const STEP_SHARE = 0.01;
const MAX_BLOCK = 1000;
const WARM_CALLS = 21; // untimed calls of each step, always: they size its block too

// The smallest step the clock ever takes (ms): 5 us or 100 us in a page, ~0 in Node.
export function clockStep(now = () => performance.now()) {
  let step = Infinity;
  for (let i = 0, last = now(); i < 20000; i++) {
    const t = now();
    if (t > last) step = Math.min(step, t - last);
    last = t;
  }
  return Number.isFinite(step) ? step : 0;
}

async function settle(value) {
  return value instanceof Promise ? await value : value;
}

// `count` samples of `call` timed in blocks of `block`; what the calls return is kept
// until the block's clock stops, then handed to `release`.
async function timeBlocks(call, count, block, release, now) {
  const samples = [];
  for (let i = 0; i < count; i++) {
    const made = [];
    const started = now();
    for (let k = 0; k < block; k++) {
      let value = call();
      if (value instanceof Promise) value = await value;
      made.push(value);
    }
    samples.push((now() - started) / block);
    release(made);
  }
  return samples;
}

// The block that makes the clock's step at most STEP_SHARE of it, at most `cap` calls:
// from the median of WARM_CALLS untimed calls (released after), which a burst of load on
// one of them does not move; a call shorter than the step counts as half a step.
async function blockFor(call, release, step, cap, now) {
  const made = [];
  const times = [];
  for (let i = 0; i < WARM_CALLS; i++) {
    const started = now();
    made.push(await settle(call()));
    times.push(now() - started);
  }
  release(made);
  const one = Math.max(times.sort((a, b) => a - b)[WARM_CALLS >> 1], step / 2, 1e-6);
  return Math.min(MAX_BLOCK, cap, Math.max(1, Math.ceil(step / (STEP_SHARE * one))));
}

// stages: {prepare() -> input, run(input) -> output (or a promise of it),
//          finish(output) -> values (or a promise), or null; dispose(input or output)}.
// -> {samples_ms (ms per run, one per block), runs, block, timer_step_ms,
//     pre_ms: [...], post_ms: [...]}  (post_ms empty where `finish` is null)
export async function timeStages(stages, runs, now = () => performance.now()) {
  const { prepare, run, finish, dispose } = stages;
  const wanted = Math.max(1, Math.floor(Number(runs)));
  const step = clockStep(now);
  const drop = (made) => made.forEach(dispose);
  const input = prepare();
  let last = null;
  try {
    const keep = (made) => {
      if (last !== null) dispose(last);
      last = made.pop();
      drop(made);
    };
    const block = await blockFor(() => run(input), keep, step, wanted, now);
    const count = Math.ceil(wanted / block);
    const samples = await timeBlocks(() => run(input), count, block, keep, now);
    const preBlock = await blockFor(prepare, drop, step, MAX_BLOCK, now);
    const pre = await timeBlocks(prepare, count, preBlock, drop, now);
    let post = [];
    if (finish) {
      const read = () => finish(last);
      post = await timeBlocks(read, count, await blockFor(read, () => {}, step, MAX_BLOCK, now), () => {}, now);
    }
    return { samples_ms: samples, runs: count * block, block, timer_step_ms: step, pre_ms: pre, post_ms: post };
  } finally {
    if (last !== null) dispose(last);
    dispose(input);
  }
}
