/* RMSNorm internals: the validated job every ISA variant runs over a range of rows. */
#ifndef LK_RMS_NORM_H
#define LK_RMS_NORM_H

#include "lk_internal.h"

#include <math.h>

typedef struct lk_rms_norm_job {
  lk_rms_norm_params p; /* strides resolved (never 0) */
  bool fused;           /* residual += x first */
  bool streaming;       /* y with streaming stores (large outputs) */
  bool weight_finite;   /* no NaN or infinity in weight (checked only where it pays, see rms_norm.c) */
} lk_rms_norm_job;

/* Each normalises rows [row_begin, row_end) of job (a const lk_rms_norm_job *). */
void lk_rms_norm_rows_scalar(const void *job, int64_t row_begin, int64_t row_end);
void lk_rms_norm_rows_avx2(const void *job, int64_t row_begin, int64_t row_end);
void lk_rms_norm_rows_avx512(const void *job, int64_t row_begin, int64_t row_end);

/* 1 / sqrt(mean square + eps), shared by every variant so they differ only in summation order. */
static inline float lk_rms_norm_inv_rms(float sum_squares, int64_t hidden, float eps) {
  return 1.0f / sqrtf(sum_squares / (float)hidden + eps);
}

/* The weight factor of element i: w, or 1 + w for Gemma-style checkpoints. */
static inline float lk_rms_norm_weight(const lk_rms_norm_params *p, int64_t i) {
  float w = lk_load_element(p->weight, i, p->weight_dtype);
  return (p->flags & LK_NORM_WEIGHT_OFFSET_ONE) ? 1.0f + w : w;
}

#endif /* LK_RMS_NORM_H */
