/* lk_rope on every ISA this CPU runs, against a float64 reference and against the scalar ISA.
 *
 * (Arguments and the contract: test_rope_arguments.c. The cache builder: test_rope_cache.c.)
 *
 * Each case fills q and k (and v, which RoPE never touches) with random values rounded to the
 * dtype and a cos/sin cache with random values (any values do: the kernel only indexes and
 * multiplies, and independent random cos and sin catch a swapped or misindexed one), on
 * guard-paged buffers (the cache, positions read-only), then for every ISA runs the kernel on a
 * fresh copy and checks:
 *   - rotated elements against float64 a c - b s and b c + a s on the rounded inputs, within
 *       f32:        2^-23 (|a c| + |b s|)  (two products and a sum, each rounded once in f32)
 *       f16, bf16:  that + half an ulp of the dtype at the result (the one final rounding);
 *   - every ISA bit for bit against the scalar ISA: the vector kernels do the same f32
 *     operations in the same order (no FMA), so any difference is a bug, not rounding;
 *   - everything else untouched, bit for bit: elements past rot_dim, v, the padding between
 *     tokens (NaN poison), and all of k when k is NULL;
 *   - other thread counts bit for bit (tokens are split over threads, never the arithmetic).
 * Layouts: q and k as views into one fused qkv buffer (token stride (H + 2 KV) D + padding), and
 * as separate buffers whose last element touches a guard page (either edge).
 *
 * Then the position contract: positions 0 and max_position - 1 are rotated with the cache's
 * first and last rows, and a position outside [0, max_position) anywhere is
 * LK_ERR_INVALID_ARGUMENT naming "positions" with nothing written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

#define MAX_THREADS 3

typedef enum rope_layout {
  LAYOUT_FUSED,   /* q, k, v heads of a token in one row of a qkv buffer */
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
  guard_edge edge;
  bool special_values; /* some NaN, infinities and huge values among the inputs */
  bool other_threads;
} rope_case;

static lk_cpu_context *contexts[3][MAX_THREADS + 1];
static lk_isa isas[3];
static int isa_count;
static uint64_t base_seed = 0x5EED2026ull;
static uint64_t case_counter;
static long kernel_calls;
static double worst_ratio[3]; /* worst error / bound per dtype, over all ISAs */

static const lk_dtype all_dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};
static const char *style_label(lk_rope_style s) { return s == LK_ROPE_GPTJ ? "gptj" : "neox"; }

/* ---- buffers -------------------------------------------------------------------------------- */

typedef struct rope_buffers {
  guarded_buffer main;  /* fused: q, k, v rows; separate: q rows */
  guarded_buffer k;     /* separate layout only */
  int64_t main_count, k_count; /* elements */
  int64_t q_offset, k_offset;  /* element offsets of q and k in their buffers */
  int64_t q_stride, k_stride;
} rope_buffers;

static rope_buffers buffers_alloc(const rope_case *c) {
  rope_buffers b;
  memset(&b, 0, sizeof b);
  const int64_t d = c->head_dim, kv = c->num_kv_heads;
  size_t size = dtype_size(c->dtype);
  if (c->layout == LAYOUT_FUSED) {
    b.q_stride = b.k_stride = (c->num_heads + 2 * (kv ? kv : 1)) * d + c->pad;
    b.q_offset = 0;
    b.k_offset = c->num_heads * d;
    b.main_count = c->tokens * b.q_stride; /* the last token's padding ends at the guard page */
    b.main = guarded_alloc_or_exit((size_t)b.main_count * size, c->edge);
  } else {
    b.q_stride = c->num_heads * d + c->pad;
    b.main_count = span_elements(c->tokens, b.q_stride, c->num_heads * d);
    b.main = guarded_alloc_or_exit((size_t)b.main_count * size, c->edge);
    if (kv) {
      b.k_stride = kv * d + c->pad;
      b.k_count = span_elements(c->tokens, b.k_stride, kv * d);
      b.k = guarded_alloc_or_exit((size_t)b.k_count * size, c->edge);
    }
  }
  return b;
}

static void buffers_free(rope_buffers *b) {
  guarded_free(&b->main);
  guarded_free(&b->k);
}

