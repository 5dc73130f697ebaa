/* The SIMD mapping for AVX2 + FMA + F16C: 8 f32 lanes. Kernels written once over these names
 * (see *_simd.h) compile for AVX2 and AVX-512 alike, so the AVX-512 build — which this project's
 * CI machines cannot run — executes the same kernel source the AVX2 tests exercise. */
#ifndef LK_SIMD_AVX2_H
#define LK_SIMD_AVX2_H

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#include "simd_common.h"

#define LK_VEC_LANES 8
/* Whether bf16 rows with an f32 weight also go through lk_vf2 pairs. Not here: splitting the f32
 * weight costs as many shuffles as the one-vector path saves (measured 3-5% slower on
 * [4096, 8192], 3% faster on one row). */
#define LK_PAIR_F32_WEIGHTS 0
#define LK_ISA_SUFFIX(name) name##_avx2
typedef __m256 lk_vf;

static LK_INLINE lk_vf lk_v_zero(void) { return _mm256_setzero_ps(); }
static LK_INLINE lk_vf lk_v_set1(float f) { return _mm256_set1_ps(f); }
static LK_INLINE lk_vf lk_v_add(lk_vf a, lk_vf b) { return _mm256_add_ps(a, b); }
static LK_INLINE lk_vf lk_v_mul(lk_vf a, lk_vf b) { return _mm256_mul_ps(a, b); }
static LK_INLINE lk_vf lk_v_fmadd(lk_vf a, lk_vf b, lk_vf c) { return _mm256_fmadd_ps(a, b, c); }
static LK_INLINE float lk_v_hsum(lk_vf v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static LK_INLINE float lk_v_hmax(lk_vf v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
/* Lane i of the result is the sum of the 8 floats at p + 8 i, for 8 such vectors: horizontal adds of pairs, then
 * of pairs of pairs, then the two 128-bit halves. */
static LK_INLINE lk_vf lk_v_hsum_lanes(const float *p) {
  __m256 a[8];
  for (int i = 0; i < 8; i++) a[i] = _mm256_loadu_ps(p + 8 * i);
  const __m256 x = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 y = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(x, y, 0x20), _mm256_permute2f128_ps(x, y, 0x31));
}

static LK_INLINE lk_vf lk_v_load_f32(const float *p) { return _mm256_loadu_ps(p); }
static LK_INLINE lk_vf lk_v_load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
/* bf16 -> f32 is a move into the upper half of each lane: broadcast the 16 bytes to both 128-bit
 * lanes (a pure load) and shuffle each element's two bytes up, one shuffle instead of a widen and
 * a shift (the bf16 kernels are bound by this conversion work on AVX2). */
static LK_INLINE lk_vf lk_v_load_bf16(const uint16_t *p) {
  const __m256i to_upper_halves = _mm256_setr_epi8(
      -1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7,
      -1, -1, 8, 9, -1, -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15);
  __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
  return _mm256_castsi256_ps(_mm256_shuffle_epi8(both, to_upper_halves));
}

/* f32 -> bf16 bits in the low half of each 32-bit lane: round to nearest even, NaN kept NaN
 * (quiet bit forced) instead of carrying into the exponent. */
static LK_INLINE __m256i lk_v_bf16_rounded(lk_vf v, bool finite) {
  __m256i u = _mm256_castps_si256(v);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i rounded = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  if (!finite) {
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    rounded = _mm256_blendv_epi8(rounded, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
  }
  return rounded; /* bf16 in the upper half of each lane */
}
static LK_INLINE __m256i lk_v_bf16_bits(lk_vf v, bool finite) { return _mm256_srli_epi32(lk_v_bf16_rounded(v, finite), 16); }
static LK_INLINE __m128i lk_v_pack_bf16(lk_vf v, bool finite) {
  __m256i h = lk_v_bf16_bits(v, finite);
  return _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}
#define LK_F16_ROUNDING (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static LK_INLINE void lk_v_store_f32(float *p, lk_vf v) { _mm256_storeu_ps(p, v); }
static LK_INLINE void lk_v_store_f16(uint16_t *p, lk_vf v) { _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, LK_F16_ROUNDING)); }
static LK_INLINE void lk_v_store_bf16(uint16_t *p, lk_vf v, bool finite) { _mm_storeu_si128((__m128i *)p, lk_v_pack_bf16(v, finite)); }

