/* lk_cuda_norm, lk_cuda_rms_norm, lk_cuda_fused_add_rms_norm: RMSNorm and LayerNorm with the
 * residual placements of lk_norm (llmkernels.h), one thread block per row.
 *
 * A row is read from global memory once: the first pass forms v (x; round(residual + x), stored
 * back, for PRE; round(alpha * residual + x) for POST), keeps it in shared memory in the row's own
 * dtype (v is a value of the dtype, so nothing is lost) and sums it; the block reduces; the last
 * pass writes y from shared memory. LayerNorm takes the variance as a second pass over the row in
 * shared memory, around the mean (the corrected two-pass form: no cancellation). Rows too long for
 * 46 KiB of (dynamic) shared memory recompute v from global memory instead (L2 holds the row).
 *
 * Vector path: 16-byte loads and stores where every row of x, residual, y (and the weights) starts
 * 16-byte aligned and hidden is a multiple of the vector; element accesses otherwise.
 *
 * Rounding points as the CPU kernels: v as above, y = v * inv_rms * w (RMS) or fma((v - mean) *
 * rstd, w, b) (LAYER), rounded once. Only the summation order differs from the CPU's, so results
 * agree with it to an ulp of the statistics, not bit for bit. */
#include "lk_cuda_device.cuh"
#include "norm_check.h"

