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
  const reader = requestReader();
  let busy = false;

  async function drain() {
    if (busy) return;
    busy = true;
    for (;;) {
      let request;
      try {
        request = reader.next();
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
    reader.push(chunk);
    drain();
  });
  process.stdin.on("end", () => process.exit(0));
}

// Requests out of stdin's chunks (64 KiB each from a pipe). A payload is copied once
// into a buffer of its announced size: joining every chunk onto what came before would
// copy a 100 MB batch thousands of times, in fresh allocations the kernel must map and
// zero (system time that grew with the square of the batch).
export function requestReader() {
  let head = Buffer.alloc(0); // bytes of a header line still incomplete
  let header = null; // the parsed header whose payload is arriving
  let payload = null;
  let filled = 0;
  const chunks = []; // bytes received and not yet used

  function take(size) {
    // Up to `size` bytes from the front of the queue.
    const first = chunks[0];
    if (first.length <= size) return chunks.shift();
    chunks[0] = first.subarray(size);
    return first.subarray(0, size);
  }

  return {
    push(chunk) {
      chunks.push(chunk);
    },
    next() {
      while (header === null) {
        if (!chunks.length) return null;
        const chunk = chunks.shift();
        const newline = chunk.indexOf(10);
        if (newline < 0) {
          head = Buffer.concat([head, chunk]); // a header line is short
          continue;
        }
        header = JSON.parse(Buffer.concat([head, chunk.subarray(0, newline)]).toString("utf8"));
        head = Buffer.alloc(0);
        if (newline + 1 < chunk.length) chunks.unshift(chunk.subarray(newline + 1));
        payload = Buffer.allocUnsafe(header.nbytes || 0);
        filled = 0;
      }
      while (filled < payload.length && chunks.length) {
        const part = take(payload.length - filled);
        part.copy(payload, filled);
        filled += part.length;
      }
      if (filled < payload.length) return null;
      const request = [header, payload];
      header = null;
      payload = null;
      return request;
    },
  };
}
