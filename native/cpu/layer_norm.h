/* LayerNorm internals: the row kernels of every ISA over a validated lk_norm_job (kind LAYER).
 *
 * Statistics, in f32, by two passes over the row, the second from cache (the corrected two-pass
 * algorithm of Chan, Golub and LeVeque, 1983):
 *   pass 1:  m0 = sum(v) / n
 *   pass 2:  d = v - m0;  s1 = sum(d);  s2 = sum(d^2)
 *            var = (s2 - s1^2 / n) / n   (biased, as torch.nn.LayerNorm)
 *            mean = m0 + s1 / n where m0^2 > var, else m0
 * The textbook one-pass E[v^2] - mean^2 cancels catastrophically when |mean| >> std: on rows of
 * 1000 + U(-1, 1) it keeps no correct bit of var in f32. Two passes have no cancellation, but
 * m0's error is ~sqrt(n) ulps of the running sum: for an offset row (4096 values near 1000) that
 * is ~4e-3, which y carries as a shift of 4e-3 / std. s1 sums that error back from the small
 * deviations, so the mean ends within an ulp or two of itself (test_norm measures 5e-5 against
 * 3e-3 for y). On a centred row the correction is noise of the same size as what it corrects, and
 * worse on 16-bit inputs, whose plain sum is often exact (few bits per value) while every d is
 * rounded: test_norm saw 10x more misrounded f16 outputs near zero. Hence the condition, the
 * same in every variant. The second pass costs no DRAM traffic, only L1/L2 reads.
 * Then y = (v - mean) * rstd [* w] [+ b], rounded once. */
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

#endif /* LK_LAYER_NORM_H */
