/* test_mathfn.c - fast_expf, fast_sigmoidf, fast_tanhf against libm, in ULPs, over the
 * whole float range (a stride through every float), plus the special values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <string.h>

#include "mathfn.h"

/* Distance in representable floats between a and b (both finite, same sign domain). */
static double ulp_distance(float a, double exact) {
    float e = (float)exact;
    if (a == e) return 0;
    float spacing = nextafterf(fabsf(e), INFINITY) - fabsf(e);
    if (!isfinite(spacing) || spacing == 0) spacing = FLT_MIN;
    return fabs((double)a - exact) / spacing;
}

typedef float (*FastFn)(float);
typedef double (*ExactFn)(double);

static double exact_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static float call_exp(float x) { return fast_expf(x); }
static float call_sigmoid(float x) { return fast_sigmoidf(x); }
static float call_tanh(float x) { return fast_tanhf(x); }

/* Worst ULP error over floats (every 97th bit pattern) whose exact result is a normal float. */
static double worst_ulps(FastFn fast, ExactFn exact, float *worst_x) {
    double worst = 0;
    for (uint64_t bits = 0; bits < 0x100000000ull; bits += 97) {
        uint32_t b32 = (uint32_t)bits;
        float x;
        memcpy(&x, &b32, sizeof x);
        if (!isfinite(x)) continue;
        double e = exact((double)x);
        if (!isfinite(e) || (e != 0 && fabs(e) < FLT_MIN) || fabs(e) > FLT_MAX) continue;
        double u = ulp_distance(fast(x), e);
        if (u > worst) {
            worst = u;
            *worst_x = x;
        }
    }
    return worst;
}

static void test_exp(void **state) {
    float at = 0;
    double u = worst_ulps(call_exp, exp, &at);
    print_message("fast_expf: worst %.2f ulp at %g\n", u, at);
    assert_true(u <= 2.0);
    assert_true(isinf(fast_expf(INFINITY)) && fast_expf(INFINITY) > 0);
    assert_true(fast_expf(-INFINITY) == 0.0f);
    assert_true(isinf(fast_expf(100.0f)));
    assert_true(fast_expf(-100.0f) == 0.0f);
    assert_true(isnan(fast_expf(NAN)));
}

static void test_sigmoid(void **state) {
    float at = 0;
    double u = worst_ulps(call_sigmoid, exact_sigmoid, &at);
    print_message("fast_sigmoidf: worst %.2f ulp at %g\n", u, at);
    assert_true(u <= 3.0);
    assert_true(fast_sigmoidf(INFINITY) == 1.0f);
    assert_true(fast_sigmoidf(-INFINITY) == 0.0f);
    assert_true(fast_sigmoidf(1e30f) == 1.0f);
    assert_true(fast_sigmoidf(-1e30f) == 0.0f);
    assert_true(isnan(fast_sigmoidf(NAN)));
}

static void test_tanh(void **state) {
    float at = 0;
    double u = worst_ulps(call_tanh, tanh, &at);
    print_message("fast_tanhf: worst %.2f ulp at %g\n", u, at);
    assert_true(u <= 3.0);
    assert_true(fast_tanhf(INFINITY) == 1.0f);
    assert_true(fast_tanhf(-INFINITY) == -1.0f);
    assert_true(fast_tanhf(0.0f) == 0.0f);
    assert_true(signbit(fast_tanhf(-0.0f)));
    assert_true(fast_tanhf(1e-30f) == 1e-30f);
    assert_true(isnan(fast_tanhf(NAN)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_sigmoid),
        cmocka_unit_test(test_tanh),
    };
    return cmocka_run_group_tests_name("mathfn", tests, NULL, NULL);
}
