/* lk_cuda_rope against the CPU library's scalar reference (which test_rope.c checks against
 * float64): every dtype x style x position type, q only and q + k with MHA, GQA and MQA head
 * counts, full and partial rot_dim (every even rot_dim from 2 to 256), q and k as views into one
 * fused qkv buffer (padded token stride) or as separate buffers, misaligned bases and cache (the
 * element path), every token count from 0 to 64, prefill and decode shapes, NaN and infinities.
 *
 * The kernel does the reference's f32 operations in its order (no FMA), so every buffer is compared
 * with the reference's bit for bit: the rotated elements (a NaN may differ in payload), and
 * everything else (elements past rot_dim, v, the padding between tokens) untouched.
 *
 * Positions live in device memory and are checked by the kernel: a bad one (negative, past the
 * cache, an int64 past 2^32 that int32 truncation would make valid) leaves its token's q and k as
 * they were, the other tokens are rotated, and the next synchronisation reports
 * LK_ERR_INVALID_ARGUMENT naming positions[t]. The argument contract (what the host can check)
 * is the CPU's, status and message, and is checked without a device too.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_harness.h"
#include "test_harness.h"

typedef enum rope_layout {
  LAYOUT_FUSED,   /* q, k, v heads of a token in one row of a qkv buffer, `pad` elements after them */
  LAYOUT_SEPARATE /* q and k each in its own buffer, rows `pad` elements apart beyond the heads */
} rope_layout;

typedef struct rope_case {
  lk_dtype dtype;
  lk_rope_style style;
  lk_index_type position_type;
  int64_t tokens, num_heads, num_kv_heads; /* num_kv_heads 0: k is NULL */
  int64_t head_dim, rot_dim;               /* rot_dim as passed: 0 means head_dim */
  int64_t max_position;
  rope_layout layout;
  int64_t pad;
  int64_t offset;       /* elements q's and k's buffers' bases are moved by: odd breaks alignment */
  int64_t cache_offset; /* floats the cache is moved by */
  bool special_values;
} rope_case;

static const lk_dtype all_dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};

/* Host and device copies of one case's tensors. */
typedef struct rope_tensors {
  int64_t q_stride, k_stride, rot;
  int64_t main_count, k_count; /* elements of the main (fused: qkv; separate: q) buffer and of k's */
  unsigned char *main, *k;     /* the inputs, then the reference's result */
  unsigned char *original_main, *original_k;
  float *cache;
  int64_t cache_count;
  void *positions;
  unsigned char *d_main, *d_k;
  float *d_cache;
  void *d_positions;
} rope_tensors;

static int64_t k_heads_of(const rope_case *c) { return c->num_kv_heads; }

/* Where q and k start in their buffers (elements). */
static int64_t q_at(const rope_case *c) { return c->offset; }
static int64_t k_at(const rope_case *c) { return c->layout == LAYOUT_FUSED ? c->offset + c->num_heads * c->head_dim : c->offset; }

