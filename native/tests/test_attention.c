/* lk_attention on every ISA this CPU runs and 1 to 3 threads, against a float64 reference, with
 * contiguous keys and with the same keys in a paged cache; and its argument contract.
 *
 * The reference materialises every score of a (sequence, query, head) in float64:
 *     s_j = dot(q_i, k_j) * scale; softcap * tanh(s / softcap); - slope_h * |p - j|; + bias,
 * over the visible keys (causal j <= p, window p - left <= j <= p + right, -1 unbounded, with
 * p = i + Sk - Sq), a float64 softmax, out = sum_j p_j v_j, lse = log(sum_j exp(s_j)). A row that
 * sees no key (-inf in the bias hides a key) has out 0 and lse -inf; a NaN it sees gives NaN (in
 * the whole row for a key, in one element for a value), which the kernel must reproduce exactly
 * where the reference has it. Inputs are generated as floats, stored rounded to the dtype, and the
 * references read back the rounded values.
 *
 * Tolerance (FlashAttention's tests/test_flash_attn.py, as test_norm.c), per case, max-abs over
 * all outputs against the float64 reference:
 *     error(kernel) <= 2 * error(naive) + atol
 * "naive" is the textbook computation in f32: scores materialised in f32 (serial f32 dot, then
 * the same steps in f32), softmax in f32 with the max subtracted, f32 accumulation of p_j v_j,
 * the output rounded once to the dtype. atol: f32 1e-6 * max|ref|; 16-bit: 1 ulp of the dtype
 * at max|ref|. lse: |lse - ref| <= 2 * error(naive lse) + 1e-5 * (1 + |ref|); -inf exactly
 * where no key is visible.
 *
 * Cases are a deterministic pseudo-random selection (a hash of the case index per option) over
 * dtype x head_dim x GQA ratio x causal x window x ALiBi x softcap x bias x lse x batch shape
 * (varlen, empty sequences, Sq = 0 or Sk = 0, decode Sq = 1, chunked prefill Sq < Sk, Sq > Sk)
 * x row strides (gaps poisoned with NaN: reading them shows, writing them is caught). Inputs
 * are read-only guard-paged buffers; out and lse are poisoned before every run and every element
 * must be written. Each case runs on every ISA with 1, 2 and 3 threads (bit for bit the same),
 * and paged with block sizes 1, 16 and 32 (shuffled, non-contiguous block tables; unused slots
 * NaN), which must give the contiguous result bit for bit.
 *
 * The sweep's shapes (at most 33 keys) fit in one key tile and one query block of the tiled kernel
 * (docs/attention.md). Listed cases, through the same checks, cross its edges:
 *   long prefill   Sq = Sk = 150, 257, 300: several 64-key tiles and query blocks of 128 (token,
 *                  head) lanes, causal with and without windows (70, 0), (70, 5), non-causal
 *                  windows, ALiBi, softcap, bias, lse; GQA 1, 3, 4, 6 (not dividing 128) and 8;
 *                  head_dim 17, 24, 64, 80, 100, 128, 256; f32, f16, bf16. Varlen 5, 70, 1, 130,
 *                  where blocks would straddle sequence ends; chunked prefill 40 of 300 and 70 of
 *                  200; groups of 131, 136 and 144 query heads over one kv head (head chunks).
 *   long decode    Sq = 1 over 4097 keys (one work item: the flash-decoding split) and batches of
 *                  3 (Sk 2000, 5000, 3001; Sk 0, 3000, 1), one and several kv heads, causal and
 *                  not, window 1000, ALiBi, softcap, bias; a split decode with head chunks; 4
 *                  queries over 3000 keys. Paged block sizes 1 and 16 make 5000-entry tables.
 *   long special values  -inf in the bias over whole 64-key tiles of a prefill and over 700- and
 *                  1024-key runs of decodes (split parts with nothing visible; short rows seeing
 *                  nothing); a NaN key and a NaN value planted in a windowed prefill and in split
 *                  decodes, including a NaN key in the same tile as a window's edge but outside it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

#define MAX_THREADS GRID_MAX_THREADS
#define MAX_SEQS 5
#define CASE_COUNT 360

static lk_cpu_context *contexts[3][MAX_THREADS + 1];
static lk_cpu_context *auto_contexts[MAX_THREADS + 1];
static lk_isa isas[3];
static int isa_count;
static uint64_t base_seed = 0xA77E202500000001ull;
static long case_counter, kernel_calls, paged_calls;
static double worst_ratio[3][3];     /* ISA x dtype: error / bound */
static double worst_lse_ratio[3][3]; /* ISA x dtype */

typedef struct seq_pattern {
  int num_seqs;
  int32_t sq[MAX_SEQS], sk[MAX_SEQS];
  const char *label;
} seq_pattern;

/* The sweep draws from the first SWEEP_PATTERNS, all short (at most 33 keys). The rest are the long
 * shapes of the tiled and split paths (test_tiles, test_splits): several 64-key tiles, several query
 * blocks, blocks cut by sequence ends, long decodes. */
enum {
  SWEEP_PATTERNS = 10,
  PREFILL_300 = SWEEP_PATTERNS,
  PREFILL_150,
  PREFILL_257,
  VARLEN_STRADDLE,
  CHUNKED_300,
  HEAD_CHUNKS,
  DECODE_4097,
  DECODE_BATCH,
  DECODE_EMPTY,
  SPECULATIVE
};

static const seq_pattern patterns[] = {
    {1, {1}, {1}, "single token"},
    {3, {0, 7, 1}, {0, 7, 17}, "empty, prefill 7, decode over 17"},
    {3, {17, 0, 2}, {17, 5, 33}, "prefill 17, Sq=0 over 5, chunk 2 of 33"},
    {4, {1, 1, 1, 1}, {33, 7, 1, 0}, "decode batch (Sk 33, 7, 1, 0)"},
    {2, {7, 33}, {33, 33}, "chunked prefill 7 of 33, prefill 33"},
    {4, {2, 0, 17, 1}, {2, 0, 17, 2}, "ragged prefill with an empty sequence"},
    {2, {5, 7}, {0, 2}, "Sk = 0, Sq > Sk"},
    {1, {33}, {33}, "prefill 33"},
    {3, {0, 0, 0}, {0, 3, 0}, "no queries"},
    {5, {1, 2, 7, 1, 17}, {1, 7, 7, 33, 17}, "mixed"},
    [PREFILL_300] = {1, {300}, {300}, "prefill 300"},
    [PREFILL_150] = {1, {150}, {150}, "prefill 150"},
    [PREFILL_257] = {1, {257}, {257}, "prefill 257 (a last tile of one key)"},
    /* global tokens 0-4 | 5-74 | 75 | 76-205: a query block of 64 tokens, or of 16 or 10 at GQA 4 or 6,
     * runs into the next sequence unless cut */
    [VARLEN_STRADDLE] = {4, {5, 70, 1, 130}, {5, 70, 1, 130}, "prefill 5, 70, 1, 130"},
    [CHUNKED_300] = {2, {40, 70}, {300, 200}, "chunks 40 of 300, 70 of 200"},
    [HEAD_CHUNKS] = {2, {2, 67}, {9, 67}, "chunk 2 of 9, prefill 67"},
    [DECODE_4097] = {1, {1}, {4097}, "decode over 4097"},
    [DECODE_BATCH] = {3, {1, 1, 1}, {2000, 5000, 3001}, "decode batch (Sk 2000, 5000, 3001)"},
    [DECODE_EMPTY] = {3, {1, 1, 1}, {0, 3000, 1}, "decode batch (Sk 0, 3000, 1)"},
    [SPECULATIVE] = {2, {4, 1}, {3000, 2100}, "4 queries over 3000, decode over 2100"},
};

static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};
/* 256 in 1 of 9; 24, 100 and 17 are ragged for the vector kernels (a vector body and a scalar tail
 * on AVX2 and AVX-512; 17 also below one AVX-512 vector). */
static const int64_t head_dims[] = {8, 64, 80, 128, 24, 100, 17, 128, 256};
static const int64_t ratios[] = {1, 4, 8};
static const int64_t windows[][2] = {{-1, -1}, {4, -1}, {3, 2}};
static const float scales[] = {0.0f, 0.37f, 1.3f};
static const int64_t block_sizes[] = {1, 16, 32};

