/* The paged KV cache operations (lk_kv_cache_write, lk_kv_cache_gather, lk_kv_cache_copy_blocks)
 * against plain loops over the same bytes, and their argument contracts.
 *
 * The operations move rows without looking at their values, so inputs are random bytes and every
 * comparison is bitwise, for 2- and 4-byte dtypes, 1 to 3 threads, and block sizes 1, 16 and 32.
 * Caches sit in guarded buffers (a write past the end faults) and are poisoned where nothing
 * should be written. Every invalid call must fail naming its argument and leave the caches and
 * outputs exactly as they were. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

#define MAX_THREADS 3

static lk_cpu_context *contexts[MAX_THREADS + 1];

static void fill_random(void *data, size_t bytes, rng *r) {
  unsigned char *b = (unsigned char *)data;
  for (size_t i = 0; i < bytes; i++) b[i] = (unsigned char)(rng_next(r) >> 56);
}

typedef struct cache_case {
  lk_paged_kv_cache cache;
  guarded_buffer key_memory, value_memory;
  size_t cache_bytes, row_bytes;
} cache_case;

static cache_case make_cache(lk_dtype dtype, int64_t num_blocks, int64_t block_size, int64_t heads, int64_t head_dim, rng *r) {
  cache_case c;
  memset(&c, 0, sizeof c);
  c.row_bytes = (size_t)(heads * head_dim) * (dtype == LK_DTYPE_F32 ? 4 : 2);
  c.cache_bytes = (size_t)(num_blocks * block_size) * c.row_bytes;
  c.key_memory = guarded_alloc(c.cache_bytes, GUARD_EDGE_END);
  c.value_memory = guarded_alloc(c.cache_bytes, GUARD_EDGE_START);
  fill_random(c.key_memory.data, c.cache_bytes, r);
  fill_random(c.value_memory.data, c.cache_bytes, r);
  c.cache = (lk_paged_kv_cache){c.key_memory.data, c.value_memory.data, num_blocks, block_size, heads, head_dim, dtype};
  return c;
}

static void free_cache(cache_case *c) {
  guarded_free(&c->key_memory);
  guarded_free(&c->value_memory);
}

/* Copies of both caches, to compare after a call. */
typedef struct snapshot { unsigned char *key, *value; size_t bytes; } snapshot;
static snapshot take(const cache_case *c) {
  snapshot s = {malloc(c->cache_bytes), malloc(c->cache_bytes), c->cache_bytes};
  memcpy(s.key, c->cache.key_cache, s.bytes);
  memcpy(s.value, c->cache.value_cache, s.bytes);
  return s;
}
static bool unchanged(const cache_case *c, const snapshot *s) {
  return memcmp(s->key, c->cache.key_cache, s->bytes) == 0 && memcmp(s->value, c->cache.value_cache, s->bytes) == 0;
}
static void drop(snapshot *s) {
  free(s->key);
  free(s->value);
}

static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};

/* ---- write -------------------------------------------------------------------------------------- */

