/* MoE gating's AVX-512 ranked kernel: a token's top k (k <= 16) by lane maxima and ranks, in
 * registers, two tokens at a time (moe_tokens_front, moe_tokens_back). Included by moe_avx512.c after moe_simd.h,
 * whose general kernel (moe_token_avx512) does every token this one declines. docs/moe.md has the
 * steps; in short:
 * 1. Per lane, the maximum of the row's vectors: 16 maxima of 16 disjoint sets of experts.
 * 2. t = the k-th largest of those maxima. k lanes hold an expert scoring at least t, so the k-th
 *    best score of the row is at least t, and every expert of the top k scores at least t.
 * 3. The experts scoring at least t (usually k to 2k of them: 10 on average for 8 of 256 uniform
 *    logits) are compressed into one vector, in ascending id order, with their ids.
 * 4. Each candidate's rank, the number of candidates that rank before it (higher score, or equal
 *    and a lower id), by comparing the vector with its 15 rotations: the ones ranked below k are
 *    the top k.
 * 5. Their weights, and the outputs in weight order: for k <= 8 sorted by a bitonic network on
 *    (weight, id) keys in one register, else scattered by the rank of the weights.
 * Grouped selection of DeepSeek-V3's shape (8 groups of 32) takes its threshold for step 3 from
 * the group stage instead of steps 1-2 (moe_keep_groups_tree8).
 * The branches on the data are rare ones: more than 16 candidates (ties or a flat row: the general
 * kernel then runs; after the group stage's threshold, steps 1-2 first), and equal scores at the
 * top-k or kept-groups boundary (ranked again, ties to the lower id). Ranking 16 values costs
 * about 45 instructions, against about 8 x 60 for the general kernel's argmax passes, with their
 * horizontal reductions. */
#ifndef LK_MOE_SELECT_AVX512_H
#define LK_MOE_SELECT_AVX512_H

#include "moe.h"
#include "simd_math.h"

#include <immintrin.h>

/* The lanes i where u[i] ranks before v[i], u a rotation of v whose `wrapped` lanes came from a
 * lower lane: u[i] higher, or, when ties are ordered, equal and from a lower lane. NaN ranks no
 * lane (the callers' lanes hold numbers or -inf padding). */
static LK_INLINE __mmask16 moe_before(__m512 u, __m512 v, __mmask16 wrapped, const bool ties) {
  if (!ties) return _mm512_cmp_ps_mask(u, v, _CMP_GT_OQ);
  return (__mmask16)(_mm512_mask_cmp_ps_mask((__mmask16)~wrapped, u, v, _CMP_GT_OQ) |
                     _mm512_mask_cmp_ps_mask(wrapped, u, v, _CMP_GE_OQ));
}

/* rank[i] = the lanes j of v before lane i: v[j] > v[i], and with `ties` also v[j] == v[i] and
 * j < i (the order every ranking here uses). Rotation r compares lane i with lane (i + r) mod 16:
 * a higher lane unless it wrapped. Without ties it is half the compares, and equal values share
 * the lowest rank of their group, so the ranks of 16 lanes sum to less than 0 + 1 + ... + 15 =
 * 120 exactly when two lanes tie. */
static LK_INLINE __m512i moe_rank16_by(__m512 v, const bool ties) {
  const __m512i vi = _mm512_castps_si512(v), one = _mm512_set1_epi32(1);
  __m512i r0 = _mm512_setzero_si512(), r1 = _mm512_setzero_si512();
#define LK_MOE_RANK_STEP(acc, r)                                                                                               \
  acc = _mm512_mask_add_epi32(                                                                                                 \
      acc, moe_before(_mm512_castsi512_ps(_mm512_alignr_epi32(vi, vi, r)), v, (__mmask16)(0xffffu << (16 - (r))), ties), acc, \
      one)
  LK_MOE_RANK_STEP(r0, 1);
  LK_MOE_RANK_STEP(r1, 2);
  LK_MOE_RANK_STEP(r0, 3);
  LK_MOE_RANK_STEP(r1, 4);
  LK_MOE_RANK_STEP(r0, 5);
  LK_MOE_RANK_STEP(r1, 6);
  LK_MOE_RANK_STEP(r0, 7);
  LK_MOE_RANK_STEP(r1, 8);
  LK_MOE_RANK_STEP(r0, 9);
  LK_MOE_RANK_STEP(r1, 10);
  LK_MOE_RANK_STEP(r0, 11);
  LK_MOE_RANK_STEP(r1, 12);
  LK_MOE_RANK_STEP(r0, 13);
  LK_MOE_RANK_STEP(r1, 14);
  LK_MOE_RANK_STEP(r0, 15);
#undef LK_MOE_RANK_STEP
  return _mm512_add_epi32(r0, r1);
}

static LK_INLINE __m512i moe_rank16(__m512 v) { return moe_rank16_by(v, true); }
static LK_INLINE __m512i moe_rank16_strict(__m512 v) { return moe_rank16_by(v, false); }

/* moe_rank16_by for the first 8 lanes (lanes 8-15 ranked likewise among themselves): rotations
 * within each 8-lane half, 7 for all 8 lanes against 15, so half the compares where at most 8
 * values are ranked (8 groups). Only lanes at most `reach` apart are compared (7: all of them):
 * ranking the first reach + 1 lanes among themselves needs rotations 1 .. reach and 8 - reach .. 7. */
