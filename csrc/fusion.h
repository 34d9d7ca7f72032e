// Multimodal fusion kernel: weighted log-linear pooling of per-modality log-probabilities over a
// shared (canonical) label set, then time-aware exponential smoothing in log space.
//
// Partial label spaces: a modality that does not model class j (mask[i, j] == 0) carries no evidence
// about j. Its log-evidence for j is taken to be its own largest log-probability over the classes it
// does model, r_i = max_{j' : mask[i, j'] = 1} log_probs[i, j'], so adding the modality can never lower
// an unmodelled class relative to any other class (its probability and its rank can only go up), and a
// modality that is uniform over what it models adds a constant (changes nothing). A row with no
// modelled class contributes nothing.
// Plain C++17, no Python. All arrays are float32, row-major, caller-owned; math runs in double.
#pragma once
#include <cstdint>

namespace emoedge {

// One fusion step.
//   log_probs [m, k]: per-modality log-probabilities (finite; callers add a floor eps before the log).
//   weights   [m]   : effective weights w_i >= 0 (finite). m may be 0 (no evidence).
//   mask      [m, k]: optional (nullptr = every modality models every class); nonzero = modelled.
//   state     [k]   : in/out smoothing state, a normalised log-distribution. Read only when has_state.
//   alpha           : smoothing gain in [0, 1] (1 = no smoothing); ignored when !has_state.
//   out_probs [k]   : the fused, smoothed distribution (finite, sums to 1).
// Computes z = log_softmax(sum_i w_i * l_i) with l_i[j] = log_probs[i, j] where modelled and r_i elsewhere
// (uniform when all weights are 0), then
// state = has_state ? (1 - alpha) * state + alpha * z : z, renormalised (log-sum-exp 0) and clamped to
// >= -1e4 so it stays finite in float32, and out_probs = softmax(state).
// Throws std::invalid_argument (via emoedge::fail) naming the bad argument.
void fusion_step(const float* log_probs, const float* weights, std::int64_t m, std::int64_t k,
                 float* state, bool has_state, double alpha, float* out_probs,
                 const std::uint8_t* mask = nullptr);

// Pooling only: out_log [k] = log_softmax(sum_i w_i * l_i) (uniform log when all w are 0); mask as above.
// Clamped to >= -1e4 like the step's state so it stays finite in float32.
void fusion_pool(const float* log_probs, const float* weights, std::int64_t m, std::int64_t k, float* out_log,
                 const std::uint8_t* mask = nullptr);

}  // namespace emoedge
