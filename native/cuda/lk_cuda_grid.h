/* Grid sizing shared by the element-wise kernel families (activation.cu, rope.cu): the current
 * device's multiprocessor count, which decides when a small call (a decode step) spreads its
 * work over more, smaller blocks, and the power-of-two rounding their block shapes use. Host side. */
#ifndef LK_CUDA_GRID_H
#define LK_CUDA_GRID_H

#include "lk_cuda_internal.h"

/* The multiprocessor count of the calling thread's current device (a cached attribute: no
 * synchronisation, well under a microsecond). */
inline lk_status lk_cuda_multiprocessors(int *out) {
  int device = 0;
  LK_CUDA_TRY(cudaGetDevice(&device), "cudaGetDevice");
  LK_CUDA_TRY(cudaDeviceGetAttribute(out, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  if (*out < 1) *out = 1;
  return LK_OK;
}

/* The smallest power of two >= v (v >= 1), at most `cap` (a power of two). */
inline int lk_pow2_at_least(int64_t v, int cap) {
  int p = 1;
  while (p < cap && p < v) p *= 2;
  return p;
}

#endif /* LK_CUDA_GRID_H */
