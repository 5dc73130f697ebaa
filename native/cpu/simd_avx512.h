/* The SIMD mapping for AVX-512 (F, BW, DQ, VL): 16 f32 lanes. Same names as simd_avx2.h. */
#ifndef LK_SIMD_AVX512_H
#define LK_SIMD_AVX512_H

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#include "simd_common.h"

#define LK_VEC_LANES 16
/* Whether bf16 rows with an f32 weight also go through lk_vf2 pairs: two permutes per 32 weights
 * against six port-5 conversions (one row of 4096: 934 -> 682 ns). */
#define LK_PAIR_F32_WEIGHTS 1
#define LK_ISA_SUFFIX(name) name##_avx512
typedef __m512 lk_vf;

static LK_INLINE lk_vf lk_v_zero(void) { return _mm512_setzero_ps(); }
static LK_INLINE lk_vf lk_v_set1(float f) { return _mm512_set1_ps(f); }
static LK_INLINE lk_vf lk_v_add(lk_vf a, lk_vf b) { return _mm512_add_ps(a, b); }
static LK_INLINE lk_vf lk_v_mul(lk_vf a, lk_vf b) { return _mm512_mul_ps(a, b); }
static LK_INLINE lk_vf lk_v_fmadd(lk_vf a, lk_vf b, lk_vf c) { return _mm512_fmadd_ps(a, b, c); }
static LK_INLINE float lk_v_hsum(lk_vf v) {
  __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static LK_INLINE float lk_v_hmax(lk_vf v) { return _mm512_reduce_max_ps(v); }
/* Lane i of the result is the sum of the 16 floats at p + 16 i, for 16 such vectors: a transpose folded into the
 * adds (unpack pairs, then 64-bit pairs, then 128-bit quarters), 45 operations for 16 sums. */
static LK_INLINE lk_vf lk_v_hsum_lanes(const float *p) {
  __m512 b[8], c[4];
  for (int i = 0; i < 8; i++) {
    const __m512 x = _mm512_loadu_ps(p + 32 * i), y = _mm512_loadu_ps(p + 32 * i + 16);
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y));
  }
  for (int i = 0; i < 4; i++) {
    const __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
    c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  const __m512 e01 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x44), _mm512_shuffle_f32x4(c[0], c[1], 0xEE));
  const __m512 e23 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], 0x44), _mm512_shuffle_f32x4(c[2], c[3], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_f32x4(e01, e23, 0x88), _mm512_shuffle_f32x4(e01, e23, 0xDD));
}

static LK_INLINE lk_vf lk_v_load_f32(const float *p) { return _mm512_loadu_ps(p); }
static LK_INLINE lk_vf lk_v_load_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static LK_INLINE lk_vf lk_v_load_bf16(const uint16_t *p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

/* f32 rounded to bf16 in the upper half of each lane (the lower half is garbage). */
static LK_INLINE __m512i lk_v_bf16_rounded(lk_vf v, bool finite) {
  /* Round to nearest even: add 0x7fff, or 0x8000 where the kept lsb (bit 16) is set. A test into
   * a mask and a masked add: three operations instead of a shift, a mask and two adds (the bf16
   * kernels are bound by vector ALU ports 0 and 5). */
  __m512i u = _mm512_castps_si512(v);
  __mmask16 odd_lsb = _mm512_test_epi32_mask(u, _mm512_set1_epi32(0x10000));
  __m512i rounded = _mm512_mask_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), odd_lsb, u,
                                          _mm512_set1_epi32(0x8000));
  if (!finite) {
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    rounded = _mm512_mask_or_epi32(rounded, nan, u, _mm512_set1_epi32(0x400000));
  }
  return rounded;
}
static LK_INLINE __m512i lk_v_bf16_bits(lk_vf v, bool finite) { return _mm512_srli_epi32(lk_v_bf16_rounded(v, finite), 16); }
static LK_INLINE __m256i lk_v_pack_bf16(lk_vf v, bool finite) { return _mm512_cvtepi32_epi16(lk_v_bf16_bits(v, finite)); }
#define LK_F16_ROUNDING (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static LK_INLINE void lk_v_store_f32(float *p, lk_vf v) { _mm512_storeu_ps(p, v); }
static LK_INLINE void lk_v_store_f16(uint16_t *p, lk_vf v) { _mm256_storeu_si256((__m256i *)p, _mm512_cvtps_ph(v, LK_F16_ROUNDING)); }
static LK_INLINE void lk_v_store_bf16(uint16_t *p, lk_vf v, bool finite) { _mm256_storeu_si256((__m256i *)p, lk_v_pack_bf16(v, finite)); }