static void buffers_copy(rope_buffers *to, const rope_buffers *from, size_t size) {
  memcpy(to->main.data, from->main.data, (size_t)from->main_count * size);
  if (from->k_count) memcpy(to->k.data, from->k.data, (size_t)from->k_count * size);
}

/* Elements that differ bit for bit between two copies (NaN vs NaN with another payload counts). */
static int64_t differing(const rope_buffers *a, const rope_buffers *b, lk_dtype dtype, int64_t *first) {
  int64_t count = 0;
  *first = -1;
  for (int64_t i = 0; i < a->main_count; i++)
    if (tensor_bits(dtype, a->main.data, i) != tensor_bits(dtype, b->main.data, i) && count++ == 0) *first = i;
  for (int64_t i = 0; i < a->k_count; i++)
    if (tensor_bits(dtype, a->k.data, i) != tensor_bits(dtype, b->k.data, i) && count++ == 0) *first = a->main_count + i;
  return count;
}

static void *q_base(const rope_buffers *b, size_t size) { return (char *)b->main.data + b->q_offset * (int64_t)size; }
static void *k_base(const rope_case *c, const rope_buffers *b, size_t size) {
  if (!c->num_kv_heads) return NULL;
  if (c->layout == LAYOUT_FUSED) return (char *)b->main.data + b->k_offset * (int64_t)size;
  return b->k.data;
}

/* ---- inputs ----------------------------------------------------------------------------------- */

typedef struct rope_inputs {
  rope_buffers x;
  guarded_buffer cache;     /* [max_position, rot] f32, read-only */
  guarded_buffer positions; /* [tokens], read-only */
  int64_t rot;              /* rot_dim resolved */
  int64_t *position_values;
} rope_inputs;

static float special_value(rng *r) {
  static const float values[] = {NAN, INFINITY, -INFINITY, 3.0e38f, -1.0e-40f, 0.0f, -0.0f};
  return values[rng_below(r, sizeof values / sizeof values[0])];
}

static void make_inputs(const rope_case *c, uint64_t seed, rope_inputs *in) {
  rng r = rng_seeded(seed);
  size_t size = dtype_size(c->dtype);
  in->rot = c->rot_dim ? c->rot_dim : c->head_dim;
  in->x = buffers_alloc(c);
  /* Everything random (v and the heads' unrotated tails included), then the padding poisoned. */
  for (int64_t i = 0; i < in->x.main_count; i++) {
    float v = c->special_values && rng_below(&r, 16) == 0 ? special_value(&r) : rng_uniform(&r, -2.0f, 2.0f);
    tensor_store(c->dtype, in->x.main.data, i, v);
  }
  for (int64_t i = 0; i < in->x.k_count; i++) tensor_store(c->dtype, in->x.k.data, i, rng_uniform(&r, -2.0f, 2.0f));
  int64_t used_main = c->layout == LAYOUT_FUSED ? in->x.q_stride - c->pad : c->num_heads * c->head_dim;
  for (int64_t t = 0; t < c->tokens; t++)
    for (int64_t e = used_main; e < in->x.q_stride && t * in->x.q_stride + e < in->x.main_count; e++)
      tensor_poison(c->dtype, (char *)in->x.main.data + (t * in->x.q_stride + e) * (int64_t)size, 1);
  for (int64_t t = 0; t + 1 < c->tokens && in->x.k_count; t++)
    tensor_poison(c->dtype, (char *)in->x.k.data + (t * in->x.k_stride + c->num_kv_heads * c->head_dim) * (int64_t)size,
                  in->x.k_stride - c->num_kv_heads * c->head_dim);

  in->cache = guarded_alloc_or_exit((size_t)(c->max_position * in->rot) * sizeof(float), c->edge);
  float *cache = in->cache.data;
  for (int64_t i = 0; i < c->max_position * in->rot; i++) cache[i] = rng_uniform(&r, -1.0f, 1.0f);
  guarded_make_read_only(&in->cache);

  size_t position_size = c->position_type == LK_INDEX_I64 ? 8 : 4;
  in->positions = guarded_alloc_or_exit((size_t)c->tokens * position_size, c->edge);
  in->position_values = malloc((size_t)(c->tokens > 0 ? c->tokens : 1) * sizeof(int64_t));
  for (int64_t t = 0; t < c->tokens; t++) {
    int64_t pos = (int64_t)rng_below(&r, (uint32_t)c->max_position);
    if (t == 0) pos = 0;
    if (t == c->tokens - 1 && t > 0) pos = c->max_position - 1;
    in->position_values[t] = pos;
    if (position_size == 8) ((int64_t *)in->positions.data)[t] = pos;
    else ((int32_t *)in->positions.data)[t] = (int32_t)pos;
  }
  guarded_make_read_only(&in->positions);
}