static LK_INLINE __m512i moe_rank8_within(__m512 v, int reach, const bool ties) {
  static const int32_t rotation[8][16] = {
      {0},
      {1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11, 12, 13, 14, 15, 8},
      {2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9},
      {3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10},
      {4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11},
      {5, 6, 7, 0, 1, 2, 3, 4, 13, 14, 15, 8, 9, 10, 11, 12},
      {6, 7, 0, 1, 2, 3, 4, 5, 14, 15, 8, 9, 10, 11, 12, 13},
      {7, 0, 1, 2, 3, 4, 5, 6, 15, 8, 9, 10, 11, 12, 13, 14},
  };
  const __m512i one = _mm512_set1_epi32(1);
  __m512i r0 = _mm512_setzero_si512(), r1 = _mm512_setzero_si512();
  for (int r = 1; r < 8; r++) {
    if (r > reach && r < 8 - reach) continue;
    const __m512 u = _mm512_permutexvar_ps(_mm512_loadu_si512((const void *)rotation[r]), v);
    const unsigned half = 0xffu << (8 - r) & 0xffu; /* the lanes whose partner wrapped: a lower lane */
    const __mmask16 before = moe_before(u, v, (__mmask16)(half | half << 8), ties);
    if (r & 1) r0 = _mm512_mask_add_epi32(r0, before, r0, one);
    else r1 = _mm512_mask_add_epi32(r1, before, r1, one);
  }
  return _mm512_add_epi32(r0, r1);
}

/* One token's state through the stages of moe_tokens_front and moe_tokens_back: its selection
 * scores, which vectors of them take part, the threshold, the candidates (scores, -inf past them,
 * and ids, in id order), which of them are the top k, and their weights. */
typedef struct moe_ranked {
  moe_vrow row;
  const float *sel;   /* the logits in place, or the buffer of selection scores */
  uint64_t keep;      /* bit v: experts [16v, 16v + 16) take part (grouped selection's kept groups) */
  bool masked;        /* keep is not all of them: kept[0, kept_n) lists the vectors that are */
  int kept_n;
  uint8_t kept[64];
  bool by_logit;      /* sel holds the logits themselves, as f32 (no correction bias) */
  bool ok;            /* false: the general kernel does this token */
  bool summed;        /* row.max and row.inv_sum are softmax's (moe_stage_sum) */
  bool thresholded;   /* threshold is set (by the group stage): stage 1 need not run */
  float *sigmoid;     /* SIGMOID with a bias: each expert's sigmoid, or NULL */
  __m512 lane_max, threshold, score, w;
  __m512i id;
  __mmask16 chosen;
  int64_t total;
  int32_t cand_id[32];
} moe_ranked;

/* The i-th vector taking part: all of them in order, or the kept groups' (in ascending order, so
 * the candidates stay in id order). */
#define MOE_VECTOR(s, i) ((s)->masked ? (int64_t)(s)->kept[i] : (i))


/* Stage 1: per lane, the maximum of the row's vectors (16 maxima of 16 disjoint sets of experts),
 * and the threshold: the k-th largest of them. k lanes hold an expert scoring at least that, so
 * every expert of the top k does. NaN is out of the running: vmaxps keeps its second operand. */
static LK_INLINE void moe_stage_threshold(moe_ranked *s, int64_t n, int64_t k) {
  __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
  const int64_t vectors = s->masked ? s->kept_n : n / 16;
  int64_t i = 0;
  for (; i + 2 <= vectors; i += 2) {
    m0 = _mm512_max_ps(_mm512_loadu_ps(s->sel + 16 * MOE_VECTOR(s, i)), m0);
    m1 = _mm512_max_ps(_mm512_loadu_ps(s->sel + 16 * MOE_VECTOR(s, i + 1)), m1);
  }
  if (i < vectors) m0 = _mm512_max_ps(_mm512_loadu_ps(s->sel + 16 * MOE_VECTOR(s, i)), m0);
  s->lane_max = _mm512_max_ps(m0, m1);
  /* the least of the maxima with fewer than k others above them: with ties, exactly the k-th
   * largest counted with repeats */
  const __mmask16 top = _mm512_cmple_epi32_mask(moe_rank16_strict(s->lane_max), _mm512_set1_epi32((int)k - 1));
  s->threshold = _mm512_set1_ps(_mm512_mask_reduce_min_ps(top, s->lane_max));
}

/* Stage 2: the ids of the experts at or above the threshold, compressed in id order (usually k to
 * 2k of them: 10 on average for 8 of 256 uniform logits). Writes go to [pos, pos + 16) with pos
 * clamped at 16, so the buffer holds 32; what it holds is only used when no clamp happened. */
static LK_INLINE void moe_stage_candidates(moe_ranked *s, int64_t n, int64_t k) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const int64_t vectors = s->masked ? s->kept_n : n / 16;
  int64_t total = 0;
  for (int64_t i = 0; i < vectors; i++) {
    const int64_t e = 16 * MOE_VECTOR(s, i);
    const __m512i id = _mm512_add_epi32(iota, _mm512_set1_epi32((int)e));
    const __mmask16 in = _mm512_cmp_ps_mask(_mm512_loadu_ps(s->sel + e), s->threshold, _CMP_GE_OQ);
    _mm512_storeu_si512((void *)(s->cand_id + (total < 16 ? total : 16)), _mm512_maskz_compress_epi32(in, id));
    total += lk_popcount32(in);
  }
  s->total = total;
  s->ok = total <= 16 && total >= k; /* else ties or a flat row, or fewer than k numbers */
}

