/* lk_cuda_apply_activation and lk_cuda_glu against the CPU library's scalar reference (which
 * test_activation.c, test_glu.c and test_vector_math.c check against float64): every activation x
 * dtype, every GLU layout, on ragged lengths (every n and d from 0 / 1 to 257, both sides of the
 * vector width), padded strides, misaligned bases (the element path), in place, decode and large
 * shapes; every 16-bit input pattern and a sweep of f32 bit patterns.
 *
 * Checks, per case:
 *   - each output within the tolerance of the reference's (f32: a few ulps, set from CUDA's and
 *     glibc's libm errors, see f32_tolerance_ulps; bf16 / f16: one ulp, a rounding boundary the
 *     f32 difference crossed; ReLU exact); on the emulator, whose libm is glibc's, bit for bit;
 *   - every other element of every buffer (the gaps between rows, the up half of a packed row,
 *     the elements around a misaligned base) bit for bit as the reference left it;
 *   - the argument contract: invalid calls fail with the CPU's status and message, before any
 *     launch (so these run without a device too).
 * The largest difference seen per activation, dtype and form is printed at the end (the numbers
 * docs/cuda/activations-rope.md records).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activation_reference.h"
#include "cuda_harness.h"

/* The emulator runs the kernels' f32 code with glibc's expf, erfcf, erff and tanhf, the CPU
 * reference's own: there every result must equal the reference bit for bit. */
static bool exact_device;

/* Allowed f32 difference from the CPU reference, in ulps of the reference's result (the unit is
 * `distance`'s). Not measured on a GPU yet (docs/cuda/activations-rope.md): CUDA's documented
 * maximum errors (expf, erff, tanhf 2 ulps; erfcf 4) plus glibc's (docs/activations.md: expf 0.5,
 * tanhf 2.2, erff 0.9; erfcf 2.8), carried through each formula's remaining roundings (each may
 * go the other way), plus about one ulp of margin:
 *   exp        2.5                                                      -> 4
 *   sigmoid    e = exp(-|x|) 2.5 apart, 1 + e ~1.3, the quotient 1: 4.8  -> 6
 *   SiLU, GELU (tanh): sigmoid's and the product with x: 5.8            -> 7
 *   tanh 4.2 -> 5, erf 2.9 -> 4, GELU (erf): erfc 6.8 and the product with 0.5 x: 7.8 -> 9
 * A gated output adds the product with up (one more ulp). */
static const double f32_tolerance_ulps[ACTIVATION_COUNT] = {
    /* silu */ 7, /* gelu_erf */ 9, /* gelu_tanh */ 7, /* relu */ 0,
    /* sigmoid */ 6, /* exp */ 4, /* tanh */ 5, /* erf */ 4,
};

/* Largest distance and count of differing outputs, [activation][dtype][gated]. */
static double worst[ACTIVATION_COUNT][3][2];
static long long differing[ACTIVATION_COUNT][3][2], compared[ACTIVATION_COUNT][3][2];

static const float gap_value = -7.25f; /* in x's gaps: any activation of it differs from it */

static double finite_max(lk_dtype dtype) { return dtype == LK_DTYPE_F32 ? FLT_MAX : dtype == LK_DTYPE_F16 ? 65504.0 : 3.3895313892515355e38; }

/* |got - want| in units of the output's precision. f32: ulps of want; among subnormal results the
 * unit grows to 2^-149 (1 + |x|) (1 + |up|), because a subnormal e^-|z| (absolute error of a few
 * 2^-149) is multiplied by x and up. bf16 / f16: ulps of the dtype at want (its subnormal spacing
 * below the normal range). The largest finite value and the infinity it rounds next to are 1 apart. */
