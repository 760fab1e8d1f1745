#!/usr/bin/python3
"""Generates profiles/ from the reference tables (models.json, gpus.json).

    /usr/bin/python3 scripts/gen_profiles.py [REFERENCE_DIR] [PROFILES_DIR]

REFERENCE_DIR defaults to ../shared/reference next to the repository root, PROFILES_DIR to the
repository's profiles/. The outputs are committed; rerun this script after editing a reference
table and commit the diff. Output is deterministic: sorted keys, 2-space indent, newline at end.

Writes:
  profiles/models/<name>.json   a Hugging Face config.json per model (+ "hf_id"), and the tiny
                                models used by tests, demos and benchmarks
  profiles/gpus/<slug>.json     one GPU profile per card (schema in GPU_KEYS below)
  profiles/cuda-overheads.json  context/workspace defaults for a GPU given only by size
"""

import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20

# Keys copied from a reference model entry into config.json: the ones a real config.json has.
# Derived fields of the reference (head_dim_effective, param_count, shapes, ...) stay out.
# rope_scaling is copied when complete (Llama 3.x's llama3 scaling). Phi-4-mini's longrope entry
# is abbreviated in the reference ("short_factor": "all 1.0", only the first and last long
# factors), so its profile has none: it rotates with the plain frequencies and without the
# attention factor sqrt(1 + ln 32 / ln 4096) = 1.19 that transformers multiplies cos and sin by.
# Its memory is the same; a real Phi-4-mini config.json gets both.
# Keys whose value is null are omitted (e.g. gemma-2 torch_dtype, Llama-2 rope_theta): readers
# then apply the family default. NULL_MEANS_OFF below are the exception.
CONFIG_KEYS = [
    "model_type", "architectures", "vocab_size", "hidden_size", "intermediate_size",
    "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "max_position_embeddings", "original_max_position_embeddings", "tie_word_embeddings",
    "rope_theta", "partial_rotary_factor", "hidden_act", "hidden_activation", "rms_norm_eps",
    "sliding_window", "use_sliding_window", "max_window_layers", "attention_bias", "mlp_bias",
    "torch_dtype", "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping",
]


def tiny(model_type, arch, **fields):
    """A tiny config.json: small enough to instantiate on a CPU in a test."""
    config = {
        "model_type": model_type,
        "architectures": [arch],
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    }
    config.update(fields)
    return config


# Hand-written tiny models. Each exercises one family's quirk at a size a unit test can build:
# GQA everywhere, tied vs untied lm_head, head_dim != hidden/heads (qwen3, gemma2), a fused
# qkv/gate_up with partial rotary (phi3), sliding window + softcapping (gemma2). Qwen2's q/k/v
# bias comes with the architecture, not from a config key.
TINY_MODELS = {
    "tiny-llama": tiny(
        "llama", "LlamaForCausalLM", vocab_size=256, hidden_size=64, intermediate_size=176,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        tie_word_embeddings=False, attention_bias=False, mlp_bias=False),
    "tiny-qwen2": tiny(
        "qwen2", "Qwen2ForCausalLM", vocab_size=256, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        tie_word_embeddings=True, use_sliding_window=False),
    "tiny-qwen3": tiny(
        "qwen3", "Qwen3ForCausalLM", vocab_size=256, hidden_size=64, head_dim=32,
        intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=False, attention_bias=False,
        use_sliding_window=False),
    "tiny-phi3": tiny(
        "phi3", "Phi3ForCausalLM", vocab_size=320, hidden_size=96, intermediate_size=192,
        num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
        partial_rotary_factor=0.75, tie_word_embeddings=True, rms_norm_eps=1e-05),
    "tiny-gemma2": tiny(
        "gemma2", "Gemma2ForCausalLM", vocab_size=256, hidden_size=64, intermediate_size=128,
        head_dim=32, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        tie_word_embeddings=True, sliding_window=32, attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0, query_pre_attn_scalar=32,
        hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh",
        attention_bias=False),
    # Large enough that step time is measurable, small enough for a CPU benchmark.
    "tiny-llama-256": tiny(
        "llama", "LlamaForCausalLM", vocab_size=1024, hidden_size=256, intermediate_size=688,
        num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4,
        tie_word_embeddings=False, attention_bias=False, mlp_bias=False),
}