static LK_INLINE void lk_v_stream_f32(float *p, lk_vf v) { _mm512_stream_ps(p, v); }
static LK_INLINE void lk_v_stream_fence(void) { _mm_sfence(); }
/* Two vectors of 16-bit results as one full-line streaming store: a whole write-combining buffer
 * instead of two halves. p must be 64-byte aligned. */
static LK_INLINE void lk_v_stream2_f16(uint16_t *p, lk_vf v0, lk_vf v1) {
  __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtps_ph(v0, LK_F16_ROUNDING)),
                                    _mm512_cvtps_ph(v1, LK_F16_ROUNDING), 1);
  _mm512_stream_si512((__m512i *)p, both);
}
static LK_INLINE void lk_v_stream2_bf16(uint16_t *p, lk_vf v0, lk_vf v1, bool finite) {
  __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lk_v_pack_bf16(v0, finite)), lk_v_pack_bf16(v1, finite), 1);
  _mm512_stream_si512((__m512i *)p, both);
}


/* Store to a 16-bit dtype and return the rounded value stored, converting once. */
static LK_INLINE lk_vf lk_v_store_round_f16(uint16_t *p, lk_vf v) {
  __m256i h = _mm512_cvtps_ph(v, LK_F16_ROUNDING);
  _mm256_storeu_si256((__m256i *)p, h);
  return _mm512_cvtph_ps(h);
}
static LK_INLINE lk_vf lk_v_store_round_bf16(uint16_t *p, lk_vf v) {
  __m512i h = lk_v_bf16_bits(v, false);
  _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(h));
  return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
}

/* bf16 in pairs, without shuffles: 2 x 16 bf16 read as 16 32-bit words hold element 2k in the
 * low half and 2k+1 in the high half of word k, so a shift and a mask widen them to an even and
 * an odd vector, and a shift, a mask and an OR narrow them back. Element-wise kernels work on the
 * pair as is; the vpmovzxwd/vpmovdw of the one-vector path all queue on port 5, which made the
 * bf16 kernels 3x slower per element than f32 on a cache-resident row. */
typedef struct lk_vf2 { lk_vf even, odd; } lk_vf2;
static LK_INLINE lk_vf2 lk_v_unpack_bf16_pairs(__m512i words) {
  lk_vf2 r;
  r.even = _mm512_castsi512_ps(_mm512_slli_epi32(words, 16));
  r.odd = _mm512_castsi512_ps(_mm512_and_si512(words, _mm512_set1_epi32((int)0xffff0000u)));
  return r;
}
static LK_INLINE lk_vf2 lk_v_load_bf16_pairs(const uint16_t *p) { return lk_v_unpack_bf16_pairs(_mm512_loadu_si512(p)); }
static LK_INLINE __m512i lk_v_pack_bf16_pairs(lk_vf2 v, bool finite) {
  /* The even results' upper halves shifted down, blended word-wise with the odd results' upper
   * halves in place. */
  return _mm512_mask_blend_epi16((__mmask32)0xaaaaaaaau, _mm512_srli_epi32(lk_v_bf16_rounded(v.even, finite), 16),
                                 lk_v_bf16_rounded(v.odd, finite));
}
/* f32 values split the same way (even and odd elements of 2 x 16), for f32 weights next to bf16
 * activations: one two-source permute each. */
static LK_INLINE lk_vf2 lk_v_load_f32_pairs(const float *p) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  lk_vf lo = _mm512_loadu_ps(p), hi = _mm512_loadu_ps(p + 16);
  lk_vf2 r;
  r.even = _mm512_permutex2var_ps(lo, even, hi);
  r.odd = _mm512_permutex2var_ps(lo, odd, hi);
  return r;
}
static LK_INLINE void lk_v_store_bf16_pairs(uint16_t *p, lk_vf2 v, bool finite) { _mm512_storeu_si512(p, lk_v_pack_bf16_pairs(v, finite)); }
static LK_INLINE void lk_v_stream_bf16_pairs(uint16_t *p, lk_vf2 v, bool finite) { _mm512_stream_si512((__m512i *)p, lk_v_pack_bf16_pairs(v, finite)); }
static LK_INLINE lk_vf2 lk_v_store_round_bf16_pairs(uint16_t *p, lk_vf2 v) {
  __m512i packed = lk_v_pack_bf16_pairs(v, false);
  _mm512_storeu_si512(p, packed);
  return lk_v_unpack_bf16_pairs(packed);
}


