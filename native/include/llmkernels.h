/* LlmKernels — fused transformer kernels for .NET hosts: the C ABI (common types, CPU entry points).
 *
 * Shape of every call (docs/abi.md has the long form):
 *   - one entry point per operation and backend, taking a context and a plain params struct
 *     (pointers, sizes, row strides in ELEMENTS, flags, dtypes);
 *   - every call returns an lk_status; lk_last_error() gives a thread-local message naming the
 *     bad argument. Nothing here aborts, prints or exits on bad input.
 *
 * This header compiles as C11 and C++ with MSVC, GCC and Clang and includes nothing beyond
 * <stdint.h> and <stddef.h>, so that the bindings generator can parse it with a minimal sysroot.
 */
#ifndef LLMKERNELS_H
#define LLMKERNELS_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(LK_BUILDING_LIBRARY)
#    define LK_API __declspec(dllexport)
#  else
#    define LK_API __declspec(dllimport)
#  endif
#else
#  define LK_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a params struct, an enum value or a signature changes; the managed layer refuses
 * a native library whose lk_abi_version() differs from the one its bindings were generated for. */
#define LK_ABI_VERSION 8

typedef enum lk_status {
  LK_OK = 0,
  LK_ERR_INVALID_ARGUMENT = 1, /* a pointer, size, stride, dtype or flag is wrong: the message names it */
  LK_ERR_UNSUPPORTED = 2,      /* valid request this build or CPU cannot serve (e.g. a forced ISA) */
  LK_ERR_OUT_OF_MEMORY = 3,
  LK_ERR_BUSY = 4,             /* the context is in use by another host thread */
  LK_ERR_INTERNAL = 5,
  LK_ERR_DEVICE = 6            /* the CUDA runtime or driver failed (llmkernels_cuda.h): the message has its name and text */
} lk_status;

typedef enum lk_dtype {
  LK_DTYPE_F32 = 0,
  LK_DTYPE_F16 = 1, /* IEEE 754 binary16 */
  LK_DTYPE_BF16 = 2 /* bfloat16: the upper half of a binary32 */
} lk_dtype;

/* Instruction-set levels of the CPU backend. Each kernel is compiled once per level. */
typedef enum lk_isa {
  LK_ISA_AUTO = 0,   /* the best level this CPU runs, unless LLMK_ISA names one */
  LK_ISA_SCALAR = 1, /* portable C: the reference definitions */
  LK_ISA_AVX2 = 2,   /* AVX2 + FMA + F16C */
  LK_ISA_AVX512 = 3  /* AVX-512 F, BW, DQ, VL */
} lk_isa;

/* ---- library ------------------------------------------------------------------------------ */

LK_API int32_t lk_abi_version(void);
/* "major.minor.patch" of the native library. */
LK_API const char *lk_version(void);
/* The message of the last failed call on this thread ("" if none). Valid until the next call
 * on this thread. */
LK_API const char *lk_last_error(void);
LK_API const char *lk_status_name(lk_status status);
LK_API const char *lk_isa_name(lk_isa isa);
/* Bit (1 << isa) is set for each level this CPU and OS can run (CPUID and XGETBV). */
LK_API uint32_t lk_cpu_supported_isas(void);
/* Writes the CPU's brand string (truncated, NUL-terminated) into buffer. */
LK_API lk_status lk_cpu_brand(char *buffer, int32_t capacity);

/* Layout checks for the bindings: size and field offsets of each params struct, as this build
 * of the library sees them. Unknown names give -1. The table is generated from this header. */
LK_API int64_t lk_struct_size(const char *struct_name);
LK_API int64_t lk_struct_field_offset(const char *struct_name, const char *field_name);

/* ---- CPU context -------------------------------------------------------------------------- */

/* Owns a persistent thread pool and per-thread scratch: a kernel call allocates nothing.
 * One host thread at a time: a call that finds the context in use by another thread fails with
 * LK_ERR_BUSY instead of racing. */
typedef struct lk_cpu_context lk_cpu_context;

typedef struct lk_cpu_options {
  int32_t num_threads; /* 0: all logical cores */
  lk_isa isa;          /* LK_ISA_AUTO: best supported, or LLMK_ISA=scalar|avx2|avx512 */
} lk_cpu_options;

typedef struct lk_cpu_context_info {
  int32_t num_threads;
  lk_isa isa;
} lk_cpu_context_info;

