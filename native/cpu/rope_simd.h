/* RoPE over a SIMD mapping: included by rope_avx2.c and rope_avx512.c after their mapping header
 * and a definition of lk_v_swap_pairs (lanes 2i and 2i + 1 exchanged). Same arithmetic as
 * rope_scalar.c, operation for operation (a c and b s rounded to f32, then subtracted or added;
 * no FMA), so every variant gives the scalar reference's results bit for bit.
 *
 *   NeoX   pairs (j, j + rot_dim/2): the two halves are contiguous, so a, b, cos and sin are
 *          plain vector loads: a' = a c - b s, b' = b c + a s.
 *   GPT-J  pairs (2j, 2j + 1): per token, the cache row is expanded once into
 *          C = [c0 c0 c1 c1 ...] and S = [-s0 s0 -s1 s1 ...] (shared by all of its heads), so
 *          x' = x C + swap_pairs(x) S: one in-lane shuffle per vector, no deinterleave.
 *
 * bf16 goes through lk_vf2 pairs (2 x LK_VEC_LANES elements as their even and odd members,
 * widened and narrowed with shifts and masks instead of port-5 conversions). GPT-J pairs are
 * exactly those members, so cos and sin load straight from the cache row and the shuffle goes
 * too; NeoX takes the even and odd cos/sin of each block from per-token tables. Measured on the
 * Llama shape with the data in L2, one thread, A/B in one session (best of 4 on a busy machine),
 * ns per element: AVX-512 NeoX 0.28 -> 0.16, GPT-J 0.47 -> 0.21; AVX2 GPT-J 0.72 -> 0.33.
 *
 * In place and one pass: each line of q and k is read once and written back once, so the
 * traffic is that of a copy; the cache row of a token stays in L1 across its heads. Elements
 * past rot_dim are never loaded or stored; pairs past the last whole vector go through the
 * scalar definition. */
#include "rope.h"
#include "simd_dtype.h"

/* Rotary dims up to this use the per-token tables on the stack; larger ones (no model has them)
 * run the scalar reference. */
#define LK_ROPE_TABLE_MAX 1024

static LK_INLINE void LK_ISA_SUFFIX(rope_neox_head)(void *head, const float *cos_row, int64_t half, lk_dtype dtype) {
  const float *sin_row = cos_row + half;
  int64_t j = 0;
  for (; j + LK_VEC_LANES <= half; j += LK_VEC_LANES) {
    lk_vf a = lk_v_load(head, j, dtype), b = lk_v_load(head, j + half, dtype);
    lk_vf c = lk_v_load_f32(cos_row + j), s = lk_v_load_f32(sin_row + j);
    lk_v_store(head, j, dtype, lk_v_sub(lk_v_mul(a, c), lk_v_mul(b, s)), false);
    lk_v_store(head, j + half, dtype, lk_v_add(lk_v_mul(b, c), lk_v_mul(a, s)), false);
  }
  for (; j < half; j++) lk_rope_pair(head, j, j + half, cos_row[j], sin_row[j], dtype);
}

/* bf16 NeoX: blocks of 2 x LK_VEC_LANES from each half as even/odd members; table_c/table_s
 * hold each block's cos/sin with its even members first (see rope_token). */
static LK_INLINE void LK_ISA_SUFFIX(rope_neox_head_bf16)(uint16_t *head, const float *cos_row, const float *table_c,
                                                         const float *table_s, int64_t half) {
  int64_t j = 0;
  for (; j + 2 * LK_VEC_LANES <= half; j += 2 * LK_VEC_LANES) {
    lk_vf2 a = lk_v_load_bf16_pairs(head + j), b = lk_v_load_bf16_pairs(head + half + j);
    lk_vf c_even = lk_v_load_f32(table_c + j), c_odd = lk_v_load_f32(table_c + j + LK_VEC_LANES);
    lk_vf s_even = lk_v_load_f32(table_s + j), s_odd = lk_v_load_f32(table_s + j + LK_VEC_LANES);
    lk_vf2 a2, b2;
    a2.even = lk_v_sub(lk_v_mul(a.even, c_even), lk_v_mul(b.even, s_even));
    a2.odd = lk_v_sub(lk_v_mul(a.odd, c_odd), lk_v_mul(b.odd, s_odd));
    b2.even = lk_v_add(lk_v_mul(b.even, c_even), lk_v_mul(a.even, s_even));
    b2.odd = lk_v_add(lk_v_mul(b.odd, c_odd), lk_v_mul(a.odd, s_odd));
    lk_v_store_bf16_pairs(head + j, a2, false);
    lk_v_store_bf16_pairs(head + half + j, b2, false);
  }
  const float *sin_row = cos_row + half;
  for (; j + LK_VEC_LANES <= half; j += LK_VEC_LANES) {
    lk_vf a = lk_v_load_bf16(head + j), b = lk_v_load_bf16(head + half + j);
    lk_vf c = lk_v_load_f32(cos_row + j), s = lk_v_load_f32(sin_row + j);
    lk_v_store_bf16(head + j, lk_v_sub(lk_v_mul(a, c), lk_v_mul(b, s)), false);
    lk_v_store_bf16(head + half + j, lk_v_add(lk_v_mul(b, c), lk_v_mul(a, s)), false);
  }
  for (; j < half; j++) lk_rope_pair(head, j, j + half, cos_row[j], sin_row[j], LK_DTYPE_BF16);
}

