/* float64 definitions of the activations, and the tolerance the activation and GLU tests hold a
 * kernel's output to (shared by test_activation.c and test_glu.c; test_vector_math.c measures the
 * f32 errors these tolerances rest on, see docs/activations.md). */
#ifndef LK_TEST_ACTIVATION_REFERENCE_H
#define LK_TEST_ACTIVATION_REFERENCE_H

#include <float.h>
#include <math.h>

#include "test_harness.h"

static const lk_activation all_activations[] = {
    LK_ACTIVATION_SILU, LK_ACTIVATION_GELU_ERF, LK_ACTIVATION_GELU_TANH, LK_ACTIVATION_RELU,
    LK_ACTIVATION_SIGMOID, LK_ACTIVATION_EXP, LK_ACTIVATION_TANH, LK_ACTIVATION_ERF,
};
#define ACTIVATION_COUNT 8
static const lk_dtype all_dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};

static inline const char *activation_label(lk_activation a) {
  static const char *names[] = {"silu", "gelu_erf", "gelu_tanh", "relu", "sigmoid", "exp", "tanh", "erf"};
  return (int)a >= 0 && (int)a < 8 ? names[a] : "?";
}

static inline double activation_reference(lk_activation a, double x) {
  switch (a) {
  case LK_ACTIVATION_SILU:
  case LK_ACTIVATION_GELU_TANH: {
    if (isinf(x)) return x > 0 ? x : 0.0;
    double z = a == LK_ACTIVATION_SILU ? x : 2.0 * sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x);
    double e = exp(-fabs(z));
    return (z < 0 ? x * e : x) / (1.0 + e);
  }
  case LK_ACTIVATION_GELU_ERF:
    if (isinf(x)) return x > 0 ? x : 0.0;
    return 0.5 * x * erfc(-x / sqrt(2.0));
  case LK_ACTIVATION_RELU: return x < 0 ? 0.0 : x;
  case LK_ACTIVATION_SIGMOID: {
    double e = exp(-fabs(x));
    return (x < 0 ? e : 1.0) / (1.0 + e);
  }
  case LK_ACTIVATION_EXP: return exp(x);
  case LK_ACTIVATION_TANH: return tanh(x);
  default: return erf(x);
  }
}

/* Allowed |out - ref| for out = act(gate) * up in dtype: the f32 errors of docs/activations.md
 * (at most 10 ulps in the f32 result, GELU's documented tails as absolute error), the product with
 * up (one more rounding) and, for 16-bit outputs, the final rounding plus the one-ulp move f32 noise
 * can cause at a rounding boundary (see test_rms_norm.c). */
static inline double activation_tolerance(lk_activation a, lk_dtype dtype, double act_ref, double up, double ref) {
  double f32_ulp = fabs(ref) < FLT_MIN ? ldexp(1.0, -149) : dtype_ulp(LK_DTYPE_F32, ref);
  double bound = 12.0 * f32_ulp;
  if (a == LK_ACTIVATION_GELU_ERF || a == LK_ACTIVATION_GELU_TANH)
    bound += (fabs(act_ref) * 3e-5 + 1.2e-7) * fabs(up) * (act_ref < 0 ? 1.0 : 0.0);
  if (dtype != LK_DTYPE_F32) {
    double min_ulp = dtype == LK_DTYPE_F16 ? ldexp(1.0, -24) : ldexp(1.0, -133);
    double ulp = dtype_ulp(dtype, ref);
    bound += ulp > min_ulp ? ulp : min_ulp;
  }
  return bound;
}

/* Output agrees with the reference: NaN exactly where it is NaN, the same infinity, else within the
 * tolerance. */
static inline bool activation_agrees(lk_activation a, lk_dtype dtype, float got, double act_ref, double up) {
  double ref = act_ref * up;
  if (isnan(ref) || isnan(got)) return isnan(ref) && isnan(got);
  double rounded = (double)dtype_round(dtype, (float)ref);
  if (isinf(rounded) || isinf(got)) return isinf(got) && (double)got == rounded;
  return fabs((double)got - ref) <= activation_tolerance(a, dtype, act_ref, up, ref);
}

#endif
