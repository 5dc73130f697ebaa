/* lk_cuda_attention's decode kernel (every sequence at most 8 queries: attention_decode.cu) against
 * the CPU library's lk_attention on its scalar reference (which test_attention.c checks against
 * float64), on the same bytes: the test builds q, K/V (contiguous, and the same rows in a paged cache
 * with shuffled block tables), the bias and the slopes on the host, runs the reference on them and
 * lk_cuda_attention on device copies, and compares.
 *
 * Cases: Sq 1..8 a sequence in varlen batches (empty sequences, Sq = 0, Sk = 0, Sk < Sq), MHA, GQA
 * and MQA, causal or not, windows, ALiBi, softcap, a bias with padded strides and -inf runs, lse,
 * every dtype, head_dim 1 to 256 (16-byte staging and the element path: odd dims, misaligned bases),
 * padded token strides, contiguous and paged (block sizes 1, 7 (which divides no length), 16, 32,
 * 64, 128; shuffled block tables), max_seqlen_q/k given or 0 (the host-checked path), planted NaN
 * keys and values (a NaN value where the causal mask hides it from some rows), groups too large for
 * one block (row chunks), and contexts of 4096+ keys under LK_CUDA_EMU_SMS 1 or 3 (one split or
 * two), 8 or 16, and 132 (many splits: the combine); the short sweep alternates 8 and 132 SMs, so
 * splits of a few hundred keys are combined too. Bad device indices (a block-table entry outside
 * the cache, offsets that break the rules, seqlens_k past the table) are reported at
 * lk_cuda_stream_synchronize naming the argument, the rest of the batch is right, the bad rows
 * untouched, and nothing is read out of bounds (device buffers end at guard pages).
 *
 * Checks, per case:
 *   - out within tolerance of the reference at the row's scale (its largest |out|, at least 1/16 of
 *     the case's: a row that cancels to near 0 still carries the rounding of its O(1) terms): f32
 *     2e-5 of it; f16 and bf16, 1 ulp of the dtype at it (both are the same f32 softmax summed in
 *     another order; the rounding to 16 bits can land on either side). NaN exactly where the
 *     reference has it; the largest errors seen are printed (docs/cuda/attention-decode.md keeps
 *     them);
 *   - lse within 2e-5 (1 + |lse|), -inf and NaN exactly;
 *   - every element outside the rows (stride gaps) keeps its poison, and nothing else is written.
 * Argument checks run without a device too (they fail before any launch).
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_harness.h"
#include "test_harness.h"

#define MAX_SEQS 6

typedef struct decode_case {
  lk_dtype dtype;
  int num_seqs;
  int32_t sq[MAX_SEQS], sk[MAX_SEQS];
  int64_t num_heads, num_kv_heads, head_dim;
  int64_t block_size; /* 0: contiguous K/V */
  bool causal;
  int64_t window_left, window_right;
  bool alibi, bias, lse;
  float softcap, scale;
  int64_t q_pad, kv_pad, out_pad; /* token strides are the row plus these */
  int64_t kv_offset;              /* elements the contiguous k and v bases are moved by (1: misaligned) */
  bool give_max;                  /* max_seqlen_q/k given (else 0: the host reads the lengths back) */
  int sms;                        /* LK_CUDA_EMU_SMS for the call; 0: leave it */
  int64_t bias_mask_width;        /* -inf in the bias where (j / width + t + h) % 3 == 0; 0: none */
  int64_t nan_k, nan_v;           /* key (value) token (over all sequences) given a NaN in head 0's last element; -1: none */
} decode_case;

/* the largest error seen, per dtype: f32 relative to the row's scale; 16-bit in ulps at it */
static double worst_out[3], worst_lse;
static long cases_run;

static int dtype_index(lk_dtype dtype) { return dtype == LK_DTYPE_F32 ? 0 : dtype == LK_DTYPE_F16 ? 1 : 2; }

/* ---- the inputs, on the host --------------------------------------------------------------------- */

typedef struct host_inputs {
  int32_t cu_q[MAX_SEQS + 1], cu_k[MAX_SEQS + 1], seqlens_k[MAX_SEQS];
  int64_t total_q, total_k, max_sq, max_sk;
  int64_t q_stride, kv_stride, out_stride;
  size_t q_bytes, kv_bytes, out_bytes, lse_bytes, bias_bytes, cache_bytes, table_bytes;
  unsigned char *q, *k, *v; /* k and v: kv_offset elements, then total_k rows */
  float *slopes, *bias;
  int64_t bias_head_stride, bias_row_stride;
  /* paged */
  unsigned char *key_cache, *value_cache;
  int32_t *block_tables;
  int64_t num_blocks, max_blocks;
} host_inputs;

static void store(lk_dtype dtype, void *base, int64_t index, float value) { tensor_store(dtype, base, index, value); }