typedef struct attn_case {
  lk_dtype dtype;
  int64_t head_dim, num_heads, num_kv_heads;
  bool causal;
  int64_t window_left, window_right;
  bool alibi, bias, lse;
  float softcap, scale;
  float q_range;
  int pattern;
  int64_t q_pad, k_pad, v_pad, out_pad;
  int paged_threads;
  /* -inf in the bias over whole runs of keys: key j of token t, head h is hidden when
   * (j / bias_mask_width + t + h) % 3 == 0, so a row meets hidden and visible runs (and a short row
   * may see nothing). 0: none. */
  int64_t bias_mask_width;
  /* A NaN planted in key token nan_k_token (value token nan_v_token) of k (v), counted over all
   * sequences, in element head_dim - 1 of kv head 0. 0: none (token 0 is never planted). */
  int64_t nan_k_token, nan_v_token;
} attn_case;

/* ---- inputs ------------------------------------------------------------------------------------ */

typedef struct paged_inputs {
  guarded_buffer key_memory, value_memory;
  lk_paged_kv_cache cache;
  int32_t *block_tables;
  int64_t max_blocks;
} paged_inputs;

typedef struct attn_inputs {
  int num_seqs;
  int32_t cu_q[MAX_SEQS + 1], cu_k[MAX_SEQS + 1], seqlens_k[MAX_SEQS];
  int64_t total_q, total_k, max_sk;
  strided q, k, v;
  float *slopes;
  guarded_buffer bias;
  int64_t bias_head_stride, bias_row_stride;
  paged_inputs paged[3];
} attn_inputs;

static int64_t q_row(const attn_case *c) { return c->num_heads * c->head_dim; }
static int64_t kv_row(const attn_case *c) { return c->num_kv_heads * c->head_dim; }

static void build_paged(const attn_case *c, attn_inputs *in, int64_t block_size, paged_inputs *pg, rng *r) {
  const size_t size = dtype_size(c->dtype);
  const int64_t row = kv_row(c);
  int64_t needed = 0, max_blocks = 1;
  for (int s = 0; s < in->num_seqs; s++) {
    int64_t n = (in->seqlens_k[s] + block_size - 1) / block_size;
    needed += n;
    if (n + 1 > max_blocks) max_blocks = n + 1; /* one spare entry per sequence */
  }
  const int64_t num_blocks = 2 * needed + 3;
  int32_t *ids = malloc((size_t)num_blocks * sizeof *ids);
  for (int64_t i = 0; i < num_blocks; i++) ids[i] = (int32_t)i;
  for (int64_t i = num_blocks - 1; i > 0; i--) {
    int64_t j = rng_below(r, (uint32_t)(i + 1));
    int32_t t = ids[i];
    ids[i] = ids[j];
    ids[j] = t;
  }
  const int64_t elements = num_blocks * block_size * row;
  pg->key_memory = guarded_alloc((size_t)elements * size, GUARD_EDGE_END);
  pg->value_memory = guarded_alloc((size_t)elements * size, GUARD_EDGE_START);
  if (!pg->key_memory.data || !pg->value_memory.data) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  tensor_poison(c->dtype, pg->key_memory.data, elements);
  tensor_poison(c->dtype, pg->value_memory.data, elements);
  pg->max_blocks = max_blocks;
  pg->block_tables = malloc((size_t)(in->num_seqs * max_blocks + 1) * sizeof *pg->block_tables);
  int64_t next = 0;
  for (int s = 0; s < in->num_seqs; s++) {
    int64_t n = (in->seqlens_k[s] + block_size - 1) / block_size;
    for (int64_t b = 0; b < max_blocks; b++)
      /* used entries take fresh shuffled blocks; the spare ones name some valid block */
      pg->block_tables[s * max_blocks + b] = b < n ? ids[next++] : ids[(s * 7 + b) % num_blocks];
    for (int64_t j = 0; j < in->seqlens_k[s]; j++) {
      int64_t slot = (int64_t)pg->block_tables[s * max_blocks + j / block_size] * block_size + j % block_size;
      int64_t token = in->cu_k[s] + j;
      memcpy((char *)pg->key_memory.data + (size_t)(slot * row) * size,
             (const char *)in->k.memory.data + (size_t)element(&in->k, token, 0) * size, (size_t)row * size);
      memcpy((char *)pg->value_memory.data + (size_t)(slot * row) * size,
             (const char *)in->v.memory.data + (size_t)element(&in->v, token, 0) * size, (size_t)row * size);
    }
  }
  free(ids);
  guarded_make_read_only(&pg->key_memory);
  guarded_make_read_only(&pg->value_memory);
  pg->cache = (lk_paged_kv_cache){pg->key_memory.data, pg->value_memory.data, num_blocks, block_size,
                                  c->num_kv_heads, c->head_dim, c->dtype};
}

static void make_inputs(const attn_case *c, uint64_t seed, attn_inputs *in) {
  rng r = rng_seeded(seed);
  memset(in, 0, sizeof *in);
  const seq_pattern *pt = &patterns[c->pattern];
  in->num_seqs = pt->num_seqs;
  for (int s = 0; s < pt->num_seqs; s++) {
    in->cu_q[s + 1] = in->cu_q[s] + pt->sq[s];
    in->cu_k[s + 1] = in->cu_k[s] + pt->sk[s];
    in->seqlens_k[s] = pt->sk[s];
    if (pt->sk[s] > in->max_sk) in->max_sk = pt->sk[s];
  }
  in->total_q = in->cu_q[pt->num_seqs];
  in->total_k = in->cu_k[pt->num_seqs];
  in->q = strided_alloc(c->dtype, in->total_q, q_row(c), q_row(c) + c->q_pad, GUARD_EDGE_END);
  in->k = strided_alloc(c->dtype, in->total_k, kv_row(c), kv_row(c) + c->k_pad, GUARD_EDGE_END);
  in->v = strided_alloc(c->dtype, in->total_k, kv_row(c), kv_row(c) + c->v_pad, GUARD_EDGE_START);
  for (int64_t t = 0; t < in->total_q; t++)
    for (int64_t e = 0; e < q_row(c); e++)
      tensor_store(c->dtype, in->q.memory.data, element(&in->q, t, e), rng_uniform(&r, -c->q_range, c->q_range));
  for (int64_t t = 0; t < in->total_k; t++)
    for (int64_t e = 0; e < kv_row(c); e++) {
      tensor_store(c->dtype, in->k.memory.data, element(&in->k, t, e), rng_uniform(&r, -1.0f, 1.0f));
      tensor_store(c->dtype, in->v.memory.data, element(&in->v, t, e), rng_uniform(&r, -1.0f, 1.0f));
    }
  in->slopes = malloc((size_t)c->num_heads * sizeof *in->slopes);
  for (int64_t h = 0; h < c->num_heads; h++) in->slopes[h] = rng_uniform(&r, 0.0f, 0.5f);
  if (c->bias) {
    /* bias[h * head_stride + token * row_stride + j]: NaN wherever j >= Sk of the token's
     * sequence and in the padding, so a read outside the contract shows in the output. */
    in->bias_row_stride = (in->max_sk > 0 ? in->max_sk : 1) + (c->pattern % 2 ? 3 : 0);
    in->bias_head_stride = in->total_q * in->bias_row_stride + (c->pattern % 3 ? 5 : 0);
    int64_t count = c->num_heads * in->bias_head_stride;
    in->bias = guarded_alloc((size_t)(count > 0 ? count : 1) * sizeof(float), GUARD_EDGE_END);
    tensor_poison(LK_DTYPE_F32, in->bias.data, count);
    for (int64_t h = 0; h < c->num_heads; h++)
      for (int s = 0; s < in->num_seqs; s++)
        for (int64_t t = in->cu_q[s]; t < in->cu_q[s + 1]; t++)
          for (int64_t j = 0; j < in->seqlens_k[s]; j++) {
            float b = rng_uniform(&r, -2.0f, 2.0f);
            if (c->bias_mask_width > 0 && (j / c->bias_mask_width + t + h) % 3 == 0) b = -INFINITY;
            ((float *)in->bias.data)[h * in->bias_head_stride + t * in->bias_row_stride + j] = b;
          }
    guarded_make_read_only(&in->bias);
  }
  if (c->nan_k_token > 0) tensor_store(c->dtype, in->k.memory.data, element(&in->k, c->nan_k_token, c->head_dim - 1), NAN);
  if (c->nan_v_token > 0) tensor_store(c->dtype, in->v.memory.data, element(&in->v, c->nan_v_token, c->head_dim - 1), NAN);
  for (int b = 0; b < 3; b++) build_paged(c, in, block_sizes[b], &in->paged[b], &r);
  guarded_make_read_only(&in->q.memory);
  guarded_make_read_only(&in->k.memory);
  guarded_make_read_only(&in->v.memory);
}

