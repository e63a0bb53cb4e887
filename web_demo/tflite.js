// The input and output tensors of a .tflite file, read from its flatbuffer.
//
// LiteRT.js tells a tensor's dtype and shape but not its quantization. An int8 model
// with uint8 I/O takes q = round(x / scale) + zero_point and returns
// (q - zero_point) * scale, so the page and the Node runner read scale and zero point
// from the model file they run, as the Python runtime reads them from its interpreter.
//
// Only what that needs is read (TFLite schema.fbs): Model.subgraphs[0] (field 2), its
// tensors (0), inputs (1) and outputs (2); a Tensor's shape (0), type (1), name (3) and
// quantization (4); QuantizationParameters' scale (2) and zero_point (3).

const TYPES = ['float32', 'float16', 'int32', 'uint8', 'int64', 'string', 'bool', 'int16', 'complex64', 'int8'];

class Reader {
  constructor(bytes) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.bytes = bytes;
  }

  u32(pos) {
    if (pos < 0 || pos + 4 > this.view.byteLength) throw new Error(`offset ${pos} is outside the file`);
    return this.view.getUint32(pos, true);
  }

  // The absolute position of field `index` of the table at `table`, or 0 when absent.
  field(table, index) {
    const vtable = table - this.view.getInt32(table, true);
    const vtableSize = this.view.getUint16(vtable, true);
    const slot = 4 + 2 * index;
    if (slot >= vtableSize) return 0;
    const offset = this.view.getUint16(vtable + slot, true);
    return offset ? table + offset : 0;
  }

  table(table, index) {
    const pos = this.field(table, index);
    return pos ? pos + this.u32(pos) : 0;
  }

  // [start, length] of the vector in field `index`; [0, 0] when absent.
  vector(table, index) {
    const pos = this.field(table, index);
    if (!pos) return [0, 0];
    const vec = pos + this.u32(pos);
    return [vec + 4, this.u32(vec)];
  }

  tables(table, index) {
    const [start, length] = this.vector(table, index);
    return Array.from({ length }, (_, i) => start + 4 * i + this.u32(start + 4 * i));
  }

  int32s(table, index) {
    const [start, length] = this.vector(table, index);
    return Array.from({ length }, (_, i) => this.view.getInt32(start + 4 * i, true));
  }

  float32s(table, index) {
    const [start, length] = this.vector(table, index);
    return Array.from({ length }, (_, i) => this.view.getFloat32(start + 4 * i, true));
  }

  int64s(table, index) {
    const [start, length] = this.vector(table, index);
    return Array.from({ length }, (_, i) => Number(this.view.getBigInt64(start + 8 * i, true)));
  }

  string(table, index) {
    const [start, length] = this.vector(table, index);
    return new TextDecoder().decode(this.bytes.subarray(start, start + length));
  }

  int8(table, index, fallback) {
    const pos = this.field(table, index);
    return pos ? this.view.getInt8(pos) : fallback;
  }
}

function describe(reader, tensor) {
  const quantization = reader.table(tensor, 4);
  const scales = quantization ? reader.float32s(quantization, 2) : [];
  const zeroPoints = quantization ? reader.int64s(quantization, 3) : [];
  return {
    name: reader.string(tensor, 3),
    dtype: TYPES[reader.int8(tensor, 1, 0)] ?? `type ${reader.int8(tensor, 1, 0)}`,
    shape: reader.int32s(tensor, 0),
    // Per-tensor quantization only: I/O tensors are never per-channel.
    scale: scales.length ? scales[0] : 0,
    zeroPoint: zeroPoints.length ? zeroPoints[0] : 0,
  };
}

// bytes (Uint8Array of a .tflite file) -> {inputs: [...], outputs: [...]}, each
// {name, dtype, shape, scale, zeroPoint} (scale 0: not quantized).
export function ioTensors(bytes) {
  if (bytes.length < 8 || new TextDecoder().decode(bytes.subarray(4, 8)) !== 'TFL3') {
    throw new Error('not a TFLite flatbuffer (no TFL3 identifier)');
  }
  const reader = new Reader(bytes);
  const model = reader.u32(0);
  const subgraphs = reader.tables(model, 2);
  if (!subgraphs.length) throw new Error('the model has no subgraph');
  const tensors = reader.tables(subgraphs[0], 0);
  const pick = (indices) =>
    indices.map((i) => {
      if (!(i >= 0 && i < tensors.length)) throw new Error(`tensor index ${i} out of range`);
      return describe(reader, tensors[i]);
    });
  return { inputs: pick(reader.int32s(subgraphs[0], 1)), outputs: pick(reader.int32s(subgraphs[0], 2)) };
}
