/* The decode kernel's scores on AMX (included by attention_decode_simd.h in
 * attention_decode_amx.c only, compiled with AMX-TILE and AMX-BF16; chosen at run time where
 * lk_cpu_has_amx_bf16()): per 16-key tile and kv head, Sᵀ = K Qᵀ as bf16 tile multiplies with an
 * f32 accumulator, the softmax and P·V staying on AVX-512 as in the other paths.
 *
 * Why: on AVX-512 the scores are dot products along head_dim, vdpbf16ps on the same two vector
 * ports as every other step, and then 16 partial vectors per row to reduce: with the rows in L2
 * they took about a third of the kernel's time, and from DRAM compute and memory largely take
 * turns, so time taken off the ports comes off the DRAM rows too. A tile multiply runs on its
 * own unit. P·V stays on AVX-512: on AMX it needs P in bf16 and V repacked into key pairs,
 * which measured slower than the FMAs (docs/attention.md, "What did not pay").
 *
 * K is tile A, 16 keys x 32 dims (64 bytes), loaded straight from the cache rows when the tile's
 * rows are evenly spaced (16 tokens of one paged block, a contiguous K), else staged with zero
 * rows past the tile's end. Qᵀ is tile B, 16 dim pairs x n lanes, packed once per unit for every
 * kv head (lk_amx_pack_q). Products of bf16 are exact in f32, as in the other paths; only the
 * summation order differs. The scores tile (keys x lanes) is stored and each lane's 16 scores
 * gathered into the softmax's tail row, already summed. */
#ifndef LK_ATTENTION_DECODE_AMX_H
#define LK_ATTENTION_DECODE_AMX_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* Tile registers (numbers: the intrinsics paste them into the instruction), two sets so that one
 * kv head's scores are computed while the previous one's softmax and P·V run on AVX-512. */
#define LK_AMX_S0 0 /* Sᵀ: 16 keys x n lanes, f32 */
#define LK_AMX_K0 1 /* K: 16 keys x 32 dims, bf16 */
#define LK_AMX_Q0 2 /* Qᵀ: 16 dim pairs x n lanes, bf16 pairs */
#define LK_AMX_S1 3
#define LK_AMX_K1 4
#define LK_AMX_Q1 5

typedef struct lk_amx_config {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} lk_amx_config;

/* The tile shapes of a unit with n lanes per kv head (1 <= n <= 16). */
static inline void lk_amx_configure(int64_t n) {
  lk_amx_config c;
  memset(&c, 0, sizeof c);
  c.palette = 1;
  c.rows[LK_AMX_S0] = c.rows[LK_AMX_S1] = 16;
  c.colsb[LK_AMX_S0] = c.colsb[LK_AMX_S1] = (uint16_t)(n * 4);
  c.rows[LK_AMX_K0] = c.rows[LK_AMX_K1] = 16;
  c.colsb[LK_AMX_K0] = c.colsb[LK_AMX_K1] = 64;
  c.rows[LK_AMX_Q0] = c.rows[LK_AMX_Q1] = 16;
  c.colsb[LK_AMX_Q0] = c.colsb[LK_AMX_Q1] = (uint16_t)(n * 4);
  _tile_loadconfig(&c);
}

/* Tile B of Qᵀ for kv head h and 32-dim chunk c: row i holds the pair (q[2i], q[2i + 1]) of each
 * lane; 1 KB a tile, head_dim / 32 tiles a kv head (the plan counts them: attention_decode.c). */
static inline uint32_t *lk_amx_q_tile(uint32_t *qt, int64_t h, int64_t c, int64_t d) { return qt + (h * (d / 32) + c) * 256; }

/* Packs lane `lane` of kv head h from its bf16 query row. */
static inline void lk_amx_pack_q(uint32_t *qt, const uint16_t *q, int64_t lane, int64_t h, int64_t d) {
  for (int64_t c = 0; c < d / 32; c++) {
    uint32_t *b = lk_amx_q_tile(qt, h, c, d);
    for (int64_t i = 0; i < 16; i++) b[i * 16 + lane] = (uint32_t)q[c * 32 + 2 * i] | (uint32_t)q[c * 32 + 2 * i + 1] << 16;
  }
}

/* The byte step between the tile's 16 K rows when they are evenly spaced (then tile A reads them in
 * place), or 0 (a block boundary inside the tile, a ragged last tile: they are staged). */
static inline int64_t lk_amx_row_step(const char *const *rows, int64_t bk) {
  if (bk < 16) return 0;
  const int64_t step = rows[1] - rows[0];
  for (int64_t jj = 2; jj < 16; jj++)
    if (rows[jj] != rows[0] + jj * step) return 0;
  return step;
}

/* Starts kv head h's scores of the tile into sbuf (16 keys x 16 floats) on tile set `set`: rows
 * the tile's K rows (kv head 0), `step` as lk_amx_row_step gave, stage a 16 x head_dim buffer. */
#define LK_AMX_SCORES(S, K, Q)                                                                          \
  do {                                                                                                  \
    _tile_zero(S);                                                                                      \
    for (int64_t c = 0; c < d / 32; c++) {                                                              \
      _tile_loadd(Q, lk_amx_q_tile(qt, h, c, d), 64);                                                   \
      _tile_loadd(K, k + c * 64, step);                                                                 \
      _tile_dpbf16ps(S, K, Q);                                                                          \
    }                                                                                                   \
    _tile_stored(S, sbuf, 64);                                                                          \
  } while (0)
static inline void lk_amx_scores_start(int set, float *sbuf, uint16_t *stage, uint32_t *qt, const char *const *rows,
                                       int64_t bk, int64_t step, int64_t h, int64_t d) {
  const int64_t head_bytes = d * 2;
  const char *k = rows[0] + h * head_bytes;
  if (!step) {
    for (int64_t jj = 0; jj < 16; jj++) {
      if (jj < bk) memcpy(stage + jj * d, rows[jj] + h * head_bytes, (size_t)head_bytes);
      else memset(stage + jj * d, 0, (size_t)head_bytes);
    }
    k = (const char *)stage;
    step = head_bytes;
  }
  if (set) LK_AMX_SCORES(LK_AMX_S1, LK_AMX_K1, LK_AMX_Q1);
  else LK_AMX_SCORES(LK_AMX_S0, LK_AMX_K0, LK_AMX_Q0);
}
#undef LK_AMX_SCORES

/* tail[lane][jj] = the scores lk_amx_scores_start left in sbuf, lane by lane. */
static inline void lk_amx_scores_finish(float *tail, const float *sbuf, int64_t n) {
  const __m512i keys = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(16));
  for (int64_t lane = 0; lane < n; lane++) _mm512_storeu_ps(tail + lane * 16, _mm512_i32gather_ps(keys, sbuf + lane, 4));
}

#endif /* LK_ATTENTION_DECODE_AMX_H */
