/* LayerNorm over a SIMD mapping: included by layer_norm_avx2.c and layer_norm_avx512.c after
 * their mapping header. Same arithmetic as layer_norm_scalar.c; only the order of the sums
 * differs (four vector chains each, then a horizontal sum), and bf16 is processed in even/odd pairs
 * (lk_vf2), which changes no result.
 *
 * Two passes over a row, both reading it once: pass 1 reads x (and the residual; PRE writes it back)
 * and sums the deviations from the shift K and their squares (layer_norm.h); pass 2 writes y from
 * L1/L2 (a row of 8192 f32 is 32 KiB, 64 KiB with its residual), with streaming stores for large
 * outputs, while prefetching the next row's inputs. A row whose shifted sums would cancel takes one
 * more pass from cache, the corrected two-pass deviations (layer_norm_sums, not first). So the DRAM
 * traffic is RMSNorm's: inputs once, y once. */
#include "layer_norm.h"
#include "norm_simd.h"

/* s1 = sum(v - c) and s2 = sum((v - c)^2) over elements [0, n); returns how many it covered (the
 * caller finishes the tail with the scalar definition). Four chains of each: an add has 4 cycles
 * of latency and two issue per cycle.
 * - `first` (pass 1, from memory, c = the shift K of layer_norm.h): the PRE form writes
 *   residual = round(residual + x) first, a staged POST row writes v to `stage`, and the first
 *   half of the next row's inputs is prefetched (the second half in the output pass: measured
 *   1.1-1.3x on DRAM-resident PRE and POST rows against prefetching it all in the output pass,
 *   and 1.06x on plain bf16 rows, f32 unchanged, once the statistics took one pass);
 * - otherwise (the fallback's passes, from cache): v is read as the passes after the first read it. */
static LK_INLINE int64_t LK_ISA_SUFFIX(layer_norm_sums)(const void *x, void *residual, void *stage, int64_t n,
                                                        lk_dtype dtype, lk_norm_residual mode, lk_vf alpha, float c,
                                                        bool first, lk_norm_prefetch *prefetch, float *out_s1,
                                                        float *out_s2) {
  const int64_t half_size = (int64_t)lk_dtype_size(dtype) / 2;
  const lk_vf c_v = lk_v_set1(c);
  lk_vf s1_0 = lk_v_zero(), s1_1 = lk_v_zero(), s1_2 = lk_v_zero(), s1_3 = lk_v_zero();
  lk_vf s2_0 = lk_v_zero(), s2_1 = lk_v_zero(), s2_2 = lk_v_zero(), s2_3 = lk_v_zero();
  int64_t i = 0;
#define LK_ACCUMULATE(v, s1, s2)                                                                   \
  do {                                                                                             \
    lk_vf d = lk_v_sub((v), c_v);                                                                  \
    s1 = lk_v_add(s1, d);                                                                          \
    s2 = lk_v_fmadd(d, d, s2);                                                                     \
  } while (0)
#define LK_SUMS(s1, s2, offset)                                                                    \
  LK_ACCUMULATE(first ? LK_ISA_SUFFIX(norm_first_input)(x, residual, stage, i + (offset), dtype, mode, alpha)    \
                      : LK_ISA_SUFFIX(norm_input)(x, residual, i + (offset), dtype, mode, alpha),               \
                s1, s2)
#define LK_PREFETCH()                                                                              \
  do {                                                                                             \
    if (first) lk_norm_prefetch_to(prefetch, (i + 4 * LK_VEC_LANES) * half_size);                  \
  } while (0)
  if (dtype == LK_DTYPE_BF16) {
#define LK_SUMS_PAIR(s1_even, s2_even, s1_odd, s2_odd, offset)                                     \
  do {                                                                                             \
    lk_vf2 v = first ? LK_ISA_SUFFIX(norm_first_input_pairs)((const uint16_t *)x, (uint16_t *)residual,          \
                                                             (uint16_t *)stage, i + (offset), mode, alpha)       \
                     : LK_ISA_SUFFIX(norm_input_pairs)((const uint16_t *)x, (const uint16_t *)residual,          \
                                                       i + (offset), mode, alpha);                               \
    LK_ACCUMULATE(v.even, s1_even, s2_even);                                                       \
    LK_ACCUMULATE(v.odd, s1_odd, s2_odd);                                                          \
  } while (0)
    for (; i + 4 * LK_VEC_LANES <= n; i += 4 * LK_VEC_LANES) {
      LK_PREFETCH();
      LK_SUMS_PAIR(s1_0, s2_0, s1_1, s2_1, 0);
      LK_SUMS_PAIR(s1_2, s2_2, s1_3, s2_3, 2 * LK_VEC_LANES);
    }
    for (; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES) LK_SUMS_PAIR(s1_0, s2_0, s1_1, s2_1, 0);
#undef LK_SUMS_PAIR
  } else {
    for (; i + 4 * LK_VEC_LANES <= n; i += 4 * LK_VEC_LANES) {
      LK_PREFETCH();
      LK_SUMS(s1_0, s2_0, 0);
      LK_SUMS(s1_1, s2_1, LK_VEC_LANES);
      LK_SUMS(s1_2, s2_2, 2 * LK_VEC_LANES);
      LK_SUMS(s1_3, s2_3, 3 * LK_VEC_LANES);
    }
  }
  for (; i + LK_VEC_LANES <= n; i += LK_VEC_LANES) LK_SUMS(s1_0, s2_0, 0);
#undef LK_PREFETCH
#undef LK_SUMS
#undef LK_ACCUMULATE
  *out_s1 = lk_v_hsum(lk_v_add(lk_v_add(s1_0, s1_2), lk_v_add(s1_1, s1_3)));
  *out_s2 = lk_v_hsum(lk_v_add(lk_v_add(s2_0, s2_2), lk_v_add(s2_1, s2_3)));
  return i;
}

