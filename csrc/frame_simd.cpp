#include "frame_simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#if defined(__GNUC__) || defined(__clang__)
#define EMOEDGE_HAVE_AVX2_PATH 1
#endif
#endif

namespace emoedge {
namespace frame {

namespace {

typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));
typedef int16_t v4s __attribute__((vector_size(8)));

// Four int16 -> four floats.
#if defined(__x86_64__)
inline v4f load4_base(const int16_t* p) {  // SSE2 baseline: sign-extend by unpack + shift
  const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return (v4f)_mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpacklo_epi16(v, v), 16));
}
#else
inline v4f load4_base(const int16_t* p) {
  v4s v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, v4f);
}
#endif
#if defined(__x86_64__)
inline v4f load4u8_base(const uint8_t* p) {
  uint32_t u;
  std::memcpy(&u, p, 4);
  const __m128i z = _mm_setzero_si128();
  const __m128i v = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(static_cast<int>(u)), z), z);
  return (v4f)_mm_cvtepi32_ps(v);
}
#else
typedef uint8_t v4u8 __attribute__((vector_size(4)));
inline v4f load4u8_base(const uint8_t* p) {
  v4u8 v;
  std::memcpy(&v, p, 4);
  return __builtin_convertvector(v, v4f);
}
#endif
#ifdef EMOEDGE_HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) inline v4f load4u8_avx2(const uint8_t* p) {
  uint32_t u;
  std::memcpy(&u, p, 4);
  return (v4f)_mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(static_cast<int>(u))));
}
__attribute__((target("avx2,fma"))) inline v4f load4_avx2(const int16_t* p) {
  return (v4f)_mm_cvtepi32_ps(_mm_cvtepi16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
#endif
inline void store4(float* p, v4f v) { std::memcpy(p, &v, sizeof v); }
inline v4f splat(float x) { return v4f{x, x, x, x}; }

#if defined(__clang__)
#define EMOEDGE_SHUF(a, b, i0, i1, i2, i3) __builtin_shufflevector(a, b, i0, i1, i2, i3)
#else
#define EMOEDGE_SHUF(a, b, i0, i1, i2, i3) __builtin_shuffle(a, b, v4i{i0, i1, i2, i3})
#endif

inline int16_t mulhrs(int x, int w) { return static_cast<int16_t>((x * w + 0x4000) >> 15); }

void blend2_q7_base(const uint8_t* __restrict r0, const uint8_t* __restrict r1, int w0q, int w1q,
                    int16_t* __restrict dst, int n) {
  if (w1q == 0) {
    for (int i = 0; i < n; ++i) dst[i] = static_cast<int16_t>(r0[i] << 7);
    return;
  }
  for (int i = 0; i < n; ++i)
    dst[i] = static_cast<int16_t>(mulhrs(r0[i] << 7, w0q) + mulhrs(r1[i] << 7, w1q));
}

#ifdef EMOEDGE_HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) void blend2_q7_avx2(const uint8_t* __restrict r0, const uint8_t* __restrict r1,
                                                        int w0q, int w1q, int16_t* __restrict dst, int n) {
  int i = 0;
  if (w1q == 0) {
    for (; i + 16 <= n; i += 16) {
      const __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + i)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_slli_epi16(a, 7));
    }
    for (; i < n; ++i) dst[i] = static_cast<int16_t>(r0[i] << 7);
    return;
  }
  const __m256i W0 = _mm256_set1_epi16(static_cast<int16_t>(w0q)), W1 = _mm256_set1_epi16(static_cast<int16_t>(w1q));
  auto step = [&](int j) __attribute__((target("avx2,fma"))) {
    const __m256i a = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + j))), 7);
    const __m256i b = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + j))), 7);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j),
                        _mm256_add_epi16(_mm256_mulhrs_epi16(a, W0), _mm256_mulhrs_epi16(b, W1)));
  };
  for (; i + 16 <= n; i += 16) step(i);
  if (i < n && n >= 16) { step(n - 16); return; }  // overlapping last block instead of a scalar tail
  for (; i < n; ++i) dst[i] = static_cast<int16_t>(mulhrs(r0[i] << 7, w0q) + mulhrs(r1[i] << 7, w1q));
}
#endif

