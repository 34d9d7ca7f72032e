// Inner loops of the frame kernel. Written as plain loops and GCC/Clang vector extensions
// (portable: SSE2 on x86-64, NEON on aarch64); frame_simd.cpp also builds an AVX2+FMA copy on
// x86-64 and picks it at run time (cpu.h).
#pragma once
#include <cstddef>
#include <cstdint>

namespace emoedge {
namespace frame {

// dst[i] = w0*r0[i] + w1*r1[i]
void blend2(const uint8_t* r0, const uint8_t* r1, float w0, float w1, float* dst, int n);
// Two-tap horizontal lerp of an interleaved tmp row (ct = 3 or 4 floats per pixel) into three
// planes: od[k][d] = (v[src[k]]) * a[k] + b[k], v = t[x0[d]..] + xf[d] * (t[x0[d]+ct..] - t[x0[d]..]).
// src is {0,1,2} or {2,1,0}.
void hlerp_planar3(const float* tmp, const int* x0, const float* xf, int n, int ct, const int* src, const float* a,
                   const float* b, float* const* od);
// Gray from an interleaved tmp row (ct = 3 or 4): od[d] = (sum_c mix[c] * v[c]) * a + b, v as above.
void hlerp_gray3(const float* tmp, const int* x0, const float* xf, int n, int ct, const float* mix, float a, float b,
                 float* od);
// One channel: od[d*xs] = (t[x0[d]] + xf[d] * (t[x0[d]+ct] - t[x0[d]])) * a + b
void hlerp1(const float* t, const int* x0, const float* xf, int n, int ct, float a, float b, float* od,
            std::ptrdiff_t xs);

}  // namespace frame
}  // namespace emoedge
