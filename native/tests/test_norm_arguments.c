/* lk_norm as a contract rather than as numerics (those are in test_norm.c): every invalid
 * argument is refused with LK_ERR_INVALID_ARGUMENT and a message naming it, before anything is
 * written; the aliasing rules (y == x always, y == residual in PRE, with equal strides; read-only
 * inputs may share memory); the optional weight and bias; alpha; extents too large to exist;
 * rows == 0; and the params layout the library reports for the bindings. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_harness.h"

static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};
static const lk_norm_kind kinds[] = {LK_NORM_RMS, LK_NORM_LAYER};
static const lk_norm_residual modes[] = {LK_NORM_RESIDUAL_NONE, LK_NORM_RESIDUAL_PRE, LK_NORM_RESIDUAL_POST};
static lk_cpu_context *contexts[3];
static lk_isa isas[3];
static int isa_count;

typedef struct buffers {
  guarded_buffer arena; /* x, residual and y carved out of one buffer, so overlaps can be built */
  guarded_buffer weight;
  guarded_buffer bias;
  guarded_buffer weight_f32;
  guarded_buffer elsewhere;
  uint8_t *x;
  uint8_t *residual;
  uint8_t *y;
} buffers;

enum { ROWS = 4, HIDDEN = 32 };

static buffers buffers_alloc(lk_dtype dtype) {
  buffers b;
  size_t tensor_bytes = (size_t)ROWS * HIDDEN * dtype_size(dtype);
  b.arena = guarded_alloc(3 * tensor_bytes, GUARD_EDGE_END);
  b.weight = guarded_alloc(HIDDEN * dtype_size(dtype), GUARD_EDGE_END);
  b.bias = guarded_alloc(HIDDEN * dtype_size(dtype), GUARD_EDGE_END);
  b.weight_f32 = guarded_alloc(HIDDEN * sizeof(float), GUARD_EDGE_END);
  b.elsewhere = guarded_alloc(tensor_bytes, GUARD_EDGE_END);
  b.x = b.arena.data;
  b.residual = b.x + tensor_bytes;
  b.y = b.residual + tensor_bytes;
  for (int i = 0; i < 3 * ROWS * HIDDEN; i++) tensor_store(dtype, b.arena.data, i, 0.25f * (float)(i % 5));
  for (int i = 0; i < HIDDEN; i++) {
    tensor_store(dtype, b.weight.data, i, 1.0f);
    tensor_store(dtype, b.bias.data, i, 0.5f);
    tensor_store(LK_DTYPE_F32, b.weight_f32.data, i, 1.0f);
  }
  return b;
}

static void buffers_free(buffers *b) {
  guarded_free(&b->arena);
  guarded_free(&b->weight);
  guarded_free(&b->bias);
  guarded_free(&b->weight_f32);
  guarded_free(&b->elsewhere);
}

static lk_norm_params valid_params(const buffers *b, lk_norm_kind kind, lk_norm_residual mode, lk_dtype dtype) {
  lk_norm_params p;
  memset(&p, 0, sizeof p);
  p.x = b->x;
  p.residual = mode != LK_NORM_RESIDUAL_NONE ? b->residual : NULL;
  p.y = b->y;
  p.weight = b->weight.data;
  p.bias = kind == LK_NORM_LAYER ? b->bias.data : NULL;
  p.rows = ROWS;
  p.hidden = HIDDEN;
  p.eps = 1e-6f;
  p.kind = kind;
  p.residual_mode = mode;
  p.dtype = dtype;
  p.weight_dtype = dtype;
  return p;
}

/* A rejected call must not have written y or residual: poison them, call, look. */
static void expect_rejected(lk_cpu_context *context, const lk_norm_params *p, buffers *b, lk_dtype dtype,
                            const char *name, const char *what) {
  int64_t tensor = (int64_t)ROWS * HIDDEN;
  tensor_poison(dtype, b->residual, tensor);
  tensor_poison(dtype, b->y, tensor);
  check_context_push("%s", what);
  CHECK_INVALID(lk_norm(context, p), name);
  int64_t written = 0;
  for (int64_t i = 0; i < tensor; i++) written += !tensor_is_poison(dtype, b->residual, i) + !tensor_is_poison(dtype, b->y, i);
  CHECKF(written == 0, "a rejected call wrote %lld elements of y or residual", (long long)written);
  check_context_pop();
}

