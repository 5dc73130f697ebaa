/* Row-strided matrices on guarded memory, as the norm kernels see their tensors: `rows` rows of
 * `hidden` elements, `stride` elements apart, the gaps between rows poisoned so that a kernel
 * writing outside its rows is caught (damaged_gaps), and bitwise comparison of two results. */
#ifndef LK_TEST_STRIDED_H
#define LK_TEST_STRIDED_H

#include <stdint.h>

#include "llmkernels.h"
#include "guarded_buffer.h"

typedef struct strided {
  guarded_buffer memory;
  lk_dtype dtype;
  int64_t rows;
  int64_t hidden;
  int64_t stride;
} strided;

/* The ABI's rule: a stride of 0 means hidden. */
int64_t effective_stride(int64_t stride, int64_t hidden);
/* Elements spanned from the first row's start to the last row's end. */
int64_t span_elements(int64_t rows, int64_t stride, int64_t hidden);
/* Every element poisoned (tensor_poison); exits the test on allocation failure. */
strided strided_alloc(lk_dtype dtype, int64_t rows, int64_t hidden, int64_t stride, guard_edge edge);
strided strided_copy(const strided *source, guard_edge edge);
/* Index of (row, column) in the matrix's memory. */
int64_t element(const strided *m, int64_t row, int64_t column);
/* Number of gap elements (between rows) that no longer hold their poison. */
int64_t damaged_gaps(const strided *m);
/* Elements that differ bit for bit between two matrices of the same shape (any strides); the
 * first one's position goes to first_row / first_column. */
int64_t differing_elements(const strided *a, const strided *b, int64_t *first_row, int64_t *first_column);

#endif