/* Stage 3: the candidates' scores, and the top k among them by rank. */
static LK_INLINE void moe_stage_rank(moe_ranked *s, int64_t k) {
  const __mmask16 real = (__mmask16)((1u << s->total) - 1u);
  s->id = _mm512_maskz_loadu_epi32(real, s->cand_id);
  s->score = _mm512_mask_i32gather_ps(_mm512_set1_ps(-INFINITY), real, s->id, s->sel, 4);
  /* Ranked without ties first: equal scores share a rank, so more than k chosen means a tie at the
   * boundary (the -inf padding ranks total >= k), which the two-compare ranking orders by id. Ties
   * among the chosen leave their order to stage 5. */
  s->chosen = _mm512_cmplt_epi32_mask(moe_rank16_strict(s->score), _mm512_set1_epi32((int)k));
  if (lk_popcount32(s->chosen) != k) {
    s->chosen = _mm512_cmplt_epi32_mask(moe_rank16(s->score), _mm512_set1_epi32((int)k));
  }
}

#undef MOE_VECTOR

/* Stages 1-3 for short rows and few picks (n <= 64, a multiple of 16; k <= 4): k rounds of "the
 * row's best not yet taken", each a masked max over the row's vectors held in registers, one
 * reduction, and the lowest id equal to it. The threshold's fixed costs (two 16-lane ranks, the
 * candidates' round trip through memory, a gather) are most of a 64-expert token otherwise. */
static LK_INLINE void moe_stage_small(moe_ranked *s, int64_t n, int64_t k) {
  __m512 v[4];
  const int64_t vectors = n / 16;
  for (int64_t i = 0; i < 4; i++) v[i] = i < vectors ? _mm512_loadu_ps(s->sel + 16 * i) : _mm512_set1_ps(NAN);
  uint64_t taken = 0;
  for (int64_t r = 0; r < k; r++) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < vectors; i++) /* vmaxps keeps its second operand over a NaN */
      m = _mm512_mask_max_ps(m, (__mmask16)~(taken >> (16 * i)), v[i], m);
    if (r == 0) s->lane_max = m;
    const __m512 best = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    uint64_t equal = 0;
    for (int64_t i = 0; i < vectors; i++)
      equal |= (uint64_t)_mm512_mask_cmp_ps_mask((__mmask16)~(taken >> (16 * i)), v[i], best, _CMP_EQ_OQ) << (16 * i);
    if (!equal) { /* only NaN left */
      s->ok = false;
      return;
    }
    taken |= equal & -equal;
  }
  /* the picks into the first k lanes in id order, as the weight ranking's ties need (the stages
   * after this one read no ranks) */
  s->score = _mm512_set1_ps(-INFINITY);
  s->id = _mm512_setzero_si512();
  for (int64_t i = 0; i < k; i++, taken &= taken - 1) {
    const int id = lk_ctz64(taken);
    s->score = _mm512_mask_mov_ps(s->score, (__mmask16)(1u << i), _mm512_set1_ps(s->sel[id]));
    s->id = _mm512_mask_set1_epi32(s->id, (__mmask16)(1u << i), id);
  }
  s->chosen = (__mmask16)((1u << k) - 1u);
}

/* (a, b) = the best and second best of (a, b) and (a2, b2), lane by lane (b <= a in each). */
static LK_INLINE void moe_top2_merge(__m512 *a, __m512 *b, __m512 a2, __m512 b2) {
  *b = _mm512_max_ps(_mm512_min_ps(*a, a2), _mm512_max_ps(*b, b2));
  *a = _mm512_max_ps(*a, a2);
}

/* Grouped selection for 8 groups of 32 experts (DeepSeek-V3's 256 in 8): the kept groups' vectors
 * (bit per vector), and, where k <= 2 * topk_groups, a threshold for stage 2: the least second
 * best of a kept group. The kept groups' best two are 2 * topk_groups experts scoring at least
 * that, so every expert of the top k does. It lets through 10.7 candidates on average for
 * DeepSeek-V3's k = 8 (stage 1's lane maxima about 10), and more than 16 for 2-4 % of random rows,
 * which then run stage 1 after all; stage 1 itself (16 maxima ranked) is a fifth of a token.
 * Each group's best two come from a packing tree: a group's two vectors give a best and a second
 * best per lane (max, min); then pairs of groups share registers as halves, quarters, pairs of
 * lanes and lanes, merged level by level (moe_top2_merge), each level shuffling half the data of
 * the one before: 30 shuffles and 64 max/min in all, where moe_keep_groups_ranked's transpose
 * alone takes 64 shuffles. NaN is not expected: the caller declines rows with a NaN score. */
