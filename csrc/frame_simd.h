// Inner loops of the frame kernel. The blended rows ("tmp") hold pixel values in Q7 fixed point
// (int16, value * 128): half the memory traffic of float and twice the SIMD width, with an error
// below 0.02 grey levels. Written as plain loops and GCC/Clang vector extensions (portable: SSE2 on
// x86-64, NEON on aarch64); frame_simd.cpp also builds an AVX2+FMA copy on x86-64 and picks it at
// run time (cpu.h). Both copies compute the blend with the same integer arithmetic.
#pragma once
#include <cstddef>
#include <cstdint>

namespace emoedge {
namespace frame {

constexpr float kQ = 128.f;  // tmp = pixel * kQ

// Q15 weight pair for blend2_q7 from float weights summing to 1 (w0q + w1q == 32768 when w1q > 0).
void q15_weights(float w0, float w1, int* w0q, int* w1q);
// dst[i] = rnd(r0[i]*128*w0q / 32768) + rnd(r1[i]*128*w1q / 32768)   (pmulhrsw semantics);
// w1q == 0 means dst = r0 * 128 exactly.
void blend2_q7(const uint8_t* r0, const uint8_t* r1, int w0q, int w1q, int16_t* dst, int n);
// Two-tap horizontal lerp of an interleaved tmp row (ct = 3 or 4 values per pixel) into three
// planes: od[k][d] = v[src[k]] * a[k] + b[k], v = t[x0[d]..] + xf[d] * (t[x0[d]+ct..] - t[x0[d]..]).
// src is {0,1,2} or {2,1,0}. (a already includes 1/kQ.)
void hlerp_planar3(const int16_t* tmp, const int* x0, const float* xf, int n, int ct, const int* src, const float* a,
                   const float* b, float* const* od);
// Gray from an interleaved tmp row (ct = 3 or 4): od[d] = (sum_c mix[c] * v[c]) * a + b, v as above.
void hlerp_gray3(const int16_t* tmp, const int* x0, const float* xf, int n, int ct, const float* mix, float a, float b,
                 float* od);
// Dot products: od[d] = sum_{i<8} w8[8*d + i] * t[x0[d] + i] + b (8 values readable past each x0).
// Used for gray: the 8 weights per pixel hold the lerp, the colour mix and the scale.
void hdot8(const int16_t* tmp, const int* x0, const float* w8, int n, float b, float* od);
// Bilinear samples along output row oy of an affine warp (M: output -> source, row-major 2x3) of a
// contiguous-pixel image (cin = 1, 3 or 4, row stride rs > 0). vals[4*d + c] = sample of channel c
// (pixel units) for d < n; slow[d] = 1 where the 2x2 neighbourhood is not safely inside the image
// (vals[4*d..] is then not written: the caller samples those pixels with the border rule).
// ixy (2n ints) and fxy (2n floats) are scratch.
void affine_row(const uint8_t* data, int H, int W, std::ptrdiff_t rs, int cin, const double* M, int oy, int n,
                float* vals, uint8_t* slow, int* ixy, float* fxy);
// One channel: od[d*xs] = (t[x0[d]] + xf[d] * (t[x0[d]+ct] - t[x0[d]])) * a + b
void hlerp1(const int16_t* t, const int* x0, const float* xf, int n, int ct, float a, float b, float* od,
            std::ptrdiff_t xs);

}  // namespace frame
}  // namespace emoedge
