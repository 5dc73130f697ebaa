/* lk_cuda_apply_activation and lk_cuda_glu: element-wise activations and gated linear units
 * (SwiGLU, GeGLU, ReGLU, any lk_activation) with the layouts of lk_glu (llmkernels.h).
 *
 * Both entry points become one job, as on the CPU (native/cpu/activation.h): rows of `cols`
 * elements, out = act(gate), times up when gated. lk_cuda_apply_activation is a single row of n.
 *
 * Rounding points as activation_scalar.c, operation by operation: f32 math, out rounded once. The
 * products and sums are __fmul_rn / __fadd_rn, which nvcc never contracts into an FMA (the CPU
 * library is built with -ffp-contract=off), and the quotients are IEEE divisions (nvcc's default
 * -prec-div=true). expf, erfcf, erff and tanhf are CUDA's accurate library functions, not the
 * __expf intrinsics: a GPU result differs from the CPU's only by what those differ from glibc's
 * (CUDA's documented bounds: expf, erff, tanhf 2 ulp, erfcf 4 ulp), which test_cuda_activation.c
 * measures and docs/cuda/activations-rope.md records.
 *
 * Launch geometry (memory bound: one read of gate and up and one write of out per element, nothing
 * else). A block is 256 threads, `lanes` along a row (a power of two, at most 256) by `256 / lanes`
 * rows, so short rows (GLU with a small d) still fill whole blocks. A thread issues all of its
 * loads before any arithmetic or store: up to 2 16-byte vectors of gate and of up, 64 bytes in
 * flight a thread for a gated call. With at most 64 registers a thread (__launch_bounds__(256, 4):
 * 4 blocks, 1024 threads a multiprocessor) that is 64 KiB of loads in flight a multiprocessor (32
 * KiB ungated), against the ~17 KiB (~13 KiB) that H200's read bandwidth (2/3 or 1/2 of 4.8 TB/s)
 * times ~700 ns of loaded DRAM latency asks of each of its 132 multiprocessors. More vectors a
 * thread cost registers past 64 (at 4 vectors: 110-127 registers, half the occupancy) and spilled
 * under the cap. A row is cut into chunks of lanes * per_thread vectors, one block a chunk (grid.x),
 * and a block row of rows (grid.y; calls past 65535 block rows go in several launches). Calls too
 * small to give every multiprocessor two blocks (a decode step: one token, d = 14336 is 1792 bf16
 * vectors) take fewer vectors a thread, then fewer lanes a block, so that they spread over more
 * multiprocessors instead of queueing on a few. Expected: ~85-90% of a device-to-device copy of
 * the same bytes for large calls in every dtype (SiLU with an IEEE division is ~40 f32 instructions
 * an element, inside the ~42 issue slots a bf16 element's 6 bytes leave at 4.8 TB/s on 132
 * multiprocessors); GeGLU (erf) and the tanh forms in bf16 may be issue bound. Not measured: no
 * GPU has been available.
 *
 * Vector path: 16-byte loads and stores where gate, up and out start 16-byte aligned and their
 * row strides are multiples of 16 bytes (any stride for a single row); a row's last cols % VEC
 * elements go element by element. Otherwise (a misaligned base or stride) every access is one
 * element, with 8 elements a thread in flight (up to 72 registers: 3 blocks a multiprocessor). */
#include "activation_check.h"
#include "lk_cuda_device.cuh"
#include "lk_cuda_grid.h"