static void free_inputs(rope_inputs *in) {
  buffers_free(&in->x);
  guarded_free(&in->cache);
  guarded_free(&in->positions);
  free(in->position_values);
}

static lk_rope_params params_for(const rope_case *c, const rope_inputs *in, const rope_buffers *x) {
  size_t size = dtype_size(c->dtype);
  lk_rope_params p;
  memset(&p, 0, sizeof p);
  p.q = q_base(x, size);
  p.k = k_base(c, x, size);
  p.positions = in->positions.data;
  p.cos_sin_cache = in->cache.data;
  p.tokens = c->tokens;
  p.num_heads = c->num_heads;
  p.num_kv_heads = c->num_kv_heads;
  p.head_dim = c->head_dim;
  p.rot_dim = c->rot_dim;
  p.max_position = c->max_position;
  /* Contiguous separate buffers go through the 0 = default stride. */
  p.q_stride = c->layout == LAYOUT_SEPARATE && c->pad == 0 ? 0 : x->q_stride;
  p.k_stride = c->layout == LAYOUT_SEPARATE && c->pad == 0 ? 0 : x->k_stride;
  p.style = c->style;
  p.position_type = c->position_type;
  p.dtype = c->dtype;
  return p;
}

/* ---- checks ------------------------------------------------------------------------------------ */

/* Rotated elements against float64, and every other element bit for bit against the input. */
static void check_against_reference(const rope_case *c, const rope_inputs *in, const rope_buffers *out, lk_isa isa) {
  size_t size = dtype_size(c->dtype);
  const int64_t half = in->rot / 2;
  const float *cache = in->cache.data;
  int64_t bad = 0, untouched_bad = 0;
  double worst = 0;
  /* Mark what the kernel may change; everything else must be bitwise the input. */
  for (int part = 0; part < 2; part++) {
    int64_t heads = part == 0 ? c->num_heads : c->num_kv_heads;
    if (!heads) continue;
    const char *src = part == 0 ? q_base(&in->x, size) : k_base(c, &in->x, size);
    const char *dst = part == 0 ? q_base(out, size) : k_base(c, out, size);
    int64_t stride = part == 0 ? in->x.q_stride : in->x.k_stride;
    for (int64_t t = 0; t < c->tokens; t++) {
      const float *cos_row = cache + in->position_values[t] * in->rot;
      for (int64_t h = 0; h < heads; h++) {
        int64_t head = t * stride + h * c->head_dim;
        for (int64_t j = 0; j < half; j++) {
          int64_t ia = head + (c->style == LK_ROPE_GPTJ ? 2 * j : j);
          int64_t ib = head + (c->style == LK_ROPE_GPTJ ? 2 * j + 1 : j + half);
          double a = tensor_load(c->dtype, src, ia), b = tensor_load(c->dtype, src, ib);
          double cs = cos_row[j], sn = cos_row[half + j];
          double ref[2] = {a * cs - b * sn, b * cs + a * sn};
          double magnitudes[2] = {fabs(a * cs) + fabs(b * sn), fabs(b * cs) + fabs(a * sn)};
          int64_t idx[2] = {ia, ib};
          for (int m = 0; m < 2; m++) {
            double got = tensor_load(c->dtype, dst, idx[m]), magnitude = magnitudes[m];
            if (!isfinite(ref[m]) || !isfinite(magnitude)) continue; /* special values: the scalar comparison covers them */
            double bound = ldexp(magnitude, -23) + (c->dtype == LK_DTYPE_F32 ? 0.0 : 0.5 * dtype_ulp(c->dtype, ref[m])) +
                           (c->dtype == LK_DTYPE_F16 ? ldexp(1.0, -25) : 0.0) + 1e-45;
            double err = fabs(got - ref[m]);
            if (!(err <= bound)) {
              if (bad++ == 0)
                CHECKF(false, "%s: token %lld head %lld pair %lld: got %.9g, float64 %.9g (bound %.3g)", lk_isa_name(isa),
                       (long long)t, (long long)h, (long long)j, got, ref[m], bound);
            } else if (bound > 0 && err / bound > worst) {
              worst = err / bound;
            }
          }
        }
        /* the unrotated tail of the head */
        for (int64_t e = in->rot; e < c->head_dim; e++)
          if (tensor_bits(c->dtype, src, head + e) != tensor_bits(c->dtype, dst, head + e)) untouched_bad++;
      }
    }
  }
  /* v, padding, and the gaps of separate buffers: compare whole buffers outside q and k heads. */
  int64_t q_cols = c->num_heads * c->head_dim, k_cols = c->num_kv_heads * c->head_dim;
  for (int64_t i = 0; i < in->x.main_count; i++) {
    int64_t e = i % in->x.q_stride;
    bool in_q = e < q_cols;
    bool in_k = c->layout == LAYOUT_FUSED && c->num_kv_heads && e >= in->x.k_offset && e < in->x.k_offset + k_cols;
    if (!in_q && !in_k && tensor_bits(c->dtype, in->x.main.data, i) != tensor_bits(c->dtype, out->main.data, i)) untouched_bad++;
  }
  for (int64_t i = 0; i < in->x.k_count; i++)
    if (i % in->x.k_stride >= k_cols && tensor_bits(c->dtype, in->x.k.data, i) != tensor_bits(c->dtype, out->k.data, i))
      untouched_bad++;
  CHECKF(bad == 0, "%s: %lld rotated elements outside the float64 bound", lk_isa_name(isa), (long long)bad);
  CHECKF(untouched_bad == 0, "%s: %lld elements outside the rotated pairs changed (past rot_dim, v, padding)",
         lk_isa_name(isa), (long long)untouched_bad);
  int d = c->dtype == LK_DTYPE_F32 ? 0 : c->dtype == LK_DTYPE_F16 ? 1 : 2;
  if (worst > worst_ratio[d]) worst_ratio[d] = worst;
}

