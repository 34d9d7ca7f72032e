#include "frame_simd.h"

#include "cpu.h"

namespace emoedge {
namespace frame {

namespace {

#define EMOEDGE_FRAME_KERNELS(SUFFIX, ATTR)                                                                   \
  ATTR void blend2_##SUFFIX(const uint8_t* __restrict r0, const uint8_t* __restrict r1, float w0, float w1,  \
                            float* __restrict acc, int n) {                                                  \
    for (int i = 0; i < n; ++i) acc[i] = w0 * static_cast<float>(r0[i]) + w1 * static_cast<float>(r1[i]);   \
  }                                                                                                          \
  ATTR void blend2_affine_##SUFFIX(const uint8_t* __restrict r0, const uint8_t* __restrict r1, float w0,     \
                                   float w1, const float* __restrict a, const float* __restrict b,           \
                                   float* __restrict dst, int n) {                                           \
    for (int i = 0; i < n; ++i)                                                                              \
      dst[i] = (w0 * static_cast<float>(r0[i]) + w1 * static_cast<float>(r1[i])) * a[i] + b[i];             \
  }                                                                                                          \
  ATTR void hpass2_##SUFFIX(const float* __restrict src, const int* __restrict idx, const float* __restrict w, \
                            float* __restrict out, std::ptrdiff_t xs, int n) {                               \
    if (xs == 1) {                                                                                           \
      for (int d = 0; d < n; ++d) out[d] = w[2 * d] * src[idx[2 * d]] + w[2 * d + 1] * src[idx[2 * d + 1]];  \
    } else {                                                                                                 \
      for (int d = 0; d < n; ++d)                                                                            \
        out[d * xs] = w[2 * d] * src[idx[2 * d]] + w[2 * d + 1] * src[idx[2 * d + 1]];                       \
    }                                                                                                        \
  }

EMOEDGE_FRAME_KERNELS(base, )
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
EMOEDGE_FRAME_KERNELS(avx2, __attribute__((target("avx2,fma"))))
#define EMOEDGE_HAVE_AVX2_PATH 1
#endif

}  // namespace

void blend2(const uint8_t* r0, const uint8_t* r1, float w0, float w1, float* acc, int n) {
#ifdef EMOEDGE_HAVE_AVX2_PATH
  if (cpu_has_avx2_fma()) return blend2_avx2(r0, r1, w0, w1, acc, n);
#endif
  blend2_base(r0, r1, w0, w1, acc, n);
}

void blend2_affine(const uint8_t* r0, const uint8_t* r1, float w0, float w1, const float* a, const float* b,
                   float* dst, int n) {
#ifdef EMOEDGE_HAVE_AVX2_PATH
  if (cpu_has_avx2_fma()) return blend2_affine_avx2(r0, r1, w0, w1, a, b, dst, n);
#endif
  blend2_affine_base(r0, r1, w0, w1, a, b, dst, n);
}

void hpass2(const float* src, const int* idx, const float* w, float* out, std::ptrdiff_t xs, int n) {
#ifdef EMOEDGE_HAVE_AVX2_PATH
  if (cpu_has_avx2_fma()) return hpass2_avx2(src, idx, w, out, xs, n);
#endif
  hpass2_base(src, idx, w, out, xs, n);
}

}  // namespace frame
}  // namespace emoedge
