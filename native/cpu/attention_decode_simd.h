/* The decode kernel over a SIMD mapping (included by attention_avx2.c and attention_avx512.c after
 * their mapping header); the plan and why are in attention_decode.h.
 *
 * One unit: one sequence's rows against its keys [begin, end) of one split. Per tile of 16 keys
 * and per kv head, with n = tokens x group query rows ("lanes") of that head:
 *   scores  dot products along head_dim, PV_MR lanes at a time against each K row (widened once
 *           per lane group), the per-key partial vectors reduced 16 (AVX-512) or 8 (AVX2) at a
 *           time into one vector of key scores by lk_v_hsum_lanes: no per-key horizontal sum;
 *   softmax per lane on its vector of 16 scores (scale, softcap, ALiBi, bias, mask, online max);
 *   PV      PV_MR lanes x PV_VC vectors of head_dim accumulated over the tile's V rows.
 * The next tile's K and V rows are prefetched into L2 while this one computes. Keys a lane does
 * not see get probability 0 and, for a lane with any such key in the tile, its V rows are
 * accumulated key by key skipping them, so a non-finite V value reaches only the rows that see it
 * (as in the tiled kernel). On CPUs with AVX512_BF16, bf16 scores use vdpbf16ps
 * (attention_decode_avx512bf16.c). */
#include "attention_decode.h"
#include "simd_dtype.h"
#include "simd_math.h"
#if defined(LK_DECODE_AMX)
#  include "attention_decode_amx.h"
#endif

#include <float.h>

#define VL LK_VEC_LANES
#define DTILE LK_DECODE_TILE_KEYS
#define DLANES LK_DECODE_MAX_LANES
#if LK_VEC_LANES == 16
#  define DPV_VC 4
#else
#  define DPV_VC 2
#endif
#define DPV_MR 4

typedef struct decode_scratch {
  float *q, *o;                   /* [rows][padded_dim] */
  float *m, *nan, *alpha;         /* [rows]: the online softmax */
  float *lsum;                    /* [rows][VL]: its running sum, in VL partial sums */
  float *lo, *hi, *pos, *slope;   /* [rows]: visible keys, position, ALiBi slope */
  float *red;                     /* [DLANES][DTILE][VL]: per-key partial dot products */
  float *tail;                    /* [DLANES][DTILE]: the head_dim % VL tail of each dot product */
  float *p;                       /* [DLANES][DTILE]: probabilities */
  uint16_t *qb;                   /* [rows][padded_dim]: bf16 queries as given, for vdpbf16ps */
  float *sbuf;                    /* [2][DTILE][16]: AMX's scores tiles, two kv heads in flight */
  uint16_t *stage;                /* [DTILE][head_dim]: K rows staged for AMX */
  uint32_t *qt;                   /* AMX's Qᵀ tiles of every kv head (lk_amx_q_tile) */
  bool guard[DLANES];
} decode_scratch;

static LK_INLINE decode_scratch LK_ISA_SUFFIX(decode_scratch_at)(void *base, int64_t rows, int64_t dp) {
  decode_scratch t;
  float *f = (float *)base;
  t.q = f;
  f += rows * dp;
  t.o = f;
  f += rows * dp;
  t.m = f;
  t.nan = f + rows;
  t.alpha = f + 2 * rows;
  t.lo = f + 3 * rows;
  t.hi = f + 4 * rows;
  t.pos = f + 5 * rows;
  t.slope = f + 6 * rows;
  f += 7 * rows;
  t.lsum = f;
  f += rows * VL;
  t.qb = (uint16_t *)f;
  f += (rows * dp + 1) / 2;
  t.red = f;
  f += DLANES * DTILE * VL;
  t.tail = f;
  f += DLANES * DTILE;
  t.p = f;
  f += DLANES * DTILE;
  t.sbuf = f; /* AMX only: the plan counted these (attention_decode.c) */
  f += 2 * DTILE * 16;
  t.stage = (uint16_t *)f;
  f += DTILE * LK_ATTENTION_MAX_HEAD_DIM / 2;
  t.qt = (uint32_t *)f;
  return t;
}

