/* LayerNorm internals: the row kernels of every ISA over a validated lk_norm_job (kind LAYER).
 *
 * Statistics, in f32, from ONE pass over the row by shifted sums (the "shifted data" form of
 * Chan, Golub and LeVeque, 1983), with the corrected two-pass algorithm from cache as a fallback:
 *   K  = the mean of the first min(n, 16) v, rounded to the dtype (lk_layer_norm_shift)
 *   d  = v - K;  s1 = sum(d);  s2 = sum(d^2)
 *   q  = s1 / n;  mean = K + q;  var = (s2 - s1^2 / n) / n   (biased, as torch.nn.LayerNorm)
 * The textbook one-pass E[v^2] - mean^2 is the case K = 0: it cancels catastrophically when
 * |mean| >> std (on rows of 1000 + U(-1, 1) it keeps no correct bit of var in f32). With a shift
 * the cancellation is in s2/n - q^2 and costs log2(1 + q^2 / var) bits: nothing when K is near the
 * mean, which a few of the row's own values usually are. When it would cost more than two bits
 * (q^2 > 3/4 * s2/n, i.e. var < q^2 / 3), or when the sums are not finite, the row falls back to
 * the corrected two-pass form from cache (lk_layer_norm_stats): m0 = sum(v) / n, then d = v - m0,
 * s1 = sum(d), s2 = sum(d^2), mean = m0 (+ s1 / n where m0^2 > var), the last correction being
 * noise on a centred row. (m0 = K + q would save a pass but carries q's rounding, half an ulp of
 * |K - mean|, which misrounded 10x more f16 outputs than the plain sum on such rows.) On 16-bit
 * inputs K is a value of the dtype, so v - K is exact and the sums are as exact as a plain sum of v.
 *
 * Why one pass: the row is read from DRAM once either way, but a second pass over it from cache
 * leaves DRAM idle while it runs (with the output pass prepared as in layer_norm_simd.h, plain
 * [4096, 8192] rows went from 65-75 % to 90 % of the copy ceiling in f32). The fallback costs that pass again and is taken only by rows
 * whose first 16 values sit far from the row's mean in units of its spread (a massive outlier
 * among them, or a sorted row).
 * Then y = (v - mean) * rstd [* w] [+ b], with one fused multiply-add where both w and b are
 * present, rounded once. */
#ifndef LK_LAYER_NORM_H
#define LK_LAYER_NORM_H

#include "norm.h"

void lk_layer_norm_rows_scalar(const void *job, int64_t row_begin, int64_t row_end);
void lk_layer_norm_rows_avx2(const void *job, int64_t row_begin, int64_t row_end);
void lk_layer_norm_rows_avx512(const void *job, int64_t row_begin, int64_t row_end);

/* mean and 1 / sqrt(var + eps) from m0 and the deviations' sums (above), shared by every
 * variant so they differ only in summation order. */
static inline void lk_layer_norm_stats(float m0, float s1, float s2, int64_t hidden, float eps, float *mean,
                                       float *rstd) {
  const float n = (float)hidden;
  float var = (s2 - s1 * s1 / n) / n;
  *mean = m0 * m0 > var ? m0 + s1 / n : m0;
  *rstd = 1.0f / sqrtf((var > 0.0f ? var : 0.0f) + eps);
}

/* K of the shifted sums (above): the mean of the first min(n, 16) v, rounded to the dtype. Read
 * before the first pass, which for PRE has not stored the residual yet: v is computed as that
 * pass will compute it. Every variant uses this one definition. */
#define LK_LAYER_SHIFT_ELEMENTS 16
static inline float lk_layer_norm_shift(const void *x, const void *residual, int64_t hidden, lk_dtype dtype,
                                        lk_norm_residual mode, float alpha) {
  const int64_t count = hidden < LK_LAYER_SHIFT_ELEMENTS ? hidden : LK_LAYER_SHIFT_ELEMENTS;
  float sum = 0.0f;
  for (int64_t i = 0; i < count; i++) {
    sum += mode == LK_NORM_RESIDUAL_PRE
               ? lk_round_to_dtype(lk_load_element(residual, i, dtype) + lk_load_element(x, i, dtype), dtype)
               : lk_norm_input_element(x, residual, i, dtype, mode, alpha);
  }
  return lk_round_to_dtype(sum / (float)count, dtype);
}

/* mean and rstd from the shifted sums (above), or false where the row must take the fallback. */
static inline bool lk_layer_norm_shifted_stats(float shift, float s1, float s2, int64_t hidden, float eps, float *mean,
                                               float *rstd) {
  const float n = (float)hidden, q = s1 / n;
  if (!(q * q <= 0.75f * (s2 / n))) return false; /* NaN compares false: non-finite rows fall back */
  const float var = (s2 - s1 * q) / n;
  *mean = shift + q;
  *rstd = 1.0f / sqrtf((var > 0.0f ? var : 0.0f) + eps);
  return true;
}

/* The affine step: t * w + b, one rounding where both are present. */
static inline float lk_layer_norm_affine(float t, const lk_norm_params *p, int64_t i) {
  if (p->weight && p->bias) return fmaf(t, lk_norm_weight(p, i), lk_load_element(p->bias, i, p->weight_dtype));
  if (p->weight) return t * lk_norm_weight(p, i);
  if (p->bias) return t + lk_load_element(p->bias, i, p->weight_dtype);
  return t;
}

#endif /* LK_LAYER_NORM_H */
