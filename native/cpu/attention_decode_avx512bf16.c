/* The decode kernel for AVX-512 CPUs with AVX512_BF16 (compiled with those flags only; chosen at
 * run time): bf16 scores by vdpbf16ps, 32 products per instruction from the cache's own bits. */
#include "simd_avx512.h"

#undef LK_ISA_SUFFIX
#define LK_ISA_SUFFIX(name) name##_avx512bf16
#if defined(__GNUC__) /* GCC and Clang: __m512bh from a vector cast; MSVC builds the plain kernel here */
#  define LK_DECODE_DPBF16 1
#endif
#include "attention_decode_simd.h"
