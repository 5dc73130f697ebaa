/* The CUDA emulator: what a .cu file of this library needs from the CUDA language and runtime,
 * for a build of the same sources as plain C++ on the CPU (llmkernels_cuda_emu, docs/cuda.md).
 *
 * Why: no session of this project has had a GPU to run its kernels on, and a kernel nobody ran is
 * a kernel nobody tested. The emulator runs every thread of a block as a fiber (scheduler.cpp), so
 * __syncthreads, warp shuffles, votes and reductions, ldmatrix, mma.sync and cp.async behave as the
 * hardware defines them, and the native CUDA tests run against it on every host. It checks the logic:
 * indexing, fragment layouts, reductions, barriers and what reads what; not timing, coalescing or
 * bank conflicts, and it is exact f32 where the GPU has approximate intrinsics (__expf).
 *
 * What it enforces beyond running the code:
 *   - threads of a block run one after another between barriers, in ascending order or, with
 *     LK_CUDA_EMU_ORDER=reverse, descending: a missing __syncthreads makes one of the two orders
 *     read stale data (CTest runs both);
 *   - a barrier that not every live thread of the block (or warp, for warp operations) reaches is
 *     a deadlock, reported with the waiting threads, and fails the launch;
 *   - cp.async copies land in shared memory only at the cp.async wait that covers them;
 *   - dynamic shared memory, and under Clang static __shared__ variables too, are filled with NaN
 *     bytes (0xff) before every block, so a read of shared memory nobody wrote shows;
 *   - device memory (cudaMalloc) ends at an inaccessible page where alignment allows, with the
 *     slack before it checked for writes at cudaFree.
 *
 * Blocks run one at a time on the calling host thread, which is what lets __shared__ be a static.
 * Kernels are launched with LK_LAUNCH (lk_cuda_launch.h), not <<< >>>, which C++ cannot parse. */
#ifndef LK_EMU_H
#define LK_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <type_traits>

/* ---- the language ----------------------------------------------------------------------------- */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __constant__
#if defined(__clang__)
/* One section for every static __shared__ variable, which the scheduler fills with 0xff before each
 * block. GCC ignores the attribute for statics of template functions, so there they go unpoisoned. */
#  define LK_EMU_SHARED_SECTION __attribute__((section("lk_emu_shared")))
#else
#  define LK_EMU_SHARED_SECTION
#endif
#define __shared__ LK_EMU_SHARED_SECTION static

#define CUDART_VERSION 12000 /* the runtime API this emulates; lk_cuda_versions reports it */
#define warpSize 32

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned int x, y, z;
};

/* ---- the runtime API subset (runtime.cpp) ------------------------------------------------------ */

typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchFailure = 719
} cudaError_t;

typedef enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
} cudaMemcpyKind;

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr {
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
};

#define cudaHostAllocPortable 0x01
#define cudaHostAllocMapped 0x02

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
#define cudaStreamNonBlocking 0x01

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  size_t sharedMemPerMultiprocessor;
  int major, minor;
  int multiProcessorCount;
  int maxThreadsPerBlock;
  int maxThreadsPerMultiProcessor;
  int l2CacheSize;
  int memoryBusWidth;
  int pciBusID, pciDeviceID;
};

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);
cudaError_t cudaDriverGetVersion(int *version);
cudaError_t cudaRuntimeGetVersion(int *version);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaMalloc(void **pointer, size_t bytes);
cudaError_t cudaFree(void *pointer);
cudaError_t cudaMallocAsync(void **pointer, size_t bytes, cudaStream_t stream);
cudaError_t cudaFreeAsync(void *pointer, cudaStream_t stream);
/* Page-locked host memory, mapped: in the emulator, host memory whose device address is itself. */
cudaError_t cudaHostAlloc(void **pointer, size_t bytes, unsigned int flags);
cudaError_t cudaHostGetDevicePointer(void **device_pointer, void *host_pointer, unsigned int flags);
cudaError_t cudaFreeHost(void *pointer);
cudaError_t cudaMemset(void *pointer, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *pointer, int value, size_t bytes, cudaStream_t stream = 0);
cudaError_t cudaMemcpy(void *destination, const void *source, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *destination, const void *source, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = 0);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventElapsedTime(float *milliseconds, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorName(cudaError_t error);
const char *cudaGetErrorString(cudaError_t error);

/* Kernel attributes only matter to the hardware's shared-memory carve-out; checked and accepted. */
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel *, cudaFuncAttribute, int value) {
  return value >= 0 ? cudaSuccess : cudaErrorInvalidValue;
}

/* The address of a __device__ variable: in the emulator, the variable itself. */
template <typename T>
cudaError_t cudaGetSymbolAddress(void **pointer, const T &symbol) {
  *pointer = (void *)&symbol;
  return cudaSuccess;
}

