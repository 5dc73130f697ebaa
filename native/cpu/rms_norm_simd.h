/* RMSNorm over a SIMD mapping: included by rms_norm_avx2.c and rms_norm_avx512.c after their
 * mapping header. Same arithmetic as rms_norm_scalar.c; only the order of the sum of squares
 * differs (eight vector chains, then a horizontal sum), and bf16 is processed in even/odd pairs
 * (lk_vf2), which changes no result. The residual placement (NONE, PRE, POST: norm_simd.h) is a
 * compile-time parameter of every loop, so the forms cost each other nothing.
 *
 * Traffic is what bounds it: per row, x (and residual) are read once from memory, re-read from
 * L1/L2 for the second pass (a row of 8192 f32 is 32 KiB), and y is written once — with
 * streaming stores when the output is large, which saves the read-for-ownership of y's lines. */
#include "rms_norm.h"
#include "norm_simd.h"

/* Sum of squares of v over elements [0, n) of a row; returns how many elements it covered (a
 * multiple of the vector width) so the caller finishes the tail with the scalar definition. In
 * the PRE form it first writes residual = round(residual + x) and squares that rounded value. */
static LK_INLINE int64_t LK_ISA_SUFFIX(sum_squares)(const void *x, void *residual, void *stage, int64_t n,
                                                    lk_dtype dtype, lk_norm_residual mode, lk_vf alpha, float *out) {
  /* Eight chains: an FMA has 4 cycles of latency and two issue per cycle, so four chains would
   * leave the FMA units half idle on a cache-resident row (one decode token). */
  lk_vf acc0 = lk_v_zero(), acc1 = lk_v_zero(), acc2 = lk_v_zero(), acc3 = lk_v_zero();
  lk_vf acc4 = lk_v_zero(), acc5 = lk_v_zero(), acc6 = lk_v_zero(), acc7 = lk_v_zero();
  int64_t i = 0;
#define LK_SQUARE(acc, offset)                                                                     \
  do {                                                                                             \
    lk_vf v = LK_ISA_SUFFIX(norm_first_input)(x, residual, stage, i + (offset), dtype, mode, alpha); \
    acc = lk_v_fmadd(v, v, acc);                                                                   \
  } while (0)
  if (dtype == LK_DTYPE_BF16) {
    /* Even and odd elements of 2 * LK_VEC_LANES at a time, widened without shuffles. */
#define LK_SQUARE_PAIR(acc_even, acc_odd, offset)                                                  \
  do {                                                                                             \
    lk_vf2 v = LK_ISA_SUFFIX(norm_first_input_pairs)((const uint16_t *)x, (uint16_t *)residual,    \
                                                     (uint16_t *)stage, i + (offset), mode, alpha); \
    acc_even = lk_v_fmadd(v.even, v.even, acc_even);                                               \
    acc_odd = lk_v_fmadd(v.odd, v.odd, acc_odd);                                                   \
  } while (0)
    for (; i + 8 * LK_VEC_LANES <= n; i += 8 * LK_VEC_LANES) {
      LK_SQUARE_PAIR(acc0, acc1, 0);
      LK_SQUARE_PAIR(acc2, acc3, 2 * LK_VEC_LANES);
      LK_SQUARE_PAIR(acc4, acc5, 4 * LK_VEC_LANES);
      LK_SQUARE_PAIR(acc6, acc7, 6 * LK_VEC_LANES);
    }
    for (; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES) LK_SQUARE_PAIR(acc0, acc1, 0);
#undef LK_SQUARE_PAIR
  } else {
    for (; i + 8 * LK_VEC_LANES <= n; i += 8 * LK_VEC_LANES) {
      LK_SQUARE(acc0, 0);
      LK_SQUARE(acc1, LK_VEC_LANES);
      LK_SQUARE(acc2, 2 * LK_VEC_LANES);
      LK_SQUARE(acc3, 3 * LK_VEC_LANES);
      LK_SQUARE(acc4, 4 * LK_VEC_LANES);
      LK_SQUARE(acc5, 5 * LK_VEC_LANES);
      LK_SQUARE(acc6, 6 * LK_VEC_LANES);
      LK_SQUARE(acc7, 7 * LK_VEC_LANES);
    }
  }
  for (; i + LK_VEC_LANES <= n; i += LK_VEC_LANES) LK_SQUARE(acc0, 0);
#undef LK_SQUARE
  acc0 = lk_v_add(lk_v_add(acc0, acc4), lk_v_add(acc1, acc5));
  acc2 = lk_v_add(lk_v_add(acc2, acc6), lk_v_add(acc3, acc7));
  *out = lk_v_hsum(lk_v_add(acc0, acc2));
  return i;
}

/* Pass 2's vector part from element i: y = v * inv_rms * w, streamed in pairs when `streaming`
 * (y + i aligned by the caller), prefetching the next row's inputs. Returns where it stopped. */