# Reference GPU name -> profile slug. GeForce cards sold with a single memory size drop the size;
# those sold with several keep it (gtx-1060 3GB/6GB, rtx-2060 6GB/12GB, rtx-3050 6GB/8GB,
# rtx-3060 8GB/12GB, rtx-3080 10GB/12GB, rtx-4060-ti 8GB/16GB).
GPU_SLUGS = {
    "GeForce GTX 1060 6GB": "gtx-1060-6gb",
    "GeForce GTX 1660 Ti 6GB": "gtx-1660-ti",
    "GeForce RTX 2060 6GB": "rtx-2060-6gb",
    "GeForce RTX 3050 8GB": "rtx-3050-8gb",
    "GeForce RTX 3060 12GB": "rtx-3060-12gb",
    "GeForce RTX 3060 Laptop GPU 6GB": "rtx-3060-laptop-6gb",
    "GeForce RTX 3070 8GB": "rtx-3070",
    "GeForce RTX 3080 10GB": "rtx-3080-10gb",
    "GeForce RTX 3090 24GB": "rtx-3090",
    "GeForce RTX 4060 8GB": "rtx-4060",
    "GeForce RTX 4060 Ti 16GB": "rtx-4060-ti-16gb",
    "GeForce RTX 4070 12GB": "rtx-4070",
    "GeForce RTX 4080 16GB": "rtx-4080",
    "GeForce RTX 4090 24GB": "rtx-4090",
    "GeForce RTX 5090 32GB": "rtx-5090",
    "Tesla T4 16GB": "t4",
    "L4 24GB": "l4",
    "A10G 24GB (AWS g5)": "a10g",
    "A100 40GB (SXM4 / PCIe)": "a100-40gb",
    "A100 80GB (SXM4 / PCIe)": "a100-80gb",
    "H100 SXM5 80GB": "h100-sxm",
    "H100 PCIe 80GB": "h100-pcie",
    "H200 SXM 141GB": "h200",
    "L40S 48GB": "l40s",
}

# Where the reference holds several values (per variant or per power limit) or none, the value
# a profile uses instead, and why. A profile is a single card, so it needs one number.
GPU_OVERRIDES = {
    # Laptop clocks depend on the OEM power limit; 85 W is a mid-range design. The FP32 and tensor
    # rates are taken at the same limit so that they stay consistent with each other.
    "rtx-3060-laptop-6gb": {"fp32_tflops": 11.41, "tensor_tflops": 22.81},
    # The 80GB A100 ships as SXM4 (2039 GB/s) and PCIe (1935 GB/s); take the lower so that
    # bandwidth-bound estimates are not optimistic on the PCIe card.
    "a100-80gb": {"memory_bandwidth_gbps": 1935.0},
    # Desktop RTX 3050 is commonly reported as electrically x8 (Gen4 x8 = 15.75 GB/s); spec
    # databases say x16. Take the lower.
    "rtx-3050-8gb": {"pcie_host_gbps": 15.75},
    # NVIDIA publishes no A10G datasheet. 80 SMs (10240 CUDA cores, 320 tensor cores) at
    # ~1.71 GHz give 35 TFLOPS FP32 and, at the GeForce-style half rate for FP32 accumulate,
    # 70 TFLOPS dense FP16 tensor: the figures Baseten lists (source below), in line with the
    # reference's "lower tensor and higher CUDA-core throughput than A10 (31.2 / 125)".
    "a10g": {"fp32_tflops": 35.0, "tensor_tflops": 70.0},
}

CUDA_CONTEXT_BYTES = 300 * MIB  # lazy module loading; measured 287,047,680 B incl. a tensor
# Cards whose whole footprint outside the caching allocator was measured in a training process
# (scripts/cuda_overheads.py: the context, the cuBLAS handles of the threads that ran products and
# the kernels loaded): far above the bare context's 300 MiB.
MEASURED_CONTEXT = {
    "h200": (852295680, "measured with scripts/cuda_overheads.py on an H200, PyTorch 2.11.0+cu130, "
                        "driver 580.159: context, cuBLAS handles of three threads, loaded kernels"),
    "h100-sxm": (852295680, "measured with scripts/cuda_overheads.py on an H100 80GB HBM3, PyTorch "
                            "2.11.0+cu130, driver 580.159: context, cuBLAS handles of three threads, "
                            "loaded kernels"),
}
CUBLAS_WORKSPACE_PRE_HOPPER = 8519680  # CUBLAS_WORKSPACE_CONFIG :4096:2:16:8 = 8.125 MiB
CUBLAS_WORKSPACE_HOPPER_UP = 32 * MIB  # CC 9.x and Blackwell (10.x, 12.x)


def model_name(hf_id):
    return hf_id.split("/", 1)[1].lower()


def complete_rope_scaling(rope_scaling):
    """The reference's rope_scaling when it is a valid config value (no abbreviated fields)."""
    if not rope_scaling or rope_scaling.get("rope_type", rope_scaling.get("type")) == "longrope":
        return None
    return rope_scaling


# Keys whose null means "off" in transformers (no window, no capping) rather than "the default":
# kept as null for the families that read them.
NULL_MEANS_OFF = ["sliding_window", "attn_logit_softcapping", "final_logit_softcapping"]


