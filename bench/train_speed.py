#!/usr/bin/python3
"""Training speed of the executor against a plain PyTorch loop doing the same math.

Both train tiny-llama-256 (4 layers, C 256, 8 heads / 4 kv heads, I 688, V 1024) with fp32 frozen
weights, fp32 compute, LoRA r 16 alpha 32 on every linear (no dropout), eager attention, the full
loss, AdamW on the adapters with gradient clipping at 1.0, one intra-op thread, on the same
micro-batch shape, for the same number of steps. Prints tokens/s of both (median over the steps
after the first two; the best of --rounds alternating runs, as other work on the machine only
slows a run down) and their ratio.

One thread means one thread for OpenBLAS too: torch.set_num_threads does not reach Debian's
OpenBLAS pthread pool, so OPENBLAS_NUM_THREADS=1 is set before torch is imported (the executor
sets it through openblas_set_num_threads).

--attention efficient switches the executor to its chunked attention; the PyTorch loop stays
eager.

Recorded on the 2-core development VM, B 4, T 256, 12 steps, --rounds 3 (the PyTorch loop's own
figure moved between 2180 and 2543 tokens/s across runs of the same day: read ratios within about
10%):
  eager:     loraplan 2471 tokens/s, PyTorch 2530 tokens/s, ratio 0.98 (1.05 on an earlier day)
  efficient: loraplan 2466 tokens/s, PyTorch 2404 tokens/s, ratio 1.03 (each query chunk against
             only the keys it can see; 0.95 before, when every chunk computed all T keys)
  efficient at T 1024, B 1 (--seq-len 1024 --micro-batch 1 --rounds 2): loraplan 1641 tokens/s,
             PyTorch eager 698 tokens/s, ratio 2.35
Before the executor limited OpenBLAS's own thread pool, loraplan ran at 922 tokens/s (eager,
under load).

usage: /usr/bin/python3 bench/train_speed.py [--loraplan build/cli/loraplan] [--steps 12]
       [--micro-batch 4] [--seq-len 256] [--attention eager|efficient] [--rounds 2]
"""
import argparse
import json
import math
import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"
import statistics
import subprocess
import tempfile
import time

import torch
import torch.nn.functional as F

MODEL = "tiny-llama-256"
RANK, ALPHA = 16, 32
WARMUP = 2  # steps left out of the median


def ours(args):
    with tempfile.TemporaryDirectory() as out:
        cmd = [args.loraplan, "train", "--model", MODEL, "--device", "cpu", "--compute-dtype", "fp32",
               "--weights", "fp32", "--lora-rank", str(RANK), "--lora-alpha", str(ALPHA), "--lora-dropout", "0",
               "--lora-targets", "all-linear", "--optimizer", "adamw", "--checkpoint", "none",
               "--attention", args.attention, "--loss", "full", "--micro-batch", str(args.micro_batch),
               "--seq-len", str(args.seq_len), "--steps", str(args.steps), "--threads", "1", "--out", out]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        with open(os.path.join(out, "report.json")) as f:
            report = json.load(f)
    return statistics.median(s["tokens_per_s"] for s in report["steps"][WARMUP:])


def config():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "profiles", "models", MODEL + ".json")
    with open(path) as f:
        return json.load(f)


class Linear:
    """A frozen fp32 projection with a LoRA adapter (PEFT's initialisation: B = 0)."""

    def __init__(self, out_f, in_f):
        self.w = torch.randn(out_f, in_f) * 0.02
        bound = 1 / math.sqrt(in_f)
        self.a = (torch.rand(RANK, in_f) * 2 - 1).mul_(bound).requires_grad_()
        self.b = torch.zeros(out_f, RANK, requires_grad=True)

    def __call__(self, x):
        return F.linear(x, self.w) + F.linear(F.linear(x, self.a), self.b) * (ALPHA / RANK)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


def plain(args):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    c = config()
    V, C, I, L = c["vocab_size"], c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    H, Hkv = c["num_attention_heads"], c["num_key_value_heads"]
    D = C // H
    B, T = args.micro_batch, args.seq_len
    embed = torch.randn(V, C) * 0.02
    lm_head = torch.randn(V, C) * 0.02
    layers = [dict(q=Linear(H * D, C), k=Linear(Hkv * D, C), v=Linear(Hkv * D, C), o=Linear(C, H * D),
                   gate=Linear(I, C), up=Linear(I, C), down=Linear(C, I), n1=torch.ones(C), n2=torch.ones(C))
              for _ in range(L)]
    params = [p for l in layers for m in l.values() if isinstance(m, Linear) for p in (m.a, m.b)]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0, eps=1e-8)
    inv = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
    freqs = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cat((freqs, freqs), -1).cos(), torch.cat((freqs, freqs), -1).sin()
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    data = torch.randint(V, (16, T + 1))

    def forward(ids, labels):
        x = embed[ids]
        for l in layers:
            h = rms_norm(x, l["n1"])
            q = l["q"](h).view(B, T, H, D).transpose(1, 2)
            k = l["k"](h).view(B, T, Hkv, D).transpose(1, 2)
            v = l["v"](h).view(B, T, Hkv, D).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k, v = k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1)
            s = (q @ k.transpose(2, 3)) / math.sqrt(D)
            o = torch.softmax(s.masked_fill(causal, float("-inf")), -1) @ v
            x = x + l["o"](o.transpose(1, 2).reshape(B, T, H * D))
            h = rms_norm(x, l["n2"])
            x = x + l["down"](F.silu(l["gate"](h)) * l["up"](h))
        logits = F.linear(rms_norm(x, torch.ones(C)), lm_head)
        return F.cross_entropy(logits.view(-1, V), labels.reshape(-1))

    rates = []
    for step in range(args.steps):
        start = time.perf_counter()
        rows = torch.arange(step * B, (step + 1) * B) % data.shape[0]
        loss = forward(data[rows, :T], data[rows, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        rates.append(B * T / (time.perf_counter() - start))
    return statistics.median(rates[WARMUP:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loraplan", default="build/cli/loraplan")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--attention", default="eager", choices=["eager", "efficient"])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    a = b = 0
    for _ in range(args.rounds):
        a = max(a, ours(args))
        b = max(b, plain(args))
    print(f"{MODEL}, B {args.micro_batch}, T {args.seq_len}, LoRA r {RANK} all-linear, fp32, "
          f"{args.attention} attention, 1 thread, {args.steps} steps (median after {WARMUP}, "
          f"best of {args.rounds})")
    print(f"loraplan train (LibTorch {torch.__version__.split('+')[0]} C++): {a:9.0f} tokens/s")
    print(f"plain PyTorch loop (Python, torch {torch.__version__}, eager attention): {b:9.0f} tokens/s")
    print(f"ratio loraplan / PyTorch: {a / b:.2f}")


if __name__ == "__main__":
    main()
