/* RMSNorm with NaN and infinities in x and in the weight, on every ISA against the scalar
 * reference. The vector bf16 kernels skip the NaN fix-up of their output rounding when a row's
 * sum of squares and the whole weight are finite (checked per call once there are enough rows),
 * so this suite covers both sides of that decision: many rows (the weight is scanned) and few
 * rows (it is not), finite and non-finite weights, rows with NaN and infinite x, and outputs that
 * overflow to infinity. Every output must be NaN exactly where the reference's is, the same
 * infinity where the reference's is infinite, and close to it elsewhere. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

enum { HIDDEN = 300, BIG_X = 13 };

typedef struct special_case {
  const char *what;
  bool nonfinite_weight; /* NaN at 5 (all payload bits set where the dtype has them), +inf at 7, -inf at 9 */
  bool nonfinite_x;      /* row 3: NaN at 10; row 4: +inf at 11; row 5: 0 at 7 (0 * inf) */
  bool overflow;         /* weight 3e38 at BIG_X and a large x there: the output overflows */
} special_case;

static const special_case cases[] = {
    {"finite", false, false, false},
    {"non-finite weight", true, false, false},
    {"non-finite x", false, true, false},
    {"non-finite weight and x", true, true, false},
    {"overflow to infinity", false, false, true},
};

static void fill(const special_case *c, lk_dtype dtype, lk_dtype weight_dtype, int64_t rows, void *x, void *residual,
                 void *weight, rng *random) {
  for (int64_t i = 0; i < rows * HIDDEN; i++) {
    tensor_store(dtype, x, i, rng_uniform(random, -1.0f, 1.0f));
    tensor_store(dtype, residual, i, rng_uniform(random, -0.5f, 0.5f));
  }
  for (int64_t i = 0; i < HIDDEN; i++) tensor_store(weight_dtype, weight, i, rng_uniform(random, 0.5f, 1.5f));
  if (c->nonfinite_weight) {
    /* A NaN whose low mantissa bits are all ones: adding the rounding bias to it carries into
     * the sign bit, so only a correct NaN fix-up keeps the output NaN. */
    tensor_store(weight_dtype, weight, 5, f32_from_bits(0x7fffffffu));
    tensor_store(weight_dtype, weight, 7, INFINITY);
    tensor_store(weight_dtype, weight, 9, -INFINITY);
  }
  if (c->nonfinite_x) {
    tensor_store(dtype, x, 3 * HIDDEN + 10, NAN);
    tensor_store(dtype, x, 4 * HIDDEN + 11, INFINITY);
    tensor_store(dtype, x, 5 * HIDDEN + 7, 0.0f);
    tensor_store(dtype, residual, 5 * HIDDEN + 7, 0.0f);
  }
  if (c->overflow) {
    /* f16 tops out at 65504: scale the weight to the dtype's range so the output overflows. */
    float huge = weight_dtype == LK_DTYPE_F16 ? 6e4f : 3e38f;
    tensor_store(weight_dtype, weight, BIG_X, huge);
    for (int64_t r = 0; r < rows; r++) tensor_store(dtype, x, r * HIDDEN + BIG_X, 50.0f);
  }
}

/* out's element agrees with the reference's: same NaN-ness, same infinity, else within a few
 * output ulps (the variants sum squares in different orders). */
static bool agrees(lk_dtype dtype, float got, float want) {
  if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
  if (isinf(want) || isinf(got)) return got == want;
  return fabs((double)got - (double)want) <= 4.0 * dtype_ulp(dtype, want) + 1e-6 * fabs((double)want);
}

