/* The tiled attention kernel over a SIMD mapping (included by attention_avx2.c and
 * attention_avx512.c after their mapping header); the plan is attention_tile.h's.
 *
 * For each lane set (up to 128 query rows sharing a sequence and a kv head) and each tile of 64
 * keys, FlashAttention-2's loop, on the CPU:
 *   1. S^T = K Q^T, key-major: the queries are transposed once per lane set, so the QK
 *      microkernel broadcasts one key element against vectors of lanes (QK_MR keys x QK_NR
 *      lane vectors of accumulators, a register-blocked GEMM with no horizontal sums), and every
 *      per-row reduction of the softmax below is a vertical max or add across keys;
 *   2. the scores are scaled, soft-capped, ALiBi-biased, biased and masked (only in tiles that
 *      some lane does not fully see), the running max m and sum l updated online, and S^T
 *      overwritten by the probabilities P^T = exp(S^T - m);
 *   3. O = O * exp(m_old - m_new) + P V: the PV microkernel keeps PV_MR lanes x PV_VC vectors
 *      of head_dim in registers and streams the V tile, widened to f32 once per tile.
 * Everything is f32; 16-bit K tiles are widened once per tile (f32 keys are read in place).
 * Scratch per thread: Q^T, a K tile, a V tile, S^T, O and the softmax state, about 420 KiB at
 * head_dim 256: bounded by the tile, whatever the sequence length.
 *
 * Masked keys never reach the output: their probability is exactly 0 and, because 0 * NaN would
 * still poison a lane, a V tile holding a non-finite value (which only lanes that see it may
 * inherit) is accumulated lane by lane, skipping zero probabilities, as the row kernel does. */
#include "attention_tile.h"
#include "simd_dtype.h"
#include "simd_math.h"

#include <float.h>

#define VL LK_VEC_LANES
#define LANES LK_ATTENTION_LANES
#define TILE LK_ATTENTION_TILE_KEYS
#if LK_VEC_LANES == 16
#  define QK_NR 4 /* lane vectors per QK call: 4 x 4 accumulators of 32 registers */
#  define PV_VC 4 /* head_dim vectors per PV call */
#else
#  define QK_NR 2 /* 4 x 2 of 16 registers */
#  define PV_VC 2
#endif
#define QK_MR 4 /* keys per QK call */
#define PV_MR 4 /* lanes per PV call */

typedef struct tile_scratch {
  float *qt;  /* [head_dim][LANES]: the lane set's queries, transposed */
  float *kt;  /* [TILE][head_dim]: a 16-bit key tile widened */
  float *vt;  /* [TILE][padded_dim]: the value tile widened, zero padded */
  float *s;   /* [TILE][LANES]: scores, then probabilities */
  float *o;   /* [LANES][padded_dim]: unnormalised outputs */
  float *zero; /* [head_dim]: the keys past a ragged tile's end */
  float *m, *l, *alpha, *nan; /* [LANES] each */
} tile_scratch;

/* Offsets are skewed by a cache line each so the arrays do not share L1 sets at their starts. */
static LK_INLINE tile_scratch LK_ISA_SUFFIX(tile_scratch_at)(void *base, int64_t d, int64_t dp) {
  tile_scratch t;
  float *f = (float *)base;
  t.qt = f;
  f += d * LANES + 16;
  t.kt = f;
  f += TILE * d + 32;
  t.vt = f;
  f += TILE * dp + 48;
  t.s = f;
  f += TILE * LANES + 64;
  t.o = f;
  f += LANES * dp + 16;
  t.zero = f;
  f += dp;
  t.m = f;
  t.l = f + LANES;
  t.alpha = f + 2 * LANES;
  t.nan = f + 3 * LANES;
  return t;
}

/* tile_scratch_at's layout at the largest head_dim fits a thread's slice of the context's scratch. */
_Static_assert(((LK_ATTENTION_MAX_HEAD_DIM + 1) * LANES + 2 * TILE * LK_ATTENTION_MAX_HEAD_DIM + TILE * LANES +
                LANES * LK_ATTENTION_MAX_HEAD_DIM + LK_ATTENTION_MAX_HEAD_DIM + 4 * LANES + 176) * sizeof(float) <=
                   LK_SCRATCH_BYTES_PER_THREAD,
               "the tiled kernel's scratch must fit a thread's slice");

