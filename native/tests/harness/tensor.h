/* Element access by lk_dtype, so one test body covers f32, f16 and bf16: values are written
 * rounded to the dtype by the harness's own conversions (float16.h) and read back exactly.
 * Plus the poison that fills every output and every gap between rows before a kernel runs: a
 * NaN with a recognisable payload, so an element the kernel never wrote can neither pass a
 * tolerance check nor look like a legitimate result. */
#ifndef LK_TEST_TENSOR_H
#define LK_TEST_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llmkernels.h"

size_t dtype_size(lk_dtype dtype);
const char *dtype_label(lk_dtype dtype);

/* Unit in the last place of the dtype at magnitude |value| (normal range). */
double dtype_ulp(lk_dtype dtype, double value);

/* Rounds a float to dtype and back, as storing and reloading it would. */
float dtype_round(lk_dtype dtype, float value);

void tensor_store(lk_dtype dtype, void *base, int64_t index, float value);
float tensor_load(lk_dtype dtype, const void *base, int64_t index);
/* Raw bit pattern of one element, zero-extended, for bitwise comparisons. */
uint32_t tensor_bits(lk_dtype dtype, const void *base, int64_t index);

uint32_t dtype_poison_bits(lk_dtype dtype);
void tensor_poison(lk_dtype dtype, void *base, int64_t count);
bool tensor_is_poison(lk_dtype dtype, const void *base, int64_t index);

#endif
