/* MoE gating's general vector kernel over a SIMD mapping (included by moe_avx2.c and moe_avx512.c
 * after their mapping header; the kernels that go first, moe_batch_simd.h and moe_select_avx512.h,
 * hand it every token they decline). The contract is the header's, the scalar kernel moe.c.
 *
 * Per token, vectors of VL experts at a time:
 *   1. softmax's max and sum (SOFTMAX_TOPK only), with the vectorised exp;
 *   2. the selection scores into a row buffer (moe_fill), NaN padding the last vector;
 *   3. grouped selection: each group's best one or two selection scores, the other groups' experts
 *      taken out of the running;
 *   4. the top k by k argmax passes over the buffer (moe_top_k); a row with NaN scores, or more
 *      than MOE_ROW_MAX experts, by the k-slot insertion list instead (moe_offer_range);
 *   5. the selected experts' weights from their logits, by the same vector score function (so a
 *      weight is bit for bit the score it was chosen by), and moe_finish.
 * Every score of a token goes through the same vector function, ragged tails included (they are
 * loaded into a padded vector): two equal logits always get equal scores, and ties go to the
 * lower id as in the scalar kernel. */
#include "moe.h"
#include "simd_dtype.h"
#include "simd_math.h"

#define VL LK_VEC_LANES

typedef struct moe_vrow {
  const void *logits;
  const float *bias;
  lk_dtype dtype;
  lk_moe_scoring scoring;
  lk_vf max, inv_sum; /* softmax's */
} moe_vrow;

/* Logits [e, e + n) of the row (n <= VL), lanes past n set to `pad`. */
static LK_INLINE lk_vf LK_ISA_SUFFIX(moe_load)(const moe_vrow *r, int64_t e, int64_t n, float pad) {
  if (n == VL) return lk_v_load(r->logits, e, r->dtype);
  float tail[VL];
  for (int64_t i = 0; i < VL; i++) tail[i] = i < n ? lk_load_element(r->logits, e + i, r->dtype) : pad;
  return lk_v_load_f32(tail);
}

/* The score the weights come from: softmax's p, sigmoid's p, or the logit itself (TOPK_SOFTMAX). */
static LK_INLINE lk_vf LK_ISA_SUFFIX(moe_score)(const moe_vrow *r, lk_vf x) {
  switch (r->scoring) {
  case LK_MOE_SOFTMAX_TOPK: return lk_v_mul(lk_v_exp(lk_v_sub(x, r->max)), r->inv_sum);
  case LK_MOE_SIGMOID: return lk_v_sigmoid(x);
  default: return x;
  }
}

/* Softmax's max and 1 / sum over the row's n experts (NaN for both when a logit is NaN). */
static LK_INLINE void LK_ISA_SUFFIX(moe_softmax_stats)(moe_vrow *r, int64_t n) {
  lk_vf max = lk_v_set1(-INFINITY);
  bool nan = false;
  for (int64_t e = 0; e < n; e += VL) {
    const lk_vf x = LK_ISA_SUFFIX(moe_load)(r, e, n - e < VL ? n - e : VL, -INFINITY);
    nan = nan || lk_v_mask_any(lk_v_cmp_nan(x));
    max = lk_v_max(x, max);
  }
  const float m = lk_v_hmax(max);
  r->max = lk_v_set1(m);
  lk_vf sum = lk_v_zero();
  for (int64_t e = 0; e < n; e += VL) {
    const int64_t lanes = n - e < VL ? n - e : VL;
    /* padded with the max: exp(0), then zeroed; exp of -inf - max would be a subnormal, whose
     * microcode assist made a row of 8 experts cost 270 ns */
    lk_vf p = lk_v_exp(lk_v_sub(LK_ISA_SUFFIX(moe_load)(r, e, lanes, m), r->max));
    if (lanes < VL) { /* the padding adds nothing */
      float keep[VL];
      for (int64_t i = 0; i < VL; i++) keep[i] = i < lanes ? 1.0f : 0.0f;
      p = lk_v_mul(p, lk_v_load_f32(keep));
    }
    sum = lk_v_add(sum, p);
  }
  const float inv = 1.0f / lk_v_hsum(sum);
  r->max = lk_v_set1(nan ? NAN : m);
  r->inv_sum = lk_v_set1(nan ? NAN : inv);
}

/* Offers experts [begin, end) to top by selection score, a vector at a time: once top is full
 * (and its k-th is a number), only the lanes beating the k-th are offered, lowest first. */
