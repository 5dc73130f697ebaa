/* lk_rope_cache_build: the cos/sin cache of vLLM's rotary_embedding (cos half, then sin half, per
 * position) for each frequency scaling rule, in double, each value rounded once to f32.
 *
 * Every rule is a per-pair inverse frequency inv_freq[j] (j < rot_dim / 2) and a multiplier m;
 * the angle of position p is p * inv_freq[j] in double (at p = 10^6 an angle of ~10^6 radians
 * carries an error of ~10^-10, far below an f32 ulp of its cosine), and
 *   cache[p, j] = f32(cos(angle) m),  cache[p, rot_dim/2 + j] = f32(sin(angle) m).
 * The formulas and the HF config fields they take are in docs/rope.md. */
#include "lk_internal.h"

#include <math.h>
#include <stdlib.h>

#define LK_PI 3.14159265358979323846

/* A cache row costs ~40 ns per element (a double sin and cos): a few thousand elements per thread
 * already pay for a wake-up. */
#define LK_ROPE_CACHE_MIN_ELEMENTS_PER_THREAD ((int64_t)1 << 12)

typedef struct rope_cache_job {
  float *cache;
  const double *inv_freq; /* [rot_dim / 2] */
  int64_t rot_dim;
  double mscale;
} rope_cache_job;

static void fill_rows(const void *job_, int64_t begin, int64_t end) {
  const rope_cache_job *job = (const rope_cache_job *)job_;
  const int64_t half = job->rot_dim / 2;
  for (int64_t p = begin; p < end; p++) {
    float *row = job->cache + p * job->rot_dim;
    for (int64_t j = 0; j < half; j++) {
      double angle = (double)p * job->inv_freq[j];
      row[j] = (float)(cos(angle) * job->mscale);
      row[half + j] = (float)(sin(angle) * job->mscale);
    }
  }
}

/* The unscaled frequencies: inv_freq[j] = base^(-2j / rot_dim). */
static void default_inv_freq(double *inv_freq, int64_t rot_dim, double base) {
  for (int64_t j = 0; j < rot_dim / 2; j++) inv_freq[j] = 1.0 / pow(base, (double)(2 * j) / (double)rot_dim);
}

/* vLLM's _yarn_find_correction_dim: the pair index whose wavelength fits num_rotations times
 * into the original context. */
static double yarn_correction_dim(double num_rotations, int64_t rot_dim, double base, int64_t original) {
  return ((double)rot_dim * log((double)original / (num_rotations * 2.0 * LK_PI))) / (2.0 * log(base));
}

static void yarn_inv_freq(double *inv_freq, const lk_rope_cache_params *p, double beta_fast, double beta_slow) {
  const int64_t half = p->rot_dim / 2;
  /* _yarn_find_correction_range: floor and ceil, clamped to [0, rot_dim - 1]. */
  double low = floor(yarn_correction_dim(beta_fast, p->rot_dim, p->base, p->original_max_position));
  double high = ceil(yarn_correction_dim(beta_slow, p->rot_dim, p->base, p->original_max_position));
  if (low < 0) low = 0;
  if (high > (double)(p->rot_dim - 1)) high = (double)(p->rot_dim - 1);
  if (low == high) high += 0.001; /* _yarn_linear_ramp_mask: prevent a singularity */
  for (int64_t j = 0; j < half; j++) {
    double pos_freq = pow(p->base, (double)(2 * j) / (double)p->rot_dim);
    double extrapolation = 1.0 / pos_freq, interpolation = 1.0 / (p->factor * pos_freq);
    double ramp = ((double)j - low) / (high - low);
    ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
    double mask = 1.0 - ramp; /* 1: keep the original frequency (high frequencies) */
    inv_freq[j] = interpolation * (1.0 - mask) + extrapolation * mask;
  }
}

static void llama3_inv_freq(double *inv_freq, const lk_rope_cache_params *p) {
  const double original = (double)p->original_max_position;
  const double low_freq_wavelen = original / p->low_freq_factor, high_freq_wavelen = original / p->high_freq_factor;
  default_inv_freq(inv_freq, p->rot_dim, p->base);
  for (int64_t j = 0; j < p->rot_dim / 2; j++) {
    double wavelen = 2.0 * LK_PI / inv_freq[j];
    if (wavelen < high_freq_wavelen) continue; /* high frequencies: unchanged */
    if (wavelen > low_freq_wavelen) {
      inv_freq[j] /= p->factor; /* low frequencies: interpolated */
    } else {
      double smooth = p->low_freq_factor == p->high_freq_factor
                          ? 0.0
                          : (original / wavelen - p->low_freq_factor) / (p->high_freq_factor - p->low_freq_factor);
      inv_freq[j] = (1.0 - smooth) * inv_freq[j] / p->factor + smooth * inv_freq[j];
    }
  }
}

static bool finite_positive(double v) { return v > 0 && isfinite(v); }