static LK_INLINE void moe_keep_groups_tree8(const float *sel, int64_t topk_groups, bool two, bool want_threshold, uint64_t *keep,
                                            __m512 *threshold) {
  __m512 a[8], b[8];
  for (int g = 0; g < 8; g++) {
    const __m512 v0 = _mm512_loadu_ps(sel + 32 * g), v1 = _mm512_loadu_ps(sel + 32 * g + 16);
    a[g] = _mm512_max_ps(v0, v1);
    b[g] = _mm512_min_ps(v0, v1);
  }
  /* halves: register i holds group 2i in lanes 0-7 and group 2i + 1 in lanes 8-15 */
  for (int i = 0; i < 4; i++) {
    const __m512 hi_a = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xee), hi_b = _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xee);
    a[i] = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44);
    b[i] = _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x44);
    moe_top2_merge(&a[i], &b[i], hi_a, hi_b);
  }
  /* quarters: register i holds group 4i + q in its 128-bit quarter q */
  for (int i = 0; i < 2; i++) {
    const __m512 odd_a = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xdd), odd_b = _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xdd);
    a[i] = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88);
    b[i] = _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88);
    moe_top2_merge(&a[i], &b[i], odd_a, odd_b);
  }
  /* pairs of lanes: quarter q holds group q in lanes 0-1 and group q + 4 in lanes 2-3 */
  __m512 top = _mm512_shuffle_ps(a[0], a[1], 0x44), second = _mm512_shuffle_ps(b[0], b[1], 0x44);
  moe_top2_merge(&top, &second, _mm512_shuffle_ps(a[0], a[1], 0xee), _mm512_shuffle_ps(b[0], b[1], 0xee));
  /* lanes: group q's best two in lanes 4q and 4q + 1, group q + 4's in lanes 4q + 2 and 4q + 3 */
  moe_top2_merge(&top, &second, _mm512_permute_ps(top, 0xb1), _mm512_permute_ps(second, 0xb1));
  /* in group order in lanes 0-7 (lanes 8-15 repeat them: moe_rank8_within ranks each half alone) */
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 4, 8, 12, 2, 6, 10, 14);
  const __m512 score = _mm512_permutexvar_ps(order, two ? _mm512_add_ps(top, second) : top);
  /* ranked without ties first (one compare a rotation, where the order among equals takes two and a
   * mask constant each): equal scores share a rank, so more than topk_groups kept means a tie at
   * the boundary, which the lower group wins */
  const __m512i topk = _mm512_set1_epi32((int)topk_groups);
  __mmask16 kept = _mm512_cmplt_epi32_mask(moe_rank8_within(score, 7, false), topk) & 0xff;
  if (lk_popcount32(kept) != topk_groups) kept = _mm512_cmplt_epi32_mask(moe_rank8_within(score, 7, true), topk) & 0xff;
  if (want_threshold) *threshold = _mm512_set1_ps(_mm512_mask_reduce_min_ps(kept, _mm512_permutexvar_ps(order, second)));
  uint64_t bits = kept; /* group g's bit to vectors 2g and 2g + 1 */
  bits = (bits | bits << 4) & 0x0f0f;
  bits = (bits | bits << 2) & 0x3333;
  bits = (bits | bits << 1) & 0x5555;
  *keep = bits | bits << 1;
}

/* Grouped selection for rows of at most 256 experts in groups of 16, 32, 64, 128 or 256: which
 * vectors the topk_groups best groups cover (bit per vector), or false where this does not apply.
 * The row's vectors are transposed so that lane v of the columns holds vector v's experts; a
 * running top two per lane over the columns, then butterflies merging the lanes of a group, give
 * every group's best two at once (about 120 instructions for DeepSeek-V3's 8 groups of 32, where
 * one argmax pass per group and pick costs about that each). The group scores (best two summed
 * with a bias, else the best) are ranked like experts: ties to the lower group. */
static LK_INLINE bool moe_keep_groups_ranked(const float *sel, int64_t n, int64_t groups, int64_t topk_groups, bool two,
                                             uint64_t *keep) {
  const int64_t vectors = n / 16, per_group = vectors / groups;
  if (n > 256 || n % (16 * groups) != 0 || (per_group & (per_group - 1)) != 0) return false;
  __m512 col[16];
  for (int64_t v = 0; v < 16; v++) col[v] = v < vectors ? _mm512_loadu_ps(sel + 16 * v) : _mm512_set1_ps(-INFINITY);
  lk_v_transpose(col);
  __m512 b1 = _mm512_set1_ps(-INFINITY), b2 = b1;
  for (int j = 0; j < 16; j++) {
    b2 = _mm512_max_ps(b2, _mm512_min_ps(b1, col[j]));
    b1 = _mm512_max_ps(b1, col[j]);
  }
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t step = 1; step < per_group; step <<= 1) {
    const __m512i partner = _mm512_xor_si512(lane, _mm512_set1_epi32((int)step));
    const __m512 p1 = _mm512_permutexvar_ps(partner, b1), p2 = _mm512_permutexvar_ps(partner, b2);
    b2 = _mm512_max_ps(_mm512_min_ps(b1, p1), _mm512_max_ps(b2, p2));
    b1 = _mm512_max_ps(b1, p1);
  }
  const __m512 score = two ? _mm512_add_ps(b1, b2) : b1;
  __mmask16 firsts = 0;
  for (int64_t g = 0; g < groups; g++) firsts |= (__mmask16)(1u << (g * per_group));
  const __m512 group_score = _mm512_mask_compress_ps(_mm512_set1_ps(-INFINITY), firsts, score);
  const __m512i group_rank = groups <= 8 ? moe_rank8_within(group_score, 7, true) : moe_rank16(group_score);
  const __mmask16 kept = _mm512_cmplt_epi32_mask(group_rank, _mm512_set1_epi32((int)topk_groups));
  uint64_t bits = 0; /* without a branch on the data: a kept pattern is a coin toss per group */
  for (int64_t g = 0; g < groups; g++) bits |= (0 - (uint64_t)(kept >> g & 1)) & (((1ull << per_group) - 1) << (g * per_group));
  *keep = bits;
  return true;
}

