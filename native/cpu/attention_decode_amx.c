/* The decode kernel for CPUs with AMX-BF16 (compiled with those flags only; chosen at run time
 * where lk_cpu_has_amx_bf16()): bf16 scores as tile multiplies (attention_decode_amx.h), the
 * rest as in attention_decode_avx512bf16.c. */
#include "simd_avx512.h"

#undef LK_ISA_SUFFIX
#define LK_ISA_SUFFIX(name) name##_avx512amx
#if defined(__GNUC__) /* GCC and Clang: as attention_decode_avx512bf16.c */
#  define LK_DECODE_DPBF16 1
#endif
/* AMX only where lk_cpu_has_amx_bf16() can say yes (Linux); elsewhere this is never chosen. (MinGW's
 * GCC 12 also addresses _tile_loadd's 32-bit `long` stride as an index register, which does not
 * assemble.) */
#if defined(__GNUC__) && defined(__linux__)
#  define LK_DECODE_AMX 1
#endif
#include "attention_decode_simd.h"