static double distance(lk_dtype dtype, float got, float want, float x, float up) {
  if (isnan(want) || isnan(got)) return isnan(want) && isnan(got) ? 0.0 : INFINITY;
  if (got == want) return 0.0;
  if (isinf(got) || isinf(want)) {
    const float finite = isinf(got) ? want : got, infinite = isinf(got) ? got : want;
    return fabs((double)finite) == finite_max(dtype) && (finite > 0) == (infinite > 0) ? 1.0 : INFINITY;
  }
  double unit;
  if (dtype == LK_DTYPE_F32) {
    unit = fabs((double)want) < FLT_MIN ? ldexp(1.0, -149) : dtype_ulp(LK_DTYPE_F32, want);
    const double amplified = ldexp(1.0, -149) * (1.0 + fabs((double)x)) * (1.0 + fabs((double)up));
    if (fabs((double)want) < FLT_MIN && amplified > unit) unit = amplified;
  } else {
    const double min_normal = dtype == LK_DTYPE_F16 ? ldexp(1.0, -14) : ldexp(1.0, -126);
    unit = dtype_ulp(dtype, fmax(fabs((double)want), min_normal));
  }
  return fabs((double)got - (double)want) / unit;
}

static double tolerance(lk_activation act, lk_dtype dtype, bool gated) {
  if (act == LK_ACTIVATION_RELU) return 0.0;
  if (dtype != LK_DTYPE_F32) return 1.0;
  return f32_tolerance_ulps[act] + (gated ? 1.0 : 0.0);
}

static int dtype_index(lk_dtype dtype) { return dtype == LK_DTYPE_F32 ? 0 : dtype == LK_DTYPE_F16 ? 1 : 2; }

/* One output element against the reference; counts and remembers. Returns whether it passed. */
typedef struct comparison {
  lk_activation act;
  lk_dtype dtype;
  bool gated;
  long bad, inexact;
} comparison;

static void compare_element(comparison *c, const void *got_base, const void *want_base, int64_t e, float x, float up,
                            const char *what, int64_t row, int64_t i) {
  const float got = tensor_load(c->dtype, got_base, e), want = tensor_load(c->dtype, want_base, e);
  const bool same_bits = tensor_bits(c->dtype, got_base, e) == tensor_bits(c->dtype, want_base, e) || (isnan(got) && isnan(want));
  const double dist = distance(c->dtype, got, want, x, up);
  const int a = (int)c->act, t = dtype_index(c->dtype), g = c->gated;
  compared[a][t][g]++;
  if (!same_bits) differing[a][t][g]++;
  if (dist > worst[a][t][g]) worst[a][t][g] = dist;
  if (dist > tolerance(c->act, c->dtype, c->gated) && c->bad++ < 3)
    CHECKF(false, "%s[%lld][%lld]: x %.9g up %.9g: %.9g, reference %.9g (%.2f units)", what, (long long)row, (long long)i, (double)x,
           (double)up, (double)got, (double)want, dist);
  if (exact_device && !same_bits && c->inexact++ < 3)
    CHECKF(false, "%s[%lld][%lld]: x %.9g up %.9g: bits 0x%x, reference 0x%x (the emulator must match bit for bit)", what, (long long)row,
           (long long)i, (double)x, (double)up, (unsigned)tensor_bits(c->dtype, got_base, e), (unsigned)tensor_bits(c->dtype, want_base, e));
}

static void finish_comparison(const comparison *c) {
  CHECKF(c->bad == 0, "%ld outputs outside the tolerance", c->bad);
  if (exact_device) CHECKF(c->inexact == 0, "%ld outputs differ from the reference's bits", c->inexact);
}

/* Elements [0, count) of two buffers bit for bit, except those `skip` says were outputs. */
typedef bool (*is_output_fn)(const void *ctx, int64_t e);
static void compare_rest(lk_dtype dtype, const void *got, const void *want, int64_t count, is_output_fn is_output, const void *ctx,
                         const char *what) {
  int64_t bad = 0, first = -1;
  for (int64_t e = 0; e < count; e++) {
    if (is_output && is_output(ctx, e)) continue;
    if (tensor_bits(dtype, got, e) != tensor_bits(dtype, want, e) && bad++ == 0) first = e;
  }
  CHECKF(bad == 0, "%s: %lld elements outside the outputs changed (first at %lld)", what, (long long)bad, (long long)first);
}

/* ---- lk_cuda_apply_activation ------------------------------------------------------------------- */

