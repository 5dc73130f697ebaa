/* lk_rms_norm / lk_fused_add_rms_norm: lk_norm with kind RMS and residual NONE / PRE (norm.c
 * holds the one validation and dispatch). */
#include "norm_check.h"
#include "rms_norm.h"

LK_API void lk_norm_params_from_rms(const lk_rms_norm_params *params, lk_norm_residual mode, lk_norm_params *out) {
  lk_norm_params p;
  memset(&p, 0, sizeof p);
  p.x = params->x;
  p.residual = params->residual;
  p.y = params->y;
  p.weight = params->weight;
  p.rows = params->rows;
  p.hidden = params->hidden;
  p.x_stride = params->x_stride;
  p.residual_stride = params->residual_stride;
  p.y_stride = params->y_stride;
  p.eps = params->eps;
  p.flags = params->flags;
  p.kind = LK_NORM_RMS;
  p.residual_mode = mode;
  p.dtype = params->dtype;
  p.weight_dtype = params->weight_dtype;
  *out = p;
}

static lk_status run(lk_cpu_context *context, const lk_rms_norm_params *params, lk_norm_residual mode) {
  if (!params) {
    /* lk_norm_run reports it, after entering the context as every entry point does. */
    return lk_norm_run(context, NULL);
  }
  lk_norm_params p;
  lk_norm_params_from_rms(params, mode, &p);
  return lk_norm_run(context, &p);
}

LK_API lk_status lk_rms_norm(lk_cpu_context *context, const lk_rms_norm_params *params) {
  return run(context, params, LK_NORM_RESIDUAL_NONE);
}

LK_API lk_status lk_fused_add_rms_norm(lk_cpu_context *context, const lk_rms_norm_params *params) {
  return run(context, params, LK_NORM_RESIDUAL_PRE);
}
