/* lk_rms_norm / lk_fused_add_rms_norm: argument checks, then rows split over the context's
 * threads and run by the context's ISA variant. */
#include "rms_norm.h"

/* A row of a few thousand elements takes about a microsecond: below ~64 Ki elements per extra
 * thread, waking a worker costs more than it saves. */
#define LK_RMS_NORM_MIN_ELEMENTS_PER_THREAD ((int64_t)1 << 16)

static lk_status check_stride(int64_t *stride, int64_t hidden, const char *name) {
  if (*stride == 0) *stride = hidden;
  if (*stride < hidden)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: %lld is less than hidden (%lld); 0 means hidden", name,
                   (long long)*stride, (long long)hidden);
  return LK_OK;
}

/* Whether every weight element is finite: lets the bf16 kernels skip the NaN fix-up of their
 * output rounding (an output is then NaN only if its row has a NaN or infinite x, which the row's
 * sum of squares shows). Worth one scalar pass over the weight only when many rows share it. */
#define LK_WEIGHT_SCAN_MIN_ROWS 16

static bool all_finite(const void *values, int64_t n, lk_dtype dtype) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(lk_load_element(values, i, dtype))) return false;
  return true;
}

static lk_status check_extent(const void *base, const lk_rms_norm_params *p, int64_t stride, const char *stride_name) {
  if (lk_extent_bytes(base, p->rows, p->hidden, stride, p->dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: rows (%lld) x %s (%lld) x hidden (%lld) exceeds the address space",
                   stride_name, (long long)p->rows, stride_name, (long long)stride, (long long)p->hidden);
  return LK_OK;
}

static lk_status validate(const lk_rms_norm_params *params, bool fused, lk_rms_norm_job *job) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  job->p = *params;
  job->fused = fused;
  lk_rms_norm_params *p = &job->p;
  if (!lk_dtype_valid(p->dtype))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "dtype: %d is not an lk_dtype value", (int)p->dtype);
  if (p->weight_dtype != p->dtype && p->weight_dtype != LK_DTYPE_F32)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "weight_dtype: must equal dtype (%s) or be f32, got %d",
                   lk_dtype_name(p->dtype), (int)p->weight_dtype);
  if (p->rows < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "rows: %lld is negative", (long long)p->rows);
  if (p->hidden <= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "hidden: %lld must be positive", (long long)p->hidden);
  if (!(p->eps >= 0.0f) || p->eps == (float)INFINITY)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "eps: %g must be finite and non-negative", (double)p->eps);
  if (p->flags & ~LK_NORM_WEIGHT_OFFSET_ONE)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "flags: unknown bits 0x%x", (unsigned)(p->flags & ~LK_NORM_WEIGHT_OFFSET_ONE));
  lk_status status;
  if ((status = check_stride(&p->x_stride, p->hidden, "x_stride")) != LK_OK) return status;
  if ((status = check_stride(&p->y_stride, p->hidden, "y_stride")) != LK_OK) return status;
  if (fused && (status = check_stride(&p->residual_stride, p->hidden, "residual_stride")) != LK_OK) return status;
  if (p->rows == 0) return LK_OK;
  if (!p->x) return lk_fail(LK_ERR_INVALID_ARGUMENT, "x: NULL");
  if (!p->y) return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: NULL");
  if (!p->weight) return lk_fail(LK_ERR_INVALID_ARGUMENT, "weight: NULL");
  if (fused && !p->residual) return lk_fail(LK_ERR_INVALID_ARGUMENT, "residual: NULL (required by the fused form)");
  if (!fused && p->residual)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "residual: must be NULL for lk_rms_norm (use lk_fused_add_rms_norm)");

  /* Sizes that describe no possible buffer are bad input, not something to index with. */
  if ((status = check_extent(p->x, p, p->x_stride, "x_stride")) != LK_OK) return status;
  if ((status = check_extent(p->y, p, p->y_stride, "y_stride")) != LK_OK) return status;
  if (fused && (status = check_extent(p->residual, p, p->residual_stride, "residual_stride")) != LK_OK)
    return status;
  if (lk_extent_bytes(p->weight, 1, p->hidden, p->hidden, p->weight_dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "hidden: %lld elements of weight exceed the address space", (long long)p->hidden);

  /* Aliasing: identical tensors (same base and stride) may alias as documented; any other overlap
   * would read elements another row already overwrote. */
  lk_span x = lk_rows_span(p->x, p->rows, p->hidden, p->x_stride, p->dtype);
  lk_span y = lk_rows_span(p->y, p->rows, p->hidden, p->y_stride, p->dtype);
  lk_span w = lk_rows_span(p->weight, 1, p->hidden, p->hidden, p->weight_dtype);
  bool y_is_x = p->y == p->x && p->y_stride == p->x_stride;
  if (lk_spans_overlap(x, y) && !y_is_x)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: overlaps x without being x itself (in place needs y == x and equal strides)");
  if (lk_spans_overlap(w, y)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: overlaps weight");
  if (fused) {
    lk_span res = lk_rows_span(p->residual, p->rows, p->hidden, p->residual_stride, p->dtype);
    bool y_is_res = p->y == p->residual && p->y_stride == p->residual_stride;
    if (lk_spans_overlap(res, x)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "residual: overlaps x");
    if (lk_spans_overlap(res, w)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "residual: overlaps weight");
    if (lk_spans_overlap(res, y) && !y_is_res)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: overlaps residual without being residual itself");
  }
  int64_t out_bytes = p->rows * p->hidden * (int64_t)lk_dtype_size(p->dtype);
  job->streaming = out_bytes >= LK_STREAMING_STORE_MIN_BYTES;
  job->weight_finite = p->dtype == LK_DTYPE_BF16 && p->rows >= LK_WEIGHT_SCAN_MIN_ROWS &&
                       all_finite(p->weight, p->hidden, p->weight_dtype);
  return LK_OK;
}

static lk_rows_fn variant(lk_isa isa) {
  switch (isa) {
#if defined(LK_HAVE_AVX512)
  case LK_ISA_AVX512: return lk_rms_norm_rows_avx512;
#endif
#if defined(LK_HAVE_AVX2)
  case LK_ISA_AVX2: return lk_rms_norm_rows_avx2;
#endif
  default: return lk_rms_norm_rows_scalar;
  }
}

static lk_status run(lk_cpu_context *context, const lk_rms_norm_params *params, bool fused) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  lk_rms_norm_job job;
  memset(&job, 0, sizeof job);
  status = validate(params, fused, &job);
  if (status == LK_OK && job.p.rows > 0)
    lk_parallel_rows(context, variant(context->isa), &job, job.p.rows, job.p.hidden,
                     LK_RMS_NORM_MIN_ELEMENTS_PER_THREAD);
  lk_context_leave(context);
  return status;
}

LK_API lk_status lk_rms_norm(lk_cpu_context *context, const lk_rms_norm_params *params) {
  return run(context, params, false);
}

LK_API lk_status lk_fused_add_rms_norm(lk_cpu_context *context, const lk_rms_norm_params *params) {
  return run(context, params, true);
}
