/* LayerNorm, the scalar reference: the readable definition every vector variant is tested against.
 *   v as in rms_norm_scalar.c (NONE, PRE storing the residual, POST recomputed)
 *   K = lk_layer_norm_shift;  d = v - K;  s1 = sum(d);  s2 = sum(d^2)      (one pass, 64 partial sums)
 *   mean = K + s1 / n;  var = (s2 - s1^2 / n) / n;  rstd = 1 / sqrt(var + eps)
 *   unless that cancels (layer_norm.h): then the corrected two-pass form, from m0 = sum(v) / n
 *   y = (v - mean) * rstd, then * w, + b (one fma where both are present)
 * f32 arithmetic, y rounded once. */
#include "layer_norm.h"

#define LK_LAYER_SCALAR_LANES 64

void lk_layer_norm_rows_scalar(const void *job_, int64_t row_begin, int64_t row_end) {
  const lk_norm_job *job = (const lk_norm_job *)job_;
  const lk_norm_params *p = &job->p;
  const lk_norm_residual mode = p->residual_mode;
  for (int64_t r = row_begin; r < row_end; r++) {
    const void *x = lk_norm_row(p->x, r, p->x_stride, p->dtype);
    void *residual = mode == LK_NORM_RESIDUAL_NONE ? NULL : (void *)lk_norm_row(p->residual, r, p->residual_stride, p->dtype);
    void *y = (void *)lk_norm_row(p->y, r, p->y_stride, p->dtype);
    const float shift = lk_layer_norm_shift(x, residual, p->hidden, p->dtype, mode, p->alpha);
    /* Interleaved partial sums, as the vector variants keep (64 on AVX-512): one serial f32 sum of
     * 8192 squares is off by ~2e-6 relative, more than the float64 tests allow the reference. */
    float s1_lanes[LK_LAYER_SCALAR_LANES] = {0.0f}, s2_lanes[LK_LAYER_SCALAR_LANES] = {0.0f};
    for (int64_t i = 0; i < p->hidden; i++) {
      float d = lk_norm_first_pass_element(x, residual, i, p->dtype, mode, p->alpha) - shift;
      s1_lanes[i % LK_LAYER_SCALAR_LANES] += d;
      s2_lanes[i % LK_LAYER_SCALAR_LANES] += d * d;
    }
    float s1 = 0.0f, s2 = 0.0f;
    for (int k = 0; k < LK_LAYER_SCALAR_LANES; k++) {
      s1 += s1_lanes[k];
      s2 += s2_lanes[k];
    }
    float mean, rstd;
    if (!lk_layer_norm_shifted_stats(shift, s1, s2, p->hidden, p->eps, &mean, &rstd)) {
      /* The corrected two-pass form: m0 = sum(v) / n, then the deviations from it. */
      float sum = 0.0f;
      for (int64_t i = 0; i < p->hidden; i++) sum += lk_norm_input_element(x, residual, i, p->dtype, mode, p->alpha);
      const float m0 = sum / (float)p->hidden;
      s1 = s2 = 0.0f;
      for (int64_t i = 0; i < p->hidden; i++) {
        float d = lk_norm_input_element(x, residual, i, p->dtype, mode, p->alpha) - m0;
        s1 += d;
        s2 += d * d;
      }
      lk_layer_norm_stats(m0, s1, s2, p->hidden, p->eps, &mean, &rstd);
    }
    for (int64_t i = 0; i < p->hidden; i++) {
      const float t = (lk_norm_input_element(x, residual, i, p->dtype, mode, p->alpha) - mean) * rstd;
      lk_store_element(y, i, p->dtype, lk_layer_norm_affine(t, p, i));
    }
  }
}
