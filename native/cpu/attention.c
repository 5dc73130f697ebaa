/* Attention (llmkernels.h, lk_attention): validation, the portable C kernel, and the schedule of
 * the tiled vector kernels.
 *
 * The portable kernel is the readable definition: one (query token, head) row at a time, keys in
 * order, an online softmax (running max m and sum l, the accumulator rescaled by exp(m_old -
 * m_new) when the max grows), all in f32, the output rounded once. It never materialises a score
 * row, so its scratch is one head_dim accumulator on the stack whatever the sequence length.
 * AVX2 and AVX-512 run the tiled kernel instead (attention_tile.h, attention_tile_simd.h): blocks
 * of query rows against tiles of keys, with flash-decoding splits of long key ranges. */
#include "attention.h"
#include "attention_check.h"
#include "attention_decode.h"
#include "kv_cache.h"
#include "lk_atomic.h"

#include <math.h>
#include <string.h>

typedef lk_attention_job attention_job;

/* ---- validation -------------------------------------------------------------------------------- */

static lk_status check_offsets(const int32_t *cu, int64_t num_seqs, const char *name) {
  if (!cu) return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: NULL", name);
  if (cu[0] != 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s[0]: %d, must be 0", name, (int)cu[0]);
  for (int64_t s = 0; s < num_seqs; s++)
    if (cu[s + 1] < cu[s])
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s[%lld]: %d is less than %s[%lld] = %d", name, (long long)(s + 1), (int)cu[s + 1],
                     name, (long long)s, (int)cu[s]);
  return LK_OK;
}

/* A bound given (max_seqlen_q, max_seqlen_k > 0) holds every sequence's length: the CUDA backend
 * sizes its grid by it, so both backends refuse a call that breaks it. */
static lk_status check_max_len(int64_t max_len, const char *max_name, const int32_t *cu, const int32_t *lens, int64_t num_seqs,
                               const char *name) {
  if (max_len <= 0) return LK_OK;
  for (int64_t s = 0; s < num_seqs; s++) {
    const int64_t len = cu ? (int64_t)cu[s + 1] - cu[s] : lens[s];
    if (len > max_len)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: %lld is less than sequence %lld's length %lld (from %s)", max_name, (long long)max_len,
                     (long long)s, (long long)len, name);
  }
  return LK_OK;
}

static lk_status check_stride(int64_t *stride, int64_t row, const char *name) {
  if (*stride == 0) *stride = row;
  if (*stride < row)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: %lld is less than the row of %lld elements", name, (long long)*stride, (long long)row);
  return LK_OK;
}

/* The paged form: a valid cache (lk_kv_cache_check) whose geometry and dtype are the call's, and
 * every table entry a sequence's keys use naming one of its blocks; out apart from both caches. */
static lk_status check_paged_geometry(const lk_attention_params *p, lk_kv_geometry *g) {
  const lk_paged_kv_cache *c = &p->cache;
  lk_status status = lk_kv_cache_check(c, g);
  if (status != LK_OK) return status;
  if (c->dtype != p->dtype)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache.dtype: %d differs from dtype %d", (int)c->dtype, (int)p->dtype);
  if (c->num_kv_heads != p->num_kv_heads || c->head_dim != p->head_dim)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache: [%lld kv heads, head_dim %lld] differs from num_kv_heads %lld, head_dim %lld",
                   (long long)c->num_kv_heads, (long long)c->head_dim, (long long)p->num_kv_heads, (long long)p->head_dim);
  return LK_OK;
}

