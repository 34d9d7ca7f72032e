#include "frame_simd.h"

#include <cstring>

#include "cpu.h"

namespace emoedge {
namespace frame {

namespace {

typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

inline v4f load4(const float* p) { v4f v; std::memcpy(&v, p, sizeof v); return v; }
inline void store4(float* p, v4f v) { std::memcpy(p, &v, sizeof v); }
inline v4f splat(float x) { return v4f{x, x, x, x}; }

#if defined(__clang__)
#define EMOEDGE_SHUF(a, b, i0, i1, i2, i3) __builtin_shufflevector(a, b, i0, i1, i2, i3)
#else
#define EMOEDGE_SHUF(a, b, i0, i1, i2, i3) __builtin_shuffle(a, b, v4i{i0, i1, i2, i3})
#endif

// The kernels are templates instantiated per instruction set by the macro below.
#define EMOEDGE_FRAME_KERNELS(SUFFIX, ATTR)                                                                      \
  ATTR void blend2_##SUFFIX(const uint8_t* __restrict r0, const uint8_t* __restrict r1, float w0, float w1,     \
                            float* __restrict dst, int n) {                                                     \
    for (int i = 0; i < n; ++i) dst[i] = w0 * static_cast<float>(r0[i]) + w1 * static_cast<float>(r1[i]);      \
  }                                                                                                             \
  template <bool SWAP>                                                                                          \
  ATTR void hlerp_planar3_##SUFFIX(const float* __restrict tmp, const int* __restrict x0,                       \
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
        const float* p = tmp + x0[d + j];                                                                       \
        const v4f lo = load4(p), hi = load4(p + ct);                                                            \
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
      const float* p = tmp + x0[d];                                                                             \
      const float f = xf[d];                                                                                    \
      float v[3];                                                                                               \
      for (int c = 0; c < 3; ++c) v[c] = p[c] + f * (p[ct + c] - p[c]);                                         \
      o0[d] = v[SWAP ? 2 : 0] * a[0] + b[0];                                                                    \
      o1[d] = v[1] * a[1] + b[1];                                                                               \
      o2[d] = v[SWAP ? 0 : 2] * a[2] + b[2];                                                                    \
    }                                                                                                           \
  }                                                                                                             \
  ATTR void hlerp_gray3_##SUFFIX(const float* __restrict tmp, const int* __restrict x0,                         \
                                 const float* __restrict xf, int n, int ct, const float* mix, float a, float b, \
                                 float* __restrict od) {                                                        \
    const v4f M0 = splat(mix[0] * a), M1 = splat(mix[1] * a), M2 = splat(mix[2] * a), B = splat(b);            \
    int d = 0;                                                                                                  \
    for (; d + 4 <= n; d += 4) {                                                                                \
      v4f r[4];                                                                                                 \
      for (int j = 0; j < 4; ++j) {                                                                             \
        const float* p = tmp + x0[d + j];                                                                       \
        const v4f lo = load4(p), hi = load4(p + ct);                                                            \
        r[j] = lo + splat(xf[d + j]) * (hi - lo);                                                               \
      }                                                                                                         \
      const v4f t0 = EMOEDGE_SHUF(r[0], r[1], 0, 4, 1, 5), t1 = EMOEDGE_SHUF(r[0], r[1], 2, 6, 3, 7);          \
      const v4f t2 = EMOEDGE_SHUF(r[2], r[3], 0, 4, 1, 5), t3 = EMOEDGE_SHUF(r[2], r[3], 2, 6, 3, 7);          \
      const v4f c0 = EMOEDGE_SHUF(t0, t2, 0, 1, 4, 5), c1 = EMOEDGE_SHUF(t0, t2, 2, 3, 6, 7);                  \
      const v4f c2 = EMOEDGE_SHUF(t1, t3, 0, 1, 4, 5);                                                          \
      store4(od + d, c0 * M0 + c1 * M1 + c2 * M2 + B);                                                          \
    }                                                                                                           \
    for (; d < n; ++d) {                                                                                        \
      const float* p = tmp + x0[d];                                                                             \
      const float f = xf[d];                                                                                    \
      const float v0 = p[0] + f * (p[ct] - p[0]), v1 = p[1] + f * (p[ct + 1] - p[1]);                           \
      const float v2 = p[2] + f * (p[ct + 2] - p[2]);                                                           \
      od[d] = (mix[0] * v0 + mix[1] * v1 + mix[2] * v2) * a + b;                                                \
    }                                                                                                           \
  }                                                                                                             \
  ATTR void hlerp1_##SUFFIX(const float* __restrict t, const int* __restrict x0, const float* __restrict xf,     \
                            int n, int ct, float a, float b, float* __restrict od, std::ptrdiff_t xs) {         \
    if (xs == 1) {                                                                                              \
      for (int d = 0; d < n; ++d) {                                                                             \
        const float* p = t + x0[d];                                                                             \
        od[d] = (p[0] + xf[d] * (p[ct] - p[0])) * a + b;                                                        \
      }                                                                                                         \
    } else {                                                                                                    \
      for (int d = 0; d < n; ++d) {                                                                             \
        const float* p = t + x0[d];                                                                             \
        od[d * xs] = (p[0] + xf[d] * (p[ct] - p[0])) * a + b;                                                   \
      }                                                                                                         \
    }                                                                                                           \
  }

EMOEDGE_FRAME_KERNELS(base, )
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
EMOEDGE_FRAME_KERNELS(avx2, __attribute__((target("avx2,fma"))))
#define EMOEDGE_HAVE_AVX2_PATH 1
#endif

}  // namespace

#ifdef EMOEDGE_HAVE_AVX2_PATH
#define EMOEDGE_PICK(NAME) (cpu_has_avx2_fma() ? NAME##_avx2 : NAME##_base)
#define EMOEDGE_PICK_T(NAME, T) (cpu_has_avx2_fma() ? NAME##_avx2<T> : NAME##_base<T>)
#else
#define EMOEDGE_PICK(NAME) NAME##_base
#define EMOEDGE_PICK_T(NAME, T) NAME##_base<T>
#endif

void blend2(const uint8_t* r0, const uint8_t* r1, float w0, float w1, float* dst, int n) {
  EMOEDGE_PICK(blend2)(r0, r1, w0, w1, dst, n);
}

void hlerp_gray3(const float* tmp, const int* x0, const float* xf, int n, int ct, const float* mix, float a, float b,
                 float* od) {
  EMOEDGE_PICK(hlerp_gray3)(tmp, x0, xf, n, ct, mix, a, b, od);
}

void hlerp_planar3(const float* tmp, const int* x0, const float* xf, int n, int ct, const int* src, const float* a,
                   const float* b, float* const* od) {
  if (src[0] == 2) EMOEDGE_PICK_T(hlerp_planar3, true)(tmp, x0, xf, n, ct, a, b, od);
  else EMOEDGE_PICK_T(hlerp_planar3, false)(tmp, x0, xf, n, ct, a, b, od);
}

void hlerp1(const float* t, const int* x0, const float* xf, int n, int ct, float a, float b, float* od,
            std::ptrdiff_t xs) {
  EMOEDGE_PICK(hlerp1)(t, x0, xf, n, ct, a, b, od, xs);
}

}  // namespace frame
}  // namespace emoedge
