// ROI re-localisation by template matching (emoedge.roi "template" mode): normalised cross-correlation
// (OpenCV's TM_CCOEFF_NORMED) of a small grey template over search windows resampled at a few scales,
// and the best peak, refined to sub-pixel by a parabola along each axis. Plain C++17, no Python.
#pragma once

namespace emoedge {
namespace roi {

constexpr int kMaxSide = 1024;        // window / template side limit (pixels)
constexpr int kMaxWindows = 1 << 16;  // windows per call

// NCC of the t x t template over one s x s window at every valid position (m = s - t + 1 per axis),
// written row-major into out[m * m]. Per position: sum((I - mean I)(T - mean T)) / (|I - mean I| |T - mean T|),
// products in float lanes, sums in double. Flat windows or templates (zero norm) give 0, as OpenCV does.
void match_ncc(const float* window, int s, const float* tmpl, int t, float* out);

struct Peak {
  double x = 0, y = 0;  // sub-pixel position of the template's top-left corner in the window
  double value = 0;     // NCC at the integer peak (-1..1)
  int scale = 0;        // index of the window (scale) the best peak is in
};

// The best peak over n_scales windows (each s x s, consecutive in `windows`) for one template: integer
// maximum per window (the first in row-major order on ties), parabola refinement of x and y (clamped to
// +-0.5 px, only where both neighbours exist and the curvature is negative), and the window with the
// largest value (the first on ties). `scratch` holds (s - t + 1)^2 floats.
Peak best_peak(const float* windows, int n_scales, int s, const float* tmpl, int t, float* scratch);

void validate(int n_windows, int s, int t);

}  // namespace roi
}  // namespace emoedge
