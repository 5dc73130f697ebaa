/* lk_apply_activation on every ISA x dtype x activation, against float64 and the scalar ISA:
 * every n from 1 to 257 and a few large ones (threads, streaming stores), x read-only and y on
 * guard-paged buffers ending at the guard page, in place (y == x) bit for bit like out of place
 * (a NaN may differ in payload), and 1 vs 2 threads bit for bit. Inputs over [-12, 12] with NaN
 * and infinities sprinkled in.
 *
 * 16-bit outputs: SiLU and GELU-tanh use cheaper f32 math when the output is bf16/f16
 * (docs/activations.md, "16-bit outputs"). Over every finite bf16 and f16 input, each ISA's output
 * is compared with the float64 reference rounded once to the dtype: never more than 1 ulp off (as
 * above), and the misrounded share (any output other than the correctly rounded one) is bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activation_reference.h"

static lk_cpu_context *contexts[3][3];
static lk_isa isas[3];
static int isa_count;

static bool same(lk_dtype dtype, const void *a, const void *b, int64_t i) {
  return tensor_bits(dtype, a, i) == tensor_bits(dtype, b, i) || (isnan(tensor_load(dtype, a, i)) && isnan(tensor_load(dtype, b, i)));
}

static void run_case(lk_dtype dtype, lk_activation act, int64_t n) {
  const size_t bytes = (size_t)n * dtype_size(dtype);
  guarded_buffer x = guarded_alloc(bytes, GUARD_EDGE_END), y = guarded_alloc(bytes, GUARD_EDGE_END);
  void *scalar_y = malloc(bytes), *again = malloc(bytes);
  rng r = rng_seeded(0xAC7ull + (uint64_t)n * 31 + (uint64_t)act);
  for (int64_t i = 0; i < n; i++) {
    float v = rng_uniform(&r, -12.0f, 12.0f);
    if (i % 23 == 7) v = (i / 23) % 3 == 0 ? NAN : (i / 23) % 3 == 1 ? INFINITY : -INFINITY;
    tensor_store(dtype, x.data, i, v);
  }
  guarded_make_read_only(&x);
  for (int k = 0; k < isa_count; k++) {
    check_context_push("isa %s dtype %s %s n %lld", lk_isa_name(isas[k]), dtype_label(dtype), activation_label(act),
                       (long long)n);
    tensor_poison(dtype, y.data, n);
    lk_activation_params p = {x.data, y.data, n, act, dtype};
    if (CHECK_STATUS(lk_apply_activation(contexts[k][1], &p), LK_OK)) {
      long bad = 0, off = 0;
      for (int64_t i = 0; i < n; i++) {
        double v = tensor_load(dtype, x.data, i), ref = activation_reference(act, v);
        float got = tensor_load(dtype, y.data, i);
        if (!activation_agrees(act, dtype, got, ref, 1.0) && bad++ == 0)
          CHECKF(false, "i %lld: x %a: got %a, want %a", (long long)i, v, (double)got, ref);
        if (k > 0) {
          float s = tensor_load(dtype, scalar_y, i);
          if (!(same(dtype, y.data, scalar_y, i) || fabs((double)s - got) <= 2 * activation_tolerance(act, dtype, ref, 1.0, ref)) &&
              off++ == 0)
            CHECKF(false, "i %lld: %a here, %a on scalar", (long long)i, (double)got, (double)s);
        }
      }
      CHECKF(bad == 0, "%ld elements off the float64 reference", bad);
      if (k == 0) memcpy(scalar_y, y.data, bytes);
      /* in place, and two threads */
      memcpy(again, x.data, bytes);
      lk_activation_params q = {again, again, n, act, dtype};
      if (CHECK_STATUS(lk_apply_activation(contexts[k][2], &q), LK_OK)) {
        long differ = 0;
        for (int64_t i = 0; i < n; i++) differ += !same(dtype, again, y.data, i);
        CHECKF(differ == 0, "in place on 2 threads differs in %ld elements", differ);
      }
    }
    check_context_pop();
  }
  guarded_free(&x);
  guarded_free(&y);
  free(scalar_y);
  free(again);
}