typedef struct span_ctx {
  int64_t begin, end;
} span_ctx;
static bool in_span(const void *ctx, int64_t e) {
  const span_ctx *s = ctx;
  return e >= s->begin && e < s->end;
}

/* y = act(x) over n elements whose values are `values` (dtype), x placed x_offset elements into its
 * buffer (gap_value around it), y y_offset elements into a poisoned one, or in place. */
static void activation_case(lk_dtype dtype, lk_activation act, const void *values, int64_t n, int64_t x_offset, int64_t y_offset,
                            bool in_place) {
  check_context_push("apply_activation %s %s n %lld x_offset %lld y_offset %lld in_place %d", activation_label(act), dtype_label(dtype),
                     (long long)n, (long long)x_offset, (long long)y_offset, (int)in_place);
  const size_t es = dtype_size(dtype);
  if (in_place) y_offset = x_offset;
  const int64_t x_count = x_offset + n + 3, y_count = y_offset + n + 3;
  unsigned char *x = malloc((size_t)x_count * es), *y = malloc((size_t)y_count * es);
  unsigned char *got_x = malloc((size_t)x_count * es), *got_y = malloc((size_t)y_count * es), *inputs = malloc((size_t)(n + 1) * es);
  for (int64_t e = 0; e < x_count; e++) tensor_store(dtype, x, e, gap_value);
  memcpy(x + x_offset * es, values, (size_t)n * es);
  memcpy(inputs, values, (size_t)n * es);
  tensor_poison(dtype, y, y_count);
  unsigned char *d_x = device_mirror(x, (size_t)x_count * es), *d_y = device_mirror(y, (size_t)y_count * es);

  lk_activation_params h = {x + x_offset * es, (in_place ? x : y) + y_offset * es, n, act, dtype};
  CHECK_STATUS(lk_apply_activation(reference_context(), &h), LK_OK);
  lk_activation_params d = {d_x + x_offset * es, (in_place ? d_x : d_y) + y_offset * es, n, act, dtype};
  if (n == 0) d.x = d.y = NULL; /* nothing is touched: NULL is fine */
  CHECK_STATUS(lk_cuda_apply_activation(cuda_test_stream(), &d), LK_OK);
  cuda_test_sync();
  host_from_device(got_x, d_x, (size_t)x_count * es);
  host_from_device(got_y, d_y, (size_t)y_count * es);

  comparison c = {act, dtype, false, 0, 0};
  const unsigned char *want_out = in_place ? x : y, *got_out = in_place ? got_x : got_y;
  for (int64_t i = 0; i < n; i++)
    compare_element(&c, got_out, want_out, y_offset + i, tensor_load(dtype, inputs, i), 1.0f, "y", 0, i);
  finish_comparison(&c);
  const span_ctx out_span = {y_offset, y_offset + n};
  compare_rest(dtype, got_x, x, x_count, in_place ? in_span : NULL, &out_span, "x's buffer");
  if (!in_place) compare_rest(dtype, got_y, y, y_count, in_span, &out_span, "y's buffer");

  device_free(d_x);
  device_free(d_y);
  free(x);
  free(y);
  free(got_x);
  free(got_y);
  free(inputs);
  check_context_pop();
}

/* n values of dtype: uniform in [-lo, hi] with NaN, infinities and zeros sprinkled in. */
static void *random_values(lk_dtype dtype, int64_t n, float lo, float hi, uint64_t seed) {
  void *v = malloc((size_t)(n + 1) * dtype_size(dtype));
  rng r = rng_seeded(seed);
  static const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
  for (int64_t i = 0; i < n; i++)
    tensor_store(dtype, v, i, i % 29 == 11 ? specials[(i / 29) % 5] : rng_uniform(&r, lo, hi));
  return v;
}

/* Every n from 0 to 257 for every activation and dtype: both sides of the 16-byte vector (4 or 8
 * elements) and of a block's chunk; in turn a misaligned x (the element path), a misaligned y, in
 * place. */