static LK_INLINE void LK_ISA_SUFFIX(moe_offer_range)(const moe_vrow *r, int64_t begin, int64_t end, moe_top *top) {
  for (int64_t e = begin; e < end; e += VL) {
    const int64_t lanes = end - e < VL ? end - e : VL;
    lk_vf s = LK_ISA_SUFFIX(moe_load)(r, e, lanes, 0.0f);
    if (r->bias) { /* score + bias; without one the logit ranks as the score does (moe.h) */
      float b[VL];
      if (lanes < VL)
        for (int64_t i = 0; i < VL; i++) b[i] = i < lanes ? r->bias[e + i] : 0.0f;
      s = lk_v_add(LK_ISA_SUFFIX(moe_score)(r, s), lanes == VL ? lk_v_load_f32(r->bias + e) : lk_v_load_f32(b));
    }
    uint32_t offer = lanes == VL ? (uint32_t)((1ull << VL) - 1) : (uint32_t)((1u << lanes) - 1);
    if (top->n == top->k && top->score[top->k - 1] == top->score[top->k - 1]) {
      offer &= lk_v_mask_bits(lk_v_cmp_gt(s, lk_v_set1(top->score[top->k - 1])));
      if (!offer) continue;
    }
    float v[VL];
    lk_v_store_f32(v, s);
    for (; offer; offer &= offer - 1) { /* lowest lane first; moe_top_offer rejects what no longer beats */
      const int i = lk_ctz64(offer);
      moe_top_offer(top, v[i], e + i);
    }
  }
}

/* The fast path's row buffer: selection scores of up to this many experts (16 KB of stack). */
#define MOE_ROW_MAX 4096

/* Into L1, the used part of logits rows [first, first + count): the rows a kernel takes next,
 * fetched while it works on the ones before. */
static LK_INLINE void LK_ISA_SUFFIX(moe_prefetch_rows)(const moe_job *job, int64_t first, int64_t count) {
  const size_t row = (size_t)job->p.logits_stride * lk_dtype_size(job->p.dtype);
  const size_t used = (size_t)job->p.num_experts * lk_dtype_size(job->p.dtype);
  for (int64_t i = 0; i < count; i++)
    for (size_t b = 0; b < used; b += 64) _mm_prefetch((const char *)job->p.logits + (size_t)(first + i) * row + b, _MM_HINT_T0);
}

/* sel[e] = the selection score of expert e < n, padded with NaN to whole vectors; whether any is NaN. */
static LK_INLINE bool LK_ISA_SUFFIX(moe_fill)(const moe_vrow *r, int64_t n, float *sel) {
  bool nan = false;
  for (int64_t e = 0; e < n; e += VL) {
    const int64_t lanes = n - e < VL ? n - e : VL;
    lk_vf s = LK_ISA_SUFFIX(moe_load)(r, e, lanes, 0.0f);
    if (r->bias) {
      float b[VL];
      for (int64_t i = 0; i < VL; i++) b[i] = i < lanes ? r->bias[e + i] : 0.0f;
      s = lk_v_add(LK_ISA_SUFFIX(moe_score)(r, s), lanes == VL ? lk_v_load_f32(r->bias + e) : lk_v_load_f32(b));
    }
    nan = nan || (lk_v_mask_bits(lk_v_cmp_nan(s)) & ((1ull << lanes) - 1)) != 0;
    lk_v_store_f32(sel + e, s);
    for (int64_t i = lanes; i < VL; i++) sel[e + i] = NAN;
  }
  return nan;
}

/* Running argmax state: per lane the best score so far and its index (a float: ids < 2^24). */
typedef struct moe_best {
  lk_vf score, at;
} moe_best;

/* b folded into a: the higher score, and of equal scores the lower index. */
static LK_INLINE moe_best LK_ISA_SUFFIX(moe_best_merge)(moe_best a, moe_best b) {
  const lk_vf lower = lk_v_min(a.at, b.at);
  const lk_vf at = lk_v_select(lk_v_cmp_gt(b.score, a.score), b.at, lk_v_select(lk_v_cmp_gt(a.score, b.score), a.at, lower));
  return (moe_best){lk_v_max(a.score, b.score), at};
}

static LK_INLINE moe_best LK_ISA_SUFFIX(moe_best_step)(moe_best a, const float *sel, lk_vf idx) {
  const lk_vf s = lk_v_load_f32(sel);
  const lk_vmask better = lk_v_cmp_gt(s, a.score); /* false for NaN; a lane keeps its first maximum */
  return (moe_best){lk_v_select(better, s, a.score), lk_v_select(better, idx, a.at)};
}

/* The best of sel[0, n) (n a multiple of VL, NaN = out of the running, at least one number):
 * the highest, and of equal ones the lowest index. Four independent chains (the compare-select
 * chain is latency-bound), merged keeping the lower index on equal scores. */
