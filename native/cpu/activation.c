/* lk_apply_activation / lk_glu: argument checks, then rows split over the context's threads and
 * run by the context's ISA variant. Both become one lk_activation_job (activation.h). */
#include "activation.h"
#include "activation_check.h"

/* An element costs a few ns at most (the erf forms): below ~64 Ki elements per extra thread,
 * waking a worker costs more than it saves. */
#define LK_ACTIVATION_MIN_ELEMENTS_PER_THREAD ((int64_t)1 << 16)
/* Rows split by elements (activation.h, pieces) take at least this many elements per piece. */
#ifndef LK_ACTIVATION_MIN_PIECE
#define LK_ACTIVATION_MIN_PIECE ((int64_t)4096)
#endif
/* lk_apply_activation's span is cut into chunks of this many elements, the rows threads split. */
#define LK_ACTIVATION_CHUNK ((int64_t)1 << 14)

static bool activation_valid(lk_activation a) {
  return a >= LK_ACTIVATION_SILU && a <= LK_ACTIVATION_ERF;
}

static lk_status check_common(lk_activation activation, lk_dtype dtype) {
  if (!activation_valid(activation))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "activation: %d is not an lk_activation value", (int)activation);
  if (!lk_dtype_valid(dtype))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "dtype: %d is not an lk_dtype value", (int)dtype);
  return LK_OK;
}

static lk_rows_fn variant(lk_isa isa) {
  switch (isa) {
#if defined(LK_HAVE_AVX512)
  case LK_ISA_AVX512: return lk_activation_rows_avx512;
#endif
#if defined(LK_HAVE_AVX2)
  case LK_ISA_AVX2: return lk_activation_rows_avx2;
#endif
  default: return lk_activation_rows_scalar;
  }
}

static void run_job(lk_cpu_context *context, lk_activation_job *job) {
  const int64_t elements = (job->rows - 1) * job->cols + job->last_cols;
  job->streaming = elements * (int64_t)lk_dtype_size(job->dtype) >= LK_STREAMING_STORE_MIN_BYTES;
  /* Fewer rows than threads (a decode step): split rows by elements, into pieces of a multiple of
   * 64 elements (whole cache lines and vectors) of at least LK_ACTIVATION_MIN_PIECE. Elementwise
   * math: the result does not depend on the split. */
  job->pieces_per_row = 1;
  job->piece_cols = job->cols;
  int64_t threads = context->num_threads, min_per_thread = LK_ACTIVATION_MIN_ELEMENTS_PER_THREAD;
  if (job->rows < threads && job->cols >= 2 * LK_ACTIVATION_MIN_PIECE) {
    int64_t want = (threads + job->rows - 1) / job->rows;
    if (want > job->cols / LK_ACTIVATION_MIN_PIECE) want = job->cols / LK_ACTIVATION_MIN_PIECE;
    job->piece_cols = ((job->cols + want - 1) / want + 63) / 64 * 64;
    job->pieces_per_row = (job->cols + job->piece_cols - 1) / job->piece_cols;
    min_per_thread = LK_ACTIVATION_MIN_PIECE;
  }
  lk_parallel_rows(context, variant(context->isa), job, job->rows * job->pieces_per_row, job->piece_cols, min_per_thread);
}

LK_API lk_status lk_activation_check(const lk_activation_params *p) {
  lk_status status = check_common(p->activation, p->dtype);
  if (status != LK_OK) return status;
  if (p->n < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "n: %lld is negative", (long long)p->n);
  if (p->n == 0) return LK_OK;
  if (!p->x) return lk_fail(LK_ERR_INVALID_ARGUMENT, "x: NULL");
  if (!p->y) return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: NULL");
  if (lk_extent_bytes(p->x, 1, p->n, p->n, p->dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "n: %lld elements of x exceed the address space", (long long)p->n);
  if (lk_extent_bytes(p->y, 1, p->n, p->n, p->dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "n: %lld elements of y exceed the address space", (long long)p->n);
  lk_span x = lk_rows_span(p->x, 1, p->n, p->n, p->dtype);
  lk_span y = lk_rows_span(p->y, 1, p->n, p->n, p->dtype);
  if (lk_spans_overlap(x, y) && p->y != p->x)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "y: overlaps x without being x itself (in place needs y == x)");
  return LK_OK;
}

static lk_status validate_activation(const lk_activation_params *p, lk_activation_job *job) {
  if (!p) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_status status = lk_activation_check(p);
  if (status != LK_OK || p->n == 0) return status;
  job->gate = p->x;
  job->up = NULL;
  job->out = p->y;
  job->cols = p->n < LK_ACTIVATION_CHUNK ? p->n : LK_ACTIVATION_CHUNK;
  job->rows = (p->n + job->cols - 1) / job->cols;
  job->last_cols = p->n - (job->rows - 1) * job->cols;
  job->gate_stride = job->out_stride = job->cols;
  job->activation = p->activation;
  job->dtype = p->dtype;
  return LK_OK;
}

LK_API lk_status lk_apply_activation(lk_cpu_context *context, const lk_activation_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  lk_activation_job job;
  memset(&job, 0, sizeof job);
  status = validate_activation(params, &job);
  if (status == LK_OK && job.rows > 0) run_job(context, &job);
  lk_context_leave(context);
  return status;
}

static lk_status check_stride(int64_t *stride, int64_t width, const char *name, const char *width_name) {
  if (*stride == 0) *stride = width;
  if (*stride < width)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: %lld is less than the row width %s (%lld); 0 means %s", name,
                   (long long)*stride, width_name, (long long)width, width_name);
  return LK_OK;
}