static void free_inputs(attn_inputs *in) {
  guarded_free(&in->q.memory);
  guarded_free(&in->k.memory);
  guarded_free(&in->v.memory);
  guarded_free(&in->bias);
  free(in->slopes);
  for (int b = 0; b < 3; b++) {
    guarded_free(&in->paged[b].key_memory);
    guarded_free(&in->paged[b].value_memory);
    free(in->paged[b].block_tables);
  }
}

/* ---- the references ---------------------------------------------------------------------------- */

typedef struct attn_expected {
  double *out_ref;  /* [total_q, num_heads, head_dim] */
  float *out_naive;
  double *lse_ref;  /* [total_q, num_heads] */
  float *lse_naive;
  double max_abs_ref, naive_error, atol, bound, naive_lse_error;
  int64_t nan_outputs; /* NaN in out_ref: the rows that see a planted NaN */
} attn_expected;

static bool visible(const attn_case *c, int64_t j, int64_t p) {
  if (c->causal && j > p) return false;
  if (c->window_left >= 0 && j < p - c->window_left) return false;
  if (c->window_right >= 0 && j > p + c->window_right) return false;
  return true;
}

static void compute_expected(const attn_case *c, const attn_inputs *in, attn_expected *e) {
  const int64_t hd = c->head_dim, H = c->num_heads, group = c->num_heads / c->num_kv_heads;
  const size_t n_out = (size_t)(in->total_q * H * hd) + 1, n_lse = (size_t)(in->total_q * H) + 1;
  memset(e, 0, sizeof *e);
  e->out_ref = calloc(n_out, sizeof *e->out_ref);
  e->out_naive = calloc(n_out, sizeof *e->out_naive);
  e->lse_ref = calloc(n_lse, sizeof *e->lse_ref);
  e->lse_naive = calloc(n_lse, sizeof *e->lse_naive);
  const size_t nk = (size_t)in->max_sk + 1;
  double *sd = malloc(nk * sizeof *sd), *acc_d = malloc((size_t)hd * sizeof *acc_d);
  float *sf = malloc(nk * sizeof *sf), *acc_f = malloc((size_t)hd * sizeof *acc_f);
  float *qf = malloc((size_t)hd * sizeof *qf), *kf = malloc((size_t)hd * sizeof *kf);
  bool *vis = malloc(nk * sizeof *vis);
  const double scale_d = c->scale == 0.0f ? 1.0 / sqrt((double)hd) : (double)c->scale;
  const float scale_f = c->scale == 0.0f ? 1.0f / sqrtf((float)hd) : c->scale;
  const float cap = c->softcap;
  for (int s = 0; s < in->num_seqs; s++) {
    const int64_t sq = in->cu_q[s + 1] - in->cu_q[s], sk = in->seqlens_k[s];
    for (int64_t i = 0; i < sq; i++) {
      const int64_t token = in->cu_q[s] + i, p = i + sk - sq;
      for (int64_t h = 0; h < H; h++) {
        const int64_t kvh = h / group;
        for (int64_t d = 0; d < hd; d++) qf[d] = tensor_load(c->dtype, in->q.memory.data, element(&in->q, token, h * hd + d));
        bool any = false;
        double max_d = -INFINITY;
        float max_f = -INFINITY;
        for (int64_t j = 0; j < sk; j++) {
          vis[j] = visible(c, j, p);
          if (!vis[j]) continue;
          const int64_t kt = in->cu_k[s] + j;
          double dot_d = 0.0;
          float dot_f = 0.0f;
          for (int64_t d = 0; d < hd; d++) {
            kf[d] = tensor_load(c->dtype, in->k.memory.data, element(&in->k, kt, kvh * hd + d));
            dot_d += (double)qf[d] * (double)kf[d];
            dot_f += qf[d] * kf[d];
          }
          double x = dot_d * scale_d;
          float y = dot_f * scale_f;
          if (cap > 0.0f) {
            x = (double)cap * tanh(x / (double)cap);
            y = cap * tanhf(y / cap);
          }
          const int64_t distance = p > j ? p - j : j - p;
          if (c->alibi) {
            x -= (double)in->slopes[h] * (double)distance;
            y -= in->slopes[h] * (float)distance;
          }
          if (c->bias) {
            float b = ((const float *)in->bias.data)[h * in->bias_head_stride + token * in->bias_row_stride + j];
            x += (double)b;
            y += b;
          }
          if (x == -INFINITY) { /* -inf in the bias hides the key */
            vis[j] = false;
            continue;
          }
          any = true;
          sd[j] = x;
          sf[j] = y;
          if (x > max_d) max_d = x;
          if (y > max_f) max_f = y;
        }
        double *out_d = e->out_ref + (token * H + h) * hd;
        float *out_f = e->out_naive + (token * H + h) * hd;
        if (!any) {
          for (int64_t d = 0; d < hd; d++) out_d[d] = 0.0, out_f[d] = 0.0f;
          e->lse_ref[token * H + h] = -INFINITY;
          e->lse_naive[token * H + h] = -INFINITY;
          continue;
        }
        double sum_d = 0.0;
        float sum_f = 0.0f;
        for (int64_t d = 0; d < hd; d++) acc_d[d] = 0.0, acc_f[d] = 0.0f;
        for (int64_t j = 0; j < sk; j++) {
          if (!vis[j]) continue;
          const int64_t kt = in->cu_k[s] + j;
          double wd = exp(sd[j] - max_d);
          float wf = expf(sf[j] - max_f);
          sum_d += wd;
          sum_f += wf;
          for (int64_t d = 0; d < hd; d++) {
            float v = tensor_load(c->dtype, in->v.memory.data, element(&in->v, kt, kvh * hd + d));
            acc_d[d] += wd * (double)v;
            acc_f[d] += wf * v;
          }
        }
        for (int64_t d = 0; d < hd; d++) {
          out_d[d] = acc_d[d] / sum_d;
          out_f[d] = dtype_round(c->dtype, acc_f[d] / sum_f);
          if (isnan(out_d[d])) { /* a NaN key or value this row sees */
            e->nan_outputs++;
            continue;
          }
          if (fabs(out_d[d]) > e->max_abs_ref) e->max_abs_ref = fabs(out_d[d]);
          double err = fabs((double)out_f[d] - out_d[d]);
          if (!(err <= e->naive_error)) e->naive_error = err;
        }
        e->lse_ref[token * H + h] = max_d + log(sum_d);
        e->lse_naive[token * H + h] = max_f + logf(sum_f);
        double lerr = fabs((double)e->lse_naive[token * H + h] - e->lse_ref[token * H + h]);
        if (!isnan(e->lse_ref[token * H + h]) && !(lerr <= e->naive_lse_error)) e->naive_lse_error = lerr;
      }
    }
  }
  e->atol = c->dtype == LK_DTYPE_F32 ? 1e-6 * e->max_abs_ref : dtype_ulp(c->dtype, e->max_abs_ref);
  e->bound = 2.0 * e->naive_error + e->atol;
  free(sd);
  free(acc_d);
  free(sf);
  free(acc_f);
  free(qf);
  free(kf);
  free(vis);
}

static void free_expected(attn_expected *e) {
  free(e->out_ref);
  free(e->out_naive);
  free(e->lse_ref);
  free(e->lse_naive);
}

