/* lk_norm on every ISA this CPU runs, against a float64 reference: RMSNorm and LayerNorm, each
 * with every residual placement (NONE, PRE, POST with alpha), with and without weight and bias,
 * with Gemma's weight offset, every dtype and weight dtype.
 *
 * (Arguments, aliasing rules and layout: test_norm_arguments.c. lk_rms_norm and
 * lk_fused_add_rms_norm, which are RMS with NONE and PRE, keep their own test_rms_norm.c.)
 *
 * Each case builds its inputs once, rounded to the dtype, on guard-paged buffers (the last row
 * ends at a PROT_NONE page, or for some cases the first row starts after one; inputs are
 * read-only) with NaN poison in the gaps between rows; then for every ISA it runs the kernel out
 * of place and, where asked, in place (y == x, and in the PRE form y == residual) and with other
 * thread counts, and checks:
 *   - y against float64 math on the rounded inputs, within FlashAttention's rule (below);
 *   - y of each non-scalar ISA against the scalar ISA's y, within the same bound;
 *   - PRE: the stored residual bit for bit, round(residual + x); POST: the residual untouched;
 *   - gaps between rows of y and residual still hold their poison, every y element was written;
 *   - in place and other thread counts give the out-of-place result bit for bit.
 *
 * v, what is normalised, is defined by the form: x; round(residual + x); round(alpha * residual
 * + x) with the product and sum in f32 (fp-contract off), so the reference takes v from that
 * same f32 expression and does everything after it in float64.
 *
 * Tolerance (FlashAttention's tests/test_flash_attn.py), per case, errors as max-abs over all
 * elements against the float64 reference:
 *     error(kernel) <= 2 * error(naive) + atol
 * "naive" is the textbook loop in f32: serial sums (LayerNorm: mean, then the sum of squared
 * deviations), 1/sqrtf, the weight and bias applied in f32, the result rounded once. atol: f32
 * 1e-6 * max|ref|; 16-bit: 1 ulp of the dtype at max|ref|. 16-bit outputs also count outputs
 * that differ from the reference rounded to the dtype: misrounded(kernel) <= 2 * naive + 2 + n / 256.
 *
 * LayerNorm on rows of 1000 + N(0, 1) (a large mean, small spread) must stay as accurate as on
 * centred data: the one-pass E[v^2] - mean^2 in f32 loses most bits of the variance there, which
 * test_large_mean shows by measuring that textbook form beside the kernel.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_harness.h"

#define MAX_THREADS GRID_MAX_THREADS

typedef struct norm_affine {
  bool weight, bias;
  uint32_t flags;
} norm_affine;

typedef struct norm_case {
  lk_norm_kind kind;
  lk_norm_residual mode;
  norm_affine affine;
  float alpha;           /* as passed: POST reads 0 as 1 */
  lk_dtype dtype;
  lk_dtype weight_dtype;
  int64_t rows;
  int64_t hidden;
  int64_t x_stride; /* as passed: 0 means hidden */
  int64_t residual_stride;
  int64_t y_stride;
  float eps;
  float x_scale;         /* x and residual uniform in [x_mean - x_scale, x_mean + x_scale] */
  float x_mean;
  float head_offset;     /* added to x in each row's first 16 columns: LayerNorm's shift K sits far from the mean */
  int num_threads;
  bool other_threads;
  bool in_place;
  bool zero_first_row;   /* row 0 all zeros (v too): y must be exactly 0 (RMS) or the bias (LAYER, eps > 0) */
  guard_edge edge;
} norm_case;


static lk_cpu_context *contexts[3][MAX_THREADS + 1];
static lk_isa isas[3];
static int isa_count;
static uint64_t base_seed = 0x5EED2025ull;
static uint64_t case_counter;
static long kernel_calls;
/* Worst kernel error as a fraction of its bound, per ISA, kind and dtype. */
static double worst_ratio[3][2][3];

static const lk_norm_residual modes[] = {LK_NORM_RESIDUAL_NONE, LK_NORM_RESIDUAL_PRE, LK_NORM_RESIDUAL_POST};
static const struct { lk_dtype dtype, weight_dtype; } dtype_combos[] = {
    {LK_DTYPE_F32, LK_DTYPE_F32}, {LK_DTYPE_F16, LK_DTYPE_F16}, {LK_DTYPE_F16, LK_DTYPE_F32},
    {LK_DTYPE_BF16, LK_DTYPE_BF16}, {LK_DTYPE_BF16, LK_DTYPE_F32},
};
#define DTYPE_COMBO_COUNT 5
/* (kind, affine): RMS needs a weight and takes no bias; LayerNorm takes any. */
static const struct { lk_norm_kind kind; norm_affine affine; } shapes[] = {
    {LK_NORM_RMS, {true, false, 0u}},
    {LK_NORM_RMS, {true, false, LK_NORM_WEIGHT_OFFSET_ONE}},
    {LK_NORM_LAYER, {true, true, 0u}},
    {LK_NORM_LAYER, {false, false, 0u}},
    {LK_NORM_LAYER, {true, false, 0u}},
    {LK_NORM_LAYER, {false, true, 0u}},
    {LK_NORM_LAYER, {true, true, LK_NORM_WEIGHT_OFFSET_ONE}},
    {LK_NORM_LAYER, {true, false, LK_NORM_WEIGHT_OFFSET_ONE}},
};
#define SHAPE_COUNT 8
#define VARIANT_COUNT (3 * DTYPE_COMBO_COUNT * SHAPE_COUNT)
/* POST's alpha: 0 (read as 1), 1, DeepNorm's (2N)^(1/4) for N = 8 and 32 layers, and below 1. */
static const float alpha_choices[] = {0.0f, 1.0f, 2.0f, 2.8284271f, 0.5f};

