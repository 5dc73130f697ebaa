/* lk_cuda_norm, lk_cuda_rms_norm and lk_cuda_fused_add_rms_norm against the CPU library's scalar
 * reference (which test_norm.c checks against float64): RMSNorm and LayerNorm x NONE / PRE / POST
 * x weight and bias present or not x Gemma's offset x every dtype and weight dtype, on ragged
 * hidden sizes (both sides of the vector width and of the shared-memory row cache), padded row
 * strides and misaligned bases (the element path), in place (y == x; PRE: y == residual).
 *
 * Checks, per case:
 *   - y within 1 ulp of the dtype (f32: 4e-6 relative) of the reference at each element's scale:
 *     the two differ only in the order of the row's sums;
 *   - PRE: the stored residual bit for bit (round(residual + x) is the same on both); POST and
 *     NONE: residual untouched;
 *   - the gaps between rows keep their poison (the whole buffers are compared);
 *   - the argument contract is the CPU's: a few invalid calls fail naming the argument, before any
 *     launch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_harness.h"
#include "test_harness.h"

typedef struct norm_case {
  lk_norm_kind kind;
  lk_norm_residual mode;
  bool weight, bias;
  uint32_t flags;
  float alpha;
  lk_dtype dtype, weight_dtype;
  int64_t rows, hidden, pad; /* strides are hidden + pad */
  int64_t offset;            /* elements the bases are moved by: 1 breaks 16-byte alignment */
  int in_place;              /* 0; 1: y == x; 2: y == residual (PRE) */
} norm_case;

static void fill(rng *r, lk_dtype dtype, void *base, int64_t count, float lo, float hi) {
  for (int64_t i = 0; i < count; i++) tensor_store(dtype, base, i, rng_uniform(r, lo, hi));
}

/* |got - want| within the tolerance at want's scale: 16-bit, 1 ulp of the dtype (the statistics'
 * last bits move a rounding boundary); f32, 4e-6 relative plus 2e-6 of the row's largest |y| (a
 * LayerNorm output near 0 carries the mean's rounding at the row's scale). */
static bool close_enough(lk_dtype dtype, float got, float want, double row_max) {
  if (isnan(want)) return isnan(got);
  const double scale = fabs((double)want) > 1e-3 ? fabs((double)want) : 1e-3;
  const double tolerance = dtype == LK_DTYPE_F32 ? 4e-6 * scale + 2e-6 * row_max : dtype_ulp(dtype, scale);
  return fabs((double)got - (double)want) <= tolerance;
}