static bool run_kernel(const rope_case *c, const rope_inputs *in, rope_buffers *out, lk_cpu_context *context, lk_isa isa) {
  buffers_copy(out, &in->x, dtype_size(c->dtype));
  lk_rope_params p = params_for(c, in, out);
  kernel_calls++;
  lk_status status = lk_rope(context, &p);
  return CHECKF(status == LK_OK, "%s: lk_rope returned %d: %s", lk_isa_name(isa), (int)status, lk_last_error());
}

static void run_case(const rope_case *c) {
  uint64_t seed = base_seed + 7919 * ++case_counter;
  check_context_push("case %llu (seed 0x%llx): %s %s %s pos, tokens %lld, heads %lld/%lld, head_dim %lld, rot_dim %lld, "
                     "max_position %lld, %s layout pad %lld, %s edge%s",
                     (unsigned long long)case_counter, (unsigned long long)seed, dtype_label(c->dtype), style_label(c->style),
                     c->position_type == LK_INDEX_I64 ? "i64" : "i32", (long long)c->tokens, (long long)c->num_heads,
                     (long long)c->num_kv_heads, (long long)c->head_dim, (long long)c->rot_dim, (long long)c->max_position,
                     c->layout == LAYOUT_FUSED ? "fused" : "separate", (long long)c->pad,
                     c->edge == GUARD_EDGE_END ? "end" : "start", c->special_values ? ", special values" : "");
  rope_inputs in;
  make_inputs(c, seed, &in);
  rope_buffers scalar = buffers_alloc(c);
  bool have_scalar = false;
  for (int k = 0; k < isa_count; k++) {
    rope_buffers out = buffers_alloc(c);
    if (run_kernel(c, &in, &out, contexts[k][1], isas[k])) {
      if (!c->special_values) check_against_reference(c, &in, &out, isas[k]);
      if (k == 0) {
        buffers_copy(&scalar, &out, dtype_size(c->dtype));
        have_scalar = true;
      } else if (have_scalar) {
        int64_t first;
        int64_t n = differing(&out, &scalar, c->dtype, &first);
        CHECKF(n == 0, "%s differs from scalar in %lld elements (first at element %lld)", lk_isa_name(isas[k]), (long long)n,
               (long long)first);
      }
      if (c->other_threads)
        for (int threads = 2; threads <= MAX_THREADS; threads++) {
          rope_buffers other = buffers_alloc(c);
          if (run_kernel(c, &in, &other, contexts[k][threads], isas[k])) {
            int64_t first;
            int64_t n = differing(&out, &other, c->dtype, &first);
            CHECKF(n == 0, "%s with %d threads differs from 1 thread in %lld elements", lk_isa_name(isas[k]), threads,
                   (long long)n);
          }
          buffers_free(&other);
        }
    }
    buffers_free(&out);
  }
  buffers_free(&scalar);
  free_inputs(&in);
  check_context_pop();
}

