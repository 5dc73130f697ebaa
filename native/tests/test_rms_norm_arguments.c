/* lk_rms_norm and lk_fused_add_rms_norm as a contract rather than as numerics (those are in
 * test_rms_norm.c): every invalid argument is refused with LK_ERR_INVALID_ARGUMENT and a
 * message naming it, before anything is written; the aliasing rules (only y == x, and in the
 * fused form y == residual, with equal strides); extents too large to exist; rows == 0; and
 * the params layout the library reports for the bindings. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_harness.h"

typedef enum rms_form { FORM_PLAIN, FORM_FUSED } rms_form;

static const rms_form forms[] = {FORM_PLAIN, FORM_FUSED};
static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};
static lk_cpu_context *contexts[3]; /* one per ISA this CPU runs, one thread each */
static lk_isa isas[3];
static int isa_count;

static lk_status call_kernel(rms_form form, lk_cpu_context *context, const lk_rms_norm_params *p) {
  return form == FORM_FUSED ? lk_fused_add_rms_norm(context, p) : lk_rms_norm(context, p);
}

/* ---- bad arguments -------------------------------------------------------------------------- */

typedef struct bad_call_buffers {
  guarded_buffer arena; /* x, residual and y carved out of one buffer, so overlaps can be built */
  guarded_buffer weight;
  guarded_buffer weight_f32;
  guarded_buffer elsewhere; /* a tensor's worth of memory apart from the arena */
  uint8_t *x;
  uint8_t *residual;
  uint8_t *y;
} bad_call_buffers;

enum { BAD_ROWS = 4, BAD_HIDDEN = 32 };

static bad_call_buffers bad_call_buffers_alloc(lk_dtype dtype) {
  bad_call_buffers b;
  size_t tensor_bytes = (size_t)BAD_ROWS * BAD_HIDDEN * dtype_size(dtype);
  b.arena = guarded_alloc(3 * tensor_bytes, GUARD_EDGE_END);
  b.weight = guarded_alloc(BAD_HIDDEN * dtype_size(dtype), GUARD_EDGE_END);
  b.weight_f32 = guarded_alloc(BAD_HIDDEN * sizeof(float), GUARD_EDGE_END);
  b.elsewhere = guarded_alloc(tensor_bytes, GUARD_EDGE_END);
  b.x = b.arena.data;
  b.residual = b.x + tensor_bytes;
  b.y = b.residual + tensor_bytes;
  for (int i = 0; i < 3 * BAD_ROWS * BAD_HIDDEN; i++) tensor_store(dtype, b.arena.data, i, 0.5f);
  for (int i = 0; i < BAD_HIDDEN; i++) {
    tensor_store(dtype, b.weight.data, i, 1.0f);
    tensor_store(LK_DTYPE_F32, b.weight_f32.data, i, 1.0f);
  }
  return b;
}

static void bad_call_buffers_free(bad_call_buffers *b) {
  guarded_free(&b->arena);
  guarded_free(&b->weight);
  guarded_free(&b->weight_f32);
  guarded_free(&b->elsewhere);
}

static lk_rms_norm_params valid_params(const bad_call_buffers *b, rms_form form, lk_dtype dtype) {
  lk_rms_norm_params p;
  memset(&p, 0, sizeof p);
  p.x = b->x;
  p.residual = form == FORM_FUSED ? b->residual : NULL;
  p.y = b->y;
  p.weight = b->weight.data;
  p.rows = BAD_ROWS;
  p.hidden = BAD_HIDDEN;
  p.eps = 1e-6f;
  p.dtype = dtype;
  p.weight_dtype = dtype;
  return p;
}

/* A rejected call must not have written y or residual: poison them, call, look. */
static void expect_rejected(rms_form form, lk_cpu_context *context, const lk_rms_norm_params *p,
                            bad_call_buffers *b, lk_dtype dtype, const char *name, const char *what) {
  int64_t tensor = (int64_t)BAD_ROWS * BAD_HIDDEN;
  tensor_poison(dtype, b->residual, tensor);
  tensor_poison(dtype, b->y, tensor);
  check_context_push("%s: %s", form == FORM_FUSED ? "lk_fused_add_rms_norm" : "lk_rms_norm", what);
  CHECK_INVALID(call_kernel(form, context, p), name);
  int64_t written = 0;
  for (int64_t i = 0; i < tensor; i++)
    written += !tensor_is_poison(dtype, b->residual, i) + !tensor_is_poison(dtype, b->y, i);
  CHECKF(written == 0, "a rejected call wrote %lld elements of y or residual", (long long)written);
  check_context_pop();
}

