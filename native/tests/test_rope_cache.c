/* lk_rope_cache_build against the scaling formulas written out again here, independently of the
 * library, in long double (x87 extended on x86-64: 64-bit significands), for every rule:
 *
 *   none         inv_freq[j] = base^(-2j/d)
 *   linear       inv_freq[j] / factor                           (positions / factor)
 *   dynamic NTK  base' = base (factor L / L0 - (factor - 1))^(d / (d - 2)), L = max(max_position, L0)
 *   YaRN         vLLM's _yarn_find_correction_range / _yarn_linear_ramp_mask blend of
 *                base^(-2j/d) and base^(-2j/d) / factor; cos and sin times mscale
 *                (0: 0.1 ln(factor) + 1); beta_fast 0 -> 32, beta_slow 0 -> 1
 *   Llama 3      wavelengths below L0 / high_freq_factor kept, above L0 / low_freq_factor divided
 *                by factor, smoothly interpolated between
 *
 * and cache[p, j] = cos(p inv_freq[j]) m, cache[p, d/2 + j] = sin(...) m. The library computes in
 * double and rounds once; the bound is one f32 ulp of the value plus 2^-33 absolute (a double
 * angle of 10^6 radians is itself uncertain by ~10^-10), tested up to position 1,000,000.
 * Known values (Python's math, rounded to f32) pin the plain cache: cos 1, sin 1, cos 10^6,
 * sin 10^6.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

#define PI_L 3.141592653589793238462643383279502884L

static lk_cpu_context *context;

static long double yarn_dim(long double rotations, int64_t d, long double base, int64_t original) {
  return (long double)d * logl((long double)original / (rotations * 2.0L * PI_L)) / (2.0L * logl(base));
}

/* The inverse frequencies and multiplier each rule defines, from the parameters as given. */
static void expected_frequencies(const lk_rope_cache_params *p, long double *inv, long double *m) {
  const int64_t d = p->rot_dim, half = d / 2;
  long double base = p->base, factor = p->factor;
  *m = 1.0L;
  if (p->scaling == LK_ROPE_SCALING_DYNAMIC_NTK) {
    long double length = (long double)(p->max_position > p->original_max_position ? p->max_position : p->original_max_position);
    base = base * powl(factor * length / (long double)p->original_max_position - (factor - 1.0L),
                       (long double)d / (long double)(d - 2));
  }
  for (int64_t j = 0; j < half; j++) inv[j] = powl(base, -(long double)(2 * j) / (long double)d);
  switch (p->scaling) {
  case LK_ROPE_SCALING_LINEAR:
    for (int64_t j = 0; j < half; j++) inv[j] /= factor;
    break;
  case LK_ROPE_SCALING_YARN: {
    long double beta_fast = p->beta_fast ? p->beta_fast : 32.0L, beta_slow = p->beta_slow ? p->beta_slow : 1.0L;
    long double low = floorl(yarn_dim(beta_fast, d, base, p->original_max_position));
    long double high = ceill(yarn_dim(beta_slow, d, base, p->original_max_position));
    if (low < 0) low = 0;
    if (high > d - 1) high = d - 1;
    if (low == high) high += 0.001L;
    for (int64_t j = 0; j < half; j++) {
      long double ramp = fminl(fmaxl(((long double)j - low) / (high - low), 0.0L), 1.0L);
      long double extrapolation_weight = 1.0L - ramp;
      inv[j] = inv[j] / factor * ramp + inv[j] * extrapolation_weight;
    }
    *m = p->mscale ? (long double)p->mscale : 0.1L * logl(factor) + 1.0L;
    break;
  }
  case LK_ROPE_SCALING_LLAMA3: {
    long double original = (long double)p->original_max_position;
    for (int64_t j = 0; j < half; j++) {
      long double wavelength = 2.0L * PI_L / inv[j];
      if (wavelength < original / p->high_freq_factor) continue;
      if (wavelength > original / p->low_freq_factor) {
        inv[j] /= factor;
        continue;
      }
      long double smooth = p->high_freq_factor == p->low_freq_factor
                               ? 0.0L
                               : (original / wavelength - p->low_freq_factor) / (p->high_freq_factor - p->low_freq_factor);
      inv[j] = (1.0L - smooth) * inv[j] / factor + smooth * inv[j];
    }
    break;
  }
  default: break;
  }
}

