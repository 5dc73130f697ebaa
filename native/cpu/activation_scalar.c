/* Activations, the scalar reference: the readable definitions every vector variant is tested
 * against, with the C library's expf, erff, erfcf and tanhf. f32 arithmetic, out rounded once.
 * The forms avoid the same traps the vector code does (simd_math.h): no 1 + erf or 1 + tanh
 * cancellation for x < 0, no -inf * 0. */
#include "activation.h"

static float sigmoid_times(float x, float z) {
  /* x * sigmoid(z) with e = exp(-|z|) <= 1, so nothing divides by an infinity */
  if (isinf(x) && x < 0) return -0.0f;
  float e = expf(-fabsf(z));
  return (z < 0 ? x * e : x) / (1.0f + e);
}

static float activation(float x, lk_activation act) {
  switch (act) {
  case LK_ACTIVATION_SILU: return sigmoid_times(x, x);
  case LK_ACTIVATION_GELU_ERF:
    /* 0.5 x (1 + erf(x / sqrt2)) = 0.5 x erfc(-x / sqrt2) */
    if (isinf(x)) return x > 0 ? x : -0.0f;
    return 0.5f * x * erfcf(-x * 0.70710678118654752f);
  case LK_ACTIVATION_GELU_TANH: {
    /* 0.5 x (1 + tanh(u)) = x sigmoid(2u) */
    float two_u = 1.5957691216057308f * x * (1.0f + 0.044715f * x * x);
    return sigmoid_times(x, two_u);
  }
  case LK_ACTIVATION_RELU: return x < 0.0f ? 0.0f : x; /* NaN and -0 pass */
  case LK_ACTIVATION_SIGMOID: {
    float e = expf(-fabsf(x));
    return (x < 0 ? e : 1.0f) / (1.0f + e);
  }
  case LK_ACTIVATION_EXP: return expf(x);
  case LK_ACTIVATION_TANH: return tanhf(x);
  default: return erff(x);
  }
}

static const char *row(const void *base, int64_t r, int64_t stride, lk_dtype dtype) {
  return (const char *)base + r * stride * (int64_t)lk_dtype_size(dtype);
}

void lk_activation_rows_scalar(const void *job_, int64_t row_begin, int64_t row_end) {
  const lk_activation_job *job = (const lk_activation_job *)job_;
  for (int64_t v = row_begin; v < row_end; v++) {
    int64_t r, begin;
    int64_t cols = lk_activation_piece(job, v, &r, &begin);
    const void *gate = row(job->gate, r, job->gate_stride, job->dtype);
    const void *up = job->up ? row(job->up, r, job->up_stride, job->dtype) : NULL;
    void *out = (void *)row(job->out, r, job->out_stride, job->dtype);
    for (int64_t i = begin; i < begin + cols; i++) {
      float y = activation(lk_load_element(gate, i, job->dtype), job->activation);
      if (up) y *= lk_load_element(up, i, job->dtype);
      lk_store_element(out, i, job->dtype, y);
    }
  }
}