/* rows == 0 is a valid call that touches nothing, on every ISA. */
static void test_zero_rows(void) {
  for (size_t d = 0; d < 3; d++)
    for (size_t f = 0; f < 2; f++) {
      bad_call_buffers b = bad_call_buffers_alloc(dtypes[d]);
      lk_rms_norm_params p = valid_params(&b, forms[f], dtypes[d]);
      p.rows = 0;
      int64_t tensor = (int64_t)BAD_ROWS * BAD_HIDDEN;
      for (int k = 0; k < isa_count; k++) {
        tensor_poison(dtypes[d], b.residual, tensor);
        tensor_poison(dtypes[d], b.y, tensor);
        CHECK_STATUS(call_kernel(forms[f], contexts[k], &p), LK_OK);
        int64_t touched = 0;
        for (int64_t i = 0; i < tensor; i++)
          touched += !tensor_is_poison(dtypes[d], b.y, i) + !tensor_is_poison(dtypes[d], b.residual, i);
        CHECKF(touched == 0, "rows == 0 on %s (%s) wrote %lld elements", lk_isa_name(isas[k]),
               dtype_label(dtypes[d]), (long long)touched);
      }
      bad_call_buffers_free(&b);
    }
}

/* Validation is shared by the ISA variants today; each is still asked, so one added later with
 * its own checks (or a dispatch that skips them) is caught too. */