/* S^T[jj + r][lanes c] = sum_e K[jj + r][e] Q^T[e][c] for QK_MR keys and nr lane vectors. */
static LK_INLINE void LK_ISA_SUFFIX(qk_micro)(const float *qt, const float *const *k, int64_t d, float *s, int nr,
                                              const char *const *prefetch, int64_t prefetches) {
  lk_vf acc[QK_MR][QK_NR];
#pragma GCC unroll 4
  for (int r = 0; r < QK_MR; r++)
#pragma GCC unroll 4
    for (int c = 0; c < QK_NR; c++) acc[r][c] = lk_v_zero();
  const float *k0 = k[0], *k1 = k[1], *k2 = k[2], *k3 = k[3];
  for (int64_t e = 0; e < d; e++, qt += LANES) {
    /* one line of the next tile every other step: a burst would stall on the fill buffers */
    if (!(e & 1) && (e >> 1) < prefetches) _mm_prefetch(prefetch[e >> 1], _MM_HINT_T0);
    lk_vf q[QK_NR];
#pragma GCC unroll 4
    for (int c = 0; c < QK_NR; c++)
      if (c < nr) q[c] = lk_v_load_f32(qt + c * VL);
    const lk_vf b0 = lk_v_set1(k0[e]), b1 = lk_v_set1(k1[e]), b2 = lk_v_set1(k2[e]), b3 = lk_v_set1(k3[e]);
#pragma GCC unroll 4
    for (int c = 0; c < QK_NR; c++) {
      if (c >= nr) continue;
      acc[0][c] = lk_v_fmadd(q[c], b0, acc[0][c]);
      acc[1][c] = lk_v_fmadd(q[c], b1, acc[1][c]);
      acc[2][c] = lk_v_fmadd(q[c], b2, acc[2][c]);
      acc[3][c] = lk_v_fmadd(q[c], b3, acc[3][c]);
    }
  }
  for (int64_t i = (d + 1) >> 1; i < prefetches; i++) _mm_prefetch(prefetch[i], _MM_HINT_T0);
#pragma GCC unroll 4
  for (int r = 0; r < QK_MR; r++)
#pragma GCC unroll 4
    for (int c = 0; c < QK_NR; c++)
      if (c < nr) lk_v_store_f32(s + r * LANES + c * VL, acc[r][c]);
}

