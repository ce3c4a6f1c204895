/* mathfn.h - fast, accurate exp, sigmoid and tanh for the element-wise kernels.
 *
 * glibc's scalar tanhf costs ~8 ns here and would take as long as all the GEMMs of a
 * small model (docs/design.md section 11). These are branch-free (selects only), so loops
 * over them vectorise; tests/test_mathfn.c checks them against libm in ULPs over the
 * whole float range, infinities and NaN included.
 */
#ifndef ELMO_MATHFN_H
#define ELMO_MATHFN_H

#include <math.h>
#include <stdint.h>

/* exp(x): Cody-Waite range reduction and the Cephes degree-6 polynomial (~1 ulp). */
static inline float fast_expf(float x) {
    const float hi = 88.7228391117f, lo = -87.3365447504f; /* log(FLT_MAX), log(FLT_MIN) */
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    xc = x == x ? xc : 0.0f; /* NaN: compute on 0, patched below */
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^n by its exponent bits; n = 128 (just below overflow) as 2^127 * 2 */
    int32_t k = (int32_t)n;
    float extra = k > 127 ? 2.0f : 1.0f;
    k = k > 127 ? 127 : k;
    union { int32_t i; float f; } scale = {.i = (k + 127) << 23};
    float y = p * scale.f * extra;
    y = x > hi ? INFINITY : y;
    y = x < lo ? 0.0f : y;
    return x == x ? y : x;
}

static inline float fast_sigmoidf(float x) { return 1.0f / (1.0f + fast_expf(-x)); }

/* tanh(x): odd polynomial below 0.625 (Cephes), 1 - 2/(exp(2|x|)+1) above. */
static inline float fast_tanhf(float x) {
    float a = fabsf(x);
    float z = x * x;
    float poly = -5.70498872745e-3f;
    poly = poly * z + 2.06390887954e-2f;
    poly = poly * z - 5.37397155531e-2f;
    poly = poly * z + 1.33314422036e-1f;
    poly = poly * z - 3.33332819422e-1f;
    float small = copysignf(a + a * z * poly, x); /* keeps the sign of -0 */
    float e = fast_expf(2.0f * a);
    float large = copysignf(1.0f - 2.0f / (e + 1.0f), x);
    return a < 0.625f ? small : large;
}

#endif