namespace {

constexpr int kThreads = 256;
/* Loads in flight a thread (the comment at the top): 2 x 16 bytes of each input on the vector
 * path, 8 elements on the element path. */
constexpr int kVectorsPerThread = 2;
constexpr int kElementsPerThread = 8;

struct activation_args {
  const void *gate;
  const void *up; /* nullptr: not gated */
  void *out;
  int64_t gate_stride, up_stride, out_stride; /* elements between rows */
  int64_t rows, cols;
  int per_thread;  /* vectors (elements on the element path) a thread takes from its block's chunk of a row */
  int tail_lane;   /* the thread (x) and block (x) whose next vector would be a row's ragged end */
  int64_t tail_chunk;
};

__device__ __forceinline__ bool is_negative_infinity(float x) { return __float_as_uint(x) == 0xff800000u; }
__device__ __forceinline__ bool is_infinity(float x) { return (__float_as_uint(x) & 0x7fffffffu) == 0x7f800000u; }

/* x * sigmoid(z) with e = exp(-|z|) <= 1, so nothing divides by an infinity (activation_scalar.c) */
__device__ __forceinline__ float sigmoid_times(float x, float z) {
  if (is_negative_infinity(x)) return -0.0f;
  const float e = expf(-fabsf(z));
  return (z < 0.0f ? __fmul_rn(x, e) : x) / __fadd_rn(1.0f, e);
}

template <lk_activation A>
__device__ __forceinline__ float activation_of(float x) {
  if constexpr (A == LK_ACTIVATION_SILU) {
    return sigmoid_times(x, x);
  } else if constexpr (A == LK_ACTIVATION_GELU_ERF) {
    /* 0.5 x (1 + erf(x / sqrt2)) = 0.5 x erfc(-x / sqrt2) */
    if (is_infinity(x)) return x > 0.0f ? x : -0.0f;
    return __fmul_rn(__fmul_rn(0.5f, x), erfcf(__fmul_rn(-x, 0.70710678118654752f)));
  } else if constexpr (A == LK_ACTIVATION_GELU_TANH) {
    /* 0.5 x (1 + tanh(u)) = x sigmoid(2u), 2u = (1.5957691 x) (1 + (0.044715 x) x) */
    const float two_u =
        __fmul_rn(__fmul_rn(1.5957691216057308f, x), __fadd_rn(1.0f, __fmul_rn(__fmul_rn(0.044715f, x), x)));
    return sigmoid_times(x, two_u);
  } else if constexpr (A == LK_ACTIVATION_RELU) {
    return x < 0.0f ? 0.0f : x; /* NaN and -0 pass */
  } else if constexpr (A == LK_ACTIVATION_SIGMOID) {
    const float e = expf(-fabsf(x));
    return (x < 0.0f ? e : 1.0f) / __fadd_rn(1.0f, e);
  } else if constexpr (A == LK_ACTIVATION_EXP) {
    return expf(x);
  } else if constexpr (A == LK_ACTIVATION_TANH) {
    return tanhf(x);
  } else {
    return erff(x);
  }
}

template <typename T, lk_activation A>
__device__ __forceinline__ T output_of(T gate, bool gated, T up) {
  float y = activation_of<A>(lk_to_float(gate));
  if (gated) y = __fmul_rn(y, lk_to_float(up));
  return lk_from_float<T>(y);
}

/* kVec: VEC elements a 16-byte access (the host checked alignment); else one element. */
template <typename T, lk_activation A, bool kVec>
__global__ void __launch_bounds__(kThreads, kVec ? 4 : 3) activation_rows(activation_args a) {
  constexpr int VEC = kVec ? 16 / (int)sizeof(T) : 1;
  constexpr int kUnroll = kVec ? kVectorsPerThread : kElementsPerThread;
  using vec = lk_vec<T, VEC>;
  const int64_t full = a.cols / VEC; /* whole vectors of a row; the rest goes element by element */
  const int lanes = (int)blockDim.x;
  const int64_t first = (int64_t)blockIdx.x * lanes * a.per_thread + threadIdx.x; /* this thread's first vector of a row */
  const bool gated = a.up != nullptr;
  const bool tail_here = kVec && a.cols > full * VEC && blockIdx.x == a.tail_chunk && (int)threadIdx.x == a.tail_lane;
  const int64_t row = (int64_t)blockIdx.y * blockDim.y + threadIdx.y;
  if (row < a.rows) {
    const T *gate = static_cast<const T *>(a.gate) + row * a.gate_stride;
    const T *up = gated ? static_cast<const T *>(a.up) + row * a.up_stride : nullptr;
    T *out = static_cast<T *>(a.out) + row * a.out_stride;
    const vec *gate_v = reinterpret_cast<const vec *>(gate) + first;
    const vec *up_v = gated ? reinterpret_cast<const vec *>(up) + first : nullptr;
    vec *out_v = reinterpret_cast<vec *>(out) + first;
    /* Every load before any store: the loads are all in flight together, and in place (out == x)
     * each element is read before this thread, its only reader, overwrites it. */
    vec g[kUnroll], u[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; k++) {
      if (k < a.per_thread && first + k * lanes < full) {
        g[k] = gate_v[k * lanes];
        if (gated) u[k] = up_v[k * lanes];
      }
    }
#pragma unroll
    for (int k = 0; k < kUnroll; k++) {
      if (k < a.per_thread && first + k * lanes < full) {
        vec o;
#pragma unroll
        for (int e = 0; e < VEC; e++) o.v[e] = output_of<T, A>(g[k].v[e], gated, u[k].v[e]);
        out_v[k * lanes] = o;
      }
    }
    /* the row's ragged end (cols % VEC elements), by the thread whose vector it would have been */
    if (tail_here)
      for (int64_t i = full * VEC; i < a.cols; i++) out[i] = output_of<T, A>(gate[i], gated, gated ? up[i] : T());
  }
}

template <typename T>
bool vector_path(const activation_args &a) {
  const int64_t rows = a.rows;
  const auto aligned = [rows](const void *base, int64_t stride) { return lk_aligned(base, rows > 1 ? stride : 0, sizeof(T), 16); };
  return aligned(a.gate, a.gate_stride) && aligned(a.out, a.out_stride) && (!a.up || aligned(a.up, a.up_stride));
}

template <typename T, lk_activation A>
lk_status launch(activation_args a, cudaStream_t stream) {
  const bool vec = vector_path<T>(a);
  const int64_t VEC = vec ? 16 / (int64_t)sizeof(T) : 1, most = vec ? kVectorsPerThread : kElementsPerThread;
  int multiprocessors = 1;
  const lk_status status = lk_cuda_multiprocessors(&multiprocessors);
  if (status != LK_OK) return status;

  const int64_t vectors = (a.cols + VEC - 1) / VEC; /* the last one may be partial */
  int64_t lanes = lk_pow2_at_least(vectors, kThreads);
  const auto rows_a_block_for = [&](int64_t l) { return kThreads / l < a.rows ? kThreads / l : a.rows; };
  int64_t rows_a_block = rows_a_block_for(lanes);
  int64_t per_thread = (vectors + lanes - 1) / lanes < most ? (vectors + lanes - 1) / lanes : most;
  int64_t chunks = 0;
  const auto blocks = [&] {
    chunks = (vectors + lanes * per_thread - 1) / (lanes * per_thread);
    return chunks * ((a.rows + rows_a_block - 1) / rows_a_block);
  };
  /* a small call: fewer vectors a thread, then (when one block row already holds every row) fewer
   * lanes a block, until every multiprocessor has two blocks */
  const int64_t wanted = 2 * (int64_t)multiprocessors;
  while (blocks() < wanted && per_thread > 1) per_thread = (per_thread + 1) / 2;
  while (blocks() < wanted && lanes > 32 && rows_a_block == a.rows) rows_a_block = rows_a_block_for(lanes /= 2);
  blocks();
  if (chunks > INT32_MAX)
    return lk_fail(LK_ERR_UNSUPPORTED, "rows of %lld elements exceed what one launch covers", (long long)a.cols);
  a.per_thread = (int)per_thread;
  a.tail_chunk = (a.cols / VEC) / (lanes * per_thread);
  a.tail_lane = (int)((a.cols / VEC) % lanes);
  const dim3 block((unsigned)lanes, (unsigned)rows_a_block);
  /* grid.y holds up to 65535 block rows; longer calls go in slices */
  const int64_t slice_rows = 65535 * rows_a_block, size = (int64_t)sizeof(T);
  for (int64_t first = 0; first < a.rows; first += slice_rows) {
    activation_args slice = a;
    slice.rows = a.rows - first < slice_rows ? a.rows - first : slice_rows;
    slice.gate = static_cast<const char *>(a.gate) + first * a.gate_stride * size;
    if (a.up) slice.up = static_cast<const char *>(a.up) + first * a.up_stride * size;
    slice.out = static_cast<char *>(a.out) + first * a.out_stride * size;
    const dim3 grid((unsigned)chunks, (unsigned)((slice.rows + rows_a_block - 1) / rows_a_block));
    if (vec) LK_LAUNCH(grid, block, 0, stream, activation_rows<T, A, true>)(slice);
    else LK_LAUNCH(grid, block, 0, stream, activation_rows<T, A, false>)(slice);
    const lk_status launched = lk_cuda_launched("activation_rows");
    if (launched != LK_OK) return launched;
  }
  return LK_OK;
}

template <typename T>
lk_status launch_activation(lk_activation activation, const activation_args &a, cudaStream_t stream) {
  switch (activation) {
  case LK_ACTIVATION_SILU: return launch<T, LK_ACTIVATION_SILU>(a, stream);
  case LK_ACTIVATION_GELU_ERF: return launch<T, LK_ACTIVATION_GELU_ERF>(a, stream);
  case LK_ACTIVATION_GELU_TANH: return launch<T, LK_ACTIVATION_GELU_TANH>(a, stream);
  case LK_ACTIVATION_RELU: return launch<T, LK_ACTIVATION_RELU>(a, stream);
  case LK_ACTIVATION_SIGMOID: return launch<T, LK_ACTIVATION_SIGMOID>(a, stream);
  case LK_ACTIVATION_EXP: return launch<T, LK_ACTIVATION_EXP>(a, stream);
  case LK_ACTIVATION_TANH: return launch<T, LK_ACTIVATION_TANH>(a, stream);
  default: return launch<T, LK_ACTIVATION_ERF>(a, stream);
  }
}

lk_status run(lk_activation activation, lk_dtype dtype, const activation_args &a, lk_cuda_stream stream) {
  return lk_cuda_dispatch_dtype(dtype, [&](auto element) {
    using T = decltype(element);
    return launch_activation<T>(activation, a, lk_cuda_as_stream(stream));
  });
}

lk_status run_activation(lk_cuda_stream stream, const lk_activation_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  const lk_activation_params p = *params;
  const lk_status status = lk_activation_check(&p);
  if (status != LK_OK || p.n == 0) return status;
  activation_args a = {};
  a.gate = p.x;
  a.out = p.y;
  a.rows = 1;
  a.cols = p.n;
  return run(p.activation, p.dtype, a, stream);
}

lk_status run_glu(lk_cuda_stream stream, const lk_glu_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_glu_params p = *params;
  const lk_status status = lk_glu_check(&p);
  if (status != LK_OK || p.tokens == 0) return status;
  const bool split = p.layout == LK_GLU_SPLIT;
  const char *x = static_cast<const char *>(p.x);
  const int64_t half = p.d * (p.dtype == LK_DTYPE_F32 ? 4 : 2); /* bytes from a packed row's start to its second half */
  activation_args a = {};
  a.gate = p.layout == LK_GLU_UP_FIRST ? x + half : p.x;
  a.up = split ? p.up : p.layout == LK_GLU_UP_FIRST ? p.x : x + half;
  a.out = p.out;
  a.gate_stride = p.x_stride;
  a.up_stride = split ? p.up_stride : p.x_stride;
  a.out_stride = p.out_stride;
  a.rows = p.tokens;
  a.cols = p.d;
  return run(p.activation, p.dtype, a, stream);
}

} // namespace

extern "C" {

LK_CUDA_API lk_status lk_cuda_apply_activation(lk_cuda_stream stream, const lk_activation_params *params) {
  return run_activation(stream, params);
}

LK_CUDA_API lk_status lk_cuda_glu(lk_cuda_stream stream, const lk_glu_params *params) { return run_glu(stream, params); }

} // extern "C"
