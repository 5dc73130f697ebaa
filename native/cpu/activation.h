/* Activation and GLU internals: both entry points become one job, rows of `cols` elements where
 * out = act(gate) (* up when gated). lk_apply_activation's span is cut into chunks that play the
 * rows (the last one shorter), so threads and the streaming-store head work the same way. */
#ifndef LK_ACTIVATION_H
#define LK_ACTIVATION_H

#include "lk_internal.h"

#include <math.h>

typedef struct lk_activation_job {
  const void *gate; /* row r at gate + r * gate_stride elements */
  const void *up;   /* NULL: not gated */
  void *out;
  int64_t gate_stride, up_stride, out_stride;
  int64_t rows;
  int64_t cols;      /* elements per row */
  int64_t last_cols; /* elements of the last row (cols, or fewer for a span's last chunk) */
  /* Threads split `pieces` = rows x pieces_per_row: piece v is elements [c * piece_cols, ...) of
   * row v / pieces_per_row, c = v % pieces_per_row (1 piece per row unless rows are fewer than
   * threads: a decode step's single row is split by elements). */
  int64_t pieces_per_row, piece_cols;
  lk_activation activation;
  lk_dtype dtype;
  bool streaming; /* out with streaming stores (large outputs) */
} lk_activation_job;

/* Each runs pieces [row_begin, row_end) of job (a const lk_activation_job *). */
void lk_activation_rows_scalar(const void *job, int64_t row_begin, int64_t row_end);
void lk_activation_rows_avx2(const void *job, int64_t row_begin, int64_t row_end);
void lk_activation_rows_avx512(const void *job, int64_t row_begin, int64_t row_end);

static inline int64_t lk_activation_row_cols(const lk_activation_job *job, int64_t r) {
  return r + 1 == job->rows ? job->last_cols : job->cols;
}

/* Piece v of job: its row, first element and element count (0 for the pieces past a shorter last
 * row, lk_apply_activation's last chunk). */
static inline int64_t lk_activation_piece(const lk_activation_job *job, int64_t v, int64_t *row, int64_t *begin) {
  *row = v / job->pieces_per_row;
  *begin = v % job->pieces_per_row * job->piece_cols;
  int64_t left = lk_activation_row_cols(job, *row) - *begin;
  return left < 0 ? 0 : left < job->piece_cols ? left : job->piece_cols;
}

#endif /* LK_ACTIVATION_H */
