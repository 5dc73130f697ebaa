/* MoE permute and combine internals shared by moe_permute.c (checks, scalar kernel) and the
 * vector combine (moe_combine_simd.h). */
#ifndef LK_MOE_COMBINE_H
#define LK_MOE_COMBINE_H

#include "lk_internal.h"

/* lk_moe_combine's params after the checks (strides resolved), what each token range reads. */
typedef struct moe_combine_job {
  lk_moe_combine_params p;
  bool streaming; /* output with streaming stores (large outputs) */
} moe_combine_job;

/* Token t's slots that land here: their rows' addresses and weights, in slot order (at most
 * LK_MOE_MAX_TOP_K); returns how many. */
static inline int64_t moe_combine_sources(const lk_moe_combine_params *p, int64_t t, const void **rows, float *weights) {
  const size_t size = lk_dtype_size(p->dtype);
  int64_t n = 0;
  for (int64_t j = 0; j < p->top_k; j++) {
    const int32_t r = p->slot_rows[t * p->top_k + j];
    if (r < 0) continue;
    rows[n] = (const char *)p->expert_output + (size_t)r * (size_t)p->expert_stride * size;
    weights[n++] = p->weights[t * p->top_k + j];
  }
  return n;
}

/* Each combines tokens [begin, end) of job (a const moe_combine_job *). */
void lk_moe_combine_rows_scalar(const void *job, int64_t begin, int64_t end);
void lk_moe_combine_rows_avx2(const void *job, int64_t begin, int64_t end);
void lk_moe_combine_rows_avx512(const void *job, int64_t begin, int64_t end);

#endif /* LK_MOE_COMBINE_H */