static void test_activation_ragged(void) {
  for (int a = 0; a < ACTIVATION_COUNT; a++)
    for (int t = 0; t < 3; t++)
      for (int64_t n = 0; n <= 257; n++) {
        void *values = random_values(all_dtypes[t], n, -12.0f, 12.0f, 0xAC7ull + (uint64_t)(n * 131 + a * 7 + t));
        const int variant = (int)(n % 4);
        activation_case(all_dtypes[t], all_activations[a], values, n, variant == 1 ? 1 : 0, variant == 2 ? 3 : 0, variant == 3);
        free(values);
      }
}

/* Large spans: many blocks, vector body plus a ragged end, and the element path at scale. */
static void test_activation_large(void) {
  static const int64_t sizes[] = {4096, 100003};
  for (int a = 0; a < ACTIVATION_COUNT; a++)
    for (int t = 0; t < 3; t++)
      for (int s = 0; s < 2; s++) {
        void *values = random_values(all_dtypes[t], sizes[s], -12.0f, 12.0f, 0x1A26Eull + (uint64_t)(a * 3 + t + s * 100));
        activation_case(all_dtypes[t], all_activations[a], values, sizes[s], s, 0, a % 2 == 0);
        free(values);
      }
  void *values = random_values(LK_DTYPE_BF16, (1 << 20) + 3, -8.0f, 8.0f, 77);
  activation_case(LK_DTYPE_BF16, LK_ACTIVATION_SILU, values, (1 << 20) + 3, 0, 0, false);
  free(values);
}

/* Every 16-bit pattern (subnormals, infinities, NaNs included) through every activation. */
static void test_activation_all_16bit(void) {
  uint16_t *values = malloc(65536 * sizeof(uint16_t));
  for (int i = 0; i < 65536; i++) values[i] = (uint16_t)i;
  for (int a = 0; a < ACTIVATION_COUNT; a++) {
    activation_case(LK_DTYPE_F16, all_activations[a], values, 65536, 0, 0, false);
    activation_case(LK_DTYPE_BF16, all_activations[a], values, 65536, 0, 0, false);
  }
  free(values);
}

/* f32: 2^18 bit patterns spread over all of them (every exponent, both signs, subnormals, NaNs),
 * then 2^18 uniform in [-20, 20] where the functions bend. */
static void test_activation_f32_sweep(void) {
  const int64_t n = (int64_t)1 << 19;
  float *values = malloc((size_t)n * sizeof(float));
  rng r = rng_seeded(0xF32);
  for (int64_t i = 0; i < n / 2; i++) {
    const uint32_t bits = (uint32_t)(i << 14) | (uint32_t)(rng_next(&r) & 0x3fffu);
    memcpy(&values[i], &bits, sizeof bits);
  }
  for (int64_t i = n / 2; i < n; i++) values[i] = rng_uniform(&r, -20.0f, 20.0f);
  for (int a = 0; a < ACTIVATION_COUNT; a++) activation_case(LK_DTYPE_F32, all_activations[a], values, n, 0, 0, false);
  free(values);
}

/* ---- lk_cuda_glu ------------------------------------------------------------------------------- */

typedef struct glu_case {
  lk_glu_layout layout;
  lk_activation act;
  lk_dtype dtype;
  int64_t tokens, d;
  int64_t x_pad, up_pad, out_pad; /* elements past each row; -1: pass stride 0 (the default, no pad) */
  int64_t offset;                 /* elements every base is moved by: odd breaks 16-byte alignment */
  bool in_place;                  /* out == x (packed) or out == the gate (split) */
  float lo, hi;                   /* range of the inputs */
} glu_case;

typedef struct rows_ctx {
  int64_t offset, stride, width, rows;
} rows_ctx;
static bool in_rows(const void *ctx, int64_t e) {
  const rows_ctx *r = ctx;
  const int64_t rel = e - r->offset;
  return rel >= 0 && rel / r->stride < r->rows && rel % r->stride < r->width;
}

static int64_t pad_of(int64_t pad) { return pad < 0 ? 0 : pad; }

