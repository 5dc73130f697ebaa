/* The tiled attention kernels' plan: how the query rows are cut into blocks of lanes, how blocks
 * become work items, and how long key ranges are split across items (flash-decoding). ISA
 * independent; attention_tile.c holds the scalar parts, attention_tile_simd.h the vector kernel.
 *
 * A lane is one (query token, head) row. A block holds up to LK_ATTENTION_LANES lanes that share
 * a kv head: `block_tokens` consecutive tokens x `block_heads` query heads of one GQA group
 * (128 / group tokens of all the group's heads; a group wider than 128 is cut into head chunks of
 * 128). Blocks are taken over the global token index, so one block may straddle sequences: it is
 * then processed as one "lane set" per sequence, each against that sequence's keys. Every key
 * tile is read once per block, by all its lanes: the K/V reuse that makes prefill compute bound,
 * and for decode the reason all heads of a GQA group read each K/V row once.
 *
 * A work item is (kv head, head chunk, token block): the blocks of one kv head are consecutive,
 * latest first (they see the most keys under a causal mask), and threads take items from a shared
 * counter.
 * When there are too few items to keep the threads busy (decode, long single sequences), each
 * item's keys are split into `splits` ranges whose partial softmax states (max, sum, unnormalised
 * output) are combined afterwards. The split depends only on the problem's shape, never on the
 * thread count, so results are bit-identical for any number of threads. */
#ifndef LK_ATTENTION_TILE_H
#define LK_ATTENTION_TILE_H

#include "attention.h"

/* Query rows per block. 128 rather than 64: each block re-reads its keys' K and V tiles from L2
 * or L3, and f32 prefill is limited by those bytes (bf16, half of them, ran 8 % faster on one
 * core); 128-lane blocks halve them: causal prefill 2048 f32, 2 threads, 226 against 218 GFLOP/s
 * (five alternating runs), bf16 250 against 246. */
#define LK_ATTENTION_LANES 128
#define LK_ATTENTION_TILE_KEYS 64  /* keys per tile */
#define LK_ATTENTION_MAX_UNITS 64  /* items x splits, when splitting */
#define LK_ATTENTION_MIN_SPLIT_KEYS 256
/* The partial states of split items live in the context's shared scratch. */
#define LK_ATTENTION_PARTIAL_BYTES LK_SHARED_SCRATCH_BYTES

typedef struct lk_attention_plan {
  int64_t block_heads, block_tokens, head_chunks, token_blocks;
  int64_t items, splits, units;
  int64_t padded_dim; /* head_dim rounded up to 16 floats: the V tile and accumulator rows */
  float *partials;    /* units x LANES x (padded_dim + 2) floats when splits > 1 */
} lk_attention_plan;

/* The lanes of one block that belong to one sequence. */
typedef struct lk_attention_lanes {
  int64_t seq, kv_head, count;
  int64_t first_lane;       /* index of lane 0 within the item's LANES (partial-state slot) */
  int64_t key_lo, key_hi;   /* union of the lanes' visible keys; key_hi < key_lo when none */
  int64_t full_lo, full_hi; /* keys every lane sees (full_hi < full_lo: no such key) */
  int64_t token[LK_ATTENTION_LANES], head[LK_ATTENTION_LANES];
  float lo[LK_ATTENTION_LANES], hi[LK_ATTENTION_LANES], pos[LK_ATTENTION_LANES], slope[LK_ATTENTION_LANES];
} lk_attention_lanes;

/* Fills the plan of a validated job; `partials` is the context's buffer of PARTIAL_BYTES. */
void lk_attention_plan_make(lk_attention_plan *plan, const lk_attention_job *job, float *partials);

/* How many parts to split each of `items` work items' keys into: enough for about MAX_UNITS
 * units, parts of at least MIN_SPLIT_KEYS of the longest sequence's keys, and units x
 * state_floats (one unit's partial states) within the shared scratch; 1 when there are enough
 * items. Shape only: never the thread count. */
