/* lk_rope: argument checks (every position against the cache before anything is written), then
 * tokens split over the context's threads and run by the context's ISA variant. */
#include "rope.h"
#include "rope_check.h"

/* A token of Llama-8B shape (40 heads of 128) takes about half a microsecond: below ~64 Ki rotated elements
 * per extra thread, waking a worker costs more than it saves. */
#define LK_ROPE_MIN_ELEMENTS_PER_THREAD ((int64_t)1 << 16)
/* Calls touching more than this (a few cores' L2) prefetch each next token's heads. */
#define LK_ROPE_PREFETCH_MIN_BYTES ((int64_t)4 << 20)

static lk_status check_stride(int64_t *stride, int64_t heads, int64_t head_dim, const char *name, const char *heads_name) {
  if (*stride < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: %lld is negative", name, (long long)*stride);
  if (*stride == 0) *stride = heads * head_dim;
  if (*stride < heads * head_dim)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: %lld is less than %s (%lld) x head_dim (%lld), the span of a token's heads",
                   name, (long long)*stride, heads_name, (long long)heads, (long long)head_dim);
  return LK_OK;
}

/* Bytes of `count` elements of `size` bytes from base, or -1 when no such buffer can exist. */
static int64_t vector_extent(const void *base, int64_t count, int64_t size) {
  if (count > INT64_MAX / size) return -1;
  if ((uint64_t)(count * size) > UINTPTR_MAX - (uintptr_t)base) return -1;
  return count * size;
}

/* Whether two sets of rows `stride_bytes` apart (a fused qkv buffer: q's heads, then k's heads, in
 * every token) share a byte. Equal strides: exact, so q and k may interleave token by token. */
static bool rows_overlap(const void *a, int64_t a_bytes, const void *b, int64_t b_bytes, int64_t stride_bytes,
                         int64_t rows, lk_span a_hull, lk_span b_hull) {
  if (!lk_spans_overlap(a_hull, b_hull)) return false;
  /* Overlapping hulls lie within one buffer whose size lk_extent_bytes bounded: d fits. */
  int64_t d = (int64_t)((uintptr_t)b - (uintptr_t)a);
  /* Row u of b starts d + (u - t) * stride bytes after row t of a; they meet iff that offset e
   * lies in (-b_bytes, a_bytes) for some u - t in [-(rows - 1), rows - 1]. With strides no smaller
   * than the rows, at most two such e: the one in [0, stride) and the one below it. */
  int64_t e0 = d % stride_bytes;
  if (e0 < 0) e0 += stride_bytes;
  int64_t m0 = (e0 - d) / stride_bytes;
  if (e0 < a_bytes && m0 > -rows && m0 < rows) return true;
  if (e0 - stride_bytes > -b_bytes && m0 - 1 > -rows && m0 - 1 < rows) return true;
  return false;
}