namespace lk_emu {

/* Whether `pointer` lies in memory from cudaMalloc/cudaMallocAsync (the emulator's device memory). */
bool is_device_pointer(const void *pointer);

/* ---- blocks and threads (scheduler.cpp) -------------------------------------------------------- */

struct thread_state;
extern thread_state *g_current;     /* the running thread of the running block */
extern uint3 g_block_idx;
extern dim3 g_block_dim, g_grid_dim;
const uint3 &current_thread_idx();
int current_lane();

/* Runs body (one kernel call with its arguments bound) for every thread of every block, with
 * `shared_bytes` of dynamic shared memory a block. Returns the launch's error: a bad
 * configuration, or a deadlock the scheduler found (printed to stderr). */
cudaError_t launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, const std::function<void()> &body);

void syncthreads();
int syncthreads_count(bool predicate);
void syncwarp();
/* The warp exchange behind shuffles and votes: every live lane of the warp deposits `value`; each
 * gets the deposit of `source_lane` (its own where that lane has exited). */
uint64_t warp_exchange(uint64_t value, int source_lane);
unsigned warp_ballot(bool predicate);
unsigned warp_live_mask();
unsigned char *dynamic_shared();

/* The tensor-core and async-copy instructions the kernels use, by their PTX definitions. */
void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], bool bf16);
void ldmatrix(uint32_t *out, int count, bool transpose, const void *row_address);
void cp_async(void *shared_destination, const void *global_source, int bytes, int source_bytes);
void cp_async_commit();
void cp_async_wait(int pending_groups);

template <typename T>
inline uint64_t to_bits(T value) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp exchange of at most 8 bytes");
  uint64_t bits = 0;
  memcpy(&bits, &value, sizeof(T));
  return bits;
}
template <typename T>
inline T from_bits(uint64_t bits) {
  T value;
  memcpy(&value, &bits, sizeof(T));
  return value;
}

} // namespace lk_emu

#define threadIdx (::lk_emu::current_thread_idx())
#define blockIdx (::lk_emu::g_block_idx)
#define blockDim (::lk_emu::g_block_dim)
#define gridDim (::lk_emu::g_grid_dim)

/* ---- device functions ------------------------------------------------------------------------- */

inline void __syncthreads() { lk_emu::syncthreads(); }
/* Barriers that also reduce a predicate over the block. */
inline int __syncthreads_count(int predicate) { return lk_emu::syncthreads_count(predicate != 0); }
inline int __syncthreads_or(int predicate) { return __syncthreads_count(predicate) != 0; }
inline int __syncthreads_and(int predicate) {
  return __syncthreads_count(predicate) == (int)(lk_emu::g_block_dim.x * lk_emu::g_block_dim.y * lk_emu::g_block_dim.z);
}
inline void __syncwarp(unsigned = 0xffffffffu) { lk_emu::syncwarp(); }
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}
inline unsigned __activemask() { return lk_emu::warp_live_mask(); }

/* Shuffles within segments of `width` lanes, as the hardware: a source outside the caller's segment
 * (shfl_up/down past its edge) returns the caller's own value. */
template <typename T>
inline T __shfl_sync(unsigned, T value, int source, int width = 32) {
  const int lane = lk_emu::current_lane();
  return lk_emu::from_bits<T>(lk_emu::warp_exchange(lk_emu::to_bits(value), (lane & ~(width - 1)) + (source & (width - 1))));
}
template <typename T>
inline T __shfl_xor_sync(unsigned, T value, int lane_mask, int width = 32) {
  const int lane = lk_emu::current_lane();
  const int source = lane ^ lane_mask;
  const bool inside = (source & ~(width - 1)) == (lane & ~(width - 1));
  return lk_emu::from_bits<T>(lk_emu::warp_exchange(lk_emu::to_bits(value), inside ? source : lane));
}
template <typename T>
inline T __shfl_down_sync(unsigned, T value, unsigned delta, int width = 32) {
  const int lane = lk_emu::current_lane();
  const int source = (lane & (width - 1)) + (int)delta < width ? lane + (int)delta : lane;
  return lk_emu::from_bits<T>(lk_emu::warp_exchange(lk_emu::to_bits(value), source));
}
template <typename T>
inline T __shfl_up_sync(unsigned, T value, unsigned delta, int width = 32) {
  const int lane = lk_emu::current_lane();
  const int source = (lane & (width - 1)) >= (int)delta ? lane - (int)delta : lane;
  return lk_emu::from_bits<T>(lk_emu::warp_exchange(lk_emu::to_bits(value), source));
}
inline unsigned __ballot_sync(unsigned mask, int predicate) { return lk_emu::warp_ballot(predicate != 0) & mask; }
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
  return __ballot_sync(mask, predicate) == (mask & lk_emu::warp_live_mask());
}

/* redux.sync (sm_80 and later: __reduce_{add,min,max}_sync on unsigned and int, __reduce_{and,or,xor}_sync
 * on unsigned): the reduction over the lanes of mask, returned to each of them. The hardware leaves
 * a lane of mask that does not take part undefined: here that aborts. Every live lane calls it, as
 * every warp operation here; one outside mask contributes the identity and gets the same result. */
