/* lk_moe_gating: argument checks, then tokens split over the context's threads and run by the
 * context's ISA variant. The contract is the header's and docs/moe.md's.
 *
 * Per token, in f32, reading the logits row at most three times and allocating nothing:
 *   1. softmax's max and sum (SOFTMAX_TOPK only);
 *   2. grouped selection: each group's score from its members' selection scores, the kept groups;
 *   3. the top k by selection score, kept sorted in a k-slot array by insertion: a candidate that
 *      does not beat the current k-th costs one comparison, so the pass is about one score per
 *      expert for the usual k << E;
 *   4. the weights, renormalisation, scaling, and the k pairs sorted by weight.
 * Every ranking uses one total order (moe_better): higher score first, NaN below everything,
 * ties to the lower index. This is the scalar kernel and the reference the AVX2/AVX-512 ones
 * (moe_simd.h) are tested against; each kernel gives equal logits equal scores, so exact ties
 * resolve alike on every ISA. */
#include "moe.h"
#include "moe_check.h"

#include <string.h>

/* A token of 256 experts costs about a microsecond: below this many logits per extra thread, waking a
 * worker costs more than it saves. */
#define LK_MOE_MIN_ELEMENTS_PER_THREAD ((int64_t)1 << 14)

static inline float moe_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* The per-row state of one token: its logits, and softmax's max and 1 / sum when scored by it. */
typedef struct moe_row {
  const void *logits;
  lk_dtype dtype;
  lk_moe_scoring scoring;
  const float *bias;
  float max, inv_sum;
} moe_row;

static inline float moe_logit(const moe_row *r, int64_t e) { return lk_load_element(r->logits, e, r->dtype); }

/* The score the weights come from: softmax's p, sigmoid's p, or the logit itself (TOPK_SOFTMAX). */
static inline float moe_score(const moe_row *r, float logit) {
  switch (r->scoring) {
  case LK_MOE_SOFTMAX_TOPK: return expf(logit - r->max) * r->inv_sum;
  case LK_MOE_SIGMOID: return moe_sigmoid(logit);
  default: return logit;
  }
}

/* The score experts are ranked by: the score plus the correction bias, or the logit (moe.h). */
static inline float moe_selection(const moe_row *r, int64_t e) {
  const float x = moe_logit(r, e);
  return r->bias ? moe_score(r, x) + r->bias[e] : x;
}

/* Softmax's max and 1 / sum over the row (a NaN logit makes both NaN, as the formula does). */
static void moe_softmax_stats(moe_row *r, int64_t experts) {
  float max = -INFINITY;
  bool nan = false;
  for (int64_t e = 0; e < experts; e++) {
    const float x = moe_logit(r, e);
    nan = nan || x != x;
    if (x > max) max = x;
  }
  float sum = 0.0f;
  for (int64_t e = 0; e < experts; e++) sum += expf(moe_logit(r, e) - max);
  r->max = nan ? NAN : max;
  r->inv_sum = nan ? NAN : 1.0f / sum;
}

/* Which groups are searched (kept[g]): the topk_groups best by group score, the sum of a group's
 * top two selection scores with a correction bias, else its best one (vLLM's grouped_topk). */
static void moe_keep_groups(const moe_row *r, const moe_job *job, bool *kept) {
  moe_top groups = {.n = 0, .k = job->p.topk_groups};
  const int64_t top = r->bias && job->group_size > 1 ? 2 : 1;
  for (int64_t g = 0; g < job->groups; g++) {
    moe_top best = {.n = 0, .k = top};
    for (int64_t e = g * job->group_size; e < (g + 1) * job->group_size; e++) moe_top_offer(&best, moe_selection(r, e), e);
    float score = best.score[0];
    if (top == 2) score += best.score[1];
    moe_top_offer(&groups, score, g);
    kept[g] = false;
  }
  for (int64_t i = 0; i < groups.n; i++) kept[groups.index[i]] = true;
}

static void moe_token(const moe_job *job, int64_t t, bool *kept) {
  const lk_moe_gating_params *p = &job->p;
  moe_row r = {(const char *)p->logits + t * p->logits_stride * (int64_t)lk_dtype_size(p->dtype), p->dtype, p->scoring,
               p->correction_bias, 0.0f, 1.0f};
  if (p->scoring == LK_MOE_SOFTMAX_TOPK) moe_softmax_stats(&r, p->num_experts);

  moe_top top = {.n = 0, .k = p->top_k};
  if (job->groups > 1) {
    moe_keep_groups(&r, job, kept);
    for (int64_t g = 0; g < job->groups; g++)
      if (kept[g])
        for (int64_t e = g * job->group_size; e < (g + 1) * job->group_size; e++) moe_top_offer(&top, moe_selection(&r, e), e);
  } else {
    for (int64_t e = 0; e < p->num_experts; e++) moe_top_offer(&top, moe_selection(&r, e), e);
  }

  /* the weights of the selected, from the scores without the bias */
  float w[LK_MOE_MAX_TOP_K];
  for (int64_t i = 0; i < top.k; i++) w[i] = moe_score(&r, moe_logit(&r, top.index[i]));
  if (p->scoring == LK_MOE_TOPK_SOFTMAX) moe_softmax_k(w, top.k);
  moe_finish(job, t, w, top.index, top.k);
}

void lk_moe_rows_scalar(const void *arg, int64_t begin, int64_t end) {
  const moe_job *job = (const moe_job *)arg;
  bool kept[LK_MOE_MAX_GROUPS];
  for (int64_t t = begin; t < end; t++) moe_token(job, t, kept);
}