static void expect_ok(lk_cpu_context *context, const lk_norm_params *p, const char *what) {
  check_context_push("%s", what);
  CHECK_STATUS(lk_norm(context, p), LK_OK);
  check_context_pop();
}

static void test_zero_rows(void) {
  for (size_t d = 0; d < 3; d++)
    for (size_t k = 0; k < 2; k++)
      for (size_t m = 0; m < 3; m++) {
        buffers b = buffers_alloc(dtypes[d]);
        lk_norm_params p = valid_params(&b, kinds[k], modes[m], dtypes[d]);
        p.rows = 0;
        int64_t tensor = (int64_t)ROWS * HIDDEN;
        for (int i = 0; i < isa_count; i++) {
          tensor_poison(dtypes[d], b.residual, tensor);
          tensor_poison(dtypes[d], b.y, tensor);
          CHECK_STATUS(lk_norm(contexts[i], &p), LK_OK);
          int64_t touched = 0;
          for (int64_t e = 0; e < tensor; e++)
            touched += !tensor_is_poison(dtypes[d], b.y, e) + !tensor_is_poison(dtypes[d], b.residual, e);
          CHECKF(touched == 0, "rows == 0 on %s wrote %lld elements", lk_isa_name(isas[i]), (long long)touched);
        }
        buffers_free(&b);
      }
}

