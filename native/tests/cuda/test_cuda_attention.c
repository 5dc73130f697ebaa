/* lk_cuda_attention's prefill kernel (more than 8 queries in some sequence: attention_prefill.cu,
 * tensor cores) against float64 math, over the contract's options: varlen batches (empty sequences
 * too), contiguous and paged keys (block sizes 1, 16, 48; shuffled tables), MHA/GQA/MQA, causal,
 * windows, ALiBi, softcap, an additive bias with a -inf entry, LSE, every dtype, head dims 1..256
 * (each padded class, and sizes that are not multiples of 8: the element-wise loads), strides, and
 * max_seqlen_q/k given or 0 (read back).
 *
 * Tolerance, FlashAttention's rule (tests/test_flash_attn.py), per case and per output:
 *     max |kernel - ref64| <= 2 * max |naive - ref64| + atol
 * ref64: the contract in float64 on the inputs as the kernel sees them (16-bit values; f32 inputs
 * as given). naive: the textbook computation in the kernel's precision: q, k, v rounded to the
 * operand type (bf16 for f32 inputs), scores and softmax in f32 from a row max, P rounded to the
 * operand type before the product with v (as tensor cores take it), sums in f32, out rounded once.
 * atol: 1e-5 (f32 out), 1 ulp of the dtype at the output's max magnitude (16-bit); the lse
 * compares the same way with atol 1e-5. Rows that see no key: out exactly 0, lse -inf.
 *
 * The decode kernel (at most 8 queries a sequence) has its own test, test_cuda_attention_decode.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_harness.h"
#include "test_harness.h"

typedef struct att_case {
  int num_seqs;
  int sq[4], sk[4];
  int num_heads, num_kv_heads, head_dim;
  int causal;
  int window_left, window_right;
  int alibi, bias, lse, softcap;
  int paged, block_size;
  int pad;          /* extra elements per token row (strides) */
  int give_bounds;  /* pass max_seqlen_q/k (else 0: read back) */
  lk_dtype dtype;
} att_case;

static float operand_round(lk_dtype dtype, float v) {
  return dtype == LK_DTYPE_F16 ? dtype_round(LK_DTYPE_F16, v) : dtype_round(LK_DTYPE_BF16, v);
}

typedef struct att_data {
  const att_case *c;
  int total_q, total_k;
  int cu_q[5], cu_k[5];
  int64_t q_stride, kv_stride, out_stride;
  float *qf, *kf, *vf;  /* the inputs as values (dtype-rounded), [token][head][dim] with strides */
  float *bias;          /* [heads][total_q][max_sk] */
  int64_t bias_row_stride, bias_head_stride;
  float slopes[64];
} att_data;

/* the row's visible keys as the contract defines them */
static void visible(const att_case *c, int64_t pos, int64_t sk, int64_t *lo, int64_t *hi) {
  *lo = 0;
  *hi = sk - 1;
  if (c->causal && pos < *hi) *hi = pos;
  if (c->window_left >= 0 && pos - c->window_left > *lo) *lo = pos - c->window_left;
  if (c->window_right >= 0 && pos + c->window_right < *hi) *hi = pos + c->window_right;
}