namespace {

constexpr int kMaxThreads = 512;
constexpr size_t kRowCacheBytes = 46 << 10; /* under the 48 KiB a block gets without an opt-in */

struct norm_args {
  const void *x;
  void *residual;
  void *y;
  const void *weight;
  const void *bias;
  int64_t hidden, x_stride, residual_stride, y_stride;
  float eps, alpha;
  bool layer, offset_one, cached;
  lk_norm_residual mode;
};

template <typename T>
__device__ __forceinline__ const T *row_of(const void *base, int64_t row, int64_t stride) {
  return static_cast<const T *>(base) + row * stride;
}

/* v of element i, as the first pass forms it (PRE stores the residual). */
template <typename T>
__device__ __forceinline__ float first_pass_v(const norm_args &a, const T *x, T *residual, int64_t i) {
  const float xv = lk_to_float(x[i]);
  if (a.mode == LK_NORM_RESIDUAL_NONE) return xv;
  const float r = lk_to_float(residual[i]);
  if (a.mode == LK_NORM_RESIDUAL_POST) return lk_round_to<T>(a.alpha * r + xv);
  const T stored = lk_from_float<T>(r + xv);
  residual[i] = stored;
  return lk_to_float(stored);
}

/* v of element i in a later pass without the row cache: the stored residual (PRE), or recomputed. */
template <typename T>
__device__ __forceinline__ float later_pass_v(const norm_args &a, const T *x, const T *residual, int64_t i) {
  if (a.mode == LK_NORM_RESIDUAL_PRE) return lk_to_float(residual[i]);
  const float xv = lk_to_float(x[i]);
  if (a.mode == LK_NORM_RESIDUAL_POST) return lk_round_to<T>(a.alpha * lk_to_float(residual[i]) + xv);
  return xv;
}

template <typename W>
__device__ __forceinline__ float weight_at(const norm_args &a, int64_t i) {
  const float w = lk_to_float(static_cast<const W *>(a.weight)[i]);
  return a.offset_one ? 1.0f + w : w;
}

template <typename T, typename W>
__device__ __forceinline__ float normalised(const norm_args &a, float v, float mean, float rstd, int64_t i) {
  if (!a.layer) return v * rstd * weight_at<W>(a, i);
  const float t = (v - mean) * rstd;
  const bool has_weight = a.weight != nullptr, has_bias = a.bias != nullptr;
  if (has_weight && has_bias) return fmaf(t, weight_at<W>(a, i), lk_to_float(static_cast<const W *>(a.bias)[i]));
  if (has_weight) return t * weight_at<W>(a, i);
  if (has_bias) return t + lk_to_float(static_cast<const W *>(a.bias)[i]);
  return t;
}

/* One row a block. kVec: VEC elements a thread at a time through 16-byte accesses (the host
 * checked alignment and hidden % VEC == 0); else one element at a time. */
template <typename T, typename W, bool kVec>
__global__ void __launch_bounds__(kMaxThreads) norm_rows(norm_args a) {
  constexpr int VEC = kVec ? 16 / (int)sizeof(T) : 1;
  using vec = lk_vec<T, VEC>;
  __shared__ float scratch[32];
  T *cache = reinterpret_cast<T *>(lk_dynamic_shared()); /* [hidden] when a.cached */

  const int64_t row = blockIdx.x;
  const T *x = row_of<T>(a.x, row, a.x_stride);
  T *residual = a.mode == LK_NORM_RESIDUAL_NONE ? nullptr : const_cast<T *>(row_of<T>(a.residual, row, a.residual_stride));
  T *y = const_cast<T *>(row_of<T>(a.y, row, a.y_stride));
  const int64_t n = a.hidden, step = (int64_t)blockDim.x * VEC;

  /* pass 1: v, its sum (LAYER) or sum of squares (RMS); the row cache */
  float sum = 0.0f;
  for (int64_t i = (int64_t)threadIdx.x * VEC; i < n; i += step) {
    vec v_out;
    if constexpr (kVec) {
      const vec xv = *reinterpret_cast<const vec *>(x + i);
      vec rv;
      if (residual) rv = *reinterpret_cast<const vec *>(residual + i);
#pragma unroll
      for (int e = 0; e < VEC; e++) {
        float v = lk_to_float(xv.v[e]);
        if (a.mode == LK_NORM_RESIDUAL_PRE) v = lk_round_to<T>(lk_to_float(rv.v[e]) + v);
        else if (a.mode == LK_NORM_RESIDUAL_POST) v = lk_round_to<T>(a.alpha * lk_to_float(rv.v[e]) + v);
        v_out.v[e] = lk_from_float<T>(v);
        sum += a.layer ? v : v * v;
      }
      if (a.mode == LK_NORM_RESIDUAL_PRE) *reinterpret_cast<vec *>(residual + i) = v_out;
    } else {
      const float v = first_pass_v<T>(a, x, residual, i);
      v_out.v[0] = lk_from_float<T>(v);
      sum += a.layer ? v : v * v;
    }
    if (a.cached) *reinterpret_cast<vec *>(cache + i) = v_out;
  }
  sum = lk_block_sum(sum, scratch);

  float mean = 0.0f, rstd;
  if (!a.layer) {
    rstd = 1.0f / sqrtf(sum / (float)n + a.eps);
  } else {
    mean = sum / (float)n;
    float squares = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const float d = (a.cached ? lk_to_float(cache[i]) : later_pass_v<T>(a, x, residual, i)) - mean;
      squares += d * d;
    }
    squares = lk_block_sum(squares, scratch);
    const float var = squares / (float)n;
    rstd = 1.0f / sqrtf(var + a.eps);
  }

  /* last pass: y (each element read then written by the same thread, so y may be x or residual) */
  for (int64_t i = (int64_t)threadIdx.x * VEC; i < n; i += step) {
    vec out;
#pragma unroll
    for (int e = 0; e < VEC; e++) {
      const float v = a.cached ? lk_to_float(cache[i + e]) : later_pass_v<T>(a, x, residual, i + e);
      out.v[e] = lk_from_float<T>(normalised<T, W>(a, v, mean, rstd, i + e));
    }
    if constexpr (kVec) *reinterpret_cast<vec *>(y + i) = out;
    else y[i] = out.v[0];
  }
}