/* Every finite 16-bit input through act: how many outputs differ from the correctly rounded float64
 * reference (misroundings), and none by more than the tolerance. */
static void run_all_16bit(lk_dtype dtype, lk_activation act, double max_misrounded) {
  const int64_t n = 65536;
  uint16_t *x = malloc((size_t)n * 2), *y = malloc((size_t)n * 2);
  for (int64_t i = 0; i < n; i++) x[i] = (uint16_t)i;
  for (int k = 0; k < isa_count; k++) {
    check_context_push("all %s inputs, isa %s %s", dtype_label(dtype), lk_isa_name(isas[k]), activation_label(act));
    lk_activation_params p = {x, y, n, act, dtype};
    if (CHECK_STATUS(lk_apply_activation(contexts[k][2], &p), LK_OK)) {
      long misrounded = 0, bad = 0, finite = 0;
      for (int64_t i = 0; i < n; i++) {
        double v = tensor_load(dtype, x, i);
        if (!isfinite(v)) continue;
        finite++;
        double ref = activation_reference(act, v);
        float got = tensor_load(dtype, y, i);
        if (!activation_agrees(act, dtype, got, ref, 1.0) && bad++ == 0)
          CHECKF(false, "x %a: got %a, want %a", v, (double)got, ref);
        misrounded += (double)got != (double)dtype_round(dtype, (float)ref);
      }
      CHECKF(bad == 0, "%ld elements beyond the tolerance", bad);
      CHECKF(misrounded <= max_misrounded * (double)finite, "%ld of %ld misrounded (%.4f%%)", misrounded, finite,
             100.0 * (double)misrounded / (double)finite);
      if (getenv("LK_TEST_VERBOSE"))
        printf("all %s, %s, %s: %ld of %ld misrounded\n", dtype_label(dtype), lk_isa_name(isas[k]), activation_label(act),
               misrounded, finite);
    }
    check_context_pop();
  }
  free(x);
  free(y);
}

int main(void) {
  isa_count = supported_isas(isas);
  for (int k = 0; k < isa_count; k++)
    for (int threads = 1; threads <= 2; threads++) {
      lk_cpu_options options = {threads, isas[k]};
      if (!CHECK_STATUS(lk_cpu_context_create(&options, &contexts[k][threads]), LK_OK)) return 1;
    }
  for (int d = 0; d < 3; d++)
    for (int a = 0; a < ACTIVATION_COUNT; a++) {
      for (int64_t n = 1; n <= 257; n++) run_case(all_dtypes[d], all_activations[a], n);
      run_case(all_dtypes[d], all_activations[a], 100003);   /* chunks over two threads */
    }
  /* past the streaming-store threshold (8 MiB of output) */
  for (int d = 0; d < 3; d++) run_case(all_dtypes[d], LK_ACTIVATION_SILU, ((int64_t)9 << 20) / (int64_t)dtype_size(all_dtypes[d]) + 13);
  run_case(LK_DTYPE_BF16, LK_ACTIVATION_GELU_ERF, ((int64_t)9 << 20) / 2 + 1);
  /* 16-bit outputs against float64, misroundings counted (the f32 math before rounding costs
   * SiLU ~0.03% misroundings on bf16 with AVX-512's rcp14, ~0.01% elsewhere). */
  run_all_16bit(LK_DTYPE_BF16, LK_ACTIVATION_SILU, 0.0005);
  run_all_16bit(LK_DTYPE_F16, LK_ACTIVATION_SILU, 0.0002);
  run_all_16bit(LK_DTYPE_BF16, LK_ACTIVATION_GELU_TANH, 0.0005);
  run_all_16bit(LK_DTYPE_F16, LK_ACTIVATION_GELU_TANH, 0.0002);
  for (int k = 0; k < isa_count; k++)
    for (int threads = 1; threads <= 2; threads++) lk_cpu_context_destroy(contexts[k][threads]);
  return check_summary("activation");
}