/* bf16 GPT-J: the even and odd members of 2 x LK_VEC_LANES elements are LK_VEC_LANES whole
 * pairs, whose cos and sin are contiguous in the cache row. */
static LK_INLINE void LK_ISA_SUFFIX(rope_gptj_head_bf16)(uint16_t *head, const float *cos_row, int64_t rot_dim) {
  const int64_t half = rot_dim / 2;
  const float *sin_row = cos_row + half;
  int64_t i = 0;
  for (; i + 2 * LK_VEC_LANES <= rot_dim; i += 2 * LK_VEC_LANES) {
    lk_vf2 x = lk_v_load_bf16_pairs(head + i), y;
    lk_vf c = lk_v_load_f32(cos_row + i / 2), s = lk_v_load_f32(sin_row + i / 2);
    y.even = lk_v_sub(lk_v_mul(x.even, c), lk_v_mul(x.odd, s));
    y.odd = lk_v_add(lk_v_mul(x.odd, c), lk_v_mul(x.even, s));
    lk_v_store_bf16_pairs(head + i, y, false);
  }
  for (int64_t j = i / 2; j < half; j++) lk_rope_pair(head, 2 * j, 2 * j + 1, cos_row[j], sin_row[j], LK_DTYPE_BF16);
}

static LK_INLINE void LK_ISA_SUFFIX(rope_gptj_head)(void *head, const float *cos_row, const float *table_c,
                                                    const float *table_s, int64_t rot_dim, lk_dtype dtype) {
  int64_t i = 0;
  for (; i + LK_VEC_LANES <= rot_dim; i += LK_VEC_LANES) {
    lk_vf x = lk_v_load(head, i, dtype);
    lk_vf rotated = lk_v_add(lk_v_mul(x, lk_v_load_f32(table_c + i)),
                             lk_v_mul(lk_v_swap_pairs(x), lk_v_load_f32(table_s + i)));
    lk_v_store(head, i, dtype, rotated, false);
  }
  const int64_t half = rot_dim / 2;
  for (int64_t j = i / 2; j < half; j++) lk_rope_pair(head, 2 * j, 2 * j + 1, cos_row[j], cos_row[half + j], dtype);
}

/* One head through the path for its dtype and style (constants after inlining). */
static LK_INLINE void LK_ISA_SUFFIX(rope_head)(char *head, const float *cos_row, const float *table_c, const float *table_s,
                                               int64_t rot_dim, lk_dtype dtype, lk_rope_style style) {
  if (dtype == LK_DTYPE_BF16 && style == LK_ROPE_GPTJ)
    LK_ISA_SUFFIX(rope_gptj_head_bf16)((uint16_t *)head, cos_row, rot_dim);
  else if (dtype == LK_DTYPE_BF16)
    LK_ISA_SUFFIX(rope_neox_head_bf16)((uint16_t *)head, cos_row, table_c, table_s, rot_dim / 2);
  else if (style == LK_ROPE_GPTJ)
    LK_ISA_SUFFIX(rope_gptj_head)(head, cos_row, table_c, table_s, rot_dim, dtype);
  else
    LK_ISA_SUFFIX(rope_neox_head)(head, cos_row, rot_dim / 2, dtype);
}

/* Rotates `heads` heads from x; with `ahead` != 0 it first prefetches the same head's rotated
 * lines `ahead` bytes on (the next token). Without it, a bf16 call on [4096, 40 heads, 128]
 * (2 threads, DRAM-resident) took 0.8-1.0x the time of the f32 call on half the bytes: the
 * arithmetic of one token did not overlap the misses of the next. With the prefetches spread over
 * the heads, a few lines at a time, it takes about half (all at once per token, they queued on
 * the line fill buffers and stalled the core: no gain). */
