/* The paged KV cache operations' argument checks, shared with the CUDA library (which links this
 * one): what lk_kv_cache_write's, lk_kv_cache_gather's and lk_kv_cache_copy_blocks' contracts say
 * about the arguments that can be checked without reading an index array, so both backends refuse
 * the same calls with the same messages. The CUDA kernels check the indices (slot mappings, block
 * tables, sequence lengths, block mappings) as they read them (docs/cuda/kv-cache.md). Exported
 * for llmkernels_cuda, in no public header. C and C++. */
#ifndef LK_KV_CACHE_CHECK_H
#define LK_KV_CACHE_CHECK_H

#include "llmkernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Everything but slot_mapping's values; resolves *p in place (strides 0 become
 * num_kv_heads * head_dim). Pointers, strides and overlaps are checked only when num_tokens > 0. */
LK_API lk_status lk_kv_cache_write_check(lk_kv_cache_write_params *p);

/* read_indices != 0: everything lk_kv_cache_gather checks, reading seq_lens and the block-table
 * entries the sequences use (host memory). 0: what needs neither, with the outputs taken at their
 * declared size since sum(seq_lens) is unknown: the cache, the counts, seq_lens present (num_seqs >
 * 0), block_tables present when it has entries (num_seqs > 0 and max_blocks_per_seq > 0), and
 * key_out and value_out present, of out_tokens rows that do not overflow, apart from the caches and
 * from each other (out_tokens > 0). */
LK_API lk_status lk_kv_cache_gather_check(const lk_kv_cache_gather_params *p, int32_t read_indices);

/* Everything but block_mapping's values. */
LK_API lk_status lk_kv_cache_copy_blocks_check(const lk_kv_cache_copy_blocks_params *p);

#ifdef __cplusplus
}
#endif

#endif /* LK_KV_CACHE_CHECK_H */