#ifdef EMOEDGE_HAVE_AVX2_PATH
// 8 int16 at p -> 8 floats.
__attribute__((target("avx2,fma"))) inline __m256 load8_avx2(const int16_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// One 16-byte load per pixel covers both taps (t[x0..x0+ct+3]); a lane permute aligns the second.
template <bool SWAP>
__attribute__((target("avx2,fma"))) void hlerp_planar3_avx2x(const int16_t* __restrict tmp, const int* __restrict x0,
                                                             const float* __restrict xf, int n, int ct, const float* a,
                                                             const float* b, float* const* od) {
  const __m256i sh = _mm256_setr_epi32(ct, ct + 1, ct + 2, ct + 3, 4, 5, 6, 7);
  const __m128 A0 = _mm_set1_ps(a[0]), A1 = _mm_set1_ps(a[1]), A2 = _mm_set1_ps(a[2]);
  const __m128 B0 = _mm_set1_ps(b[0]), B1 = _mm_set1_ps(b[1]), B2 = _mm_set1_ps(b[2]);
  float* __restrict o0 = od[0];
  float* __restrict o1 = od[1];
  float* __restrict o2 = od[2];
  int d = 0;
  for (; d + 4 <= n; d += 4) {
    __m128 r[4];
    for (int j = 0; j < 4; ++j) {
      const __m256 v = load8_avx2(tmp + x0[d + j]);
      const __m128 lo = _mm256_castps256_ps128(v);
      const __m128 hi = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(v, sh));
      r[j] = _mm_fmadd_ps(_mm_set1_ps(xf[d + j]), _mm_sub_ps(hi, lo), lo);
    }
    const __m128 t0 = _mm_unpacklo_ps(r[0], r[1]), t1 = _mm_unpackhi_ps(r[0], r[1]);
    const __m128 t2 = _mm_unpacklo_ps(r[2], r[3]), t3 = _mm_unpackhi_ps(r[2], r[3]);
    const __m128 c0 = _mm_movelh_ps(t0, t2), c1 = _mm_movehl_ps(t2, t0), c2 = _mm_movelh_ps(t1, t3);
    _mm_storeu_ps(o0 + d, _mm_fmadd_ps(SWAP ? c2 : c0, A0, B0));
    _mm_storeu_ps(o1 + d, _mm_fmadd_ps(c1, A1, B1));
    _mm_storeu_ps(o2 + d, _mm_fmadd_ps(SWAP ? c0 : c2, A2, B2));
  }
  for (; d < n; ++d) {
    const int16_t* p = tmp + x0[d];
    const float f = xf[d];
    float v[3];
    for (int c = 0; c < 3; ++c) v[c] = p[c] + f * static_cast<float>(p[ct + c] - p[c]);
    o0[d] = v[SWAP ? 2 : 0] * a[0] + b[0];
    o1[d] = v[1] * a[1] + b[1];
    o2[d] = v[SWAP ? 0 : 2] * a[2] + b[2];
  }
}