static void test_bad_arguments(lk_cpu_context *context) {
  for (size_t d = 0; d < 3; d++)
    for (size_t k = 0; k < 2; k++)
      for (size_t m = 0; m < 3; m++) {
        const lk_dtype dtype = dtypes[d];
        const lk_norm_kind kind = kinds[k];
        const lk_norm_residual mode = modes[m];
        const bool layer = kind == LK_NORM_LAYER, residual = mode != LK_NORM_RESIDUAL_NONE;
        buffers b = buffers_alloc(dtype);
        const size_t element_bytes = dtype_size(dtype);
        const lk_norm_params good = valid_params(&b, kind, mode, dtype);
        lk_norm_params p;
        check_context_push("%s %s %s", layer ? "LAYER" : "RMS",
                           mode == LK_NORM_RESIDUAL_PRE ? "PRE" : mode == LK_NORM_RESIDUAL_POST ? "POST" : "NONE",
                           dtype_label(dtype));

        /* valid variations */
        p = good;
        expect_ok(context, &p, "baseline");
        p.weight = b.weight_f32.data;
        p.weight_dtype = LK_DTYPE_F32;
        if (layer) p.bias = NULL;
        expect_ok(context, &p, "f32 weight");
        p = good; p.alpha = 1.0f;
        expect_ok(context, &p, "alpha = 1");
        p = good; p.flags = LK_NORM_WEIGHT_OFFSET_ONE;
        expect_ok(context, &p, "weight offset one");
        p = good; p.y = b.x; /* in place */
        expect_ok(context, &p, "y == x");
        if (mode == LK_NORM_RESIDUAL_PRE) {
          p = good; p.y = b.residual;
          expect_ok(context, &p, "PRE: y == residual");
        }
        if (mode == LK_NORM_RESIDUAL_POST) {
          p = good; p.alpha = 2.8284271f;
          expect_ok(context, &p, "POST: DeepNorm alpha");
          p = good; p.alpha = -0.5f;
          expect_ok(context, &p, "POST: negative alpha");
          p = good; p.residual = b.x; /* read-only inputs may share memory */
          expect_ok(context, &p, "POST: residual == x (both read only)");
        }
        if (layer) {
          p = good; p.weight = NULL;
          expect_ok(context, &p, "LAYER without weight");
          p = good; p.bias = NULL;
          expect_ok(context, &p, "LAYER without bias");
          p = good; p.weight = NULL; p.bias = NULL;
          expect_ok(context, &p, "LAYER without weight and bias");
          p = good; p.bias = b.weight.data;
          expect_ok(context, &p, "LAYER: bias == weight (both read only)");
        }

        /* invalid */
        p = good;
        expect_rejected(NULL, &p, &b, dtype, "context", "NULL context");
        check_context_push("NULL params");
        CHECK_INVALID(lk_norm(context, NULL), "params");
        check_context_pop();
        p = good; p.x = NULL;
        expect_rejected(context, &p, &b, dtype, "x", "NULL x");
        p = good; p.y = NULL;
        expect_rejected(context, &p, &b, dtype, "y", "NULL y");
        if (!layer) {
          p = good; p.weight = NULL;
          expect_rejected(context, &p, &b, dtype, "weight", "RMS: NULL weight");
          p = good; p.bias = b.bias.data;
          expect_rejected(context, &p, &b, dtype, "bias", "RMS: a bias");
        } else {
          p = good; p.weight = NULL; p.flags = LK_NORM_WEIGHT_OFFSET_ONE;
          expect_rejected(context, &p, &b, dtype, "weight", "LAYER: offset flag without a weight");
        }
        if (residual) {
          p = good; p.residual = NULL;
          expect_rejected(context, &p, &b, dtype, "residual", "NULL residual");
          p = good; p.residual_stride = HIDDEN - 1;
          expect_rejected(context, &p, &b, dtype, "residual_stride", "residual_stride < hidden");
        } else {
          p = good; p.residual = b.residual;
          expect_rejected(context, &p, &b, dtype, "residual", "NONE with a residual");
        }
        p = good; p.kind = (lk_norm_kind)2;
        expect_rejected(context, &p, &b, dtype, "kind", "kind = 2");
        p = good; p.kind = (lk_norm_kind)-1;
        expect_rejected(context, &p, &b, dtype, "kind", "kind = -1");
        p = good; p.residual_mode = (lk_norm_residual)3;
        expect_rejected(context, &p, &b, dtype, "residual_mode", "residual_mode = 3");

        p = good; p.rows = -1;
        expect_rejected(context, &p, &b, dtype, "rows", "rows = -1");
        p = good; p.hidden = 0;
        expect_rejected(context, &p, &b, dtype, "hidden", "hidden = 0");
        p = good; p.hidden = -5;
        expect_rejected(context, &p, &b, dtype, "hidden", "hidden = -5");
        p = good; p.x_stride = HIDDEN - 1;
        expect_rejected(context, &p, &b, dtype, "x_stride", "x_stride < hidden");
        p = good; p.y_stride = -1;
        expect_rejected(context, &p, &b, dtype, "y_stride", "y_stride < 0");

        p = good; p.dtype = (lk_dtype)7;
        expect_rejected(context, &p, &b, dtype, "dtype", "dtype = 7");
        p = good; p.weight_dtype = (lk_dtype)7;
        expect_rejected(context, &p, &b, dtype, "weight_dtype", "weight_dtype = 7");
        p = good; p.weight_dtype = dtype == LK_DTYPE_F16 ? LK_DTYPE_BF16 : LK_DTYPE_F16;
        expect_rejected(context, &p, &b, dtype, "weight_dtype", "weight_dtype neither dtype nor f32");
        p = good; p.flags = 2u;
        expect_rejected(context, &p, &b, dtype, "flags", "flags = 2");
        p = good; p.eps = -1e-6f;
        expect_rejected(context, &p, &b, dtype, "eps", "eps < 0");
        p = good; p.eps = NAN;
        expect_rejected(context, &p, &b, dtype, "eps", "eps NaN");
        p = good; p.eps = INFINITY;
        expect_rejected(context, &p, &b, dtype, "eps", "eps infinite");

        /* alpha: POST's scale; 0 or 1 elsewhere; finite */
        if (mode == LK_NORM_RESIDUAL_POST) {
          p = good; p.alpha = NAN;
          expect_rejected(context, &p, &b, dtype, "alpha", "POST: alpha NaN");
          p = good; p.alpha = INFINITY;
          expect_rejected(context, &p, &b, dtype, "alpha", "POST: alpha infinite");
        } else {
          p = good; p.alpha = 2.0f;
          expect_rejected(context, &p, &b, dtype, "alpha", "alpha = 2 outside POST");
          p = good; p.alpha = -1.0f;
          expect_rejected(context, &p, &b, dtype, "alpha", "alpha = -1 outside POST");
        }

        /* overlaps */
        p = good; p.y = b.x + element_bytes;
        CHECK_INVALID(lk_norm(context, &p), "y|x");
        p = good; p.y = b.x; p.y_stride = 2 * HIDDEN;
        CHECK_INVALID(lk_norm(context, &p), "y|x");
        p = good; p.y = b.weight.data; p.rows = 1;
        CHECK_INVALID(lk_norm(context, &p), "y|weight");
        if (layer) {
          p = good; p.y = b.bias.data; p.rows = 1;
          CHECK_INVALID(lk_norm(context, &p), "y|bias");
        }
        if (mode == LK_NORM_RESIDUAL_PRE) {
          p = good; p.residual = b.x;
          CHECK_INVALID(lk_norm(context, &p), "residual|x");
          p = good; p.residual = b.x + element_bytes;
          CHECK_INVALID(lk_norm(context, &p), "residual|x");
          p = good; p.y = b.residual + element_bytes;
          CHECK_INVALID(lk_norm(context, &p), "y|residual");
          p = good; p.residual = b.weight.data; p.rows = 1;
          CHECK_INVALID(lk_norm(context, &p), "residual|weight");
          if (layer) {
            p = good; p.residual = b.bias.data; p.rows = 1;
            CHECK_INVALID(lk_norm(context, &p), "residual|bias");
          }
        }
        if (mode == LK_NORM_RESIDUAL_POST) {
          p = good; p.y = b.residual; /* POST reads the residual only: y may not be it */
          expect_rejected(context, &p, &b, dtype, "y|residual", "POST: y == residual");
          p = good; p.y = b.residual + element_bytes;
          CHECK_INVALID(lk_norm(context, &p), "y|residual");
        }
        /* x's stride carries its second row onto y's first */
        p = good;
        p.rows = 2;
        p.x_stride = (int64_t)(b.y - b.x) / (int64_t)element_bytes;
        p.residual = residual ? b.elsewhere.data : NULL;
        CHECK_INVALID(lk_norm(context, &p), "y|x");

        check_context_pop();
        buffers_free(&b);
      }
}