static void glu_run(const glu_case *c, uint64_t seed) {
  check_context_push("glu layout %d %s %s tokens %lld d %lld pads %lld/%lld/%lld offset %lld in_place %d", (int)c->layout,
                     activation_label(c->act), dtype_label(c->dtype), (long long)c->tokens, (long long)c->d, (long long)c->x_pad,
                     (long long)c->up_pad, (long long)c->out_pad, (long long)c->offset, (int)c->in_place);
  const size_t es = dtype_size(c->dtype);
  const bool split = c->layout == LK_GLU_SPLIT;
  const int64_t x_width = split ? c->d : 2 * c->d;
  const int64_t x_stride = x_width + pad_of(c->x_pad), up_stride = c->d + pad_of(c->up_pad);
  const int64_t out_stride = c->in_place ? x_stride : c->d + pad_of(c->out_pad);
  const int64_t x_count = c->offset + c->tokens * x_stride + 2, up_count = split ? c->offset + c->tokens * up_stride + 2 : 0;
  const int64_t out_count = c->in_place ? 0 : c->offset + c->tokens * out_stride + 2;

  rng r = rng_seeded(seed);
  unsigned char *x = malloc((size_t)x_count * es), *x_in = malloc((size_t)x_count * es), *got_x = malloc((size_t)x_count * es);
  unsigned char *up = malloc((size_t)(up_count + 1) * es), *got_up = malloc((size_t)(up_count + 1) * es);
  unsigned char *out = malloc((size_t)(out_count + 1) * es), *got_out = malloc((size_t)(out_count + 1) * es);
  static const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
  for (int64_t e = 0; e < x_count; e++) tensor_store(c->dtype, x, e, gap_value);
  for (int64_t e = 0; e < up_count; e++) tensor_store(c->dtype, up, e, gap_value);
  tensor_poison(c->dtype, out, out_count);
  for (int64_t t = 0; t < c->tokens; t++) {
    for (int64_t i = 0; i < x_width; i++)
      tensor_store(c->dtype, x, c->offset + t * x_stride + i, rng_below(&r, 41) == 0 ? specials[rng_below(&r, 5)] : rng_uniform(&r, c->lo, c->hi));
    for (int64_t i = 0; split && i < c->d; i++) tensor_store(c->dtype, up, c->offset + t * up_stride + i, rng_uniform(&r, c->lo, c->hi));
  }
  memcpy(x_in, x, (size_t)x_count * es);
  unsigned char *d_x = device_mirror(x, (size_t)x_count * es), *d_up = device_mirror(up, (size_t)up_count * es);
  unsigned char *d_out = device_mirror(out, (size_t)out_count * es);

  lk_glu_params p;
  memset(&p, 0, sizeof p);
  p.tokens = c->tokens;
  p.d = c->d;
  /* in place needs out_stride == x_stride as given: both explicit */
  p.x_stride = c->x_pad < 0 && !c->in_place ? 0 : x_stride;
  p.up_stride = split ? (c->up_pad < 0 ? 0 : up_stride) : 0;
  p.out_stride = c->in_place ? x_stride : c->out_pad < 0 ? 0 : out_stride;
  p.activation = c->act;
  p.layout = c->layout;
  p.dtype = c->dtype;
  lk_glu_params h = p;
  h.x = x + c->offset * es;
  h.up = split ? up + c->offset * es : NULL;
  h.out = (c->in_place ? x : out) + c->offset * es;
  CHECK_STATUS(lk_glu(reference_context(), &h), LK_OK);
  lk_glu_params d = p;
  d.x = d_x + c->offset * es;
  d.up = split ? d_up + c->offset * es : NULL;
  d.out = (c->in_place ? d_x : d_out) + c->offset * es;
  CHECK_STATUS(lk_cuda_glu(cuda_test_stream(), &d), LK_OK);
  cuda_test_sync();
  host_from_device(got_x, d_x, (size_t)x_count * es);
  host_from_device(got_up, d_up, (size_t)up_count * es);
  host_from_device(got_out, d_out, (size_t)out_count * es);

  /* the outputs, with the inputs that made them */
  comparison cmp = {c->act, c->dtype, true, 0, 0};
  const unsigned char *want_out = c->in_place ? x : out, *got_o = c->in_place ? got_x : got_out;
  const int64_t gate_at = c->layout == LK_GLU_UP_FIRST ? c->d : 0, up_at = c->layout == LK_GLU_GATE_FIRST ? c->d : 0;
  for (int64_t t = 0; t < c->tokens; t++)
    for (int64_t i = 0; i < c->d; i++) {
      const float gate = tensor_load(c->dtype, x_in, c->offset + t * x_stride + gate_at + i);
      const float u = split ? tensor_load(c->dtype, up, c->offset + t * up_stride + i) : tensor_load(c->dtype, x_in, c->offset + t * x_stride + up_at + i);
      compare_element(&cmp, got_o, want_out, c->offset + t * out_stride + i, gate, u, "out", t, i);
    }
  finish_comparison(&cmp);
  const rows_ctx out_rows = {c->offset, out_stride, c->d, c->tokens};
  compare_rest(c->dtype, got_x, x, x_count, c->in_place ? in_rows : NULL, &out_rows, "x's buffer");
  if (split) compare_rest(c->dtype, got_up, up, up_count, NULL, NULL, "up's buffer");
  if (!c->in_place) compare_rest(c->dtype, got_out, out, out_count, in_rows, &out_rows, "out's buffer");

  device_free(d_x);
  device_free(d_up);
  device_free(d_out);
  free(x);
  free(x_in);
  free(got_x);
  free(up);
  free(got_up);
  free(out);
  free(got_out);
  check_context_pop();
}

