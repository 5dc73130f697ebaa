/* Activations and GLUs over a SIMD mapping: included by activation_avx2.c and activation_avx512.c
 * after their mapping header. out = act(gate) (* up), f32 math from simd_math.h, out rounded once.
 *
 * A row's elements all go through the vector math, the ragged end too (through a zero-padded
 * vector on the stack), so an element's result does not depend on where in the row it falls, on
 * the thread split, or on in-place use. bf16 runs as even/odd pairs (lk_vf2: no shuffles).
 * Large outputs (>= LK_STREAMING_STORE_MIN_BYTES) are written with streaming stores: SwiGLU on
 * [4096, 2 x 14336] reads 2 and writes 1 element per output, and a write-allocate would add a
 * fourth. */
#include "activation.h"
#include "simd_dtype.h"
#include "simd_math.h"

/* How far ahead the streaming loops prefetch gate and up, into L1, every line. With the output
 * bypassing the caches and ~20 vector ops per SiLU, the hardware prefetchers alone left SwiGLU on
 * [4096, 2 x 14336] f32 (AVX-512, 2 threads) at ~0.74 of the copy ceiling; measured in one run
 * (libraries A/B, same process): 512 B ahead 0.80, 1 KiB 0.86, 2 KiB 0.88, 4 KiB 0.90, into L2
 * (T1) 1 KiB 0.81. 2 KiB: near the best without leaning on a large L1. */
#ifndef LK_ACTIVATION_PREFETCH_BYTES
#define LK_ACTIVATION_PREFETCH_BYTES 2048
#endif
#ifndef LK_ACTIVATION_PREFETCH
#define LK_ACTIVATION_PREFETCH(address) _mm_prefetch((const char *)(address), _MM_HINT_T0)
#endif

/* dtype: the output's. 16-bit outputs take the cheaper SiLU / GELU-tanh forms of simd_math.h
 * (everywhere in a row, the ragged end too, so results stay independent of the split). */
static LK_INLINE lk_vf LK_ISA_SUFFIX(activate)(lk_vf x, lk_activation act, lk_dtype dtype) {
  if (dtype != LK_DTYPE_F32) {
    const lk_out16 out = dtype == LK_DTYPE_BF16 ? LK_OUT16_BF16 : LK_OUT16_F16;
    if (act == LK_ACTIVATION_SILU) return lk_v_silu16(x, out);
    if (act == LK_ACTIVATION_GELU_TANH) return lk_v_gelu_tanh16(x, out);
  }
  switch (act) {
  case LK_ACTIVATION_SILU: return lk_v_silu(x);
  case LK_ACTIVATION_GELU_ERF: return lk_v_gelu_erf(x);
  case LK_ACTIVATION_GELU_TANH: return lk_v_gelu_tanh(x);
  case LK_ACTIVATION_RELU: return lk_v_relu(x);
  case LK_ACTIVATION_SIGMOID: return lk_v_sigmoid(x);
  case LK_ACTIVATION_EXP: return lk_v_exp(x);
  case LK_ACTIVATION_TANH: return lk_v_tanh(x);
  default: return lk_v_erf(x);
  }
}

/* Elements [begin, end), fewer than a vector, through one zero-padded vector. */
static LK_INLINE void LK_ISA_SUFFIX(activate_partial)(const void *gate, const void *up, void *out, int64_t begin,
                                                      int64_t end, lk_dtype dtype, lk_activation act, bool gated) {
  float g[LK_VEC_LANES], u[LK_VEC_LANES], y[LK_VEC_LANES];
  for (int k = 0; k < LK_VEC_LANES; k++) {
    g[k] = begin + k < end ? lk_load_element(gate, begin + k, dtype) : 0.0f;
    u[k] = gated && begin + k < end ? lk_load_element(up, begin + k, dtype) : 0.0f;
  }
  lk_vf v = LK_ISA_SUFFIX(activate)(lk_v_load_f32(g), act, dtype);
  if (gated) v = lk_v_mul(v, lk_v_load_f32(u));
  lk_v_store_f32(y, v);
  for (int64_t i = begin; i < end; i++) lk_store_element(out, i, dtype, y[i - begin]);
}

static LK_INLINE void LK_ISA_SUFFIX(activate_row)(const void *gate, const void *up, void *out, int64_t n,
                                                  lk_dtype dtype, lk_activation act, bool gated, bool stream) {
  int64_t head = stream ? lk_stream_head(out, dtype) : 0;
  const bool streaming = stream && head >= 0 && head < n;
  if (!streaming) head = 0;
  int64_t i = 0;
  for (; i < head; i += LK_VEC_LANES)
    LK_ISA_SUFFIX(activate_partial)(gate, up, out, i, i + LK_VEC_LANES < head ? i + LK_VEC_LANES : head, dtype, act, gated);
  i = head;
#define LK_ACT(v, offset) (gated ? lk_v_mul(LK_ISA_SUFFIX(activate)(v, act, dtype), lk_v_load(up, i + (offset), dtype)) \
                                 : LK_ISA_SUFFIX(activate)(v, act, dtype))
  const int64_t size = (int64_t)lk_dtype_size(dtype);
  /* one prefetch per 64-byte line of gate and up that this iteration's 2 * LK_VEC_LANES elements span */
