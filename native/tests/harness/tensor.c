#include "tensor.h"

#include <math.h>
#include <string.h>

#include "float16.h"

size_t dtype_size(lk_dtype dtype) {
  return dtype == LK_DTYPE_F32 ? 4 : 2;
}

const char *dtype_label(lk_dtype dtype) {
  switch (dtype) {
  case LK_DTYPE_F32: return "f32";
  case LK_DTYPE_F16: return "f16";
  case LK_DTYPE_BF16: return "bf16";
  }
  return "?";
}

static int fraction_bits(lk_dtype dtype) {
  switch (dtype) {
  case LK_DTYPE_F16: return 10;
  case LK_DTYPE_BF16: return 7;
  default: return 23;
  }
}

double dtype_ulp(lk_dtype dtype, double value) {
  int exponent;
  frexp(fabs(value), &exponent); /* |value| = m * 2^exponent, m in [0.5, 1) */
  return ldexp(1.0, exponent - 1 - fraction_bits(dtype));
}

float dtype_round(lk_dtype dtype, float value) {
  switch (dtype) {
  case LK_DTYPE_F16: return f16_to_f32(f32_to_f16(value));
  case LK_DTYPE_BF16: return bf16_to_f32(f32_to_bf16(value));
  default: return value;
  }
}

void tensor_store(lk_dtype dtype, void *base, int64_t index, float value) {
  switch (dtype) {
  case LK_DTYPE_F16: ((uint16_t *)base)[index] = f32_to_f16(value); break;
  case LK_DTYPE_BF16: ((uint16_t *)base)[index] = f32_to_bf16(value); break;
  default: ((float *)base)[index] = value; break;
  }
}

float tensor_load(lk_dtype dtype, const void *base, int64_t index) {
  switch (dtype) {
  case LK_DTYPE_F16: return f16_to_f32(((const uint16_t *)base)[index]);
  case LK_DTYPE_BF16: return bf16_to_f32(((const uint16_t *)base)[index]);
  default: return ((const float *)base)[index];
  }
}

uint32_t tensor_bits(lk_dtype dtype, const void *base, int64_t index) {
  if (dtype == LK_DTYPE_F32) {
    uint32_t bits;
    memcpy(&bits, (const float *)base + index, sizeof bits);
    return bits;
  }
  return ((const uint16_t *)base)[index];
}

/* Quiet NaNs with payloads no arithmetic produces (default NaNs have an all-zero payload). */
uint32_t dtype_poison_bits(lk_dtype dtype) {
  switch (dtype) {
  case LK_DTYPE_F16: return 0x7E5Au;
  case LK_DTYPE_BF16: return 0x7FDAu;
  default: return 0x7FDEAD5Au;
  }
}

void tensor_poison(lk_dtype dtype, void *base, int64_t count) {
  uint32_t poison = dtype_poison_bits(dtype);
  for (int64_t i = 0; i < count; i++) {
    if (dtype == LK_DTYPE_F32) memcpy((float *)base + i, &poison, sizeof poison);
    else ((uint16_t *)base)[i] = (uint16_t)poison;
  }
}

bool tensor_is_poison(lk_dtype dtype, const void *base, int64_t index) {
  return tensor_bits(dtype, base, index) == dtype_poison_bits(dtype);
}
