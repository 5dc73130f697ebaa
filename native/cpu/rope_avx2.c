/* RoPE for AVX2 + FMA + F16C (compiled with those flags only; chosen at run time). */
#include "simd_avx2.h"

/* Lanes 2i and 2i + 1 exchanged: the GPT-J pair partner, an in-lane shuffle. */
static LK_INLINE lk_vf lk_v_swap_pairs(lk_vf v) { return _mm256_permute_ps(v, 0xb1); }

#include "rope_simd.h"