template <typename T, typename W>
lk_status launch_rows(const lk_norm_params &p, cudaStream_t stream) {
  norm_args a;
  a.x = p.x;
  a.residual = p.residual;
  a.y = p.y;
  a.weight = p.weight;
  a.bias = p.bias;
  a.hidden = p.hidden;
  a.x_stride = p.x_stride;
  a.residual_stride = p.residual_stride;
  a.y_stride = p.y_stride;
  a.eps = p.eps;
  a.alpha = p.alpha;
  a.layer = p.kind == LK_NORM_LAYER;
  a.offset_one = (p.flags & LK_NORM_WEIGHT_OFFSET_ONE) != 0;
  a.mode = p.residual_mode;
  a.cached = (size_t)p.hidden * sizeof(T) <= kRowCacheBytes;
  constexpr int VEC = 16 / (int)sizeof(T);
  const bool residual = p.residual_mode != LK_NORM_RESIDUAL_NONE;
  const bool vec = p.hidden % VEC == 0 && lk_aligned(p.x, p.x_stride, sizeof(T), 16) &&
                   lk_aligned(p.y, p.y_stride, sizeof(T), 16) &&
                   (!residual || lk_aligned(p.residual, p.residual_stride, sizeof(T), 16));
  const int64_t per_thread = vec ? VEC : 1;
  const int64_t wanted = (p.hidden / per_thread + 31) / 32 * 32;
  const int threads = (int)(wanted < 32 ? 32 : wanted > kMaxThreads ? kMaxThreads : wanted);
  /* grid.x holds up to 2^31 - 1 rows; longer calls go in slices */
  for (int64_t first = 0; first < p.rows; first += INT32_MAX) {
    const int64_t count = p.rows - first < INT32_MAX ? p.rows - first : INT32_MAX;
    norm_args slice = a;
    slice.x = static_cast<const T *>(a.x) + first * a.x_stride;
    slice.y = static_cast<T *>(a.y) + first * a.y_stride;
    if (residual) slice.residual = static_cast<T *>(a.residual) + first * a.residual_stride;
    const size_t cache_bytes = a.cached ? (size_t)p.hidden * sizeof(T) : 0;
    if (vec) LK_LAUNCH(dim3((unsigned)count), dim3(threads), cache_bytes, stream, norm_rows<T, W, true>)(slice);
    else LK_LAUNCH(dim3((unsigned)count), dim3(threads), cache_bytes, stream, norm_rows<T, W, false>)(slice);
    const lk_status status = lk_cuda_launched("norm_rows");
    if (status != LK_OK) return status;
  }
  return LK_OK;
}

lk_status run(lk_cuda_stream stream, const lk_norm_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_norm_params p = *params;
  const lk_status status = lk_norm_check(&p);
  if (status != LK_OK || p.rows == 0) return status;
  const bool f32_weight = p.weight_dtype == LK_DTYPE_F32;
  return lk_cuda_dispatch_dtype(p.dtype, [&](auto element) {
    using T = decltype(element);
    return f32_weight ? launch_rows<T, float>(p, lk_cuda_as_stream(stream)) : launch_rows<T, T>(p, lk_cuda_as_stream(stream));
  });
}

lk_status run_rms(lk_cuda_stream stream, const lk_rms_norm_params *params, lk_norm_residual mode) {
  if (!params) {
    lk_clear_error();
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  }
  lk_norm_params p;
  lk_norm_params_from_rms(params, mode, &p);
  return run(stream, &p);
}

} // namespace

extern "C" {

LK_CUDA_API lk_status lk_cuda_norm(lk_cuda_stream stream, const lk_norm_params *params) { return run(stream, params); }

LK_CUDA_API lk_status lk_cuda_rms_norm(lk_cuda_stream stream, const lk_rms_norm_params *params) {
  return run_rms(stream, params, LK_NORM_RESIDUAL_NONE);
}

LK_CUDA_API lk_status lk_cuda_fused_add_rms_norm(lk_cuda_stream stream, const lk_rms_norm_params *params) {
  return run_rms(stream, params, LK_NORM_RESIDUAL_PRE);
}

} // extern "C"