static LK_INLINE int64_t LK_ISA_SUFFIX(rms_norm_pass2)(const void *x, const void *residual, const void *weight, void *y,
                                                       int64_t i, int64_t n, float inv_rms, bool streaming,
                                                       const char *x_next, const char *residual_next, lk_dtype dtype,
                                                       lk_dtype weight_dtype, lk_norm_residual mode, lk_vf alpha,
                                                       bool offset_one, bool finite) {
  const int64_t size = (int64_t)lk_dtype_size(dtype);
  const lk_vf inv_rms_v = lk_v_set1(inv_rms), one = lk_v_set1(1.0f);
#define LK_NORMALISE(i)                                                                            \
  lk_v_mul(lk_v_mul(LK_ISA_SUFFIX(norm_input)(x, residual, (i), dtype, mode, alpha), inv_rms_v),   \
           offset_one ? lk_v_add(lk_v_load(weight, (i), weight_dtype), one) : lk_v_load(weight, (i), weight_dtype))
  if (LK_ISA_SUFFIX(norm_pairs)(dtype, weight_dtype)) {
    /* Even and odd elements of 2 * LK_VEC_LANES at a time (see lk_vf2): no shuffles for bf16,
     * two permutes for an f32 weight. */
    for (; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES) {
      if (x_next) {
        lk_prefetch(x_next + i * size);
        if (residual_next) lk_prefetch(residual_next + i * size);
      }
      lk_vf2 v = LK_ISA_SUFFIX(norm_input_pairs)((const uint16_t *)x, (const uint16_t *)residual, i, mode, alpha);
      lk_vf2 w = LK_ISA_SUFFIX(norm_weight_pairs)(weight, i, weight_dtype, offset_one);
      v.even = lk_v_mul(lk_v_mul(v.even, inv_rms_v), w.even);
      v.odd = lk_v_mul(lk_v_mul(v.odd, inv_rms_v), w.odd);
      if (streaming) lk_v_stream_bf16_pairs((uint16_t *)y + i, v, finite);
      else lk_v_store_bf16_pairs((uint16_t *)y + i, v, finite);
    }
  } else if (streaming) {
    for (; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES) {
      if (x_next) {
        lk_prefetch(x_next + i * size);
        if (residual_next) lk_prefetch(residual_next + i * size);
      }
      lk_v_stream2(y, i, dtype, LK_NORMALISE(i), LK_NORMALISE(i + LK_VEC_LANES), finite);
    }
  }
  for (; i + LK_VEC_LANES <= n; i += LK_VEC_LANES) lk_v_store(y, i, dtype, LK_NORMALISE(i), finite);
#undef LK_NORMALISE
  return i;
}

static LK_INLINE void LK_ISA_SUFFIX(rms_norm_row)(const lk_norm_job *job, int64_t r, bool last_row, lk_dtype dtype,
                                                  lk_dtype weight_dtype, lk_norm_residual mode, bool offset_one,
                                                  uint16_t *stage_row) {
  /* Everything the loops need lives in locals: stores to y may alias *job as far as the compiler
   * knows, so fields read inside the loops would be reloaded after every store. */
  const bool has_residual = mode != LK_NORM_RESIDUAL_NONE;
  const int64_t n = job->p.hidden, size = (int64_t)lk_dtype_size(dtype);
  const void *const x = (const char *)job->p.x + r * job->p.x_stride * size;
  void *const residual = has_residual ? (char *)job->p.residual + r * job->p.residual_stride * size : NULL;
  void *const y = (char *)job->p.y + r * job->p.y_stride * size;
  const void *const weight = job->p.weight;
  const float eps = job->p.eps, alpha = job->p.alpha;
  const lk_vf alpha_v = lk_v_set1(alpha);
  const bool stream = job->streaming;
  /* Pass 2 works from L1 and writes around the caches, so no demand read reaches DRAM while it
   * runs: prefetch the next row's inputs meanwhile, one line per line of this row, so that pass 1
   * of the next row finds them (measured on [4096, 8192] bf16, AVX-512, 2 threads: 15 -> 22 GB/s
   * against a 26 GB/s streaming-copy ceiling). Only for large outputs, where the next row is not
   * already cached. */
  const char *const x_next = stream && !last_row ? (const char *)x + job->p.x_stride * size : NULL;
  const char *const residual_next = has_residual && x_next ? (const char *)residual + job->p.residual_stride * size : NULL;

  void *const stage = mode == LK_NORM_RESIDUAL_POST && dtype != LK_DTYPE_F32 && n <= LK_NORM_STAGE_ELEMENTS ? stage_row : NULL;
  float sum_squares;
  int64_t i = LK_ISA_SUFFIX(sum_squares)(x, residual, stage, n, dtype, mode, alpha_v, &sum_squares);
  for (; i < n; i++) {
    float v = lk_norm_first_pass_element(x, residual, i, dtype, mode, alpha);
    if (stage) lk_store_element(stage, i, dtype, v);
    sum_squares += v * v;
  }

  const float inv_rms = lk_rms_norm_inv_rms(sum_squares, n, eps);
  /* Elements before y is aligned for a streaming store (and the tail) use the scalar path. */
  int64_t head = stream ? lk_stream_head(y, dtype) : 0;
  const bool streaming = stream && head >= 0 && head < n;
  if (!streaming) head = 0;
#define LK_SCALAR_ELEMENT(i)                                                                       \
  do {                                                                                             \
    float w = lk_load_element(weight, (i), weight_dtype);                                          \
    if (offset_one) w = 1.0f + w;                                                                  \
    lk_store_element(y, (i), dtype, lk_norm_input_element(x, residual, (i), dtype, mode, alpha) * inv_rms * w); \
  } while (0)
  for (i = 0; i < head; i++) LK_SCALAR_ELEMENT(i);
  /* bf16 rounding needs a NaN fix-up only if an output can be NaN: not when the row's sum of
   * squares is finite (every v finite) and the weight is finite (checked once per call). */
  const bool finite = dtype == LK_DTYPE_BF16 && job->weight_finite && isfinite(sum_squares);
#define LK_PASS2(mode_, residual_, finite_)                                                        \
  LK_ISA_SUFFIX(rms_norm_pass2)(x, residual_, weight, y, i, n, inv_rms, streaming, x_next, residual_next, dtype,  \
                                weight_dtype, mode_, alpha_v, offset_one, finite_)
  /* A staged POST row reads v as PRE reads the residual. */
  if (mode == LK_NORM_RESIDUAL_POST && stage)
    i = finite ? LK_PASS2(LK_NORM_RESIDUAL_PRE, stage, true) : LK_PASS2(LK_NORM_RESIDUAL_PRE, stage, false);
  else
    i = finite ? LK_PASS2(mode, residual, true) : LK_PASS2(mode, residual, false);
#undef LK_PASS2
  for (; i < n; i++) LK_SCALAR_ELEMENT(i);
#undef LK_SCALAR_ELEMENT
}