/* 2^(j/32), j = 0 .. 31, rounded to f32: moe_sigmoid_select's table, two registers. */
static const float moe_exp2_32nds[32] = {
    0x1.000000p+0f, 0x1.059b0ep+0f, 0x1.0b5586p+0f, 0x1.11301ep+0f, 0x1.172b84p+0f, 0x1.1d4874p+0f, 0x1.2387a6p+0f, 0x1.29e9e0p+0f,
    0x1.306fe0p+0f, 0x1.371a74p+0f, 0x1.3dea64p+0f, 0x1.44e086p+0f, 0x1.4bfdaep+0f, 0x1.5342b6p+0f, 0x1.5ab07ep+0f, 0x1.6247ecp+0f,
    0x1.6a09e6p+0f, 0x1.71f75ep+0f, 0x1.7a1148p+0f, 0x1.82589ap+0f, 0x1.8ace54p+0f, 0x1.93737cp+0f, 0x1.9c4918p+0f, 0x1.a5503cp+0f,
    0x1.ae89fap+0f, 0x1.b7f770p+0f, 0x1.c199bep+0f, 0x1.cb720ep+0f, 0x1.d5818ep+0f, 0x1.dfc974p+0f, 0x1.ea4afap+0f, 0x1.f50766p+0f};

/* 2^y, y a number or NaN, from m = y rounded to 1/32 plus 1.5 * 2^18 (whose ulp is 1/32) and
 * g = y - (m - 1.5 * 2^18) (|g| <= 1/64, taken by the caller from an exact product by an fma):
 * 2^y = 2^floor(h) * 2^frac(h) * 2^g, h = m - 1.5 * 2^18. The middle factor comes from a 32-entry
 * table held in two registers (vpermt2ps reads the low 5 bits of m, which are 32 frac(h)), 2^g
 * from a quadratic (Taylor's, its linear term nudged by Chebyshev's T3: 5e-8 relative), and the
 * first from vscalefps, which floors h. Normal for y in [-126, 127]. */
static LK_INLINE __m512 moe_exp2_split(__m512 m, __m512 h, __m512 g) {
  const __m512 t = _mm512_permutex2var_ps(_mm512_loadu_ps(moe_exp2_32nds), _mm512_castps_si512(m), _mm512_loadu_ps(moe_exp2_32nds + 16));
  const __m512 q = _mm512_mul_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.ebfbe0p-3f), g, _mm512_set1_ps(0x1.62e584p-1f)), g);
  return _mm512_scalef_ps(_mm512_fmadd_ps(q, t, t), h);
}

#define MOE_LOG2E_F32 0x1.715476p+0f
#define MOE_ROUND_32NDS 0x1.8p18f /* 1.5 * 2^18: adding it rounds to a multiple of 1/32 */

/* e^d for softmax's sum (d = logit - max <= 0, or NaN): d clamped at -87, below which it adds
 * nothing to a sum that holds 1 (and 2^y stays normal: no microcode assists). 8 instructions and
 * a subtraction by the caller, against 12 for the textbook form (two-part ln2 reduction, degree-5
 * polynomial) and lk_v_exp's 16; the chosen weights' own exps use lk_v_exp. Within 4.5e-7
 * relative for d >= -20, where the terms that count are. NaN stays NaN (vmaxps returns its
 * second operand when either is NaN). */
static LK_INLINE __m512 moe_exp_for_sum(__m512 d) {
  const __m512 log2e = _mm512_set1_ps(MOE_LOG2E_F32), magic = _mm512_set1_ps(MOE_ROUND_32NDS);
  const __m512 x = _mm512_max_ps(_mm512_set1_ps(-87.0f), d);
  const __m512 m = _mm512_fmadd_ps(x, log2e, magic); /* magic + y, rounded to 1/32 */
  const __m512 h = _mm512_sub_ps(m, magic);
  return moe_exp2_split(m, h, _mm512_fmsub_ps(x, log2e, h));
}

/* sigmoid(x) for DeepSeek-V3's scores, 1 / (1 + 2^y) with y = -x log2(e) (moe_exp2_split), and
 * the reciprocal an estimate with one Newton step (a 512-bit vdivps would cost more than the
 * rest): 12 instructions, 13 issue slots (the estimate takes two), where the textbook form
 * (negate, clamp, two-part ln2 reduction, degree-5 polynomial) takes 19. The 256 sigmoids are
 * 40 % of a DeepSeek-V3 token, so each slot here is 2 %.
 * Within 4.5e-7 relative of the exact value for |x| <= 20 and 1.4e-6 out to |x| = 87 (log2(e)
 * rounded to f32 is the most of it), against the 1e-5 the weights are held to.
 * No clamp: below x = -88.7 (2^y past f32's range) the result is NaN, as it is for NaN and for
 * |x| of 2^17 and more, and the caller sends the row to the general kernel; from -88.7 to -87 it
 * is subnormal or 0, which stage 4 declines likewise (it takes no sigmoid below 2e-38). Above
 * x = 87 it is 1, exactly as in f32. */
static LK_INLINE __m512 moe_sigmoid_select(__m512 x) {
  const __m512 log2e = _mm512_set1_ps(MOE_LOG2E_F32), magic = _mm512_set1_ps(MOE_ROUND_32NDS);
  const __m512 m = _mm512_fnmadd_ps(x, log2e, magic); /* magic + y, rounded to 1/32 */
  const __m512 h = _mm512_sub_ps(m, magic);
  const __m512 d = _mm512_add_ps(moe_exp2_split(m, h, _mm512_fnmsub_ps(x, log2e, h)), _mm512_set1_ps(1.0f));
  const __m512 e = _mm512_rcp14_ps(d);
  return _mm512_fmadd_ps(_mm512_fnmadd_ps(d, e, _mm512_set1_ps(1.0f)), e, e);
}

/* DeepSeek-V3's selection scores, sigmoid(x) + bias, for logits in whole vectors, and the sigmoids
 * themselves (the weights of the chosen) into p where it is not NULL; whether any score is NaN
 * (found by a sum, which NaN reaches: a compare into a mask would take the shuffle port): a NaN
 * logit or one out of moe_sigmoid_select's range. The bias is finite (moe_job.bias_finite). */