static LK_INLINE void LK_ISA_SUFFIX(rope_heads)(char *x, int64_t heads, int64_t head_bytes, int64_t ahead,
                                                int64_t rot_bytes, const float *cos_row, const float *table_c,
                                                const float *table_s, int64_t rot_dim, lk_dtype dtype, lk_rope_style style) {
  for (int64_t h = 0; h < heads; h++) {
    char *head = x + h * head_bytes;
    if (ahead)
      for (int64_t b = 0; b < rot_bytes; b += 64) lk_prefetch(head + ahead + b);
    LK_ISA_SUFFIX(rope_head)(head, cos_row, table_c, table_s, rot_dim, dtype, style);
  }
}

static LK_INLINE void LK_ISA_SUFFIX(rope_token)(const lk_rope_job *job, int64_t t, int64_t token_end, lk_dtype dtype,
                                                lk_rope_style style, float *table_c, float *table_s) {
  /* Locals only: stores to q and k may alias *job as far as the compiler knows. */
  const int64_t size = (int64_t)lk_dtype_size(dtype);
  const int64_t rot_dim = job->p.rot_dim, half = rot_dim / 2, head_bytes = job->p.head_dim * size;
  const float *const cos_row = job->p.cos_sin_cache + lk_rope_position(&job->p, t) * rot_dim;
  const float *const sin_row = cos_row + half;
  char *const q = (char *)job->p.q + t * job->p.q_stride * size;
  char *const k = job->k_heads ? (char *)job->p.k + t * job->p.k_stride * size : NULL;
  const bool prefetch = job->prefetch && t + 1 < token_end;
  const int64_t q_ahead = prefetch ? job->p.q_stride * size : 0, k_ahead = prefetch ? job->p.k_stride * size : 0;

  /* The cache row in the shape the heads' path wants it, once per token for all of its heads. */
  if (dtype == LK_DTYPE_BF16 && style == LK_ROPE_NEOX) {
    /* Per block of 2 x LK_VEC_LANES: the cos (sin) of its even members, then of its odd ones. */
    for (int64_t j = 0; j + 2 * LK_VEC_LANES <= half; j += 2 * LK_VEC_LANES)
      for (int64_t m = 0; m < LK_VEC_LANES; m++) {
        table_c[j + m] = cos_row[j + 2 * m];
        table_c[j + LK_VEC_LANES + m] = cos_row[j + 2 * m + 1];
        table_s[j + m] = sin_row[j + 2 * m];
        table_s[j + LK_VEC_LANES + m] = sin_row[j + 2 * m + 1];
      }
  } else if (dtype != LK_DTYPE_BF16 && style == LK_ROPE_GPTJ) {
    for (int64_t j = 0; j < half; j++) {
      table_c[2 * j] = table_c[2 * j + 1] = cos_row[j];
      table_s[2 * j] = -sin_row[j];
      table_s[2 * j + 1] = sin_row[j];
    }
  }
  LK_ISA_SUFFIX(rope_heads)(q, job->p.num_heads, head_bytes, q_ahead, rot_dim * size, cos_row, table_c, table_s, rot_dim,
                            dtype, style);
  if (k)
    LK_ISA_SUFFIX(rope_heads)(k, job->k_heads, head_bytes, k_ahead, rot_dim * size, cos_row, table_c, table_s, rot_dim,
                              dtype, style);
}

/* One instantiation per (dtype, style) so the inner loops carry no branches on them. */
#define LK_ROPE_TOKENS(dtype, style)                                                               \
  for (int64_t t = token_begin; t < token_end; t++) LK_ISA_SUFFIX(rope_token)(job, t, token_end, dtype, style, table_c, table_s)

#define LK_ROPE_TOKENS_STYLE(dtype)                                                                \
  do {                                                                                             \
    if (job->p.style == LK_ROPE_GPTJ) LK_ROPE_TOKENS(dtype, LK_ROPE_GPTJ);                          \
    else LK_ROPE_TOKENS(dtype, LK_ROPE_NEOX);                                                      \
  } while (0)

void LK_ISA_SUFFIX(lk_rope_rows)(const void *job_, int64_t token_begin, int64_t token_end) {
  const lk_rope_job *job = (const lk_rope_job *)job_;
  if (job->p.rot_dim > LK_ROPE_TABLE_MAX) {
    lk_rope_rows_scalar(job_, token_begin, token_end);
    return;
  }
  float table_c[LK_ROPE_TABLE_MAX], table_s[LK_ROPE_TABLE_MAX];
  switch (job->p.dtype) {
  case LK_DTYPE_F16: LK_ROPE_TOKENS_STYLE(LK_DTYPE_F16); break;
  case LK_DTYPE_BF16: LK_ROPE_TOKENS_STYLE(LK_DTYPE_BF16); break;
  default: LK_ROPE_TOKENS_STYLE(LK_DTYPE_F32); break;
  }
}