static void run_case(const special_case *c, lk_cpu_context *reference, lk_cpu_context *context, const char *isa,
                     lk_dtype dtype, lk_dtype weight_dtype, bool fused, int64_t rows) {
  size_t bytes = (size_t)(rows * HIDDEN) * dtype_size(dtype);
  void *x = malloc(bytes), *residual_ref = malloc(bytes), *residual = malloc(bytes), *y_ref = malloc(bytes),
       *y = malloc(bytes), *weight = malloc((size_t)HIDDEN * 4);
  rng random = rng_seeded(0x5eed0000u + (uint64_t)rows);
  fill(c, dtype, weight_dtype, rows, x, residual_ref, weight, &random);
  memcpy(residual, residual_ref, bytes);
  tensor_poison(dtype, y_ref, rows * HIDDEN);
  tensor_poison(dtype, y, rows * HIDDEN);

  lk_rms_norm_params p;
  memset(&p, 0, sizeof p);
  p.x = x;
  p.weight = weight;
  p.rows = rows;
  p.hidden = HIDDEN;
  p.eps = 1e-6f;
  p.dtype = dtype;
  p.weight_dtype = weight_dtype;
  p.y = y_ref;
  p.residual = fused ? residual_ref : NULL;
  lk_status s_ref = fused ? lk_fused_add_rms_norm(reference, &p) : lk_rms_norm(reference, &p);
  p.y = y;
  p.residual = fused ? residual : NULL;
  lk_status s = fused ? lk_fused_add_rms_norm(context, &p) : lk_rms_norm(context, &p);

  check_context_push("%s, %s, %s x / %s weight, %s, rows %lld", c->what, isa, dtype_label(dtype),
                     dtype_label(weight_dtype), fused ? "fused" : "plain", (long long)rows);
  if (CHECK(s_ref == LK_OK) && CHECK(s == LK_OK)) {
    int64_t mismatches = 0, first = -1;
    for (int64_t i = 0; i < rows * HIDDEN; i++) {
      bool ok = agrees(dtype, tensor_load(dtype, y, i), tensor_load(dtype, y_ref, i));
      if (fused) ok = ok && tensor_bits(dtype, residual, i) == tensor_bits(dtype, residual_ref, i);
      if (!ok && mismatches++ == 0) first = i;
    }
    CHECKF(mismatches == 0, "%lld elements differ from the scalar reference; first at row %lld, column %lld: "
                            "got %g, want %g", (long long)mismatches, (long long)(first / HIDDEN),
           (long long)(first % HIDDEN), first >= 0 ? tensor_load(dtype, y, first) : 0.0,
           first >= 0 ? tensor_load(dtype, y_ref, first) : 0.0);
    if (c->overflow)
      CHECKF(isinf(tensor_load(dtype, y_ref, BIG_X)), "the overflow case must overflow in the reference too");
    if (c->nonfinite_weight)
      CHECKF(isnan(tensor_load(dtype, y_ref, 5)), "NaN weight must give a NaN output");
  }
  check_context_pop();
  free(x);
  free(residual_ref);
  free(residual);
  free(y_ref);
  free(y);
  free(weight);
}

int main(void) {
  static const lk_dtype dtypes[] = {LK_DTYPE_BF16, LK_DTYPE_F16, LK_DTYPE_F32};
  lk_cpu_options scalar_options = {1, LK_ISA_SCALAR};
  lk_cpu_context *reference = NULL;
  if (!CHECK(lk_cpu_context_create(&scalar_options, &reference) == LK_OK)) return check_summary("rms_norm_special_values");
  uint32_t supported = lk_cpu_supported_isas();
  for (int isa = LK_ISA_AVX2; isa <= LK_ISA_AVX512; isa++) {
    if (!(supported & (1u << isa))) {
      check_skip(lk_isa_name((lk_isa)isa), "not supported by this CPU");
      continue;
    }
    lk_cpu_options options = {2, (lk_isa)isa};
    lk_cpu_context *context = NULL;
    if (!CHECK(lk_cpu_context_create(&options, &context) == LK_OK)) continue;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
      for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++)
        for (int weight_f32 = 0; weight_f32 < 2; weight_f32++)
          for (int fused = 0; fused < 2; fused++)
            for (int64_t rows = 8; rows <= 64; rows *= 8) /* below and above the weight-scan threshold */
              run_case(&cases[c], reference, context, lk_isa_name((lk_isa)isa), dtypes[d],
                       weight_f32 ? LK_DTYPE_F32 : dtypes[d], fused != 0, rows);
    lk_cpu_context_destroy(context);
  }
  lk_cpu_context_destroy(reference);
  return check_summary("rms_norm_special_values");
}