#ifndef LK_LAYER_SPLIT_DEFINED
#define LK_LAYER_SPLIT_DEFINED
/* The weight (1 + w with LK_NORM_WEIGHT_OFFSET_ONE, the same f32 add) and bias, f32, f16 or bf16,
 * widened to f32 once per share of rows, with 1 and -0 where absent, so that the output pass is one
 * branch-free loop, y = fma((v - mean) * rstd, w, b), instead of presence tests, conversions and
 * every pointer live in a loop that spilled to the stack. Values are unchanged.
 * - bf16 rows: split into the even/odd order of lk_vf2 (`pairs`): each block of 2 * LK_VEC_LANES
 *   elements from `origin` (the output pass's first vector element) holds its even elements, then
 *   its odd ones, loaded as they are instead of two permutes (f32 weights, AVX-512) or a shift and
 *   a mask (bf16) per vector and row: the output pass was compute-bound on bf16 rows.
 * - other rows: in element order over [0, n). */
#define LK_LAYER_SPLIT_ELEMENTS 8192
#define LK_LAYER_SPLIT_MIN_ROWS 4
typedef struct lk_layer_split {
  float *weight, *bias; /* always both: 1 and -0 where absent */
  int64_t origin;       /* -1: not built yet */
  bool pairs;
} lk_layer_split;
#endif

