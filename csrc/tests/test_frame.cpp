#include <cmath>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "check.h"
#include "frame.h"

using namespace emoedge::frame;

namespace {
struct Img {
  std::vector<uint8_t> px;
  Image im;
  Img(int h, int w, int c) : px(static_cast<size_t>(h) * w * c) {
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37 + 11) % 251);
    im.data = px.data(); im.height = h; im.width = w; im.channels = c;
    im.row_stride = static_cast<std::ptrdiff_t>(w) * c; im.col_stride = c; im.chan_stride = 1;
  }
  int at(int y, int x, int c) const { return px[(static_cast<size_t>(y) * im.width + x) * im.channels + c]; }
};
struct Out {
  std::vector<float> v;
  Output o;
  Out(int n, int c, int h, int w) : v(static_cast<size_t>(n) * c * h * w, -999.f) {
    o.data = v.data(); o.n = n; o.channels = c; o.height = h; o.width = w;
    o.x_stride = 1; o.y_stride = w; o.c_stride = static_cast<std::ptrdiff_t>(h) * w; o.n_stride = o.c_stride * c;
  }
  float at(int n, int c, int y, int x) const { return v[n * o.n_stride + c * o.c_stride + y * o.y_stride + x]; }
};
Options raw() {  // out = pixel value (0..255)
  Options o;
  for (float& s : o.scale) s = 1.f;
  return o;
}
}  // namespace

TEST_CASE("identity resize reproduces the pixels (linear and area)") {
  Img a(7, 9, 3);
  for (Interp in : {Interp::Linear, Interp::Area}) {
    Options opt = raw();
    opt.interp = in;
    Out o(1, 3, 7, 9);
    const double box[4] = {0, 0, 9, 7};
    preprocess_boxes(a.im, box, 1, opt, o.o);
    double md = 0;
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 7; ++y)
        for (int x = 0; x < 9; ++x) md = std::fmax(md, std::fabs(o.at(0, c, y, x) - a.at(y, x, c)));
    CHECK(md < 1e-3);
  }
}

TEST_CASE("2x downscale averages 2x2 blocks; swap_rb reverses channels") {
  Img a(4, 4, 3);
  Options opt = raw();
  opt.color = Color::SwapRB;
  Out o(1, 3, 2, 2);
  const double box[4] = {0, 0, 4, 4};
  preprocess_boxes(a.im, box, 1, opt, o.o);
  for (int c = 0; c < 3; ++c) {
    const double want = (a.at(0, 0, 2 - c) + a.at(0, 1, 2 - c) + a.at(1, 0, 2 - c) + a.at(1, 1, 2 - c)) / 4.0;
    CHECK_NEAR(o.at(0, c, 0, 0), want, 1e-3);
  }
}

TEST_CASE("box fully outside the frame reads the constant border, normalized") {
  Img a(5, 5, 3);
  Options opt = raw();
  opt.border_value = 40.f;
  opt.scale[0] = 0.5f; opt.offset[0] = 1.f;
  Out o(1, 3, 3, 3);
  const double box[4] = {100, -50, 10, 10};
  preprocess_boxes(a.im, box, 1, opt, o.o);
  CHECK_NEAR(o.at(0, 0, 1, 1), 21.0, 1e-4);
  CHECK_NEAR(o.at(0, 2, 2, 2), 40.0, 1e-4);
  opt.border = Border::Replicate;  // nearest pixel: top-right corner
  preprocess_boxes(a.im, box, 1, opt, o.o);
  CHECK_NEAR(o.at(0, 1, 0, 0), a.at(0, 4, 1), 1e-3);
}

TEST_CASE("gray uses BT.601 weights on BGR") {
  Img a(2, 2, 3);
  for (int i = 0; i < 4; ++i) { a.px[i * 3] = 10; a.px[i * 3 + 1] = 100; a.px[i * 3 + 2] = 200; }
  Options opt = raw();
  opt.color = Color::Gray;
  Out o(1, 1, 1, 1);
  const double box[4] = {0, 0, 2, 2};
  preprocess_boxes(a.im, box, 1, opt, o.o);
  CHECK_NEAR(o.at(0, 0, 0, 0), 0.114 * 10 + 0.587 * 100 + 0.299 * 200, 1e-3);
}

