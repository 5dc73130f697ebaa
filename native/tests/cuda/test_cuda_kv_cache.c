/* lk_cuda_kv_cache_write, lk_cuda_kv_cache_gather and lk_cuda_kv_cache_copy_blocks against the CPU
 * library's scalar reference (test_kv_cache.c checks it against plain loops).
 *
 * The operations move rows without looking at them, so inputs are random bytes and every
 * comparison is of whole buffers, bit for bit: the caches, the outputs including the rows past
 * what a call writes, and the bytes before a misaligned view. Cases cover every dtype, block sizes
 * 1, 16 and 32, rows from 4 bytes to 20 KiB (each access width: 16, 8, 4 and 2 bytes), padded and
 * misaligned token strides and bases, ragged token and sequence counts on both sides of the
 * write's shared-memory slot table (1024 tokens) and of the scan's 1024 sequences a pass, padding
 * slots, shared and garbage block-table entries, and copy pairs that share sources or copy nothing.
 *
 * Bad device indices: each call is reported at the next synchronisation as LK_ERR_INVALID_ARGUMENT
 * naming its argument and index; the valid work is done (the caches or outputs equal the
 * reference of the same call without the bad index), nothing else is written (device buffers end
 * at a guard page, and the whole buffers are compared), and the synchronisation after it is clean.
 * A bad block mapping copies nothing, as on the CPU.
 *
 * The host-visible argument contract is the CPU's: invalid calls fail before any launch, naming
 * the argument with the CPU's message (without a device too: the pointers are never read). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_harness.h"
#include "test_harness.h"

static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};

static void fill_random(void *data, size_t bytes, rng *r) {
  unsigned char *b = (unsigned char *)data;
  for (size_t i = 0; i < bytes; i++) b[i] = (unsigned char)(rng_next(r) >> 56);
}

static void *checked_malloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) {
    fprintf(stderr, "malloc(%zu) failed\n", bytes);
    exit(2);
  }
  return p;
}

static void *host_copy(const void *data, size_t bytes) { return memcpy(checked_malloc(bytes), data, bytes); }

static int64_t differing_bytes(const unsigned char *a, const unsigned char *b, size_t bytes) {
  int64_t n = 0;
  for (size_t i = 0; i < bytes; i++) n += a[i] != b[i];
  return n;
}

/* `bytes` device bytes equal `want`. */
static bool device_equals(const void *device, const void *want, size_t bytes, const char *what) {
  unsigned char *got = checked_malloc(bytes);
  host_from_device(got, device, bytes);
  const int64_t n = differing_bytes(got, want, bytes);
  free(got);
  return CHECKF(n == 0, "%s: %lld bytes differ", what, (long long)n);
}

/* A key and a value cache, on the host and on the device with the same bytes, each view
 * `offset` bytes into its allocation (a misaligned view for offset % 16 != 0). */
typedef struct caches {
  lk_paged_kv_cache host, device;
  unsigned char *host_key, *host_value, *device_key, *device_value; /* the allocations */
  size_t bytes, allocation, row_bytes;
  int64_t slots;
} caches;

static caches make_caches(lk_dtype dtype, int64_t num_blocks, int64_t block_size, int64_t heads, int64_t head_dim, size_t offset, rng *r) {
  caches c;
  memset(&c, 0, sizeof c);
  c.row_bytes = (size_t)(heads * head_dim) * dtype_size(dtype);
  c.slots = num_blocks * block_size;
  c.bytes = (size_t)c.slots * c.row_bytes;
  c.allocation = c.bytes + offset;
  c.host_key = checked_malloc(c.allocation);
  c.host_value = checked_malloc(c.allocation);
  fill_random(c.host_key, c.allocation, r);
  fill_random(c.host_value, c.allocation, r);
  c.device_key = device_mirror(c.host_key, c.allocation);
  c.device_value = device_mirror(c.host_value, c.allocation);
  const lk_paged_kv_cache shape = {NULL, NULL, num_blocks, block_size, heads, head_dim, dtype};
  c.host = c.device = shape;
  c.host.key_cache = c.host_key + offset;
  c.host.value_cache = c.host_value + offset;
  c.device.key_cache = c.device_key + offset;
  c.device.value_cache = c.device_value + offset;
  return c;
}

/* The device caches hold what the host caches hold, every byte of the allocations. */
static void caches_match(const caches *c) {
  device_equals(c->device_key, c->host_key, c->allocation, "key_cache");
  device_equals(c->device_value, c->host_value, c->allocation, "value_cache");
}

static void free_caches(caches *c) {
  free(c->host_key);
  free(c->host_value);
  device_free(c->device_key);
  device_free(c->device_value);
}

/* The synchronisation after a call with one bad index: LK_ERR_INVALID_ARGUMENT naming `name`, the
 * message containing `want`; then a clean one. */
static void expect_reported(const char *name, const char *want) {
  CHECK_INVALID(lk_cuda_stream_synchronize(cuda_test_stream()), name);
  CHECKF(strstr(lk_last_error(), want) != NULL, "message: %s (want %s)", lk_last_error(), want);
  CHECK_STATUS(lk_cuda_stream_synchronize(cuda_test_stream()), LK_OK);
}

/* ---- write --------------------------------------------------------------------------------------- */

typedef struct write_case {
  lk_dtype dtype;
  int64_t block_size, heads, head_dim, tokens;
  int64_t pad;         /* token strides are the row + pad elements (0: stride 0, the default) */
  size_t offset;       /* bytes the key, value and cache views are moved by */
} write_case;

/* Distinct slots from a shuffled list; every fifth token padding (-1), every eleventh -9. */
static int64_t *random_slots(int64_t tokens, int64_t slots, rng *r) {
  int64_t *all = checked_malloc((size_t)slots * sizeof *all), *mapping = checked_malloc((size_t)(tokens ? tokens : 1) * sizeof *mapping);
  for (int64_t i = 0; i < slots; i++) all[i] = i;
  for (int64_t i = slots - 1; i > 0; i--) {
    const int64_t j = rng_below(r, (uint32_t)(i + 1)), t = all[i];
    all[i] = all[j];
    all[j] = t;
  }
  for (int64_t t = 0; t < tokens; t++) mapping[t] = t % 5 == 4 ? -1 : t % 11 == 10 ? -9 : all[t];
  free(all);
  return mapping;
}