static void test_bad_arguments(lk_cpu_context *context) {
  for (size_t d = 0; d < 3; d++)
    for (size_t f = 0; f < 2; f++) {
      lk_dtype dtype = dtypes[d];
      rms_form form = forms[f];
      bad_call_buffers b = bad_call_buffers_alloc(dtype);
      size_t element_bytes = dtype_size(dtype);
      const lk_rms_norm_params good = valid_params(&b, form, dtype);
      lk_rms_norm_params p;
      check_context_push("dtype %s", dtype_label(dtype));

      p = good;
      CHECK_STATUS(call_kernel(form, context, &p), LK_OK); /* the baseline is valid */
      p.weight = b.weight_f32.data;
      p.weight_dtype = LK_DTYPE_F32; /* and so is an f32 weight with any dtype */
      CHECK_STATUS(call_kernel(form, context, &p), LK_OK);
      /* y starting right after x's last element touches nothing of x */
      p = good;
      p.y = b.x + (size_t)BAD_ROWS * BAD_HIDDEN * element_bytes;
      p.residual = form == FORM_FUSED ? b.y : NULL;
      CHECK_STATUS(call_kernel(form, context, &p), LK_OK);

      p = good;
      expect_rejected(form, NULL, &p, &b, dtype, "context", "NULL context");
      check_context_push("NULL params");
      CHECK_INVALID(call_kernel(form, context, NULL), "params");
      check_context_pop();

      p = good; p.x = NULL;
      expect_rejected(form, context, &p, &b, dtype, "x", "NULL x");
      p = good; p.y = NULL;
      expect_rejected(form, context, &p, &b, dtype, "y", "NULL y");
      p = good; p.weight = NULL;
      expect_rejected(form, context, &p, &b, dtype, "weight", "NULL weight");
      if (form == FORM_FUSED) {
        p = good; p.residual = NULL;
        expect_rejected(form, context, &p, &b, dtype, "residual", "NULL residual");
      }

      p = good; p.rows = -1;
      expect_rejected(form, context, &p, &b, dtype, "rows", "rows = -1");
      p = good; p.rows = INT64_MIN;
      expect_rejected(form, context, &p, &b, dtype, "rows", "rows = INT64_MIN");
      p = good; p.hidden = 0;
      expect_rejected(form, context, &p, &b, dtype, "hidden", "hidden = 0");
      p = good; p.hidden = -5;
      expect_rejected(form, context, &p, &b, dtype, "hidden", "hidden = -5");

      p = good; p.x_stride = BAD_HIDDEN - 1;
      expect_rejected(form, context, &p, &b, dtype, "x_stride", "x_stride < hidden");
      p = good; p.x_stride = -BAD_HIDDEN;
      expect_rejected(form, context, &p, &b, dtype, "x_stride", "x_stride < 0");
      p = good; p.y_stride = 1;
      expect_rejected(form, context, &p, &b, dtype, "y_stride", "y_stride < hidden");
      if (form == FORM_FUSED) {
        p = good; p.residual_stride = BAD_HIDDEN - 1;
        expect_rejected(form, context, &p, &b, dtype, "residual_stride", "residual_stride < hidden");
      }

      p = good; p.dtype = (lk_dtype)7;
      expect_rejected(form, context, &p, &b, dtype, "dtype", "dtype = 7");
      p = good; p.weight_dtype = (lk_dtype)7;
      expect_rejected(form, context, &p, &b, dtype, "weight_dtype", "weight_dtype = 7");
      if (dtype != LK_DTYPE_F32) { /* the other 16-bit type is neither dtype nor F32 */
        p = good; p.weight_dtype = dtype == LK_DTYPE_F16 ? LK_DTYPE_BF16 : LK_DTYPE_F16;
        expect_rejected(form, context, &p, &b, dtype, "weight_dtype", "weight_dtype of the other 16-bit type");
      } else {
        p = good; p.weight_dtype = LK_DTYPE_F16;
        expect_rejected(form, context, &p, &b, dtype, "weight_dtype", "f32 dtype with f16 weight_dtype");
      }

      p = good; p.flags = 2u;
      expect_rejected(form, context, &p, &b, dtype, "flags", "flags = 2");
      p = good; p.flags = LK_NORM_WEIGHT_OFFSET_ONE | 0x80000000u;
      expect_rejected(form, context, &p, &b, dtype, "flags", "flags with bit 31");

      p = good; p.eps = -1e-6f;
      expect_rejected(form, context, &p, &b, dtype, "eps", "eps < 0");
      p = good; p.eps = NAN;
      expect_rejected(form, context, &p, &b, dtype, "eps", "eps NaN");

      /* Partial overlaps: only exact aliasing (y == x, fused y == residual) is allowed. */
      p = good; p.y = b.x + element_bytes;
      CHECK_INVALID(call_kernel(form, context, &p), "y|x");
      p = good; p.y = b.x + element_bytes * (BAD_HIDDEN * BAD_ROWS - 1); /* y's first element is x's last */
      CHECK_INVALID(call_kernel(form, context, &p), "y|x");
      p = good; p.x = b.y + element_bytes; /* x starts inside y (one row less keeps x in the arena) */
      p.rows = BAD_ROWS - 1;
      expect_rejected(form, context, &p, &b, dtype, "y|x", "x starts one element into y");
      if (form == FORM_FUSED) {
        p = good; p.residual = (uint8_t *)b.x; /* x and residual may not alias at all */
        CHECK_INVALID(call_kernel(form, context, &p), "residual|x");
        p = good; p.residual = b.x + element_bytes;
        CHECK_INVALID(call_kernel(form, context, &p), "residual|x");
        p = good; p.y = b.residual + element_bytes;
        CHECK_INVALID(call_kernel(form, context, &p), "y|residual");
        p = good; p.residual = b.y + element_bytes;
        CHECK_INVALID(call_kernel(form, context, &p), "y|residual");
      }
      p = good; p.y = b.x; p.y_stride = 2 * BAD_HIDDEN; /* in place needs equal strides too */
      CHECK_INVALID(call_kernel(form, context, &p), "y|x");
      p = good; p.y = b.weight.data; /* y may not overwrite the weight it reads */
      p.rows = 1;
      CHECK_INVALID(call_kernel(form, context, &p), "y|weight");
      if (form == FORM_FUSED) {
        p = good; p.residual = b.weight.data;
        p.rows = 1;
        CHECK_INVALID(call_kernel(form, context, &p), "residual|weight");
      } else {
        p = good; p.residual = b.residual; /* the residual belongs to the fused form only */
        expect_rejected(form, context, &p, &b, dtype, "residual", "a residual passed to lk_rms_norm");
      }
      /* x's stride carries its second row onto y's first: an overlap only the strides reveal */
      p = good;
      p.rows = 2;
      p.x_stride = (int64_t)(b.y - b.x) / (int64_t)element_bytes;
      p.residual = form == FORM_FUSED ? b.elsewhere.data : NULL;
      CHECK_INVALID(call_kernel(form, context, &p), "y|x");

      /* A failure sets lk_last_error; a later success leaves a usable string. */
      p = good; p.hidden = 0;
      call_kernel(form, context, &p);
      CHECK(lk_last_error() != NULL && lk_last_error()[0] != '\0');
      p = good;
      CHECK_STATUS(call_kernel(form, context, &p), LK_OK);
      CHECK(lk_last_error() != NULL);

      check_context_pop();
      bad_call_buffers_free(&b);
    }
}

/* Extents whose size in bytes overflows 64 bits describe no buffer that can exist: the call is
 * invalid, and must say so rather than compute a wrapped span (signed overflow, undefined in C)
 * and run over it. Each probe runs in a child process so that a crash is reported as such. */
typedef struct extent_probe {
  const char *what;
  rms_form form;
  lk_dtype dtype;
  int64_t rows, hidden, x_stride, residual_stride, y_stride;
} extent_probe;

/* Exit codes of a probe that returned: clear of 1 (a sanitizer's abort) and of small codes. */
enum { PROBE_EXIT_BASE = 32 };

