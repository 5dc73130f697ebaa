/* The decode kernel's plan and split combine (attention_decode.h). */
#include "attention_decode.h"

/* Per-thread scratch of a unit (attention_decode_simd.h's layout): queries and accumulators of
 * every row, plus fixed tile buffers. */
static size_t decode_scratch_bytes(int64_t rows, int64_t padded_dim) {
  /* q f32 and bf16, o; 7 per-row values and the sum's 16 partial sums */
  return (size_t)(3 * rows * padded_dim + (7 + 16) * rows) * sizeof(float) + ((size_t)64 << 10);
}

bool lk_decode_plan_make(lk_decode_plan *plan, const lk_attention_job *job, float *partials, size_t scratch_bytes) {
  const lk_attention_params *p = &job->p;
  memset(plan, 0, sizeof *plan);
  int64_t max_tokens = 0;
  for (int64_t s = 0; s < p->num_seqs; s++)
    if (p->cu_seqlens_q[s + 1] - p->cu_seqlens_q[s] > max_tokens) max_tokens = p->cu_seqlens_q[s + 1] - p->cu_seqlens_q[s];
  if (max_tokens * job->group > LK_DECODE_MAX_LANES) return false;
  plan->rows = max_tokens * p->num_heads;
  plan->padded_dim = lk_attention_padded_dim(p->head_dim);
  if (decode_scratch_bytes(plan->rows, plan->padded_dim) > scratch_bytes) return false;
  /* AMX's Qᵀ tiles: (head_dim / 32) of 1 KB per kv head, past the rest */
  plan->amx = p->head_dim % 32 == 0 &&
              decode_scratch_bytes(plan->rows, plan->padded_dim) + (size_t)(p->num_kv_heads * (p->head_dim / 32)) * 1024 <=
                  scratch_bytes;
  plan->partials = partials;
  plan->splits = lk_attention_splits(p->num_seqs, plan->rows * (plan->padded_dim + 2), lk_attention_max_keys(job));
  plan->units = p->num_seqs * plan->splits;
  return true;
}

void lk_decode_combine_sequences(const void *combine_job, int64_t begin, int64_t end) {
  const lk_decode_combine_job *cj = (const lk_decode_combine_job *)combine_job;
  const lk_attention_job *job = cj->job;
  const lk_decode_plan *plan = cj->plan;
  const int64_t heads = job->p.num_heads, stride = plan->rows * (plan->padded_dim + 2);
  for (int64_t s = begin; s < end; s++) {
    const int64_t t0 = job->p.cu_seqlens_q[s], rows = (job->p.cu_seqlens_q[s + 1] - t0) * heads;
    for (int64_t r = 0; r < rows; r++)
      lk_attention_combine_row(job, t0 + r / heads, r % heads, lk_decode_partial(plan, s * plan->splits, r), stride,
                               plan->splits);
  }
}
