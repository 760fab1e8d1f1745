// Property tests of the step simulator: random training configurations over the tiny model
// profiles, checked against the laws that the planner's search and its users rely on (a smaller
// micro-batch, rank or weight format never needs more memory; the breakdown adds up; the same
// input gives the same plan). Every property runs on the cpu device (exact bytes, the
// no-fragmentation lower bound) and on a 6 GB CUDA device (caching-allocator model + context).
//
// Run: build/tests/property_tests (ctest sets LORAPLAN_PROFILES to the source tree's profiles/).
// A failure prints the shrunk configuration as estimate flags and a reproduce string; replay it
// with RC_PARAMS="reproduce=<string>" build/tests/property_tests --gtest_filter=<test>.
//
// KNOWN FAILURES. The properties are written as the planner's contract states them and are not
// weakened; the ones marked "KNOWN FAILURE" below fail with the planner as it is, each note
// giving a shrunk counterexample and its cause. Two causes recur:
//   [segments] On cuda, peak_bytes includes the caching allocator's reserved segments. A larger
//     configuration can reserve one 2 MiB small-pool segment less (e.g. a tensor crosses 1 MiB
//     into the large pool, or best-fit reuse packs differently) while its lower bound and
//     allocated peak rise, so every "never rises" law can break by whole segments on cuda.
//   [rare] Some failures need a narrow draw (about 1 in 100 to 1 in 400 cases); with the
//     default 100 cases per property those tests fail in some runs only. Run with
//     RC_PARAMS="max_success=2000" (about 7 s) to see every one of them.

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <numeric>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "loraplan/planner/hardware.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/schedule.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/train_config.h"
#include "loraplan/planner/weights.h"