static void LK_ISA_SUFFIX(layer_norm_split)(lk_layer_split *split, const lk_norm_job *job, int64_t origin) {
  const int64_t n = job->p.hidden, block = 2 * LK_VEC_LANES;
  const bool offset_one = (job->p.flags & LK_NORM_WEIGHT_OFFSET_ONE) != 0;
  if (!split->pairs) {
    for (int t = 0; t < 2; t++) {
      const void *const from = t == 0 ? job->p.weight : job->p.bias;
      float *const to = t == 0 ? split->weight : split->bias;
      const float absent = t == 0 ? 1.0f : -0.0f, one = t == 0 && offset_one ? 1.0f : 0.0f;
      int64_t j = 0;
      for (; from && j + LK_VEC_LANES <= n; j += LK_VEC_LANES) {
        lk_vf w = lk_v_load(from, j, job->p.weight_dtype);
        lk_v_store(to, j, LK_DTYPE_F32, one != 0.0f ? lk_v_add(w, lk_v_set1(one)) : w, false);
      }
      for (; j < n; j++) to[j] = from ? (one != 0.0f ? one + lk_load_element(from, j, job->p.weight_dtype)
                                                     : lk_load_element(from, j, job->p.weight_dtype))
                                      : absent;
    }
    split->origin = origin;
    return;
  }
  for (int t = 0; t < 2; t++) {
    const void *const from = t == 0 ? job->p.weight : job->p.bias;
    float *const to = t == 0 ? split->weight : split->bias;
    const bool add_one = t == 0 && offset_one; /* 1 + w, the f32 add the output pass would do */
    for (int64_t j = origin; j + block <= n; j += block) {
      lk_vf2 w;
      if (!from) {
        /* Absent: w = 1 and b = -0, so that fma(t, w, b) is t * w, t + b or t exactly, the sign
         * of a zero t included. */
        w.even = w.odd = lk_v_set1(t == 0 ? 1.0f : -0.0f);
      } else if (job->p.weight_dtype == LK_DTYPE_BF16) {
        w = lk_v_load_bf16_pairs((const uint16_t *)from + j);
      } else {
#if LK_PAIR_F32_WEIGHTS
        w = lk_v_load_f32_pairs((const float *)from + j);
#else
        float even[LK_VEC_LANES], odd[LK_VEC_LANES];
        for (int k = 0; k < LK_VEC_LANES; k++) {
          even[k] = ((const float *)from)[j + 2 * k];
          odd[k] = ((const float *)from)[j + 2 * k + 1];
        }
        w.even = lk_v_load(even, 0, LK_DTYPE_F32);
        w.odd = lk_v_load(odd, 0, LK_DTYPE_F32);
#endif
      }
      if (add_one && from) {
        w.even = lk_v_add(w.even, lk_v_set1(1.0f));
        w.odd = lk_v_add(w.odd, lk_v_set1(1.0f));
      }
      lk_v_store(to, j - origin, LK_DTYPE_F32, w.even, false);
      lk_v_store(to, j - origin + LK_VEC_LANES, LK_DTYPE_F32, w.odd, false);
    }
  }
  split->origin = origin;
}

/* The output pass of a bf16 row with the split weight and bias (layer_norm_split), from element
 * i: y = fma((v - mean) * rstd, w, b) in pairs, with no branch in the loop. `streaming` and
 * `finite` are constants at every call: the general loop below, with its presence tests and
 * every pointer live, spilled to the stack and ran at 0.67x of this one (warm [64, 8192]). */
static LK_INLINE int64_t LK_ISA_SUFFIX(layer_norm_output_split)(const uint16_t *x, const uint16_t *residual,
                                                                const lk_layer_split *split, uint16_t *y, int64_t i,
                                                                int64_t n, lk_vf mean_v, lk_vf rstd_v,
                                                                lk_norm_prefetch *prefetch_, lk_norm_residual mode,
                                                                lk_vf alpha, bool streaming, bool finite) {
  lk_norm_prefetch prefetch = *prefetch_; /* a local copy stays in registers */
  const float *const w = split->weight, *const b = split->bias;
  for (int64_t k = i - split->origin; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES, k += 2 * LK_VEC_LANES) {
    lk_norm_prefetch_to(&prefetch, n + i + 2 * LK_VEC_LANES); /* the second half (bf16: n bytes) */
    lk_vf2 v = LK_ISA_SUFFIX(norm_input_pairs)(x, residual, i, mode, alpha);
    v.even = lk_v_fmadd(lk_v_mul(lk_v_sub(v.even, mean_v), rstd_v), lk_v_load(w, k, LK_DTYPE_F32),
                        lk_v_load(b, k, LK_DTYPE_F32));
    v.odd = lk_v_fmadd(lk_v_mul(lk_v_sub(v.odd, mean_v), rstd_v), lk_v_load(w, k + LK_VEC_LANES, LK_DTYPE_F32),
                       lk_v_load(b, k + LK_VEC_LANES, LK_DTYPE_F32));
    if (streaming) lk_v_stream_bf16_pairs(y + i, v, finite);
    else lk_v_store_bf16_pairs(y + i, v, finite);
  }
  *prefetch_ = prefetch;
  return i;
}

