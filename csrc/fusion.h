// Multimodal fusion kernel: weighted log-linear pooling of per-modality log-probabilities over a
// shared (canonical) label set, then time-aware exponential smoothing in log space.
// Plain C++17, no Python. All arrays are float32, row-major, caller-owned; math runs in double.
#pragma once
#include <cstdint>

namespace emoedge {

// One fusion step.
//   log_probs [m, k]: per-modality log-probabilities (finite; callers add a floor eps before the log).
//   weights   [m]   : effective weights w_i >= 0 (finite). m may be 0 (no evidence).
//   state     [k]   : in/out smoothing state, a normalised log-distribution. Read only when has_state.
//   alpha           : smoothing gain in [0, 1] (1 = no smoothing); ignored when !has_state.
//   out_probs [k]   : the fused, smoothed distribution (finite, sums to 1).
// Computes z = log_softmax(sum_i w_i * log_probs[i]) (uniform when all weights are 0), then
// state = has_state ? (1 - alpha) * state + alpha * z : z, renormalised (log-sum-exp 0) and clamped to
// >= -1e4 so it stays finite in float32, and out_probs = softmax(state).
// Throws std::invalid_argument (via emoedge::fail) naming the bad argument.
void fusion_step(const float* log_probs, const float* weights, std::int64_t m, std::int64_t k,
                 float* state, bool has_state, double alpha, float* out_probs);

// Pooling only: out_log [k] = log_softmax(sum_i w_i * log_probs[i]) (uniform log when all w are 0),
// clamped to >= -1e4 like the step's state so it stays finite in float32.
void fusion_pool(const float* log_probs, const float* weights, std::int64_t m, std::int64_t k, float* out_log);

}  // namespace emoedge