static lk_status validate_paged(lk_attention_params *p, int64_t total_q, lk_span out) {
  const lk_paged_kv_cache *c = &p->cache;
  lk_kv_geometry g;
  lk_status status = check_paged_geometry(p, &g);
  if (status != LK_OK) return status;
  int64_t total_k, units;
  status = lk_kv_block_tables_check(c, p->block_tables, p->max_blocks_per_seq, p->seqlens_k, p->num_seqs, "seqlens_k", &total_k,
                                    &units);
  if (status != LK_OK) return status;
  if ((status = check_max_len(p->max_seqlen_k, "max_seqlen_k", NULL, p->seqlens_k, p->num_seqs, "seqlens_k")) != LK_OK) return status;
  if (total_q > 0 && lk_kv_overlaps_cache(c, &g, out)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out: overlaps the cache");
  return LK_OK;
}

/* What needs no index array (lk_attention_check without read_indices): the strides, the paged
 * cache's geometry, and the pointers a call with sequences reads. */
static lk_status check_without_indices(lk_attention_params *p) {
  const int64_t q_row = p->num_heads * p->head_dim, kv_row = p->num_kv_heads * p->head_dim;
  lk_status status;
  if ((status = check_stride(&p->q_stride, q_row, "q_stride")) != LK_OK) return status;
  if ((status = check_stride(&p->out_stride, q_row, "out_stride")) != LK_OK) return status;
  if (!p->cu_seqlens_q) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cu_seqlens_q: NULL");
  if (!p->q) return lk_fail(LK_ERR_INVALID_ARGUMENT, "q: NULL");
  if (!p->out) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out: NULL");
  if (p->cache.key_cache) {
    lk_kv_geometry g;
    if ((status = check_paged_geometry(p, &g)) != LK_OK) return status;
    if (!p->seqlens_k) return lk_fail(LK_ERR_INVALID_ARGUMENT, "seqlens_k: NULL");
    if (!p->block_tables) return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_tables: NULL");
    if (p->max_blocks_per_seq <= 0)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "max_blocks_per_seq: %lld, must be positive", (long long)p->max_blocks_per_seq);
    return LK_OK;
  }
  if ((status = check_stride(&p->k_stride, kv_row, "k_stride")) != LK_OK) return status;
  if ((status = check_stride(&p->v_stride, kv_row, "v_stride")) != LK_OK) return status;
  if (!p->cu_seqlens_k) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cu_seqlens_k: NULL");
  if (!p->k) return lk_fail(LK_ERR_INVALID_ARGUMENT, "k: NULL");
  if (!p->v) return lk_fail(LK_ERR_INVALID_ARGUMENT, "v: NULL");
  return LK_OK;
}

LK_API lk_status lk_attention_check(lk_attention_params *p, int32_t read_indices) {
  lk_status status;
  if (!lk_dtype_valid(p->dtype)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "dtype: %d is not a dtype", (int)p->dtype);
  if (p->num_seqs < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_seqs: %lld, must not be negative", (long long)p->num_seqs);
  if (p->num_heads <= 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_heads: %lld, must be positive", (long long)p->num_heads);
  if (p->num_kv_heads <= 0 || p->num_heads % p->num_kv_heads != 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_kv_heads: %lld must be positive and divide num_heads = %lld", (long long)p->num_kv_heads,
                   (long long)p->num_heads);
  if (p->head_dim <= 0 || p->head_dim > LK_ATTENTION_MAX_HEAD_DIM)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "head_dim: %lld, must be in [1, %d]", (long long)p->head_dim, LK_ATTENTION_MAX_HEAD_DIM);
  if (p->flags & ~(uint32_t)LK_ATTENTION_CAUSAL)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "flags: 0x%x has unknown bits", (unsigned)p->flags);
  if (!isfinite(p->scale)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "scale: not finite");
  if (p->scale == 0.0f) p->scale = 1.0f / sqrtf((float)p->head_dim);
  if (!(p->softcap >= 0.0f) || !isfinite(p->softcap))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "softcap: %g, must be 0 (none) or positive and finite", (double)p->softcap);
  if (p->window_left < -1) return lk_fail(LK_ERR_INVALID_ARGUMENT, "window_left: %lld, must be -1 or more", (long long)p->window_left);
  if (p->window_right < -1)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "window_right: %lld, must be -1 or more", (long long)p->window_right);
  if (p->bias && p->bias_row_stride <= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "bias_row_stride: %lld, must be positive with a bias", (long long)p->bias_row_stride);
  if (p->bias && p->bias_head_stride < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "bias_head_stride: %lld, must not be negative", (long long)p->bias_head_stride);
  if (p->max_seqlen_q < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "max_seqlen_q: %lld, must be 0 (not given) or positive", (long long)p->max_seqlen_q);
  if (p->max_seqlen_k < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "max_seqlen_k: %lld, must be 0 (not given) or positive", (long long)p->max_seqlen_k);
  if (p->num_seqs == 0) return LK_OK;
  if (!read_indices) return check_without_indices(p);

  if ((status = check_offsets(p->cu_seqlens_q, p->num_seqs, "cu_seqlens_q")) != LK_OK) return status;
  if ((status = check_max_len(p->max_seqlen_q, "max_seqlen_q", p->cu_seqlens_q, NULL, p->num_seqs, "cu_seqlens_q")) != LK_OK)
    return status;
  const int64_t total_q = p->cu_seqlens_q[p->num_seqs];
  const int64_t q_row = p->num_heads * p->head_dim, kv_row = p->num_kv_heads * p->head_dim;
  if ((status = check_stride(&p->q_stride, q_row, "q_stride")) != LK_OK) return status;
  if ((status = check_stride(&p->out_stride, q_row, "out_stride")) != LK_OK) return status;
  if (total_q > 0) {
    if (!p->q) return lk_fail(LK_ERR_INVALID_ARGUMENT, "q: NULL");
    if (!p->out) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out: NULL");
    if (lk_extent_bytes(p->q, total_q, q_row, p->q_stride, p->dtype) < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "q_stride: overflows");
    if (lk_extent_bytes(p->out, total_q, q_row, p->out_stride, p->dtype) < 0)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_stride: overflows");
  }
  const lk_span out = lk_rows_span(p->out, total_q, q_row, p->out_stride, p->dtype);
  if (total_q > 0 && lk_spans_overlap(out, lk_rows_span(p->q, total_q, q_row, p->q_stride, p->dtype)))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "out: overlaps q");

  if (p->cache.key_cache) return validate_paged(p, total_q, out);
  if ((status = check_offsets(p->cu_seqlens_k, p->num_seqs, "cu_seqlens_k")) != LK_OK) return status;
  if ((status = check_max_len(p->max_seqlen_k, "max_seqlen_k", p->cu_seqlens_k, NULL, p->num_seqs, "cu_seqlens_k")) != LK_OK)
    return status;
  const int64_t total_k = p->cu_seqlens_k[p->num_seqs];
  if ((status = check_stride(&p->k_stride, kv_row, "k_stride")) != LK_OK) return status;
  if ((status = check_stride(&p->v_stride, kv_row, "v_stride")) != LK_OK) return status;
  if (total_k > 0) {
    if (!p->k) return lk_fail(LK_ERR_INVALID_ARGUMENT, "k: NULL");
    if (!p->v) return lk_fail(LK_ERR_INVALID_ARGUMENT, "v: NULL");
    if (lk_extent_bytes(p->k, total_k, kv_row, p->k_stride, p->dtype) < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "k_stride: overflows");
    if (lk_extent_bytes(p->v, total_k, kv_row, p->v_stride, p->dtype) < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "v_stride: overflows");
    if (total_q > 0 && lk_spans_overlap(out, lk_rows_span(p->k, total_k, kv_row, p->k_stride, p->dtype)))
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "out: overlaps k");
    if (total_q > 0 && lk_spans_overlap(out, lk_rows_span(p->v, total_k, kv_row, p->v_stride, p->dtype)))
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "out: overlaps v");
  }
  return LK_OK;
}

