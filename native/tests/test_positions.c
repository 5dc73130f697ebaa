/* The position helpers against independent implementations and known values:
 *   lk_alibi_slopes               vLLM's _get_alibi_slopes written out (closest power of two,
 *                                 then the odd powers of the 2n-head base), 1..64 heads;
 *                                 known: 8 heads = 1/2 .. 1/256, 12 heads add 2^-0.5 .. 2^-3.5
 *   lk_sinusoidal_positions       sin/cos of p / base^(2i/dim), interleaved, in long double
 *   lk_t5_relative_position_bias  HF's _relative_position_bucket step by step in f32 (torch's
 *                                 float ops), known bucket values for T5's defaults in both
 *                                 directions, and the [num_heads, q_len, k_len] bias gathered
 *                                 from the [num_buckets, num_heads] table, with query_offset.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

/* ---- ALiBi ---------------------------------------------------------------------------------- */

static void test_alibi(void) {
  float slopes[64];
  for (int n = 1; n <= 64; n++) {
    CHECK_STATUS(lk_alibi_slopes(n, slopes), LK_OK);
    /* vLLM: closest_power_of_2 = 2 ** floor(log2(n)); base = 2 ** (-(2 ** -(log2(closest) - 3))) */
    int closest = 1 << (int)floor(log2((double)n));
    double base = pow(2.0, -pow(2.0, -(log2((double)closest) - 3.0)));
    double want[64];
    for (int i = 0; i < closest; i++) want[i] = pow(base, i + 1);
    double extra_base = pow(2.0, -pow(2.0, -(log2(2.0 * closest) - 3.0)));
    int remaining = n - closest < closest ? n - closest : closest;
    for (int i = 0; i < remaining; i++) want[closest + i] = pow(extra_base, 2 * i + 1);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += fabs((double)slopes[i] - want[i]) > ldexp(fabs(want[i]), -24);
    CHECKF(bad == 0, "%d heads: %d slopes differ from vLLM's formula", n, bad);
  }
  CHECK_STATUS(lk_alibi_slopes(8, slopes), LK_OK);
  for (int i = 0; i < 8; i++) CHECKF(slopes[i] == ldexpf(1.0f, -(i + 1)), "8 heads: slope %d = %g", i, (double)slopes[i]);
  CHECK_STATUS(lk_alibi_slopes(12, slopes), LK_OK);
  for (int i = 0; i < 4; i++)
    CHECKF(slopes[8 + i] == (float)pow(2.0, -0.5 - i), "12 heads: slope %d = %g, want 2^-%.1f", 8 + i, (double)slopes[8 + i],
           0.5 + i);
  CHECK_STATUS(lk_alibi_slopes(1, slopes), LK_OK);
  CHECK(slopes[0] == 1.0f / 256.0f);
  CHECK_STATUS(lk_alibi_slopes(16, slopes), LK_OK);
  CHECK(slopes[0] == (float)pow(2.0, -0.5) && slopes[15] == 1.0f / 256.0f);
}

/* ---- sinusoidal --------------------------------------------------------------------------- */

static void test_sinusoidal(void) {
  static const struct { int64_t positions, dim; double base; } shapes[] = {{1, 2, 10000.0}, {64, 512, 10000.0}, {2049, 6, 10000.0}, {5, 4, 100.0}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int64_t n = shapes[s].positions, dim = shapes[s].dim;
    guarded_buffer table = guarded_alloc((size_t)(n * dim) * sizeof(float), GUARD_EDGE_END);
    float *t = table.data;
    CHECK_STATUS(lk_sinusoidal_positions(t, n, dim, shapes[s].base), LK_OK);
    int64_t bad = 0;
    for (int64_t p = 0; p < n; p++)
      for (int64_t i = 0; i < dim / 2; i++) {
        long double angle = (long double)p / powl(shapes[s].base, (long double)(2 * i) / (long double)dim);
        long double want[2] = {sinl(angle), cosl(angle)};
        for (int k = 0; k < 2; k++) {
          double w = (double)want[k], got = t[p * dim + 2 * i + k];
          int e;
          frexp(fabs(w), &e);
          if (fabs(got - w) > ldexp(1.0, e - 24) + 1e-30) bad++;
        }
      }
    CHECKF(bad == 0, "sinusoidal [%lld, %lld]: %lld values beyond one f32 ulp", (long long)n, (long long)dim, (long long)bad);
    if (n >= 2) CHECK(t[0] == 0.0f && t[1] == 1.0f && t[dim] == (float)sin(1.0) && t[dim + 1] == (float)cos(1.0));
    guarded_free(&table);
  }
  CHECK_STATUS(lk_sinusoidal_positions(NULL, 0, 8, 10000.0), LK_OK); /* nothing to fill */
}

