/* The decode kernel's plan: attention for batches where every sequence has only a few query rows
 * per kv head (decode, speculative decoding), a memory-bound problem the tiled kernel
 * (attention_tile.h) serves badly: its 128-lane blocks would be mostly empty, and a block reads one
 * kv head's rows, 256 bytes out of every 2 KB of a paged cache row.
 *
 * Here a work unit is one sequence's keys in one split, for ALL its query rows and kv heads: it
 * walks the keys in tiles of 16, and for each kv head scores the tile with dot products along
 * head_dim (each K row read once for the whole GQA group), updates the online softmax per row and
 * accumulates the V rows. So a unit streams whole cache rows, K and V of every kv head in one
 * contiguous run per token, prefetched one tile ahead. Long key ranges are split so that there are
 * about LK_ATTENTION_MAX_UNITS units whatever the batch (flash-decoding: every core works on a
 * single sequence), and the splits' partial states are combined as the tiled kernel's are. The
 * split depends only on the shape, so results do not depend on the thread count. */
#ifndef LK_ATTENTION_DECODE_H
#define LK_ATTENTION_DECODE_H

#include "attention_tile.h"

#define LK_DECODE_TILE_KEYS 16
#define LK_DECODE_MAX_LANES 16 /* query rows per kv head (tokens x group) the kernel takes */

typedef struct lk_decode_plan {
  int64_t rows;       /* query rows of the longest sequence: tokens x num_heads */
  int64_t splits, units;
  int64_t padded_dim;
  float *partials;    /* units x rows x (padded_dim + 2) when splits > 1 */
  bool amx;           /* head_dim and the scratch allow the AMX scores (attention_decode_amx.h) */
} lk_decode_plan;

/* Whether the decode kernel takes this job (then *plan is filled), given the per-thread scratch. */
bool lk_decode_plan_make(lk_decode_plan *plan, const lk_attention_job *job, float *partials, size_t scratch_bytes);

/* Row r of a unit's sequence: token cu_seqlens_q[s] + r / num_heads, head r % num_heads. */
static inline float *lk_decode_partial(const lk_decode_plan *plan, int64_t unit, int64_t row) {
  return plan->partials + (unit * plan->rows + row) * (plan->padded_dim + 2);
}

typedef struct lk_decode_combine_job {
  const lk_attention_job *job;
  const lk_decode_plan *plan;
} lk_decode_combine_job;

/* Combines the splits of sequences [begin, end) into the output (lk_rows_fn). */
void lk_decode_combine_sequences(const void *combine_job, int64_t begin, int64_t end);

typedef void (*lk_decode_unit_fn)(const lk_attention_job *job, const lk_decode_plan *plan, int64_t unit, void *scratch);
void lk_decode_unit_avx2(const lk_attention_job *job, const lk_decode_plan *plan, int64_t unit, void *scratch);
void lk_decode_unit_avx512(const lk_attention_job *job, const lk_decode_plan *plan, int64_t unit, void *scratch);
void lk_decode_unit_avx512bf16(const lk_attention_job *job, const lk_decode_plan *plan, int64_t unit, void *scratch);
void lk_decode_unit_avx512amx(const lk_attention_job *job, const lk_decode_plan *plan, int64_t unit, void *scratch);

#endif /* LK_ATTENTION_DECODE_H */