/* ---- running and checking ---------------------------------------------------------------------- */

static lk_attention_params params_for(const attn_case *c, const attn_inputs *in, void *out, float *lse,
                                      const paged_inputs *paged) {
  lk_attention_params p;
  memset(&p, 0, sizeof p);
  p.q = in->q.memory.data;
  p.out = out;
  p.lse = lse;
  p.cu_seqlens_q = in->cu_q;
  if (paged) {
    p.seqlens_k = in->seqlens_k;
    p.cache = paged->cache;
    p.block_tables = paged->block_tables;
    p.max_blocks_per_seq = paged->max_blocks;
  } else {
    p.k = in->k.memory.data;
    p.v = in->v.memory.data;
    p.cu_seqlens_k = in->cu_k;
    p.k_stride = c->k_pad ? in->k.stride : 0;
    p.v_stride = c->v_pad ? in->v.stride : 0;
  }
  p.num_seqs = in->num_seqs;
  p.num_heads = c->num_heads;
  p.num_kv_heads = c->num_kv_heads;
  p.head_dim = c->head_dim;
  p.q_stride = c->q_pad ? in->q.stride : 0;
  p.out_stride = c->out_pad ? q_row(c) + c->out_pad : 0;
  p.scale = c->scale;
  p.softcap = c->softcap;
  p.window_left = c->window_left;
  p.window_right = c->window_right;
  p.alibi_slopes = c->alibi ? in->slopes : NULL;
  p.bias = c->bias ? (const float *)in->bias.data : NULL;
  p.bias_head_stride = c->bias ? in->bias_head_stride : 0;
  p.bias_row_stride = c->bias ? in->bias_row_stride : 0;
  p.flags = c->causal ? LK_ATTENTION_CAUSAL : 0u;
  p.dtype = c->dtype;
  return p;
}

typedef struct attn_run {
  strided out;
  guarded_buffer lse;
} attn_run;

static bool run_kernel(const attn_case *c, const attn_inputs *in, lk_cpu_context *context, const paged_inputs *paged,
                       attn_run *r, const char *run) {
  r->out = strided_alloc(c->dtype, in->total_q, q_row(c), q_row(c) + c->out_pad, GUARD_EDGE_END);
  memset(&r->lse, 0, sizeof r->lse);
  if (c->lse) {
    r->lse = guarded_alloc((size_t)(in->total_q * c->num_heads) * sizeof(float), GUARD_EDGE_END);
    tensor_poison(LK_DTYPE_F32, r->lse.data, in->total_q * c->num_heads);
  }
  lk_attention_params p = params_for(c, in, r->out.memory.data, c->lse ? (float *)r->lse.data : NULL, paged);
  check_context_push("%s", run);
  kernel_calls++;
  if (paged) paged_calls++;
  bool ok = CHECK_STATUS(lk_attention(context, &p), LK_OK);
  check_context_pop();
  return ok;
}

static void free_run(attn_run *r) {
  guarded_free(&r->out.memory);
  guarded_free(&r->lse);
}

static int dtype_index(lk_dtype dtype) { return dtype == LK_DTYPE_F32 ? 0 : dtype == LK_DTYPE_F16 ? 1 : 2; }

static void describe_index(const attn_case *c, const attn_inputs *in, int64_t token, char *buffer, size_t size) {
  int s = 0;
  while (s + 1 < in->num_seqs && token >= in->cu_q[s + 1]) s++;
  int64_t sq = in->cu_q[s + 1] - in->cu_q[s], i = token - in->cu_q[s];
  snprintf(buffer, size, "seq %d (Sq %lld, Sk %lld) query %lld (p %lld)", s, (long long)sq, (long long)in->seqlens_k[s],
           (long long)i, (long long)(i + in->seqlens_k[s] - sq));
  (void)c;
}

/* Against the float64 reference; every element written, gaps untouched. */
static void check_against_reference(const attn_case *c, const attn_inputs *in, const attn_expected *e, const attn_run *r,
                                    int isa_index, const char *run) {
  const int64_t hd = c->head_dim, H = c->num_heads, row = q_row(c);
  double worst = 0.0;
  int64_t worst_at = -1, unwritten = 0, nan_missed = 0, nan_first = -1;
  for (int64_t t = 0; t < in->total_q; t++)
    for (int64_t x = 0; x < row; x++) {
      int64_t at = element(&r->out, t, x);
      if (tensor_is_poison(c->dtype, r->out.memory.data, at)) unwritten++;
      double got = tensor_load(c->dtype, r->out.memory.data, at);
      if (isnan(e->out_ref[t * row + x])) { /* the row sees a planted NaN: it must show */
        if (!isnan(got) && nan_missed++ == 0) nan_first = t * row + x;
        continue;
      }
      double err = fabs(got - e->out_ref[t * row + x]);
      if (!(err <= worst)) {
        worst = isnan(err) ? INFINITY : err;
        worst_at = t * row + x;
      }
    }
  CHECKF(unwritten == 0, "%s: %lld elements of out were never written", run, (long long)unwritten);
  CHECKF(damaged_gaps(&r->out) == 0, "%s: the kernel wrote into the gaps between out rows", run);
  if (nan_missed) {
    char where[128];
    describe_index(c, in, nan_first / row, where, sizeof where);
    CHECKF(nan_missed == 0,
           "%s: %lld out elements are finite where the row sees a NaN; first at token %lld head %lld dim %lld [%s]: got %.9g",
           run, (long long)nan_missed, (long long)(nan_first / row), (long long)(nan_first % row / hd),
           (long long)(nan_first % hd), where,
           tensor_load(c->dtype, r->out.memory.data, element(&r->out, nan_first / row, nan_first % row)));
  }
  if (worst_at >= 0) {
    char where[128];
    int64_t t = worst_at / row, h = (worst_at % row) / hd, d = worst_at % hd;
    describe_index(c, in, t, where, sizeof where);
    CHECKF(worst <= e->bound,
           "%s: max |out - ref| = %.3g at token %lld head %lld dim %lld [%s] exceeds 2 * naive error %.3g + atol %.3g "
           "= %.3g (ref %.9g, naive %.9g, got %.9g)",
           run, worst, (long long)t, (long long)h, (long long)d, where, e->naive_error, e->atol, e->bound,
           e->out_ref[worst_at], e->out_naive[worst_at], tensor_load(c->dtype, r->out.memory.data, element(&r->out, t, h * hd + d)));
  }
  double ratio = e->bound > 0 ? worst / e->bound : (worst > 0 ? INFINITY : 0.0);
  double *slot = &worst_ratio[isa_index][dtype_index(c->dtype)];
  if (!(ratio <= *slot)) *slot = ratio;
  if (!c->lse) return;
  const float *lse = (const float *)r->lse.data;
  int64_t bad = 0, first = -1;
  double worst_lse = 0.0;
  for (int64_t i = 0; i < in->total_q * H; i++) {
    double ref = e->lse_ref[i], got = lse[i];
    bool ok;
    if (tensor_is_poison(LK_DTYPE_F32, lse, i)) {
      ok = false; /* never written (the poison is a NaN, which the next test would accept) */
    } else if (isnan(ref)) {
      ok = isnan(got);
    } else if (isinf(ref)) {
      ok = isinf(got) && got < 0;
    } else {
      double tol = 2.0 * e->naive_lse_error + 1e-5 * (1.0 + fabs(ref));
      double err = fabs(got - ref);
      ok = err <= tol;
      double lr = err / tol;
      if (!(lr <= worst_lse)) worst_lse = isnan(lr) ? INFINITY : lr;
    }
    if (!ok && bad++ == 0) first = i;
  }
  double *lslot = &worst_lse_ratio[isa_index][dtype_index(c->dtype)];
  if (!(worst_lse <= *lslot)) *lslot = worst_lse;
  if (bad) {
    char where[128];
    describe_index(c, in, first / H, where, sizeof where);
    CHECKF(bad == 0,
           "%s: %lld lse values off; first at token %lld head %lld [%s]: ref %.9g, naive %.9g, got %.9g "
           "(allowed 2 * %.3g + 1e-5 * (1 + |ref|))",
           run, (long long)bad, (long long)(first / H), (long long)(first % H), where, e->lse_ref[first],
           (double)e->lse_naive[first], (double)lse[first], e->naive_lse_error);
  }
}