/* ---- T5 ------------------------------------------------------------------------------------ */

/* HF transformers' T5Attention._relative_position_bucket, one torch op per line, in f32. */
static int32_t hf_bucket(int64_t relative_position, bool bidirectional, int64_t num_buckets, int64_t max_distance) {
  int64_t relative_buckets = 0;
  if (bidirectional) {
    num_buckets /= 2;
    relative_buckets += (relative_position > 0) * num_buckets;
    relative_position = llabs(relative_position);
  } else {
    relative_position = -(relative_position < 0 ? relative_position : 0);
  }
  int64_t max_exact = num_buckets / 2;
  bool is_small = relative_position < max_exact;
  float ratio = (float)relative_position / (float)max_exact;  /* relative_position.float() / max_exact */
  float log_ratio = logf(ratio);                              /* torch.log */
  float scaled = log_ratio / (float)log((double)max_distance / (double)max_exact); /* / math.log(...) */
  scaled = scaled * (float)(num_buckets - max_exact);
  int64_t if_large = max_exact + (is_small ? 0 : (int64_t)scaled); /* .to(torch.long) truncates */
  if (if_large > num_buckets - 1) if_large = num_buckets - 1;
  relative_buckets += is_small ? relative_position : if_large;
  return (int32_t)relative_buckets;
}

static int32_t buckets_of(int64_t relative, bool bidirectional, int64_t num_buckets, int64_t max_distance) {
  /* one query (q_len 1) at offset -relative sees key 0 at distance `relative` */
  int32_t bucket = -1;
  lk_t5_bias_params p;
  memset(&p, 0, sizeof p);
  p.buckets = &bucket;
  p.q_len = 1;
  p.k_len = 1;
  p.num_buckets = num_buckets;
  p.max_distance = max_distance;
  p.query_offset = -relative;
  p.bidirectional = bidirectional;
  CHECK_STATUS(lk_t5_relative_position_bias(&p), LK_OK);
  return bucket;
}

static void test_t5_known(void) {
  static const struct { int64_t rel; int32_t bucket; } encoder[] = {
      {0, 0}, {1, 17}, {-1, 1}, {7, 23}, {-7, 7}, {8, 24}, {-8, 8}, {12, 25}, {16, 26}, {-16, 10},
      {32, 28}, {-32, 12}, {64, 30}, {127, 31}, {128, 31}, {1000, 31}, {-1000, 15}};
  for (size_t i = 0; i < sizeof encoder / sizeof encoder[0]; i++) {
    int32_t got = buckets_of(encoder[i].rel, true, 32, 128);
    CHECKF(got == encoder[i].bucket, "bidirectional 32/128: relative %lld -> %d, want %d", (long long)encoder[i].rel, got,
           encoder[i].bucket);
  }
  static const struct { int64_t rel; int32_t bucket; } decoder[] = {
      {0, 0}, {5, 0}, {-1, 1}, {-15, 15}, {-16, 16}, {-32, 21}, {-127, 31}, {-128, 31}, {-100000, 31}};
  for (size_t i = 0; i < sizeof decoder / sizeof decoder[0]; i++) {
    int32_t got = buckets_of(decoder[i].rel, false, 32, 128);
    CHECKF(got == decoder[i].bucket, "causal 32/128: relative %lld -> %d, want %d", (long long)decoder[i].rel, got,
           decoder[i].bucket);
  }
}

