/* RoPE's argument checks, shared with the CUDA library (which links this one): everything
 * lk_rope's contract says about the arguments except the positions' values, so both backends
 * refuse the same calls with the same messages. The positions live in device memory for the CUDA
 * kernel, which checks each as it reads it (lk_cuda_rope, docs/cuda/activations-rope.md); lk_rope
 * checks them after this, on the host. Exported for llmkernels_cuda, in no public header. C and
 * C++. */
#ifndef LK_ROPE_CHECK_H
#define LK_ROPE_CHECK_H

#include "llmkernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks *p (not NULL) and resolves it in place: rot_dim 0 becomes head_dim, strides 0 become the
 * span of a token's heads. Pointers, extents and overlaps are checked only when tokens > 0; the
 * positions array is never read. */
LK_API lk_status lk_rope_check(lk_rope_params *p);

#ifdef __cplusplus
}
#endif

#endif /* LK_ROPE_CHECK_H */
