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
#define LK_ABI_VERSION 1

typedef enum lk_status {
  LK_OK = 0,
  LK_ERR_INVALID_ARGUMENT = 1, /* a pointer, size, stride, dtype or flag is wrong: the message names it */
  LK_ERR_UNSUPPORTED = 2,      /* valid request this build or CPU cannot serve (e.g. a forced ISA) */
  LK_ERR_OUT_OF_MEMORY = 3,
  LK_ERR_BUSY = 4,             /* the context is in use by another host thread */
  LK_ERR_INTERNAL = 5
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

#ifdef __cplusplus
}
#endif

#endif /* LLMKERNELS_H */
