/* RMSNorm, the scalar reference: the readable definition every vector variant is tested against.
 *   fused:  s = round(residual + x); residual = s;  y = s * inv_rms(s) * w
 *   plain:  y = x * inv_rms(x) * w
 * f32 arithmetic, sequential sum of squares, y rounded once. */
#include "rms_norm.h"

static const char *row(const void *base, int64_t r, int64_t stride, lk_dtype dtype) {
  return (const char *)base + r * stride * (int64_t)lk_dtype_size(dtype);
}

void lk_rms_norm_rows_scalar(const void *job_, int64_t row_begin, int64_t row_end) {
  const lk_rms_norm_job *job = (const lk_rms_norm_job *)job_;
  const lk_rms_norm_params *p = &job->p;
  for (int64_t r = row_begin; r < row_end; r++) {
    const void *x = row(p->x, r, p->x_stride, p->dtype);
    void *y = (void *)row(p->y, r, p->y_stride, p->dtype);
    /* In the fused form the normalised input is the updated residual row. */
    const void *in = x;
    float sum_squares = 0.0f;
    if (job->fused) {
      void *residual = (void *)row(p->residual, r, p->residual_stride, p->dtype);
      for (int64_t i = 0; i < p->hidden; i++) {
        float s = lk_round_to_dtype(lk_load_element(residual, i, p->dtype) + lk_load_element(x, i, p->dtype), p->dtype);
        lk_store_element(residual, i, p->dtype, s);
        sum_squares += s * s;
      }
      in = residual;
    } else {
      for (int64_t i = 0; i < p->hidden; i++) {
        float v = lk_load_element(x, i, p->dtype);
        sum_squares += v * v;
      }
    }
    float inv_rms = lk_rms_norm_inv_rms(sum_squares, p->hidden, p->eps);
    for (int64_t i = 0; i < p->hidden; i++)
      lk_store_element(y, i, p->dtype, lk_load_element(in, i, p->dtype) * inv_rms * lk_rms_norm_weight(p, i));
  }
}