static lk_status check_extent(const void *base, int64_t tokens, int64_t width, int64_t stride, lk_dtype dtype,
                              const char *stride_name) {
  if (lk_extent_bytes(base, tokens, width, stride, dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: tokens (%lld) x %s (%lld) exceeds the address space", stride_name,
                   (long long)tokens, stride_name, (long long)stride);
  return LK_OK;
}

LK_API lk_status lk_glu_check(lk_glu_params *p) {
  lk_status status = check_common(p->activation, p->dtype);
  if (status != LK_OK) return status;
  if (p->layout != LK_GLU_GATE_FIRST && p->layout != LK_GLU_UP_FIRST && p->layout != LK_GLU_SPLIT)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "layout: %d is not an lk_glu_layout value", (int)p->layout);
  const bool split = p->layout == LK_GLU_SPLIT;
  if (p->tokens < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "tokens: %lld is negative", (long long)p->tokens);
  if (p->d <= 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "d: %lld must be positive", (long long)p->d);
  if (!split && p->d > INT64_MAX / 2)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "d: %lld is too large for rows of 2*d", (long long)p->d);
  const int64_t x_width = split ? p->d : 2 * p->d;
  if ((status = check_stride(&p->x_stride, x_width, "x_stride", split ? "d" : "2*d")) != LK_OK) return status;
  if (split) {
    if ((status = check_stride(&p->up_stride, p->d, "up_stride", "d")) != LK_OK) return status;
  } else {
    if (p->up) return lk_fail(LK_ERR_INVALID_ARGUMENT, "up: must be NULL unless layout is LK_GLU_SPLIT (x holds both halves)");
    if (p->up_stride != 0)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "up_stride: must be 0 unless layout is LK_GLU_SPLIT, got %lld",
                     (long long)p->up_stride);
  }
  if ((status = check_stride(&p->out_stride, p->d, "out_stride", "d")) != LK_OK) return status;
  if (p->tokens == 0) return LK_OK;
  if (!p->x) return lk_fail(LK_ERR_INVALID_ARGUMENT, "x: NULL");
  if (split && !p->up) return lk_fail(LK_ERR_INVALID_ARGUMENT, "up: NULL (required by LK_GLU_SPLIT)");
  if (!p->out) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out: NULL");
  if ((status = check_extent(p->x, p->tokens, x_width, p->x_stride, p->dtype, "x_stride")) != LK_OK) return status;
  if (split && (status = check_extent(p->up, p->tokens, p->d, p->up_stride, p->dtype, "up_stride")) != LK_OK) return status;
  if ((status = check_extent(p->out, p->tokens, p->d, p->out_stride, p->dtype, "out_stride")) != LK_OK) return status;

  /* Aliasing: out may be x itself (same base and stride: each output element then overwrites
   * the input element of its own index, read just before); any other overlap would read
   * elements another row or lane already overwrote. */
  lk_span x = lk_rows_span(p->x, p->tokens, x_width, p->x_stride, p->dtype);
  lk_span out = lk_rows_span(p->out, p->tokens, p->d, p->out_stride, p->dtype);
  bool out_is_x = p->out == p->x && p->out_stride == p->x_stride;
  if (lk_spans_overlap(x, out) && !out_is_x)
    return lk_fail(LK_ERR_INVALID_ARGUMENT,
                   "out: overlaps x without being x itself (in place needs out == x and out_stride == x_stride)");
  if (split) {
    lk_span up = lk_rows_span(p->up, p->tokens, p->d, p->up_stride, p->dtype);
    if (lk_spans_overlap(up, x)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "up: overlaps x");
    if (lk_spans_overlap(up, out)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out: overlaps up");
  }
  return LK_OK;
}

static lk_status validate_glu(const lk_glu_params *params, lk_activation_job *job) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_glu_params p = *params;
  lk_status status = lk_glu_check(&p);
  if (status != LK_OK || p.tokens == 0) return status;
  const bool split = p.layout == LK_GLU_SPLIT;
  const int64_t size = (int64_t)lk_dtype_size(p.dtype);
  const char *x_bytes = (const char *)p.x;
  job->gate = p.layout == LK_GLU_UP_FIRST ? x_bytes + p.d * size : p.x;
  job->up = split ? p.up : p.layout == LK_GLU_UP_FIRST ? p.x : (const void *)(x_bytes + p.d * size);
  job->gate_stride = p.x_stride;
  job->up_stride = split ? p.up_stride : p.x_stride;
  job->out = p.out;
  job->out_stride = p.out_stride;
  job->rows = p.tokens;
  job->cols = job->last_cols = p.d;
  job->activation = p.activation;
  job->dtype = p.dtype;
  return LK_OK;
}

LK_API lk_status lk_glu(lk_cpu_context *context, const lk_glu_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  lk_activation_job job;
  memset(&job, 0, sizeof job);
  status = validate_glu(params, &job);
  if (status == LK_OK && job.rows > 0) run_job(context, &job);
  lk_context_leave(context);
  return status;
}