static glu_case glu_base(lk_glu_layout layout, lk_activation act, lk_dtype dtype, int64_t tokens, int64_t d) {
  glu_case c;
  memset(&c, 0, sizeof c);
  c.layout = layout;
  c.act = act;
  c.dtype = dtype;
  c.tokens = tokens;
  c.d = d;
  c.x_pad = c.up_pad = c.out_pad = -1;
  c.lo = -8.0f;
  c.hi = 8.0f;
  return c;
}

/* Every d from 1 to 257, each layout and dtype, the activations in turn; layouts in turn: default
 * strides, padded x rows (aligned and not), padded out rows, a misaligned base, in place, padded up
 * rows (split). */
static void test_glu_ragged(void) {
  uint64_t seed = 1;
  for (int64_t d = 1; d <= 257; d++)
    for (int l = 0; l < 3; l++)
      for (int t = 0; t < 3; t++) {
        glu_case c = glu_base((lk_glu_layout)l, all_activations[(d + l + t) % ACTIVATION_COUNT], all_dtypes[t], 1 + d % 4, d);
        switch (d % 6) {
        case 1: c.x_pad = d % 4 == 1 ? 8 : 5; break;
        case 2: c.out_pad = 3; break;
        case 3: c.offset = 1; break;
        case 4: c.in_place = true; break;
        case 5: c.up_pad = 8; c.x_pad = 16; c.out_pad = 0; break;
        default: break;
        }
        glu_run(&c, seed++);
      }
}

/* Every activation x layout x dtype at a few widths, contiguous, padded, misaligned and in place. */
static void test_glu_grid(void) {
  static const int64_t widths[] = {8, 64, 1000};
  uint64_t seed = 1000;
  for (int a = 0; a < ACTIVATION_COUNT; a++)
    for (int l = 0; l < 3; l++)
      for (int t = 0; t < 3; t++)
        for (int w = 0; w < 3; w++)
          for (int variant = 0; variant < 3; variant++) {
            glu_case c = glu_base((lk_glu_layout)l, all_activations[a], all_dtypes[t], 3, widths[w]);
            c.lo = -12.0f;
            c.hi = 12.0f;
            if (variant == 1) {
              c.x_pad = 16;
              c.up_pad = 24;
              c.out_pad = 8;
            } else if (variant == 2) {
              c.offset = 3;
              c.in_place = (a + w) % 2 == 0;
            }
            glu_run(&c, seed++);
          }
}

/* Shapes of real calls: prefill (many rows, several chunks a row), decode (one row spread over
 * small blocks), many short rows (several rows a block), a long row. */
