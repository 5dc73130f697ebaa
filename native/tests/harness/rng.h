/* Seeded, reproducible random numbers for test inputs: splitmix64 (Steele, Lea, Flood 2014),
 * the same on every platform and compiler, unlike rand(). A failing case prints its seed. */
#ifndef LK_TEST_RNG_H
#define LK_TEST_RNG_H

#include <stdint.h>

typedef struct rng {
  uint64_t state;
} rng;

static inline rng rng_seeded(uint64_t seed) {
  rng r = {seed};
  return r;
}

static inline uint64_t rng_next(rng *r) {
  uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (hi only through rounding), from 24 random bits. */
static inline float rng_uniform(rng *r, float lo, float hi) {
  float unit = (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
  return lo + (hi - lo) * unit;
}

/* Uniform in [0, n). */
static inline uint32_t rng_below(rng *r, uint32_t n) {
  return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

#endif
