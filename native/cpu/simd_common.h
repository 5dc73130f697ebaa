/* Helpers shared by every SIMD mapping: forced inlining (so a dtype passed as a constant folds
 * the per-element switch away) and dtype-generic load/store over the mapping's names. */
#ifndef LK_SIMD_COMMON_H
#define LK_SIMD_COMMON_H

#if defined(_MSC_VER) && !defined(__clang__)
#  define LK_INLINE __forceinline
#else
#  define LK_INLINE inline __attribute__((always_inline))
#endif

#include <xmmintrin.h>
/* Into L2, not L1: the next row is needed only after this one, and a row of 8192 f32 plus the
 * weight already fill a 48 KiB L1 (T1 measured ~10% faster than T0 on [4096, 8192] f32). */
#define lk_prefetch(address) _mm_prefetch((const char *)(address), _MM_HINT_T1)

#endif /* LK_SIMD_COMMON_H */