typedef struct write_setup {
  write_case c;
  caches cache;
  int64_t row, stride, *slot_mapping, *device_slots;
  unsigned char *key, *value, *device_key, *device_value; /* allocations; views at c.offset */
  size_t input_bytes;
} write_setup;

static write_setup write_begin(const write_case *c, rng *r) {
  write_setup w;
  memset(&w, 0, sizeof w);
  w.c = *c;
  const int64_t num_blocks = (c->tokens + 10 + c->block_size - 1) / c->block_size;
  w.cache = make_caches(c->dtype, num_blocks, c->block_size, c->heads, c->head_dim, c->offset, r);
  w.row = c->heads * c->head_dim;
  w.stride = w.row + c->pad;
  w.input_bytes = c->offset + (size_t)(c->tokens > 0 ? (c->tokens - 1) * w.stride + w.row : 0) * dtype_size(c->dtype);
  w.key = checked_malloc(w.input_bytes);
  w.value = checked_malloc(w.input_bytes);
  fill_random(w.key, w.input_bytes, r);
  fill_random(w.value, w.input_bytes, r);
  w.slot_mapping = random_slots(c->tokens, w.cache.slots, r);
  w.device_key = device_mirror(w.key, w.input_bytes);
  w.device_value = device_mirror(w.value, w.input_bytes);
  w.device_slots = device_mirror(w.slot_mapping, (size_t)c->tokens * sizeof(int64_t));
  return w;
}

/* The device call on the current slot mapping (copied to the device first). */
static lk_status write_on_device(write_setup *w) {
  if (w->c.tokens > 0)
    CHECK_STATUS(lk_cuda_memcpy(w->device_slots, w->slot_mapping, (size_t)w->c.tokens * sizeof(int64_t), LK_CUDA_HOST_TO_DEVICE, NULL),
                 LK_OK);
  const int64_t stride = w->c.pad ? w->stride : 0;
  lk_kv_cache_write_params d = {w->cache.device, w->device_key + w->c.offset, w->device_value + w->c.offset, w->c.tokens, stride, stride,
                                w->device_slots};
  return lk_cuda_kv_cache_write(cuda_test_stream(), &d);
}

/* The reference on the host caches, with slot_mapping as given. */
static void write_reference(write_setup *w, const int64_t *slot_mapping) {
  const int64_t stride = w->c.pad ? w->stride : 0;
  lk_kv_cache_write_params h = {w->cache.host, w->key + w->c.offset, w->value + w->c.offset, w->c.tokens, stride, stride, slot_mapping};
  CHECK_STATUS(lk_kv_cache_write(reference_context(), &h), LK_OK);
}

static void write_end(write_setup *w) {
  device_equals(w->device_key, w->key, w->input_bytes, "key (an input)");
  device_equals(w->device_value, w->value, w->input_bytes, "value (an input)");
  free_caches(&w->cache);
  free(w->key);
  free(w->value);
  free(w->slot_mapping);
  device_free(w->device_key);
  device_free(w->device_value);
  device_free(w->device_slots);
}

static void push_write_case(const write_case *c) {
  check_context_push("write dtype %s block_size %lld heads %lld head_dim %lld tokens %lld pad %lld offset %zu", dtype_label(c->dtype),
                     (long long)c->block_size, (long long)c->heads, (long long)c->head_dim, (long long)c->tokens, (long long)c->pad,
                     c->offset);
}

static void run_write_case(const write_case *c, uint64_t seed) {
  push_write_case(c);
  rng r = rng_seeded(seed);
  write_setup w = write_begin(c, &r);
  write_reference(&w, w.slot_mapping);
  CHECK_STATUS(write_on_device(&w), LK_OK);
  cuda_test_sync();
  caches_match(&w.cache);
  write_end(&w);
  check_context_pop();
}

