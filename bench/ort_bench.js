// Inference speed of an ONNX model in ONNX Runtime (onnxruntime-node, CPU), every graph optimization on, as a
// deployment runs it: batch 1 latency (median of the runs) and batch B throughput, on random inputs.
// Usage: node bench/ort_bench.js MODEL.onnx C H W [--threads T] [--batch B] [--seconds S]
// Prints {"ms_batch1": ..., "img_per_s": ..., "batch": B, "threads": T}.
'use strict';

async function main() {
  const args = process.argv.slice(2);
  const [model, c, h, w] = [args[0], Number(args[1]), Number(args[2]), Number(args[3])];
  const opt = {threads: 2, batch: 32, seconds: 3};
  for (let i = 4; i + 1 < args.length; i += 2) opt[args[i].replace(/^--/, '')] = Number(args[i + 1]);
  const ort = require('onnxruntime-node');
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: opt.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential'});
  const input = (n) => {
    const d = new Float32Array(n * c * h * w);
    for (let i = 0; i < d.length; i++) d[i] = ((i * 2654435761) % 1000) / 500 - 1;
    return {[session.inputNames[0]]: new ort.Tensor('float32', d, [n, c, h, w])};
  };
  const time = async (feeds, budget, minRuns) => {
    const times = [];
    const end = Date.now() + budget * 1000;
    while (times.length < minRuns || Date.now() < end) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return times.sort((a, b) => a - b);
  };
  const one = input(1), many = input(opt.batch);
  await time(one, 0, 3); // warm-up: allocations, kernels' first runs
  const t1 = await time(one, opt.seconds, 10);
  await time(many, 0, 1);
  const tb = await time(many, opt.seconds, 3);
  console.log(JSON.stringify({ms_batch1: t1[Math.floor(t1.length / 2)], img_per_s: opt.batch / (tb[Math.floor(tb.length / 2)] / 1000),
                              batch: opt.batch, threads: opt.threads}));
}

main().catch((e) => {
  console.error(`onnxruntime: ${e.message}`);
  process.exit(1);
});
