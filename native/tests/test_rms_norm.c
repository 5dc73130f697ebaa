/* lk_rms_norm and lk_fused_add_rms_norm on every ISA this CPU runs, against a float64 reference.
 *
 * (Arguments, aliasing rules and layout: test_rms_norm_arguments.c.)
 *
 * Each case builds its inputs once, rounded to the dtype, on guard-paged buffers (the last row
 * ends at a PROT_NONE page, or for some cases the first row starts after one; inputs are
 * read-only) with NaN poison in the gaps between rows; then
 * for every ISA it runs the kernel out of place and, where asked, in place (y == x, and in the
 * fused form y == residual) and with other thread counts, and checks:
 *   - y against float64 math on the rounded inputs, within FlashAttention's rule (below);
 *   - y of each non-scalar ISA against the scalar ISA's y, within the same bound;
 *   - the fused form's stored residual bit for bit: round(residual + x) in f32, then to dtype;
 *   - gaps between rows of y and residual still hold their poison, every y element was written;
 *   - in place and other thread counts give the out-of-place result bit for bit (rows are split
 *     over threads, never the arithmetic within a row).
 *
 * Tolerance (FlashAttention's tests/test_flash_attn.py): per case, with errors as max-abs over
 * all elements against the float64 reference,
 *     error(kernel) <= 2 * error(naive) + atol
 * where "naive" is the textbook loop in the same precision: f32 sum of squares accumulated
 * serially, f32 rsqrt as 1/sqrtf, the weight (or 1 + w) multiplied in f32, the result rounded
 * once to the output dtype. atol covers cases where the naive error happens to be tiny (a single
 * element, or an output that lands on a representable value) while the kernel's differently
 * ordered f32 arithmetic does not:
 *   f32:       atol = 1e-6 * max|ref|   (about 8 f32 ulps at the largest output)
 *   f16, bf16: atol = 1 ulp of the output dtype at max|ref|: both the kernel and the naive loop
 *              round the output, so each carries up to half an ulp; f32 noise before that
 *              rounding can move the kernel to the neighbouring value, a full ulp away.
 *
 * For a 16-bit y that bound is blind to mistakes worth less than an ulp: rounding by truncation,
 * a 12-bit rsqrt estimate without a Newton step, statistics over the unrounded residual sum.
 * So 16-bit outputs also count how many elements differ from the float64 reference rounded to
 * the dtype. With f32 math before one final rounding, only outputs within a few f32 ulps of a
 * rounding boundary can differ (about 1 in 2000); each mistake above misrounds a large share.
 * Same rule, in counts: misrounded(kernel) <= 2 * misrounded(naive) + 2 + n / 256.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_harness.h"

#define MAX_THREADS GRID_MAX_THREADS

typedef enum rms_form { FORM_PLAIN, FORM_FUSED } rms_form;

typedef struct rms_case {
  rms_form form;
  lk_dtype dtype;
  lk_dtype weight_dtype;
  uint32_t flags;
  int64_t rows;
  int64_t hidden;
  int64_t x_stride; /* as passed: 0 means hidden */
  int64_t residual_stride;
  int64_t y_stride;
  float eps;
  float x_scale;         /* x and residual uniform in [-x_scale, x_scale] */
  int num_threads;       /* context thread count for the main run */
  bool other_threads;    /* also run every other thread count; results must match bitwise */
  bool in_place;         /* also run y == x and (fused) y == residual */
  bool zero_first_row;   /* row 0 all zeros: y must be exactly 0 */
  guard_edge edge;
} rms_case;

/* A [rows, stride] matrix of which the first `hidden` of each row are data; the buffer holds
 * exactly (rows - 1) * stride + hidden elements, so the last row ends at the guard page. */

static lk_cpu_context *contexts[3][MAX_THREADS + 1]; /* [isa index][num_threads] */
static lk_isa isas[3];
static int isa_count;
static uint64_t base_seed = 0x5EED2024ull;
static uint64_t case_counter;
static long kernel_calls;

/* Worst kernel error as a fraction of its bound, per ISA index and dtype: printed at the end,
 * so a run shows how much headroom each variant has, not only that it passed. */
static double worst_ratio[3][3];