static norm_case variant(int index, int64_t rows, int64_t hidden) {
  norm_case c;
  memset(&c, 0, sizeof c);
  c.mode = modes[index % 3];
  c.dtype = dtype_combos[(index / 3) % DTYPE_COMBO_COUNT].dtype;
  c.weight_dtype = dtype_combos[(index / 3) % DTYPE_COMBO_COUNT].weight_dtype;
  c.kind = shapes[(index / (3 * DTYPE_COMBO_COUNT)) % SHAPE_COUNT].kind;
  c.affine = shapes[(index / (3 * DTYPE_COMBO_COUNT)) % SHAPE_COUNT].affine;
  c.alpha = c.mode == LK_NORM_RESIDUAL_POST ? alpha_choices[(index + rows + hidden) % 5] : 0.0f;
  c.rows = rows;
  c.hidden = hidden;
  c.eps = 1e-6f;
  c.x_scale = 1.0f;
  c.num_threads = 1;
  c.edge = GUARD_EDGE_END;
  return c;
}

static const char *mode_label(lk_norm_residual mode) {
  return mode == LK_NORM_RESIDUAL_PRE ? "PRE" : mode == LK_NORM_RESIDUAL_POST ? "POST" : "NONE";
}

/* ---- inputs and the two references --------------------------------------------------------- */

typedef struct norm_inputs {
  strided x;
  strided residual; /* PRE and POST: the value passed in (each run works on a copy) */
  guarded_buffer weight;
  guarded_buffer bias;
} norm_inputs;

typedef struct norm_expected {
  double *y_ref;
  float *y_naive;
  float *y_rounded;
  float *v;                /* what is normalised */
  uint32_t *residual_bits; /* PRE: round(residual + x); POST: the residual passed in */
  double max_abs_ref;
  double naive_error;
  double one_pass_error;   /* LayerNorm: error of the one-pass E[v^2] - mean^2 form, for the record */
  double atol;
  double bound;
  int64_t naive_misrounded;
  int64_t misrounding_bound;
} norm_expected;

static bool has_residual(const norm_case *c) { return c->mode != LK_NORM_RESIDUAL_NONE; }

static void make_inputs(const norm_case *c, uint64_t seed, norm_inputs *in) {
  rng r = rng_seeded(seed);
  memset(in, 0, sizeof *in);
  in->x = strided_alloc(c->dtype, c->rows, c->hidden, effective_stride(c->x_stride, c->hidden), c->edge);
  for (int64_t row = 0; row < c->rows; row++)
    for (int64_t col = 0; col < c->hidden; col++) {
      float value = (row == 0 && c->zero_first_row) ? 0.0f : c->x_mean + rng_uniform(&r, -c->x_scale, c->x_scale);
      if (col < 16) value += c->head_offset;
      tensor_store(c->dtype, in->x.memory.data, element(&in->x, row, col), value);
    }
  guarded_make_read_only(&in->x.memory);
  if (has_residual(c)) {
    in->residual = strided_alloc(c->dtype, c->rows, c->hidden, effective_stride(c->residual_stride, c->hidden), c->edge);
    for (int64_t row = 0; row < c->rows; row++)
      for (int64_t col = 0; col < c->hidden; col++) {
        /* A large mean goes on x only: the residual stays centred, so v keeps x's mean. */
        float value = (row == 0 && c->zero_first_row) ? 0.0f : rng_uniform(&r, -c->x_scale, c->x_scale);
        tensor_store(c->dtype, in->residual.memory.data, element(&in->residual, row, col), value);
      }
  }
  bool offset_one = (c->affine.flags & LK_NORM_WEIGHT_OFFSET_ONE) != 0;
  if (c->affine.weight) {
    in->weight = guarded_alloc((size_t)c->hidden * dtype_size(c->weight_dtype), c->edge);
    for (int64_t col = 0; col < c->hidden; col++)
      tensor_store(c->weight_dtype, in->weight.data, col, offset_one ? rng_uniform(&r, -0.5f, 0.5f) : rng_uniform(&r, -1.5f, 1.5f));
    guarded_make_read_only(&in->weight);
  }
  if (c->affine.bias) {
    in->bias = guarded_alloc((size_t)c->hidden * dtype_size(c->weight_dtype), c->edge);
    for (int64_t col = 0; col < c->hidden; col++)
      tensor_store(c->weight_dtype, in->bias.data, col, rng_uniform(&r, -1.0f, 1.0f));
    guarded_make_read_only(&in->bias);
  }
}

static void free_inputs(norm_inputs *in) {
  guarded_free(&in->x.memory);
  guarded_free(&in->residual.memory);
  guarded_free(&in->weight);
  guarded_free(&in->bias);
}

static uint32_t dtype_bits_of(lk_dtype dtype, float value) {
  switch (dtype) {
  case LK_DTYPE_F16: return f32_to_f16(value);
  case LK_DTYPE_BF16: return f32_to_bf16(value);
  default: return f32_bits(value);
  }
}