static void run_case(const norm_case *c, uint64_t seed) {
  check_context_push("kind %d mode %d weight %d bias %d flags %u dtype %s weight %s rows %lld hidden %lld pad %lld offset %lld in_place %d",
                     (int)c->kind, (int)c->mode, (int)c->weight, (int)c->bias, (unsigned)c->flags, dtype_label(c->dtype),
                     dtype_label(c->weight_dtype), (long long)c->rows, (long long)c->hidden, (long long)c->pad,
                     (long long)c->offset, c->in_place);
  rng r = rng_seeded(seed);
  const size_t es = dtype_size(c->dtype), ws = dtype_size(c->weight_dtype);
  const int64_t stride = c->hidden + c->pad;
  const int64_t elements = c->offset + (c->rows - 1) * stride + c->hidden;
  const size_t bytes = (size_t)elements * es;
  const bool has_residual = c->mode != LK_NORM_RESIDUAL_NONE;

  unsigned char *x = malloc(bytes), *residual = malloc(bytes), *y = malloc(bytes);
  unsigned char *weight = malloc((size_t)c->hidden * ws), *bias = malloc((size_t)c->hidden * ws);
  tensor_poison(c->dtype, x, elements);
  tensor_poison(c->dtype, residual, elements);
  tensor_poison(c->dtype, y, elements);
  for (int64_t row = 0; row < c->rows; row++) {
    fill(&r, c->dtype, x + (size_t)(c->offset + row * stride) * es, c->hidden, -2.0f, 2.0f);
    fill(&r, c->dtype, residual + (size_t)(c->offset + row * stride) * es, c->hidden, -1.0f, 3.0f);
  }
  fill(&r, c->weight_dtype, weight, c->hidden, -1.5f, 1.5f);
  fill(&r, c->weight_dtype, bias, c->hidden, -0.5f, 0.5f);

  unsigned char *d_x = device_mirror(x, bytes), *d_residual = device_mirror(residual, bytes), *d_y = device_mirror(y, bytes);
  void *d_weight = device_mirror(weight, (size_t)c->hidden * ws), *d_bias = device_mirror(bias, (size_t)c->hidden * ws);

  lk_norm_params p;
  memset(&p, 0, sizeof p);
  p.rows = c->rows;
  p.hidden = c->hidden;
  p.x_stride = p.residual_stride = p.y_stride = stride;
  p.eps = 1e-5f;
  p.alpha = c->alpha;
  p.flags = c->flags;
  p.kind = c->kind;
  p.residual_mode = c->mode;
  p.dtype = c->dtype;
  p.weight_dtype = c->weight_dtype;

  /* the reference, on the host copies */
  lk_norm_params h = p;
  h.x = x + c->offset * es;
  h.residual = has_residual ? residual + c->offset * es : NULL;
  h.y = (c->in_place == 1 ? x : c->in_place == 2 ? residual : y) + c->offset * es;
  h.weight = c->weight ? weight : NULL;
  h.bias = c->bias ? bias : NULL;
  CHECK_STATUS(lk_norm(reference_context(), &h), LK_OK);

  lk_norm_params d = p;
  d.x = d_x + c->offset * es;
  d.residual = has_residual ? d_residual + c->offset * es : NULL;
  d.y = (c->in_place == 1 ? d_x : c->in_place == 2 ? d_residual : d_y) + c->offset * es;
  d.weight = c->weight ? d_weight : NULL;
  d.bias = c->bias ? d_bias : NULL;
  CHECK_STATUS(lk_cuda_norm(cuda_test_stream(), &d), LK_OK);
  cuda_test_sync();

  unsigned char *got_x = malloc(bytes), *got_residual = malloc(bytes), *got_y = malloc(bytes);
  host_from_device(got_x, d_x, bytes);
  host_from_device(got_residual, d_residual, bytes);
  host_from_device(got_y, d_y, bytes);

  /* y where the case put it; every other byte of the three buffers as the reference left it */
  const unsigned char *want_y = c->in_place == 1 ? x : c->in_place == 2 ? residual : y;
  const unsigned char *got_yv = c->in_place == 1 ? got_x : c->in_place == 2 ? got_residual : got_y;
  int64_t bad = 0;
  for (int64_t row = 0; row < c->rows; row++) {
    double row_max = 0.0;
    for (int64_t i = 0; i < c->hidden; i++) row_max = fmax(row_max, fabs((double)tensor_load(c->dtype, want_y, c->offset + row * stride + i)));
    for (int64_t i = 0; i < c->hidden; i++) {
      const int64_t e = c->offset + row * stride + i;
      const float want = tensor_load(c->dtype, want_y, e), got = tensor_load(c->dtype, got_yv, e);
      if (!close_enough(c->dtype, got, want, row_max) && bad++ < 3)
        CHECKF(false, "y[%lld][%lld]: %.9g, reference %.9g", (long long)row, (long long)i, (double)got, (double)want);
    }
  }
  CHECKF(bad == 0, "%lld elements of y outside the tolerance", (long long)bad);
  /* the residual (PRE: written, bit for bit) and everything outside y, bit for bit */
  const unsigned char *buffers_want[3] = {x, residual, y}, *buffers_got[3] = {got_x, got_residual, got_y};
  const unsigned char *y_buffer = want_y;
  for (int b = 0; b < 3; b++) {
    int64_t differing = 0;
    for (int64_t e = 0; e < elements; e++) {
      if (buffers_want[b] == y_buffer) {
        const int64_t rel = e - c->offset;
        if (rel >= 0 && rel % stride < c->hidden && rel / stride < c->rows) continue; /* y itself, checked above */
      }
      differing += tensor_bits(c->dtype, buffers_want[b], e) != tensor_bits(c->dtype, buffers_got[b], e);
    }
    CHECKF(differing == 0, "%s: %lld elements differ from the reference's bits", b == 0 ? "x" : b == 1 ? "residual" : "y's buffer",
           (long long)differing);
  }

  device_free(d_x);
  device_free(d_residual);
  device_free(d_y);
  device_free(d_weight);
  device_free(d_bias);
  free(x);
  free(residual);
  free(y);
  free(weight);
  free(bias);
  free(got_x);
  free(got_residual);
  free(got_y);
  check_context_pop();
}