static const rms_form forms[] = {FORM_PLAIN, FORM_FUSED};
static const struct { lk_dtype dtype, weight_dtype; } dtype_combos[] = {
    {LK_DTYPE_F32, LK_DTYPE_F32}, {LK_DTYPE_F16, LK_DTYPE_F16}, {LK_DTYPE_F16, LK_DTYPE_F32},
    {LK_DTYPE_BF16, LK_DTYPE_BF16}, {LK_DTYPE_BF16, LK_DTYPE_F32},
};
#define DTYPE_COMBO_COUNT 5
static const uint32_t flag_choices[] = {0u, LK_NORM_WEIGHT_OFFSET_ONE};
/* form x dtype combo x flags: the variants a full sweep point runs */
#define VARIANT_COUNT (2 * DTYPE_COMBO_COUNT * 2)

static rms_case variant(int index, int64_t rows, int64_t hidden) {
  rms_case c = {0};
  c.form = forms[index % 2];
  c.dtype = dtype_combos[(index / 2) % DTYPE_COMBO_COUNT].dtype;
  c.weight_dtype = dtype_combos[(index / 2) % DTYPE_COMBO_COUNT].weight_dtype;
  c.flags = flag_choices[(index / (2 * DTYPE_COMBO_COUNT)) % 2];
  c.rows = rows;
  c.hidden = hidden;
  c.eps = 1e-6f;
  c.x_scale = 1.0f;
  c.num_threads = 1;
  c.edge = GUARD_EDGE_END;
  return c;
}

/* ---- inputs and the two references --------------------------------------------------------- */

typedef struct rms_inputs {
  strided x;
  strided residual; /* fused form: the value passed in (each run works on a copy) */
  guarded_buffer weight;
} rms_inputs;

typedef struct rms_expected {
  double *y_ref;       /* [rows * hidden], float64 on the rounded inputs */
  float *y_naive;      /* [rows * hidden], the naive same-precision loop, rounded to dtype */
  float *y_rounded;    /* [rows * hidden], the reference rounded to dtype */
  float *normalized_input; /* [rows * hidden], x or the rounded residual sum: what is normalised */
  uint32_t *residual_bits; /* fused: round(residual + x) bits */
  double max_abs_ref;
  double naive_error;
  double atol;
  double bound;
  int64_t naive_misrounded; /* naive outputs that are not the rounded reference */
  int64_t misrounding_bound;
} rms_expected;

static void make_inputs(const rms_case *c, uint64_t seed, rms_inputs *in) {
  rng r = rng_seeded(seed);
  int64_t x_stride = effective_stride(c->x_stride, c->hidden);
  in->x = strided_alloc(c->dtype, c->rows, c->hidden, x_stride, c->edge);
  for (int64_t row = 0; row < c->rows; row++)
    for (int64_t col = 0; col < c->hidden; col++) {
      float value = (row == 0 && c->zero_first_row) ? 0.0f : rng_uniform(&r, -c->x_scale, c->x_scale);
      tensor_store(c->dtype, in->x.memory.data, element(&in->x, row, col), value);
    }
  guarded_make_read_only(&in->x.memory);

  memset(&in->residual, 0, sizeof in->residual);
  if (c->form == FORM_FUSED) {
    int64_t residual_stride = effective_stride(c->residual_stride, c->hidden);
    in->residual = strided_alloc(c->dtype, c->rows, c->hidden, residual_stride, c->edge);
    for (int64_t row = 0; row < c->rows; row++)
      for (int64_t col = 0; col < c->hidden; col++) {
        /* A zero first row needs residual + x == 0 too. */
        float value = (row == 0 && c->zero_first_row) ? 0.0f : rng_uniform(&r, -c->x_scale, c->x_scale);
        tensor_store(c->dtype, in->residual.memory.data, element(&in->residual, row, col), value);
      }
  }

  in->weight = guarded_alloc((size_t)c->hidden * dtype_size(c->weight_dtype), c->edge);
  /* Gemma's stored weights are w - 1, small around zero. */
  float weight_lo = (c->flags & LK_NORM_WEIGHT_OFFSET_ONE) ? -0.5f : -1.5f;
  float weight_hi = (c->flags & LK_NORM_WEIGHT_OFFSET_ONE) ? 0.5f : 1.5f;
  for (int64_t col = 0; col < c->hidden; col++)
    tensor_store(c->weight_dtype, in->weight.data, col, rng_uniform(&r, weight_lo, weight_hi));
  guarded_make_read_only(&in->weight);
}