/* options may be NULL (all defaults). Forcing an ISA the CPU cannot run is LK_ERR_UNSUPPORTED. */
LK_API lk_status lk_cpu_context_create(const lk_cpu_options *options, lk_cpu_context **out_context);
/* Joins the workers and frees everything. NULL is a no-op. */
LK_API void lk_cpu_context_destroy(lk_cpu_context *context);
LK_API lk_status lk_cpu_context_get_info(const lk_cpu_context *context, lk_cpu_context_info *out_info);

/* ---- RMSNorm ------------------------------------------------------------------------------- */

/* Gemma stores w - 1: the kernel multiplies by (1 + w), computed in f32. */
#define LK_NORM_WEIGHT_OFFSET_ONE 1u

/* y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w, over `rows` rows of `hidden` elements.
 *
 * lk_fused_add_rms_norm (vLLM's fused_add_rms_norm, with a separate output):
 *   residual[r, :] = round(residual[r, :] + x[r, :]);  y[r, :] = rms_norm(residual[r, :]) * w
 * The sum is rounded to `dtype` once, stored, and the statistics use that stored (rounded) value,
 * so the fused call equals an add followed by lk_rms_norm (as PyTorch/HF compute it).
 * All math is f32; y is rounded once, after the weight multiply.
 *
 * Aliasing: y may equal x (in place); in the fused form y may also equal residual. Any other
 * overlap between x, residual and y is LK_ERR_INVALID_ARGUMENT. */
typedef struct lk_rms_norm_params {
  const void *x;        /* [rows, x_stride], dtype */
  void *residual;       /* [rows, residual_stride], dtype: fused form only, else NULL */
  void *y;              /* [rows, y_stride], dtype */
  const void *weight;   /* [hidden], weight_dtype */
  int64_t rows;
  int64_t hidden;
  int64_t x_stride;     /* elements between rows; 0 means hidden */
  int64_t residual_stride;
  int64_t y_stride;
  float eps;
  uint32_t flags;       /* LK_NORM_* */
  lk_dtype dtype;       /* x, residual and y */
  lk_dtype weight_dtype; /* dtype or LK_DTYPE_F32 */
} lk_rms_norm_params;

LK_API lk_status lk_rms_norm(lk_cpu_context *context, const lk_rms_norm_params *params);
LK_API lk_status lk_fused_add_rms_norm(lk_cpu_context *context, const lk_rms_norm_params *params);

/* ---- Norms: RMSNorm and LayerNorm with the residual placements models use ------------------- */

typedef enum lk_norm_kind {
  LK_NORM_RMS = 0,  /* y = v / sqrt(mean(v^2) + eps) * w */
  LK_NORM_LAYER = 1 /* y = (v - mean(v)) / sqrt(var(v) + eps) * w + b  (biased variance, as torch) */
} lk_norm_kind;

/* Where the residual stream meets the norm (v is what gets normalised):
 *   NONE  v = x                                      residual must be NULL
 *   PRE   residual = round(residual + x); v = residual   (pre-norm: Llama, vLLM fused_add_rms_norm)
 *   POST  v = round(alpha * residual + x)           (post-norm with alpha = 1; DeepNorm, GLM-130B,
 *                                                     with alpha = (2N)^(1/4)); residual is read only
 * round() is rounding to dtype: the statistics use the value a separate add would have stored, so a
 * fused call equals the unfused sequence (PyTorch/HF semantics). Sandwich norm (Gemma 2/3:
 * residual += norm2(x); y = norm1(residual)) is NONE with norm2's weight, then PRE with norm1's:
 * docs/norms.md. */
typedef enum lk_norm_residual {
  LK_NORM_RESIDUAL_NONE = 0,
  LK_NORM_RESIDUAL_PRE = 1,
  LK_NORM_RESIDUAL_POST = 2
} lk_norm_residual;

/* The general norm call. lk_rms_norm / lk_fused_add_rms_norm above are RMS with NONE / PRE.
 * Statistics are f32 (LayerNorm: mean, then the variance as a second pass over the row in cache,
 * so no cancellation); y is rounded once, after the weight multiply and bias add.
 * Aliasing: y may equal x (in place), and in the PRE form y may equal residual; any other overlap
 * with a tensor the call writes (y; residual in PRE) is LK_ERR_INVALID_ARGUMENT. Inputs it only
 * reads (x, weight, bias, residual in POST) may share memory. */