static rope_case base_case(int index) {
  rope_case c;
  memset(&c, 0, sizeof c);
  c.dtype = all_dtypes[index % 3];
  c.style = (lk_rope_style)((index / 3) % 2);
  c.position_type = (lk_index_type)((index / 6) % 2);
  c.tokens = 3;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.max_position = 37;
  c.layout = LAYOUT_FUSED;
  c.edge = GUARD_EDGE_END;
  return c;
}

/* ---- the sweeps ---------------------------------------------------------------------------- */

/* Every head_dim 1..257 (the vector bodies and all their tails), with full, partial and minimal
 * rotary dims, rotating through dtype x style x position type x layout. */
static void test_ragged_head_dim(void) {
  int index = 0;
  for (int64_t d = 1; d <= 257; d++) {
    int64_t full = d - d % 2;
    int64_t rots[3] = {d % 2 ? full : 0, (d / 2) - (d / 2) % 2, 2};
    for (int r = 0; r < 3; r++) {
      if (rots[r] > d || (rots[r] == 0 && d % 2)) continue;
      if (full == 0) continue; /* head_dim 1: nothing to rotate (an argument error, tested elsewhere) */
      if (rots[r] == 0 && r > 0) continue;
      rope_case c = base_case(index++);
      c.head_dim = d;
      c.rot_dim = rots[r];
      c.layout = index % 2 ? LAYOUT_FUSED : LAYOUT_SEPARATE;
      c.edge = index % 5 == 0 ? GUARD_EDGE_START : GUARD_EDGE_END;
      c.pad = index % 3 == 0 ? 0 : 3;
      run_case(&c);
    }
  }
}

/* Every dtype x style x position type x rotary dim x head grouping, at the head sizes models use. */
static void test_combinations(void) {
  static const int64_t head_dims[] = {64, 80, 128, 256};
  static const struct { int64_t heads, kv; } groups[] = {{4, 0}, {4, 4}, {6, 2}, {5, 1}, {3, 3}, {7, 1}};
  int index = 0;
  for (int dt = 0; dt < 3; dt++)
    for (int st = 0; st < 2; st++)
      for (int pt = 0; pt < 2; pt++)
        for (size_t hd = 0; hd < sizeof head_dims / sizeof head_dims[0]; hd++)
          for (int rot = 0; rot < 3; rot++)
            for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
              /* not the full product of all at every head size: rotate head sizes through it */
              if ((index++ + (int)g) % 4 != (int)hd) continue;
              rope_case c = base_case(0);
              c.dtype = all_dtypes[dt];
              c.style = (lk_rope_style)st;
              c.position_type = (lk_index_type)pt;
              c.head_dim = head_dims[hd];
              c.rot_dim = rot == 0 ? 0 : rot == 1 ? head_dims[hd] / 2 : head_dims[hd] / 4 + 2; /* GLM, Phi, ragged */
              c.num_heads = groups[g].heads;
              c.num_kv_heads = groups[g].kv;
              c.tokens = 5;
              c.max_position = 4099;
              c.layout = (g % 2) ? LAYOUT_FUSED : LAYOUT_SEPARATE;
              c.pad = g % 3 == 0 ? 0 : 16;
              c.edge = g % 4 == 1 ? GUARD_EDGE_START : GUARD_EDGE_END;
              run_case(&c);
            }
}

