/* RMSNorm, the scalar reference: the readable definition every vector variant is tested against.
 *   v = x, or (PRE) residual = round(residual + x); v = residual,
 *          or (POST) v = round(alpha * residual + x)
 *   y = v * inv_rms(v) * w
 * f32 arithmetic, sequential sum of squares, y rounded once. */
#include "rms_norm.h"

void lk_rms_norm_rows_scalar(const void *job_, int64_t row_begin, int64_t row_end) {
  const lk_norm_job *job = (const lk_norm_job *)job_;
  const lk_norm_params *p = &job->p;
  const lk_norm_residual mode = p->residual_mode;
  for (int64_t r = row_begin; r < row_end; r++) {
    const void *x = lk_norm_row(p->x, r, p->x_stride, p->dtype);
    void *residual = mode == LK_NORM_RESIDUAL_NONE ? NULL : (void *)lk_norm_row(p->residual, r, p->residual_stride, p->dtype);
    void *y = (void *)lk_norm_row(p->y, r, p->y_stride, p->dtype);
    float sum_squares = 0.0f;
    for (int64_t i = 0; i < p->hidden; i++) {
      float v = lk_norm_first_pass_element(x, residual, i, p->dtype, mode, p->alpha);
      sum_squares += v * v;
    }
    float inv_rms = lk_rms_norm_inv_rms(sum_squares, p->hidden, p->eps);
    for (int64_t i = 0; i < p->hidden; i++)
      lk_store_element(y, i, p->dtype,
                       lk_norm_input_element(x, residual, i, p->dtype, mode, p->alpha) * inv_rms * lk_norm_weight(p, i));
  }
}
