/* MoE gating for short rows and few picks over a SIMD mapping: VL tokens at once, a token per lane
 * (moe_tokens_batch). Included by moe_avx2.c and moe_avx512.c after moe_simd.h.
 *
 * For 64 experts and k = 2 (OLMoE, DBRX's 16, Qwen1.5-MoE's 60 rounded up), a per-token kernel
 * spends most of its time on fixed costs: horizontal reductions, ranks and a scatter per token,
 * each a chain of dependent shuffles. Transposed, those vanish: VL tokens' rows are transposed VL
 * experts at a time, so a column holds one expert's logit for every token, and each lane keeps its
 * own top k by an insertion network (compare, then blend the values and ids down), softmax's max
 * and sum lane by lane. Nothing is reduced across lanes.
 *
 * Applies without a correction bias or groups, for at most 128 experts (a ragged last block padded
 * with -inf: Mixtral's 8 on AVX-512, Qwen1.5-MoE's 60) and k <= 4 (the network's cost grows with k). Ties: a column only displaces a kept value it beats
 * strictly, and columns come in ascending id order, so equal logits keep the lower id first; NaN
 * beats nothing, so it ranks last. A lane is handed back (its bit clear in the result) when the
 * general kernel's rules need it: fewer than k numbers above -inf, NaN weights (a NaN or +inf
 * logit under softmax), a negative scale, or weights out of descending order (a rounding of exp
 * or sigmoid that reverses two near-equal logits). */
#include "moe.h"
#include "simd_dtype.h"
#include "simd_math.h"

#define MOE_BATCH_MAX_EXPERTS 128
#define MOE_BATCH_MAX_K 4

/* e^d for softmax's sum: the mapping's cheaper one where it has one (moe_select_avx512.h). */
#ifndef MOE_EXP_FOR_SUM
#define MOE_EXP_FOR_SUM lk_v_exp
#endif

/* Whether moe_tokens_batch takes this job's tokens. */
static LK_INLINE bool LK_ISA_SUFFIX(moe_batch_applies)(const moe_job *job) {
  const lk_moe_gating_params *p = &job->p;
  return !p->correction_bias && job->groups == 1 && p->num_experts <= MOE_BATCH_MAX_EXPERTS && p->top_k <= MOE_BATCH_MAX_K;
}

/* Tokens [t, t + VL) for k = K (a constant in each instance, so the network's values stay in
 * registers): writes their outputs and returns the mask of those it did (bit i: token t + i); the
 * others are left to the general kernel, which rewrites them whole. Ids ride as floats (exact
 * below 2^24), so that one select moves a value and its id alike. */
