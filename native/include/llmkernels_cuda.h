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
 *     as the CUDA runtime's own calls do.
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
#define LK_CUDA_ABI_VERSION 1

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

#ifdef __cplusplus
}
#endif

#endif /* LLMKERNELS_CUDA_H */
