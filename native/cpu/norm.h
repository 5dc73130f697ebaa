/* Norm internals shared by RMSNorm and LayerNorm: the validated job every ISA variant runs over a
 * range of rows, and the scalar definitions of the residual placements (lk_norm_residual). */
#ifndef LK_NORM_H
#define LK_NORM_H

#include "lk_internal.h"

#include <math.h>

typedef struct lk_norm_job {
  lk_norm_params p;   /* strides resolved (never 0), alpha resolved (1 where it was 0) */
  bool streaming;     /* y with streaming stores (large outputs) */
  bool weight_finite; /* no NaN or infinity in weight or bias (checked only where it pays, see norm.c) */
} lk_norm_job;

/* Validates params into job (lk_norm's contract); every failure goes through lk_fail. */
lk_status lk_norm_validate(const lk_norm_params *params, lk_norm_job *job);
/* Enters the context, validates and runs; the common body of lk_norm, lk_rms_norm and
 * lk_fused_add_rms_norm. */
lk_status lk_norm_run(lk_cpu_context *context, const lk_norm_params *params);

/* v of element i in the passes after the first (see lk_norm_residual): x, the residual the first
 * pass stored (PRE), or round(alpha * residual + x) recomputed (POST: never stored). */
static inline float lk_norm_input_element(const void *x, const void *residual, int64_t i, lk_dtype dtype,
                                          lk_norm_residual mode, float alpha) {
  if (mode == LK_NORM_RESIDUAL_PRE) return lk_load_element(residual, i, dtype);
  float v = lk_load_element(x, i, dtype);
  if (mode == LK_NORM_RESIDUAL_POST) v = lk_round_to_dtype(alpha * lk_load_element(residual, i, dtype) + v, dtype);
  return v;
}

/* v of element i in the first pass: as above, but PRE computes and stores the residual. */
static inline float lk_norm_first_pass_element(const void *x, void *residual, int64_t i, lk_dtype dtype,
                                               lk_norm_residual mode, float alpha) {
  if (mode != LK_NORM_RESIDUAL_PRE) return lk_norm_input_element(x, residual, i, dtype, mode, alpha);
  float v = lk_round_to_dtype(lk_load_element(residual, i, dtype) + lk_load_element(x, i, dtype), dtype);
  lk_store_element(residual, i, dtype, v);
  return v;
}

/* POST rows of a 16-bit dtype up to this many elements keep v in a stack row (2 bytes each, 32
 * KiB at most, L1 resident) during the call: the later passes then read v instead of recomputing
 * round(alpha * residual + x), whose bf16 rounding in registers costs more than the rest of the
 * pass (measured on [16, 8192] bf16, AVX-512: 0.43 -> ~0.3 ns per element for RMSNorm). f32 rows
 * recompute (no rounding: a multiply and an add). The staged value is the same value, so results
 * do not depend on it. */
#define LK_NORM_STAGE_ELEMENTS 16384

/* The weight factor of element i: w, or 1 + w for Gemma-style checkpoints. */
static inline float lk_norm_weight(const lk_norm_params *p, int64_t i) {
  float w = lk_load_element(p->weight, i, p->weight_dtype);
  return (p->flags & LK_NORM_WEIGHT_OFFSET_ONE) ? 1.0f + w : w;
}

static inline const char *lk_norm_row(const void *base, int64_t r, int64_t stride, lk_dtype dtype) {
  return (const char *)base + r * stride * (int64_t)lk_dtype_size(dtype);
}

#endif /* LK_NORM_H */
