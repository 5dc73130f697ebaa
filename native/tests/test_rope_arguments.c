/* lk_rope, lk_rope_cache_build and the position helpers as a contract: every invalid argument is
 * LK_ERR_INVALID_ARGUMENT with a message naming it, and nothing is written; the layouts that are
 * valid (q and k as disjoint views of one fused qkv buffer, k NULL with any num_kv_heads,
 * tokens == 0 with NULL pointers) are accepted. (Numerics: test_rope.c, test_rope_cache.c,
 * test_positions.c.) */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_harness.h"

enum { TOKENS = 4, HEADS = 4, KV_HEADS = 2, HEAD_DIM = 16, MAX_POSITION = 8 };
enum { STRIDE = (HEADS + 2 * KV_HEADS) * HEAD_DIM, ELEMENTS = TOKENS * STRIDE };

static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};
static lk_cpu_context *contexts[3];
static lk_isa isas[3];
static int isa_count;

typedef struct rope_buffers {
  guarded_buffer qkv; /* fused [TOKENS, STRIDE] */
  guarded_buffer cache;
  guarded_buffer positions;
} rope_buffers;

static rope_buffers buffers_alloc(lk_dtype dtype) {
  rope_buffers b;
  b.qkv = guarded_alloc(ELEMENTS * dtype_size(dtype), GUARD_EDGE_END);
  b.cache = guarded_alloc(MAX_POSITION * HEAD_DIM * sizeof(float), GUARD_EDGE_END);
  b.positions = guarded_alloc(TOKENS * sizeof(int64_t), GUARD_EDGE_END);
  for (int i = 0; i < MAX_POSITION * HEAD_DIM; i++) ((float *)b.cache.data)[i] = 0.5f;
  for (int t = 0; t < TOKENS; t++) ((int64_t *)b.positions.data)[t] = t;
  return b;
}

static void buffers_free(rope_buffers *b) {
  guarded_free(&b->qkv);
  guarded_free(&b->cache);
  guarded_free(&b->positions);
}

static lk_rope_params valid_params(const rope_buffers *b, lk_dtype dtype) {
  lk_rope_params p;
  memset(&p, 0, sizeof p);
  p.q = b->qkv.data;
  p.k = (char *)b->qkv.data + HEADS * HEAD_DIM * dtype_size(dtype);
  p.positions = b->positions.data;
  p.cos_sin_cache = b->cache.data;
  p.tokens = TOKENS;
  p.num_heads = HEADS;
  p.num_kv_heads = KV_HEADS;
  p.head_dim = HEAD_DIM;
  p.max_position = MAX_POSITION;
  p.q_stride = STRIDE;
  p.k_stride = STRIDE;
  p.style = LK_ROPE_NEOX;
  p.position_type = LK_INDEX_I64;
  p.dtype = dtype;
  return p;
}

/* A rejected call must not have written q, k or v: poison the buffer, call, look. */
static void expect_rejected(lk_cpu_context *context, const lk_rope_params *p, rope_buffers *b, lk_dtype dtype,
                            const char *name, const char *what) {
  tensor_poison(dtype, b->qkv.data, ELEMENTS);
  check_context_push("lk_rope %s: %s", dtype_label(dtype), what);
  CHECK_INVALID(lk_rope(context, p), name);
  int64_t written = 0;
  for (int64_t i = 0; i < ELEMENTS; i++) written += !tensor_is_poison(dtype, b->qkv.data, i);
  CHECKF(written == 0, "a rejected call wrote %lld elements", (long long)written);
  check_context_pop();
}

