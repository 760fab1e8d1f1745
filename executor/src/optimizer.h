#pragma once
// The optimizers train runs, on the adapters' tensors: AdamW with fp32 state or bitsandbytes'
// blockwise 8-bit state, and SGD with or without momentum.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "adam8bit.h"
#include "loraplan/planner/train_config.h"

namespace loraplan::executor {

using torch::Tensor;

// AdamW (fp32 or bitsandbytes' blockwise 8-bit state) and SGD, with their state allocated up
// front (the planner's steady state). Paged 8-bit state lives in host memory outside the
// device's allocator (bitsandbytes: CUDA unified memory; here: memory the tracking allocator does
// not count), as the planner's host figure has it.
class Optimizer {
 public:
  Optimizer(planner::Optimizer kind, std::vector<Tensor> params)
      : info_(planner::optimizer_info(kind)), paged_(info_.paged), params_(std::move(params)) {
    for (const Tensor& p : params_) {
      State s;
      const int64_t n = p.numel();
      if (info_.state_8bit(n)) {
        const int64_t blocks = (n + planner::k8bitStateBlock - 1) / planner::k8bitStateBlock;
        s.m_codes = state_tensor({n}, torch::kUInt8, p);
        s.v_codes = state_tensor({n}, torch::kUInt8, p);
        s.m_absmax = state_tensor({blocks}, torch::kFloat, p);
        s.v_absmax = state_tensor({blocks}, torch::kFloat, p);
      } else {
        if (info_.states >= 1) s.m = state_tensor(p.sizes(), torch::kFloat, p);
        if (info_.states >= 2) s.v = state_tensor(p.sizes(), torch::kFloat, p);
      }
      states_.push_back(std::move(s));
    }
  }

  int64_t host_bytes() const { return host_bytes_; }  // paged state

  // Every state tensor under a stable name ("3.exp_avg", "3.exp_avg_sq", "3.exp_avg_codes",
  // "3.exp_avg_absmax", ...: the index is the parameter's), for checkpoints; in place.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const {
    std::vector<std::pair<std::string, Tensor>> out;
    for (size_t i = 0; i < states_.size(); ++i) {
      const State& s = states_[i];
      const std::string k = std::to_string(i) + ".";
      for (const auto& [name, t] :
           {std::pair{"exp_avg", s.m}, std::pair{"exp_avg_sq", s.v},
            std::pair{"exp_avg_codes", s.m_codes}, std::pair{"exp_avg_sq_codes", s.v_codes},
            std::pair{"exp_avg_absmax", s.m_absmax}, std::pair{"exp_avg_sq_absmax", s.v_absmax}}) {
        if (t.defined()) out.emplace_back(k + name, t);
      }
    }
    return out;
  }
  const std::vector<Tensor>& params() const { return params_; }
  int64_t step_count() const { return t_; }  // AdamW's t: updates done
  void set_step_count(int64_t t) { t_ = t; }

  // Scales the gradients to a total norm of at most max_norm; returns the norm before (0 when
  // clipping is off: the norm is not computed). The squared norms are summed on the device into
  // one fp32 scalar, read once (one synchronisation a step, not one per tensor): the sum and one
  // tensor's norm are the only allocations, as the planner's optim phase counts them.
  double clip(double max_norm) {
    if (max_norm <= 0 || params_.empty()) return 0;
    Tensor sum = torch::zeros({}, params_.front().options().dtype(torch::kFloat));
    for (const Tensor& p : params_) {
      if (!p.grad().defined()) continue;
      const Tensor n = p.grad().norm();
      sum.addcmul_(n, n);
    }
    const double total = std::sqrt(sum.item<double>());
    sum.reset();
    if (total > max_norm && std::isfinite(total)) {
      for (const Tensor& p : params_) {
        if (p.grad().defined()) p.mutable_grad().mul_(max_norm / (total + 1e-6));
      }
    }
    return total;
  }

