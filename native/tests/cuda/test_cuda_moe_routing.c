/* lk_cuda_moe_routing, lk_cuda_moe_permute and lk_cuda_moe_combine against the CPU library's scalar
 * reference (which test_moe_routing.c checks against independent references), over a reduced form
 * of test_moe_routing.c's grid.
 *
 * routing   every output bit for bit equal to the CPU's: counts, offsets, sorted_slots (rows past the
 *           plan keep their sentinel), slot_rows, block_experts (blocks past the plan untouched); block
 *           padding 0, 1, 3, 16, 64; expert ranges (all, explicit all, a middle one, the first and the
 *           last expert); ids random, skewed, all to one expert, the same experts for every token,
 *           only even experts; 0 to 3000 tokens x k 1, 2, 8 and E (both sides of the one-block plan's
 *           8192 slots and 1024 local experts); NULL optional outputs.
 * permute   the whole output buffer bit for bit equal to the CPU's (rows of random bit patterns: NaN
 *           payloads, -0, subnormals; padding rows zero; the gaps of strided outputs untouched);
 *           f32, f16, bf16; ragged hidden; misaligned rows (the 8-, 4- and 2-byte accesses); plans and
 *           arbitrary slot lists.
 * combine   the whole output buffer bit for bit equal to the CPU scalar kernel's (NaN as NaN: the
 *           payload of an fma of NaN is the hardware's); -1 slots skipped (their weights NaN, so any
 *           use shows), tokens without a local slot +0; ragged hidden around the vector width; strided
 *           and misaligned layouts; overflow to infinity.
 * bad indices  an expert id outside [0, num_experts), a sorted_slots entry and a slot_rows entry
 *           outside their ranges: the call is queued, the next synchronisation fails naming the
 *           argument, the one after succeeds; nothing is written out of bounds (device buffers end
 *           at guard pages in the emulator) and everything else is what the CPU gives for the call
 *           with the bad entry taken out (no local expert, not written, adding nothing).
 * round trip  gating -> plan -> permute -> experts (row x (expert + 1), on the host) -> combine with
 *           weights 1/k gives the mean of each token's expert rows, with block padding; and an
 *           expert-parallel split into two ranges whose combines add up to the full one.
 * arguments the CPU's refusals, message for message, without a device too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_harness.h"
#include "test_harness.h"

#define SENTINEL ((int32_t)0x5EAD7A11)

static uint64_t case_counter;
static long routing_calls, permute_calls, combine_calls;

static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};

static uint64_t next_seed(void) { return 0x40E5EEDC0DAull + 0x9E3779B97F4A7C15ull * ++case_counter; }

static int32_t *i32_array(int64_t n, int32_t v) {
  int32_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
  for (int64_t i = 0; i < n; i++) p[i] = v;
  return p;
}

static int64_t count_differences(const int32_t *a, const int32_t *b, int64_t n, int64_t *first) {
  int64_t d = 0;
  *first = -1;
  for (int64_t i = 0; i < n; i++)
    if (a[i] != b[i]) {
      if (*first < 0) *first = i;
      d++;
    }
  return d;
}

/* ---- routing ------------------------------------------------------------------------------------------ */

typedef enum id_kind { IDS_RANDOM, IDS_SKEWED, IDS_SAME_EXPERTS, IDS_ONE_EXPERT, IDS_EVEN } id_kind;

typedef struct routing_case {
  int64_t tokens, top_k, experts, begin, end, block;
  id_kind ids;
  bool slot_rows, block_experts;
} routing_case;

/* The ids, by kind (the plan takes any ids, repeated within a token too). */
static void fill_ids(const routing_case *c, rng *r, int32_t *ids) {
  const int64_t E = c->experts, k = c->top_k;
  for (int64_t t = 0; t < c->tokens; t++)
    for (int64_t j = 0; j < k; j++) {
      int32_t e;
      switch (c->ids) {
      case IDS_SKEWED: /* most slots to the first few experts */
        e = rng_below(r, 100) < 70 ? (int32_t)rng_below(r, (uint32_t)(E < 4 ? E : 4)) : (int32_t)rng_below(r, (uint32_t)E);
        break;
      case IDS_SAME_EXPERTS: e = (int32_t)((3 + j) % E); break;
      case IDS_ONE_EXPERT: e = (int32_t)(E - 1); break;
      case IDS_EVEN: e = (int32_t)((2 * rng_below(r, (uint32_t)((E + 1) / 2))) % E); break;
      default: e = (int32_t)rng_below(r, (uint32_t)E); break;
      }
      ids[t * k + j] = e;
    }
}

typedef struct plan_buffers {
  int32_t *counts, *offsets, *sorted, *slot_rows, *blocks;
} plan_buffers;

static int64_t local_of(const routing_case *c) { return c->begin == 0 && c->end == 0 ? c->experts : c->end - c->begin; }
static int64_t capacity_of(const routing_case *c) {
  const int64_t block = c->block > 1 ? c->block : 1;
  return c->tokens * c->top_k + local_of(c) * (block - 1);
}
static int64_t block_count_of(const routing_case *c) { return c->block > 1 ? capacity_of(c) / c->block : 0; }

static plan_buffers plan_alloc_host(const routing_case *c) {
  plan_buffers b;
  b.counts = i32_array(local_of(c), SENTINEL);
  b.offsets = i32_array(local_of(c) + 1, SENTINEL);
  b.sorted = i32_array(capacity_of(c), SENTINEL);
  b.slot_rows = i32_array(c->tokens * c->top_k, SENTINEL);
  b.blocks = i32_array(block_count_of(c), SENTINEL);
  return b;
}

static void plan_free_host(plan_buffers *b) {
  free(b->counts);
  free(b->offsets);
  free(b->sorted);
  free(b->slot_rows);
  free(b->blocks);
}