static void compute_expected(const norm_case *c, const norm_inputs *in, norm_expected *e) {
  int64_t n = c->rows * c->hidden;
  size_t count = n > 0 ? (size_t)n : 1;
  memset(e, 0, sizeof *e);
  e->y_ref = malloc(count * sizeof *e->y_ref);
  e->y_naive = malloc(count * sizeof *e->y_naive);
  e->v = malloc(count * sizeof *e->v);
  e->residual_bits = malloc(count * sizeof *e->residual_bits);
  e->y_rounded = malloc(count * sizeof *e->y_rounded);
  if (!e->y_ref || !e->y_naive || !e->v || !e->residual_bits || !e->y_rounded) {
    fprintf(stderr, "out of host memory\n");
    exit(2);
  }
  const bool offset_one = (c->affine.flags & LK_NORM_WEIGHT_OFFSET_ONE) != 0;
  const float alpha = c->alpha == 0.0f ? 1.0f : c->alpha;
  const bool layer = c->kind == LK_NORM_LAYER;
  for (int64_t row = 0; row < c->rows; row++) {
    float *v = e->v + row * c->hidden;
    for (int64_t col = 0; col < c->hidden; col++) {
      int64_t i = row * c->hidden + col;
      float x = tensor_load(c->dtype, in->x.memory.data, element(&in->x, row, col));
      if (c->mode == LK_NORM_RESIDUAL_PRE) {
        /* f32 sum of two 16-bit values rounded once more to the dtype: the correctly rounded sum. */
        float sum = tensor_load(c->dtype, in->residual.memory.data, element(&in->residual, row, col)) + x;
        e->residual_bits[i] = dtype_bits_of(c->dtype, sum);
        x = dtype_round(c->dtype, sum);
      } else if (c->mode == LK_NORM_RESIDUAL_POST) {
        float residual = tensor_load(c->dtype, in->residual.memory.data, element(&in->residual, row, col));
        e->residual_bits[i] = tensor_bits(c->dtype, in->residual.memory.data, element(&in->residual, row, col));
        float scaled = alpha * residual;
        x = dtype_round(c->dtype, scaled + x);
      }
      v[col] = x;
    }
    /* float64 statistics, and the naive f32 ones */
    double mean = 0.0, ss = 0.0, raw_ss = 0.0;
    float naive_sum = 0.0f, naive_ss = 0.0f, naive_raw_ss = 0.0f;
    for (int64_t col = 0; col < c->hidden; col++) {
      mean += v[col];
      naive_sum += v[col];
      naive_raw_ss += v[col] * v[col];
    }
    mean = layer ? mean / (double)c->hidden : 0.0;
    float naive_mean = layer ? naive_sum / (float)c->hidden : 0.0f;
    for (int64_t col = 0; col < c->hidden; col++) {
      double d = (double)v[col] - mean;
      ss += d * d;
      raw_ss += (double)v[col] * v[col];
      float nd = v[col] - naive_mean;
      naive_ss += nd * nd;
    }
    (void)raw_ss;
    double rstd = 1.0 / sqrt(ss / (double)c->hidden + (double)c->eps);
    float naive_rstd = 1.0f / sqrtf(naive_ss / (float)c->hidden + c->eps);
    /* the textbook one-pass variance, E[v^2] - mean^2 in f32, clamped at 0 */
    float one_pass_var = naive_raw_ss / (float)c->hidden - naive_mean * naive_mean;
    float one_pass_rstd = 1.0f / sqrtf((one_pass_var > 0.0f ? one_pass_var : 0.0f) + c->eps);
    for (int64_t col = 0; col < c->hidden; col++) {
      int64_t i = row * c->hidden + col;
      double w = 1.0, b = 0.0;
      float wf = 1.0f, bf = 0.0f;
      if (c->affine.weight) {
        wf = tensor_load(c->weight_dtype, in->weight.data, col);
        if (offset_one) wf = 1.0f + wf;
        w = wf; /* 1 + w of two values in [-0.5, 0.5] of at most 24 bits: exact in f32 */
      }
      if (c->affine.bias) {
        bf = tensor_load(c->weight_dtype, in->bias.data, col);
        b = bf;
      }
      double ref = ((double)v[col] - mean) * rstd * w + b;
      float t = (v[col] - naive_mean) * naive_rstd;
      if (c->affine.weight) t *= wf;
      if (c->affine.bias) t += bf;
      float naive = dtype_round(c->dtype, t);
      float one_pass = (v[col] - naive_mean) * one_pass_rstd * wf + bf;
      e->y_ref[i] = ref;
      e->y_naive[i] = naive;
      e->y_rounded[i] = dtype_round(c->dtype, (float)ref);
      if (naive != e->y_rounded[i]) e->naive_misrounded++;
      if (fabs(ref) > e->max_abs_ref) e->max_abs_ref = fabs(ref);
      double naive_error = fabs((double)naive - ref);
      if (!(naive_error <= e->naive_error)) e->naive_error = naive_error;
      double one_pass_error = fabs((double)one_pass - ref);
      if (!(one_pass_error <= e->one_pass_error)) e->one_pass_error = one_pass_error;
    }
  }
  e->atol = c->dtype == LK_DTYPE_F32 ? 1e-6 * e->max_abs_ref : dtype_ulp(c->dtype, e->max_abs_ref);
  e->bound = 2.0 * e->naive_error + e->atol;
  e->misrounding_bound = 2 * e->naive_misrounded + 2 + n / 256;
}

static void free_expected(norm_expected *e) {
  free(e->y_ref);
  free(e->y_naive);
  free(e->v);
  free(e->residual_bits);
  free(e->y_rounded);
}

/* ---- running and checking ------------------------------------------------------------------- */

static lk_norm_params params_for(const norm_case *c, const void *x, void *residual, void *y, const norm_inputs *in) {
  lk_norm_params p;
  memset(&p, 0, sizeof p);
  p.x = x;
  p.residual = residual;
  p.y = y;
  p.weight = c->affine.weight ? in->weight.data : NULL;
  p.bias = c->affine.bias ? in->bias.data : NULL;
  p.rows = c->rows;
  p.hidden = c->hidden;
  p.x_stride = c->x_stride;
  p.residual_stride = has_residual(c) ? c->residual_stride : 0;
  p.y_stride = c->y_stride;
  p.eps = c->eps;
  p.alpha = c->alpha;
  p.flags = c->affine.flags;
  p.kind = c->kind;
  p.residual_mode = c->mode;
  p.dtype = c->dtype;
  p.weight_dtype = c->weight_dtype;
  return p;
}

static lk_status call_kernel(lk_cpu_context *context, const lk_norm_params *p) {
  kernel_calls++;
  return lk_norm(context, p);
}

/* PRE: the rounded sum bit for bit; POST: the residual as passed in. Gaps untouched. */
static void check_residual(const norm_case *c, const strided *residual, const norm_expected *e, const char *run) {
  int64_t wrong = 0, first_row = 0, first_col = 0;
  for (int64_t row = 0; row < c->rows; row++)
    for (int64_t col = 0; col < c->hidden; col++)
      if (tensor_bits(c->dtype, residual->memory.data, element(residual, row, col)) !=
              e->residual_bits[row * c->hidden + col] &&
          wrong++ == 0) {
        first_row = row;
        first_col = col;
      }
  CHECKF(wrong == 0, "%s: %lld residual elements are not %s; first at [%lld, %lld]: expected 0x%08x, got 0x%08x", run,
         (long long)wrong, c->mode == LK_NORM_RESIDUAL_PRE ? "round(residual + x)" : "the residual passed in (POST reads it only)",
         (long long)first_row, (long long)first_col, e->residual_bits[first_row * c->hidden + first_col],
         tensor_bits(c->dtype, residual->memory.data, element(residual, first_row, first_col)));
  CHECKF(damaged_gaps(residual) == 0, "%s: the kernel wrote into the gaps between residual rows", run);
}

