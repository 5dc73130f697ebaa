/* The norms' argument checks, shared with the CUDA library (which links this one): everything
 * lk_norm's contract says about the arguments that can be checked without reading a tensor, so
 * both backends refuse the same calls with the same messages. Exported for llmkernels_cuda, in no
 * public header. C and C++. */
#ifndef LK_NORM_CHECK_H
#define LK_NORM_CHECK_H

#include "llmkernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks *p and resolves it in place: strides 0 become hidden, alpha 0 becomes 1 (POST). Pointers,
 * extents and aliasing are checked only when rows > 0 (nothing is touched otherwise). */
LK_API lk_status lk_norm_check(lk_norm_params *p);

/* lk_rms_norm's and lk_fused_add_rms_norm's params as the lk_norm_params of kind RMS with `mode`. */
LK_API void lk_norm_params_from_rms(const lk_rms_norm_params *rms, lk_norm_residual mode, lk_norm_params *out);

#ifdef __cplusplus
}
#endif

#endif /* LK_NORM_CHECK_H */