namespace loraplan::planner {
namespace {

// Sizes stay small so that one estimate takes microseconds and a property runs 100 cases fast.
constexpr int64_t kMinSeqLen = 8, kMaxSeqLen = 256;  // T
constexpr int64_t kMaxMicroBatch = 4;                // B
constexpr int64_t kMaxGradAccum = 3;
constexpr int64_t kMaxRank = 32;       // r
constexpr int64_t kMaxLossChunk = 64;  // tokens per cross-entropy chunk
constexpr int kMaxLayers = 4;          // the largest tiny profile (tiny-gemma2) has 4 layers

const std::vector<std::string> kModels = {"tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-phi3",
                                          "tiny-gemma2"};
// --lora-targets names; bit i of Case::targets selects kTargetNames[i].
constexpr const char* kTargetNames[] = {"q", "k", "v", "o", "gate", "up", "down"};
constexpr uint32_t kTargetSets = 1u << std::size(kTargetNames);

// One generated configuration. Layer sets are bit masks (bit l = layer l) so they shrink towards
// "none" and fit every profile: bits past the model's layer count are ignored.
struct Case {
  std::string model;
  Device device = Device::kCpu;
  int64_t seq_len = kMinSeqLen;
  int64_t micro_batch = 1;
  int64_t grad_accum = 1;
  QuantOptions weights;
  DType compute = DType::kBF16;
  int64_t lora_rank = 1;
  double lora_dropout = 0;
  uint32_t targets = 1;  // never 0: a run needs at least one adapter
  Optimizer optimizer = Optimizer::kAdamW;
  uint32_t checkpoint = 0;
  uint32_t offload = 0;
  Attention attention = Attention::kEfficient;
  int64_t loss_chunk = 0;  // 0 = full loss
};

std::string targets_text(uint32_t targets) {
  std::string text;
  for (size_t i = 0; i < std::size(kTargetNames); ++i) {
    if (targets & (1u << i)) text += (text.empty() ? "" : ",") + std::string(kTargetNames[i]);
  }
  return text;
}

std::vector<bool> layer_set(uint32_t mask, int64_t layers) {
  std::vector<bool> set(layers);
  for (int64_t l = 0; l < layers; ++l) set[l] = (mask >> l) & 1;
  return set;
}

// --offload takes "N" (the first N layers) where layer_set_text would say "all".
std::string offload_text(uint32_t mask, int64_t layers) {
  const std::string text = layer_set_text(layer_set(mask, layers));
  return text == "all" ? std::to_string(layers) : text;
}

// Profiles are read once: loading parses JSON, which would dominate a tiny estimate.
const ModelDesc& model(const std::string& name) {
  static std::map<std::string, ModelDesc> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, load_model(name)).first;
  return it->second;
}

DeviceModel device_model(Device device) {
  static const DeviceModel kCuda = cuda_device(resolve_gpu("6GB"), 0);
  return device == Device::kCuda ? kCuda : cpu_device(0);
}

// The case as `loraplan estimate` flags, so that a counterexample can be rerun by hand.
void showValue(const Case& c, std::ostream& os) {
  const int64_t layers = model(c.model).layers;
  os << "--model " << c.model << " --device " << device_name(c.device) << " --seq-len " << c.seq_len
     << " --micro-batch " << c.micro_batch << " --grad-accum " << c.grad_accum << " --weights "
     << weight_format_name(c.weights.format) << " --double-quant "
     << (c.weights.double_quant ? "on" : "off") << " --compute-dtype " << dtype_name(c.compute)
     << " --lora-rank " << c.lora_rank << " --lora-dropout " << c.lora_dropout << " --lora-targets "
     << targets_text(c.targets) << " --optimizer " << optimizer_name(c.optimizer)
     << " --checkpoint " << layer_set_text(layer_set(c.checkpoint, layers)) << " --offload "
     << offload_text(c.offload, layers) << " --attention " << attention_name(c.attention)
     << " --loss " << (c.loss_chunk == 0 ? "full" : "chunked:" + std::to_string(c.loss_chunk));
}

rc::Gen<Case> gen_case(Device device) {
  using namespace rc;
  // fp16 has no CPU matrix products in LibTorch, so the CLI refuses fp16 with --device cpu.
  const Gen<DType> compute = device == Device::kCpu
                                 ? gen::element(DType::kBF16, DType::kF32)
                                 : gen::element(DType::kBF16, DType::kF16, DType::kF32);
  return gen::build<Case>(
      gen::set(&Case::model, gen::elementOf(kModels)), gen::set(&Case::device, gen::just(device)),
      gen::set(&Case::seq_len, gen::inRange(kMinSeqLen, kMaxSeqLen + 1)),
      gen::set(&Case::micro_batch, gen::inRange<int64_t>(1, kMaxMicroBatch + 1)),
      gen::set(&Case::grad_accum, gen::inRange<int64_t>(1, kMaxGradAccum + 1)),
      gen::set(&Case::weights, gen::build<QuantOptions>(
                                   gen::set(&QuantOptions::format,
                                            gen::element(WeightFormat::kNf4, WeightFormat::kFp4,
                                                         WeightFormat::kInt8, WeightFormat::kBf16,
                                                         WeightFormat::kFp16, WeightFormat::kFp32)),
                                   gen::set(&QuantOptions::double_quant, gen::arbitrary<bool>()))),
      gen::set(&Case::compute, compute),
      gen::set(&Case::lora_rank, gen::inRange<int64_t>(1, kMaxRank + 1)),
      gen::set(&Case::lora_dropout, gen::element(0.0, 0.1)),
      gen::set(&Case::targets, gen::inRange<uint32_t>(1, kTargetSets)),
      gen::set(&Case::optimizer,
               gen::element(Optimizer::kAdamW, Optimizer::kAdamW8bit, Optimizer::kPagedAdamW8bit,
                            Optimizer::kSgd, Optimizer::kSgdMomentum)),
      gen::set(&Case::checkpoint, gen::inRange<uint32_t>(0, 1u << kMaxLayers)),
      gen::set(&Case::offload, gen::inRange<uint32_t>(0, 1u << kMaxLayers)),
      gen::set(&Case::attention, gen::element(Attention::kEager, Attention::kEfficient)),
      gen::set(&Case::loss_chunk,
               gen::oneOf(gen::just<int64_t>(0), gen::inRange<int64_t>(1, kMaxLossChunk + 1))));
}

TrainConfig config_of(const Case& c) {
  const ModelDesc& m = model(c.model);
  TrainConfig t;
  t.seq_len = c.seq_len;
  t.micro_batch = c.micro_batch;
  t.grad_accum = c.grad_accum;
  t.weights = c.weights;
  t.compute = c.compute;
  t.lora_rank = c.lora_rank;
  t.lora_dropout = c.lora_dropout;
  t.lora_targets = parse_lora_targets(targets_text(c.targets), m, "--lora-targets");
  t.optimizer = c.optimizer;
  t.checkpointed = layer_set(c.checkpoint, m.layers);
  t.offloaded = layer_set(c.offload, m.layers);
  t.attention = c.attention;
  t.loss_chunk = c.loss_chunk;
  t.device = c.device;
  validate(t, m);
  return t;
}

Estimate run(const Case& c) {
  return estimate(model(c.model), config_of(c), device_model(c.device));
}

// What the device needs: exact live bytes on cpu, reserved segments + context on cuda.
int64_t peak(const Case& c) {
  const Estimate e = run(c);
  return c.device == Device::kCpu ? e.lower_bound.peak_bytes : e.peak_bytes;
}

// Two values lo < hi drawn from [min, max].
std::pair<int64_t, int64_t> ordered_pair(int64_t min, int64_t max) {
  const int64_t lo = *rc::gen::inRange(min, max);
  const int64_t hi = *rc::gen::inRange(lo + 1, max + 1);
  return {lo, hi};
}

// --- Monotone in the sizes -----------------------------------------------------------------

void check_micro_batch(Device device) {
  Case small = *gen_case(device);
  const auto [lo, hi] = ordered_pair(1, kMaxMicroBatch);
  small.micro_batch = lo;
  Case large = small;
  large.micro_batch = hi;
  const int64_t p_small = peak(small), p_large = peak(large);
  RC_LOG() << "micro-batch " << lo << ": " << p_small << " B, " << hi << ": " << p_large << " B\n";
  RC_ASSERT(p_large >= p_small);
}
RC_GTEST_PROP(SimulatorProperty, PeakNeverFallsWithMicroBatchCpu, ()) {
  check_micro_batch(Device::kCpu);
}
// KNOWN FAILURE [segments][rare]: tiny-llama cuda T171 fp4 bf16 r3 k,v,gate adamw checkpoint
// all, offload layers:1, eager, full loss; micro-batch 3 -> 4: peak 341835776 -> 339738624 B
// (lower bound 13495586 -> 15079730 B rises; reserved 26 -> 24 MiB).
RC_GTEST_PROP(SimulatorProperty, PeakNeverFallsWithMicroBatchCuda, ()) {
  check_micro_batch(Device::kCuda);
}

void check_seq_len(Device device) {
  Case small = *gen_case(device);
  const auto [lo, hi] = ordered_pair(kMinSeqLen, kMaxSeqLen);
  small.seq_len = lo;
  Case large = small;
  large.seq_len = hi;
  const int64_t p_small = peak(small), p_large = peak(large);
  RC_LOG() << "seq-len " << lo << ": " << p_small << " B, " << hi << ": " << p_large << " B\n";
  RC_ASSERT(p_large >= p_small);
}
RC_GTEST_PROP(SimulatorProperty, PeakNeverFallsWithSeqLenCpu, ()) { check_seq_len(Device::kCpu); }
// KNOWN FAILURE [segments][rare]: tiny-phi3 cuda B2 bf16 weights, fp16 compute, r1, dropout 0.1,
// q, sgd-momentum, eager, full loss; seq-len 153 -> 210: peak 343932928 -> 341835776 B (lower
// bound 15481606 -> 20192656 B rises; reserved 28 -> 26 MiB).
RC_GTEST_PROP(SimulatorProperty, PeakNeverFallsWithSeqLenCuda, ()) { check_seq_len(Device::kCuda); }

void check_rank(Device device) {
  Case small = *gen_case(device);
  const auto [lo, hi] = ordered_pair(1, kMaxRank);
  small.lora_rank = lo;
  Case large = small;
  large.lora_rank = hi;
  const int64_t p_small = peak(small), p_large = peak(large);
  RC_LOG() << "rank " << lo << ": " << p_small << " B, " << hi << ": " << p_large << " B\n";
  RC_ASSERT(p_large >= p_small);
}
// KNOWN FAILURE [rare]: tiny-llama cpu T8 B1 fp32 weights, bf16 compute, targets gate,
// adamw-8bit; rank 20 -> 24: peak 626432 -> 603024 B. bitsandbytes keeps 32-bit state for
// tensors under 4096 elements (schedule.cc optimizer_state_bytes, "n < 4096"); at r 24 lora_B of
// gate [176, r] reaches 4224 elements and its state drops from 8 to about 2 bytes per element.
// Faithful to bitsandbytes (min_8bit_size), so the law itself does not hold for adamw-8bit.
RC_GTEST_PROP(SimulatorProperty, PeakNeverFallsWithRankCpu, ()) { check_rank(Device::kCpu); }
// KNOWN FAILURE [segments][rare]: tiny-llama cuda T128 grad-accum 2 fp32 weights, fp16 compute,
// q,k,o,gate,down, adamw-8bit, checkpoint all; rank 23 -> 24: peak 339738624 -> 337641472 B (the
// 8-bit threshold above; without adamw-8bit segment effects alone break it too).
RC_GTEST_PROP(SimulatorProperty, PeakNeverFallsWithRankCuda, ()) { check_rank(Device::kCuda); }

// --- Checkpointing ---------------------------------------------------------------------------

// Checkpointing more layers (a superset) never raises the no-fragmentation peak. On cuda the
// lower bound includes the cuBLAS workspace; the allocator's reserved peak is checked apart below.
void check_checkpoint_superset(Device device) {
  Case fewer = *gen_case(device);
  Case more = fewer;
  more.checkpoint |= *rc::gen::inRange<uint32_t>(1, 1u << model(fewer.model).layers);
  const int64_t p_fewer = run(fewer).lower_bound.peak_bytes;
  const int64_t p_more = run(more).lower_bound.peak_bytes;
  RC_LOG() << "lower bound, checkpoint mask " << fewer.checkpoint << ": " << p_fewer << " B, "
           << more.checkpoint << ": " << p_more << " B\n";
  RC_ASSERT(p_more <= p_fewer);
}
// KNOWN FAILURE (fails in most runs): tiny-qwen2 cpu T8 B1 fp16 weights, bf16 compute, r1, q,
// adamw-8bit, offload layers:0, eager, full loss; checkpoint none -> layers:0: lower bound
// 217808 -> 219344 B (+1536). A checkpointed layer runs its forward again inside backward
// (schedule.cc build_schedule, "forward(sb, run, input, true)"), where the gradient of the
// layer output [N, C] (1024 B) and the adapter gradients of later layers (512 B) are live. When
// that layer's forward is the step's peak (here: the offloaded layer's staged weights), the
// peak rises by them. Without offload it happens mostly when the last layer is added: its
// recompute also keeps the recomputed output [N, C] through its backward (about 58% of random
// draws that add the last layer, 2 in 844 that add another one).
RC_GTEST_PROP(SimulatorProperty, CheckpointSupersetNeverRaisesLowerBoundCpu, ()) {
  check_checkpoint_superset(Device::kCpu);
}
// KNOWN FAILURE: the same case with fp32 compute on cuda: lower bound 8804064 -> 8806624 B.
RC_GTEST_PROP(SimulatorProperty, CheckpointSupersetNeverRaisesLowerBoundCuda, ()) {
  check_checkpoint_superset(Device::kCuda);
}

// Not a law: the caching allocator's reserved peak depends on the order of requests, so a plan
// with fewer live bytes can still reserve more segments. Disabled; run it with
// --gtest_also_run_disabled_tests to get a shrunk example of by how much it can rise. Seen:
// always by one 2 MiB segment (14 in 3000 random draws), e.g. tiny-qwen3 cuda T194 B1 fp32, r15,
// v,o,down, offload layers:0, eager, chunked:21; checkpoint layers:0 -> layers:0,1 keeps the lower
// bound and the allocated peak equal but reserves 24 -> 26 MiB.
RC_GTEST_PROP(SimulatorProperty, DISABLED_CheckpointSupersetNeverRaisesAllocatorPeakCuda, ()) {
  Case fewer = *gen_case(Device::kCuda);
  Case more = fewer;
  more.checkpoint |= *rc::gen::inRange<uint32_t>(1, 1u << model(fewer.model).layers);
  const int64_t p_fewer = peak(fewer), p_more = peak(more);
  RC_LOG() << "cuda peak, checkpoint mask " << fewer.checkpoint << ": " << p_fewer << " B, "
           << more.checkpoint << ": " << p_more << " B (+" << p_more - p_fewer << ")\n";
  RC_ASSERT(p_more <= p_fewer);
}

// --- Weight formats ----------------------------------------------------------------------------

// Peaks of the same case with its frozen linears held in `larger` and in `smaller`.
std::pair<int64_t, int64_t> format_peaks(Device device, QuantOptions larger, QuantOptions smaller) {
  Case a = *gen_case(device);
  Case b = a;
  a.weights = larger;
  b.weights = smaller;
  const std::pair<int64_t, int64_t> peaks{peak(a), peak(b)};
  RC_LOG() << weight_format_name(larger.format) << (larger.double_quant ? "+dq" : "") << ": "
           << peaks.first << " B, " << weight_format_name(smaller.format)
           << (smaller.double_quant ? "+dq" : "") << ": " << peaks.second << " B\n";
  return peaks;
}

const QuantOptions kFp32{WeightFormat::kFp32, false};
const QuantOptions kBf16{WeightFormat::kBf16, false};
const QuantOptions kFp16{WeightFormat::kFp16, false};
const QuantOptions kInt8{WeightFormat::kInt8, false};
const QuantOptions kNf4{WeightFormat::kNf4, false};
const QuantOptions kNf4Dq{WeightFormat::kNf4, true};

void check_fp32_over_bf16(Device device) {
  const auto [fp32, bf16] = format_peaks(device, kFp32, kBf16);
  RC_ASSERT(fp32 >= bf16);
}
RC_GTEST_PROP(SimulatorProperty, Fp32NotBelowBf16Cpu, ()) { check_fp32_over_bf16(Device::kCpu); }
// KNOWN FAILURE [segments][rare]: tiny-qwen3 cuda T170 B2 bf16 compute r8 dropout 0.1 q
// adamw-8bit eager chunked:1: fp32 339738624 B < bf16 341835776 B, while the lower bound is
// 13724536 (fp32) > 13527928 (bf16).
RC_GTEST_PROP(SimulatorProperty, Fp32NotBelowBf16Cuda, ()) { check_fp32_over_bf16(Device::kCuda); }

void check_bf16_equals_fp16(Device device) {
  const auto [bf16, fp16] = format_peaks(device, kBf16, kFp16);
  RC_ASSERT(bf16 == fp16);
}
// KNOWN FAILURE: tiny-llama cpu T8 B1 bf16 compute r1 q paged-adamw-8bit eager full: bf16
// 308804 B, fp16 309536 B. Weights in a dtype other than the compute dtype are cast to it for
// every matmul (op_graph.cc materialised_weight_bytes, "const bool cast"), so fp16 weights under
// bf16 compute (and bf16 under fp16) carry a transient [out, in] copy that the matching dtype
// does not. Equal only with fp32 compute, where both are cast.
RC_GTEST_PROP(SimulatorProperty, Bf16EqualsFp16Cpu, ()) { check_bf16_equals_fp16(Device::kCpu); }
// Holds on the tiny profiles only because the cast copies (<= 64 KiB) vanish in 2 MiB segments.
RC_GTEST_PROP(SimulatorProperty, Bf16EqualsFp16Cuda, ()) { check_bf16_equals_fp16(Device::kCuda); }

void check_bf16_over_int8(Device device) {
  const auto [bf16, int8] = format_peaks(device, kBf16, kInt8);
  RC_ASSERT(bf16 >= int8);
}
RC_GTEST_PROP(SimulatorProperty, Bf16NotBelowInt8Cpu, ()) { check_bf16_over_int8(Device::kCpu); }
// KNOWN FAILURE [segments][rare]: tiny-qwen2 cuda T85 B4 fp16 compute r17 q,k,o,up adamw-8bit
// checkpoint layers:0 offload layers:1 efficient chunked:1: bf16 337641472 B < int8 339738624 B
// (lower bound 10396704 bf16 > 10327072 int8).
RC_GTEST_PROP(SimulatorProperty, Bf16NotBelowInt8Cuda, ()) { check_bf16_over_int8(Device::kCuda); }

void check_int8_over_nf4(Device device) {
  const auto [int8, nf4] = format_peaks(device, kInt8, kNf4);
  RC_ASSERT(int8 >= nf4);
}
RC_GTEST_PROP(SimulatorProperty, Int8NotBelowNf4Cpu, ()) { check_int8_over_nf4(Device::kCpu); }
// KNOWN FAILURE [segments][rare]: tiny-llama cuda T190 B4 grad-accum 2 fp16 compute r26
// q,k,v,o,gate,down adamw checkpoint layers:0 offload 2 efficient full: int8 341835776 B < nf4
// 343932928 B with equal lower bounds (13969252 B).
RC_GTEST_PROP(SimulatorProperty, Int8NotBelowNf4Cuda, ()) { check_int8_over_nf4(Device::kCuda); }

void check_double_quant(Device device) {
  const auto [nf4, nf4_dq] = format_peaks(device, kNf4, kNf4Dq);
  RC_ASSERT(nf4 >= nf4_dq);
}
// KNOWN FAILURE (fails in nearly every draw on the tiny profiles): tiny-qwen3 cpu T8 B1 bf16
// compute r1 dropout 0.1 q sgd efficient full: nf4 190404 B, nf4 + double quant 200244 B.
// Double quant saves 3 bytes per 64-element block but adds a fixed 1028 B per weight (the
// 256-entry fp32 map state2.code and the offset; schedule.cc alloc_linear_weight
// "weight.code_map2", weights.cc linear_weight_bytes "map2"), so it only pays for weights of more
// than about 343 blocks (22k elements); every tiny linear is smaller. This follows
// shared/reference/formats.md 1.4 ("a per-tensor copy"); if bitsandbytes in fact shares the
// cached dynamic map between weights, the fixed cost is 4 B and the law would hold.
RC_GTEST_PROP(SimulatorProperty, Nf4NotBelowNf4DoubleQuantCpu, ()) {
  check_double_quant(Device::kCpu);
}
// KNOWN FAILURE [segments][rare]: tiny-gemma2 cuda T62 B4 fp32 compute r8 q,k,gate,up,down
// sgd-momentum checkpoint layers:3 eager full: nf4 343932928 B, nf4 + dq 346030080 B (lower
// bound +19680 B as on cpu, then one more segment).
RC_GTEST_PROP(SimulatorProperty, Nf4NotBelowNf4DoubleQuantCuda, ()) {
  check_double_quant(Device::kCuda);
}

// FP4 and NF4 differ in their 16 code values only, not in bytes (with or without double quant).
void check_fp4_equals_nf4(Device device) {
  const bool dq = *rc::gen::arbitrary<bool>();
  const auto [nf4, fp4] = format_peaks(device, {WeightFormat::kNf4, dq}, {WeightFormat::kFp4, dq});
  RC_ASSERT(nf4 == fp4);
}
RC_GTEST_PROP(SimulatorProperty, Fp4EqualsNf4Cpu, ()) { check_fp4_equals_nf4(Device::kCpu); }
RC_GTEST_PROP(SimulatorProperty, Fp4EqualsNf4Cuda, ()) { check_fp4_equals_nf4(Device::kCuda); }

// --- Loss and attention ------------------------------------------------------------------------

void check_chunked_loss(Device device) {
  Case chunked = *gen_case(device);
  chunked.loss_chunk = *rc::gen::inRange<int64_t>(1, kMaxLossChunk + 1);
  Case full = chunked;
  full.loss_chunk = 0;
  const int64_t p_chunked = peak(chunked), p_full = peak(full);
  RC_LOG() << "chunked:" << chunked.loss_chunk << ": " << p_chunked << " B, full: " << p_full
           << " B\n";
  RC_ASSERT(p_chunked <= p_full);
}
// KNOWN FAILURE: tiny-qwen3 cpu T8 B1 fp4 fp32 compute r1 down paged-adamw-8bit efficient:
// chunked:8 308328 B, full 306240 B. A chunk's backward holds its recomputed logits, fp32 copy
// and log-probabilities plus a gradient, k V (a + 12) bytes (op_graph.cc head_graph, "chunk +
// k * V * 4"), while the full loss has freed the logits and their fp32 copy before backward
// (at most 12 N V). With the chunk at or near all N tokens (k > about 0.75-0.86 N) chunking
// costs more.
RC_GTEST_PROP(SimulatorProperty, ChunkedLossNeverRaisesPeakCpu, ()) {
  check_chunked_loss(Device::kCpu);
}
// KNOWN FAILURE [segments][rare]: tiny-phi3 cuda T77 B3 grad-accum 2 fp32/fp32 r16 q,gate sgd
// checkpoint layers:1 offload layers:1 eager: chunked:1 343932928 B, full 341835776 B with equal
// lower bounds (14031092 B).
RC_GTEST_PROP(SimulatorProperty, ChunkedLossNeverRaisesPeakCuda, ()) {
  check_chunked_loss(Device::kCuda);
}

void check_efficient_attention(Device device) {
  Case efficient = *gen_case(device);
  efficient.attention = Attention::kEfficient;
  Case eager = efficient;
  eager.attention = Attention::kEager;
  const int64_t p_efficient = peak(efficient), p_eager = peak(eager);
  RC_LOG() << "efficient: " << p_efficient << " B, eager: " << p_eager << " B\n";
  RC_ASSERT(p_efficient <= p_eager);
}
// KNOWN FAILURE: tiny-phi3 cpu T8 B1 fp16 weights, bf16 compute, r1 q adamw full: efficient
// 686192 B, eager 683440 B. Efficient attention keeps q, k, v, its output [N, H D] and the
// log-sum-exp for backward (op_graph.cc attention, "{q, k, v, o, lse}"); on Phi-3 v is a view of
// the fused qkv buffer, which it keeps whole. Eager keeps B H T T probabilities instead, which at
// T = 8 are smaller (960 B per layer here). At short T the efficient path's backward workspace,
// 2 B H min(T, 128) T fp32 + expanded K/V + [N, H D], can also exceed eager's softmax.
RC_GTEST_PROP(SimulatorProperty, EfficientAttentionNeverRaisesPeakCpu, ()) {
  check_efficient_attention(Device::kCpu);
}
// KNOWN FAILURE [segments][rare]: tiny-phi3 cuda T105 B4 bf16 weights fp32 compute r10 dropout
// 0.1 q,o,gate adamw-8bit chunked:1: efficient 348127232 B, eager 346030080 B although the lower
// bound falls from 21788500 (eager) to 18738880 B (efficient).
RC_GTEST_PROP(SimulatorProperty, EfficientAttentionNeverRaisesPeakCuda, ()) {
  check_efficient_attention(Device::kCuda);
}

// --- Bookkeeping -------------------------------------------------------------------------------

int64_t sum(const CategoryBytes& bytes) {
  return std::accumulate(bytes.begin(), bytes.end(), int64_t{0});
}

// The breakdown at the peak adds up to it; on cuda, fragmentation and context make up the rest.
void check_breakdown(Device device) {
  const Case c = *gen_case(device);
  const Estimate e = run(c);
  RC_ASSERT(sum(e.lower_bound.at_peak) == e.lower_bound.peak_bytes);
  RC_ASSERT(sum(e.lower_bound.at_peak) + (e.reserved_peak - e.lower_bound.peak_bytes) +
                e.context_bytes ==
            e.peak_bytes);
  if (device == Device::kCpu) {
    RC_ASSERT(e.context_bytes == 0);
    RC_ASSERT(e.peak_bytes == e.lower_bound.peak_bytes);
  }
}
RC_GTEST_PROP(SimulatorProperty, BreakdownSumsToPeakCpu, ()) { check_breakdown(Device::kCpu); }
RC_GTEST_PROP(SimulatorProperty, BreakdownSumsToPeakCuda, ()) { check_breakdown(Device::kCuda); }

void assert_same_schedule(const Schedule& a, const Schedule& b) {
  RC_ASSERT(a.buffers.size() == b.buffers.size());
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    const Buffer &x = a.buffers[i], &y = b.buffers[i];
    RC_ASSERT(std::strcmp(x.tag, y.tag) == 0);
    RC_ASSERT(x.layer == y.layer);
    RC_ASSERT(x.micro_batch == y.micro_batch);
    RC_ASSERT(x.bytes == y.bytes);
    RC_ASSERT(x.category == y.category);
  }
  RC_ASSERT(a.events.size() == b.events.size());
  for (size_t i = 0; i < a.events.size(); ++i) {
    RC_ASSERT(a.events[i].alloc == b.events[i].alloc);
    RC_ASSERT(a.events[i].buffer == b.events[i].buffer);
    RC_ASSERT(a.events[i].phase == b.events[i].phase);
  }
  RC_ASSERT(a.phases == b.phases);
  RC_ASSERT(a.host_bytes == b.host_bytes);
  RC_ASSERT(a.host_optimizer_bytes == b.host_optimizer_bytes);
  RC_ASSERT(a.simulated_micro_batches == b.simulated_micro_batches);
}

