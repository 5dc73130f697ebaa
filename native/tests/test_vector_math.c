/* The element-wise functions of lk_apply_activation (exp, sigmoid, tanh, erf, SiLU, both GELUs,
 * ReLU) on every ISA this CPU runs, f32, against float64 math at the f32 input.
 *
 * Sweep: every 163rd f32 bit pattern (2.6e7 inputs per function, every exponent of both signs,
 * so the subnormals, the overflow and underflow thresholds and the NaN patterns are all in it;
 * the maxima in docs/activations.md come from denser runs, LK_TEST_MATH_STEP=41 or 1, and this
 * stride keeps the test well inside CTest's 300 s on a loaded 2-core machine)
 * plus a dense walk over [-12, 12], where the activations are used. Per function and ISA the
 * maximum error in ulps is printed and checked against the bounds documented in
 * docs/activations.md. LK_TEST_MATH_STEP=<n> changes the stride (1 is exhaustive; sanitizer builds
 * default to 401).
 *
 * Ulps: |got - ref| / ulp(ref), ulp(ref) the spacing of f32 at |ref| (2^-149 in the subnormals).
 * The composite functions (SiLU, GELU) are exact-ulp only where their result is a normal f32
 * and, for the GELUs, away from their far negative tail: there they are held to an absolute
 * bound instead (`tail` below), as documented.
 *
 * Special values: NaN in gives NaN out for every function; the limits at +-inf and large
 * magnitudes are checked exactly (exp overflow is +inf and underflow 0, never NaN; silu(-inf) and
 * gelu(-inf) are zeros; tanh and erf reach +-1). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

enum { BLOCK = 1 << 16 };

typedef struct function {
  const char *name;
  lk_activation activation;
  double simd_ulps;   /* bound for the AVX2 / AVX-512 variants (simd_math.h) */
  double scalar_ulps; /* bound for the scalar reference (the C library's expf, erfcf, tanhf) */
  bool composite;     /* ulps only where the result is a normal f32 */
  double main_from;   /* inputs below this form the tail: relative and absolute bounds instead */
  double tail_rel;    /* relative error in the tail where |ref| >= FLT_MIN */
  double tail_abs;    /* absolute error in the tail and at subnormal composite results */
} function;

static const function functions[] = {
    {"exp", LK_ACTIVATION_EXP, 2.0, 1.0, false, -INFINITY, 0.0, 0.0},
    {"sigmoid", LK_ACTIVATION_SIGMOID, 3.0, 3.0, false, -INFINITY, 0.0, 0.0},
    {"tanh", LK_ACTIVATION_TANH, 2.0, 3.0, false, -INFINITY, 0.0, 0.0},
    {"erf", LK_ACTIVATION_ERF, 2.0, 2.0, false, -INFINITY, 0.0, 0.0},
    {"silu", LK_ACTIVATION_SILU, 4.0, 4.0, true, -80.0, 1e-5, 2e-40},
    /* Vector: relative accuracy down to -5.5, then -0 (|gelu| < 1e-7): the relative bound is void. */
    {"gelu_erf", LK_ACTIVATION_GELU_ERF, 6.0, 32.0, true, -5.5, 1.0, 1.1e-7},
    /* Both: 2u = 2 sqrt(2/pi)(x + 0.044715 x^3) rounded in f32 carries |2u| 2^-23 into e^-|2u|. */
    {"gelu_tanh", LK_ACTIVATION_GELU_TANH, 10.0, 10.0, true, -2.0, 3e-5, 5e-8},
    {"relu", LK_ACTIVATION_RELU, 0.0, 0.0, false, -INFINITY, 0.0, 0.0},
};
#define FUNCTION_COUNT (sizeof functions / sizeof functions[0])

