/* Internal declarations of the CUDA library: error reporting through the CPU library's
 * lk_last_error() (lk_fail and lk_clear_error are exported by it for this, and declared nowhere
 * public), and the check that turns a cudaError_t into an lk_status. */
#ifndef LK_CUDA_INTERNAL_H
#define LK_CUDA_INTERNAL_H

#include "llmkernels_cuda.h"

#include <cuda_runtime.h>

extern "C" {
#if defined(_WIN32)
__declspec(dllimport) lk_status lk_fail(lk_status status, const char *format, ...);
__declspec(dllimport) void lk_clear_error(void);
#else
lk_status lk_fail(lk_status status, const char *format, ...) __attribute__((format(printf, 2, 3)));
void lk_clear_error(void);
#endif
}

/* LK_OK for cudaSuccess; else LK_ERR_DEVICE (LK_ERR_OUT_OF_MEMORY for an allocation failure)
 * with "what: cudaErrorName: text" for lk_last_error(). The runtime's sticky error state is
 * cleared (cudaGetLastError) so that the next call does not report this one again. */
static inline lk_status lk_cuda_check(cudaError_t error, const char *what) {
  if (error == cudaSuccess) return LK_OK;
  (void)cudaGetLastError();
  const lk_status status = error == cudaErrorMemoryAllocation ? LK_ERR_OUT_OF_MEMORY : LK_ERR_DEVICE;
  return lk_fail(status, "%s: %s: %s", what, cudaGetErrorName(error), cudaGetErrorString(error));
}

/* Evaluates a CUDA runtime call and returns its lk_status from the enclosing function on failure. */
#define LK_CUDA_TRY(call, what)                                  \
  do {                                                           \
    const lk_status lk_cuda_status_ = lk_cuda_check((call), what); \
    if (lk_cuda_status_ != LK_OK) return lk_cuda_status_;        \
  } while (0)

#endif /* LK_CUDA_INTERNAL_H */