/* As layer_norm_output_split, for bf16 weight and bias both present (no 1 + w): read as they are,
 * 16 bits each, and widened by a shift and a mask. The f32 copies double the bytes the output pass
 * pulls from L2 per output line (x, w and b: 192 -> 320), and that traffic, not the two extra
 * operations, set the pace on DRAM-resident rows: 1.08-1.14x cold [4096, 8192]. */
static LK_INLINE int64_t LK_ISA_SUFFIX(layer_norm_output_bf16_affine)(const uint16_t *x, const uint16_t *residual,
                                                                      const uint16_t *w, const uint16_t *b, uint16_t *y,
                                                                      int64_t i, int64_t n, lk_vf mean_v, lk_vf rstd_v,
                                                                      lk_norm_prefetch *prefetch_,
                                                                      lk_norm_residual mode, lk_vf alpha,
                                                                      bool streaming, bool finite) {
  lk_norm_prefetch prefetch = *prefetch_; /* a local copy stays in registers */
  for (; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES) {
    lk_norm_prefetch_to(&prefetch, n + i + 2 * LK_VEC_LANES); /* the second half (bf16: n bytes) */
    lk_vf2 v = LK_ISA_SUFFIX(norm_input_pairs)(x, residual, i, mode, alpha);
    const lk_vf2 wv = lk_v_load_bf16_pairs(w + i), bv = lk_v_load_bf16_pairs(b + i);
    v.even = lk_v_fmadd(lk_v_mul(lk_v_sub(v.even, mean_v), rstd_v), wv.even, bv.even);
    v.odd = lk_v_fmadd(lk_v_mul(lk_v_sub(v.odd, mean_v), rstd_v), wv.odd, bv.odd);
    if (streaming) lk_v_stream_bf16_pairs(y + i, v, finite);
    else lk_v_store_bf16_pairs(y + i, v, finite);
  }
  *prefetch_ = prefetch;
  return i;
}

/* The output pass of an f32 or f16 row with the prepared weight and bias in element order (see
 * layer_norm_split), from element i: y = fma((v - mean) * rstd, w, b), no branch in the loop. */
static LK_INLINE int64_t LK_ISA_SUFFIX(layer_norm_output_linear)(const void *x, const void *residual,
                                                                 const lk_layer_split *split, void *y, int64_t i,
                                                                 int64_t n, lk_vf mean_v, lk_vf rstd_v,
                                                                 lk_norm_prefetch *prefetch_, int64_t half_size,
                                                                 lk_dtype dtype, lk_norm_residual mode, lk_vf alpha,
                                                                 bool streaming) {
  lk_norm_prefetch prefetch = *prefetch_; /* a local copy stays in registers */
  const float *const w = split->weight, *const b = split->bias;
#define LK_NORMALISE(i)                                                                            \
  lk_v_fmadd(lk_v_mul(lk_v_sub(LK_ISA_SUFFIX(norm_input)(x, residual, (i), dtype, mode, alpha), mean_v), rstd_v), \
             lk_v_load(w, (i), LK_DTYPE_F32), lk_v_load(b, (i), LK_DTYPE_F32))
  if (streaming) {
    for (; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES) {
      lk_norm_prefetch_to(&prefetch, (n + i + 2 * LK_VEC_LANES) * half_size); /* the second half */
      lk_v_stream2(y, i, dtype, LK_NORMALISE(i), LK_NORMALISE(i + LK_VEC_LANES), true); /* finite: bf16 only */
    }
  }
  for (; i + LK_VEC_LANES <= n; i += LK_VEC_LANES) lk_v_store(y, i, dtype, LK_NORMALISE(i), true);
#undef LK_NORMALISE
  *prefetch_ = prefetch;
  return i;
}