/* Enough tokens to split over threads; the split must not change a bit. */
static void test_thread_split(void) {
  for (int i = 0; i < 12; i++) {
    rope_case c = base_case(i);
    c.tokens = 257 + 31 * i;
    c.num_heads = 8;
    c.num_kv_heads = 2;
    c.head_dim = 128;
    c.rot_dim = i % 4 == 3 ? 64 : 0;
    c.max_position = 8192;
    c.layout = LAYOUT_FUSED;
    c.pad = i % 2 ? 8 : 0;
    c.other_threads = true;
    run_case(&c);
  }
}

/* NaN, infinities, huge and subnormal inputs: every ISA equals the scalar reference bit for bit. */
static void test_special_values(void) {
  for (int i = 0; i < 12; i++) {
    rope_case c = base_case(i);
    c.tokens = 9;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 96;
    c.special_values = true;
    run_case(&c);
  }
}

/* Heads wider than the vector kernels' per-token tables (rot_dim > 1024) run the scalar path. */
static void test_wide_heads(void) {
  static const int64_t dims[][2] = {{1024, 0}, {1030, 1028}, {2050, 0}};
  for (int i = 0; i < 6; i++) {
    rope_case c = base_case(i);
    c.head_dim = dims[i % 3][0] + (dims[i % 3][1] == 0 && dims[i % 3][0] % 2 ? 1 : 0);
    c.rot_dim = dims[i % 3][1];
    run_case(&c);
  }
}

/* Large calls take the prefetching path (more than 4 MiB of q and k); one per dtype and style. */
static void test_large_call(void) {
  for (int i = 0; i < 6; i++) {
    rope_case c = base_case(i);
    c.tokens = 300;
    c.num_heads = 32;
    c.num_kv_heads = 8;
    c.head_dim = 128;
    c.max_position = 512;
    c.layout = LAYOUT_FUSED;
    run_case(&c);
  }
}

/* Positions outside the cache: refused naming "positions", and nothing written, wherever the bad
 * token is (a kernel that validated as it went would have rotated the tokens before it). */
static void test_positions_out_of_range(void) {
  for (int k = 0; k < isa_count; k++)
    for (int i = 0; i < 12; i++) {
      rope_case c = base_case(i);
      c.tokens = 6;
      c.head_dim = 32;
      c.max_position = 10;
      rope_inputs in;
      make_inputs(&c, base_seed + (uint64_t)i, &in);
      static const int64_t bad_values[] = {10, -1, 11, INT32_MAX, INT32_MIN, (int64_t)1 << 32, INT64_MIN};
      for (size_t v = 0; v < sizeof bad_values / sizeof bad_values[0]; v++) {
        if (c.position_type == LK_INDEX_I32 && (bad_values[v] > INT32_MAX || bad_values[v] < INT32_MIN)) continue;
        for (int64_t t = 0; t < c.tokens; t += c.tokens - 1) {
          guarded_buffer positions = guarded_alloc_or_exit((size_t)c.tokens * 8, GUARD_EDGE_END);
          for (int64_t u = 0; u < c.tokens; u++) {
            int64_t pos = u == t ? bad_values[v] : in.position_values[u];
            if (c.position_type == LK_INDEX_I64) ((int64_t *)positions.data)[u] = pos;
            else ((int32_t *)positions.data)[u] = (int32_t)pos;
          }
          rope_buffers out = buffers_alloc(&c);
          buffers_copy(&out, &in.x, dtype_size(c.dtype));
          lk_rope_params p = params_for(&c, &in, &out);
          p.positions = positions.data;
          check_context_push("%s %s %s: positions[%lld] = %lld", lk_isa_name(isas[k]), dtype_label(c.dtype),
                             c.position_type == LK_INDEX_I64 ? "i64" : "i32", (long long)t, (long long)bad_values[v]);
          CHECK_INVALID(lk_rope(contexts[k][MAX_THREADS], &p), "positions");
          char index_text[32];
          snprintf(index_text, sizeof index_text, "positions[%lld]", (long long)t);
          CHECKF(strstr(lk_last_error(), index_text) != NULL, "message does not name %s: %s", index_text, lk_last_error());
          int64_t first;
          CHECKF(differing(&out, &in.x, c.dtype, &first) == 0, "a refused call wrote q or k");
          check_context_pop();
          buffers_free(&out);
          guarded_free(&positions);
        }
      }
      /* The largest valid int64 position with a cache that has it: max_position near 2^31 is too big
       * to allocate here, so the boundary is checked at max_position - 1 by every case. */
      free_inputs(&in);
    }
}