static void test_grid(void) {
  static const int64_t hiddens[] = {1, 7, 8, 33, 64, 257, 1000, 4096, 12288, 24576 + 8};
  const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};
  uint64_t seed = 1;
  for (int kind = 0; kind < 2; kind++)
    for (int mode = 0; mode < 3; mode++)
      for (int t = 0; t < 3; t++)
        for (int w32 = 0; w32 < 2; w32++) {
          if (w32 && dtypes[t] == LK_DTYPE_F32) continue;
          for (size_t hi = 0; hi < sizeof hiddens / sizeof hiddens[0]; hi++) {
            norm_case c;
            memset(&c, 0, sizeof c);
            c.kind = (lk_norm_kind)kind;
            c.mode = (lk_norm_residual)mode;
            c.dtype = dtypes[t];
            c.weight_dtype = w32 ? LK_DTYPE_F32 : dtypes[t];
            c.hidden = hiddens[hi];
            c.rows = c.hidden > 4096 ? 2 : 3;
            c.alpha = mode == LK_NORM_RESIDUAL_POST && hi % 2 ? 1.6817928f : 0.0f;
            /* the affine variants in turn: RMS needs a weight */
            const int variant = (int)(seed % 4);
            c.weight = kind == LK_NORM_RMS || variant != 0;
            c.bias = kind == LK_NORM_LAYER && variant >= 2;
            c.flags = c.weight && variant == 3 ? LK_NORM_WEIGHT_OFFSET_ONE : 0;
            /* layouts in turn: contiguous, padded rows, a misaligned base */
            c.pad = hi % 3 == 1 ? 8 : 0;
            c.offset = hi % 3 == 2 ? 1 : 0;
            c.in_place = (int)(seed % 3);
            if (c.in_place == 2 && mode != LK_NORM_RESIDUAL_PRE) c.in_place = 0;
            run_case(&c, seed++);
          }
        }
}

/* The CPU's checks, before any launch (so without a device too: the pointers are never read). */
static void test_arguments(void) {
  float dummy[64];
  void *d = dummy;
  lk_norm_params p;
  memset(&p, 0, sizeof p);
  p.x = d;
  p.y = d;
  p.weight = d;
  p.rows = 1;
  p.hidden = 16;
  p.eps = 1e-5f;
  p.dtype = LK_DTYPE_F32;
  p.weight_dtype = LK_DTYPE_F32;
  CHECK_INVALID(lk_cuda_norm(NULL, NULL), "params");
  lk_norm_params bad = p;
  bad.hidden = 0;
  CHECK_INVALID(lk_cuda_norm(NULL, &bad), "hidden");
  bad = p;
  bad.weight = NULL;
  CHECK_INVALID(lk_cuda_norm(NULL, &bad), "weight");
  bad = p;
  bad.x_stride = 8;
  CHECK_INVALID(lk_cuda_norm(NULL, &bad), "x_stride");
  bad = p;
  bad.residual_mode = LK_NORM_RESIDUAL_PRE;
  CHECK_INVALID(lk_cuda_norm(NULL, &bad), "residual");
  bad = p;
  bad.y = (float *)d + 1;
  CHECK_INVALID(lk_cuda_norm(NULL, &bad), "y");
  lk_rms_norm_params rms;
  memset(&rms, 0, sizeof rms);
  rms.x = d;
  rms.y = d;
  rms.weight = d;
  rms.rows = 1;
  rms.hidden = 16;
  rms.dtype = LK_DTYPE_F32;
  rms.weight_dtype = LK_DTYPE_F16;
  CHECK_INVALID(lk_cuda_rms_norm(NULL, &rms), "weight_dtype");
  rms.weight_dtype = LK_DTYPE_F32;
  CHECK_INVALID(lk_cuda_fused_add_rms_norm(NULL, &rms), "residual");
  CHECK_INVALID(lk_cuda_rms_norm(NULL, NULL), "params");
  /* rows 0 touches nothing: NULL pointers are fine */
  memset(&p, 0, sizeof p);
  p.hidden = 16;
  p.dtype = LK_DTYPE_BF16;
  p.weight_dtype = LK_DTYPE_BF16;
  CHECK_STATUS(lk_cuda_norm(NULL, &p), LK_OK);
}

