/* lk_moe_routing, lk_moe_permute and lk_moe_combine against independent references of the
 * contracts in llmkernels.h ("Mixture-of-experts routing plan, permute and combine").
 *
 * routing   the plan against one built by sorting (local expert, slot) keys: counts, exclusive
 *           offsets, stable sorted_slots, slot_rows (checked as the exact inverse as well),
 *           block padding (0, 1, 3, 16, 64), block_experts; rows and blocks past the plan keep
 *           their sentinel; expert-parallel ranges (all, explicit all, a middle range, the first
 *           and the last expert); ids from lk_moe_gating (plain and skewed logits) and built ones
 *           (every token to the same experts, every slot to one expert, only even experts);
 *           0, 1, 7 and 130 tokens; E = 3..384, k = 1, 2, 8 and k = E; NULL optional outputs;
 *           outputs ending at guard pages, ids read-only.
 * permute   output row r == input row sorted_slots[r] / top_k bit for bit (random bit patterns:
 *           NaN payloads, signalling NaN, -0, subnormals), padding rows zero, the gaps of strided
 *           outputs untouched; f32, f16, bf16; ragged hidden; plans and arbitrary slot lists;
 *           every ISA x 1-3 threads.
 * combine   against float64 (f32 accumulation error plus one rounding to the dtype), against an
 *           emulation of the kernel's definition (one fmaf per slot in slot order, then one
 *           rounding: exact bits) and bit-identical on every ISA x thread count; -1 slots skipped
 *           (their weights are NaN, so any use shows), tokens with none give +0; ragged hidden
 *           around each vector width; strided layouts with untouched gaps; overflow to infinity.
 * round trip  gating -> plan -> permute -> experts (identity, or row * (expert + 1)) -> combine
 *           equals the (weighted) mean of the expert rows; with block padding; an expert-parallel
 *           split into two halves whose combines add up to the full one.
 * arguments every invalid field refused with LK_ERR_INVALID_ARGUMENT and a message that starts
 *           with its name, nothing written; empty batches accepted.
 *
 * LK_TEST_SEED=<n> changes the random inputs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

#define SENTINEL ((int32_t)0x5EAD7A11) /* never a row, slot, count or expert here */

static lk_cpu_context *contexts[3][GRID_MAX_THREADS + 1];
static lk_isa isas[3];
static int isa_count;
static uint64_t base_seed = 0x40E5EED2026ull;
static uint64_t case_counter;
static long routing_calls, permute_calls, combine_calls;
static double worst_ratio[3]; /* combine: worst |got - float64| / tolerance per dtype */

static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};

static uint64_t next_seed(void) { return base_seed + 0x9E3779B97F4A7C15ull * ++case_counter; }

/* The plan is ISA- and thread-independent: the routing cases take the contexts in turn. */
static lk_cpu_context *rotating_context(void) {
  static unsigned n;
  n++;
  return contexts[n % (unsigned)isa_count][1 + (n / (unsigned)isa_count) % GRID_MAX_THREADS];
}

static void fill_i32(int32_t *p, int64_t n, int32_t v) {
  for (int64_t i = 0; i < n; i++) p[i] = v;
}

/* A guarded int32 array of n elements ending at a guard page, every element SENTINEL. */
static int32_t *i32_alloc(guarded_buffer *b, int64_t n) {
  *b = guarded_alloc_or_exit((size_t)n * sizeof(int32_t), GUARD_EDGE_END);
  fill_i32(b->data, n, SENTINEL);
  return b->data;
}

static int64_t first_difference(const int32_t *a, const int32_t *b, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (a[i] != b[i]) return i;
  return -1;
}

static int64_t first_not(const int32_t *a, int64_t from, int64_t to, int32_t v) {
  for (int64_t i = from; i < to; i++)
    if (a[i] != v) return i;
  return -1;
}

/* ---- the reference plan ----------------------------------------------------------------------- */

typedef struct plan {
  int64_t begin, local, block, slots, worst, total;
  int32_t *counts;        /* [local] */
  int32_t *offsets;       /* [local + 1] */
  int32_t *sorted;        /* [total] */
  int32_t *slot_rows;     /* [slots] */
  int32_t *block_experts; /* [total / block] */
} plan;

