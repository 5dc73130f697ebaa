/* The CUDA kernels' benchmark: every family on the shapes (Llama-3-8B/70B, Mixtral,
 * DeepSeek-V3), each timed with CUDA events after warm-up (median of the repetitions, and the
 * spread), on inputs several times the L2 where the kernel is memory-bound, next to the device's
 * copy bandwidth measured in the same run (a device-to-device copy of 1 GiB, bytes read plus
 * written). Writes one JSON object per line (--json FILE) for bench/cuda/report.py, which puts
 * them beside PyTorch's times on the same GPU (bench/cuda/torch_peers.py) and the bf16
 * matrix-product rate measured there.
 *
 * Only the public C ABI (llmkernels_cuda.h) is used: inputs are random values made on the host and
 * copied over, so no kernel is timed on zeros. Every call's status is checked, and every case
 * synchronises and checks the stream (a kernel's index error fails the run).
 *
 *   lk_cuda_bench [--json FILE] [--quick] [--filter NAME]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmkernels_cuda.h"

typedef struct bench_options {
  const char *json;
  const char *filter;
  int quick;
} bench_options;

static bench_options options;
static FILE *json_file;
static lk_cuda_stream stream;
static double copy_gbps;

static void die(const char *what, lk_status status) {
  fprintf(stderr, "%s: %s: %s\n", what, lk_status_name(status), lk_last_error());
  exit(1);
}
#define TRY(call)                                  \
  do {                                             \
    const lk_status s_ = (call);                   \
    if (s_ != LK_OK) die(#call, s_);               \
  } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_random() >> 40) * (1.0f / 16777216.0f); }

static uint16_t to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static void *device_alloc(size_t bytes) {
  void *p = NULL;
  TRY(lk_cuda_malloc(0, bytes, &p));
  return p;
}

/* `count` random bf16 values in [lo, hi] on the device (made on the host in chunks). */
static void *random_bf16(size_t count, float lo, float hi) {
  void *d = device_alloc(count * 2);
  const size_t chunk = (size_t)1 << 22;
  uint16_t *h = malloc(chunk * 2);
  for (size_t at = 0; at < count; at += chunk) {
    const size_t n = count - at < chunk ? count - at : chunk;
    for (size_t i = 0; i < n; i++) h[i] = to_bf16(uniform(lo, hi));
    TRY(lk_cuda_memcpy((char *)d + at * 2, h, n * 2, LK_CUDA_HOST_TO_DEVICE, NULL));
  }
  free(h);
  return d;
}

static void *random_f32(size_t count, float lo, float hi) {
  float *h = malloc(count * 4);
  for (size_t i = 0; i < count; i++) h[i] = uniform(lo, hi);
  void *d = device_alloc(count * 4);
  TRY(lk_cuda_memcpy(d, h, count * 4, LK_CUDA_HOST_TO_DEVICE, NULL));
  free(h);
  return d;
}

static void *upload(const void *host, size_t bytes) {
  void *d = device_alloc(bytes);
  TRY(lk_cuda_memcpy(d, host, bytes, LK_CUDA_HOST_TO_DEVICE, NULL));
  return d;
}

static int compare_floats(const void *a, const void *b) {
  const float x = *(const float *)a, y = *(const float *)b;
  return x < y ? -1 : x > y;
}

/* Times run(arg) with events: 3 warm-ups, then `reps` timed calls; median, min and max in ms. */
typedef void (*bench_fn)(void *arg);
static void time_it(bench_fn run, void *arg, double *median, double *lo, double *hi) {
  const int reps = options.quick ? 5 : 20;
  float ms[64];
  lk_cuda_event start, end;
  TRY(lk_cuda_event_create(0, &start));
  TRY(lk_cuda_event_create(0, &end));
  for (int i = 0; i < 3; i++) run(arg);
  TRY(lk_cuda_stream_synchronize(stream));
  for (int i = 0; i < reps; i++) {
    TRY(lk_cuda_event_record(start, stream));
    run(arg);
    TRY(lk_cuda_event_record(end, stream));
    TRY(lk_cuda_stream_synchronize(stream));
    TRY(lk_cuda_event_elapsed_ms(start, end, &ms[i]));
  }
  qsort(ms, (size_t)reps, sizeof ms[0], compare_floats);
  *median = ms[reps / 2];
  *lo = ms[0];
  *hi = ms[reps - 1];
  TRY(lk_cuda_event_destroy(start));
  TRY(lk_cuda_event_destroy(end));
}