static lk_status validate(const lk_rope_cache_params *p) {
  if (!p) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  if ((unsigned)p->scaling > LK_ROPE_SCALING_LLAMA3)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "scaling: %d is not an lk_rope_scaling value", (int)p->scaling);
  if (p->max_position <= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "max_position: %lld must be positive", (long long)p->max_position);
  if (p->rot_dim <= 0 || p->rot_dim % 2)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "rot_dim: %lld must be positive and even", (long long)p->rot_dim);
  if (!finite_positive(p->base))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "base: %g must be positive and finite", p->base);
  if (!p->cache) return lk_fail(LK_ERR_INVALID_ARGUMENT, "cache: NULL");
  if (lk_extent_bytes(p->cache, p->max_position, p->rot_dim, p->rot_dim, LK_DTYPE_F32) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "max_position: %lld rows of rot_dim (%lld) floats exceed the address space",
                   (long long)p->max_position, (long long)p->rot_dim);
  if (p->scaling == LK_ROPE_SCALING_NONE) return LK_OK;
  if (!(p->factor >= 1.0) || !isfinite(p->factor))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "factor: %g must be finite and at least 1 for this scaling", p->factor);
  if (p->scaling == LK_ROPE_SCALING_LINEAR) return LK_OK;
  if (p->original_max_position <= 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "original_max_position: %lld must be positive (the pre-training context length)",
                   (long long)p->original_max_position);
  if (p->scaling == LK_ROPE_SCALING_DYNAMIC_NTK && p->rot_dim <= 2)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "rot_dim: %lld must exceed 2 for DYNAMIC_NTK (the exponent is d / (d - 2))",
                   (long long)p->rot_dim);
  if (p->scaling == LK_ROPE_SCALING_YARN) {
    if (!(p->beta_fast >= 0) || !isfinite(p->beta_fast))
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "beta_fast: %g must be finite and non-negative (0 means 32)", p->beta_fast);
    if (!(p->beta_slow >= 0) || !isfinite(p->beta_slow))
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "beta_slow: %g must be finite and non-negative (0 means 1)", p->beta_slow);
    if (!(p->mscale >= 0) || !isfinite(p->mscale))
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "mscale: %g must be finite and non-negative (0 means 0.1 ln(factor) + 1)", p->mscale);
  }
  if (p->scaling == LK_ROPE_SCALING_LLAMA3) {
    if (!finite_positive(p->low_freq_factor))
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "low_freq_factor: %g must be positive and finite (1 in Llama 3.1)",
                     p->low_freq_factor);
    if (!finite_positive(p->high_freq_factor) || p->high_freq_factor < p->low_freq_factor)
      return lk_fail(LK_ERR_INVALID_ARGUMENT,
                     "high_freq_factor: %g must be finite and at least low_freq_factor (%g) (4 in Llama 3.1)",
                     p->high_freq_factor, p->low_freq_factor);
  }
  return LK_OK;
}

LK_API lk_status lk_rope_cache_build(lk_cpu_context *context, const lk_rope_cache_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  status = validate(params);
  if (status != LK_OK) {
    lk_context_leave(context);
    return status;
  }
  const lk_rope_cache_params *p = params;
  double *inv_freq = (double *)malloc((size_t)(p->rot_dim / 2) * sizeof(double));
  if (!inv_freq) {
    lk_context_leave(context);
    return lk_fail(LK_ERR_OUT_OF_MEMORY, "rot_dim: no memory for %lld frequencies", (long long)(p->rot_dim / 2));
  }
  double mscale = 1.0;
  switch (p->scaling) {
  case LK_ROPE_SCALING_LINEAR: /* positions / factor, folded into the frequencies */
    default_inv_freq(inv_freq, p->rot_dim, p->base);
    for (int64_t j = 0; j < p->rot_dim / 2; j++) inv_freq[j] /= p->factor;
    break;
  case LK_ROPE_SCALING_DYNAMIC_NTK: {
    /* HF's dynamic NTK at a context of L = max(max_position, original) tokens: the base grows
     * once the cache reaches past the pre-training length, and is unchanged up to it. vLLM's
     * static form is L = factor x original. */
    int64_t length = p->max_position > p->original_max_position ? p->max_position : p->original_max_position;
    double d = (double)p->rot_dim;
    double base = p->base * pow(p->factor * (double)length / (double)p->original_max_position - (p->factor - 1.0), d / (d - 2.0));
    default_inv_freq(inv_freq, p->rot_dim, base);
    break;
  }
  case LK_ROPE_SCALING_YARN:
    yarn_inv_freq(inv_freq, p, p->beta_fast == 0 ? 32.0 : p->beta_fast, p->beta_slow == 0 ? 1.0 : p->beta_slow);
    mscale = p->mscale != 0 ? p->mscale : 0.1 * log(p->factor) + 1.0; /* yarn_get_mscale (factor >= 1) */
    break;
  case LK_ROPE_SCALING_LLAMA3: llama3_inv_freq(inv_freq, p); break;
  default: default_inv_freq(inv_freq, p->rot_dim, p->base); break;
  }
  rope_cache_job job = {p->cache, inv_freq, p->rot_dim, mscale};
  lk_parallel_rows(context, fill_rows, &job, p->max_position, p->rot_dim, LK_ROPE_CACHE_MIN_ELEMENTS_PER_THREAD);
  free(inv_freq);
  lk_context_leave(context);
  return LK_OK;
}
