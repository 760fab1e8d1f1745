#!/usr/bin/env python3
"""Is the plan loraplan chooses the fastest one in practice? Measures every plan of a small grid
that fits a CPU budget and compares the chosen plan's measured throughput with the best.

    python3 scripts/plan_speed.py [--model tiny-llama-256] [--budget 24MiB] [--seq-len 128]
                                  [--steps 12] [--binary build/cli/loraplan]

For each micro-batch (divisors of the target batch 8), number of checkpointed layers (the first
k), attention and loss, `loraplan estimate --device cpu --budget B` says whether it fits under the
budget minus plan's 5% margin; each one that does trains for --steps steps (`loraplan train`,
one thread) and its throughput is the median tokens/s of the steps after the first. Then
`loraplan plan` chooses; the script prints the table sorted by measured speed, the chosen plan's
rank, and its measured throughput as a share of the best.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run(binary, args):
    r = subprocess.run([binary] + args, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-llama-256")
    ap.add_argument("--budget", default="24MiB")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--binary", default="build/cli/loraplan")
    a = ap.parse_args()

    common = ["--model", a.model, "--device", "cpu", "--compute-dtype", "fp32", "--seq-len", str(a.seq_len)]
    code, out, err = run(a.binary, ["plan", "--budget", a.budget, "--format", "json"] + common)
    if code != 0:
        sys.exit(f"loraplan plan failed ({code}): {err.strip() or out.strip()}")
    plan = json.loads(out)
    limit = plan["hardware"]["limit_bytes"]
    layers = plan["model"]["layers"]
    chosen = plan["config"]
    chunk = None
    for r in plan["rejected"] + plan["runner_ups"]:
        if "loss chunked:" in r["label"]:
            chunk = r["label"].split("loss chunked:")[1].split(" ")[0]
    if chosen["loss"]["kind"] == "chunked":
        chunk = str(chosen["loss"]["chunk_tokens"])

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for b in (1, 2, 4, 8):
            for attention in ("efficient", "eager"):
                for loss in ["full"] + ([f"chunked:{chunk}"] if chunk else []):
                    for k in range(layers + 1):
                        ckpt = "none" if k == 0 else f"layers:0-{k - 1}" if k > 1 else "layers:0"
                        flags = common + ["--micro-batch", str(b), "--grad-accum", str(8 // b), "--attention", attention,
                                          "--loss", loss, "--checkpoint", ckpt]
                        code, out, err = run(a.binary, ["estimate", "--format", "json"] + flags)
                        if code not in (0, 1):
                            sys.exit(f"estimate failed: {err}")
                        peak = json.loads(out)["peak_bytes"]
                        if peak > limit:
                            continue
                        code, out, err = run(a.binary, ["train", "--steps", str(a.steps), "--budget", a.budget,
                                                        "--out", tmp] + flags)
                        if code != 0:
                            rows.append((0.0, b, k, attention, loss, peak, "OUT OF MEMORY" if code == 1 else err.strip()))
                            continue
                        report = json.load(open(os.path.join(tmp, "report.json")))
                        speed = statistics.median(s["tokens_per_s"] for s in report["steps"][1:])
                        rows.append((speed, b, k, attention, loss, peak, ""))
                        print(f"  B {b} x {8 // b}  checkpoint {k}/{layers}  {attention:9s} {loss:12s} "
                              f"peak {peak:>10,}  {speed:8.0f} tokens/s", file=sys.stderr)
    rows.sort(key=lambda r: -r[0])
    best = rows[0][0]
    k_chosen = len(chosen["checkpoint_layers"])
    loss_chosen = "full" if chosen["loss"]["kind"] == "full" else f"chunked:{chosen['loss']['chunk_tokens']}"
    key = (chosen["micro_batch"], k_chosen, chosen["attention"], loss_chosen)
    print(f"{a.model}, T {a.seq_len}, budget {a.budget} (limit {limit:,} bytes): {len(rows)} plans fit\n")
    print("| rank | plan | predicted peak | measured tokens/s | |")
    print("|---:|---|---:|---:|---|")
    chosen_speed = None
    for i, (speed, b, k, attention, loss, peak, note) in enumerate(rows, 1):
        mark = "chosen" if (b, k, attention, loss) == key else ""
        if mark:
            chosen_speed = speed
        print(f"| {i} | B {b} x {8 // b}, checkpoint {k}/{layers}, {attention}, loss {loss} | {peak:,} | "
              f"{speed:,.0f} | {mark}{note} |")
    if chosen_speed is None:
        sys.exit("the chosen plan is not in the grid")
    print(f"\nchosen plan: {plan['runner_ups'] and ''}predicted {plan['prediction']['tokens_per_s']:,.0f} tokens/s, "
          f"measured {chosen_speed:,.0f}; best measured {best:,.0f}; chosen/best = {chosen_speed / best:.3f}")


if __name__ == "__main__":
    main()
