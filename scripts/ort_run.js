// Runs an ONNX model in ONNX Runtime (the onnxruntime-node package, CPU) on one float32 input read from a raw
// little-endian file, and writes the first output the same way: the independent check of bin/export.
// Usage: node scripts/ort_run.js MODEL.onnx INPUT.f32 N,C,H,W OUTPUT.f32
// Prints {"input": ..., "output": ..., "dims": [...]} on success; exits 1 with the runtime's message otherwise.
// onnxruntime-node is looked up on NODE_PATH (the Makefile installs it into build/ort/node_modules).
'use strict';
const fs = require('fs');

async function main() {
  const [model, inPath, dimsText, outPath] = process.argv.slice(2);
  if (!outPath) {
    console.error('usage: node scripts/ort_run.js MODEL.onnx INPUT.f32 N,C,H,W OUTPUT.f32');
    process.exit(2);
  }
  const ort = require('onnxruntime-node');
  const dims = dimsText.split(',').map(Number);
  const raw = fs.readFileSync(inPath);
  const count = dims.reduce((a, b) => a * b, 1);
  if (raw.length !== 4 * count) throw new Error(`${inPath}: ${raw.length} bytes, expected ${4 * count} for [${dims}]`);
  const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  // one thread and no graph rewrites beyond the basic ones: the numbers nibble is compared with
  const session = await ort.InferenceSession.create(model, {intraOpNumThreads: 1, graphOptimizationLevel: 'basic'});
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, dims)};
  const result = await session.run(feeds);
  const out = result[session.outputNames[0]];
  fs.writeFileSync(outPath, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  console.log(JSON.stringify({input: session.inputNames[0], output: session.outputNames[0], dims: out.dims}));
}

main().catch((e) => {
  console.error(`onnxruntime: ${e.message}`);
  process.exit(1);
});