void check_deterministic(Device device) {
  const Case c = *gen_case(device);
  const Estimate a = run(c), b = run(c);
  assert_same_schedule(a.schedule, b.schedule);
  RC_ASSERT(a.lower_bound.peak_bytes == b.lower_bound.peak_bytes);
  RC_ASSERT(a.lower_bound.peak_event == b.lower_bound.peak_event);
  RC_ASSERT(a.lower_bound.peak_phase == b.lower_bound.peak_phase);
  RC_ASSERT(a.lower_bound.at_peak == b.lower_bound.at_peak);
  RC_ASSERT(a.lower_bound.resident_bytes == b.lower_bound.resident_bytes);
  RC_ASSERT(a.lower_bound.phase_peak == b.lower_bound.phase_peak);
  RC_ASSERT(a.allocated_peak == b.allocated_peak);
  RC_ASSERT(a.reserved_peak == b.reserved_peak);
  RC_ASSERT(a.context_bytes == b.context_bytes);
  RC_ASSERT(a.peak_bytes == b.peak_bytes);
  RC_ASSERT(a.fits == b.fits);
  RC_ASSERT(a.peak_phase == b.peak_phase);
  RC_ASSERT(a.host_bytes == b.host_bytes);
  RC_ASSERT(a.phases.size() == b.phases.size());
  for (size_t i = 0; i < a.phases.size(); ++i) {
    RC_ASSERT(a.phases[i].name == b.phases[i].name);
    RC_ASSERT(a.phases[i].peak_bytes == b.phases[i].peak_bytes);
    RC_ASSERT(a.phases[i].allocated_bytes == b.phases[i].allocated_bytes);
  }
}
RC_GTEST_PROP(SimulatorProperty, DeterministicCpu, ()) { check_deterministic(Device::kCpu); }
RC_GTEST_PROP(SimulatorProperty, DeterministicCuda, ()) { check_deterministic(Device::kCuda); }

}  // namespace
}  // namespace loraplan::planner
