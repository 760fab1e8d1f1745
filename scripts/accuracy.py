#!/usr/bin/python3
"""Predicted vs measured memory, per configuration and per phase, on the CPU or CUDA executor.

For each configuration of a fixed grid of tiny models (llama, phi3, gemma2, qwen3 and qwen2 layouts;
weight formats, checkpointing, shapes, LoRA, optimizer, attention, loss, accumulation, compute
dtype and offloaded layers varied together), runs
  loraplan estimate --device D --format json ...     (the prediction)
  loraplan train --steps 2 --out DIR ...             (the measurement)
and compares the total peak and every phase's peak. Writes the table and prints the summary.

--device cpu (default): the tracking allocator's bytes against the CPU prediction's peak_bytes.
--device cuda --gpu SIZE|PROFILE: the caching allocator's allocated peak (report.json
measured.peak_bytes) against the prediction's allocated_peak_bytes, and each phase's allocated
peak against the phase's allocated_bytes; the reserved peaks (measured.reserved_peak_bytes and
reserved_peak_bytes) are compared and reported beside them. Needs a loraplan built against a CUDA
LibTorch (scripts/build-cuda.sh) and a GPU.

usage: /usr/bin/python3 scripts/accuracy.py [--loraplan build/cli/loraplan] [--out docs/accuracy.md]
                                            [--device cpu|cuda] [--gpu SIZE|PROFILE]
"""
import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile

MODELS = ["tiny-llama", "tiny-phi3", "tiny-gemma2", "tiny-qwen3", "tiny-qwen2"]
AXES = {
    "weights": [["--weights", "nf4"], ["--weights", "nf4", "--double-quant", "off"], ["--weights", "int8"],
                ["--weights", "bf16"], ["--weights", "fp32"]],
    "checkpoint": [["--checkpoint", "none"], ["--checkpoint", "all"], ["--checkpoint", "every:2"],
                   ["--checkpoint", "layers:1"]],
    "shape": [["--micro-batch", "1", "--seq-len", "16"], ["--micro-batch", "4", "--seq-len", "64"],
              ["--micro-batch", "2", "--seq-len", "160"], ["--micro-batch", "8", "--seq-len", "32"],
              ["--micro-batch", "1", "--seq-len", "512"]],
    "lora": [["--lora-rank", "4", "--lora-targets", "q,k,v,o"], ["--lora-rank", "16", "--lora-targets", "all-linear"],
             ["--lora-rank", "64", "--lora-targets", "all-linear", "--lora-dropout", "0"]],
    "optimizer": [["--optimizer", "adamw"], ["--optimizer", "sgd"]],
    "attention": [["--attention", "efficient"], ["--attention", "eager"]],
    "loss": [["--loss", "full"], ["--loss", "chunked:24"]],
    "accum": [["--grad-accum", "1"], ["--grad-accum", "4"]],
    "compute": [["--compute-dtype", "fp32"], ["--compute-dtype", "fp32"], ["--compute-dtype", "bf16"]],
    "offload": [["--offload", "none"], ["--offload", "1"], ["--offload", "none"]],
}
# The executor runs bitsandbytes' 8-bit AdamW on the CPU only.
CPU_OPTIMIZERS = AXES["optimizer"] + [["--optimizer", "adamw-8bit"], ["--optimizer", "paged-adamw-8bit"]]


