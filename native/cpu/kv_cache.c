/* The paged KV cache operations of llmkernels.h: write (vLLM's reshape_and_cache_flash), gather
 * and copy blocks (vLLM's copy_blocks), over one layer's cache in the flash layout
 * [num_blocks, block_size, num_kv_heads, head_dim].
 *
 * All three move whole rows (num_kv_heads * head_dim elements) or whole blocks without touching
 * their values, so the copies are memcpy: the C library's copy is already the fastest way to move
 * a contiguous run on every ISA, and a vector loop of ours would only match it. The work is in the
 * validation, which reads every index before anything is written, so that a bad slot or block id
 * is an error and never a write outside the cache (docs/kv_cache.md). */
#include "kv_cache.h"
#include "kv_cache_check.h"

#include <stdlib.h>
#include <string.h>

/* Below this many bytes per extra thread a call runs on the caller (a wake-up costs microseconds). */
#define LK_KV_MIN_BYTES_PER_THREAD ((int64_t)256 << 10)

typedef lk_kv_geometry kv_geometry;

lk_status lk_kv_cache_check(const lk_paged_kv_cache *c, kv_geometry *g) {
  if (!c->key_cache) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache.key_cache: NULL");
  if (!c->value_cache) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache.value_cache: NULL");
  if (!lk_dtype_valid(c->dtype)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache.dtype: %d is not a dtype", (int)c->dtype);
  if (c->num_blocks <= 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache.num_blocks: %lld, must be positive", (long long)c->num_blocks);
  if (c->block_size <= 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache.block_size: %lld, must be positive", (long long)c->block_size);
  if (c->num_kv_heads <= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache.num_kv_heads: %lld, must be positive", (long long)c->num_kv_heads);
  if (c->head_dim <= 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache.head_dim: %lld, must be positive", (long long)c->head_dim);
  if (c->num_kv_heads > INT64_MAX / c->head_dim || c->num_blocks > INT64_MAX / c->block_size)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache: num_blocks * block_size * num_kv_heads * head_dim overflows");
  g->row_elements = c->num_kv_heads * c->head_dim;
  g->slots = c->num_blocks * c->block_size;
  const int64_t key_bytes = lk_extent_bytes(c->key_cache, g->slots, g->row_elements, g->row_elements, c->dtype);
  const int64_t value_bytes = lk_extent_bytes(c->value_cache, g->slots, g->row_elements, g->row_elements, c->dtype);
  if (key_bytes < 0 || value_bytes < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache: num_blocks * block_size * num_kv_heads * head_dim overflows");
  g->row_bytes = g->row_elements * (int64_t)lk_dtype_size(c->dtype);
  g->block_bytes = g->row_bytes * c->block_size;
  if (lk_spans_overlap(lk_rows_span(c->key_cache, g->slots, g->row_elements, g->row_elements, c->dtype),
                       lk_rows_span(c->value_cache, g->slots, g->row_elements, g->row_elements, c->dtype)))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache.value_cache: overlaps cache.key_cache");
  return LK_OK;
}

bool lk_kv_overlaps_cache(const lk_paged_kv_cache *c, const kv_geometry *g, lk_span s) {
  return lk_spans_overlap(s, lk_rows_span(c->key_cache, g->slots, g->row_elements, g->row_elements, c->dtype)) ||
         lk_spans_overlap(s, lk_rows_span(c->value_cache, g->slots, g->row_elements, g->row_elements, c->dtype));
}

/* What lk_kv_block_tables_check checks before it reads a length or an entry. */
static lk_status check_table_shape(const lk_paged_kv_cache *c, int64_t max_blocks_per_seq, const int32_t *lengths, int64_t num_seqs,
                                   const char *lengths_name) {
  if (!lengths) return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: NULL", lengths_name);
  if (max_blocks_per_seq < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "max_blocks_per_seq: %lld, must not be negative", (long long)max_blocks_per_seq);
  if (max_blocks_per_seq > INT64_MAX / num_seqs || max_blocks_per_seq > INT64_MAX / c->block_size)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "max_blocks_per_seq: %lld overflows with num_seqs or block_size",
                   (long long)max_blocks_per_seq);
  return LK_OK;
}

lk_status lk_kv_block_tables_check(const lk_paged_kv_cache *c, const int32_t *block_tables, int64_t max_blocks_per_seq,
                                   const int32_t *lengths, int64_t num_seqs, const char *lengths_name, int64_t *total,
                                   int64_t *units) {
  *total = *units = 0;
  const lk_status status = check_table_shape(c, max_blocks_per_seq, lengths, num_seqs, lengths_name);
  if (status != LK_OK) return status;
  const int64_t covered = max_blocks_per_seq * c->block_size;
  for (int64_t s = 0; s < num_seqs; s++) {
    const int64_t len = lengths[s];
    if (len < 0)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s[%lld]: %lld, must not be negative", lengths_name, (long long)s, (long long)len);
    if (len > covered)
      return lk_fail(LK_ERR_INVALID_ARGUMENT,
                     "%s[%lld]: %lld tokens need more than the block table's max_blocks_per_seq * block_size = %lld",
                     lengths_name, (long long)s, (long long)len, (long long)covered);
    const int64_t blocks = (len + c->block_size - 1) / c->block_size;
    /* Only the entries a sequence uses are read: empty sequences need no table at all. */
    if (blocks > 0 && !block_tables) return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_tables: NULL");
    for (int64_t j = 0; j < blocks; j++) {
      const int64_t block = block_tables[s * max_blocks_per_seq + j];
      if (block < 0 || block >= c->num_blocks)
        return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_tables[%lld][%lld]: block %lld is outside [0, num_blocks = %lld)",
                       (long long)s, (long long)j, (long long)block, (long long)c->num_blocks);
    }
    *total += len;
    *units += blocks;
  }
  return LK_OK;
}

/* ---- duplicate detection ----------------------------------------------------------------------
 * The values checked are a strided list: entry i is values[i * stride], skipped when negative (a
 * padding slot) or equal to peers[i * stride] (a copy pair whose source is its destination). Lists
 * whose (value, index) pairs fit in the context's scratch (512 KiB a thread: 32768 pairs each) are
 * sorted there; longer ones are checked with a bitmap over the values in the same scratch, window
 * by window (4 Mi values a thread per window: a cache of N slots takes N / (4 Mi x threads)
 * passes over the list). Nothing is allocated. */
typedef struct kv_value_list {
  const int64_t *values, *peers; /* peers: NULL, or entries equal to their value are skipped */
  int64_t stride, count;
} kv_value_list;

static inline bool kv_value_used(const kv_value_list *list, int64_t i, int64_t *value) {
  *value = list->values[i * list->stride];
  return *value >= 0 && !(list->peers && list->peers[i * list->stride] == *value);
}

/* The first entry before `i` with the same value (there is one: i repeats it). */
static int64_t kv_first_with_value(const kv_value_list *list, int64_t i, int64_t value) {
  int64_t v;
  for (int64_t j = 0; j < i; j++)
    if (kv_value_used(list, j, &v) && v == value) return j;
  return -1;
}

typedef struct kv_keyed { int64_t value, index; } kv_keyed;

static int compare_keyed(const void *a, const void *b) {
  const kv_keyed *x = (const kv_keyed *)a, *y = (const kv_keyed *)b;
  if (x->value != y->value) return x->value < y->value ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

typedef struct kv_repeat { int64_t index, first, value; } kv_repeat; /* index -1: none */

static bool kv_fits_sorted(const lk_cpu_context *context, const kv_value_list *list) {
  int64_t used = 0, v;
  for (int64_t i = 0; i < list->count; i++) used += kv_value_used(list, i, &v);
  return (size_t)used * sizeof(kv_keyed) <= (size_t)context->num_threads * context->scratch_bytes;
}

/* The used entries as (value, index) pairs sorted in the scratch; returns their count. */
static int64_t kv_sort_values(lk_cpu_context *context, const kv_value_list *list) {
  kv_keyed *keyed = (kv_keyed *)context->scratch;
  int64_t k = 0, v;
  for (int64_t i = 0; i < list->count; i++)
    if (kv_value_used(list, i, &v)) keyed[k++] = (kv_keyed){v, i};
  qsort(keyed, (size_t)k, sizeof *keyed, compare_keyed);
  return k;
}

/* The bitmap's values per window: every bit of the scratch. */
static int64_t kv_window_values(const lk_cpu_context *context) {
  return (int64_t)((size_t)context->num_threads * context->scratch_bytes / 8) * 8;
}

/* Values [lo, lo + window) of the list marked in the scratch's bitmap, in index order. Returns the
 * first entry whose value was already marked, or -1. */
static int64_t kv_mark_window(lk_cpu_context *context, int64_t lo, int64_t window, const kv_value_list *list) {
  uint64_t *bits = (uint64_t *)context->scratch;
  memset(bits, 0, (size_t)(window / 8));
  int64_t v;
  for (int64_t i = 0; i < list->count; i++) {
    if (!kv_value_used(list, i, &v) || v < lo || v >= lo + window) continue;
    const uint64_t bit = 1ull << ((v - lo) % 64);
    if (bits[(v - lo) / 64] & bit) return i;
    bits[(v - lo) / 64] |= bit;
  }
  return -1;
}

static bool kv_marked(const lk_cpu_context *context, int64_t lo, int64_t value) {
  return (((const uint64_t *)context->scratch)[(value - lo) / 64] >> ((value - lo) % 64)) & 1;
}

/* A value the list holds twice: the later entry, the earlier one and the value. `limit` bounds the
 * values (the cache's slots or blocks). */
static kv_repeat kv_find_repeat(lk_cpu_context *context, const kv_value_list *list, int64_t limit) {
  int64_t v;
  if (kv_fits_sorted(context, list)) {
    const kv_keyed *keyed = (const kv_keyed *)context->scratch;
    const int64_t used = kv_sort_values(context, list);
    for (int64_t i = 1; i < used; i++)
      if (keyed[i].value == keyed[i - 1].value) return (kv_repeat){keyed[i].index, keyed[i - 1].index, keyed[i].value};
    return (kv_repeat){-1, -1, -1};
  }
  const int64_t window = kv_window_values(context);
  for (int64_t lo = 0; lo < limit; lo += window) {
    const int64_t i = kv_mark_window(context, lo, window, list);
    if (i >= 0) {
      kv_value_used(list, i, &v);
      return (kv_repeat){i, kv_first_with_value(list, i, v), v};
    }
  }
  return (kv_repeat){-1, -1, -1};
}

/* An entry of `probes` whose value `list` (which holds no value twice) also holds: the probe's
 * entry, the list's entry and the value. */
static kv_repeat kv_find_shared(lk_cpu_context *context, const kv_value_list *list, const kv_value_list *probes, int64_t limit) {
  int64_t v;
  if (kv_fits_sorted(context, list)) {
    const kv_keyed *keyed = (const kv_keyed *)context->scratch;
    const int64_t used = kv_sort_values(context, list);
    for (int64_t i = 0; i < probes->count; i++) {
      if (!kv_value_used(probes, i, &v)) continue;
      int64_t lo = 0, hi = used; /* the first value >= v */
      while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (keyed[mid].value < v) lo = mid + 1;
        else hi = mid;
      }
      if (lo < used && keyed[lo].value == v) return (kv_repeat){i, keyed[lo].index, v};
    }
    return (kv_repeat){-1, -1, -1};
  }
  const int64_t window = kv_window_values(context);
  for (int64_t lo = 0; lo < limit; lo += window) {
    kv_mark_window(context, lo, window, list);
    for (int64_t i = 0; i < probes->count; i++)
      if (kv_value_used(probes, i, &v) && v >= lo && v < lo + window && kv_marked(context, lo, v))
        return (kv_repeat){i, kv_first_with_value(list, list->count, v), v};
  }
  return (kv_repeat){-1, -1, -1};
}

/* ---- write -------------------------------------------------------------------------------------- */

typedef struct kv_write_job {
  lk_kv_cache_write_params p; /* strides resolved */
  kv_geometry g;
} kv_write_job;

static void write_rows(const void *job_, int64_t begin, int64_t end) {
  const kv_write_job *job = (const kv_write_job *)job_;
  const int64_t size = (int64_t)lk_dtype_size(job->p.cache.dtype);
  for (int64_t t = begin; t < end; t++) {
    const int64_t slot = job->p.slot_mapping[t];
    if (slot < 0) continue; /* padding */
    memcpy((char *)job->p.cache.key_cache + slot * job->g.row_bytes, (const char *)job->p.key + t * job->p.key_stride * size,
           (size_t)job->g.row_bytes);
    memcpy((char *)job->p.cache.value_cache + slot * job->g.row_bytes,
           (const char *)job->p.value + t * job->p.value_stride * size, (size_t)job->g.row_bytes);
  }
}

/* What needs no slot_mapping value (lk_kv_cache_write_check); strides resolved in place. */
static lk_status check_write(lk_kv_cache_write_params *p, kv_geometry *g) {
  lk_status status = lk_kv_cache_check(&p->cache, g);
  if (status != LK_OK) return status;
  if (p->num_tokens < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_tokens: %lld, must not be negative", (long long)p->num_tokens);
  if (p->num_tokens == 0) return LK_OK;
  if (!p->key) return lk_fail(LK_ERR_INVALID_ARGUMENT, "key: NULL");
  if (!p->value) return lk_fail(LK_ERR_INVALID_ARGUMENT, "value: NULL");
  if (!p->slot_mapping) return lk_fail(LK_ERR_INVALID_ARGUMENT, "slot_mapping: NULL");
  const int64_t row = g->row_elements;
  if (p->key_stride == 0) p->key_stride = row;
  if (p->value_stride == 0) p->value_stride = row;
  if (p->key_stride < row)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "key_stride: %lld is less than num_kv_heads * head_dim = %lld", (long long)p->key_stride,
                   (long long)row);
  if (p->value_stride < row)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "value_stride: %lld is less than num_kv_heads * head_dim = %lld",
                   (long long)p->value_stride, (long long)row);
  if (lk_extent_bytes(p->key, p->num_tokens, row, p->key_stride, p->cache.dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "key: num_tokens * key_stride overflows");
  if (lk_extent_bytes(p->value, p->num_tokens, row, p->value_stride, p->cache.dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "value: num_tokens * value_stride overflows");
  if (lk_kv_overlaps_cache(&p->cache, g, lk_rows_span(p->key, p->num_tokens, row, p->key_stride, p->cache.dtype)))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "key: overlaps the cache");
  if (lk_kv_overlaps_cache(&p->cache, g, lk_rows_span(p->value, p->num_tokens, row, p->value_stride, p->cache.dtype)))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "value: overlaps the cache");
  return LK_OK;
}

LK_API lk_status lk_kv_cache_write_check(lk_kv_cache_write_params *p) {
  kv_geometry g;
  return check_write(p, &g);
}

static lk_status validate_write(lk_cpu_context *context, const lk_kv_cache_write_params *params, kv_write_job *job) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  job->p = *params;
  const lk_kv_cache_write_params *p = &job->p;
  const lk_status status = check_write(&job->p, &job->g);
  if (status != LK_OK || p->num_tokens == 0) return status;

  for (int64_t t = 0; t < p->num_tokens; t++) {
    const int64_t slot = p->slot_mapping[t];
    if (slot >= job->g.slots)
      return lk_fail(LK_ERR_INVALID_ARGUMENT,
                     "slot_mapping[%lld]: slot %lld is outside the cache (num_blocks * block_size = %lld slots)", (long long)t,
                     (long long)slot, (long long)job->g.slots);
  }
  /* Two tokens writing one slot would leave whichever ran last: refused, as vLLM's scheduler never
   * asks for it. */
  const kv_value_list slots = {p->slot_mapping, NULL, 1, p->num_tokens};
  const kv_repeat repeat = kv_find_repeat(context, &slots, job->g.slots);
  if (repeat.index >= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "slot_mapping[%lld]: slot %lld is also the slot of token %lld", (long long)repeat.index,
                   (long long)repeat.value, (long long)repeat.first);
  return LK_OK;
}

LK_API lk_status lk_kv_cache_write(lk_cpu_context *context, const lk_kv_cache_write_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  kv_write_job job;
  memset(&job, 0, sizeof job);
  status = validate_write(context, params, &job);
  if (status == LK_OK && job.p.num_tokens > 0)
    lk_parallel_rows(context, write_rows, &job, job.p.num_tokens, 2 * job.g.row_bytes, LK_KV_MIN_BYTES_PER_THREAD);
  lk_context_leave(context);
  return status;
}

/* ---- gather ------------------------------------------------------------------------------------- */

typedef struct kv_gather_job {
  lk_kv_cache_gather_params p;
  kv_geometry g;
} kv_gather_job;

/* Units are (sequence, block) pairs in order; rows [begin, end) of units are copied, each unit a
 * contiguous run of up to block_size rows from its block. A thread finds its first unit by walking
 * the sequences' block counts: O(num_seqs), small next to the copy. */
static void gather_units(const void *job_, int64_t begin, int64_t end) {
  const kv_gather_job *job = (const kv_gather_job *)job_;
  const lk_kv_cache_gather_params *p = &job->p;
  const int64_t bs = p->cache.block_size;
  int64_t unit = 0, out_row = 0;
  for (int64_t s = 0; s < p->num_seqs && unit < end; s++) {
    const int64_t len = p->seq_lens[s], blocks = (len + bs - 1) / bs;
    if (unit + blocks <= begin) {
      unit += blocks;
      out_row += len;
      continue;
    }
    for (int64_t j = 0; j < blocks && unit < end; j++, unit++) {
      if (unit < begin) continue;
      const int64_t block = p->block_tables[s * p->max_blocks_per_seq + j];
      const int64_t rows = len - j * bs < bs ? len - j * bs : bs;
      const size_t bytes = (size_t)(rows * job->g.row_bytes);
      const int64_t from = block * job->g.block_bytes, to = (out_row + j * bs) * job->g.row_bytes;
      memcpy((char *)p->key_out + to, (const char *)p->cache.key_cache + from, bytes);
      memcpy((char *)p->value_out + to, (const char *)p->cache.value_cache + from, bytes);
    }
    out_row += len;
  }
}

/* The cache and the counts: what every gather check starts with. */
static lk_status check_gather_counts(const lk_kv_cache_gather_params *p, kv_geometry *g) {
  const lk_status status = lk_kv_cache_check(&p->cache, g);
  if (status != LK_OK) return status;
  if (p->num_seqs < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_seqs: %lld, must not be negative", (long long)p->num_seqs);
  if (p->out_tokens < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_tokens: %lld, must not be negative", (long long)p->out_tokens);
  return LK_OK;
}

/* key_out and value_out of `rows` (> 0) rows: present, not overflowing, apart from the caches and
 * from each other. `rows_name` says what the rows are, for the overflow message. */
static lk_status check_gather_outputs(const lk_kv_cache_gather_params *p, const kv_geometry *g, int64_t rows, const char *rows_name) {
  if (!p->key_out) return lk_fail(LK_ERR_INVALID_ARGUMENT, "key_out: NULL");
  if (!p->value_out) return lk_fail(LK_ERR_INVALID_ARGUMENT, "value_out: NULL");
  const int64_t row = g->row_elements;
  if (lk_extent_bytes(p->key_out, rows, row, row, p->cache.dtype) < 0 || lk_extent_bytes(p->value_out, rows, row, row, p->cache.dtype) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_tokens: %s * num_kv_heads * head_dim overflows", rows_name);
  const lk_span key_out = lk_rows_span(p->key_out, rows, row, row, p->cache.dtype);
  const lk_span value_out = lk_rows_span(p->value_out, rows, row, row, p->cache.dtype);
  if (lk_kv_overlaps_cache(&p->cache, g, key_out)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "key_out: overlaps the cache");
  if (lk_kv_overlaps_cache(&p->cache, g, value_out)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "value_out: overlaps the cache");
  if (lk_spans_overlap(key_out, value_out)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "value_out: overlaps key_out");
  return LK_OK;
}

static lk_status validate_gather(const lk_kv_cache_gather_params *params, kv_gather_job *job, int64_t *units) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  job->p = *params;
  const lk_kv_cache_gather_params *p = &job->p;
  lk_status status = check_gather_counts(p, &job->g);
  if (status != LK_OK) return status;
  *units = 0;
  if (p->num_seqs == 0) return LK_OK;
  int64_t total;
  status = lk_kv_block_tables_check(&p->cache, p->block_tables, p->max_blocks_per_seq, p->seq_lens, p->num_seqs, "seq_lens",
                                    &total, units);
  if (status != LK_OK) return status;
  if (total > p->out_tokens)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_tokens: %lld rows cannot hold sum(seq_lens) = %lld", (long long)p->out_tokens,
                   (long long)total);
  if (total == 0) return LK_OK;
  return check_gather_outputs(p, &job->g, total, "sum(seq_lens)");
}

/* What needs no index (lk_kv_cache_gather_check without read_indices), with the messages of the
 * checks validate_gather makes: the table's shape, then the outputs at their declared size. */
static lk_status check_gather_declared(const lk_kv_cache_gather_params *p) {
  kv_geometry g;
  lk_status status = check_gather_counts(p, &g);
  if (status != LK_OK || p->num_seqs == 0) return status;
  status = check_table_shape(&p->cache, p->max_blocks_per_seq, p->seq_lens, p->num_seqs, "seq_lens");
  if (status != LK_OK) return status;
  if (p->max_blocks_per_seq > 0 && !p->block_tables) return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_tables: NULL");
  if (p->out_tokens == 0) return LK_OK;
  return check_gather_outputs(p, &g, p->out_tokens, "out_tokens");
}

LK_API lk_status lk_kv_cache_gather_check(const lk_kv_cache_gather_params *p, int32_t read_indices) {
  if (!read_indices) return check_gather_declared(p);
  kv_gather_job job;
  int64_t units;
  return validate_gather(p, &job, &units);
}

LK_API lk_status lk_kv_cache_gather(lk_cpu_context *context, const lk_kv_cache_gather_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  kv_gather_job job;
  memset(&job, 0, sizeof job);
  int64_t units = 0;
  status = validate_gather(params, &job, &units);
  if (status == LK_OK && units > 0)
    lk_parallel_rows(context, gather_units, &job, units, 2 * job.g.block_bytes, LK_KV_MIN_BYTES_PER_THREAD);
  lk_context_leave(context);
  return status;
}

/* ---- copy blocks -------------------------------------------------------------------------------- */

typedef struct kv_copy_job {
  lk_kv_cache_copy_blocks_params p;
  kv_geometry g;
} kv_copy_job;

static void copy_pairs(const void *job_, int64_t begin, int64_t end) {
  const kv_copy_job *job = (const kv_copy_job *)job_;
  for (int64_t i = begin; i < end; i++) {
    const int64_t src = job->p.block_mapping[2 * i], dst = job->p.block_mapping[2 * i + 1];
    if (src == dst) continue;
    const size_t bytes = (size_t)job->g.block_bytes;
    memcpy((char *)job->p.cache.key_cache + dst * job->g.block_bytes,
           (const char *)job->p.cache.key_cache + src * job->g.block_bytes, bytes);
    memcpy((char *)job->p.cache.value_cache + dst * job->g.block_bytes,
           (const char *)job->p.cache.value_cache + src * job->g.block_bytes, bytes);
  }
}

/* What needs no block_mapping value (lk_kv_cache_copy_blocks_check). */
static lk_status check_copy(const lk_kv_cache_copy_blocks_params *p, kv_geometry *g) {
  const lk_status status = lk_kv_cache_check(&p->cache, g);
  if (status != LK_OK) return status;
  if (p->num_pairs < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_pairs: %lld, must not be negative", (long long)p->num_pairs);
  if (p->num_pairs > 0 && !p->block_mapping) return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_mapping: NULL");
  return LK_OK;
}

LK_API lk_status lk_kv_cache_copy_blocks_check(const lk_kv_cache_copy_blocks_params *p) {
  kv_geometry g;
  return check_copy(p, &g);
}

static lk_status validate_copy(lk_cpu_context *context, const lk_kv_cache_copy_blocks_params *params, kv_copy_job *job) {
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  job->p = *params;
  const lk_kv_cache_copy_blocks_params *p = &job->p;
  const lk_status status = check_copy(p, &job->g);
  if (status != LK_OK || p->num_pairs == 0) return status;
  for (int64_t i = 0; i < p->num_pairs; i++)
    for (int side = 0; side < 2; side++) {
      const int64_t block = p->block_mapping[2 * i + side];
      if (block < 0 || block >= p->cache.num_blocks)
        return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_mapping[%lld][%d]: block %lld is outside [0, num_blocks = %lld)",
                       (long long)i, side, (long long)block, (long long)p->cache.num_blocks);
    }
  /* The pairs that copy (src != dst): a destination named twice, or a source that is also a
   * destination (read or overwritten depending on the order), is refused. */
  const kv_value_list dsts = {p->block_mapping + 1, p->block_mapping, 2, p->num_pairs};
  const kv_value_list srcs = {p->block_mapping, p->block_mapping + 1, 2, p->num_pairs};
  kv_repeat found = kv_find_repeat(context, &dsts, p->cache.num_blocks);
  if (found.index >= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_mapping[%lld][1]: block %lld is already the destination of pair %lld",
                   (long long)found.index, (long long)found.value, (long long)found.first);
  found = kv_find_shared(context, &dsts, &srcs, p->cache.num_blocks);
  if (found.index >= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT,
                   "block_mapping[%lld][0]: block %lld is the destination of pair %lld: the result would depend on the order",
                   (long long)found.index, (long long)found.value, (long long)found.first);
  return LK_OK;
}

LK_API lk_status lk_kv_cache_copy_blocks(lk_cpu_context *context, const lk_kv_cache_copy_blocks_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  kv_copy_job job;
  memset(&job, 0, sizeof job);
  status = validate_copy(context, params, &job);
  if (status == LK_OK && job.p.num_pairs > 0)
    lk_parallel_rows(context, copy_pairs, &job, job.p.num_pairs, 2 * job.g.block_bytes, LK_KV_MIN_BYTES_PER_THREAD);
  lk_context_leave(context);
  return status;
}