static void test_glu_shapes(void) {
  glu_case c = glu_base(LK_GLU_GATE_FIRST, LK_ACTIVATION_SILU, LK_DTYPE_BF16, 64, 4096);
  glu_run(&c, 1);
  c = glu_base(LK_GLU_SPLIT, LK_ACTIVATION_SILU, LK_DTYPE_F32, 1, 14336);
  glu_run(&c, 2);
  c = glu_base(LK_GLU_GATE_FIRST, LK_ACTIVATION_GELU_TANH, LK_DTYPE_BF16, 1, 14336);
  c.in_place = true;
  glu_run(&c, 3);
  c = glu_base(LK_GLU_UP_FIRST, LK_ACTIVATION_GELU_ERF, LK_DTYPE_F16, 300, 24);
  glu_run(&c, 4);
  c = glu_base(LK_GLU_SPLIT, LK_ACTIVATION_RELU, LK_DTYPE_F16, 2, 40000 + 3);
  c.up_pad = 5;
  glu_run(&c, 5);
  c = glu_base(LK_GLU_GATE_FIRST, LK_ACTIVATION_SILU, LK_DTYPE_BF16, 4100, 3);
  glu_run(&c, 6);
  c = glu_base(LK_GLU_UP_FIRST, LK_ACTIVATION_SILU, LK_DTYPE_F16, 33, 1027);
  c.offset = 1;
  c.in_place = true;
  glu_run(&c, 7);
  /* more than 65535 block rows (one row a block here: 129 elements take 256 lanes): two launches */
  c = glu_base(LK_GLU_SPLIT, LK_ACTIVATION_RELU, LK_DTYPE_BF16, 65535 + 9, 129);
  c.offset = 1;
  glu_run(&c, 8);
}

/* ---- the argument contract ------------------------------------------------------------------- */

/* The CUDA entry point refuses what the CPU one refuses, with the same status and message. */
static void same_refusal(lk_status cpu, const char *cpu_message, lk_status cuda, const char *name) {
  CHECKF(cpu == cuda, "%s: CPU %s, CUDA %s", name, lk_status_name(cpu), lk_status_name(cuda));
  CHECKF(strcmp(cpu_message, lk_last_error()) == 0, "%s: CPU \"%s\", CUDA \"%s\"", name, cpu_message, lk_last_error());
  CHECK_INVALID(cuda, name);
}

static void refuse_activation(const lk_activation_params *p, const char *name) {
  char message[512];
  const lk_status cpu = lk_apply_activation(reference_context(), p);
  snprintf(message, sizeof message, "%s", lk_last_error());
  same_refusal(cpu, message, lk_cuda_apply_activation(NULL, p), name);
}

static void refuse_glu(const lk_glu_params *p, const char *name) {
  char message[512];
  const lk_status cpu = lk_glu(reference_context(), p);
  snprintf(message, sizeof message, "%s", lk_last_error());
  same_refusal(cpu, message, lk_cuda_glu(NULL, p), name);
}