static double reference(lk_activation a, float xf) {
  double x = xf;
  switch (a) {
  case LK_ACTIVATION_EXP: return exp(x);
  case LK_ACTIVATION_SIGMOID: {
    double e = exp(-fabs(x));
    return (x < 0 ? e : 1.0) / (1.0 + e);
  }
  case LK_ACTIVATION_TANH: return tanh(x);
  case LK_ACTIVATION_ERF: return erf(x);
  case LK_ACTIVATION_SILU: {
    if (isinf(x)) return x > 0 ? x : 0.0;
    double e = exp(-fabs(x));
    return (x < 0 ? x * e : x) / (1.0 + e);
  }
  case LK_ACTIVATION_GELU_ERF:
    if (isinf(x)) return x > 0 ? x : 0.0;
    return 0.5 * x * erfc(-x / sqrt(2.0));
  case LK_ACTIVATION_GELU_TANH: {
    if (isinf(x)) return x > 0 ? x : 0.0;
    double two_u = 2.0 * sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x);
    double e = exp(-fabs(two_u));
    return (two_u < 0 ? x * e : x) / (1.0 + e);
  }
  case LK_ACTIVATION_RELU: return x < 0 ? 0.0 : x;
  default: return NAN;
  }
}

/* Spacing of f32 at |r| (r rounded to f32 first: an f32 result is compared against that grid). */
static double f32_ulp(double r) {
  double a = fabs(r);
  if (a < FLT_MIN) return ldexp(1.0, -149);
  if (a >= FLT_MAX) return ldexp(1.0, 104);
  int e;
  frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
  return ldexp(1.0, e - 24);
}

typedef struct stats {
  double max_ulps;
  float worst_x;
  double max_tail_rel, max_tail_abs;
  float worst_tail_x;
  long nan_mismatch, inf_mismatch;
  float first_bad_x;
} stats;

static lk_cpu_context *contexts[3];
static lk_isa isas[3];
static int isa_count;
static stats results[3][FUNCTION_COUNT];

static void run_block(const float *x, int64_t n, float *y) {
  for (size_t f = 0; f < FUNCTION_COUNT; f++) {
    static double ref[BLOCK];
    for (int64_t i = 0; i < n; i++) ref[i] = reference(functions[f].activation, x[i]);
    for (int k = 0; k < isa_count; k++) {
      lk_activation_params p = {x, y, n, functions[f].activation, LK_DTYPE_F32};
      if (!CHECK_STATUS(lk_apply_activation(contexts[k], &p), LK_OK)) return;
      stats *s = &results[k][f];
      for (int64_t i = 0; i < n; i++) {
        double r = ref[i];
        float rf = (float)r;
        if (isnan(r) || isnan(y[i])) {
          if (!(isnan(r) && isnan(y[i])) && s->nan_mismatch++ == 0) s->first_bad_x = x[i];
          continue;
        }
        if (isinf(rf) || isinf(y[i])) {
          /* the reference overflows f32 exactly when the result must be inf */
          if (y[i] != rf && s->inf_mismatch++ == 0) s->first_bad_x = x[i];
          continue;
        }
        double err = fabs((double)y[i] - r);
        const function *fn = &functions[f];
        if (x[i] < fn->main_from || (fn->composite && fabs(r) < FLT_MIN)) {
          if (err > s->max_tail_abs) s->max_tail_abs = err;
          if (fabs(r) >= FLT_MIN && err / fabs(r) > s->max_tail_rel) {
            s->max_tail_rel = err / fabs(r);
            s->worst_tail_x = x[i];
          }
          continue;
        }
        double ulps = err / f32_ulp(r);
        if (ulps > s->max_ulps) {
          s->max_ulps = ulps;
          s->worst_x = x[i];
        }
      }
    }
  }
}

static void sweep(uint64_t step) {
  static float x[BLOCK], y[BLOCK];
  int64_t n = 0;
  for (uint64_t bits = 0; bits <= 0xffffffffull; bits += step) {
    x[n++] = f32_from_bits((uint32_t)bits);
    if (n == BLOCK) {
      run_block(x, n, y);
      n = 0;
    }
  }
  /* [-12, 12] densely: 2^-16 apart */
  for (double v = -12.0; v <= 12.0; v += 1.0 / 65536) {
    x[n++] = (float)v;
    if (n == BLOCK) {
      run_block(x, n, y);
      n = 0;
    }
  }
  if (n) run_block(x, n, y);
}

/* ---- special values ------------------------------------------------------------------------- */