// Gray: od[d] = sum_{i<8} w8[8d + i] * t[x0[d] + i] + b (the weights hold lerp, mix and scale).
__attribute__((target("avx2,fma"))) void hdot8_avx2(const int16_t* __restrict tmp, const int* __restrict x0,
                                                    const float* __restrict w8, int n, float b, float* __restrict od) {
  const __m256 B = _mm256_set1_ps(b);
  int d = 0;
  for (; d + 8 <= n; d += 8) {
    __m256 s[8];
    for (int j = 0; j < 8; ++j) s[j] = _mm256_mul_ps(load8_avx2(tmp + x0[d + j]), _mm256_loadu_ps(w8 + 8 * (d + j)));
    const __m256 h01 = _mm256_hadd_ps(s[0], s[1]), h23 = _mm256_hadd_ps(s[2], s[3]);
    const __m256 h45 = _mm256_hadd_ps(s[4], s[5]), h67 = _mm256_hadd_ps(s[6], s[7]);
    const __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);
    const __m256 lo = _mm256_permute2f128_ps(q0, q1, 0x20), hi = _mm256_permute2f128_ps(q0, q1, 0x31);
    _mm256_storeu_ps(od + d, _mm256_add_ps(_mm256_add_ps(lo, hi), B));
  }
  for (; d < n; ++d) {
    const int16_t* p = tmp + x0[d];
    const float* w = w8 + 8 * d;
    float acc = 0.f;
    for (int i = 0; i < 8; ++i) acc += w[i] * static_cast<float>(p[i]);
    od[d] = acc + b;
  }
}
#endif

void hdot8_base(const int16_t* __restrict tmp, const int* __restrict x0, const float* __restrict w8, int n, float b,
                float* __restrict od) {
  for (int d = 0; d < n; ++d) {
    const int16_t* p = tmp + x0[d];
    const float* w = w8 + 8 * d;
    float acc = 0.f;
    for (int i = 0; i < 8; ++i) acc += w[i] * static_cast<float>(p[i]);
    od[d] = acc + b;
  }
}

// Source coordinates of output row oy: integer parts (ix, iy) and fractions (fx, fy), d0 <= d < n.
// Coordinates are clamped to +-4M pixels first, so the integer casts are always defined.
inline void affine_coords_range(const double* M, int oy, int d0, int n, int* ix, int* iy, float* fx, float* fy) {
  const double bxr = M[1] * oy + M[2], byr = M[4] * oy + M[5], lim = 4.0 * 1048576.0;
  for (int d = d0; d < n; ++d) {
    const double xs = std::min(std::max(M[0] * d + bxr, -lim), lim);
    const double ys = std::min(std::max(M[3] * d + byr, -lim), lim);
    const double flx = std::floor(xs), fly = std::floor(ys);
    ix[d] = static_cast<int>(flx);
    iy[d] = static_cast<int>(fly);
    fx[d] = static_cast<float>(xs - flx);
    fy[d] = static_cast<float>(ys - fly);
  }
}
inline void affine_coords_base(const double* M, int oy, int n, int* ix, int* iy, float* fx, float* fy) {
  affine_coords_range(M, oy, 0, n, ix, iy, fx, fy);
}
#ifdef EMOEDGE_HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) inline void affine_coords_avx2(const double* M, int oy, int n, int* ix, int* iy,
                                                                   float* fx, float* fy) {
  const double bxr = M[1] * oy + M[2], byr = M[4] * oy + M[5], lim = 4.0 * 1048576.0;
  const __m256d L = _mm256_set1_pd(lim), NL = _mm256_set1_pd(-lim);
  const __m256d M0 = _mm256_set1_pd(M[0]), M3 = _mm256_set1_pd(M[3]);
  const __m256d BX = _mm256_set1_pd(bxr), BY = _mm256_set1_pd(byr);
  int d = 0;
  for (; d + 4 <= n; d += 4) {
    const __m256d D = _mm256_setr_pd(d, d + 1, d + 2, d + 3);
    // same operation order as the scalar path: M0 * d + b (no FMA contraction), so both agree exactly
    const __m256d xs = _mm256_min_pd(_mm256_max_pd(_mm256_add_pd(_mm256_mul_pd(M0, D), BX), NL), L);
    const __m256d ys = _mm256_min_pd(_mm256_max_pd(_mm256_add_pd(_mm256_mul_pd(M3, D), BY), NL), L);
    const __m256d flx = _mm256_floor_pd(xs), fly = _mm256_floor_pd(ys);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(ix + d), _mm256_cvttpd_epi32(flx));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(iy + d), _mm256_cvttpd_epi32(fly));
    _mm_storeu_ps(fx + d, _mm256_cvtpd_ps(_mm256_sub_pd(xs, flx)));
    _mm_storeu_ps(fy + d, _mm256_cvtpd_ps(_mm256_sub_pd(ys, fly)));
  }
  affine_coords_range(M, oy, d, n, ix, iy, fx, fy);  // tail
}
#endif