def grid(count, device):
    """A deterministic spread over the axes: configuration i takes value i mod len on each axis,
    with the axes offset so that values combine differently."""
    configs = []
    for i in range(count):
        model = MODELS[i % len(MODELS)]
        flags = ["--model", model, "--device", device]
        for k, (axis, values) in enumerate(AXES.items()):
            if axis == "optimizer" and device == "cpu":
                values = CPU_OPTIMIZERS
            flags += values[(i // (k + 1) + k) % len(values)]
        if model == "tiny-phi3":
            flags = [("qkv,o" if f == "q,k,v,o" else f) for f in flags]
        configs.append(flags)
    return configs


# Real model dimensions with random weights (--real): where the per-tensor constants of the tiny
# grid are small and the activations dominate. Each runs in one to a few minutes on 2 cores.
REAL = [
    ["--model", "qwen2.5-0.5b", "--seq-len", "128", "--micro-batch", "2", "--grad-accum", "2", "--checkpoint", "all",
     "--loss", "chunked:128"],
    ["--model", "qwen2.5-0.5b", "--seq-len", "256", "--micro-batch", "1", "--grad-accum", "1", "--checkpoint", "none",
     "--optimizer", "adamw-8bit"],
    ["--model", "qwen2.5-0.5b", "--seq-len", "512", "--micro-batch", "1", "--grad-accum", "1", "--checkpoint", "all",
     "--weights", "int8", "--lora-targets", "q,k,v,o", "--loss", "chunked:256"],
    ["--model", "smollm2-360m", "--seq-len", "256", "--micro-batch", "2", "--grad-accum", "1", "--checkpoint", "every:2",
     "--optimizer", "paged-adamw-8bit"],
    ["--model", "smollm2-360m", "--seq-len", "512", "--micro-batch", "1", "--grad-accum", "2", "--checkpoint", "all",
     "--optimizer", "sgd", "--attention", "eager"],
    ["--model", "tinyllama-1.1b-chat-v1.0", "--seq-len", "128", "--micro-batch", "1", "--grad-accum", "1",
     "--checkpoint", "all", "--loss", "chunked:128"],
    ["--model", "tinyllama-1.1b-chat-v1.0", "--seq-len", "256", "--micro-batch", "1", "--grad-accum", "1",
     "--checkpoint", "all", "--optimizer", "adamw-8bit", "--lora-rank", "32"],
]


def real_grid():
    return [c[:2] + ["--device", "cpu", "--compute-dtype", "fp32"] + c[2:] for c in REAL]


def cuda_constant_bytes(gpu):
    """Two cuBLAS workspaces of the GPU profile `gpu` (None when it names no profile)."""
    path = os.path.join(os.path.dirname(__file__), "..", "profiles", "gpus", f"{gpu}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return 2 * json.load(f)["overheads"]["cublas_workspace_bytes"]


def gpu_name():
    """The first GPU's name as nvidia-smi gives it."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True).stdout
        return out.splitlines()[0].strip()
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "a GPU"


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


# What each device compares: the prediction's total and per-phase keys against report.json's.
# CPU: the tracking allocator's live bytes are the whole device. CUDA: the caching allocator's
# allocated bytes (the prediction's peak_bytes adds reserved slack and the CUDA context).
KEYS = {"cpu": {"total": "peak_bytes", "phase": "peak_bytes"},
        "cuda": {"total": "allocated_peak_bytes", "phase": "allocated_bytes"}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loraplan", default="build/cli/loraplan")
    ap.add_argument("--out", default=None, help="default: docs/accuracy.md (cpu), docs/accuracy-cuda.md (cuda)")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--gpu", help="with --device cuda: the GPU the prediction is for (a size, e.g. 81559MiB, "
                                  "or a profile); required")
    ap.add_argument("--raw", help="also write every prediction and report.json, one JSON line per configuration")
    ap.add_argument("--real", action="store_true",
                    help="real model dimensions with random weights instead of the tiny grid (CPU; docs/accuracy-real.md)")
    args = ap.parse_args()
    if args.device == "cuda" and not args.gpu:
        ap.error("--device cuda needs --gpu SIZE|PROFILE (the card the run measures)")
    if args.device == "cpu" and args.gpu:
        ap.error("--gpu goes with --device cuda")
    if args.real and args.device != "cpu":
        ap.error("--real runs on the CPU")
    out = args.out or ("docs/accuracy-real.md" if args.real else
                       "docs/accuracy.md" if args.device == "cpu" else "docs/accuracy-cuda.md")
    keys = KEYS[args.device]
    gpu_flags = ["--gpu", args.gpu] if args.gpu else []

    rows, phase_errors, reserved_errors = [], [], []
    raw = open(args.raw, "w") if args.raw else None
    with tempfile.TemporaryDirectory() as tmp:
        for i, flags in enumerate(real_grid() if args.real else grid(args.count, args.device)):
            est = json.loads(run([args.loraplan, "estimate", "--format", "json"] + flags + gpu_flags).stdout)
            run_dir = os.path.join(tmp, str(i))
            run([args.loraplan, "train", "--steps", "2", "--out", run_dir] + flags)
            with open(os.path.join(run_dir, "report.json")) as f:
                rep = json.load(f)
            if raw:
                raw.write(json.dumps({"flags": flags, "estimate": est, "report": rep}) + "\n")
            libtorch = rep["environment"].get("libtorch_version", "?")
            measured = rep["measured"]["peak_bytes"]
            predicted = est[keys["total"]]
            err = (predicted - measured) / measured
            mreserved = rep["measured"].get("reserved_peak_bytes", measured)
            preserved = est["reserved_peak_bytes"]
            rerr = (preserved - mreserved) / mreserved
            reserved_errors.append(abs(rerr))
            mphases = {p["name"]: p["peak_bytes"] for p in rep["measured"]["phases"]}
            worst = ("", 0.0)
            for p in est["phases"]:
                if p["name"] in mphases and p["name"] != "setup":
                    e = (p[keys["phase"]] - mphases[p["name"]]) / mphases[p["name"]]
                    phase_errors.append(abs(e))
                    if abs(e) > abs(worst[1]):
                        worst = (p["name"], e)
            rows.append((" ".join(flags[1:2] + flags[4:]), predicted, measured, err, worst, preserved, mreserved, rerr))
            print(f"{i:3d} {err:+7.2%}  reserved {rerr:+7.2%}  worst phase {worst[0]} {worst[1]:+.2%}  "
                  f"{' '.join(flags)}", flush=True)

    if raw:
        raw.close()
    abs_err = [abs(r[3]) for r in rows]
    summary = (f"{len(rows)} configurations. Total peak: median |error| {statistics.median(abs_err):.2%}, "
               f"max {max(abs_err):.2%}. Phase peaks ({len(phase_errors)}): median |error| "
               f"{statistics.median(phase_errors):.2%}, max {max(phase_errors):.2%}.")
    if args.device == "cuda":
        summary += (f" Reserved peak: median |error| {statistics.median(reserved_errors):.2%}, "
                    f"max {max(reserved_errors):.2%}.")
        # The part that varies: allocated bytes less the two cuBLAS workspaces (forward and the
        # autograd thread), a constant that hides most of a tiny model's peak.
        constant = cuda_constant_bytes(args.gpu)
        if constant:
            varying = [abs(r[1] - r[2]) / (r[2] - constant) for r in rows]
            summary += (f" On the part that varies (allocated less the two cuBLAS workspaces, "
                        f"{constant / 2**20:.0f} MiB): median |error| {statistics.median(varying):.2%}, "
                        f"max {max(varying):.2%}.")
    with open(out, "w") as f:
        if args.real:
            f.write("# Accuracy at real sizes: predicted vs measured (CPU executor)\n\n")
            f.write("Written by `/usr/bin/python3 scripts/accuracy.py --real`: real models' dimensions with random "
                    "weights, each row `loraplan estimate --device cpu` against `loraplan train --steps 2` with the "
                    "flags shown, measured with the executor's tracking allocator, single-threaded. The CPU has "
                    "no constant part (no context, no library workspaces), so the errors are on the whole peak.\n\n")
        elif args.device == "cpu":
            f.write("# Accuracy: predicted vs measured (CPU executor)\n\n")
            f.write("Written by `/usr/bin/python3 scripts/accuracy.py` (each row: `loraplan estimate --device cpu` "
                    "against `loraplan train --steps 2`, both with `--device cpu` and the flags shown; "
                    "measured with the executor's tracking allocator, single-threaded). On a GPU, "
                    "`scripts/gpu-verify.sh` runs the same grid against CUDA's caching allocator: "
                    "docs/accuracy-cuda.md. Real models' dimensions: docs/accuracy-real.md.\n\n")
            f.write("**What depends on the processor.** The executor's CPU bytes are the same on every x86 "
                    "processor: fp32 matrix products go to BLAS, which allocates through its own pool, not "
                    "LibTorch's; bf16 products would go to oneDNN on AVX-512 processors, whose kernels allocate "
                    "ISA-specific scratch (4-22 KB per linear with AVX512-BF16 or AMX), so the executor turns "
                    "oneDNN off (`setUserEnabledMkldnn(false)` in `run_training`) and bf16 takes LibTorch's "
                    "native kernels, which allocate nothing of their own. Speed depends on the processor; "
                    "bytes do not. The 8-bit optimizers run on the CPU only, so the grid has them here and "
                    "not on CUDA.\n\n")
        else:
            f.write("# Accuracy: predicted vs measured (CUDA executor)\n\n")
            f.write(f"Written on {gpu_name()} with LibTorch {libtorch} by `scripts/gpu-verify.sh`, which runs "
                    f"`scripts/accuracy.py --device cuda --gpu {args.gpu}` (each row: "
                    f"`loraplan estimate --device cuda --gpu {args.gpu}` against `loraplan train --steps 2 "
                    "--device cuda` with the flags shown; measured with the CUDA caching allocator's counters). "
                    "Peak and phases: allocated bytes; reserved: the allocator's segments.\n\n")
        f.write(f"**{summary}**\n\n")
        if args.device == "cpu":
            f.write("| configuration | predicted | measured | error | worst phase |\n|---|---:|---:|---:|---|\n")
            for name, pred, meas, err, worst, *_ in rows:
                f.write(f"| `{name}` | {pred:,} | {meas:,} | {err:+.2%} | {worst[0]} {worst[1]:+.2%} |\n")
        else:
            f.write("| configuration | predicted allocated | measured allocated | error | worst phase | "
                    "predicted reserved | measured reserved | error |\n|---|---:|---:|---:|---|---:|---:|---:|\n")
            for name, pred, meas, err, worst, pres, mres, rerr in rows:
                f.write(f"| `{name}` | {pred:,} | {meas:,} | {err:+.2%} | {worst[0]} {worst[1]:+.2%} | "
                        f"{pres:,} | {mres:,} | {rerr:+.2%} |\n")
    print(summary)


if __name__ == "__main__":
    sys.exit(main())