/* Positions 0 and max_position - 1 use exactly the first and last cache rows: with a cache whose
 * rows are all (cos 1, sin 0) except those two, only those tokens change. */
static void test_cache_ends(void) {
  for (int k = 0; k < isa_count; k++) {
    const int64_t max_position = 5, rot = 8, tokens = 4;
    guarded_buffer cache = guarded_alloc_or_exit((size_t)(max_position * rot) * 4, GUARD_EDGE_END);
    float *cs = cache.data;
    for (int64_t p = 0; p < max_position; p++)
      for (int64_t j = 0; j < rot / 2; j++) {
        cs[p * rot + j] = 1.0f;
        cs[p * rot + rot / 2 + j] = 0.0f;
      }
    /* row 0: a quarter turn (cos 0, sin 1); the last row: a half turn (cos -1, sin 0) */
    for (int64_t j = 0; j < rot / 2; j++) {
      cs[j] = 0.0f;
      cs[rot / 2 + j] = 1.0f;
      cs[(max_position - 1) * rot + j] = -1.0f;
    }
    guarded_make_read_only(&cache);
    int64_t positions[4] = {0, 2, max_position - 1, 1};
    float q[4 * 8];
    for (int i = 0; i < 32; i++) q[i] = (float)(i % 8 + 1);
    lk_rope_params p;
    memset(&p, 0, sizeof p);
    p.q = q;
    p.positions = positions;
    p.cos_sin_cache = cs;
    p.tokens = tokens;
    p.num_heads = 1;
    p.head_dim = rot;
    p.max_position = max_position;
    p.style = LK_ROPE_NEOX;
    p.position_type = LK_INDEX_I64;
    p.dtype = LK_DTYPE_F32;
    CHECK_STATUS(lk_rope(contexts[k][1], &p), LK_OK);
    /* token 0 (position 0): (a, b) -> (-b, a); token 2 (last row): -(a, b); tokens 1, 3: unchanged */
    static const float want0[8] = {-5, -6, -7, -8, 1, 2, 3, 4};
    int wrong = 0;
    for (int i = 0; i < 8; i++) {
      wrong += q[i] != want0[i];
      wrong += q[8 + i] != (float)(i + 1);
      wrong += q[16 + i] != -(float)(i + 1);
      wrong += q[24 + i] != (float)(i + 1);
    }
    CHECKF(wrong == 0, "%s: positions 0 and max_position - 1 did not use the cache's first and last rows",
           lk_isa_name(isas[k]));
    guarded_free(&cache);
  }
}

static void create_contexts(void) {
  isa_count = supported_isas(isas);
  for (int k = 0; k < isa_count; k++)
    for (int threads = 1; threads <= MAX_THREADS; threads++) {
      lk_cpu_options options = {threads, isas[k]};
      if (!CHECK_STATUS(lk_cpu_context_create(&options, &contexts[k][threads]), LK_OK)) exit(1);
    }
  if (!(lk_cpu_supported_isas() & (1u << LK_ISA_AVX512)))
    check_skip("AVX-512 variant", "this CPU or OS does not run AVX-512");
}

int main(void) {
  const char *seed = getenv("LK_TEST_SEED");
  if (seed && *seed) base_seed = strtoull(seed, NULL, 0);
  create_contexts();
  test_ragged_head_dim();
  test_combinations();
  test_thread_split();
  test_special_values();
  test_large_call();
  test_wide_heads();
  test_positions_out_of_range();
  test_cache_ends();
  for (int k = 0; k < isa_count; k++)
    for (int threads = 1; threads <= MAX_THREADS; threads++) lk_cpu_context_destroy(contexts[k][threads]);
  printf("%llu cases, %ld kernel calls, ISAs:", (unsigned long long)case_counter, kernel_calls);
  for (int k = 0; k < isa_count; k++) printf(" %s", lk_isa_name(isas[k]));
  printf("\nworst error / float64 bound: f32 %.3f f16 %.3f bf16 %.3f\n", worst_ratio[0], worst_ratio[1], worst_ratio[2]);
  return check_summary("test_rope");
}