/* One query row, in float64 (naive = 0) or as the naive kernel-precision model (naive = 1). */
static void reference_row(const att_data *d, int s, int i, int h, int naive, double *out, double *lse) {
  const att_case *c = d->c;
  const int kvh = h / (c->num_heads / c->num_kv_heads), D = c->head_dim, sq = c->sq[s], sk = c->sk[s];
  const int64_t pos = i + sk - sq, token = d->cu_q[s] + i;
  int64_t lo, hi;
  visible(c, pos, sk, &lo, &hi);
  double *scores = malloc(sizeof(double) * (size_t)(sk > 0 ? sk : 1));
  double m = -INFINITY;
  const float scale = 1.0f / sqrtf((float)D);
  for (int64_t j = 0; j < sk; j++) {
    scores[j] = -INFINITY;
    if (j < lo || j > hi) continue;
    const float *qr = d->qf + token * d->q_stride + h * D, *kr = d->kf + (d->cu_k[s] + j) * d->kv_stride + kvh * D;
    double score;
    if (naive) {
      float dot = 0.0f;
      for (int e = 0; e < D; e++) dot += operand_round(c->dtype, qr[e]) * operand_round(c->dtype, kr[e]);
      float sc = dot * scale;
      if (c->softcap) sc = (float)c->softcap * tanhf(sc / (float)c->softcap);
      if (c->alibi) sc -= d->slopes[h] * (float)(pos > j ? pos - j : j - pos);
      if (c->bias) sc += d->bias[h * d->bias_head_stride + token * d->bias_row_stride + j];
      score = sc;
    } else {
      double dot = 0.0;
      for (int e = 0; e < D; e++) dot += (double)qr[e] * kr[e];
      score = dot * scale;
      if (c->softcap) score = c->softcap * tanh(score / c->softcap);
      if (c->alibi) score -= (double)d->slopes[h] * (double)(pos > j ? pos - j : j - pos);
      if (c->bias) score += d->bias[h * d->bias_head_stride + token * d->bias_row_stride + j];
    }
    scores[j] = score;
    if (score > m) m = score;
  }
  double l = 0.0;
  for (int e = 0; e < D; e++) out[e] = 0.0;
  if (m > -INFINITY) {
    for (int64_t j = lo < 0 ? 0 : lo; j <= hi && j < sk; j++) {
      if (!(scores[j] > -INFINITY)) continue;
      const float *vr = d->vf + (d->cu_k[s] + j) * d->kv_stride + kvh * D;
      if (naive) {
        const float p = expf((float)(scores[j] - m));
        l = (float)l + p;
        const float pr = operand_round(c->dtype, p);
        for (int e = 0; e < D; e++) out[e] = (float)out[e] + pr * operand_round(c->dtype, vr[e]);
      } else {
        const double p = exp(scores[j] - m);
        l += p;
        for (int e = 0; e < D; e++) out[e] += p * vr[e];
      }
    }
  }
  for (int e = 0; e < D; e++) out[e] = l > 0 ? out[e] / l : 0.0;
  if (naive)
    for (int e = 0; e < D; e++) out[e] = dtype_round(c->dtype, (float)out[e]);
  *lse = l > 0 ? m + log(l) : -INFINITY;
  free(scores);
}