static void check_same_bits(const attn_case *c, const attn_inputs *in, const attn_run *expected, const attn_run *got,
                            const char *run) {
  int64_t row = 0, col = 0;
  int64_t differing = differing_elements(&expected->out, &got->out, &row, &col);
  CHECKF(differing == 0,
         "%s: %lld out elements differ bitwise; first at token %lld element %lld: expected %.9g (0x%x), got %.9g (0x%x)", run,
         (long long)differing, (long long)row, (long long)col,
         differing ? tensor_load(c->dtype, expected->out.memory.data, element(&expected->out, row, col)) : 0.0,
         differing ? tensor_bits(c->dtype, expected->out.memory.data, element(&expected->out, row, col)) : 0u,
         differing ? tensor_load(c->dtype, got->out.memory.data, element(&got->out, row, col)) : 0.0,
         differing ? tensor_bits(c->dtype, got->out.memory.data, element(&got->out, row, col)) : 0u);
  CHECKF(damaged_gaps(&got->out) == 0, "%s: the kernel wrote into the gaps between out rows", run);
  if (c->lse) {
    const int64_t n = in->total_q * c->num_heads;
    int64_t first = -1;
    for (int64_t i = 0; i < n && first < 0; i++)
      if (memcmp((const float *)expected->lse.data + i, (const float *)got->lse.data + i, sizeof(float)) != 0) first = i;
    CHECKF(first < 0, "%s: lse differs bitwise; first at [%lld]: expected %.9g, got %.9g", run, (long long)first,
           first >= 0 ? (double)((const float *)expected->lse.data)[first] : 0.0,
           first >= 0 ? (double)((const float *)got->lse.data)[first] : 0.0);
  }
}

static void run_case(const attn_case *c) {
  uint64_t seed = base_seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)++case_counter);
  check_context_push("lk_attention %s head_dim %lld heads %lld/%lld %s window (%lld, %lld)%s softcap %g scale %g%s%s "
                     "q_range %g batch %d \"%s\" pads q %lld k %lld v %lld out %lld bias mask width %lld NaN key %lld "
                     "value %lld seed 0x%016llx",
                     dtype_label(c->dtype), (long long)c->head_dim, (long long)c->num_heads, (long long)c->num_kv_heads,
                     c->causal ? "causal" : "non-causal", (long long)c->window_left, (long long)c->window_right,
                     c->alibi ? " alibi" : "", c->softcap, c->scale, c->bias ? " bias" : "", c->lse ? " lse" : "",
                     c->q_range, c->pattern, patterns[c->pattern].label, (long long)c->q_pad, (long long)c->k_pad,
                     (long long)c->v_pad, (long long)c->out_pad, (long long)c->bias_mask_width, (long long)c->nan_k_token,
                     (long long)c->nan_v_token, (unsigned long long)seed);
  attn_inputs in;
  attn_expected e;
  make_inputs(c, seed, &in);
  compute_expected(c, &in, &e);
  if (c->nan_k_token > 0 || c->nan_v_token > 0)
    CHECKF(e.nan_outputs > 0, "the planted NaN reaches no row: the case tests nothing");
  for (int k = 0; k < isa_count; k++) {
    const char *isa = lk_isa_name(isas[k]);
    char run[128];
    attn_run base;
    snprintf(run, sizeof run, "%s, contiguous, 1 thread", isa);
    if (!run_kernel(c, &in, contexts[k][1], NULL, &base, run)) {
      free_run(&base);
      continue;
    }
    check_against_reference(c, &in, &e, &base, k, run);
    for (int threads = 2; threads <= MAX_THREADS; threads++) {
      attn_run other;
      snprintf(run, sizeof run, "%s, contiguous, %d threads vs 1", isa, threads);
      if (run_kernel(c, &in, contexts[k][threads], NULL, &other, run)) check_same_bits(c, &in, &base, &other, run);
      free_run(&other);
    }
    for (int b = 0; b < 3; b++) {
      attn_run paged;
      int threads = 1 + (c->paged_threads + b) % MAX_THREADS;
      snprintf(run, sizeof run, "%s, paged block_size %lld, %d threads vs contiguous", isa, (long long)block_sizes[b], threads);
      if (run_kernel(c, &in, contexts[k][threads], &in.paged[b], &paged, run)) check_same_bits(c, &in, &base, &paged, run);
      free_run(&paged);
    }
    free_run(&base);
  }
  free_expected(&e);
  free_inputs(&in);
  check_context_pop();
}

/* ---- the sweep --------------------------------------------------------------------------------- */

static uint32_t pick(int index, int option, uint32_t n) {
  uint64_t z = (uint64_t)index * 0x9E3779B97F4A7C15ull + (uint64_t)(option + 1) * 0xD1B54A32D192ED03ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (uint32_t)(z % n);
}

static attn_case case_for(int index) {
  attn_case c;
  memset(&c, 0, sizeof c);
  c.dtype = dtypes[index % 3];
  c.head_dim = head_dims[pick(index, 1, 9)];
  c.num_kv_heads = c.head_dim == 256 ? 1 : 1 + pick(index, 2, 2);
  c.num_heads = c.num_kv_heads * ratios[pick(index, 3, 3)];
  c.causal = pick(index, 4, 2) != 0;
  int w = (int)pick(index, 5, 3);
  c.window_left = windows[w][0];
  c.window_right = windows[w][1];
  c.alibi = pick(index, 6, 2) != 0;
  c.softcap = pick(index, 7, 2) ? 30.0f : 0.0f;
  c.bias = pick(index, 8, 2) != 0;
  c.lse = pick(index, 9, 2) != 0;
  c.pattern = (int)pick(index, 10, SWEEP_PATTERNS);
  int pads = (int)pick(index, 11, 4);
  c.q_pad = (pads & 1) ? 3 : 0;
  c.out_pad = (pads & 1) ? 5 : 0;
  c.k_pad = (pads & 2) ? 7 : 0;
  c.v_pad = (pads & 2) ? 2 : 0;
  c.scale = scales[pick(index, 12, 3)];
  /* q of magnitude up to 4 with softcap pushes the scores into tanh's bend */
  c.q_range = pick(index, 13, 2) ? 4.0f : 1.0f;
  c.paged_threads = (int)pick(index, 14, 3);
  return c;
}

static void test_grid(void) {
  for (int index = 0; index < CASE_COUNT; index++) {
    attn_case c = case_for(index);
    run_case(&c);
  }
}

/* Hand-picked shapes beside the sweep: softcap with large scores, long decode, window only on
 * the right, each head_dim at GQA 8, and the same case with every thread count. */
static void test_fixed(void) {
  static const int64_t dims[] = {8, 17, 24, 64, 80, 100, 128, 256};
  for (int d = 0; d < (int)(sizeof dims / sizeof dims[0]); d++)
    for (int t = 0; t < 3; t++) {
      attn_case c = case_for(d * 3 + t);
      c.dtype = dtypes[t];
      c.head_dim = dims[d];
      c.num_kv_heads = 1;
      c.num_heads = 8;
      c.pattern = 9;
      c.causal = true;
      c.window_left = c.window_right = -1;
      c.alibi = d % 2 == 0;
      c.softcap = t == 1 ? 30.0f : 0.0f;
      c.q_range = 4.0f;
      c.scale = 1.3f;
      c.lse = true;
      run_case(&c);
    }
  /* window only to the right, no causal; and softcap 5 (strong) */
  for (int t = 0; t < 3; t++) {
    attn_case c = case_for(100 + t);
    c.dtype = dtypes[t];
    c.causal = false;
    c.window_left = -1;
    c.window_right = 2;
    c.pattern = 4;
    c.lse = true;
    run_case(&c);
    c.softcap = 5.0f;
    c.q_range = 4.0f;
    c.window_left = 0;
    c.window_right = 0;
    run_case(&c);
  }
}

