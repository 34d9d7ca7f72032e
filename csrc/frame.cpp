// Frame preprocessing kernel (see frame.h). Box regions run as a separable two-stage pass per
// output row: (1) blend the needed source rows over the needed columns into a float row that is
// already colour-mixed and normalized (interpolation weights sum to 1, so normalizing before the
// horizontal blend is exact), (2) gather the horizontal taps straight into the output planes.
// Only the rows and columns that the taps touch are read. Affine regions run per output pixel.
#include "frame.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"
#include "frame_simd.h"

namespace emoedge {
namespace frame {

int output_channels(int in_channels, Color color) {
  if (in_channels != 1 && in_channels != 3 && in_channels != 4)
    fail("image has ", in_channels, " channels; expected 1 (gray), 3 (BGR/RGB) or 4 (BGRA/RGBA)");
  if (color == Color::Gray || in_channels == 1) {
    if (color == Color::SwapRB)
      fail("color='swap_rb' needs a 3- or 4-channel image, got 1 channel; use color='keep' or 'gray'");
    return 1;
  }
  if (color != Color::Keep && color != Color::SwapRB) fail("unknown color mode ", static_cast<int>(color));
  return 3;  // alpha of 4-channel input is dropped
}

Rect inner_rect(double bw, double bh, int out_w, int out_h, bool letterbox) {
  Rect r{0, 0, out_w, out_h};
  if (!letterbox) return r;
  const double s = std::min(out_w / bw, out_h / bh);
  r.w = static_cast<int>(std::min<double>(out_w, std::max(1.0, std::floor(bw * s + 0.5))));
  r.h = static_cast<int>(std::min<double>(out_h, std::max(1.0, std::floor(bh * s + 0.5))));
  r.x = (out_w - r.w) / 2;
  r.y = (out_h - r.h) / 2;
  return r;
}

void validate(const Image& img, const Options& opt, const Output& out, int n) {
  if (img.height < 1 || img.width < 1) fail("image is empty (", img.height, "x", img.width, "); pass a frame with at least 1x1 pixels");
  if (!img.data) fail("image has no data pointer");
  const int cout = output_channels(img.channels, opt.color);
  if (opt.interp != Interp::Linear && opt.interp != Interp::Area) fail("unknown interpolation ", static_cast<int>(opt.interp));
  if (opt.border != Border::Constant && opt.border != Border::Replicate) fail("unknown border ", static_cast<int>(opt.border));
  if (n < 0) fail("negative region count ", n);
  if (out.n != n) fail("output batch size ", out.n, " != number of regions ", n);
  if (out.channels != cout) fail("output has ", out.channels, " channels but the colour mode produces ", cout);
  if (out.width < 1 || out.height < 1 || out.width > kMaxOutputSide || out.height > kMaxOutputSide)
    fail("output size ", out.width, "x", out.height, " is out of range; use 1..", kMaxOutputSide, " pixels per side");
  if (n > 0 && !out.data) fail("output has no data pointer");
  if (n > kMaxRegions) fail(n, " regions in one call is above the limit of ", kMaxRegions, "; split the batch");
  const double values = double(n) * cout * out.height * out.width;
  if (values > kMaxOutputValues)
    fail("the output would hold ", values, " values (", n, " x ", cout, " x ", out.height, " x ", out.width,
         "), above the limit of ", kMaxOutputValues, " (1 GiB float32) per call; split the batch or use a smaller size");
  if (n > 0 && reinterpret_cast<std::uintptr_t>(out.data) % alignof(float) != 0)
    fail("output is not aligned to ", alignof(float), " bytes (a view at an odd byte offset); allocate it with np.empty");
  for (int c = 0; c < cout; ++c) {
    if (!std::isfinite(opt.scale[c]) || !std::isfinite(opt.offset[c]))
      fail("normalization scale/offset of channel ", c, " is not finite; check mean/std (std must be non-zero)");
    // bounded so every output (pixel * scale + offset, pixel in 0..255) stays finite in float32
    if (std::fabs(opt.scale[c]) > kMaxScale || std::fabs(opt.offset[c]) > kMaxScale)
      fail("normalization of channel ", c, " (scale ", opt.scale[c], ", offset ", opt.offset[c],
           ") is beyond +-", kMaxScale, "; check mean/std (std must not be tiny) or scale/offset");
  }
  if (!(opt.border_value >= 0.f && opt.border_value <= 255.f))
    fail("border_value=", opt.border_value, " must be a pixel value in 0..255");
  if (!(opt.pad_value >= 0.f && opt.pad_value <= 255.f))
    fail("pad_value=", opt.pad_value, " must be a pixel value in 0..255");
}

namespace {

// How input channels become the "tmp" channels that are interpolated (colour mix happens before
// interpolation: it is linear), and how tmp channels become normalized output channels.
struct Plan {
  int cin = 0, ct = 0, cout = 0;
  bool gray_mix = false;
  float mix[3] = {0, 0, 0};
  int out_src[4] = {0, 1, 2, 3};       // output channel k <- tmp channel
  float a[4] = {1, 1, 1, 1}, b[4] = {0, 0, 0, 0};  // output k = tmp * a[k] + b[k]
  float pad_out[4] = {0, 0, 0, 0};     // letterbox padding per output channel
};

Plan make_plan(const Image& img, const Options& opt) {
  Plan p;
  p.cin = img.channels;
  p.cout = output_channels(img.channels, opt.color);
  p.ct = p.cin;  // tmp rows keep the input channels; colour is mixed at the output
  if (p.cin == 1) {
  } else if (opt.color == Color::Gray) {
    p.gray_mix = true;
    // ITU-R BT.601 luma, as cv2.cvtColor(..., COLOR_BGR2GRAY / COLOR_RGB2GRAY).
    const float r = 0.299f, g = 0.587f, b = 0.114f;
    p.mix[0] = opt.input_rgb ? r : b;
    p.mix[1] = g;
    p.mix[2] = opt.input_rgb ? b : r;
  } else {
    for (int k = 0; k < 3; ++k) p.out_src[k] = opt.color == Color::SwapRB ? 2 - k : k;
  }
  for (int k = 0; k < p.cout; ++k) {
    p.a[k] = opt.scale[k];
    p.b[k] = opt.offset[k];
    p.pad_out[k] = opt.pad_value * opt.scale[k] + opt.offset[k];
  }
  return p;
}

// Taps of one axis: output index d uses src[ofs[d] .. ofs[d+1]) with weights w.
struct Taps {
  std::vector<int> ofs, src;
  std::vector<float> w;
  std::vector<double> wd;  // the same weights in double (generic paths accumulate in double)
  bool two = true;  // every output index has exactly 2 taps
  void clear() { ofs.clear(); src.clear(); w.clear(); wd.clear(); ofs.push_back(0); two = true; }
  void add(int s, double wt) { src.push_back(s); w.push_back(static_cast<float>(wt)); wd.push_back(wt); }
  void end() { ofs.push_back(static_cast<int>(src.size())); if (ofs.back() - ofs[ofs.size() - 2] != 2) two = false; }
};

// Bilinear taps (cv2.resize INTER_LINEAR on the crop [b0, b0+len)), in frame coordinates.
void linear_taps(Taps& t, double b0, double len, int dn) {
  t.src.resize(2 * static_cast<size_t>(dn));
  t.w.resize(2 * static_cast<size_t>(dn));
  t.wd.resize(2 * static_cast<size_t>(dn));
  t.ofs.resize(static_cast<size_t>(dn) + 1);
  t.two = true;
  const double scale = len / dn;
  const double lo = b0, hi = std::max(b0, b0 + len - 1.0);
  int* src = t.src.data();
  float* w = t.w.data();
  double* wd = t.wd.data();
  int* ofs = t.ofs.data();
  for (int d = 0; d < dn; ++d) {
    double f = b0 + (d + 0.5) * scale - 0.5;
    f = f < lo ? lo : (f > hi ? hi : f);
    const double x0 = std::floor(f);
    const float fr = static_cast<float>(f - x0);
    const int i0 = static_cast<int>(x0);
    src[2 * d] = i0;
    src[2 * d + 1] = fr > 0.f ? i0 + 1 : i0;
    w[2 * d] = 1.f - fr;
    w[2 * d + 1] = fr;
    wd[2 * d] = 1.0 - static_cast<double>(fr);
    wd[2 * d + 1] = fr;
    ofs[d] = 2 * d;
  }
  ofs[dn] = 2 * dn;
}

// cv2 INTER_AREA taps for a crop starting at integer b0 of integer length ssize, output dn.
// down: both axes shrink (cv2's true area averaging); otherwise cv2's "linear area" upscale rule.
void area_taps(Taps& t, int b0, int ssize, int dn, bool down) {
  t.clear();
  const double inv_scale = static_cast<double>(dn) / ssize;
  const double scale = 1.0 / inv_scale;
  for (int d = 0; d < dn; ++d) {
    if (down) {
      const double fs1 = d * scale, fs2 = fs1 + scale;
      const double cell = std::min(scale, ssize - fs1);
      int s1 = static_cast<int>(std::ceil(fs1)), s2 = static_cast<int>(std::floor(fs2));
      s2 = std::min(s2, ssize - 1);
      s1 = std::min(s1, s2);
      if (s1 - fs1 > 1e-3) t.add(b0 + s1 - 1, (s1 - fs1) / cell);
      for (int s = s1; s < s2; ++s) t.add(b0 + s, 1.0 / cell);
      if (fs2 - s2 > 1e-3) t.add(b0 + s2, std::min(std::min(fs2 - s2, 1.0), cell) / cell);
    } else {
      int s = static_cast<int>(std::floor(d * scale));
      double f = (d + 1) - (s + 1) * inv_scale;
      f = f <= 0 ? 0.0 : f - std::floor(f);
      if (s >= ssize - 1) { f = 0; s = ssize - 1; }
      t.add(b0 + s, 1.0 - f);
      t.add(f > 0 ? b0 + s + 1 : b0 + s, f);
    }
    t.end();
  }
}

inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Taps with equal resolved indices merged (weights summed in double): a box far outside the frame
// resolves many taps to one border slot or one clamped edge pixel, and walking them one by one made
// the work grow with the box size (a 2^20-pixel box on a 12-pixel-wide frame walked 2^20 taps per row).
// After merging, an output index has at most (frame pixels it covers + 2) taps, so the work is bounded
// by the frame and output sizes.
struct Merged {
  std::vector<int> ofs, idx;
  std::vector<double> w;
  void build(const std::vector<int>& tofs, const std::vector<int>& resolved, const std::vector<double>& tw) {
    ofs.assign(1, 0);
    idx.clear();
    w.clear();
    const size_t nd = tofs.size() - 1;
    for (size_t d = 0; d < nd; ++d) {
      const size_t first = idx.size();
      for (int t = tofs[d]; t < tofs[d + 1]; ++t) {
        const int r = resolved[t];
        // taps come sorted by source position, so equal resolved indices (a border slot, a clamped
        // edge) are adjacent
        if (idx.size() > first && idx.back() == r) {
          w.back() += tw[t];
        } else {
          idx.push_back(r);
          w.push_back(tw[t]);
        }
      }
      ofs.push_back(static_cast<int>(idx.size()));
    }
  }
};

struct Scratch {
  Taps tx, ty;
  std::vector<int> xi;   // per x tap: index into tmp (already multiplied by ct)
  std::vector<int> x0;   // two-tap form: first index per output x
  std::vector<float> xf; // two-tap form: weight of the second tap (at x0 + ct)
  std::vector<int> yr;   // per y tap: frame row, or -1 for a constant-border row
  std::vector<float> acc, w8;
  std::vector<double> accd;
  Merged mx, my;
  std::vector<int16_t> tmp;  // Q7 fixed point (pixel * 128)
  std::vector<uint8_t> slow;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// One region (box) into output batch index `bi`.
//
// tmp row layout (ct floats per pixel): [left border slot][columns cx0..cx1][right border slot]
// [8 floats of zero padding], so a two-tap pair is always (i, i + ct) or (i, i) and SIMD loads of
// 4 floats past any index stay inside the buffer.
void run_box(const Image& img, const Plan& p, const Options& opt, const Output& out, int bi, const double* box,
             Scratch& S) {
  const int H = img.height, W = img.width;
  double bx = box[0], by = box[1], bw = box[2], bh = box[3];
  const bool area = opt.interp == Interp::Area;
  if (area) {
    bx = std::floor(bx + 0.5); by = std::floor(by + 0.5);
    bw = std::max(1.0, std::floor(bw + 0.5)); bh = std::max(1.0, std::floor(bh + 0.5));
  }
  const Rect r = inner_rect(bw, bh, out.width, out.height, opt.letterbox);
  if (area) {
    const bool down = bw >= r.w && bh >= r.h;
    area_taps(S.tx, static_cast<int>(bx), static_cast<int>(bw), r.w, down);
    area_taps(S.ty, static_cast<int>(by), static_cast<int>(bh), r.h, down);
  } else {
    linear_taps(S.tx, bx, bw, r.w);
    linear_taps(S.ty, by, bh, r.h);
  }
  const bool constant = opt.border == Border::Constant;
  const int ct = p.ct, cin = p.cin;
  // Columns: frame range [cx0, cx1] touched by in-frame taps.
  int cx0 = W, cx1 = -1;
  for (int s : S.tx.src) {
    int c = constant ? s : clampi(s, 0, W - 1);
    if (c >= 0 && c < W) { cx0 = std::min(cx0, c); cx1 = std::max(cx1, c); }
  }
  const int ncols = cx1 >= cx0 ? cx1 - cx0 + 1 : 0;
  const int right_slot = (ncols + 1) * ct;
  S.xi.resize(S.tx.src.size());
  for (size_t i = 0; i < S.tx.src.size(); ++i) {
    int c = S.tx.src[i];
    if (!constant) c = clampi(c, 0, W - 1);
    S.xi[i] = c < 0 ? 0 : (c >= W ? right_slot : (c - cx0 + 1) * ct);
  }
  bool two = S.tx.two;
  if (two) {  // two-tap form: value = t[x0] + f * (t[x0 + ct] - t[x0])
    S.x0.resize(r.w);
    S.xf.resize(r.w);
    for (int d = 0; d < r.w; ++d) {
      const int i0 = S.xi[2 * d], i1 = S.xi[2 * d + 1];
      S.x0[d] = i0;
      if (i1 == i0) S.xf[d] = 0.f;
      else if (i1 == i0 + ct) S.xf[d] = S.tx.w[2 * d + 1];
      else two = false;  // cannot happen with this layout; keep the generic path as a guard
    }
  }
  S.yr.resize(S.ty.src.size());
  for (size_t i = 0; i < S.ty.src.size(); ++i) {
    int y = S.ty.src[i];
    if (!constant) y = clampi(y, 0, H - 1);
    S.yr[i] = (y >= 0 && y < H) ? y : -1;
  }
  S.my.build(S.ty.ofs, S.yr, S.ty.wd);
  if (!two) S.mx.build(S.tx.ofs, S.xi, S.tx.wd);
  const int L = ncols * cin;  // interleaved input values per blended row
  S.tmp.assign(static_cast<size_t>(ncols + 2) * ct + 8, 0);
  const int16_t bq = static_cast<int16_t>(std::lround(opt.border_value * kQ));
  for (int j = 0; j < ct; ++j) { S.tmp[j] = bq; S.tmp[right_slot + j] = bq; }
  S.accd.resize(static_cast<size_t>(L) + 8);
  float qa[4], qb[4];  // output normalization applied to Q7 tmp values
  for (int k = 0; k < 4; ++k) { qa[k] = p.a[k] / kQ; qb[k] = p.b[k]; }
  if (two && p.gray_mix && out.x_stride == 1) {  // per-pixel weights over t[x0 .. x0+7]
    S.w8.assign(static_cast<size_t>(r.w) * 8, 0.f);
    for (int d = 0; d < r.w; ++d) {
      float* w = S.w8.data() + 8 * d;
      const float f = S.xf[d];
      for (int c = 0; c < 3; ++c) {
        w[c] += (1.f - f) * p.mix[c] * qa[0];
        w[ct + c] += f * p.mix[c] * qa[0];
      }
    }
  }
  const bool contiguous = img.chan_stride == 1 && img.col_stride == cin;
  float* obase = out.data + static_cast<std::ptrdiff_t>(bi) * out.n_stride;
  float* orow[4] = {nullptr, nullptr, nullptr, nullptr};
  int16_t* tcols = S.tmp.data() + ct;  // first in-frame column
  const int16_t* tmp = S.tmp.data();

  for (int oy = 0; oy < out.height; ++oy) {
    for (int k = 0; k < p.cout; ++k) orow[k] = obase + k * out.c_stride + static_cast<std::ptrdiff_t>(oy) * out.y_stride;
    const int dy = oy - r.y;
    if (dy < 0 || dy >= r.h) {  // letterbox padding row
      for (int k = 0; k < p.cout; ++k)
        for (int ox = 0; ox < out.width; ++ox) orow[k][ox * out.x_stride] = p.pad_out[k];
      continue;
    }
    // (1) vertical blend of the touched columns into tmp (pixel units, tmp channels).
    const int t0 = S.ty.ofs[dy], t1 = S.ty.ofs[dy + 1];
    if (ncols > 0) {
      if (contiguous && t1 - t0 == 2 && S.yr[t0] >= 0 && S.yr[t0 + 1] >= 0) {
        const uint8_t* r0 = img.data + S.yr[t0] * img.row_stride + static_cast<std::ptrdiff_t>(cx0) * cin;
        const uint8_t* r1 = img.data + S.yr[t0 + 1] * img.row_stride + static_cast<std::ptrdiff_t>(cx0) * cin;
        int w0q, w1q;
        q15_weights(S.ty.w[t0], S.ty.w[t0 + 1], &w0q, &w1q);
        blend2_q7(r0, r1, w0q, w1q, tcols, L);
      } else {
        // generic: merged taps (distinct rows; border rows as one weight), accumulated in double so
        // thousands of small area weights sum to 1 (float drifted: an all-255 image gave 256.4)
        double* acc = S.accd.data();
        double const_w = 0.0;
        bool first = true;
        for (int t = S.my.ofs[dy]; t < S.my.ofs[dy + 1]; ++t) {
          const double w = S.my.w[t];
          const int y = S.my.idx[t];
          if (y < 0) { const_w += w; continue; }
          const uint8_t* row = img.data + y * img.row_stride;
          if (contiguous) {
            const uint8_t* src = row + static_cast<std::ptrdiff_t>(cx0) * cin;
            if (first) { for (int i = 0; i < L; ++i) acc[i] = w * src[i]; }
            else { for (int i = 0; i < L; ++i) acc[i] += w * src[i]; }
          } else {
            for (int j = 0; j < ncols; ++j) {
              const uint8_t* px = row + static_cast<std::ptrdiff_t>(cx0 + j) * img.col_stride;
              double* a = acc + j * cin;
              for (int c = 0; c < cin; ++c) {
                const double v = w * px[c * img.chan_stride];
                a[c] = first ? v : a[c] + v;
              }
            }
          }
          first = false;
        }
        if (first) { for (int i = 0; i < L; ++i) acc[i] = 0.0; }
        if (const_w != 0.0) { const double cv = const_w * opt.border_value; for (int i = 0; i < L; ++i) acc[i] += cv; }
        for (int i = 0; i < L; ++i)
          tcols[i] = static_cast<int16_t>(std::lround(std::max(0.0, std::min(acc[i], 255.0)) * kQ));
      }
    }
    // (2) horizontal taps + normalization into the output planes.
    const std::ptrdiff_t xs = out.x_stride;
    for (int k = 0; k < p.cout; ++k) {
      for (int ox = 0; ox < r.x; ++ox) orow[k][ox * xs] = p.pad_out[k];
      for (int ox = r.x + r.w; ox < out.width; ++ox) orow[k][ox * xs] = p.pad_out[k];
    }
    if (two && xs == 1 && p.gray_mix) {
      hdot8(tmp, S.x0.data(), S.w8.data(), r.w, qb[0], orow[0] + r.x);
      continue;
    }
    if (two && xs == 1 && ct >= 3 && p.cout == 3) {
      float* od[3] = {orow[0] + r.x, orow[1] + r.x, orow[2] + r.x};
      hlerp_planar3(tmp, S.x0.data(), S.xf.data(), r.w, ct, p.out_src, qa, qb, od);
      continue;
    }
    if (two && !p.gray_mix) {
      for (int k = 0; k < p.cout; ++k)
        hlerp1(tmp + p.out_src[k], S.x0.data(), S.xf.data(), r.w, ct, qa[k], qb[k],
               orow[k] + static_cast<std::ptrdiff_t>(r.x) * xs, xs);
      continue;
    }
    // generic: any number of taps, colour mix per output pixel
    for (int d = 0; d < r.w; ++d) {
      double vd[4] = {0.0, 0.0, 0.0, 0.0};
      for (int t = S.mx.ofs[d]; t < S.mx.ofs[d + 1]; ++t) {
        const int16_t* px = tmp + S.mx.idx[t];
        const double w = S.mx.w[t];
        for (int c = 0; c < ct; ++c) vd[c] += w * static_cast<double>(px[c]);
      }
      const float v[4] = {static_cast<float>(vd[0]), static_cast<float>(vd[1]), static_cast<float>(vd[2]),
                          static_cast<float>(vd[3])};
      const std::ptrdiff_t o = static_cast<std::ptrdiff_t>(r.x + d) * xs;
      if (p.gray_mix) {
        orow[0][o] = (p.mix[0] * v[0] + p.mix[1] * v[1] + p.mix[2] * v[2]) * qa[0] + qb[0];
      } else {
        for (int k = 0; k < p.cout; ++k) orow[k][o] = v[p.out_src[k]] * qa[k] + qb[k];
      }
    }
  }
}

void run_affine(const Image& img, const Plan& p, const Options& opt, const Output& out, int bi, const double* M,
                Scratch& S) {
  const int H = img.height, W = img.width, cin = p.cin, ow = out.width;
  const bool constant = opt.border == Border::Constant;
  // OpenCV 5's warpAffine samples at the exact (float) source coordinate: no 1/32-pixel rounding.
  float* obase = out.data + static_cast<std::ptrdiff_t>(bi) * out.n_stride;
  const double lim = 4.0 * kMaxCoord;  // far outside any image; keeps the integer casts defined
  const bool fast = img.chan_stride == 1 && img.col_stride == cin && img.row_stride > 0;
  S.acc.resize(static_cast<size_t>(ow) * 4);
  S.slow.resize(static_cast<size_t>(ow));
  S.x0.resize(2 * static_cast<size_t>(ow));
  S.xf.resize(2 * static_cast<size_t>(ow));
  float* vals = S.acc.data();
  // Generic sampler (any strides, border rule) for one output pixel.
  auto sample = [&](int ox, int oy, float* v) {
    const double fxs = std::min(std::max(M[0] * ox + M[1] * oy + M[2], -lim), lim);
    const double fys = std::min(std::max(M[3] * ox + M[4] * oy + M[5], -lim), lim);
    const double flx = std::floor(fxs), fly = std::floor(fys);
    const long long sx = static_cast<long long>(flx), sy = static_cast<long long>(fly);
    const float fx = static_cast<float>(fxs - flx), fy = static_cast<float>(fys - fly);
    const float w[4] = {(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy};
    for (int c = 0; c < 4; ++c) v[c] = 0.f;
    if (constant && (sx < -1 || sx >= W || sy < -1 || sy >= H)) {
      for (int c = 0; c < cin; ++c) v[c] = opt.border_value;
      return;
    }
    for (int t = 0; t < 4; ++t) {
      long long xx = sx + (t & 1), yy = sy + (t >> 1);
      if (xx < 0 || xx >= W || yy < 0 || yy >= H) {
        if (constant) {
          for (int c = 0; c < cin; ++c) v[c] += w[t] * opt.border_value;
          continue;
        }
        xx = std::min<long long>(std::max<long long>(xx, 0), W - 1);
        yy = std::min<long long>(std::max<long long>(yy, 0), H - 1);
      }
      const uint8_t* px = img.data + yy * img.row_stride + xx * img.col_stride;
      for (int c = 0; c < cin; ++c) v[c] += w[t] * px[c * img.chan_stride];
    }
  };
  for (int oy = 0; oy < out.height; ++oy) {
    if (fast) {
      affine_row(img.data, H, W, img.row_stride, cin, M, oy, ow, vals, S.slow.data(), S.x0.data(), S.xf.data());
      for (int ox = 0; ox < ow; ++ox)
        if (S.slow[ox]) sample(ox, oy, vals + 4 * ox);
    } else {
      for (int ox = 0; ox < ow; ++ox) sample(ox, oy, vals + 4 * ox);
    }
    const std::ptrdiff_t xs = out.x_stride;
    float* orow = obase + static_cast<std::ptrdiff_t>(oy) * out.y_stride;
    if (p.gray_mix) {
      const float m0 = p.mix[0] * p.a[0], m1 = p.mix[1] * p.a[0], m2 = p.mix[2] * p.a[0], b = p.b[0];
      for (int ox = 0; ox < ow; ++ox) {
        const float* v = vals + 4 * ox;
        orow[ox * xs] = m0 * v[0] + m1 * v[1] + m2 * v[2] + b;
      }
    } else {
      for (int k = 0; k < p.cout; ++k) {
        float* o = orow + k * out.c_stride;
        const float* v = vals + p.out_src[k];
        const float a = p.a[k], b = p.b[k];
        for (int ox = 0; ox < ow; ++ox) o[ox * xs] = v[4 * ox] * a + b;
      }
    }
  }
}

}  // namespace

void preprocess_boxes(const Image& img, const double* boxes, int n, const Options& opt, const Output& out) {
  validate(img, opt, out, n);
  if (n > 0 && !boxes) fail("boxes pointer is null");
  for (int i = 0; i < n; ++i) {
    const double* b = boxes + 4 * i;
    for (int j = 0; j < 4; ++j) {
      if (!std::isfinite(b[j]))
        fail("box ", i, " = (", b[0], ", ", b[1], ", ", b[2], ", ", b[3], ") contains NaN or Inf; pass finite (x, y, w, h) pixel coordinates");
      if (std::fabs(b[j]) > kMaxCoord)
        fail("box ", i, " = (", b[0], ", ", b[1], ", ", b[2], ", ", b[3], ") has coordinates beyond +-", kMaxCoord, " pixels; check the box units (pixels, x, y, w, h)");
    }
    if (!(b[2] > 0) || !(b[3] > 0))
      fail("box ", i, " = (", b[0], ", ", b[1], ", ", b[2], ", ", b[3], ") has a non-positive width or height; boxes are (x, y, w, h) with w, h > 0");
  }
  const Plan p = make_plan(img, opt);
  Scratch& S = scratch();
  for (int i = 0; i < n; ++i) run_box(img, p, opt, out, i, boxes + 4 * i, S);
}

void preprocess_affine(const Image& img, const double* inverse, int n, const Options& opt, const Output& out) {
  validate(img, opt, out, n);
  if (opt.interp != Interp::Linear) fail("affine regions support interpolation='linear' only (like cv2.warpAffine); use 'linear'");
  if (n > 0 && !inverse) fail("affine pointer is null");
  for (int i = 0; i < n * 6; ++i)
    if (!std::isfinite(inverse[i]) || std::fabs(inverse[i]) > kMaxCoord)
      fail("affine matrix ", i / 6, " has a non-finite or huge entry (", inverse[i], "); entries must be finite and within +-", kMaxCoord);
  const Plan p = make_plan(img, opt);
  Scratch& S = scratch();
  for (int i = 0; i < n; ++i) run_affine(img, p, opt, out, i, inverse + 6 * i, S);
}

}  // namespace frame
}  // namespace emoedge