static void run_case(const att_case *c, uint64_t seed) {
  check_context_push("seqs %d (sq %d %d %d, sk %d %d %d) heads %d/%d dim %d causal %d window %d/%d alibi %d bias %d softcap %d paged %d bs %d pad %d bounds %d %s",
                     c->num_seqs, c->sq[0], c->sq[1], c->sq[2], c->sk[0], c->sk[1], c->sk[2], c->num_heads, c->num_kv_heads,
                     c->head_dim, c->causal, c->window_left, c->window_right, c->alibi, c->bias, c->softcap, c->paged,
                     c->block_size, c->pad, c->give_bounds, dtype_label(c->dtype));
  rng r = rng_seeded(seed);
  att_data d;
  memset(&d, 0, sizeof d);
  d.c = c;
  int max_sq = 0, max_sk = 0;
  for (int s = 0; s < c->num_seqs; s++) {
    d.cu_q[s + 1] = d.cu_q[s] + c->sq[s];
    d.cu_k[s + 1] = d.cu_k[s] + c->sk[s];
    max_sq = c->sq[s] > max_sq ? c->sq[s] : max_sq;
    max_sk = c->sk[s] > max_sk ? c->sk[s] : max_sk;
  }
  d.total_q = d.cu_q[c->num_seqs];
  d.total_k = d.cu_k[c->num_seqs];
  const int D = c->head_dim, H = c->num_heads, KH = c->num_kv_heads;
  d.q_stride = (int64_t)H * D + c->pad;
  d.out_stride = (int64_t)H * D + c->pad;
  d.kv_stride = (int64_t)KH * D + c->pad;
  const size_t es = dtype_size(c->dtype);
  const int64_t q_elems = (int64_t)(d.total_q > 0 ? d.total_q : 1) * d.q_stride, kv_elems = (int64_t)(d.total_k > 0 ? d.total_k : 1) * d.kv_stride;
  d.qf = calloc((size_t)q_elems, sizeof(float));
  d.kf = calloc((size_t)kv_elems, sizeof(float));
  d.vf = calloc((size_t)kv_elems, sizeof(float));
  unsigned char *q = malloc((size_t)q_elems * es), *k = malloc((size_t)kv_elems * es), *v = malloc((size_t)kv_elems * es);
  unsigned char *out = malloc((size_t)q_elems * es);
  tensor_poison(c->dtype, q, q_elems);
  tensor_poison(c->dtype, k, kv_elems);
  tensor_poison(c->dtype, v, kv_elems);
  tensor_poison(c->dtype, out, q_elems);
  for (int64_t tkn = 0; tkn < d.total_q; tkn++)
    for (int e = 0; e < H * D; e++) {
      const int64_t at = tkn * d.q_stride + e;
      tensor_store(c->dtype, q, at, rng_uniform(&r, -1.5f, 1.5f));
      d.qf[at] = tensor_load(c->dtype, q, at);
    }
  for (int64_t tkn = 0; tkn < d.total_k; tkn++)
    for (int e = 0; e < KH * D; e++) {
      const int64_t at = tkn * d.kv_stride + e;
      tensor_store(c->dtype, k, at, rng_uniform(&r, -1.5f, 1.5f));
      tensor_store(c->dtype, v, at, rng_uniform(&r, -1.0f, 1.0f));
      d.kf[at] = tensor_load(c->dtype, k, at);
      d.vf[at] = tensor_load(c->dtype, v, at);
    }
  for (int h = 0; h < H; h++) d.slopes[h] = 0.25f / (float)(h + 1);
  if (c->bias) {
    d.bias_row_stride = max_sk > 0 ? max_sk : 1;
    d.bias_head_stride = (int64_t)(d.total_q > 0 ? d.total_q : 1) * d.bias_row_stride;
    d.bias = malloc(sizeof(float) * (size_t)(H * d.bias_head_stride));
    for (int64_t e = 0; e < H * d.bias_head_stride; e++) d.bias[e] = rng_uniform(&r, -1.0f, 1.0f);
    if (d.total_q > 0 && max_sk > 1) d.bias[1] = -INFINITY; /* masks key 1 of token 0, head 0 */
  }

  /* device copies; the paged form scatters key rows over a shuffled block table */
  void *d_q = device_mirror(q, (size_t)q_elems * es), *d_out = device_mirror(out, (size_t)q_elems * es);
  void *d_k = NULL, *d_v = NULL, *d_kc = NULL, *d_vc = NULL, *d_tables = NULL, *d_lens = NULL;
  float *lse = malloc(sizeof(float) * (size_t)(d.total_q > 0 ? d.total_q : 1) * H);
  for (int64_t e = 0; e < (int64_t)(d.total_q > 0 ? d.total_q : 1) * H; e++) lse[e] = NAN;
  void *d_lse = c->lse ? device_mirror(lse, sizeof(float) * (size_t)(d.total_q > 0 ? d.total_q : 1) * H) : NULL;
  void *d_bias = c->bias ? device_mirror(d.bias, sizeof(float) * (size_t)(H * d.bias_head_stride)) : NULL;
  void *d_slopes = c->alibi ? device_mirror(d.slopes, sizeof(float) * (size_t)H) : NULL;
  void *d_cu_q = device_mirror(d.cu_q, sizeof(int) * (size_t)(c->num_seqs + 1));
  void *d_cu_k = NULL;
  int max_blocks = 1, num_blocks = 1;
  int32_t *tables = NULL;
  if (c->paged) {
    const int bs = c->block_size;
    max_blocks = (max_sk + bs - 1) / bs;
    if (max_blocks == 0) max_blocks = 1;
    num_blocks = c->num_seqs * max_blocks + 3;
    tables = malloc(sizeof(int32_t) * (size_t)(c->num_seqs * max_blocks));
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)num_blocks);
    for (int b = 0; b < num_blocks; b++) perm[b] = b;
    for (int b = num_blocks - 1; b > 0; b--) {
      const int o = (int)rng_below(&r, (uint32_t)(b + 1));
      const int32_t x = perm[b];
      perm[b] = perm[o];
      perm[o] = x;
    }
    for (int e = 0; e < c->num_seqs * max_blocks; e++) tables[e] = perm[e];
    const int64_t row = (int64_t)KH * D, cache_elems = (int64_t)num_blocks * bs * row;
    unsigned char *kc = malloc((size_t)cache_elems * es), *vc = malloc((size_t)cache_elems * es);
    tensor_poison(c->dtype, kc, cache_elems);
    tensor_poison(c->dtype, vc, cache_elems);
    for (int s = 0; s < c->num_seqs; s++)
      for (int j = 0; j < c->sk[s]; j++) {
        const int64_t slot = (int64_t)tables[s * max_blocks + j / bs] * bs + j % bs;
        memcpy(kc + slot * row * es, k + (d.cu_k[s] + j) * d.kv_stride * es, (size_t)row * es);
        memcpy(vc + slot * row * es, v + (d.cu_k[s] + j) * d.kv_stride * es, (size_t)row * es);
      }
    d_kc = device_mirror(kc, (size_t)cache_elems * es);
    d_vc = device_mirror(vc, (size_t)cache_elems * es);
    d_tables = device_mirror(tables, sizeof(int32_t) * (size_t)(c->num_seqs * max_blocks));
    d_lens = device_mirror(c->sk, sizeof(int) * (size_t)c->num_seqs);
    free(kc);
    free(vc);
    free(perm);
  } else {
    d_k = device_mirror(k, (size_t)kv_elems * es);
    d_v = device_mirror(v, (size_t)kv_elems * es);
    d_cu_k = device_mirror(d.cu_k, sizeof(int) * (size_t)(c->num_seqs + 1));
  }

  lk_attention_params p;
  memset(&p, 0, sizeof p);
  p.q = d_q;
  p.k = d_k;
  p.v = d_v;
  p.out = d_out;
  p.lse = d_lse;
  p.cu_seqlens_q = d_cu_q;
  p.cu_seqlens_k = d_cu_k;
  p.seqlens_k = d_lens;
  if (c->paged) {
    p.cache.key_cache = d_kc;
    p.cache.value_cache = d_vc;
    p.cache.num_blocks = num_blocks;
    p.cache.block_size = c->block_size;
    p.cache.num_kv_heads = KH;
    p.cache.head_dim = D;
    p.cache.dtype = c->dtype;
    p.block_tables = d_tables;
    p.max_blocks_per_seq = max_blocks;
  }
  p.num_seqs = c->num_seqs;
  p.max_seqlen_q = c->give_bounds ? max_sq : 0;
  p.max_seqlen_k = c->give_bounds ? max_sk : 0;
  p.num_heads = H;
  p.num_kv_heads = KH;
  p.head_dim = D;
  p.q_stride = d.q_stride;
  p.k_stride = d.kv_stride;
  p.v_stride = d.kv_stride;
  p.out_stride = d.out_stride;
  p.softcap = (float)c->softcap;
  p.window_left = c->window_left;
  p.window_right = c->window_right;
  p.alibi_slopes = d_slopes;
  p.bias = d_bias;
  p.bias_head_stride = d.bias_head_stride;
  p.bias_row_stride = d.bias_row_stride;
  p.flags = c->causal ? LK_ATTENTION_CAUSAL : 0;
  p.dtype = c->dtype;
  CHECK_STATUS(lk_cuda_attention(cuda_test_stream(), &p), LK_OK);
  cuda_test_sync();
  host_from_device(out, d_out, (size_t)q_elems * es);
  if (c->lse) host_from_device(lse, d_lse, sizeof(float) * (size_t)(d.total_q > 0 ? d.total_q : 1) * H);

  /* errors against float64, of the kernel and of the naive model */
  double err_kernel = 0, err_naive = 0, lse_kernel = 0, lse_naive = 0, out_max = 0;
  int64_t bad_empty = 0, gaps = 0;
  double *ref = malloc(sizeof(double) * (size_t)D), *nv = malloc(sizeof(double) * (size_t)D);
  for (int s = 0; s < c->num_seqs; s++)
    for (int i = 0; i < c->sq[s]; i++)
      for (int h = 0; h < H; h++) {
        double ref_lse, naive_lse;
        reference_row(&d, s, i, h, 0, ref, &ref_lse);
        reference_row(&d, s, i, h, 1, nv, &naive_lse);
        const int64_t token = d.cu_q[s] + i;
        for (int e = 0; e < D; e++) {
          const double got = tensor_load(c->dtype, out, token * d.out_stride + h * D + e);
          if (isinf(ref_lse) && got != 0.0) bad_empty++;
          err_kernel = fmax(err_kernel, isnan(got) ? INFINITY : fabs(got - ref[e]));
          err_naive = fmax(err_naive, fabs(nv[e] - ref[e]));
          out_max = fmax(out_max, fabs(ref[e]));
        }
        if (c->lse) {
          const double got = lse[token * H + h];
          if (isinf(ref_lse)) bad_empty += !(isinf(got) && got < 0);
          else {
            lse_kernel = fmax(lse_kernel, isnan(got) ? INFINITY : fabs(got - ref_lse));
            lse_naive = fmax(lse_naive, fabs(naive_lse - ref_lse));
          }
        }
      }
  for (int64_t tkn = 0; tkn < d.total_q; tkn++)
    for (int e = H * D; e < d.out_stride; e++) gaps += !tensor_is_poison(c->dtype, out, tkn * d.out_stride + e);
  const double atol = c->dtype == LK_DTYPE_F32 ? 1e-5 : dtype_ulp(c->dtype, out_max > 0 ? out_max : 1.0);
  CHECKF(err_kernel <= 2 * err_naive + atol, "out: max error %.3g, naive %.3g (atol %.3g)", err_kernel, err_naive, atol);
  if (c->lse) CHECKF(lse_kernel <= 2 * lse_naive + 1e-5, "lse: max error %.3g, naive %.3g", lse_kernel, lse_naive);
  CHECKF(bad_empty == 0, "%lld outputs of rows that see no key are not 0 (or lse not -inf)", (long long)bad_empty);
  CHECKF(gaps == 0, "%lld elements between rows of out were written", (long long)gaps);

  free(ref);
  free(nv);
  free(d.qf);
  free(d.kf);
  free(d.vf);
  free(d.bias);
  free(q);
  free(k);
  free(v);
  free(out);
  free(lse);
  free(tables);
  device_free(d_q);
  device_free(d_out);
  device_free(d_k);
  device_free(d_v);
  device_free(d_kc);
  device_free(d_vc);
  device_free(d_tables);
  device_free(d_lens);
  device_free(d_lse);
  device_free(d_bias);
  device_free(d_slopes);
  device_free(d_cu_q);
  device_free(d_cu_k);
  check_context_pop();
}