static float apply(int k, lk_activation a, float x) {
  /* In a vector's middle lane as well as alone, so both the body and the tail are covered. */
  float in[40], out[40];
  for (int i = 0; i < 40; i++) in[i] = 0.5f;
  in[21] = x;
  lk_activation_params p = {in, out, 40, a, LK_DTYPE_F32};
  CHECK_STATUS(lk_apply_activation(contexts[k], &p), LK_OK);
  float alone;
  lk_activation_params q = {&x, &alone, 1, a, LK_DTYPE_F32};
  CHECK_STATUS(lk_apply_activation(contexts[k], &q), LK_OK);
  CHECKF(memcmp(&alone, &out[21], 4) == 0 || (isnan(alone) && isnan(out[21])), "%g: %a alone, %a in a vector", x,
         alone, out[21]);
  return out[21];
}

#define EXPECT(a, x, cond)                                                                         \
  do {                                                                                             \
    float y = apply(k, a, x);                                                                      \
    CHECKF(cond, "%s on %s, x = %a: got %a", #a, lk_isa_name(isas[k]), (double)(x), (double)y);   \
  } while (0)

static void special_values(int k) {
  const float inf = INFINITY, nan = NAN;
  for (size_t f = 0; f < FUNCTION_COUNT; f++) {
    EXPECT(functions[f].activation, nan, isnan(y));
    EXPECT(functions[f].activation, -nan, isnan(y));
    EXPECT(functions[f].activation, f32_from_bits(0x7f800001u), isnan(y)); /* signalling */
  }
  EXPECT(LK_ACTIVATION_EXP, inf, y == inf);
  EXPECT(LK_ACTIVATION_EXP, -inf, y == 0.0f);
  EXPECT(LK_ACTIVATION_EXP, 0.0f, y == 1.0f);
  EXPECT(LK_ACTIVATION_EXP, -0.0f, y == 1.0f);
  EXPECT(LK_ACTIVATION_EXP, 88.72283f, isfinite(y) && y > 3.4e38f);
  EXPECT(LK_ACTIVATION_EXP, 88.72284f, y == inf);
  EXPECT(LK_ACTIVATION_EXP, 100.0f, y == inf);
  EXPECT(LK_ACTIVATION_EXP, FLT_MAX, y == inf);
  EXPECT(LK_ACTIVATION_EXP, -FLT_MAX, y == 0.0f);
  EXPECT(LK_ACTIVATION_EXP, -103.0f, y > 0.0f && y < FLT_MIN); /* subnormal, not flushed */
  EXPECT(LK_ACTIVATION_EXP, -104.0f, y == 0.0f);
  EXPECT(LK_ACTIVATION_SIGMOID, inf, y == 1.0f);
  EXPECT(LK_ACTIVATION_SIGMOID, -inf, y == 0.0f);
  EXPECT(LK_ACTIVATION_SIGMOID, 0.0f, y == 0.5f);
  EXPECT(LK_ACTIVATION_SIGMOID, 200.0f, y == 1.0f);
  EXPECT(LK_ACTIVATION_SIGMOID, -95.0f, y > 0.0f && y < FLT_MIN);
  EXPECT(LK_ACTIVATION_SILU, inf, y == inf);
  EXPECT(LK_ACTIVATION_SILU, -inf, y == 0.0f);
  EXPECT(LK_ACTIVATION_SILU, -FLT_MAX, y == 0.0f);
  EXPECT(LK_ACTIVATION_SILU, -200.0f, y == 0.0f);
  EXPECT(LK_ACTIVATION_SILU, FLT_MAX, y >= 0.9999998f * FLT_MAX && isfinite(y)); /* AVX2's reciprocal: 1 ulp */
  EXPECT(LK_ACTIVATION_SILU, 0.0f, y == 0.0f);
  EXPECT(LK_ACTIVATION_SILU, 1e-30f, fabsf(y - 5e-31f) <= 1e-37f);
  EXPECT(LK_ACTIVATION_GELU_ERF, inf, y == inf);
  EXPECT(LK_ACTIVATION_GELU_ERF, -inf, y == 0.0f);
  EXPECT(LK_ACTIVATION_GELU_ERF, -FLT_MAX, y == 0.0f);
  EXPECT(LK_ACTIVATION_GELU_ERF, FLT_MAX, y == FLT_MAX);
  EXPECT(LK_ACTIVATION_GELU_ERF, 0.0f, y == 0.0f);
  EXPECT(LK_ACTIVATION_GELU_TANH, inf, y == inf);
  EXPECT(LK_ACTIVATION_GELU_TANH, -inf, y == 0.0f);
  EXPECT(LK_ACTIVATION_GELU_TANH, -FLT_MAX, y == 0.0f);
  EXPECT(LK_ACTIVATION_GELU_TANH, FLT_MAX, y == FLT_MAX);
  EXPECT(LK_ACTIVATION_GELU_TANH, -1e20f, y == 0.0f);
  EXPECT(LK_ACTIVATION_TANH, inf, y == 1.0f);
  EXPECT(LK_ACTIVATION_TANH, -inf, y == -1.0f);
  EXPECT(LK_ACTIVATION_TANH, 50.0f, y == 1.0f);
  EXPECT(LK_ACTIVATION_TANH, -50.0f, y == -1.0f);
  EXPECT(LK_ACTIVATION_TANH, -0.0f, y == 0.0f && signbit(y));
  EXPECT(LK_ACTIVATION_TANH, 1e-40f, y == 1e-40f);
  EXPECT(LK_ACTIVATION_ERF, inf, y == 1.0f);
  EXPECT(LK_ACTIVATION_ERF, -inf, y == -1.0f);
  EXPECT(LK_ACTIVATION_ERF, 10.0f, y == 1.0f);
  EXPECT(LK_ACTIVATION_ERF, -10.0f, y == -1.0f);
  EXPECT(LK_ACTIVATION_ERF, -0.0f, y == 0.0f && signbit(y));
  EXPECT(LK_ACTIVATION_RELU, -inf, y == 0.0f);
  EXPECT(LK_ACTIVATION_RELU, inf, y == inf);
  EXPECT(LK_ACTIVATION_RELU, -0.0f, y == 0.0f);
  EXPECT(LK_ACTIVATION_RELU, -1.0f, y == 0.0f && !signbit(y));
}

int main(void) {
  isa_count = supported_isas(isas);
  for (int k = 0; k < isa_count; k++) {
    lk_cpu_options options = {1, isas[k]};
    if (!CHECK_STATUS(lk_cpu_context_create(&options, &contexts[k]), LK_OK)) return 1;
  }
  uint64_t step = 163;
#if defined(__SANITIZE_ADDRESS__)
  step = 401; /* 1.07e7 inputs: the instrumented build runs ~20x slower and has 300 s */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  step = 401;
#endif
#endif
  const char *env = getenv("LK_TEST_MATH_STEP");
  if (env && atoll(env) > 0) step = (uint64_t)atoll(env);
  sweep(step);
  printf("%-10s %-7s %10s %16s %12s %12s %16s\n", "function", "isa", "max ulps", "at x", "tail rel", "tail abs",
         "tail worst x");
  for (size_t f = 0; f < FUNCTION_COUNT; f++)
    for (int k = 0; k < isa_count; k++) {
      const stats *s = &results[k][f];
      const function *fn = &functions[f];
      printf("%-10s %-7s %10.3f %16.8g %12.3g %12.3g %16.8g\n", fn->name, lk_isa_name(isas[k]), s->max_ulps,
             (double)s->worst_x, s->max_tail_rel, s->max_tail_abs, (double)s->worst_tail_x);
      double bound = isas[k] == LK_ISA_SCALAR ? fn->scalar_ulps : fn->simd_ulps;
      check_context_push("%s on %s", fn->name, lk_isa_name(isas[k]));
      CHECKF(s->nan_mismatch == 0, "%ld NaN mismatches, first at x = %a", s->nan_mismatch, (double)s->first_bad_x);
      CHECKF(s->inf_mismatch == 0, "%ld infinity mismatches, first at x = %a", s->inf_mismatch, (double)s->first_bad_x);
      CHECKF(s->max_ulps <= bound, "%.3f ulps at x = %a (bound %.1f)", s->max_ulps, (double)s->worst_x, bound);
      CHECKF(s->max_tail_rel <= fn->tail_rel, "tail relative error %g at x = %a", s->max_tail_rel, (double)s->worst_tail_x);
      CHECKF(s->max_tail_abs <= fn->tail_abs, "tail absolute error %g", s->max_tail_abs);
      check_context_pop();
    }
  for (int k = 0; k < isa_count; k++) special_values(k);
  for (int k = 0; k < isa_count; k++) lk_cpu_context_destroy(contexts[k]);
  return check_summary("vector_math");
}