static void make_inputs(const decode_case *c, uint64_t seed, host_inputs *in) {
  rng r = rng_seeded(seed);
  memset(in, 0, sizeof *in);
  const size_t es = dtype_size(c->dtype);
  const int64_t q_row = c->num_heads * c->head_dim, kv_row = c->num_kv_heads * c->head_dim;
  for (int s = 0; s < c->num_seqs; s++) {
    in->cu_q[s + 1] = in->cu_q[s] + c->sq[s];
    in->cu_k[s + 1] = in->cu_k[s] + c->sk[s];
    in->seqlens_k[s] = c->sk[s];
    if (c->sq[s] > in->max_sq) in->max_sq = c->sq[s];
    if (c->sk[s] > in->max_sk) in->max_sk = c->sk[s];
  }
  in->total_q = in->cu_q[c->num_seqs];
  in->total_k = in->cu_k[c->num_seqs];
  in->q_stride = q_row + c->q_pad;
  in->kv_stride = kv_row + c->kv_pad;
  in->out_stride = q_row + c->out_pad;
  in->q_bytes = (size_t)(in->total_q * in->q_stride + 1) * es;
  in->kv_bytes = (size_t)(c->kv_offset + in->total_k * in->kv_stride + 1) * es;
  in->out_bytes = (size_t)(in->total_q * in->out_stride + 1) * es;
  in->lse_bytes = (size_t)(in->total_q * c->num_heads + 1) * sizeof(float);
  in->q = malloc(in->q_bytes);
  in->k = malloc(in->kv_bytes);
  in->v = malloc(in->kv_bytes);
  tensor_poison(c->dtype, in->q, (int64_t)(in->q_bytes / es));
  tensor_poison(c->dtype, in->k, (int64_t)(in->kv_bytes / es));
  tensor_poison(c->dtype, in->v, (int64_t)(in->kv_bytes / es));
  for (int64_t t = 0; t < in->total_q; t++)
    for (int64_t e = 0; e < q_row; e++) store(c->dtype, in->q, t * in->q_stride + e, rng_uniform(&r, -1.5f, 1.5f));
  for (int64_t t = 0; t < in->total_k; t++)
    for (int64_t e = 0; e < kv_row; e++) {
      store(c->dtype, in->k, c->kv_offset + t * in->kv_stride + e, rng_uniform(&r, -1.0f, 1.0f));
      store(c->dtype, in->v, c->kv_offset + t * in->kv_stride + e, rng_uniform(&r, -1.0f, 1.0f));
    }
  if (c->nan_k >= 0) store(c->dtype, in->k, c->kv_offset + c->nan_k * in->kv_stride + c->head_dim - 1, NAN);
  if (c->nan_v >= 0) store(c->dtype, in->v, c->kv_offset + c->nan_v * in->kv_stride + c->head_dim - 1, NAN);
  in->slopes = malloc((size_t)c->num_heads * sizeof(float));
  for (int64_t h = 0; h < c->num_heads; h++) in->slopes[h] = rng_uniform(&r, 0.0f, 0.3f);
  if (c->bias) {
    /* NaN wherever the contract reads nothing (j >= Sk, the padding) */
    in->bias_row_stride = (in->max_sk > 0 ? in->max_sk : 1) + 3;
    in->bias_head_stride = in->total_q * in->bias_row_stride + 5;
    const int64_t count = c->num_heads * in->bias_head_stride + 1;
    in->bias_bytes = (size_t)count * sizeof(float);
    in->bias = malloc(in->bias_bytes);
    tensor_poison(LK_DTYPE_F32, in->bias, count);
    for (int64_t h = 0; h < c->num_heads; h++)
      for (int s = 0; s < c->num_seqs; s++)
        for (int64_t t = in->cu_q[s]; t < in->cu_q[s + 1]; t++)
          for (int64_t j = 0; j < in->seqlens_k[s]; j++) {
            float b = rng_uniform(&r, -2.0f, 2.0f);
            if (c->bias_mask_width > 0 && (j / c->bias_mask_width + t + h) % 3 == 0) b = -INFINITY;
            in->bias[h * in->bias_head_stride + t * in->bias_row_stride + j] = b;
          }
  }
  if (c->block_size > 0) {
    const int64_t bs = c->block_size;
    int64_t needed = 0;
    in->max_blocks = 1;
    for (int s = 0; s < c->num_seqs; s++) {
      const int64_t n = (in->seqlens_k[s] + bs - 1) / bs;
      needed += n;
      if (n + 1 > in->max_blocks) in->max_blocks = n + 1; /* a spare entry */
    }
    in->num_blocks = 2 * needed + 3;
    int32_t *ids = malloc((size_t)in->num_blocks * sizeof *ids);
    for (int64_t i = 0; i < in->num_blocks; i++) ids[i] = (int32_t)i;
    for (int64_t i = in->num_blocks - 1; i > 0; i--) {
      const int64_t j = rng_below(&r, (uint32_t)(i + 1));
      const int32_t t = ids[i];
      ids[i] = ids[j];
      ids[j] = t;
    }
    const int64_t elements = in->num_blocks * bs * kv_row;
    in->cache_bytes = (size_t)elements * es;
    in->key_cache = malloc(in->cache_bytes);
    in->value_cache = malloc(in->cache_bytes);
    tensor_poison(c->dtype, in->key_cache, elements); /* unused slots NaN: reading one shows */
    tensor_poison(c->dtype, in->value_cache, elements);
    in->table_bytes = (size_t)(c->num_seqs * in->max_blocks + 1) * sizeof(int32_t);
    in->block_tables = malloc(in->table_bytes);
    int64_t next = 0;
    for (int s = 0; s < c->num_seqs; s++) {
      const int64_t n = (in->seqlens_k[s] + bs - 1) / bs;
      for (int64_t b = 0; b < in->max_blocks; b++)
        in->block_tables[s * in->max_blocks + b] = b < n ? ids[next++] : ids[(s * 7 + b) % in->num_blocks];
      for (int64_t j = 0; j < in->seqlens_k[s]; j++) {
        const int64_t slot = (int64_t)in->block_tables[s * in->max_blocks + j / bs] * bs + j % bs;
        const int64_t token = in->cu_k[s] + j;
        memcpy(in->key_cache + (size_t)(slot * kv_row) * es, in->k + (size_t)(c->kv_offset + token * in->kv_stride) * es,
               (size_t)kv_row * es);
        memcpy(in->value_cache + (size_t)(slot * kv_row) * es, in->v + (size_t)(c->kv_offset + token * in->kv_stride) * es,
               (size_t)kv_row * es);
      }
    }
    free(ids);
  }
}

