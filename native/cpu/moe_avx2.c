/* MoE gating and combine for AVX2 + FMA (compiled with those flags only; chosen at run time). */
#include "simd_avx2.h"
#include "moe_simd.h"
#include "moe_combine_simd.h"