namespace lk_emu {
template <typename T, typename Op>
inline T warp_reduce(unsigned mask, T value, T identity, Op op) {
  syncwarp(); /* after it no lane of the warp exits before this reduction is done: one live set */
  const unsigned live = warp_live_mask();
  if ((mask & ~live) != 0) {
    fprintf(stderr, "CUDA emulator: redux.sync with mask 0x%08x, but lanes 0x%08x have exited\n", mask, mask & ~live);
    abort();
  }
  const int lane = current_lane();
  T v = (mask >> lane) & 1u ? value : identity;
  if (live == 0xffffffffu) {
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, from_bits<T>(warp_exchange(to_bits(v), lane ^ offset)));
    return v;
  }
  T result = identity; /* lanes have exited: the butterfly would lose their partners' partial results */
  for (int source = 0; source < 32; source++) {
    const T got = from_bits<T>(warp_exchange(to_bits(v), source));
    if ((live >> source) & 1u) result = op(result, got);
  }
  return result;
}
} // namespace lk_emu

inline unsigned __reduce_add_sync(unsigned mask, unsigned value) {
  return lk_emu::warp_reduce<unsigned>(mask, value, 0u, [](unsigned a, unsigned b) { return a + b; });
}
inline int __reduce_add_sync(unsigned mask, int value) { /* wraps, as the hardware's */
  return (int)__reduce_add_sync(mask, (unsigned)value);
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned value) {
  return lk_emu::warp_reduce<unsigned>(mask, value, 0xffffffffu, [](unsigned a, unsigned b) { return a < b ? a : b; });
}
inline int __reduce_min_sync(unsigned mask, int value) {
  return lk_emu::warp_reduce<int>(mask, value, INT32_MAX, [](int a, int b) { return a < b ? a : b; });
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned value) {
  return lk_emu::warp_reduce<unsigned>(mask, value, 0u, [](unsigned a, unsigned b) { return a > b ? a : b; });
}
inline int __reduce_max_sync(unsigned mask, int value) {
  return lk_emu::warp_reduce<int>(mask, value, INT32_MIN, [](int a, int b) { return a > b ? a : b; });
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned value) {
  return lk_emu::warp_reduce<unsigned>(mask, value, 0xffffffffu, [](unsigned a, unsigned b) { return a & b; });
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned value) {
  return lk_emu::warp_reduce<unsigned>(mask, value, 0u, [](unsigned a, unsigned b) { return a | b; });
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned value) {
  return lk_emu::warp_reduce<unsigned>(mask, value, 0u, [](unsigned a, unsigned b) { return a ^ b; });
}

/* Atomics: blocks and threads never run at the same time here, so plain read-modify-writes are
 * atomic. They return the old value, as the hardware's. */
template <typename T>
inline T atomicAdd(T *address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}
template <typename T>
inline T atomicMax(T *address, T value) {
  const T old = *address;
  *address = old > value ? old : value;
  return old;
}
template <typename T>
inline T atomicMin(T *address, T value) {
  const T old = *address;
  *address = old < value ? old : value;
  return old;
}
template <typename T>
inline T atomicExch(T *address, T value) {
  const T old = *address;
  *address = value;
  return old;
}
template <typename T>
inline T atomicCAS(T *address, T compare, T value) {
  const T old = *address;
  if (old == compare) *address = value;
  return old;
}
template <typename T>
inline T atomicOr(T *address, T value) {
  const T old = *address;
  *address = old | value;
  return old;
}

/* Math: exact where the hardware's intrinsic is approximate (the tests' tolerances allow for both). */
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline unsigned __float_as_uint(float x) { return lk_emu::from_bits<unsigned>(lk_emu::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return lk_emu::from_bits<float>(lk_emu::to_bits(x)); }
inline int __float_as_int(float x) { return lk_emu::from_bits<int>(lk_emu::to_bits(x)); }
inline float __int_as_float(int x) { return lk_emu::from_bits<float>(lk_emu::to_bits(x)); }
inline int __float2int_rn(float x) { return (int)lrintf(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
template <typename T>
inline T __ldg(const T *p) { return *p; }

/* CUDA's device min/max are overloads for each arithmetic type; a call mixing types is a mistake
 * there too, so only same-type calls are provided. */
#define LK_EMU_MINMAX(T)                           \
  inline T min(T a, T b) { return a < b ? a : b; } \
  inline T max(T a, T b) { return a > b ? a : b; }
LK_EMU_MINMAX(int)
LK_EMU_MINMAX(unsigned)
LK_EMU_MINMAX(long)
LK_EMU_MINMAX(unsigned long)
LK_EMU_MINMAX(long long)
LK_EMU_MINMAX(unsigned long long)
#undef LK_EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

#endif /* LK_EMU_H */