static void free_inputs(host_inputs *in) {
  free(in->q);
  free(in->k);
  free(in->v);
  free(in->slopes);
  free(in->bias);
  free(in->key_cache);
  free(in->value_cache);
  free(in->block_tables);
}

/* The call's parameters over the given buffers (host or device copies of the same bytes). */
typedef struct buffers {
  void *q, *k, *v, *out, *key_cache, *value_cache;
  float *lse, *bias, *slopes;
  int32_t *cu_q, *cu_k, *seqlens_k, *block_tables;
} buffers;

static lk_attention_params params_for(const decode_case *c, const host_inputs *in, const buffers *b) {
  const size_t es = dtype_size(c->dtype);
  lk_attention_params p;
  memset(&p, 0, sizeof p);
  p.q = b->q;
  p.out = b->out;
  p.lse = c->lse ? b->lse : NULL;
  p.cu_seqlens_q = b->cu_q;
  if (c->block_size > 0) {
    p.seqlens_k = b->seqlens_k;
    p.cache = (lk_paged_kv_cache){b->key_cache, b->value_cache, in->num_blocks, c->block_size, c->num_kv_heads, c->head_dim, c->dtype};
    p.block_tables = b->block_tables;
    p.max_blocks_per_seq = in->max_blocks;
  } else {
    p.k = (const unsigned char *)b->k + (size_t)c->kv_offset * es;
    p.v = (const unsigned char *)b->v + (size_t)c->kv_offset * es;
    p.cu_seqlens_k = b->cu_k;
    p.k_stride = in->kv_stride;
    p.v_stride = in->kv_stride;
  }
  p.num_seqs = c->num_seqs;
  p.max_seqlen_q = c->give_max ? (in->max_sq > 0 ? in->max_sq : 1) : 0;
  p.max_seqlen_k = c->give_max ? (in->max_sk > 0 ? in->max_sk : 1) : 0;
  p.num_heads = c->num_heads;
  p.num_kv_heads = c->num_kv_heads;
  p.head_dim = c->head_dim;
  p.q_stride = in->q_stride;
  p.out_stride = in->out_stride;
  p.scale = c->scale;
  p.softcap = c->softcap;
  p.window_left = c->window_left;
  p.window_right = c->window_right;
  p.alibi_slopes = c->alibi ? b->slopes : NULL;
  p.bias = c->bias ? b->bias : NULL;
  p.bias_head_stride = c->bias ? in->bias_head_stride : 0;
  p.bias_row_stride = c->bias ? in->bias_row_stride : 0;
  p.flags = c->causal ? LK_ATTENTION_CAUSAL : 0u;
  p.dtype = c->dtype;
  return p;
}

static buffers host_buffers(host_inputs *in, void *out, float *lse) {
  buffers b = {in->q, in->k, in->v, out, in->key_cache, in->value_cache, lse, in->bias, in->slopes,
               in->cu_q, in->cu_k, in->seqlens_k, in->block_tables};
  return b;
}

static buffers device_buffers(const decode_case *c, const host_inputs *in, const void *out_poison, const float *lse_poison) {
  buffers b;
  memset(&b, 0, sizeof b);
  b.q = device_mirror(in->q, in->q_bytes);
  if (c->block_size > 0) {
    b.key_cache = device_mirror(in->key_cache, in->cache_bytes);
    b.value_cache = device_mirror(in->value_cache, in->cache_bytes);
    b.block_tables = device_mirror(in->block_tables, in->table_bytes);
    b.seqlens_k = device_mirror(in->seqlens_k, sizeof(int32_t) * (size_t)c->num_seqs);
  } else {
    b.k = device_mirror(in->k, in->kv_bytes);
    b.v = device_mirror(in->v, in->kv_bytes);
    b.cu_k = device_mirror(in->cu_k, sizeof(int32_t) * (size_t)(c->num_seqs + 1));
  }
  b.cu_q = device_mirror(in->cu_q, sizeof(int32_t) * (size_t)(c->num_seqs + 1));
  b.out = device_mirror(out_poison, in->out_bytes);
  b.lse = device_mirror(lse_poison, in->lse_bytes);
  if (c->bias) b.bias = device_mirror(in->bias, in->bias_bytes);
  b.slopes = device_mirror(in->slopes, (size_t)c->num_heads * sizeof(float));
  return b;
}