/* ---- general arithmetic, comparisons and selects: same names as simd_avx2.h. */
typedef __mmask16 lk_vmask;
static LK_INLINE lk_vf lk_v_sub(lk_vf a, lk_vf b) { return _mm512_sub_ps(a, b); }
static LK_INLINE lk_vf lk_v_div(lk_vf a, lk_vf b) { return _mm512_div_ps(a, b); }
/* max/min return b when either is NaN (the x86 rule): put the value whose NaN must survive second. */
static LK_INLINE lk_vf lk_v_max(lk_vf a, lk_vf b) { return _mm512_max_ps(a, b); }
static LK_INLINE lk_vf lk_v_min(lk_vf a, lk_vf b) { return _mm512_min_ps(a, b); }
static LK_INLINE lk_vf lk_v_fmsub(lk_vf a, lk_vf b, lk_vf c) { return _mm512_fmsub_ps(a, b, c); }
static LK_INLINE lk_vf lk_v_fnmadd(lk_vf a, lk_vf b, lk_vf c) { return _mm512_fnmadd_ps(a, b, c); }
static LK_INLINE lk_vf lk_v_abs(lk_vf a) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff))); }
static LK_INLINE lk_vf lk_v_neg(lk_vf a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32((int)0x80000000u))); }
static LK_INLINE lk_vf lk_v_and(lk_vf a, lk_vf b) { return _mm512_and_ps(a, b); }
static LK_INLINE lk_vf lk_v_or(lk_vf a, lk_vf b) { return _mm512_or_ps(a, b); }
static LK_INLINE lk_vf lk_v_xor(lk_vf a, lk_vf b) { return _mm512_xor_ps(a, b); }
static LK_INLINE lk_vf lk_v_round(lk_vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static LK_INLINE lk_vmask lk_v_cmp_lt(lk_vf a, lk_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static LK_INLINE lk_vmask lk_v_cmp_gt(lk_vf a, lk_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
static LK_INLINE lk_vmask lk_v_cmp_nan(lk_vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
static LK_INLINE lk_vmask lk_v_cmp_eq(lk_vf a, lk_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
static LK_INLINE lk_vf lk_v_select(lk_vmask mask, lk_vf a, lk_vf b) { return _mm512_mask_blend_ps(mask, b, a); }
static LK_INLINE bool lk_v_mask_any(lk_vmask mask) { return mask != 0; }
/* Bit i set when lane i of the mask is. */
static LK_INLINE uint32_t lk_v_mask_bits(lk_vmask mask) { return (uint32_t)mask; }
static LK_INLINE lk_vmask lk_v_mask_or(lk_vmask a, lk_vmask b) { return (lk_vmask)(a | b); }
/* p[0, n) (0 <= n <= 16) and `pad` in the lanes past them; nothing past p + n is read. */
static LK_INLINE lk_vf lk_v_load_f32_partial(const float *p, int64_t n, float pad) {
  return _mm512_mask_loadu_ps(_mm512_set1_ps(pad), (__mmask16)((1u << n) - 1u), p);
}
/* The 16 x 16 block r transposed in place: r[j] lane i = old r[i] lane j. */
static LK_INLINE void lk_v_transpose(lk_vf r[16]) {
  lk_vf t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) { /* 128-bit block b of r[i + j]: rows i..i+3 of column 4b + j */
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
  }
  for (int j = 0; j < 4; j++) { /* blocks of columns j, 4 + j, 8 + j, 12 + j */
    t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
    t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
  }
  for (int j = 0; j < 4; j++) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    r[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xdd);
  }
}
typedef __m512i lk_vi;
static LK_INLINE lk_vi lk_v_cvt_i32(lk_vf a) { return _mm512_cvtps_epi32(a); }
static LK_INLINE lk_vf lk_v_cvt_f32(lk_vi a) { return _mm512_cvtepi32_ps(a); }
static LK_INLINE lk_vi lk_v_as_i32(lk_vf a) { return _mm512_castps_si512(a); }
static LK_INLINE lk_vf lk_v_as_f32(lk_vi a) { return _mm512_castsi512_ps(a); }
static LK_INLINE lk_vi lk_vi_add(lk_vi a, lk_vi b) { return _mm512_add_epi32(a, b); }
static LK_INLINE lk_vi lk_vi_set1(int32_t v) { return _mm512_set1_epi32(v); }
static LK_INLINE lk_vi lk_vi_slli(lk_vi a, int n) { return _mm512_slli_epi32(a, (unsigned)n); }

#endif /* LK_SIMD_AVX512_H */