/* Streaming (non-temporal) store: p must be aligned to the vector width. */
static LK_INLINE void lk_v_stream_f32(float *p, lk_vf v) { _mm256_stream_ps(p, v); }
static LK_INLINE void lk_v_stream_fence(void) { _mm_sfence(); }
/* Two vectors of 16-bit results as one 32-byte streaming store: whole write-combining chunks
 * instead of half ones. p must be 32-byte aligned. */
static LK_INLINE void lk_v_stream2_f16(uint16_t *p, lk_vf v0, lk_vf v1) {
  _mm256_stream_si256((__m256i *)p, _mm256_set_m128i(_mm256_cvtps_ph(v1, LK_F16_ROUNDING), _mm256_cvtps_ph(v0, LK_F16_ROUNDING)));
}
static LK_INLINE void lk_v_stream2_bf16(uint16_t *p, lk_vf v0, lk_vf v1, bool finite) {
  /* packus interleaves 128-bit lanes: [v0 0-3, v1 0-3, v0 4-7, v1 4-7]; the permute restores order. */
  __m256i packed = _mm256_packus_epi32(lk_v_bf16_bits(v0, finite), lk_v_bf16_bits(v1, finite));
  _mm256_stream_si256((__m256i *)p, _mm256_permute4x64_epi64(packed, 0xd8));
}


