// Writes the seed corpora of the harnesses: valid files of every kind the readers take, made by
// the same code that writes them for real (profiles, plan_json, the ONNX fixture writer), so no
// binary seed is committed. Usage: make_seeds OUT_DIR  (writes OUT_DIR/<harness>/...).
#include <filesystem>
#include <iostream>

#include "fixtures/onnx_writer.h"
#include "fuzz_support.h"
#include "loraplan/planner/cost_model.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/json_fields.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/plan_file.h"
#include "loraplan/planner/plan_search.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/train_config.h"
#include "loraplan/planner/weights.h"
#include "loraplan/reports/estimate_report.h"
#include "loraplan/reports/run_report.h"

namespace loraplan::fuzz {
namespace {

namespace fs = std::filesystem;
using planner::DType;

const char* const kTinyProfiles[] = {"tiny-llama", "tiny-gemma2", "tiny-phi3", "tiny-qwen2",
                                     "tiny-qwen3"};

// Every model profile is a real config.json.
void config_seeds(const fs::path& out) {
  for (const fs::directory_entry& e :
       fs::directory_iterator(LORAPLAN_SOURCE_DIR "/profiles/models")) {
    fs::copy_file(e.path(), out / e.path().filename(), fs::copy_options::overwrite_existing);
  }
}

void safetensors_seeds(const fs::path& out) {
  for (const char* profile : kTinyProfiles) {
    for (DType dtype : {DType::kBF16, DType::kF32}) {
      const std::string name =
          std::string(profile) + "-" + std::string(planner::safetensors_dtype_name(dtype));
      write_file(out / (name + ".safetensors"), safetensors_bytes(tiny_tensors(profile, dtype)));
    }
  }
  write_file(out / "scalar.safetensors", safetensors_bytes({{"step", {}, DType::kI64, ""}}));
  write_file(out / "empty.safetensors", safetensors_bytes({}));
}

void index_seeds(const fs::path& out) {
  const fs::path shards =
      fs::temp_directory_path() / ("loraplan-seeds-" + std::to_string(::getpid()));
  fs::create_directories(shards);
  write_file(out / "model.safetensors.index.json",
             write_shards(shards, tiny_tensors("tiny-llama", DType::kBF16)));
  fs::remove_all(shards);
}

void onnx_seeds(const fs::path& out) {
  for (DType dtype : {DType::kBF16, DType::kF32, DType::kF16}) {
    const std::string name =
        "tiny-llama-" + std::string(planner::safetensors_dtype_name(dtype)) + ".onnx";
    testing::write_onnx_model(out / name, tiny_tensors("tiny-llama", dtype));
  }
  // External weights: the harness keeps the matching model.onnx.data beside its input.
  testing::write_onnx_model(out / "external.onnx", tiny_tensors("tiny-llama", DType::kBF16),
                            {.external_data = true});
  fs::remove(out / "external.onnx.data");
  testing::write_onnx_model_raw(out / "raw.onnx", {{"w", {2, 3}, 1, std::string(24, '\1')},
                                                   {"s", {2}, 8, ""},
                                                   {"q", {4}, 22, std::string(2, '\0')}});
}

// A plan for the CPU and one for a GPU, as `loraplan plan -o` writes them.
void plan_seeds(const fs::path& out) {
  use_source_profiles();
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  planner::SearchSpace space;
  space.margin_share = 0.05;
  for (const bool cpu : {true, false}) {
    planner::TrainConfig base;
    base.seq_len = 64;
    base.device = cpu ? planner::Device::kCpu : planner::Device::kCuda;
    base.compute = cpu ? DType::kF32 : DType::kBF16;
    base.lora_targets = planner::parse_lora_targets("all-linear", m, "--lora-targets");
    base.checkpointed.assign(m.layers, false);
    base.offloaded.assign(m.layers, false);
    const planner::GpuProfile gpu = planner::resolve_gpu("t4");
    const planner::DeviceModel device =
        cpu ? planner::cpu_device(planner::parse_size("3MiB", "budget"))
            : planner::cuda_device(gpu, 0);
    const planner::Rates rates =
        cpu ? planner::cpu_rates(1) : planner::gpu_rates(gpu, base.compute);
    const planner::PlanSearch search = planner::search_plan(m, base, device, rates, space);
    write_file(out / (cpu ? "cpu.json" : "t4.json"),
               planner::plan_json({"tiny-llama", m, device, rates, space, search}).dump(2) + "\n");
  }
}

// report.json as `loraplan train` writes it: a completed run and one that ran out of memory.
void run_report_seeds(const fs::path& out) {
  use_source_profiles();
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  planner::TrainConfig c;
  c.seq_len = 16;
  c.grad_accum = 1;
  c.device = planner::Device::kCpu;
  c.compute = DType::kF32;
  c.lora_targets = planner::parse_lora_targets("all-linear", m, "--lora-targets");
  c.checkpointed.assign(m.layers, false);
  c.offloaded.assign(m.layers, false);
  nlohmann::ordered_json report;
  report["model"] = reports::run_model_json(reports::run_model("tiny-llama", m));
  report["config"] = reports::config_json(c);
  report["training"] = {{"steps", 3}, {"gpu", nullptr}};
  report["measured"]["peak_bytes"] = 1934492;
  int64_t peak = 1000000;
  for (const char* phase : {"fwd L0", "fwd L1", "loss", "bwd L1", "bwd L0", "optim"}) {
    report["measured"]["phases"].push_back({{"name", phase}, {"peak_bytes", peak += 150000}});
  }
  report["out_of_memory"] = false;
  report["error"] = nullptr;
  write_file(out / "report.json", report.dump(2) + "\n");
  report["training"]["gpu"] = "t4";
  report["config"]["device"] = "cuda";
  report["out_of_memory"] = true;
  report["error"] = "budget of 1.0 MiB exceeded in phase loss";
  write_file(out / "oom.json", report.dump() + "\n");
}

// Dataset rows: pre-tokenized ids below a vocabulary of 256, labels, and rows of other kinds.
void dataset_seeds(const fs::path& out) {
  write_file(out / "data.jsonl",
             "{\"input_ids\": [1, 2, 3, 4, 5, 6, 7, 8]}\n{\"input_ids\": [255, 0]}\n\n");
  write_file(out / "one.jsonl",
             "{\"input_ids\":[10,20,30,40,50,60,70,80,90,100,110,120,130,140,150,160]}");
  write_file(out / "labels.jsonl",
             "{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 3]}\n{\"text\": \"x\"}\n");
  write_file(out / "array.json",
             "[{\"input_ids\": [5, 6]}, {\"prompt\": \"a\", \"completion\": \"b\"}]");
}

// Small tokenizer.json files with each kind of part: byte-level BPE with a Split pattern,
// SentencePiece-style BPE with Metaspace and byte fallback, a template and added tokens.
void tokenizer_seeds(const fs::path& out) {
  write_file(out / "byte_level.json", R"({"added_tokens": [{"id": 5, "content": "<|end|>",
    "special": true, "normalized": false}], "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern":
    {"Regex": "(?i:'s|'t)|\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
    "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false,
    "use_regex": false}]}, "post_processor": {"type": "ByteLevel"}, "decoder": {"type":
    "ByteLevel"}, "model": {"type": "BPE", "ignore_merges": true, "vocab": {"a": 0, "b": 1,
    "\u0120": 2, "ab": 3, "\u0120a": 4}, "merges": ["a b", ["\u0120", "a"]]}}
)");
  write_file(out / "metaspace.json", R"({"added_tokens": [{"id": 1, "content": "<s>",
    "special": true, "lstrip": true, "rstrip": true, "single_word": false, "normalized": false}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend":
    "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
    "split": true}, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken":
    {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens":
    {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}, "decoder": {"type": "Sequence",
    "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type":
    "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop":
    0}]}, "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
    "vocab": {"<unk>": 0, "<s>": 1, "<0x41>": 2, "\u2581": 3, "x": 4, "\u2581x": 5},
    "merges": ["\u2581 x"]}}
)");
}

