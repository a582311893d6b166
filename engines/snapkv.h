// SnapKV's observation-window compression (a scored eviction, engines/scored_eviction.h), shared by SnapKV and
// PyramidKV, which differ only in how many prefix keys each layer keeps: their budget schedule.
#pragma once

#include <fmt/format.h>

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engines/scored_eviction.h"

namespace ctxbench::engines {

// 1-D pooling with stride 1 and kernel / 2 padding on both sides, as torch's max_pool1d / avg_pool1d
// (count_include_pad) give for an odd kernel.
std::vector<float> pool(std::span<const float> x, int kernel, bool max_pool);

// Prefix keys (outside the window) a layer keeps after a prompt of `prompt` keys, or -1 if it keeps the whole
// prompt; `capacity` is the budget C, window W included.
using PrefixSchedule = std::function<int(int layer, int num_layers, int capacity, int window, int prompt)>;

// SnapKV: C - W on every layer, once the prompt reaches C.
int snapkv_schedule(int layer, int num_layers, int capacity, int window, int prompt);

// PyramidKV (Zefan-Cai/PyramidKV, integer arithmetic as there): SnapKV's count below 2(C - W), else budgets
// decreasing linearly over the layers from 2(C - W) - min to min = (C - W) / beta. One layer alone keeps the
// average, C - W.
PrefixSchedule pyramidkv_schedule(int beta);

// How the observation window scores keys: the parameters SnapKV and PyramidKV share.
struct ObservationWindow {
  int window = 32;       // W: observation queries, and newest keys always kept
  int kernel = 7;        // pooling kernel (odd), stride 1, same padding
  bool max_pool = true;  // else average pooling (zeros padded, divided by the kernel)
  int threads = 0;

  // Adds these parameters to the declaration of S (which derives from ObservationWindow); `engine` names
  // them in errors.
  template <class S>
  static ParamFields<S> declare(ParamFields<S> fields, const std::string& engine);
};

// The prefill itself is exact; at its end, once the prompt reaches the capacity C, every KV head keeps the
// prefix keys (as many as `schedule` says) that the last W queries attended to most, after pooling, plus the W
// newest keys.
class SnapSession : public ScoredEvictionSession {
 public:
  SnapSession(const HeadLayout& layout, const ObservationWindow& observation, const Budget& budget,
              PrefixSchedule schedule);

 protected:
  std::optional<Keep> compression(int g, const Call& call) const override;
  std::vector<float> scores(int g, const Call& call, int candidates) const override;

 private:
  ObservationWindow observation_;
  Budget budget_;
  PrefixSchedule schedule_;
};

template <class S>
ParamFields<S> ObservationWindow::declare(ParamFields<S> fields, const std::string& engine) {
  return with_threads(std::move(fields)
                          .template field<int>(&S::window, "window",
                                               "observation window W (queries scored, newest keys kept)", {.min = 1})
                          .template field<int>(&S::kernel, "kernel", "pooling kernel size (odd)", {.min = 1})
                          .template choice<bool>(&S::max_pool, "pooling", "pooling of the window scores",
                                                 {{"max", true}, {"avg", false}})
                          .check([engine](const S& p) {
                            if (p.kernel % 2 == 0)
                              throw InputError(
                                  fmt::format("{}.kernel: expected an odd pooling kernel, got {}", engine, p.kernel));
                          }));
}

}  // namespace ctxbench::engines