static void make_tensors(const rope_case *c, uint64_t seed, rope_tensors *x) {
  memset(x, 0, sizeof *x);
  rng r = rng_seeded(seed);
  const size_t es = dtype_size(c->dtype);
  const int64_t d = c->head_dim, kv = k_heads_of(c);
  x->rot = c->rot_dim ? c->rot_dim : d;
  if (c->layout == LAYOUT_FUSED) {
    x->q_stride = x->k_stride = (c->num_heads + 2 * (kv ? kv : 1)) * d + c->pad;
    x->main_count = c->offset + c->tokens * x->q_stride + 2;
  } else {
    x->q_stride = c->num_heads * d + c->pad;
    x->k_stride = kv * d + c->pad;
    x->main_count = c->offset + c->tokens * x->q_stride + 2;
    x->k_count = kv ? c->offset + c->tokens * x->k_stride + 2 : 0;
  }
  /* everything random, the padding and v included: an element the kernel should not touch keeps
   * its value only if it is not written */
  static const float specials[] = {NAN, INFINITY, -INFINITY, 3.0e38f, -1.0e-40f, 0.0f, -0.0f};
  x->main = malloc((size_t)x->main_count * es);
  x->k = malloc((size_t)(x->k_count + 1) * es);
  for (int64_t i = 0; i < x->main_count; i++)
    tensor_store(c->dtype, x->main, i, c->special_values && rng_below(&r, 12) == 0 ? specials[rng_below(&r, 7)] : rng_uniform(&r, -2.0f, 2.0f));
  for (int64_t i = 0; i < x->k_count; i++)
    tensor_store(c->dtype, x->k, i, c->special_values && rng_below(&r, 12) == 0 ? specials[rng_below(&r, 7)] : rng_uniform(&r, -2.0f, 2.0f));
  x->original_main = malloc((size_t)x->main_count * es);
  x->original_k = malloc((size_t)(x->k_count + 1) * es);
  memcpy(x->original_main, x->main, (size_t)x->main_count * es);
  memcpy(x->original_k, x->k, (size_t)x->k_count * es);

  x->cache_count = c->cache_offset + c->max_position * x->rot;
  x->cache = malloc((size_t)x->cache_count * sizeof(float));
  for (int64_t i = 0; i < x->cache_count; i++) x->cache[i] = rng_uniform(&r, -1.0f, 1.0f);

  const size_t ps = c->position_type == LK_INDEX_I64 ? 8 : 4;
  x->positions = malloc((size_t)(c->tokens + 1) * ps);
  for (int64_t t = 0; t < c->tokens; t++) {
    int64_t pos = (int64_t)rng_below(&r, (uint32_t)c->max_position);
    if (t == 0) pos = 0;
    if (t == c->tokens - 1 && t > 0) pos = c->max_position - 1;
    if (ps == 8) ((int64_t *)x->positions)[t] = pos;
    else ((int32_t *)x->positions)[t] = (int32_t)pos;
  }
}

static void mirror_tensors(const rope_case *c, rope_tensors *x) {
  const size_t es = dtype_size(c->dtype), ps = c->position_type == LK_INDEX_I64 ? 8 : 4;
  x->d_main = device_mirror(x->main, (size_t)x->main_count * es);
  x->d_k = device_mirror(x->k, (size_t)x->k_count * es);
  x->d_cache = device_mirror(x->cache, (size_t)x->cache_count * sizeof(float));
  x->d_positions = device_mirror(x->positions, (size_t)c->tokens * ps);
}

static void free_tensors(rope_tensors *x) {
  device_free(x->d_main);
  device_free(x->d_k);
  device_free(x->d_cache);
  device_free(x->d_positions);
  free(x->main);
  free(x->k);
  free(x->original_main);
  free(x->original_k);
  free(x->cache);
  free(x->positions);
}

/* The params over the host copies (device = false) or the device ones. */
static lk_rope_params params_for(const rope_case *c, const rope_tensors *x, bool device) {
  const size_t es = dtype_size(c->dtype);
  unsigned char *main = device ? x->d_main : x->main, *k = device ? x->d_k : x->k;
  lk_rope_params p;
  memset(&p, 0, sizeof p);
  p.q = main + q_at(c) * (int64_t)es;
  p.k = !k_heads_of(c) ? NULL : (c->layout == LAYOUT_FUSED ? main : k) + k_at(c) * (int64_t)es;
  p.positions = device ? x->d_positions : x->positions;
  p.cos_sin_cache = (device ? x->d_cache : x->cache) + c->cache_offset;
  p.tokens = c->tokens;
  p.num_heads = c->num_heads;
  p.num_kv_heads = c->num_kv_heads;
  p.head_dim = c->head_dim;
  p.rot_dim = c->rot_dim;
  p.max_position = c->max_position;
  /* unpadded separate buffers go through the 0 = default strides */
  p.q_stride = c->layout == LAYOUT_SEPARATE && c->pad == 0 ? 0 : x->q_stride;
  p.k_stride = c->layout == LAYOUT_SEPARATE && c->pad == 0 ? 0 : x->k_stride;
  p.style = c->style;
  p.position_type = c->position_type;
  p.dtype = c->dtype;
  return p;
}

/* Whether element e of the main (or k) buffer is one the rotation writes. */
static bool rotated(const rope_case *c, const rope_tensors *x, bool k_buffer, int64_t e) {
  const int64_t stride = k_buffer ? x->k_stride : x->q_stride, rel = e - c->offset;
  if (rel < 0 || rel / stride >= c->tokens) return false;
  const int64_t w = rel % stride, head = w / c->head_dim, within = w % c->head_dim;
  if (within >= x->rot) return false;
  if (k_buffer) return head < k_heads_of(c);
  if (c->layout == LAYOUT_SEPARATE) return head < c->num_heads;
  return head < c->num_heads + k_heads_of(c);
}