static int selected(const char *name) { return !options.filter || strstr(name, options.filter) != NULL; }

/* One result: bytes moved (0 for compute-bound rows) and flops (0 for memory-bound rows). */
static void report(const char *name, const char *shape, double bytes, double flops, double ms, double lo, double hi) {
  const double gbps = bytes > 0 ? bytes / (ms * 1e-3) / 1e9 : 0.0, tflops = flops > 0 ? flops / (ms * 1e-3) / 1e12 : 0.0;
  if (bytes > 0)
    printf("%-28s %-40s %9.4f ms  %7.0f GB/s  %5.1f %% of copy\n", name, shape, ms, gbps, 100.0 * gbps / copy_gbps);
  else
    printf("%-28s %-40s %9.4f ms  %7.1f TFLOP/s\n", name, shape, ms, tflops);
  if (json_file)
    fprintf(json_file,
            "{\"kernel\": \"%s\", \"shape\": \"%s\", \"ms\": %.6f, \"ms_min\": %.6f, \"ms_max\": %.6f, \"bytes\": %.0f, "
            "\"flops\": %.0f, \"gbps\": %.2f, \"tflops\": %.3f, \"copy_gbps\": %.2f}\n",
            name, shape, ms, lo, hi, bytes, flops, gbps, tflops, copy_gbps);
}

/* ---- the ceiling ------------------------------------------------------------------------------- */

typedef struct copy_case { void *a, *b; size_t bytes; } copy_case;
static void run_copy(void *arg) {
  copy_case *c = arg;
  TRY(lk_cuda_memcpy(c->b, c->a, c->bytes, LK_CUDA_DEVICE_TO_DEVICE, stream));
}

static void bench_copy(void) {
  copy_case c = {NULL, NULL, (size_t)1 << 30};
  c.a = random_bf16(c.bytes / 2, -1, 1);
  c.b = device_alloc(c.bytes);
  double ms, lo, hi;
  time_it(run_copy, &c, &ms, &lo, &hi);
  copy_gbps = 2.0 * (double)c.bytes / (ms * 1e-3) / 1e9;
  printf("%-28s %-40s %9.4f ms  %7.0f GB/s  (read + write: the ceiling of the memory-bound rows)\n", "copy (device to device)",
         "1 GiB", ms, copy_gbps);
  if (json_file)
    fprintf(json_file, "{\"kernel\": \"copy\", \"shape\": \"1 GiB\", \"ms\": %.6f, \"ms_min\": %.6f, \"ms_max\": %.6f, \"bytes\": %.0f, \"gbps\": %.2f}\n",
            ms, lo, hi, 2.0 * (double)c.bytes, copy_gbps);
  TRY(lk_cuda_free(c.a));
  TRY(lk_cuda_free(c.b));
}

/* ---- norms -------------------------------------------------------------------------------------- */

typedef struct norm_case { lk_norm_params p; } norm_case;
static void run_norm(void *arg) { TRY(lk_cuda_norm(stream, &((norm_case *)arg)->p)); }

static void bench_norms(void) {
  const int64_t rows = 16384, hidden = 8192;
  const size_t n = (size_t)(rows * hidden);
  void *x = random_bf16(n, -2, 2), *res = random_bf16(n, -2, 2), *y = device_alloc(n * 2);
  void *w = random_bf16((size_t)hidden, -1, 1), *b = random_bf16((size_t)hidden, -1, 1);
  struct { const char *name; lk_norm_kind kind; lk_norm_residual mode; int bias; double passes; } cases[] = {
      {"rms_norm", LK_NORM_RMS, LK_NORM_RESIDUAL_NONE, 0, 2},
      {"fused_add_rms_norm", LK_NORM_RMS, LK_NORM_RESIDUAL_PRE, 0, 4},
      {"layer_norm", LK_NORM_LAYER, LK_NORM_RESIDUAL_NONE, 1, 2},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    if (!selected(cases[k].name)) continue;
    norm_case c;
    memset(&c, 0, sizeof c);
    c.p.x = x;
    c.p.residual = cases[k].mode == LK_NORM_RESIDUAL_NONE ? NULL : res;
    c.p.y = y;
    c.p.weight = w;
    c.p.bias = cases[k].bias ? b : NULL;
    c.p.rows = rows;
    c.p.hidden = hidden;
    c.p.eps = 1e-5f;
    c.p.kind = cases[k].kind;
    c.p.residual_mode = cases[k].mode;
    c.p.dtype = LK_DTYPE_BF16;
    c.p.weight_dtype = LK_DTYPE_BF16;
    double ms, lo, hi;
    time_it(run_norm, &c, &ms, &lo, &hi);
    report(cases[k].name, "bf16 [16384, 8192]", cases[k].passes * (double)n * 2, 0, ms, lo, hi);
  }
  TRY(lk_cuda_free(x));
  TRY(lk_cuda_free(res));
  TRY(lk_cuda_free(y));
  TRY(lk_cuda_free(w));
  TRY(lk_cuda_free(b));
}

