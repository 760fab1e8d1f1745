#!/usr/bin/env python3
"""Holds loraplan's executor against Hugging Face transformers and PEFT on tiny models.

Two halves, because the two sides rarely live on one machine:

  prepare DIR [--loraplan BIN]   needs torch (Debian's /usr/bin/python3 will do) and loraplan.
      For each case (one per layout and rotary scaling: llama with llama3/linear/dynamic rope,
      mistral with a sliding window, qwen2 with yarn, qwen3, phi3 with longrope and partial
      rotary, gemma2 with windows and softcaps) writes DIR/CASE/model (config.json and
      model.safetensors with random fp32 weights), DIR/CASE/data.jsonl (one sequence), then
      trains with `loraplan train --weights fp32` twice from the same seed: 1 step (its adapter
      is DIR/CASE/step1) and 2 steps (DIR/CASE/run2/report.json). Step 1's loss is the base
      model's (LoRA B starts at zero); step 2's loss is the model with step 1's adapter, on the
      same sequence (the learning rate of the first step does not depend on the step count).

  cuda DIR [--loraplan BIN]      needs a CUDA build of loraplan and a GPU: trains each case's two
      steps again with --device cuda and requires the CPU run's losses (relative 1e-4).

  check DIR                      needs torch, transformers and peft.
      Loads each model with AutoModelForCausalLM (fp32, eager attention), requires that every
      tensor was used, and compares its loss on the sequence with step 1's; loads step 1's
      adapter with PeftModel.from_pretrained, requires that every adapter tensor landed in the
      model unchanged, and compares the loss with step 2's. Prints one row per case and exits 1
      on any difference above the tolerance (relative 1e-4).
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys

TOL = 1e-4
VOCAB, HIDDEN, INTER, LAYERS, HEADS, KV, T = 256, 64, 128, 2, 4, 2, 32


def cases():
    base = {"vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": INTER,
            "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV,
            "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "hidden_act": "silu", "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2,
            "pad_token_id": 0}

    def cfg(model_type, arch, **kw):
        c = dict(base, model_type=model_type, architectures=[arch])
        c.update(kw)
        return c

    return {
        "llama-llama3": cfg("llama", "LlamaForCausalLM", tie_word_embeddings=False, rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16}),
        "llama-linear": cfg("llama", "LlamaForCausalLM", tie_word_embeddings=True,
                            rope_scaling={"rope_type": "linear", "factor": 2.0}),
        "llama-dynamic": cfg("llama", "LlamaForCausalLM", tie_word_embeddings=False,
                             max_position_embeddings=16,
                             rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
        "mistral-window": cfg("mistral", "MistralForCausalLM", tie_word_embeddings=False,
                              sliding_window=8, head_dim=16),
        "qwen2-yarn": cfg("qwen2", "Qwen2ForCausalLM", tie_word_embeddings=True, rope_scaling={
            "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}),
        "qwen3": cfg("qwen3", "Qwen3ForCausalLM", tie_word_embeddings=True, head_dim=32,
                     attention_bias=False),
        "phi3-longrope": cfg("phi3", "Phi3ForCausalLM", tie_word_embeddings=False,
                             partial_rotary_factor=0.75, original_max_position_embeddings=16,
                             rms_norm_eps=1e-5, rope_scaling={
                                 "type": "longrope",
                                 "short_factor": [1.0 + 0.1 * i for i in range(6)],
                                 "long_factor": [1.0 + 0.7 * i for i in range(6)]}),
        "gemma2": cfg("gemma2", "Gemma2ForCausalLM", tie_word_embeddings=True, head_dim=16,
                      hidden_activation="gelu_pytorch_tanh", hidden_act="gelu_pytorch_tanh",
                      sliding_window=8, query_pre_attn_scalar=24,
                      attn_logit_softcapping=5.0, final_logit_softcapping=3.0),
    }


def tensors(c, torch):
    """The model's tensors with Hugging Face names, random and large enough that a wrong
    rotation, mask or norm moves the loss well past the tolerance."""
    g = torch.Generator().manual_seed(7)

    def rand(*shape, mean=0.0, std=0.2):
        return (torch.randn(*shape, generator=g) * std + mean).float()

    t = c["model_type"]
    hd = c.get("head_dim", HIDDEN // HEADS)
    q, kv = HEADS * hd, KV * hd
    gemma = t == "gemma2"
    norm_mean = 0.0 if gemma else 1.0
    out = {"model.embed_tokens.weight": rand(VOCAB, HIDDEN, std=0.5)}
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        out[p + "input_layernorm.weight"] = rand(HIDDEN, mean=norm_mean, std=0.1)
        if t == "phi3":
            out[p + "self_attn.qkv_proj.weight"] = rand(q + 2 * kv, HIDDEN)
        else:
            for name, rows in (("q", q), ("k", kv), ("v", kv)):
                out[p + f"self_attn.{name}_proj.weight"] = rand(rows, HIDDEN)
                if t == "qwen2":
                    out[p + f"self_attn.{name}_proj.bias"] = rand(rows, std=0.1)
        if t == "qwen3":
            out[p + "self_attn.q_norm.weight"] = rand(hd, mean=1.0, std=0.1)
            out[p + "self_attn.k_norm.weight"] = rand(hd, mean=1.0, std=0.1)
        out[p + "self_attn.o_proj.weight"] = rand(HIDDEN, q)
        out[p + "post_attention_layernorm.weight"] = rand(HIDDEN, mean=norm_mean, std=0.1)
        if gemma:
            out[p + "pre_feedforward_layernorm.weight"] = rand(HIDDEN, std=0.1)
            out[p + "post_feedforward_layernorm.weight"] = rand(HIDDEN, std=0.1)
        if t == "phi3":
            out[p + "mlp.gate_up_proj.weight"] = rand(2 * INTER, HIDDEN)
        else:
            out[p + "mlp.gate_proj.weight"] = rand(INTER, HIDDEN)
            out[p + "mlp.up_proj.weight"] = rand(INTER, HIDDEN)
        out[p + "mlp.down_proj.weight"] = rand(HIDDEN, INTER)
    out["model.norm.weight"] = rand(HIDDEN, mean=norm_mean, std=0.1)
    if not c["tie_word_embeddings"]:
        out["lm_head.weight"] = rand(VOCAB, HIDDEN)
    return out


def write_safetensors(path, named):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in named.items():
        data = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path, torch):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        assert h["dtype"] == "F32", (path, name, h["dtype"])
        a, b = h["data_offsets"]
        out[name] = torch.frombuffer(bytearray(body[a:b]), dtype=torch.float32).reshape(h["shape"])
    return out


def train_flags(loraplan, device):
    return [loraplan, "train", "--weights", "fp32", "--compute-dtype", "fp32", "--device", device,
            "--seq-len", str(T), "--micro-batch", "1", "--grad-accum", "1", "--lora-rank", "8",
            "--lora-alpha", "16", "--lora-dropout", "0", "--lr", "0.02", "--checkpoint", "none",
            "--seed", "3"]


def prepare(root, loraplan):
    import torch
    os.makedirs(root, exist_ok=True)
    tokens = torch.randint(0, VOCAB, (T,), generator=torch.Generator().manual_seed(11)).tolist()
    train = train_flags(loraplan, "cpu")
    for name, c in cases().items():
        d = os.path.join(root, name)
        os.makedirs(os.path.join(d, "model"), exist_ok=True)
        with open(os.path.join(d, "model", "config.json"), "w") as f:
            json.dump(c, f, indent=1)
        write_safetensors(os.path.join(d, "model", "model.safetensors"), tensors(c, torch))
        with open(os.path.join(d, "data.jsonl"), "w") as f:
            f.write(json.dumps({"input_ids": tokens}) + "\n")
        common = train + ["--model", os.path.join(d, "model"), "--data", os.path.join(d, "data.jsonl")]
        subprocess.run(common + ["--steps", "1", "--out", os.path.join(d, "step1")], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(common + ["--steps", "2", "--out", os.path.join(d, "run2")], check=True,
                       stdout=subprocess.DEVNULL)
        losses = [s["loss"] for s in json.load(open(os.path.join(d, "run2", "report.json")))["steps"]]
        print(f"{name:16s} loraplan loss: base {losses[0]:.6f}, after one step {losses[1]:.6f}")
        if abs(losses[1] - losses[0]) < 20 * TOL * abs(losses[0]):
            sys.exit(f"{name}: one step moved the loss by only {losses[1] - losses[0]:.2e}; "
                     "the adapter check would not see a wrong adapter")


def check(root):
    import torch
    import transformers
    import peft
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    print(f"transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}")
    failures = 0
    rows = []
    for name in cases():
        try:
            row, problems = check_case(root, name, torch, AutoModelForCausalLM)
        except Exception as e:  # one broken case must not hide the others
            row, problems = (name, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan), [f"{type(e).__name__}: {e}"]
        ok = row[3] <= TOL and row[6] <= TOL and not problems
        failures += not ok
        rows.append(row + ("ok" if ok else "FAIL",))
        for p in problems:
            print(f"{name}: {p}")
    print(f"{'case':16s} {'loraplan':>10s} {'transformers':>12s} {'rel':>8s}   "
          f"{'loraplan+A':>10s} {'peft':>10s} {'rel':>8s}")
    for r in rows:
        print(f"{r[0]:16s} {r[1]:10.6f} {r[2]:12.6f} {r[3]:8.1e}   {r[4]:10.6f} {r[5]:10.6f} {r[6]:8.1e}  {r[7]}")
    print(f"{len(rows) - failures}/{len(rows)} cases agree within relative {TOL}")
    return 1 if failures else 0


def check_case(root, name, torch, AutoModelForCausalLM):
    from peft import PeftModel
    d = os.path.join(root, name)
    steps = json.load(open(os.path.join(d, "run2", "report.json")))["steps"]
    ids = torch.tensor([json.loads(open(os.path.join(d, "data.jsonl")).readline())["input_ids"]])
    model, info = AutoModelForCausalLM.from_pretrained(
        os.path.join(d, "model"), dtype=torch.float32, attn_implementation="eager",
        output_loading_info=True)
    problems = [f"{k}: {v}" for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")]
    model.eval()
    with torch.no_grad():
        base = model(input_ids=ids, labels=ids).loss.item()
    lora = PeftModel.from_pretrained(model, os.path.join(d, "step1"))
    lora.eval()
    saved = read_safetensors(os.path.join(d, "step1", "adapter_model.safetensors"), torch)
    state = {k: v for k, v in lora.state_dict().items() if "lora_" in k}
    for k, v in saved.items():
        key = k.replace(".weight", ".default.weight")
        if key not in state:
            problems.append(f"adapter tensor {k} has no place in the PEFT model")
        elif not torch.equal(state[key].float().cpu(), v):
            problems.append(f"adapter tensor {k} changed on loading")
    if len(state) != len(saved):
        problems.append(f"PEFT model has {len(state)} LoRA tensors, the adapter {len(saved)}")
    with torch.no_grad():
        tuned = lora(input_ids=ids, labels=ids).loss.item()
    e1 = abs(base - steps[0]["loss"]) / abs(base)
    e2 = abs(tuned - steps[1]["loss"]) / abs(tuned)
    return (name, steps[0]["loss"], base, e1, steps[1]["loss"], tuned, e2), problems


def cuda(root, loraplan):
    """The same two steps with --device cuda: the losses must match the CPU run's."""
    import tempfile
    failures = 0
    for name in cases():
        d = os.path.join(root, name)
        cpu = [s["loss"] for s in json.load(open(os.path.join(d, "run2", "report.json")))["steps"]]
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(train_flags(loraplan, "cuda") + [
                "--model", os.path.join(d, "model"), "--data", os.path.join(d, "data.jsonl"),
                "--steps", "2", "--out", out], check=True, stdout=subprocess.DEVNULL)
            gpu = [s["loss"] for s in json.load(open(os.path.join(out, "report.json")))["steps"]]
        errs = [abs(g - c) / abs(c) for g, c in zip(gpu, cpu)]
        ok = max(errs) <= TOL
        failures += not ok
        print(f"{name:16s} cpu {cpu[0]:.6f} {cpu[1]:.6f}  cuda {gpu[0]:.6f} {gpu[1]:.6f}  "
              f"rel {max(errs):.1e}  {'ok' if ok else 'FAIL'}")
    print(f"{len(cases()) - failures}/{len(cases())} cases: CUDA losses within relative {TOL} of the CPU's")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("dir")
    p.add_argument("--loraplan", default="build/cli/loraplan")
    c = sub.add_parser("check")
    c.add_argument("dir")
    g = sub.add_parser("cuda")
    g.add_argument("dir")
    g.add_argument("--loraplan", default="build-cuda/cli/loraplan")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a.dir, a.loraplan)
        return 0
    if a.cmd == "cuda":
        return cuda(a.dir, a.loraplan)
    return check(a.dir)


if __name__ == "__main__":
    sys.exit(main())