/* ---- long shapes: tiles, query blocks, splits ---------------------------------------------------
 * The sweep's shapes stay within one 64-key tile and one query block. These cross every edge of the
 * tiled kernel (docs/attention.md): several key tiles with causal and window edges inside them;
 * query blocks of 128 (token, head) lanes (128 / group tokens) cut by sequence ends; head chunks when
 * a GQA group exceeds 128 heads; and decodes long enough for the flash-decoding split, whose partial
 * softmaxes are combined (batch 1 and 3, one and several kv heads, Sk 0 and 1 beside a long one). */

#define NO_WINDOW .window_left = -1, .window_right = -1

static void run_cases(const attn_case *cases, int count) {
  for (int i = 0; i < count; i++) run_case(&cases[i]);
}

static void test_long_prefill(void) {
  static const attn_case cases[] = {
      /* GQA 8: 16 tokens a block, 19 blocks over 5 key tiles */
      {.dtype = LK_DTYPE_F32, .head_dim = 64, .num_heads = 8, .num_kv_heads = 1, .causal = true, NO_WINDOW, .lse = true,
       .q_range = 1, .pattern = PREFILL_300},
      /* a window of 70 starts inside a tile and spans two or three */
      {.dtype = LK_DTYPE_F16, .head_dim = 80, .num_heads = 4, .num_kv_heads = 1, .causal = true, .window_left = 70,
       .window_right = 0, .alibi = true, .lse = true, .q_range = 1, .pattern = PREFILL_300, .paged_threads = 1},
      /* GQA 6 does not divide 128 (21 tokens, 126 lanes a block); window (70, 5); the last tile holds one key */
      {.dtype = LK_DTYPE_BF16, .head_dim = 17, .num_heads = 6, .num_kv_heads = 1, .causal = true, .window_left = 70,
       .window_right = 5, .softcap = 30, .bias = true, .q_range = 4, .pattern = PREFILL_257, .paged_threads = 2},
      /* head_dim 256, GQA 3, padded rows */
      {.dtype = LK_DTYPE_F32, .head_dim = 256, .num_heads = 3, .num_kv_heads = 1, .causal = true, NO_WINDOW, .bias = true,
       .lse = true, .q_range = 1, .pattern = PREFILL_150, .q_pad = 3, .k_pad = 7, .v_pad = 2, .out_pad = 5},
      /* 12 / 2 heads (GQA 6) with ALiBi, softcap and bias together */
      {.dtype = LK_DTYPE_BF16, .head_dim = 64, .num_heads = 12, .num_kv_heads = 2, .causal = true, NO_WINDOW, .alibi = true,
       .softcap = 30, .bias = true, .lse = true, .scale = 0.37f, .q_range = 4, .pattern = PREFILL_150, .paged_threads = 1},
      {.dtype = LK_DTYPE_F16, .head_dim = 128, .num_heads = 8, .num_kv_heads = 1, .causal = true, .window_left = 70,
       .window_right = -1, .bias = true, .lse = true, .q_range = 1, .pattern = PREFILL_150},
      /* GQA 1: 128 tokens a block; a non-causal window (70, 5) */
      {.dtype = LK_DTYPE_F32, .head_dim = 100, .num_heads = 2, .num_kv_heads = 2, .window_left = 70, .window_right = 5,
       .alibi = true, .lse = true, .q_range = 1, .pattern = PREFILL_300, .paged_threads = 2},
      /* varlen 5, 70, 1, 130 at GQA 1, 6, 8 and 4: blocks that would straddle sequence ends */
      {.dtype = LK_DTYPE_F32, .head_dim = 64, .num_heads = 2, .num_kv_heads = 2, .causal = true, NO_WINDOW, .bias = true,
       .lse = true, .q_range = 1, .pattern = VARLEN_STRADDLE},
      {.dtype = LK_DTYPE_F16, .head_dim = 17, .num_heads = 6, .num_kv_heads = 1, .causal = true, .window_left = 70,
       .window_right = 0, .lse = true, .q_range = 4, .pattern = VARLEN_STRADDLE, .q_pad = 3, .out_pad = 5, .paged_threads = 1},
      {.dtype = LK_DTYPE_BF16, .head_dim = 80, .num_heads = 8, .num_kv_heads = 1, NO_WINDOW, .alibi = true, .softcap = 30,
       .lse = true, .q_range = 4, .pattern = VARLEN_STRADDLE, .paged_threads = 2},
      {.dtype = LK_DTYPE_F32, .head_dim = 24, .num_heads = 8, .num_kv_heads = 2, .causal = true, NO_WINDOW, .bias = true,
       .lse = true, .scale = 1.3f, .q_range = 1, .pattern = VARLEN_STRADDLE},
      /* chunked prefill: 40 queries over 300 keys, 70 over 200 */
      {.dtype = LK_DTYPE_F32, .head_dim = 128, .num_heads = 4, .num_kv_heads = 1, .causal = true, NO_WINDOW, .lse = true,
       .q_range = 1, .pattern = CHUNKED_300, .k_pad = 7, .v_pad = 2},
      {.dtype = LK_DTYPE_BF16, .head_dim = 80, .num_heads = 6, .num_kv_heads = 1, .causal = true, .window_left = 70,
       .window_right = 0, .alibi = true, .bias = true, .lse = true, .q_range = 1, .pattern = CHUNKED_300, .paged_threads = 1},
      {.dtype = LK_DTYPE_F16, .head_dim = 256, .num_heads = 2, .num_kv_heads = 2, .window_left = 70, .window_right = 5,
       .lse = true, .q_range = 1, .pattern = CHUNKED_300, .paged_threads = 2},
      /* head chunks (blocks of 128 lanes): groups of 136, 144 and 131 query heads over one kv head */
      {.dtype = LK_DTYPE_F32, .head_dim = 8, .num_heads = 136, .num_kv_heads = 1, .causal = true, NO_WINDOW, .bias = true,
       .lse = true, .q_range = 1, .pattern = HEAD_CHUNKS},
      {.dtype = LK_DTYPE_BF16, .head_dim = 16, .num_heads = 144, .num_kv_heads = 1, .window_left = 3, .window_right = 2,
       .alibi = true, .softcap = 30, .lse = true, .q_range = 4, .pattern = HEAD_CHUNKS, .paged_threads = 1},
      {.dtype = LK_DTYPE_F16, .head_dim = 8, .num_heads = 262, .num_kv_heads = 2, .causal = true, NO_WINDOW, .lse = true,
       .q_range = 1, .pattern = HEAD_CHUNKS, .paged_threads = 2},
  };
  run_cases(cases, (int)(sizeof cases / sizeof cases[0]));
}