static att_case base_case(lk_dtype dtype, int head_dim) {
  att_case c;
  memset(&c, 0, sizeof c);
  c.num_seqs = 1;
  c.sq[0] = 70;
  c.sk[0] = 70;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = head_dim;
  c.window_left = c.window_right = -1;
  c.block_size = 16;
  c.give_bounds = 1;
  c.dtype = dtype;
  return c;
}

static void test_grid(void) {
  const lk_dtype dtypes[] = {LK_DTYPE_BF16, LK_DTYPE_F16, LK_DTYPE_F32};
  const int dims[] = {64, 128, 256, 40, 7};
  uint64_t seed = 1;
  for (int t = 0; t < 3; t++)
    for (int di = 0; di < 5; di++) {
      const int D = dims[di];
      att_case c = base_case(dtypes[t], D);
      run_case(&c, seed++);                    /* plain, one sequence */
      c.causal = 1;
      run_case(&c, seed++);                    /* causal, square */
      if (D > 128 && t > 0) continue;          /* the emulator's time: the big class in bf16 only */
      c.num_seqs = 3;                          /* varlen, bottom-right causal with a cached prefix, an empty sequence */
      c.sq[0] = 20, c.sk[0] = 90;
      c.sq[1] = 0, c.sk[1] = 5;
      c.sq[2] = 75, c.sk[2] = 75;
      c.num_heads = 4, c.num_kv_heads = 2;
      c.pad = D % 8 ? 0 : 8;
      c.lse = 1;
      run_case(&c, seed++);
      c.paged = 1;                             /* the same through a paged cache */
      c.block_size = t == 0 ? 16 : t == 1 ? 1 : 48;
      run_case(&c, seed++);
      c.paged = 0;
      c.give_bounds = 0;                       /* bounds read back */
      c.causal = 0;
      c.window_left = 17, c.window_right = 3;  /* sliding window */
      c.alibi = 1;
      c.softcap = 30;
      c.bias = 1;
      run_case(&c, seed++);
    }
}