static void test_rope_arguments(lk_cpu_context *context) {
  for (size_t d = 0; d < 3; d++) {
    lk_dtype dtype = dtypes[d];
    size_t size = dtype_size(dtype);
    rope_buffers b = buffers_alloc(dtype);
    const lk_rope_params good = valid_params(&b, dtype);
    lk_rope_params p;
    char *qkv = b.qkv.data;

    p = good;
    CHECK_STATUS(lk_rope(context, &p), LK_OK); /* the fused layout is valid */
    p.k = NULL;
    p.num_kv_heads = 0; /* ignored without k */
    CHECK_STATUS(lk_rope(context, &p), LK_OK);
    p.num_kv_heads = 3; /* does not divide, but ignored without k */
    CHECK_STATUS(lk_rope(context, &p), LK_OK);
    p = good;
    p.k = qkv + (HEADS + KV_HEADS) * HEAD_DIM * size; /* k where v is: still disjoint */
    CHECK_STATUS(lk_rope(context, &p), LK_OK);
    p = good;
    p.num_kv_heads = 4;
    p.k = qkv + HEADS * HEAD_DIM * size; /* k spanning k and v of each token */
    CHECK_STATUS(lk_rope(context, &p), LK_OK);
    p = good;
    p.rot_dim = 2;
    CHECK_STATUS(lk_rope(context, &p), LK_OK);
    p = good;
    p.tokens = 0;
    p.q = NULL;
    p.k = NULL;
    p.positions = NULL;
    p.cos_sin_cache = NULL;
    CHECK_STATUS(lk_rope(context, &p), LK_OK); /* nothing to do */
    p = good;
    p.position_type = LK_INDEX_I32;
    memset(b.positions.data, 0, TOKENS * 8);
    CHECK_STATUS(lk_rope(context, &p), LK_OK);

    p = good;
    expect_rejected(NULL, &p, &b, dtype, "context", "NULL context");
    tensor_poison(dtype, b.qkv.data, ELEMENTS);
    CHECK_INVALID(lk_rope(context, NULL), "params");

    p = good; p.dtype = (lk_dtype)7;
    expect_rejected(context, &p, &b, dtype, "dtype", "dtype 7");
    p = good; p.style = (lk_rope_style)2;
    expect_rejected(context, &p, &b, dtype, "style", "style 2");
    p = good; p.style = (lk_rope_style)-1;
    expect_rejected(context, &p, &b, dtype, "style", "style -1");
    p = good; p.position_type = (lk_index_type)2;
    expect_rejected(context, &p, &b, dtype, "position_type", "position_type 2");
    p = good; p.tokens = -1;
    expect_rejected(context, &p, &b, dtype, "tokens", "tokens -1");
    p = good; p.num_heads = 0;
    expect_rejected(context, &p, &b, dtype, "num_heads", "num_heads 0");
    p = good; p.num_heads = -4;
    expect_rejected(context, &p, &b, dtype, "num_heads", "num_heads -4");
    p = good; p.head_dim = 0;
    expect_rejected(context, &p, &b, dtype, "head_dim", "head_dim 0");
    p = good; p.rot_dim = 5;
    expect_rejected(context, &p, &b, dtype, "rot_dim", "rot_dim odd");
    p = good; p.rot_dim = HEAD_DIM + 2;
    expect_rejected(context, &p, &b, dtype, "rot_dim", "rot_dim > head_dim");
    p = good; p.rot_dim = -2;
    expect_rejected(context, &p, &b, dtype, "rot_dim", "rot_dim negative");
    p = good; p.head_dim = 15; p.q_stride = p.k_stride = 0; p.k = NULL;
    expect_rejected(context, &p, &b, dtype, "rot_dim", "rot_dim 0 with an odd head_dim");
    p = good; p.max_position = 0;
    expect_rejected(context, &p, &b, dtype, "max_position", "max_position 0");
    p = good; p.num_kv_heads = 0;
    expect_rejected(context, &p, &b, dtype, "num_kv_heads", "num_kv_heads 0 with k");
    p = good; p.num_kv_heads = 3;
    expect_rejected(context, &p, &b, dtype, "num_kv_heads", "num_kv_heads not dividing num_heads");
    p = good; p.q_stride = HEADS * HEAD_DIM - 1;
    expect_rejected(context, &p, &b, dtype, "q_stride", "q_stride below the heads' span");
    p = good; p.q_stride = -STRIDE;
    expect_rejected(context, &p, &b, dtype, "q_stride", "q_stride negative");
    p = good; p.k_stride = KV_HEADS * HEAD_DIM - 1;
    expect_rejected(context, &p, &b, dtype, "k_stride", "k_stride below the heads' span");
    p = good; p.q = NULL;
    expect_rejected(context, &p, &b, dtype, "q", "q NULL");
    p = good; p.positions = NULL;
    expect_rejected(context, &p, &b, dtype, "positions", "positions NULL");
    p = good; p.cos_sin_cache = NULL;
    expect_rejected(context, &p, &b, dtype, "cos_sin_cache", "cos_sin_cache NULL");

    /* sizes that describe no buffer */
    p = good; p.q_stride = INT64_MAX / 2;
    expect_rejected(context, &p, &b, dtype, "q_stride", "q_stride overflowing");
    p = good; p.k_stride = INT64_MAX / 3;
    expect_rejected(context, &p, &b, dtype, "k_stride", "k_stride overflowing");
    p = good; p.num_heads = INT64_MAX / 8; p.num_kv_heads = 1; p.q_stride = 0;
    expect_rejected(context, &p, &b, dtype, "num_heads|q_stride", "num_heads x head_dim overflowing");
    p = good; p.max_position = INT64_MAX / 8;
    expect_rejected(context, &p, &b, dtype, "max_position", "cache overflowing");
    p = good; p.tokens = INT64_MAX / 4; p.q_stride = 0; p.k_stride = 0; p.k = NULL;
    expect_rejected(context, &p, &b, dtype, "q_stride|positions", "tokens overflowing");

    /* overlaps */
    p = good; p.k = qkv + (HEADS - 1) * HEAD_DIM * size;
    expect_rejected(context, &p, &b, dtype, "k", "k overlapping q's last head");
    p = good; p.k = qkv + (STRIDE - HEAD_DIM) * size;
    expect_rejected(context, &p, &b, dtype, "k", "k's second head in the next token's q");
    p = good; p.k = qkv;
    expect_rejected(context, &p, &b, dtype, "k", "k == q");
    p = good; p.k_stride = STRIDE + HEAD_DIM; /* unequal strides: the hulls overlap */
    expect_rejected(context, &p, &b, dtype, "k", "k interleaved with q at another stride");
    p = good; p.cos_sin_cache = (const float *)(qkv + (HEADS + KV_HEADS) * HEAD_DIM * size);
    expect_rejected(context, &p, &b, dtype, "cos_sin_cache", "cache inside the qkv buffer");
    p = good; p.positions = qkv + 8 * size;
    expect_rejected(context, &p, &b, dtype, "positions", "positions inside q");

    /* a position outside the cache (the last token), in both index types */
    p = good; ((int64_t *)b.positions.data)[TOKENS - 1] = MAX_POSITION;
    expect_rejected(context, &p, &b, dtype, "positions", "position == max_position");
    p.position_type = LK_INDEX_I32;
    memset(b.positions.data, 0, TOKENS * 8);
    ((int32_t *)b.positions.data)[1] = -1;
    expect_rejected(context, &p, &b, dtype, "positions", "position -1 (i32)");
    for (int t = 0; t < TOKENS; t++) ((int64_t *)b.positions.data)[t] = t;
    buffers_free(&b);
  }
}

