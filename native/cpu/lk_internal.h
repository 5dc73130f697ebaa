/* Internal declarations shared by the CPU backend: error reporting, dtype conversion, ISA
 * selection, the thread pool and the context. Nothing here is exported but lk_fail and
 * lk_clear_error, for the CUDA library (native/cuda/lk_cuda_internal.h). */
#ifndef LK_INTERNAL_H
#define LK_INTERNAL_H

#include "llmkernels.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ---- errors (errors.c) ---------------------------------------------------------------------- */

/* Records a printf-style message for lk_last_error() on this thread and returns status. Exported
 * (but in no public header) for the CUDA library, whose errors lk_last_error() reports too. */
LK_API lk_status lk_fail(lk_status status, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
LK_API void lk_clear_error(void);

/* ---- CPU features (cpu_features.c) ------------------------------------------------------------ */

uint32_t lk_detect_isas(void);
bool lk_cpu_has_avx512_bf16(void);
bool lk_cpu_has_amx_bf16(void);
/* VZEROUPPER; only to be called on CPUs with AVX (see lk_context_enter). */
void lk_avx_zeroupper(void);
/* Parses LLMK_ISA; LK_ISA_AUTO when unset. Returns LK_ERR_INVALID_ARGUMENT on an unknown name. */
lk_status lk_isa_from_environment(lk_isa *out);

/* ---- thread pool (thread_pool.c) -------------------------------------------------------------- */

/* Runs task(arg, thread_index, num_threads) once on each of num_threads threads (the caller is
 * thread 0) and returns when all are done. Work splitting is up to the task. */
typedef void (*lk_task_fn)(void *arg, int thread_index, int num_threads);
typedef struct lk_thread_pool lk_thread_pool;

lk_status lk_thread_pool_create(int num_threads, lk_thread_pool **out_pool);
void lk_thread_pool_destroy(lk_thread_pool *pool);
void lk_thread_pool_run(lk_thread_pool *pool, int num_threads, lk_task_fn task, void *arg);

/* ---- context (context.c) ------------------------------------------------------------------------ */

struct lk_cpu_context {
  int num_threads;
  lk_isa isa;
  lk_thread_pool *pool;         /* NULL when num_threads == 1 */
  volatile long in_use;         /* 0 or 1; taken with an atomic exchange, see lk_context_enter */
  bool cpu_has_avx;             /* clear the upper vector state on entry */
  unsigned char *scratch;       /* num_threads * scratch_bytes, 64-byte aligned slices */
  size_t scratch_bytes;
  unsigned char *shared_scratch; /* LK_SHARED_SCRATCH_BYTES after the slices, for results threads combine */
};

/* Per-thread scratch for kernels that stage tiles (attention: about 280 KB at head_dim 256). */
#define LK_SCRATCH_BYTES_PER_THREAD ((size_t)512 << 10)
/* Scratch all threads share, for partial results combined after a parallel pass (flash-decoding). */
#define LK_SHARED_SCRATCH_BYTES ((size_t)2 << 20)

/* Every entry point brackets its work with these: enter fails with LK_ERR_BUSY if another host
 * thread holds the context, so concurrent misuse is refused instead of racing. Enter is also the
 * first thing an entry point does, so it clears a caller's dirty upper vector state there. */
lk_status lk_context_enter(lk_cpu_context *context);
void lk_context_leave(lk_cpu_context *context);

/* Splits `rows` over the context's threads in static contiguous ranges. Problems with fewer
 * than `min_elements_per_thread` elements per extra thread run on the calling thread: a wake-up
 * costs a few microseconds, more than normalising a few thousand elements. */
typedef void (*lk_rows_fn)(const void *params, int64_t row_begin, int64_t row_end);
void lk_parallel_rows(lk_cpu_context *context, lk_rows_fn fn, const void *params, int64_t rows,
                      int64_t elements_per_row, int64_t min_elements_per_thread);

/* ---- dtypes ------------------------------------------------------------------------------------ */

static inline size_t lk_dtype_size(lk_dtype dtype) { return dtype == LK_DTYPE_F32 ? 4 : 2; }
static inline bool lk_dtype_valid(lk_dtype dtype) {
  return dtype == LK_DTYPE_F32 || dtype == LK_DTYPE_F16 || dtype == LK_DTYPE_BF16;
}
const char *lk_dtype_name(lk_dtype dtype);

static inline uint32_t lk_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float lk_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* bfloat16: round to nearest even; NaN stays a (quiet) NaN instead of rounding into infinity. */
static inline uint16_t lk_f32_to_bf16(float f) {
  uint32_t u = lk_f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static inline float lk_bf16_to_f32(uint16_t h) { return lk_f32_from_bits((uint32_t)h << 16); }

/* IEEE binary16, round to nearest even, with subnormals, infinities and NaN; matches F16C's
 * vcvtps2ph with _MM_FROUND_TO_NEAREST_INT bit for bit. */
static inline uint16_t lk_f32_to_f16(float f) {
  uint32_t u = lk_f32_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((abs >> 13) & 0x3ffu)); /* NaN, quieted */
  if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: infinity */
  if (abs < 0x38800000u) { /* below the smallest normal half (2^-14): subnormal or zero */
    if (abs < 0x33000000u) return (uint16_t)sign; /* < 2^-25 rounds to zero (ties too: even) */
    uint32_t exponent = abs >> 23;
    uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - exponent; /* 14..24 */
    uint32_t half = mantissa >> shift;
    uint32_t rest = mantissa & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (half & 1u))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}
static inline float lk_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) /* infinity, or NaN quieted as vcvtph2ps does */
    return lk_f32_from_bits(sign | 0x7f800000u | ((mantissa ? mantissa | 0x200u : 0u) << 13));
  if (exponent == 0) { /* zero or subnormal: mantissa * 2^-24, exact in f32 */
    float magnitude = (float)mantissa * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  return lk_f32_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

/* Element access by dtype, for scalar code and vector tails. */
static inline float lk_load_element(const void *base, int64_t index, lk_dtype dtype) {
  switch (dtype) {
  case LK_DTYPE_F16: return lk_f16_to_f32(((const uint16_t *)base)[index]);
  case LK_DTYPE_BF16: return lk_bf16_to_f32(((const uint16_t *)base)[index]);
  default: return ((const float *)base)[index];
  }
}
static inline void lk_store_element(void *base, int64_t index, lk_dtype dtype, float value) {
  switch (dtype) {
  case LK_DTYPE_F16: ((uint16_t *)base)[index] = lk_f32_to_f16(value); break;
  case LK_DTYPE_BF16: ((uint16_t *)base)[index] = lk_f32_to_bf16(value); break;
  default: ((float *)base)[index] = value; break;
  }
}
/* What storing `value` as dtype and loading it back gives. */
static inline float lk_round_to_dtype(float value, lk_dtype dtype) {
  switch (dtype) {
  case LK_DTYPE_F16: return lk_f16_to_f32(lk_f32_to_f16(value));
  case LK_DTYPE_BF16: return lk_bf16_to_f32(lk_f32_to_bf16(value));
  default: return value;
  }
}

/* Bytes spanned by `rows` rows of `cols` elements `stride` elements apart, or -1 when that
 * overflows int64 or wraps the address space from `base`: no such buffer can exist, and computing
 * its span would be signed overflow. */
static inline int64_t lk_extent_bytes(const void *base, int64_t rows, int64_t cols, int64_t stride, lk_dtype dtype) {
  if (rows <= 0) return 0;
  const int64_t size = (int64_t)lk_dtype_size(dtype);
  if (rows > 1 && stride > (INT64_MAX - cols) / (rows - 1)) return -1;
  const int64_t elements = (rows - 1) * stride + cols;
  if (elements > INT64_MAX / size) return -1;
  const int64_t bytes = elements * size;
  if ((uint64_t)bytes > UINTPTR_MAX - (uintptr_t)base) return -1;
  return bytes;
}

/* Byte ranges [begin, end) of a tensor whose extent lk_extent_bytes accepted, for overlap checks. */
typedef struct lk_span { uintptr_t begin, end; } lk_span;
static inline lk_span lk_rows_span(const void *base, int64_t rows, int64_t cols, int64_t stride, lk_dtype dtype) {
  lk_span s;
  s.begin = (uintptr_t)base;
  s.end = s.begin + (uintptr_t)lk_extent_bytes(base, rows, cols, stride, dtype);
  return s;
}
static inline bool lk_spans_overlap(lk_span a, lk_span b) { return a.begin < b.end && b.begin < a.end; }

/* ---- bits ---------------------------------------------------------------------------------------- */

/* The index of the lowest set bit of x != 0, and the set bits of x: GCC/Clang builtins, MSVC
 * intrinsics (one instruction each on the CPUs the vector kernels run on). */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline int lk_ctz64(uint64_t x) {
  unsigned long i;
  _BitScanForward64(&i, x);
  return (int)i;
}
static inline int lk_popcount32(uint32_t x) { return (int)__popcnt(x); }
#else
static inline int lk_ctz64(uint64_t x) { return __builtin_ctzll(x); }
static inline int lk_popcount32(uint32_t x) { return __builtin_popcount(x); }
#endif

/* Large outputs bypass the caches with streaming stores: a row written once and read by the next
 * layer much later only evicts useful lines and costs a read-for-ownership. Below this many bytes
 * of output per call the result likely stays cache resident for its consumer. */
#define LK_STREAMING_STORE_MIN_BYTES ((int64_t)8 << 20)

#endif /* LK_INTERNAL_H */