static void free_device(buffers *b) {
  void *all[] = {b->q, b->k, b->v, b->out, b->key_cache, b->value_cache, b->lse, b->bias, b->slopes,
                 b->cu_q, b->cu_k, b->seqlens_k, b->block_tables};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) device_free(all[i]);
}

static void set_sms(int sms) {
  if (sms <= 0) return;
  char text[16];
  snprintf(text, sizeof text, "%d", sms);
  setenv("LK_CUDA_EMU_SMS", text, 1);
}

/* ---- comparing ------------------------------------------------------------------------------------ */

/* Rows [token, head] of the reference (want) against the kernel's (got); tokens outside [t0, t1)
 * and every element outside a row must keep the poison (both buffers started from it). Returns
 * the number of bad elements. */
static int64_t compare_outputs(const decode_case *c, const host_inputs *in, const unsigned char *want, const unsigned char *got,
                               const float *want_lse, const float *got_lse, const bool *token_checked) {
  const int64_t hd = c->head_dim, H = c->num_heads, es = (int64_t)dtype_size(c->dtype);
  const int di = dtype_index(c->dtype);
  int64_t bad = 0;
  /* bytes outside the rows, and rows not checked, bit for bit */
  for (int64_t x = 0; x < (int64_t)(in->out_bytes / (size_t)es); x++) {
    const int64_t t = x / in->out_stride, col = x % in->out_stride;
    if (t < in->total_q && col < H * hd && token_checked[t]) continue;
    if (tensor_bits(c->dtype, want, x) != tensor_bits(c->dtype, got, x) && bad++ < 3)
      CHECKF(false, "out element %lld (token %lld, column %lld) differs from the untouched bits", (long long)x, (long long)t,
             (long long)col);
  }
  double case_scale = 0.0;
  for (int64_t t = 0; t < in->total_q; t++)
    for (int64_t x = 0; x < H * hd && token_checked[t]; x++) {
      const double w = fabs((double)tensor_load(c->dtype, want, t * in->out_stride + x));
      if (w > case_scale) case_scale = w; /* NaN ignored */
    }
  for (int64_t t = 0; t < in->total_q; t++) {
    if (!token_checked[t]) continue;
    for (int64_t h = 0; h < H; h++) {
      const int64_t base = t * in->out_stride + h * hd;
      double scale = case_scale / 16.0; /* a row that cancels to near 0 still carries its terms' rounding */
      for (int64_t e = 0; e < hd; e++) {
        const double w = fabs((double)tensor_load(c->dtype, want, base + e));
        if (w > scale) scale = w;
      }
      for (int64_t e = 0; e < hd; e++) {
        const float w = tensor_load(c->dtype, want, base + e), g = tensor_load(c->dtype, got, base + e);
        if (isnan(w) || isnan(g)) {
          if (isnan(w) != isnan(g) && bad++ < 3)
            CHECKF(false, "out[%lld][%lld][%lld]: %g, reference %g", (long long)t, (long long)h, (long long)e, (double)g, (double)w);
          continue;
        }
        const double err = fabs((double)g - (double)w);
        const double unit = c->dtype == LK_DTYPE_F32 ? (scale > 0.0 ? scale : 1e-30) : dtype_ulp(c->dtype, scale > 0.0 ? scale : 1e-30);
        const double measured = err / unit;
        if (measured > worst_out[di]) worst_out[di] = measured;
        const double limit = c->dtype == LK_DTYPE_F32 ? 2e-5 : 1.0;
        if (!(measured <= limit) && bad++ < 3)
          CHECKF(false, "out[%lld][%lld][%lld]: %.9g, reference %.9g (row scale %g)", (long long)t, (long long)h, (long long)e,
                 (double)g, (double)w, scale);
      }
    }
  }
  if (c->lse) {
    for (int64_t x = 0; x < in->total_q * H + 1; x++) {
      const int64_t t = x / H;
      const float w = want_lse[x], g = got_lse[x];
      if (x == in->total_q * H || !token_checked[t]) {
        if (memcmp(&w, &g, sizeof w) != 0 && bad++ < 3) CHECKF(false, "lse[%lld]: written outside the rows", (long long)x);
        continue;
      }
      if (isnan(w) || isnan(g) || isinf(w) || isinf(g)) {
        if (!(isnan(w) && isnan(g)) && w != g && bad++ < 3) CHECKF(false, "lse[%lld]: %g, reference %g", (long long)x, (double)g, (double)w);
        continue;
      }
      const double err = fabs((double)g - (double)w) / (1.0 + fabs((double)w));
      if (err > worst_lse) worst_lse = err;
      if (!(err <= 2e-5) && bad++ < 3) CHECKF(false, "lse[%lld]: %.9g, reference %.9g", (long long)x, (double)g, (double)w);
    }
  }
  return bad;
}

/* ---- one case -------------------------------------------------------------------------------------- */