static double check_y(const norm_case *c, const strided *y, const norm_expected *e, const strided *scalar_y,
                      const char *run) {
  double worst = 0.0, worst_vs_scalar = 0.0;
  int64_t worst_at = 0, worst_vs_scalar_at = 0, unwritten = 0, zero_row_violations = 0;
  int64_t misrounded = 0, first_misrounded = -1;
  for (int64_t row = 0; row < c->rows; row++)
    for (int64_t col = 0; col < c->hidden; col++) {
      int64_t i = row * c->hidden + col;
      if (tensor_is_poison(c->dtype, y->memory.data, element(y, row, col))) unwritten++;
      double got = tensor_load(c->dtype, y->memory.data, element(y, row, col));
      double error = fabs(got - e->y_ref[i]);
      if (!(error <= worst)) {
        worst = isnan(error) ? INFINITY : error;
        worst_at = i;
      }
      /* an all-zero row normalises to exactly 0 (then + b) whenever eps > 0 */
      if (row == 0 && c->zero_first_row && c->eps > 0.0f && got != (double)e->y_rounded[i]) zero_row_violations++;
      if (!(got == (double)e->y_rounded[i]) && misrounded++ == 0) first_misrounded = i;
      if (scalar_y) {
        double scalar = tensor_load(c->dtype, scalar_y->memory.data, element(scalar_y, row, col));
        double difference = fabs(got - scalar);
        if (!(difference <= worst_vs_scalar)) {
          worst_vs_scalar = isnan(difference) ? INFINITY : difference;
          worst_vs_scalar_at = i;
        }
      }
    }
  CHECKF(unwritten == 0, "%s: %lld elements of y were never written", run, (long long)unwritten);
  CHECKF(damaged_gaps(y) == 0, "%s: the kernel wrote into the gaps between y rows", run);
  CHECKF(zero_row_violations == 0, "%s: an all-zero row gave %lld outputs other than 0 (+ bias)", run,
         (long long)zero_row_violations);
  if (c->rows * c->hidden == 0) return 0.0;
  int64_t row = worst_at / c->hidden, col = worst_at % c->hidden;
  CHECKF(worst <= e->bound,
         "%s: max |y - ref| = %.3g at [%lld, %lld] exceeds 2 * naive error %.3g + atol %.3g = %.3g "
         "(v %.9g, ref %.9g, naive %.9g, got %.9g)",
         run, worst, (long long)row, (long long)col, e->naive_error, e->atol, e->bound, e->v[worst_at],
         e->y_ref[worst_at], e->y_naive[worst_at], tensor_load(c->dtype, y->memory.data, element(y, row, col)));
  if (c->dtype != LK_DTYPE_F32 && first_misrounded >= 0) {
    int64_t mrow = first_misrounded / c->hidden, mcol = first_misrounded % c->hidden;
    CHECKF(misrounded <= e->misrounding_bound,
           "%s: %lld of %lld outputs are not the reference rounded to %s (naive: %lld, allowed %lld); "
           "first at [%lld, %lld]: ref %.9g rounds to %.9g, got %.9g",
           run, (long long)misrounded, (long long)(c->rows * c->hidden), dtype_label(c->dtype),
           (long long)e->naive_misrounded, (long long)e->misrounding_bound, (long long)mrow, (long long)mcol,
           e->y_ref[first_misrounded], e->y_rounded[first_misrounded],
           tensor_load(c->dtype, y->memory.data, element(y, mrow, mcol)));
  }
  if (scalar_y) {
    int64_t srow = worst_vs_scalar_at / c->hidden, scol = worst_vs_scalar_at % c->hidden;
    CHECKF(worst_vs_scalar <= e->bound,
           "%s: max |y - y_scalar| = %.3g at [%lld, %lld] exceeds the bound %.3g (ref %.9g, scalar %.9g, got %.9g)",
           run, worst_vs_scalar, (long long)srow, (long long)scol, e->bound, e->y_ref[worst_vs_scalar_at],
           tensor_load(c->dtype, scalar_y->memory.data, element(scalar_y, srow, scol)),
           tensor_load(c->dtype, y->memory.data, element(y, srow, scol)));
  }
  return worst;
}

static void check_same_bits(const strided *expected, const strided *got, const char *run) {
  int64_t row = 0, col = 0;
  int64_t differing = differing_elements(expected, got, &row, &col);
  CHECKF(differing == 0,
         "%s: %lld elements differ from the out-of-place result; first at [%lld, %lld]: expected bits 0x%x, got 0x%x",
         run, (long long)differing, (long long)row, (long long)col,
         differing ? tensor_bits(expected->dtype, expected->memory.data, element(expected, row, col)) : 0u,
         differing ? tensor_bits(got->dtype, got->memory.data, element(got, row, col)) : 0u);
  CHECKF(damaged_gaps(got) == 0, "%s: the kernel wrote into the gaps between rows", run);
}

typedef struct isa_run {
  strided y;
  strided residual;
} isa_run;

static bool run_out_of_place(const norm_case *c, const norm_inputs *in, lk_cpu_context *context, isa_run *out,
                             const char *run) {
  out->y = strided_alloc(c->dtype, c->rows, c->hidden, effective_stride(c->y_stride, c->hidden), c->edge);
  memset(&out->residual, 0, sizeof out->residual);
  void *residual = NULL;
  if (has_residual(c)) {
    out->residual = strided_copy(&in->residual, c->edge);
    residual = out->residual.memory.data;
    /* POST reads the residual only: a read-only copy proves it. */
    if (c->mode == LK_NORM_RESIDUAL_POST) guarded_make_read_only(&out->residual.memory);
  }
  lk_norm_params p = params_for(c, in->x.memory.data, residual, out->y.memory.data, in);
  check_context_push("%s", run);
  bool ok = CHECK_STATUS(call_kernel(context, &p), LK_OK);
  check_context_pop();
  return ok;
}