/* The affine part of the general output loop on one vector: t * w + b (one fused multiply-add
 * where both are present), each only when present. Only rows without the prepared weight and bias
 * (long rows, few rows per share) take that loop. */
#define LK_LAYER_AFFINE(t, weight_v, bias_v)                                                       \
  do {                                                                                             \
    if (has_weight && has_bias) t = lk_v_fmadd(t, (weight_v), (bias_v));                           \
    else if (has_weight) t = lk_v_mul(t, (weight_v));                                              \
    else if (has_bias) t = lk_v_add(t, (bias_v));                                                  \
  } while (0)

/* The output pass, vectors from element i: y = (v - mean) * rstd [* w] [+ b], streamed in pairs when
 * `streaming` (y + i aligned by the caller), prefetching the next row's inputs. */
static LK_INLINE int64_t LK_ISA_SUFFIX(layer_norm_output)(const void *x, const void *residual, const void *weight,
                                                          const void *bias, void *y, int64_t i, int64_t n, float mean,
                                                          float rstd, bool streaming, lk_norm_prefetch *prefetch,
                                                          const lk_layer_split *split, lk_dtype dtype,
                                                          lk_dtype weight_dtype, lk_norm_residual mode, lk_vf alpha,
                                                          bool offset_one, bool finite) {
  /* The second half of the next row's inputs (see layer_norm_sums). */
  const int64_t half_size = (int64_t)lk_dtype_size(dtype) / 2;
  const bool has_weight = weight != NULL, has_bias = bias != NULL;
  const lk_vf mean_v = lk_v_set1(mean), rstd_v = lk_v_set1(rstd), one = lk_v_set1(1.0f);
#define LK_PREFETCH_NEXT(i)                                                                        \
  lk_norm_prefetch_to(prefetch, (n + (i) + 2 * LK_VEC_LANES) * half_size)
  if (dtype == LK_DTYPE_BF16 && weight_dtype == LK_DTYPE_BF16 && has_weight && has_bias && !offset_one) {
#define LK_BF16_AFFINE(streaming_)                                                                 \
  LK_ISA_SUFFIX(layer_norm_output_bf16_affine)((const uint16_t *)x, (const uint16_t *)residual,              \
                                               (const uint16_t *)weight, (const uint16_t *)bias, (uint16_t *)y, i, n, \
                                               mean_v, rstd_v, prefetch, mode, alpha, streaming_, finite)
    i = streaming ? LK_BF16_AFFINE(true) : LK_BF16_AFFINE(false);
#undef LK_BF16_AFFINE
  } else if (split && split->pairs) {
#define LK_SPLIT(streaming_)                                                                       \
  LK_ISA_SUFFIX(layer_norm_output_split)((const uint16_t *)x, (const uint16_t *)residual, split, (uint16_t *)y, i, n, \
                                         mean_v, rstd_v, prefetch, mode, alpha, streaming_, finite)
    i = streaming ? LK_SPLIT(true) : LK_SPLIT(false);
#undef LK_SPLIT
  } else if (split) {
#define LK_LINEAR(streaming_)                                                                      \
  LK_ISA_SUFFIX(layer_norm_output_linear)(x, residual, split, y, i, n, mean_v, rstd_v, prefetch, half_size, \
                                          dtype, mode, alpha, streaming_)
    i = streaming ? LK_LINEAR(true) : LK_LINEAR(false);
#undef LK_LINEAR
  } else if (LK_ISA_SUFFIX(norm_pairs)(dtype, weight_dtype)) {
    const lk_vf2 none = {lk_v_zero(), lk_v_zero()};
    for (; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES) {
      LK_PREFETCH_NEXT(i);
      lk_vf2 v = LK_ISA_SUFFIX(norm_input_pairs)((const uint16_t *)x, (const uint16_t *)residual, i, mode, alpha);
      lk_vf2 w = none, b = none;
      if (has_weight) w = LK_ISA_SUFFIX(norm_weight_pairs)(weight, i, weight_dtype, offset_one);
      if (has_bias) b = LK_ISA_SUFFIX(norm_weight_pairs)(bias, i, weight_dtype, false);
      v.even = lk_v_mul(lk_v_sub(v.even, mean_v), rstd_v);
      v.odd = lk_v_mul(lk_v_sub(v.odd, mean_v), rstd_v);
      LK_LAYER_AFFINE(v.even, w.even, b.even);
      LK_LAYER_AFFINE(v.odd, w.odd, b.odd);
      if (streaming) lk_v_stream_bf16_pairs((uint16_t *)y + i, v, finite);
      else lk_v_store_bf16_pairs((uint16_t *)y + i, v, finite);
    }
  }
#define LK_NORMALISE(out, i)                                                                       \
  do {                                                                                             \
    out = lk_v_mul(lk_v_sub(LK_ISA_SUFFIX(norm_input)(x, residual, (i), dtype, mode, alpha), mean_v), rstd_v); \
    lk_vf w_ = lk_v_zero(), b_ = lk_v_zero();                                                      \
    if (has_weight) {                                                                              \
      w_ = lk_v_load(weight, (i), weight_dtype);                                                   \
      if (offset_one) w_ = lk_v_add(w_, one);                                                      \
    }                                                                                              \
    if (has_bias) b_ = lk_v_load(bias, (i), weight_dtype);                                         \
    LK_LAYER_AFFINE(out, w_, b_);                                                                  \
  } while (0)
  if (streaming) {
    for (; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES) {
      LK_PREFETCH_NEXT(i);
      lk_vf out0, out1;
      LK_NORMALISE(out0, i);
      LK_NORMALISE(out1, i + LK_VEC_LANES);
      lk_v_stream2(y, i, dtype, out0, out1, finite);
    }
  }
  for (; i + LK_VEC_LANES <= n; i += LK_VEC_LANES) {
    lk_vf out;
    LK_NORMALISE(out, i);
    lk_v_store(y, i, dtype, out, finite);
  }
#undef LK_NORMALISE
#undef LK_PREFETCH_NEXT
  return i;
}
#undef LK_LAYER_AFFINE

