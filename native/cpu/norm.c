/* lk_norm (and through it lk_rms_norm / lk_fused_add_rms_norm): argument checks, then rows split
 * over the context's threads and run by the context's ISA variant of the kind's kernel. */
#include "layer_norm.h"
#include "norm_check.h"
#include "rms_norm.h"

/* A row of a few thousand elements takes about a microsecond: below ~64 Ki elements per extra
 * thread, waking a worker costs more than it saves. */
#define LK_NORM_MIN_ELEMENTS_PER_THREAD ((int64_t)1 << 16)

/* Whether every weight element is finite: lets the bf16 kernels skip the NaN fix-up of their
 * output rounding (an output is then NaN only if its row has a NaN or infinite input, which the
 * row's statistics show). Worth one scalar pass over the weight only when many rows share it. */
#define LK_WEIGHT_SCAN_MIN_ROWS 16

static bool all_finite(const void *values, int64_t n, lk_dtype dtype) {
  /* On the bits (an all-ones exponent is an infinity or a NaN), without an early exit, so the loop
   * vectorises: a per-element convert-and-isfinite took 30% of a [16, 8192] bf16 LayerNorm call. */
  if (!values) return true;
  unsigned bad = 0;
  if (dtype == LK_DTYPE_F32) {
    const uint32_t *bits = (const uint32_t *)values;
    for (int64_t i = 0; i < n; i++) bad |= (bits[i] & 0x7f800000u) == 0x7f800000u;
  } else {
    const uint16_t *bits = (const uint16_t *)values;
    const uint16_t exponent = dtype == LK_DTYPE_F16 ? 0x7c00u : 0x7f80u;
    for (int64_t i = 0; i < n; i++) bad |= (bits[i] & exponent) == exponent;
  }
  return bad == 0;
}

static lk_status check_stride(int64_t *stride, int64_t hidden, const char *name) {
  if (*stride == 0) *stride = hidden;
  if (*stride < hidden)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: %lld is less than hidden (%lld); 0 means hidden", name,
                   (long long)*stride, (long long)hidden);
  return LK_OK;
}

static lk_status check_extent(const void *base, const lk_norm_params *p, int64_t stride, const char *stride_name) {
  if (lk_extent_bytes(base, p->rows, p->hidden, stride, p->dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: rows (%lld) x %s (%lld) x hidden (%lld) exceeds the address space",
                   stride_name, (long long)p->rows, stride_name, (long long)stride, (long long)p->hidden);
  return LK_OK;
}

static const char *residual_mode_name(lk_norm_residual mode) {
  return mode == LK_NORM_RESIDUAL_PRE ? "PRE" : mode == LK_NORM_RESIDUAL_POST ? "POST" : "NONE";
}

/* The scalar arguments: enums, sizes, eps, alpha, flags, strides. */
static lk_status validate_scalars(lk_norm_params *p) {
  if (p->kind != LK_NORM_RMS && p->kind != LK_NORM_LAYER)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "kind: %d is not an lk_norm_kind value", (int)p->kind);
  if (p->residual_mode != LK_NORM_RESIDUAL_NONE && p->residual_mode != LK_NORM_RESIDUAL_PRE &&
      p->residual_mode != LK_NORM_RESIDUAL_POST)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "residual_mode: %d is not an lk_norm_residual value", (int)p->residual_mode);
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
  if (p->residual_mode == LK_NORM_RESIDUAL_POST) {
    if (!isfinite(p->alpha))
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "alpha: %g must be finite", (double)p->alpha);
    if (p->alpha == 0.0f) p->alpha = 1.0f;
  } else if (p->alpha != 0.0f && p->alpha != 1.0f) {
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "alpha: %g scales the residual of the POST form only; must be 0 or 1 with %s",
                   (double)p->alpha, residual_mode_name(p->residual_mode));
  }
  if (p->flags & ~LK_NORM_WEIGHT_OFFSET_ONE)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "flags: unknown bits 0x%x", (unsigned)(p->flags & ~LK_NORM_WEIGHT_OFFSET_ONE));
  lk_status status;
  if ((status = check_stride(&p->x_stride, p->hidden, "x_stride")) != LK_OK) return status;
  if ((status = check_stride(&p->y_stride, p->hidden, "y_stride")) != LK_OK) return status;
  if (p->residual_mode != LK_NORM_RESIDUAL_NONE &&
      (status = check_stride(&p->residual_stride, p->hidden, "residual_stride")) != LK_OK)
    return status;
  return LK_OK;
}