/* Device results against the reference's, every element of both buffers. */
static void compare_buffers(const rope_case *c, const rope_tensors *x) {
  const size_t es = dtype_size(c->dtype);
  for (int b = 0; b < 2; b++) {
    const int64_t count = b ? x->k_count : x->main_count;
    if (!count) continue;
    unsigned char *got = malloc((size_t)count * es);
    host_from_device(got, b ? x->d_k : x->d_main, (size_t)count * es);
    const unsigned char *want = b ? x->k : x->main;
    int64_t bad = 0;
    for (int64_t e = 0; e < count; e++) {
      if (tensor_bits(c->dtype, got, e) == tensor_bits(c->dtype, want, e)) continue;
      const bool nan_pair = isnan(tensor_load(c->dtype, got, e)) && isnan(tensor_load(c->dtype, want, e));
      if (nan_pair && rotated(c, x, b == 1, e)) continue;
      if (bad++ < 3)
        CHECKF(false, "%s element %lld (%s): 0x%x, reference 0x%x", b ? "k's buffer" : "q's buffer", (long long)e,
               rotated(c, x, b == 1, e) ? "rotated" : "untouched", (unsigned)tensor_bits(c->dtype, got, e),
               (unsigned)tensor_bits(c->dtype, want, e));
    }
    CHECKF(bad == 0, "%s: %lld elements differ from the reference", b ? "k's buffer" : "q's buffer", (long long)bad);
    free(got);
  }
}

static void push_case(const rope_case *c) {
  check_context_push("rope %s %s %s tokens %lld heads %lld/%lld head_dim %lld rot_dim %lld max_position %lld layout %s pad %lld offset %lld "
                     "cache_offset %lld specials %d",
                     dtype_label(c->dtype), c->style == LK_ROPE_GPTJ ? "gptj" : "neox", c->position_type == LK_INDEX_I64 ? "i64" : "i32",
                     (long long)c->tokens, (long long)c->num_heads, (long long)c->num_kv_heads, (long long)c->head_dim,
                     (long long)c->rot_dim, (long long)c->max_position, c->layout == LAYOUT_FUSED ? "fused" : "separate",
                     (long long)c->pad, (long long)c->offset, (long long)c->cache_offset, (int)c->special_values);
}

static void run_case(const rope_case *c, uint64_t seed) {
  push_case(c);
  rope_tensors x;
  make_tensors(c, seed, &x);
  mirror_tensors(c, &x);
  lk_rope_params h = params_for(c, &x, false);
  CHECK_STATUS(lk_rope(reference_context(), &h), LK_OK);
  lk_rope_params d = params_for(c, &x, true);
  if (c->tokens == 0) d.q = d.k = NULL, d.positions = NULL, d.cos_sin_cache = NULL; /* nothing is touched */
  CHECK_STATUS(lk_cuda_rope(cuda_test_stream(), &d), LK_OK);
  cuda_test_sync();
  compare_buffers(c, &x);
  free_tensors(&x);
  check_context_pop();
}

static rope_case base_case(lk_dtype dtype, lk_rope_style style, int64_t tokens, int64_t heads, int64_t kv_heads, int64_t head_dim,
                           int64_t rot_dim) {
  rope_case c;
  memset(&c, 0, sizeof c);
  c.dtype = dtype;
  c.style = style;
  c.position_type = LK_INDEX_I32;
  c.tokens = tokens;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.rot_dim = rot_dim;
  c.max_position = 97;
  c.layout = LAYOUT_FUSED;
  return c;
}

/* dtype x style x position type x head counts x (head_dim, rot_dim), the layouts in turn: fused
 * qkv with and without padding, separate buffers with and without, a misaligned base, a misaligned
 * cache. */