static void free_run(isa_run *r) {
  guarded_free(&r->y.memory);
  guarded_free(&r->residual.memory);
}

static void run_in_place(const norm_case *c, const norm_inputs *in, const norm_expected *e, lk_cpu_context *context,
                         const isa_run *reference, const char *isa) {
  char run[96];
  {
    norm_case aliased = *c;
    aliased.y_stride = c->x_stride;
    strided buffer = strided_copy(&in->x, c->edge);
    strided residual = {0};
    void *residual_data = NULL;
    if (has_residual(c)) {
      residual = strided_copy(&in->residual, c->edge);
      residual_data = residual.memory.data;
    }
    lk_norm_params p = params_for(&aliased, buffer.memory.data, residual_data, buffer.memory.data, in);
    snprintf(run, sizeof run, "%s, y == x", isa);
    if (CHECK_STATUS(call_kernel(context, &p), LK_OK)) {
      check_same_bits(&reference->y, &buffer, run);
      if (has_residual(c)) check_residual(c, &residual, e, run);
    }
    guarded_free(&buffer.memory);
    guarded_free(&residual.memory);
  }
  if (c->mode == LK_NORM_RESIDUAL_PRE) {
    norm_case aliased = *c;
    aliased.y_stride = c->residual_stride;
    strided buffer = strided_copy(&in->residual, c->edge);
    lk_norm_params p = params_for(&aliased, in->x.memory.data, buffer.memory.data, buffer.memory.data, in);
    snprintf(run, sizeof run, "%s, y == residual", isa);
    if (CHECK_STATUS(call_kernel(context, &p), LK_OK)) check_same_bits(&reference->y, &buffer, run);
    guarded_free(&buffer.memory);
  }
}

static int dtype_index(lk_dtype dtype) { return dtype == LK_DTYPE_F32 ? 0 : dtype == LK_DTYPE_F16 ? 1 : 2; }

/* Runs one case on every ISA; returns the worst error of the non-scalar ISAs and the case's
 * expectations through *expected_out when asked (test_large_mean reads them). */
static double run_case_with(const norm_case *c_in, norm_expected *expected_out) {
  norm_case c_value = *c_in;
  norm_case *c = &c_value;
  /* A constant row with eps 0 has no defined LayerNorm (0 / 0): keep eps positive on short rows. */
  if (c->kind == LK_NORM_LAYER && c->eps == 0.0f && c->hidden < 16) c->eps = 1e-6f;
  uint64_t seed = base_seed ^ (0x9E3779B97F4A7C15ull * ++case_counter);
  check_context_push("lk_norm %s %s alpha=%g %s/w:%s%s%s%s rows=%lld hidden=%lld strides x=%lld residual=%lld "
                     "y=%lld eps=%g mean=%g scale=%g head=%g threads=%d guard=%s seed=0x%016llx",
                     c->kind == LK_NORM_LAYER ? "LAYER" : "RMS", mode_label(c->mode), c->alpha, dtype_label(c->dtype),
                     dtype_label(c->weight_dtype), c->affine.weight ? " weight" : " no-weight",
                     c->affine.bias ? " bias" : "", (c->affine.flags & LK_NORM_WEIGHT_OFFSET_ONE) ? " offset_one" : "",
                     (long long)c->rows, (long long)c->hidden, (long long)c->x_stride, (long long)c->residual_stride,
                     (long long)c->y_stride, c->eps, c->x_mean, c->x_scale, c->head_offset, c->num_threads,
                     c->edge == GUARD_EDGE_END ? "end" : "start", (unsigned long long)seed);
  norm_inputs in;
  norm_expected e;
  make_inputs(c, seed, &in);
  compute_expected(c, &in, &e);

  double worst_error = 0.0;
  isa_run scalar = {0};
  bool have_scalar = false;
  for (int k = 0; k < isa_count; k++) {
    const char *isa = lk_isa_name(isas[k]);
    isa_run r;
    if (!run_out_of_place(c, &in, contexts[k][c->num_threads], &r, isa)) {
      free_run(&r);
      continue;
    }
    bool is_scalar = isas[k] == LK_ISA_SCALAR;
    if (has_residual(c)) check_residual(c, &r.residual, &e, isa);
    double error = check_y(c, &r.y, &e, (!is_scalar && have_scalar) ? &scalar.y : NULL, isa);
    if (error > worst_error) worst_error = error;
    double ratio = e.bound > 0 ? error / e.bound : 0.0;
    double *slot = &worst_ratio[k][c->kind == LK_NORM_LAYER][dtype_index(c->dtype)];
    if (ratio > *slot) *slot = ratio;

    if (c->in_place) run_in_place(c, &in, &e, contexts[k][c->num_threads], &r, isa);
    if (c->other_threads) {
      for (int threads = 1; threads <= MAX_THREADS; threads++) {
        if (threads == c->num_threads) continue;
        char run[96];
        snprintf(run, sizeof run, "%s, %d threads vs %d", isa, threads, c->num_threads);
        isa_run other;
        if (run_out_of_place(c, &in, contexts[k][threads], &other, run)) {
          check_same_bits(&r.y, &other.y, run);
          if (c->mode == LK_NORM_RESIDUAL_PRE) check_same_bits(&r.residual, &other.residual, run);
        }
        free_run(&other);
      }
    }
    if (is_scalar) {
      scalar = r;
      have_scalar = true;
    } else {
      free_run(&r);
    }
  }
  free_run(&scalar);
  if (expected_out) *expected_out = e;
  else free_expected(&e);
  free_inputs(&in);
  check_context_pop();
  return worst_error;
}

static void run_case(const norm_case *c) { run_case_with(c, NULL); }

/* ---- the sweeps ----------------------------------------------------------------------------- */

