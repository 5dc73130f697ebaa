/* dtype-generic vector load/store over a SIMD mapping (include simd_avx2.h or simd_avx512.h
 * first). With a constant dtype these fold to one instruction sequence after inlining. */
#ifndef LK_SIMD_DTYPE_H
#define LK_SIMD_DTYPE_H

#include "lk_internal.h"

static LK_INLINE lk_vf lk_v_load(const void *base, int64_t i, lk_dtype dtype) {
  switch (dtype) {
  case LK_DTYPE_F16: return lk_v_load_f16((const uint16_t *)base + i);
  case LK_DTYPE_BF16: return lk_v_load_bf16((const uint16_t *)base + i);
  default: return lk_v_load_f32((const float *)base + i);
  }
}
/* `finite`: the caller knows v holds no NaN, so bf16 rounding may skip its NaN fix-up. */
static LK_INLINE void lk_v_store(void *base, int64_t i, lk_dtype dtype, lk_vf v, bool finite) {
  switch (dtype) {
  case LK_DTYPE_F16: lk_v_store_f16((uint16_t *)base + i, v); break;
  case LK_DTYPE_BF16: lk_v_store_bf16((uint16_t *)base + i, v, finite); break;
  default: lk_v_store_f32((float *)base + i, v); break;
  }
}
/* Streams elements [i, i + 2 * LK_VEC_LANES): LK_VEC_LANES * 4 bytes per store for every dtype,
 * so base + i must be aligned to that (see lk_stream_head). */
static LK_INLINE void lk_v_stream2(void *base, int64_t i, lk_dtype dtype, lk_vf v0, lk_vf v1, bool finite) {
  switch (dtype) {
  case LK_DTYPE_F16: lk_v_stream2_f16((uint16_t *)base + i, v0, v1); break;
  case LK_DTYPE_BF16: lk_v_stream2_bf16((uint16_t *)base + i, v0, v1, finite); break;
  default:
    lk_v_stream_f32((float *)base + i, v0);
    lk_v_stream_f32((float *)base + i + LK_VEC_LANES, v1);
    break;
  }
}
/* Stores v as dtype and returns what was stored, widened back: the rounded value. */
static LK_INLINE lk_vf lk_v_store_round(void *base, int64_t i, lk_dtype dtype, lk_vf v) {
  switch (dtype) {
  case LK_DTYPE_F16: return lk_v_store_round_f16((uint16_t *)base + i, v);
  case LK_DTYPE_BF16: return lk_v_store_round_bf16((uint16_t *)base + i, v);
  default: lk_v_store_f32((float *)base + i, v); return v;
  }
}

/* Elements to handle before `base + i` is aligned for lk_v_stream2, or -1 when it never will be
 * (an address that is not a multiple of the element size). */
static LK_INLINE int64_t lk_stream_head(const void *base, lk_dtype dtype) {
  uintptr_t size = (uintptr_t)lk_dtype_size(dtype);
  uintptr_t align = LK_VEC_LANES * 4;
  uintptr_t misalign = (uintptr_t)base % align;
  if (misalign % size) return -1;
  return (int64_t)(((align - misalign) % align) / size);
}

#endif /* LK_SIMD_DTYPE_H */