static int compare_i64(const void *a, const void *b) {
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int64_t resolved_end(int64_t E, int64_t begin, int64_t end) { return begin == 0 && end == 0 ? E : end; }

/* Sorts the keys local_expert * slots + slot of the local slots: by expert, then by slot (stable
 * by construction), then lays the segments out padded to multiples of the block. */
static plan plan_reference(const int32_t *ids, int64_t T, int64_t k, int64_t E, int64_t begin, int64_t end,
                           int64_t block_size) {
  plan p;
  memset(&p, 0, sizeof p);
  end = resolved_end(E, begin, end);
  p.begin = begin;
  p.local = end - begin;
  p.block = block_size > 1 ? block_size : 1;
  p.slots = T * k;
  p.worst = p.slots + p.local * (p.block - 1);
  int64_t *keys = malloc((size_t)(p.slots + 1) * sizeof *keys);
  int64_t n = 0;
  for (int64_t s = 0; s < p.slots; s++) {
    const int64_t e = (int64_t)ids[s] - begin;
    if (e >= 0 && e < p.local) keys[n++] = e * p.slots + s;
  }
  qsort(keys, (size_t)n, sizeof *keys, compare_i64);
  p.counts = calloc((size_t)p.local + 1, sizeof(int32_t));
  p.offsets = calloc((size_t)p.local + 1, sizeof(int32_t));
  p.sorted = malloc((size_t)(p.worst + 1) * sizeof(int32_t));
  p.slot_rows = malloc((size_t)(p.slots + 1) * sizeof(int32_t));
  int64_t row = 0, i = 0;
  for (int64_t e = 0; e < p.local; e++) {
    p.offsets[e] = (int32_t)row;
    for (; i < n && keys[i] / p.slots == e; i++) {
      p.sorted[row++] = (int32_t)(keys[i] % p.slots);
      p.counts[e]++;
    }
    while (row % p.block != 0) p.sorted[row++] = -1;
  }
  p.offsets[p.local] = (int32_t)row;
  p.total = row;
  fill_i32(p.slot_rows, p.slots, -1);
  for (int64_t r = 0; r < p.total; r++)
    if (p.sorted[r] >= 0) p.slot_rows[p.sorted[r]] = (int32_t)r;
  const int64_t blocks = p.total / p.block;
  p.block_experts = malloc((size_t)(blocks + 1) * sizeof(int32_t));
  for (int64_t b = 0; b < blocks; b++)
    for (int64_t e = 0; e < p.local; e++)
      if (p.offsets[e] <= b * p.block && b * p.block < p.offsets[e + 1]) p.block_experts[b] = (int32_t)(begin + e);
  free(keys);
  return p;
}

static void plan_free(plan *p) {
  free(p->counts);
  free(p->offsets);
  free(p->sorted);
  free(p->slot_rows);
  free(p->block_experts);
}

/* ---- expert ids --------------------------------------------------------------------------------- */

/* lk_moe_gating's choice for random logits (SOFTMAX_TOPK, renormalised): k distinct ids per token.
 * Skewed: expert e's logits lowered by 2 log2(e + 1), so the low ids take most tokens and many
 * high ones none. weights (optional) receives the gating weights. */
static void gating_ids(lk_cpu_context *context, int64_t T, int64_t E, int64_t k, bool skewed, rng *r, int32_t *ids,
                       float *weights) {
  if (T == 0) return;
  float *logits = malloc((size_t)(T * E) * sizeof(float));
  float *w = weights ? weights : malloc((size_t)(T * k) * sizeof(float));
  for (int64_t t = 0; t < T; t++)
    for (int64_t e = 0; e < E; e++)
      logits[t * E + e] = rng_uniform(r, -2.0f, 2.0f) - (skewed ? 2.0f * log2f((float)(e + 1)) : 0.0f);
  lk_moe_gating_params g;
  memset(&g, 0, sizeof g);
  g.logits = logits;
  g.weights = w;
  g.expert_ids = ids;
  g.num_tokens = T;
  g.num_experts = E;
  g.top_k = k;
  g.scoring = LK_MOE_SOFTMAX_TOPK;
  g.flags = LK_MOE_RENORMALIZE;
  g.dtype = LK_DTYPE_F32;
  CHECK_STATUS(lk_moe_gating(context, &g), LK_OK);
  if (w != weights) free(w);
  free(logits);
}

enum { DIST_GATING, DIST_SKEWED, DIST_SAME_SET, DIST_ONE_EXPERT, DIST_EVEN_ONLY, DIST_COUNT };

static const char *dist_label(int d) {
  static const char *labels[] = {"gating", "skewed gating", "every token the same k experts", "every slot expert E-1",
                                 "even experts only"};
  return labels[d];
}

static void generate_ids(int dist, int64_t T, int64_t k, int64_t E, rng *r, int32_t *ids) {
  switch (dist) {
  case DIST_GATING:
  case DIST_SKEWED: gating_ids(contexts[0][1], T, E, k, dist == DIST_SKEWED, r, ids, NULL); break;
  case DIST_SAME_SET: /* all tokens to experts E/2 .. E/2 + k - 1 (mod E); the rest empty */
    for (int64_t t = 0; t < T; t++)
      for (int64_t j = 0; j < k; j++) ids[t * k + j] = (int32_t)((E / 2 + j) % E);
    break;
  case DIST_ONE_EXPERT: /* the plan does not need a token's ids distinct */
    fill_i32(ids, T * k, (int32_t)(E - 1));
    break;
  default: /* odd experts empty, repeats allowed */
    for (int64_t s = 0; s < T * k; s++) ids[s] = (int32_t)(2 * rng_below(r, (uint32_t)((E + 1) / 2)));
    break;
  }
}

/* ---- routing: one call, checked ---------------------------------------------------------------- */

typedef struct routing_case {
  int64_t T, k, E, begin, end, block;
  int dist;
} routing_case;

static const char *describe_routing(const routing_case *c, char *buffer, size_t size) {
  snprintf(buffer, size, "routing: tokens %lld k %lld experts %lld range [%lld, %lld) block_size %lld, ids: %s",
           (long long)c->T, (long long)c->k, (long long)c->E, (long long)c->begin, (long long)c->end,
           (long long)c->block, dist_label(c->dist));
  return buffer;
}

/* Runs the kernel with sorted_capacity = worst + slack and checks everything it wrote against ref. */
static void routing_call_and_check(lk_cpu_context *context, const routing_case *c, const int32_t *ids, const plan *ref,
                                   int64_t slack, bool with_slot_rows, bool with_block_experts) {
  check_context_push("sorted_capacity worst + %lld, slot_rows %s, block_experts %s", (long long)slack,
                     with_slot_rows ? "given" : "NULL", with_block_experts ? "given" : "NULL");
  const int64_t local = ref->local, capacity = ref->worst + slack;
  const int64_t block_count = ref->block > 1 ? capacity / ref->block : capacity;
  guarded_buffer gc, go, gs, gr, gb;
  int32_t *counts = i32_alloc(&gc, local), *offsets = i32_alloc(&go, local + 1), *sorted = i32_alloc(&gs, capacity);
  int32_t *slot_rows = i32_alloc(&gr, ref->slots), *block_experts = i32_alloc(&gb, block_count);

  lk_moe_routing_params p;
  memset(&p, 0, sizeof p);
  p.expert_ids = ids;
  p.num_tokens = c->T;
  p.top_k = c->k;
  p.num_experts = c->E;
  p.expert_begin = c->begin;
  p.expert_end = c->end;
  p.block_size = c->block;
  p.expert_counts = counts;
  p.expert_offsets = offsets;
  p.sorted_slots = sorted;
  p.sorted_capacity = capacity;
  p.slot_rows = with_slot_rows ? slot_rows : NULL;
  p.block_experts = with_block_experts ? block_experts : NULL;
  routing_calls++;
  if (CHECKF(lk_moe_routing(context, &p) == LK_OK, "status not LK_OK: %s", lk_last_error())) {
    const int64_t total = ref->total;
    int64_t i;
    i = first_difference(counts, ref->counts, local);
    CHECKF(i < 0, "expert_counts[%lld] = %d, expected %d", (long long)i, i < 0 ? 0 : counts[i], i < 0 ? 0 : ref->counts[i]);
    i = first_difference(offsets, ref->offsets, local + 1);
    CHECKF(i < 0, "expert_offsets[%lld] = %d, expected %d", (long long)i, i < 0 ? 0 : offsets[i],
           i < 0 ? 0 : ref->offsets[i]);
    CHECKF(offsets[0] == 0 && offsets[local] == total, "expert_offsets[0] = %d, [local] = %d, rows %lld", offsets[0],
           offsets[local], (long long)total);
    i = first_difference(sorted, ref->sorted, total);
    CHECKF(i < 0, "sorted_slots[%lld] = %d, expected %d", (long long)i, i < 0 ? 0 : sorted[i], i < 0 ? 0 : ref->sorted[i]);
    i = first_not(sorted, total, capacity, SENTINEL);
    CHECKF(i < 0, "sorted_slots[%lld] = %d written past the plan's %lld rows", (long long)i, i < 0 ? 0 : sorted[i],
           (long long)total);

    /* The properties themselves, on the kernel's own output: each segment holds its expert's
     * slots in ascending order, then padding (-1) up to the next multiple of the block. */
    int64_t bad_segment = -1;
    for (int64_t e = 0; e < local && bad_segment < 0; e++) {
      const int64_t start = offsets[e], count = counts[e], end = offsets[e + 1];
      if (end - start != (count + ref->block - 1) / ref->block * ref->block) bad_segment = e;
      for (int64_t r = start; r < end && bad_segment < 0 && r < total; r++) {
        const int32_t s = sorted[r];
        if (r < start + count ? (s < 0 || s >= ref->slots || ids[s] != ref->begin + e || (r > start && s <= sorted[r - 1]))
                              : s != -1)
          bad_segment = e;
      }
    }
    CHECKF(bad_segment < 0, "local expert %lld's segment is not its slots in ascending order padded with -1 to a "
                            "multiple of %lld", (long long)bad_segment, (long long)ref->block);

    if (with_slot_rows) {
      i = first_difference(slot_rows, ref->slot_rows, ref->slots);
      CHECKF(i < 0, "slot_rows[%lld] = %d, expected %d", (long long)i, i < 0 ? 0 : slot_rows[i],
             i < 0 ? 0 : ref->slot_rows[i]);
      int64_t not_inverse = -1;
      for (int64_t s = 0; s < ref->slots && not_inverse < 0; s++) {
        const int64_t e = (int64_t)ids[s] - ref->begin;
        const bool here = e >= 0 && e < local;
        const int32_t r = slot_rows[s];
        if (here ? (r < 0 || r >= total || sorted[r] != s) : r != -1) not_inverse = s;
      }
      for (int64_t r = 0; r < total && not_inverse < 0; r++)
        if (sorted[r] >= 0 && sorted[r] < ref->slots && slot_rows[sorted[r]] != r) not_inverse = sorted[r];
      CHECKF(not_inverse < 0, "slot_rows is not the inverse of sorted_slots at slot %lld", (long long)not_inverse);
    } else {
      CHECK(first_not(slot_rows, 0, ref->slots, SENTINEL) < 0); /* the buffer was not passed */
    }

    const int64_t blocks = total / ref->block;
    if (with_block_experts && ref->block > 1) {
      i = first_difference(block_experts, ref->block_experts, blocks);
      CHECKF(i < 0, "block_experts[%lld] = %d, expected %d", (long long)i, i < 0 ? 0 : block_experts[i],
             i < 0 ? 0 : ref->block_experts[i]);
    }
    i = first_not(block_experts, ref->block > 1 && with_block_experts ? blocks : 0, block_count, SENTINEL);
    if (!with_block_experts || ref->block > 1)
      CHECKF(i < 0, "block_experts[%lld] = %d written past the plan's %lld blocks", (long long)i,
             i < 0 ? 0 : block_experts[i], (long long)blocks);
    else /* block_size 0 or 1: block_experts is not part of the plan; at least nothing past the rows */
      CHECKF(first_not(block_experts, total, block_count, SENTINEL) < 0, "block_experts written past the plan's rows");
  }
  guarded_free(&gc);
  guarded_free(&go);
  guarded_free(&gs);
  guarded_free(&gr);
  guarded_free(&gb);
  check_context_pop();
}

static void run_routing_case(const routing_case *c, const int32_t *ids) {
  char what[256];
  check_context_push("%s", describe_routing(c, what, sizeof what));
  plan ref = plan_reference(ids, c->T, c->k, c->E, c->begin, c->end, c->block);
  routing_call_and_check(rotating_context(), c, ids, &ref, 5, true, true);
  const int variant = (int)(case_counter++ % 3);
  routing_call_and_check(rotating_context(), c, ids, &ref, 0, variant != 1, variant != 2);
  if (variant == 0) routing_call_and_check(rotating_context(), c, ids, &ref, 0, false, false);
  plan_free(&ref);
  check_context_pop();
}

static void test_routing(void) {
  static const struct {
    int64_t E, k;
  } shapes[] = {{3, 3},   {5, 5},   {8, 1},   {8, 2},   {8, 8},   {60, 1},  {60, 2},  {60, 8},  {64, 1},
                {64, 2},  {64, 8},  {256, 1}, {256, 2}, {256, 8}, {384, 1}, {384, 2}, {384, 8}};
  static const int64_t token_counts[] = {0, 1, 7, 130};
  static const int64_t blocks[] = {0, 1, 3, 16, 64};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (size_t n = 0; n < sizeof token_counts / sizeof token_counts[0]; n++)
      for (int dist = 0; dist < DIST_COUNT; dist++) {
        const int64_t E = shapes[s].E, k = shapes[s].k, T = token_counts[n];
        if (T == 0 && dist > 0) continue;
        rng r = rng_seeded(next_seed());
        guarded_buffer ids = guarded_alloc_or_exit((size_t)(T * k) * sizeof(int32_t), GUARD_EDGE_END);
        generate_ids(dist, T, k, E, &r, ids.data);
        if (dist == DIST_GATING || dist == DIST_SKEWED) { /* gating gives k distinct ids per token */
          int64_t repeated = 0;
          for (int64_t t = 0; t < T; t++)
            for (int64_t a = 0; a < k; a++)
              for (int64_t b = 0; b < a; b++) repeated += ((int32_t *)ids.data)[t * k + a] == ((int32_t *)ids.data)[t * k + b];
          CHECKF(repeated == 0, "test construction: gating gave %lld repeated ids", (long long)repeated);
        }
        guarded_make_read_only(&ids);
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
          for (int range = 0; range < 5; range++) {
            routing_case c = {T, k, E, 0, 0, blocks[b], dist};
            switch (range) {
            case 0: break;                                     /* (0, 0): all */
            case 1: c.end = E; break;                          /* all, explicit */
            case 2: c.begin = E / 4; c.end = E / 4 + (E + 1) / 2; break; /* a middle range */
            case 3: c.end = 1; break;                          /* the first expert only */
            default: c.begin = E - 1; c.end = E; break;        /* the last expert only */
            }
            run_routing_case(&c, ids.data);
          }
        guarded_free(&ids);
      }
}

/* Hand-made plans whose answers are written out, so the reference itself is checked too. */
static void test_routing_literal(void) {
  /* 4 tokens x 2 slots, 5 experts: slot s -> expert ids[s] */
  static const int32_t ids[8] = {3, 1, 1, 3, 0, 3, 3, 1};
  { /* all experts, no padding */
    const int32_t counts[5] = {1, 3, 0, 4, 0}, offsets[6] = {0, 1, 4, 4, 8, 8};
    const int32_t sorted[8] = {4, 1, 2, 7, 0, 3, 5, 6}, slot_rows[8] = {4, 1, 2, 5, 0, 6, 7, 3};
    plan p = plan_reference(ids, 4, 2, 5, 0, 0, 0);
    CHECK(p.total == 8 && memcmp(p.counts, counts, sizeof counts) == 0 && memcmp(p.offsets, offsets, sizeof offsets) == 0);
    CHECK(memcmp(p.sorted, sorted, sizeof sorted) == 0 && memcmp(p.slot_rows, slot_rows, sizeof slot_rows) == 0);
    routing_case c = {4, 2, 5, 0, 0, 0, DIST_GATING};
    routing_call_and_check(contexts[0][1], &c, ids, &p, 3, true, true);
    plan_free(&p);
  }
  { /* experts [1, 4), block 3 */
    const int32_t counts[3] = {3, 0, 4}, offsets[4] = {0, 3, 3, 9};
    const int32_t sorted[9] = {1, 2, 7, 0, 3, 5, 6, -1, -1}, slot_rows[8] = {3, 0, 1, 4, -1, 5, 6, 2};
    const int32_t block_experts[3] = {1, 3, 3};
    plan p = plan_reference(ids, 4, 2, 5, 1, 4, 3);
    CHECK(p.total == 9 && p.worst == 14 && memcmp(p.counts, counts, sizeof counts) == 0 &&
          memcmp(p.offsets, offsets, sizeof offsets) == 0);
    CHECK(memcmp(p.sorted, sorted, sizeof sorted) == 0 && memcmp(p.slot_rows, slot_rows, sizeof slot_rows) == 0);
    CHECK(memcmp(p.block_experts, block_experts, sizeof block_experts) == 0);
    routing_case c = {4, 2, 5, 1, 4, 3, DIST_GATING};
    routing_call_and_check(contexts[0][1], &c, ids, &p, 3, true, true);
    plan_free(&p);
  }
}

/* ---- permute ------------------------------------------------------------------------------------ */

/* Random bit patterns (NaN payloads, infinities, subnormals among them), plus per row a
 * signalling NaN, -0 and a negative quiet NaN with a payload: a copy must keep them all. */
static void fill_random_bits(lk_dtype dt, void *base, int64_t count, int64_t stride, rng *r) {
  for (int64_t i = 0; i < count; i++) {
    const uint64_t bits = rng_next(r);
    if (dt == LK_DTYPE_F32) {
      const uint32_t v = (uint32_t)bits;
      memcpy((float *)base + i, &v, sizeof v);
    } else {
      ((uint16_t *)base)[i] = (uint16_t)bits;
    }
  }
  static const uint32_t specials32[3] = {0x7F800001u, 0x80000000u, 0xFFC0BEEFu};
  static const uint16_t specials_f16[3] = {0x7C01u, 0x8000u, 0xFE5Au};
  static const uint16_t specials_bf16[3] = {0x7F81u, 0x8000u, 0xFFDAu};
  for (int64_t row = 0; stride > 0 && row * stride < count; row++)
    for (int64_t j = 0; j < 3 && row * stride + j < count; j++) {
      const int64_t i = row * stride + j;
      if (dt == LK_DTYPE_F32) memcpy((float *)base + i, &specials32[j], sizeof specials32[j]);
      else ((uint16_t *)base)[i] = dt == LK_DTYPE_F16 ? specials_f16[j] : specials_bf16[j];
    }
}

/* Runs the permute of `slots` (num_rows of them) on every ISA x thread count and checks each. */
static void run_permute_case(lk_dtype dt, int64_t T, int64_t k, int64_t hidden, int64_t input_stride,
                             int64_t output_stride, const int32_t *slot_values, int64_t R, bool input_null) {
  const uint64_t seed = next_seed();
  check_context_push("permute %s: tokens %lld k %lld rows %lld hidden %lld input_stride %lld output_stride %lld%s, seed "
                     "0x%llx",
                     dtype_label(dt), (long long)T, (long long)k, (long long)R, (long long)hidden, (long long)input_stride,
                     (long long)output_stride, input_null ? ", input NULL" : "", (unsigned long long)seed);
  rng r = rng_seeded(seed);
  const int64_t in_stride = effective_stride(input_stride, hidden), out_stride = effective_stride(output_stride, hidden);
  strided in = strided_alloc(dt, T, hidden, in_stride, GUARD_EDGE_END);
  fill_random_bits(dt, in.memory.data, span_elements(T, in_stride, hidden), in_stride, &r);
  guarded_make_read_only(&in.memory);
  guarded_buffer slots = guarded_alloc_or_exit((size_t)R * sizeof(int32_t), GUARD_EDGE_END);
  if (R > 0) memcpy(slots.data, slot_values, (size_t)R * sizeof(int32_t));
  guarded_make_read_only(&slots);

  for (int i = 0; i < isa_count; i++)
    for (int threads = 1; threads <= GRID_MAX_THREADS; threads++) {
      strided out = strided_alloc(dt, R, hidden, out_stride, threads == 2 ? GUARD_EDGE_START : GUARD_EDGE_END);
      lk_moe_permute_params p;
      memset(&p, 0, sizeof p);
      p.input = input_null ? NULL : in.memory.data;
      p.output = out.memory.data;
      p.sorted_slots = slots.data;
      p.num_tokens = T;
      p.top_k = k;
      p.num_rows = R;
      p.hidden = hidden;
      p.input_stride = input_stride;
      p.output_stride = output_stride;
      p.dtype = dt;
      permute_calls++;
      if (CHECKF(lk_moe_permute(contexts[i][threads], &p) == LK_OK, "%s x%d: status not LK_OK: %s", lk_isa_name(isas[i]),
                 threads, lk_last_error())) {
        int64_t bad = 0, bad_row = -1, bad_column = -1;
        uint32_t got_bits = 0, want_bits = 0;
        for (int64_t row = 0; row < R; row++) {
          const int32_t s = slot_values[row];
          for (int64_t col = 0; col < hidden; col++) {
            const uint32_t got = tensor_bits(dt, out.memory.data, element(&out, row, col));
            const uint32_t want = s < 0 ? 0u : tensor_bits(dt, in.memory.data, element(&in, s / k, col));
            if (got != want && bad++ == 0) {
              bad_row = row;
              bad_column = col;
              got_bits = got;
              want_bits = want;
            }
          }
        }
        CHECKF(bad == 0, "%s x%d: %lld elements differ, first row %lld (slot %d) column %lld: 0x%x, expected 0x%x",
               lk_isa_name(isas[i]), threads, (long long)bad, (long long)bad_row,
               bad_row >= 0 ? slot_values[bad_row] : 0, (long long)bad_column, got_bits, want_bits);
        CHECKF(damaged_gaps(&out) == 0, "%s x%d: %lld gap elements between output rows written", lk_isa_name(isas[i]),
               threads, (long long)damaged_gaps(&out));
      }
      guarded_free(&out.memory);
    }
  guarded_free(&slots);
  guarded_free(&in.memory);
  check_context_pop();
}

static void test_permute(void) {
  static const int64_t hiddens[] = {1, 7, 33, 4096 + 5};
  for (size_t d = 0; d < 3; d++)
    for (size_t h = 0; h < sizeof hiddens / sizeof hiddens[0]; h++)
      for (int layout = 0; layout < 2; layout++)
        for (int source = 0; source < 3; source++) {
          const int64_t hidden = hiddens[h];
          const int64_t input_stride = layout ? hidden + 3 : 0, output_stride = layout ? hidden + 5 : 0;
          rng r = rng_seeded(next_seed());
          if (source == 0) { /* the plan of gating ids over 8 experts, k 2, block 16 (padding rows) */
            const int64_t T = 23, k = 2;
            int32_t ids[23 * 2];
            gating_ids(contexts[0][1], T, 8, k, false, &r, ids, NULL);
            plan p = plan_reference(ids, T, k, 8, 0, 0, 16);
            run_permute_case(dtypes[d], T, k, hidden, input_stride, output_stride, p.sorted, p.total, false);
            plan_free(&p);
          } else if (source == 1) { /* any list: repeats, -1 anywhere; top_k 3 */
            const int64_t T = 17, k = 3, R = 50;
            int32_t slots[50];
            for (int64_t i = 0; i < R; i++) slots[i] = (int32_t)rng_below(&r, (uint32_t)(T * k + 1)) - 1;
            slots[0] = (int32_t)(T * k - 1); /* the last token's last slot */
            slots[R - 1] = 0;
            run_permute_case(dtypes[d], T, k, hidden, input_stride, output_stride, slots, R, false);
          } else { /* top_k 1: an arbitrary gather of token rows */
            const int64_t T = 9, R = 12;
            int32_t slots[12];
            for (int64_t i = 0; i < R; i++) slots[i] = (int32_t)rng_below(&r, (uint32_t)T);
            run_permute_case(dtypes[d], T, 1, hidden, input_stride, output_stride, slots, R, false);
          }
        }
  /* outputs of at least LK_STREAMING_STORE_MIN_BYTES (8 MiB), written with streaming stores where
   * rows start aligned (contiguous) and with plain ones where they do not (the odd stride) */
  for (int big = 0; big < 2; big++)
    for (int layout = 0; layout < 2; layout++) {
      const lk_dtype dt = big ? LK_DTYPE_BF16 : LK_DTYPE_F32;
      const int64_t T = 700, k = 2, R = 1100, hidden = big ? 4096 : 2048;
      rng r = rng_seeded(next_seed());
      int32_t *slots = malloc((size_t)R * sizeof *slots);
      for (int64_t i = 0; i < R; i++) slots[i] = (int32_t)rng_below(&r, (uint32_t)(T * k + 1)) - 1;
      run_permute_case(dt, T, k, hidden, 0, layout ? hidden + 5 : 0, slots, R, false);
      free(slots);
    }
  /* empty batches and plans of padding only (which read no input: NULL is fine) */
  const int32_t padding[4] = {-1, -1, -1, -1};
  for (size_t d = 0; d < 3; d++) {
    run_permute_case(dtypes[d], 5, 2, 33, 0, 0, padding, 0, false);
    run_permute_case(dtypes[d], 0, 2, 33, 0, 0, padding, 0, true);
    run_permute_case(dtypes[d], 0, 2, 33, 0, 40, padding, 4, true);
    run_permute_case(dtypes[d], 5, 8, 7, 9, 0, padding, 4, true);
  }
}

/* ---- combine ------------------------------------------------------------------------------------ */

typedef enum combine_pattern {
  COMBINE_RANDOM,  /* values in [-2, 2], weights in [-1, 1], -1 slots and tokens with none */
  COMBINE_OVERFLOW /* large positive values and weights: the f32 sum or its rounding overflows */
} combine_pattern;

/* |got - exact| may reach: each fma rounds once (at most 2^-24 of the partial sum, which is at most
 * sum |w x|), then the result rounds once to the dtype; plus half a subnormal step. */
static double combine_tolerance(lk_dtype dt, double exact, double magnitude, int64_t terms) {
  const double accumulation = (double)terms * ldexp(1.0, -24) * magnitude;
  const double rounding = dt == LK_DTYPE_F32 ? 0.0 : dt == LK_DTYPE_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8);
  const double tiny = dt == LK_DTYPE_F16 ? ldexp(1.0, -25) : ldexp(1.0, -150);
  return accumulation + rounding * (fabs(exact) + accumulation) + tiny;
}