  void step(double lr, double weight_decay) {
    torch::NoGradGuard no_grad;
    ++t_;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const double bc1 = 1 - std::pow(b1, t_), bc2 = 1 - std::pow(b2, t_);
    for (size_t i = 0; i < params_.size(); ++i) {
      Tensor p = params_[i];
      const Tensor g = p.grad();
      State& s = states_[i];
      if (!g.defined()) continue;
      if (s.m_codes.defined()) {
        const Tensor gc = g.contiguous();  // a view already: LoRA gradients are contiguous
        adam8bit::adamw_step(p.data_ptr<float>(), gc.data_ptr<float>(), p.numel(),
                             s.m_codes.data_ptr<uint8_t>(), s.m_absmax.data_ptr<float>(),
                             s.v_codes.data_ptr<uint8_t>(), s.v_absmax.data_ptr<float>(),
                             {.lr = lr,
                              .beta1 = b1,
                              .beta2 = b2,
                              .eps = eps,
                              .weight_decay = weight_decay,
                              .step = t_});
        continue;
      }
      if (info_.adam) {
        if (weight_decay > 0) p.mul_(1 - lr * weight_decay);
        s.m.mul_(b1).add_(g, 1 - b1);
        s.v.mul_(b2).addcmul_(g, g, 1 - b2);
        const Tensor denom = (s.v.sqrt() / std::sqrt(bc2)).add_(eps);
        p.addcdiv_(s.m, denom, -lr / bc1);
      } else if (s.m.defined()) {  // SGD with momentum
        s.m.mul_(0.9).add_(g);
        p.add_(s.m, -lr);
      } else {
        p.add_(g, -lr);
      }
    }
  }

  void zero_grad() {
    for (Tensor& p : params_) p.mutable_grad().reset();  // set_to_none
  }

 private:
  // One tensor's state: fp32 exp_avg (m) and exp_avg_sq (v; AdamW only), or 8-bit codes with
  // an absmax per block.
  struct State {
    Tensor m, v;                // fp32, p's shape
    Tensor m_codes, v_codes;    // uint8 [n]
    Tensor m_absmax, v_absmax;  // fp32 [ceil(n / 256)]
  };

  Tensor state_tensor(at::IntArrayRef shape, at::ScalarType type, const Tensor& like) {
    if (!paged_) return torch::zeros(shape, like.options().dtype(type));
    int64_t bytes = static_cast<int64_t>(c10::elementSize(type));
    for (int64_t d : shape) bytes *= d;
    host_.emplace_back(static_cast<size_t>(bytes), uint8_t{0});  // a moved vector keeps its buffer
    host_bytes_ += bytes;
    return torch::from_blob(host_.back().data(), shape, torch::TensorOptions().dtype(type));
  }

  const planner::OptimizerInfo& info_;
  bool paged_;
  std::vector<Tensor> params_;
  std::vector<State> states_;
  std::vector<std::vector<uint8_t>> host_;  // paged state's storage
  int64_t host_bytes_ = 0;
  int64_t t_ = 0;
};

// The adapters' gradients copied into host memory outside the tracked pool, to put back when a
// micro-batch runs out of memory part-way through its backward.
class GradSnapshot {
 public:
  void save(const std::vector<Tensor>& params) {
    saved_.resize(params.size());
    defined_.assign(params.size(), false);
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor& g = params[i].grad();
      if (!g.defined()) continue;
      saved_[i].resize(static_cast<size_t>(g.numel()));
      torch::from_blob(saved_[i].data(), g.sizes(), torch::kFloat).copy_(g);
      defined_[i] = true;
    }
  }
  void restore(const std::vector<Tensor>& params) const {
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor p = params[i];
      if (!defined_[i]) {
        p.mutable_grad().reset();
      } else {
        p.mutable_grad().copy_(
            torch::from_blob(const_cast<float*>(saved_[i].data()), p.sizes(), torch::kFloat));
      }
    }
  }

 private:
  std::vector<std::vector<float>> saved_;
  std::vector<bool> defined_;
};

}  // namespace loraplan::executor
