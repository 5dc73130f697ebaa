/* Row-strided matrices on guarded memory: see strided.h. */
#include "strided.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

int64_t effective_stride(int64_t stride, int64_t hidden) {
  return stride == 0 ? hidden : stride;
}

int64_t span_elements(int64_t rows, int64_t stride, int64_t hidden) {
  return rows == 0 ? 0 : (rows - 1) * stride + hidden;
}

strided strided_alloc(lk_dtype dtype, int64_t rows, int64_t hidden, int64_t stride, guard_edge edge) {
  strided m = {0};
  m.dtype = dtype;
  m.rows = rows;
  m.hidden = hidden;
  m.stride = stride;
  int64_t count = span_elements(rows, stride, hidden);
  m.memory = guarded_alloc((size_t)count * dtype_size(dtype), edge);
  if (!m.memory.data) {
    fprintf(stderr, "guarded_alloc of %lld elements failed\n", (long long)count);
    exit(2);
  }
  tensor_poison(dtype, m.memory.data, count);
  return m;
}

strided strided_copy(const strided *source, guard_edge edge) {
  strided m = strided_alloc(source->dtype, source->rows, source->hidden, source->stride, edge);
  memcpy(m.memory.data, source->memory.data, source->memory.bytes);
  return m;
}

int64_t element(const strided *m, int64_t row, int64_t column) {
  return row * m->stride + column;
}

int64_t damaged_gaps(const strided *m) {
  int64_t damaged = 0;
  for (int64_t r = 0; r + 1 < m->rows; r++)
    for (int64_t c = m->hidden; c < m->stride; c++)
      if (!tensor_is_poison(m->dtype, m->memory.data, element(m, r, c))) damaged++;
  return damaged;
}

int64_t differing_elements(const strided *a, const strided *b, int64_t *first_row, int64_t *first_column) {
  int64_t count = 0;
  for (int64_t r = 0; r < a->rows; r++)
    for (int64_t c = 0; c < a->hidden; c++)
      if (tensor_bits(a->dtype, a->memory.data, element(a, r, c)) !=
          tensor_bits(b->dtype, b->memory.data, element(b, r, c))) {
        if (count++ == 0) {
          *first_row = r;
          *first_column = c;
        }
      }
  return count;
}