static lk_moe_routing_params routing_params(const routing_case *c, const int32_t *ids, const plan_buffers *b) {
  lk_moe_routing_params p;
  memset(&p, 0, sizeof p);
  p.expert_ids = ids;
  p.num_tokens = c->tokens;
  p.top_k = c->top_k;
  p.num_experts = c->experts;
  p.expert_begin = c->begin;
  p.expert_end = c->end;
  p.block_size = c->block;
  p.expert_counts = b->counts;
  p.expert_offsets = b->offsets;
  p.sorted_slots = b->sorted;
  p.sorted_capacity = capacity_of(c);
  p.slot_rows = c->slot_rows ? b->slot_rows : NULL;
  p.block_experts = c->block_experts && c->block > 1 ? b->blocks : NULL;
  return p;
}

/* Runs the plan of ids on the device and checks every buffer against want (the CPU's, or what the
 * CPU gives for the corrected call). expect_bad: the synchronisation must report expert_ids. */
static void device_plan_matches(const routing_case *c, const int32_t *ids, const plan_buffers *want, bool expect_bad) {
  const int64_t slots = c->tokens * c->top_k, local = local_of(c), capacity = capacity_of(c), blocks = block_count_of(c);
  plan_buffers init = plan_alloc_host(c), got = plan_alloc_host(c);
  plan_buffers d;
  int32_t *d_ids = device_mirror(ids, (size_t)slots * sizeof(int32_t));
  d.counts = device_mirror(init.counts, (size_t)local * sizeof(int32_t));
  d.offsets = device_mirror(init.offsets, (size_t)(local + 1) * sizeof(int32_t));
  d.sorted = device_mirror(init.sorted, (size_t)capacity * sizeof(int32_t));
  d.slot_rows = device_mirror(init.slot_rows, (size_t)slots * sizeof(int32_t));
  d.blocks = device_mirror(init.blocks, (size_t)blocks * sizeof(int32_t));
  lk_moe_routing_params p = routing_params(c, d_ids, &d);
  routing_calls++;
  if (CHECK_STATUS(lk_cuda_moe_routing(cuda_test_stream(), &p), LK_OK)) {
    if (expect_bad) {
      if (CHECK_INVALID(lk_cuda_stream_synchronize(cuda_test_stream()), "expert_ids"))
        CHECKF(strstr(lk_last_error(), "lk_cuda_moe_routing") != NULL, "the report names the entry point: %s", lk_last_error());
      CHECK_STATUS(lk_cuda_stream_synchronize(cuda_test_stream()), LK_OK); /* reported once */
    } else {
      cuda_test_sync();
    }
    host_from_device(got.counts, d.counts, (size_t)local * sizeof(int32_t));
    host_from_device(got.offsets, d.offsets, (size_t)(local + 1) * sizeof(int32_t));
    host_from_device(got.sorted, d.sorted, (size_t)capacity * sizeof(int32_t));
    host_from_device(got.slot_rows, d.slot_rows, (size_t)slots * sizeof(int32_t));
    host_from_device(got.blocks, d.blocks, (size_t)blocks * sizeof(int32_t));
    int64_t first;
    int64_t n = count_differences(got.counts, want->counts, local, &first);
    CHECKF(n == 0, "expert_counts: %lld differ (first [%lld]: %d, want %d)", (long long)n, (long long)first, first >= 0 ? got.counts[first] : 0,
           first >= 0 ? want->counts[first] : 0);
    n = count_differences(got.offsets, want->offsets, local + 1, &first);
    CHECKF(n == 0, "expert_offsets: %lld differ (first [%lld]: %d, want %d)", (long long)n, (long long)first,
           first >= 0 ? got.offsets[first] : 0, first >= 0 ? want->offsets[first] : 0);
    n = count_differences(got.sorted, want->sorted, capacity, &first);
    CHECKF(n == 0, "sorted_slots: %lld of %lld differ (first [%lld]: %d, want %d)", (long long)n, (long long)capacity, (long long)first,
           first >= 0 ? got.sorted[first] : 0, first >= 0 ? want->sorted[first] : 0);
    n = count_differences(got.slot_rows, want->slot_rows, slots, &first);
    CHECKF(n == 0, "slot_rows: %lld differ (first [%lld]: %d, want %d)", (long long)n, (long long)first,
           first >= 0 ? got.slot_rows[first] : 0, first >= 0 ? want->slot_rows[first] : 0);
    n = count_differences(got.blocks, want->blocks, blocks, &first);
    CHECKF(n == 0, "block_experts: %lld differ (first [%lld]: %d, want %d)", (long long)n, (long long)first,
           first >= 0 ? got.blocks[first] : 0, first >= 0 ? want->blocks[first] : 0);
  }
  device_free(d_ids);
  device_free(d.counts);
  device_free(d.offsets);
  device_free(d.sorted);
  device_free(d.slot_rows);
  device_free(d.blocks);
  plan_free_host(&init);
  plan_free_host(&got);
}

static void run_routing(const routing_case *c) {
  const uint64_t seed = next_seed();
  check_context_push("routing: tokens %lld k %lld experts %lld range [%lld, %lld) block %lld ids %d slot_rows %d block_experts %d seed 0x%llx",
                     (long long)c->tokens, (long long)c->top_k, (long long)c->experts, (long long)c->begin, (long long)c->end,
                     (long long)c->block, (int)c->ids, (int)c->slot_rows, (int)c->block_experts, (unsigned long long)seed);
  rng r = rng_seeded(seed);
  const int64_t slots = c->tokens * c->top_k;
  int32_t *ids = i32_array(slots, 0);
  fill_ids(c, &r, ids);
  plan_buffers want = plan_alloc_host(c);
  lk_moe_routing_params h = routing_params(c, ids, &want);
  if (CHECK_STATUS(lk_moe_routing(reference_context(), &h), LK_OK)) device_plan_matches(c, ids, &want, false);
  plan_free_host(&want);
  free(ids);
  check_context_pop();
}

