// Hugging Face's own chat template renderer (@huggingface/jinja, transformers.js) and tokenizers:
// the oracle loraplan's chat templates are held against.
// Usage: node jinja_oracle.js TEMPLATE_FILE CASES_JSON [TOKENIZER_JSON]
// CASES_JSON is an array of variable sets ({"messages": [...], "bos_token": ..., ...}). Prints a
// JSON array with one entry per case: {"text": RENDERED, "ids": [...]} (ids of the text encoded
// without special tokens, as apply_chat_template tokenizes it; only with TOKENIZER_JSON), or
// {"error": MESSAGE} when rendering throws (raise_exception's message).
const fs = require('fs');
const { Template } = require('@huggingface/jinja');
const { Tokenizer } = require('tokenizers');

async function main() {
  const [templatePath, casesPath, tokenizerPath] = process.argv.slice(2);
  const template = new Template(fs.readFileSync(templatePath, 'utf8'));
  const cases = JSON.parse(fs.readFileSync(casesPath, 'utf8'));
  const tokenizer = tokenizerPath ? Tokenizer.fromFile(tokenizerPath) : null;
  const out = [];
  for (const variables of cases) {
    let text;
    try {
      text = template.render(variables);
    } catch (e) {
      out.push({ error: String(e.message) });
      continue;
    }
    const entry = { text };
    if (tokenizer) {
      const encoding = await tokenizer.encode(text, null, { addSpecialTokens: false });
      entry.ids = encoding.getIds();
    }
    out.push(entry);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