static lk_status validate(const lk_attention_params *params, attention_job *job) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  job->p = *params;
  const lk_status status = lk_attention_check(&job->p, 1);
  if (status != LK_OK) return status;
  job->group = job->p.num_heads / job->p.num_kv_heads;
  job->paged = job->p.cache.key_cache != NULL;
  return LK_OK;
}

/* ---- the kernel -------------------------------------------------------------------------------- */

void lk_attention_rows_scalar(const void *job_, int64_t begin, int64_t end) {
  const attention_job *job = (const attention_job *)job_;
  const lk_attention_params *p = &job->p;
  const int64_t d = p->head_dim, size = (int64_t)lk_dtype_size(p->dtype);
  float q[LK_ATTENTION_MAX_HEAD_DIM], acc[LK_ATTENTION_MAX_HEAD_DIM];
  for (int64_t r = begin; r < end; r++) {
    const lk_attention_row row = lk_attention_row_at(job, r);
    const int64_t t = row.token, h = row.head, kvh = row.kv_head, s = row.seq, pos = row.pos;
    const char *q_row = (const char *)p->q + (t * p->q_stride + h * d) * size;
    for (int64_t e = 0; e < d; e++) {
      q[e] = lk_load_element(q_row, e, p->dtype);
      acc[e] = 0.0f;
    }
    const float slope = p->alibi_slopes ? p->alibi_slopes[h] : 0.0f;
    const float *bias_row = p->bias ? p->bias + h * p->bias_head_stride + t * p->bias_row_stride : NULL;
    float m = -INFINITY, l = 0.0f;
    bool nan_score = false;
    for (int64_t j = row.lo; j <= row.hi; j++) {
      const void *k_row = lk_attention_kv(job, false, s, j, kvh);
      float dot = 0.0f;
      for (int64_t e = 0; e < d; e++) dot += q[e] * lk_load_element(k_row, e, p->dtype);
      const float score = lk_attention_score(p, dot, slope, bias_row, pos, j);
      if (score != score) nan_score = true; /* a NaN in q, k or the bias: the whole row is NaN, as in PyTorch */
      if (!(score > -INFINITY)) continue;   /* masked by the bias */
      if (score > m) {
        const float rescale = expf(m - score); /* 0 for the first key */
        for (int64_t e = 0; e < d; e++) acc[e] *= rescale;
        l *= rescale;
        m = score;
      }
      const float w = expf(score - m);
      l += w;
      const void *v_row = lk_attention_kv(job, true, s, j, kvh);
      for (int64_t e = 0; e < d; e++) acc[e] += w * lk_load_element(v_row, e, p->dtype);
    }
    char *out_row = (char *)p->out + (t * p->out_stride + h * d) * size;
    const float inv = lk_attention_output_scale(l, nan_score);
    for (int64_t e = 0; e < d; e++) lk_store_element(out_row, e, p->dtype, acc[e] * inv);
    if (p->lse) p->lse[t * p->num_heads + h] = lk_attention_lse(m, l, nan_score);
  }
}

