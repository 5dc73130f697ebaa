#include "float16.h"

#include <string.h>

uint32_t f32_bits(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
}

float f32_from_bits(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

/* Drops the low `shift` bits of `magnitude`, rounding to nearest, ties to even. A carry out of
 * the fraction lands in the exponent field, which is exactly the next binade (or infinity). */
static uint32_t shift_right_round_even(uint32_t magnitude, unsigned shift) {
  uint32_t kept = magnitude >> shift;
  uint32_t dropped = magnitude & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1u);
  if (dropped > half || (dropped == half && (kept & 1u))) kept++;
  return kept;
}

uint16_t f32_to_f16(float value) {
  uint32_t bits = f32_bits(value);
  uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7FFFFFFFu;
  uint32_t exponent = magnitude >> 23;

  if (exponent == 0xFFu) {
    if (magnitude == 0x7F800000u) return (uint16_t)(sign | 0x7C00u);
    return (uint16_t)(sign | 0x7E00u | ((magnitude >> 13) & 0x03FFu)); /* quiet NaN */
  }
  /* Halfway between 65504 (odd fraction) and 2^16 is 65520: ties to even go up, to infinity. */
  if (magnitude >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);
  if (exponent >= 113u) { /* |value| >= 2^-14: a normal binary16 */
    uint32_t rebiased = magnitude - ((127u - 15u) << 23);
    return (uint16_t)(sign | shift_right_round_even(rebiased, 13));
  }
  /* Subnormal result: count units of 2^-24. value = significand * 2^(exponent - 150), so the
   * count is significand >> (126 - exponent). Below 2^-25 everything rounds to zero. */
  if (exponent < 102u) return sign;
  uint32_t significand = (magnitude & 0x007FFFFFu) | 0x00800000u;
  return (uint16_t)(sign | shift_right_round_even(significand, 126u - exponent));
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t fraction = h & 0x03FFu;
  if (exponent == 0x1Fu) return f32_from_bits(sign | 0x7F800000u | (fraction << 13));
  if (exponent != 0) return f32_from_bits(sign | ((exponent + 127u - 15u) << 23) | (fraction << 13));
  /* Zero or subnormal: fraction * 2^-24, exact in binary32. */
  float magnitude = (float)fraction * (1.0f / 16777216.0f);
  return sign ? -magnitude : magnitude;
}

uint16_t f32_to_bf16(float value) {
  uint32_t bits = f32_bits(value);
  /* Truncating a NaN whose payload sits only in the low half would give infinity. */
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x0040u);
  /* Adding 0x7FFF plus the kept LSB rounds to nearest, ties to even; a carry moves into the
   * exponent, and past the largest finite value it yields exactly infinity. */
  uint32_t rounded = bits + 0x7FFFu + ((bits >> 16) & 1u);
  return (uint16_t)(rounded >> 16);
}

float bf16_to_f32(uint16_t bits) {
  return f32_from_bits((uint32_t)bits << 16);
}
