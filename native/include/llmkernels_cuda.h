/* LlmKernels — the C ABI of the CUDA backend (the llmkernels_cuda library).
 *
 * A separate shared library, built where CMake finds a CUDA toolkit; the CPU library never
 * depends on it (it depends on the CPU library, for lk_last_error and the common types). The
 * CUDA runtime is linked into it statically, so at run time only the NVIDIA driver is needed.
 *
 * Conventions (docs/cuda.md):
 *   - every call returns an lk_status; a CUDA runtime or driver error is LK_ERR_DEVICE, and
 *     lk_last_error() (the CPU library's, on the calling thread) gives the CUDA error's name and
 *     text and the call that failed;
 *   - pointers are device pointers unless a name says host; memory from other libraries
 *     (TorchSharp, ONNX Runtime, cuBLAS) works as it is;
 *   - a stream is a cudaStream_t: one created here or by another library. NULL is the legacy
 *     default stream of the calling thread's current device;
 *   - a call that names a device makes it the calling thread's current device (cudaSetDevice),
 *     as the CUDA runtime's own calls do;
 *   - kernels run on the calling thread's current device, on the stream given.
 *
 * Compiles as C11 and C++; includes nothing beyond llmkernels.h (so <stddef.h> and <stdint.h>).
 */
#ifndef LLMKERNELS_CUDA_H
#define LLMKERNELS_CUDA_H

#include "llmkernels.h"

#if defined(_WIN32)
#  if defined(LK_BUILDING_CUDA_LIBRARY)
#    define LK_CUDA_API __declspec(dllexport)
#  else
#    define LK_CUDA_API __declspec(dllimport)
#  endif
#else
#  define LK_CUDA_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped with the CUDA ABI (this header's structs, enums and signatures); the managed layer
 * refuses a CUDA library whose lk_cuda_abi_version() differs from its bindings'. */
#define LK_CUDA_ABI_VERSION 3

/* A cudaStream_t and a cudaEvent_t, opaque here. */
typedef struct lk_cuda_stream_s *lk_cuda_stream;
typedef struct lk_cuda_event_s *lk_cuda_event;

typedef struct lk_cuda_device_properties {
  char name[256];                 /* NUL-terminated, as cudaDeviceProp.name */
  int32_t ordinal;
  int32_t compute_capability_major; /* 8 (A100: 8.0), 9 (H100, H200: 9.0) */
  int32_t compute_capability_minor;
  int32_t multiprocessor_count;
  uint64_t total_memory_bytes;
  uint64_t shared_memory_per_block_optin_bytes; /* the most one block may opt in to */
  int32_t l2_cache_bytes;
  int32_t memory_bus_width_bits;
  int32_t pci_bus_id;
  int32_t pci_device_id;
} lk_cuda_device_properties;

typedef enum lk_cuda_copy_kind {
  LK_CUDA_HOST_TO_DEVICE = 1,
  LK_CUDA_DEVICE_TO_HOST = 2,
  LK_CUDA_DEVICE_TO_DEVICE = 3
} lk_cuda_copy_kind;

LK_CUDA_API int32_t lk_cuda_abi_version(void);

/* The CUDA runtime version this library was built with, as cudaRuntimeGetVersion gives it
 * (11080: 11.8), and the driver's (0 when there is no driver). */
LK_CUDA_API lk_status lk_cuda_versions(int32_t *out_runtime, int32_t *out_driver);

/* The number of CUDA devices. No driver, or no device, is not an error here: *out_count is 0 and
 * lk_last_error() says which it was (this is how a host finds out whether CUDA can be used). */
LK_CUDA_API lk_status lk_cuda_device_count(int32_t *out_count);
LK_CUDA_API lk_status lk_cuda_device_properties_get(int32_t device, lk_cuda_device_properties *out_properties);
LK_CUDA_API lk_status lk_cuda_device_synchronize(int32_t device);
/* Makes `device` the calling thread's current device (cudaSetDevice): the one the kernels of later
 * calls from this thread run on, and whose legacy default stream a NULL stream names. */
LK_CUDA_API lk_status lk_cuda_set_device(int32_t device);

/* Device memory of `bytes` (> 0) on `device`; freeing NULL does nothing. */
LK_CUDA_API lk_status lk_cuda_malloc(int32_t device, size_t bytes, void **out_pointer);
LK_CUDA_API lk_status lk_cuda_free(void *pointer);

/* Sets `bytes` bytes at pointer to `value` (its low 8 bits), in stream order. */
LK_CUDA_API lk_status lk_cuda_memset(void *pointer, int32_t value, size_t bytes, lk_cuda_stream stream);
/* Copies `bytes` bytes. With a NULL stream the call returns when the copy is done; with a stream
 * it is ordered on that stream (and asynchronous with respect to the host for page-locked host
 * memory only, as cudaMemcpyAsync). */