static uint32_t bits_as(lk_dtype dt, float v) {
  switch (dt) {
  case LK_DTYPE_F16: return f32_to_f16(v);
  case LK_DTYPE_BF16: return f32_to_bf16(v);
  default: return f32_bits(v);
  }
}

typedef struct combine_inputs {
  lk_dtype dt;
  int64_t T, k, R, hidden;
  const strided *expert; /* [R, hidden] at its stride */
  const float *weights;
  const int32_t *slot_rows;
} combine_inputs;

/* Token t, column c: the float64 sum, sum |w x|, the number of terms, and the kernel's definition
 * emulated (fmaf per slot in slot order, from +0). */
static void combine_expected(const combine_inputs *in, int64_t t, int64_t c, double *exact, double *magnitude,
                             int64_t *terms, float *chain) {
  double s = 0.0, m = 0.0;
  float a = 0.0f;
  int64_t n = 0;
  for (int64_t j = 0; j < in->k; j++) {
    const int32_t r = in->slot_rows[t * in->k + j];
    if (r < 0) continue;
    const float w = in->weights[t * in->k + j];
    const float x = tensor_load(in->dt, in->expert->memory.data, element(in->expert, r, c));
    a = fmaf(w, x, a);
    s += (double)w * (double)x;
    m += fabs((double)w * (double)x);
    n++;
  }
  *exact = s;
  *magnitude = m;
  *terms = n;
  *chain = a;
}