TEST_CASE("affine identity and shift; letterbox padding and rect") {
  Img a(6, 8, 1);
  Options opt = raw();
  Out o(1, 1, 6, 8);
  const double ident[6] = {1, 0, 0, 0, 1, 0};
  preprocess_affine(a.im, ident, 1, opt, o.o);
  CHECK_NEAR(o.at(0, 0, 3, 5), a.at(3, 5, 0), 1e-4);
  const double shift[6] = {1, 0, 0.5, 0, 1, 0};
  preprocess_affine(a.im, shift, 1, opt, o.o);
  CHECK_NEAR(o.at(0, 0, 2, 2), 0.5 * (a.at(2, 2, 0) + a.at(2, 3, 0)), 1e-3);
  const Rect r = inner_rect(640, 480, 128, 128, true);
  CHECK(r.x == 0 && r.y == 16 && r.w == 128 && r.h == 96);
  opt.letterbox = true;
  opt.pad_value = 7.f;
  Out l(1, 1, 4, 8);
  const double box[4] = {0, 0, 8, 2};
  preprocess_boxes(a.im, box, 1, opt, l.o);
  CHECK_NEAR(l.at(0, 0, 0, 3), 7.0, 1e-6);
  CHECK_NEAR(l.at(0, 0, 3, 3), 7.0, 1e-6);
  CHECK(std::fabs(l.at(0, 0, 1, 3) - 7.0) > 1e-6 || a.at(0, 3, 0) == 7);
}

TEST_CASE("area downscale with many taps and non-contiguous pixels") {
  Img a(30, 40, 4);
  Image view = a.im;  // every other column, first 3 channels: strides (160, 8, 1)
  view.width = 20; view.col_stride = 8; view.channels = 3;
  Options opt = raw();
  opt.interp = Interp::Area;
  Out o(1, 3, 3, 2);
  const double box[4] = {0, 0, 20, 30};
  preprocess_boxes(view, box, 1, opt, o.o);
  double s = 0;
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 10; ++x) s += a.at(y, 2 * x, 1);
  CHECK_NEAR(o.at(0, 1, 0, 0), s / 100.0, 1e-3);
}

TEST_CASE("bad input throws instead of crashing") {
  Img a(4, 4, 3);
  Options opt = raw();
  Out o(1, 3, 2, 2);
  const double good[4] = {0, 0, 4, 4};
  const double neg[4] = {0, 0, -1, 4};
  const double nan[4] = {0, 0, std::numeric_limits<double>::quiet_NaN(), 4};
  const double huge[4] = {1e300, 0, 4, 4};
  CHECK_THROWS(preprocess_boxes(a.im, neg, 1, opt, o.o));
  CHECK_THROWS(preprocess_boxes(a.im, nan, 1, opt, o.o));
  CHECK_THROWS(preprocess_boxes(a.im, huge, 1, opt, o.o));
  CHECK_THROWS(preprocess_boxes(a.im, good, 2, opt, o.o));  // batch size mismatch
  Image two = a.im; two.channels = 2;
  CHECK_THROWS(preprocess_boxes(two, good, 1, opt, o.o));
  Image empty = a.im; empty.height = 0;
  CHECK_THROWS(preprocess_boxes(empty, good, 1, opt, o.o));
  Options gray = opt; gray.color = Color::Gray;
  CHECK_THROWS(preprocess_boxes(a.im, good, 1, gray, o.o));  // 1 output channel expected
  Img g(4, 4, 1);
  Options sw = opt; sw.color = Color::SwapRB;
  Out o1(1, 1, 2, 2);
  CHECK_THROWS(preprocess_boxes(g.im, good, 1, sw, o1.o));
  Options area = opt; area.interp = Interp::Area;
  const double ident[6] = {1, 0, 0, 0, 1, 0};
  CHECK_THROWS(preprocess_affine(a.im, ident, 1, area, o.o));
  const double inf[6] = {1, 0, std::numeric_limits<double>::infinity(), 0, 1, 0};
  CHECK_THROWS(preprocess_affine(a.im, inf, 1, opt, o.o));
  Options bad = opt; bad.scale[1] = std::numeric_limits<float>::infinity();
  CHECK_THROWS(preprocess_boxes(a.im, good, 1, bad, o.o));
  Options bv = opt; bv.border_value = 300.f;
  CHECK_THROWS(preprocess_boxes(a.im, good, 1, bv, o.o));
}

