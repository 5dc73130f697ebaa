/* Attention for AVX2 + FMA + F16C (compiled with those flags only; chosen at run time). */
#include "simd_avx2.h"

#include "attention_decode_simd.h"
#include "attention_tile_simd.h"
