// Inner loops of the frame kernel. Plain loops that compilers auto-vectorize; frame_simd.cpp
// builds them twice on x86-64 (baseline and AVX2+FMA) and picks one at run time (cpu.h).
#pragma once
#include <cstddef>
#include <cstdint>

namespace emoedge {
namespace frame {

// acc[i] = w0*r0[i] + w1*r1[i]
void blend2(const uint8_t* r0, const uint8_t* r1, float w0, float w1, float* acc, int n);
// dst[i] = (w0*r0[i] + w1*r1[i]) * a[i] + b[i]
void blend2_affine(const uint8_t* r0, const uint8_t* r1, float w0, float w1, const float* a, const float* b,
                   float* dst, int n);
// out[d*xs] = w[2d]*src[idx[2d]] + w[2d+1]*src[idx[2d+1]]  for d in [0, n)
void hpass2(const float* src, const int* idx, const float* w, float* out, std::ptrdiff_t xs, int n);

}  // namespace frame
}  // namespace emoedge
