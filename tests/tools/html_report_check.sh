#!/usr/bin/env bash
# Renders loraplan's HTML reports in headless Chromium (Debian's chromium): the DOM it builds has
# the charts, labels and numbers; a screenshot is not blank; the page asks for nothing (its
# Content-Security-Policy allows no request, and Chromium's net log shows none but the file).
# Usage: html_report_check.sh LORAPLAN
set -euo pipefail
loraplan=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$browser" ]]; then
  echo "chromium is not installed (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
run_browser() {
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$tmp/profile" "$@" 2>>"$tmp/browser.log"
}
fail() { echo "FAIL: $*" >&2; exit 1; }

check() {  # name, then the command's words (it writes the page)
  local name=$1
  shift
  "$loraplan" "$@" --format html >"$tmp/$name.html" || [[ $? == 1 ]]
  run_browser --dump-dom "file://$tmp/$name.html" >"$tmp/$name.dom"
  run_browser --window-size=1280,800 --screenshot="$tmp/$name.png" \
    --log-net-log="$tmp/$name.netlog" "file://$tmp/$name.html" >/dev/null
  local wants=("made by <code>loraplan $1")
  [[ $1 == sweep ]] || wants+=('<svg class="timeline"' 'class="area"' 'class="peak"' \
    'phase-label' '<title>optim</title>' '<title>loss</title>')
  for want in "${wants[@]}"; do
    grep -qF "$want" "$tmp/$name.dom" || fail "$name: the rendered page has no $want"
  done
  /usr/bin/python3 - "$tmp/$name.png" "$tmp/$name.netlog" "$name" <<'PY'
import json, struct, sys, zlib
png, netlog, name = sys.argv[1:]
data = open(png, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: not a PNG"
pos, idat, width, height = 8, b"", 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        channels = {2: 3, 6: 4}[colour]
    if kind == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
stride = width * channels + 1
# Count the distinct colours of the raw scanline bytes (filters aside, a blank page has one).
colours = set()
for y in range(0, height, 7):
    row = raw[y * stride + 1:(y + 1) * stride]
    for x in range(0, width * channels, channels * 5):
        colours.add(row[x:x + 3])
assert (width, height) == (1280, 800), f"{name}: screenshot is {width}x{height}"
assert len(colours) > 20, f"{name}: screenshot looks blank ({len(colours)} colours)"
# Requests the page starts carry its origin as initiator ("null" for a file); Chromium's own
# (component updates, time) say "not an origin" and are not the page's.
log = json.load(open(netlog))
start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
page = sorted(e["params"]["url"] for e in log["events"]
              if e.get("type") == start and "url" in e.get("params", {})
              and e["params"].get("initiator") != "not an origin")
assert not page, f"{name}: the page requested {page}"
print(f"{name}: {width}x{height} screenshot, {len(colours)} colours sampled, requests: none")
PY
}

check fits estimate --gpu 6GB
grep -qF 'FITS with' "$tmp/fits.dom" || fail "fits: no verdict"
grep -qF '<svg class="bar"' "$tmp/fits.dom" || fail "fits: no bar"
check over estimate --gpu 4GB
grep -qF 'DOES NOT FIT' "$tmp/over.dom" || fail "over: no verdict"
grep -qF 'Changes that make it fit' "$tmp/over.dom" || fail "over: no changes"
check plan plan --gpu 6GB
grep -qF '<svg class="plan"' "$tmp/plan.dom" || fail "plan: no candidates chart"
check sweep sweep --gpus 4GB,6GB,24GB --seq-lens 512,4096
grep -qF '<svg class="sweep"' "$tmp/sweep.dom" || fail "sweep: no heatmap"
# A tiny CPU run, verified: the measured timeline over the predicted one.
"$loraplan" train --model tiny-llama --steps 1 --out "$tmp/run" >/dev/null
check verify verify --run "$tmp/run/report.json"
grep -qF '<polyline class="measured"' "$tmp/verify.dom" || fail "verify: no measured line"
grep -qF 'PASS: max |error|' "$tmp/verify.dom" || fail "verify: no verdict"
echo "html reports: PASS"