static void test_long_decode(void) {
  static const attn_case cases[] = {
      /* one kv head, one token: a single work item, its 4097 keys split */
      {.dtype = LK_DTYPE_F32, .head_dim = 128, .num_heads = 8, .num_kv_heads = 1, NO_WINDOW, .lse = true, .q_range = 1,
       .pattern = DECODE_4097},
      {.dtype = LK_DTYPE_F16, .head_dim = 256, .num_heads = 2, .num_kv_heads = 1, .causal = true, .window_left = 1000,
       .window_right = 0, .alibi = true, .lse = true, .q_range = 1, .pattern = DECODE_4097, .paged_threads = 1},
      {.dtype = LK_DTYPE_BF16, .head_dim = 17, .num_heads = 6, .num_kv_heads = 1, .causal = true, NO_WINDOW, .softcap = 30,
       .bias = true, .lse = true, .q_range = 4, .pattern = DECODE_4097, .paged_threads = 2},
      /* a split decode whose group of 144 heads is also chunked */
      {.dtype = LK_DTYPE_F16, .head_dim = 16, .num_heads = 144, .num_kv_heads = 1, .causal = true, NO_WINDOW, .lse = true,
       .q_range = 1, .pattern = DECODE_4097},
      /* batch 3, several kv heads */
      {.dtype = LK_DTYPE_BF16, .head_dim = 64, .num_heads = 8, .num_kv_heads = 2, .causal = true, NO_WINDOW, .lse = true,
       .q_range = 1, .pattern = DECODE_BATCH, .paged_threads = 1},
      {.dtype = LK_DTYPE_F16, .head_dim = 80, .num_heads = 4, .num_kv_heads = 4, .causal = true, .window_left = 1000,
       .window_right = -1, .alibi = true, .lse = true, .q_range = 1, .pattern = DECODE_BATCH, .paged_threads = 2},
      {.dtype = LK_DTYPE_F32, .head_dim = 100, .num_heads = 12, .num_kv_heads = 2, .window_left = 1000, .window_right = 5,
       .bias = true, .lse = true, .scale = 0.37f, .q_range = 4, .pattern = DECODE_BATCH, .q_pad = 3, .k_pad = 7, .v_pad = 2,
       .out_pad = 5},
      /* Sk 0 and Sk 1 beside 3000 */
      {.dtype = LK_DTYPE_F32, .head_dim = 128, .num_heads = 16, .num_kv_heads = 2, NO_WINDOW, .softcap = 30, .bias = true,
       .lse = true, .q_range = 4, .pattern = DECODE_EMPTY, .paged_threads = 1},
      {.dtype = LK_DTYPE_BF16, .head_dim = 24, .num_heads = 3, .num_kv_heads = 1, .causal = true, .window_left = 1000,
       .window_right = -1, .alibi = true, .lse = true, .q_range = 1, .pattern = DECODE_EMPTY, .paged_threads = 2},
      /* 4 queries over 3000 keys and a decode over 2100 */
      {.dtype = LK_DTYPE_F32, .head_dim = 64, .num_heads = 8, .num_kv_heads = 2, .causal = true, NO_WINDOW, .bias = true,
       .lse = true, .q_range = 1, .pattern = SPECULATIVE},
      {.dtype = LK_DTYPE_F16, .head_dim = 80, .num_heads = 6, .num_kv_heads = 1, .causal = true, .window_left = 1000,
       .window_right = 0, .alibi = true, .lse = true, .q_range = 1, .pattern = SPECULATIVE, .paged_threads = 1},
  };
  run_cases(cases, (int)(sizeof cases / sizeof cases[0]));
}

/* -inf in the bias over whole tiles (and whole split parts), and a planted NaN: only the rows that
 * see the NaN key become NaN (the NaN value only in its element), whatever tile or split part it
 * falls in; a NaN key in the same tile as a window's edge but outside it changes nothing. */
static void test_long_special_values(void) {
  static const attn_case cases[] = {
      /* 64-key runs hidden: rows whose first, middle or last tile is all -inf; short rows see nothing */
      {.dtype = LK_DTYPE_BF16, .head_dim = 64, .num_heads = 4, .num_kv_heads = 1, .causal = true, NO_WINDOW, .alibi = true,
       .bias = true, .lse = true, .q_range = 1, .pattern = PREFILL_150, .bias_mask_width = 64},
      {.dtype = LK_DTYPE_F32, .head_dim = 17, .num_heads = 12, .num_kv_heads = 2, .causal = true, NO_WINDOW, .bias = true,
       .lse = true, .q_range = 1, .pattern = VARLEN_STRADDLE, .paged_threads = 1, .bias_mask_width = 64},
      /* 1024- and 700-key runs hidden in decodes: whole split parts with nothing visible */
      {.dtype = LK_DTYPE_BF16, .head_dim = 17, .num_heads = 6, .num_kv_heads = 1, .causal = true, NO_WINDOW, .bias = true,
       .lse = true, .q_range = 1, .pattern = DECODE_4097, .paged_threads = 2, .bias_mask_width = 1024},
      {.dtype = LK_DTYPE_F16, .head_dim = 64, .num_heads = 8, .num_kv_heads = 2, NO_WINDOW, .bias = true, .lse = true,
       .q_range = 1, .pattern = DECODE_EMPTY, .bias_mask_width = 700},
      /* prefill 300, window (70, 0): key 200 NaN for rows 200-270, value 130 for rows 130-200, heads 0-1 */
      {.dtype = LK_DTYPE_F32, .head_dim = 64, .num_heads = 4, .num_kv_heads = 2, .causal = true, .window_left = 70,
       .window_right = 0, .lse = true, .q_range = 1, .pattern = PREFILL_300, .nan_k_token = 200, .nan_v_token = 130},
      /* key 3000 of a split decode over 4097: heads 0-3 NaN, 4-7 not */
      {.dtype = LK_DTYPE_F32, .head_dim = 128, .num_heads = 8, .num_kv_heads = 2, NO_WINDOW, .lse = true, .q_range = 1,
       .pattern = DECODE_4097, .paged_threads = 1, .nan_k_token = 3000},
      /* decode batch, window 1000: value 1500 of sequence 0 is seen; key 3995 of sequence 1 (token
       * 2000 + 3995) shares the tile 3968-4031 with the window's first key 3999 but is outside it */
      {.dtype = LK_DTYPE_F16, .head_dim = 80, .num_heads = 8, .num_kv_heads = 2, .causal = true, .window_left = 1000,
       .window_right = -1, .lse = true, .q_range = 1, .pattern = DECODE_BATCH, .paged_threads = 2, .nan_k_token = 5995,
       .nan_v_token = 1500},
  };
  run_cases(cases, (int)(sizeof cases / sizeof cases[0]));
}

/* num_seqs = 0: nothing read, nothing written. */
static void test_no_sequences(void) {
  float q[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8], out_before[8], lse[1] = {42.0f};
  for (int i = 0; i < 8; i++) out[i] = out_before[i] = -1.0f;
  int32_t cu[1] = {0};
  lk_attention_params p;
  memset(&p, 0, sizeof p);
  p.q = q;
  p.out = out;
  p.lse = lse;
  p.k = q;
  p.v = q;
  p.cu_seqlens_q = cu;
  p.cu_seqlens_k = cu;
  p.num_seqs = 0;
  p.num_heads = 1;
  p.num_kv_heads = 1;
  p.head_dim = 8;
  p.window_left = p.window_right = -1;
  p.dtype = LK_DTYPE_F32;
  CHECK_STATUS(lk_attention(auto_contexts[2], &p), LK_OK);
  CHECK(memcmp(out, out_before, sizeof out) == 0 && lse[0] == 42.0f);
}

/* ---- arguments --------------------------------------------------------------------------------- */

static void test_arguments(void) {
  enum { H = 4, KV = 2, HD = 8, TQ = 5, TK = 9, QROW = H * HD, KROW = KV * HD };
  /* q and out live in one buffer so that overlapping views can be passed; the out region follows
   * q. Everything is compared before and after each failing call. */
  static float qo[TQ * QROW * 2 + 64];
  static float k[TK * KROW], v[TK * KROW], lse[TQ * H], slopes[H], bias[H * TQ * TK];
  rng r = rng_seeded(0xA77E0001ull);
  for (size_t i = 0; i < sizeof qo / sizeof qo[0]; i++) qo[i] = rng_uniform(&r, -1, 1);
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) k[i] = rng_uniform(&r, -1, 1), v[i] = rng_uniform(&r, -1, 1);
  for (int i = 0; i < TQ * H; i++) lse[i] = 1234.0f;
  for (int h = 0; h < H; h++) slopes[h] = 0.25f;
  for (size_t i = 0; i < sizeof bias / sizeof bias[0]; i++) bias[i] = 0.5f;
  float *q = qo, *out = qo + TQ * QROW + 32;
  static int32_t cu_q[3] = {0, 3, 5}, cu_k[3] = {0, 4, 9}, seqlens_k[2] = {4, 5};
  /* paged: 6 blocks of 2 tokens; sequence 0 uses blocks 4, 1; sequence 1 uses 0, 5, 2 */
  enum { NB = 6, BS = 2, MB = 3 };
  static float key_cache[NB * BS * KROW], value_cache[NB * BS * KROW];
  for (size_t i = 0; i < sizeof key_cache / sizeof key_cache[0]; i++)
    key_cache[i] = rng_uniform(&r, -1, 1), value_cache[i] = rng_uniform(&r, -1, 1);
  static int32_t tables[2 * MB] = {4, 1, 3, 0, 5, 2};

  lk_attention_params good;
  memset(&good, 0, sizeof good);
  good.q = q;
  good.k = k;
  good.v = v;
  good.out = out;
  good.lse = lse;
  good.cu_seqlens_q = cu_q;
  good.cu_seqlens_k = cu_k;
  good.num_seqs = 2;
  good.num_heads = H;
  good.num_kv_heads = KV;
  good.head_dim = HD;
  good.window_left = good.window_right = -1;
  good.flags = LK_ATTENTION_CAUSAL;
  good.dtype = LK_DTYPE_F32;
  lk_attention_params paged = good;
  paged.k = paged.v = NULL;
  paged.cu_seqlens_k = NULL;
  paged.seqlens_k = seqlens_k;
  paged.cache = (lk_paged_kv_cache){key_cache, value_cache, NB, BS, KV, HD, LK_DTYPE_F32};
  paged.block_tables = tables;
  paged.max_blocks_per_seq = MB;

  /* The valid calls succeed (otherwise every failure below would prove nothing). */
  CHECK_STATUS(lk_attention(auto_contexts[2], &good), LK_OK);
  CHECK_STATUS(lk_attention(auto_contexts[2], &paged), LK_OK);
  {
    lk_attention_params p = good;
    p.alibi_slopes = slopes;
    p.bias = bias;
    p.bias_row_stride = TK;
    p.bias_head_stride = TQ * TK;
    p.softcap = 30.0f;
    p.window_left = 2;
    p.window_right = 0;
    CHECK_STATUS(lk_attention(auto_contexts[1], &p), LK_OK);
  }

  static float qo_before[sizeof qo / sizeof qo[0]], lse_before[TQ * H];
  memcpy(qo_before, qo, sizeof qo);
  memcpy(lse_before, lse, sizeof lse);
