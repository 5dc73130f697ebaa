/* Device-side helpers every kernel family uses: the element types and their f32 conversions
 * (rounding as the CPU library: round to nearest even), 16-byte vectors, warp and block sums, and
 * reporting a bad index to the host (lk_cuda_internal.h). Written once for nvcc and for the
 * emulator: the only differences are the conversions, which the emulator does in software. */
#ifndef LK_CUDA_DEVICE_CUH
#define LK_CUDA_DEVICE_CUH

#include "lk_cuda_internal.h"

#if !defined(LK_CUDA_EMU)
#  include <cuda_bf16.h>
#  include <cuda_fp16.h>
#endif

/* ---- element types -------------------------------------------------------------------------------
 * Storage types of the three lk_dtype values; the kernels compute in f32. Distinct structs (not
 * __half / __nv_bfloat16) so that overloads pick the conversion and the emulator needs no CUDA
 * headers. */
struct lk_f16 {
  uint16_t bits;
};
struct lk_bf16 {
  uint16_t bits;
};

__device__ __forceinline__ float lk_to_float(float v) { return v; }
__device__ __forceinline__ float lk_to_float(lk_bf16 v) { return __uint_as_float((uint32_t)v.bits << 16); }
__device__ __forceinline__ float lk_to_float(lk_f16 v) {
#if defined(LK_CUDA_EMU)
  const uint32_t sign = (uint32_t)(v.bits & 0x8000u) << 16, exponent = (v.bits >> 10) & 0x1fu, mantissa = v.bits & 0x3ffu;
  if (exponent == 0x1fu) return __uint_as_float(sign | 0x7f800000u | ((mantissa ? mantissa | 0x200u : 0u) << 13));
  if (exponent == 0) {
    const float magnitude = (float)mantissa * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
#else
  return __half2float(__ushort_as_half(v.bits));
#endif
}

template <typename T>
__device__ __forceinline__ T lk_from_float(float v);
template <>
__device__ __forceinline__ float lk_from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ lk_bf16 lk_from_float<lk_bf16>(float v) {
#if defined(LK_CUDA_EMU)
  uint32_t u = __float_as_uint(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return lk_bf16{(uint16_t)((u >> 16) | 0x40u)}; /* NaN stays NaN */
  u += 0x7fffu + ((u >> 16) & 1u);
  return lk_bf16{(uint16_t)(u >> 16)};
#else
  return lk_bf16{__bfloat16_as_ushort(__float2bfloat16_rn(v))};
#endif
}
template <>
__device__ __forceinline__ lk_f16 lk_from_float<lk_f16>(float v) {
#if defined(LK_CUDA_EMU)
  const uint32_t u = __float_as_uint(v), sign = (u >> 16) & 0x8000u, abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return lk_f16{(uint16_t)(sign | 0x7e00u | ((abs >> 13) & 0x3ffu))};
  if (abs >= 0x477ff000u) return lk_f16{(uint16_t)(sign | 0x7c00u)};
  if (abs < 0x38800000u) {
    if (abs < 0x33000000u) return lk_f16{(uint16_t)sign};
    const uint32_t exponent = abs >> 23, mantissa = (abs & 0x7fffffu) | 0x800000u, shift = 126u - exponent;
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (half & 1u))) half++;
    return lk_f16{(uint16_t)(sign | half)};
  }
  const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return lk_f16{(uint16_t)(sign | ((rounded - 0x38000000u) >> 13))};
#else
  return lk_f16{__half_as_ushort(__float2half_rn(v))};
#endif
}

/* What storing v as T and loading it back gives (the rounding points the CPU kernels have). */
template <typename T>
__device__ __forceinline__ float lk_round_to(float v) { return lk_to_float(lk_from_float<T>(v)); }

/* ---- dtype dispatch (host) ------------------------------------------------------------------------
 * Calls f with a value of the storage type of dtype (float, lk_f16 or lk_bf16): one switch, so
 * each kernel family instantiates its templates for exactly the three types. The caller has
 * validated dtype. */
template <typename F>
inline auto lk_cuda_dispatch_dtype(lk_dtype dtype, F &&f) -> decltype(f(float())) {
  switch (dtype) {
  case LK_DTYPE_F16: return f(lk_f16{});
  case LK_DTYPE_BF16: return f(lk_bf16{});
  default: return f(float());
  }
}

/* ---- vectors ----------------------------------------------------------------------------------------
 * N elements of T in one aligned load or store: 16 bytes (LDG.128) when N * sizeof(T) == 16. */
template <typename T, int N>
struct alignas(sizeof(T) * N) lk_vec {
  T v[N];
};

/* Whether every address base + k * stride_elements is `bytes`-aligned (stride in elements of size). */
__host__ __device__ __forceinline__ bool lk_aligned(const void *base, int64_t stride_elements, size_t element_size, size_t bytes) {
  return ((uintptr_t)base % bytes) == 0 && ((uint64_t)stride_elements * element_size) % bytes == 0;
}

/* ---- dynamic shared memory ----------------------------------------------------------------------
 * The launch's dynamic shared memory (its third launch parameter), 16-byte aligned at least. */
__device__ __forceinline__ unsigned char *lk_dynamic_shared() {
#if defined(LK_CUDA_EMU)
  return lk_emu::dynamic_shared();
#else
  extern __shared__ __align__(16) unsigned char lk_dynamic_shared_bytes[];
  return lk_dynamic_shared_bytes;
#endif
}

/* ---- reductions ----------------------------------------------------------------------------------- */

__device__ __forceinline__ float lk_warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float lk_warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

/* The sum of v over the block's threads (blockDim.x a multiple of 32, at most 1024), returned to
 * every thread. scratch: 32 floats of shared memory. The call begins with a barrier, so calls in a
 * row may share scratch, and every write to memory before it is visible to the block after it. */
__device__ __forceinline__ float lk_block_sum(float v, float *scratch) {
  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32, warps = (int)blockDim.x / 32;
  v = lk_warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return lk_warp_sum(v);
}

/* ---- bad indices ---------------------------------------------------------------------------------
 * Records argument[index] (and index2) = value outside [0, bound) for the host, unless an earlier
 * report holds the record: the first one a device meets is kept (lk_cuda_internal.h). */
__device__ __forceinline__ void lk_report_index(const lk_cuda_error_sink &sink, lk_cuda_entry_point kernel,
                                                lk_cuda_index_argument argument, int64_t index, int64_t index2,
                                                int64_t value, int64_t bound) {
  if (atomicCAS(sink.claimed, 0, 1) != 0) return;
  lk_cuda_index_error *r = sink.record;
  r->kernel = (int32_t)kernel;
  r->index = index;
  r->index2 = index2;
  r->value = value;
  r->bound = bound;
  __threadfence_system();
  r->argument = (int32_t)argument;
}

#endif /* LK_CUDA_DEVICE_CUH */