typedef struct lk_norm_params {
  const void *x;         /* [rows, x_stride], dtype */
  void *residual;        /* [rows, residual_stride], dtype: PRE (updated) and POST (read), else NULL */
  void *y;               /* [rows, y_stride], dtype */
  const void *weight;    /* [hidden], weight_dtype; required for RMS, NULL means 1 for LAYER */
  const void *bias;      /* [hidden], weight_dtype; LAYER only, NULL means 0 */
  int64_t rows;
  int64_t hidden;
  int64_t x_stride;      /* elements between rows; 0 means hidden */
  int64_t residual_stride;
  int64_t y_stride;
  float eps;
  float alpha;           /* POST: the residual's scale; 0 is read as 1. Must be 0 or 1 otherwise. */
  uint32_t flags;        /* LK_NORM_WEIGHT_OFFSET_ONE */
  lk_norm_kind kind;
  lk_norm_residual residual_mode;
  lk_dtype dtype;        /* x, residual and y */
  lk_dtype weight_dtype; /* weight and bias: dtype or LK_DTYPE_F32 */
} lk_norm_params;

LK_API lk_status lk_norm(lk_cpu_context *context, const lk_norm_params *params);

/* ---- Activations and gated linear units ----------------------------------------------------- */

/* Element-wise functions, computed in f32 with the vectorised exp/erf/tanh of docs/activations.md
 * (maximum errors in ulps against float64 are listed there). */
typedef enum lk_activation {
  LK_ACTIVATION_SILU = 0,      /* x * sigmoid(x) = x / (1 + exp(-x)) */
  LK_ACTIVATION_GELU_ERF = 1,  /* 0.5 x (1 + erf(x / sqrt(2)))  (torch gelu, approximate='none') */
  LK_ACTIVATION_GELU_TANH = 2, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (approximate='tanh') */
  LK_ACTIVATION_RELU = 3,      /* max(x, 0); NaN stays NaN */
  LK_ACTIVATION_SIGMOID = 4,   /* 1 / (1 + exp(-x)) */
  LK_ACTIVATION_EXP = 5,
  LK_ACTIVATION_TANH = 6,
  LK_ACTIVATION_ERF = 7
} lk_activation;

/* y[i] = act(x[i]) for i < n. y may equal x (in place); any other overlap is an error. */
typedef struct lk_activation_params {
  const void *x; /* [n], dtype */
  void *y;       /* [n], dtype */
  int64_t n;
  lk_activation activation;
  lk_dtype dtype;
} lk_activation_params;

LK_API lk_status lk_apply_activation(lk_cpu_context *context, const lk_activation_params *params);

/* How gate and up reach lk_glu. */
typedef enum lk_glu_layout {
  LK_GLU_GATE_FIRST = 0, /* x rows hold [gate | up], 2*d elements: vLLM silu_and_mul, gelu_and_mul */
  LK_GLU_UP_FIRST = 1,   /* x rows hold [up | gate]: vLLM mul_and_silu */
  LK_GLU_SPLIT = 2       /* x is the gate [tokens, d], up a separate tensor */
} lk_glu_layout;

/* out[t, i] = act(gate[t, i]) * up[t, i] for i < d: SwiGLU (SILU), GeGLU (GELU_ERF, GELU_TANH),
 * ReGLU (RELU); any lk_activation is accepted. f32 math, out rounded once.
 * out may equal x (same base and stride: in place, each row's first d elements); any other overlap
 * between x, up and out is an error. */
typedef struct lk_glu_params {
  const void *x;      /* packed layouts: [tokens, x_stride] rows of 2*d; SPLIT: the gate [tokens, x_stride] */
  const void *up;     /* SPLIT: [tokens, up_stride]; NULL otherwise */
  void *out;          /* [tokens, out_stride] */
  int64_t tokens;
  int64_t d;
  int64_t x_stride;   /* elements between rows; 0 means 2*d (packed) or d (SPLIT) */
  int64_t up_stride;  /* 0 means d */
  int64_t out_stride; /* 0 means d */
  lk_activation activation;
  lk_glu_layout layout;
  lk_dtype dtype;     /* x, up and out */
} lk_glu_params;

LK_API lk_status lk_glu(lk_cpu_context *context, const lk_glu_params *params);

/* ---- Rotary position embedding ---------------------------------------------------------------- */