static LK_INLINE uint32_t LK_ISA_SUFFIX(moe_tokens_batch_k)(const moe_job *job, int64_t t, const int k) {
  const lk_moe_gating_params *p = &job->p;
  const int64_t n = p->num_experts, V = LK_VEC_LANES;
  const size_t row_bytes = (size_t)p->logits_stride * lk_dtype_size(p->dtype);
  const char *rows = (const char *)p->logits + (size_t)t * row_bytes;

  lk_vf best[MOE_BATCH_MAX_K], best_id[MOE_BATCH_MAX_K];
  for (int j = 0; j < MOE_BATCH_MAX_K; j++) {
    best[j] = lk_v_set1(-INFINITY);
    best_id[j] = lk_v_set1(-1.0f);
  }
  lk_vf column[MOE_BATCH_MAX_EXPERTS + LK_VEC_LANES]; /* the transposed logits, kept for softmax's sum */
  for (int64_t c = 0; c < n; c += V) {
    lk_vf *col = column + c;
    const int64_t width = n - c < V ? n - c : V; /* a ragged last block is padded with -inf, which beats nothing */
    for (int64_t i = 0; i < V; i++) {
      const char *row = rows + (size_t)i * row_bytes;
      if (width == V) {
        col[i] = lk_v_load(row, c, p->dtype);
      } else if (p->dtype == LK_DTYPE_F32) {
        col[i] = lk_v_load_f32_partial((const float *)row + c, width, -INFINITY);
      } else {
        float x[LK_VEC_LANES];
        for (int64_t j = 0; j < V; j++) x[j] = j < width ? lk_load_element(row, c + j, p->dtype) : -INFINITY;
        col[i] = lk_v_load_f32(x);
      }
    }
    lk_v_transpose(col); /* col[j] lane i = token i's logit of expert c + j */
    for (int64_t j = 0; j < width; j++) {
      lk_vf v = col[j], id = lk_v_set1((float)(c + j));
      lk_vmask beats = lk_v_cmp_gt(v, best[0]);
      for (int s = 0; s < k; s++) {
        /* insertion: the column's value takes the first slot it beats strictly; each value it
         * displaces then takes the next slot whatever that holds (it is not below it, and on a tie
         * its id is the lower: the slots are in order) */
        if (s > 0) beats = lk_v_mask_or(beats, lk_v_cmp_gt(v, best[s]));
        const lk_vf kept = best[s], kept_id = best_id[s];
        best[s] = lk_v_select(beats, v, kept);
        best_id[s] = lk_v_select(beats, id, kept_id);
        v = lk_v_select(beats, kept, v);
        id = lk_v_select(beats, kept_id, id);
      }
    }
  }
  /* k numbers above -inf */
  uint32_t ok = ~lk_v_mask_bits(lk_v_cmp_lt(best_id[k - 1], lk_v_zero())) & (uint32_t)((1ull << V) - 1);

  /* The weights, lane by lane, by the general kernel's formulas (the same vector exp and sigmoid).
   * The top value is the row's maximum (NaN aside, as the general kernel's vmaxps). */
  lk_vf w[MOE_BATCH_MAX_K];
  const lk_vf max = best[0];
  switch (p->scoring) {
  case LK_MOE_SOFTMAX_TOPK: {
    lk_vf s0 = lk_v_zero(), s1 = lk_v_zero();
    int64_t e = 0;
    for (; e + 2 <= n; e += 2) { /* a NaN or +inf logit makes its lane's sum NaN */
      s0 = lk_v_add(s0, MOE_EXP_FOR_SUM(lk_v_sub(column[e], max)));
      s1 = lk_v_add(s1, MOE_EXP_FOR_SUM(lk_v_sub(column[e + 1], max)));
    }
    if (e < n) s0 = lk_v_add(s0, MOE_EXP_FOR_SUM(lk_v_sub(column[e], max)));
    const lk_vf inv_sum = lk_v_div(lk_v_set1(1.0f), lk_v_add(s0, s1));
    for (int j = 0; j < k; j++) w[j] = lk_v_mul(lk_v_exp(lk_v_sub(best[j], max)), inv_sum);
    break;
  }
  case LK_MOE_TOPK_SOFTMAX: {
    lk_vf sum = lk_v_zero();
    for (int j = 0; j < k; j++) sum = lk_v_add(sum, w[j] = lk_v_exp(lk_v_sub(best[j], max)));
    for (int j = 0; j < k; j++) w[j] = lk_v_div(w[j], sum);
    break;
  }
  default:
    for (int j = 0; j < k; j++) w[j] = lk_v_sigmoid(best[j]);
    break;
  }
  if (p->flags & LK_MOE_RENORMALIZE) {
    lk_vf sum = lk_v_zero();
    for (int j = 0; j < k; j++) sum = lk_v_add(sum, w[j]);
    for (int j = 0; j < k; j++) w[j] = lk_v_div(w[j], sum);
  }
  if (p->routed_scaling_factor != 0.0f)
    for (int j = 0; j < k; j++) w[j] = lk_v_mul(w[j], lk_v_set1(p->routed_scaling_factor));
  if (p->routed_scaling_factor < 0.0f) ok = 0;
  for (int j = 0; j < k; j++) ok &= ~lk_v_mask_bits(lk_v_cmp_nan(w[j]));
  for (int j = 0; j + 1 < k; j++) { /* descending weights, ties to the lower id, or the general kernel */
    ok &= ~lk_v_mask_bits(lk_v_cmp_gt(w[j + 1], w[j]));
    ok &= ~(lk_v_mask_bits(lk_v_cmp_eq(w[j + 1], w[j])) & lk_v_mask_bits(lk_v_cmp_lt(best_id[j + 1], best_id[j])));
  }

  /* token i's slot j at (t + i) * k + j */
  float ws[MOE_BATCH_MAX_K][LK_VEC_LANES], ids[MOE_BATCH_MAX_K][LK_VEC_LANES];
  for (int j = 0; j < k; j++) {
    lk_v_store_f32(ws[j], w[j]);
    lk_v_store_f32(ids[j], best_id[j]);
  }
  float *weights = p->weights + t * k;
  int32_t *expert_ids = p->expert_ids + t * k;
  for (int64_t i = 0; i < V; i++)
    for (int j = 0; j < k; j++) {
      weights[i * k + j] = ws[j][i];
      expert_ids[i * k + j] = (int32_t)ids[j][i];
    }
  return ok;
}

static LK_INLINE uint32_t LK_ISA_SUFFIX(moe_tokens_batch)(const moe_job *job, int64_t t) {
  switch (job->p.top_k) {
  case 1: return LK_ISA_SUFFIX(moe_tokens_batch_k)(job, t, 1);
  case 2: return LK_ISA_SUFFIX(moe_tokens_batch_k)(job, t, 2);
  case 3: return LK_ISA_SUFFIX(moe_tokens_batch_k)(job, t, 3);
  default: return LK_ISA_SUFFIX(moe_tokens_batch_k)(job, t, 4);
  }
}

/* Tokens [begin, end) in batches of VL where moe_tokens_batch applies, each lane it hands back by the
 * general kernel; returns the first token left for the caller. The next batch's rows are fetched
 * while one is ranked. */
static LK_INLINE int64_t LK_ISA_SUFFIX(moe_rows_batched)(const moe_job *job, int64_t begin, int64_t end) {
  if (!LK_ISA_SUFFIX(moe_batch_applies)(job)) return begin;
  const int64_t V = LK_VEC_LANES;
  int64_t t = begin;
  for (; t + V <= end; t += V) {
    if (t + 2 * V <= end) LK_ISA_SUFFIX(moe_prefetch_rows)(job, t + V, V);
    const uint32_t done = LK_ISA_SUFFIX(moe_tokens_batch)(job, t);
    for (int64_t i = 0; i < V; i++)
      if (!(done >> i & 1)) LK_ISA_SUFFIX(moe_token)(job, t + i);
  }
  return t;
}
