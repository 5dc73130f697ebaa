/* The MoE entry points' argument checks, shared with the CUDA library (which links this one), so
 * both backends refuse the same calls with the same messages. Exported for llmkernels_cuda, in no
 * public header. C and C++.
 *
 * A CUDA caller cannot read device memory on the host, so the checks that read a tensor or an
 * index array (the routing plan's expert ids, permute's sorted_slots, combine's slot_rows, gating's
 * correction bias) are left to the caller: the CPU entry points pass read_indices = 1, the CUDA
 * kernels check those indices as they read them (llmkernels_cuda.h). */
#ifndef LK_MOE_CHECK_H
#define LK_MOE_CHECK_H

#include "llmkernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Everything lk_moe_gating's contract says about its arguments; resolves logits_stride 0 to
 * num_experts in place. Pointers, extents and overlaps are checked only when num_tokens > 0.
 * (The CPU also scans the correction bias, once a call, to choose its kernels: not a check.) */
LK_API lk_status lk_moe_gating_check(lk_moe_gating_params *p);

/* lk_moe_routing's checks; resolves expert_begin = expert_end = 0 to [0, num_experts) and
 * block_size 0 to 1 in place. read_indices != 0: every expert id too (host memory). */
LK_API lk_status lk_moe_routing_check(lk_moe_routing_params *p, int32_t read_indices);

/* lk_moe_permute's checks; resolves the strides in place. read_indices != 0: every sorted_slots
 * entry too, and the input only when some entry reads it (as the CPU does); 0: the input is taken
 * to be read whenever num_rows > 0 (present, within the address space, apart from the output). */
LK_API lk_status lk_moe_permute_check(lk_moe_permute_params *p, int32_t read_indices);

/* lk_moe_combine's checks; resolves the strides in place. read_indices != 0: every slot_rows entry
 * too, and expert_output only when some entry reads it; 0: expert_output is taken to be read
 * whenever num_tokens > 0. */
LK_API lk_status lk_moe_combine_check(lk_moe_combine_params *p, int32_t read_indices);

#ifdef __cplusplus
}
#endif

#endif /* LK_MOE_CHECK_H */
