// Frame preprocessing: one fused pass from a uint8 camera frame (any strides) to a normalized
// float32 model input. Regions: axis-aligned boxes (the whole frame is one box) resized with
// bilinear or area interpolation (OpenCV cv2.resize semantics on the cropped region, with a
// constant or replicate border where the box leaves the frame, optional letterbox), or 2x3 affine
// warps (cv2.warpAffine semantics as of OpenCV 5: bilinear at the exact float source coordinate).
// Colour keep / swap R-B / gray, then out = pixel * scale[c] + offset[c] (pixel in 0..255).
// Plain C++17, no Python. Bad input throws std::invalid_argument via emoedge::fail.
#pragma once
#include <cstddef>
#include <cstdint>

namespace emoedge {
namespace frame {

enum class Interp : int { Linear = 0, Area = 1 };
enum class Color : int { Keep = 0, SwapRB = 1, Gray = 2 };
enum class Border : int { Constant = 0, Replicate = 1 };

// Read-only uint8 image; strides in bytes (any sign). channels is 1, 3 or 4.
struct Image {
  const uint8_t* data = nullptr;
  int height = 0, width = 0, channels = 0;
  std::ptrdiff_t row_stride = 0, col_stride = 0, chan_stride = 0;
};

// Writable float32 output indexed [n][c][y][x]; strides in floats (NCHW or NHWC are just strides).
struct Output {
  float* data = nullptr;
  int n = 0, channels = 0, height = 0, width = 0;
  std::ptrdiff_t n_stride = 0, c_stride = 0, y_stride = 0, x_stride = 0;
};

struct Options {
  Interp interp = Interp::Linear;
  Color color = Color::Keep;
  bool input_rgb = false;          // channel order of 3/4-channel input (default BGR, OpenCV's)
  Border border = Border::Constant;
  float border_value = 0.f;        // pixel value (0..255 scale) outside the frame, constant border
  bool letterbox = false;          // keep aspect ratio; pad with pad_value
  float pad_value = 0.f;           // pixel value (0..255 scale) of the letterbox padding
  float scale[4] = {1.f / 255.f, 1.f / 255.f, 1.f / 255.f, 1.f / 255.f};  // per output channel
  float offset[4] = {0.f, 0.f, 0.f, 0.f};
};

struct Rect { int x = 0, y = 0, w = 0, h = 0; };

// Largest box limits accepted (pixels): keeps every coordinate far from integer overflow.
constexpr double kMaxCoord = 1 << 20;
constexpr int kMaxOutputSide = 1 << 15;
// Work bounds per call: regions, output values (n * C * H * W), |scale| and |offset|.
constexpr int kMaxRegions = 4096;
constexpr double kMaxOutputValues = double(1 << 28);
constexpr float kMaxScale = 1e6f;

// Number of output channels for an input with `in_channels` under `color` (throws if invalid).
int output_channels(int in_channels, Color color);

// The output sub-rectangle the region is resized into: the whole output, or with letterbox the
// centred rectangle that keeps the aspect ratio of a bw x bh region:
// s = min(W/bw, H/bh), w = clamp(floor(bw*s + 0.5), 1, W), x = (W - w) / 2 (likewise y).
Rect inner_rect(double bw, double bh, int out_w, int out_h, bool letterbox);

// boxes: n rows of (x, y, w, h) in frame pixels (w, h > 0; may leave the frame). Area
// interpolation rounds the box to whole pixels. out.n == n.
void preprocess_boxes(const Image& img, const double* boxes, int n, const Options& opt, const Output& out);

// inverse: n rows of a 2x3 matrix mapping output pixel (x, y) -> source (x, y), row-major
// (cv2.warpAffine with WARP_INVERSE_MAP). Linear interpolation only; letterbox is ignored.
void preprocess_affine(const Image& img, const double* inverse, int n, const Options& opt, const Output& out);

// Validation shared by both entry points (throws with a message naming the problem and the fix).
void validate(const Image& img, const Options& opt, const Output& out, int n);

}  // namespace frame
}  // namespace emoedge
