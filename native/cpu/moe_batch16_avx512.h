/* MoE gating for short rows and few picks on AVX-512: 16 tokens at once, a token per lane
 * (moe_tokens16). Included by moe_avx512.c after moe_simd.h and moe_select_avx512.h.
 *
 * For 64 experts and k = 2 (OLMoE, Qwen1.5-MoE's 60 rounded up, DBRX's 16), the per-token ranked
 * kernel spends most of its time on fixed costs: a handful of horizontal reductions, ranks and a
 * scatter per token, each a chain of dependent shuffles. Transposed, those vanish: the 16 tokens'
 * rows are transposed 16 experts at a time, so a column holds one expert's logit for every token,
 * and each lane keeps its own top k by an insertion network (compare, then blend the values and
 * ids down), softmax's max and sum lane by lane. Nothing is reduced across lanes.
 *
 * Applies without a correction bias or groups, for whole vectors of at most 128 experts and
 * k <= 4 (the network's cost grows with k, the ranked kernel's hardly). Ties: a column only
 * displaces a kept value it beats strictly, and columns come in ascending id order, so equal
 * logits keep the lower id first; NaN beats nothing, so it ranks last. A lane is handed back
 * (its bit clear in the result) when the general kernel's rules need it: fewer than k numbers
 * above -inf, NaN weights (a NaN or +inf logit under softmax), a negative scale, or weights out
 * of descending order (a rounding of exp or sigmoid that reverses two near-equal logits). */
#ifndef LK_MOE_BATCH16_AVX512_H
#define LK_MOE_BATCH16_AVX512_H

#include "moe_select_avx512.h"

#define MOE_BATCH 16
#define MOE_BATCH_MAX_EXPERTS 128
#define MOE_BATCH_MAX_K 4

/* Whether moe_tokens16 takes this job's tokens. */
static LK_INLINE bool moe_batch16_applies(const moe_job *job) {
  const lk_moe_gating_params *p = &job->p;
  return !p->correction_bias && job->groups == 1 && p->num_experts % 16 == 0 && p->num_experts <= MOE_BATCH_MAX_EXPERTS &&
         p->top_k <= MOE_BATCH_MAX_K;
}

/* Tokens [t, t + 16) for k = K (a constant in each instance, so the network's values stay in
 * registers): writes their outputs and returns the mask of those it did (bit i: token t + i); the
 * others are left to the general kernel, which rewrites them whole. */