static void test_grid(void) {
  static const int64_t heads[][2] = {{3, 0}, {4, 4}, {8, 2}, {6, 1}};
  static const int64_t dims[][2] = {{64, 0}, {128, 0}, {80, 32}, {128, 64}, {10, 0}, {12, 4}, {48, 16}, {256, 0}};
  uint64_t seed = 1;
  for (int t = 0; t < 3; t++)
    for (int style = 0; style < 2; style++)
      for (int pt = 0; pt < 2; pt++)
        for (int h = 0; h < 4; h++)
          for (int dm = 0; dm < 8; dm++) {
            rope_case c = base_case(all_dtypes[t], (lk_rope_style)style, 5 + (int64_t)(seed % 5), heads[h][0], heads[h][1], dims[dm][0],
                                    dims[dm][1]);
            c.position_type = (lk_index_type)pt;
            switch (seed % 6) {
            case 1: c.pad = 8; break;
            case 2: c.layout = LAYOUT_SEPARATE; break;
            case 3: c.layout = LAYOUT_SEPARATE; c.pad = 3; break;
            case 4: c.offset = 1; break;
            case 5: c.cache_offset = 1; c.pad = 16; break;
            default: break;
            }
            run_case(&c, seed++);
          }
}

/* Every even rot_dim from 2 to 256, full or partial (head_dim larger by 10 every third), the
 * dtypes, styles and position types in turn. */
static void test_rot_dims(void) {
  uint64_t seed = 5000;
  for (int64_t rot = 2; rot <= 256; rot += 2) {
    const int k = (int)(rot / 2);
    rope_case c = base_case(all_dtypes[k % 3], (lk_rope_style)(k % 2), 3, 2, 1, rot + (k % 3 == 0 ? 10 : 0), k % 3 == 0 ? rot : 0);
    c.position_type = (lk_index_type)((k / 2) % 2);
    if (k % 5 == 4) c.layout = LAYOUT_SEPARATE;
    run_case(&c, seed++);
  }
}

/* Every token count from 0 to 64 (several tokens a block where a token has few units). */
static void test_token_counts(void) {
  uint64_t seed = 9000;
  for (int64_t tokens = 0; tokens <= 64; tokens++) {
    rope_case c = base_case(all_dtypes[tokens % 3], (lk_rope_style)(tokens % 2), tokens, tokens % 4 == 0 ? 1 : 4, tokens % 4 == 0 ? 0 : 2, 64,
                            tokens % 4 == 0 ? 32 : 0);
    c.position_type = (lk_index_type)((tokens / 2) % 2);
    run_case(&c, seed++);
  }
}

/* Real shapes: Llama-3-8B prefill and decode (a token's units split over blocks), GPT-J-6B's
 * partial rotary with a 256 head, a q-only call with a unit a token (many tokens a block), f32 on
 * separate buffers. */
static void test_shapes(void) {
  rope_case c = base_case(LK_DTYPE_BF16, LK_ROPE_NEOX, 300, 32, 8, 128, 0);
  c.max_position = 4096;
  run_case(&c, 1);
  for (int64_t tokens = 1; tokens <= 3; tokens++) {
    c.tokens = tokens;
    c.position_type = LK_INDEX_I64;
    run_case(&c, 10 + (uint64_t)tokens);
  }
  c = base_case(LK_DTYPE_F16, LK_ROPE_GPTJ, 40, 16, 16, 256, 64);
  run_case(&c, 20);
  c = base_case(LK_DTYPE_BF16, LK_ROPE_NEOX, 5000, 1, 0, 16, 0);
  run_case(&c, 21);
  c = base_case(LK_DTYPE_F32, LK_ROPE_NEOX, 130, 32, 8, 128, 0);
  c.layout = LAYOUT_SEPARATE;
  run_case(&c, 22);
  c = base_case(LK_DTYPE_BF16, LK_ROPE_GPTJ, 7, 32, 8, 96, 0);
  c.offset = 1; /* the element path on a large head count */
  run_case(&c, 23);
}

static void test_special_values(void) {
  uint64_t seed = 300;
  for (int t = 0; t < 3; t++)
    for (int style = 0; style < 2; style++) {
      rope_case c = base_case(all_dtypes[t], (lk_rope_style)style, 9, 4, 2, 64, style ? 32 : 0);
      c.special_values = true;
      c.offset = seed % 2;
      run_case(&c, seed++);
    }
}

/* ---- positions the kernel finds outside the cache -------------------------------------------- */

static int64_t position_at(const rope_case *c, const void *positions, int64_t t) {
  return c->position_type == LK_INDEX_I64 ? ((const int64_t *)positions)[t] : ((const int32_t *)positions)[t];
}
static void set_position(const rope_case *c, void *positions, int64_t t, int64_t value) {
  if (c->position_type == LK_INDEX_I64) ((int64_t *)positions)[t] = value;
  else ((int32_t *)positions)[t] = (int32_t)value;
}

