#define _POSIX_C_SOURCE 200809L /* posix_memalign under strict C11 */
/* lk_cpu_context: thread pool, per-thread scratch, the chosen ISA, and the guard that refuses
 * concurrent use from two host threads. */
#include "lk_atomic.h"
#include "lk_internal.h"

#include <stdlib.h>

#if defined(_WIN32)
#  include <malloc.h>
#  include <windows.h>
static int logical_cores(void) {
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return n > 0 ? (int)n : 1;
}
static void *aligned_alloc_bytes(size_t size) { return _aligned_malloc(size, 64); }
static void aligned_free(void *p) { _aligned_free(p); }
#else
#  include <unistd.h>
static int logical_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}
static void *aligned_alloc_bytes(size_t size) {
  void *p = NULL;
  return posix_memalign(&p, 64, size) == 0 ? p : NULL;
}
static void aligned_free(void *p) { free(p); }
#endif

#define LK_MAX_THREADS 1024

LK_API lk_status lk_cpu_context_create(const lk_cpu_options *options, lk_cpu_context **out_context) {
  lk_clear_error();
  if (!out_context) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_context: NULL");
  *out_context = NULL;
  lk_cpu_options defaults = {0, LK_ISA_AUTO};
  if (!options) options = &defaults;
  if (options->num_threads < 0 || options->num_threads > LK_MAX_THREADS)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_threads: %d is outside 0..%d (0 means all cores)",
                   options->num_threads, LK_MAX_THREADS);
  if (options->isa < LK_ISA_AUTO || options->isa > LK_ISA_AVX512)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "isa: %d is not an lk_isa value", (int)options->isa);

  lk_isa isa = options->isa;
  if (isa == LK_ISA_AUTO) {
    lk_status status = lk_isa_from_environment(&isa);
    if (status != LK_OK) return status;
  }
  uint32_t supported = lk_cpu_supported_isas();
  if (isa == LK_ISA_AUTO) {
    isa = (supported & (1u << LK_ISA_AVX512)) ? LK_ISA_AVX512
        : (supported & (1u << LK_ISA_AVX2))   ? LK_ISA_AVX2
                                              : LK_ISA_SCALAR;
  } else if (!(supported & (1u << isa))) {
    return lk_fail(LK_ERR_UNSUPPORTED, "isa: this CPU (or OS) cannot run %s code%s", lk_isa_name(isa),
                   options->isa == LK_ISA_AUTO ? " (requested by LLMK_ISA)" : "");
  }

  lk_cpu_context *context = (lk_cpu_context *)calloc(1, sizeof *context);
  if (!context) return lk_fail(LK_ERR_OUT_OF_MEMORY, "context: out of memory");
  context->num_threads = options->num_threads ? options->num_threads : logical_cores();
  context->isa = isa;
  context->cpu_has_avx = (supported & (1u << LK_ISA_AVX2)) != 0;
  context->scratch_bytes = LK_SCRATCH_BYTES_PER_THREAD;
  context->scratch =
      (unsigned char *)aligned_alloc_bytes(context->scratch_bytes * (size_t)context->num_threads + LK_SHARED_SCRATCH_BYTES);
  if (!context->scratch) {
    int num_threads = context->num_threads;
    free(context);
    return lk_fail(LK_ERR_OUT_OF_MEMORY, "context: cannot allocate %d x %llu bytes of scratch", num_threads,
                   (unsigned long long)LK_SCRATCH_BYTES_PER_THREAD);
  }
  context->shared_scratch = context->scratch + context->scratch_bytes * (size_t)context->num_threads;
  if (context->num_threads > 1) {
    lk_status status = lk_thread_pool_create(context->num_threads, &context->pool);
    if (status != LK_OK) {
      aligned_free(context->scratch);
      free(context);
      return status;
    }
  }
  *out_context = context;
  return LK_OK;
}

LK_API void lk_cpu_context_destroy(lk_cpu_context *context) {
  if (!context) return;
  lk_thread_pool_destroy(context->pool);
  aligned_free(context->scratch);
  free(context);
}

LK_API lk_status lk_cpu_context_get_info(const lk_cpu_context *context, lk_cpu_context_info *out_info) {
  lk_clear_error();
  if (!context) return lk_fail(LK_ERR_INVALID_ARGUMENT, "context: NULL");
  if (!out_info) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_info: NULL");
  out_info->num_threads = context->num_threads;
  out_info->isa = context->isa;
  return LK_OK;
}

lk_status lk_context_enter(lk_cpu_context *context) {
  if (!context) return lk_fail(LK_ERR_INVALID_ARGUMENT, "context: NULL");
  if (context->cpu_has_avx) lk_avx_zeroupper();
  if (lk_atomic_exchange(&context->in_use, 1) != 0)
    return lk_fail(LK_ERR_BUSY, "context: in use by another thread; a context serves one host thread at a "
                                "time (create one per thread)");
  return LK_OK;
}

void lk_context_leave(lk_cpu_context *context) { lk_atomic_store(&context->in_use, 0); }

/* Rows go out in chunks, several per thread, each taken by whichever thread is free (a shared
 * counter), not in one fixed share per thread: on a host whose cores are shared (a VM, a busy
 * server), a thread that loses its core for a while would otherwise hold up the whole call until
 * it has done its share, and with chunks the others take over its part. Chunk boundaries depend
 * only on the row count and the thread count, so which rows a kernel call sees together (and any
 * per-range choice it makes) is as deterministic as before; only which thread runs them varies. */
#define LK_CHUNKS_PER_THREAD 8

typedef struct rows_job {
  lk_rows_fn fn;
  const void *params;
  int64_t rows;
  int64_t chunk;      /* rows per chunk */
  volatile long next; /* chunks taken so far */
} rows_job;

static void run_rows_share(void *arg, int thread_index, int num_threads) {
  rows_job *job = (rows_job *)arg;
  (void)thread_index;
  (void)num_threads;
  for (;;) {
    const int64_t begin = (int64_t)(lk_atomic_add(&job->next, 1) - 1) * job->chunk;
    if (begin >= job->rows) return;
    job->fn(job->params, begin, begin + job->chunk < job->rows ? begin + job->chunk : job->rows);
  }
}

void lk_parallel_rows(lk_cpu_context *context, lk_rows_fn fn, const void *params, int64_t rows,
                      int64_t elements_per_row, int64_t min_elements_per_thread) {
  int64_t threads = context->num_threads;
  int64_t by_size = rows * elements_per_row / (min_elements_per_thread > 0 ? min_elements_per_thread : 1);
  if (threads > by_size) threads = by_size;
  if (threads > rows) threads = rows;
  if (threads <= 1) {
    fn(params, 0, rows);
    return;
  }
  /* At least a quarter of the least work worth a thread (a chunk pays a call and the kernel's
   * setup), and whole multiples of 16 rows past 32, so that kernels taking 16 rows at a time (MoE
   * gating's batch kernel: a token a lane) are not left a ragged tail in every chunk. */
  int64_t chunk = (rows + threads * LK_CHUNKS_PER_THREAD - 1) / (threads * LK_CHUNKS_PER_THREAD);
  const int64_t row_elements = elements_per_row > 0 ? elements_per_row : 1;
  const int64_t least = (min_elements_per_thread / 4 + row_elements - 1) / row_elements;
  if (chunk < least) chunk = least;
  if (chunk > 32) chunk = (chunk + 15) / 16 * 16;
  rows_job job = {fn, params, rows, chunk, 0};
  lk_thread_pool_run(context->pool, (int)threads, run_rows_share, &job);
}
