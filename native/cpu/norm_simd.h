/* The residual placements (lk_norm_residual) over a SIMD mapping, shared by rms_norm_simd.h and
 * layer_norm_simd.h: what v is for a vector (or a bf16 pair of vectors) of a row, in the same f32
 * operations as norm.h's scalar definitions, so the variants agree bit for bit on v. */
#ifndef LK_NORM_SIMD_H
#define LK_NORM_SIMD_H

#include "norm.h"
#include "simd_dtype.h"

/* v rounded to dtype in registers: the value a store and reload would give. */
static LK_INLINE lk_vf LK_ISA_SUFFIX(norm_round)(lk_vf v, lk_dtype dtype) {
  switch (dtype) {
  case LK_DTYPE_F16: {
    uint16_t unused[LK_VEC_LANES]; /* the store is dead: the result comes from the register */
    return lk_v_store_round_f16(unused, v);
  }
  case LK_DTYPE_BF16: return lk_v_and(lk_v_as_f32(lk_v_bf16_rounded(v, false)), lk_v_as_f32(lk_vi_set1((int32_t)0xffff0000u)));
  default: return v;
  }
}

/* v of elements [i, i + LK_VEC_LANES) after the first pass (see lk_norm_input_element). */
static LK_INLINE lk_vf LK_ISA_SUFFIX(norm_input)(const void *x, const void *residual, int64_t i, lk_dtype dtype,
                                                 lk_norm_residual mode, lk_vf alpha) {
  if (mode == LK_NORM_RESIDUAL_PRE) return lk_v_load(residual, i, dtype);
  lk_vf v = lk_v_load(x, i, dtype);
  if (mode == LK_NORM_RESIDUAL_POST)
    v = LK_ISA_SUFFIX(norm_round)(lk_v_add(lk_v_mul(alpha, lk_v_load(residual, i, dtype)), v), dtype);
  return v;
}

/* The first pass: PRE adds, rounds and stores the residual (see lk_norm_first_pass_element); POST
 * with a stage stores its v there, so the later passes read it as PRE reads the residual instead
 * of recomputing and re-rounding it (see LK_NORM_STAGE_ELEMENTS). */
static LK_INLINE lk_vf LK_ISA_SUFFIX(norm_first_input)(const void *x, void *residual, void *stage, int64_t i,
                                                       lk_dtype dtype, lk_norm_residual mode, lk_vf alpha) {
  if (mode == LK_NORM_RESIDUAL_POST && stage)
    return lk_v_store_round(stage, i, dtype, lk_v_add(lk_v_mul(alpha, lk_v_load(residual, i, dtype)), lk_v_load(x, i, dtype)));
  if (mode != LK_NORM_RESIDUAL_PRE) return LK_ISA_SUFFIX(norm_input)(x, residual, i, dtype, mode, alpha);
  return lk_v_store_round(residual, i, dtype, lk_v_add(lk_v_load(residual, i, dtype), lk_v_load(x, i, dtype)));
}

/* bf16 in even/odd pairs (lk_vf2): elements [i, i + 2 * LK_VEC_LANES). Rounding is per lane, so
 * pairs round exactly as single vectors do. */
static LK_INLINE lk_vf2 LK_ISA_SUFFIX(norm_input_pairs)(const uint16_t *x, const uint16_t *residual, int64_t i,
                                                        lk_norm_residual mode, lk_vf alpha) {
  if (mode == LK_NORM_RESIDUAL_PRE) return lk_v_load_bf16_pairs(residual + i);
  lk_vf2 v = lk_v_load_bf16_pairs(x + i);
  if (mode == LK_NORM_RESIDUAL_POST) {
    lk_vf2 r = lk_v_load_bf16_pairs(residual + i);
    v.even = LK_ISA_SUFFIX(norm_round)(lk_v_add(lk_v_mul(alpha, r.even), v.even), LK_DTYPE_BF16);
    v.odd = LK_ISA_SUFFIX(norm_round)(lk_v_add(lk_v_mul(alpha, r.odd), v.odd), LK_DTYPE_BF16);
  }
  return v;
}

static LK_INLINE lk_vf2 LK_ISA_SUFFIX(norm_first_input_pairs)(const uint16_t *x, uint16_t *residual, uint16_t *stage,
                                                              int64_t i, lk_norm_residual mode, lk_vf alpha) {
  if (mode == LK_NORM_RESIDUAL_POST && stage) {
    lk_vf2 v = lk_v_load_bf16_pairs(x + i), r = lk_v_load_bf16_pairs(residual + i);
    v.even = lk_v_add(lk_v_mul(alpha, r.even), v.even);
    v.odd = lk_v_add(lk_v_mul(alpha, r.odd), v.odd);
    return lk_v_store_round_bf16_pairs(stage + i, v);
  }
  if (mode != LK_NORM_RESIDUAL_PRE) return LK_ISA_SUFFIX(norm_input_pairs)(x, residual, i, mode, alpha);
  lk_vf2 v = lk_v_load_bf16_pairs(x + i);
  lk_vf2 sum = lk_v_load_bf16_pairs(residual + i);
  sum.even = lk_v_add(sum.even, v.even);
  sum.odd = lk_v_add(sum.odd, v.odd);
  return lk_v_store_round_bf16_pairs(residual + i, sum);
}

/* The weight (or 1 + weight) of 2 * LK_VEC_LANES elements as pairs, bf16 or (LK_PAIR_F32_WEIGHTS) f32. */
static LK_INLINE lk_vf2 LK_ISA_SUFFIX(norm_weight_pairs)(const void *weight, int64_t i, lk_dtype weight_dtype,
                                                         bool offset_one) {
#if LK_PAIR_F32_WEIGHTS
  lk_vf2 w = weight_dtype == LK_DTYPE_F32 ? lk_v_load_f32_pairs((const float *)weight + i)
                                          : lk_v_load_bf16_pairs((const uint16_t *)weight + i);
#else
  (void)weight_dtype;
  lk_vf2 w = lk_v_load_bf16_pairs((const uint16_t *)weight + i);
#endif
  if (offset_one) {
    w.even = lk_v_add(w.even, lk_v_set1(1.0f));
    w.odd = lk_v_add(w.odd, lk_v_set1(1.0f));
  }
  return w;
}

/* Whether a bf16 row runs as pairs in the output pass: bf16 weights, or f32 ones where the ISA
 * splits them cheaply. */
static LK_INLINE bool LK_ISA_SUFFIX(norm_pairs)(lk_dtype dtype, lk_dtype weight_dtype) {
  return dtype == LK_DTYPE_BF16 && (weight_dtype == LK_DTYPE_BF16 || (LK_PAIR_F32_WEIGHTS && weight_dtype == LK_DTYPE_F32));
}

/* The next row's inputs, prefetched into L2 a line at a time while this row is computed (NULL x:
 * nothing to prefetch). `done` counts the bytes already requested; lk_norm_prefetch_to requests
 * up to `target`. LayerNorm spreads the requests over its first and last passes (half each), so
 * that DRAM works while the row is computed from cache instead of only during the output pass. */
typedef struct lk_norm_prefetch {
  const char *x, *residual;
  int64_t done;
} lk_norm_prefetch;

static LK_INLINE void lk_norm_prefetch_to(lk_norm_prefetch *p, int64_t target) {
  if (!p->x) return;
  for (; p->done < target; p->done += 64) {
    lk_prefetch(p->x + p->done);
    if (p->residual) lk_prefetch(p->residual + p->done);
  }
}

#endif /* LK_NORM_SIMD_H */