/* ---- SwiGLU ------------------------------------------------------------------------------------- */

typedef struct glu_case { lk_glu_params p; } glu_case;
static void run_glu(void *arg) { TRY(lk_cuda_glu(stream, &((glu_case *)arg)->p)); }

static void bench_glu(void) {
  const int64_t tokens = 16384, d = 14336; /* Llama-3-8B's intermediate size */
  void *x = random_bf16((size_t)(tokens * 2 * d), -3, 3), *out = device_alloc((size_t)(tokens * d) * 2);
  struct { const char *name; lk_activation activation; } cases[] = {{"swiglu", LK_ACTIVATION_SILU}, {"geglu_tanh", LK_ACTIVATION_GELU_TANH}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    if (!selected(cases[k].name)) continue;
    glu_case c;
    memset(&c, 0, sizeof c);
    c.p.x = x;
    c.p.out = out;
    c.p.tokens = tokens;
    c.p.d = d;
    c.p.activation = cases[k].activation;
    c.p.layout = LK_GLU_GATE_FIRST;
    c.p.dtype = LK_DTYPE_BF16;
    double ms, lo, hi;
    time_it(run_glu, &c, &ms, &lo, &hi);
    report(cases[k].name, "bf16 [16384, 2 x 14336]", 3.0 * (double)(tokens * d) * 2, 0, ms, lo, hi);
  }
  TRY(lk_cuda_free(x));
  TRY(lk_cuda_free(out));
}

/* ---- RoPE --------------------------------------------------------------------------------------- */

typedef struct rope_case { lk_rope_params p; } rope_case;
static void run_rope(void *arg) { TRY(lk_cuda_rope(stream, &((rope_case *)arg)->p)); }

static void bench_rope(void) {
  if (!selected("rope")) return;
  const int64_t tokens = 16384, heads = 32, kv_heads = 8, dim = 128, max_pos = 16384;
  const int64_t stride = (heads + 2 * kv_heads) * dim; /* q and k inside a fused qkv buffer */
  void *qkv = random_bf16((size_t)(tokens * stride), -1, 1);
  void *cache = random_f32((size_t)(max_pos * dim), -1, 1);
  int64_t *pos = malloc(sizeof(int64_t) * (size_t)tokens);
  for (int64_t t = 0; t < tokens; t++) pos[t] = t % max_pos;
  void *d_pos = upload(pos, sizeof(int64_t) * (size_t)tokens);
  rope_case c;
  memset(&c, 0, sizeof c);
  c.p.q = qkv;
  c.p.k = (uint16_t *)qkv + heads * dim;
  c.p.positions = d_pos;
  c.p.cos_sin_cache = cache;
  c.p.tokens = tokens;
  c.p.num_heads = heads;
  c.p.num_kv_heads = kv_heads;
  c.p.head_dim = dim;
  c.p.max_position = max_pos;
  c.p.q_stride = stride;
  c.p.k_stride = stride;
  c.p.style = LK_ROPE_NEOX;
  c.p.position_type = LK_INDEX_I64;
  c.p.dtype = LK_DTYPE_BF16;
  double ms, lo, hi;
  time_it(run_rope, &c, &ms, &lo, &hi);
  const double bytes = 2.0 * (double)(tokens * (heads + kv_heads) * dim) * 2 + (double)(tokens * dim) * 4 + (double)tokens * 8;
  report("rope_neox", "bf16 q,k [16384, 32+8 heads, 128] in qkv", bytes, 0, ms, lo, hi);
  free(pos);
  TRY(lk_cuda_free(qkv));
  TRY(lk_cuda_free(cache));
  TRY(lk_cuda_free(d_pos));
}

