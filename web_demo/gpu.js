// The GPU a backend computes on, described for the badge and the bench rows: the WebGPU
// adapter, or the WebGL renderer.
//
// Chromium gives no WebGPU adapter on Linux without --enable-unsafe-webgpu; headless, it
// then gives SwiftShader, a software adapter on the CPU, and WebGL there renders on
// SwiftShader too (--enable-unsafe-swiftshader). Their figures are not GPU figures, so
// every caller says which adapter or renderer ran and whether it is software.

// Software rasterisers by the names drivers give them: Chromium's SwiftShader, Mesa's
// llvmpipe, softpipe and lavapipe, Windows' WARP (the "Microsoft Basic Render Driver").
const SOFTWARE = /swiftshader|llvmpipe|softpipe|lavapipe|warp|basic render driver/i;

// name: what the badge and the rows show; said: everything the browser says of it.
function described(name, said, software = false) {
  return { name, software: Boolean(software) || SOFTWARE.test(said) };
}

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
  return described(name || 'unnamed adapter', name, fallback || info.isFallbackAdapter);
}

// The renderer behind a WebGL context: the unmasked names where the browser gives them
// (WEBGL_debug_renderer_info), else the masked ones ("WebKit WebGL" says little).
export function webglRenderer(gl) {
  const debug = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER);
  const vendor = gl.getParameter(debug ? debug.UNMASKED_VENDOR_WEBGL : gl.VENDOR);
  return { ...described(renderer || 'unnamed renderer', `${vendor} ${renderer}`), vendor };
}