/* O[lanes 0..PV_MR)[vc vectors] = O * alpha + sum_jj P^T[jj][lane] V[jj][vc vectors]. */
static LK_INLINE void LK_ISA_SUFFIX(pv_micro)(float *o, int64_t dp, const float *alpha, const float *vt, const float *p,
                                              int64_t bk, int vc) {
  lk_vf acc[PV_MR][PV_VC];
#pragma GCC unroll 4
  for (int r = 0; r < PV_MR; r++) {
    const lk_vf a = lk_v_set1(alpha[r]);
#pragma GCC unroll 4
    for (int c = 0; c < PV_VC; c++)
      if (c < vc) acc[r][c] = lk_v_mul(lk_v_load_f32(o + r * dp + c * VL), a);
  }
  for (int64_t jj = 0; jj < bk; jj++, vt += dp, p += LANES) {
    lk_vf v[PV_VC];
#pragma GCC unroll 4
    for (int c = 0; c < PV_VC; c++)
      if (c < vc) v[c] = lk_v_load_f32(vt + c * VL);
#pragma GCC unroll 4
    for (int r = 0; r < PV_MR; r++) {
      const lk_vf b = lk_v_set1(p[r]);
#pragma GCC unroll 4
      for (int c = 0; c < PV_VC; c++)
        if (c < vc) acc[r][c] = lk_v_fmadd(b, v[c], acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < PV_MR; r++)
#pragma GCC unroll 4
    for (int c = 0; c < PV_VC; c++)
      if (c < vc) lk_v_store_f32(o + r * dp + c * VL, acc[r][c]);
}

/* The next tile's K and V rows, prefetched while this one computes: one kv head's rows are
 * num_kv_heads * head_dim elements apart (a page or more), where the hardware prefetchers do not
 * follow. */
typedef struct tile_prefetch {
  const char *k[TILE], *v[TILE];
  int64_t rows, lines;
} tile_prefetch;

/* The lines of the next tile's rows [begin, end), K and V: at most QK_MR * 2 * 16 (f32, d 256). */
static LK_INLINE int64_t LK_ISA_SUFFIX(prefetch_lines)(const tile_prefetch *next, int64_t begin, int64_t end,
                                                        const char **lines) {
  int64_t n = 0;
  if (end > next->rows) end = next->rows;
  for (int64_t jj = begin; jj < end; jj++)
    for (int64_t line = 0; line < next->lines; line++) {
      lines[n++] = next->k[jj] + 64 * line;
      lines[n++] = next->v[jj] + 64 * line;
    }
  return n;
}

static LK_INLINE void LK_ISA_SUFFIX(tile_qk)(const tile_scratch *t, const float *const *k, int64_t d, int64_t bk,
                                             int64_t vecs, const tile_prefetch *next) {
  const char *lines[QK_MR * 2 * (LK_ATTENTION_MAX_HEAD_DIM / 16)];
  for (int64_t jj = 0; jj < bk; jj += QK_MR) {
    int64_t prefetches = LK_ISA_SUFFIX(prefetch_lines)(next, jj, jj + QK_MR, lines);
    for (int64_t c = 0; c < vecs; c += QK_NR, prefetches = 0) {
      const int64_t nr = vecs - c < QK_NR ? vecs - c : QK_NR;
      float *s = t->s + jj * LANES + c * VL;
      const float *qt = t->qt + c * VL;
      switch (nr) { /* constant nr: the unused accumulators vanish */
      case 1: LK_ISA_SUFFIX(qk_micro)(qt, k + jj, d, s, 1, lines, prefetches); break;
#if QK_NR > 2
      case 2: LK_ISA_SUFFIX(qk_micro)(qt, k + jj, d, s, 2, lines, prefetches); break;
      case 3: LK_ISA_SUFFIX(qk_micro)(qt, k + jj, d, s, 3, lines, prefetches); break;
#endif
      default: LK_ISA_SUFFIX(qk_micro)(qt, k + jj, d, s, QK_NR, lines, prefetches); break;
      }
    }
  }
}

static LK_INLINE void LK_ISA_SUFFIX(tile_pv)(const tile_scratch *t, int64_t dp, int64_t bk, int64_t lanes) {
  for (int64_t e = 0; e < dp; e += PV_VC * VL) {
    const int64_t vc = (dp - e) / VL < PV_VC ? (dp - e) / VL : PV_VC;
    for (int64_t lane = 0; lane < lanes; lane += PV_MR) {
      float *o = t->o + lane * dp + e;
      const float *alpha = t->alpha + lane, *vt = t->vt + e, *p = t->s + lane;
      switch (vc) {
      case 1: LK_ISA_SUFFIX(pv_micro)(o, dp, alpha, vt, p, bk, 1); break;
#if PV_VC > 2
      case 2: LK_ISA_SUFFIX(pv_micro)(o, dp, alpha, vt, p, bk, 2); break;
      case 3: LK_ISA_SUFFIX(pv_micro)(o, dp, alpha, vt, p, bk, 3); break;
#endif
      default: LK_ISA_SUFFIX(pv_micro)(o, dp, alpha, vt, p, bk, PV_VC); break;
      }
    }
  }
}

/* The same update lane by lane, skipping keys of probability 0: for V tiles with a non-finite
 * value, which must reach only the lanes that see it. */
static void LK_ISA_SUFFIX(tile_pv_guarded)(const tile_scratch *t, int64_t dp, int64_t bk, int64_t lanes) {
  for (int64_t lane = 0; lane < lanes; lane++) {
    float *o = t->o + lane * dp;
    const lk_vf a = lk_v_set1(t->alpha[lane]);
    for (int64_t e = 0; e < dp; e += VL) lk_v_store_f32(o + e, lk_v_mul(lk_v_load_f32(o + e), a));
    for (int64_t jj = 0; jj < bk; jj++) {
      const float w = t->s[jj * LANES + lane];
      if (w == 0.0f) continue;
      const lk_vf b = lk_v_set1(w);
      for (int64_t e = 0; e < dp; e += VL)
        lk_v_store_f32(o + e, lk_v_fmadd(b, lk_v_load_f32(t->vt + jj * dp + e), lk_v_load_f32(o + e)));
    }
  }
}

/* Step 2 on one tile: scores in S^T become probabilities; m, l updated, alpha = exp(m_old - m_new). */
static LK_INLINE void LK_ISA_SUFFIX(tile_softmax)(const lk_attention_job *job, const lk_attention_lanes *lanes,
                                                  const tile_scratch *t, int64_t j0, int64_t bk, int64_t vecs, bool full) {
  const lk_attention_params *p = &job->p;
  const lk_vf scale = lk_v_set1(p->scale), minus_inf = lk_v_set1(-INFINITY), one = lk_v_set1(1.0f);
  const bool softcap = p->softcap > 0.0f, alibi = p->alibi_slopes != NULL, bias = p->bias != NULL;
  const lk_vf cap = lk_v_set1(p->softcap);
  for (int64_t c = 0; c < vecs; c++) {
    float *s = t->s + c * VL;
    const lk_vf pos = lk_v_load_f32(lanes->pos + c * VL), slope = lk_v_load_f32(lanes->slope + c * VL);
    for (int64_t jj = 0; jj < bk; jj++) {
      lk_vf x = lk_v_mul(lk_v_load_f32(s + jj * LANES), scale);
      if (softcap) x = lk_v_mul(cap, lk_v_tanh(lk_v_div(x, cap)));
      if (alibi) x = lk_v_fnmadd(slope, lk_v_abs(lk_v_sub(pos, lk_v_set1((float)(j0 + jj)))), x);
      lk_v_store_f32(s + jj * LANES, x);
    }
  }
  if (bias) {
    for (int64_t k = 0; k < lanes->count; k++) {
      const float *row = p->bias + lanes->head[k] * p->bias_head_stride + lanes->token[k] * p->bias_row_stride + j0;
      for (int64_t jj = 0; jj < bk; jj++) t->s[jj * LANES + k] += row[jj];
    }
  }
  for (int64_t c = 0; c < vecs; c++) {
    float *s = t->s + c * VL;
    const lk_vf lo = lk_v_load_f32(lanes->lo + c * VL), hi = lk_v_load_f32(lanes->hi + c * VL);
    lk_vf tile_max = minus_inf, nan = lk_v_load_f32(t->nan + c * VL);
    for (int64_t jj = 0; jj < bk; jj++) {
      lk_vf x = lk_v_load_f32(s + jj * LANES);
      if (!full) {
        const lk_vf j = lk_v_set1((float)(j0 + jj));
        x = lk_v_select(lk_v_cmp_lt(j, lo), minus_inf, x);
        x = lk_v_select(lk_v_cmp_gt(j, hi), minus_inf, x);
        lk_v_store_f32(s + jj * LANES, x);
      }
      nan = lk_v_select(lk_v_cmp_nan(x), one, nan);
      tile_max = lk_v_max(x, tile_max); /* a NaN x leaves the max alone */
    }
    const lk_vf m_old = lk_v_load_f32(t->m + c * VL), m_new = lk_v_max(tile_max, m_old);
    /* While a lane has seen no key its max is -inf: subtract 0 instead (exp(-inf) = 0 either way). */
    const lk_vf m_use = lk_v_select(lk_v_cmp_lt(m_new, lk_v_set1(-FLT_MAX)), lk_v_zero(), m_new);
    const lk_vf alpha = lk_v_exp(lk_v_sub(m_old, m_use));
    lk_vf sum = lk_v_zero();
    for (int64_t jj = 0; jj < bk; jj++) {
      const lk_vf w = lk_v_exp(lk_v_sub(lk_v_load_f32(s + jj * LANES), m_use));
      lk_v_store_f32(s + jj * LANES, w);
      sum = lk_v_add(sum, w);
    }
    lk_v_store_f32(t->l + c * VL, lk_v_fmadd(lk_v_load_f32(t->l + c * VL), alpha, sum));
    lk_v_store_f32(t->m + c * VL, m_new);
    lk_v_store_f32(t->alpha + c * VL, alpha);
    lk_v_store_f32(t->nan + c * VL, nan);
  }
}

/* Widens (or copies) rows [j0, j0 + bk) of the lane set's keys or values into dst rows of
 * `stride` floats, zero padded from head_dim; returns whether every value is finite. */
static LK_INLINE bool LK_ISA_SUFFIX(tile_load)(const lk_attention_job *job, const char *const *rows, int64_t bk, float *dst,
                                               int64_t stride, lk_dtype dtype) {
  const int64_t d = job->p.head_dim, dv = d / VL * VL;
  lk_vf finite = lk_v_zero(); /* sums 0 * x: NaN exactly when some x is not finite */
  float tail = 0.0f;
  for (int64_t jj = 0; jj < bk; jj++, dst += stride) {
    const void *src = rows[jj];
    int64_t e = 0;
    for (; e < dv; e += VL) {
      const lk_vf x = lk_v_load(src, e, dtype);
      finite = lk_v_add(finite, lk_v_mul(x, lk_v_zero()));
      lk_v_store_f32(dst + e, x);
    }
    for (; e < d; e++) {
      dst[e] = lk_load_element(src, e, dtype);
      tail += dst[e] * 0.0f;
    }
    for (; e < stride; e++) dst[e] = 0.0f;
  }
  return lk_v_hsum(finite) == 0.0f && tail == 0.0f;
}

static void LK_ISA_SUFFIX(run_lanes)(const lk_attention_job *job, const lk_attention_plan *plan,
                                     const lk_attention_lanes *lanes, int64_t unit, void *scratch, lk_dtype dtype) {
  const lk_attention_params *p = &job->p;
  const int64_t d = p->head_dim, dp = plan->padded_dim, n = lanes->count, size = (int64_t)lk_dtype_size(dtype);
  const int64_t vecs = (n + VL - 1) / VL, n4 = (n + PV_MR - 1) / PV_MR * PV_MR;
  const tile_scratch t = LK_ISA_SUFFIX(tile_scratch_at)(scratch, d, dp);

  /* Q^T, padding lanes zero; the softmax state; O = 0. */
  for (int64_t e = 0; e < d; e++) {
    for (int64_t k = 0; k < n; k++) {
      const char *q = (const char *)p->q + (lanes->token[k] * p->q_stride + lanes->head[k] * d) * size;
      t.qt[e * LANES + k] = lk_load_element(q, e, dtype);
    }
    for (int64_t k = n; k < vecs * VL; k++) t.qt[e * LANES + k] = 0.0f;
  }
  for (int64_t k = 0; k < LANES; k++) {
    t.m[k] = -INFINITY;
    t.l[k] = t.nan[k] = 0.0f;
  }
  memset(t.o, 0, (size_t)(n4 * dp) * sizeof(float));
  memset(t.zero, 0, (size_t)dp * sizeof(float));

  int64_t key_begin, key_end;
  lk_attention_split_keys(plan, lanes, lk_attention_unit_split(plan, unit), &key_begin, &key_end);
  const float *k_rows[TILE + QK_MR];
  const char *k_src[TILE], *v_src[TILE];
  tile_prefetch next;
  next.lines = (d * size + 63) / 64;
  for (int64_t j0 = key_begin; j0 < key_end; j0 += TILE) {
    const int64_t bk = key_end - j0 < TILE ? key_end - j0 : TILE;
    next.rows = key_end - (j0 + TILE) < TILE ? key_end - (j0 + TILE) : TILE;
    if (next.rows > 0) {
      lk_attention_kv_rows(job, false, lanes->seq, j0 + TILE, next.rows, lanes->kv_head, next.k);
      lk_attention_kv_rows(job, true, lanes->seq, j0 + TILE, next.rows, lanes->kv_head, next.v);
    }
    lk_attention_kv_rows(job, false, lanes->seq, j0, bk, lanes->kv_head, k_src);
    lk_attention_kv_rows(job, true, lanes->seq, j0, bk, lanes->kv_head, v_src);
    const bool full = j0 >= lanes->full_lo && j0 + bk - 1 <= lanes->full_hi;
    if (dtype == LK_DTYPE_F32) {
      for (int64_t jj = 0; jj < bk; jj++) k_rows[jj] = (const float *)k_src[jj];
    } else {
      LK_ISA_SUFFIX(tile_load)(job, k_src, bk, t.kt, d, dtype);
      for (int64_t jj = 0; jj < bk; jj++) k_rows[jj] = t.kt + jj * d;
    }
    for (int64_t jj = bk; jj < bk + QK_MR; jj++) k_rows[jj] = t.zero;
    LK_ISA_SUFFIX(tile_qk)(&t, k_rows, d, bk, vecs, &next);
    LK_ISA_SUFFIX(tile_softmax)(job, lanes, &t, j0, bk, vecs, full);
    if (LK_ISA_SUFFIX(tile_load)(job, v_src, bk, t.vt, dp, dtype)) LK_ISA_SUFFIX(tile_pv)(&t, dp, bk, n4);
    else LK_ISA_SUFFIX(tile_pv_guarded)(&t, dp, bk, n4);
  }

  if (plan->splits > 1) {
    for (int64_t k = 0; k < n; k++) {
      lk_attention_save_partial(lk_attention_partial(plan, unit, lanes->first_lane + k), t.m[k], t.l[k], t.nan[k] != 0.0f,
                                t.o + k * dp, d);
    }
    return;
  }
  const int64_t dv = d / VL * VL;
  for (int64_t k = 0; k < n; k++) {
    const bool nan = t.nan[k] != 0.0f;
    const float l = t.l[k], inv = lk_attention_output_scale(l, nan);
    char *out = (char *)p->out + (lanes->token[k] * p->out_stride + lanes->head[k] * d) * size;
    const float *o = t.o + k * dp;
    const lk_vf inv_v = lk_v_set1(inv);
    int64_t e = 0;
    for (; e < dv; e += VL) lk_v_store(out, e, dtype, lk_v_mul(lk_v_load_f32(o + e), inv_v), false);
    for (; e < d; e++) lk_store_element(out, e, dtype, o[e] * inv);
    if (p->lse) p->lse[lanes->token[k] * p->num_heads + lanes->head[k]] = lk_attention_lse(t.m[k], l, nan);
  }
}

static void LK_ISA_SUFFIX(run_unit)(const lk_attention_job *job, const lk_attention_plan *plan, int64_t unit, void *scratch,
                                    lk_dtype dtype) {
  const int64_t item = lk_attention_unit_item(plan, unit);
  lk_attention_lanes lanes;
  int64_t cursor = -1;
  while (lk_attention_next_lanes(job, plan, item, &cursor, &lanes))
    LK_ISA_SUFFIX(run_lanes)(job, plan, &lanes, unit, scratch, dtype);
}

void LK_ISA_SUFFIX(lk_attention_unit)(const lk_attention_job *job, const lk_attention_plan *plan, int64_t unit, void *scratch) {
  switch (job->p.dtype) {
  case LK_DTYPE_F16: LK_ISA_SUFFIX(run_unit)(job, plan, unit, scratch, LK_DTYPE_F16); break;
  case LK_DTYPE_BF16: LK_ISA_SUFFIX(run_unit)(job, plan, unit, scratch, LK_DTYPE_BF16); break;
  default: LK_ISA_SUFFIX(run_unit)(job, plan, unit, scratch, LK_DTYPE_F32); break;
  }
}

#undef VL
#undef LANES
#undef TILE
#undef QK_NR
#undef PV_VC
#undef QK_MR
#undef PV_MR