static LK_INLINE void LK_ISA_SUFFIX(layer_norm_row)(const lk_norm_job *job, int64_t r, bool last_row, lk_dtype dtype,
                                                    lk_dtype weight_dtype, lk_norm_residual mode, uint16_t *stage_row,
                                                    lk_layer_split *split) {
  /* Everything the loops need lives in locals (stores to y may alias *job for the compiler). */
  const bool has_residual = mode != LK_NORM_RESIDUAL_NONE;
  const int64_t n = job->p.hidden, size = (int64_t)lk_dtype_size(dtype);
  const void *const x = (const char *)job->p.x + r * job->p.x_stride * size;
  void *const residual = has_residual ? (char *)job->p.residual + r * job->p.residual_stride * size : NULL;
  void *const y = (char *)job->p.y + r * job->p.y_stride * size;
  const void *const weight = job->p.weight, *const bias = job->p.bias;
  const bool offset_one = (job->p.flags & LK_NORM_WEIGHT_OFFSET_ONE) != 0;
  const float eps = job->p.eps, alpha = job->p.alpha;
  const lk_vf alpha_v = lk_v_set1(alpha);
  const bool stream = job->streaming;
  /* Next-row prefetch into L2 (see layer_norm_sums and layer_norm_output), as in rms_norm_simd.h. */
  const char *const x_next = stream && !last_row ? (const char *)x + job->p.x_stride * size : NULL;
  const char *const residual_next = has_residual && x_next ? (const char *)residual + job->p.residual_stride * size : NULL;

  void *const stage = mode == LK_NORM_RESIDUAL_POST && dtype != LK_DTYPE_F32 && n <= LK_NORM_STAGE_ELEMENTS ? stage_row : NULL;
  /* Every line: requesting every other one (leaving its pair to the L2's adjacent-line prefetcher)
   * measured 0.8x on plain f32 rows. */
  lk_norm_prefetch prefetch = {x_next, residual_next, 0};
  const float shift = lk_layer_norm_shift(x, residual, n, dtype, mode, alpha);
  float s1, s2;
  int64_t i = LK_ISA_SUFFIX(layer_norm_sums)(x, residual, stage, n, dtype, mode, alpha_v, shift, true, &prefetch, &s1, &s2);
  for (; i < n; i++) {
    float v = lk_norm_first_pass_element(x, residual, i, dtype, mode, alpha);
    if (stage) lk_store_element(stage, i, dtype, v);
    float d = v - shift;
    s1 += d;
    s2 += d * d;
  }
  float mean, rstd;
  /* A staged POST row reads v as PRE reads the residual. */
  const bool staged = mode == LK_NORM_RESIDUAL_POST && stage;
  if (!lk_layer_norm_shifted_stats(shift, s1, s2, n, eps, &mean, &rstd)) {
    /* The corrected two-pass form from cache: m0 = sum(v) / n (the deviations from 0), then the
     * deviations from m0. */
    float m0 = 0.0f;
    for (int pass = 0; pass < 2; pass++) {
      const float from = pass == 0 ? 0.0f : m0;
      if (staged) i = LK_ISA_SUFFIX(layer_norm_sums)(x, stage, NULL, n, dtype, LK_NORM_RESIDUAL_PRE, alpha_v, from, false, NULL, &s1, &s2);
      else i = LK_ISA_SUFFIX(layer_norm_sums)(x, residual, NULL, n, dtype, mode, alpha_v, from, false, NULL, &s1, &s2);
      for (; i < n; i++) {
        float d = lk_norm_input_element(x, residual, i, dtype, mode, alpha) - from;
        s1 += d;
        s2 += d * d;
      }
      if (pass == 0) m0 = s1 / (float)n;
    }
    lk_layer_norm_stats(m0, s1, s2, n, eps, &mean, &rstd);
  }

  int64_t head = stream ? lk_stream_head(y, dtype) : 0;
  const bool streaming = stream && head >= 0 && head < n;
  if (!streaming) head = 0;
#define LK_SCALAR_ELEMENT(i)                                                                       \
  do {                                                                                             \
    const float t = (lk_norm_input_element(x, residual, (i), dtype, mode, alpha) - mean) * rstd;  \
    lk_store_element(y, (i), dtype, lk_layer_norm_affine(t, &job->p, (i)));                        \
  } while (0)
  for (i = 0; i < head; i++) LK_SCALAR_ELEMENT(i);
  const lk_layer_split *split_now = NULL;
  if (split) {
    if (split->origin < 0) LK_ISA_SUFFIX(layer_norm_split)(split, job, head);
    if (!split->pairs || split->origin == head) split_now = split;
  }
  /* bf16 rounding needs a NaN fix-up only if an output can be NaN: not when v, the statistics,
   * weight and bias are all finite. */
  const bool finite = dtype == LK_DTYPE_BF16 && job->weight_finite && isfinite(s1) && isfinite(s2) && isfinite(rstd);
#define LK_OUTPUT(mode_, residual_, finite_)                                                       \
  LK_ISA_SUFFIX(layer_norm_output)(x, residual_, weight, bias, y, i, n, mean, rstd, streaming, &prefetch, split_now, \
                                   dtype, weight_dtype, mode_, alpha_v, offset_one, finite_)
  if (staged) i = finite ? LK_OUTPUT(LK_NORM_RESIDUAL_PRE, stage, true) : LK_OUTPUT(LK_NORM_RESIDUAL_PRE, stage, false);
  else i = finite ? LK_OUTPUT(mode, residual, true) : LK_OUTPUT(mode, residual, false);
#undef LK_OUTPUT
  for (; i < n; i++) LK_SCALAR_ELEMENT(i);
#undef LK_SCALAR_ELEMENT
}

