// Hugging Face's tokenizers (the Rust library, for node) on a corpus: the oracle loraplan's
// tokenizer is held against. Usage: node hf_oracle.js TOKENIZER_JSON CORPUS OUT
// CORPUS holds one base64 line per text (bytes, not always UTF-8: decoded as TextDecoder does,
// one U+FFFD per maximal ill-formed subpart). OUT gets one JSON line per text:
// {"ids": [...], "decoded": "..."} (encode with special tokens, decode keeping them).
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

async function main() {
  const [tokenizerPath, corpusPath, outPath] = process.argv.slice(2);
  const tokenizer = Tokenizer.fromFile(tokenizerPath);
  const lines = fs.readFileSync(corpusPath, 'utf8').split('\n').filter((l) => l.length > 0);
  const out = [];
  for (const line of lines) {
    const text = Buffer.from(line === '-' ? '' : line, 'base64').toString('utf8');
    const encoding = await tokenizer.encode(text, null, { addSpecialTokens: true });
    const ids = encoding.getIds();
    const decoded = await tokenizer.decode(ids, false);
    out.push(JSON.stringify({ ids, decoded }));
  }
  fs.writeFileSync(outPath, out.join('\n') + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