static double f32_ulp(double v) {
  int e;
  frexp(fabs(v), &e);
  double ulp = ldexp(1.0, e - 24);
  return ulp < ldexp(1.0, -149) ? ldexp(1.0, -149) : ulp;
}

static int64_t next_row(int64_t p, int64_t max_position) {
  /* every row of small caches; for large ones a spread of rows and the last few */
  if (max_position <= 8192 || p + 64 >= max_position) return p + 1;
  int64_t step = p < 64 ? 1 : 997;
  return p + step < max_position - 64 ? p + step : max_position - 64;
}

static void check_cache(const char *label, lk_rope_cache_params p) {
  check_context_push("%s: max_position %lld rot_dim %lld base %g factor %g original %lld", label, (long long)p.max_position,
                     (long long)p.rot_dim, p.base, p.factor, (long long)p.original_max_position);
  size_t count = (size_t)(p.max_position * p.rot_dim);
  guarded_buffer cache = guarded_alloc(count * sizeof(float), GUARD_EDGE_END);
  if (!cache.data) {
    fprintf(stderr, "allocation failed\n");
    exit(2);
  }
  p.cache = cache.data;
  if (CHECK_STATUS(lk_rope_cache_build(context, &p), LK_OK)) {
    const int64_t half = p.rot_dim / 2;
    long double *inv = malloc((size_t)half * sizeof(long double)), m;
    expected_frequencies(&p, inv, &m);
    int64_t bad = 0;
    double worst = 0;
    for (int64_t row = 0; row < p.max_position; row = next_row(row, p.max_position))
      for (int64_t j = 0; j < half; j++) {
        long double angle = (long double)row * inv[j];
        double want[2] = {(double)(cosl(angle) * m), (double)(sinl(angle) * m)};
        float got[2] = {p.cache[row * p.rot_dim + j], p.cache[row * p.rot_dim + half + j]};
        for (int k = 0; k < 2; k++) {
          double bound = f32_ulp(want[k]) + ldexp(1.0, -33);
          double err = fabs((double)got[k] - want[k]);
          if (!(err <= bound)) {
            if (bad++ == 0)
              CHECKF(false, "cache[%lld, %s %lld] = %.9g, want %.12g", (long long)row, k ? "sin" : "cos", (long long)j,
                     (double)got[k], want[k]);
          } else if (err / f32_ulp(want[k]) > worst) {
            worst = err / f32_ulp(want[k]);
          }
        }
      }
    CHECKF(bad == 0, "%lld values outside one f32 ulp (+2^-33)", (long long)bad);
    printf("%-34s worst error %.3f f32 ulp\n", label, worst);
    free(inv);
  }
  guarded_free(&cache);
  check_context_pop();
}

static lk_rope_cache_params plain(int64_t max_position, int64_t rot_dim, double base) {
  lk_rope_cache_params p;
  memset(&p, 0, sizeof p);
  p.max_position = max_position;
  p.rot_dim = rot_dim;
  p.base = base;
  return p;
}

static void test_known_values(void) {
  lk_rope_cache_params p = plain(1000001, 2, 10000.0);
  guarded_buffer cache = guarded_alloc((size_t)p.max_position * 2 * sizeof(float), GUARD_EDGE_END);
  p.cache = cache.data;
  CHECK_STATUS(lk_rope_cache_build(context, &p), LK_OK);
  /* rot_dim 2: inv_freq[0] = 1, so cache[p] = (cos p, sin p) */
  CHECK(p.cache[0] == 1.0f && p.cache[1] == 0.0f);
  CHECKF(p.cache[2] == 0.5403022766113281f && p.cache[3] == 0.8414709568023682f, "cache[1] = %.9g %.9g", (double)p.cache[2],
         (double)p.cache[3]);
  CHECKF(p.cache[2000000] == 0.9367521405220032f && p.cache[2000001] == -0.349993497133255f, "cache[10^6] = %.9g %.9g",
         (double)p.cache[2000000], (double)p.cache[2000001]);
  guarded_free(&cache);
}