static const float eps_choices[] = {1e-6f, 1e-5f, 0.0f};
static const float scale_choices[] = {1.0f, 1e-2f, 50.0f};

static bool special_hidden(int64_t hidden) {
  return hidden <= 34 || hidden % 32 <= 1 || hidden % 32 == 31;
}

/* Every hidden 1..257: every variant at the SIMD block boundaries and short rows, a rotating
 * quarter elsewhere (every variant meets every residue of 4); three rows, in place; then one row
 * and 17 strided rows with a rotating variant. */
static void test_ragged_hidden(void) {
  for (int64_t hidden = 1; hidden <= 257; hidden++) {
    for (int v = 0; v < VARIANT_COUNT; v++) {
      if (!special_hidden(hidden) && (v + hidden) % 4 != 0) continue;
      norm_case c = variant(v, 3, hidden);
      c.eps = eps_choices[(hidden + v) % 2];
      c.x_scale = scale_choices[(hidden + v) % 3];
      c.num_threads = 1 + (int)((hidden + v) % MAX_THREADS);
      c.in_place = true;
      c.zero_first_row = (hidden + v) % 17 == 0;
      c.edge = (hidden + v) % 9 == 0 ? GUARD_EDGE_START : GUARD_EDGE_END;
      run_case(&c);
    }
    for (int k = 0; k < 4; k++) {
      norm_case c = variant((int)(hidden * 7 + k * 31) % VARIANT_COUNT, 1, hidden);
      c.eps = eps_choices[(hidden + k) % 3];
      c.num_threads = 1 + k % MAX_THREADS;
      run_case(&c);
    }
    for (int k = 0; k < 2; k++) {
      norm_case c = variant((int)(hidden * 5 + k * 61) % VARIANT_COUNT, 17, hidden);
      c.x_stride = hidden + 1 + hidden % 4;
      c.residual_stride = (hidden + k) % 2 ? 0 : hidden + 2;
      c.y_stride = hidden % 3 ? hidden + 3 : 0;
      c.x_scale = scale_choices[(hidden + k) % 3];
      c.num_threads = 1 + (int)(hidden % MAX_THREADS);
      c.in_place = k == 1;
      run_case(&c);
    }
  }
}

/* Strides > hidden on each tensor alone and together, and stride == hidden spelled out. */
static void test_strides(void) {
  static const int64_t hiddens[] = {7, 33, 100, 257};
  static const int64_t extra[][3] = {{5, 0, 0}, {0, 5, 0}, {0, 0, 5}, {64, 17, 31}, {-1, -1, -1}};
  for (size_t h = 0; h < sizeof hiddens / sizeof hiddens[0]; h++)
    for (size_t s = 0; s < sizeof extra / sizeof extra[0]; s++)
      for (int v = (int)(h + s) % 7; v < VARIANT_COUNT; v += 7) {
        int64_t hidden = hiddens[h];
        norm_case c = variant(v, 5, hidden);
        c.x_stride = extra[s][0] < 0 ? hidden : extra[s][0] ? hidden + extra[s][0] : 0;
        c.residual_stride = extra[s][1] < 0 ? hidden : extra[s][1] ? hidden + extra[s][1] : 0;
        c.y_stride = extra[s][2] < 0 ? hidden : extra[s][2] ? hidden + extra[s][2] : 0;
        c.num_threads = 1 + (int)(s % MAX_THREADS);
        c.in_place = true;
        run_case(&c);
      }
}

/* Model sizes: every variant at 4096; a third of them at 8192 and 16384. */
static void test_large_hidden(void) {
  for (int v = 0; v < VARIANT_COUNT; v++) {
    norm_case c = variant(v, 3, 4096);
    c.num_threads = 1 + v % MAX_THREADS;
    c.x_scale = scale_choices[v % 3];
    c.in_place = v % 4 == 1;
    run_case(&c);
  }
  static const int64_t hiddens[] = {8192, 16384};
  for (size_t h = 0; h < 2; h++)
    for (int v = (int)h; v < VARIANT_COUNT; v += 3) {
      norm_case c = variant(v, v % 2 ? 1 : 5, hiddens[h]);
      c.num_threads = 1 + v % MAX_THREADS;
      c.eps = eps_choices[v % 3];
      c.x_stride = v % 4 == 0 ? hiddens[h] + 8 : 0;
      run_case(&c);
    }
}

/* 16-bit POST rows longer than LK_NORM_STAGE_ELEMENTS (16384) recompute v in every pass instead of
 * staging it: that path, on both sides of the limit. */
static void test_post_stage_limit(void) {
  static const int64_t hiddens[] = {16384, 16385, 16400};
  for (size_t h = 0; h < 3; h++)
    for (int combo = 1; combo < DTYPE_COMBO_COUNT; combo++)
      for (int shape = 0; shape < SHAPE_COUNT; shape += 2) {
        norm_case c = variant(0, 2, hiddens[h]);
        c.mode = LK_NORM_RESIDUAL_POST;
        c.alpha = 2.0f;
        c.dtype = dtype_combos[combo].dtype;
        c.weight_dtype = dtype_combos[combo].weight_dtype;
        c.kind = shapes[shape].kind;
        c.affine = shapes[shape].affine;
        c.in_place = true;
        run_case(&c);
      }
}

/* Every thread count gives the same bits. */
static void test_thread_split(void) {
  for (int v = 0; v < VARIANT_COUNT; v += 11) {
    norm_case c = variant(v, 48, 4096);
    c.other_threads = true;
    run_case(&c);
  }
  static const int64_t split_shapes[][2] = {{1000, 8}, {257, 33}, {97, 1000}};
  for (size_t s = 0; s < sizeof split_shapes / sizeof split_shapes[0]; s++)
    for (int v = (int)s; v < VARIANT_COUNT; v += 13) {
      norm_case c = variant(v, split_shapes[s][0], split_shapes[s][1]);
      c.num_threads = 2;
      c.other_threads = true;
      c.y_stride = s == 1 ? split_shapes[s][1] + 4 : 0;
      run_case(&c);
    }
}

