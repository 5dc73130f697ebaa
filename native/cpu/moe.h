/* MoE gating internals shared by the scalar kernel (moe.c) and the vector ones (moe_simd.h): the
 * job, the one ranking order every selection uses, the k-slot top list, and the last step from
 * the selected experts' weights to the outputs. */
#ifndef LK_MOE_H
#define LK_MOE_H

#include "lk_internal.h"

#include <math.h>

typedef struct moe_job {
  lk_moe_gating_params p;
  int64_t group_size; /* experts per group; num_experts when not grouping */
  int64_t groups;     /* 1 when not grouping */
  bool bias_finite;   /* every correction bias is a number and finite (or there is none) */
} moe_job;

/* Whether (a, ia) ranks before (b, ib): higher first, NaN last, ties to the lower index.
 * What is ranked is the selection score: the score plus the correction bias when there is one, and
 * without one the logit itself, which orders exactly as softmax's and sigmoid's p do (both are
 * increasing in the logit) and spares an exp per expert. So two logits whose p round to the same
 * f32 still rank by the logits, as exact p would. */
static inline bool moe_better(float a, int64_t ia, float b, int64_t ib) {
  if (a != a) return b != b && ia < ib;
  if (b != b) return true;
  return a > b || (a == b && ia < ib);
}

/* A k-slot list of the best (score, index) pairs seen, best first. */
typedef struct moe_top {
  float score[LK_MOE_MAX_TOP_K];
  int32_t index[LK_MOE_MAX_TOP_K];
  int64_t n, k;
} moe_top;

static inline void moe_top_offer(moe_top *t, float score, int64_t index) {
  if (t->n == t->k && !moe_better(score, index, t->score[t->n - 1], t->index[t->n - 1])) return;
  int64_t i = t->n < t->k ? t->n++ : t->k - 1; /* the slot freed: the end, or the k-th */
  while (i > 0 && moe_better(score, index, t->score[i - 1], t->index[i - 1])) {
    t->score[i] = t->score[i - 1];
    t->index[i] = t->index[i - 1];
    i--;
  }
  t->score[i] = score;
  t->index[i] = (int32_t)index;
}

/* The k weights of the selected experts (w, in selection order, ids alongside) to token t's
 * outputs: renormalised, scaled, and sorted by descending weight, ties to the lower id. */
static inline void moe_finish(const moe_job *job, int64_t t, float *w, const int32_t *ids, int64_t k) {
  const lk_moe_gating_params *p = &job->p;
  if (p->flags & LK_MOE_RENORMALIZE) {
    float sum = 0.0f;
    for (int64_t i = 0; i < k; i++) sum += w[i];
    for (int64_t i = 0; i < k; i++) w[i] /= sum;
  }
  if (p->routed_scaling_factor != 0.0f)
    for (int64_t i = 0; i < k; i++) w[i] *= p->routed_scaling_factor;
  /* the selection order may differ from the weight order (a correction bias) */
  moe_top out = {.n = 0, .k = k};
  for (int64_t i = 0; i < k; i++) moe_top_offer(&out, w[i], ids[i]);
  for (int64_t i = 0; i < k; i++) {
    p->weights[t * k + i] = out.score[i];
    p->expert_ids[t * k + i] = out.index[i];
  }
}

/* Softmax over the k selected logits (TOPK_SOFTMAX's weights), in place; a NaN among them makes all NaN. */
static inline void moe_softmax_k(float *w, int64_t k) {
  float max = -INFINITY, sum = 0.0f;
  bool nan = false;
  for (int64_t i = 0; i < k; i++) {
    nan = nan || w[i] != w[i];
    if (w[i] > max) max = w[i];
  }
  for (int64_t i = 0; i < k; i++) sum += (w[i] = expf(w[i] - max));
  for (int64_t i = 0; i < k; i++) w[i] = nan ? NAN : w[i] / sum;
}

/* Each runs tokens [begin, end) of job (a const moe_job *). */
void lk_moe_rows_scalar(const void *job, int64_t begin, int64_t end);
void lk_moe_rows_avx2(const void *job, int64_t begin, int64_t end);
void lk_moe_rows_avx512(const void *job, int64_t begin, int64_t end);

#endif /* LK_MOE_H */