static int dtype_index(lk_dtype dt) { return dt == LK_DTYPE_F32 ? 0 : dt == LK_DTYPE_F16 ? 1 : 2; }

static void run_combine_case(lk_dtype dt, int64_t T, int64_t k, int64_t R, int64_t hidden, int64_t expert_stride,
                             int64_t output_stride, combine_pattern pattern) {
  const uint64_t seed = next_seed();
  check_context_push("combine %s: tokens %lld k %lld rows %lld hidden %lld expert_stride %lld output_stride %lld "
                     "pattern %d, seed 0x%llx",
                     dtype_label(dt), (long long)T, (long long)k, (long long)R, (long long)hidden, (long long)expert_stride,
                     (long long)output_stride, (int)pattern, (unsigned long long)seed);
  rng r = rng_seeded(seed);
  const int64_t e_stride = effective_stride(expert_stride, hidden), o_stride = effective_stride(output_stride, hidden);
  /* expert rows: values in the rows, the gaps keep their NaN poison (a kernel reading them shows) */
  strided expert = strided_alloc(dt, R, hidden, e_stride, GUARD_EDGE_END);
  for (int64_t row = 0; row < R; row++)
    for (int64_t c = 0; c < hidden; c++) {
      float v = pattern == COMBINE_OVERFLOW ? (dt == LK_DTYPE_F16   ? rng_uniform(&r, 1000.0f, 60000.0f)
                                               : dt == LK_DTYPE_BF16 ? rng_uniform(&r, 1e37f, 3e38f)
                                                                     : rng_uniform(&r, 1e37f, 3e38f))
                                            : rng_uniform(&r, -2.0f, 2.0f);
      tensor_store(dt, expert.memory.data, element(&expert, row, c), v);
    }
  guarded_make_read_only(&expert.memory);
  guarded_buffer wb = guarded_alloc_or_exit((size_t)(T * k) * sizeof(float), GUARD_EDGE_END);
  guarded_buffer sb = guarded_alloc_or_exit((size_t)(T * k) * sizeof(int32_t), GUARD_EDGE_END);
  float *weights = wb.data;
  int32_t *slot_rows = sb.data;
  for (int64_t t = 0; t < T; t++) {
    const bool none = t % 5 == 2; /* a token routed entirely elsewhere */
    for (int64_t j = 0; j < k; j++) {
      const int64_t s = t * k + j;
      const bool here = R > 0 && !none && rng_below(&r, 4) != 0;
      slot_rows[s] = here ? (int32_t)rng_below(&r, (uint32_t)R) : -1;
      if (here && j == 0 && t % 3 == 0) slot_rows[s] = (int32_t)(R - 1); /* the last row */
      weights[s] = !here ? f32_from_bits(0x7FC0DEADu) /* NaN: a skipped slot must not be read */
                   : pattern == COMBINE_OVERFLOW ? rng_uniform(&r, 0.5f, 2.0f)
                                                 : rng_uniform(&r, -1.0f, 1.0f);
    }
  }
  guarded_make_read_only(&wb);
  guarded_make_read_only(&sb);
  const combine_inputs in = {dt, T, k, R, hidden, &expert, weights, slot_rows};

  strided outs[3][GRID_MAX_THREADS + 1];
  bool ran[3][GRID_MAX_THREADS + 1] = {{false}};
  for (int i = 0; i < isa_count; i++)
    for (int threads = 1; threads <= GRID_MAX_THREADS; threads++) {
      outs[i][threads] = strided_alloc(dt, T, hidden, o_stride, threads == 3 ? GUARD_EDGE_START : GUARD_EDGE_END);
      lk_moe_combine_params p;
      memset(&p, 0, sizeof p);
      p.expert_output = expert.memory.data;
      p.weights = weights;
      p.slot_rows = slot_rows;
      p.output = outs[i][threads].memory.data;
      p.num_tokens = T;
      p.top_k = k;
      p.num_rows = R;
      p.hidden = hidden;
      p.expert_stride = expert_stride;
      p.output_stride = output_stride;
      p.dtype = dt;
      combine_calls++;
      ran[i][threads] = CHECKF(lk_moe_combine(contexts[i][threads], &p) == LK_OK, "%s x%d: status not LK_OK: %s",
                               lk_isa_name(isas[i]), threads, lk_last_error());
      CHECKF(damaged_gaps(&outs[i][threads]) == 0, "%s x%d: %lld gap elements between output rows written",
             lk_isa_name(isas[i]), threads, (long long)damaged_gaps(&outs[i][threads]));
    }

  /* scalar, one thread: against float64 and against the emulated definition */
  if (ran[0][1]) {
    const strided *out = &outs[0][1];
    int64_t bad = 0, bad_t = -1, bad_c = -1, inexact = 0, in_t = -1, in_c = -1;
    double bad_got = 0, bad_want = 0, bad_tol = 0;
    uint32_t in_got = 0, in_want = 0;
    double *worst = &worst_ratio[dtype_index(dt)];
    for (int64_t t = 0; t < T; t++)
      for (int64_t c = 0; c < hidden; c++) {
        double exact, magnitude;
        int64_t terms;
        float chain;
        combine_expected(&in, t, c, &exact, &magnitude, &terms, &chain);
        const int64_t at = element(out, t, c);
        const uint32_t got_bits = tensor_bits(dt, out->memory.data, at);
        if (got_bits != bits_as(dt, chain) && inexact++ == 0) {
          in_t = t;
          in_c = c;
          in_got = got_bits;
          in_want = bits_as(dt, chain);
        }
        if (pattern == COMBINE_OVERFLOW) continue; /* the float64 sum does not overflow */
        const double got = tensor_load(dt, out->memory.data, at), tol = combine_tolerance(dt, exact, magnitude, terms);
        const double err = fabs(got - exact);
        if (tol > 0 && err / tol > *worst) *worst = err / tol;
        if (!(err <= tol) && bad++ == 0) {
          bad_t = t;
          bad_c = c;
          bad_got = got;
          bad_want = exact;
          bad_tol = tol;
        }
      }
    CHECKF(bad == 0, "%lld elements off float64, first token %lld column %lld: %.9g, expected %.9g within %.3g",
           (long long)bad, (long long)bad_t, (long long)bad_c, bad_got, bad_want, bad_tol);
    CHECKF(inexact == 0,
           "%lld elements differ from fmaf per slot in slot order rounded once, first token %lld column %lld: 0x%x, "
           "expected 0x%x",
           (long long)inexact, (long long)in_t, (long long)in_c, in_got, in_want);
  }
  /* every ISA and thread count: the same bits */
  for (int i = 0; i < isa_count; i++)
    for (int threads = 1; threads <= GRID_MAX_THREADS; threads++) {
      if ((i == 0 && threads == 1) || !ran[i][threads] || !ran[0][1]) continue;
      int64_t row = -1, col = -1;
      const int64_t n = differing_elements(&outs[i][threads], &outs[0][1], &row, &col);
      CHECKF(n == 0, "%s x%d differs from scalar x1 in %lld elements, first token %lld column %lld: 0x%x vs 0x%x",
             lk_isa_name(isas[i]), threads, (long long)n, (long long)row, (long long)col,
             n ? tensor_bits(dt, outs[i][threads].memory.data, element(&outs[i][threads], row, col)) : 0u,
             n ? tensor_bits(dt, outs[0][1].memory.data, element(&outs[0][1], row, col)) : 0u);
    }
  /* the tokens with no slot here are +0 (also implied by the emulation; said on its own) */
  if (ran[0][1]) {
    int64_t nonzero = 0;
    for (int64_t t = 0; t < T; t++) {
      bool any = false;
      for (int64_t j = 0; j < k; j++) any |= slot_rows[t * k + j] >= 0;
      if (!any)
        for (int64_t c = 0; c < hidden; c++) nonzero += tensor_bits(dt, outs[0][1].memory.data, element(&outs[0][1], t, c)) != 0;
    }
    CHECKF(nonzero == 0, "%lld elements of tokens without a slot here are not +0", (long long)nonzero);
  }
  for (int i = 0; i < isa_count; i++)
    for (int threads = 1; threads <= GRID_MAX_THREADS; threads++) guarded_free(&outs[i][threads].memory);
  guarded_free(&sb);
  guarded_free(&wb);
  guarded_free(&expert.memory);
  check_context_pop();
}