/* Outputs of 8 MiB and more take the streaming-store path (and prefetch the next row): each
 * dtype, each kind and form, misaligned rows, in place. */
static void test_streaming_stores(void) {
  static const struct { lk_norm_kind kind; lk_norm_residual mode; int combo; int shape; int64_t rows, hidden, y_stride; bool in_place; } cases[] = {
      {LK_NORM_LAYER, LK_NORM_RESIDUAL_NONE, 0, 2, 520, 4100, 4103, false},
      {LK_NORM_LAYER, LK_NORM_RESIDUAL_PRE, 1, 6, 1030, 4097, 0, false},
      {LK_NORM_LAYER, LK_NORM_RESIDUAL_POST, 3, 2, 1024, 4096, 0, true},
      {LK_NORM_LAYER, LK_NORM_RESIDUAL_PRE, 4, 3, 1024, 4096, 0, true},
      {LK_NORM_RMS, LK_NORM_RESIDUAL_POST, 3, 1, 1024, 4096, 4099, false},
      {LK_NORM_RMS, LK_NORM_RESIDUAL_POST, 0, 0, 520, 4100, 0, true},
  };
  for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
    norm_case c = variant(0, cases[s].rows, cases[s].hidden);
    c.kind = cases[s].kind;
    c.mode = cases[s].mode;
    c.alpha = c.mode == LK_NORM_RESIDUAL_POST ? 2.0f : 0.0f;
    c.dtype = dtype_combos[cases[s].combo].dtype;
    c.weight_dtype = dtype_combos[cases[s].combo].weight_dtype;
    c.affine = shapes[cases[s].shape].affine;
    c.y_stride = cases[s].y_stride;
    c.num_threads = 3;
    c.in_place = cases[s].in_place;
    run_case(&c);
  }
}

/* LayerNorm of rows 1000 + U(-1, 1): the mean is 1000x the spread. The kernel must be as accurate
 * as on centred data (within the usual bound, and far inside the error of the one-pass
 * E[v^2] - mean^2 form, which this measures for comparison). f32 and f16 only: bf16 keeps 8 bits,
 * so 1000 + U(-1, 1) is a handful of distinct values there. */
static void test_large_mean(void) {
  static const struct { lk_dtype dtype; int64_t hidden; lk_norm_residual mode; } cases[] = {
      {LK_DTYPE_F32, 4096, LK_NORM_RESIDUAL_NONE}, {LK_DTYPE_F32, 4096, LK_NORM_RESIDUAL_PRE},
      {LK_DTYPE_F32, 8192, LK_NORM_RESIDUAL_POST}, {LK_DTYPE_F32, 1000, LK_NORM_RESIDUAL_NONE},
      {LK_DTYPE_F16, 4096, LK_NORM_RESIDUAL_NONE}, {LK_DTYPE_F32, 257, LK_NORM_RESIDUAL_NONE},
  };
  for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
    norm_case c = variant(0, 8, cases[s].hidden);
    c.kind = LK_NORM_LAYER;
    c.affine = shapes[3].affine; /* no weight, no bias: y is the normalised value itself */
    c.mode = cases[s].mode;
    c.alpha = c.mode == LK_NORM_RESIDUAL_POST ? 1.0f : 0.0f;
    c.dtype = c.weight_dtype = cases[s].dtype;
    c.x_mean = 1000.0f;
    c.x_scale = 1.0f;
    c.eps = 1e-5f;
    c.num_threads = 2;
    norm_expected e;
    double worst = run_case_with(&c, &e);
    /* y ~ U(-sqrt 3, sqrt 3). The mean is representable to half an ulp of 1000 (3e-5), which y
     * carries times rstd (1.7): 2e-4 allows a few ulps of the mean. An unshifted f32 sum is off by
     * ~4e-3 in the mean; the one-pass variance by everything. */
    if (c.dtype == LK_DTYPE_F32) {
      CHECKF(worst <= 2e-4, "large mean, hidden %lld: max error %.3g exceeds 2e-4", (long long)c.hidden, worst);
      CHECKF(worst * 100.0 <= e.one_pass_error,
             "large mean, hidden %lld: max error %.3g is not far below the one-pass form's %.3g", (long long)c.hidden,
             worst, e.one_pass_error);
    }
    printf("  large mean %s hidden %5lld %-4s: max error %.3g (naive two-pass %.3g, one-pass E[v^2]-mean^2 %.3g)\n",
           dtype_label(c.dtype), (long long)c.hidden, mode_label(c.mode), worst, e.naive_error, e.one_pass_error);
    free_expected(&e);
  }
}

/* LayerNorm's one-pass statistics shift by K, the mean of a row's first 16 values (layer_norm.h);
 * rows whose first 16 values sit far from the rest would cancel and take the corrected two-pass
 * fallback. Offsets of 1000 force it on every row (q^2 ~ 1e6 against var ~ 1e6 * 16 / n); 3 and
 * 1.5 put K near the switching point q^2 = 3/4 * (var + q^2), on either side. Every form, dtype and
 * ISA must stay within the usual float64 bounds (run_case_with). */
static void test_shift_fallback(void) {
  static const float offsets[] = {1000.0f, 3.0f, 1.5f, -1000.0f};
  static const int64_t hiddens[] = {4096, 40, 17};
  for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++)
    for (size_t h = 0; h < sizeof hiddens / sizeof hiddens[0]; h++)
      for (int m = 0; m < 3; m++)
        for (int d = 0; d < DTYPE_COMBO_COUNT; d++) {
          norm_case c = variant((int)(o + h + m + d), 4, hiddens[h]);
          c.kind = LK_NORM_LAYER;
          c.affine = shapes[(o + d) % 2 ? 3 : 2].affine;
          c.mode = modes[m];
          c.alpha = c.mode == LK_NORM_RESIDUAL_POST ? 0.5f : 0.0f;
          c.dtype = dtype_combos[d].dtype;
          c.weight_dtype = dtype_combos[d].weight_dtype;
          c.head_offset = offsets[o];
          c.eps = 1e-5f;
          c.num_threads = 2;
          norm_expected e;
          run_case_with(&c, &e);
          free_expected(&e);
        }
}