TEST_CASE("affine fast path: exact-size 3-channel buffer, bottom-right taps stay in bounds (ASan)") {
  Img a(4, 5, 3);  // the vector holds exactly 4*5*3 bytes
  Options opt = raw();
  Out o(1, 3, 4, 5);
  const double shift[6] = {1, 0, 0.5, 0, 1, 0.5};  // samples (x+0.5, y+0.5)
  preprocess_affine(a.im, shift, 1, opt, o.o);
  for (int c = 0; c < 3; ++c) {
    const double want = (a.at(2, 3, c) + a.at(2, 4, c) + a.at(3, 3, c) + a.at(3, 4, c)) / 4.0;
    CHECK_NEAR(o.at(0, c, 2, 3), want, 1e-3);
  }
  CHECK_NEAR(o.at(0, 0, 3, 4), a.at(3, 4, 0) / 4.0, 1e-3);  // constant border 0 on three taps
}

TEST_CASE("SIMD row kernels agree with scalar arithmetic on odd lengths") {
  // blended rows of every length 1..40 (SIMD body + overlapping tail) against a direct computation
  for (int w = 1; w <= 40; ++w) {
    Img a(3, w, 3);
    Options opt = raw();
    Out o(1, 3, 2, w);
    const double box[4] = {0, 0.25, static_cast<double>(w), 2.5};
    preprocess_boxes(a.im, box, 1, opt, o.o);
    // output row 0 samples source y = 0.25 + 0.5*1.25 - 0.5 = 0.375 between rows 0 and 1
    double md = 0;
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const double want = a.at(0, x, c) * 0.625 + a.at(1, x, c) * 0.375;
        md = std::fmax(md, std::fabs(o.at(0, c, 0, x) - want));
      }
    CHECK(md < 0.05);
  }
}

TEST_CASE("area: a huge box on a tiny frame is bounded work and sums to exactly 255") {
  Img a(33, 12, 3);
  std::fill(a.px.begin(), a.px.end(), uint8_t(255));
  Options opt = raw();
  opt.interp = Interp::Area;
  opt.border_value = 255.f;
  const double box[4] = {0, 0, 1048576, 1048576};
  for (Border b : {Border::Constant, Border::Replicate}) {
    opt.border = b;
    Out o(1, 3, 4096, 1);
    preprocess_boxes(a.im, box, 1, opt, o.o);  // walked 2^20 taps per row before (68 s at 32768 rows)
    float lo = 1e9f, hi = -1e9f;
    for (float v : o.v) { lo = std::min(lo, v); hi = std::max(hi, v); }
    CHECK_NEAR(lo, 255.0, 1e-3);
    CHECK_NEAR(hi, 255.0, 1e-3);
  }
}

TEST_CASE("work bounds and pixel-range options are validated") {
  Img a(8, 8, 3);
  const double box[4] = {0, 0, 8, 8};
  Options opt = raw();
  Out o(1, 3, 4, 4);
  opt.scale[1] = 1e30f;
  CHECK_THROWS(preprocess_boxes(a.im, box, 1, opt, o.o));
  opt = raw();
  opt.offset[2] = -1e30f;
  CHECK_THROWS(preprocess_boxes(a.im, box, 1, opt, o.o));
  opt = raw();
  opt.letterbox = true;
  opt.pad_value = 1e38f;
  CHECK_THROWS(preprocess_boxes(a.im, box, 1, opt, o.o));
  opt = raw();
  Output big = o.o;
  big.n = kMaxRegions + 1;
  std::vector<double> boxes(4 * std::size_t(kMaxRegions + 1), 1.0);
  CHECK_THROWS(preprocess_boxes(a.im, boxes.data(), kMaxRegions + 1, opt, big));
  Output huge = o.o;
  huge.height = huge.width = kMaxOutputSide;  // 3 x 32768^2 values: above the per-call limit
  CHECK_THROWS(preprocess_boxes(a.im, box, 1, opt, huge));
  // misaligned output pointer: rejected (stores through it are undefined)
  std::vector<unsigned char> raw_out(3 * 16 * sizeof(float) + 8);
  Output mis = o.o;
  mis.data = reinterpret_cast<float*>(raw_out.data() + 2);
  CHECK_THROWS(preprocess_boxes(a.im, box, 1, opt, mis));
}

TEST_MAIN()
