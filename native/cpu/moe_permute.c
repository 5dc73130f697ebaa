/* lk_moe_permute and lk_moe_combine: token rows into expert order and the experts' outputs back,
 * weighted. The contracts are the header's and docs/moe.md's.
 *
 * Permute copies rows (any dtype, bit for bit), split by output rows over the context's threads;
 * large outputs (LK_STREAMING_STORE_MIN_BYTES) with streaming stores.
 * Combine gathers each token's rows through slot_rows (the plan's inverse permutation), so every
 * output row is written by one thread, without atomics or a scatter; tokens are split over the
 * threads, and the ISA variant does the weighted sum (moe_combine_simd.h; scalar here).
 * Both check every index they will follow before writing anything. */
#include "moe_check.h"
#include "moe_combine.h"

#include <emmintrin.h>
#include <math.h>
#include <string.h>

/* Rows of a few KB each: below this many elements per extra thread, waking a worker costs more. */
#define LK_MOE_MOVE_MIN_ELEMENTS_PER_THREAD ((int64_t)1 << 15)

/* ---- permute ------------------------------------------------------------------------------------ */

typedef struct permute_job {
  lk_moe_permute_params p;
  bool streaming; /* output with streaming stores (large outputs) */
} permute_job;

/* A row copied with streaming stores (16-byte SSE2 ones: every x86-64 has them, and four fill a
 * write-combining line as one 64-byte store would): the output is not read, and a plain store's
 * read for ownership adds half again to the traffic. dst 16-byte aligned, bytes a multiple of 16. */
static void copy_row_streaming(char *dst, const char *src, size_t bytes) {
  for (size_t b = 0; b < bytes; b += 64) {
    const __m128i x0 = _mm_loadu_si128((const __m128i *)(src + b)), x1 = _mm_loadu_si128((const __m128i *)(src + b + 16));
    const __m128i x2 = _mm_loadu_si128((const __m128i *)(src + b + 32)), x3 = _mm_loadu_si128((const __m128i *)(src + b + 48));
    _mm_stream_si128((__m128i *)(dst + b), x0);
    _mm_stream_si128((__m128i *)(dst + b + 16), x1);
    _mm_stream_si128((__m128i *)(dst + b + 32), x2);
    _mm_stream_si128((__m128i *)(dst + b + 48), x3);
  }
}

static void permute_rows(const void *arg, int64_t begin, int64_t end) {
  const permute_job *job = (const permute_job *)arg;
  const lk_moe_permute_params *p = &job->p;
  const size_t size = lk_dtype_size(p->dtype), bytes = (size_t)p->hidden * size;
  for (int64_t r = begin; r < end; r++) {
    char *out = (char *)p->output + (size_t)r * (size_t)p->output_stride * size;
    const int32_t slot = p->sorted_slots[r];
    if (slot < 0) {
      memset(out, 0, bytes);
      continue;
    }
    const char *in = (const char *)p->input + (size_t)(slot / p->top_k) * (size_t)p->input_stride * size;
    if (job->streaming && (uintptr_t)out % 16 == 0 && bytes % 64 == 0) copy_row_streaming(out, in, bytes);
    else memcpy(out, in, bytes);
  }
  if (job->streaming) _mm_sfence();
}