/* ---- the cache builder ------------------------------------------------------------------- */

static void expect_cache_rejected(lk_cpu_context *context, const lk_rope_cache_params *p, const char *name, const char *what) {
  check_context_push("lk_rope_cache_build: %s", what);
  float *cache = p->cache;
  if (cache) cache[0] = -7.0f;
  CHECK_INVALID(lk_rope_cache_build(context, p), name);
  if (cache) CHECKF(cache[0] == -7.0f, "a rejected call wrote the cache");
  check_context_pop();
}

static void test_cache_arguments(lk_cpu_context *context) {
  float cache[16 * 8];
  lk_rope_cache_params good;
  memset(&good, 0, sizeof good);
  good.cache = cache;
  good.max_position = 16;
  good.rot_dim = 8;
  good.base = 10000.0;
  lk_rope_cache_params p = good;
  CHECK_STATUS(lk_rope_cache_build(context, &p), LK_OK);
  p.factor = -3; /* ignored without scaling */
  CHECK_STATUS(lk_rope_cache_build(context, &p), LK_OK);

  p = good;
  CHECK_INVALID(lk_rope_cache_build(NULL, &p), "context");
  CHECK_INVALID(lk_rope_cache_build(context, NULL), "params");
  p = good; p.scaling = (lk_rope_scaling)5;
  expect_cache_rejected(context, &p, "scaling", "scaling 5");
  p = good; p.max_position = 0;
  expect_cache_rejected(context, &p, "max_position", "max_position 0");
  p = good; p.rot_dim = 0;
  expect_cache_rejected(context, &p, "rot_dim", "rot_dim 0");
  p = good; p.rot_dim = 7;
  expect_cache_rejected(context, &p, "rot_dim", "rot_dim odd");
  p = good; p.base = 0;
  expect_cache_rejected(context, &p, "base", "base 0");
  p = good; p.base = -10000;
  expect_cache_rejected(context, &p, "base", "base negative");
  p = good; p.base = NAN;
  expect_cache_rejected(context, &p, "base", "base NaN");
  p = good; p.base = INFINITY;
  expect_cache_rejected(context, &p, "base", "base infinite");
  p = good; p.cache = NULL;
  expect_cache_rejected(context, &p, "cache", "cache NULL");
  p = good; p.max_position = INT64_MAX / 4;
  expect_cache_rejected(context, &p, "max_position", "cache overflowing");

  static const lk_rope_scaling scaled[] = {LK_ROPE_SCALING_LINEAR, LK_ROPE_SCALING_DYNAMIC_NTK, LK_ROPE_SCALING_YARN,
                                           LK_ROPE_SCALING_LLAMA3};
  for (size_t s = 0; s < 4; s++) {
    lk_rope_cache_params ok = good;
    ok.scaling = scaled[s];
    ok.factor = 4.0;
    ok.original_max_position = 8;
    ok.low_freq_factor = 1.0;
    ok.high_freq_factor = 4.0;
    check_context_push("scaling %d", (int)scaled[s]);
    p = ok;
    CHECK_STATUS(lk_rope_cache_build(context, &p), LK_OK);
    p = ok; p.factor = 0.5;
    expect_cache_rejected(context, &p, "factor", "factor below 1");
    p = ok; p.factor = NAN;
    expect_cache_rejected(context, &p, "factor", "factor NaN");
    p = ok; p.factor = INFINITY;
    expect_cache_rejected(context, &p, "factor", "factor infinite");
    if (scaled[s] != LK_ROPE_SCALING_LINEAR) {
      p = ok; p.original_max_position = 0;
      expect_cache_rejected(context, &p, "original_max_position", "original_max_position 0");
      p = ok; p.original_max_position = -5;
      expect_cache_rejected(context, &p, "original_max_position", "original_max_position negative");
    }
    check_context_pop();
  }
  p = good; p.scaling = LK_ROPE_SCALING_DYNAMIC_NTK; p.factor = 2; p.original_max_position = 8; p.rot_dim = 2;
  expect_cache_rejected(context, &p, "rot_dim", "DYNAMIC_NTK with rot_dim 2");
  p = good; p.scaling = LK_ROPE_SCALING_YARN; p.factor = 2; p.original_max_position = 8;
  p.beta_fast = -1;
  expect_cache_rejected(context, &p, "beta_fast", "beta_fast negative");
  p.beta_fast = 0; p.beta_slow = NAN;
  expect_cache_rejected(context, &p, "beta_slow", "beta_slow NaN");
  p.beta_slow = 0; p.mscale = -1;
  expect_cache_rejected(context, &p, "mscale", "mscale negative");
  p = good; p.scaling = LK_ROPE_SCALING_LLAMA3; p.factor = 8; p.original_max_position = 8;
  p.low_freq_factor = 0; p.high_freq_factor = 4;
  expect_cache_rejected(context, &p, "low_freq_factor", "low_freq_factor 0");
  p.low_freq_factor = 4; p.high_freq_factor = 1;
  expect_cache_rejected(context, &p, "high_freq_factor", "high_freq_factor below low_freq_factor");
  p.low_freq_factor = 1; p.high_freq_factor = INFINITY;
  expect_cache_rejected(context, &p, "high_freq_factor", "high_freq_factor infinite");
}

