/* LayerNorm internals: the row kernels of every ISA over a validated lk_norm_job (kind LAYER).
 *
 * Statistics, in f32, by two passes over the row, the second from cache:
 *   mean = sum(v) / n;  var = sum((v - mean)^2) / n   (biased, as torch.nn.LayerNorm)
 * The textbook one-pass form E[v^2] - mean^2 cancels catastrophically when |mean| >> std (a row
 * of 1000 + N(0, 1) keeps about 3 correct bits of var in f32); the second pass costs no DRAM
 * traffic, only L1/L2 reads. Then y = (v - mean) * rstd [* w] [+ b], rounded once. */
#ifndef LK_LAYER_NORM_H
#define LK_LAYER_NORM_H

#include "norm.h"

void lk_layer_norm_rows_scalar(const void *job, int64_t row_begin, int64_t row_end);
void lk_layer_norm_rows_avx2(const void *job, int64_t row_begin, int64_t row_end);
void lk_layer_norm_rows_avx512(const void *job, int64_t row_begin, int64_t row_end);

/* 1 / sqrt(var + eps) from the sum of squared deviations, shared by every variant. */
static inline float lk_layer_norm_rstd(float sum_squared_deviations, int64_t hidden, float eps) {
  return 1.0f / sqrtf(sum_squared_deviations / (float)hidden + eps);
}

#endif /* LK_LAYER_NORM_H */