/* lk_cuda_rms_norm and lk_cuda_fused_add_rms_norm are lk_cuda_norm of kind RMS, NONE and PRE. */
static void test_rms_entry_points(void) {
  enum { ROWS = 3, HIDDEN = 200 };
  float x[ROWS * HIDDEN], residual[ROWS * HIDDEN], w[HIDDEN], y[ROWS * HIDDEN], want[ROWS * HIDDEN];
  rng r = rng_seeded(99);
  fill(&r, LK_DTYPE_F32, x, ROWS * HIDDEN, -1, 1);
  fill(&r, LK_DTYPE_F32, residual, ROWS * HIDDEN, -1, 1);
  fill(&r, LK_DTYPE_F32, w, HIDDEN, -1, 1);
  float *d_x = device_mirror(x, sizeof x), *d_res = device_mirror(residual, sizeof residual), *d_w = device_mirror(w, sizeof w);
  float *d_y = device_poisoned(sizeof y);
  for (int fused = 0; fused < 2; fused++) {
    float host_residual[ROWS * HIDDEN];
    memcpy(host_residual, residual, sizeof residual);
    lk_rms_norm_params p = {x, fused ? host_residual : NULL, want, w, ROWS, HIDDEN, 0, 0, 0, 1e-6f, 0, LK_DTYPE_F32, LK_DTYPE_F32};
    CHECK_STATUS(fused ? lk_fused_add_rms_norm(reference_context(), &p) : lk_rms_norm(reference_context(), &p), LK_OK);
    lk_rms_norm_params d = {d_x, fused ? d_res : NULL, d_y, d_w, ROWS, HIDDEN, 0, 0, 0, 1e-6f, 0, LK_DTYPE_F32, LK_DTYPE_F32};
    CHECK_STATUS(fused ? lk_cuda_fused_add_rms_norm(cuda_test_stream(), &d) : lk_cuda_rms_norm(cuda_test_stream(), &d), LK_OK);
    host_from_device(y, d_y, sizeof y);
    int bad = 0;
    for (int i = 0; i < ROWS * HIDDEN; i++) bad += !close_enough(LK_DTYPE_F32, y[i], want[i], 1.0);
    CHECKF(bad == 0, "%s: %d elements differ", fused ? "lk_cuda_fused_add_rms_norm" : "lk_cuda_rms_norm", bad);
    if (fused) {
      float got_residual[ROWS * HIDDEN];
      host_from_device(got_residual, d_res, sizeof got_residual);
      CHECK(memcmp(got_residual, host_residual, sizeof got_residual) == 0);
    }
  }
  device_free(d_x);
  device_free(d_res);
  device_free(d_w);
  device_free(d_y);
}

int main(void) {
  const int devices = cuda_test_begin();
  run_timed("arguments", test_arguments);
  if (devices > 0) {
    run_timed("grid", test_grid);
    run_timed("rms entry points", test_rms_entry_points);
  }
  return cuda_test_finish("test_cuda_norm", devices);
}