/* ---- the tiled kernels' schedule ---------------------------------------------------------------- */

typedef struct vector_kernels {
  lk_attention_unit_fn tiled;
  lk_decode_unit_fn decode;
} vector_kernels;

static bool vector_variant(lk_isa isa, vector_kernels *out) {
  switch (isa) {
#if defined(LK_HAVE_AVX512)
  case LK_ISA_AVX512:
    *out = (vector_kernels){lk_attention_unit_avx512, lk_cpu_has_amx_bf16()      ? lk_decode_unit_avx512amx
                                                       : lk_cpu_has_avx512_bf16() ? lk_decode_unit_avx512bf16
                                                                                  : lk_decode_unit_avx512};
    return true;
#endif
#if defined(LK_HAVE_AVX2)
  case LK_ISA_AVX2: *out = (vector_kernels){lk_attention_unit_avx2, lk_decode_unit_avx2}; return true;
#endif
  default: return false;
  }
}

/* Units vary in cost (causal masks, ragged sequences), so threads pull them from a counter. */
typedef struct unit_run {
  const attention_job *job;
  const lk_attention_plan *tiled_plan;
  const lk_decode_plan *decode_plan;
  vector_kernels kernels;
  int64_t units;
  lk_cpu_context *context;
  volatile long next;
} unit_run;

static void run_units(void *arg, int thread, int threads) {
  (void)threads;
  unit_run *run = (unit_run *)arg;
  void *scratch = run->context->scratch + (size_t)thread * run->context->scratch_bytes;
  for (;;) {
    const long unit = lk_atomic_add(&run->next, 1) - 1;
    if (unit >= run->units) break;
    if (run->decode_plan) run->kernels.decode(run->job, run->decode_plan, unit, scratch);
    else run->kernels.tiled(run->job, run->tiled_plan, unit, scratch);
  }
}

static void run_pulled(lk_cpu_context *context, unit_run *run) {
  const int64_t threads = run->units < context->num_threads ? run->units : context->num_threads;
  if (threads <= 1) run_units(run, 0, 1);
  else lk_thread_pool_run(context->pool, (int)threads, run_units, run);
}

/* Decode-shaped batches (few query rows per kv head) take the decode kernel, the rest the tiled one. */
static void run_vector(lk_cpu_context *context, const attention_job *job, vector_kernels kernels) {
  float *partials = (float *)context->shared_scratch;
  lk_decode_plan decode;
  if (lk_decode_plan_make(&decode, job, partials, context->scratch_bytes)) {
    unit_run run = {job, NULL, &decode, kernels, decode.units, context, 0};
    run_pulled(context, &run);
    if (decode.splits > 1) {
      const lk_decode_combine_job combine = {job, &decode};
      lk_parallel_rows(context, lk_decode_combine_sequences, &combine, job->p.num_seqs, decode.rows * job->p.head_dim,
                       (int64_t)1 << 15);
    }
    return;
  }
  lk_attention_plan plan;
  lk_attention_plan_make(&plan, job, partials);
  unit_run run = {job, &plan, NULL, kernels, plan.units, context, 0};
  run_pulled(context, &run);
  if (plan.splits > 1) {
    const lk_attention_combine_job combine = {job, &plan};
    lk_parallel_rows(context, lk_attention_combine_items, &combine, plan.items, LK_ATTENTION_LANES * job->p.head_dim,
                     (int64_t)1 << 15);
  }
}

LK_API lk_status lk_attention(lk_cpu_context *context, const lk_attention_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  attention_job job;
  memset(&job, 0, sizeof job);
  status = validate(params, &job);
  if (status == LK_OK && job.p.num_seqs > 0) {
    const int64_t rows = (int64_t)job.p.cu_seqlens_q[job.p.num_seqs] * job.p.num_heads;
    vector_kernels kernels;
    if (rows > 0 && vector_variant(context->isa, &kernels)) run_vector(context, &job, kernels);
    else if (rows > 0) lk_parallel_rows(context, lk_attention_rows_scalar, &job, rows, job.p.head_dim * 64, (int64_t)1 << 15);
  }
  lk_context_leave(context);
  return status;
}