/* lk_rms_norm and lk_fused_add_rms_norm share lk_norm's validation: their own rules hold. */
static void test_rms_entry_points(lk_cpu_context *context) {
  buffers b = buffers_alloc(LK_DTYPE_F32);
  lk_rms_norm_params p;
  memset(&p, 0, sizeof p);
  p.x = b.x;
  p.y = b.y;
  p.weight = b.weight.data;
  p.rows = ROWS;
  p.hidden = HIDDEN;
  p.eps = 1e-6f;
  p.dtype = p.weight_dtype = LK_DTYPE_F32;
  CHECK_STATUS(lk_rms_norm(context, &p), LK_OK);
  CHECK_INVALID(lk_fused_add_rms_norm(context, &p), "residual");
  p.residual = b.residual;
  CHECK_INVALID(lk_rms_norm(context, &p), "residual");
  CHECK_STATUS(lk_fused_add_rms_norm(context, &p), LK_OK);
  CHECK_INVALID(lk_rms_norm(context, NULL), "params");
  CHECK_INVALID(lk_fused_add_rms_norm(context, NULL), "params");
  buffers_free(&b);
}

typedef struct extent_probe {
  const char *what;
  lk_norm_kind kind;
  lk_norm_residual mode;
  lk_dtype dtype;
  int64_t rows, hidden, x_stride, residual_stride, y_stride;
} extent_probe;

enum { PROBE_EXIT_BASE = 32 };