/* Token t's q and k elements in the reference's buffers back to their inputs (a bad token is left
 * untouched). */
static void restore_token(const rope_case *c, rope_tensors *x, int64_t t) {
  const size_t es = dtype_size(c->dtype);
  for (int64_t e = c->offset + t * x->q_stride; e < c->offset + (t + 1) * x->q_stride && e < x->main_count; e++)
    memcpy(x->main + e * (int64_t)es, x->original_main + e * (int64_t)es, es);
  for (int64_t e = c->offset + t * x->k_stride; x->k_count && e < c->offset + (t + 1) * x->k_stride && e < x->k_count; e++)
    memcpy(x->k + e * (int64_t)es, x->original_k + e * (int64_t)es, es);
}

/* Positions `bad` (count of them) set to `values`: the sync names one of them, those tokens are
 * untouched, the others rotated as the reference rotates them. */
static void run_bad_positions(rope_case c, const int64_t *bad, const int64_t *values, int count, uint64_t seed) {
  push_case(&c);
  rope_tensors x;
  make_tensors(&c, seed, &x);
  /* the reference rotates the bad tokens with position 0; their results are then undone */
  lk_rope_params h = params_for(&c, &x, false);
  CHECK_STATUS(lk_rope(reference_context(), &h), LK_OK);
  for (int i = 0; i < count; i++) restore_token(&c, &x, bad[i]);
  /* the device's inputs: the original tensors, with the bad positions */
  unsigned char *reference_main = x.main, *reference_k = x.k;
  x.main = x.original_main;
  x.k = x.original_k;
  for (int i = 0; i < count; i++) set_position(&c, x.positions, bad[i], values[i]);
  mirror_tensors(&c, &x);
  x.main = reference_main;
  x.k = reference_k;

  lk_rope_params d = params_for(&c, &x, true);
  CHECK_STATUS(lk_cuda_rope(cuda_test_stream(), &d), LK_OK); /* queued: the host cannot see the positions */
  const lk_status status = lk_cuda_stream_synchronize(cuda_test_stream());
  char message[512];
  snprintf(message, sizeof message, "%s", lk_last_error());
  CHECK_INVALID(status, "positions");
  bool names_one = false;
  for (int i = 0; i < count; i++) {
    char expected[96];
    snprintf(expected, sizeof expected, "positions[%lld]: %lld is outside [0, max_position = %lld)", (long long)bad[i],
             (long long)position_at(&c, x.positions, bad[i]), (long long)c.max_position);
    names_one |= strstr(message, expected) != NULL;
  }
  CHECKF(names_one, "the message names one of the bad positions: \"%s\"", message);
  CHECKF(strstr(message, "lk_cuda_rope") != NULL, "the message names the entry point: \"%s\"", message);
  /* reported once: the next synchronisation and check find nothing */
  CHECK_STATUS(lk_cuda_stream_synchronize(cuda_test_stream()), LK_OK);
  CHECK_STATUS(lk_cuda_kernel_error_check(), LK_OK);
  compare_buffers(&c, &x);
  free_tensors(&x);
  check_context_pop();
}

static void test_bad_positions(void) {
  rope_case c = base_case(LK_DTYPE_BF16, LK_ROPE_NEOX, 40, 8, 2, 64, 0);
  const int64_t one[] = {17};
  const int64_t past[] = {97}, negative[] = {-1}, wide[] = {((int64_t)1 << 32) + 3};
  run_bad_positions(c, one, past, 1, 1);
  c.position_type = LK_INDEX_I64;
  run_bad_positions(c, one, negative, 1, 2);
  run_bad_positions(c, one, wide, 1, 3); /* truncated to int32 it would be 3, a valid row */
  c = base_case(LK_DTYPE_F32, LK_ROPE_GPTJ, 64, 4, 0, 32, 16);
  const int64_t several[] = {3, 40, 63}, values[] = {-5, 97, 1000};
  run_bad_positions(c, several, values, 3, 4);
  c = base_case(LK_DTYPE_F16, LK_ROPE_NEOX, 1, 32, 8, 128, 0); /* decode: the token's units over several blocks */
  const int64_t first[] = {0};
  run_bad_positions(c, first, past, 1, 5);
  c.tokens = 2;
  c.offset = 1; /* the element path */
  run_bad_positions(c, first, negative, 1, 6);
}

