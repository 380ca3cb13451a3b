// Floating point: special values, rounding, min/max, conversions, libm, printf.
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <inttypes.h>

static volatile double vd[] = {0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.7, -3.7, 1e300, -1e-300,
                               DBL_MIN, DBL_TRUE_MIN, DBL_MAX, 4503599627370497.0, 0.1, 1.0 / 3.0, 123456.789};
static volatile float vf[] = {0.0f, -0.0f, 1.0f, 0.1f, -2.5f, 3.5f, 16777217.0f, FLT_MAX, FLT_MIN, 1e-45f, 7.25f};
#define N(a) (sizeof(a) / sizeof((a)[0]))

// NaN sign is not deterministic in Wasm (and differs between x86 and aarch64): print it without sign.
static void pd(const char *label, double x) {
    if (isnan(x)) {
        uint64_t b; memcpy(&b, &x, 8);
        printf("%s nan(payload %013" PRIx64 ")\n", label, b & 0xfffffffffffffull);
    } else {
        printf("%s %.17g %a\n", label, x, x);
    }
}
static void pf(const char *label, float x) {
    if (isnan(x)) printf("%s nan\n", label);
    else printf("%s %.9g %a\n", label, (double)x, (double)x);
}

int main(void) {
    volatile double zero = 0.0, one = 1.0, inf = INFINITY;
    double nan1 = zero / zero;
    printf("== special values\n");
    pd("0/0", nan1);
    pd("1/0", one / zero);
    pd("-1/0", -one / zero);
    pd("inf-inf", inf - inf);
    pd("inf*0", inf * zero);
    pd("sqrt(-1)", sqrt(-one));
    pd("-0.0", -zero);
    pd("1/-0.0", one / -zero);
    printf("isnan %d isinf %d signbit(-0) %d nan==nan %d nan<1 %d nan!=nan %d\n", isnan(nan1), isinf(inf), signbit(-zero) != 0,
           nan1 == nan1, nan1 < 1.0, nan1 != nan1);
    printf("== arithmetic\n");
    for (unsigned i = 0; i < N(vd); i++) {
        double a = vd[i], b = vd[(i + 7) % N(vd)];
        char l[64];
        snprintf(l, sizeof l, "[%u] a+b", i); pd(l, a + b);
        snprintf(l, sizeof l, "[%u] a*b", i); pd(l, a * b);
        snprintf(l, sizeof l, "[%u] a/b", i); pd(l, a / b);
        snprintf(l, sizeof l, "[%u] sqrt|a|", i); pd(l, sqrt(fabs(a)));
    }
    printf("== rounding\n");
    for (unsigned i = 0; i < N(vd); i++) {
        double a = vd[i];
        printf("%-10.6g floor %g ceil %g trunc %g nearbyint %g rint %g round %g\n", a, floor(a), ceil(a), trunc(a), nearbyint(a), rint(a), round(a));
    }
    for (unsigned i = 0; i < N(vf); i++) {
        float a = vf[i];
        printf("f32 %-10.6g floorf %g ceilf %g truncf %g rintf %g\n", (double)a, (double)floorf(a), (double)ceilf(a), (double)truncf(a), (double)rintf(a));
    }
    printf("== min/max/copysign\n");
    pd("fmin(-0,0)", fmin(-zero, zero));
    pd("fmax(-0,0)", fmax(-zero, zero));
    pd("fmin(nan,1)", fmin(nan1, 1.0));
    pd("fmax(1,nan)", fmax(one, nan1));
    pd("fmin(-inf,3)", fmin(-inf, 3.0));
    pd("copysign(3,-0)", copysign(3.0, -zero));
    pf("fminf(2,-3)", fminf(2.0f, -3.0f));
    pf("fabsf(-0)", fabsf(-0.0f));
    printf("== conversions\n");
    for (unsigned i = 0; i < N(vd); i++) {
        double a = vd[i];
        if (fabs(a) < 2e9) printf("(int)%.17g = %d, (long long) = %lld\n", a, (int)a, (long long)a);
        if (a >= 0 && a < 1.8e19) printf("(uint64)%.17g = %" PRIu64 "\n", a, (uint64_t)a);
    }
    volatile uint64_t big = 0xffffffffffffffffull;
    volatile int64_t sbig = INT64_MIN;
    volatile uint32_t u = 0xffffffffu;
    volatile int32_t i32v = 16777217;
    pd("(double)UINT64_MAX", (double)big);
    pd("(double)INT64_MIN", (double)sbig);
    pd("(double)UINT32_MAX", (double)u);
    pf("(float)16777217", (float)i32v);
    pf("(float)UINT64_MAX", (float)big);
    pd("(double)(float)0.1", (double)(float)vd[17]);
    pf("(float)1e300", (float)vd[11]);
    pf("(float)DBL_TRUE_MIN", (float)vd[14]);
    printf("== f32 arithmetic\n");
    for (unsigned i = 0; i < N(vf); i++) {
        float a = vf[i], b = vf[(i + 3) % N(vf)];
        char l[64];
        snprintf(l, sizeof l, "f32[%u] a+b", i); pf(l, a + b);
        snprintf(l, sizeof l, "f32[%u] a*b", i); pf(l, a * b);
        snprintf(l, sizeof l, "f32[%u] a/b", i); pf(l, a / b);
        snprintf(l, sizeof l, "f32[%u] sqrtf", i); pf(l, sqrtf(fabsf(a)));
    }
    printf("== libm (software, deterministic)\n");
    for (unsigned i = 2; i < 12; i++) {
        double a = vd[i];
        char l[64];
        snprintf(l, sizeof l, "sin(%g)", a); pd(l, sin(a));
        snprintf(l, sizeof l, "exp(%g)", a); pd(l, exp(a));
        snprintf(l, sizeof l, "log(|%g|)", a); pd(l, log(fabs(a)));
        snprintf(l, sizeof l, "pow(%g,1.5)", a); pd(l, pow(fabs(a), 1.5));
        snprintf(l, sizeof l, "fmod(%g,0.7)", a); pd(l, fmod(a, 0.7));
    }
    printf("== printf formats\n");
    printf("%f %e %g %.3f %10.4e %-8.2g| %a %A\n", 3.14159, 31415.9, 0.000031, -2.0005, 6.02e23, 1e-10, 1.0, -0.1);
    printf("%.0f %.0f %.0f %.0f (round half even)\n", 0.5, 1.5, 2.5, -0.5);
    printf("%.17g %.17g %.17g\n", DBL_MAX, DBL_MIN, DBL_TRUE_MIN);
    printf("%f %f %F\n", (double)INFINITY, -(double)INFINITY, (double)INFINITY);
    return 0;
}