/* ---- paged KV cache ------------------------------------------------------------------------------ */

typedef struct kv_write_case { lk_kv_cache_write_params p; } kv_write_case;
static void run_kv_write(void *arg) { TRY(lk_cuda_kv_cache_write(stream, &((kv_write_case *)arg)->p)); }
typedef struct kv_gather_case { lk_kv_cache_gather_params p; } kv_gather_case;
static void run_kv_gather(void *arg) { TRY(lk_cuda_kv_cache_gather(stream, &((kv_gather_case *)arg)->p)); }

static void shuffle(int64_t *v, int64_t n) {
  for (int64_t i = n - 1; i > 0; i--) {
    const int64_t j = (int64_t)(next_random() % (uint64_t)(i + 1)), t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
}

static void bench_kv(void) {
  const int64_t kv_heads = 8, dim = 128, block_size = 16, num_blocks = 16384, row = kv_heads * dim;
  const size_t cache_elems = (size_t)(num_blocks * block_size * row);
  lk_paged_kv_cache cache = {random_bf16(cache_elems, -1, 1), random_bf16(cache_elems, -1, 1), num_blocks, block_size, kv_heads, dim,
                             LK_DTYPE_BF16};
  if (selected("kv_cache_write")) {
    const int64_t tokens = 65536;
    void *key = random_bf16((size_t)(tokens * row), -1, 1), *value = random_bf16((size_t)(tokens * row), -1, 1);
    int64_t *slots = malloc(sizeof(int64_t) * (size_t)(num_blocks * block_size));
    for (int64_t s = 0; s < num_blocks * block_size; s++) slots[s] = s;
    shuffle(slots, num_blocks * block_size);
    void *d_slots = upload(slots, sizeof(int64_t) * (size_t)tokens);
    kv_write_case c = {{cache, key, value, tokens, 0, 0, d_slots}};
    double ms, lo, hi;
    time_it(run_kv_write, &c, &ms, &lo, &hi);
    report("kv_cache_write", "bf16 65536 tokens x [8, 128], shuffled slots", 4.0 * (double)(tokens * row) * 2 + (double)tokens * 8, 0, ms, lo, hi);
    free(slots);
    TRY(lk_cuda_free(key));
    TRY(lk_cuda_free(value));
    TRY(lk_cuda_free(d_slots));
  }
  if (selected("kv_cache_gather")) {
    const int64_t seqs = 32, len = 8192, blocks = len / block_size;
    int32_t *tables = malloc(sizeof(int32_t) * (size_t)(seqs * blocks)), *lens = malloc(sizeof(int32_t) * (size_t)seqs);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)num_blocks);
    for (int64_t b = 0; b < num_blocks; b++) perm[b] = b;
    shuffle(perm, num_blocks);
    for (int64_t i = 0; i < seqs * blocks; i++) tables[i] = (int32_t)perm[i];
    for (int64_t s = 0; s < seqs; s++) lens[s] = (int32_t)len;
    void *d_tables = upload(tables, sizeof(int32_t) * (size_t)(seqs * blocks)), *d_lens = upload(lens, sizeof(int32_t) * (size_t)seqs);
    void *ko = device_alloc((size_t)(seqs * len * row) * 2), *vo = device_alloc((size_t)(seqs * len * row) * 2);
    kv_gather_case c = {{cache, d_tables, blocks, d_lens, seqs, ko, vo, seqs * len}};
    double ms, lo, hi;
    time_it(run_kv_gather, &c, &ms, &lo, &hi);
    report("kv_cache_gather", "bf16 32 x 8192 tokens x [8, 128]", 4.0 * (double)(seqs * len * row) * 2, 0, ms, lo, hi);
    free(tables);
    free(lens);
    free(perm);
    TRY(lk_cuda_free(d_tables));
    TRY(lk_cuda_free(d_lens));
    TRY(lk_cuda_free(ko));
    TRY(lk_cuda_free(vo));
  }
  TRY(lk_cuda_free(cache.key_cache));
  TRY(lk_cuda_free(cache.value_cache));
}

/* ---- MoE ------------------------------------------------------------------------------------------ */

typedef struct gating_case { lk_moe_gating_params p; } gating_case;
static void run_gating(void *arg) { TRY(lk_cuda_moe_gating(stream, &((gating_case *)arg)->p)); }