static LK_INLINE bool moe_fill_sigmoid_bias(const void *x, lk_dtype dtype, const float *bias, int64_t n, float *sel, float *p) {
  __m512 any = _mm512_setzero_ps();
  for (int64_t e = 0; e < n; e += 16) {
    const __m512 sigmoid = moe_sigmoid_select(lk_v_load(x, e, dtype));
    const __m512 s = _mm512_add_ps(sigmoid, _mm512_loadu_ps(bias + e));
    any = _mm512_add_ps(any, s); /* NaN from a NaN */
    _mm512_storeu_ps(sel + e, s);
    if (p) _mm512_storeu_ps(p + e, sigmoid);
  }
  return _mm512_cmp_ps_mask(any, any, _CMP_UNORD_Q) != 0;
}

/* Stage 0: the token's selection scores and which of them take part. Without a correction bias the
 * logits themselves are ranked: f32 in place, f16 and bf16 widened into the buffer; with one, the
 * scores are filled into the buffer (score + bias). Declines (ok false) rows with NaN selection
 * scores (the general kernel's insertion list). */
static LK_INLINE void moe_stage_begin(const moe_job *job, int64_t t, float *buffer, moe_ranked *s) {
  const lk_moe_gating_params *p = &job->p;
  const int64_t n = p->num_experts;
  s->row = (moe_vrow){(const char *)p->logits + t * p->logits_stride * (int64_t)lk_dtype_size(p->dtype), p->correction_bias,
                      p->dtype, p->scoring, _mm512_setzero_ps(), _mm512_set1_ps(1.0f)};
  s->by_logit = !s->row.bias;
  s->sigmoid = NULL;
  s->sel = (const float *)s->row.logits;
  if (s->by_logit && p->dtype != LK_DTYPE_F32) { /* f16 and bf16 widen to f32 exactly: ranked as the logits */
    for (int64_t e = 0; e < n; e += 16) _mm512_storeu_ps(buffer + e, lk_v_load(s->row.logits, e, p->dtype));
    s->sel = buffer;
  }
  s->masked = job->groups > 1;
  s->keep = ~0ull;
  s->ok = true;
  s->summed = false;
  s->thresholded = false;
  if (!s->by_logit) {
    if (p->scoring == LK_MOE_SOFTMAX_TOPK && s->row.bias) moe_softmax_stats_avx512(&s->row, n); /* p + bias */
    /* the sigmoids kept beside the scores where the buffer has room: the chosen's weights */
    s->sigmoid = p->scoring == LK_MOE_SIGMOID && n <= MOE_ROW_MAX / 2 ? buffer + MOE_ROW_MAX / 2 + 16 : NULL;
    const bool nan = p->scoring == LK_MOE_SIGMOID ? moe_fill_sigmoid_bias(s->row.logits, p->dtype, s->row.bias, n, buffer, s->sigmoid)
                                                  : moe_fill_avx512(&s->row, n, buffer);
    s->sel = buffer;
    s->ok = !nan;
  }
}

/* Stage 0b: grouped selection's kept groups, and the list of their vectors. */
static LK_INLINE void moe_stage_groups(const moe_job *job, moe_ranked *s) {
  const lk_moe_gating_params *p = &job->p;
  if (p->num_experts == 256 && job->groups == 8) {
    s->thresholded = p->top_k <= 2 * p->topk_groups;
    moe_keep_groups_tree8(s->sel, p->topk_groups, s->row.bias != NULL, s->thresholded, &s->keep, &s->threshold);
  } else {
    s->ok = moe_keep_groups_ranked(s->sel, p->num_experts, job->groups, p->topk_groups, s->row.bias != NULL, &s->keep);
  }
  s->kept_n = 0;
  for (uint64_t bits = s->keep; bits; bits &= bits - 1) s->kept[s->kept_n++] = (uint8_t)lk_ctz64(bits);
}

/* Stage 3b: softmax's max and 1 / sum over the row, for SOFTMAX_TOPK ranked in place without
 * groups: the top logit is the row's maximum, known from stage 1. Run between the selection's
 * stages, its exps fill the time their dependent chains leave the core idle. */
static LK_INLINE void moe_stage_sum(const moe_job *job, moe_ranked *s) {
  const int64_t n = job->p.num_experts;
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(s->lane_max));
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  int64_t e = 0;
  for (; e + 32 <= n; e += 32) { /* a NaN or +inf logit makes the sum NaN, as the formula does */
    s0 = _mm512_add_ps(s0, moe_exp_for_sum(_mm512_sub_ps(_mm512_loadu_ps(s->sel + e), max)));
    s1 = _mm512_add_ps(s1, moe_exp_for_sum(_mm512_sub_ps(_mm512_loadu_ps(s->sel + e + 16), max)));
  }
  if (e < n) s0 = _mm512_add_ps(s0, moe_exp_for_sum(_mm512_sub_ps(_mm512_loadu_ps(s->sel + e), max)));
  s->row.max = max;
  s->row.inv_sum = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)));
  s->summed = true;
}

/* The end of stage 4: renormalisation and scaling; NaN weights (a NaN or +inf logit under softmax)
 * or a negative scale have no order in compares: the general kernel, with moe_finish's total
 * order, does those rows. */
