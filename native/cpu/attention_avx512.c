/* Attention for AVX-512 F/BW/DQ/VL (compiled with those flags only; chosen at run time). */
#include "simd_avx512.h"

#include "attention_decode_simd.h"
#include "attention_tile_simd.h"
