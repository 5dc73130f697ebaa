/* Software conversions between binary32 and the two 16-bit formats, written from the formats'
 * definitions and independent of the library and of F16C: they are the tests' oracle for what a
 * correctly rounded 16-bit value is.
 *
 *   f16:  IEEE 754 binary16 — 1 sign, 5 exponent (bias 15), 10 fraction bits; subnormals,
 *         infinities, NaN. Max finite 65504; smallest subnormal 2^-24.
 *   bf16: the upper 16 bits of a binary32 — 1 sign, 8 exponent, 7 fraction bits.
 *
 * float -> 16-bit rounds to nearest, ties to even; overflow gives infinity; NaN stays NaN
 * (quiet, sign and the top payload bits kept). 16-bit -> float is exact. */
#ifndef LK_TEST_FLOAT16_H
#define LK_TEST_FLOAT16_H

#include <stdint.h>

uint16_t f32_to_f16(float value);
float f16_to_f32(uint16_t bits);

uint16_t f32_to_bf16(float value);
float bf16_to_f32(uint16_t bits);

uint32_t f32_bits(float value);
float f32_from_bits(uint32_t bits);

#endif