// The float kernels are instantiated per instruction set by this macro.
#define EMOEDGE_FRAME_KERNELS(SUFFIX, ATTR)                                                                      \
  template <bool SWAP>                                                                                          \
  ATTR void hlerp_planar3_##SUFFIX(const int16_t* __restrict tmp, const int* __restrict x0,                     \
                                   const float* __restrict xf, int n, int ct, const float* a, const float* b,   \
                                   float* const* od) {                                                          \
    const v4f A0 = splat(a[0]), A1 = splat(a[1]), A2 = splat(a[2]);                                            \
    const v4f B0 = splat(b[0]), B1 = splat(b[1]), B2 = splat(b[2]);                                            \
    float* __restrict o0 = od[0];                                                                               \
    float* __restrict o1 = od[1];                                                                               \
    float* __restrict o2 = od[2];                                                                               \
    int d = 0;                                                                                                  \
    for (; d + 4 <= n; d += 4) {                                                                                \
      v4f r[4];                                                                                                 \
      for (int j = 0; j < 4; ++j) {                                                                             \
        const int16_t* p = tmp + x0[d + j];                                                                     \
        const v4f lo = load4_##SUFFIX(p), hi = load4_##SUFFIX(p + ct);                                                            \
        r[j] = lo + splat(xf[d + j]) * (hi - lo);                                                               \
      }                                                                                                         \
      const v4f t0 = EMOEDGE_SHUF(r[0], r[1], 0, 4, 1, 5), t1 = EMOEDGE_SHUF(r[0], r[1], 2, 6, 3, 7);          \
      const v4f t2 = EMOEDGE_SHUF(r[2], r[3], 0, 4, 1, 5), t3 = EMOEDGE_SHUF(r[2], r[3], 2, 6, 3, 7);          \
      const v4f c0 = EMOEDGE_SHUF(t0, t2, 0, 1, 4, 5), c1 = EMOEDGE_SHUF(t0, t2, 2, 3, 6, 7);                  \
      const v4f c2 = EMOEDGE_SHUF(t1, t3, 0, 1, 4, 5);                                                          \
      store4(o0 + d, (SWAP ? c2 : c0) * A0 + B0);                                                               \
      store4(o1 + d, c1 * A1 + B1);                                                                             \
      store4(o2 + d, (SWAP ? c0 : c2) * A2 + B2);                                                               \
    }                                                                                                           \
    for (; d < n; ++d) {                                                                                        \
      const int16_t* p = tmp + x0[d];                                                                           \
      const float f = xf[d];                                                                                    \
      float v[3];                                                                                               \
      for (int c = 0; c < 3; ++c) v[c] = p[c] + f * static_cast<float>(p[ct + c] - p[c]);                      \
      o0[d] = v[SWAP ? 2 : 0] * a[0] + b[0];                                                                    \
      o1[d] = v[1] * a[1] + b[1];                                                                               \
      o2[d] = v[SWAP ? 0 : 2] * a[2] + b[2];                                                                    \
    }                                                                                                           \
  }                                                                                                             \
  ATTR void hlerp_gray3_##SUFFIX(const int16_t* __restrict tmp, const int* __restrict x0,                       \
                                 const float* __restrict xf, int n, int ct, const float* mix, float a, float b, \
                                 float* __restrict od) {                                                        \
    const v4f M0 = splat(mix[0] * a), M1 = splat(mix[1] * a), M2 = splat(mix[2] * a), B = splat(b);            \
    int d = 0;                                                                                                  \
    for (; d + 4 <= n; d += 4) {                                                                                \
      v4f r[4];                                                                                                 \
      for (int j = 0; j < 4; ++j) {                                                                             \
        const int16_t* p = tmp + x0[d + j];                                                                     \
        const v4f lo = load4_##SUFFIX(p), hi = load4_##SUFFIX(p + ct);                                                            \
        r[j] = lo + splat(xf[d + j]) * (hi - lo);                                                               \
      }                                                                                                         \
      const v4f t0 = EMOEDGE_SHUF(r[0], r[1], 0, 4, 1, 5), t1 = EMOEDGE_SHUF(r[0], r[1], 2, 6, 3, 7);          \
      const v4f t2 = EMOEDGE_SHUF(r[2], r[3], 0, 4, 1, 5), t3 = EMOEDGE_SHUF(r[2], r[3], 2, 6, 3, 7);          \
      const v4f c0 = EMOEDGE_SHUF(t0, t2, 0, 1, 4, 5), c1 = EMOEDGE_SHUF(t0, t2, 2, 3, 6, 7);                  \
      const v4f c2 = EMOEDGE_SHUF(t1, t3, 0, 1, 4, 5);                                                          \
      store4(od + d, c0 * M0 + c1 * M1 + c2 * M2 + B);                                                          \
    }                                                                                                           \
    for (; d < n; ++d) {                                                                                        \
      const int16_t* p = tmp + x0[d];                                                                           \
      const float f = xf[d];                                                                                    \
      const float v0 = p[0] + f * static_cast<float>(p[ct] - p[0]);                                             \
      const float v1 = p[1] + f * static_cast<float>(p[ct + 1] - p[1]);                                         \
      const float v2 = p[2] + f * static_cast<float>(p[ct + 2] - p[2]);                                         \
      od[d] = (mix[0] * v0 + mix[1] * v1 + mix[2] * v2) * a + b;                                                \
    }                                                                                                           \
  }                                                                                                             \
  ATTR void affine_row_##SUFFIX(const uint8_t* __restrict data, int H, int W, std::ptrdiff_t rs, int cin,       \
                                const double* M, int oy, int n, float* __restrict vals,                         \
                                uint8_t* __restrict slow, int* __restrict ixy, float* __restrict fxy) {         \
    affine_coords_##SUFFIX(M, oy, n, ixy, ixy + n, fxy, fxy + n);                                              \
    /* pass 2: the four taps of every pixel whose 2x2 neighbourhood is inside */                                \
    const unsigned wl = static_cast<unsigned>(W - 1), hl = static_cast<unsigned>(H - 1);                        \
    for (int d = 0; d < n; ++d) {                                                                               \
      const int sx = ixy[d], sy = ixy[n + d];                                                           \
      bool ok = static_cast<unsigned>(sx) < wl && static_cast<unsigned>(sy) < hl;                               \
      if (ok && cin == 3 && sy + 1 == H - 1 && sx + 1 == W - 1) ok = false; /* 4-byte load past the end */     \
      slow[d] = !ok;                                                                                            \
      if (!ok) continue;                                                                                        \
      const float fx = fxy[d], fy = fxy[n + d];                                                         \
      const uint8_t* p0 = data + sy * rs + static_cast<std::ptrdiff_t>(sx) * cin;                               \
      const uint8_t* p1 = p0 + rs;                                                                              \
      if (cin == 1) {                                                                                           \
        const float t = p0[0] + fx * static_cast<float>(p0[1] - p0[0]);                                         \
        const float u = p1[0] + fx * static_cast<float>(p1[1] - p1[0]);                                         \
        vals[4 * d] = t + fy * (u - t);                                                                         \
      } else {                                                                                                  \
        const v4f a = load4u8_##SUFFIX(p0), b = load4u8_##SUFFIX(p0 + cin);                                     \
        const v4f c = load4u8_##SUFFIX(p1), e = load4u8_##SUFFIX(p1 + cin);                                     \
        const v4f t = a + splat(fx) * (b - a), u = c + splat(fx) * (e - c);                                     \
        const v4f v = t + splat(fy) * (u - t);                                                                  \
        std::memcpy(vals + 4 * d, &v, sizeof v);                                                                \
      }                                                                                                         \
    }                                                                                                           \
  }                                                                                                             \
  ATTR void hlerp1_##SUFFIX(const int16_t* __restrict t, const int* __restrict x0, const float* __restrict xf,   \
                            int n, int ct, float a, float b, float* __restrict od, std::ptrdiff_t xs) {         \
    for (int d = 0; d < n; ++d) {                                                                               \
      const int16_t* p = t + x0[d];                                                                             \
      od[d * xs] = (p[0] + xf[d] * static_cast<float>(p[ct] - p[0])) * a + b;                                   \
    }                                                                                                           \
  }

