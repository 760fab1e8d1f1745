// make_big_onnx OUT.onnx MiB: writes a llama-shaped ONNX model with Hugging Face tensor names
// and embedded fp32 weights of at least MiB mebibytes, for checking that reading it stays small.
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <string>

#include "fixtures/onnx_writer.h"

namespace {

using loraplan::planner::DType;
using loraplan::planner::TensorRecord;

constexpr int64_t kMiB = 1 << 20;
constexpr int64_t kF32Bytes = 4;

struct Shape {
  int64_t V = 32000;  // vocab
  int64_t C = 1024;   // hidden
  int64_t I = 2816;   // MLP intermediate, 2.75 C
  int64_t L = 1;      // layers

  int64_t embed_bytes() const { return 2 * V * C * kF32Bytes; }  // embed_tokens + lm_head
  int64_t layer_bytes() const { return (4 * C * C + 3 * C * I + 2 * C) * kF32Bytes; }
  int64_t total_bytes() const { return embed_bytes() + L * layer_bytes() + C * kF32Bytes; }
};

// The widest of C = 1024, 512, ... 64 whose embeddings and one layer fit the target, then as
// many layers as it takes to reach it.
Shape shape_for(int64_t target_bytes) {
  Shape s;
  while (s.C > 64 && s.embed_bytes() + s.layer_bytes() > target_bytes) {
    s.C /= 2;
    s.I = s.C * 11 / 4;
  }
  while (s.total_bytes() < target_bytes) ++s.L;
  return s;
}

// One row per tensor, in the order a Hugging Face llama checkpoint lists them.
std::vector<TensorRecord> llama_tensors(const Shape& s) {
  auto f32 = [](std::string name, std::vector<int64_t> shape) {
    return TensorRecord{std::move(name), std::move(shape), DType::kF32, ""};
  };
  std::vector<TensorRecord> t = {f32("model.embed_tokens.weight", {s.V, s.C})};
  for (int64_t l = 0; l < s.L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      t.push_back(f32(p + "self_attn." + proj + ".weight", {s.C, s.C}));
    }
    t.push_back(f32(p + "mlp.gate_proj.weight", {s.I, s.C}));
    t.push_back(f32(p + "mlp.up_proj.weight", {s.I, s.C}));
    t.push_back(f32(p + "mlp.down_proj.weight", {s.C, s.I}));
    t.push_back(f32(p + "input_layernorm.weight", {s.C}));
    t.push_back(f32(p + "post_attention_layernorm.weight", {s.C}));
  }
  t.push_back(f32("model.norm.weight", {s.C}));
  t.push_back(f32("lm_head.weight", {s.V, s.C}));
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t mib = 0;
  const std::string_view arg = argc == 3 ? argv[2] : "";
  const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), mib);
  if (argc != 3 || ec != std::errc() || end != arg.data() + arg.size() || mib <= 0) {
    std::fprintf(stderr, "usage: make_big_onnx OUT.onnx MiB\n");
    return 2;
  }
  const Shape s = shape_for(mib * kMiB);
  try {
    loraplan::testing::write_onnx_model(argv[1], llama_tensors(s));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_big_onnx: %s\n", e.what());
    return 1;
  }
  const auto size = static_cast<long long>(std::filesystem::file_size(argv[1]));
  std::printf("%s: %lld bytes (%.1f MiB), L=%lld C=%lld I=%lld V=%lld fp32\n", argv[1], size,
              static_cast<double>(size) / kMiB, static_cast<long long>(s.L),
              static_cast<long long>(s.C), static_cast<long long>(s.I),
              static_cast<long long>(s.V));
  return 0;
}
