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
/* Into all cache levels: the line is used within microseconds. */
#define lk_prefetch(address) _mm_prefetch((const char *)(address), _MM_HINT_T0)

#endif /* LK_SIMD_COMMON_H */