/* red[lane][jj] = the VL partial sums of dot(q[lane], K[jj]) for PV_MR lanes (rows `rows[r]`). */
static LK_INLINE void LK_ISA_SUFFIX(decode_dots)(const decode_scratch *t, const int64_t *rows, int64_t lane0, int nr,
                                                 const void *k, int64_t d, int64_t dp, int64_t jj, lk_dtype dtype) {
#if defined(LK_DECODE_DPBF16)
  /* bf16 keys and queries, products exact in f32, pairs summed into f32 accumulators: the same
   * arithmetic as widening both and using FMAs, but 32 products per instruction and no widening. */
  if (dtype == LK_DTYPE_BF16 && d % 32 == 0) {
    __m512 acc_bf[DPV_MR];
#  pragma GCC unroll 4
    for (int r = 0; r < DPV_MR; r++) acc_bf[r] = _mm512_setzero_ps();
    for (int64_t e = 0; e < d; e += 32) {
      const __m512bh kv = (__m512bh)_mm512_loadu_si512((const uint16_t *)k + e);
#  pragma GCC unroll 4
      for (int r = 0; r < DPV_MR; r++)
        if (r < nr)
          acc_bf[r] = _mm512_dpbf16_ps(acc_bf[r], (__m512bh)_mm512_loadu_si512(t->qb + rows[r] * dp + e), kv);
    }
#  pragma GCC unroll 4
    for (int r = 0; r < DPV_MR; r++) {
      if (r >= nr) continue;
      lk_v_store_f32(t->red + ((lane0 + r) * DTILE + jj) * VL, acc_bf[r]);
      t->tail[(lane0 + r) * DTILE + jj] = 0.0f;
    }
    return;
  }
#endif
  const int64_t dv = d / VL * VL;
  lk_vf acc[DPV_MR];
  const float *q[DPV_MR];
#pragma GCC unroll 4
  for (int r = 0; r < DPV_MR; r++) {
    acc[r] = lk_v_zero();
    q[r] = t->q + rows[r < nr ? r : 0] * dp;
  }
  for (int64_t e = 0; e < dv; e += VL) {
    const lk_vf kv = lk_v_load(k, e, dtype);
#pragma GCC unroll 4
    for (int r = 0; r < DPV_MR; r++)
      if (r < nr) acc[r] = lk_v_fmadd(lk_v_load_f32(q[r] + e), kv, acc[r]);
  }
#pragma GCC unroll 4
  for (int r = 0; r < DPV_MR; r++) {
    if (r >= nr) continue;
    lk_v_store_f32(t->red + ((lane0 + r) * DTILE + jj) * VL, acc[r]);
    float tail = 0.0f;
    for (int64_t e = dv; e < d; e++) tail += q[r][e] * lk_load_element(k, e, dtype);
    t->tail[(lane0 + r) * DTILE + jj] = tail;
  }
}

/* vc vectors of a V row from element e into x: as they are, or for bf16 rows in `pairs` order (the
 * even elements of 2 VL, then the odd ones: lk_v_load_bf16_pairs widens them with a shift and a
 * mask, where the one-vector widening queues a shuffle on port 5 per vector; vc is even). */
static LK_INLINE void LK_ISA_SUFFIX(decode_load_v)(lk_vf *x, const char *v, int64_t e, int vc, lk_dtype dtype, bool pairs) {
  if (pairs) {
#pragma GCC unroll 4
    for (int c = 0; c + 1 < DPV_VC; c += 2)
      if (c < vc) {
        const lk_vf2 w = lk_v_load_bf16_pairs((const uint16_t *)v + e + c * VL);
        x[c] = w.even;
        x[c + 1] = w.odd;
      }
    return;
  }
#pragma GCC unroll 4
  for (int c = 0; c < DPV_VC; c++)
    if (c < vc) x[c] = lk_v_load(v, e + c * VL, dtype);
}