static void test_scalings(void) {
  check_cache("none, Llama 2 (10^4, 128)", plain(4096, 128, 10000.0));
  check_cache("none, Llama 3 (5 10^5, 128)", plain(8192, 128, 500000.0));
  check_cache("none, partial rot 32", plain(2048, 32, 10000.0));
  check_cache("none, rot 2", plain(100, 2, 10000.0));
  check_cache("none, positions to 10^6", plain(1000001, 16, 10000.0));
  check_cache("none, base 10^6, positions to 10^6", plain(1000001, 8, 1000000.0));

  lk_rope_cache_params p = plain(16384, 128, 10000.0);
  p.scaling = LK_ROPE_SCALING_LINEAR;
  p.factor = 4.0;
  check_cache("linear x4", p);
  p.factor = 1.0;
  check_cache("linear x1", p);

  p = plain(8192, 128, 10000.0);
  p.scaling = LK_ROPE_SCALING_DYNAMIC_NTK;
  p.factor = 2.0;
  p.original_max_position = 4096;
  check_cache("dynamic NTK x2, L = 2 L0", p);
  p.max_position = 1024;
  check_cache("dynamic NTK x2, L < L0 (base kept)", p);
  p.max_position = 4096;
  p.rot_dim = 64;
  p.factor = 8.0;
  check_cache("dynamic NTK x8, L = L0, rot 64", p);

  p = plain(16384, 128, 10000.0);
  p.scaling = LK_ROPE_SCALING_YARN;
  p.factor = 4.0;
  p.original_max_position = 4096;
  check_cache("YaRN x4 (defaults)", p);
  p.beta_fast = 32;
  p.beta_slow = 1;
  p.mscale = 1.0;
  check_cache("YaRN x4 (explicit, mscale 1)", p);
  p = plain(8192, 64, 10000.0);
  p.scaling = LK_ROPE_SCALING_YARN;
  p.factor = 40.0;
  p.original_max_position = 4096;
  p.mscale = 1.0;
  check_cache("YaRN x40 DeepSeek-V2-like rot 64", p);
  p = plain(4096, 128, 1000000.0);
  p.scaling = LK_ROPE_SCALING_YARN;
  p.factor = 1.0;
  p.original_max_position = 4096;
  p.beta_fast = 4;
  p.beta_slow = 2;
  check_cache("YaRN x1, narrow ramp", p);

  p = plain(32768, 128, 500000.0);
  p.scaling = LK_ROPE_SCALING_LLAMA3;
  p.factor = 8.0;
  p.low_freq_factor = 1.0;
  p.high_freq_factor = 4.0;
  p.original_max_position = 8192;
  check_cache("Llama 3.1 (x8, 1, 4, 8192)", p);
  p.factor = 32.0;
  p.original_max_position = 8192;
  check_cache("Llama 3.2 (x32, 1, 4, 8192)", p);
  p.high_freq_factor = 1.0;
  check_cache("Llama 3 low == high", p);
  p = plain(1000001, 8, 500000.0);
  p.scaling = LK_ROPE_SCALING_LLAMA3;
  p.factor = 8.0;
  p.low_freq_factor = 1.0;
  p.high_freq_factor = 4.0;
  p.original_max_position = 8192;
  check_cache("Llama 3.1, positions to 10^6", p);
}

/* Which frequencies each rule changes, as the formulas say: Llama 3 keeps the highest and
 * divides the lowest by factor; YaRN does the same at its ends; linear divides all. */
static void test_rule_shapes(void) {
  const int64_t d = 128, max_position = 2;
  float none[256], scaled[256];
  lk_rope_cache_params p = plain(max_position, d, 500000.0);
  p.cache = none;
  CHECK_STATUS(lk_rope_cache_build(context, &p), LK_OK);
  p.cache = scaled;
  p.scaling = LK_ROPE_SCALING_LLAMA3;
  p.factor = 8.0;
  p.low_freq_factor = 1.0;
  p.high_freq_factor = 4.0;
  p.original_max_position = 8192;
  CHECK_STATUS(lk_rope_cache_build(context, &p), LK_OK);
  /* row 1 holds cos/sin of inv_freq itself */
  CHECK(scaled[d + 0] == none[d + 0] && scaled[d + d / 2] == none[d + d / 2]);
  double lowest = 1.0 / pow(500000.0, 126.0 / 128.0);
  CHECKF(fabs(scaled[d + d / 2 + 63] - (float)sin(lowest / 8.0)) <= 1e-12, "Llama 3 lowest frequency: sin %.9g, want %.9g",
         (double)scaled[d + d / 2 + 63], sin(lowest / 8.0));
}

int main(void) {
  lk_cpu_options options = {2, LK_ISA_AUTO};
  if (!CHECK_STATUS(lk_cpu_context_create(&options, &context), LK_OK)) return 1;
  test_known_values();
  test_scalings();
  test_rule_shapes();
  lk_cpu_context_destroy(context);
  return check_summary("test_rope_cache");
}