static void test_arguments(void) {
  float dummy[256];
  lk_activation_params a = {dummy, dummy + 128, 16, LK_ACTIVATION_SILU, LK_DTYPE_F32};
  CHECK_INVALID(lk_cuda_apply_activation(NULL, NULL), "params");
  lk_activation_params bad = a;
  bad.activation = (lk_activation)8;
  refuse_activation(&bad, "activation");
  bad = a;
  bad.dtype = (lk_dtype)3;
  refuse_activation(&bad, "dtype");
  bad = a;
  bad.n = -1;
  refuse_activation(&bad, "n");
  bad = a;
  bad.x = NULL;
  refuse_activation(&bad, "x");
  bad = a;
  bad.y = NULL;
  refuse_activation(&bad, "y");
  bad = a;
  bad.y = dummy + 1;
  refuse_activation(&bad, "y");
  lk_activation_params none = {NULL, NULL, 0, LK_ACTIVATION_GELU_ERF, LK_DTYPE_BF16};
  CHECK_STATUS(lk_cuda_apply_activation(NULL, &none), LK_OK);

  lk_glu_params g;
  memset(&g, 0, sizeof g);
  g.x = dummy;
  g.out = dummy + 128;
  g.tokens = 2;
  g.d = 16;
  g.activation = LK_ACTIVATION_SILU;
  g.layout = LK_GLU_GATE_FIRST;
  g.dtype = LK_DTYPE_F32;
  CHECK_INVALID(lk_cuda_glu(NULL, NULL), "params");
  lk_glu_params b = g;
  b.layout = (lk_glu_layout)3;
  refuse_glu(&b, "layout");
  b = g;
  b.activation = (lk_activation)-1;
  refuse_glu(&b, "activation");
  b = g;
  b.d = 0;
  refuse_glu(&b, "d");
  b = g;
  b.tokens = -2;
  refuse_glu(&b, "tokens");
  b = g;
  b.x_stride = 31;
  refuse_glu(&b, "x_stride");
  b = g;
  b.out_stride = 15;
  refuse_glu(&b, "out_stride");
  b = g;
  b.up = dummy + 200;
  refuse_glu(&b, "up");
  b = g;
  b.up_stride = 16;
  refuse_glu(&b, "up_stride");
  b = g;
  b.layout = LK_GLU_SPLIT;
  refuse_glu(&b, "up");
  b = g;
  b.out = dummy + 8; /* inside x's first row without being x */
  refuse_glu(&b, "out");
  b = g;
  b.out = dummy;
  b.out_stride = 16; /* x itself, with another stride */
  refuse_glu(&b, "out");
  b = g;
  b.layout = LK_GLU_SPLIT;
  b.up = dummy + 8; /* split: x is [2, 16], up overlaps it */
  refuse_glu(&b, "up");
  b = g;
  b.layout = LK_GLU_SPLIT;
  b.up = dummy + 64;
  b.out = dummy + 70;
  refuse_glu(&b, "out");
  b = g;
  b.x = NULL;
  refuse_glu(&b, "x");
  lk_glu_params zero = g;
  zero.tokens = 0;
  zero.x = zero.out = NULL;
  CHECK_STATUS(lk_cuda_glu(NULL, &zero), LK_OK);
}

/* ---- the measured differences --------------------------------------------------------------- */

static void print_worst(void) {
  printf("largest difference from the CPU scalar reference (f32: ulps; bf16/f16: ulps of the dtype), and how many outputs differ:\n");
  printf("%-10s %-22s %-22s %-22s %-22s\n", "", "f32", "f32 gated", "f16 (both)", "bf16 (both)");
  for (int a = 0; a < ACTIVATION_COUNT; a++) {
    char cells[4][64];
    for (int k = 0; k < 4; k++) {
      const int t = k < 2 ? 0 : k - 1;
      const int g0 = k == 1 ? 1 : 0, g1 = k == 0 ? 0 : 1;
      double w = 0;
      long long diff = 0, all = 0;
      for (int g = g0; g <= g1; g++) {
        if (worst[a][t][g] > w) w = worst[a][t][g];
        diff += differing[a][t][g];
        all += compared[a][t][g];
      }
      snprintf(cells[k], sizeof cells[k], "%.2f (%lld/%lld)", w, diff, all);
    }
    printf("%-10s %-22s %-22s %-22s %-22s\n", activation_label(all_activations[a]), cells[0], cells[1], cells[2], cells[3]);
  }
}

int main(void) {
  const int devices = cuda_test_begin();
  run_timed("arguments", test_arguments);
  if (devices > 0) {
    lk_cuda_device_properties props;
    exact_device = lk_cuda_device_properties_get(0, &props) == LK_OK && strstr(props.name, "emulator") != NULL;
    run_timed("activation ragged", test_activation_ragged);
    run_timed("activation large", test_activation_large);
    run_timed("activation all 16-bit", test_activation_all_16bit);
    run_timed("activation f32 sweep", test_activation_f32_sweep);
    run_timed("glu ragged", test_glu_ragged);
    run_timed("glu grid", test_glu_grid);
    run_timed("glu shapes", test_glu_shapes);
    print_worst();
  }
  return cuda_test_finish("test_cuda_activation", devices);
}