static void test_routing(void) {
  static const int64_t token_counts[] = {0, 1, 7, 130, 1100, 3000};
  static const int64_t expert_counts[] = {3, 8, 60, 256, 384, 1500};
  static const int64_t blocks[] = {0, 1, 3, 16, 64};
  long n = 0;
  for (size_t ti = 0; ti < sizeof token_counts / sizeof token_counts[0]; ti++)
    for (size_t ei = 0; ei < sizeof expert_counts / sizeof expert_counts[0]; ei++) {
      const int64_t E = expert_counts[ei];
      const int64_t ks[4] = {1, 2, 8, E < 32 ? E : 32};
      for (int ki = 0; ki < 4; ki++) {
        if (ks[ki] > E || (ki == 3 && ks[3] <= 8)) continue;
        if (token_counts[ti] >= 1100 && ki != (int)(n % 3)) continue; /* the big ones: one k each */
        for (int range = 0; range < 5; range++) {
          routing_case c;
          memset(&c, 0, sizeof c);
          c.tokens = token_counts[ti];
          c.top_k = ks[ki];
          c.experts = E;
          switch (range) {
          case 1: c.end = E; break;                               /* explicit all */
          case 2: c.begin = E / 3; c.end = E > 2 ? 2 * E / 3 + 1 : E; break; /* a middle range */
          case 3: c.end = 1; break;                               /* the first expert */
          case 4: c.begin = E - 1; c.end = E; break;              /* the last */
          default: break;
          }
          c.block = blocks[n % 5];
          c.ids = (id_kind)(n % 5);
          c.slot_rows = n % 4 != 3;
          c.block_experts = n % 3 != 2;
          run_routing(&c);
          n++;
        }
      }
    }
}

/* A bad id: reported at the synchronisation; the plan is the CPU's for the call with the slot routed
 * to no local expert (the CPU's call of num_experts + 1 experts, the bad id mapped to the extra one,
 * the range [0, num_experts) or the case's). */
static void test_routing_bad_ids(void) {
  static const int64_t shapes[][3] = {{5, 2, 8}, {130, 8, 256}, {1100, 8, 256}, {40, 4, 1500}};
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
    for (int variant = 0; variant < 4; variant++) {
      routing_case c;
      memset(&c, 0, sizeof c);
      c.tokens = shapes[si][0];
      c.top_k = shapes[si][1];
      c.experts = shapes[si][2];
      c.block = variant % 2 ? 16 : 0;
      c.slot_rows = true;
      c.block_experts = true;
      if (variant >= 2) {
        c.begin = 1;
        c.end = c.experts - 1;
      }
      const uint64_t seed = next_seed();
      check_context_push("routing with a bad id: tokens %lld k %lld experts %lld variant %d seed 0x%llx", (long long)c.tokens,
                         (long long)c.top_k, (long long)c.experts, variant, (unsigned long long)seed);
      rng r = rng_seeded(seed);
      const int64_t slots = c.tokens * c.top_k;
      int32_t *ids = i32_array(slots, 0);
      fill_ids(&c, &r, ids);
      const int64_t bad_slot = (int64_t)rng_below(&r, (uint32_t)slots);
      ids[bad_slot] = variant % 2 ? -3 : (int32_t)c.experts + 7;
      if (variant == 3) ids[slots - 1] = (int32_t)c.experts; /* and a second one, the last slot */
      int32_t *corrected = i32_array(slots, 0);
      for (int64_t s = 0; s < slots; s++) corrected[s] = ids[s] < 0 || ids[s] >= c.experts ? (int32_t)c.experts : ids[s];
      routing_case reference = c;
      reference.experts = c.experts + 1;
      if (reference.begin == 0 && reference.end == 0) reference.end = c.experts;
      plan_buffers want = plan_alloc_host(&c);
      lk_moe_routing_params h = routing_params(&reference, corrected, &want);
      h.sorted_capacity = capacity_of(&c);
      /* the CPU refuses the call itself, naming the argument */
      lk_moe_routing_params refused = routing_params(&c, ids, &want);
      CHECK_INVALID(lk_moe_routing(reference_context(), &refused), "expert_ids");
      if (CHECK_STATUS(lk_moe_routing(reference_context(), &h), LK_OK)) device_plan_matches(&c, ids, &want, true);
      plan_free_host(&want);
      free(ids);
      free(corrected);
      check_context_pop();
    }
}

/* ---- permute ------------------------------------------------------------------------------------------ */

typedef struct permute_case {
  lk_dtype dtype;
  int64_t tokens, top_k, rows, hidden, input_pad, output_pad, offset; /* offset: elements the bases move by */
  int slots;                                                           /* 0 a plan; 1 arbitrary, -1 among them */
} permute_case;

static void random_bits(rng *r, void *p, size_t bytes) {
  unsigned char *b = p;
  for (size_t i = 0; i < bytes; i++) b[i] = (unsigned char)rng_next(r);
}