static void test_write(void) {
  /* (heads, head_dim) per dtype: rows of 4 B to 20 KiB, every access width */
  static const int64_t shapes[][2] = {{1, 1}, {1, 4}, {3, 5}, {2, 8}, {8, 128}, {4, 256}, {40, 128}};
  static const int64_t tokens[] = {1, 7, 33, 257, 1024, 1025, 3000};
  static const int64_t block_sizes[] = {1, 16, 32};
  uint64_t seed = 1;
  for (int d = 0; d < 3; d++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (size_t t = 0; t < sizeof tokens / sizeof tokens[0]; t++) {
        write_case c;
        memset(&c, 0, sizeof c);
        c.dtype = dtypes[d];
        c.heads = shapes[s][0];
        c.head_dim = shapes[s][1];
        c.tokens = tokens[t];
        /* the big rows with the small counts only: the emulator copies byte by byte */
        if (c.heads * c.head_dim >= 1024 && c.tokens > 257) continue;
        c.block_size = block_sizes[(seed + t) % 3];
        /* layouts in turn: contiguous, padded token strides, misaligned views */
        const int layout = (int)((s + t + (size_t)d) % 3);
        c.pad = layout == 1 ? 3 : 0;
        c.offset = layout == 2 ? dtype_size(c.dtype) : 0;
        run_write_case(&c, seed++);
      }
}

/* Bad slots at the given tokens: reported (the first such token named), skipped, the rest written. */
static void write_bad_slots(const write_case *c, const int64_t *tokens, int count, int64_t (*bad_slot)(int64_t slots, int i),
                            uint64_t seed) {
  push_write_case(c);
  rng r = rng_seeded(seed);
  write_setup w = write_begin(c, &r);
  int64_t *fixed = host_copy(w.slot_mapping, (size_t)c->tokens * sizeof(int64_t));
  for (int i = 0; i < count; i++) {
    w.slot_mapping[tokens[i]] = bad_slot(w.cache.slots, i);
    fixed[tokens[i]] = -1;
  }
  write_reference(&w, fixed);
  CHECK_STATUS(write_on_device(&w), LK_OK);
  char want[128];
  snprintf(want, sizeof want, "slot_mapping[%lld]: slot %lld is outside", (long long)tokens[0], (long long)bad_slot(w.cache.slots, 0));
  if (count == 1) expect_reported("slot_mapping", want);
  else expect_reported("slot_mapping", "is outside the cache");
  caches_match(&w.cache);
  free(fixed);
  write_end(&w);
  check_context_pop();
}

static int64_t slot_just_past(int64_t slots, int i) { return slots + i; }
static int64_t slot_far_past(int64_t slots, int i) { return i % 2 ? slots * 1000003 : INT64_MAX - i; }

/* Tokens `later[i]` given the slot of `earlier[i]`: each later one reported and skipped, the first
 * token naming a slot writes it (the reference of the call without the later ones). */
static void write_repeats(const write_case *c, const int64_t *earlier, const int64_t *later, int count, uint64_t seed) {
  push_write_case(c);
  rng r = rng_seeded(seed);
  write_setup w = write_begin(c, &r);
  int64_t *target = checked_malloc((size_t)count * sizeof *target);
  for (int i = 0; i < count; i++) {
    if (w.slot_mapping[earlier[i]] < 0) w.slot_mapping[earlier[i]] = w.slot_mapping[earlier[i] + 1] >= 0 ? w.slot_mapping[earlier[i] + 1] : 0;
    target[i] = w.slot_mapping[earlier[i]];
  }
  /* the targets are the earlier tokens' alone (any other holder becomes padding), then the later
   * tokens' too */
  for (int64_t t = 0; t < c->tokens; t++) {
    bool is_earlier = false;
    for (int i = 0; i < count; i++) is_earlier = is_earlier || t == earlier[i];
    for (int i = 0; i < count && !is_earlier; i++)
      if (w.slot_mapping[t] == target[i]) w.slot_mapping[t] = -1;
  }
  for (int i = 0; i < count; i++) w.slot_mapping[later[i]] = target[i];
  int64_t *fixed = host_copy(w.slot_mapping, (size_t)c->tokens * sizeof(int64_t));
  for (int i = 0; i < count; i++) fixed[later[i]] = -1;
  free(target);
  write_reference(&w, fixed);
  CHECK_STATUS(write_on_device(&w), LK_OK);
  char want[128];
  snprintf(want, sizeof want, "slot_mapping[%lld]: slot %lld is slot_mapping[%lld]'s too", (long long)later[0],
           (long long)w.slot_mapping[later[0]], (long long)earlier[0]);
  if (count == 1) expect_reported("slot_mapping", want);
  else expect_reported("slot_mapping", "two tokens name one slot");
  caches_match(&w.cache);
  free(fixed);
  write_end(&w);
  check_context_pop();
}

static void test_write_bad_indices(void) {
  /* the shared-memory table (<= 1024 tokens) and the scratch one */
  const write_case small = {LK_DTYPE_BF16, 16, 2, 8, 300, 0, 0}, large = {LK_DTYPE_F32, 16, 1, 8, 2500, 3, 4};
  const write_case *cases[2] = {&small, &large};
  uint64_t seed = 100;
  for (int k = 0; k < 2; k++) {
    const write_case *c = cases[k];
    const int64_t one[1] = {c->tokens / 2}, last[1] = {c->tokens - 1}, several[4] = {3, 7, c->tokens / 3, c->tokens - 2};
    write_bad_slots(c, one, 1, slot_just_past, seed++);
    write_bad_slots(c, last, 1, slot_far_past, seed++);
    write_bad_slots(c, several, 4, slot_far_past, seed++);
    const int64_t first[1] = {0}, second[1] = {c->tokens - 1};
    write_repeats(c, first, second, 1, seed++);
    const int64_t a[1] = {c->tokens / 2 + 1}, b[1] = {c->tokens / 2 + 6};
    write_repeats(c, a, b, 1, seed++);
    /* three tokens on one slot (the first keeps it), and a second repeated slot */
    const int64_t e3[3] = {2, 2, 5}, l3[3] = {c->tokens - 3, c->tokens / 2 + 2, 6};
    write_repeats(c, e3, l3, 3, seed++);
  }
  /* a repeat inside one block's rows and a bad slot in the same call: both skipped, either reported */
  const write_case c = {LK_DTYPE_F16, 1, 1, 16, 40, 0, 0};
  rng r = rng_seeded(seed++);
  write_setup w = write_begin(&c, &r);
  w.slot_mapping[1] = 0;
  w.slot_mapping[2] = 0;
  w.slot_mapping[3] = w.cache.slots;
  for (int64_t t = 0; t < c.tokens; t++)
    if (t != 1 && t != 2 && w.slot_mapping[t] == 0) w.slot_mapping[t] = -1;
  int64_t *fixed = host_copy(w.slot_mapping, (size_t)c.tokens * sizeof(int64_t));
  fixed[2] = fixed[3] = -1;
  write_reference(&w, fixed);
  CHECK_STATUS(write_on_device(&w), LK_OK);
  CHECK_INVALID(lk_cuda_stream_synchronize(cuda_test_stream()), "slot_mapping");
  CHECK_STATUS(lk_cuda_stream_synchronize(cuda_test_stream()), LK_OK);
  caches_match(&w.cache);
  free(fixed);
  write_end(&w);
}

/* ---- gather -------------------------------------------------------------------------------------- */

/* What the device does with a gather's indices, valid or not (docs/cuda/kv-cache.md): sequence s
 * starts at the sum of the earlier lengths (negative ones as 0); a sequence whose length is
 * negative, past its table or past out_tokens writes nothing; a table entry outside the cache
 * skips its block's rows. With valid indices this is lk_kv_cache_gather (test_gather checks). */
static void gather_model(const lk_paged_kv_cache *cache, const int32_t *tables, int64_t max_blocks, const int32_t *seq_lens, int64_t num_seqs,
                         unsigned char *key_out, unsigned char *value_out, int64_t out_tokens) {
  const size_t row = (size_t)(cache->num_kv_heads * cache->head_dim) * dtype_size(cache->dtype);
  const int64_t bs = cache->block_size;
  int64_t start = 0;
  for (int64_t s = 0; s < num_seqs; s++) {
    const int64_t len = seq_lens[s];
    if (len >= 0 && len <= max_blocks * bs && start + len <= out_tokens)
      for (int64_t i = 0; i < len; i++) {
        const int64_t block = tables[s * max_blocks + i / bs];
        if (block < 0 || block >= cache->num_blocks) continue;
        const size_t from = (size_t)(block * bs + i % bs) * row;
        memcpy(key_out + (size_t)(start + i) * row, (const unsigned char *)cache->key_cache + from, row);
        memcpy(value_out + (size_t)(start + i) * row, (const unsigned char *)cache->value_cache + from, row);
      }
    start += len > 0 ? len : 0;
  }
}

typedef struct gather_case {
  lk_dtype dtype;
  int64_t block_size, heads, head_dim, num_seqs, max_blocks, slack; /* out_tokens = total + slack */
  size_t offset;                                                    /* bytes the output views are moved by */
} gather_case;

typedef struct gather_setup {
  gather_case c;
  caches cache;
  int32_t *tables, *seq_lens, *device_tables, *device_seq_lens;
  int64_t total, out_tokens;
  size_t out_bytes; /* each output allocation: offset + out_tokens rows */
  unsigned char *key_out, *value_out, *device_key_out, *device_value_out;
} gather_setup;

static void push_gather_case(const gather_case *c) {
  check_context_push("gather dtype %s block_size %lld heads %lld head_dim %lld num_seqs %lld max_blocks %lld slack %lld offset %zu",
                     dtype_label(c->dtype), (long long)c->block_size, (long long)c->heads, (long long)c->head_dim,
                     (long long)c->num_seqs, (long long)c->max_blocks, (long long)c->slack, c->offset);
}

/* Lengths 0, 1, a full table, a block and one, a block less one and random; tables of random
 * blocks (shared between sequences, as a common prefix is), unused entries garbage. */
static gather_setup gather_begin(const gather_case *c, rng *r) {
  gather_setup g;
  memset(&g, 0, sizeof g);
  g.c = *c;
  const int64_t bs = c->block_size, covered = c->max_blocks * bs, num_blocks = 3 + c->num_seqs * c->max_blocks / 2;
  g.cache = make_caches(c->dtype, num_blocks, bs, c->heads, c->head_dim, 0, r);
  g.seq_lens = checked_malloc((size_t)c->num_seqs * sizeof(int32_t));
  g.tables = checked_malloc((size_t)(c->num_seqs * c->max_blocks) * sizeof(int32_t));
  for (int64_t s = 0; s < c->num_seqs; s++) {
    const int64_t pick[6] = {0, 1, covered, bs + 1, bs - 1, (int64_t)rng_below(r, (uint32_t)covered + 1)};
    int64_t len = pick[s % 6];
    if (len > covered) len = covered;
    g.seq_lens[s] = (int32_t)len;
    for (int64_t j = 0; j < c->max_blocks; j++)
      g.tables[s * c->max_blocks + j] = j < (len + bs - 1) / bs ? (int32_t)rng_below(r, (uint32_t)num_blocks) : (j % 2 ? -7 : 99999);
    g.total += len;
  }
  g.out_tokens = g.total + c->slack;
  const size_t row = g.cache.row_bytes;
  g.out_bytes = c->offset + (size_t)g.out_tokens * row;
  g.key_out = checked_malloc(g.out_bytes ? g.out_bytes : 1);
  g.value_out = checked_malloc(g.out_bytes ? g.out_bytes : 1);
  memset(g.key_out, 0xA5, g.out_bytes);
  memset(g.value_out, 0x5A, g.out_bytes);
  g.device_key_out = device_mirror(g.key_out, g.out_bytes);
  g.device_value_out = device_mirror(g.value_out, g.out_bytes);
  g.device_tables = device_mirror(g.tables, (size_t)(c->num_seqs * c->max_blocks) * sizeof(int32_t));
  g.device_seq_lens = device_mirror(g.seq_lens, (size_t)c->num_seqs * sizeof(int32_t));
  return g;
}

/* New outputs of out_tokens rows (the poison again), on the host and on the device. */
static void gather_resize_outputs(gather_setup *g, int64_t out_tokens) {
  g->out_tokens = out_tokens;
  g->out_bytes = g->c.offset + (size_t)out_tokens * g->cache.row_bytes;
  free(g->key_out);
  free(g->value_out);
  device_free(g->device_key_out);
  device_free(g->device_value_out);
  g->key_out = checked_malloc(g->out_bytes);
  g->value_out = checked_malloc(g->out_bytes);
  memset(g->key_out, 0xA5, g->out_bytes);
  memset(g->value_out, 0x5A, g->out_bytes);
  g->device_key_out = device_mirror(g->key_out, g->out_bytes);
  g->device_value_out = device_mirror(g->value_out, g->out_bytes);
}

static lk_status gather_on_device(gather_setup *g) {
  const size_t table_bytes = (size_t)(g->c.num_seqs * g->c.max_blocks) * sizeof(int32_t);
  if (table_bytes) CHECK_STATUS(lk_cuda_memcpy(g->device_tables, g->tables, table_bytes, LK_CUDA_HOST_TO_DEVICE, NULL), LK_OK);
  if (g->c.num_seqs)
    CHECK_STATUS(lk_cuda_memcpy(g->device_seq_lens, g->seq_lens, (size_t)g->c.num_seqs * sizeof(int32_t), LK_CUDA_HOST_TO_DEVICE, NULL),
                 LK_OK);
  lk_kv_cache_gather_params d = {g->cache.device,
                                 g->device_tables,
                                 g->c.max_blocks,
                                 g->device_seq_lens,
                                 g->c.num_seqs,
                                 g->out_tokens ? g->device_key_out + g->c.offset : NULL,
                                 g->out_tokens ? g->device_value_out + g->c.offset : NULL,
                                 g->out_tokens};
  return lk_cuda_kv_cache_gather(cuda_test_stream(), &d);
}

static void gather_end(gather_setup *g) {
  caches_match(&g->cache); /* read only */
  free_caches(&g->cache);
  free(g->seq_lens);
  free(g->tables);
  free(g->key_out);
  free(g->value_out);
  device_free(g->device_key_out);
  device_free(g->device_value_out);
  device_free(g->device_tables);
  device_free(g->device_seq_lens);
}

static void outputs_match(const gather_setup *g, const unsigned char *key_want, const unsigned char *value_want) {
  device_equals(g->device_key_out, key_want, g->out_bytes, "key_out (its rows past the total and the bytes before the view included)");
  device_equals(g->device_value_out, value_want, g->out_bytes, "value_out");
}

static void run_gather_case(const gather_case *c, uint64_t seed) {
  push_gather_case(c);
  rng r = rng_seeded(seed);
  gather_setup g = gather_begin(c, &r);
  unsigned char *key_model = host_copy(g.key_out, g.out_bytes), *value_model = host_copy(g.value_out, g.out_bytes);
  lk_kv_cache_gather_params h = {g.cache.host, g.tables, c->max_blocks, g.seq_lens, c->num_seqs,
                                 g.key_out + c->offset, g.value_out + c->offset, g.out_tokens};
  CHECK_STATUS(lk_kv_cache_gather(reference_context(), &h), LK_OK);
  gather_model(&g.cache.host, g.tables, c->max_blocks, g.seq_lens, c->num_seqs, key_model + c->offset, value_model + c->offset,
               g.out_tokens);
  CHECKF(memcmp(key_model, g.key_out, g.out_bytes) == 0 && memcmp(value_model, g.value_out, g.out_bytes) == 0,
         "the test's model of the device gather differs from lk_kv_cache_gather on valid indices");
  CHECK_STATUS(gather_on_device(&g), LK_OK);
  cuda_test_sync();
  outputs_match(&g, g.key_out, g.value_out);
  free(key_model);
  free(value_model);
  gather_end(&g);
  check_context_pop();
}

static void test_gather(void) {
  static const int64_t shapes[][2] = {{1, 4}, {3, 5}, {2, 8}, {8, 128}, {40, 128}};
  static const int64_t block_sizes[] = {1, 16, 32};
  static const int64_t seq_counts[] = {1, 6, 37};
  uint64_t seed = 1000;
  for (int d = 0; d < 3; d++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (size_t b = 0; b < 3; b++)
        for (size_t n = 0; n < sizeof seq_counts / sizeof seq_counts[0]; n++) {
          gather_case c;
          memset(&c, 0, sizeof c);
          c.dtype = dtypes[d];
          c.heads = shapes[s][0];
          c.head_dim = shapes[s][1];
          c.block_size = block_sizes[b];
          c.num_seqs = seq_counts[n];
          if (c.heads * c.head_dim >= 1024 && (c.num_seqs > 6 || c.block_size > 16)) continue;
          c.max_blocks = 1 + (int64_t)((seed + n) % 5);
          c.slack = (int64_t)(seed % 3) * 5;
          c.offset = (seed + s) % 3 == 1 ? dtype_size(c.dtype) : 0;
          run_gather_case(&c, seed++);
        }
  /* more sequences than the scan's 1024 a pass */
  const gather_case many = {LK_DTYPE_BF16, 16, 1, 8, 2500, 2, 7, 0};
  run_gather_case(&many, seed++);
  const gather_case one_token_blocks = {LK_DTYPE_F32, 1, 2, 4, 1100, 3, 0, 4};
  run_gather_case(&one_token_blocks, seed++);
}

/* One gather with `mutate` applied to its indices: reported as `name`, message containing `want`;
 * the outputs as the model says (the valid rows written, nothing else). */
static void gather_bad(const gather_case *c, void (*mutate)(gather_setup *g, char *want, size_t want_bytes), const char *name,
                       uint64_t seed) {
  push_gather_case(c);
  rng r = rng_seeded(seed);
  gather_setup g = gather_begin(c, &r);
  char want[160];
  mutate(&g, want, sizeof want);
  unsigned char *key_model = host_copy(g.key_out, g.out_bytes), *value_model = host_copy(g.value_out, g.out_bytes);
  gather_model(&g.cache.host, g.tables, c->max_blocks, g.seq_lens, c->num_seqs, key_model + c->offset, value_model + c->offset,
               g.out_tokens);
  CHECK_STATUS(gather_on_device(&g), LK_OK);
  expect_reported(name, want);
  outputs_match(&g, key_model, value_model);
  free(key_model);
  free(value_model);
  gather_end(&g);
  check_context_pop();
}

/* Sequence 2 (a full table) and its block 1 in each mutation. */
static void entry_past_end(gather_setup *g, char *want, size_t n) {
  g->tables[2 * g->c.max_blocks + 1] = (int32_t)g->cache.device.num_blocks;
  snprintf(want, n, "block_tables[2][1]: block %lld is outside", (long long)g->cache.device.num_blocks);
}
static void entry_negative(gather_setup *g, char *want, size_t n) {
  g->tables[2 * g->c.max_blocks + 1] = -3;
  snprintf(want, n, "block_tables[2][1]: block -3 is outside");
}
static void length_negative(gather_setup *g, char *want, size_t n) {
  g->seq_lens[3] = -5;
  snprintf(want, n, "seq_lens[3]: -5 is negative");
}
static void length_past_table(gather_setup *g, char *want, size_t n) {
  const int32_t old = g->seq_lens[3];
  g->seq_lens[3] = (int32_t)(g->c.max_blocks * g->c.block_size + 1);
  g->total += g->seq_lens[3] - old; /* the rows it claims: later sequences keep their places */
  gather_resize_outputs(g, g->total + g->c.slack);
  snprintf(want, n, "seq_lens[3]: %d is negative or needs more than", (int)g->seq_lens[3]);
}
/* out_tokens ends inside sequence 4: it and every later non-empty sequence write nothing; the
 * output allocation ends at out_tokens (a guard page behind it). */
static void outputs_too_short(gather_setup *g, char *want, size_t n) {
  int64_t start = 0;
  for (int s = 0; s < 4; s++) start += g->seq_lens[s];
  if (g->seq_lens[4] == 0) g->seq_lens[4] = 1, g->total++;
  gather_resize_outputs(g, start + g->seq_lens[4] - 1);
  snprintf(want, n, "seq_lens[4]: %d is negative or needs more than max_blocks_per_seq * block_size = %d tokens", (int)g->seq_lens[4],
           (int)g->seq_lens[4] - 1);
}

static void test_gather_bad_indices(void) {
  const gather_case cases[2] = {{LK_DTYPE_F16, 16, 2, 8, 9, 3, 4, 0}, {LK_DTYPE_F32, 1, 1, 8, 1500, 4, 0, 4}};
  uint64_t seed = 2000;
  for (int k = 0; k < 2; k++) {
    gather_bad(&cases[k], entry_past_end, "block_tables", seed++);
    gather_bad(&cases[k], entry_negative, "block_tables", seed++);
    gather_bad(&cases[k], length_negative, "seq_lens", seed++);
    gather_bad(&cases[k], length_past_table, "seq_lens", seed++);
    gather_bad(&cases[k], outputs_too_short, "seq_lens", seed++);
  }
  /* empty sequences need no table and no outputs */
  int32_t empty[2] = {0, 0};
  int32_t *device_empty = device_mirror(empty, sizeof empty);
  rng r = rng_seeded(seed);
  caches c = make_caches(LK_DTYPE_BF16, 4, 16, 1, 8, 0, &r);
  lk_kv_cache_gather_params p = {c.device, NULL, 0, device_empty, 2, NULL, NULL, 0};
  CHECK_STATUS(lk_cuda_kv_cache_gather(cuda_test_stream(), &p), LK_OK);
  cuda_test_sync();
  /* and lengths past an empty table are reported */
  empty[1] = 1;
  CHECK_STATUS(lk_cuda_memcpy(device_empty, empty, sizeof empty, LK_CUDA_HOST_TO_DEVICE, NULL), LK_OK);
  CHECK_STATUS(lk_cuda_kv_cache_gather(cuda_test_stream(), &p), LK_OK);
  expect_reported("seq_lens", "seq_lens[1]: 1 is negative or needs more than max_blocks_per_seq * block_size = 0 tokens");
  caches_match(&c);
  free_caches(&c);
  device_free(device_empty);
}

/* ---- copy blocks --------------------------------------------------------------------------------- */

typedef struct copy_case {
  lk_dtype dtype;
  int64_t block_size, heads, head_dim, num_pairs;
  size_t offset;      /* bytes the cache views are moved by */
  int64_t num_blocks; /* 0: 2 num_pairs + 3 */
} copy_case;

static void push_copy_case(const copy_case *c) {
  check_context_push("copy_blocks dtype %s block_size %lld heads %lld head_dim %lld pairs %lld offset %zu", dtype_label(c->dtype),
                     (long long)c->block_size, (long long)c->heads, (long long)c->head_dim, (long long)c->num_pairs, c->offset);
}

/* Sources from [0, pairs), some twice; destinations distinct in [pairs, 2 pairs); every seventh
 * pair a src == dst no-op, some of them on another pair's source or destination. */
static int64_t *random_pairs(int64_t pairs, rng *r) {
  int64_t *mapping = checked_malloc((size_t)pairs * 2 * sizeof *mapping);
  for (int64_t i = 0; i < pairs; i++) {
    mapping[2 * i] = i % 4 == 3 ? (int64_t)rng_below(r, (uint32_t)pairs) : i;
    mapping[2 * i + 1] = pairs + (i * 7919) % pairs;
  }
  for (int64_t i = 6; i < pairs; i += 7) mapping[2 * i] = mapping[2 * i + 1] = i % 2 ? mapping[2 * (i - 1)] : mapping[2 * (i - 2) + 1];
  return mapping;
}

static void run_copy(const copy_case *c, int64_t *mapping, const char *bad_name, const char *want, uint64_t seed) {
  push_copy_case(c);
  rng r = rng_seeded(seed);
  caches cache = make_caches(c->dtype, c->num_blocks ? c->num_blocks : 2 * c->num_pairs + 3, c->block_size, c->heads, c->head_dim, c->offset, &r);
  int64_t *device_mapping = device_mirror(mapping, (size_t)c->num_pairs * 2 * sizeof(int64_t));
  if (!bad_name) {
    lk_kv_cache_copy_blocks_params h = {cache.host, mapping, c->num_pairs};
    CHECK_STATUS(lk_kv_cache_copy_blocks(reference_context(), &h), LK_OK);
  }
  lk_kv_cache_copy_blocks_params d = {cache.device, device_mapping, c->num_pairs};
  CHECK_STATUS(lk_cuda_kv_cache_copy_blocks(cuda_test_stream(), &d), LK_OK);
  if (bad_name) expect_reported(bad_name, want);
  else cuda_test_sync();
  caches_match(&cache); /* a bad mapping: the caches as they were */
  free_caches(&cache);
  device_free(device_mapping);
  check_context_pop();
}

static void test_copy_blocks(void) {
  static const int64_t shapes[][2] = {{1, 4}, {3, 5}, {2, 16}, {8, 128}};
  static const int64_t block_sizes[] = {1, 16, 32};
  static const int64_t pair_counts[] = {1, 11, 300};
  uint64_t seed = 3000;
  for (int d = 0; d < 3; d++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (size_t b = 0; b < 3; b++)
        for (size_t n = 0; n < sizeof pair_counts / sizeof pair_counts[0]; n++) {
          copy_case c = {dtypes[d], block_sizes[b], shapes[s][0], shapes[s][1], pair_counts[n], 0, 0};
          if (c.heads * c.head_dim >= 1024 && c.num_pairs * c.block_size > 400) continue;
          c.offset = (seed + b) % 3 == 1 ? dtype_size(c.dtype) : 0;
          rng r = rng_seeded(seed);
          int64_t *mapping = random_pairs(c.num_pairs, &r);
          run_copy(&c, mapping, NULL, NULL, seed++);
          free(mapping);
        }
  /* the CPU test's pairs: sources 0..9 (one twice), destinations 20..28, a no-op */
  int64_t mapping[11 * 2] = {0, 20, 1, 21, 2, 22, 3, 23, 4, 24, 5, 25, 6, 26, 7, 27, 0, 28, 9, 9, 8, 29};
  const copy_case c = {LK_DTYPE_BF16, 16, 2, 16, 11, 0, 40};
  run_copy(&c, mapping, NULL, NULL, seed++);
  /* many pairs: a larger table, several passes */
  const copy_case many = {LK_DTYPE_F16, 1, 1, 8, 4000, 0, 0};
  rng r = rng_seeded(seed);
  int64_t *pairs = random_pairs(many.num_pairs, &r);
  run_copy(&many, pairs, NULL, NULL, seed++);
  free(pairs);
}

static void test_copy_blocks_bad_indices(void) {
  const copy_case c = {LK_DTYPE_F32, 16, 1, 8, 3, 0, 0}; /* 9 blocks */
  uint64_t seed = 4000;
  int64_t src_past_end[6] = {0, 5, 9, 6, 2, 7};
  run_copy(&c, src_past_end, "block_mapping", "block_mapping[1][0]: block 9 is outside [0, num_blocks = 9)", seed++);
  int64_t dst_negative[6] = {0, 5, 1, -6, 2, 7};
  run_copy(&c, dst_negative, "block_mapping", "block_mapping[1][1]: block -6 is outside", seed++);
  int64_t first_of_two[6] = {0, 5, 1, 6, 99, -1}; /* the first in order is named */
  run_copy(&c, first_of_two, "block_mapping", "block_mapping[2][0]: block 99 is outside", seed++);
  int64_t dst_twice[6] = {0, 5, 1, 5, 2, 7};
  run_copy(&c, dst_twice, "block_mapping", "block_mapping[1]: block 5 is named by pair 0 too", seed++);
  int64_t dst_then_src[6] = {0, 5, 5, 6, 2, 7};
  run_copy(&c, dst_then_src, "block_mapping", "block_mapping[1]: block 5 is named by pair 0 too", seed++);
  int64_t src_then_dst[6] = {7, 5, 1, 6, 2, 7};
  run_copy(&c, src_then_dst, "block_mapping", "block_mapping[0]: block 7 is named by pair 2 too", seed++);
  int64_t bounds_first[6] = {0, 5, 1, 5, 2, 9}; /* a repeat and a bound: the bound, as on the CPU */
  run_copy(&c, bounds_first, "block_mapping", "block_mapping[2][1]: block 9 is outside", seed++);
  /* no-op pairs take no part: shared blocks are fine */
  int64_t no_op[6] = {5, 5, 5, 6, 2, 7};
  run_copy(&c, no_op, NULL, NULL, seed++);
  int64_t no_op_dst[6] = {3, 3, 0, 3, 4, 4};
  run_copy(&c, no_op_dst, NULL, NULL, seed++);
  /* many pairs, the repeat far into them */
  const copy_case many = {LK_DTYPE_BF16, 1, 1, 4, 3000, 0, 0};
  rng r = rng_seeded(seed);
  int64_t *pairs = random_pairs(many.num_pairs, &r);
  for (int64_t i = 6; i < many.num_pairs; i += 7) pairs[2 * i] = pairs[2 * i + 1] = 0; /* no-ops out of the way */
  pairs[2 * 2990 + 1] = pairs[2 * 1234 + 1];
  char want[96];
  snprintf(want, sizeof want, "block_mapping[2990]: block %lld is named by pair 1234 too", (long long)pairs[2 * 1234 + 1]);
  run_copy(&many, pairs, "block_mapping", want, seed++);
  free(pairs);
}

/* ---- the host-visible contract ------------------------------------------------------------------ */

/* Both backends refuse the call with the same message. */
#define SAME_REFUSAL(cpu_call, cuda_call, name)                                                          \
  do {                                                                                                 \
    CHECK_INVALID(cpu_call, name);                                                                     \
    char cpu_message_[512];                                                                            \
    snprintf(cpu_message_, sizeof cpu_message_, "%s", lk_last_error());                                \
    CHECK_INVALID(cuda_call, name);                                                                    \
    CHECKF(strcmp(cpu_message_, lk_last_error()) == 0, "CPU: %s; CUDA: %s", cpu_message_, lk_last_error()); \
  } while (0)

static unsigned char key_memory[4 * 16 * 16 * 4], value_memory[4 * 16 * 16 * 4], rows[64 * 16 * 4];

static lk_paged_kv_cache dummy_cache(void) {
  const lk_paged_kv_cache c = {key_memory, value_memory, 4, 16, 2, 8, LK_DTYPE_F32};
  return c;
}

static void test_write_arguments(void) {
  lk_cpu_context *cpu = reference_context();
  int64_t slots[6] = {0, 1, 2, 3, 4, 5};
  const lk_kv_cache_write_params good = {dummy_cache(), rows, rows + 6 * 16 * 4, 6, 0, 0, slots};
#define WRITE_REFUSED(mutation, name)                                                                    \
  do {                                                                                                   \
    lk_kv_cache_write_params p = good;                                                                   \
    mutation;                                                                                            \
    SAME_REFUSAL(lk_kv_cache_write(cpu, &p), lk_cuda_kv_cache_write(NULL, &p), name);                    \
  } while (0)
  WRITE_REFUSED(p.cache.key_cache = NULL, "key_cache");
  WRITE_REFUSED(p.cache.value_cache = p.cache.key_cache, "value_cache");
  WRITE_REFUSED(p.cache.num_blocks = 0, "num_blocks");
  WRITE_REFUSED(p.cache.block_size = -1, "block_size");
  WRITE_REFUSED(p.cache.num_kv_heads = 0, "num_kv_heads");
  WRITE_REFUSED(p.cache.head_dim = 0, "head_dim");
  WRITE_REFUSED(p.cache.dtype = (lk_dtype)9, "dtype");
  WRITE_REFUSED(p.cache.num_blocks = INT64_MAX / 2, "cache");
  WRITE_REFUSED(p.num_tokens = -1, "num_tokens");
  WRITE_REFUSED(p.key = NULL, "key");
  WRITE_REFUSED(p.value = NULL, "value");
  WRITE_REFUSED(p.slot_mapping = NULL, "slot_mapping");
  WRITE_REFUSED(p.key_stride = 15, "key_stride");
  WRITE_REFUSED(p.value_stride = 3, "value_stride");
  WRITE_REFUSED(p.key_stride = INT64_MAX / 2, "key");
  WRITE_REFUSED(p.key = key_memory + 64, "key");
  WRITE_REFUSED(p.value = value_memory, "value");
  CHECK_INVALID(lk_cuda_kv_cache_write(NULL, NULL), "params");
  /* no tokens: nothing launched, NULL inputs fine */
  lk_kv_cache_write_params p = good;
  p.num_tokens = 0;
  p.key = p.value = NULL;
  p.slot_mapping = NULL;
  CHECK_STATUS(lk_cuda_kv_cache_write(NULL, &p), LK_OK);
#undef WRITE_REFUSED
}

static void test_gather_arguments(void) {
  lk_cpu_context *cpu = reference_context();
  int32_t tables[2 * 3] = {3, 2, -1, 0, 1, 2};
  int32_t seq_lens[2] = {6, 12};
  unsigned char *key_out = rows, *value_out = rows + 20 * 16 * 4;
  const lk_kv_cache_gather_params good = {dummy_cache(), tables, 3, seq_lens, 2, key_out, value_out, 20};
#define GATHER_REFUSED(mutation, name)                                                                   \
  do {                                                                                                   \
    lk_kv_cache_gather_params p = good;                                                                  \
    mutation;                                                                                            \
    SAME_REFUSAL(lk_kv_cache_gather(cpu, &p), lk_cuda_kv_cache_gather(NULL, &p), name);                  \
  } while (0)
  GATHER_REFUSED(p.out_tokens = -1, "out_tokens");
  GATHER_REFUSED(p.num_seqs = -1, "num_seqs");
  GATHER_REFUSED(p.max_blocks_per_seq = -1, "max_blocks_per_seq");
  GATHER_REFUSED(p.max_blocks_per_seq = INT64_MAX / 2, "max_blocks_per_seq");
  GATHER_REFUSED(p.seq_lens = NULL, "seq_lens");
  GATHER_REFUSED(p.block_tables = NULL, "block_tables");
  GATHER_REFUSED(p.key_out = NULL, "key_out");
  GATHER_REFUSED(p.value_out = NULL, "value_out");
  GATHER_REFUSED(p.value_out = key_out + 64, "value_out");
  GATHER_REFUSED(p.key_out = value_memory + 32, "key_out");
  GATHER_REFUSED(p.value_out = key_memory, "value_out");
  GATHER_REFUSED(p.cache.head_dim = -8, "head_dim");
  CHECK_INVALID(lk_cuda_kv_cache_gather(NULL, NULL), "params");
  /* The device cannot see sum(seq_lens), so it checks the outputs at their declared size,
   * out_tokens rows, where the CPU checks the rows it writes (docs/cuda/kv-cache.md). */
  lk_kv_cache_gather_params p = good;
  p.out_tokens = INT64_MAX / 4;
  CHECK_INVALID(lk_cuda_kv_cache_gather(NULL, &p), "out_tokens");
  p = good;
  p.value_out = key_out + 19 * 16 * 4; /* apart from key_out's 18 rows, not from its 20 */
  CHECK_INVALID(lk_cuda_kv_cache_gather(NULL, &p), "value_out");
  p = good;
  p.seq_lens = (int32_t[2]){0, 0}; /* no sequence uses the table, but it has entries */
  p.block_tables = NULL;
  CHECK_STATUS(lk_kv_cache_gather(cpu, &p), LK_OK);
  CHECK_INVALID(lk_cuda_kv_cache_gather(NULL, &p), "block_tables");
  /* no sequences: nothing launched */
  p = good;
  p.num_seqs = 0;
  p.block_tables = NULL;
  p.seq_lens = NULL;
  CHECK_STATUS(lk_cuda_kv_cache_gather(NULL, &p), LK_OK);
#undef GATHER_REFUSED
}

static void test_copy_blocks_arguments(void) {
  lk_cpu_context *cpu = reference_context();
  int64_t mapping[3 * 2] = {0, 1, 2, 3, 0, 2};
  const lk_kv_cache_copy_blocks_params good = {dummy_cache(), mapping, 2};
#define COPY_REFUSED(mutation, name)                                                                     \
  do {                                                                                                   \
    lk_kv_cache_copy_blocks_params p = good;                                                             \
    mutation;                                                                                            \
    SAME_REFUSAL(lk_kv_cache_copy_blocks(cpu, &p), lk_cuda_kv_cache_copy_blocks(NULL, &p), name);        \
  } while (0)
  COPY_REFUSED(p.num_pairs = -1, "num_pairs");
  COPY_REFUSED(p.block_mapping = NULL, "block_mapping");
  COPY_REFUSED(p.cache.value_cache = NULL, "value_cache");
  COPY_REFUSED(p.cache.value_cache = key_memory + 8, "value_cache");
  COPY_REFUSED(p.cache.dtype = (lk_dtype)-1, "dtype");
  CHECK_INVALID(lk_cuda_kv_cache_copy_blocks(NULL, NULL), "params");
  lk_kv_cache_copy_blocks_params p = good;
  p.num_pairs = 0;
  p.block_mapping = NULL;
  CHECK_STATUS(lk_cuda_kv_cache_copy_blocks(NULL, &p), LK_OK);
#undef COPY_REFUSED
}

int main(void) {
  const int devices = cuda_test_begin();
  run_timed("write arguments", test_write_arguments);
  run_timed("gather arguments", test_gather_arguments);
  run_timed("copy blocks arguments", test_copy_blocks_arguments);
  if (devices > 0) {
    run_timed("write", test_write);
    run_timed("write, bad slots and repeats", test_write_bad_indices);
    run_timed("gather", test_gather);
    run_timed("gather, bad tables and lengths", test_gather_bad_indices);
    run_timed("copy blocks", test_copy_blocks);
    run_timed("copy blocks, bad mappings", test_copy_blocks_bad_indices);
  }
  return cuda_test_finish("test_cuda_kv_cache", devices);
}