typedef enum lk_rope_style {
  LK_ROPE_NEOX = 0, /* pairs (i, i + rot_dim/2): GPT-NeoX, Llama (HF rotate_half) */
  LK_ROPE_GPTJ = 1  /* pairs (2i, 2i + 1): GPT-J, original RoFormer, ggml's "normal" mode */
} lk_rope_style;

typedef enum lk_index_type {
  LK_INDEX_I32 = 0,
  LK_INDEX_I64 = 1
} lk_index_type;

/* In place on q (and k if not NULL), per token t and head h, for pair j < rot_dim/2 with
 * c = cache[pos[t], j], s = cache[pos[t], rot_dim/2 + j]:
 *   a' = a c - b s,  b' = b c + a s      (a, b the pair's two elements), f32 math;
 * elements from rot_dim to head_dim are left untouched (partial rotary: GPT-NeoX, Phi, GLM).
 * A token's heads are head_dim apart; tokens are q_stride / k_stride elements apart, so q and k may
 * be views into one fused qkv buffer. A position outside [0, max_position) is
 * LK_ERR_INVALID_ARGUMENT naming the token, checked before anything is written. */
typedef struct lk_rope_params {
  void *q;                     /* [tokens, q_stride], heads [num_heads, head_dim] */
  void *k;                     /* [tokens, k_stride], heads [num_kv_heads, head_dim]; NULL: q only */
  const void *positions;       /* [tokens], position_type */
  const float *cos_sin_cache;  /* [max_position, rot_dim]: cos half then sin half (vLLM's layout) */
  int64_t tokens;
  int64_t num_heads;
  int64_t num_kv_heads;        /* divides num_heads (GQA/MQA); ignored when k is NULL */
  int64_t head_dim;
  int64_t rot_dim;             /* even, <= head_dim; 0 means head_dim */
  int64_t max_position;        /* rows of the cache */
  int64_t q_stride;            /* 0 means num_heads * head_dim */
  int64_t k_stride;            /* 0 means num_kv_heads * head_dim */
  lk_rope_style style;
  lk_index_type position_type;
  lk_dtype dtype;              /* q and k */
} lk_rope_params;

LK_API lk_status lk_rope(lk_cpu_context *context, const lk_rope_params *params);

/* Frequency scaling rules for long context (vLLM's rotary_embedding, HF's rope_scaling). */
typedef enum lk_rope_scaling {
  LK_ROPE_SCALING_NONE = 0,
  LK_ROPE_SCALING_LINEAR = 1,      /* positions / factor */
  LK_ROPE_SCALING_DYNAMIC_NTK = 2, /* base' = base ((factor L / L0) - (factor - 1))^(d / (d - 2)), L = max(max_position, L0) */
  LK_ROPE_SCALING_YARN = 3,        /* factor, original_max_position, beta_fast, beta_slow, mscale */
  LK_ROPE_SCALING_LLAMA3 = 4       /* factor, low/high_freq_factor, original_max_position */
} lk_rope_scaling;

/* Fills cache[p, j] = cos(p * inv_freq[j]) * m and cache[p, rot_dim/2 + j] = sin(...) * m, the
 * angle and its cos/sin computed in double and rounded once to f32 (exact enough for positions up
 * to and beyond 1,000,000). m is 1 except for YaRN. Formulas, and the HF/vLLM fields they take:
 * docs/rope.md. */
typedef struct lk_rope_cache_params {
  float *cache;                  /* [max_position, rot_dim] */
  int64_t max_position;
  int64_t rot_dim;               /* even, > 0 */
  int64_t original_max_position; /* DYNAMIC_NTK, YARN, LLAMA3: the pre-training context length */
  double base;                   /* rope_theta, > 0 (10000, 500000, ...) */
  double factor;                 /* scaling factor (>= 1 for LINEAR/DYNAMIC_NTK/YARN/LLAMA3) */
  double beta_fast;              /* YARN; 0 means 32 */
  double beta_slow;              /* YARN; 0 means 1 */
  double mscale;                 /* YARN: cos/sin multiplier; 0 means 0.1 ln(factor) + 1 */
  double low_freq_factor;        /* LLAMA3 (1 in Llama 3.1) */
  double high_freq_factor;       /* LLAMA3 (4 in Llama 3.1) */
  lk_rope_scaling scaling;
} lk_rope_cache_params;

LK_API lk_status lk_rope_cache_build(lk_cpu_context *context, const lk_rope_cache_params *params);