static void run_permute(const permute_case *c, const int32_t *sorted, int64_t bad_row) {
  const size_t es = dtype_size(c->dtype);
  const int64_t in_stride = c->hidden + c->input_pad, out_stride = c->hidden + c->output_pad;
  const int64_t in_count = c->offset + (c->tokens > 0 ? (c->tokens - 1) * in_stride + c->hidden : 0);
  const int64_t out_count = c->offset + (c->rows > 0 ? (c->rows - 1) * out_stride + c->hidden : 0);
  const uint64_t seed = next_seed();
  check_context_push("permute %s: tokens %lld k %lld rows %lld hidden %lld pads %lld %lld offset %lld slots %d bad row %lld seed 0x%llx",
                     dtype_label(c->dtype), (long long)c->tokens, (long long)c->top_k, (long long)c->rows, (long long)c->hidden,
                     (long long)c->input_pad, (long long)c->output_pad, (long long)c->offset, c->slots, (long long)bad_row,
                     (unsigned long long)seed);
  rng r = rng_seeded(seed);
  unsigned char *input = malloc((size_t)(in_count > 0 ? in_count : 1) * es), *want = malloc((size_t)(out_count > 0 ? out_count : 1) * es);
  unsigned char *got = malloc((size_t)(out_count > 0 ? out_count : 1) * es);
  random_bits(&r, input, (size_t)in_count * es);
  random_bits(&r, want, (size_t)out_count * es); /* the gaps and anything not written keep these */
  unsigned char *d_in = device_mirror(input, (size_t)in_count * es), *d_out = device_mirror(want, (size_t)out_count * es);
  int32_t *corrected = i32_array(c->rows, 0);
  memcpy(corrected, sorted, (size_t)c->rows * sizeof(int32_t));
  int32_t *d_sorted = device_mirror(sorted, (size_t)c->rows * sizeof(int32_t));
  lk_moe_permute_params p;
  memset(&p, 0, sizeof p);
  p.num_tokens = c->tokens;
  p.top_k = c->top_k;
  p.num_rows = c->rows;
  p.hidden = c->hidden;
  p.input_stride = c->input_pad ? in_stride : 0;
  p.output_stride = c->output_pad ? out_stride : 0;
  p.dtype = c->dtype;
  /* the reference: with a bad row, the same call without that row (it is not written) */
  if (bad_row >= 0) {
    lk_moe_permute_params h = p;
    h.input = input + c->offset * es;
    h.output = want + c->offset * es;
    h.sorted_slots = corrected;
    CHECK_INVALID(lk_moe_permute(reference_context(), &h), "sorted_slots");
    for (int64_t row = 0; row < c->rows; row++) {
      if (row == bad_row) continue;
      lk_moe_permute_params one = h;
      one.num_rows = 1;
      one.sorted_slots = corrected + row;
      one.output = want + (size_t)(c->offset + row * out_stride) * es;
      CHECK_STATUS(lk_moe_permute(reference_context(), &one), LK_OK);
    }
  } else {
    lk_moe_permute_params h = p;
    h.input = input + c->offset * es;
    h.output = want + c->offset * es;
    h.sorted_slots = corrected;
    CHECK_STATUS(lk_moe_permute(reference_context(), &h), LK_OK);
  }
  lk_moe_permute_params d = p;
  d.input = d_in + c->offset * es;
  d.output = d_out + c->offset * es;
  d.sorted_slots = d_sorted;
  permute_calls++;
  if (CHECK_STATUS(lk_cuda_moe_permute(cuda_test_stream(), &d), LK_OK)) {
    if (bad_row >= 0) {
      CHECK_INVALID(lk_cuda_stream_synchronize(cuda_test_stream()), "sorted_slots");
      CHECK_STATUS(lk_cuda_stream_synchronize(cuda_test_stream()), LK_OK);
    } else {
      cuda_test_sync();
    }
    host_from_device(got, d_out, (size_t)out_count * es);
    int64_t differing = 0, first = -1;
    for (int64_t i = 0; i < out_count; i++)
      if (tensor_bits(c->dtype, got, i) != tensor_bits(c->dtype, want, i) && differing++ == 0) first = i;
    CHECKF(differing == 0, "%lld of %lld output elements differ from the reference's bits (first %lld)", (long long)differing,
           (long long)out_count, (long long)first);
  }
  device_free(d_in);
  device_free(d_out);
  device_free(d_sorted);
  free(input);
  free(want);
  free(got);
  free(corrected);
  check_context_pop();
}

/* sorted_slots for a case: a plan's (every slot once, -1 padding in between) or arbitrary entries. */
static int32_t *slot_list(const permute_case *c, rng *r) {
  const int64_t slots = c->tokens * c->top_k;
  int32_t *s = i32_array(c->rows, -1);
  if (c->slots == 0) {
    int64_t next = 0;
    for (int64_t row = 0; row < c->rows; row++)
      s[row] = next < slots && rng_below(r, 5) != 0 ? (int32_t)next++ : -1;
  } else {
    for (int64_t row = 0; row < c->rows; row++) s[row] = slots == 0 || rng_below(r, 4) == 0 ? -1 : (int32_t)rng_below(r, (uint32_t)slots);
  }
  return s;
}

static void test_permute(void) {
  static const int64_t hiddens[] = {1, 3, 8, 63, 64, 100, 1000, 4096};
  long n = 0;
  for (size_t d = 0; d < 3; d++)
    for (size_t hi = 0; hi < sizeof hiddens / sizeof hiddens[0]; hi++)
      for (int layout = 0; layout < 4; layout++) {
        permute_case c;
        memset(&c, 0, sizeof c);
        c.dtype = dtypes[d];
        c.hidden = hiddens[hi];
        c.tokens = hiddens[hi] >= 1000 ? 9 : 37;
        c.top_k = 1 + (int64_t)(n % 3) * 3;
        c.rows = c.tokens * c.top_k + 11;
        c.input_pad = layout == 1 || layout == 3 ? 3 : 0;
        c.output_pad = layout == 2 || layout == 3 ? 8 : 0;
        c.offset = layout == 3 ? (int64_t)(n % 3) : 0;
        c.slots = (int)(n % 2);
        rng r = rng_seeded(next_seed());
        int32_t *s = slot_list(&c, &r);
        run_permute(&c, s, -1);
        free(s);
        n++;
      }
  /* empty calls: no rows (nothing touched), every row padding */
  permute_case c;
  memset(&c, 0, sizeof c);
  c.dtype = LK_DTYPE_BF16;
  c.tokens = 3;
  c.top_k = 2;
  c.hidden = 40;
  run_permute(&c, NULL, -1);
  c.rows = 5;
  int32_t padding[5] = {-1, -1, -1, -1, -1};
  run_permute(&c, padding, -1);
}

static void test_permute_bad_slots(void) {
  for (size_t d = 0; d < 3; d++)
    for (int variant = 0; variant < 3; variant++) {
      permute_case c;
      memset(&c, 0, sizeof c);
      c.dtype = dtypes[d];
      c.tokens = 20;
      c.top_k = 2;
      c.rows = 45;
      c.hidden = variant == 2 ? 33 : 256;
      c.slots = 1;
      rng r = rng_seeded(next_seed());
      int32_t *s = slot_list(&c, &r);
      const int64_t bad = 5 + variant * 13;
      s[bad] = variant == 0 ? -2 : variant == 1 ? (int32_t)(c.tokens * c.top_k) : INT32_MAX;
      run_permute(&c, s, bad);
      free(s);
    }
}

/* ---- combine ------------------------------------------------------------------------------------------ */

typedef struct combine_case {
  lk_dtype dtype;
  int64_t tokens, top_k, rows, hidden, expert_pad, output_pad, offset;
  float scale;       /* of the expert rows: large ones overflow */
  int local_percent; /* slots with a row */
} combine_case;

