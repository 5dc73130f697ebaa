/* Attention internals: the validated job and the per-row geometry every kernel shares
 * (attention.c validates and holds the portable kernel; attention_tile*.h the tiled ones). */
#ifndef LK_ATTENTION_H
#define LK_ATTENTION_H

#include "lk_internal.h"

#include <math.h>

#define LK_ATTENTION_MAX_HEAD_DIM 256

typedef struct lk_attention_job {
  lk_attention_params p; /* strides and scale resolved */
  bool paged;
  int64_t group;         /* query heads per kv head */
} lk_attention_job;

void lk_attention_rows_scalar(const void *job, int64_t row_begin, int64_t row_end);

/* One (query token, head) row: its sequence, its position among the keys and the visible keys
 * [lo, hi] (empty when hi < lo). Rows are numbered token * num_heads + head. */
typedef struct lk_attention_row {
  int64_t token, head, kv_head, seq, pos, lo, hi;
} lk_attention_row;

/* The sequence owning query token t: the last s with cu_seqlens_q[s] <= t (empty sequences skipped). */
static inline int64_t lk_attention_sequence_of(const int32_t *cu, int64_t num_seqs, int64_t t) {
  int64_t lo = 0, hi = num_seqs; /* cu[lo] <= t < cu[hi] */
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (cu[mid] <= t) lo = mid;
    else hi = mid;
  }
  return lo;
}

/* Sequence s's key count. */
static inline int64_t lk_attention_keys_of(const lk_attention_job *job, int64_t s) {
  const lk_attention_params *p = &job->p;
  return job->paged ? p->seqlens_k[s] : p->cu_seqlens_k[s + 1] - p->cu_seqlens_k[s];
}

/* The longest sequence's key count. */
static inline int64_t lk_attention_max_keys(const lk_attention_job *job) {
  int64_t max_keys = 0;
  for (int64_t s = 0; s < job->p.num_seqs; s++) {
    const int64_t sk = lk_attention_keys_of(job, s);
    if (sk > max_keys) max_keys = sk;
  }
  return max_keys;
}

/* A finished row's online-softmax state (running max m, sum l, whether a score was NaN) as the
 * factor its accumulator is scaled by and its lse: a NaN score makes the whole row NaN, and a row
 * that saw no key has out 0 and lse -inf. */
static inline float lk_attention_output_scale(float l, bool nan) { return nan ? NAN : l > 0.0f ? 1.0f / l : 0.0f; }
static inline float lk_attention_lse(float m, float l, bool nan) { return nan ? NAN : l > 0.0f ? m + logf(l) : -INFINITY; }

static inline lk_attention_row lk_attention_row_at(const lk_attention_job *job, int64_t r) {
  const lk_attention_params *p = &job->p;
  lk_attention_row row;
  row.token = r / p->num_heads;
  row.head = r % p->num_heads;
  row.kv_head = row.head / job->group;
  row.seq = lk_attention_sequence_of(p->cu_seqlens_q, p->num_seqs, row.token);
  const int64_t sq = p->cu_seqlens_q[row.seq + 1] - p->cu_seqlens_q[row.seq], i = row.token - p->cu_seqlens_q[row.seq];
  const int64_t sk = lk_attention_keys_of(job, row.seq);
  row.pos = i + sk - sq; /* the query's position among the keys */
  row.lo = 0;
  row.hi = sk - 1;
  if (p->flags & LK_ATTENTION_CAUSAL) row.hi = row.hi < row.pos ? row.hi : row.pos;
  if (p->window_left >= 0) row.lo = row.lo > row.pos - p->window_left ? row.lo : row.pos - p->window_left;
  if (p->window_right >= 0) row.hi = row.hi < row.pos + p->window_right ? row.hi : row.pos + p->window_right;
  return row;
}

/* Rows [j0, j0 + count) of kv head h's keys (values) in sequence s, into rows[]: the kernels'
 * tiles, with one division per tile instead of lk_attention_kv's two per row. */
static inline void lk_attention_kv_rows(const lk_attention_job *job, bool values, int64_t s, int64_t j0, int64_t count,
                                        int64_t h, const char **rows) {
  const lk_attention_params *p = &job->p;
  const int64_t size = (int64_t)lk_dtype_size(p->dtype);
  if (job->paged) {
    const int64_t bs = p->cache.block_size, row_bytes = p->num_kv_heads * p->head_dim * size;
    const char *base = (const char *)(values ? p->cache.value_cache : p->cache.key_cache) + h * p->head_dim * size;
    const int32_t *table = p->block_tables + s * p->max_blocks_per_seq;
    int64_t block = j0 / bs, offset = j0 % bs;
    for (int64_t i = 0; i < count; i++) {
      rows[i] = base + ((int64_t)table[block] * bs + offset) * row_bytes;
      if (++offset == bs) {
        offset = 0;
        block++;
      }
    }
    return;
  }
  const int64_t stride = values ? p->v_stride : p->k_stride;
  const char *row = (const char *)(values ? p->v : p->k) + ((p->cu_seqlens_k[s] + j0) * stride + h * p->head_dim) * size;
  for (int64_t i = 0; i < count; i++) rows[i] = row + i * stride * size;
}

/* Key j's row of kv head h in the keys (values) of sequence s. */
static inline const void *lk_attention_kv(const lk_attention_job *job, bool values, int64_t s, int64_t j, int64_t h) {
  const char *row;
  lk_attention_kv_rows(job, values, s, j, 1, h, &row);
  return row;
}

/* The score of key j before the mask: scaled dot, softcap, ALiBi, bias (llmkernels.h's order). */
static inline float lk_attention_score(const lk_attention_params *p, float dot, float slope, const float *bias_row,
                                       int64_t pos, int64_t j) {
  float score = dot * p->scale;
  if (p->softcap > 0.0f) score = p->softcap * tanhf(score / p->softcap);
  if (p->alibi_slopes) score -= slope * (float)(pos > j ? pos - j : j - pos);
  if (bias_row) score += bias_row[j];
  return score;
}

#endif /* LK_ATTENTION_H */