/* ---- position helpers -------------------------------------------------------------------- */

static void test_helper_arguments(void) {
  float out[64];
  CHECK_INVALID(lk_alibi_slopes(0, out), "num_heads");
  CHECK_INVALID(lk_alibi_slopes(-3, out), "num_heads");
  CHECK_INVALID(lk_alibi_slopes(8, NULL), "slopes");
  CHECK_INVALID(lk_alibi_slopes(INT64_MAX, out), "num_heads");

  CHECK_INVALID(lk_sinusoidal_positions(out, -1, 8, 10000.0), "num_positions");
  CHECK_INVALID(lk_sinusoidal_positions(out, 4, 0, 10000.0), "dim");
  CHECK_INVALID(lk_sinusoidal_positions(out, 4, 7, 10000.0), "dim");
  CHECK_INVALID(lk_sinusoidal_positions(out, 4, 8, 0.0), "base");
  CHECK_INVALID(lk_sinusoidal_positions(out, 4, 8, -1.0), "base");
  CHECK_INVALID(lk_sinusoidal_positions(out, 4, 8, NAN), "base");
  CHECK_INVALID(lk_sinusoidal_positions(NULL, 4, 8, 10000.0), "table");
  CHECK_INVALID(lk_sinusoidal_positions(out, INT64_MAX / 4, 8, 10000.0), "num_positions");

  float table[32 * 2], bias[2 * 4 * 4];
  int32_t buckets[4 * 4];
  lk_t5_bias_params good;
  memset(&good, 0, sizeof good);
  good.table = table;
  good.bias = bias;
  good.buckets = buckets;
  good.q_len = 4;
  good.k_len = 4;
  good.num_heads = 2;
  good.num_buckets = 32;
  good.max_distance = 128;
  good.bidirectional = 1;
  for (int i = 0; i < 64; i++) table[i] = (float)i;
  lk_t5_bias_params p = good;
  CHECK_STATUS(lk_t5_relative_position_bias(&p), LK_OK);
  p.table = NULL; p.bias = NULL;
  CHECK_STATUS(lk_t5_relative_position_bias(&p), LK_OK); /* buckets only */
  p = good; p.q_len = 0;
  CHECK_STATUS(lk_t5_relative_position_bias(&p), LK_OK);

  CHECK_INVALID(lk_t5_relative_position_bias(NULL), "params");
  p = good; p.q_len = -1;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "q_len");
  p = good; p.k_len = -1;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "k_len");
  p = good; p.q_len = (int64_t)1 << 40; p.k_len = (int64_t)1 << 40;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "k_len");
  p = good; p.query_offset = INT64_MIN;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "query_offset");
  p = good; p.bidirectional = 2;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "bidirectional");
  p = good; p.num_buckets = 3;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "num_buckets");
  p = good; p.num_buckets = 1; p.bidirectional = 0;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "num_buckets");
  p = good; p.max_distance = 8;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "max_distance");
  p = good; p.num_heads = 0;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "num_heads");
  p = good; p.bias = NULL;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "bias");
  p = good; p.table = NULL;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "bias");
  p = good; p.table = NULL; p.bias = NULL; p.buckets = NULL;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "buckets");
  p = good; p.bias = table + 8;
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "bias");
  p = good; p.buckets = (int32_t *)(bias + 4);
  CHECK_INVALID(lk_t5_relative_position_bias(&p), "buckets");
}

int main(void) {
  isa_count = supported_isas(isas);
  for (int k = 0; k < isa_count; k++) {
    lk_cpu_options options = {1, isas[k]};
    if (!CHECK_STATUS(lk_cpu_context_create(&options, &contexts[k]), LK_OK)) return 1;
  }
  for (int k = 0; k < isa_count; k++) {
    check_context_push("isa %s", lk_isa_name(isas[k]));
    test_rope_arguments(contexts[k]);
    test_cache_arguments(contexts[k]);
    check_context_pop();
  }
  test_helper_arguments();
  for (int k = 0; k < isa_count; k++) lk_cpu_context_destroy(contexts[k]);
  return check_summary("test_rope_arguments");
}