static bool same_element(lk_dtype dtype, const void *a, const void *b, int64_t i) {
  if (tensor_bits(dtype, a, i) == tensor_bits(dtype, b, i)) return true;
  return isnan(tensor_load(dtype, a, i)) && isnan(tensor_load(dtype, b, i));
}

static void run_combine(const combine_case *c, int64_t bad_slot) {
  const size_t es = dtype_size(c->dtype);
  const int64_t slots = c->tokens * c->top_k;
  const int64_t e_stride = c->hidden + c->expert_pad, o_stride = c->hidden + c->output_pad;
  const int64_t e_count = c->offset + (c->rows > 0 ? (c->rows - 1) * e_stride + c->hidden : 0);
  const int64_t o_count = c->offset + (c->tokens > 0 ? (c->tokens - 1) * o_stride + c->hidden : 0);
  const uint64_t seed = next_seed();
  check_context_push("combine %s: tokens %lld k %lld rows %lld hidden %lld pads %lld %lld offset %lld scale %g local %d%% bad slot %lld seed 0x%llx",
                     dtype_label(c->dtype), (long long)c->tokens, (long long)c->top_k, (long long)c->rows, (long long)c->hidden,
                     (long long)c->expert_pad, (long long)c->output_pad, (long long)c->offset, (double)c->scale, c->local_percent,
                     (long long)bad_slot, (unsigned long long)seed);
  rng r = rng_seeded(seed);
  unsigned char *experts = malloc((size_t)(e_count > 0 ? e_count : 1) * es);
  unsigned char *want = malloc((size_t)(o_count > 0 ? o_count : 1) * es), *got = malloc((size_t)(o_count > 0 ? o_count : 1) * es);
  for (int64_t i = 0; i < e_count; i++) tensor_store(c->dtype, experts, i, rng_uniform(&r, -c->scale, c->scale));
  tensor_poison(c->dtype, want, o_count);
  float *weights = malloc((size_t)(slots > 0 ? slots : 1) * sizeof(float));
  int32_t *slot_rows = i32_array(slots, -1);
  for (int64_t s = 0; s < slots; s++) {
    const bool here = c->rows > 0 && (int)rng_below(&r, 100) < c->local_percent;
    slot_rows[s] = here ? (int32_t)rng_below(&r, (uint32_t)c->rows) : -1;
    weights[s] = here ? rng_uniform(&r, -1.0f, 1.0f) : NAN; /* a skipped slot's weight must not be used */
  }
  int32_t *corrected = i32_array(slots, 0);
  memcpy(corrected, slot_rows, (size_t)(slots > 0 ? slots : 0) * sizeof(int32_t));
  if (bad_slot >= 0) {
    slot_rows[bad_slot] = bad_slot % 2 ? -5 : (int32_t)c->rows + 3;
    weights[bad_slot] = NAN;
    corrected[bad_slot] = -1;
  }
  /* an expert_output even without rows: the device's checks cannot see that no slot reads it */
  unsigned char *d_experts = device_mirror(experts, (size_t)(e_count > 0 ? e_count : 1) * es);
  unsigned char *d_out = device_mirror(want, (size_t)o_count * es);
  float *d_weights = device_mirror(weights, (size_t)slots * sizeof(float));
  int32_t *d_slot_rows = device_mirror(slot_rows, (size_t)slots * sizeof(int32_t));
  lk_moe_combine_params p;
  memset(&p, 0, sizeof p);
  p.num_tokens = c->tokens;
  p.top_k = c->top_k;
  p.num_rows = c->rows;
  p.hidden = c->hidden;
  p.expert_stride = c->expert_pad ? e_stride : 0;
  p.output_stride = c->output_pad ? o_stride : 0;
  p.dtype = c->dtype;
  lk_moe_combine_params h = p;
  h.expert_output = experts + c->offset * es;
  h.weights = weights;
  h.slot_rows = corrected;
  h.output = want + c->offset * es;
  CHECK_STATUS(lk_moe_combine(reference_context(), &h), LK_OK);
  lk_moe_combine_params d = p;
  d.expert_output = d_experts + c->offset * es;
  d.weights = d_weights;
  d.slot_rows = d_slot_rows;
  d.output = d_out + c->offset * es;
  combine_calls++;
  if (CHECK_STATUS(lk_cuda_moe_combine(cuda_test_stream(), &d), LK_OK)) {
    if (bad_slot >= 0) {
      CHECK_INVALID(lk_cuda_stream_synchronize(cuda_test_stream()), "slot_rows");
      CHECK_STATUS(lk_cuda_stream_synchronize(cuda_test_stream()), LK_OK);
    } else {
      cuda_test_sync();
    }
    host_from_device(got, d_out, (size_t)o_count * es);
    int64_t differing = 0, first = -1;
    for (int64_t i = 0; i < o_count; i++)
      if (!same_element(c->dtype, got, want, i) && differing++ == 0) first = i;
    CHECKF(differing == 0, "%lld of %lld output elements differ from the reference's bits (first %lld: %.9g, want %.9g)",
           (long long)differing, (long long)o_count, (long long)first, first >= 0 ? (double)tensor_load(c->dtype, got, first) : 0.0,
           first >= 0 ? (double)tensor_load(c->dtype, want, first) : 0.0);
  }
  device_free(d_experts);
  device_free(d_out);
  device_free(d_weights);
  device_free(d_slot_rows);
  free(experts);
  free(want);
  free(got);
  free(weights);
  free(slot_rows);
  free(corrected);
  check_context_pop();
}

