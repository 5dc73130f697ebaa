/* The tiled attention kernels' plan, lane sets and split combine (attention_tile.h): the scalar
 * parts every ISA shares. */
#include "attention_tile.h"

#include <math.h>

void lk_attention_plan_make(lk_attention_plan *plan, const lk_attention_job *job, float *partials) {
  const lk_attention_params *p = &job->p;
  memset(plan, 0, sizeof *plan);
  const int64_t group = job->group, total_q = p->cu_seqlens_q[p->num_seqs];
  plan->block_heads = group < LK_ATTENTION_LANES ? group : LK_ATTENTION_LANES;
  plan->head_chunks = (group + plan->block_heads - 1) / plan->block_heads;
  plan->block_tokens = LK_ATTENTION_LANES / plan->block_heads;
  plan->token_blocks = (total_q + plan->block_tokens - 1) / plan->block_tokens;
  plan->items = plan->token_blocks * p->num_kv_heads * plan->head_chunks;
  plan->padded_dim = lk_attention_padded_dim(p->head_dim);
  plan->partials = partials;
  plan->splits = lk_attention_splits(plan->items, LK_ATTENTION_LANES * (plan->padded_dim + 2), lk_attention_max_keys(job));
  plan->units = plan->items * plan->splits;
}

int64_t lk_attention_splits(int64_t items, int64_t state_floats, int64_t max_keys) {
  if (items <= 0 || items >= LK_ATTENTION_MAX_UNITS) return 1;
  int64_t units = (int64_t)(LK_ATTENTION_PARTIAL_BYTES / ((size_t)state_floats * sizeof(float)));
  if (units > LK_ATTENTION_MAX_UNITS) units = LK_ATTENTION_MAX_UNITS;
  int64_t splits = units / items;
  if (splits > max_keys / LK_ATTENTION_MIN_SPLIT_KEYS) splits = max_keys / LK_ATTENTION_MIN_SPLIT_KEYS;
  return splits > 1 ? splits : 1;
}

bool lk_attention_next_lanes(const lk_attention_job *job, const lk_attention_plan *plan, int64_t item, int64_t *cursor,
                             lk_attention_lanes *lanes) {
  const lk_attention_params *p = &job->p;
  /* Items of one kv head (and head chunk) are consecutive, so threads working side by side share
   * its keys in cache; within it the latest token blocks, which see the most keys, come first. */
  const int64_t heads_item = item / plan->token_blocks, block = plan->token_blocks - 1 - item % plan->token_blocks;
  const int64_t kv_head = heads_item / plan->head_chunks, chunk = heads_item % plan->head_chunks;
  const int64_t t_begin = block * plan->block_tokens, total_q = p->cu_seqlens_q[p->num_seqs];
  const int64_t t_end = t_begin + plan->block_tokens < total_q ? t_begin + plan->block_tokens : total_q;
  const int64_t g_begin = chunk * plan->block_heads;
  const int64_t g_end = g_begin + plan->block_heads < job->group ? g_begin + plan->block_heads : job->group;
  const int64_t heads = g_end - g_begin;
  const int64_t t = *cursor < 0 ? t_begin : *cursor;
  if (t >= t_end) return false;
  const int64_t seq = lk_attention_sequence_of(p->cu_seqlens_q, p->num_seqs, t);
  const int64_t t_stop = p->cu_seqlens_q[seq + 1] < t_end ? p->cu_seqlens_q[seq + 1] : t_end;
  *cursor = t_stop;

  lanes->seq = seq;
  lanes->kv_head = kv_head;
  lanes->count = (t_stop - t) * heads;
  lanes->first_lane = (t - t_begin) * heads;
  lanes->key_lo = INT64_MAX;
  lanes->key_hi = -1;
  lanes->full_lo = 0;
  lanes->full_hi = INT64_MAX;
  int64_t lane = 0;
  for (int64_t token = t; token < t_stop; token++) {
    for (int64_t g = g_begin; g < g_end; g++, lane++) {
      const int64_t head = kv_head * job->group + g;
      const lk_attention_row row = lk_attention_row_at(job, token * p->num_heads + head);
      lanes->token[lane] = token;
      lanes->head[lane] = head;
      lanes->lo[lane] = (float)row.lo;
      lanes->hi[lane] = (float)row.hi;
      lanes->pos[lane] = (float)row.pos;
      lanes->slope[lane] = p->alibi_slopes ? p->alibi_slopes[head] : 0.0f;
      if (row.lo <= row.hi) {
        if (row.lo < lanes->key_lo) lanes->key_lo = row.lo;
        if (row.hi > lanes->key_hi) lanes->key_hi = row.hi;
      }
      if (row.lo > lanes->full_lo) lanes->full_lo = row.lo;
      if (row.hi < lanes->full_hi) lanes->full_hi = row.hi;
    }
  }
  if (lanes->key_hi < 0) lanes->key_lo = 0;
  /* Padding lanes see nothing: the vector kernel masks them in partial tiles. */
  for (; lane < LK_ATTENTION_LANES; lane++) {
    lanes->token[lane] = lanes->head[lane] = -1;
    lanes->lo[lane] = 1.0f;
    lanes->hi[lane] = -1.0f;
    lanes->pos[lane] = lanes->slope[lane] = 0.0f;
  }
  return true;
}