LK_API lk_status lk_rope_check(lk_rope_params *p) {
  if (!lk_dtype_valid(p->dtype))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "dtype: %d is not an lk_dtype value", (int)p->dtype);
  if (p->style != LK_ROPE_NEOX && p->style != LK_ROPE_GPTJ)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "style: %d is not an lk_rope_style value", (int)p->style);
  if (p->position_type != LK_INDEX_I32 && p->position_type != LK_INDEX_I64)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "position_type: %d is not an lk_index_type value", (int)p->position_type);
  if (p->tokens < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "tokens: %lld is negative", (long long)p->tokens);
  if (p->num_heads <= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_heads: %lld must be positive", (long long)p->num_heads);
  if (p->head_dim <= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "head_dim: %lld must be positive", (long long)p->head_dim);
  if (p->rot_dim < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "rot_dim: %lld is negative", (long long)p->rot_dim);
  if (p->rot_dim > p->head_dim)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "rot_dim: %lld exceeds head_dim (%lld)", (long long)p->rot_dim,
                   (long long)p->head_dim);
  if (p->rot_dim == 0) {
    if (p->head_dim % 2)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "rot_dim: 0 means head_dim (%lld), which is odd; rotated elements come in pairs",
                     (long long)p->head_dim);
    p->rot_dim = p->head_dim;
  }
  if (p->rot_dim % 2)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "rot_dim: %lld is odd; rotated elements come in pairs", (long long)p->rot_dim);
  if (p->max_position <= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "max_position: %lld must be positive (the cache's rows)", (long long)p->max_position);
  if (p->num_heads > INT64_MAX / p->head_dim)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_heads: %lld x head_dim (%lld) overflows", (long long)p->num_heads,
                   (long long)p->head_dim);
  lk_status status;
  if ((status = check_stride(&p->q_stride, p->num_heads, p->head_dim, "q_stride", "num_heads")) != LK_OK) return status;
  if (p->k) {
    if (p->num_kv_heads <= 0)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_kv_heads: %lld must be positive when k is given", (long long)p->num_kv_heads);
    if (p->num_heads % p->num_kv_heads)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_kv_heads: %lld does not divide num_heads (%lld)",
                     (long long)p->num_kv_heads, (long long)p->num_heads);
    if ((status = check_stride(&p->k_stride, p->num_kv_heads, p->head_dim, "k_stride", "num_kv_heads")) != LK_OK)
      return status;
  }
  if (p->tokens == 0) return LK_OK;
  if (!p->q) return lk_fail(LK_ERR_INVALID_ARGUMENT, "q: NULL");
  if (!p->positions) return lk_fail(LK_ERR_INVALID_ARGUMENT, "positions: NULL");
  if (!p->cos_sin_cache) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cos_sin_cache: NULL");

  /* Sizes that describe no possible buffer are bad input, not something to index with. */
  const int64_t q_cols = p->num_heads * p->head_dim, k_cols = (p->k ? p->num_kv_heads : 0) * p->head_dim;
  if (lk_extent_bytes(p->q, p->tokens, q_cols, p->q_stride, p->dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "q_stride: tokens (%lld) x q_stride (%lld) exceeds the address space",
                   (long long)p->tokens, (long long)p->q_stride);
  if (p->k && lk_extent_bytes(p->k, p->tokens, k_cols, p->k_stride, p->dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "k_stride: tokens (%lld) x k_stride (%lld) exceeds the address space",
                   (long long)p->tokens, (long long)p->k_stride);
  const int64_t position_size = p->position_type == LK_INDEX_I64 ? 8 : 4;
  const int64_t positions_bytes = vector_extent(p->positions, p->tokens, position_size);
  if (positions_bytes < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "positions: %lld entries exceed the address space", (long long)p->tokens);
  if (lk_extent_bytes(p->cos_sin_cache, p->max_position, p->rot_dim, p->rot_dim, LK_DTYPE_F32) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "max_position: %lld rows of rot_dim (%lld) floats exceed the address space",
                   (long long)p->max_position, (long long)p->rot_dim);

  /* q and k are written; nothing they hold may be read as another input, nor written twice. */
  const int64_t size = (int64_t)lk_dtype_size(p->dtype);
  lk_span q = lk_rows_span(p->q, p->tokens, q_cols, p->q_stride, p->dtype);
  lk_span cache = lk_rows_span(p->cos_sin_cache, p->max_position, p->rot_dim, p->rot_dim, LK_DTYPE_F32);
  lk_span positions = {(uintptr_t)p->positions, (uintptr_t)p->positions + (uintptr_t)positions_bytes};
  if (lk_spans_overlap(q, cache)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cos_sin_cache: overlaps q");
  if (lk_spans_overlap(q, positions)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "positions: overlaps q");
  if (p->k) {
    lk_span k = lk_rows_span(p->k, p->tokens, k_cols, p->k_stride, p->dtype);
    if (lk_spans_overlap(k, cache)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cos_sin_cache: overlaps k");
    if (lk_spans_overlap(k, positions)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "positions: overlaps k");
    bool overlap = p->q_stride == p->k_stride
                       ? rows_overlap(p->q, q_cols * size, p->k, k_cols * size, p->q_stride * size, p->tokens, q, k)
                       : lk_spans_overlap(q, k);
    if (overlap)
      return lk_fail(LK_ERR_INVALID_ARGUMENT,
                     "k: overlaps q (q and k may share a fused qkv buffer only as disjoint heads of each token)");
  }
  return LK_OK;
}

static lk_status validate(const lk_rope_params *params, lk_rope_job *job) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  job->p = *params;
  lk_rope_params *p = &job->p;
  lk_status status = lk_rope_check(p);
  job->k_heads = p->k ? p->num_kv_heads : 0;
  if (status != LK_OK || p->tokens == 0) return status;

  /* Past the L2 of a core, each token's lines come from L3 or DRAM: prefetch them a token ahead.
   * For a cache-resident call (decode) the prefetches would only cost issue slots. */
  const int64_t size = (int64_t)lk_dtype_size(p->dtype);
  job->prefetch = (p->tokens * (p->num_heads + job->k_heads) * p->head_dim * size) >= LK_ROPE_PREFETCH_MIN_BYTES;
  for (int64_t t = 0; t < p->tokens; t++) {
    int64_t pos = lk_rope_position(p, t);
    if (pos < 0 || pos >= p->max_position)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "positions: positions[%lld] = %lld is outside the cache [0, max_position = %lld)",
                     (long long)t, (long long)pos, (long long)p->max_position);
  }
  return LK_OK;
}

static lk_rows_fn variant(lk_isa isa) {
  switch (isa) {
#if defined(LK_HAVE_AVX512)
  case LK_ISA_AVX512: return lk_rope_rows_avx512;
#endif
#if defined(LK_HAVE_AVX2)
  case LK_ISA_AVX2: return lk_rope_rows_avx2;
#endif
  default: return lk_rope_rows_scalar;
  }
}

LK_API lk_status lk_rope(lk_cpu_context *context, const lk_rope_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  lk_rope_job job;
  memset(&job, 0, sizeof job);
  status = validate(params, &job);
  if (status == LK_OK && job.p.tokens > 0)
    lk_parallel_rows(context, variant(context->isa), &job, job.p.tokens, (job.p.num_heads + job.k_heads) * job.p.rot_dim,
                     LK_ROPE_MIN_ELEMENTS_PER_THREAD);
  lk_context_leave(context);
  return status;
}