static void test_combine(void) {
  static const int64_t hiddens[] = {1, 5, 8, 31, 32, 33, 64, 200, 1024, 4100};
  static const int64_t ks[] = {1, 2, 8, 32};
  long n = 0;
  for (size_t d = 0; d < 3; d++)
    for (size_t hi = 0; hi < sizeof hiddens / sizeof hiddens[0]; hi++)
      for (int layout = 0; layout < 4; layout++) {
        combine_case c;
        memset(&c, 0, sizeof c);
        c.dtype = dtypes[d];
        c.hidden = hiddens[hi];
        c.top_k = ks[n % 4];
        c.tokens = hiddens[hi] >= 1024 ? 5 : 23;
        c.rows = c.tokens * c.top_k / 2 + 3;
        c.expert_pad = layout == 1 || layout == 3 ? 8 : 0;
        c.output_pad = layout == 2 || layout == 3 ? 5 : 0;
        c.offset = layout == 3 ? (int64_t)(n % 2) : 0;
        c.scale = 4.0f;
        c.local_percent = n % 3 == 0 ? 100 : n % 3 == 1 ? 70 : 10;
        run_combine(&c, -1);
        n++;
      }
  /* overflow to infinity: f32 near its largest, f16 past 65504 */
  for (size_t d = 0; d < 3; d++) {
    combine_case c;
    memset(&c, 0, sizeof c);
    c.dtype = dtypes[d];
    c.hidden = 64;
    c.top_k = 8;
    c.tokens = 9;
    c.rows = 40;
    c.scale = dtypes[d] == LK_DTYPE_F16 ? 60000.0f : 3e38f;
    c.local_percent = 100;
    run_combine(&c, -1);
  }
  /* no rows at all: every token +0 */
  combine_case c;
  memset(&c, 0, sizeof c);
  c.dtype = LK_DTYPE_F32;
  c.hidden = 17;
  c.top_k = 2;
  c.tokens = 4;
  c.rows = 0;
  c.local_percent = 0;
  run_combine(&c, -1);
}

static void test_combine_bad_rows(void) {
  for (size_t d = 0; d < 3; d++)
    for (int variant = 0; variant < 2; variant++) {
      combine_case c;
      memset(&c, 0, sizeof c);
      c.dtype = dtypes[d];
      c.hidden = variant ? 37 : 512;
      c.top_k = 4;
      c.tokens = 11;
      c.rows = 30;
      c.scale = 2.0f;
      c.local_percent = 80;
      run_combine(&c, 17 + variant);
    }
}

/* ---- the round trip ------------------------------------------------------------------------------------ */

/* gating -> plan -> permute -> experts (row x (expert + 1)) -> combine, all of it on the device but
 * the experts, over [begin, end) of the experts; the output is left on the host in out (f32). */
static void device_round_trip(lk_dtype dtype, int64_t T, int64_t E, int64_t k, int64_t H, int64_t block, int64_t begin,
                              int64_t end, const void *logits, const void *x, float *out) {
  const size_t es = dtype_size(dtype);
  const int64_t slots = T * k, local = end - begin, capacity = slots + local * (block > 1 ? block - 1 : 0);
  void *d_logits = device_mirror(logits, (size_t)(T * E) * es), *d_x = device_mirror(x, (size_t)(T * H) * es);
  float *d_w = device_poisoned((size_t)slots * sizeof(float));
  int32_t *d_ids = device_poisoned((size_t)slots * sizeof(int32_t));
  lk_moe_gating_params g;
  memset(&g, 0, sizeof g);
  g.logits = d_logits;
  g.weights = d_w;
  g.expert_ids = d_ids;
  g.num_tokens = T;
  g.num_experts = E;
  g.top_k = k;
  g.scoring = LK_MOE_SOFTMAX_TOPK;
  g.dtype = dtype;
  CHECK_STATUS(lk_cuda_moe_gating(cuda_test_stream(), &g), LK_OK);
  /* weights 1/k: the combine gives the mean */
  float *ones = malloc((size_t)slots * sizeof(float));
  for (int64_t s = 0; s < slots; s++) ones[s] = 1.0f / (float)k;
  float *d_ones = device_mirror(ones, (size_t)slots * sizeof(float));
  int32_t *d_counts = device_poisoned((size_t)local * sizeof(int32_t)), *d_offsets = device_poisoned((size_t)(local + 1) * sizeof(int32_t));
  int32_t *d_sorted = device_poisoned((size_t)capacity * sizeof(int32_t)), *d_slot_rows = device_poisoned((size_t)slots * sizeof(int32_t));
  lk_moe_routing_params rp;
  memset(&rp, 0, sizeof rp);
  rp.expert_ids = d_ids;
  rp.num_tokens = T;
  rp.top_k = k;
  rp.num_experts = E;
  rp.expert_begin = begin;
  rp.expert_end = end;
  rp.block_size = block;
  rp.expert_counts = d_counts;
  rp.expert_offsets = d_offsets;
  rp.sorted_slots = d_sorted;
  rp.sorted_capacity = capacity;
  rp.slot_rows = d_slot_rows;
  CHECK_STATUS(lk_cuda_moe_routing(cuda_test_stream(), &rp), LK_OK);
  int32_t rows = 0;
  host_from_device(&rows, d_offsets + local, sizeof rows);
  int32_t *offsets = malloc((size_t)(local + 1) * sizeof(int32_t));
  host_from_device(offsets, d_offsets, (size_t)(local + 1) * sizeof(int32_t));
  void *d_perm = device_poisoned((size_t)(rows > 0 ? rows : 1) * (size_t)H * es);
  lk_moe_permute_params pp;
  memset(&pp, 0, sizeof pp);
  pp.input = d_x;
  pp.output = d_perm;
  pp.sorted_slots = d_sorted;
  pp.num_tokens = T;
  pp.top_k = k;
  pp.num_rows = rows;
  pp.hidden = H;
  pp.dtype = dtype;
  CHECK_STATUS(lk_cuda_moe_permute(cuda_test_stream(), &pp), LK_OK);
  /* the experts, on the host: row x (expert + 1) */
  unsigned char *perm = malloc((size_t)(rows > 0 ? rows : 1) * (size_t)H * es);
  host_from_device(perm, d_perm, (size_t)rows * (size_t)H * es);
  for (int64_t e = 0; e < local; e++)
    for (int64_t row = offsets[e]; row < offsets[e + 1]; row++)
      for (int64_t i = 0; i < H; i++)
        tensor_store(dtype, perm, row * H + i, tensor_load(dtype, perm, row * H + i) * (float)(begin + e + 1));
  device_free(d_perm);
  d_perm = device_mirror(perm, (size_t)(rows > 0 ? rows : 1) * (size_t)H * es); /* a row even when none is here */
  void *d_out = device_poisoned((size_t)(T * H) * es);
  lk_moe_combine_params cp;
  memset(&cp, 0, sizeof cp);
  cp.expert_output = d_perm;
  cp.weights = d_ones;
  cp.slot_rows = d_slot_rows;
  cp.output = d_out;
  cp.num_tokens = T;
  cp.top_k = k;
  cp.num_rows = rows;
  cp.hidden = H;
  cp.dtype = dtype;
  CHECK_STATUS(lk_cuda_moe_combine(cuda_test_stream(), &cp), LK_OK);
  cuda_test_sync();
  unsigned char *o = malloc((size_t)(T * H) * es);
  host_from_device(o, d_out, (size_t)(T * H) * es);
  for (int64_t i = 0; i < T * H; i++) out[i] = tensor_load(dtype, o, i);
  /* the ids too, for the expectation */
  device_free(d_logits);
  device_free(d_x);
  device_free(d_w);
  device_free(d_ids);
  device_free(d_ones);
  device_free(d_counts);
  device_free(d_offsets);
  device_free(d_sorted);
  device_free(d_slot_rows);
  device_free(d_perm);
  device_free(d_out);
  free(ones);
  free(offsets);
  free(perm);
  free(o);
}