void lk_attention_store_row(const lk_attention_job *job, int64_t token, int64_t head, const float *acc, float m, float l,
                            bool nan) {
  const lk_attention_params *p = &job->p;
  const int64_t d = p->head_dim;
  char *out = (char *)p->out + (token * p->out_stride + head * d) * (int64_t)lk_dtype_size(p->dtype);
  const float inv = lk_attention_output_scale(l, nan);
  for (int64_t e = 0; e < d; e++) lk_store_element(out, e, p->dtype, acc[e] * inv);
  if (p->lse) p->lse[token * p->num_heads + head] = lk_attention_lse(m, l, nan);
}

/* out = sum_s w_s acc_s / sum_s w_s l_s with w_s = exp(m_s - max_s m_s): the partial softmaxes of
 * the splits rescaled to the common max, as flash-decoding combines them. A split that saw no key
 * has m = -inf and weighs nothing; l = NaN marks one that saw a NaN score. */
void lk_attention_combine_row(const lk_attention_job *job, int64_t token, int64_t head, const float *part, int64_t stride,
                              int64_t splits) {
  float acc[LK_ATTENTION_MAX_HEAD_DIM];
  float m = -INFINITY, l = 0.0f;
  bool nan = false;
  for (int64_t s = 0; s < splits; s++) {
    const float *split = part + s * stride;
    if (split[1] != split[1]) nan = true;
    if (split[0] > m) m = split[0];
  }
  for (int64_t e = 0; e < job->p.head_dim; e++) acc[e] = 0.0f;
  if (m > -INFINITY) {
    for (int64_t s = 0; s < splits; s++) {
      const float *split = part + s * stride;
      if (!(split[0] > -INFINITY)) continue;
      const float w = expf(split[0] - m);
      l += w * split[1];
      for (int64_t e = 0; e < job->p.head_dim; e++) acc[e] += w * split[2 + e];
    }
  }
  lk_attention_store_row(job, token, head, acc, m, l, nan);
}

void lk_attention_combine_items(const void *combine_job, int64_t begin, int64_t end) {
  const lk_attention_combine_job *cj = (const lk_attention_combine_job *)combine_job;
  const lk_attention_job *job = cj->job;
  const lk_attention_plan *plan = cj->plan;
  const int64_t stride = LK_ATTENTION_LANES * (plan->padded_dim + 2); /* one unit to the next */
  lk_attention_lanes lanes;
  for (int64_t item = begin; item < end; item++) {
    int64_t cursor = -1;
    while (lk_attention_next_lanes(job, plan, item, &cursor, &lanes))
      for (int64_t k = 0; k < lanes.count; k++)
        lk_attention_combine_row(job, lanes.token[k], lanes.head[k],
                                 lk_attention_partial(plan, item * plan->splits, lanes.first_lane + k), stride, plan->splits);
  }
}
