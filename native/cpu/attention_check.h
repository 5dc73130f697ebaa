/* lk_attention's argument checks, shared with the CUDA library (which links this one), so both
 * backends refuse the same calls with the same messages. Exported for llmkernels_cuda, in no
 * public header. C and C++. */
#ifndef LK_ATTENTION_CHECK_H
#define LK_ATTENTION_CHECK_H

#include "llmkernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks *p and resolves it in place (strides 0 become the row, scale 0 becomes 1/sqrt(head_dim)).
 * read_indices != 0: everything, reading cu_seqlens_q/k, seqlens_k and block_tables (host memory,
 * or host copies of them); 0: what needs none of them (the CUDA kernels check those as they read
 * them): the scalars, the strides, the paged cache's geometry, and that the pointers a call with
 * sequences reads are present. */
LK_API lk_status lk_attention_check(lk_attention_params *p, int32_t read_indices);

#ifdef __cplusplus
}
#endif

#endif /* LK_ATTENTION_CHECK_H */