/* ---- Position helpers -------------------------------------------------------------------------- */

/* ALiBi slopes for num_heads heads (Press et al.; as in HF's build_alibi_tensor and vLLM):
 * n = the largest power of two <= num_heads, slopes 2^(-8 (i+1) / n) for i < n, then for the rest
 * the odd-indexed slopes of 2n heads: 2^(-4 (2 i + 1) / n) for i < num_heads - n. */
LK_API lk_status lk_alibi_slopes(int64_t num_heads, float *slopes);

/* The sinusoidal table of "Attention Is All You Need": table[p, 2i] = sin(p / base^(2i / dim)),
 * table[p, 2i + 1] = cos(...), computed in double; dim even, base > 0 (10000 in the paper). */
LK_API lk_status lk_sinusoidal_positions(float *table, int64_t num_positions, int64_t dim, double base);

/* T5's relative position buckets and the additive attention bias built from them.
 * For query i and key j, rel = j - (i + query_offset); bucket(rel) as T5's
 * _relative_position_bucket (bidirectional: half the buckets per sign; exact below
 * max_exact = buckets/2, logarithmic up to max_distance). */
typedef struct lk_t5_bias_params {
  const float *table;    /* [num_buckets, num_heads]: relative_attention_bias.weight; NULL: buckets only */
  float *bias;           /* [num_heads, q_len, k_len] f32: table[bucket(i, j), h]; NULL if table is NULL */
  int32_t *buckets;      /* [q_len, k_len] or NULL */
  int64_t q_len;
  int64_t k_len;
  int64_t num_heads;
  int64_t num_buckets;   /* 32 in T5 */
  int64_t max_distance;  /* 128 in T5 */
  int64_t query_offset;  /* position of query 0 among the keys: k_len - q_len when decoding */
  int32_t bidirectional; /* 1: encoder; 0: decoder (causal) */
} lk_t5_bias_params;

LK_API lk_status lk_t5_relative_position_bias(const lk_t5_bias_params *params);

/* ---- Paged KV cache ------------------------------------------------------------------------------
 * One layer's cache in vLLM's flash layout: key_cache and value_cache, each
 * [num_blocks, block_size, num_kv_heads, head_dim], contiguous, in `dtype`. Slot s = block *
 * block_size + offset names one token's row (num_kv_heads * head_dim elements) in both. Every call
 * validates everything it will read or write before it writes anything: a slot, block id or length
 * outside the cache is LK_ERR_INVALID_ARGUMENT naming the argument and the index, and nothing is
 * written. docs/kv_cache.md has the contracts. */
typedef struct lk_paged_kv_cache {
  void *key_cache;
  void *value_cache;
  int64_t num_blocks;
  int64_t block_size;
  int64_t num_kv_heads;
  int64_t head_dim;
  lk_dtype dtype;
} lk_paged_kv_cache;

/* vLLM's reshape_and_cache_flash: key and value rows [num_tokens, num_kv_heads, head_dim] (token
 * strides in elements; 0 = num_kv_heads * head_dim) are copied to the cache rows slot_mapping[t].
 * A negative slot is padding: that token is skipped. A slot at or past num_blocks * block_size, or
 * a slot two tokens name, is an error naming the token. key, value and the cache must not overlap. */
typedef struct lk_kv_cache_write_params {
  lk_paged_kv_cache cache;
  const void *key;
  const void *value;
  int64_t num_tokens;
  int64_t key_stride;
  int64_t value_stride;
  const int64_t *slot_mapping; /* [num_tokens] */
} lk_kv_cache_write_params;

LK_API lk_status lk_kv_cache_write(lk_cpu_context *context, const lk_kv_cache_write_params *params);

/* The pages of num_seqs sequences, gathered into contiguous key_out and value_out
 * [sum(seq_lens), num_kv_heads, head_dim], sequence after sequence: token i of sequence s comes from
 * block block_tables[s * max_blocks_per_seq + i / block_size], offset i % block_size. Only the
 * entries a sequence uses are read (and checked): ceil(seq_lens[s] / block_size) of them, which must
 * fit in max_blocks_per_seq (block_tables may be NULL when no sequence uses one). out_tokens is the
 * capacity of key_out and value_out in rows. */