static void test_t5_against_hf(void) {
  static const struct { int64_t buckets, distance; } configs[] = {{32, 128}, {32, 64}, {64, 256}, {16, 32}, {8, 20}, {4, 3}, {2, 5}, {33, 100}};
  for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++)
    for (int bidirectional = 0; bidirectional < 2; bidirectional++) {
      if (bidirectional && configs[c].buckets < 4) continue;
      int64_t max_exact = (bidirectional ? configs[c].buckets / 2 : configs[c].buckets) / 2;
      if (configs[c].distance <= max_exact) continue;
      int64_t bad = 0;
      for (int64_t rel = -3000; rel <= 3000; rel++)
        bad += buckets_of(rel, bidirectional, configs[c].buckets, configs[c].distance) !=
               hf_bucket(rel, bidirectional, configs[c].buckets, configs[c].distance);
      CHECKF(bad == 0, "%s %lld/%lld: %lld of 6001 distances bucketed unlike HF", bidirectional ? "bidirectional" : "causal",
             (long long)configs[c].buckets, (long long)configs[c].distance, (long long)bad);
    }
}

static void test_t5_bias(void) {
  const int64_t heads = 3, num_buckets = 32, max_distance = 128;
  float table[32 * 3];
  for (int i = 0; i < 32 * 3; i++) table[i] = (float)i + 0.5f;
  static const struct { int64_t q_len, k_len, offset; int32_t bidirectional; } shapes[] = {
      {7, 7, 0, 1}, {5, 9, 0, 1}, {1, 200, 199, 0}, {4, 300, 296, 0}, {130, 3, 0, 1}, {6, 6, -2, 0}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int64_t q_len = shapes[s].q_len, k_len = shapes[s].k_len, cells = q_len * k_len;
    guarded_buffer bias = guarded_alloc((size_t)(heads * cells) * sizeof(float), GUARD_EDGE_END);
    guarded_buffer buckets = guarded_alloc((size_t)cells * sizeof(int32_t), GUARD_EDGE_END);
    lk_t5_bias_params p;
    memset(&p, 0, sizeof p);
    p.table = table;
    p.bias = bias.data;
    p.buckets = buckets.data;
    p.q_len = q_len;
    p.k_len = k_len;
    p.num_heads = heads;
    p.num_buckets = num_buckets;
    p.max_distance = max_distance;
    p.query_offset = shapes[s].offset;
    p.bidirectional = shapes[s].bidirectional;
    CHECK_STATUS(lk_t5_relative_position_bias(&p), LK_OK);
    int64_t bad = 0;
    for (int64_t i = 0; i < q_len; i++)
      for (int64_t j = 0; j < k_len; j++) {
        int32_t want = hf_bucket(j - (i + shapes[s].offset), shapes[s].bidirectional, num_buckets, max_distance);
        bad += ((int32_t *)buckets.data)[i * k_len + j] != want;
        for (int64_t h = 0; h < heads; h++) bad += ((float *)bias.data)[h * cells + i * k_len + j] != table[want * heads + h];
      }
    CHECKF(bad == 0, "bias [%lld, %lld, %lld] offset %lld: %lld wrong values", (long long)heads, (long long)q_len,
           (long long)k_len, (long long)shapes[s].offset, (long long)bad);
    /* the bias alone, without buckets */
    p.buckets = NULL;
    memset(bias.data, 0, bias.bytes);
    CHECK_STATUS(lk_t5_relative_position_bias(&p), LK_OK);
    CHECK(((float *)bias.data)[heads * cells - 1] ==
          table[hf_bucket(k_len - 1 - (q_len - 1 + shapes[s].offset), shapes[s].bidirectional, num_buckets, max_distance) *
                    heads + heads - 1]);
    guarded_free(&bias);
    guarded_free(&buckets);
  }
}

int main(void) {
  test_alibi();
  test_sinusoidal();
  test_t5_known();
  test_t5_against_hf();
  test_t5_bias();
  return check_summary("test_positions");
}
