// Runs an ONNX model in ONNX Runtime (the onnxruntime-node package, CPU) on one float32 input read from a raw
// little-endian file, and writes the first output the same way: the independent check of bin/export.
// Usage: node scripts/ort_run.js MODEL.onnx INPUT.f32 N,C,H,W OUTPUT.f32 [--level basic|extended|all]
// (MODEL.onnx "-": the model's bytes from standard input, as a decrypting pipe hands them over in memory)
//            [--threads T] [--optimized GRAPH.onnx] [--batch B]
// By default one thread and the basic graph rewrites only: the numbers nibble's float export is compared with.
// An integer model runs as deployed with --level all (ONNX Runtime then fuses QuantizeLinear/DequantizeLinear
// around ops into integer kernels); --optimized writes the graph it really executes; --batch B runs the input
// B images at a time (a whole test set). Prints {"input": ..., "output": ..., "dims": [...]} on success; exits
// 1 with the runtime's message otherwise.
// onnxruntime-node is looked up on NODE_PATH (the Makefile installs it into build/ort/node_modules).
'use strict';
const fs = require('fs');

async function main() {
  const args = process.argv.slice(2);
  const [model, inPath, dimsText, outPath] = args;
  if (!outPath) {
    console.error('usage: node scripts/ort_run.js MODEL.onnx INPUT.f32 N,C,H,W OUTPUT.f32 [--level L] [--threads T] ' +
                  '[--optimized GRAPH.onnx] [--batch B]');
    process.exit(2);
  }
  const opt = {level: 'basic', threads: 1, optimized: null, batch: 0};
  for (let i = 4; i + 1 < args.length; i += 2) {
    const key = args[i].replace(/^--/, '');
    if (!(key in opt)) throw new Error(`unknown option ${args[i]}`);
    opt[key] = key === 'threads' || key === 'batch' ? Number(args[i + 1]) : args[i + 1];
  }
  const ort = require('onnxruntime-node');
  const dims = dimsText.split(',').map(Number);
  const raw = fs.readFileSync(inPath);
  const count = dims.reduce((a, b) => a * b, 1);
  if (raw.length !== 4 * count) throw new Error(`${inPath}: ${raw.length} bytes, expected ${4 * count} for [${dims}]`);
  const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  const options = {intraOpNumThreads: opt.threads, interOpNumThreads: 1, graphOptimizationLevel: opt.level};
  if (opt.optimized) options.optimizedModelFilePath = opt.optimized;
  const session = await ort.InferenceSession.create(model === '-' ? fs.readFileSync(0) : model, options);
  const N = dims[0], per = count / N, B = opt.batch > 0 ? opt.batch : N;
  const chunks = [];
  let outDims = null;
  for (let start = 0; start < N; start += B) {
    const n = Math.min(B, N - start);
    const part = data.subarray(start * per, (start + n) * per);
    const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', part, [n, ...dims.slice(1)])};
    const result = await session.run(feeds);
    const out = result[session.outputNames[0]];
    chunks.push(Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
    outDims = outDims ? [outDims[0] + out.dims[0], ...out.dims.slice(1)] : Array.from(out.dims);
  }
  fs.writeFileSync(outPath, Buffer.concat(chunks));
  console.log(JSON.stringify({input: session.inputNames[0], output: session.outputNames[0], dims: outDims}));
}

main().catch((e) => {
  console.error(`onnxruntime: ${e.message}`);
  process.exit(1);
});