static void bench_moe_gating(void) {
  struct { const char *name; int64_t experts, k, groups, topk_groups; lk_moe_scoring scoring; int bias, renorm; float scale; } cases[] = {
      {"moe_gating_deepseek_v3", 256, 8, 8, 4, LK_MOE_SIGMOID, 1, 1, 2.5f},
      {"moe_gating_mixtral", 8, 2, 0, 0, LK_MOE_TOPK_SOFTMAX, 0, 0, 0.0f},
      {"moe_gating_qwen", 64, 8, 0, 0, LK_MOE_SOFTMAX_TOPK, 0, 0, 0.0f},
  };
  const int64_t tokens = 65536;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    if (!selected(cases[k].name)) continue;
    void *logits = random_f32((size_t)(tokens * cases[k].experts), -4, 4);
    void *bias = random_f32((size_t)cases[k].experts, -0.1f, 0.1f);
    void *w = device_alloc((size_t)(tokens * cases[k].k) * 4), *ids = device_alloc((size_t)(tokens * cases[k].k) * 4);
    gating_case c;
    memset(&c, 0, sizeof c);
    c.p.logits = logits;
    c.p.weights = w;
    c.p.expert_ids = ids;
    c.p.correction_bias = cases[k].bias ? bias : NULL;
    c.p.num_tokens = tokens;
    c.p.num_experts = cases[k].experts;
    c.p.top_k = cases[k].k;
    c.p.num_groups = cases[k].groups;
    c.p.topk_groups = cases[k].topk_groups;
    c.p.routed_scaling_factor = cases[k].scale;
    c.p.scoring = cases[k].scoring;
    c.p.flags = cases[k].renorm ? LK_MOE_RENORMALIZE : 0;
    c.p.dtype = LK_DTYPE_F32;
    double ms, lo, hi;
    time_it(run_gating, &c, &ms, &lo, &hi);
    char shape[64];
    snprintf(shape, sizeof shape, "f32 [65536, %lld] k %lld", (long long)cases[k].experts, (long long)cases[k].k);
    report(cases[k].name, shape, (double)(tokens * cases[k].experts) * 4 + (double)(tokens * cases[k].k) * 8, 0, ms, lo, hi);
    TRY(lk_cuda_free(logits));
    TRY(lk_cuda_free(bias));
    TRY(lk_cuda_free(w));
    TRY(lk_cuda_free(ids));
  }
}

typedef struct routing_case {
  lk_moe_routing_params routing;
  lk_moe_permute_params permute;
  lk_moe_combine_params combine;
} routing_case;
static void run_routing(void *arg) { TRY(lk_cuda_moe_routing(stream, &((routing_case *)arg)->routing)); }
static void run_permute(void *arg) { TRY(lk_cuda_moe_permute(stream, &((routing_case *)arg)->permute)); }
static void run_combine(void *arg) { TRY(lk_cuda_moe_combine(stream, &((routing_case *)arg)->combine)); }

