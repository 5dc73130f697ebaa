/* RMSNorm internals: the row kernels of every ISA over a validated lk_norm_job (kind RMS). */
#ifndef LK_RMS_NORM_H
#define LK_RMS_NORM_H

#include "norm.h"

/* Each normalises rows [row_begin, row_end) of job (a const lk_norm_job *). */
void lk_rms_norm_rows_scalar(const void *job, int64_t row_begin, int64_t row_end);
void lk_rms_norm_rows_avx2(const void *job, int64_t row_begin, int64_t row_end);
void lk_rms_norm_rows_avx512(const void *job, int64_t row_begin, int64_t row_end);

/* 1 / sqrt(mean square + eps), shared by every variant so they differ only in summation order. */
static inline float lk_rms_norm_inv_rms(float sum_squares, int64_t hidden, float eps) {
  return 1.0f / sqrtf(sum_squares / (float)hidden + eps);
}

#endif /* LK_RMS_NORM_H */
