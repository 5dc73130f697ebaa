/* Paged KV cache internals shared by the cache operations (kv_cache.c) and attention over the
 * cache (attention.c): one validation of a cache's geometry and one of the block-table entries a
 * batch of sequences uses, so both entry points refuse the same inputs with the same messages. */
#ifndef LK_KV_CACHE_H
#define LK_KV_CACHE_H

#include "lk_internal.h"

typedef struct lk_kv_geometry {
  int64_t row_elements; /* num_kv_heads * head_dim */
  int64_t row_bytes;
  int64_t slots;        /* num_blocks * block_size */
  int64_t block_bytes;  /* block_size rows */
} lk_kv_geometry;

/* Both caches present, a dtype, positive dimensions, extents that do not overflow, the two caches
 * apart; fills *g. Messages name "cache.<field>". */
lk_status lk_kv_cache_check(const lk_paged_kv_cache *cache, lk_kv_geometry *g);

/* Whether bytes `s` overlap either cache of a checked cache. */
bool lk_kv_overlaps_cache(const lk_paged_kv_cache *cache, const lk_kv_geometry *g, lk_span s);

/* The block-table entries num_seqs (> 0) sequences use, sequence s holding lengths[s] tokens:
 * each length in [0, max_blocks_per_seq * block_size], and the ceil(length / block_size) entries
 * read, block_tables[s * max_blocks_per_seq + j], in [0, num_blocks). block_tables may be NULL
 * when no sequence uses an entry. `lengths_name` names the length array in messages ("seq_lens",
 * "seqlens_k"). *total gets the sum of the lengths, *units the number of entries read. */
lk_status lk_kv_block_tables_check(const lk_paged_kv_cache *cache, const int32_t *block_tables, int64_t max_blocks_per_seq,
                                   const int32_t *lengths, int64_t num_seqs, const char *lengths_name, int64_t *total,
                                   int64_t *units);

#endif /* LK_KV_CACHE_H */