static void run_case(const decode_case *c, uint64_t seed, const char *label) {
  check_context_push("%s: %s, %lld/%lld heads, head_dim %lld, %s%lld, causal %d, window (%lld, %lld), alibi %d, softcap %g, bias %d "
                     "(mask %lld), lse %d, scale %g, pads %lld/%lld/%lld, kv offset %lld, max given %d, SMs %d, NaN k %lld v %lld",
                     label, dtype_label(c->dtype), (long long)c->num_heads, (long long)c->num_kv_heads, (long long)c->head_dim,
                     c->block_size > 0 ? "paged, block " : "contiguous ", (long long)c->block_size, (int)c->causal,
                     (long long)c->window_left, (long long)c->window_right, (int)c->alibi, (double)c->softcap, (int)c->bias,
                     (long long)c->bias_mask_width, (int)c->lse, (double)c->scale, (long long)c->q_pad, (long long)c->kv_pad,
                     (long long)c->out_pad, (long long)c->kv_offset, (int)c->give_max, c->sms, (long long)c->nan_k, (long long)c->nan_v);
  host_inputs in;
  make_inputs(c, seed, &in);
  const size_t es = dtype_size(c->dtype);
  unsigned char *want = malloc(in.out_bytes), *got = malloc(in.out_bytes), *poison = malloc(in.out_bytes);
  float *want_lse = malloc(in.lse_bytes), *got_lse = malloc(in.lse_bytes), *lse_poison = malloc(in.lse_bytes);
  tensor_poison(c->dtype, poison, (int64_t)(in.out_bytes / es));
  tensor_poison(LK_DTYPE_F32, lse_poison, (int64_t)(in.lse_bytes / sizeof(float)));
  memcpy(want, poison, in.out_bytes);
  memcpy(want_lse, lse_poison, in.lse_bytes);

  buffers hb = host_buffers(&in, want, want_lse);
  lk_attention_params hp = params_for(c, &in, &hb);
  CHECK_STATUS(lk_attention(reference_context(), &hp), LK_OK);

  buffers db = device_buffers(c, &in, poison, lse_poison);
  lk_attention_params dp = params_for(c, &in, &db);
  set_sms(c->sms);
  CHECK_STATUS(lk_cuda_attention(cuda_test_stream(), &dp), LK_OK);
  cuda_test_sync();
  host_from_device(got, db.out, in.out_bytes);
  host_from_device(got_lse, db.lse, in.lse_bytes);

  bool *checked = malloc((size_t)in.total_q + 1);
  memset(checked, 1, (size_t)in.total_q + 1);
  const int64_t bad = compare_outputs(c, &in, want, got, want_lse, got_lse, checked);
  CHECKF(bad == 0, "%lld elements outside the tolerance", (long long)bad);
  cases_run++;

  free(checked);
  free_device(&db);
  free(want);
  free(got);
  free(poison);
  free(want_lse);
  free(got_lse);
  free(lse_poison);
  free_inputs(&in);
  check_context_pop();
}

static decode_case base_case(lk_dtype dtype, int64_t heads, int64_t kv_heads, int64_t head_dim) {
  decode_case c;
  memset(&c, 0, sizeof c);
  c.dtype = dtype;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.window_left = c.window_right = -1;
  c.give_max = true;
  c.nan_k = c.nan_v = -1;
  return c;
}

static void set_seqs(decode_case *c, int n, const int32_t *sq, const int32_t *sk) {
  c->num_seqs = n;
  for (int s = 0; s < n; s++) c->sq[s] = sq[s], c->sk[s] = sk[s];
}

/* ---- the sweep: short contexts, every option ---------------------------------------------------- */

typedef struct batch {
  int n;
  int32_t sq[MAX_SEQS], sk[MAX_SEQS];
} batch;

static const batch sweep_batches[] = {
    {1, {1}, {1}},
    {4, {1, 1, 1, 1}, {70, 0, 33, 129}},             /* decode batch with an empty cache */
    {3, {3, 0, 8}, {100, 9, 64}},                    /* speculative: Sq 3 and 8, an Sq = 0 */
    {5, {2, 5, 1, 0, 7}, {40, 5, 1, 0, 200}},         /* Sq = Sk, empty sequence */
    {2, {6, 4}, {3, 0}},                              /* Sk < Sq: early queries see nothing (causal) */
    {3, {8, 1, 2}, {300, 257, 31}},
};

static void test_sweep(void) {
  static const int64_t head_dims[] = {64, 128, 80, 1, 96, 256, 17, 4, 128, 40, 8, 160, 12, 200, 33};
  static const int64_t shapes[][2] = {{4, 1}, {8, 2}, {3, 3}, {6, 2}, {16, 2}, {2, 1}, {8, 1}};
  static const int64_t windows[][2] = {{-1, -1}, {5, -1}, {20, 3}, {0, 0}, {-1, 2}};
  static const int64_t blocks[] = {0, 16, 1, 7, 32};
  const lk_dtype dtypes[] = {LK_DTYPE_BF16, LK_DTYPE_F16, LK_DTYPE_F32};
  uint64_t seed = 1000;
  for (int k = 0; k < 150; k++) {
    const int64_t *shape = shapes[(k / 3) % 7];
    decode_case c = base_case(dtypes[k % 3], shape[0], shape[1], head_dims[(k * 7 + k / 15) % 15]);
    const batch *b = &sweep_batches[k % 6];
    set_seqs(&c, b->n, b->sq, b->sk);
    c.block_size = blocks[(k / 2) % 5];
    c.causal = (k / 4) % 2 == 0;
    const int64_t *w = windows[(k / 5) % 5];
    c.window_left = w[0];
    c.window_right = w[1];
    c.alibi = k % 7 == 2;
    c.softcap = k % 5 == 3 ? 2.5f : 0.0f;
    c.bias = k % 6 == 1 || k % 11 == 4;
    c.bias_mask_width = c.bias && k % 2 ? 4 : 0;
    c.lse = k % 3 != 1;
    c.scale = k % 8 == 5 ? 0.3f : 0.0f;
    c.q_pad = k % 4 == 1 ? 8 : 0;
    c.kv_pad = k % 5 == 2 ? 16 : k % 5 == 4 ? 3 : 0;
    c.out_pad = k % 3 == 2 ? 5 : 0;
    c.kv_offset = c.block_size == 0 && k % 9 == 4 ? 1 : 0;
    c.give_max = k % 5 != 1;
    c.sms = k % 2 ? 132 : 8; /* many blocks wanted: splits even of a few hundred keys */
    char label[64];
    snprintf(label, sizeof label, "sweep %d", k);
    run_case(&c, seed++, label);
  }
  set_sms(8);
}