static lk_rows_fn variant(lk_isa isa) {
  switch (isa) {
#if defined(LK_HAVE_AVX512)
  case LK_ISA_AVX512: return lk_moe_rows_avx512;
#endif
#if defined(LK_HAVE_AVX2)
  case LK_ISA_AVX2: return lk_moe_rows_avx2;
#endif
  default: return lk_moe_rows_scalar;
  }
}

LK_API lk_status lk_moe_gating_check(lk_moe_gating_params *p) {
  if (!lk_dtype_valid(p->dtype)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "dtype: %d is not an lk_dtype value", (int)p->dtype);
  if (p->scoring != LK_MOE_SOFTMAX_TOPK && p->scoring != LK_MOE_TOPK_SOFTMAX && p->scoring != LK_MOE_SIGMOID)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "scoring: %d is not an lk_moe_scoring value", (int)p->scoring);
  if (p->flags & ~(uint32_t)LK_MOE_RENORMALIZE)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "flags: 0x%x has bits that are not lk_moe_flags", (unsigned)p->flags);
  if (p->num_tokens < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_tokens: %lld is negative", (long long)p->num_tokens);
  if (p->num_experts < 1)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_experts: %lld must be positive", (long long)p->num_experts);
  if (p->num_experts > INT32_MAX)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_experts: %lld does not fit the int32 expert ids", (long long)p->num_experts);
  const int64_t max_k = p->num_experts < LK_MOE_MAX_TOP_K ? p->num_experts : LK_MOE_MAX_TOP_K;
  if (p->top_k < 1 || p->top_k > max_k)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "top_k: %lld is outside [1, %lld] (at most num_experts and %d)", (long long)p->top_k,
                   (long long)max_k, LK_MOE_MAX_TOP_K);
  if (p->logits_stride < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "logits_stride: %lld is negative", (long long)p->logits_stride);
  if (p->logits_stride == 0) p->logits_stride = p->num_experts;
  if (p->logits_stride < p->num_experts)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "logits_stride: %lld is less than num_experts (%lld)", (long long)p->logits_stride,
                   (long long)p->num_experts);
  if (p->num_groups < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_groups: %lld is negative", (long long)p->num_groups);
  if (p->num_groups > 1) {
    if (p->num_groups > LK_MOE_MAX_GROUPS)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_groups: %lld is more than %d", (long long)p->num_groups, LK_MOE_MAX_GROUPS);
    if (p->num_experts % p->num_groups != 0)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_groups: %lld does not divide num_experts (%lld)", (long long)p->num_groups,
                     (long long)p->num_experts);
    if (p->topk_groups < 1 || p->topk_groups > p->num_groups)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "topk_groups: %lld is outside [1, num_groups (%lld)]", (long long)p->topk_groups,
                     (long long)p->num_groups);
    const int64_t group_size = p->num_experts / p->num_groups;
    if (p->top_k > p->topk_groups * group_size)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "top_k: %lld is more than the %lld experts of topk_groups (%lld) groups",
                     (long long)p->top_k, (long long)(p->topk_groups * group_size), (long long)p->topk_groups);
  }
  if (p->num_tokens == 0) return LK_OK;
  if (!p->logits) return lk_fail(LK_ERR_INVALID_ARGUMENT, "logits: NULL");
  if (!p->weights) return lk_fail(LK_ERR_INVALID_ARGUMENT, "weights: NULL");
  if (!p->expert_ids) return lk_fail(LK_ERR_INVALID_ARGUMENT, "expert_ids: NULL");
  if (lk_extent_bytes(p->logits, p->num_tokens, p->num_experts, p->logits_stride, p->dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_tokens: %lld rows of logits exceed the address space", (long long)p->num_tokens);
  if (lk_extent_bytes(p->weights, p->num_tokens, p->top_k, p->top_k, LK_DTYPE_F32) < 0 ||
      lk_extent_bytes(p->expert_ids, p->num_tokens, p->top_k, p->top_k, LK_DTYPE_F32) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_tokens: %lld rows of outputs exceed the address space", (long long)p->num_tokens);
  const lk_span weights = lk_rows_span(p->weights, p->num_tokens, p->top_k, p->top_k, LK_DTYPE_F32);
  const lk_span ids = lk_rows_span(p->expert_ids, p->num_tokens, p->top_k, p->top_k, LK_DTYPE_F32);
  const lk_span logits = lk_rows_span(p->logits, p->num_tokens, p->num_experts, p->logits_stride, p->dtype);
  if (lk_spans_overlap(weights, ids)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "expert_ids: overlaps weights");
  if (lk_spans_overlap(weights, logits)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "weights: overlaps logits");
  if (lk_spans_overlap(ids, logits)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "expert_ids: overlaps logits");
  return LK_OK;
}

static lk_status validate(const lk_moe_gating_params *params, moe_job *job) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  job->p = *params;
  lk_moe_gating_params *p = &job->p;
  const lk_status status = lk_moe_gating_check(p);
  if (status != LK_OK) return status;
  job->groups = p->num_groups > 1 ? p->num_groups : 1;
  job->group_size = p->num_experts / job->groups;
  /* once per call: the vector kernels then check only the logits for NaN */
  job->bias_finite = true;
  if (p->correction_bias && p->num_tokens > 0)
    for (int64_t e = 0; e < p->num_experts; e++) job->bias_finite = job->bias_finite && isfinite(p->correction_bias[e]);
  return LK_OK;
}

LK_API lk_status lk_moe_gating(lk_cpu_context *context, const lk_moe_gating_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  moe_job job;
  memset(&job, 0, sizeof job);
  status = validate(params, &job);
  if (status == LK_OK && job.p.num_tokens > 0)
    lk_parallel_rows(context, variant(context->isa), &job, job.p.num_tokens, job.p.num_experts, LK_MOE_MIN_ELEMENTS_PER_THREAD);
  lk_context_leave(context);
  return status;
}
