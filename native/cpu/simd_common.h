/* Helpers shared by every SIMD mapping: forced inlining (so a dtype passed as a constant folds
 * the per-element switch away) and dtype-generic load/store over the mapping's names. */
#ifndef LK_SIMD_COMMON_H
#define LK_SIMD_COMMON_H

#if defined(_MSC_VER) && !defined(__clang__)
#  define LK_INLINE __forceinline
#else
#  define LK_INLINE inline __attribute__((always_inline))
#endif

#endif /* LK_SIMD_COMMON_H */