int64_t lk_attention_splits(int64_t items, int64_t state_floats, int64_t max_keys);

/* Keys [*begin, *end) of part `split` of `splits` of the visible range [lo, hi] (empty when hi < lo). */
static inline void lk_attention_split_range(int64_t lo, int64_t hi, int64_t split, int64_t splits, int64_t *begin,
                                            int64_t *end) {
  const int64_t n = hi - lo + 1;
  if (n <= 0) {
    *begin = *end = 0;
    return;
  }
  *begin = lo + n * split / splits;
  *end = lo + n * (split + 1) / splits;
}

/* The item of unit u, and the split it covers. */
static inline int64_t lk_attention_unit_item(const lk_attention_plan *plan, int64_t u) { return u / plan->splits; }
static inline int64_t lk_attention_unit_split(const lk_attention_plan *plan, int64_t u) { return u % plan->splits; }

/* Iterates the lane sets of an item: start with *cursor = -1; returns false when done. */
bool lk_attention_next_lanes(const lk_attention_job *job, const lk_attention_plan *plan, int64_t item, int64_t *cursor,
                             lk_attention_lanes *lanes);

/* Keys [begin, end) of split `split` of a lane set's visible range. */
static inline void lk_attention_split_keys(const lk_attention_plan *plan, const lk_attention_lanes *lanes, int64_t split,
                                           int64_t *begin, int64_t *end) {
  lk_attention_split_range(lanes->key_lo, lanes->key_hi, split, plan->splits, begin, end);
}

/* head_dim rounded up to 16 floats: the kernels' accumulator and V-tile rows. */
static inline int64_t lk_attention_padded_dim(int64_t head_dim) { return (head_dim + 15) / 16 * 16; }

/* A split's partial state of one row, as lk_attention_combine_row reads it: m, l (NaN when the row
 * saw a NaN score), then head_dim unnormalised accumulators. */
static inline void lk_attention_save_partial(float *part, float m, float l, bool nan, const float *acc, int64_t head_dim) {
  part[0] = m;
  part[1] = nan ? NAN : l;
  memcpy(part + 2, acc, (size_t)head_dim * sizeof(float));
}

/* A unit's partial state for lane `lane` of item `item`: m, l, then padded_dim accumulators. */
static inline float *lk_attention_partial(const lk_attention_plan *plan, int64_t unit, int64_t lane) {
  return plan->partials + (unit * LK_ATTENTION_LANES + lane) * (plan->padded_dim + 2);
}

/* Writes one lane's output row and lse from its final state (acc unnormalised, over padded_dim);
 * nan marks a row that saw a NaN score. */
void lk_attention_store_row(const lk_attention_job *job, int64_t token, int64_t head, const float *acc, float m, float l,
                            bool nan);

/* Combines one row's partial states (m, l, acc[head_dim]) of `splits` splits, `stride` floats
 * apart, into its output row and lse. */
void lk_attention_combine_row(const lk_attention_job *job, int64_t token, int64_t head, const float *part, int64_t stride,
                              int64_t splits);

/* Combines the splits' partial states of items [begin, end) into the output (lk_rows_fn). */
void lk_attention_combine_items(const void *combine_job, int64_t begin, int64_t end);

typedef struct lk_attention_combine_job {
  const lk_attention_job *job;
  const lk_attention_plan *plan;
} lk_attention_combine_job;

/* One unit of the vector kernels: the item's lanes against their split of the keys, `scratch`
 * being this thread's LK_ATTENTION_SCRATCH_BYTES. */
typedef void (*lk_attention_unit_fn)(const lk_attention_job *job, const lk_attention_plan *plan, int64_t unit,
                                     void *scratch);
void lk_attention_unit_avx2(const lk_attention_job *job, const lk_attention_plan *plan, int64_t unit, void *scratch);
void lk_attention_unit_avx512(const lk_attention_job *job, const lk_attention_plan *plan, int64_t unit, void *scratch);

#endif /* LK_ATTENTION_TILE_H */