static void test_combine(void) {
  static const int64_t hiddens[] = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 4096 + 3};
  static const int64_t ks[] = {1, 2, 8, 32};
  for (size_t d = 0; d < 3; d++)
    for (size_t h = 0; h < sizeof hiddens / sizeof hiddens[0]; h++)
      for (size_t kk = 0; kk < sizeof ks / sizeof ks[0]; kk++)
        for (int layout = 0; layout < 2; layout++) {
          const int64_t hidden = hiddens[h], k = ks[kk];
          const int64_t T = hidden > 1000 ? (k > 8 ? 5 : 19) : 37;
          const int64_t R = T * k / 2 + 1;
          run_combine_case(dtypes[d], T, k, R, hidden, layout ? hidden + 3 : 0, layout ? hidden + 5 : 0, COMBINE_RANDOM);
        }
  /* outputs of at least 8 MiB: streaming stores where rows start aligned, plain where they do not */
  run_combine_case(LK_DTYPE_F32, 1100, 2, 1500, 2048, 0, 0, COMBINE_RANDOM);
  run_combine_case(LK_DTYPE_BF16, 1100, 2, 1500, 4096, 0, 4096 + 5, COMBINE_RANDOM);
  run_combine_case(LK_DTYPE_BF16, 1100, 2, 1500, 4096, 0, 0, COMBINE_RANDOM);
  for (size_t d = 0; d < 3; d++) {
    run_combine_case(dtypes[d], 11, 4, 20, 65, 0, 0, COMBINE_OVERFLOW);
    /* empty batches; rows that no slot reads */
    run_combine_case(dtypes[d], 0, 8, 0, 17, 0, 0, COMBINE_RANDOM);
    run_combine_case(dtypes[d], 0, 8, 5, 17, 20, 19, COMBINE_RANDOM);
    run_combine_case(dtypes[d], 6, 3, 0, 17, 0, 0, COMBINE_RANDOM); /* every slot -1: zeros */
  }
}

/* ---- the round trip ------------------------------------------------------------------------------ */

/* One process's share: the plan of experts [begin, end), the permuted token rows, then each expert's
 * "transform" (its rows times (expert + 1), or identity), in dtype. */
typedef struct stage {
  int64_t total;
  int32_t *slot_rows; /* [T * k] */
  void *rows;         /* [total, hidden] */
} stage;

static bool run_stage(lk_cpu_context *context, const int32_t *ids, int64_t T, int64_t k, int64_t E, int64_t begin,
                      int64_t end, int64_t block, const void *x, int64_t hidden, lk_dtype dt, bool scale, stage *out) {
  const int64_t local = resolved_end(E, begin, end) - begin, slots = T * k;
  const int64_t worst = slots + local * (block > 1 ? block - 1 : 0), nb = block > 1 ? worst / block : 0;
  int32_t *counts = malloc((size_t)local * sizeof(int32_t)), *offsets = malloc((size_t)(local + 1) * sizeof(int32_t));
  int32_t *sorted = malloc((size_t)(worst + 1) * sizeof(int32_t)), *block_experts = malloc((size_t)(nb + 1) * sizeof(int32_t));
  out->slot_rows = malloc((size_t)(slots + 1) * sizeof(int32_t));
  out->rows = NULL;
  out->total = 0;
  lk_moe_routing_params rp;
  memset(&rp, 0, sizeof rp);
  rp.expert_ids = ids;
  rp.num_tokens = T;
  rp.top_k = k;
  rp.num_experts = E;
  rp.expert_begin = begin;
  rp.expert_end = end;
  rp.block_size = block;
  rp.expert_counts = counts;
  rp.expert_offsets = offsets;
  rp.sorted_slots = sorted;
  rp.sorted_capacity = worst;
  rp.slot_rows = out->slot_rows;
  rp.block_experts = block > 1 ? block_experts : NULL;
  routing_calls++;
  bool ok = CHECKF(lk_moe_routing(context, &rp) == LK_OK, "routing: %s", lk_last_error());
  if (ok) {
    const int64_t total = out->total = offsets[local];
    const size_t size = dtype_size(dt);
    out->rows = malloc((size_t)(total * hidden + 1) * size);
    tensor_poison(dt, out->rows, total * hidden);
    lk_moe_permute_params pp;
    memset(&pp, 0, sizeof pp);
    pp.input = x;
    pp.output = out->rows;
    pp.sorted_slots = sorted;
    pp.num_tokens = T;
    pp.top_k = k;
    pp.num_rows = total;
    pp.hidden = hidden;
    pp.dtype = dt;
    permute_calls++;
    ok = CHECKF(lk_moe_permute(context, &pp) == LK_OK, "permute: %s", lk_last_error());
    int64_t wrong_rows = 0, wrong_blocks = 0;
    for (int64_t e = 0; ok && e < local; e++) {
      const float factor = scale ? (float)(begin + e + 1) : 1.0f;
      for (int64_t r = offsets[e]; r < offsets[e + 1]; r++) {
        if (block > 1 && block_experts[r / block] != begin + e) wrong_blocks++;
        const int32_t s = sorted[r];
        for (int64_t c = 0; c < hidden; c++) {
          const uint32_t want = s < 0 ? 0u : tensor_bits(dt, x, (s / k) * hidden + c);
          if (tensor_bits(dt, out->rows, r * hidden + c) != want) {
            wrong_rows++;
            break;
          }
        }
        for (int64_t c = 0; c < hidden; c++)
          tensor_store(dt, out->rows, r * hidden + c, tensor_load(dt, out->rows, r * hidden + c) * factor);
      }
    }
    CHECKF(wrong_rows == 0, "permute: %lld rows are not their token's row (or zeros for padding)", (long long)wrong_rows);
    CHECKF(wrong_blocks == 0, "block_experts: %lld rows' blocks name another expert than their segment's", (long long)wrong_blocks);
  }
  free(counts);
  free(offsets);
  free(sorted);
  free(block_experts);
  return ok;
}

static void stage_free(stage *s) {
  free(s->slot_rows);
  free(s->rows);
}

static bool combine_into(lk_cpu_context *context, const stage *s, const float *weights, int64_t T, int64_t k,
                         int64_t hidden, lk_dtype dt, void *output) {
  lk_moe_combine_params p;
  memset(&p, 0, sizeof p);
  p.expert_output = s->rows;
  p.weights = weights;
  p.slot_rows = s->slot_rows;
  p.output = output;
  p.num_tokens = T;
  p.top_k = k;
  p.num_rows = s->total;
  p.hidden = hidden;
  p.dtype = dt;
  combine_calls++;
  return CHECKF(lk_moe_combine(context, &p) == LK_OK, "combine: %s", lk_last_error());
}

static void run_round_trip(int64_t E, int64_t k, int64_t T, int64_t hidden, lk_dtype dt, int64_t block, bool scale) {
  const uint64_t seed = next_seed();
  lk_cpu_context *context = contexts[case_counter % (uint64_t)isa_count][1 + case_counter % GRID_MAX_THREADS];
  check_context_push("round trip %s: experts %lld k %lld tokens %lld hidden %lld block_size %lld, experts %s, seed 0x%llx",
                     dtype_label(dt), (long long)E, (long long)k, (long long)T, (long long)hidden, (long long)block,
                     scale ? "multiply by (expert + 1)" : "identity", (unsigned long long)seed);
  rng r = rng_seeded(seed);
  const size_t size = dtype_size(dt);
  int32_t *ids = malloc((size_t)(T * k + 1) * sizeof(int32_t));
  float *gate_w = malloc((size_t)(T * k + 1) * sizeof(float)), *mean_w = malloc((size_t)(T * k + 1) * sizeof(float));
  gating_ids(context, T, E, k, (seed & 1) != 0, &r, ids, gate_w);
  for (int64_t s = 0; s < T * k; s++) mean_w[s] = 1.0f / (float)k;
  void *x = malloc((size_t)(T * hidden + 1) * size);
  for (int64_t i = 0; i < T * hidden; i++) tensor_store(dt, x, i, rng_uniform(&r, -1.0f, 1.0f));
  void *out = malloc((size_t)(T * hidden + 1) * size);
  const double rounding = dt == LK_DTYPE_F32 ? ldexp(1.0, -24) : dt == LK_DTYPE_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8);

  stage full;
  if (run_stage(context, ids, T, k, E, 0, 0, block, x, hidden, dt, scale, &full)) {
    for (int mode = 0; mode < 2; mode++) { /* weights 1/k: the mean; then the gating weights */
      const float *w = mode == 0 ? mean_w : gate_w;
      tensor_poison(dt, out, T * hidden);
      if (!combine_into(context, &full, w, T, k, hidden, dt, out)) continue;
      int64_t bad = 0, bad_t = -1, bad_c = -1, not_input = 0;
      double bad_got = 0, bad_want = 0;
      for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < hidden; c++) {
          const double xv = tensor_load(dt, x, t * hidden + c);
          double exact = 0.0, magnitude = 0.0;
          for (int64_t j = 0; j < k; j++) {
            const double term = (double)w[t * k + j] * (scale ? (double)(ids[t * k + j] + 1) : 1.0) * xv;
            exact += term;
            magnitude += fabs(term);
          }
          /* the transform rounds each term once to dtype, the combine as combine_tolerance says */
          const double tol = combine_tolerance(dt, exact, magnitude, k) + (scale ? rounding * magnitude : 0.0);
          const double got = tensor_load(dt, out, t * hidden + c);
          if (!(fabs(got - exact) <= tol) && bad++ == 0) {
            bad_t = t;
            bad_c = c;
            bad_got = got;
            bad_want = exact;
          }
          if (mode == 0 && !scale && (k & (k - 1)) == 0 && tensor_bits(dt, out, t * hidden + c) != tensor_bits(dt, x, t * hidden + c))
            not_input += dt != LK_DTYPE_F32 || k == 1;
        }
      CHECKF(bad == 0, "%s: %lld elements off, first token %lld column %lld: %.9g, expected %.9g", mode ? "gating weights" : "weights 1/k",
             (long long)bad, (long long)bad_t, (long long)bad_c, bad_got, bad_want);
      /* identity experts and k a power of two: x / k summed k times is exact in f32 for 16-bit x (and for k 1) */
      CHECKF(not_input == 0, "identity experts, weights 1/k: %lld elements differ from the input", (long long)not_input);
    }

    /* expert parallelism: two processes with half the experts each; their f32 outputs add up to
     * the full combine (exactly for a token whose slots all fall in one half) */
    if (dt == LK_DTYPE_F32 && E >= 2) {
      stage half[2];
      float *parts[2] = {malloc((size_t)(T * hidden + 1) * sizeof(float)), malloc((size_t)(T * hidden + 1) * sizeof(float))};
      bool ok = true;
      for (int h = 0; h < 2; h++) {
        ok &= run_stage(context, ids, T, k, E, h ? E / 2 : 0, h ? E : E / 2, block, x, hidden, dt, scale, &half[h]);
        tensor_poison(LK_DTYPE_F32, parts[h], T * hidden);
        if (ok) ok &= combine_into(context, &half[h], gate_w, T, k, hidden, dt, parts[h]);
      }
      tensor_poison(dt, out, T * hidden);
      ok = ok && combine_into(context, &full, gate_w, T, k, hidden, dt, out);
      if (ok) {
        int64_t bad = 0, inexact = 0, one_sided = 0;
        for (int64_t t = 0; t < T; t++) {
          int64_t in_first = 0;
          double magnitude_w = 0.0;
          for (int64_t j = 0; j < k; j++) {
            in_first += ids[t * k + j] < E / 2;
            magnitude_w += fabs((double)gate_w[t * k + j]) * (scale ? (double)(ids[t * k + j] + 1) : 1.0);
          }
          const bool all_one_side = in_first == 0 || in_first == k;
          one_sided += all_one_side;
          for (int64_t c = 0; c < hidden; c++) {
            const float a = parts[0][t * hidden + c], b = parts[1][t * hidden + c], f = ((float *)out)[t * hidden + c];
            const float sum = a + b;
            const double magnitude = magnitude_w * fabs((double)((float *)x)[t * hidden + c]);
            if (!(fabs((double)sum - (double)f) <= (2.0 * (double)k + 1.0) * ldexp(1.0, -24) * magnitude + ldexp(1.0, -149)))
              bad++;
            if (all_one_side && f32_bits(sum) != f32_bits(f)) inexact++;
          }
        }
        CHECKF(bad == 0, "expert-parallel halves: %lld elements of the summed combines are off the full combine", (long long)bad);
        CHECKF(inexact == 0, "expert-parallel halves: %lld elements of tokens routed to one half differ from the full combine",
               (long long)inexact);
        (void)one_sided;
      }
      for (int h = 0; h < 2; h++) {
        stage_free(&half[h]);
        free(parts[h]);
      }
    }
  }
  stage_free(&full);
  free(out);
  free(x);
  free(ids);
  free(gate_w);
  free(mean_w);
  check_context_pop();
}

