// Tokens per second of Hugging Face's tokenizers (the Rust library, for node) over the rows of a
// JSONL file, one encode at a time as loraplan's benchmark does; the load is not timed.
// Usage: node hf_tokenizer_speed.js TOKENIZER_JSON DATA.jsonl [REPEATS]
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

async function main() {
  const [tokenizerPath, dataPath, repeatsArg] = process.argv.slice(2);
  const repeats = Number(repeatsArg || 3);
  const tokenizer = Tokenizer.fromFile(tokenizerPath);
  const rows = fs.readFileSync(dataPath, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l).text);
  let best = Infinity;
  let tokens = 0;
  for (let k = 0; k < repeats; ++k) {
    tokens = 0;
    const start = process.hrtime.bigint();
    for (const r of rows) tokens += (await tokenizer.encode(r, null, { addSpecialTokens: true })).getIds().length;
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  console.log(`hf tokenizers: ${rows.length} rows, ${tokens} tokens, best of ${repeats}: ${best.toFixed(3)} s, ${Math.round(tokens / best)} tokens/s`);
}

main().catch((e) => { console.error(e); process.exit(1); });