typedef struct lk_kv_cache_gather_params {
  lk_paged_kv_cache cache;
  const int32_t *block_tables; /* [num_seqs, max_blocks_per_seq] */
  int64_t max_blocks_per_seq;
  const int32_t *seq_lens;     /* [num_seqs] */
  int64_t num_seqs;
  void *key_out;
  void *value_out;
  int64_t out_tokens;
} lk_kv_cache_gather_params;

LK_API lk_status lk_kv_cache_gather(lk_cpu_context *context, const lk_kv_cache_gather_params *params);

/* vLLM's copy_blocks, for copy-on-write prefix sharing: whole blocks of key_cache and value_cache
 * copied src -> dst for each pair block_mapping[2 p], block_mapping[2 p + 1]. A destination named
 * twice, or a block that is the destination of one pair and the source of another (the result
 * would depend on the order), is an error naming the pair. A pair with src == dst copies nothing
 * and takes no part in those checks (its block may appear in other pairs). */
typedef struct lk_kv_cache_copy_blocks_params {
  lk_paged_kv_cache cache;
  const int64_t *block_mapping; /* [num_pairs, 2]: (src, dst) */
  int64_t num_pairs;
} lk_kv_cache_copy_blocks_params;

LK_API lk_status lk_kv_cache_copy_blocks(lk_cpu_context *context, const lk_kv_cache_copy_blocks_params *params);

/* ---- Attention ------------------------------------------------------------------------------------
 * out = softmax(q k^T * scale + bias) v per sequence and query head, FlashAttention's varlen form:
 * q [total_q, num_heads, head_dim] and out alike, sequence s owning tokens [cu_seqlens_q[s],
 * cu_seqlens_q[s + 1]); keys and values either contiguous ([total_k, num_kv_heads, head_dim],
 * sequence s owning [cu_seqlens_k[s], cu_seqlens_k[s + 1])) or in a paged cache (cache.key_cache
 * non-NULL: sequence s has seqlens_k[s] keys, token j in block block_tables[s * max_blocks_per_seq +
 * j / block_size]). Query head h reads kv head h / (num_heads / num_kv_heads) (GQA, MQA).
 * Within a sequence of Sq queries and Sk keys, query i sits at key position p = i + Sk - Sq (the
 * queries are the last Sq of the keys: decode and chunked prefill over a cached prefix), and for
 * each key j:
 *   s = dot(q_i, k_j) * scale                       (f32 accumulation, never f16)
 *   s = softcap * tanh(s / softcap)                 if softcap > 0 (Gemma 2, Grok)
 *   s = s - alibi_slopes[h] * |p - j|               if alibi_slopes
 *   s = s + bias[h * bias_head_stride + (cu_seqlens_q[s] + i) * bias_row_stride + j]   if bias
 *   key j is visible when j <= p (LK_ATTENTION_CAUSAL), j >= p - window_left (window_left >= 0)
 *   and j <= p + window_right (window_right >= 0); -1 leaves that side unbounded.
 * out_i = sum_j softmax(s)_j v_j with an online (running max and sum) softmax in f32, rounded once
 * to dtype; lse (optional, [total_q, num_heads] f32) = log(sum_j exp(s_j)), natural log. A query
 * that sees no key gets out = 0 and lse = -inf. max_seqlen_q and max_seqlen_k are optional bounds
 * (0: not given) that the CUDA backend sizes its grid by; a sequence longer than a bound given is
 * LK_ERR_INVALID_ARGUMENT on either backend. docs/attention.md has the contracts. */
typedef enum lk_attention_flags {
  LK_ATTENTION_CAUSAL = 1 /* bottom-right aligned, as FlashAttention >= 2.1 */
} lk_attention_flags;