static LK_INLINE int64_t LK_ISA_SUFFIX(moe_argmax)(const float *sel, int64_t n) {
  float iota[VL];
  for (int i = 0; i < VL; i++) iota[i] = (float)i;
  const moe_best none = {lk_v_set1(-INFINITY), lk_v_set1(INFINITY)};
  moe_best b0 = none, b1 = none, b2 = none, b3 = none;
  lk_vf idx = lk_v_load_f32(iota);
  const lk_vf step = lk_v_set1((float)VL), step4 = lk_v_set1((float)(4 * VL));
  int64_t e = 0;
  for (; e + 4 * VL <= n; e += 4 * VL, idx = lk_v_add(idx, step4)) {
    b0 = LK_ISA_SUFFIX(moe_best_step)(b0, sel + e, idx);
    b1 = LK_ISA_SUFFIX(moe_best_step)(b1, sel + e + VL, lk_v_add(idx, step));
    b2 = LK_ISA_SUFFIX(moe_best_step)(b2, sel + e + 2 * VL, lk_v_add(idx, lk_v_add(step, step)));
    b3 = LK_ISA_SUFFIX(moe_best_step)(b3, sel + e + 3 * VL, lk_v_add(idx, lk_v_mul(step, lk_v_set1(3.0f))));
  }
  for (; e < n; e += VL, idx = lk_v_add(idx, step)) b0 = LK_ISA_SUFFIX(moe_best_step)(b0, sel + e, idx);
  const moe_best b = LK_ISA_SUFFIX(moe_best_merge)(LK_ISA_SUFFIX(moe_best_merge)(b0, b1),
                                                   LK_ISA_SUFFIX(moe_best_merge)(b2, b3));
  const float m = lk_v_hmax(b.score);
  if (m == -INFINITY) { /* nothing above -inf: the first -inf */
    int64_t j = 0;
    while (sel[j] != -INFINITY) j++;
    return j;
  }
  const lk_vf first = lk_v_select(lk_v_cmp_eq(b.score, lk_v_set1(m)), b.at, lk_v_set1(INFINITY));
  return (int64_t)-lk_v_hmax(lk_v_neg(first));
}

/* The top k of a row without NaN selection scores, into top, best first: k argmax passes over the
 * buffer, each taking its pick out of the running (NaN). About k x E / VL compares, no branches
 * on the data: the insertion list's mispredicted compares cost 3-4x more on random logits. */
static LK_INLINE void LK_ISA_SUFFIX(moe_top_k)(float *sel, int64_t n, moe_top *top) {
  const int64_t padded = (n + VL - 1) / VL * VL;
  for (int64_t i = 0; i < top->k; i++) {
    const int64_t e = LK_ISA_SUFFIX(moe_argmax)(sel, padded);
    top->score[i] = sel[e];
    top->index[i] = (int32_t)e;
    sel[e] = NAN;
  }
  top->n = top->k;
}

/* Grouped selection on the buffer: each group's score (its best, or best two with a bias), the
 * topk_groups best groups kept, every other group's experts taken out of the running. */
static LK_INLINE void LK_ISA_SUFFIX(moe_keep_groups)(const moe_job *job, const moe_vrow *r, float *sel) {
  moe_top groups = {.n = 0, .k = job->p.topk_groups};
  const int64_t size = job->group_size;
  const bool two = r->bias && size > 1;
  for (int64_t g = 0; g < job->groups; g++) {
    float *group = sel + g * size, score;
    if (size % VL == 0) { /* whole vectors: the best by argmax, the second with the best taken out */
      const int64_t first = LK_ISA_SUFFIX(moe_argmax)(group, size);
      const float best = group[first];
      score = best;
      if (two) {
        group[first] = NAN;
        score += group[LK_ISA_SUFFIX(moe_argmax)(group, size)];
        group[first] = best;
      }
    } else {
      moe_top best = {.n = 0, .k = two ? 2 : 1};
      for (int64_t e = 0; e < size; e++) moe_top_offer(&best, group[e], e);
      score = two ? best.score[0] + best.score[1] : best.score[0];
    }
    moe_top_offer(&groups, score, g);
  }
  bool kept[LK_MOE_MAX_GROUPS] = {false};
  for (int64_t i = 0; i < groups.n; i++) kept[groups.index[i]] = true;
  for (int64_t g = 0; g < job->groups; g++)
    if (!kept[g])
      for (int64_t e = g * size; e < (g + 1) * size; e++) sel[e] = NAN;
}

/* Softmax over the k selected logits (TOPK_SOFTMAX's weights), in place, with the vectorised exp;
 * a NaN among them makes all NaN, as moe_softmax_k (moe.h) does. */