static void free_inputs(rms_inputs *in) {
  guarded_free(&in->x.memory);
  guarded_free(&in->residual.memory);
  guarded_free(&in->weight);
}

static double output_atol(lk_dtype dtype, double max_abs_ref) {
  if (dtype == LK_DTYPE_F32) return 1e-6 * max_abs_ref;
  return dtype_ulp(dtype, max_abs_ref);
}

static void compute_expected(const rms_case *c, const rms_inputs *in, rms_expected *e) {
  int64_t n = c->rows * c->hidden;
  size_t count = n > 0 ? (size_t)n : 1;
  e->y_ref = malloc(count * sizeof *e->y_ref);
  e->y_naive = malloc(count * sizeof *e->y_naive);
  e->normalized_input = malloc(count * sizeof *e->normalized_input);
  e->residual_bits = malloc(count * sizeof *e->residual_bits);
  e->y_rounded = malloc(count * sizeof *e->y_rounded);
  if (!e->y_ref || !e->y_naive || !e->normalized_input || !e->residual_bits || !e->y_rounded) {
    fprintf(stderr, "out of host memory\n");
    exit(2);
  }
  bool offset_one = (c->flags & LK_NORM_WEIGHT_OFFSET_ONE) != 0;
  e->max_abs_ref = 0.0;
  e->naive_error = 0.0;
  e->naive_misrounded = 0;
  for (int64_t row = 0; row < c->rows; row++) {
    float *v = e->normalized_input + row * c->hidden;
    for (int64_t col = 0; col < c->hidden; col++) {
      float x = tensor_load(c->dtype, in->x.memory.data, element(&in->x, row, col));
      if (c->form == FORM_FUSED) {
        /* The f32 sum of two values of a 16-bit dtype, rounded once more to that dtype, is the
         * correctly rounded sum (f32 has 2p + 2 bits for p = 11 or 8), as the header states. */
        float residual = tensor_load(c->dtype, in->residual.memory.data, element(&in->residual, row, col));
        float sum = residual + x;
        uint16_t sum16 = 0;
        switch (c->dtype) {
        case LK_DTYPE_F16: sum16 = f32_to_f16(sum); break;
        case LK_DTYPE_BF16: sum16 = f32_to_bf16(sum); break;
        default: break;
        }
        e->residual_bits[row * c->hidden + col] = c->dtype == LK_DTYPE_F32 ? f32_bits(sum) : sum16;
        x = dtype_round(c->dtype, sum);
      }
      v[col] = x;
    }

    double sum_squares = 0.0;
    float naive_sum_squares = 0.0f;
    for (int64_t col = 0; col < c->hidden; col++) {
      sum_squares += (double)v[col] * (double)v[col];
      naive_sum_squares += v[col] * v[col];
    }
    double inv_rms = 1.0 / sqrt(sum_squares / (double)c->hidden + (double)c->eps);
    float naive_inv_rms = 1.0f / sqrtf(naive_sum_squares / (float)c->hidden + c->eps);
    for (int64_t col = 0; col < c->hidden; col++) {
      float w = tensor_load(c->weight_dtype, in->weight.data, col);
      double ref = (double)v[col] * inv_rms * (offset_one ? 1.0 + (double)w : (double)w);
      float naive = dtype_round(c->dtype, v[col] * naive_inv_rms * (offset_one ? 1.0f + w : w));
      int64_t i = row * c->hidden + col;
      e->y_ref[i] = ref;
      e->y_naive[i] = naive;
      e->y_rounded[i] = dtype_round(c->dtype, (float)ref);
      if (naive != e->y_rounded[i]) e->naive_misrounded++;
      if (fabs(ref) > e->max_abs_ref) e->max_abs_ref = fabs(ref);
      double naive_error = fabs((double)naive - ref);
      if (!(naive_error <= e->naive_error)) e->naive_error = naive_error;
    }
  }
  e->atol = output_atol(c->dtype, e->max_abs_ref);
  e->bound = 2.0 * e->naive_error + e->atol;
  e->misrounding_bound = 2 * e->naive_misrounded + 2 + n / 256;
}