/* Store to a 16-bit dtype and return the rounded value stored, converting once. */
static LK_INLINE lk_vf lk_v_store_round_f16(uint16_t *p, lk_vf v) {
  __m128i h = _mm256_cvtps_ph(v, LK_F16_ROUNDING);
  _mm_storeu_si128((__m128i *)p, h);
  return _mm256_cvtph_ps(h);
}
static LK_INLINE lk_vf lk_v_store_round_bf16(uint16_t *p, lk_vf v) {
  __m256i h = lk_v_bf16_bits(v, false);
  _mm_storeu_si128((__m128i *)p, _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}

/* bf16 in pairs, without shuffles (see simd_avx512.h): 16 bf16 as 8 words, element 2k in the
 * low half and 2k+1 in the high half of word k. */
typedef struct lk_vf2 { lk_vf even, odd; } lk_vf2;
static LK_INLINE lk_vf2 lk_v_unpack_bf16_pairs(__m256i words) {
  lk_vf2 r;
  r.even = _mm256_castsi256_ps(_mm256_slli_epi32(words, 16));
  r.odd = _mm256_castsi256_ps(_mm256_and_si256(words, _mm256_set1_epi32((int)0xffff0000u)));
  return r;
}
static LK_INLINE lk_vf2 lk_v_load_bf16_pairs(const uint16_t *p) { return lk_v_unpack_bf16_pairs(_mm256_loadu_si256((const __m256i *)p)); }
static LK_INLINE __m256i lk_v_pack_bf16_pairs(lk_vf2 v, bool finite) {
  return _mm256_or_si256(_mm256_srli_epi32(lk_v_bf16_rounded(v.even, finite), 16),
                         _mm256_and_si256(lk_v_bf16_rounded(v.odd, finite), _mm256_set1_epi32((int)0xffff0000u)));
}
static LK_INLINE void lk_v_store_bf16_pairs(uint16_t *p, lk_vf2 v, bool finite) { _mm256_storeu_si256((__m256i *)p, lk_v_pack_bf16_pairs(v, finite)); }
static LK_INLINE void lk_v_stream_bf16_pairs(uint16_t *p, lk_vf2 v, bool finite) { _mm256_stream_si256((__m256i *)p, lk_v_pack_bf16_pairs(v, finite)); }
static LK_INLINE lk_vf2 lk_v_store_round_bf16_pairs(uint16_t *p, lk_vf2 v) {
  __m256i packed = lk_v_pack_bf16_pairs(v, false);
  _mm256_storeu_si256((__m256i *)p, packed);
  return lk_v_unpack_bf16_pairs(packed);
}


/* ---- general arithmetic, comparisons and selects (used by the LayerNorm, activation and RoPE
 * kernels). A mask is what the ISA compares into: a vector of all-ones lanes here, a k-register
 * on AVX-512; kernels only pass masks from lk_v_cmp_* to lk_v_select. */
typedef __m256 lk_vmask;
static LK_INLINE lk_vf lk_v_sub(lk_vf a, lk_vf b) { return _mm256_sub_ps(a, b); }
static LK_INLINE lk_vf lk_v_div(lk_vf a, lk_vf b) { return _mm256_div_ps(a, b); }
/* max/min return b when either is NaN (the x86 rule): put the value whose NaN must survive second. */
static LK_INLINE lk_vf lk_v_max(lk_vf a, lk_vf b) { return _mm256_max_ps(a, b); }
static LK_INLINE lk_vf lk_v_min(lk_vf a, lk_vf b) { return _mm256_min_ps(a, b); }
static LK_INLINE lk_vf lk_v_fmsub(lk_vf a, lk_vf b, lk_vf c) { return _mm256_fmsub_ps(a, b, c); }   /* a*b - c */
static LK_INLINE lk_vf lk_v_fnmadd(lk_vf a, lk_vf b, lk_vf c) { return _mm256_fnmadd_ps(a, b, c); } /* c - a*b */
static LK_INLINE lk_vf lk_v_abs(lk_vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static LK_INLINE lk_vf lk_v_neg(lk_vf a) { return _mm256_xor_ps(_mm256_set1_ps(-0.0f), a); }
static LK_INLINE lk_vf lk_v_and(lk_vf a, lk_vf b) { return _mm256_and_ps(a, b); }
static LK_INLINE lk_vf lk_v_or(lk_vf a, lk_vf b) { return _mm256_or_ps(a, b); }
static LK_INLINE lk_vf lk_v_xor(lk_vf a, lk_vf b) { return _mm256_xor_ps(a, b); }
/* Round to the nearest integer, ties to even. */
static LK_INLINE lk_vf lk_v_round(lk_vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static LK_INLINE lk_vmask lk_v_cmp_lt(lk_vf a, lk_vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static LK_INLINE lk_vmask lk_v_cmp_gt(lk_vf a, lk_vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static LK_INLINE lk_vmask lk_v_cmp_nan(lk_vf a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
static LK_INLINE lk_vmask lk_v_cmp_eq(lk_vf a, lk_vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
/* mask ? a : b, per lane. */
static LK_INLINE lk_vf lk_v_select(lk_vmask mask, lk_vf a, lk_vf b) { return _mm256_blendv_ps(b, a, mask); }
static LK_INLINE bool lk_v_mask_any(lk_vmask mask) { return _mm256_movemask_ps(mask) != 0; }
/* Bit i set when lane i of the mask is. */
static LK_INLINE uint32_t lk_v_mask_bits(lk_vmask mask) { return (uint32_t)_mm256_movemask_ps(mask); }
static LK_INLINE lk_vmask lk_v_mask_or(lk_vmask a, lk_vmask b) { return _mm256_or_ps(a, b); }
/* p[0, n) (0 <= n <= 8) and `pad` in the lanes past them; nothing past p + n is read (vmaskmovps
 * does not fault on the masked lanes). */
static LK_INLINE lk_vf lk_v_load_f32_partial(const float *p, int64_t n, float pad) {
  const __m256i in = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_blendv_ps(_mm256_set1_ps(pad), _mm256_maskload_ps(p, in), _mm256_castsi256_ps(in));
}
/* The 8 x 8 block r transposed in place: r[j] lane i = old r[i] lane j. */
static LK_INLINE void lk_v_transpose(lk_vf r[8]) {
  lk_vf t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) { /* in each 128-bit half: rows i..i+3 of one column */
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int j = 0; j < 4; j++) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}
/* Integer view for bit tricks (exponent construction in exp). */
typedef __m256i lk_vi;
static LK_INLINE lk_vi lk_v_cvt_i32(lk_vf a) { return _mm256_cvtps_epi32(a); } /* nearest, ties even */
static LK_INLINE lk_vf lk_v_cvt_f32(lk_vi a) { return _mm256_cvtepi32_ps(a); }
static LK_INLINE lk_vi lk_v_as_i32(lk_vf a) { return _mm256_castps_si256(a); }
static LK_INLINE lk_vf lk_v_as_f32(lk_vi a) { return _mm256_castsi256_ps(a); }
static LK_INLINE lk_vi lk_vi_add(lk_vi a, lk_vi b) { return _mm256_add_epi32(a, b); }
static LK_INLINE lk_vi lk_vi_set1(int32_t v) { return _mm256_set1_epi32(v); }
static LK_INLINE lk_vi lk_vi_slli(lk_vi a, int n) { return _mm256_slli_epi32(a, n); }

#endif /* LK_SIMD_AVX2_H */
