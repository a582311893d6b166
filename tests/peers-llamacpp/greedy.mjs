// llama.cpp's greedy continuation of given token ids, through node-llama-cpp's prebuilt CPU build:
//   node greedy.mjs MODEL.gguf IDS.json TOKENS THREADS [KV_TYPE] [logprobs]
// KV_TYPE: F16 (llama.cpp's default) or F32, the K/V cache's element type; `logprobs` adds first_logprobs, the
// natural-log probability of every token with a non-zero one after the prompt ([[id, logp], ...]). IDS.json holds prompts: [[id, ...], ...]. Prints one JSON object per prompt: the greedy tokens (EOS does not
// stop them), the prompt's evaluation time (prefill_seconds: until the first token), the time per later token
// (decode_seconds_per_token) and the process's peak resident set (peak_rss_bytes).
import { readFileSync } from "node:fs";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, idsPath, tokensText, threadsText, kvType = "F16", extra = ""] = process.argv.slice(2);
if (!threadsText || !["F16", "F32"].includes(kvType) || !["", "logprobs"].includes(extra)) {
  console.error("usage: node greedy.mjs MODEL.gguf IDS.json TOKENS THREADS [F16|F32] [logprobs]");
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
  let firstLogprobs = null;
  const start = process.hrtime.bigint();
  let first = start;
  // With probabilities, each step's output is {token, probabilities}: the softmax of the logits (temperature 0
  // picks the top token and leaves the distribution as it is).
  const steps =
    extra === "logprobs"
      ? sequence.evaluateWithMetadata(prompt, { probabilities: true }, { temperature: 0 })
      : sequence.evaluate(prompt, { temperature: 0 });
  for await (const step of steps) {
    if (generated.length === 0) {
      first = process.hrtime.bigint();
      if (extra === "logprobs") {
        firstLogprobs = [...step.probabilities.entries()].filter(([, p]) => p > 0).map(([id, p]) => [id, Math.log(p)]);
      }
    }
    generated.push(extra === "logprobs" ? step.token : step);
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
      ...(firstLogprobs ? { first_logprobs: firstLogprobs } : {}),
    }),
  );
}
await context.dispose();
await model.dispose();