def model_config(entry):
    config = {key: entry[key] for key in CONFIG_KEYS if entry.get(key) is not None}
    if entry.get("model_type") != "llama":
        config.update({key: None for key in NULL_MEANS_OFF if key in entry and entry[key] is None})
    rope_scaling = complete_rope_scaling(entry.get("rope_scaling"))
    if rope_scaling:
        config["rope_scaling"] = rope_scaling
    config["hf_id"] = entry["hf_id"]
    return config


def cublas_workspace_bytes(compute_capability):
    major = int(compute_capability.split(".")[0])
    return CUBLAS_WORKSPACE_HOPPER_UP if major >= 9 else CUBLAS_WORKSPACE_PRE_HOPPER


def rate(value, slug, key):
    """A reference rate as a float: 0 where the card has none (e.g. no tensor cores)."""
    if value is None:
        return 0.0
    if isinstance(value, dict):
        sys.exit(f"gen_profiles: {slug}: {key} has several values {value}; add a GPU_OVERRIDES "
                 "entry")
    return float(value)


def clean_source(source):
    # Some reference entries end in a stray '")' left over from quoting.
    if source.endswith('")') and source.count("(") < source.count(")"):
        return source[:-2]
    return source


def gpu_profile(entry):
    slug = GPU_SLUGS[entry["name"]]
    overrides = GPU_OVERRIDES.get(slug, {})

    def pick(key, ref_key):
        return float(overrides[key]) if key in overrides else rate(entry[ref_key], slug, key)

    cc = entry["compute_capability"]
    return slug, {
        "name": slug,
        "display_name": entry["name"],
        "arch": entry["arch"],
        "compute_capability": cc,
        "memory_bytes": int(entry["nvidia_smi_total_bytes"]),
        "memory_bandwidth_gbps": pick("memory_bandwidth_gbps", "memory_bandwidth_GBps"),
        "tensor_tflops": pick("tensor_tflops", "tensor_fp16_dense_fp32acc_tflops"),
        "fp32_tflops": pick("fp32_tflops", "fp32_tflops"),
        "pcie_host_gbps": pick("pcie_host_gbps", "pcie_host_GBps_per_direction_theoretical"),
        "bf16_native": bool(entry["bf16_native"]),
        "overheads": {
            "cuda_context_bytes": MEASURED_CONTEXT.get(slug, (CUDA_CONTEXT_BYTES,))[0],
            "cublas_workspace_bytes": cublas_workspace_bytes(cc),
        },
        "sources": [clean_source(s) for s in entry["sources"]] + list(MEASURED_CONTEXT.get(slug, (0,))[1:]),
    }


def overhead_sources(context):
    """The URLs behind the context and cuBLAS workspace figures, without trailing remarks."""
    texts = [m["source"] for m in context["measurements"]]
    for item in context["additional_first_use_allocations"]:
        texts.extend(item["sources"])
    urls = []
    for text in texts:
        url = text.split(" ", 1)[0]
        if url.startswith("http") and url not in urls:
            urls.append(url)
    return urls


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def main(argv):
    reference_dir = argv[1] if len(argv) > 1 else os.path.join(REPO_ROOT, "..", "shared",
                                                               "reference")
    profiles_dir = argv[2] if len(argv) > 2 else os.path.join(REPO_ROOT, "profiles")
    with open(os.path.join(reference_dir, "models.json"), encoding="utf-8") as f:
        models = json.load(f)["models"]
    with open(os.path.join(reference_dir, "gpus.json"), encoding="utf-8") as f:
        gpus = json.load(f)

    model_names = []
    for entry in models:
        name = model_name(entry["hf_id"])
        write_json(os.path.join(profiles_dir, "models", name + ".json"), model_config(entry))
        model_names.append(name)
    for name, config in TINY_MODELS.items():
        write_json(os.path.join(profiles_dir, "models", name + ".json"), config)
        model_names.append(name)

    unknown = [g["name"] for g in gpus["gpus"] if g["name"] not in GPU_SLUGS]
    if unknown:
        sys.exit(f"gen_profiles: no slug for GPU(s) {unknown}; add them to GPU_SLUGS")
    slugs = []
    for entry in gpus["gpus"]:
        slug, profile = gpu_profile(entry)
        write_json(os.path.join(profiles_dir, "gpus", slug + ".json"), profile)
        slugs.append(slug)

    write_json(os.path.join(profiles_dir, "cuda-overheads.json"), {
        "cuda_context_bytes": CUDA_CONTEXT_BYTES,
        "cublas_workspace_bytes": CUBLAS_WORKSPACE_PRE_HOPPER,
        "sources": overhead_sources(gpus["cuda_context_overhead"]),
    })
    print(f"wrote {len(model_names)} models, {len(slugs)} GPUs and cuda-overheads.json "
          f"to {profiles_dir}")


if __name__ == "__main__":
    main(sys.argv)