/* Queries that see no key: more queries than keys under the causal mask (the first sq - sk rows),
 * and a sequence with keys but a window that excludes them all. */
static void test_empty_rows(void) {
  att_case c = base_case(LK_DTYPE_BF16, 64);
  c.causal = 1;
  c.sq[0] = 40;
  c.sk[0] = 12;
  c.lse = 1;
  run_case(&c, 900);
  c.causal = 0;
  c.sk[0] = 30;
  c.window_left = 0;
  c.window_right = 0; /* key position pos only: rows with pos < 0 see nothing */
  run_case(&c, 901);
}

/* A bad block-table entry and bad sequence offsets are reported at the synchronisation, naming the
 * argument, and nothing outside the buffers is touched (the emulator's guard pages). */
static void test_bad_indices(void) {
  enum { SQ = 20, D = 64, H = 1 };
  uint16_t q[SQ * D], out[SQ * D];
  for (int e = 0; e < SQ * D; e++) q[e] = 0x3f80; /* 1.0 in bf16 */
  int32_t cu_q[2] = {0, SQ}, lens[1] = {SQ}, tables[2] = {0, 7}; /* block 7 of 2 */
  void *d_q = device_mirror(q, sizeof q), *d_out = device_poisoned(sizeof out), *d_cu = device_mirror(cu_q, sizeof cu_q);
  void *d_lens = device_mirror(lens, sizeof lens), *d_tables = device_mirror(tables, sizeof tables);
  void *d_kc = device_mirror(q, sizeof q), *d_vc = device_mirror(q, sizeof q); /* 2 blocks of 16 rows (20 rows held) */
  lk_attention_params p;
  memset(&p, 0, sizeof p);
  p.q = d_q;
  p.out = d_out;
  p.cu_seqlens_q = d_cu;
  p.seqlens_k = d_lens;
  p.cache.key_cache = d_kc;
  p.cache.value_cache = d_vc;
  p.cache.num_blocks = 1;
  p.cache.block_size = 16;
  p.cache.num_kv_heads = 1;
  p.cache.head_dim = D;
  p.cache.dtype = LK_DTYPE_BF16;
  p.block_tables = d_tables;
  p.max_blocks_per_seq = 2;
  p.num_seqs = 1;
  p.max_seqlen_q = SQ;
  p.max_seqlen_k = SQ;
  p.num_heads = H;
  p.num_kv_heads = 1;
  p.head_dim = D;
  p.dtype = LK_DTYPE_BF16;
  CHECK_STATUS(lk_cuda_attention(cuda_test_stream(), &p), LK_OK);
  CHECK_INVALID(lk_cuda_stream_synchronize(cuda_test_stream()), "block_tables");
  CHECK_STATUS(lk_cuda_stream_synchronize(cuda_test_stream()), LK_OK); /* reported once */
  /* the same call with the bounds left to the host: refused before launching, as on the CPU */
  p.max_seqlen_q = p.max_seqlen_k = 0;
  CHECK_INVALID(lk_cuda_attention(cuda_test_stream(), &p), "block_tables");
  /* offsets past max_seqlen_q */
  int32_t long_cu[2] = {0, SQ};
  void *d_long = device_mirror(long_cu, sizeof long_cu);
  tables[1] = 0;
  void *d_ok_tables = device_mirror(tables, sizeof tables);
  p.block_tables = d_ok_tables;
  p.cu_seqlens_q = d_long;
  p.max_seqlen_q = 9; /* decode's limit is 8: 9 takes the prefill kernel */
  p.max_seqlen_k = SQ;
  CHECK_STATUS(lk_cuda_attention(cuda_test_stream(), &p), LK_OK);
  CHECK_INVALID(lk_cuda_stream_synchronize(cuda_test_stream()), "cu_seqlens_q");
  device_free(d_q);
  device_free(d_out);
  device_free(d_cu);
  device_free(d_lens);
  device_free(d_tables);
  device_free(d_kc);
  device_free(d_vc);
  device_free(d_long);
  device_free(d_ok_tables);
}