static LK_INLINE void moe_stage_weights_finish(const moe_job *job, moe_ranked *s) {
  const lk_moe_gating_params *p = &job->p;
  __m512 w = s->w;
  /* times 1 / sum: a 512-bit vdivps takes its port for 10 cycles or more */
  if (p->flags & LK_MOE_RENORMALIZE) w = _mm512_mul_ps(w, _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(w)));
  if (p->routed_scaling_factor != 0.0f) w = _mm512_mul_ps(w, _mm512_set1_ps(p->routed_scaling_factor));
  s->w = w;
  s->ok = !_mm512_mask_cmp_ps_mask(s->chosen, w, w, _CMP_UNORD_Q) && p->routed_scaling_factor >= 0.0f;
}

/* Stage 4: the chosen experts' weights, by the general kernel's formulas with the same vector exp
 * and sigmoid (sums reduced as trees, so the last bits may differ from it). Only the chosen lanes
 * are computed on, the others as 0: exp of -inf padding would be a subnormal, whose microcode
 * assist costs more than the whole token. */
static LK_INLINE void moe_stage_weights(const moe_job *job, moe_ranked *s) {
  const lk_moe_gating_params *p = &job->p;
  const int64_t n = p->num_experts;
  if (s->sigmoid) { /* the weights are the chosen's sigmoids, already computed */
    s->w = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), s->chosen, s->id, s->sigmoid, 4);
    /* a saturated one (a logit below -87) is the clamp's 1.6e-38, not the formula's subnormal or
     * 0: the general kernel does that token */
    const bool saturated = _mm512_mask_cmp_ps_mask(s->chosen, s->w, _mm512_set1_ps(2e-38f), _CMP_LT_OQ) != 0;
    moe_stage_weights_finish(job, s);
    if (saturated) s->ok = false;
    return;
  }
  __m512 x; /* the chosen experts' logits */
  if (s->by_logit) {
    x = _mm512_maskz_mov_ps(s->chosen, s->score);
  } else if (p->dtype == LK_DTYPE_F32) {
    x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), s->chosen, s->id, s->row.logits, 4);
  } else {
    float logit[16];
    int32_t id[16];
    _mm512_storeu_si512((void *)id, s->id);
    for (int i = 0; i < 16; i++) logit[i] = s->chosen >> i & 1 ? lk_load_element(s->row.logits, id[i], p->dtype) : 0.0f;
    x = _mm512_loadu_ps(logit);
  }
  __m512 w;
  switch (p->scoring) {
  case LK_MOE_SOFTMAX_TOPK:
    if (!s->row.bias && !s->summed) moe_softmax_stats_avx512(&s->row, n);
    w = _mm512_maskz_mul_ps(s->chosen, lk_v_exp(_mm512_maskz_sub_ps(s->chosen, x, s->row.max)), s->row.inv_sum);
    break;
  case LK_MOE_TOPK_SOFTMAX: {
    const __m512 max = _mm512_set1_ps(_mm512_mask_reduce_max_ps(s->chosen, x));
    const __m512 ex = _mm512_maskz_mov_ps(s->chosen, lk_v_exp(_mm512_maskz_sub_ps(s->chosen, x, max)));
    w = _mm512_div_ps(ex, _mm512_set1_ps(_mm512_reduce_add_ps(ex)));
    break;
  }
  default: w = _mm512_maskz_mov_ps(s->chosen, lk_v_sigmoid(x)); break;
  }
  s->w = w;
  moe_stage_weights_finish(job, s);
}

/* The first k <= 8 lanes of w (weights, numbers >= +0, or all -0) and id, sorted by descending
 * weight, ties to the lower id, stored: each lane a 64-bit key, the weight's bits above the id's
 * complement, which as signed integers order exactly so; a bitonic network (6 steps of a swap, a
 * max, a min and a blend) sorts the 8 keys in one register; the weights and ids are then the keys'
 * halves. About 30 instructions, where ranking the weights (7 rotations, two compares each) and
 * scattering both outputs take about 60. */
static LK_INLINE void moe_store_sorted8(__m512 w, __m512i id, int64_t k, float *weights, int32_t *ids) {
  const __m512i index = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  __m512i key = _mm512_permutex2var_epi32(_mm512_xor_si512(id, _mm512_set1_epi32(-1)), index, _mm512_castps_si512(w));
  key = _mm512_mask_mov_epi64(_mm512_set1_epi64(INT64_MIN), (__mmask8)((1u << k) - 1u), key); /* past k: last */
  /* step (block, distance): lane i meets lane i ^ distance; it keeps the larger where its block
   * (i & block) runs descending and it is the lower lane, or ascending and the upper one */
#define LK_MOE_BITONIC_STEP(partner, takes_max)                                                                       \
  do {                                                                                                                \
    const __m512i other = (partner);                                                                                  \
    key = _mm512_mask_blend_epi64((__mmask8)(takes_max), _mm512_min_epi64(key, other), _mm512_max_epi64(key, other)); \
  } while (0)
  LK_MOE_BITONIC_STEP(_mm512_permutex_epi64(key, 0xb1), 0x99);     /* blocks of 2 */
  LK_MOE_BITONIC_STEP(_mm512_permutex_epi64(key, 0x4e), 0xc3);     /* blocks of 4 */
  LK_MOE_BITONIC_STEP(_mm512_permutex_epi64(key, 0xb1), 0xa5);
  LK_MOE_BITONIC_STEP(_mm512_shuffle_i64x2(key, key, 0x4e), 0x0f); /* all 8, descending */
  LK_MOE_BITONIC_STEP(_mm512_permutex_epi64(key, 0x4e), 0x33);
  LK_MOE_BITONIC_STEP(_mm512_permutex_epi64(key, 0xb1), 0x55);
#undef LK_MOE_BITONIC_STEP
  /* the weights (high halves) to lanes 0-7, the ids' complements (low halves) to lanes 8-15 */
  const __m512i halves = _mm512_permutexvar_epi32(_mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14), key);
  const __mmask8 first = (__mmask8)((1u << k) - 1u);
  _mm256_mask_storeu_ps(weights, first, _mm256_castsi256_ps(_mm512_castsi512_si256(halves)));
  _mm256_mask_storeu_epi32(ids, first, _mm256_xor_si256(_mm512_extracti64x4_epi64(halves, 1), _mm256_set1_epi32(-1)));
}