static int run_extent_probe(void *arg) {
  const extent_probe *probe = arg;
  static uint16_t x[64], residual[64], y[64], weight[64]; /* never reached: the call must refuse */
  lk_cpu_context *context = NULL;
  lk_cpu_options options = {1, LK_ISA_AUTO};
  if (lk_cpu_context_create(&options, &context) != LK_OK) return 100;
  lk_rms_norm_params p;
  memset(&p, 0, sizeof p);
  p.x = x;
  p.residual = probe->form == FORM_FUSED ? residual : NULL;
  p.y = y;
  p.weight = weight;
  p.rows = probe->rows;
  p.hidden = probe->hidden;
  p.x_stride = probe->x_stride;
  p.residual_stride = probe->residual_stride;
  p.y_stride = probe->y_stride;
  p.eps = 1e-6f;
  p.dtype = probe->dtype;
  p.weight_dtype = probe->dtype;
  lk_status status = call_kernel(probe->form, context, &p);
  const char *message = lk_last_error();
  bool named = message_names(message, "rows") || message_names(message, "hidden") ||
               message_names(message, "x_stride") || message_names(message, "residual_stride") ||
               message_names(message, "y_stride");
  lk_cpu_context_destroy(context);
  return PROBE_EXIT_BASE + (int)status * 2 + (named ? 0 : 1);
}

static void test_impossible_extents(void) {
  static const extent_probe probes[] = {
      {"rows = INT64_MAX, hidden = 1 (f32)", FORM_PLAIN, LK_DTYPE_F32, INT64_MAX, 1, 0, 0, 0},
      {"rows = 2^61, hidden = 4 (f16)", FORM_PLAIN, LK_DTYPE_F16, (int64_t)1 << 61, 4, 0, 0, 0},
      {"hidden = 2^62 (f32)", FORM_PLAIN, LK_DTYPE_F32, 1, (int64_t)1 << 62, 0, 0, 0},
      {"rows = 2, x_stride = INT64_MAX", FORM_PLAIN, LK_DTYPE_F32, 2, 4, INT64_MAX, 0, 0},
      {"rows = 3, y_stride = INT64_MAX / 2", FORM_PLAIN, LK_DTYPE_BF16, 3, 4, 0, 0, INT64_MAX / 2},
      {"fused, rows = 4, residual_stride = INT64_MAX / 3", FORM_FUSED, LK_DTYPE_F16, 4, 4, 0, INT64_MAX / 3, 0},
  };
  const int expected = PROBE_EXIT_BASE + (int)LK_ERR_INVALID_ARGUMENT * 2;
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
    isolated_outcome outcome = run_isolated(run_extent_probe, (void *)&probes[i]);
    char got[160];
    int returned = outcome.exit_code - PROBE_EXIT_BASE;
    if (outcome.exited && returned >= 0 && returned / 2 <= (int)LK_ERR_INTERNAL)
      snprintf(got, sizeof got, "returned %s%s", lk_status_name((lk_status)(returned / 2)),
               returned / 2 != (int)LK_OK && returned % 2 ? " with a message naming no size argument" : "");
    else
      snprintf(got, sizeof got, "%s", isolated_describe(outcome));
    CHECKF(outcome.exited && outcome.exit_code == expected,
           "%s: expected LK_ERR_INVALID_ARGUMENT naming a size; the call %s", probes[i].what, got);
  }
}

/* The layout the library was built with is the layout this test was compiled with. */
static void test_struct_layout(void) {
  static const char *name = "lk_rms_norm_params";
  CHECKF(lk_struct_size(name) == (int64_t)sizeof(lk_rms_norm_params), "size %lld, expected %zu",
         (long long)lk_struct_size(name), sizeof(lk_rms_norm_params));
#define FIELD(field)                                                                                      \
  CHECKF(lk_struct_field_offset(name, #field) == (int64_t)offsetof(lk_rms_norm_params, field),            \
         "offset of " #field " is %lld, expected %zu", (long long)lk_struct_field_offset(name, #field), \
         offsetof(lk_rms_norm_params, field))
  FIELD(x);
  FIELD(residual);
  FIELD(y);
  FIELD(weight);
  FIELD(rows);
  FIELD(hidden);
  FIELD(x_stride);
  FIELD(residual_stride);
  FIELD(y_stride);
  FIELD(eps);
  FIELD(flags);
  FIELD(dtype);
  FIELD(weight_dtype);
#undef FIELD
  CHECK(lk_struct_field_offset(name, "no_such_field") == -1);
  CHECK(lk_struct_field_offset(name, "") == -1);
  CHECK(lk_struct_field_offset("lk_no_such_params", "x") == -1);
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
    check_context_pop();
  }
  test_zero_rows();
  test_impossible_extents();
  for (int k = 0; k < isa_count; k++) lk_cpu_context_destroy(contexts[k]);
  return check_summary("test_rms_norm_arguments");
}