/* The host-side checks are the CPU's, before any launch, with or without a device. */
static void test_arguments(void) {
  static float dummy[64], key_cache[64], value_cache[64];
  int32_t cu[2] = {0, 1};
  lk_attention_params p;
  memset(&p, 0, sizeof p);
  p.q = dummy;
  p.k = dummy;
  p.v = dummy;
  p.out = dummy + 32;
  p.cu_seqlens_q = cu;
  p.cu_seqlens_k = cu;
  p.num_seqs = 1;
  p.max_seqlen_q = 1;
  p.max_seqlen_k = 1;
  p.num_heads = 2;
  p.num_kv_heads = 1;
  p.head_dim = 8;
  p.window_left = p.window_right = -1;
  p.dtype = LK_DTYPE_F32;
  CHECK_INVALID(lk_cuda_attention(NULL, NULL), "params");
  lk_attention_params bad = p;
  bad.head_dim = 0;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "head_dim");
  bad = p;
  bad.head_dim = 257;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "head_dim");
  bad = p;
  bad.num_kv_heads = 3;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "num_kv_heads");
  bad = p;
  bad.softcap = -1.0f;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "softcap");
  bad = p;
  bad.window_left = -2;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "window_left");
  bad = p;
  bad.bias = dummy;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "bias_row_stride");
  bad = p;
  bad.q = NULL;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "q");
  bad = p;
  bad.max_seqlen_q = -1;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "max_seqlen_q");
  bad = p;
  bad.q_stride = 8;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "q_stride");
  bad = p;
  bad.k = NULL;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "k");
  bad = p;
  bad.k_stride = 4;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "k_stride");
  bad = p;
  bad.flags = 2;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "flags");
  bad = p;
  bad.dtype = (lk_dtype)7;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "dtype");
  bad = p;
  bad.k = NULL;
  bad.v = NULL;
  bad.cache = (lk_paged_kv_cache){key_cache, value_cache, 2, 4, 1, 8, LK_DTYPE_BF16};
  bad.seqlens_k = cu;
  bad.block_tables = cu;
  bad.max_blocks_per_seq = 1;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "cache.dtype");
  bad.cache.dtype = LK_DTYPE_F32;
  bad.max_blocks_per_seq = 0;
  CHECK_INVALID(lk_cuda_attention(NULL, &bad), "max_blocks_per_seq");
  /* nothing to do: no sequences */
  bad = p;
  bad.num_seqs = 0;
  CHECK_STATUS(lk_cuda_attention(NULL, &bad), LK_OK);
}

int main(void) {
  const int devices = cuda_test_begin();
  run_timed("arguments", test_arguments);
  if (devices > 0) {
    run_timed("grid", test_grid);
    run_timed("empty rows", test_empty_rows);
    run_timed("bad indices", test_bad_indices);
  }
  return cuda_test_finish("test_cuda_attention", devices);
}
