// LiteRT.js's emscripten glue (node_modules/@litertjs/core/wasm/*.js) run as the
// CommonJS script it is written as. The package says "type": "module", so Node would
// parse the file as an ES module and its require() calls would fail.
//
// Required by litertjs_runner.mjs, it exports loadGlue(file) -> the ModuleFactory.
// Run as a worker's main script (the threaded build's pthreads: Module.mainScriptUrlOrBlob
// points here), it runs the glue named by $CNNX_LITERTJS_GLUE, which then starts the
// pthread itself.

const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const { wrap } = require("node:module");

function loadGlue(file) {
  const run = vm.runInThisContext(wrap(fs.readFileSync(file, "utf8")), { filename: file });
  const module = { exports: {} };
  run.call(module.exports, module.exports, require, module, file, path.dirname(file));
  return module.exports;
}

if (require.main === module) loadGlue(process.env.CNNX_LITERTJS_GLUE);
else module.exports = { loadGlue };