static void test_round_trip(void) {
  static const struct {
    int64_t E, k;
  } shapes[] = {{8, 1}, {8, 2}, {60, 4}, {64, 8}, {256, 8}, {384, 8}};
  static const int64_t token_counts[] = {0, 1, 33};
  static const int64_t hiddens[] = {64, 129};
  static const int64_t blocks[] = {0, 16};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (size_t n = 0; n < sizeof token_counts / sizeof token_counts[0]; n++)
      for (size_t h = 0; h < sizeof hiddens / sizeof hiddens[0]; h++)
        for (size_t d = 0; d < 3; d++)
          for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
            for (int scale = 0; scale < 2; scale++)
              run_round_trip(shapes[s].E, shapes[s].k, token_counts[n], hiddens[h], dtypes[d], blocks[b], scale != 0);
}

/* ---- the argument contract ------------------------------------------------------------------------ */

/* Refused with LK_ERR_INVALID_ARGUMENT and a message that starts with one of `names`, and none of
 * the `bytes` bytes at `buffers` (every input and output of the call) changed. */
static void expect_rejected(lk_status status, const void *buffers, const void *before, size_t bytes, const char *names,
                            const char *what) {
  check_context_push("%s", what);
  char message[512];
  const char *last = lk_last_error();
  snprintf(message, sizeof message, "%s", last ? last : "");
  if (CHECK_INVALID(status, names))
    CHECKF(message_starts_with_name(message, names), "the message \"%s\" does not start with '%s'", message, names);
  CHECKF(memcmp(before, buffers, bytes) == 0, "a refused call wrote to its buffers");
  check_context_pop();
}

static void expect_ok(lk_status status, const char *what) {
  check_context_push("%s", what);
  CHECKF(status == LK_OK, "status %s: %s", lk_status_name(status), lk_last_error());
  check_context_pop();
}

enum { RA_T = 6, RA_K = 2, RA_E = 8, RA_BEGIN = 2, RA_END = 6, RA_BLOCK = 16 };
#define RA_WORST (RA_T * RA_K + (RA_END - RA_BEGIN) * (RA_BLOCK - 1))

typedef struct routing_buffers {
  int32_t ids[RA_T * RA_K];
  int32_t counts[RA_E];
  int32_t offsets[RA_E + 1];
  int32_t sorted[RA_T * RA_K + RA_E * (RA_BLOCK - 1) + 8];
  int32_t slot_rows[RA_T * RA_K];
  int32_t block_experts[RA_T * RA_K + RA_E * (RA_BLOCK - 1) + 8];
} routing_buffers;

static void routing_poison(routing_buffers *b) {
  fill_i32(b->counts, RA_E, SENTINEL);
  fill_i32(b->offsets, RA_E + 1, SENTINEL);
  fill_i32(b->sorted, (int64_t)(sizeof b->sorted / sizeof b->sorted[0]), SENTINEL);
  fill_i32(b->slot_rows, RA_T * RA_K, SENTINEL);
  fill_i32(b->block_experts, (int64_t)(sizeof b->block_experts / sizeof b->block_experts[0]), SENTINEL);
}

static routing_buffers routing_b, routing_before;

static void routing_rejected(lk_cpu_context *context, const lk_moe_routing_params *p, const char *names, const char *what) {
  routing_poison(&routing_b);
  routing_before = routing_b;
  expect_rejected(lk_moe_routing(context, p), &routing_b, &routing_before, sizeof routing_b, names, what);
}