static LK_INLINE void LK_ISA_SUFFIX(moe_softmax_k)(float *w, int64_t k) {
  float x[LK_MOE_MAX_TOP_K + VL];
  for (int64_t i = 0; i < k; i++) x[i] = w[i];
  for (int64_t i = k; i < (k + VL - 1) / VL * VL; i++) x[i] = -INFINITY;
  lk_vf max = lk_v_set1(-INFINITY);
  bool nan = false;
  for (int64_t i = 0; i < k; i += VL) { /* vmaxps keeps its second operand over a NaN */
    const lk_vf v = lk_v_load_f32(x + i);
    nan = nan || lk_v_mask_any(lk_v_cmp_nan(v));
    max = lk_v_max(v, max);
  }
  const lk_vf m = lk_v_set1(lk_v_hmax(max));
  static const float iota[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const lk_vf lane = lk_v_load_f32(iota);
  lk_vf sum = lk_v_zero();
  for (int64_t i = 0; i < k; i += VL) {
    lk_vf d = lk_v_sub(lk_v_load_f32(x + i), m);
    const bool tail = i + VL > k;
    /* the padding's exp is 0, by select: exp of -inf - m would be a subnormal, whose microcode
     * assist cost a fifth of the kernel's time */
    const lk_vmask real = lk_v_cmp_lt(lane, lk_v_set1((float)(k - i)));
    if (tail) d = lk_v_select(real, d, lk_v_zero());
    lk_vf e = lk_v_exp(d);
    if (tail) e = lk_v_select(real, e, lk_v_zero());
    sum = lk_v_add(sum, e);
    lk_v_store_f32(x + i, e);
  }
  const float inv = 1.0f / lk_v_hsum(sum);
  for (int64_t i = 0; i < k; i++) w[i] = nan ? NAN : x[i] * inv;
}

/* One token by the general kernel (the AVX-512 file tries moe_select_avx512.h's first). */
static void LK_ISA_SUFFIX(moe_token)(const moe_job *job, int64_t t) {
  const lk_moe_gating_params *p = &job->p;
  moe_vrow r = {(const char *)p->logits + t * p->logits_stride * (int64_t)lk_dtype_size(p->dtype), p->correction_bias,
                p->dtype, p->scoring, lk_v_zero(), lk_v_set1(1.0f)};
  if (p->scoring == LK_MOE_SOFTMAX_TOPK) LK_ISA_SUFFIX(moe_softmax_stats)(&r, p->num_experts);

  moe_top top = {.n = 0, .k = p->top_k};
  float sel[MOE_ROW_MAX + VL];
  if (p->num_experts <= MOE_ROW_MAX && !LK_ISA_SUFFIX(moe_fill)(&r, p->num_experts, sel)) {
    if (job->groups > 1) LK_ISA_SUFFIX(moe_keep_groups)(job, &r, sel);
    LK_ISA_SUFFIX(moe_top_k)(sel, p->num_experts, &top);
  } else if (job->groups > 1) { /* NaN scores, or a row beyond the buffer: the insertion list */
    /* a group's score: its best selection score, or the sum of its best two with a bias */
    moe_top groups = {.n = 0, .k = p->topk_groups};
    const int64_t best_n = r.bias && job->group_size > 1 ? 2 : 1;
    for (int64_t g = 0; g < job->groups; g++) {
      moe_top best = {.n = 0, .k = best_n};
      LK_ISA_SUFFIX(moe_offer_range)(&r, g * job->group_size, (g + 1) * job->group_size, &best);
      moe_top_offer(&groups, best_n == 2 ? best.score[0] + best.score[1] : best.score[0], g);
    }
    /* the kept groups in ascending order, so experts are offered in ascending id order */
    bool kept[LK_MOE_MAX_GROUPS] = {false};
    for (int64_t i = 0; i < groups.n; i++) kept[groups.index[i]] = true;
    for (int64_t g = 0; g < job->groups; g++)
      if (kept[g]) LK_ISA_SUFFIX(moe_offer_range)(&r, g * job->group_size, (g + 1) * job->group_size, &top);
  } else {
    LK_ISA_SUFFIX(moe_offer_range)(&r, 0, p->num_experts, &top);
  }

  /* the weights: the selected experts' scores without the bias, by the same vector function */
  float w[LK_MOE_MAX_TOP_K];
  for (int64_t i = 0; i < top.k; i++) w[i] = lk_load_element(r.logits, top.index[i], r.dtype);
  if (p->scoring == LK_MOE_TOPK_SOFTMAX) {
    LK_ISA_SUFFIX(moe_softmax_k)(w, top.k);
  } else {
    for (int64_t i = 0; i < top.k; i += VL) {
      float x[VL];
      for (int64_t j = 0; j < VL; j++) x[j] = i + j < top.k ? w[i + j] : 0.0f;
      lk_v_store_f32(x, LK_ISA_SUFFIX(moe_score)(&r, lk_v_load_f32(x)));
      for (int64_t j = 0; j < VL && i + j < top.k; j++) w[i + j] = x[j];
    }
  }
  moe_finish(job, t, w, top.index, top.k);
}

#undef VL