EMOEDGE_FRAME_KERNELS(base, )
#ifdef EMOEDGE_HAVE_AVX2_PATH
EMOEDGE_FRAME_KERNELS(avx2, __attribute__((target("avx2,fma"))))
#endif

}  // namespace

#ifdef EMOEDGE_HAVE_AVX2_PATH
namespace {
const bool kAvx2 = cpu_has_avx2_fma();  // decided once, at load time
}  // namespace
#define EMOEDGE_PICK(NAME) (kAvx2 ? NAME##_avx2 : NAME##_base)
#define EMOEDGE_PICK_T(NAME, T) (kAvx2 ? NAME##_avx2<T> : NAME##_base<T>)
#else
#define EMOEDGE_PICK(NAME) NAME##_base
#define EMOEDGE_PICK_T(NAME, T) NAME##_base<T>
#endif

void q15_weights(float w0, float w1, int* w0q, int* w1q) {
  (void)w0;
  long q1 = std::lround(static_cast<double>(w1) * 32768.0);
  if (q1 < 0) q1 = 0;
  if (q1 > 32767) q1 = 32767;
  *w1q = static_cast<int>(q1);
  *w0q = q1 == 0 ? 32768 : static_cast<int>(32768 - q1);
}

void blend2_q7(const uint8_t* r0, const uint8_t* r1, int w0q, int w1q, int16_t* dst, int n) {
  EMOEDGE_PICK(blend2_q7)(r0, r1, w0q, w1q, dst, n);
}