static void test_routing_arguments(void) {
  routing_buffers *b = &routing_b;
  rng r = rng_seeded(base_seed ^ 0x4A5u);
  for (int t = 0; t < RA_T; t++) { /* distinct per token */
    b->ids[t * RA_K] = (int32_t)rng_below(&r, RA_E);
    b->ids[t * RA_K + 1] = (b->ids[t * RA_K] + 1 + (int32_t)rng_below(&r, RA_E - 1)) % RA_E;
  }
  lk_moe_routing_params good;
  memset(&good, 0, sizeof good);
  good.expert_ids = b->ids;
  good.num_tokens = RA_T;
  good.top_k = RA_K;
  good.num_experts = RA_E;
  good.expert_begin = RA_BEGIN;
  good.expert_end = RA_END;
  good.block_size = RA_BLOCK;
  good.expert_counts = b->counts;
  good.expert_offsets = b->offsets;
  good.sorted_slots = b->sorted;
  good.sorted_capacity = RA_WORST;
  good.slot_rows = b->slot_rows;
  good.block_experts = b->block_experts;

  for (int i = 0; i < isa_count; i++) {
    lk_cpu_context *context = contexts[i][1 + i % GRID_MAX_THREADS];
    check_context_push("routing arguments, isa %s", lk_isa_name(isas[i]));
    lk_moe_routing_params p = good;
    expect_ok(lk_moe_routing(context, &p), "the valid call");
    p.expert_begin = 0; p.expert_end = 0; p.block_size = 0; p.sorted_capacity = RA_T * RA_K;
    expect_ok(lk_moe_routing(context, &p), "(0, 0): all experts, no padding, capacity exactly the slots");
    p.slot_rows = NULL; p.block_experts = NULL;
    expect_ok(lk_moe_routing(context, &p), "optional outputs NULL");
    p = good; p.expert_begin = RA_E - 1; p.expert_end = RA_E; p.sorted_capacity = RA_T * RA_K + RA_BLOCK - 1;
    expect_ok(lk_moe_routing(context, &p), "the last expert only");
    p = good; p.expert_begin = 0; p.expert_end = 1; p.sorted_capacity = RA_T * RA_K + RA_BLOCK - 1;
    expect_ok(lk_moe_routing(context, &p), "the first expert only");
    p = good; p.expert_counts = b->sorted + RA_WORST; /* adjacent, not overlapping */
    expect_ok(lk_moe_routing(context, &p), "expert_counts right after sorted_slots' capacity");
    p = good; p.num_tokens = 0; p.expert_ids = NULL; p.block_size = 0; p.sorted_capacity = 0; p.sorted_slots = NULL;
    p.slot_rows = NULL;
    routing_poison(b);
    expect_ok(lk_moe_routing(context, &p), "num_tokens 0, no padding: NULL ids and sorted_slots");
    CHECKF(first_not(b->counts, 0, RA_END - RA_BEGIN, 0) < 0 && first_not(b->offsets, 0, RA_END - RA_BEGIN + 1, 0) < 0,
           "num_tokens 0: counts and offsets not all 0");
    p = good; p.num_tokens = 0;
    routing_poison(b);
    expect_ok(lk_moe_routing(context, &p), "num_tokens 0 with block padding");
    CHECKF(first_not(b->counts, 0, RA_END - RA_BEGIN, 0) < 0 && first_not(b->offsets, 0, RA_END - RA_BEGIN + 1, 0) < 0,
           "num_tokens 0 with padding: counts and offsets not all 0");
    CHECKF(first_not(b->sorted, 0, RA_WORST, SENTINEL) < 0 && first_not(b->block_experts, 0, RA_WORST, SENTINEL) < 0,
           "num_tokens 0: rows or blocks written");

    routing_rejected(NULL, &good, "context", "context NULL");
    routing_rejected(context, NULL, "params", "params NULL");
    static const int32_t bad_ids[] = {-1, RA_E, RA_E + 1, 1000000, INT32_MIN, INT32_MAX};
    for (size_t j = 0; j < sizeof bad_ids / sizeof bad_ids[0]; j++)
      for (int at = 0; at < 2; at++) {
        const int index = at ? RA_T * RA_K - 1 : 0;
        const int32_t saved = b->ids[index];
        b->ids[index] = bad_ids[j];
        char what[96];
        snprintf(what, sizeof what, "expert_ids[%d] = %d", index, (int)bad_ids[j]);
        p = good;
        routing_rejected(context, &p, "expert_ids", what);
        p.expert_begin = 0; p.expert_end = 0; p.block_size = 0;
        routing_rejected(context, &p, "expert_ids", "the same, all experts, no padding");
        b->ids[index] = saved;
      }
    { /* an id of a non-local expert that is still out of range: refused all the same */
      const int32_t saved = b->ids[3];
      b->ids[3] = RA_E;
      p = good; p.expert_begin = 0; p.expert_end = 1;
      routing_rejected(context, &p, "expert_ids", "an out-of-range id with only expert 0 local");
      b->ids[3] = saved;
    }
    p = good; p.top_k = 0;
    routing_rejected(context, &p, "top_k", "top_k 0");
    p = good; p.top_k = -2;
    routing_rejected(context, &p, "top_k", "top_k -2");
    p = good; p.num_experts = 0; p.expert_begin = 0; p.expert_end = 0;
    routing_rejected(context, &p, "num_experts", "num_experts 0");
    p = good; p.num_experts = -8;
    routing_rejected(context, &p, "num_experts", "num_experts -8");
    p = good; p.num_experts = (int64_t)INT32_MAX + 1;
    routing_rejected(context, &p, "num_experts", "num_experts 2^31");
    p = good; p.num_tokens = -1;
    routing_rejected(context, &p, "num_tokens", "num_tokens -1");
    p = good; p.num_tokens = (int64_t)1 << 40;
    routing_rejected(context, &p, "num_tokens", "num_tokens x top_k beyond int32");
    p = good; p.expert_begin = -1;
    routing_rejected(context, &p, "expert_begin", "expert_begin -1");
    p = good; p.expert_begin = RA_E; p.expert_end = RA_E;
    routing_rejected(context, &p, "expert_begin|expert_end", "expert_begin == num_experts");
    p = good; p.expert_begin = RA_E + 3; p.expert_end = RA_E + 4;
    routing_rejected(context, &p, "expert_begin|expert_end", "expert range past num_experts");
    p = good; p.expert_end = RA_E + 1;
    routing_rejected(context, &p, "expert_end", "expert_end > num_experts");
    p = good; p.expert_begin = 5; p.expert_end = 3;
    routing_rejected(context, &p, "expert_begin|expert_end", "reversed range");
    p = good; p.expert_begin = 4; p.expert_end = 4;
    routing_rejected(context, &p, "expert_begin|expert_end", "empty range (4, 4)");
    p = good; p.expert_begin = 3; p.expert_end = 0;
    routing_rejected(context, &p, "expert_begin|expert_end", "expert_end 0 with expert_begin 3");
    p = good; p.expert_begin = 0; p.expert_end = -1;
    routing_rejected(context, &p, "expert_begin|expert_end", "expert_end -1");
    p = good; p.block_size = -1;
    routing_rejected(context, &p, "block_size", "block_size -1");
    p = good; p.block_size = (int64_t)1 << 40;
    routing_rejected(context, &p, "block_size|sorted_capacity", "block_size beyond int32");
    p = good; p.sorted_capacity = RA_WORST - 1;
    routing_rejected(context, &p, "sorted_capacity", "sorted_capacity one less than the worst case (block 16, 4 experts)");
    p = good; p.block_size = 0; p.sorted_capacity = RA_T * RA_K - 1;
    routing_rejected(context, &p, "sorted_capacity", "sorted_capacity one less than the slots (no padding)");
    p = good; p.expert_begin = 0; p.expert_end = 0; p.block_size = 3; p.sorted_capacity = RA_T * RA_K + RA_E * 2 - 1;
    routing_rejected(context, &p, "sorted_capacity", "sorted_capacity one less than the worst case (block 3, all)");
    p = good; p.sorted_capacity = -1;
    routing_rejected(context, &p, "sorted_capacity", "sorted_capacity -1");
    p = good; p.expert_counts = NULL;
    routing_rejected(context, &p, "expert_counts", "expert_counts NULL");
    p = good; p.expert_offsets = NULL;
    routing_rejected(context, &p, "expert_offsets", "expert_offsets NULL");
    p = good; p.sorted_slots = NULL;
    routing_rejected(context, &p, "sorted_slots", "sorted_slots NULL");
    p = good; p.expert_ids = NULL;
    routing_rejected(context, &p, "expert_ids", "expert_ids NULL");
    p = good; p.expert_counts = b->sorted + 3;
    routing_rejected(context, &p, "expert_counts|sorted_slots", "expert_counts inside sorted_slots");
    p = good; p.expert_offsets = b->counts + 2;
    routing_rejected(context, &p, "expert_offsets|expert_counts", "expert_offsets overlapping expert_counts");
    p = good; p.slot_rows = b->sorted + RA_WORST - 1;
    routing_rejected(context, &p, "slot_rows|sorted_slots", "slot_rows overlapping sorted_slots' last element");
    p = good; p.block_experts = b->offsets + 1;
    routing_rejected(context, &p, "block_experts|expert_offsets", "block_experts overlapping expert_offsets");
    p = good; p.sorted_slots = b->ids + 4;
    routing_rejected(context, &p, "sorted_slots|expert_ids", "sorted_slots overlapping expert_ids");
    p = good; p.slot_rows = b->ids;
    routing_rejected(context, &p, "slot_rows|expert_ids", "slot_rows == expert_ids");
    p = good; p.expert_counts = b->ids + RA_T * RA_K - 1;
    routing_rejected(context, &p, "expert_counts|expert_ids", "expert_counts overlapping expert_ids' last element");
    check_context_pop();
  }
}

enum { PA_T = 4, PA_K = 2, PA_H = 8, PA_R = 12 };

typedef struct permute_buffers {
  float input[PA_T * PA_H * 4];
  float output[PA_R * PA_H * 4];
  int32_t slots[PA_R];
} permute_buffers;

static permute_buffers permute_b, permute_before;

static void permute_rejected(lk_cpu_context *context, const lk_moe_permute_params *p, const char *names, const char *what) {
  tensor_poison(LK_DTYPE_F32, permute_b.output, PA_R * PA_H * 4);
  permute_before = permute_b;
  expect_rejected(lk_moe_permute(context, p), &permute_b, &permute_before, sizeof permute_b, names, what);
}

static void test_permute_arguments(void) {
  permute_buffers *b = &permute_b;
  rng r = rng_seeded(base_seed ^ 0x9E7u);
  for (int i = 0; i < PA_T * PA_H * 4; i++) b->input[i] = rng_uniform(&r, -1.0f, 1.0f);
  for (int i = 0; i < PA_R; i++) b->slots[i] = (int32_t)rng_below(&r, PA_T * PA_K + 1) - 1;
  b->slots[0] = 1; /* the first row reads the input (one-row cases below need that) */
  b->slots[2] = -1;
  b->slots[3] = 0;
  lk_moe_permute_params good;
  memset(&good, 0, sizeof good);
  good.input = b->input;
  good.output = b->output;
  good.sorted_slots = b->slots;
  good.num_tokens = PA_T;
  good.top_k = PA_K;
  good.num_rows = PA_R;
  good.hidden = PA_H;
  good.dtype = LK_DTYPE_F32;

  for (int i = 0; i < isa_count; i++) {
    lk_cpu_context *context = contexts[i][1 + i % GRID_MAX_THREADS];
    check_context_push("permute arguments, isa %s", lk_isa_name(isas[i]));
    lk_moe_permute_params p = good;
    expect_ok(lk_moe_permute(context, &p), "the valid call");
    for (int d = 0; d < 3; d++) {
      p = good; p.dtype = dtypes[d]; p.input_stride = 3 * PA_H; p.output_stride = 2 * PA_H;
      expect_ok(lk_moe_permute(context, &p), "every dtype, strided");
    }
    p = good; p.input_stride = PA_H; p.output_stride = PA_H;
    expect_ok(lk_moe_permute(context, &p), "strides == hidden");
    p = good; p.output = b->input + PA_T * PA_H; /* right after the input rows: adjacent */
    p.num_rows = 2;
    expect_ok(lk_moe_permute(context, &p), "output right after the input");
    p = good; p.num_rows = 0; p.input = NULL; p.output = NULL; p.sorted_slots = NULL;
    expect_ok(lk_moe_permute(context, &p), "num_rows 0, NULL buffers");
    p = good; p.num_tokens = 0; p.num_rows = 0; p.input = NULL; p.output = NULL; p.sorted_slots = NULL;
    expect_ok(lk_moe_permute(context, &p), "an empty batch");

    permute_rejected(NULL, &good, "context", "context NULL");
    permute_rejected(context, NULL, "params", "params NULL");
    static const int32_t bad_slots[] = {-2, PA_T * PA_K, PA_T * PA_K + 1, INT32_MIN, INT32_MAX};
    for (size_t j = 0; j < sizeof bad_slots / sizeof bad_slots[0]; j++)
      for (int at = 0; at < 2; at++) {
        const int index = at ? PA_R - 1 : 0;
        const int32_t saved = b->slots[index];
        b->slots[index] = bad_slots[j];
        char what[96];
        snprintf(what, sizeof what, "sorted_slots[%d] = %d", index, (int)bad_slots[j]);
        p = good;
        permute_rejected(context, &p, "sorted_slots", what);
        b->slots[index] = saved;
      }
    {
      const int32_t saved = b->slots[5];
      b->slots[5] = PA_T * PA_K - 1;
      p = good; p.top_k = 1; /* the same list with k 1: slots up to num_tokens - 1 only */
      permute_rejected(context, &p, "sorted_slots", "a slot valid for k 2 but not for k 1");
      p = good; p.num_tokens = PA_T - 1;
      permute_rejected(context, &p, "sorted_slots", "a slot of a token past num_tokens");
      b->slots[5] = saved;
    }
    p = good; p.input_stride = PA_H - 1;
    permute_rejected(context, &p, "input_stride", "input_stride < hidden");
    p = good; p.input_stride = -PA_H;
    permute_rejected(context, &p, "input_stride", "input_stride negative");
    p = good; p.output_stride = PA_H - 1;
    permute_rejected(context, &p, "output_stride", "output_stride < hidden");
    p = good; p.output_stride = -1;
    permute_rejected(context, &p, "output_stride", "output_stride -1");
    p = good; p.output = b->input + 5;
    permute_rejected(context, &p, "output", "output inside the input");
    p = good; p.output = b->input; p.dtype = LK_DTYPE_BF16; p.num_rows = 1;
    permute_rejected(context, &p, "output", "output == input, bf16, one row");
    p = good; p.input = b->output + PA_H * PA_R - 1;
    permute_rejected(context, &p, "output", "input starting at the output's last element");
    p = good; p.output = (float *)b->slots - (PA_R * PA_H - 2); /* its last two elements */
    permute_rejected(context, &p, "output", "output overlapping sorted_slots");
    p = good; p.hidden = 0;
    permute_rejected(context, &p, "hidden", "hidden 0");
    p = good; p.hidden = -3;
    permute_rejected(context, &p, "hidden", "hidden -3");
    p = good; p.dtype = (lk_dtype)3;
    permute_rejected(context, &p, "dtype", "dtype 3");
    p = good; p.dtype = (lk_dtype)-1;
    permute_rejected(context, &p, "dtype", "dtype -1");
    p = good; p.top_k = 0;
    permute_rejected(context, &p, "top_k", "top_k 0");
    p = good; p.num_tokens = -1;
    permute_rejected(context, &p, "num_tokens", "num_tokens -1");
    p = good; p.num_rows = -1;
    permute_rejected(context, &p, "num_rows", "num_rows -1");
    p = good; p.input = NULL;
    permute_rejected(context, &p, "input", "input NULL");
    p = good; p.output = NULL;
    permute_rejected(context, &p, "output", "output NULL");
    p = good; p.sorted_slots = NULL;
    permute_rejected(context, &p, "sorted_slots", "sorted_slots NULL");
    check_context_pop();
  }
}

