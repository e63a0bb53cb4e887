// The stdin/stdout protocol of the Node runners (node_runner.mjs for TF.js,
// litertjs_runner.mjs for LiteRT.js), spoken by toolkit/runtimes/tfjs_node.py's
// NodeRunner. One request at a time:
//
//   request:  one JSON line {"cmd": ..., ...[, "nbytes": N]} then N raw bytes
//   response: one line "CNNX1 " + JSON {"ok": true|false, ...[, "nbytes": M]} then M bytes
//
// Tensors travel as raw little-endian float32 bytes with their "shape" in the header.
// Anything an engine prints goes to stderr (console.* is redirected), and the reader on
// the Python side ignores stdout lines without the "CNNX1 " prefix.

const PREFIX = "CNNX1 ";
let peak = 0;

// Keep stdout for the protocol only.
export function quietConsole() {
  console.log = console.error;
  console.info = console.error;
  console.warn = console.error;
  console.debug = console.error;
}

export function peakRss() {
  peak = Math.max(peak, process.memoryUsage().rss);
  return peak;
}

function send(header, payload) {
  const body = payload ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) : null;
  const head = { ...header };
  if (body) head.nbytes = body.length;
  process.stdout.write(PREFIX + JSON.stringify(head) + "\n");
  if (body) process.stdout.write(body);
  peakRss();
}

// The request's payload as float32 values of header.shape (copied: a Node Buffer may be
// an unaligned view into a larger pooled ArrayBuffer).
export function floatsOf(header, payload) {
  const count = header.shape.reduce((a, b) => a * b, 1);
  if (payload.length !== count * 4) {
    throw new Error(`payload has ${payload.length} bytes, shape ${JSON.stringify(header.shape)} needs ${count * 4}`);
  }
  const values = new Float32Array(count);
  new Uint8Array(values.buffer).set(payload);
  return values;
}

// Answer requests with `handle(header, payload) -> [result, Float32Array|null]` until
// "close" or the end of stdin. A thrown error is an {"ok": false} answer; a request
// that cannot be parsed ends the process.
export function serve(handle) {
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
        const [result, data] = header.cmd === "close" ? [{}, null] : await handle(header, payload);
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
}