static void test_round_trip(void) {
  for (size_t d = 0; d < 3; d++)
    for (int variant = 0; variant < 2; variant++) {
      const lk_dtype dtype = dtypes[d];
      const int64_t T = variant ? 300 : 33, E = variant ? 64 : 8, k = 2, H = 48, block = variant ? 16 : 0;
      const size_t es = dtype_size(dtype);
      check_context_push("round trip %s: tokens %lld experts %lld k %lld hidden %lld block %lld", dtype_label(dtype), (long long)T,
                         (long long)E, (long long)k, (long long)H, (long long)block);
      rng r = rng_seeded(next_seed());
      unsigned char *logits = malloc((size_t)(T * E) * es), *x = malloc((size_t)(T * H) * es);
      for (int64_t i = 0; i < T * E; i++) tensor_store(dtype, logits, i, rng_uniform(&r, -3.0f, 3.0f));
      for (int64_t i = 0; i < T * H; i++) tensor_store(dtype, x, i, rng_uniform(&r, -1.0f, 1.0f));
      /* the ids the CPU's gating gives (the device's are the same for these well-separated rows, or
       * the expectation below would not match) */
      float *w = malloc((size_t)(T * k) * sizeof(float));
      int32_t *ids = malloc((size_t)(T * k) * sizeof(int32_t));
      lk_moe_gating_params g;
      memset(&g, 0, sizeof g);
      g.logits = logits;
      g.weights = w;
      g.expert_ids = ids;
      g.num_tokens = T;
      g.num_experts = E;
      g.top_k = k;
      g.scoring = LK_MOE_SOFTMAX_TOPK;
      g.dtype = dtype;
      CHECK_STATUS(lk_moe_gating(reference_context(), &g), LK_OK);
      float *full = malloc((size_t)(T * H) * sizeof(float)), *low = malloc((size_t)(T * H) * sizeof(float));
      float *high = malloc((size_t)(T * H) * sizeof(float));
      device_round_trip(dtype, T, E, k, H, block, 0, E, logits, x, full);
      device_round_trip(dtype, T, E, k, H, block, 0, E / 2, logits, x, low);
      device_round_trip(dtype, T, E, k, H, block, E / 2, E, logits, x, high);
      int64_t bad = 0, bad_split = 0;
      const double ulp = dtype == LK_DTYPE_F32 ? 1.2e-7 : dtype == LK_DTYPE_F16 ? 9.8e-4 : 7.9e-3;
      for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < H; i++) {
          double mean = 0.0;
          for (int64_t j = 0; j < k; j++) {
            const double xi = tensor_load(dtype, x, t * H + i);
            mean += (double)dtype_round(dtype, (float)(xi * (double)(ids[t * k + j] + 1))) / (double)k;
          }
          const double got = full[t * H + i], scale = fabs(mean) > 1.0 ? fabs(mean) : 1.0;
          bad += fabs(got - mean) > 2.0 * ulp * scale * (double)E;
          bad_split += fabs((double)low[t * H + i] + (double)high[t * H + i] - got) > 2.0 * ulp * scale * (double)E;
        }
      CHECKF(bad == 0, "%lld outputs are not the mean of their expert rows", (long long)bad);
      CHECKF(bad_split == 0, "%lld outputs of the two expert ranges do not add up to the full combine", (long long)bad_split);
      free(logits);
      free(x);
      free(w);
      free(ids);
      free(full);
      free(low);
      free(high);
      check_context_pop();
    }
}

/* ---- the argument contract ------------------------------------------------------------------------------ */

#define EXPECT_SAME_REFUSAL(cpu_call, cuda_call, name)                                                                     \
  do {                                                                                                                     \
    char cpu_message_[512];                                                                                                \
    const lk_status cpu_status_ = (cpu_call);                                                                              \
    snprintf(cpu_message_, sizeof cpu_message_, "%s", lk_last_error());                                                    \
    if (CHECK_INVALID((cuda_call), name))                                                                                  \
      CHECKF(cpu_status_ == LK_ERR_INVALID_ARGUMENT && strcmp(cpu_message_, lk_last_error()) == 0,                        \
             "CUDA refused with \"%s\", the CPU with \"%s\"", lk_last_error(), cpu_message_);                              \
  } while (0)