enum { CA_T = 4, CA_K = 3, CA_H = 8, CA_R = 10 };

/* In this order, so that every overlapping span the tests build stays inside the struct, and each
 * overlaps only the one buffer it is about. */
typedef struct combine_buffers {
  float before_weights[CA_T * CA_H];
  float weights[CA_T * CA_K];
  int32_t slot_rows[CA_T * CA_K];
  float output[CA_T * CA_H * 2];
  float expert[CA_R * CA_H * 2];
} combine_buffers;

static combine_buffers combine_b, combine_before;

static void combine_rejected(lk_cpu_context *context, const lk_moe_combine_params *p, const char *names, const char *what) {
  tensor_poison(LK_DTYPE_F32, combine_b.output, CA_T * CA_H * 2);
  combine_before = combine_b;
  expect_rejected(lk_moe_combine(context, p), &combine_b, &combine_before, sizeof combine_b, names, what);
}

static void test_combine_arguments(void) {
  combine_buffers *b = &combine_b;
  rng r = rng_seeded(base_seed ^ 0xC0Bu);
  for (int i = 0; i < CA_R * CA_H * 2; i++) b->expert[i] = rng_uniform(&r, -1.0f, 1.0f);
  for (int i = 0; i < CA_T * CA_K; i++) {
    b->weights[i] = rng_uniform(&r, 0.0f, 1.0f);
    b->slot_rows[i] = (int32_t)rng_below(&r, CA_R + 1) - 1;
  }
  b->slot_rows[1] = CA_R - 1;
  lk_moe_combine_params good;
  memset(&good, 0, sizeof good);
  good.expert_output = b->expert;
  good.weights = b->weights;
  good.slot_rows = b->slot_rows;
  good.output = b->output;
  good.num_tokens = CA_T;
  good.top_k = CA_K;
  good.num_rows = CA_R;
  good.hidden = CA_H;
  good.dtype = LK_DTYPE_F32;

  for (int i = 0; i < isa_count; i++) {
    lk_cpu_context *context = contexts[i][1 + i % GRID_MAX_THREADS];
    check_context_push("combine arguments, isa %s", lk_isa_name(isas[i]));
    lk_moe_combine_params p = good;
    expect_ok(lk_moe_combine(context, &p), "the valid call");
    for (int d = 0; d < 3; d++) {
      p = good; p.dtype = dtypes[d]; p.expert_stride = 2 * CA_H; p.output_stride = 2 * CA_H;
      expect_ok(lk_moe_combine(context, &p), "every dtype, strided");
    }
    p = good; p.top_k = 1;
    expect_ok(lk_moe_combine(context, &p), "top_k 1");
    p = good; p.num_tokens = 0; p.expert_output = NULL; p.weights = NULL; p.slot_rows = NULL; p.output = NULL;
    expect_ok(lk_moe_combine(context, &p), "num_tokens 0, NULL buffers");
    p = good; p.top_k = 32; p.num_tokens = 0;
    expect_ok(lk_moe_combine(context, &p), "top_k 32 (LK_MOE_MAX_TOP_K)");
    { /* every slot elsewhere: no expert rows needed, zeros written */
      int32_t saved[CA_T * CA_K];
      memcpy(saved, b->slot_rows, sizeof saved);
      fill_i32(b->slot_rows, CA_T * CA_K, -1);
      p = good; p.expert_output = NULL; p.num_rows = 0;
      tensor_poison(LK_DTYPE_F32, b->output, CA_T * CA_H * 2);
      expect_ok(lk_moe_combine(context, &p), "every slot -1, expert_output NULL, num_rows 0");
      int64_t nonzero = 0;
      for (int j = 0; j < CA_T * CA_H; j++) nonzero += f32_bits(b->output[j]) != 0;
      CHECKF(nonzero == 0, "every slot -1: %lld output elements not +0", (long long)nonzero);
      CHECK(f32_bits(b->output[CA_T * CA_H]) == dtype_poison_bits(LK_DTYPE_F32)); /* past the output */
      memcpy(b->slot_rows, saved, sizeof saved);
    }

    combine_rejected(NULL, &good, "context", "context NULL");
    combine_rejected(context, NULL, "params", "params NULL");
    static const int32_t bad_rows[] = {-2, CA_R, CA_R + 7, INT32_MIN, INT32_MAX};
    for (size_t j = 0; j < sizeof bad_rows / sizeof bad_rows[0]; j++)
      for (int at = 0; at < 2; at++) {
        const int index = at ? CA_T * CA_K - 1 : 0;
        const int32_t saved = b->slot_rows[index];
        b->slot_rows[index] = bad_rows[j];
        char what[96];
        snprintf(what, sizeof what, "slot_rows[%d] = %d", index, (int)bad_rows[j]);
        p = good;
        combine_rejected(context, &p, "slot_rows", what);
        b->slot_rows[index] = saved;
      }
    p = good; p.num_rows = CA_R - 1; /* row CA_R - 1 is used */
    combine_rejected(context, &p, "slot_rows", "a row past num_rows");
    p = good; p.top_k = 0;
    combine_rejected(context, &p, "top_k", "top_k 0");
    p = good; p.top_k = 33;
    combine_rejected(context, &p, "top_k", "top_k 33");
    p = good; p.top_k = -1;
    combine_rejected(context, &p, "top_k", "top_k -1");
    p = good; p.expert_stride = CA_H - 1;
    combine_rejected(context, &p, "expert_stride", "expert_stride < hidden");
    p = good; p.expert_stride = -CA_H;
    combine_rejected(context, &p, "expert_stride", "expert_stride negative");
    p = good; p.output_stride = CA_H - 1;
    combine_rejected(context, &p, "output_stride", "output_stride < hidden");
    p = good; p.output_stride = -1;
    combine_rejected(context, &p, "output_stride", "output_stride -1");
    p = good; p.output = b->expert + 3;
    combine_rejected(context, &p, "output", "output inside expert_output");
    p = good; p.expert_output = b->output + CA_T * CA_H - 1;
    combine_rejected(context, &p, "output", "expert_output starting at the output's last element");
    p = good; p.output = b->weights - (CA_T * CA_H - 1);
    combine_rejected(context, &p, "output", "output ending at weights' first element");
    p = good; p.output = b->weights + 2;
    combine_rejected(context, &p, "output", "output inside weights (and slot_rows)");
    p = good; p.output = (float *)b->slot_rows + 6;
    combine_rejected(context, &p, "output", "output overlapping slot_rows' second half");
    p = good; p.hidden = 0;
    combine_rejected(context, &p, "hidden", "hidden 0");
    p = good; p.dtype = (lk_dtype)3;
    combine_rejected(context, &p, "dtype", "dtype 3");
    p = good; p.num_rows = -1;
    combine_rejected(context, &p, "num_rows|slot_rows", "num_rows -1");
    p = good; p.num_tokens = -1;
    combine_rejected(context, &p, "num_tokens", "num_tokens -1");
    p = good; p.slot_rows = NULL;
    combine_rejected(context, &p, "slot_rows", "slot_rows NULL");
    p = good; p.weights = NULL;
    combine_rejected(context, &p, "weights", "weights NULL");
    p = good; p.output = NULL;
    combine_rejected(context, &p, "output", "output NULL");
    p = good; p.expert_output = NULL;
    combine_rejected(context, &p, "expert_output", "expert_output NULL");
    check_context_pop();
  }
}

int main(void) {
  const char *seed = getenv("LK_TEST_SEED");
  if (seed && *seed) base_seed = strtoull(seed, NULL, 0);
  context_grid_create(contexts, isas, &isa_count);
  run_timed("routing arguments", test_routing_arguments);
  run_timed("permute arguments", test_permute_arguments);
  run_timed("combine arguments", test_combine_arguments);
  run_timed("routing literal", test_routing_literal);
  run_timed("routing", test_routing);
  run_timed("permute", test_permute);
  run_timed("combine", test_combine);
  run_timed("round trip", test_round_trip);
  context_grid_destroy(contexts, isa_count);
  printf("%llu cases; %ld routing, %ld permute, %ld combine calls; ISAs:", (unsigned long long)case_counter, routing_calls,
         permute_calls, combine_calls);
  for (int k = 0; k < isa_count; k++) printf(" %s", lk_isa_name(isas[k]));
  printf("\ncombine: worst |error| / tolerance against float64: f32 %.3f f16 %.3f bf16 %.3f\n", worst_ratio[0],
         worst_ratio[1], worst_ratio[2]);
  return check_summary("test_moe_routing");
}