/* NaN rules: a NaN key makes every row that sees it NaN; a NaN value only the elements of rows that
 * see it: planted where the causal mask hides it from the sequence's earlier queries. */
static void test_special_values(void) {
  const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_BF16, LK_DTYPE_F16};
  for (int k = 0; k < 6; k++) {
    decode_case c = base_case(dtypes[k % 3], 8, 2, 64);
    const int32_t sq[] = {4, 1, 3}, sk[] = {90, 50, 40};
    set_seqs(&c, 3, sq, sk);
    c.causal = true;
    c.lse = true;
    c.block_size = k % 2 ? 16 : 0;
    /* the last key of sequence 0 (seen only by its last query); key 10 of sequence 1 */
    c.nan_v = k < 3 ? 89 : 90 + 10;
    c.nan_k = k < 3 ? 90 + 10 : 89;
    if (k == 4) c.nan_k = -1;
    c.bias = k >= 3;
    c.bias_mask_width = k >= 3 ? 5 : 0;
    run_case(&c, 77 + (uint64_t)k, "special values");
  }
}

/* Long contexts: one or two splits (1 SM), many splits and the combine (132 SMs), paged and not. */
static void test_long(void) {
  typedef struct {
    lk_dtype dtype;
    int64_t heads, kv_heads, head_dim, block_size;
    int n;
    int32_t sq[3], sk[3];
    int sms;
    bool causal, bias, alibi;
    int64_t window_left;
    float softcap;
  } long_case;
  static const long_case cases[] = {
      /* Llama-3-8B's heads: one long and one short sequence, split (132 SMs) and not (1 SM) */
      {LK_DTYPE_BF16, 32, 8, 128, 16, 2, {1, 1}, {4100, 300}, 132, true, false, false, -1, 0.0f},
      {LK_DTYPE_BF16, 32, 8, 128, 16, 2, {1, 1}, {4100, 300}, 1, true, false, false, -1, 0.0f},
      /* speculative decoding over MQA: 4 queries x 8 heads */
      {LK_DTYPE_F16, 8, 1, 128, 0, 1, {4}, {5000}, 132, true, false, true, -1, 0.0f},
      {LK_DTYPE_F16, 8, 1, 128, 0, 1, {4}, {5000}, 1, true, false, true, -1, 0.0f},
      {LK_DTYPE_F32, 4, 2, 64, 7, 3, {1, 2, 1}, {4097, 0, 2500}, 132, true, true, false, -1, 0.0f},
      {LK_DTYPE_BF16, 16, 2, 256, 1, 1, {2}, {4096}, 132, false, false, false, 1000, 30.0f},
      {LK_DTYPE_BF16, 6, 6, 96, 16, 2, {1, 8}, {4500, 1200}, 16, true, false, false, 700, 0.0f},
      {LK_DTYPE_F32, 8, 8, 128, 0, 1, {1}, {6000}, 3, false, false, false, -1, 0.0f},
      /* rows past one block: MQA with 32 heads x 8 queries (8 row chunks of 32), and 16 x 8 at head_dim 64 */
      {LK_DTYPE_BF16, 32, 1, 128, 16, 2, {8, 3}, {1500, 700}, 132, true, false, true, -1, 0.0f},
      {LK_DTYPE_F16, 32, 2, 64, 128, 2, {8, 1}, {900, 4200}, 8, true, true, false, -1, 0.0f},
      /* a batch of Llama shapes: blocks enough without splits (8 SMs), and with them */
      {LK_DTYPE_BF16, 32, 8, 128, 16, 3, {1, 2, 1}, {1500, 1100, 2047}, 8, true, false, false, -1, 0.0f},
      {LK_DTYPE_BF16, 32, 8, 128, 64, 3, {1, 2, 1}, {1500, 1100, 2047}, 132, true, false, false, -1, 50.0f},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const long_case *l = &cases[k];
    decode_case c = base_case(l->dtype, l->heads, l->kv_heads, l->head_dim);
    set_seqs(&c, l->n, l->sq, l->sk);
    c.block_size = l->block_size;
    c.sms = l->sms;
    c.causal = l->causal;
    c.bias = l->bias;
    c.bias_mask_width = l->bias ? 700 : 0;
    c.alibi = l->alibi;
    c.window_left = l->window_left;
    c.softcap = l->softcap;
    c.lse = true;
    c.give_max = k != 3;
    if (k == 2) c.nan_v = 4998; /* hidden from the first two queries by the causal mask */
    char label[32];
    snprintf(label, sizeof label, "long %zu", k);
    run_case(&c, 500 + k, label);
  }
  set_sms(8);
}