static LK_INLINE uint32_t moe_tokens16_k(const moe_job *job, int64_t t, const int k) {
  const lk_moe_gating_params *p = &job->p;
  const int64_t n = p->num_experts;
  const size_t row_bytes = (size_t)p->logits_stride * lk_dtype_size(p->dtype);
  const char *rows = (const char *)p->logits + (size_t)t * row_bytes;

  __m512 best[MOE_BATCH_MAX_K];
  __m512i best_id[MOE_BATCH_MAX_K];
  for (int j = 0; j < MOE_BATCH_MAX_K; j++) {
    best[j] = _mm512_set1_ps(-INFINITY);
    best_id[j] = _mm512_set1_epi32(-1);
  }
  __m512 column[MOE_BATCH_MAX_EXPERTS]; /* the transposed logits, kept for softmax's sum */
  for (int64_t c = 0; c < n; c += 16) {
    __m512 *col = column + c;
    for (int i = 0; i < 16; i++) col[i] = lk_v_load(rows + (size_t)i * row_bytes, c, p->dtype);
    moe_transpose16(col); /* col[j] lane i = token i's logit of expert c + j */
    for (int j = 0; j < 16; j++) {
      __m512 v = col[j];
      __m512i id = _mm512_set1_epi32((int)(c + j));
      __mmask16 beats = 0;
      for (int s = 0; s < k; s++) {
        /* insertion: the column's value takes the first slot it beats strictly; each value it
         * displaces then takes the next slot whatever that holds (it is not below it, and on a tie
         * its id is the lower: the slots are in order) */
        beats |= _mm512_cmp_ps_mask(v, best[s], _CMP_GT_OQ);
        const __m512 kept = best[s];
        const __m512i kept_id = best_id[s];
        best[s] = _mm512_mask_blend_ps(beats, kept, v);
        best_id[s] = _mm512_mask_blend_epi32(beats, kept_id, id);
        v = _mm512_mask_blend_ps(beats, v, kept);
        id = _mm512_mask_blend_epi32(beats, id, kept_id);
      }
    }
  }
  __mmask16 ok = _mm512_cmpneq_epi32_mask(best_id[k - 1], _mm512_set1_epi32(-1)); /* k numbers above -inf */

  /* The weights, lane by lane, by the general kernel's formulas (the same vector exp and sigmoid).
   * The top value is the row's maximum (NaN aside, as the general kernel's vmaxps). */
  __m512 w[MOE_BATCH_MAX_K];
  const __m512 max = best[0];
  switch (p->scoring) {
  case LK_MOE_SOFTMAX_TOPK: {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int64_t e = 0;
    for (; e + 2 <= n; e += 2) { /* a NaN or +inf logit makes its lane's sum NaN */
      s0 = _mm512_add_ps(s0, moe_exp_for_sum(_mm512_sub_ps(column[e], max)));
      s1 = _mm512_add_ps(s1, moe_exp_for_sum(_mm512_sub_ps(column[e + 1], max)));
    }
    const __m512 inv_sum = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(s0, s1));
    for (int j = 0; j < k; j++) w[j] = _mm512_mul_ps(lk_v_exp(_mm512_sub_ps(best[j], max)), inv_sum);
    break;
  }
  case LK_MOE_TOPK_SOFTMAX: {
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < k; j++) sum = _mm512_add_ps(sum, w[j] = lk_v_exp(_mm512_sub_ps(best[j], max)));
    for (int j = 0; j < k; j++) w[j] = _mm512_div_ps(w[j], sum);
    break;
  }
  default:
    for (int j = 0; j < k; j++) w[j] = lk_v_sigmoid(best[j]);
    break;
  }
  if (p->flags & LK_MOE_RENORMALIZE) {
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < k; j++) sum = _mm512_add_ps(sum, w[j]);
    for (int j = 0; j < k; j++) w[j] = _mm512_div_ps(w[j], sum);
  }
  if (p->routed_scaling_factor != 0.0f)
    for (int j = 0; j < k; j++) w[j] = _mm512_mul_ps(w[j], _mm512_set1_ps(p->routed_scaling_factor));
  if (p->routed_scaling_factor < 0.0f) ok = 0;
  for (int j = 0; j < k; j++) ok &= (__mmask16)~_mm512_cmp_ps_mask(w[j], w[j], _CMP_UNORD_Q);
  for (int j = 0; j + 1 < k; j++) { /* descending weights, ties to the lower id, or the general kernel */
    const __mmask16 above = _mm512_cmp_ps_mask(w[j + 1], w[j], _CMP_GT_OQ);
    const __mmask16 tie = _mm512_cmp_ps_mask(w[j + 1], w[j], _CMP_EQ_OQ);
    ok &= (__mmask16)~(above | (tie & _mm512_cmplt_epi32_mask(best_id[j + 1], best_id[j])));
  }

  /* token i's slot j at i * k + j */
  const __m512i slot = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32((int)k));
  float *weights = p->weights + t * k;
  int32_t *ids = p->expert_ids + t * k;
  for (int j = 0; j < k; j++) {
    const __m512i at = _mm512_add_epi32(slot, _mm512_set1_epi32(j));
    _mm512_mask_i32scatter_ps(weights, ok, at, w[j], 4);
    _mm512_mask_i32scatter_epi32(ids, ok, at, best_id[j], 4);
  }
  return ok;
}

static LK_INLINE uint32_t moe_tokens16(const moe_job *job, int64_t t) {
  switch (job->p.top_k) {
  case 1: return moe_tokens16_k(job, t, 1);
  case 2: return moe_tokens16_k(job, t, 2);
  case 3: return moe_tokens16_k(job, t, 3);
  default: return moe_tokens16_k(job, t, 4);
  }
}

#endif /* LK_MOE_BATCH16_AVX512_H */