static void free_expected(rms_expected *e) {
  free(e->y_ref);
  free(e->y_naive);
  free(e->normalized_input);
  free(e->residual_bits);
  free(e->y_rounded);
}

/* ---- running and checking ------------------------------------------------------------------- */

static lk_status call_kernel(rms_form form, lk_cpu_context *context, const lk_rms_norm_params *p) {
  kernel_calls++;
  return form == FORM_FUSED ? lk_fused_add_rms_norm(context, p) : lk_rms_norm(context, p);
}

static lk_rms_norm_params params_for(const rms_case *c, const void *x, void *residual, void *y, const void *weight) {
  lk_rms_norm_params p;
  memset(&p, 0, sizeof p);
  p.x = x;
  p.residual = residual;
  p.y = y;
  p.weight = weight;
  p.rows = c->rows;
  p.hidden = c->hidden;
  p.x_stride = c->x_stride;
  p.residual_stride = c->form == FORM_FUSED ? c->residual_stride : 0;
  p.y_stride = c->y_stride;
  p.eps = c->eps;
  p.flags = c->flags;
  p.dtype = c->dtype;
  p.weight_dtype = c->weight_dtype;
  return p;
}

/* The stored residual: the rounded sum bit for bit, gaps untouched. */
static void check_residual(const rms_case *c, const strided *residual, const rms_expected *e, const char *run) {
  int64_t wrong = 0, first_row = 0, first_col = 0;
  for (int64_t row = 0; row < c->rows; row++)
    for (int64_t col = 0; col < c->hidden; col++)
      if (tensor_bits(c->dtype, residual->memory.data, element(residual, row, col)) !=
              e->residual_bits[row * c->hidden + col] &&
          wrong++ == 0) {
        first_row = row;
        first_col = col;
      }
  CHECKF(wrong == 0,
         "%s: %lld stored residual elements are not round(residual + x); first at [%lld, %lld]: "
         "expected bits 0x%08x, got 0x%08x",
         run, (long long)wrong, (long long)first_row, (long long)first_col,
         e->residual_bits[first_row * c->hidden + first_col],
         tensor_bits(c->dtype, residual->memory.data, element(residual, first_row, first_col)));
  CHECKF(damaged_gaps(residual) == 0, "%s: the kernel wrote into the gaps between residual rows", run);
}

/* y: every element written and finite, gaps untouched, within the bound of the float64
 * reference and, for a non-scalar ISA, of the scalar ISA's output. Returns the max error. */