/* ---- bad device data ------------------------------------------------------------------------------
 * Given max_seqlen_q/k, the host checks nothing it would have to read back: the kernels find the bad
 * index, skip what it directs and report it at the next synchronisation. */
typedef enum bad_kind { BAD_TABLE_ENTRY, BAD_TABLE_NEGATIVE, BAD_SEQLENS_K, BAD_CU_Q, BAD_CU_K } bad_kind;

static void run_bad(bad_kind kind, lk_dtype dtype, int sms) {
  static const char *names[] = {"block_tables", "block_tables", "seqlens_k", "cu_seqlens_q", "cu_seqlens_k"};
  check_context_push("bad index: %s (%s, %d SMs)", names[kind], dtype_label(dtype), sms);
  decode_case c = base_case(dtype, 8, 2, 64);
  const int32_t sq[] = {1, 2, 1}, sk[] = {300, 1000, 50};
  set_seqs(&c, 3, sq, sk);
  c.block_size = kind <= BAD_SEQLENS_K ? 16 : 0;
  c.causal = true;
  c.lse = true;
  c.bias = kind <= BAD_TABLE_NEGATIVE; /* the reference masks the bad block's keys through it */
  host_inputs in;
  make_inputs(&c, 4242 + (uint64_t)kind, &in);
  const size_t es = dtype_size(dtype);
  unsigned char *want = malloc(in.out_bytes), *got = malloc(in.out_bytes), *poison = malloc(in.out_bytes);
  float *want_lse = malloc(in.lse_bytes), *got_lse = malloc(in.lse_bytes), *lse_poison = malloc(in.lse_bytes);
  tensor_poison(dtype, poison, (int64_t)(in.out_bytes / es));
  tensor_poison(LK_DTYPE_F32, lse_poison, (int64_t)(in.lse_bytes / sizeof(float)));
  memcpy(want, poison, in.out_bytes);
  memcpy(want_lse, lse_poison, in.lse_bytes);
  bool checked[8];
  memset(checked, 1, sizeof checked);

  /* the reference on the good data (sequence 1's bad block's keys hidden by the bias) */
  const int64_t bad_column = 37; /* keys 592..607 of sequence 1 */
  if (kind <= BAD_TABLE_NEGATIVE)
    for (int64_t h = 0; h < c.num_heads; h++)
      for (int64_t t = in.cu_q[1]; t < in.cu_q[2]; t++)
        for (int64_t j = bad_column * 16; j < bad_column * 16 + 16; j++) in.bias[h * in.bias_head_stride + t * in.bias_row_stride + j] = -INFINITY;
  buffers hb = host_buffers(&in, want, want_lse);
  lk_attention_params hp = params_for(&c, &in, &hb);
  CHECK_STATUS(lk_attention(reference_context(), &hp), LK_OK);
  if (kind <= BAD_TABLE_NEGATIVE) /* the device sees the plain bias over the bad entry instead */
    for (int64_t h = 0; h < c.num_heads; h++)
      for (int64_t t = in.cu_q[1]; t < in.cu_q[2]; t++)
        for (int64_t j = bad_column * 16; j < bad_column * 16 + 16; j++) in.bias[h * in.bias_head_stride + t * in.bias_row_stride + j] = 0.5f;

  /* then break the device's copy */
  int32_t bad_cu_q[4], bad_cu_k[4];
  memcpy(bad_cu_q, in.cu_q, sizeof bad_cu_q);
  memcpy(bad_cu_k, in.cu_k, sizeof bad_cu_k);
  switch (kind) {
  case BAD_TABLE_ENTRY: in.block_tables[1 * in.max_blocks + bad_column] = (int32_t)in.num_blocks + 3; break;
  case BAD_TABLE_NEGATIVE: in.block_tables[1 * in.max_blocks + bad_column] = -1; break;
  case BAD_SEQLENS_K: in.seqlens_k[1] = (int32_t)(in.max_blocks * 16 + 1); break;
  case BAD_CU_Q: bad_cu_q[2] = bad_cu_q[1] + 3; break;      /* sequence 1: 3 queries, past max_seqlen_q = 2 */
  case BAD_CU_K: bad_cu_k[2] = bad_cu_k[1] - 1; break;      /* sequence 1: decreasing offsets */
  }
  if (kind == BAD_CU_Q) {
    /* sequence 2 now starts at token 4 and runs to 4: nothing of it; tokens 1..3 untouched */
    memcpy(in.cu_q, bad_cu_q, sizeof bad_cu_q);
    in.cu_q[3] = bad_cu_q[2];
    checked[1] = checked[2] = checked[3] = false;
  }
  if (kind == BAD_CU_K) {
    memcpy(in.cu_k, bad_cu_k, sizeof bad_cu_k);
    checked[1] = checked[2] = false; /* sequence 1 skipped; sequence 2 reads keys from a moved start */
    checked[3] = false;
  }
  if (kind == BAD_SEQLENS_K) checked[1] = checked[2] = false;
  const int64_t real_max_sk = in.max_sk;
  buffers db = device_buffers(&c, &in, poison, lse_poison);
  lk_attention_params dp = params_for(&c, &in, &db);
  dp.max_seqlen_q = 2;
  dp.max_seqlen_k = real_max_sk + (kind == BAD_SEQLENS_K ? 100000 : 0);
  set_sms(sms);
  CHECK_STATUS(lk_cuda_attention(cuda_test_stream(), &dp), LK_OK);
  CHECK_INVALID(lk_cuda_stream_synchronize(cuda_test_stream()), names[kind]);
  CHECK_STATUS(lk_cuda_stream_synchronize(cuda_test_stream()), LK_OK); /* reported once */
  host_from_device(got, db.out, in.out_bytes);
  host_from_device(got_lse, db.lse, in.lse_bytes);
  in.total_q = 4;
  if (kind == BAD_CU_Q) {
    /* the expected bytes: rows 1..3 keep the poison; token 0 as the reference */
    for (int64_t t = 1; t < 4; t++) {
      memcpy(want + (size_t)(t * in.out_stride) * es, poison + (size_t)(t * in.out_stride) * es, (size_t)in.out_stride * es);
      memcpy(want_lse + t * c.num_heads, lse_poison, (size_t)c.num_heads * sizeof(float));
    }
  }
  if (kind == BAD_SEQLENS_K || kind == BAD_CU_K)
    for (int64_t t = 1; t < 3; t++) {
      memcpy(want + (size_t)(t * in.out_stride) * es, poison + (size_t)(t * in.out_stride) * es, (size_t)in.out_stride * es);
      memcpy(want_lse + t * c.num_heads, lse_poison, (size_t)c.num_heads * sizeof(float));
    }
  if (kind == BAD_CU_K) { /* token 3 (sequence 2) was computed from other keys: not compared */
    memcpy(want + (size_t)(3 * in.out_stride) * es, got + (size_t)(3 * in.out_stride) * es, (size_t)in.out_stride * es);
    memcpy(want_lse + 3 * c.num_heads, got_lse + 3 * c.num_heads, (size_t)c.num_heads * sizeof(float));
  }
  const int64_t bad = compare_outputs(&c, &in, want, got, want_lse, got_lse, checked);
  CHECKF(bad == 0, "%lld elements differ", (long long)bad);

  free_device(&db);
  free(want);
  free(got);
  free(poison);
  free(want_lse);
  free(got_lse);
  free(lse_poison);
  free_inputs(&in);
  check_context_pop();
}