// Chat templates in the styles of Llama 3, Qwen3 and Gemma, each with a conversation after a NUL
// (the harness's input format).
void chat_template_seeds(const fs::path& out) {
  const std::string conversation =
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Hi "},)"
      R"( {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHello", "tool_calls":)"
      R"( [{"function": {"name": "f", "arguments": {"a": 1, "b": [true, null]}}}]}])";
  const auto seed = [&](const char* name, const std::string& source) {
    write_file(out / name, source + std::string(1, '\0') + conversation);
  };
  seed("llama.jinja",
       "{% set loop_messages = messages %}{% for message in loop_messages %}"
       "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ "
       "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
       "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
       "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
       "{% endif %}");
  seed("qwen.jinja",
       "{%- set ns = namespace(last=messages|length - 1) %}\n"
       "{%- for message in messages[::-1] %}\n"
       "    {%- if message.role == 'user' and not message.content.startswith('<tool') %}\n"
       "        {%- set ns.last = (messages|length - 1) - loop.index0 %}{%- endif %}\n"
       "{%- endfor %}\n"
       "{%- for message in messages %}\n"
       "    {%- if '</think>' in message.content %}\n"
       "        {{- message.content.split('</think>')[-1].lstrip('\\n') }}\n"
       "    {%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content }}{%- endif %}\n"
       "    {%- if message.tool_calls is defined %}{%- for call in message.tool_calls %}\n"
       "        {{- call.function.arguments | tojson }}{%- endfor %}{%- endif %}\n"
       "{%- endfor %}\n");
  seed("gemma.jinja",
       "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n"
       "{%- set prefix = messages[0]['content'] + '\n\n' -%}{%- set rest = messages[1:] -%}\n"
       "{%- else -%}{%- set prefix = '' -%}{%- set rest = messages -%}{%- endif -%}\n"
       "{%- for message in rest -%}\n"
       "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
       "{{ raise_exception('Conversation roles must alternate') }}{%- endif -%}\n"
       "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + "
       "'\n' + (prefix if loop.first else '') }}{{ message['content'] | trim }}"
       "{{ '<end_of_turn>\n' }}{%- endfor -%}\n");
}

}  // namespace
}  // namespace loraplan::fuzz

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using namespace loraplan::fuzz;
  if (argc != 2) {
    std::cerr << "usage: make_seeds OUT_DIR\n";
    return 2;
  }
  const fs::path out = argv[1];
  const std::pair<const char*, void (*)(const fs::path&)> kCorpora[] = {
      {"config_json", config_seeds},
      {"safetensors", safetensors_seeds},
      {"safetensors_index", index_seeds},
      {"onnx", onnx_seeds},
      {"plan", plan_seeds},
      {"run_report", run_report_seeds},
      {"dataset", dataset_seeds},
      {"tokenizer", tokenizer_seeds},
      {"chat_template", chat_template_seeds}};
  try {
    for (const auto& [harness, write] : kCorpora) {
      fs::create_directories(out / harness);
      write(out / harness);
    }
  } catch (const std::exception& e) {
    std::cerr << "make_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
