/* RoPE internals: the validated job every ISA variant runs over a range of tokens, and the
 * per-pair rotation all of them share. */
#ifndef LK_ROPE_H
#define LK_ROPE_H

#include "lk_internal.h"

typedef struct lk_rope_job {
  lk_rope_params p;  /* rot_dim, q_stride and k_stride resolved (never 0); k_heads 0 without k */
  int64_t k_heads;   /* num_kv_heads, or 0 when k is NULL */
  bool prefetch;     /* prefetch the next token's heads (large calls, see rope.c) */
} lk_rope_job;

/* Each rotates tokens [token_begin, token_end) of job (a const lk_rope_job *). */
void lk_rope_rows_scalar(const void *job, int64_t token_begin, int64_t token_end);
void lk_rope_rows_avx2(const void *job, int64_t token_begin, int64_t token_end);
void lk_rope_rows_avx512(const void *job, int64_t token_begin, int64_t token_end);

/* Position of token t; validated against [0, max_position) before any variant runs. */
static inline int64_t lk_rope_position(const lk_rope_params *p, int64_t t) {
  return p->position_type == LK_INDEX_I64 ? ((const int64_t *)p->positions)[t]
                                          : (int64_t)((const int32_t *)p->positions)[t];
}

/* Element offsets of the two members of pair j within a head. */
static inline int64_t lk_rope_first(lk_rope_style style, int64_t j) { return style == LK_ROPE_GPTJ ? 2 * j : j; }
static inline int64_t lk_rope_second(lk_rope_style style, int64_t j, int64_t half) {
  return style == LK_ROPE_GPTJ ? 2 * j + 1 : j + half;
}

/* One pair of one head through the scalar definition: the reference, and every vector tail. */
static inline void lk_rope_pair(void *head, int64_t ia, int64_t ib, float c, float s, lk_dtype dtype) {
  float a = lk_load_element(head, ia, dtype), b = lk_load_element(head, ib, dtype);
  lk_store_element(head, ia, dtype, a * c - b * s);
  lk_store_element(head, ib, dtype, b * c + a * s);
}

#endif /* LK_ROPE_H */