static void bench_moe_routing(void) {
  if (!selected("moe_routing") && !selected("moe_permute") && !selected("moe_combine")) return;
  const int64_t tokens = 16384, k = 2, experts = 8, hidden = 4096, slots = tokens * k; /* Mixtral-8x7B */
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)slots);
  float *weights = malloc(sizeof(float) * (size_t)slots);
  for (int64_t t = 0; t < tokens; t++) {
    const int32_t a = (int32_t)(next_random() % experts);
    int32_t b = (int32_t)(next_random() % (experts - 1));
    if (b >= a) b++;
    ids[t * 2] = a, ids[t * 2 + 1] = b;
    weights[t * 2] = 0.6f, weights[t * 2 + 1] = 0.4f;
  }
  routing_case c;
  memset(&c, 0, sizeof c);
  void *d_ids = upload(ids, sizeof(int32_t) * (size_t)slots), *d_w = upload(weights, sizeof(float) * (size_t)slots);
  void *counts = device_alloc(sizeof(int32_t) * (size_t)experts), *offsets = device_alloc(sizeof(int32_t) * (size_t)(experts + 1));
  void *sorted = device_alloc(sizeof(int32_t) * (size_t)slots), *slot_rows = device_alloc(sizeof(int32_t) * (size_t)slots);
  c.routing.expert_ids = d_ids;
  c.routing.num_tokens = tokens;
  c.routing.top_k = k;
  c.routing.num_experts = experts;
  c.routing.expert_counts = counts;
  c.routing.expert_offsets = offsets;
  c.routing.sorted_slots = sorted;
  c.routing.sorted_capacity = slots;
  c.routing.slot_rows = slot_rows;
  void *hidden_states = random_bf16((size_t)(tokens * hidden), -1, 1), *expert_rows = device_alloc((size_t)(slots * hidden) * 2);
  void *out = device_alloc((size_t)(tokens * hidden) * 2);
  c.permute = (lk_moe_permute_params){hidden_states, expert_rows, sorted, tokens, k, slots, hidden, 0, 0, LK_DTYPE_BF16};
  c.combine = (lk_moe_combine_params){expert_rows, d_w, slot_rows, out, tokens, k, slots, hidden, 0, 0, LK_DTYPE_BF16};
  double ms, lo, hi;
  run_routing(&c); /* the plan the others read */
  TRY(lk_cuda_stream_synchronize(stream));
  if (selected("moe_routing")) {
    time_it(run_routing, &c, &ms, &lo, &hi);
    report("moe_routing", "Mixtral 16384 tokens, 2 of 8", (double)slots * 4 * 3, 0, ms, lo, hi);
  }
  if (selected("moe_permute")) {
    time_it(run_permute, &c, &ms, &lo, &hi);
    report("moe_permute", "bf16 16384 x 4096, 2 of 8", 2.0 * (double)(slots * hidden) * 2, 0, ms, lo, hi);
  }
  if (selected("moe_combine")) {
    time_it(run_combine, &c, &ms, &lo, &hi);
    report("moe_combine", "bf16 16384 x 4096, 2 of 8", (double)(slots * hidden) * 2 + (double)(tokens * hidden) * 2, 0, ms, lo, hi);
  }
  free(ids);
  free(weights);
  void *all[] = {d_ids, d_w, counts, offsets, sorted, slot_rows, hidden_states, expert_rows, out};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) TRY(lk_cuda_free(all[i]));
}

/* ---- attention ---------------------------------------------------------------------------------------- */

typedef struct attention_case { lk_attention_params p; } attention_case;
static void run_attention(void *arg) { TRY(lk_cuda_attention(stream, &((attention_case *)arg)->p)); }

static void bench_prefill(void) {
  if (!selected("attention_prefill")) return;
  const int64_t seq = 8192, heads = 32, kv_heads = 8, dim = 128;
  void *q = random_bf16((size_t)(seq * heads * dim), -1, 1), *out = device_alloc((size_t)(seq * heads * dim) * 2);
  void *k = random_bf16((size_t)(seq * kv_heads * dim), -1, 1), *v = random_bf16((size_t)(seq * kv_heads * dim), -1, 1);
  int32_t cu[2] = {0, (int32_t)seq};
  void *d_cu = upload(cu, sizeof cu);
  for (int causal = 1; causal >= 0; causal--) {
    attention_case c;
    memset(&c, 0, sizeof c);
    c.p.q = q;
    c.p.k = k;
    c.p.v = v;
    c.p.out = out;
    c.p.cu_seqlens_q = d_cu;
    c.p.cu_seqlens_k = d_cu;
    c.p.num_seqs = 1;
    c.p.max_seqlen_q = seq;
    c.p.max_seqlen_k = seq;
    c.p.num_heads = heads;
    c.p.num_kv_heads = kv_heads;
    c.p.head_dim = dim;
    c.p.window_left = c.p.window_right = -1;
    c.p.flags = causal ? LK_ATTENTION_CAUSAL : 0;
    c.p.dtype = LK_DTYPE_BF16;
    double ms, lo, hi;
    time_it(run_attention, &c, &ms, &lo, &hi);
    const double flops = 4.0 * (double)seq * (double)seq * (double)dim * (double)heads / (causal ? 2.0 : 1.0);
    report(causal ? "attention_prefill_causal" : "attention_prefill", "bf16 8192 tokens, 32/8 heads, d 128", 0, flops, ms, lo, hi);
  }
  TRY(lk_cuda_free(q));
  TRY(lk_cuda_free(k));
  TRY(lk_cuda_free(v));
  TRY(lk_cuda_free(out));
  TRY(lk_cuda_free(d_cu));
}

