#include <cmath>
#include <vector>

#include "check.h"
#include "detect.h"

using namespace emoedge::detect;

static std::vector<float> short_anchors() {
  const int strides[2] = {8, 16}, per[2] = {2, 6};
  return make_anchors(128, strides, per, 2);
}

TEST_CASE("short-range anchors: 896 centres in BlazeFace order") {
  auto a = short_anchors();
  CHECK(a.size() == 896 * 2);
  CHECK_NEAR(a[0], 0.5 / 16, 1e-7);  // first cell, both anchors
  CHECK_NEAR(a[2], 0.5 / 16, 1e-7);
  CHECK_NEAR(a[4], 1.5 / 16, 1e-7);  // next column
  CHECK_NEAR(a[2 * 512], 0.5 / 8, 1e-7);  // first stride-16 anchor
  CHECK_NEAR(a[2 * 895], 7.5 / 8, 1e-7);
  CHECK_NEAR(a[2 * 895 + 1], 7.5 / 8, 1e-7);
  const int s4[1] = {4}, p1[1] = {1};
  CHECK(make_anchors(192, s4, p1, 1).size() == 2304 * 2);
  const int bad[1] = {0};
  CHECK_THROWS(make_anchors(128, bad, p1, 1));
}

TEST_CASE("iou of boxes") {
  float a[4] = {0, 0, 10, 10}, b[4] = {5, 0, 10, 10}, c[4] = {20, 20, 1, 1}, e[4] = {0, 0, 0, 5};
  CHECK_NEAR(iou_xywh(a, a), 1.0, 1e-6);
  CHECK_NEAR(iou_xywh(a, b), 50.0 / 150.0, 1e-6);
  CHECK_NEAR(iou_xywh(a, c), 0.0, 0);
  CHECK_NEAR(iou_xywh(a, e), 0.0, 0);
}

// Build outputs with one synthetic face on anchors near (0.5, 0.5).
struct Fake {
  std::vector<float> anchors = short_anchors();
  std::vector<float> reg = std::vector<float>(896 * 16, 0.f);
  std::vector<float> sc = std::vector<float>(896, -20.f);
  void put(int i, float cx, float cy, float w, float h, float logit) {
    float ax = anchors[2 * i], ay = anchors[2 * i + 1];
    float* r = &reg[i * 16];
    r[0] = (cx - ax) * 128; r[1] = (cy - ay) * 128; r[2] = w * 128; r[3] = h * 128;
    for (int k = 0; k < 6; ++k) { r[4 + 2 * k] = (cx - ax + 0.01f * k) * 128; r[5 + 2 * k] = (cy - ay) * 128; }
    sc[i] = logit;
  }
};

TEST_CASE("decode: one face, mapped through the transform") {
  Fake f;
  // anchor of cell (7, 7) in the 16x16 grid: index (7*16+7)*2
  f.put((7 * 16 + 7) * 2, 0.5f, 0.4f, 0.25f, 0.3f, 3.f);
  DecodeOptions o;
  o.sx = 640; o.sy = 640; o.tx = 0; o.ty = -80;  // 640x480 frame letterboxed into 128x128
  auto rows = decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o);
  CHECK(rows.size() == static_cast<size_t>(kRowSize));
  CHECK_NEAR(rows[0], 640 * (0.5 - 0.125), 1e-3);
  CHECK_NEAR(rows[1], 640 * (0.4 - 0.15) - 80, 1e-3);
  CHECK_NEAR(rows[2], 640 * 0.25, 1e-3);
  CHECK_NEAR(rows[3], 640 * 0.3, 1e-3);
  CHECK_NEAR(rows[4], 1.0 / (1.0 + std::exp(-3.0)), 1e-6);
  CHECK_NEAR(rows[5], 640 * 0.5, 1e-3);
  CHECK_NEAR(rows[6], 640 * 0.4 - 80, 1e-3);
  CHECK_NEAR(rows[5 + 2 * 5], 640 * 0.55, 1e-3);
}