typedef struct lk_attention_params {
  const void *q;
  const void *k;              /* contiguous keys, or NULL with a paged cache */
  const void *v;
  void *out;
  float *lse;                 /* [total_q, num_heads] or NULL */
  const int32_t *cu_seqlens_q; /* [num_seqs + 1], from 0, non-decreasing */
  const int32_t *cu_seqlens_k; /* [num_seqs + 1]: contiguous keys */
  const int32_t *seqlens_k;    /* [num_seqs]: paged keys */
  lk_paged_kv_cache cache;     /* paged keys when cache.key_cache != NULL (dtype as q) */
  const int32_t *block_tables; /* [num_seqs, max_blocks_per_seq]: paged keys */
  int64_t max_blocks_per_seq;
  int64_t num_seqs;
  int64_t max_seqlen_q;        /* 0, or at least every sequence's query count (FlashAttention's max_seqlen_q) */
  int64_t max_seqlen_k;        /* 0, or at least every sequence's key count */
  int64_t num_heads;
  int64_t num_kv_heads;
  int64_t head_dim;            /* 1..256 */
  int64_t q_stride;            /* elements between tokens; 0 = num_heads * head_dim */
  int64_t k_stride;            /* 0 = num_kv_heads * head_dim */
  int64_t v_stride;
  int64_t out_stride;          /* 0 = num_heads * head_dim */
  float scale;                 /* 0: 1 / sqrt(head_dim) */
  float softcap;               /* 0: none */
  int64_t window_left;         /* -1: unbounded */
  int64_t window_right;        /* -1: unbounded */
  const float *alibi_slopes;   /* [num_heads] or NULL */
  const float *bias;           /* additive f32 or NULL, see above */
  int64_t bias_head_stride;
  int64_t bias_row_stride;
  uint32_t flags;              /* lk_attention_flags */
  lk_dtype dtype;              /* of q, k, v, out (and the cache) */
} lk_attention_params;

LK_API lk_status lk_attention(lk_cpu_context *context, const lk_attention_params *params);

/* ---- Mixture-of-experts gating -----------------------------------------------------------------
 * Router logits [num_tokens, num_experts] -> per token the top_k experts and their weights, in f32:
 *   SOFTMAX_TOPK  p = softmax(logits); select the top_k of p; w = p of the selected
 *                 (vLLM topk_softmax; Qwen-MoE, DeepSeek-V2, OLMoE)
 *   TOPK_SOFTMAX  select the top_k of the logits; w = softmax over those k (Mixtral)
 *   SIGMOID       p = sigmoid(logits); select the top_k of p + correction_bias (the bias only
 *                 chooses, DeepSeek-V3's aux-loss-free balancing); w = p of the selected
 * Grouped selection (num_groups > 1, any scheme): the experts form num_groups equal groups of
 * consecutive ids; each group scores the sum of its top 2 selection scores when correction_bias is
 * given, else its best one (vLLM grouped_topk); only the topk_groups best groups are searched.
 * Then w /= sum(w) with LK_MOE_RENORMALIZE, and w *= routed_scaling_factor when it is not 0.
 * Experts are ranked by their selection score: score + correction_bias with a bias, else the
 * logit itself (softmax's and sigmoid's p increase with it: the same order as p, exactly). Every
 * ranking is by descending score, ties to the lower expert id (NaN ranks below -inf), so ids are
 * always distinct and in [0, num_experts). Each token's ids and weights come out in descending
 * weight order, ties to the lower id. Non-finite logits give the weights the formulas give (a NaN
 * logit makes its token's softmax weights NaN, and with a bias its selection scores: all tie).
 * docs/moe.md has the contracts. */
typedef enum lk_moe_scoring {
  LK_MOE_SOFTMAX_TOPK = 0,
  LK_MOE_TOPK_SOFTMAX = 1,
  LK_MOE_SIGMOID = 2
} lk_moe_scoring;

typedef enum lk_moe_flags {
  LK_MOE_RENORMALIZE = 1 /* the k weights divided by their sum */
} lk_moe_flags;

typedef struct lk_moe_gating_params {
  const void *logits;            /* [num_tokens, logits_stride], dtype */
  float *weights;                /* [num_tokens, top_k] */
  int32_t *expert_ids;           /* [num_tokens, top_k] */
  const float *correction_bias;  /* [num_experts] or NULL: added to the scores for selection only */
  int64_t num_tokens;
  int64_t num_experts;           /* 1.. */
  int64_t top_k;                 /* 1..min(32, num_experts) */
  int64_t logits_stride;         /* elements between tokens; 0 = num_experts */
  int64_t num_groups;            /* 0 or 1: no grouping; else 2..32, dividing num_experts */
  int64_t topk_groups;           /* 1..num_groups groups searched when grouping */
  float routed_scaling_factor;   /* 0: none (1) */
  lk_moe_scoring scoring;
  uint32_t flags;                /* lk_moe_flags */
  lk_dtype dtype;                /* of the logits */
} lk_moe_gating_params;

#define LK_MOE_MAX_TOP_K 32
#define LK_MOE_MAX_GROUPS 32

LK_API lk_status lk_moe_gating(lk_cpu_context *context, const lk_moe_gating_params *params);