/* One instantiation per (dtype, weight dtype, residual form, offset) so the inner loops carry no
 * branches on them. */
#define LK_RMS_ROWS(dtype, weight_dtype, mode, offset_one)                                         \
  for (int64_t r = row_begin; r < row_end; r++)                                                    \
    LK_ISA_SUFFIX(rms_norm_row)(job, r, r + 1 == row_end, dtype, weight_dtype, mode, offset_one, stage_row)

#define LK_RMS_ROWS_OFFSET(dtype, weight_dtype, mode)                                              \
  do {                                                                                             \
    if (offset_one) LK_RMS_ROWS(dtype, weight_dtype, mode, true);                                  \
    else LK_RMS_ROWS(dtype, weight_dtype, mode, false);                                            \
  } while (0)

#define LK_RMS_ROWS_FLAGS(dtype, weight_dtype)                                                      \
  do {                                                                                             \
    switch (job->p.residual_mode) {                                                                \
    case LK_NORM_RESIDUAL_PRE: LK_RMS_ROWS_OFFSET(dtype, weight_dtype, LK_NORM_RESIDUAL_PRE); break; \
    case LK_NORM_RESIDUAL_POST: LK_RMS_ROWS_OFFSET(dtype, weight_dtype, LK_NORM_RESIDUAL_POST); break; \
    default: LK_RMS_ROWS_OFFSET(dtype, weight_dtype, LK_NORM_RESIDUAL_NONE); break;                \
    }                                                                                              \
  } while (0)

void LK_ISA_SUFFIX(lk_rms_norm_rows)(const void *job_, int64_t row_begin, int64_t row_end) {
  const lk_norm_job *job = (const lk_norm_job *)job_;
  uint16_t stage_row[LK_NORM_STAGE_ELEMENTS]; /* POST rows of 16-bit dtypes (see norm.h) */
  const bool offset_one = (job->p.flags & LK_NORM_WEIGHT_OFFSET_ONE) != 0;
  const bool f32_weight = job->p.weight_dtype == LK_DTYPE_F32;
  switch (job->p.dtype) {
  case LK_DTYPE_F16:
    if (f32_weight) LK_RMS_ROWS_FLAGS(LK_DTYPE_F16, LK_DTYPE_F32);
    else LK_RMS_ROWS_FLAGS(LK_DTYPE_F16, LK_DTYPE_F16);
    break;
  case LK_DTYPE_BF16:
    if (f32_weight) LK_RMS_ROWS_FLAGS(LK_DTYPE_BF16, LK_DTYPE_F32);
    else LK_RMS_ROWS_FLAGS(LK_DTYPE_BF16, LK_DTYPE_BF16);
    break;
  default: LK_RMS_ROWS_FLAGS(LK_DTYPE_F32, LK_DTYPE_F32); break;
  }
  /* Streaming stores are weakly ordered: fence before the caller sees this share as done. */
  if (job->streaming) lk_v_stream_fence();
}