/* Stage 5: the outputs in weight order, ties to the lower id. For k <= 8 the chosen are compressed
 * into the first k lanes and sorted there (moe_store_sorted8); past that, the candidates being in
 * id order, the two-compare rank of the chosen ones' weights gives each one's place. */
static LK_INLINE void moe_stage_store(const moe_job *job, int64_t t, const moe_ranked *s) {
  const int64_t k = job->p.top_k;
  float *weights = job->p.weights + t * k;
  int32_t *ids = job->p.expert_ids + t * k;
  if (k <= 8) {
    moe_store_sorted8(_mm512_maskz_compress_ps(s->chosen, s->w), _mm512_maskz_compress_epi32(s->chosen, s->id), k, weights, ids);
    return;
  }
  const __m512 w = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), s->chosen, s->w);
  const __m512i order = moe_rank16(w);
  _mm512_mask_i32scatter_ps(weights, s->chosen, order, w, 4);
  _mm512_mask_i32scatter_epi32(ids, s->chosen, order, s->id, 4);
}

/* Whether the ranked kernel takes this job's tokens: k <= 16, whole vectors of experts, at most
 * 4096 of them (1024 ungrouped), and a finite correction bias if any (else the general kernel's
 * NaN-last order decides among NaN scores). Grouped shapes that moe_keep_groups_ranked does not
 * take decline token by token. */
static LK_INLINE bool moe_ranked_applies(const moe_job *job) {
  const int64_t n = job->p.num_experts;
  return job->p.top_k <= 16 && n % 16 == 0 && n <= MOE_ROW_MAX && (job->groups > 1 || n / 16 <= 64) && job->bias_finite;
}

/* Two tokens (t[1] may be t[0] again) between the front and the back stages. */
typedef struct moe_pair {
  int64_t t[2];
  moe_ranked s[2];
} moe_pair;

#define LK_MOE_EACH for (int u = 0; u < 2; u++)

/* Whether short rows with few picks (ungrouped, at most 64 experts, k <= 4) take moe_stage_small
 * in place of stages 1-3. */
static LK_INLINE bool moe_takes_small(const moe_job *job) {
  return job->groups == 1 && job->p.num_experts <= 64 && job->p.top_k <= 4;
}

/* The stages up to the candidates, for both tokens of a pair: each stage runs for both before the
 * next, since one token is a chain of dependent reductions, ranks and memory round trips, and two
 * independent chains side by side keep the core busy where one leaves it waiting. */
static LK_INLINE void moe_tokens_front(const moe_job *job, moe_pair *q, float *const buffer[2]) {
  const lk_moe_gating_params *p = &job->p;
  const int64_t n = p->num_experts, k = p->top_k;
  moe_ranked *s = q->s;
#pragma GCC unroll 2
  LK_MOE_EACH moe_stage_begin(job, q->t[u], buffer[u], &s[u]);
  if (job->groups > 1) {
#pragma GCC unroll 2
    LK_MOE_EACH if (s[u].ok) moe_stage_groups(job, &s[u]);
  }
  const bool sum = p->scoring == LK_MOE_SOFTMAX_TOPK && s[0].by_logit && job->groups == 1;
  if (moe_takes_small(job)) {
#pragma GCC unroll 2
    LK_MOE_EACH if (s[u].ok) moe_stage_small(&s[u], n, k);
#pragma GCC unroll 2
    LK_MOE_EACH if (s[u].ok && sum) moe_stage_sum(job, &s[u]);
    return;
  }
#pragma GCC unroll 2
  LK_MOE_EACH if (s[u].ok && !s[u].thresholded) moe_stage_threshold(&s[u], n, k);
#pragma GCC unroll 2
  LK_MOE_EACH if (s[u].ok && sum) moe_stage_sum(job, &s[u]);
#pragma GCC unroll 2
  LK_MOE_EACH if (s[u].ok) {
    moe_stage_candidates(&s[u], n, k);
    if (!s[u].ok && s[u].thresholded) { /* more than 16 above the groups' threshold: stage 1's */
      s[u].ok = true;
      moe_stage_threshold(&s[u], n, k);
      moe_stage_candidates(&s[u], n, k);
    }
  }
}

/* The stages from the ranks on, for both tokens of a pair whose front stages ran; done[u]: token
 * t[u] is written; where not, nothing of it was, and the general kernel (moe_token_avx512) does it. */
static LK_INLINE void moe_tokens_back(const moe_job *job, moe_pair *q, bool done[2]) {
  const lk_moe_gating_params *p = &job->p;
  moe_ranked *s = q->s;
  if (!moe_takes_small(job)) {
#pragma GCC unroll 2
    LK_MOE_EACH if (s[u].ok) moe_stage_rank(&s[u], p->top_k);
  }
#pragma GCC unroll 2
  LK_MOE_EACH if (s[u].ok) moe_stage_weights(job, &s[u]);
#pragma GCC unroll 2
  LK_MOE_EACH {
    if (s[u].ok) moe_stage_store(job, q->t[u], &s[u]);
    done[u] = s[u].ok;
  }
}

#undef LK_MOE_EACH

#endif /* LK_MOE_SELECT_AVX512_H */