/* ---- Mixture-of-experts routing plan, permute and combine --------------------------------------
 * A token's top_k choices are its slots: slot s = t * top_k + j is token t's j-th expert,
 * expert_ids[s]. The plan orders the slots routed to this process's experts [expert_begin,
 * expert_end) by expert, stable (ascending slot order inside an expert, so token order is kept),
 * for grouped expert GEMMs; each expert's rows are one contiguous segment of the expert-ordered
 * buffer, optionally padded to a multiple of block_size rows (vLLM's moe_align_block_size):
 *   expert_counts[e]       slots routed to local expert e (e = id - expert_begin), unpadded
 *   expert_offsets[e]      the first row of expert e's segment; expert_offsets[local] = rows in all
 *   sorted_slots[r]        the slot row r holds, or -1 for a padding row (r < rows; the rest untouched)
 *   slot_rows[s]           optional, the inverse: the row of slot s, or -1 when its expert is not
 *                          local (expert parallelism: routed to another process)
 *   block_experts[b]       optional with block_size > 1: the expert id (global) of rows
 *                          [b * block_size, (b + 1) * block_size), for b < rows / block_size
 * sorted_capacity must hold the worst case, num_tokens * top_k + local * (block_size - 1) (vLLM's
 * max_num_tokens_padded), and the whole plan must fit int32. Every id is checked first: one outside
 * [0, num_experts) fails the call naming expert_ids, before anything is written. */
typedef struct lk_moe_routing_params {
  const int32_t *expert_ids;   /* [num_tokens, top_k], lk_moe_gating's */
  int64_t num_tokens;
  int64_t top_k;               /* 1.. */
  int64_t num_experts;         /* 1..; every id in [0, num_experts) */
  int64_t expert_begin;        /* the local experts [expert_begin, expert_end); */
  int64_t expert_end;          /* both 0: all of them */
  int64_t block_size;          /* 0 or 1: no padding; else segments padded to a multiple */
  int32_t *expert_counts;      /* [local] */
  int32_t *expert_offsets;     /* [local + 1] */
  int32_t *sorted_slots;       /* [sorted_capacity] */
  int64_t sorted_capacity;
  int32_t *slot_rows;          /* [num_tokens, top_k] or NULL */
  int32_t *block_experts;      /* [sorted_capacity / block_size] or NULL */
} lk_moe_routing_params;

LK_API lk_status lk_moe_routing(lk_cpu_context *context, const lk_moe_routing_params *params);

/* Permute: output row r = input row sorted_slots[r] / top_k (the token of that slot), in the
 * rows' dtype (any: rows are copied bit for bit); a padding row (-1) is written as zeros. */
typedef struct lk_moe_permute_params {
  const void *input;           /* [num_tokens, input_stride] */
  void *output;                /* [num_rows, output_stride] */
  const int32_t *sorted_slots; /* [num_rows], each -1 or in [0, num_tokens * top_k) */
  int64_t num_tokens;
  int64_t top_k;
  int64_t num_rows;
  int64_t hidden;              /* elements per row, 1.. */
  int64_t input_stride;        /* 0 = hidden */
  int64_t output_stride;       /* 0 = hidden */
  lk_dtype dtype;
} lk_moe_permute_params;

LK_API lk_status lk_moe_permute(lk_cpu_context *context, const lk_moe_permute_params *params);

/* Combine: output[t] = sum over j of weights[t, j] * expert_output[slot_rows[t * top_k + j]],
 * accumulated in f32 in slot order and rounded once to dtype; a slot whose row is -1 (routed to
 * another process) adds nothing, and a token with none writes zeros. */
typedef struct lk_moe_combine_params {
  const void *expert_output;   /* [num_rows, expert_stride], expert order */
  const float *weights;        /* [num_tokens, top_k] */
  const int32_t *slot_rows;    /* [num_tokens, top_k], each -1 or in [0, num_rows) */
  void *output;                /* [num_tokens, output_stride] */
  int64_t num_tokens;
  int64_t top_k;
  int64_t num_rows;
  int64_t hidden;              /* 1.. */
  int64_t expert_stride;       /* 0 = hidden */
  int64_t output_stride;       /* 0 = hidden */
  lk_dtype dtype;              /* of expert_output and output */
} lk_moe_combine_params;

LK_API lk_status lk_moe_combine(lk_cpu_context *context, const lk_moe_combine_params *params);

#ifdef __cplusplus
}
#endif

#endif /* LLMKERNELS_H */
