/* The activations' and GLU's argument checks, shared with the CUDA library (which links this one):
 * everything lk_apply_activation's and lk_glu's contracts say about the arguments, none of which
 * needs a tensor read, so both backends refuse the same calls with the same messages. Exported for
 * llmkernels_cuda, in no public header. C and C++. */
#ifndef LK_ACTIVATION_CHECK_H
#define LK_ACTIVATION_CHECK_H

#include "llmkernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks *p (not NULL). Pointers, extents and aliasing are checked only when n > 0. */
LK_API lk_status lk_activation_check(const lk_activation_params *p);

/* Checks *p (not NULL) and resolves it in place: strides 0 become their row widths. Pointers,
 * extents and aliasing are checked only when tokens > 0 (nothing is touched otherwise). */
LK_API lk_status lk_glu_check(lk_glu_params *p);

#ifdef __cplusplus
}
#endif

#endif /* LK_ACTIVATION_CHECK_H */