#define ATTENTION_FAILS(base, mutation, name)                                                          \
  do {                                                                                                 \
    lk_attention_params p = base;                                                                      \
    mutation;                                                                                          \
    CHECK_INVALID(lk_attention(auto_contexts[2], &p), name);                                           \
    CHECKF(memcmp(qo, qo_before, sizeof qo) == 0 && memcmp(lse, lse_before, sizeof lse) == 0,         \
           "a failed call wrote to out, q or lse (%s)", #mutation);                                    \
    memcpy(qo, qo_before, sizeof qo);                                                                  \
    memcpy(lse, lse_before, sizeof lse);                                                               \
  } while (0)
  CHECK_INVALID(lk_attention(auto_contexts[1], NULL), "params");
  ATTENTION_FAILS(good, p.q = NULL, "q");
  ATTENTION_FAILS(good, p.out = NULL, "out");
  ATTENTION_FAILS(good, p.num_heads = 0, "num_heads");
  ATTENTION_FAILS(good, p.num_heads = -4, "num_heads");
  ATTENTION_FAILS(good, p.num_kv_heads = 3, "num_kv_heads");
  ATTENTION_FAILS(good, p.num_kv_heads = 0, "num_kv_heads");
  ATTENTION_FAILS(good, p.num_kv_heads = 8, "num_kv_heads");
  ATTENTION_FAILS(good, p.head_dim = 0, "head_dim");
  ATTENTION_FAILS(good, p.head_dim = 257, "head_dim");
  ATTENTION_FAILS(good, p.num_seqs = -1, "num_seqs");
  ATTENTION_FAILS(good, p.cu_seqlens_q = NULL, "cu_seqlens_q");
  static const int32_t cu_q_from_one[3] = {1, 3, 5}, cu_q_decreasing[3] = {0, 3, 2}, cu_k_decreasing[3] = {0, 4, 3};
  ATTENTION_FAILS(good, p.cu_seqlens_q = cu_q_from_one, "cu_seqlens_q");
  ATTENTION_FAILS(good, p.cu_seqlens_q = cu_q_decreasing, "cu_seqlens_q");
  ATTENTION_FAILS(good, p.cu_seqlens_k = cu_k_decreasing, "cu_seqlens_k");
  ATTENTION_FAILS(good, p.k = NULL, "k");
  ATTENTION_FAILS(good, p.v = NULL, "v");
  ATTENTION_FAILS(good, p.cu_seqlens_k = NULL, "cu_seqlens_k");
  /* paged */
  static const int32_t table_past_end[2 * MB] = {4, 1, 3, 0, 6, 2}, table_negative[2 * MB] = {4, -1, 3, 0, 5, 2};
  ATTENTION_FAILS(paged, p.block_tables = table_past_end, "block_tables");
  ATTENTION_FAILS(paged, p.block_tables = table_negative, "block_tables");
  ATTENTION_FAILS(paged, p.block_tables = NULL, "block_tables");
  static const int32_t len_past_table[2] = {4, 7}, len_negative[2] = {-1, 5};
  ATTENTION_FAILS(paged, p.seqlens_k = len_past_table, "seqlens_k");
  ATTENTION_FAILS(paged, p.seqlens_k = len_negative, "seqlens_k");
  ATTENTION_FAILS(paged, p.seqlens_k = NULL, "seqlens_k");
  ATTENTION_FAILS(paged, p.max_blocks_per_seq = 2, "seqlens_k");
  ATTENTION_FAILS(paged, p.cache.num_kv_heads = 1, "cache");
  ATTENTION_FAILS(paged, p.cache.head_dim = 16, "cache");
  /* strides below the row */
  ATTENTION_FAILS(good, p.q_stride = QROW - 1, "q_stride");
  ATTENTION_FAILS(good, p.k_stride = KROW - 1, "k_stride");
  ATTENTION_FAILS(good, p.v_stride = 3, "v_stride");
  ATTENTION_FAILS(good, p.out_stride = QROW - 8, "out_stride");
  ATTENTION_FAILS(good, p.window_left = -2, "window_left");
  ATTENTION_FAILS(good, p.window_right = -5, "window_right");
  ATTENTION_FAILS(good, p.softcap = -1.0f, "softcap");
  ATTENTION_FAILS(good, p.softcap = NAN, "softcap");
  ATTENTION_FAILS(good, p.scale = NAN, "scale");
  ATTENTION_FAILS(good, p.dtype = (lk_dtype)7, "dtype");
  ATTENTION_FAILS(good, (p.bias = bias, p.bias_head_stride = TQ * TK, p.bias_row_stride = 0), "bias_row_stride");
  /* out overlapping q: the same rows, and a partial overlap */
  ATTENTION_FAILS(good, p.out = q, "out");
  ATTENTION_FAILS(good, p.out = q + QROW + 3, "out");
#undef ATTENTION_FAILS
}

int main(void) {
  const char *seed = getenv("LK_TEST_SEED");
  if (seed && *seed) base_seed = strtoull(seed, NULL, 0);
  context_grid_create(contexts, isas, &isa_count);
  for (int threads = 1; threads <= MAX_THREADS; threads++) {
    lk_cpu_options options = {threads, LK_ISA_AUTO};
    CHECK_STATUS(lk_cpu_context_create(&options, &auto_contexts[threads]), LK_OK);
  }
  run_timed("arguments", test_arguments);
  run_timed("no sequences", test_no_sequences);
  run_timed("fixed shapes", test_fixed);
  run_timed("grid", test_grid);
  run_timed("long prefill", test_long_prefill);
  run_timed("long decode", test_long_decode);
  run_timed("long special values", test_long_special_values);
  for (int threads = 1; threads <= MAX_THREADS; threads++) lk_cpu_context_destroy(auto_contexts[threads]);
  context_grid_destroy(contexts, isa_count);

  printf("%ld cases, %ld kernel calls (%ld paged), ISAs:", case_counter, kernel_calls, paged_calls);
  for (int k = 0; k < isa_count; k++) printf(" %s", lk_isa_name(isas[k]));
  printf("\nworst error / bound, out (f32 f16 bf16) | lse (f32 f16 bf16):\n");
  for (int k = 0; k < isa_count; k++)
    printf("  %-8s %.3f %.3f %.3f | %.3f %.3f %.3f\n", lk_isa_name(isas[k]), worst_ratio[k][0], worst_ratio[k][1],
           worst_ratio[k][2], worst_lse_ratio[k][0], worst_lse_ratio[k][1], worst_lse_ratio[k][2]);
  return check_summary("test_attention");
}