static void test_arguments(void) {
  static int32_t ids[64], counts[64], offsets[65], sorted[512], slot_rows[64], blocks[64];
  lk_moe_routing_params rp;
  memset(&rp, 0, sizeof rp);
  rp.expert_ids = ids;
  rp.num_tokens = 8;
  rp.top_k = 2;
  rp.num_experts = 16;
  rp.expert_counts = counts;
  rp.expert_offsets = offsets;
  rp.sorted_slots = sorted;
  rp.sorted_capacity = 16;
  rp.slot_rows = slot_rows;
  CHECK_INVALID(lk_cuda_moe_routing(NULL, NULL), "params");
  lk_moe_routing_params b = rp;
#define ROUTING_REFUSED(name) EXPECT_SAME_REFUSAL(lk_moe_routing(reference_context(), &b), lk_cuda_moe_routing(NULL, &b), name)
  b.top_k = 0;
  ROUTING_REFUSED("top_k");
  b = rp;
  b.num_experts = 0;
  ROUTING_REFUSED("num_experts");
  b = rp;
  b.expert_begin = 16;
  ROUTING_REFUSED("expert_begin");
  b = rp;
  b.expert_begin = 4;
  b.expert_end = 3;
  ROUTING_REFUSED("expert_end");
  b = rp;
  b.block_size = -1;
  ROUTING_REFUSED("block_size");
  b = rp;
  b.block_size = 4;
  ROUTING_REFUSED("sorted_capacity");
  b = rp;
  b.expert_counts = NULL;
  ROUTING_REFUSED("expert_counts");
  b = rp;
  b.sorted_slots = NULL;
  ROUTING_REFUSED("sorted_slots");
  b = rp;
  b.slot_rows = sorted + 4;
  ROUTING_REFUSED("slot_rows|sorted_slots");
  b = rp;
  b.block_size = 2;
  b.sorted_capacity = 64;
  b.block_experts = sorted + 20;
  ROUTING_REFUSED("block_experts|sorted_slots");
  b = rp;
  b.num_tokens = INT32_MAX;
  ROUTING_REFUSED("num_tokens");
  (void)blocks;

  static float input[256], output[256], weights[64];
  lk_moe_permute_params pp;
  memset(&pp, 0, sizeof pp);
  pp.input = input;
  pp.output = output;
  pp.sorted_slots = sorted;
  pp.num_tokens = 4;
  pp.top_k = 2;
  pp.num_rows = 8;
  pp.hidden = 16;
  pp.dtype = LK_DTYPE_F32;
  for (int i = 0; i < 8; i++) sorted[i] = i;
  CHECK_INVALID(lk_cuda_moe_permute(NULL, NULL), "params");
  lk_moe_permute_params pb = pp;
#define PERMUTE_REFUSED(name) EXPECT_SAME_REFUSAL(lk_moe_permute(reference_context(), &pb), lk_cuda_moe_permute(NULL, &pb), name)
  pb.hidden = 0;
  PERMUTE_REFUSED("hidden");
  pb = pp;
  pb.input_stride = 8;
  PERMUTE_REFUSED("input_stride");
  pb = pp;
  pb.output = NULL;
  PERMUTE_REFUSED("output");
  pb = pp;
  pb.input = NULL;
  PERMUTE_REFUSED("input");
  pb = pp;
  pb.output = (float *)(sorted + 2);
  PERMUTE_REFUSED("output");
  pb = pp;
  pb.output = input + 8;
  PERMUTE_REFUSED("output");
  pb = pp;
  pb.dtype = (lk_dtype)5;
  PERMUTE_REFUSED("dtype");
  /* the one difference: without reading the plan, an all-padding call still needs its input */
  pb = pp;
  pb.input = NULL;
  for (int i = 0; i < 8; i++) sorted[i] = -1;
  CHECK_STATUS(lk_moe_permute(reference_context(), &pb), LK_OK);
  CHECK_INVALID(lk_cuda_moe_permute(NULL, &pb), "input");
  pb.num_rows = 0;
  pb.output = NULL;
  CHECK_STATUS(lk_cuda_moe_permute(NULL, &pb), LK_OK);

  lk_moe_combine_params cp;
  memset(&cp, 0, sizeof cp);
  cp.expert_output = input;
  cp.weights = weights;
  cp.slot_rows = slot_rows;
  cp.output = output;
  cp.num_tokens = 4;
  cp.top_k = 2;
  cp.num_rows = 8;
  cp.hidden = 16;
  cp.dtype = LK_DTYPE_BF16;
  for (int i = 0; i < 8; i++) slot_rows[i] = i;
  CHECK_INVALID(lk_cuda_moe_combine(NULL, NULL), "params");
  lk_moe_combine_params cb = cp;
#define COMBINE_REFUSED(name) EXPECT_SAME_REFUSAL(lk_moe_combine(reference_context(), &cb), lk_cuda_moe_combine(NULL, &cb), name)
  cb.top_k = 33;
  COMBINE_REFUSED("top_k");
  cb = cp;
  cb.num_rows = (int64_t)INT32_MAX + 1;
  COMBINE_REFUSED("num_rows");
  cb = cp;
  cb.expert_stride = 3;
  COMBINE_REFUSED("expert_stride");
  cb = cp;
  cb.weights = NULL;
  COMBINE_REFUSED("weights");
  cb = cp;
  cb.output = weights + 1;
  COMBINE_REFUSED("output");
  cb = cp;
  cb.expert_output = NULL;
  COMBINE_REFUSED("expert_output");
  cb = cp;
  cb.num_tokens = -1;
  COMBINE_REFUSED("num_tokens");
  cb = cp;
  cb.num_tokens = 0;
  cb.output = NULL;
  cb.weights = NULL;
  cb.slot_rows = NULL;
  CHECK_STATUS(lk_cuda_moe_combine(NULL, &cb), LK_OK);
}

int main(void) {
  const int devices = cuda_test_begin();
  run_timed("arguments", test_arguments);
  if (devices > 0) {
    run_timed("routing", test_routing);
    run_timed("routing: bad ids", test_routing_bad_ids);
    run_timed("permute", test_permute);
    run_timed("permute: bad slots", test_permute_bad_slots);
    run_timed("combine", test_combine);
    run_timed("combine: bad rows", test_combine_bad_rows);
    run_timed("round trip", test_round_trip);
    printf("%ld routing, %ld permute, %ld combine calls\n", routing_calls, permute_calls, combine_calls);
  }
  return cuda_test_finish("test_cuda_moe_routing", devices);
}
