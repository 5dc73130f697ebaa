/* MoE gating and combine for AVX-512 F/BW/DQ/VL (compiled with those flags only; chosen at run time). */
#include "simd_avx512.h"
#include "moe_simd.h"
#include "moe_combine_simd.h"