static void create_contexts(void) { context_grid_create(contexts, isas, &isa_count); }

static void destroy_contexts(void) { context_grid_destroy(contexts, isa_count); }

/* NaN, infinities and values near the dtype's maximum in x (and the residual): every ISA must put a
 * NaN exactly where the scalar reference does (a bf16 NaN must stay NaN through the rounding, not
 * carry into an infinity), and agree elsewhere. 20 rows, so the bf16 kernels take their weight-scan
 * shortcut (norm.c) on the clean rows and must still fix up the rows that hold a NaN. */
static void test_special_values(void) {
  const int64_t rows = 20, hidden = 100;
  for (int v = 0; v < VARIANT_COUNT; v += 1) {
    norm_case c = variant(v, rows, hidden);
    if (c.mode == LK_NORM_RESIDUAL_POST) c.alpha = 2.0f;
    const float big = c.dtype == LK_DTYPE_F16 ? 60000.0f : 3e38f;
    norm_inputs in;
    uint64_t seed = base_seed ^ (0x9E3779B97F4A7C15ull * ++case_counter);
    make_inputs(&c, seed, &in);
    /* make_inputs made x read-only: write the specials into a copy */
    strided x = strided_copy(&in.x, c.edge);
    const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, 0.0f};
    for (int64_t r = 1; r <= 4; r++) {
      float value = specials[r - 1];
      if (r == 4) value = big;
      tensor_store(c.dtype, x.memory.data, element(&x, r, (r * 7) % hidden), value);
      if (r == 4) tensor_store(c.dtype, x.memory.data, element(&x, r, (r * 7 + 1) % hidden), big);
    }
    check_context_push("special values: lk_norm %s %s %s/w:%s%s%s", c.kind == LK_NORM_LAYER ? "LAYER" : "RMS",
                       mode_label(c.mode), dtype_label(c.dtype), dtype_label(c.weight_dtype),
                       c.affine.weight ? " weight" : "", c.affine.bias ? " bias" : "");
    strided scalar_y = {0};
    for (int k = 0; k < isa_count; k++) {
      strided y = strided_alloc(c.dtype, rows, hidden, hidden, c.edge);
      strided residual = {0};
      if (has_residual(&c)) residual = strided_copy(&in.residual, c.edge);
      lk_norm_params p = params_for(&c, x.memory.data, has_residual(&c) ? residual.memory.data : NULL, y.memory.data, &in);
      if (CHECK_STATUS(call_kernel(contexts[k][1], &p), LK_OK)) {
        if (k == 0) {
          scalar_y = y;
          memset(&y, 0, sizeof y);
          /* the scalar reference itself: a NaN poisons its row, clean rows stay finite (what an
           * infinity gives follows from the definitions: 0 and NaN for RMS, all NaN for LAYER) */
          for (int64_t r = 0; r < rows; r++)
            for (int64_t col = 0; col < hidden; col++) {
              float got = tensor_load(c.dtype, scalar_y.memory.data, element(&scalar_y, r, col));
              if (r == 0 || r > 4) CHECKF(isfinite(got), "scalar: row %lld col %lld is %g on finite data", (long long)r, (long long)col, got);
              if (r == 1) CHECKF(isnan(got), "scalar: row 1 (a NaN in x) col %lld is %g, not NaN", (long long)col, got);
            }
        } else {
          int64_t mismatched = 0, first = -1;
          for (int64_t r = 0; r < rows; r++)
            for (int64_t col = 0; col < hidden; col++) {
              float want = tensor_load(c.dtype, scalar_y.memory.data, element(&scalar_y, r, col));
              float got = tensor_load(c.dtype, y.memory.data, element(&y, r, col));
              bool same = isnan(want) ? isnan(got) : (isfinite(want) ? fabsf(got - want) <= 1e-2f * (1.0f + fabsf(want)) : got == want);
              if (!same && mismatched++ == 0) first = r * hidden + col;
            }
          CHECKF(mismatched == 0, "%s: %lld outputs disagree with scalar in NaN-ness or value; first at [%lld, %lld]: scalar %g, got %g",
                 lk_isa_name(isas[k]), (long long)mismatched, (long long)(first / hidden), (long long)(first % hidden),
                 first >= 0 ? tensor_load(c.dtype, scalar_y.memory.data, first) : 0.0, first >= 0 ? tensor_load(c.dtype, y.memory.data, first) : 0.0);
        }
      }
      guarded_free(&y.memory);
      guarded_free(&residual.memory);
    }
    guarded_free(&scalar_y.memory);
    guarded_free(&x.memory);
    free_inputs(&in);
    check_context_pop();
  }
}

int main(void) {
  const char *seed = getenv("LK_TEST_SEED");
  if (seed && *seed) base_seed = strtoull(seed, NULL, 0);
  create_contexts();
  run_timed("ragged hidden 1..257", test_ragged_hidden);
  run_timed("strides", test_strides);
  run_timed("hidden 4096..16384", test_large_hidden);
  run_timed("POST stage limit", test_post_stage_limit);
  run_timed("thread split", test_thread_split);
  run_timed("streaming stores", test_streaming_stores);
  run_timed("large mean", test_large_mean);
  run_timed("shift fallback", test_shift_fallback);
  run_timed("special values", test_special_values);
  destroy_contexts();

  printf("%llu cases, %ld kernel calls, ISAs:", (unsigned long long)case_counter, kernel_calls);
  for (int k = 0; k < isa_count; k++) printf(" %s", lk_isa_name(isas[k]));
  printf("\nworst error / bound (f32 f16 bf16):\n");
  for (int k = 0; k < isa_count; k++)
    for (int kind = 0; kind < 2; kind++)
      printf("  %-8s %-5s %.3f %.3f %.3f\n", lk_isa_name(isas[k]), kind ? "LAYER" : "RMS", worst_ratio[k][kind][0],
             worst_ratio[k][kind][1], worst_ratio[k][kind][2]);
  return check_summary("test_norm");
}