/* The pointers, extents and aliasing (only when there are rows to touch). */
static lk_status validate_buffers(const lk_norm_params *p) {
  const bool has_residual = p->residual_mode != LK_NORM_RESIDUAL_NONE;
  if (!p->x) return lk_fail(LK_ERR_INVALID_ARGUMENT, "x: NULL");
  if (!p->y) return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: NULL");
  if (!p->weight && p->kind == LK_NORM_RMS) return lk_fail(LK_ERR_INVALID_ARGUMENT, "weight: NULL (RMSNorm needs one)");
  if (!p->weight && (p->flags & LK_NORM_WEIGHT_OFFSET_ONE))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "weight: NULL with LK_NORM_WEIGHT_OFFSET_ONE (the flag offsets a stored weight)");
  if (p->bias && p->kind != LK_NORM_LAYER)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "bias: must be NULL for LK_NORM_RMS (LayerNorm only)");
  if (has_residual && !p->residual)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "residual: NULL (required by the %s residual form)",
                   residual_mode_name(p->residual_mode));
  if (!has_residual && p->residual)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "residual: must be NULL without a residual form (residual_mode NONE)");

  /* Sizes that describe no possible buffer are bad input, not something to index with. */
  lk_status status;
  if ((status = check_extent(p->x, p, p->x_stride, "x_stride")) != LK_OK) return status;
  if ((status = check_extent(p->y, p, p->y_stride, "y_stride")) != LK_OK) return status;
  if (has_residual && (status = check_extent(p->residual, p, p->residual_stride, "residual_stride")) != LK_OK)
    return status;
  if ((p->weight && lk_extent_bytes(p->weight, 1, p->hidden, p->hidden, p->weight_dtype) < 0) ||
      (p->bias && lk_extent_bytes(p->bias, 1, p->hidden, p->hidden, p->weight_dtype) < 0))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "hidden: %lld elements of weight exceed the address space", (long long)p->hidden);

  /* Aliasing: identical tensors (same base and stride) may alias as documented; any other overlap
   * with a tensor the call writes would read elements another row (or pass) already overwrote.
   * Read-only inputs may share memory. */
  const lk_span none = {0, 0};
  lk_span x = lk_rows_span(p->x, p->rows, p->hidden, p->x_stride, p->dtype);
  lk_span y = lk_rows_span(p->y, p->rows, p->hidden, p->y_stride, p->dtype);
  lk_span w = p->weight ? lk_rows_span(p->weight, 1, p->hidden, p->hidden, p->weight_dtype) : none;
  lk_span b = p->bias ? lk_rows_span(p->bias, 1, p->hidden, p->hidden, p->weight_dtype) : none;
  bool y_is_x = p->y == p->x && p->y_stride == p->x_stride;
  if (lk_spans_overlap(x, y) && !y_is_x)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: overlaps x without being x itself (in place needs y == x and equal strides)");
  if (lk_spans_overlap(w, y)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: overlaps weight");
  if (lk_spans_overlap(b, y)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: overlaps bias");
  if (has_residual) {
    lk_span res = lk_rows_span(p->residual, p->rows, p->hidden, p->residual_stride, p->dtype);
    if (p->residual_mode == LK_NORM_RESIDUAL_PRE) {
      bool y_is_res = p->y == p->residual && p->y_stride == p->residual_stride;
      if (lk_spans_overlap(res, x)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "residual: overlaps x");
      if (lk_spans_overlap(res, w)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "residual: overlaps weight");
      if (lk_spans_overlap(res, b)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "residual: overlaps bias");
      if (lk_spans_overlap(res, y) && !y_is_res)
        return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: overlaps residual without being residual itself");
    } else if (lk_spans_overlap(res, y)) {
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: overlaps residual (read only in the POST form: y may be x, not residual)");
    }
  }
  return LK_OK;
}

LK_API lk_status lk_norm_check(lk_norm_params *p) {
  lk_status status = validate_scalars(p);
  if (status != LK_OK || p->rows == 0) return status;
  return validate_buffers(p);
}

lk_status lk_norm_validate(const lk_norm_params *params, lk_norm_job *job) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  job->p = *params;
  lk_norm_params *p = &job->p;
  lk_status status = lk_norm_check(p);
  if (status != LK_OK || p->rows == 0) return status;
  int64_t out_bytes = p->rows * p->hidden * (int64_t)lk_dtype_size(p->dtype);
  job->streaming = out_bytes >= LK_STREAMING_STORE_MIN_BYTES;
  job->weight_finite = p->dtype == LK_DTYPE_BF16 && p->rows >= LK_WEIGHT_SCAN_MIN_ROWS &&
                       all_finite(p->weight, p->hidden, p->weight_dtype) &&
                       all_finite(p->bias, p->hidden, p->weight_dtype);
  return LK_OK;
}

static lk_rows_fn variant(lk_isa isa, lk_norm_kind kind) {
  switch (isa) {
#if defined(LK_HAVE_AVX512)
  case LK_ISA_AVX512: return kind == LK_NORM_LAYER ? lk_layer_norm_rows_avx512 : lk_rms_norm_rows_avx512;
#endif
#if defined(LK_HAVE_AVX2)
  case LK_ISA_AVX2: return kind == LK_NORM_LAYER ? lk_layer_norm_rows_avx2 : lk_rms_norm_rows_avx2;
#endif
  default: return kind == LK_NORM_LAYER ? lk_layer_norm_rows_scalar : lk_rms_norm_rows_scalar;
  }
}

lk_status lk_norm_run(lk_cpu_context *context, const lk_norm_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  lk_norm_job job;
  memset(&job, 0, sizeof job);
  status = lk_norm_validate(params, &job);
  if (status == LK_OK && job.p.rows > 0)
    lk_parallel_rows(context, variant(context->isa, job.p.kind), &job, job.p.rows, job.p.hidden,
                     LK_NORM_MIN_ELEMENTS_PER_THREAD);
  lk_context_leave(context);
  return status;
}

LK_API lk_status lk_norm(lk_cpu_context *context, const lk_norm_params *params) {
  return lk_norm_run(context, params);
}