static int run_extent_probe(void *arg) {
  const extent_probe *probe = arg;
  static uint16_t x[64], residual[64], y[64], weight[64], bias[64];
  lk_cpu_context *context = NULL;
  lk_cpu_options options = {1, LK_ISA_AUTO};
  if (lk_cpu_context_create(&options, &context) != LK_OK) return 100;
  lk_norm_params p;
  memset(&p, 0, sizeof p);
  p.x = x;
  p.residual = probe->mode != LK_NORM_RESIDUAL_NONE ? residual : NULL;
  p.y = y;
  p.weight = weight;
  p.bias = probe->kind == LK_NORM_LAYER ? bias : NULL;
  p.rows = probe->rows;
  p.hidden = probe->hidden;
  p.x_stride = probe->x_stride;
  p.residual_stride = probe->residual_stride;
  p.y_stride = probe->y_stride;
  p.eps = 1e-6f;
  p.kind = probe->kind;
  p.residual_mode = probe->mode;
  p.dtype = probe->dtype;
  p.weight_dtype = probe->dtype;
  lk_status status = lk_norm(context, &p);
  const char *message = lk_last_error();
  bool named = message_names(message, "rows") || message_names(message, "hidden") ||
               message_names(message, "x_stride") || message_names(message, "residual_stride") ||
               message_names(message, "y_stride");
  lk_cpu_context_destroy(context);
  return PROBE_EXIT_BASE + (int)status * 2 + (named ? 0 : 1);
}

static void test_impossible_extents(void) {
  static const extent_probe probes[] = {
      {"LAYER rows = INT64_MAX", LK_NORM_LAYER, LK_NORM_RESIDUAL_NONE, LK_DTYPE_F32, INT64_MAX, 1, 0, 0, 0},
      {"LAYER hidden = 2^62", LK_NORM_LAYER, LK_NORM_RESIDUAL_PRE, LK_DTYPE_F32, 1, (int64_t)1 << 62, 0, 0, 0},
      {"RMS POST residual_stride = INT64_MAX / 3", LK_NORM_RMS, LK_NORM_RESIDUAL_POST, LK_DTYPE_F16, 4, 4, 0, INT64_MAX / 3, 0},
      {"LAYER POST x_stride = INT64_MAX", LK_NORM_LAYER, LK_NORM_RESIDUAL_POST, LK_DTYPE_BF16, 2, 4, INT64_MAX, 0, 0},
  };
  const int expected = PROBE_EXIT_BASE + (int)LK_ERR_INVALID_ARGUMENT * 2;
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
    isolated_outcome outcome = run_isolated(run_extent_probe, (void *)&probes[i]);
    CHECKF(outcome.exited && outcome.exit_code == expected, "%s: expected LK_ERR_INVALID_ARGUMENT naming a size; got %s (exit %d)",
           probes[i].what, isolated_describe(outcome), outcome.exit_code);
  }
}

static void test_struct_layout(void) {
  static const char *name = "lk_norm_params";
  CHECKF(lk_struct_size(name) == (int64_t)sizeof(lk_norm_params), "size %lld, expected %zu",
         (long long)lk_struct_size(name), sizeof(lk_norm_params));
#define FIELD(field)                                                                                      \
  CHECKF(lk_struct_field_offset(name, #field) == (int64_t)offsetof(lk_norm_params, field),                \
         "offset of " #field " is %lld, expected %zu", (long long)lk_struct_field_offset(name, #field), \
         offsetof(lk_norm_params, field))
  FIELD(x);
  FIELD(residual);
  FIELD(y);
  FIELD(weight);
  FIELD(bias);
  FIELD(rows);
  FIELD(hidden);
  FIELD(x_stride);
  FIELD(residual_stride);
  FIELD(y_stride);
  FIELD(eps);
  FIELD(alpha);
  FIELD(flags);
  FIELD(kind);
  FIELD(residual_mode);
  FIELD(dtype);
  FIELD(weight_dtype);
#undef FIELD
}

int main(void) {
  isa_count = supported_isas(isas);
  for (int k = 0; k < isa_count; k++) {
    lk_cpu_options options = {1, isas[k]};
    if (!CHECK_STATUS(lk_cpu_context_create(&options, &contexts[k]), LK_OK)) return 1;
  }
  test_struct_layout();
  for (int k = 0; k < isa_count; k++) {
    check_context_push("isa %s", lk_isa_name(isas[k]));
    test_bad_arguments(contexts[k]);
    test_rms_entry_points(contexts[k]);
    check_context_pop();
  }
  test_zero_rows();
  test_impossible_extents();
  for (int k = 0; k < isa_count; k++) lk_cpu_context_destroy(contexts[k]);
  return check_summary("test_norm_arguments");
}