static void test_write(void) {
  rng r = rng_seeded(0xC0FFEE01ull);
  static const int64_t block_sizes[] = {1, 16, 32};
  for (int d = 0; d < 3; d++)
    for (int b = 0; b < 3; b++)
      for (int threads = 1; threads <= MAX_THREADS; threads++) {
        const int64_t bs = block_sizes[b], num_blocks = 37, heads = 1 + (d + b) % 3, head_dim = 8 * (1 + threads);
        cache_case c = make_cache(dtypes[d], num_blocks, bs, heads, head_dim, &r);
        const int64_t slots = num_blocks * bs, tokens = slots < 50 ? slots : 50, row = heads * head_dim;
        const int64_t stride = row + (threads == 2 ? 3 : 0);
        const size_t size = dtypes[d] == LK_DTYPE_F32 ? 4 : 2;
        check_context_push("write dtype %d block_size %lld heads %lld head_dim %lld threads %d stride %lld", (int)dtypes[d],
                           (long long)bs, (long long)heads, (long long)head_dim, threads, (long long)stride);
        /* Distinct slots from a shuffled list, every fifth token padding. */
        int64_t *all = malloc((size_t)slots * sizeof *all), *slot_mapping = malloc((size_t)tokens * sizeof *slot_mapping);
        for (int64_t i = 0; i < slots; i++) all[i] = i;
        for (int64_t i = slots - 1; i > 0; i--) {
          int64_t j = rng_below(&r, (uint32_t)(i + 1)), t = all[i];
          all[i] = all[j];
          all[j] = t;
        }
        for (int64_t t = 0; t < tokens; t++) slot_mapping[t] = t % 5 == 4 ? -1 : all[t];
        unsigned char *key = malloc((size_t)(tokens * stride) * size), *value = malloc((size_t)(tokens * stride) * size);
        fill_random(key, (size_t)(tokens * stride) * size, &r);
        fill_random(value, (size_t)(tokens * stride) * size, &r);
        snapshot expected = take(&c);
        for (int64_t t = 0; t < tokens; t++) {
          if (slot_mapping[t] < 0) continue;
          memcpy(expected.key + (size_t)slot_mapping[t] * c.row_bytes, key + (size_t)(t * stride) * size, c.row_bytes);
          memcpy(expected.value + (size_t)slot_mapping[t] * c.row_bytes, value + (size_t)(t * stride) * size, c.row_bytes);
        }
        lk_kv_cache_write_params p = {c.cache, key, value, tokens, stride == row ? 0 : stride, stride == row ? 0 : stride,
                                      slot_mapping};
        CHECK_STATUS(lk_kv_cache_write(contexts[threads], &p), LK_OK);
        CHECKF(unchanged(&c, &expected), "cache differs from the expected rows");
        drop(&expected);
        free(key);
        free(value);
        free(all);
        free(slot_mapping);
        free_cache(&c);
        check_context_pop();
      }
}

