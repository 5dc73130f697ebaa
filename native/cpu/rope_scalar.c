/* RoPE, the scalar reference: per token t, head h and pair j < rot_dim / 2, with
 * c = cache[pos[t], j] and s = cache[pos[t], rot_dim / 2 + j],
 *   a' = a c - b s,   b' = b c + a s
 * in f32, each result rounded once to the dtype. NeoX pairs (j, j + rot_dim / 2), GPT-J pairs
 * (2j, 2j + 1); elements from rot_dim on are neither read nor written. */
#include "rope.h"

static void rotate_heads(void *x, int64_t heads, const lk_rope_params *p, const float *cos_row) {
  const int64_t half = p->rot_dim / 2, size = (int64_t)lk_dtype_size(p->dtype);
  const float *sin_row = cos_row + half;
  for (int64_t h = 0; h < heads; h++) {
    void *head = (char *)x + h * p->head_dim * size;
    for (int64_t j = 0; j < half; j++)
      lk_rope_pair(head, lk_rope_first(p->style, j), lk_rope_second(p->style, j, half), cos_row[j], sin_row[j], p->dtype);
  }
}

void lk_rope_rows_scalar(const void *job_, int64_t token_begin, int64_t token_end) {
  const lk_rope_job *job = (const lk_rope_job *)job_;
  const lk_rope_params *p = &job->p;
  const int64_t size = (int64_t)lk_dtype_size(p->dtype);
  for (int64_t t = token_begin; t < token_end; t++) {
    const float *cos_row = p->cos_sin_cache + lk_rope_position(p, t) * p->rot_dim;
    rotate_heads((char *)p->q + t * p->q_stride * size, p->num_heads, p, cos_row);
    if (job->k_heads) rotate_heads((char *)p->k + t * p->k_stride * size, job->k_heads, p, cos_row);
  }
}