static void bench_decode(void) {
  if (!selected("attention_decode")) return;
  const int64_t batch = 64, context = 8192, heads = 32, kv_heads = 8, dim = 128, block_size = 16;
  const int64_t blocks_per_seq = context / block_size, num_blocks = batch * blocks_per_seq, row = kv_heads * dim;
  const size_t cache_elems = (size_t)(num_blocks * block_size * row);
  lk_paged_kv_cache cache = {random_bf16(cache_elems, -1, 1), random_bf16(cache_elems, -1, 1), num_blocks, block_size, kv_heads, dim,
                             LK_DTYPE_BF16};
  int64_t *perm = malloc(sizeof(int64_t) * (size_t)num_blocks);
  int32_t *tables = malloc(sizeof(int32_t) * (size_t)num_blocks), lens[64], cu[65];
  for (int64_t b = 0; b < num_blocks; b++) perm[b] = b;
  shuffle(perm, num_blocks);
  for (int64_t b = 0; b < num_blocks; b++) tables[b] = (int32_t)perm[b];
  for (int s = 0; s <= batch; s++) cu[s] = s;
  for (int s = 0; s < batch; s++) lens[s] = (int32_t)context;
  void *d_tables = upload(tables, sizeof(int32_t) * (size_t)num_blocks), *d_lens = upload(lens, sizeof lens), *d_cu = upload(cu, sizeof cu);
  void *q = random_bf16((size_t)(batch * heads * dim), -1, 1), *out = device_alloc((size_t)(batch * heads * dim) * 2);
  attention_case c;
  memset(&c, 0, sizeof c);
  c.p.q = q;
  c.p.out = out;
  c.p.cu_seqlens_q = d_cu;
  c.p.seqlens_k = d_lens;
  c.p.cache = cache;
  c.p.block_tables = d_tables;
  c.p.max_blocks_per_seq = blocks_per_seq;
  c.p.num_seqs = batch;
  c.p.max_seqlen_q = 1;
  c.p.max_seqlen_k = context;
  c.p.num_heads = heads;
  c.p.num_kv_heads = kv_heads;
  c.p.head_dim = dim;
  c.p.window_left = c.p.window_right = -1;
  c.p.flags = LK_ATTENTION_CAUSAL;
  c.p.dtype = LK_DTYPE_BF16;
  double ms, lo, hi;
  time_it(run_attention, &c, &ms, &lo, &hi);
  report("attention_decode_paged", "bf16 batch 64, context 8192, 32/8 heads", 2.0 * (double)cache_elems * 2, 0, ms, lo, hi);
  free(perm);
  free(tables);
  TRY(lk_cuda_free(cache.key_cache));
  TRY(lk_cuda_free(cache.value_cache));
  TRY(lk_cuda_free(d_tables));
  TRY(lk_cuda_free(d_lens));
  TRY(lk_cuda_free(d_cu));
  TRY(lk_cuda_free(q));
  TRY(lk_cuda_free(out));
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json") && i + 1 < argc) options.json = argv[++i];
    else if (!strcmp(argv[i], "--filter") && i + 1 < argc) options.filter = argv[++i];
    else if (!strcmp(argv[i], "--quick")) options.quick = 1;
    else {
      fprintf(stderr, "usage: lk_cuda_bench [--json FILE] [--quick] [--filter NAME]\n");
      return 2;
    }
  }
  int32_t count = 0;
  TRY(lk_cuda_device_count(&count));
  if (count == 0) {
    printf("lk_cuda_bench: %s\n", lk_last_error());
    return 77;
  }
  lk_cuda_device_properties props;
  TRY(lk_cuda_device_properties_get(0, &props));
  printf("device 0: %s, sm_%d%d, %d SMs, %.0f GiB, L2 %d MiB\n", props.name, (int)props.compute_capability_major,
         (int)props.compute_capability_minor, (int)props.multiprocessor_count, (double)props.total_memory_bytes / (1 << 30),
         (int)(props.l2_cache_bytes >> 20));
  if (options.json && !(json_file = fopen(options.json, "w"))) {
    perror(options.json);
    return 1;
  }
  if (json_file) fprintf(json_file, "{\"device\": \"%s\", \"sms\": %d}\n", props.name, (int)props.multiprocessor_count);
  TRY(lk_cuda_stream_create(0, &stream));
  bench_copy();
  bench_norms();
  bench_glu();
  bench_rope();
  bench_kv();
  bench_moe_gating();
  bench_moe_routing();
  bench_prefill();
  bench_decode();
  TRY(lk_cuda_stream_destroy(stream));
  if (json_file) fclose(json_file);
  return 0;
}
