// llama.cpp's greedy continuation of given token ids, through node-llama-cpp's prebuilt CPU build:
//   node greedy.mjs MODEL.gguf IDS.json TOKENS THREADS [KV_TYPE]
// KV_TYPE: F16 (llama.cpp's default) or F32, the K/V cache's element type. IDS.json holds prompts: [[id, ...], ...]. Prints one JSON object per prompt: the greedy tokens (EOS does not
// stop them), the prompt's evaluation time (prefill_seconds: until the first token), the time per later token
// (decode_seconds_per_token) and the process's peak resident set (peak_rss_bytes).
import { readFileSync } from "node:fs";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, idsPath, tokensText, threadsText, kvType = "F16"] = process.argv.slice(2);
if (!threadsText || !["F16", "F32"].includes(kvType)) {
  console.error("usage: node greedy.mjs MODEL.gguf IDS.json TOKENS THREADS [F16|F32]");
  process.exit(2);
}
const prompts = JSON.parse(readFileSync(idsPath, "utf8"));
const tokens = Number(tokensText), threads = Number(threadsText);
const longest = Math.max(...prompts.map((p) => p.length)) + tokens;

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({
  contextSize: longest,
  batchSize: Math.min(512, longest),
  threads,
  sequences: 1,
  experimentalKvCacheKeyType: kvType,
  experimentalKvCacheValueType: kvType,
  flashAttention: false,
});
const sequence = context.getSequence();

function peakRss() {
  const status = readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s+(\d+) kB/);
  return status ? Number(status[1]) * 1024 : 0;
}

for (const prompt of prompts) {
  await sequence.clearHistory();
  const generated = [];
  const start = process.hrtime.bigint();
  let first = start;
  for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
    if (generated.length === 0) first = process.hrtime.bigint();
    generated.push(token);
    if (generated.length >= tokens) break;
  }
  const end = process.hrtime.bigint();
  const seconds = (a, b) => Number(b - a) / 1e9;
  console.log(
    JSON.stringify({
      tokens: generated,
      prefill_seconds: seconds(start, first),
      decode_seconds_per_token: generated.length > 1 ? seconds(first, end) / (generated.length - 1) : 0,
      peak_rss_bytes: peakRss(),
    }),
  );
}
await context.dispose();
await model.dispose();