/* ---- the argument contract ------------------------------------------------------------------- */

static void refuse(const lk_rope_params *p, const char *name) {
  char message[512];
  const lk_status cpu = lk_rope(reference_context(), p);
  snprintf(message, sizeof message, "%s", lk_last_error());
  const lk_status cuda = lk_cuda_rope(NULL, p);
  CHECKF(cpu == cuda, "%s: CPU %s, CUDA %s", name, lk_status_name(cpu), lk_status_name(cuda));
  CHECKF(strcmp(message, lk_last_error()) == 0, "%s: CPU \"%s\", CUDA \"%s\"", name, message, lk_last_error());
  CHECK_INVALID(cuda, name);
}

static void test_arguments(void) {
  static uint16_t qkv[4 * (8 + 2 * 2) * 16];
  static float cache[10 * 16];
  static int32_t positions[4];
  lk_rope_params p;
  memset(&p, 0, sizeof p);
  p.q = qkv;
  p.k = qkv + 8 * 16;
  p.positions = positions;
  p.cos_sin_cache = cache;
  p.tokens = 4;
  p.num_heads = 8;
  p.num_kv_heads = 2;
  p.head_dim = 16;
  p.max_position = 10;
  p.q_stride = p.k_stride = (8 + 2 * 2) * 16;
  p.dtype = LK_DTYPE_BF16;
  CHECK_INVALID(lk_cuda_rope(NULL, NULL), "params");
  lk_rope_params b = p;
  b.dtype = (lk_dtype)7;
  refuse(&b, "dtype");
  b = p;
  b.style = (lk_rope_style)2;
  refuse(&b, "style");
  b = p;
  b.position_type = (lk_index_type)2;
  refuse(&b, "position_type");
  b = p;
  b.tokens = -1;
  refuse(&b, "tokens");
  b = p;
  b.num_heads = 0;
  refuse(&b, "num_heads");
  b = p;
  b.head_dim = 0;
  refuse(&b, "head_dim");
  b = p;
  b.rot_dim = 7;
  refuse(&b, "rot_dim");
  b = p;
  b.rot_dim = 18;
  refuse(&b, "rot_dim");
  b = p;
  b.head_dim = 15;
  b.q_stride = b.k_stride = 0;
  refuse(&b, "rot_dim");
  b = p;
  b.max_position = 0;
  refuse(&b, "max_position");
  b = p;
  b.q_stride = 100;
  refuse(&b, "q_stride");
  b = p;
  b.num_kv_heads = 3;
  refuse(&b, "num_kv_heads");
  b = p;
  b.num_kv_heads = 0;
  refuse(&b, "num_kv_heads");
  b = p;
  b.k_stride = 20;
  refuse(&b, "k_stride");
  b = p;
  b.q = NULL;
  refuse(&b, "q");
  b = p;
  b.positions = NULL;
  refuse(&b, "positions");
  b = p;
  b.cos_sin_cache = NULL;
  refuse(&b, "cos_sin_cache");
  b = p;
  b.cos_sin_cache = (const float *)(const void *)(qkv + 4);
  refuse(&b, "cos_sin_cache");
  b = p;
  b.positions = qkv + 2;
  refuse(&b, "positions");
  b = p;
  b.k = qkv + 7 * 16; /* k's first head is q's last */
  refuse(&b, "k");
  /* no tokens: nothing is read or written, NULL pointers are fine */
  b = p;
  b.tokens = 0;
  b.q = b.k = NULL;
  b.positions = NULL;
  b.cos_sin_cache = NULL;
  CHECK_STATUS(lk_cuda_rope(NULL, &b), LK_OK);
}

int main(void) {
  const int devices = cuda_test_begin();
  run_timed("arguments", test_arguments);
  if (devices > 0) {
    run_timed("grid", test_grid);
    run_timed("rot dims", test_rot_dims);
    run_timed("token counts", test_token_counts);
    run_timed("shapes", test_shapes);
    run_timed("special values", test_special_values);
    run_timed("bad positions", test_bad_positions);
  }
  return cuda_test_finish("test_cuda_rope", devices);
}