/* o[rows] = o * alpha + sum_jj p[lane][jj] V[jj] over vc vectors at element e, for PV_MR lanes. */
static LK_INLINE void LK_ISA_SUFFIX(decode_pv)(const decode_scratch *t, const int64_t *rows, int64_t lane0, int nr,
                                               const char *const *v, int64_t bk, int64_t e, int vc, int64_t dp,
                                               lk_dtype dtype, bool pairs, const char *const *prefetch) {
  const int64_t size = (int64_t)lk_dtype_size(dtype), first = e * size, last = (e + vc * VL) * size;
  lk_vf acc[DPV_MR][DPV_VC];
  float *o[DPV_MR];
#pragma GCC unroll 4
  for (int r = 0; r < DPV_MR; r++) {
    o[r] = t->o + rows[r < nr ? r : 0] * dp + e;
    const lk_vf a = lk_v_set1(t->alpha[rows[r < nr ? r : 0]]);
#pragma GCC unroll 4
    for (int c = 0; c < DPV_VC; c++)
      acc[r][c] = c < vc && r < nr ? lk_v_mul(lk_v_load_f32(o[r] + c * VL), a) : lk_v_zero();
  }
  for (int64_t jj = 0; jj < bk; jj++) {
    if (prefetch[jj]) /* the same columns of the next tile's V row: see decode_next_row */
      for (int64_t line = first; line < last; line += 64) _mm_prefetch(prefetch[jj] + line, _MM_HINT_T2);
    lk_vf x[DPV_VC];
    LK_ISA_SUFFIX(decode_load_v)(x, v[jj], e, vc, dtype, pairs);
#pragma GCC unroll 4
    for (int r = 0; r < DPV_MR; r++) {
      if (r >= nr) continue;
      const lk_vf w = lk_v_set1(t->p[(lane0 + r) * DTILE + jj]);
#pragma GCC unroll 4
      for (int c = 0; c < DPV_VC; c++)
        if (c < vc) acc[r][c] = lk_v_fmadd(w, x[c], acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < DPV_MR; r++)
#pragma GCC unroll 4
    for (int c = 0; c < DPV_VC; c++)
      if (c < vc && r < nr) lk_v_store_f32(o[r] + c * VL, acc[r][c]);
}

/* decode_pv over head_dim's full vectors, PV_VC at a time. */
static LK_INLINE void LK_ISA_SUFFIX(decode_pv_rows)(const decode_scratch *t, const int64_t *rows, int64_t lane0, int nr,
                                                    const char *const *v, int64_t bk, int64_t dv, int64_t dp, lk_dtype dtype,
                                                    bool pairs, const char *const *prefetch) {
  for (int64_t e = 0; e < dv; e += DPV_VC * VL) {
    const int vc = (dv - e) / VL < DPV_VC ? (int)((dv - e) / VL) : DPV_VC;
    switch (vc) {
    case 1: LK_ISA_SUFFIX(decode_pv)(t, rows, lane0, nr, v, bk, e, 1, dp, dtype, pairs, prefetch); break;
#if DPV_VC > 2
    case 2: LK_ISA_SUFFIX(decode_pv)(t, rows, lane0, nr, v, bk, e, 2, dp, dtype, pairs, prefetch); break;
    case 3: LK_ISA_SUFFIX(decode_pv)(t, rows, lane0, nr, v, bk, e, 3, dp, dtype, pairs, prefetch); break;
#endif
    default: LK_ISA_SUFFIX(decode_pv)(t, rows, lane0, nr, v, bk, e, DPV_VC, dp, dtype, pairs, prefetch); break;
    }
  }
}

/* One lane's output accumulation key by key, skipping probability 0 (see the file comment). */
static void LK_ISA_SUFFIX(decode_pv_guarded)(const decode_scratch *t, int64_t row, int64_t lane, const char *const *v,
                                             int64_t bk, int64_t d, int64_t dp, lk_dtype dtype, bool pairs) {
  float *o = t->o + row * dp;
  const int64_t dv = d / VL * VL;
  const lk_vf a = lk_v_set1(t->alpha[row]);
  for (int64_t e = 0; e < dp; e += VL) lk_v_store_f32(o + e, lk_v_mul(lk_v_load_f32(o + e), a));
  for (int64_t jj = 0; jj < bk; jj++) {
    const float w = t->p[lane * DTILE + jj];
    if (w == 0.0f) continue;
    const lk_vf wv = lk_v_set1(w);
    int64_t e = 0;
    for (; pairs && e < d; e += 2 * VL) { /* d % (2 VL) == 0 */
      lk_vf x[DPV_VC];
      LK_ISA_SUFFIX(decode_load_v)(x, v[jj], e, 2, dtype, true);
      lk_v_store_f32(o + e, lk_v_fmadd(wv, x[0], lk_v_load_f32(o + e)));
      lk_v_store_f32(o + e + VL, lk_v_fmadd(wv, x[1], lk_v_load_f32(o + e + VL)));
    }
    for (; e < dv; e += VL) lk_v_store_f32(o + e, lk_v_fmadd(wv, lk_v_load(v[jj], e, dtype), lk_v_load_f32(o + e)));
    for (; e < d; e++) o[e] += w * lk_load_element(v[jj], e, dtype);
  }
}

/* The online softmax of one lane over the tile's scores (red/tail reduced here); returns whether
 * the lane has a key it does not see among the tile's first bk (PV must skip it). */
static LK_INLINE bool LK_ISA_SUFFIX(decode_softmax)(const lk_attention_job *job, const decode_scratch *t, int64_t lane,
                                                    int64_t row, int64_t token, int64_t head, int64_t j0, int64_t bk,
                                                    bool summed) {
  const lk_attention_params *p = &job->p;
  static const float iota[DTILE] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const lk_vf lo = lk_v_set1(t->lo[row]), hi = lk_v_set1(t->hi[row]), minus_inf = lk_v_set1(-INFINITY);
  lk_vf x[DTILE / VL];
  lk_vf tile_max = minus_inf;
  bool masked = false, nan = false;
  const bool inside = bk == DTILE && t->lo[row] <= (float)j0 && t->hi[row] >= (float)(j0 + DTILE - 1);
  for (int g = 0; g < DTILE / VL; g++) {
    const lk_vf j = lk_v_add(lk_v_set1((float)j0), lk_v_load_f32(iota + g * VL));
    /* the scores in tail alone (AMX), or red's partial sums plus tail */
    lk_vf s = summed ? lk_v_load_f32(t->tail + lane * DTILE + g * VL)
                     : lk_v_add(lk_v_hsum_lanes(t->red + (lane * DTILE + g * VL) * VL),
                                lk_v_load_f32(t->tail + lane * DTILE + g * VL));
    s = lk_v_mul(s, lk_v_set1(p->scale));
    if (p->softcap > 0.0f) s = lk_v_mul(lk_v_set1(p->softcap), lk_v_tanh(lk_v_div(s, lk_v_set1(p->softcap))));
    if (p->alibi_slopes) s = lk_v_fnmadd(lk_v_set1(t->slope[row]), lk_v_abs(lk_v_sub(lk_v_set1(t->pos[row]), j)), s);
    if (p->bias) {
      float b[VL];
      const float *bias_row = p->bias + head * p->bias_head_stride + token * p->bias_row_stride + j0 + g * VL;
      for (int i = 0; i < VL; i++) b[i] = g * VL + i < bk ? bias_row[i] : 0.0f;
      s = lk_v_add(s, lk_v_load_f32(b));
    }
    if (inside) { /* every key of the tile visible: only a -inf score (a -inf bias, infinite keys) hides one */
      masked = masked || lk_v_mask_any(lk_v_cmp_lt(s, lk_v_set1(-FLT_MAX)));
    } else {
      /* keys past the tile's end sit beyond hi (hi < j0 + bk) only if the lane's range ends there: mask them too */
      const lk_vf end = lk_v_set1((float)(j0 + bk));
      s = lk_v_select(lk_v_cmp_lt(j, lo), minus_inf, s);
      s = lk_v_select(lk_v_cmp_gt(j, hi), minus_inf, s);
      s = lk_v_select(lk_v_cmp_lt(j, end), s, minus_inf);
      masked = masked || lk_v_mask_any(lk_v_cmp_lt(lk_v_select(lk_v_cmp_lt(j, end), s, lk_v_zero()), lk_v_set1(-FLT_MAX)));
    }
    nan = nan || lk_v_mask_any(lk_v_cmp_nan(s));
    tile_max = lk_v_max(s, tile_max); /* a NaN s leaves the max alone */
    x[g] = s;
  }
  if (nan) t->nan[row] = 1.0f;
  const float m_old = t->m[row], tmax = lk_v_hmax(tile_max), m_new = tmax > m_old ? tmax : m_old;
  if (!(m_new > -INFINITY)) { /* nothing visible yet: p = 0, state unchanged */
    t->alpha[row] = 1.0f;
    for (int jj = 0; jj < DTILE; jj++) t->p[lane * DTILE + jj] = 0.0f;
    return true;
  }
  /* 0 for the first visible key; 1 while the max holds, as it mostly does after the first tiles */
  const float alpha = m_new == m_old ? 1.0f : expf(m_old - m_new);
  lk_vf sum = lk_v_zero();
  for (int g = 0; g < DTILE / VL; g++) {
    const lk_vf w = lk_v_exp(lk_v_sub(x[g], lk_v_set1(m_new)));
    lk_v_store_f32(t->p + lane * DTILE + g * VL, w);
    sum = lk_v_add(sum, w);
  }
  /* l kept as a vector of partial sums, reduced once per unit (decode_row_sum) */
  lk_v_store_f32(t->lsum + row * VL, lk_v_fmadd(lk_v_load_f32(t->lsum + row * VL), lk_v_set1(alpha), sum));
  t->m[row] = m_new;
  t->alpha[row] = alpha;
  return masked;
}

/* Key jj's row of kv head h in the next tile: what is prefetched into L2 while this tile's kv head
 * h computes, its K rows during the scores and its V rows, column for column, during P·V. So the
 * requests are spread evenly over the tile's compute, one tile (64 KB of a 8-head bf16 cache)
 * ahead: far enough to cover DRAM latency, and L2 (2 MB) keeps it; L1 is filled from L2 by the
 * hardware. One core reads at most about 12 GB/s here however it issues its requests (the fill
 * buffers), so the point is keeping them busy while the core computes. Measured against
 * prefetching the next kv head's rows into L1 (8 KB ahead, the previous scheme), both decode
 * shapes from DRAM, 2 threads, alternating runs: 15.9-16.8 against 14.2-15.1 GB/s (+12-15 %),
 * and no change with the rows in L2 (16.6 GB/s a core both); both prefetches together cost 7 %
 * in L2 and gained nothing more. */
static LK_INLINE const char *LK_ISA_SUFFIX(decode_next_row)(const char *const *next_rows, int64_t next, int64_t h,
                                                            int64_t jj, int64_t head_bytes) {
  return jj < next ? next_rows[jj] + h * head_bytes : NULL;
}

/* Row r's softmax sum l, from its partial sums (decode_softmax). */
static LK_INLINE float LK_ISA_SUFFIX(decode_row_sum)(const decode_scratch *t, int64_t r) {
  return lk_v_hsum(lk_v_load_f32(t->lsum + r * VL));
}

static void LK_ISA_SUFFIX(decode_run)(const lk_attention_job *job, const lk_decode_plan *plan, int64_t unit, void *scratch,
                                      lk_dtype dtype, bool pairs) {
  const lk_attention_params *p = &job->p;
  const int64_t seq = unit / plan->splits, split = unit % plan->splits;
  const int64_t t0 = p->cu_seqlens_q[seq], sq = p->cu_seqlens_q[seq + 1] - t0, heads = p->num_heads;
  const int64_t rows = sq * heads, d = p->head_dim, dp = plan->padded_dim, size = (int64_t)lk_dtype_size(dtype);
  const int64_t group = job->group, n = sq * group, head_bytes = d * size;
  if (rows == 0) return;
  decode_scratch t = LK_ISA_SUFFIX(decode_scratch_at)(scratch, rows, dp);

  /* queries widened (zero padded), state reset; the union of the rows' visible keys */
  int64_t key_lo = INT64_MAX, key_hi = -1;
  for (int64_t r = 0; r < rows; r++) {
    const char *q = (const char *)p->q + ((t0 + r / heads) * p->q_stride + (r % heads) * d) * size;
    for (int64_t e = 0; e < d; e++) t.q[r * dp + e] = lk_load_element(q, e, dtype);
    for (int64_t e = d; e < dp; e++) t.q[r * dp + e] = 0.0f;
#if defined(LK_DECODE_DPBF16)
    if (dtype == LK_DTYPE_BF16) memcpy(t.qb + r * dp, q, (size_t)d * sizeof(uint16_t));
#endif
    memset(t.o + r * dp, 0, (size_t)dp * sizeof(float));
    t.m[r] = -INFINITY;
    t.nan[r] = 0.0f;
    lk_v_store_f32(t.lsum + r * VL, lk_v_zero());
    const lk_attention_row row = lk_attention_row_at(job, (t0 + r / heads) * heads + r % heads);
    t.lo[r] = (float)row.lo;
    t.hi[r] = (float)row.hi;
    t.pos[r] = (float)row.pos;
    t.slope[r] = p->alibi_slopes ? p->alibi_slopes[r % heads] : 0.0f;
    if (row.lo <= row.hi) {
      if (row.lo < key_lo) key_lo = row.lo;
      if (row.hi > key_hi) key_hi = row.hi;
    }
  }
  int64_t begin, end;
  lk_attention_split_range(key_lo, key_hi, split, plan->splits, &begin, &end);

  const char *k_rows[DTILE], *v_rows[DTILE];
  const char *kh[DTILE], *vh[DTILE];
  int64_t lane_rows[DLANES];
  const char *next_k[DTILE], *next_v[DTILE], *pv_prefetch[DTILE], *no_prefetch[DTILE] = {NULL};
#if defined(LK_DECODE_AMX)
  /* AMX scores for bf16 (the plan checked head_dim and the scratch): Qᵀ packed once for the unit */
  const bool amx = plan->amx && dtype == LK_DTYPE_BF16;
  if (amx) {
    lk_amx_configure(n);
    for (int64_t h = 0; h < p->num_kv_heads; h++)
      for (int64_t lane = 0; lane < n; lane++)
        lk_amx_pack_q(t.qt, t.qb + (lane / group * heads + h * group + lane % group) * dp, lane, h, d);
  }
#else
  const bool amx = false;
#endif
  for (int64_t j0 = begin; j0 < end; j0 += DTILE) {
    const int64_t bk = end - j0 < DTILE ? end - j0 : DTILE;
    const int64_t next = end - (j0 + DTILE) < DTILE ? end - (j0 + DTILE) : DTILE;
    lk_attention_kv_rows(job, false, seq, j0, bk, 0, k_rows);
    lk_attention_kv_rows(job, true, seq, j0, bk, 0, v_rows);
    if (next > 0) {
      lk_attention_kv_rows(job, false, seq, j0 + DTILE, next, 0, next_k);
      lk_attention_kv_rows(job, true, seq, j0 + DTILE, next, 0, next_v);
    }
#if defined(LK_DECODE_AMX)
    const int64_t amx_step = amx ? lk_amx_row_step(k_rows, bk) : 0;
    if (amx) lk_amx_scores_start(0, t.sbuf, t.stage, t.qt, k_rows, bk, amx_step, 0, d);
#endif
    for (int64_t h = 0; h < p->num_kv_heads; h++) {
      /* lane = token * group + g: row token * heads + h * group + g */
      for (int64_t lane = 0; lane < n; lane++) lane_rows[lane] = lane / group * heads + h * group + lane % group;
      for (int64_t jj = 0; jj < bk; jj++) {
        kh[jj] = k_rows[jj] + h * head_bytes;
        vh[jj] = v_rows[jj] + h * head_bytes;
      }
#if defined(LK_DECODE_AMX)
      if (amx) {
        for (int64_t jj = 0; jj < next; jj++)
          for (int64_t line = 0; line < head_bytes; line += 64) _mm_prefetch(next_k[jj] + h * head_bytes + line, _MM_HINT_T2);
        if (h + 1 < p->num_kv_heads) /* the next kv head's scores run on AMX during this one's softmax and P·V */
          lk_amx_scores_start((int)((h + 1) & 1), t.sbuf + ((h + 1) & 1) * DTILE * 16, t.stage, t.qt, k_rows, bk, amx_step,
                              h + 1, d);
        lk_amx_scores_finish(t.tail, t.sbuf + (h & 1) * DTILE * 16, n);
      }
#endif
      for (int64_t jj = 0; jj < DTILE && !amx; jj++) {
        const char *next_key = LK_ISA_SUFFIX(decode_next_row)(next_k, next, h, jj, head_bytes);
        if (next_key)
          for (int64_t line = 0; line < head_bytes; line += 64) _mm_prefetch(next_key + line, _MM_HINT_T2);
        for (int64_t lane = 0; lane < n; lane += DPV_MR) {
          const int nr = n - lane < DPV_MR ? (int)(n - lane) : DPV_MR;
          if (jj >= bk) { /* past the tile's end: zero partials (masked below) */
            for (int r = 0; r < nr; r++) {
              for (int i = 0; i < VL; i++) t.red[((lane + r) * DTILE + jj) * VL + i] = 0.0f;
              t.tail[(lane + r) * DTILE + jj] = 0.0f;
            }
            continue;
          }
          switch (nr) {
          case 1: LK_ISA_SUFFIX(decode_dots)(&t, lane_rows + lane, lane, 1, kh[jj], d, dp, jj, dtype); break;
          case 2: LK_ISA_SUFFIX(decode_dots)(&t, lane_rows + lane, lane, 2, kh[jj], d, dp, jj, dtype); break;
          case 3: LK_ISA_SUFFIX(decode_dots)(&t, lane_rows + lane, lane, 3, kh[jj], d, dp, jj, dtype); break;
          default: LK_ISA_SUFFIX(decode_dots)(&t, lane_rows + lane, lane, DPV_MR, kh[jj], d, dp, jj, dtype); break;
          }
        }
      }
      for (int64_t lane = 0; lane < n; lane++) {
        const int64_t r = lane_rows[lane];
        t.guard[lane] = LK_ISA_SUFFIX(decode_softmax)(job, &t, lane, r, t0 + r / heads, r % heads, j0, bk, amx);
      }
      const int64_t dv = d / VL * VL;
      for (int64_t jj = 0; jj < DTILE; jj++)
        pv_prefetch[jj] = LK_ISA_SUFFIX(decode_next_row)(next_v, next, h, jj, head_bytes);
      for (int64_t lane = 0; lane < n; lane += DPV_MR) {
        const int nr = n - lane < DPV_MR ? (int)(n - lane) : DPV_MR;
        bool guarded = false;
        for (int r = 0; r < nr; r++) guarded = guarded || t.guard[lane + r];
        if (guarded) {
          for (int r = 0; r < nr; r++) LK_ISA_SUFFIX(decode_pv_guarded)(&t, lane_rows[lane + r], lane + r, vh, bk, d, dp, dtype, pairs);
          continue;
        }
        switch (nr) { /* constant lane counts: no per-key tests of nr in the microkernels */
        case 1: LK_ISA_SUFFIX(decode_pv_rows)(&t, lane_rows + lane, lane, 1, vh, bk, dv, dp, dtype, pairs, lane == 0 ? pv_prefetch : no_prefetch); break;
        case 2: LK_ISA_SUFFIX(decode_pv_rows)(&t, lane_rows + lane, lane, 2, vh, bk, dv, dp, dtype, pairs, lane == 0 ? pv_prefetch : no_prefetch); break;
        case 3: LK_ISA_SUFFIX(decode_pv_rows)(&t, lane_rows + lane, lane, 3, vh, bk, dv, dp, dtype, pairs, lane == 0 ? pv_prefetch : no_prefetch); break;
        default: LK_ISA_SUFFIX(decode_pv_rows)(&t, lane_rows + lane, lane, DPV_MR, vh, bk, dv, dp, dtype, pairs, lane == 0 ? pv_prefetch : no_prefetch); break;
        }
        for (int64_t e = dv; e < d; e++) /* the head_dim % VL tail */
          for (int r = 0; r < nr; r++) {
            const int64_t row = lane_rows[lane + r];
            float acc = t.o[row * dp + e] * t.alpha[row];
            for (int64_t jj = 0; jj < bk; jj++) acc += t.p[(lane + r) * DTILE + jj] * lk_load_element(vh[jj], e, dtype);
            t.o[row * dp + e] = acc;
          }
      }
    }
  }

#if defined(LK_DECODE_AMX)
  if (amx) _tile_release();
#endif
  if (pairs) /* the outputs back in element order (decode_load_v) */
    for (int64_t r = 0; r < rows; r++)
      for (int64_t e = 0; e < d; e += 2 * VL) {
        float chunk[2 * VL];
        memcpy(chunk, t.o + r * dp + e, sizeof chunk);
        for (int64_t i = 0; i < VL; i++) {
          t.o[r * dp + e + 2 * i] = chunk[i];
          t.o[r * dp + e + 2 * i + 1] = chunk[VL + i];
        }
      }
  if (plan->splits > 1) {
    for (int64_t r = 0; r < rows; r++) {
      lk_attention_save_partial(lk_decode_partial(plan, unit, r), t.m[r], LK_ISA_SUFFIX(decode_row_sum)(&t, r), t.nan[r] != 0.0f,
                                t.o + r * dp, d);
    }
    return;
  }
  for (int64_t r = 0; r < rows; r++)
    lk_attention_store_row(job, t0 + r / heads, r % heads, t.o + r * dp, t.m[r], LK_ISA_SUFFIX(decode_row_sum)(&t, r),
                           t.nan[r] != 0.0f);
}

void LK_ISA_SUFFIX(lk_decode_unit)(const lk_attention_job *job, const lk_decode_plan *plan, int64_t unit, void *scratch) {
  switch (job->p.dtype) {
  case LK_DTYPE_F16: LK_ISA_SUFFIX(decode_run)(job, plan, unit, scratch, LK_DTYPE_F16, false); break;
  case LK_DTYPE_BF16: /* P·V widens V rows in pairs where head_dim is whole pairs of vectors */
    if (job->p.head_dim % (2 * VL) == 0) LK_ISA_SUFFIX(decode_run)(job, plan, unit, scratch, LK_DTYPE_BF16, true);
    else LK_ISA_SUFFIX(decode_run)(job, plan, unit, scratch, LK_DTYPE_BF16, false);
    break;
  default: LK_ISA_SUFFIX(decode_run)(job, plan, unit, scratch, LK_DTYPE_F32, false); break;
  }
}

#undef VL
#undef DTILE
#undef DLANES
#undef DPV_VC
#undef DPV_MR