#define LK_PREFETCH_AHEAD()                                                                        \
  do {                                                                                             \
    if (streaming) {                                                                               \
      for (int64_t line = 0; line < 2 * LK_VEC_LANES * size; line += 64) {                         \
        LK_ACTIVATION_PREFETCH((const char *)gate + i * size + LK_ACTIVATION_PREFETCH_BYTES + line); \
        if (gated) LK_ACTIVATION_PREFETCH((const char *)up + i * size + LK_ACTIVATION_PREFETCH_BYTES + line); \
      }                                                                                            \
    }                                                                                              \
  } while (0)
  if (dtype == LK_DTYPE_BF16) {
    for (; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES) {
      LK_PREFETCH_AHEAD();
      lk_vf2 v = lk_v_load_bf16_pairs((const uint16_t *)gate + i);
      v.even = LK_ISA_SUFFIX(activate)(v.even, act, dtype);
      v.odd = LK_ISA_SUFFIX(activate)(v.odd, act, dtype);
      if (gated) {
        lk_vf2 w = lk_v_load_bf16_pairs((const uint16_t *)up + i);
        v.even = lk_v_mul(v.even, w.even);
        v.odd = lk_v_mul(v.odd, w.odd);
      }
      /* The rounding's NaN fix-up only for the rare pairs that need it (even + odd is NaN when
       * either is, or for inf - inf, which merely takes the careful path). */
      const bool finite = !lk_v_mask_any(lk_v_cmp_nan(lk_v_add(v.even, v.odd)));
      if (streaming) {
        if (finite) lk_v_stream_bf16_pairs((uint16_t *)out + i, v, true);
        else lk_v_stream_bf16_pairs((uint16_t *)out + i, v, false);
      } else {
        if (finite) lk_v_store_bf16_pairs((uint16_t *)out + i, v, true);
        else lk_v_store_bf16_pairs((uint16_t *)out + i, v, false);
      }
    }
  } else if (streaming) {
    for (; i + 2 * LK_VEC_LANES <= n; i += 2 * LK_VEC_LANES) {
      LK_PREFETCH_AHEAD();
      lk_vf v0 = lk_v_load(gate, i, dtype), v1 = lk_v_load(gate, i + LK_VEC_LANES, dtype);
      lk_v_stream2(out, i, dtype, LK_ACT(v0, 0), LK_ACT(v1, LK_VEC_LANES), false);
    }
  }
  for (; i + LK_VEC_LANES <= n; i += LK_VEC_LANES)
    lk_v_store(out, i, dtype, LK_ACT(lk_v_load(gate, i, dtype), 0), false);
#undef LK_ACT
#undef LK_PREFETCH_AHEAD
  if (i < n) LK_ISA_SUFFIX(activate_partial)(gate, up, out, i, n, dtype, act, gated);
}

#define LK_ACTIVATION_ROWS(dtype, act, gated)                                                      \
  do {                                                                                             \
  for (int64_t v = row_begin; v < row_end; v++) {                                                  \
    int64_t r, c;                                                                                  \
    const int64_t n = lk_activation_piece(job, v, &r, &c);                                         \
    LK_ISA_SUFFIX(activate_row)((const char *)job->gate + (r * job->gate_stride + c) * size,       \
                                gated ? (const char *)job->up + (r * job->up_stride + c) * size : NULL, \
                                (char *)job->out + (r * job->out_stride + c) * size, n, dtype, act, gated, \
                                job->streaming);                                                   \
  }                                                                                                \
  } while (0)

#define LK_ACTIVATION_GATED(dtype, act)                                                            \
  do {                                                                                             \
    if (job->up) LK_ACTIVATION_ROWS(dtype, act, true);                                             \
    else LK_ACTIVATION_ROWS(dtype, act, false);                                                    \
  } while (0)

/* One instantiation per (dtype, activation, gated) so the inner loops carry no branches on them. */
#define LK_ACTIVATION_SWITCH(dtype)                                                                \
  do {                                                                                             \
    switch (job->activation) {                                                                     \
    case LK_ACTIVATION_SILU: LK_ACTIVATION_GATED(dtype, LK_ACTIVATION_SILU); break;                \
    case LK_ACTIVATION_GELU_ERF: LK_ACTIVATION_GATED(dtype, LK_ACTIVATION_GELU_ERF); break;        \
    case LK_ACTIVATION_GELU_TANH: LK_ACTIVATION_GATED(dtype, LK_ACTIVATION_GELU_TANH); break;      \
    case LK_ACTIVATION_RELU: LK_ACTIVATION_GATED(dtype, LK_ACTIVATION_RELU); break;                \
    case LK_ACTIVATION_SIGMOID: LK_ACTIVATION_GATED(dtype, LK_ACTIVATION_SIGMOID); break;          \
    case LK_ACTIVATION_EXP: LK_ACTIVATION_GATED(dtype, LK_ACTIVATION_EXP); break;                  \
    case LK_ACTIVATION_TANH: LK_ACTIVATION_GATED(dtype, LK_ACTIVATION_TANH); break;                \
    default: LK_ACTIVATION_GATED(dtype, LK_ACTIVATION_ERF); break;                                 \
    }                                                                                              \
  } while (0)

void LK_ISA_SUFFIX(lk_activation_rows)(const void *job_, int64_t row_begin, int64_t row_end) {
  const lk_activation_job *job = (const lk_activation_job *)job_;
  const int64_t size = (int64_t)lk_dtype_size(job->dtype);
  switch (job->dtype) {
  case LK_DTYPE_F16: LK_ACTIVATION_SWITCH(LK_DTYPE_F16); break;
  case LK_DTYPE_BF16: LK_ACTIVATION_SWITCH(LK_DTYPE_BF16); break;
  default: LK_ACTIVATION_SWITCH(LK_DTYPE_F32); break;
  }
  /* Streaming stores are weakly ordered: fence before the caller sees this share as done. */
  if (job->streaming) lk_v_stream_fence();
}