TEST_CASE("decode: weighted NMS merges overlaps, keeps the best score, separates far faces") {
  Fake f;
  const int a = (7 * 16 + 7) * 2;
  f.put(a, 0.50f, 0.50f, 0.2f, 0.2f, 4.f);
  f.put(a + 1, 0.52f, 0.50f, 0.2f, 0.2f, 2.f);    // overlaps the first (IoU ~0.8)
  f.put(10, 0.10f, 0.10f, 0.1f, 0.1f, 1.f);       // far away, lower score
  DecodeOptions o;
  auto rows = decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o);
  CHECK(rows.size() == 2u * kRowSize);
  const double s1 = 1 / (1 + std::exp(-4.0)), s2 = 1 / (1 + std::exp(-2.0));
  const double cx = (s1 * 0.50 + s2 * 0.52) / (s1 + s2);
  CHECK_NEAR(rows[0] + rows[2] / 2, cx, 1e-5);
  CHECK_NEAR(rows[4], s1, 1e-6);
  CHECK_NEAR(rows[kRowSize + 0] + rows[kRowSize + 2] / 2, 0.10, 1e-5);
  o.max_faces = 1;
  CHECK(decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o).size() == static_cast<size_t>(kRowSize));
  o.max_faces = 0;
  o.min_score = 0.8f;  // sigmoid(2)=0.88 and sigmoid(1)=0.73: the far face drops
  CHECK(decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o).size() == static_cast<size_t>(kRowSize));
}

TEST_CASE("decode: clipping, NaN and empty input") {
  Fake f;
  f.put(3, 0.3f, 0.3f, 0.1f, 0.1f, 1e30f);
  f.sc[5] = std::nanf("");
  DecodeOptions o;
  auto rows = decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o);
  CHECK(rows.size() == static_cast<size_t>(kRowSize));
  CHECK_NEAR(rows[4], 1.0, 1e-6);
  CHECK(decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 0, o).empty());
}

TEST_CASE("decode: bad options throw") {
  Fake f;
  DecodeOptions o;
  o.min_score = 1.5f;
  CHECK_THROWS(decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o));
  o = DecodeOptions(); o.nms_iou = 0.f;
  CHECK_THROWS(decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o));
  o = DecodeOptions(); o.sx = -1;
  CHECK_THROWS(decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o));
  o = DecodeOptions();
  CHECK_THROWS(decode(f.reg.data(), 8, f.sc.data(), f.anchors.data(), 896, o));
}

TEST_CASE("decode: min_score 0 with saturated logits gives finite rows; clip and size limits") {
  Fake f;
  for (int i = 0; i < 896; ++i) f.put(i, 0.5f, 0.5f, 0.2f, 0.2f, -1e30f);  // all overlap, all at -clip
  DecodeOptions o;
  o.min_score = 0.f;
  o.score_clip = kMaxScoreClip;
  auto rows = decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o);
  CHECK(!rows.empty());
  for (float v : rows) CHECK(std::isfinite(v));
  o.score_clip = 104.f;  // sigmoid(-104) underflows float32: NaN rows before, an error now
  CHECK_THROWS(decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o));
  o.score_clip = INFINITY;
  CHECK_THROWS(decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o));
  o = DecodeOptions();
  o.box_scale = INFINITY;
  CHECK_THROWS(decode(f.reg.data(), 16, f.sc.data(), f.anchors.data(), 896, o));
  o = DecodeOptions();
  std::vector<float> big_reg(std::size_t(kMaxAnchorsDecode + 1) * 16, 0.f), big_sc(kMaxAnchorsDecode + 1, -20.f),
      big_an(std::size_t(kMaxAnchorsDecode + 1) * 2, 0.5f);
  CHECK_THROWS(decode(big_reg.data(), 16, big_sc.data(), big_an.data(), kMaxAnchorsDecode + 1, o));
  const int strides[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const int per[16] = {64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64};
  CHECK_THROWS(make_anchors(4096, strides, per, 16));  // 1.7e10 anchors: rejected before allocating
}

TEST_MAIN()