static double check_y(const rms_case *c, const rms_inputs *in, const strided *y, const rms_expected *e,
                      const strided *scalar_y, const char *run) {
  double worst = 0.0, worst_vs_scalar = 0.0;
  int64_t worst_at = 0, worst_vs_scalar_at = 0, unwritten = 0, exact_zero_violations = 0;
  int64_t misrounded = 0, first_misrounded = -1;
  for (int64_t row = 0; row < c->rows; row++)
    for (int64_t col = 0; col < c->hidden; col++) {
      int64_t i = row * c->hidden + col;
      if (tensor_is_poison(c->dtype, y->memory.data, element(y, row, col))) unwritten++;
      double got = tensor_load(c->dtype, y->memory.data, element(y, row, col));
      double error = fabs(got - e->y_ref[i]);
      if (!(error <= worst)) { /* NaN counts as the worst */
        worst = isnan(error) ? INFINITY : error;
        worst_at = i;
      }
      if (row == 0 && c->zero_first_row && got != 0.0) exact_zero_violations++;
      if (!(got == (double)e->y_rounded[i]) && misrounded++ == 0)
        first_misrounded = i;
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
  CHECKF(exact_zero_violations == 0, "%s: an all-zero row gave %lld non-zero outputs", run,
         (long long)exact_zero_violations);
  if (c->rows * c->hidden == 0) return 0.0;

  int64_t row = worst_at / c->hidden, col = worst_at % c->hidden;
  CHECKF(worst <= e->bound,
         "%s: max |y - ref| = %.3g at [%lld, %lld] exceeds 2 * naive error %.3g + atol %.3g = %.3g "
         "(input %.9g, weight %.9g, ref %.9g, naive %.9g, got %.9g)",
         run, worst, (long long)row, (long long)col, e->naive_error, e->atol, e->bound,
         e->normalized_input[worst_at], tensor_load(c->weight_dtype, in->weight.data, col), e->y_ref[worst_at],
         e->y_naive[worst_at], tensor_load(c->dtype, y->memory.data, element(y, row, col)));
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

/* One out-of-place call; false (and a failed check) if the call itself failed. */
static bool run_out_of_place(const rms_case *c, const rms_inputs *in, lk_cpu_context *context, isa_run *out,
                             const char *run) {
  out->y = strided_alloc(c->dtype, c->rows, c->hidden, effective_stride(c->y_stride, c->hidden), c->edge);
  memset(&out->residual, 0, sizeof out->residual);
  void *residual = NULL;
  if (c->form == FORM_FUSED) {
    out->residual = strided_copy(&in->residual, c->edge);
    residual = out->residual.memory.data;
  }
  lk_rms_norm_params p = params_for(c, in->x.memory.data, residual, out->y.memory.data, in->weight.data);
  check_context_push("%s", run);
  bool ok = CHECK_STATUS(call_kernel(c->form, context, &p), LK_OK);
  check_context_pop();
  return ok;
}

static void free_run(isa_run *r) {
  guarded_free(&r->y.memory);
  guarded_free(&r->residual.memory);
}

static void run_in_place(const rms_case *c, const rms_inputs *in, const rms_expected *e, lk_cpu_context *context,
                         const isa_run *reference, const char *isa) {
  char run[96];
  /* y == x: x's layout serves both. */
  {
    rms_case aliased = *c;
    aliased.y_stride = c->x_stride;
    strided buffer = strided_copy(&in->x, c->edge);
    strided residual = {0};
    void *residual_data = NULL;
    if (c->form == FORM_FUSED) {
      residual = strided_copy(&in->residual, c->edge);
      residual_data = residual.memory.data;
    }
    lk_rms_norm_params p = params_for(&aliased, buffer.memory.data, residual_data, buffer.memory.data, in->weight.data);
    snprintf(run, sizeof run, "%s, y == x", isa);
    if (CHECK_STATUS(call_kernel(c->form, context, &p), LK_OK)) {
      check_same_bits(&reference->y, &buffer, run);
      if (c->form == FORM_FUSED) check_residual(c, &residual, e, run);
    }
    guarded_free(&buffer.memory);
    guarded_free(&residual.memory);
  }
  /* y == residual: the sum is stored, then overwritten by y. */
  if (c->form == FORM_FUSED) {
    rms_case aliased = *c;
    aliased.y_stride = c->residual_stride;
    strided buffer = strided_copy(&in->residual, c->edge);
    lk_rms_norm_params p =
        params_for(&aliased, in->x.memory.data, buffer.memory.data, buffer.memory.data, in->weight.data);
    snprintf(run, sizeof run, "%s, y == residual", isa);
    if (CHECK_STATUS(call_kernel(c->form, context, &p), LK_OK)) check_same_bits(&reference->y, &buffer, run);
    guarded_free(&buffer.memory);
  }
}

static int dtype_index(lk_dtype dtype) {
  return dtype == LK_DTYPE_F32 ? 0 : dtype == LK_DTYPE_F16 ? 1 : 2;
}

static void run_case(const rms_case *c) {
  uint64_t seed = base_seed ^ (0x9E3779B97F4A7C15ull * ++case_counter);
  check_context_push("%s %s/w:%s%s rows=%lld hidden=%lld strides x=%lld residual=%lld y=%lld eps=%g scale=%g "
                     "threads=%d guard=%s seed=0x%016llx",
                     c->form == FORM_FUSED ? "lk_fused_add_rms_norm" : "lk_rms_norm", dtype_label(c->dtype),
                     dtype_label(c->weight_dtype), (c->flags & LK_NORM_WEIGHT_OFFSET_ONE) ? " offset_one" : "",
                     (long long)c->rows, (long long)c->hidden, (long long)c->x_stride,
                     (long long)c->residual_stride, (long long)c->y_stride, c->eps, c->x_scale, c->num_threads,
                     c->edge == GUARD_EDGE_END ? "end" : "start", (unsigned long long)seed);
  rms_inputs in;
  rms_expected e;
  make_inputs(c, seed, &in);
  compute_expected(c, &in, &e);

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
    if (c->form == FORM_FUSED) check_residual(c, &r.residual, &e, isa);
    double error = check_y(c, &in, &r.y, &e, (!is_scalar && have_scalar) ? &scalar.y : NULL, isa);
    double ratio = e.bound > 0 ? error / e.bound : 0.0;
    if (ratio > worst_ratio[k][dtype_index(c->dtype)]) worst_ratio[k][dtype_index(c->dtype)] = ratio;

    if (c->in_place) run_in_place(c, &in, &e, contexts[k][c->num_threads], &r, isa);
    if (c->other_threads) {
      for (int threads = 1; threads <= MAX_THREADS; threads++) {
        if (threads == c->num_threads) continue;
        char run[96];
        snprintf(run, sizeof run, "%s, %d threads vs %d", isa, threads, c->num_threads);
        isa_run other;
        if (run_out_of_place(c, &in, contexts[k][threads], &other, run)) {
          check_same_bits(&r.y, &other.y, run);
          if (c->form == FORM_FUSED) check_same_bits(&r.residual, &other.residual, run);
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
  free_expected(&e);
  free_inputs(&in);
  check_context_pop();
}

/* ---- the sweeps ----------------------------------------------------------------------------- */

static const float eps_choices[] = {1e-6f, 1e-5f, 0.0f};
static const float scale_choices[] = {1.0f, 1e-2f, 50.0f};

/* Every hidden 1..257 (every SIMD tail and block boundary up to 256 plus one), three rows, all
 * variants, in place too; rows 1 and 17 with a rotating subset; the 17-row pass strided. */
static void test_ragged_hidden(void) {
  for (int64_t hidden = 1; hidden <= 257; hidden++) {
    for (int v = 0; v < VARIANT_COUNT; v++) {
      rms_case c = variant(v, 3, hidden);
      c.eps = eps_choices[(hidden + v) % 2];
      c.x_scale = scale_choices[(hidden + v) % 3];
      c.num_threads = 1 + (int)((hidden + v) % MAX_THREADS);
      c.in_place = true;
      c.zero_first_row = (hidden + v) % 17 == 0;
      c.edge = (hidden + v) % 9 == 0 ? GUARD_EDGE_START : GUARD_EDGE_END;
      run_case(&c);
    }
    for (int k = 0; k < 4; k++) {
      rms_case c = variant((int)(hidden * 4 + k) % VARIANT_COUNT, 1, hidden);
      c.eps = eps_choices[(hidden + k) % 3];
      c.num_threads = 1 + k % MAX_THREADS;
      run_case(&c);
    }
    for (int k = 0; k < 2; k++) {
      rms_case c = variant((int)(hidden * 2 + k) % VARIANT_COUNT, 17, hidden);
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

/* Strides > hidden on each tensor alone and together, stride == hidden spelled out, in place
 * with strides; hidden chosen around the vector widths (8 and 16 floats, 16 and 32 halves). */
static void test_strides(void) {
  static const int64_t hiddens[] = {1, 7, 16, 33, 64, 100, 257};
  static const int64_t extra[][3] = {{5, 0, 0}, {0, 5, 0}, {0, 0, 5}, {1, 2, 3}, {64, 17, 31}, {-1, -1, -1}};
  for (size_t h = 0; h < sizeof hiddens / sizeof hiddens[0]; h++)
    for (size_t s = 0; s < sizeof extra / sizeof extra[0]; s++)
      for (int v = 0; v < VARIANT_COUNT; v += 3) {
        int64_t hidden = hiddens[h];
        rms_case c = variant(v, 5, hidden);
        /* -1 spells the stride out as hidden itself, which must equal 0 */
        c.x_stride = extra[s][0] < 0 ? hidden : extra[s][0] ? hidden + extra[s][0] : 0;
        c.residual_stride = extra[s][1] < 0 ? hidden : extra[s][1] ? hidden + extra[s][1] : 0;
        c.y_stride = extra[s][2] < 0 ? hidden : extra[s][2] ? hidden + extra[s][2] : 0;
        c.num_threads = 1 + (int)(s % MAX_THREADS);
        c.in_place = true;
        run_case(&c);
      }
}

/* Model sizes: hidden 4096 (Llama-2-7B), 8192 (70B), 16384 (405B). */
static void test_large_hidden(void) {
  for (int v = 0; v < VARIANT_COUNT; v++) {
    rms_case c = variant(v, 3, 4096);
    c.num_threads = 1 + v % MAX_THREADS;
    c.x_scale = scale_choices[v % 3];
    c.in_place = v % 4 == 1;
    run_case(&c);
  }
  static const int64_t hiddens[] = {8192, 16384};
  for (size_t h = 0; h < 2; h++)
    for (int v = 0; v < VARIANT_COUNT; v += 3) {
      rms_case c = variant(v, v % 2 ? 1 : 17, hiddens[h]);
      c.num_threads = 1 + v % MAX_THREADS;
      c.eps = eps_choices[v % 2];
      c.x_stride = v % 4 == 0 ? hiddens[h] + 8 : 0;
      run_case(&c);
    }
}

/* Enough rows that the library splits them over its workers: every thread count gives the same
 * bits. Many tiny rows too, where a split is all overhead but must still be right. */
static void test_thread_split(void) {
  static const int variants[] = {0, 3, 4, 9, 12, 19};
  for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
    rms_case c = variant(variants[i], 64, 4096);
    c.other_threads = true;
    run_case(&c);
  }
  static const int64_t shapes[][2] = {{1000, 8}, {257, 33}, {97, 1000}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int v = 0; v < VARIANT_COUNT; v += 5) {
      rms_case c = variant(v, shapes[s][0], shapes[s][1]);
      c.num_threads = 2;
      c.other_threads = true;
      c.y_stride = s == 1 ? shapes[s][1] + 4 : 0;
      run_case(&c);
    }
}

/* Outputs of 8 MiB and more take the streaming-store path, which aligns each row's stores
 * itself: rows whose start is misaligned (odd strides, odd hidden) and every dtype. */
static void test_streaming_stores(void) {
  static const struct { int variant; int64_t rows, hidden, y_stride; bool in_place; } shapes[] = {
      {0, 520, 4100, 4103, false},  /* f32, 8.1 MiB, every row misaligned differently */
      {3, 1030, 4097, 0, false},    /* fused f16: odd hidden, contiguous */
      {17, 1024, 4096, 0, true},    /* fused bf16 with Gemma's offset, exactly 8 MiB, in place */
  };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    rms_case c = variant(shapes[s].variant, shapes[s].rows, shapes[s].hidden);
    c.y_stride = shapes[s].y_stride;
    c.num_threads = 3;
    c.in_place = shapes[s].in_place;
    run_case(&c);
  }
}

static void create_contexts(void) { context_grid_create(contexts, isas, &isa_count); }

static void destroy_contexts(void) { context_grid_destroy(contexts, isa_count); }

int main(void) {
  const char *seed = getenv("LK_TEST_SEED");
  if (seed && *seed) base_seed = strtoull(seed, NULL, 0);
  create_contexts();
  run_timed("ragged hidden 1..257", test_ragged_hidden);
  run_timed("strides", test_strides);
  run_timed("hidden 4096..16384", test_large_hidden);
  run_timed("thread split", test_thread_split);
  run_timed("streaming stores", test_streaming_stores);
  destroy_contexts();

  printf("%llu cases, %ld kernel calls, ISAs:", (unsigned long long)case_counter, kernel_calls);
  for (int k = 0; k < isa_count; k++) printf(" %s", lk_isa_name(isas[k]));
  printf("\nworst error / bound (f32 f16 bf16):\n");
  for (int k = 0; k < isa_count; k++)
    printf("  %-8s %.3f %.3f %.3f\n", lk_isa_name(isas[k]), worst_ratio[k][0], worst_ratio[k][1], worst_ratio[k][2]);
  return check_summary("test_rms_norm");
}
