/* LayerNorm, the scalar reference: the readable definition every vector variant is tested against.
 *   v as in rms_norm_scalar.c (NONE, PRE storing the residual, POST recomputed)
 *   m0 = sum(v) / n;  d = v - m0;  mean = m0 (+ sum(d) / n where |m0| > std);  var = (sum(d^2) - sum(d)^2 / n) / n
 *   rstd = 1 / sqrt(var + eps)   (layer_norm.h: the corrected two-pass algorithm)
 *   y = (v - mean) * rstd, then * w when there is a weight, then + b when there is a bias
 * f32 arithmetic, sequential sums, y rounded once. */
#include "layer_norm.h"

void lk_layer_norm_rows_scalar(const void *job_, int64_t row_begin, int64_t row_end) {
  const lk_norm_job *job = (const lk_norm_job *)job_;
  const lk_norm_params *p = &job->p;
  const lk_norm_residual mode = p->residual_mode;
  for (int64_t r = row_begin; r < row_end; r++) {
    const void *x = lk_norm_row(p->x, r, p->x_stride, p->dtype);
    void *residual = mode == LK_NORM_RESIDUAL_NONE ? NULL : (void *)lk_norm_row(p->residual, r, p->residual_stride, p->dtype);
    void *y = (void *)lk_norm_row(p->y, r, p->y_stride, p->dtype);
    float sum = 0.0f;
    for (int64_t i = 0; i < p->hidden; i++) sum += lk_norm_first_pass_element(x, residual, i, p->dtype, mode, p->alpha);
    const float m0 = sum / (float)p->hidden;
    float s1 = 0.0f, s2 = 0.0f;
    for (int64_t i = 0; i < p->hidden; i++) {
      float d = lk_norm_input_element(x, residual, i, p->dtype, mode, p->alpha) - m0;
      s1 += d;
      s2 += d * d;
    }
    float mean, rstd;
    lk_layer_norm_stats(m0, s1, s2, p->hidden, p->eps, &mean, &rstd);
    for (int64_t i = 0; i < p->hidden; i++) {
      float out = (lk_norm_input_element(x, residual, i, p->dtype, mode, p->alpha) - mean) * rstd;
      if (p->weight) out *= lk_norm_weight(p, i);
      if (p->bias) out += lk_load_element(p->bias, i, p->weight_dtype);
      lk_store_element(y, i, p->dtype, out);
    }
  }
}