LK_CUDA_API lk_status lk_cuda_memcpy(void *destination, const void *source, size_t bytes, lk_cuda_copy_kind kind,
                                     lk_cuda_stream stream);

LK_CUDA_API lk_status lk_cuda_stream_create(int32_t device, lk_cuda_stream *out_stream); /* non-blocking */
LK_CUDA_API lk_status lk_cuda_stream_destroy(lk_cuda_stream stream);
LK_CUDA_API lk_status lk_cuda_stream_synchronize(lk_cuda_stream stream);

LK_CUDA_API lk_status lk_cuda_event_create(int32_t device, lk_cuda_event *out_event);
LK_CUDA_API lk_status lk_cuda_event_destroy(lk_cuda_event event);
LK_CUDA_API lk_status lk_cuda_event_record(lk_cuda_event event, lk_cuda_stream stream);
/* Milliseconds from start to end, both recorded and complete (cudaEventElapsedTime). */
LK_CUDA_API lk_status lk_cuda_event_elapsed_ms(lk_cuda_event start, lk_cuda_event end, float *out_milliseconds);

/* ---- kernels ---------------------------------------------------------------------------------------
 * Each takes the CPU entry point's params struct (llmkernels.h), with device pointers, and a stream,
 * and computes what the CPU entry point computes, with the same rounding points (docs/cuda.md lists
 * where a GPU result may differ in the last bits, and why). It checks every argument the host can
 * see with the CPU backend's rules before it launches anything (LK_ERR_INVALID_ARGUMENT naming
 * it), and returns once the work is queued.
 *
 * Indices that live in device memory (slot mappings, block tables, sequence lengths and offsets,
 * positions, expert ids, the rows of a routing plan) are checked by the kernels as they read them:
 * one out of range is never used to address memory, the work it would have directed is skipped,
 * and the first such index is reported at the next lk_cuda_stream_synchronize,
 * lk_cuda_device_synchronize or lk_cuda_kernel_error_check, as LK_ERR_INVALID_ARGUMENT naming the
 * argument, the entry and its value. Unlike on the CPU, outputs the bad index did not direct may
 * have been written by then. */
LK_CUDA_API lk_status lk_cuda_rms_norm(lk_cuda_stream stream, const lk_rms_norm_params *params);
LK_CUDA_API lk_status lk_cuda_fused_add_rms_norm(lk_cuda_stream stream, const lk_rms_norm_params *params);
LK_CUDA_API lk_status lk_cuda_norm(lk_cuda_stream stream, const lk_norm_params *params);
LK_CUDA_API lk_status lk_cuda_apply_activation(lk_cuda_stream stream, const lk_activation_params *params);
LK_CUDA_API lk_status lk_cuda_glu(lk_cuda_stream stream, const lk_glu_params *params);
LK_CUDA_API lk_status lk_cuda_rope(lk_cuda_stream stream, const lk_rope_params *params);
LK_CUDA_API lk_status lk_cuda_kv_cache_write(lk_cuda_stream stream, const lk_kv_cache_write_params *params);
LK_CUDA_API lk_status lk_cuda_kv_cache_gather(lk_cuda_stream stream, const lk_kv_cache_gather_params *params);
LK_CUDA_API lk_status lk_cuda_kv_cache_copy_blocks(lk_cuda_stream stream, const lk_kv_cache_copy_blocks_params *params);
/* Prefill (a tensor-core FlashAttention-2 kernel) or decode (flash-decoding: the keys split over
 * thread blocks, then combined), chosen by max_seqlen_q; the grid is sized by max_seqlen_q and
 * max_seqlen_k, which a GPU call needs on the host (0 makes it copy the sequence lengths back: a
 * synchronising read). */
LK_CUDA_API lk_status lk_cuda_attention(lk_cuda_stream stream, const lk_attention_params *params);
LK_CUDA_API lk_status lk_cuda_moe_gating(lk_cuda_stream stream, const lk_moe_gating_params *params);
LK_CUDA_API lk_status lk_cuda_moe_routing(lk_cuda_stream stream, const lk_moe_routing_params *params);
LK_CUDA_API lk_status lk_cuda_moe_permute(lk_cuda_stream stream, const lk_moe_permute_params *params);
LK_CUDA_API lk_status lk_cuda_moe_combine(lk_cuda_stream stream, const lk_moe_combine_params *params);

/* The first bad index a kernel of this library recorded since the last report (on any device), as
 * LK_ERR_INVALID_ARGUMENT naming it, and cleared; LK_OK when there is none. Does not synchronise:
 * call it after a synchronisation to learn about every kernel queued before. */
LK_CUDA_API lk_status lk_cuda_kernel_error_check(void);

#ifdef __cplusplus
}
#endif

#endif /* LLMKERNELS_CUDA_H */