void hlerp_planar3(const int16_t* tmp, const int* x0, const float* xf, int n, int ct, const int* src, const float* a,
                   const float* b, float* const* od) {
#ifdef EMOEDGE_HAVE_AVX2_PATH
  if (kAvx2) {
    if (src[0] == 2) hlerp_planar3_avx2x<true>(tmp, x0, xf, n, ct, a, b, od);
    else hlerp_planar3_avx2x<false>(tmp, x0, xf, n, ct, a, b, od);
    return;
  }
#endif
  if (src[0] == 2) hlerp_planar3_base<true>(tmp, x0, xf, n, ct, a, b, od);
  else hlerp_planar3_base<false>(tmp, x0, xf, n, ct, a, b, od);
}

void hdot8(const int16_t* tmp, const int* x0, const float* w8, int n, float b, float* od) {
  EMOEDGE_PICK(hdot8)(tmp, x0, w8, n, b, od);
}

void hlerp_gray3(const int16_t* tmp, const int* x0, const float* xf, int n, int ct, const float* mix, float a, float b,
                 float* od) {
  EMOEDGE_PICK(hlerp_gray3)(tmp, x0, xf, n, ct, mix, a, b, od);
}

void affine_row(const uint8_t* data, int H, int W, std::ptrdiff_t rs, int cin, const double* M, int oy, int n,
                float* vals, uint8_t* slow, int* ixy, float* fxy) {
  EMOEDGE_PICK(affine_row)(data, H, W, rs, cin, M, oy, n, vals, slow, ixy, fxy);
}

void hlerp1(const int16_t* t, const int* x0, const float* xf, int n, int ct, float a, float b, float* od,
            std::ptrdiff_t xs) {
  EMOEDGE_PICK(hlerp1)(t, x0, xf, n, ct, a, b, od, xs);
}

}  // namespace frame
}  // namespace emoedge