/* One instantiation per (dtype, weight dtype, residual form); weight and bias presence and the
 * offset flag are loop invariants inside. */
#define LK_LAYER_ROWS(dtype, weight_dtype, mode)                                                   \
  for (int64_t r = row_begin; r < row_end; r++)                                                    \
    LK_ISA_SUFFIX(layer_norm_row)(job, r, r + 1 == row_end, dtype, weight_dtype, mode, stage_row, split)

#define LK_LAYER_ROWS_MODES(dtype, weight_dtype)                                                   \
  do {                                                                                             \
    switch (job->p.residual_mode) {                                                                \
    case LK_NORM_RESIDUAL_PRE: LK_LAYER_ROWS(dtype, weight_dtype, LK_NORM_RESIDUAL_PRE); break;    \
    case LK_NORM_RESIDUAL_POST: LK_LAYER_ROWS(dtype, weight_dtype, LK_NORM_RESIDUAL_POST); break;  \
    default: LK_LAYER_ROWS(dtype, weight_dtype, LK_NORM_RESIDUAL_NONE); break;                     \
    }                                                                                              \
  } while (0)

void LK_ISA_SUFFIX(lk_layer_norm_rows)(const void *job_, int64_t row_begin, int64_t row_end) {
  const lk_norm_job *job = (const lk_norm_job *)job_;
  uint16_t stage_row[LK_NORM_STAGE_ELEMENTS]; /* POST rows of 16-bit dtypes (see norm.h) */
  const bool f32_weight = job->p.weight_dtype == LK_DTYPE_F32;
  float split_weight[LK_LAYER_SPLIT_ELEMENTS], split_bias[LK_LAYER_SPLIT_ELEMENTS];
  lk_layer_split split_rows = {split_weight, split_bias, -1, job->p.dtype == LK_DTYPE_BF16};
  /* bf16 weight and bias, both present and without 1 + w, are read as they are
   * (layer_norm_output_bf16_affine): no copy. */
  const bool bf16_affine = job->p.dtype == LK_DTYPE_BF16 && job->p.weight_dtype == LK_DTYPE_BF16 && job->p.weight &&
                           job->p.bias && !(job->p.flags & LK_NORM_WEIGHT_OFFSET_ONE);
  lk_layer_split *const split = !bf16_affine && job->p.hidden <= LK_LAYER_SPLIT_ELEMENTS &&
                                        row_end - row_begin >= LK_LAYER_SPLIT_MIN_ROWS
                                    ? &split_rows
                                    : NULL;
  switch (job->p.dtype) {
  case LK_DTYPE_F16:
    if (f32_weight) LK_LAYER_ROWS_MODES(LK_DTYPE_F16, LK_DTYPE_F32);
    else LK_LAYER_ROWS_MODES(LK_DTYPE_F16, LK_DTYPE_F16);
    break;
  case LK_DTYPE_BF16:
    if (f32_weight) LK_LAYER_ROWS_MODES(LK_DTYPE_BF16, LK_DTYPE_F32);
    else LK_LAYER_ROWS_MODES(LK_DTYPE_BF16, LK_DTYPE_BF16);
    break;
  default: LK_LAYER_ROWS_MODES(LK_DTYPE_F32, LK_DTYPE_F32); break;
  }
  /* Streaming stores are weakly ordered: fence before the caller sees this share as done. */
  if (job->streaming) lk_v_stream_fence();
}