static void test_bad_indices(void) {
  for (int kind = BAD_TABLE_ENTRY; kind <= BAD_CU_K; kind++) {
    run_bad((bad_kind)kind, kind % 2 ? LK_DTYPE_BF16 : LK_DTYPE_F32, 1);
    run_bad((bad_kind)kind, LK_DTYPE_F16, 132); /* split, then combined */
  }
  set_sms(8);

  /* max_seqlen not given: the host reads the indices back and refuses the call, naming the entry */
  decode_case c = base_case(LK_DTYPE_BF16, 4, 1, 64);
  const int32_t sq[] = {1, 1}, sk[] = {40, 20};
  set_seqs(&c, 2, sq, sk);
  c.block_size = 16;
  c.give_max = false;
  host_inputs in;
  make_inputs(&c, 9, &in);
  in.block_tables[in.max_blocks + 1] = -5;
  unsigned char *poison = malloc(in.out_bytes), *got = malloc(in.out_bytes);
  float lse_poison[16];
  tensor_poison(c.dtype, poison, (int64_t)(in.out_bytes / dtype_size(c.dtype)));
  tensor_poison(LK_DTYPE_F32, lse_poison, 16);
  buffers db = device_buffers(&c, &in, poison, lse_poison);
  lk_attention_params dp = params_for(&c, &in, &db);
  CHECK_INVALID(lk_cuda_attention(cuda_test_stream(), &dp), "block_tables");
  host_from_device(got, db.out, in.out_bytes);
  CHECK(memcmp(got, poison, in.out_bytes) == 0);
  free_device(&db);
  free(poison);
  free(got);
  free_inputs(&in);
}

/* Sequences without queries: the call succeeds and writes nothing. */
static void test_no_queries(void) {
  decode_case c = base_case(LK_DTYPE_BF16, 4, 2, 64);
  const int32_t sq[] = {0, 0}, sk[] = {10, 0};
  set_seqs(&c, 2, sq, sk);
  for (int given = 0; given < 2; given++) {
    c.give_max = given != 0;
    run_case(&c, 31, "no queries");
  }
}

static void print_errors(void) {
  printf("decode: %ld cases; largest errors against the CPU reference: f32 %.3g of the row's scale, f16 %.3g ulp, bf16 %.3g ulp; "
         "lse %.3g relative\n",
         cases_run, worst_out[0], worst_out[1], worst_out[2], worst_lse);
}

int main(void) {
  const int devices = cuda_test_begin();
  if (devices > 0) {
    set_sms(8);
    run_timed("sweep", test_sweep);
    run_timed("special values", test_special_values);
    run_timed("no queries", test_no_queries);
    run_timed("long contexts", test_long);
    run_timed("bad indices", test_bad_indices);
    print_errors();
  }
  return cuda_test_finish("test_cuda_attention_decode", devices);
}
