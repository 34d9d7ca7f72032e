#include "detect.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common.h"

namespace emoedge {
namespace detect {

std::vector<float> make_anchors(int input_size, const int* strides, const int* per_cell, int n_layers) {
  if (input_size <= 0 || input_size > 4096) fail("anchor input_size=", input_size, " must be in 1..4096");
  if (n_layers <= 0 || n_layers > 16) fail("anchor layers=", n_layers, " must be in 1..16");
  std::int64_t total = 0;
  for (int l = 0; l < n_layers; ++l) {
    if (strides[l] <= 0 || strides[l] > input_size) fail("anchor stride=", strides[l], " must be in 1..input_size");
    if (per_cell[l] <= 0 || per_cell[l] > 64) fail("anchors per cell=", per_cell[l], " must be in 1..64");
    const std::int64_t g = (input_size + strides[l] - 1) / strides[l];
    total += g * g * per_cell[l];
  }
  if (total > kMaxAnchors)
    fail("these anchor settings give ", total, " anchors, above the limit of ", kMaxAnchors,
         " (BlazeFace uses 896 or 2304): raise the strides or lower per_cell");
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(2 * total));
  for (int l = 0; l < n_layers; ++l) {
    if (strides[l] <= 0 || strides[l] > input_size) fail("anchor stride=", strides[l], " must be in 1..input_size");
    if (per_cell[l] <= 0 || per_cell[l] > 64) fail("anchors per cell=", per_cell[l], " must be in 1..64");
    const int g = (input_size + strides[l] - 1) / strides[l];
    for (int y = 0; y < g; ++y)
      for (int x = 0; x < g; ++x)
        for (int k = 0; k < per_cell[l]; ++k) {
          out.push_back((x + 0.5f) / g);
          out.push_back((y + 0.5f) / g);
        }
  }
  return out;
}

float iou_xywh(const float* a, const float* b) {
  if (a[2] <= 0.f || a[3] <= 0.f || b[2] <= 0.f || b[3] <= 0.f) return 0.f;
  const float ix = std::min(a[0] + a[2], b[0] + b[2]) - std::max(a[0], b[0]);
  const float iy = std::min(a[1] + a[3], b[1] + b[3]) - std::max(a[1], b[1]);
  if (ix <= 0.f || iy <= 0.f) return 0.f;
  const float inter = ix * iy;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

void validate(const DecodeOptions& o) {
  if (!(o.min_score >= 0.f && o.min_score <= 1.f)) fail("min_score=", o.min_score, " must be in [0, 1]");
  if (!(o.nms_iou > 0.f && o.nms_iou <= 1.f)) fail("nms_iou=", o.nms_iou, " must be in (0, 1]");
  // above ~103 the sigmoid of -clip underflows float32 to 0 and a min_score=0 merge divided by a zero weight
  if (!(o.score_clip > 0.f && o.score_clip <= kMaxScoreClip))
    fail("score_clip=", o.score_clip, " must be in (0, ", kMaxScoreClip, "] (logits beyond it saturate the sigmoid)");
  if (!(o.box_scale > 0.f) || !std::isfinite(o.box_scale))
    fail("box_scale=", o.box_scale, " must be finite and > 0 (the model input size in pixels)");
  if (o.max_faces < 0) fail("max_faces=", o.max_faces, " must be >= 0 (0 = no limit)");
  if (!(std::isfinite(o.sx) && std::isfinite(o.sy) && std::isfinite(o.tx) && std::isfinite(o.ty)) || o.sx <= 0 ||
      o.sy <= 0)
    fail("transform (sx, sy, tx, ty) must be finite with sx, sy > 0");
}

std::vector<float> decode(const float* reg, int reg_stride, const float* scores, const float* anchors,
                          int n_anchors, const DecodeOptions& opt) {
  validate(opt);
  if (n_anchors < 0) fail("n_anchors=", n_anchors, " must be >= 0");
  // weighted NMS is O(kept x candidates): bound the candidates so a call stays short
  if (n_anchors > kMaxAnchorsDecode)
    fail("n_anchors=", n_anchors, " is above the limit of ", kMaxAnchorsDecode,
         " per call (BlazeFace has 896 or 2304): decode one frame's outputs at a time");
  if (reg_stride < 4 + 2 * kNumKeypoints) fail("regressor rows have ", reg_stride, " values; need >= 16");
  // 1. score + threshold, decode candidates into frame pixels.
  struct Cand { float score; float row[kRowSize]; };
  std::vector<Cand> cands;
  const double inv = 1.0 / opt.box_scale;
  for (int i = 0; i < n_anchors; ++i) {
    double s = scores[i];
    if (std::isnan(s)) continue;
    s = std::min<double>(std::max<double>(s, -opt.score_clip), opt.score_clip);
    s = 1.0 / (1.0 + std::exp(-s));
    if (s < opt.min_score) continue;
    const float* r = reg + static_cast<std::ptrdiff_t>(i) * reg_stride;
    const double ax = anchors[2 * i], ay = anchors[2 * i + 1];
    const double cx = ax + r[0] * inv, cy = ay + r[1] * inv;
    const double w = r[2] * inv, h = r[3] * inv;
    Cand c;
    c.score = static_cast<float>(s);
    c.row[0] = static_cast<float>(opt.sx * (cx - 0.5 * w) + opt.tx);
    c.row[1] = static_cast<float>(opt.sy * (cy - 0.5 * h) + opt.ty);
    c.row[2] = static_cast<float>(opt.sx * w);
    c.row[3] = static_cast<float>(opt.sy * h);
    c.row[4] = c.score;
    for (int k = 0; k < kNumKeypoints; ++k) {
      c.row[5 + 2 * k] = static_cast<float>(opt.sx * (ax + r[4 + 2 * k] * inv) + opt.tx);
      c.row[6 + 2 * k] = static_cast<float>(opt.sy * (ay + r[5 + 2 * k] * inv) + opt.ty);
    }
    bool finite = true;
    for (float v : c.row) finite = finite && std::isfinite(v);
    if (!finite || c.row[2] <= 0.f || c.row[3] <= 0.f) continue;
    cands.push_back(c);
  }
  // 2. weighted NMS (MediaPipe NonMaxSuppressionCalculator, algorithm WEIGHTED): take the best
  // remaining, merge every remaining candidate overlapping it by IoU > nms_iou (itself included)
  // into a score-weighted mean of box and keypoints, keep the best score.
  std::vector<int> order(cands.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return cands[a].score > cands[b].score; });
  std::vector<float> out;
  std::vector<int> remained;
  while (!order.empty()) {
    const Cand& top = cands[order[0]];
    double acc[kRowSize] = {0};
    double wsum = 0;
    remained.clear();
    for (int idx : order) {
      const Cand& c = cands[idx];
      if (iou_xywh(top.row, c.row) > opt.nms_iou || &c == &top) {
        for (int j = 0; j < kRowSize; ++j) acc[j] += static_cast<double>(c.score) * c.row[j];
        wsum += c.score;
      } else {
        remained.push_back(idx);
      }
    }
    if (wsum > 0.0 && std::isfinite(wsum)) {
      for (int j = 0; j < kRowSize; ++j) out.push_back(static_cast<float>(acc[j] / wsum));
    } else {  // all merged scores underflowed to 0: keep the top candidate as it is
      for (int j = 0; j < kRowSize; ++j) out.push_back(top.row[j]);
    }
    out[out.size() - kRowSize + 4] = top.score;
    order.swap(remained);
    if (opt.max_faces > 0 && static_cast<int>(out.size() / kRowSize) >= opt.max_faces) break;
  }
  return out;
}

}  // namespace detect
}  // namespace emoedge