static lk_status check_rows(int64_t *stride, int64_t hidden, const char *name) {
  if (*stride < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: %lld is negative", name, (long long)*stride);
  if (*stride == 0) *stride = hidden;
  if (*stride < hidden)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: %lld is less than hidden (%lld)", name, (long long)*stride, (long long)hidden);
  return LK_OK;
}

/* The rows a call reads (only checked when some index points into them): present, within the
 * address space, and apart from the output. */
static lk_status check_source(lk_span out, const void *base, int64_t rows, int64_t hidden, int64_t stride, lk_dtype dtype,
                              const char *name, const char *rows_name) {
  if (!base) return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: NULL", name);
  if (lk_extent_bytes(base, rows, hidden, stride, dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: %lld rows of %s exceed the address space", rows_name, (long long)rows, name);
  if (lk_spans_overlap(out, lk_rows_span(base, rows, hidden, stride, dtype)))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "output: overlaps %s", name);
  return LK_OK;
}

LK_API lk_status lk_moe_permute_check(lk_moe_permute_params *p, int32_t read_indices) {
  if (!lk_dtype_valid(p->dtype)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "dtype: %d is not an lk_dtype value", (int)p->dtype);
  if (p->num_tokens < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_tokens: %lld is negative", (long long)p->num_tokens);
  if (p->top_k < 1) return lk_fail(LK_ERR_INVALID_ARGUMENT, "top_k: %lld must be positive", (long long)p->top_k);
  if (p->num_tokens > INT32_MAX / p->top_k)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_tokens: %lld x top_k (%lld) slots do not fit int32", (long long)p->num_tokens,
                   (long long)p->top_k);
  if (p->num_rows < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_rows: %lld is negative", (long long)p->num_rows);
  if (p->hidden < 1) return lk_fail(LK_ERR_INVALID_ARGUMENT, "hidden: %lld must be positive", (long long)p->hidden);
  lk_status status = check_rows(&p->input_stride, p->hidden, "input_stride");
  if (status == LK_OK) status = check_rows(&p->output_stride, p->hidden, "output_stride");
  if (status != LK_OK || p->num_rows == 0) return status;
  if (!p->sorted_slots) return lk_fail(LK_ERR_INVALID_ARGUMENT, "sorted_slots: NULL");
  if (!p->output) return lk_fail(LK_ERR_INVALID_ARGUMENT, "output: NULL");
  if (lk_extent_bytes(p->output, p->num_rows, p->hidden, p->output_stride, p->dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_rows: %lld rows of output exceed the address space", (long long)p->num_rows);
  const lk_span out = lk_rows_span(p->output, p->num_rows, p->hidden, p->output_stride, p->dtype);
  if (lk_spans_overlap(out, lk_rows_span(p->sorted_slots, 1, p->num_rows, p->num_rows, LK_DTYPE_F32)))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "output: overlaps sorted_slots");
  const int64_t slots = p->num_tokens * p->top_k;
  bool reads = !read_indices;
  for (int64_t r = 0; read_indices && r < p->num_rows; r++) {
    const int32_t s = p->sorted_slots[r];
    if (s < -1 || s >= slots)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "sorted_slots: element %lld is %d, outside -1 (padding) and [0, num_tokens x top_k (%lld))",
                     (long long)r, (int)s, (long long)slots);
    reads = reads || s >= 0;
  }
  /* only a plan with a real slot reads the input */
  return reads ? check_source(out, p->input, p->num_tokens, p->hidden, p->input_stride, p->dtype, "input", "num_tokens") : LK_OK;
}

static lk_status validate_permute(const lk_moe_permute_params *params, lk_moe_permute_params *p) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  *p = *params;
  return lk_moe_permute_check(p, 1);
}

LK_API lk_status lk_moe_permute(lk_cpu_context *context, const lk_moe_permute_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  permute_job job;
  memset(&job, 0, sizeof job);
  status = validate_permute(params, &job.p);
  job.streaming = job.p.num_rows * job.p.hidden * (int64_t)lk_dtype_size(job.p.dtype) >= LK_STREAMING_STORE_MIN_BYTES;
  if (status == LK_OK && job.p.num_rows > 0)
    lk_parallel_rows(context, permute_rows, &job, job.p.num_rows, job.p.hidden, LK_MOE_MOVE_MIN_ELEMENTS_PER_THREAD);
  lk_context_leave(context);
  return status;
}

/* ---- combine ------------------------------------------------------------------------------------ */

void lk_moe_combine_rows_scalar(const void *arg, int64_t begin, int64_t end) {
  const lk_moe_combine_params *p = &((const moe_combine_job *)arg)->p;
  const void *rows[LK_MOE_MAX_TOP_K];
  float w[LK_MOE_MAX_TOP_K];
  for (int64_t t = begin; t < end; t++) {
    const int64_t n = moe_combine_sources(p, t, rows, w);
    void *out = (char *)p->output + (size_t)t * (size_t)p->output_stride * lk_dtype_size(p->dtype);
    for (int64_t i = 0; i < p->hidden; i++) {
      float a = 0.0f;
      for (int64_t j = 0; j < n; j++) a = fmaf(w[j], lk_load_element(rows[j], i, p->dtype), a);
      lk_store_element(out, i, p->dtype, a);
    }
  }
}

static lk_rows_fn combine_variant(lk_isa isa) {
  switch (isa) {
#if defined(LK_HAVE_AVX512)
  case LK_ISA_AVX512: return lk_moe_combine_rows_avx512;
#endif
#if defined(LK_HAVE_AVX2)
  case LK_ISA_AVX2: return lk_moe_combine_rows_avx2;
#endif
  default: return lk_moe_combine_rows_scalar;
  }
}

LK_API lk_status lk_moe_combine_check(lk_moe_combine_params *p, int32_t read_indices) {
  if (!lk_dtype_valid(p->dtype)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "dtype: %d is not an lk_dtype value", (int)p->dtype);
  if (p->num_tokens < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_tokens: %lld is negative", (long long)p->num_tokens);
  if (p->top_k < 1 || p->top_k > LK_MOE_MAX_TOP_K)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "top_k: %lld is outside [1, %d]", (long long)p->top_k, LK_MOE_MAX_TOP_K);
  if (p->num_rows < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_rows: %lld is negative", (long long)p->num_rows);
  if (p->num_rows > INT32_MAX)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_rows: %lld does not fit the int32 slot_rows", (long long)p->num_rows);
  if (p->hidden < 1) return lk_fail(LK_ERR_INVALID_ARGUMENT, "hidden: %lld must be positive", (long long)p->hidden);
  lk_status status = check_rows(&p->expert_stride, p->hidden, "expert_stride");
  if (status == LK_OK) status = check_rows(&p->output_stride, p->hidden, "output_stride");
  if (status != LK_OK || p->num_tokens == 0) return status;
  if (!p->slot_rows) return lk_fail(LK_ERR_INVALID_ARGUMENT, "slot_rows: NULL");
  if (!p->weights) return lk_fail(LK_ERR_INVALID_ARGUMENT, "weights: NULL");
  if (!p->output) return lk_fail(LK_ERR_INVALID_ARGUMENT, "output: NULL");
  if (lk_extent_bytes(p->output, p->num_tokens, p->hidden, p->output_stride, p->dtype) < 0 ||
      lk_extent_bytes(p->weights, p->num_tokens, p->top_k, p->top_k, LK_DTYPE_F32) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_tokens: %lld rows of output exceed the address space", (long long)p->num_tokens);
  const int64_t slots = p->num_tokens * p->top_k;
  const lk_span out = lk_rows_span(p->output, p->num_tokens, p->hidden, p->output_stride, p->dtype);
  if (lk_spans_overlap(out, lk_rows_span(p->slot_rows, 1, slots, slots, LK_DTYPE_F32)))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "output: overlaps slot_rows");
  if (lk_spans_overlap(out, lk_rows_span(p->weights, 1, slots, slots, LK_DTYPE_F32)))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "output: overlaps weights");
  bool reads = !read_indices;
  for (int64_t s = 0; read_indices && s < slots; s++) {
    const int32_t r = p->slot_rows[s];
    if (r < -1 || r >= p->num_rows)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "slot_rows: element %lld (token %lld) is %d, outside -1 (not here) and [0, num_rows (%lld))",
                     (long long)s, (long long)(s / p->top_k), (int)r, (long long)p->num_rows);
    reads = reads || r >= 0;
  }
  return reads ? check_source(out, p->expert_output, p->num_rows, p->hidden, p->expert_stride, p->dtype, "expert_output", "num_rows")
               : LK_OK;
}

static lk_status validate_combine(const lk_moe_combine_params *params, lk_moe_combine_params *p) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  *p = *params;
  return lk_moe_combine_check(p, 1);
}

LK_API lk_status lk_moe_combine(lk_cpu_context *context, const lk_moe_combine_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  moe_combine_job job;
  memset(&job, 0, sizeof job);
  status = validate_combine(params, &job.p);
  job.streaming = job.p.num_tokens * job.p.hidden * (int64_t)lk_dtype_size(job.p.dtype) >= LK_STREAMING_STORE_MIN_BYTES;
  if (status == LK_OK && job.p.num_tokens > 0)
    lk_parallel_rows(context, combine_variant(context->isa), &job, job.p.num_tokens, job.p.hidden * job.p.top_k,
                     LK_MOE_MOVE_MIN_ELEMENTS_PER_THREAD);
  lk_context_leave(context);
  return status;
}
