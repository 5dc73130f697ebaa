/* Position helpers that need no kernel machinery: ALiBi slopes, the sinusoidal table of the
 * original Transformer and T5's relative position buckets with the bias built from them. All are
 * computed once per model (or per sequence length), so they are plain scalar loops. */
#include "lk_internal.h"

#include <math.h>
#include <stdlib.h>

LK_API lk_status lk_alibi_slopes(int64_t num_heads, float *slopes) {
  lk_clear_error();
  if (num_heads <= 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_heads: %lld must be positive", (long long)num_heads);
  if (!slopes) return lk_fail(LK_ERR_INVALID_ARGUMENT, "slopes: NULL");
  if (lk_extent_bytes(slopes, 1, num_heads, num_heads, LK_DTYPE_F32) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_heads: %lld slopes exceed the address space", (long long)num_heads);
  /* n: the closest power of two not above num_heads. Its slopes are the geometric sequence
   * 2^(-8/n), 2^(-16/n), ...; the remaining heads take every other slope of the sequence for
   * 2n heads (2^(-4/n), 2^(-12/n), ...), the interleaving of the ALiBi paper's reference code. */
  int64_t n = 1;
  while (n <= num_heads / 2) n *= 2;
  for (int64_t i = 0; i < n; i++) slopes[i] = (float)exp2(-8.0 * (double)(i + 1) / (double)n);
  for (int64_t i = 0; i < num_heads - n; i++) slopes[n + i] = (float)exp2(-4.0 * (double)(2 * i + 1) / (double)n);
  return LK_OK;
}

LK_API lk_status lk_sinusoidal_positions(float *table, int64_t num_positions, int64_t dim, double base) {
  lk_clear_error();
  if (num_positions < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_positions: %lld is negative", (long long)num_positions);
  if (dim <= 0 || dim % 2) return lk_fail(LK_ERR_INVALID_ARGUMENT, "dim: %lld must be positive and even", (long long)dim);
  if (!(base > 0) || !isfinite(base)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "base: %g must be positive and finite", base);
  if (num_positions == 0) return LK_OK;
  if (!table) return lk_fail(LK_ERR_INVALID_ARGUMENT, "table: NULL");
  if (lk_extent_bytes(table, num_positions, dim, dim, LK_DTYPE_F32) < 0)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_positions: %lld rows of dim (%lld) floats exceed the address space",
                   (long long)num_positions, (long long)dim);
  for (int64_t p = 0; p < num_positions; p++) {
    float *row = table + p * dim;
    for (int64_t i = 0; i < dim / 2; i++) {
      double angle = (double)p / pow(base, (double)(2 * i) / (double)dim);
      row[2 * i] = (float)sin(angle);
      row[2 * i + 1] = (float)cos(angle);
    }
  }
  return LK_OK;
}

/* T5's _relative_position_bucket (HF transformers' T5Attention, after Mesh TensorFlow), in the
 * same f32 arithmetic so that distances on a bucket boundary (16, 32, 64 with the defaults) land
 * where HF puts them: the logarithmic branch is an f32 log, divided by the f32 log of
 * max_distance / max_exact, times the bucket count, truncated. */
static int32_t t5_bucket(int64_t relative, bool bidirectional, int64_t num_buckets, int64_t max_distance) {
  int64_t bucket = 0;
  if (bidirectional) {
    num_buckets /= 2;
    if (relative > 0) bucket += num_buckets;
    relative = relative < 0 ? -relative : relative;
  } else {
    relative = relative < 0 ? -relative : 0; /* causal: only keys before the query are told apart */
  }
  const int64_t max_exact = num_buckets / 2;
  if (relative < max_exact) return (int32_t)(bucket + relative);
  float scale = (float)log((double)max_distance / (double)max_exact);
  float large = logf((float)relative / (float)max_exact) / scale * (float)(num_buckets - max_exact);
  /* Distances far beyond max_distance clamp below; keep the truncation in range first. */
  int64_t offset = large >= (float)num_buckets ? num_buckets : (int64_t)large;
  int64_t value = max_exact + offset;
  if (value > num_buckets - 1) value = num_buckets - 1;
  return (int32_t)(bucket + value);
}

/* Limits that keep j - (i + query_offset) and the output extents far from int64 overflow. */
#define LK_T5_MAX_LENGTH ((int64_t)1 << 40)

static lk_status t5_validate(const lk_t5_bias_params *p) {
  if (!p) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  if (p->q_len < 0 || p->q_len > LK_T5_MAX_LENGTH)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "q_len: %lld must be in [0, 2^40]", (long long)p->q_len);
  if (p->k_len < 0 || p->k_len > LK_T5_MAX_LENGTH)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "k_len: %lld must be in [0, 2^40]", (long long)p->k_len);
  if (p->query_offset < -LK_T5_MAX_LENGTH || p->query_offset > LK_T5_MAX_LENGTH)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "query_offset: %lld must be in [-2^40, 2^40]", (long long)p->query_offset);
  if (p->bidirectional != 0 && p->bidirectional != 1)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "bidirectional: %d must be 0 (causal) or 1", (int)p->bidirectional);
  /* Each direction needs at least one exact bucket (max_exact >= 1) and a logarithmic range. */
  const int64_t min_buckets = p->bidirectional ? 4 : 2;
  if (p->num_buckets < min_buckets || p->num_buckets > INT32_MAX)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_buckets: %lld must be in [%lld, 2^31) %s", (long long)p->num_buckets,
                   (long long)min_buckets, p->bidirectional ? "(bidirectional: half per direction)" : "(causal)");
  const int64_t max_exact = (p->bidirectional ? p->num_buckets / 2 : p->num_buckets) / 2;
  if (p->max_distance <= max_exact)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "max_distance: %lld must exceed the exact range (%lld buckets)",
                   (long long)p->max_distance, (long long)max_exact);
  if (p->table) {
    if (p->num_heads <= 0)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_heads: %lld must be positive", (long long)p->num_heads);
    if (!p->bias) return lk_fail(LK_ERR_INVALID_ARGUMENT, "bias: NULL while table is given");
  } else {
    if (p->bias) return lk_fail(LK_ERR_INVALID_ARGUMENT, "bias: given without table (NULL table means buckets only)");
    if (!p->buckets) return lk_fail(LK_ERR_INVALID_ARGUMENT, "buckets: NULL while table is NULL: nothing to compute");
  }
  if (p->q_len > 0 && p->k_len > INT64_MAX / 8 / p->q_len)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "k_len: q_len (%lld) x k_len (%lld) overflows", (long long)p->q_len,
                   (long long)p->k_len);
  const int64_t cells = p->q_len * p->k_len;
  lk_span table = {0, 0}, bias = {0, 0}, buckets = {0, 0};
  if (p->table) {
    if (lk_extent_bytes(p->table, p->num_buckets, p->num_heads, p->num_heads, LK_DTYPE_F32) < 0)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_heads: table of num_buckets (%lld) x num_heads (%lld) exceeds the address space",
                     (long long)p->num_buckets, (long long)p->num_heads);
    if (cells > 0 && lk_extent_bytes(p->bias, p->num_heads, cells, cells, LK_DTYPE_F32) < 0)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_heads: bias of num_heads (%lld) x q_len x k_len (%lld) exceeds the address space",
                     (long long)p->num_heads, (long long)cells);
    table = lk_rows_span(p->table, p->num_buckets, p->num_heads, p->num_heads, LK_DTYPE_F32);
    bias = lk_rows_span(p->bias, p->num_heads, cells, cells, LK_DTYPE_F32);
  }
  if (p->buckets) {
    if (lk_extent_bytes(p->buckets, 1, cells, cells, LK_DTYPE_F32) < 0) /* int32: 4 bytes, as f32 */
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "buckets: q_len x k_len (%lld) entries exceed the address space", (long long)cells);
    buckets = lk_rows_span(p->buckets, 1, cells, cells, LK_DTYPE_F32);
  }
  if (lk_spans_overlap(bias, table)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "bias: overlaps table");
  if (lk_spans_overlap(buckets, table)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "buckets: overlaps table");
  if (lk_spans_overlap(buckets, bias)) return lk_fail(LK_ERR_INVALID_ARGUMENT, "buckets: overlaps bias");
  return LK_OK;
}