static void test_write_arguments(void) {
  rng r = rng_seeded(0xC0FFEE02ull);
  cache_case c = make_cache(LK_DTYPE_BF16, 4, 16, 2, 8, &r);
  const int64_t row = 16, tokens = 6;
  uint16_t key[6 * 16], value[6 * 16];
  fill_random(key, sizeof key, &r);
  fill_random(value, sizeof value, &r);
  int64_t slots[6] = {0, 5, -1, 63, 17, 30};
  snapshot before = take(&c);
  lk_kv_cache_write_params good = {c.cache, key, value, tokens, 0, 0, slots};
#define WRITE_FAILS(mutation, name)                                                                \
  do {                                                                                             \
    lk_kv_cache_write_params p = good;                                                             \
    mutation;                                                                                      \
    CHECK_INVALID(lk_kv_cache_write(contexts[2], &p), name);                                       \
    CHECKF(unchanged(&c, &before), "a failed write changed the cache (%s)", #mutation);            \
  } while (0)
  static const int64_t slot_past_end[6] = {0, 5, -1, 64, 17, 30};
  WRITE_FAILS(p.slot_mapping = slot_past_end, "slot_mapping");
  static const int64_t slot_twice[6] = {0, 5, -1, 63, 17, 5};
  WRITE_FAILS(p.slot_mapping = slot_twice, "slot_mapping");
  WRITE_FAILS(p.cache.key_cache = NULL, "key_cache");
  WRITE_FAILS(p.cache.value_cache = p.cache.key_cache, "value_cache");
  WRITE_FAILS(p.cache.num_blocks = 0, "num_blocks");
  WRITE_FAILS(p.cache.block_size = -1, "block_size");
  WRITE_FAILS(p.cache.num_kv_heads = 0, "num_kv_heads");
  WRITE_FAILS(p.cache.head_dim = 0, "head_dim");
  WRITE_FAILS(p.cache.dtype = (lk_dtype)9, "dtype");
  WRITE_FAILS(p.cache.num_blocks = INT64_MAX / 2, "cache");
  WRITE_FAILS(p.num_tokens = -1, "num_tokens");
  WRITE_FAILS(p.key = NULL, "key");
  WRITE_FAILS(p.value = NULL, "value");
  WRITE_FAILS(p.slot_mapping = NULL, "slot_mapping");
  WRITE_FAILS(p.key_stride = row - 1, "key_stride");
  WRITE_FAILS(p.value_stride = 3, "value_stride");
  WRITE_FAILS(p.key = (const char *)c.cache.key_cache + 64, "key");
  WRITE_FAILS(p.value = c.cache.value_cache, "value");
  CHECK_INVALID(lk_kv_cache_write(contexts[1], NULL), "params");
  /* The message names the token. */
  int64_t out_of_range[6] = {0, 5, -1, 63, 1000, 30};
  lk_kv_cache_write_params p = good;
  p.slot_mapping = out_of_range;
  CHECK(lk_kv_cache_write(contexts[1], &p) == LK_ERR_INVALID_ARGUMENT && strstr(lk_last_error(), "slot_mapping[4]"));
  /* No tokens: nothing to check beyond the cache, nothing written. */
  p = good;
  p.num_tokens = 0;
  p.key = p.value = NULL;
  p.slot_mapping = NULL;
  CHECK_STATUS(lk_kv_cache_write(contexts[1], &p), LK_OK);
  CHECK(unchanged(&c, &before));
#undef WRITE_FAILS
  drop(&before);
  free_cache(&c);
}

/* A write of `tokens` f32 rows of `row` elements to slots (t * step) % slots (distinct when step
 * and slots are coprime), through a 1-thread context: more tokens than its scratch sorts for the
 * duplicate check (32768), so the check marks a bitmap. The write lands row for row. */
typedef struct many_tokens {
  cache_case c;
  int64_t tokens, row, *slot_mapping;
  float *key, *value;
  lk_kv_cache_write_params p;
} many_tokens;

static many_tokens many_tokens_write(int64_t tokens, int64_t blocks, int64_t block_size, int64_t row, int64_t step, rng *r) {
  many_tokens m;
  memset(&m, 0, sizeof m);
  m.c = make_cache(LK_DTYPE_F32, blocks, block_size, 1, row, r);
  m.tokens = tokens;
  m.row = row;
  m.slot_mapping = malloc((size_t)tokens * sizeof *m.slot_mapping);
  for (int64_t t = 0; t < tokens; t++) m.slot_mapping[t] = (t * step) % (blocks * block_size);
  m.key = malloc((size_t)(tokens * row) * sizeof *m.key);
  m.value = malloc((size_t)(tokens * row) * sizeof *m.value);
  fill_random(m.key, (size_t)(tokens * row) * sizeof *m.key, r);
  fill_random(m.value, (size_t)(tokens * row) * sizeof *m.value, r);
  m.p = (lk_kv_cache_write_params){m.c.cache, m.key, m.value, tokens, 0, 0, m.slot_mapping};
  CHECK_STATUS(lk_kv_cache_write(contexts[1], &m.p), LK_OK);
  bool rows_ok = true;
  const size_t bytes = (size_t)row * sizeof(float);
  for (int64_t t = 0; t < tokens; t++)
    rows_ok = rows_ok && memcmp((float *)m.c.cache.key_cache + m.slot_mapping[t] * row, m.key + t * row, bytes) == 0 &&
              memcmp((float *)m.c.cache.value_cache + m.slot_mapping[t] * row, m.value + t * row, bytes) == 0;
  CHECK(rows_ok);
  return m;
}

/* The write with slot_mapping as it is now must fail naming `want`, and write nothing. */
static void many_tokens_refused(const many_tokens *m, const snapshot *before, const char *want) {
  CHECK_INVALID(lk_kv_cache_write(contexts[1], &m->p), "slot_mapping");
  CHECKF(strstr(lk_last_error(), want) != NULL, "message: %s", lk_last_error());
  CHECK(unchanged(&m->c, before));
}

static void many_tokens_free(many_tokens *m) {
  free(m->key);
  free(m->value);
  free(m->slot_mapping);
  free_cache(&m->c);
}

/* A duplicate at the very end is found. */
static void test_write_many_tokens(void) {
  rng r = rng_seeded(0xC0FFEE03ull);
  many_tokens m = many_tokens_write(40000, 2600, 16, 8, 7919, &r);
  snapshot before = take(&m.c);
  m.slot_mapping[m.tokens - 1] = m.slot_mapping[3];
  many_tokens_refused(&m, &before, "slot_mapping[39999]: slot 23757 is also the slot of token 3");
  drop(&before);
  many_tokens_free(&m);
}

/* A cache larger than one bitmap window (4 Mi slots for a 1-thread context, here 4.8 Mi):
 * repeats in the second window, the first token before or after the other, are found and named
 * with both tokens; distinct slots across both windows pass. */
static void test_write_many_tokens_windows(void) {
  rng r = rng_seeded(0xC0FFEE08ull);
  many_tokens m = many_tokens_write(40000, 300000, 16, 1, 104729, &r); /* 104729: a prime */
  int64_t high = -1; /* a token whose slot lies in the second window */
  for (int64_t t = 0; t < m.tokens && high < 0; t++)
    if (m.slot_mapping[t] >= ((int64_t)4 << 20)) high = t;
  CHECK(high >= 0);
  snapshot before = take(&m.c);
  char want[128];
  const int64_t saved = m.slot_mapping[m.tokens - 2];
  m.slot_mapping[m.tokens - 2] = m.slot_mapping[high];
  snprintf(want, sizeof want, "slot_mapping[%lld]: slot %lld is also the slot of token %lld", (long long)(m.tokens - 2),
           (long long)m.slot_mapping[high], (long long)high);
  many_tokens_refused(&m, &before, want);
  m.slot_mapping[m.tokens - 2] = saved;
  m.slot_mapping[0] = m.slot_mapping[high]; /* the repeat's first token is now 0, before `high` */
  snprintf(want, sizeof want, "slot_mapping[%lld]: slot %lld is also the slot of token 0", (long long)high,
           (long long)m.slot_mapping[high]);
  many_tokens_refused(&m, &before, want);
  drop(&before);
  many_tokens_free(&m);
}

/* More copy pairs than the scratch sorts (a 1-thread context), over more blocks than one bitmap
 * window: the copies land, a destination named twice and a source that is a destination are found
 * in either window, and nothing is written on failure. */
static void test_copy_many_blocks(void) {
  rng r = rng_seeded(0xC0FFEE09ull);
  const int64_t pairs = 40000, blocks = (int64_t)5 << 20;
  cache_case c = make_cache(LK_DTYPE_BF16, blocks, 1, 1, 1, &r);
  int64_t *mapping = malloc((size_t)pairs * 2 * sizeof *mapping);
  for (int64_t i = 0; i < pairs; i++) { /* sources low, destinations spread over both windows */
    mapping[2 * i] = i;
    mapping[2 * i + 1] = pairs + (i * 104729) % (blocks - pairs);
  }
  snapshot expected = take(&c);
  for (int64_t i = 0; i < pairs; i++) {
    memcpy(expected.key + mapping[2 * i + 1] * 2, expected.key + mapping[2 * i] * 2, 2);
    memcpy(expected.value + mapping[2 * i + 1] * 2, expected.value + mapping[2 * i] * 2, 2);
  }
  lk_kv_cache_copy_blocks_params p = {c.cache, mapping, pairs};
  CHECK_STATUS(lk_kv_cache_copy_blocks(contexts[1], &p), LK_OK);
  CHECK(unchanged(&c, &expected));
  drop(&expected);
  int64_t high = -1; /* a pair whose destination lies in the second window */
  for (int64_t i = 0; i < pairs && high < 0; i++)
    if (mapping[2 * i + 1] >= ((int64_t)4 << 20)) high = i;
  CHECK(high >= 0);
  snapshot before = take(&c);
  const int64_t saved = mapping[2 * (pairs - 1) + 1];
  mapping[2 * (pairs - 1) + 1] = mapping[2 * high + 1];
  CHECK_INVALID(lk_kv_cache_copy_blocks(contexts[1], &p), "block_mapping");
  char want[160];
  snprintf(want, sizeof want, "block_mapping[%lld][1]: block %lld is already the destination of pair %lld", (long long)(pairs - 1),
           (long long)mapping[2 * high + 1], (long long)high);
  CHECKF(strstr(lk_last_error(), want) != NULL, "message: %s", lk_last_error());
  CHECK(unchanged(&c, &before));
  mapping[2 * (pairs - 1) + 1] = saved;
  mapping[2 * 7] = mapping[2 * high + 1]; /* pair 7 reads what pair `high` writes */
  CHECK_INVALID(lk_kv_cache_copy_blocks(contexts[1], &p), "block_mapping");
  snprintf(want, sizeof want, "block_mapping[7][0]: block %lld is the destination of pair %lld", (long long)mapping[2 * high + 1],
           (long long)high);
  CHECKF(strstr(lk_last_error(), want) != NULL, "message: %s", lk_last_error());
  CHECK(unchanged(&c, &before));
  drop(&before);
  free(mapping);
  free_cache(&c);
}

/* ---- gather ------------------------------------------------------------------------------------- */

static void test_gather(void) {
  rng r = rng_seeded(0xC0FFEE04ull);
  static const int64_t block_sizes[] = {1, 16, 32};
  for (int d = 0; d < 3; d++)
    for (int b = 0; b < 3; b++)
      for (int threads = 1; threads <= MAX_THREADS; threads++) {
        const int64_t bs = block_sizes[b], num_blocks = 64, heads = 2, head_dim = 8 + 8 * d, max_blocks = 5, num_seqs = 6;
        cache_case c = make_cache(dtypes[d], num_blocks, bs, heads, head_dim, &r);
        check_context_push("gather dtype %d block_size %lld threads %d", (int)dtypes[d], (long long)bs, threads);
        /* Lengths 0, 1, a full table, and ragged; tables of shuffled blocks (a block may be shared
         * between sequences, as a common prefix is); unused entries hold garbage ids. */
        int32_t seq_lens[6] = {0, 1, (int32_t)(max_blocks * bs), (int32_t)(2 * bs + 1 < max_blocks * bs ? 2 * bs + 1 : bs),
                               (int32_t)(bs > 1 ? bs - 1 : 1), 3};
        if (seq_lens[5] > max_blocks * bs) seq_lens[5] = (int32_t)(max_blocks * bs);
        int32_t tables[6 * 5];
        for (int64_t i = 0; i < num_seqs * max_blocks; i++) tables[i] = (int32_t)rng_below(&r, (uint32_t)num_blocks);
        for (int64_t s = 0; s < num_seqs; s++)
          for (int64_t j = (seq_lens[s] + bs - 1) / bs; j < max_blocks; j++) tables[s * max_blocks + j] = -7;
        int64_t total = 0;
        for (int64_t s = 0; s < num_seqs; s++) total += seq_lens[s];
        const int64_t capacity = total + 5;
        unsigned char *key_out = malloc((size_t)capacity * c.row_bytes), *value_out = malloc((size_t)capacity * c.row_bytes);
        unsigned char *key_want = malloc((size_t)capacity * c.row_bytes), *value_want = malloc((size_t)capacity * c.row_bytes);
        memset(key_out, 0xA5, (size_t)capacity * c.row_bytes);
        memset(value_out, 0x5A, (size_t)capacity * c.row_bytes);
        memcpy(key_want, key_out, (size_t)capacity * c.row_bytes);
        memcpy(value_want, value_out, (size_t)capacity * c.row_bytes);
        int64_t row = 0;
        for (int64_t s = 0; s < num_seqs; s++)
          for (int64_t i = 0; i < seq_lens[s]; i++, row++) {
            const int64_t slot = tables[s * max_blocks + i / bs] * bs + i % bs;
            memcpy(key_want + (size_t)row * c.row_bytes, (const char *)c.cache.key_cache + (size_t)slot * c.row_bytes, c.row_bytes);
            memcpy(value_want + (size_t)row * c.row_bytes, (const char *)c.cache.value_cache + (size_t)slot * c.row_bytes,
                   c.row_bytes);
          }
        snapshot before = take(&c);
        lk_kv_cache_gather_params p = {c.cache, tables, max_blocks, seq_lens, num_seqs, key_out, value_out, capacity};
        CHECK_STATUS(lk_kv_cache_gather(contexts[threads], &p), LK_OK);
        CHECKF(memcmp(key_out, key_want, (size_t)capacity * c.row_bytes) == 0, "key_out differs (rows past the total included)");
        CHECKF(memcmp(value_out, value_want, (size_t)capacity * c.row_bytes) == 0, "value_out differs");
        CHECK(unchanged(&c, &before));
        drop(&before);
        free(key_out);
        free(value_out);
        free(key_want);
        free(value_want);
        free_cache(&c);
        check_context_pop();
      }
}

static void test_gather_arguments(void) {
  rng r = rng_seeded(0xC0FFEE05ull);
  cache_case c = make_cache(LK_DTYPE_F16, 8, 4, 1, 8, &r);
  int32_t tables[2 * 3] = {7, 2, -1, 0, 1, 5};
  int32_t seq_lens[2] = {6, 12};
  uint16_t key_out[20 * 8], value_out[20 * 8];
  memset(key_out, 0x11, sizeof key_out);
  memset(value_out, 0x22, sizeof value_out);
  uint16_t key_before[20 * 8], value_before[20 * 8];
  memcpy(key_before, key_out, sizeof key_out);
  memcpy(value_before, value_out, sizeof value_out);
  snapshot before = take(&c);
  lk_kv_cache_gather_params good = {c.cache, tables, 3, seq_lens, 2, key_out, value_out, 20};
#define GATHER_FAILS(mutation, name)                                                               \
  do {                                                                                             \
    lk_kv_cache_gather_params p = good;                                                            \
    mutation;                                                                                      \
    CHECK_INVALID(lk_kv_cache_gather(contexts[2], &p), name);                                      \
    CHECKF(memcmp(key_out, key_before, sizeof key_out) == 0 && memcmp(value_out, value_before, sizeof value_out) == 0 && \
               unchanged(&c, &before),                                                             \
           "a failed gather wrote (%s)", #mutation);                                               \
  } while (0)
  static const int32_t block_past_end[6] = {7, 2, -1, 0, 8, 5};
  GATHER_FAILS(p.block_tables = block_past_end, "block_tables");
  static const int32_t block_negative[6] = {7, -2, -1, 0, 1, 5};
  GATHER_FAILS(p.block_tables = block_negative, "block_tables");
  static const int32_t len_past_table[2] = {6, 13};
  GATHER_FAILS(p.seq_lens = len_past_table, "seq_lens");
  static const int32_t len_negative[2] = {-1, 12};
  GATHER_FAILS(p.seq_lens = len_negative, "seq_lens");
  GATHER_FAILS(p.out_tokens = 17, "out_tokens");
  GATHER_FAILS(p.out_tokens = -1, "out_tokens");
  GATHER_FAILS(p.num_seqs = -1, "num_seqs");
  GATHER_FAILS(p.max_blocks_per_seq = -1, "max_blocks_per_seq");
  GATHER_FAILS(p.max_blocks_per_seq = 2, "seq_lens");
  GATHER_FAILS(p.block_tables = NULL, "block_tables");
  GATHER_FAILS(p.seq_lens = NULL, "seq_lens");
  GATHER_FAILS(p.key_out = NULL, "key_out");
  GATHER_FAILS(p.value_out = NULL, "value_out");
  GATHER_FAILS(p.value_out = key_out + 8, "value_out");
  GATHER_FAILS(p.key_out = c.cache.value_cache, "key_out");
  GATHER_FAILS(p.cache.head_dim = -8, "head_dim");
  CHECK_INVALID(lk_kv_cache_gather(contexts[1], NULL), "params");
  /* The message names the table entry: sequence 1, block 1. */
  int32_t bad[6] = {7, 2, -1, 0, 99, 5};
  lk_kv_cache_gather_params p = good;
  p.block_tables = bad;
  CHECK(lk_kv_cache_gather(contexts[1], &p) == LK_ERR_INVALID_ARGUMENT && strstr(lk_last_error(), "block_tables[1][1]"));
  /* Unused entries are not read: a garbage id after a sequence's last block is fine. */
  int32_t garbage[6] = {7, 2, 12345, 0, 1, 5};
  p.block_tables = garbage;
  CHECK_STATUS(lk_kv_cache_gather(contexts[1], &p), LK_OK);
  /* Empty sequences read no table entry: no table, no outputs. */
  int32_t empty[2] = {0, 0};
  p = good;
  p.seq_lens = empty;
  p.block_tables = NULL;
  p.max_blocks_per_seq = 0;
  p.key_out = p.value_out = NULL;
  p.out_tokens = 0;
  CHECK_STATUS(lk_kv_cache_gather(contexts[1], &p), LK_OK);
#undef GATHER_FAILS
  drop(&before);
  free_cache(&c);
}

/* ---- copy blocks -------------------------------------------------------------------------------- */

static void test_copy_blocks(void) {
  rng r = rng_seeded(0xC0FFEE06ull);
  for (int d = 0; d < 3; d++)
    for (int threads = 1; threads <= MAX_THREADS; threads++) {
      const int64_t bs = d == 0 ? 1 : 16 * d, num_blocks = 40;
      cache_case c = make_cache(dtypes[d], num_blocks, bs, 2, 16, &r);
      check_context_push("copy_blocks dtype %d block_size %lld threads %d", (int)dtypes[d], (long long)bs, threads);
      /* Sources 0..9 (one twice), destinations 20..28, and a src == dst no-op. */
      int64_t mapping[11 * 2] = {0, 20, 1, 21, 2, 22, 3, 23, 4, 24, 5, 25, 6, 26, 7, 27, 0, 28, 9, 9, 8, 29};
      snapshot expected = take(&c);
      const size_t block_bytes = (size_t)bs * c.row_bytes;
      for (int i = 0; i < 11; i++) {
        memcpy(expected.key + (size_t)mapping[2 * i + 1] * block_bytes, expected.key + (size_t)mapping[2 * i] * block_bytes,
               block_bytes);
        memcpy(expected.value + (size_t)mapping[2 * i + 1] * block_bytes,
               expected.value + (size_t)mapping[2 * i] * block_bytes, block_bytes);
      }
      lk_kv_cache_copy_blocks_params p = {c.cache, mapping, 11};
      CHECK_STATUS(lk_kv_cache_copy_blocks(contexts[threads], &p), LK_OK);
      CHECK(unchanged(&c, &expected));
      drop(&expected);
      free_cache(&c);
      check_context_pop();
    }
}

static void test_copy_blocks_arguments(void) {
  rng r = rng_seeded(0xC0FFEE07ull);
  cache_case c = make_cache(LK_DTYPE_F32, 10, 16, 1, 8, &r);
  int64_t mapping[3 * 2] = {0, 5, 1, 6, 2, 7};
  snapshot before = take(&c);
  lk_kv_cache_copy_blocks_params good = {c.cache, mapping, 3};
#define COPY_FAILS(mutation, name)                                                                 \
  do {                                                                                             \
    lk_kv_cache_copy_blocks_params p = good;                                                       \
    mutation;                                                                                      \
    CHECK_INVALID(lk_kv_cache_copy_blocks(contexts[2], &p), name);                                 \
    CHECKF(unchanged(&c, &before), "a failed copy wrote (%s)", #mutation);                         \
  } while (0)
  static const int64_t src_past_end[6] = {0, 5, 10, 6, 2, 7};
  COPY_FAILS(p.block_mapping = src_past_end, "block_mapping");
  static const int64_t dst_negative[6] = {0, 5, 1, -6, 2, 7};
  COPY_FAILS(p.block_mapping = dst_negative, "block_mapping");
  static const int64_t dst_twice[6] = {0, 5, 1, 5, 2, 7};
  COPY_FAILS(p.block_mapping = dst_twice, "block_mapping");
  static const int64_t dst_then_src[6] = {0, 5, 5, 6, 2, 7};
  COPY_FAILS(p.block_mapping = dst_then_src, "block_mapping");
  static const int64_t src_then_dst[6] = {7, 5, 1, 6, 2, 7};
  COPY_FAILS(p.block_mapping = src_then_dst, "block_mapping");
  COPY_FAILS(p.num_pairs = -1, "num_pairs");
  COPY_FAILS(p.block_mapping = NULL, "block_mapping");
  COPY_FAILS(p.cache.value_cache = NULL, "value_cache");
  CHECK_INVALID(lk_kv_cache_copy_blocks(contexts[1], NULL), "params");
  /* The message names the pair. */
  int64_t twice[6] = {0, 5, 1, 6, 2, 6};
  lk_kv_cache_copy_blocks_params p = good;
  p.block_mapping = twice;
  CHECK(lk_kv_cache_copy_blocks(contexts[1], &p) == LK_ERR_INVALID_ARGUMENT && strstr(lk_last_error(), "block_mapping[2]"));
  /* A no-op pair may share its block with other pairs, as source or destination. */
  int64_t no_op[6] = {5, 5, 5, 6, 2, 7};
  p.block_mapping = no_op;
  CHECK_STATUS(lk_kv_cache_copy_blocks(contexts[1], &p), LK_OK);
  int64_t no_op_dst[4] = {3, 3, 0, 3};
  p.block_mapping = no_op_dst;
  p.num_pairs = 2;
  CHECK_STATUS(lk_kv_cache_copy_blocks(contexts[1], &p), LK_OK);
#undef COPY_FAILS
  drop(&before);
  free_cache(&c);
}

int main(void) {
  for (int threads = 1; threads <= MAX_THREADS; threads++) {
    lk_cpu_options options = {threads, LK_ISA_AUTO};
    CHECK_STATUS(lk_cpu_context_create(&options, &contexts[threads]), LK_OK);
  }
  run_timed("write", test_write);
  run_timed("write arguments", test_write_arguments);
  run_timed("write, 40000 tokens", test_write_many_tokens);
  run_timed("write, 40000 tokens over two bitmap windows", test_write_many_tokens_windows);
  run_timed("gather", test_gather);
  run_timed("gather arguments", test_gather_arguments);
  run_timed("copy blocks", test_copy_blocks);
  run_timed("copy blocks arguments", test_copy_blocks_arguments);
  run_timed("copy blocks, 40000 pairs over two bitmap windows", test_copy_many_blocks);
  for (int threads = 1; threads <= MAX_THREADS; threads++) lk_cpu_context_destroy(contexts[threads]);
  return check_summary("test_kv_cache");
}
