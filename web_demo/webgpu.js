// The WebGPU adapter a page can get, described for the badge and the bench rows.
//
// Chromium gives none on Linux without --enable-unsafe-webgpu; headless, it then gives
// SwiftShader, a software adapter on the CPU. Its figures are not GPU figures, so every
// caller says which adapter ran and whether it is software.

export async function webgpuAdapter() {
  if (!globalThis.navigator?.gpu) {
    return { adapter: null, reason: 'this browser has no WebGPU (navigator.gpu is missing)' };
  }
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (error) {
    return { adapter: null, reason: `requestAdapter failed: ${error.message}` };
  }
  if (!adapter) {
    return { adapter: null, reason: 'no WebGPU adapter (Chromium offers none here without --enable-unsafe-webgpu)' };
  }
  return { adapter, reason: '', info: adapterInfo(adapter.info ?? {}, adapter.isFallbackAdapter) };
}

export function adapterInfo(info, fallback = false) {
  const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  const software = Boolean(fallback || info.isFallbackAdapter) || /swiftshader|llvmpipe|lavapipe|warp/i.test(name);
  return { name: name || 'unnamed adapter', software };
}
