/* Internal declarations of the CUDA library, host side: error reporting through the CPU library's
 * lk_last_error() (lk_fail and lk_clear_error are exported by it for this, and declared nowhere
 * public), the check that turns a cudaError_t into an lk_status, kernel launches (LK_LAUNCH), and
 * the sink through which kernels report bad indices they find in device memory.
 *
 * The same sources build the real library (nvcc) and the emulated one (a C++ compiler with
 * LK_CUDA_EMU defined, emu/lk_emu.h in place of the CUDA runtime): docs/cuda.md. */
#ifndef LK_CUDA_INTERNAL_H
#define LK_CUDA_INTERNAL_H

#include "llmkernels_cuda.h"

#if defined(LK_CUDA_EMU)
#  include "emu/lk_emu.h"
#  include <tuple>
#  include <utility>
#else
#  include <cuda_runtime.h>
#endif

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
inline lk_status lk_cuda_check(cudaError_t error, const char *what) {
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

/* ---- launches ------------------------------------------------------------------------------------
 * LK_LAUNCH(grid, block, shared_bytes, stream, kernel)(arguments...) is kernel<<<grid, block,
 * shared_bytes, stream>>>(arguments...), in a form a C++ compiler parses too (the kernel last, so
 * a template-id's commas are no trouble). lk_cuda_launched then turns the launch's error into the
 * call's status. */
#if defined(LK_CUDA_EMU)
namespace lk_emu {
void set_launch_error(cudaError_t error);
template <typename... Params>
struct launcher {
  void (*kernel)(Params...);
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
  template <typename... Args>
  void operator()(Args &&...args) const {
    /* the arguments converted to the parameters' types once, as a real launch copies them */
    std::tuple<typename std::decay<Params>::type...> bound(std::forward<Args>(args)...);
    const std::function<void()> body = [&] { std::apply(kernel, bound); };
    set_launch_error(launch(grid, block, shared_bytes, stream, body));
  }
};
template <typename... Params>
launcher<Params...> make_launcher(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, void (*kernel)(Params...)) {
  return launcher<Params...>{kernel, grid, block, shared_bytes, stream};
}
} // namespace lk_emu
#  define LK_LAUNCH(grid, block, shared_bytes, stream, ...) \
    ::lk_emu::make_launcher((grid), (block), (shared_bytes), (stream), __VA_ARGS__)
#else
#  define LK_LAUNCH(grid, block, shared_bytes, stream, ...) __VA_ARGS__<<<(grid), (block), (shared_bytes), (stream)>>>
#endif

inline lk_status lk_cuda_launched(const char *kernel) { return lk_cuda_check(cudaGetLastError(), kernel); }

inline cudaStream_t lk_cuda_as_stream(lk_cuda_stream stream) { return reinterpret_cast<cudaStream_t>(stream); }

/* ---- bad indices found by kernels ----------------------------------------------------------------
 * Indices that live in device memory (slot mappings, block tables, positions, sequence offsets,
 * expert ids) cannot be checked on the host before a launch without a synchronising copy, so the
 * kernels check them: an index outside its range is never used to address memory, and the first
 * one a device meets is recorded here. lk_cuda_stream_synchronize, lk_cuda_device_synchronize and
 * lk_cuda_kernel_error_check report it as LK_ERR_INVALID_ARGUMENT naming the argument (and clear
 * it). The record is in mapped host memory, so the host finds it with a plain load after a
 * synchronisation: nothing is copied while no kernel has reported anything. Which thread records
 * is decided by an atomic on device memory (atomics on host memory need PCIe atomics). */
typedef enum lk_cuda_index_argument {
  LK_CUDA_ARG_NONE = 0,
  LK_CUDA_ARG_SLOT_MAPPING,
  LK_CUDA_ARG_BLOCK_TABLES,
  LK_CUDA_ARG_SEQ_LENS,
  LK_CUDA_ARG_BLOCK_MAPPING,
  LK_CUDA_ARG_POSITIONS,
  LK_CUDA_ARG_CU_SEQLENS_Q,
  LK_CUDA_ARG_CU_SEQLENS_K,
  LK_CUDA_ARG_SEQLENS_K,
  LK_CUDA_ARG_EXPERT_IDS,
  LK_CUDA_ARG_SORTED_SLOTS,
  LK_CUDA_ARG_SLOT_ROWS,
  LK_CUDA_ARG_SLOT_MAPPING_REPEAT,  /* index: a token, index2: an earlier token naming the same slot (value) */
  LK_CUDA_ARG_BLOCK_MAPPING_REPEAT, /* index: a pair, index2: another pair naming its block (value) so that order matters */
  LK_CUDA_ARG_COUNT
} lk_cuda_index_argument;

/* What a kernel found: argument[index] (index2: a second coordinate, e.g. a block table's column,
 * or -1) holds value, outside [0, bound) (or, for sequence offsets, against `bound` as the message
 * says). kernel names the entry point. */
typedef struct lk_cuda_index_error {
  volatile int32_t argument; /* lk_cuda_index_argument; written last */
  int32_t kernel;            /* lk_cuda_entry_point */
  int64_t index, index2, value, bound;
} lk_cuda_index_error;

typedef enum lk_cuda_entry_point {
  LK_CUDA_ENTRY_KV_CACHE_WRITE = 1,
  LK_CUDA_ENTRY_KV_CACHE_GATHER,
  LK_CUDA_ENTRY_KV_CACHE_COPY_BLOCKS,
  LK_CUDA_ENTRY_ROPE,
  LK_CUDA_ENTRY_ATTENTION,
  LK_CUDA_ENTRY_MOE_ROUTING,
  LK_CUDA_ENTRY_MOE_PERMUTE,
  LK_CUDA_ENTRY_MOE_COMBINE
} lk_cuda_entry_point;

/* A kernel argument: where the current device's kernels record (device pointers). */
typedef struct lk_cuda_error_sink {
  int32_t *claimed;            /* device memory: 0 until one thread claims the record */
  lk_cuda_index_error *record; /* mapped host memory, through its device address */
} lk_cuda_error_sink;

/* The calling thread's current device's sink (created on first use). */
lk_status lk_cuda_error_sink_get(lk_cuda_error_sink *out);

#endif /* LK_CUDA_INTERNAL_H */