LK_API lk_status lk_t5_relative_position_bias(const lk_t5_bias_params *params) {
  lk_clear_error();
  lk_status status = t5_validate(params);
  if (status != LK_OK) return status;
  const lk_t5_bias_params *p = params;
  if (p->q_len == 0 || p->k_len == 0) return LK_OK;
  /* A bucket depends only on the distance j - i: bucket each of the q_len + k_len - 1 distances
   * once (the logarithm is the expensive part), then fill rows from that table, head by head, so
   * every plane of the bias is written sequentially. */
  const int64_t cells = p->q_len * p->k_len, lowest = -(p->q_len - 1) - p->query_offset; /* rel of (q_len - 1, 0) */
  const int64_t distances = p->q_len + p->k_len - 1;
  if ((uint64_t)distances > SIZE_MAX / sizeof(int32_t))
    return lk_fail(LK_ERR_OUT_OF_MEMORY, "q_len: no memory for %lld distances", (long long)distances);
  int32_t *by_distance = (int32_t *)malloc((size_t)distances * sizeof(int32_t));
  if (!by_distance) return lk_fail(LK_ERR_OUT_OF_MEMORY, "q_len: no memory for %lld distances", (long long)distances);
  for (int64_t d = 0; d < distances; d++)
    by_distance[d] = t5_bucket(lowest + d, p->bidirectional != 0, p->num_buckets, p->max_distance);
  /* row i, key j: rel = j - i - query_offset = lowest + (q_len - 1 - i) + j */
  for (int64_t i = 0; i < p->q_len; i++) {
    const int32_t *row = by_distance + (p->q_len - 1 - i);
    if (p->buckets) memcpy(p->buckets + i * p->k_len, row, (size_t)p->k_len * sizeof(int32_t));
    if (p->table)
      for (int64_t h = 0; h < p->num_heads; h++) {
        float *out = p->bias + h * cells + i * p->k_len;
        for (int64_t j = 0; j < p->k_len; j++) out[j] = p->table[row[j] * p->num_heads + h];
      }
  }
  free(by_distance);
  return LK_OK;
}
