// BlazeFace (MediaPipe) detection decoding: SSD anchors, box/keypoint regression, sigmoid scores,
// threshold, MediaPipe "weighted" non-maximum suppression, and the mapping from model-input
// coordinates back to frame pixels. Plain C++17, no Python. Bad input throws via emoedge::fail.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace emoedge {
namespace detect {

// Anchor centres (x, y) normalised to [0, 1], row-major over layers, then grid rows, grid columns,
// then anchors per cell (MediaPipe SsdAnchorsCalculator with fixed_anchor_size, the order BlazeFace
// was trained with). Layer l has a ceil(input_size / strides[l]) square grid with per_cell[l]
// anchors at ((x + 0.5) / g, (y + 0.5) / g). Short range: size 128, strides {8, 16}, per_cell {2, 6}
// -> 896 anchors; full range: size 192, strides {4}, per_cell {1} -> 2304.
std::vector<float> make_anchors(int input_size, const int* strides, const int* per_cell, int n_layers);

struct DecodeOptions {
  float min_score = 0.5f;     // keep anchors with sigmoid(score) >= min_score
  float nms_iou = 0.3f;       // weighted-NMS overlap threshold (IoU > nms_iou merges)
  float score_clip = 100.f;   // raw logits are clipped to [-clip, clip] before the sigmoid
  float box_scale = 128.f;    // regressor units per model-input width (the input size in pixels)
  int max_faces = 0;          // keep at most this many (highest score first); 0 = no limit
  // Model-input normalised coordinates (u, v in [0, 1]) -> frame pixels: x = sx*u + tx, y = sy*v + ty.
  double sx = 1.0, sy = 1.0, tx = 0.0, ty = 0.0;
};

constexpr int kMaxAnchors = 1 << 16;        // make_anchors output limit
constexpr int kMaxAnchorsDecode = 1 << 14;  // decode input limit (NMS cost is quadratic in the worst case)
constexpr float kMaxScoreClip = 100.f;      // MediaPipe's default; sigmoid(-clip) stays > 0 in float32

constexpr int kNumKeypoints = 6;       // right eye, left eye, nose, mouth, right ear, left ear
constexpr int kRowSize = 5 + 2 * kNumKeypoints;  // x, y, w, h, score, kp0x, kp0y, ..., kp5y

// regressors: n_anchors rows of `reg_stride` floats (>= 4 + 2*kNumKeypoints used), scores: n_anchors
// raw logits, anchors: n_anchors (x, y) centres. Returns detections as rows of kRowSize floats in
// frame pixels (x, y = top-left corner, w, h, score in (0, 1], 6 keypoints (x, y)), best first.
std::vector<float> decode(const float* regressors, int reg_stride, const float* scores, const float* anchors,
                          int n_anchors, const DecodeOptions& opt);

// Intersection over union of two (x, y, w, h) boxes; 0 when either is empty.
float iou_xywh(const float* a, const float* b);

void validate(const DecodeOptions& opt);

}  // namespace detect
}  // namespace emoedge
