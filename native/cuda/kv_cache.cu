/* lk_cuda_kv_cache_write (vLLM's reshape_and_cache_flash), lk_cuda_kv_cache_gather and
 * lk_cuda_kv_cache_copy_blocks (vLLM's copy_blocks): the paged KV cache operations of llmkernels.h
 * on one layer's cache [num_blocks, block_size, num_kv_heads, head_dim] in device memory.
 *
 * All three move whole cache rows (num_kv_heads * head_dim elements) without looking at them, so
 * one kernel, copy_rows, does every copy, bit for bit and for every dtype: a job maps each row it
 * is given to a source and a destination in both caches (or skips it), and the row moves in the
 * widest access that every base, stride and row length allows (16 bytes normally; 8, 4, 2 or 1 for
 * misaligned views). The jobs differ only in how a row is found:
 *   - write: token t -> slot_mapping[t] (negative: padding, skipped);
 *   - gather: output row r -> the sequence whose rows hold r (a binary search over the sequences'
 *     starting rows, which scan_seq_lens computes on the device from seq_lens), its block-table
 *     entry and the offset in that block;
 *   - copy blocks: row o of pair p -> row o of blocks block_mapping[p] (src -> dst).
 *
 * Indices live in device memory and are checked as they are read (llmkernels_cuda.h): a bad one
 * is reported through the error sink and the rows it would have directed are skipped. Repeats,
 * which the CPU refuses: a slot two tokens name is written by the first of them (a hash table of
 * slot -> first token: in each block's shared memory for up to 1024 tokens, built by a separate
 * kernel in stream-ordered scratch above that), and each later token naming it is reported and
 * skipped; copy blocks checks the whole mapping in one block before anything is copied, so a bad
 * mapping copies nothing, as on the CPU. docs/cuda/kv-cache.md has the decisions and their costs. */
#include "kv_cache_check.h"
#include "lk_cuda_device.cuh"

#include <initializer_list>

namespace {

/* ---- launch geometry --------------------------------------------------------------------------
 * A copy is bound by DRAM bandwidth once enough bytes are in flight: Little's law on an H200
 * (4.8 TB/s, ~0.8 us loaded latency) asks for ~3.8 MB of reads outstanding, ~29 KB per SM of its
 * 132. copy_rows' blocks are kThreads threads: a team of blockDim.x threads per row (the smallest
 * power of two that covers the row with kUnroll words a thread, at most kThreads) and
 * blockDim.y = kThreads / team rows a pass. Each thread issues its kUnroll words of the key row and
 * kUnroll of the value row (8 independent 16-byte loads, 128 bytes) before the first store. That
 * takes 64 registers (ptxas), so an SM holds 4 blocks, 1024 threads: 128 KB in flight, ~4x the
 * need. A row of one word keeps less (a team of 1, 2 loads: 32 KB an SM, about the need); the
 * narrower accesses compile to 32-48 registers and more blocks. The grid is one pass per block up to
 * kBlocksPerSm blocks an SM (a few waves of resident blocks), and loops beyond: enough to fill the
 * GPU without launching blocks that find no work. */
constexpr int kThreads = 256;
constexpr int kUnroll = 4;
constexpr int kBlocksPerSm = 16;
constexpr int kCheckThreads = 1024; /* the single-block kernels: the scan and the mapping check */

/* Up to this many tokens, each block of a write builds the slot table itself in shared memory
 * (2 entries a token, 8 bytes each: 16 KiB) from all the tokens' slots: no scratch, no extra
 * kernel, for the decode-sized writes where a launch costs as much as the copy. A block reads
 * 8 bytes a token for the table and moves 4 x (its rows a pass) x row bytes: with 16-byte accesses
 * the redundant reads are at most a quarter of the copy's traffic (an eighth for 2 KiB rows), and
 * hit L2. Above, one table in scratch. */
constexpr int64_t kSharedTableTokens = 1024;

/* ---- accesses ----------------------------------------------------------------------------------- */

template <int W>
struct word_of;
template <>
struct word_of<16> { using type = lk_vec<uint32_t, 4>; };
template <>
struct word_of<8> { using type = lk_vec<uint32_t, 2>; };
template <>
struct word_of<4> { using type = lk_vec<uint32_t, 1>; };
template <>
struct word_of<2> { using type = lk_vec<uint16_t, 1>; };
template <>
struct word_of<1> { using type = lk_vec<uint8_t, 1>; };

/* The widest access (16, 8, 4, 2 or 1 bytes) that divides every address and byte stride given. */
int access_width(std::initializer_list<uint64_t> addresses_and_strides) {
  uint64_t bits = 16;
  for (const uint64_t v : addresses_and_strides) bits |= v;
  return (int)(bits & (~bits + 1));
}

template <typename F>
lk_status with_word(int width, F &&f) {
  switch (width) {
  case 16: return f(word_of<16>{});
  case 8: return f(word_of<8>{});
  case 4: return f(word_of<4>{});
  case 2: return f(word_of<2>{});
  default: return f(word_of<1>{});
  }
}

/* Bytes of an element of the (checked) dtype. */
int64_t element_bytes(lk_dtype dtype) {
  return lk_cuda_dispatch_dtype(dtype, [](auto element) { return (int64_t)sizeof(element); });
}

/* Bytes of a cache row: num_kv_heads * head_dim elements (the check ruled out overflow). */
int64_t cache_row_bytes(const lk_paged_kv_cache &cache) { return cache.num_kv_heads * cache.head_dim * element_bytes(cache.dtype); }

/* Where a job's rows come from and go to: the key and value sources and destinations (kernel
 * arguments, so the compiler knows them for global memory and uses LDG/STG). */
struct copy_bases {
  const unsigned char *key_from, *value_from;
  unsigned char *key_to, *value_to;
};

/* One row: byte offsets from the bases (a destination offset for both caches); to < 0: skipped. */
struct row_offsets {
  int64_t key_from, value_from, to;
};

__device__ __forceinline__ row_offsets skipped_row() { return row_offsets{0, 0, -1}; }

/* The row's `words` words, by a team of blockDim.x threads: kUnroll words of each cache loaded
 * before any is stored, so they are in flight together. */
template <typename Word>
__device__ __forceinline__ void copy_row(const copy_bases &b, const row_offsets &o, int32_t words) {
  const Word *key_from = reinterpret_cast<const Word *>(b.key_from + o.key_from);
  const Word *value_from = reinterpret_cast<const Word *>(b.value_from + o.value_from);
  Word *key_to = reinterpret_cast<Word *>(b.key_to + o.to), *value_to = reinterpret_cast<Word *>(b.value_to + o.to);
  const int32_t team = (int32_t)blockDim.x;
  for (int32_t base = (int32_t)threadIdx.x; base < words; base += team * kUnroll) {
    Word k[kUnroll], v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const int32_t i = base + u * team;
      if (i < words) {
        k[u] = key_from[i];
        v[u] = value_from[i];
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const int32_t i = base + u * team;
      if (i < words) {
        key_to[i] = k[u];
        value_to[i] = v[u];
      }
    }
  }
}

/* Every row of a job: job.prepare() (run by the whole block; may use the dynamic shared memory and
 * barriers) gives the number of rows, the same in every thread; each pass, a team's first thread
 * resolves its row (reading and checking the indices once) and the team copies it. */
template <typename Word, typename Job>
__global__ void __launch_bounds__(kThreads) copy_rows(Job job) {
  __shared__ row_offsets rows[kThreads];
  const int64_t count = job.prepare();
  const int64_t per_pass = blockDim.y;
  for (int64_t first = (int64_t)blockIdx.x * per_pass; first < count; first += (int64_t)gridDim.x * per_pass) {
    const int64_t row = first + threadIdx.y;
    if (threadIdx.x == 0) rows[threadIdx.y] = row < count ? job.resolve(row) : skipped_row();
    __syncthreads();
    const row_offsets o = rows[threadIdx.y];
    if (o.to >= 0) copy_row<Word>(job.bases, o, job.words);
    __syncthreads(); /* the next pass overwrites rows[] */
  }
}

struct copy_geometry {
  dim3 grid, block;
  int64_t most_blocks; /* kBlocksPerSm a multiprocessor */
};

/* Teams, rows a pass and the grid for `rows` rows of `words` words (docs at the top). */
lk_status plan_copy(int64_t rows, int64_t words, copy_geometry *g) {
  if (words > INT32_MAX - kThreads * kUnroll) /* copy_row indexes a row in 32 bits */
    return lk_fail(LK_ERR_UNSUPPORTED, "cache: rows of %lld accesses (num_kv_heads * head_dim) are more than this library copies",
                   (long long)words);
  int device = 0, sms = 0;
  LK_CUDA_TRY(cudaGetDevice(&device), "cudaGetDevice");
  LK_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  unsigned team = 1;
  while (team < (unsigned)kThreads && (int64_t)team * kUnroll < words) team *= 2;
  const int64_t per_pass = kThreads / team;
  const int64_t passes = (rows + per_pass - 1) / per_pass, most = (int64_t)sms * kBlocksPerSm;
  g->most_blocks = most;
  g->block = dim3(team, (unsigned)per_pass);
  g->grid = dim3((unsigned)(passes < most ? passes : most));
  return LK_OK;
}

/* Stream-ordered device scratch, freed in stream order after the kernels that use it. */
struct scratch {
  void *memory = nullptr;
  cudaStream_t stream = nullptr;
  lk_status allocate(size_t bytes, cudaStream_t s) {
    stream = s;
    return lk_cuda_check(cudaMallocAsync(&memory, bytes, s), "cudaMallocAsync (kv cache scratch)");
  }
  lk_status release() {
    void *m = memory;
    memory = nullptr;
    return m ? lk_cuda_check(cudaFreeAsync(m, stream), "cudaFreeAsync (kv cache scratch)") : LK_OK;
  }
  ~scratch() {
    if (memory) (void)cudaFreeAsync(memory, stream); /* an error path: its status is the call's */
  }
};

/* ---- first-occurrence tables -------------------------------------------------------------------
 * Open addressing over 2^bits entries (at least twice the entries inserted, so a probe always
 * ends), each the index of the first entry of a list holding a value: values are keys[i * stride].
 * Insert claims an empty entry with atomicCAS and keeps the smallest index with atomicMin, so once
 * every insert is done an entry holds the first index with its value, whatever the order the
 * inserts ran in. Entries are read through volatile (no stale L1 line after the atomics). */
constexpr unsigned long long kEmpty = ~0ull;

__device__ __forceinline__ int64_t table_slot(int64_t value, int bits) {
  return (int64_t)(((unsigned long long)value * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

__device__ __forceinline__ void table_insert(unsigned long long *table, int bits, const int64_t *keys, int64_t stride,
                                             int64_t value, int64_t index) {
  const int64_t mask = ((int64_t)1 << bits) - 1;
  for (int64_t h = table_slot(value, bits);; h = (h + 1) & mask) {
    const unsigned long long old = atomicCAS(&table[h], kEmpty, (unsigned long long)index);
    if (old == kEmpty) return;
    if (keys[(int64_t)old * stride] == value) {
      atomicMin(&table[h], (unsigned long long)index);
      return;
    }
  }
}

/* The first index whose value is `value`, or -1. */
__device__ __forceinline__ int64_t table_find(const unsigned long long *table, int bits, const int64_t *keys, int64_t stride,
                                              int64_t value) {
  const volatile unsigned long long *entries = table;
  const int64_t mask = ((int64_t)1 << bits) - 1;
  for (int64_t h = table_slot(value, bits);; h = (h + 1) & mask) {
    const unsigned long long e = entries[h];
    if (e == kEmpty) return -1;
    if (keys[(int64_t)e * stride] == value) return (int64_t)e;
  }
}

/* log2 of the table for n entries: the power of two >= 2 n (at least 2; at most 2^62, which no
 * allocation holds). */
int table_bits(int64_t n) {
  int bits = 1;
  while (bits < 62 && ((uint64_t)1 << bits) < 2 * (uint64_t)n) bits++;
  return bits;
}

/* ---- write ------------------------------------------------------------------------------------- */

struct write_job {
  copy_bases bases;                 /* key and value -> the caches */
  int64_t key_stride, value_stride; /* bytes */
  int64_t row_bytes, slots, num_tokens;
  int32_t words; /* a row's, in Word */
  const int64_t *slot_mapping;
  unsigned long long *table; /* scratch; NULL: the block's own table in dynamic shared memory */
  int bits;
  lk_cuda_error_sink sink;

  __device__ unsigned long long *slots_table() const {
    return table ? table : reinterpret_cast<unsigned long long *>(lk_dynamic_shared());
  }

  __device__ int64_t prepare() const {
    if (table) return num_tokens;
    unsigned long long *own = slots_table();
    const int64_t thread = (int64_t)threadIdx.y * blockDim.x + threadIdx.x, threads = (int64_t)blockDim.x * blockDim.y;
    for (int64_t i = thread; i < ((int64_t)1 << bits); i += threads) own[i] = kEmpty;
    __syncthreads();
    for (int64_t t = thread; t < num_tokens; t += threads) {
      const int64_t slot = slot_mapping[t];
      if (slot >= 0 && slot < slots) table_insert(own, bits, slot_mapping, 1, slot, t);
    }
    __syncthreads();
    return num_tokens;
  }

  __device__ row_offsets resolve(int64_t t) const {
    const int64_t slot = slot_mapping[t];
    if (slot < 0) return skipped_row(); /* padding */
    if (slot >= slots) {
      lk_report_index(sink, LK_CUDA_ENTRY_KV_CACHE_WRITE, LK_CUDA_ARG_SLOT_MAPPING, t, -1, slot, slots);
      return skipped_row();
    }
    const int64_t first = table_find(slots_table(), bits, slot_mapping, 1, slot);
    if (first != t) {
      lk_report_index(sink, LK_CUDA_ENTRY_KV_CACHE_WRITE, LK_CUDA_ARG_SLOT_MAPPING_REPEAT, t, first, slot, slots);
      return skipped_row();
    }
    return row_offsets{t * key_stride, t * value_stride, slot * row_bytes};
  }
};

/* The scratch table for writes of more than kSharedTableTokens tokens. */
__global__ void __launch_bounds__(kThreads) insert_slots(write_job job) {
  for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < job.num_tokens; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t slot = job.slot_mapping[t];
    if (slot >= 0 && slot < job.slots) table_insert(job.table, job.bits, job.slot_mapping, 1, slot, t);
  }
}

lk_status run_write(lk_cuda_stream stream, const lk_kv_cache_write_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_kv_cache_write_params p = *params;
  lk_status status = lk_kv_cache_write_check(&p);
  if (status != LK_OK || p.num_tokens == 0) return status;
  const cudaStream_t s = lk_cuda_as_stream(stream);
  const int64_t size = element_bytes(p.cache.dtype);
  write_job job;
  job.bases = copy_bases{static_cast<const unsigned char *>(p.key), static_cast<const unsigned char *>(p.value),
                         static_cast<unsigned char *>(p.cache.key_cache), static_cast<unsigned char *>(p.cache.value_cache)};
  job.key_stride = p.key_stride * size;
  job.value_stride = p.value_stride * size;
  job.row_bytes = cache_row_bytes(p.cache);
  job.slots = p.cache.num_blocks * p.cache.block_size;
  job.num_tokens = p.num_tokens;
  job.slot_mapping = p.slot_mapping;
  job.table = nullptr;
  job.bits = table_bits(p.num_tokens);
  if ((status = lk_cuda_error_sink_get(&job.sink)) != LK_OK) return status;
  const int width = access_width({(uint64_t)(uintptr_t)p.key, (uint64_t)(uintptr_t)p.value, (uint64_t)job.key_stride,
                                  (uint64_t)job.value_stride, (uint64_t)(uintptr_t)p.cache.key_cache,
                                  (uint64_t)(uintptr_t)p.cache.value_cache, (uint64_t)job.row_bytes});
  copy_geometry g;
  if ((status = plan_copy(p.num_tokens, job.row_bytes / width, &g)) != LK_OK) return status;
  job.words = (int32_t)(job.row_bytes / width);

  scratch table;
  size_t shared_bytes = 0;
  if (p.num_tokens <= kSharedTableTokens) {
    shared_bytes = ((size_t)1 << job.bits) * sizeof(unsigned long long);
  } else {
    if (job.bits > 60) return lk_fail(LK_ERR_OUT_OF_MEMORY, "num_tokens: %lld tokens' slot table", (long long)p.num_tokens);
    const size_t bytes = ((size_t)1 << job.bits) * sizeof(unsigned long long);
    if ((status = table.allocate(bytes, s)) != LK_OK) return status;
    job.table = static_cast<unsigned long long *>(table.memory);
    LK_CUDA_TRY(cudaMemsetAsync(job.table, 0xff, bytes, s), "cudaMemsetAsync (kv cache slot table)"); /* kEmpty */
    const int64_t blocks = (p.num_tokens + kThreads - 1) / kThreads;
    LK_LAUNCH(dim3((unsigned)(blocks < g.most_blocks ? blocks : g.most_blocks)), dim3(kThreads), 0, s, insert_slots)(job);
    if ((status = lk_cuda_launched("insert_slots")) != LK_OK) return status;
  }
  status = with_word(width, [&](auto w) {
    using Word = typename decltype(w)::type;
    LK_LAUNCH(g.grid, g.block, shared_bytes, s, copy_rows<Word, write_job>)(job);
    return lk_cuda_launched("copy_rows (kv cache write)");
  });
  if (status != LK_OK) return status;
  return table.release();
}

/* ---- gather ------------------------------------------------------------------------------------
 * scan_seq_lens, one block: each sequence's first output row (the prefix sum of its predecessors'
 * lengths, negative ones counted as 0) and the rows it may write: its length, or -1 when the length
 * is negative, needs more than the table covers, or ends past out_tokens; the first such sequence
 * is reported (as seq_lens: the argument codes have none for out_tokens). starts[num_seqs] is the
 * total. A bad sequence keeps its place, so the sequences after it land where the caller computed
 * them. */
struct scan_args {
  const int32_t *seq_lens;
  int64_t num_seqs, covered, out_tokens;
  int64_t *starts;   /* [num_seqs + 1] */
  int64_t *seq_rows; /* [num_seqs] */
  lk_cuda_error_sink sink;
};

/* The exclusive prefix sum of v over the block (blockDim.x a multiple of 32), and in *total the
 * block's sum. scratch: 32 values of shared memory. Begins with a barrier, so calls may follow
 * each other on the same scratch. */
__device__ __forceinline__ int64_t block_exclusive_sum(int64_t v, int64_t *scratch, int64_t *total) {
  const int lane = (int)threadIdx.x % 32, warp = (int)threadIdx.x / 32, warps = (int)blockDim.x / 32;
  int64_t inclusive = v;
#pragma unroll
  for (int offset = 1; offset < 32; offset *= 2) {
    const int64_t below = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += below;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    int64_t sums = lane < warps ? scratch[lane] : 0;
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2) {
      const int64_t below = __shfl_up_sync(0xffffffffu, sums, offset);
      if (lane >= offset) sums += below;
    }
    if (lane < warps) scratch[lane] = sums;
  }
  __syncthreads();
  *total = scratch[warps - 1];
  return (warp == 0 ? 0 : scratch[warp - 1]) + inclusive - v;
}

__global__ void __launch_bounds__(kCheckThreads) scan_seq_lens(scan_args a) {
  __shared__ int64_t sums[32];
  __shared__ unsigned long long first_bad;
  if (threadIdx.x == 0) first_bad = kEmpty;
  int64_t carry = 0;
  for (int64_t base = 0; base < a.num_seqs; base += blockDim.x) {
    const int64_t s = base + threadIdx.x;
    const int64_t len = s < a.num_seqs ? a.seq_lens[s] : 0;
    int64_t total;
    const int64_t start = carry + block_exclusive_sum(len > 0 ? len : 0, sums, &total);
    if (s < a.num_seqs) {
      const bool fits = len >= 0 && len <= a.covered && start + len <= a.out_tokens;
      a.starts[s] = start;
      a.seq_rows[s] = fits ? len : -1;
      if (!fits) atomicMin(&first_bad, (unsigned long long)s);
    }
    carry += total;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    a.starts[a.num_seqs] = carry;
    if (first_bad != kEmpty) {
      const int64_t s = (int64_t)first_bad, len = a.seq_lens[s], left = a.out_tokens - a.starts[s];
      /* the bound the length broke: the table's coverage, or the output rows left from its start */
      const int64_t bound = len < 0 || len > a.covered ? a.covered : left > 0 ? left : 0;
      lk_report_index(a.sink, LK_CUDA_ENTRY_KV_CACHE_GATHER, LK_CUDA_ARG_SEQ_LENS, s, -1, len, bound);
    }
  }
}

struct gather_job {
  copy_bases bases; /* the caches -> key_out and value_out */
  int64_t row_bytes, block_size, num_blocks, max_blocks_per_seq, num_seqs, out_tokens;
  int32_t words;
  const int32_t *block_tables;
  const int64_t *starts, *seq_rows; /* scan_seq_lens' */
  lk_cuda_error_sink sink;

  __device__ int64_t prepare() const {
    const int64_t total = starts[num_seqs];
    return total < out_tokens ? total : out_tokens;
  }

  __device__ row_offsets resolve(int64_t r) const {
    int64_t lo = 0, hi = num_seqs - 1; /* the last sequence starting at or before r */
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo + 1) / 2;
      if (starts[mid] <= r) lo = mid;
      else hi = mid - 1;
    }
    const int64_t s = lo, i = r - starts[s];
    if (i >= seq_rows[s]) return skipped_row(); /* a bad length (-1): reported by scan_seq_lens */
    const int64_t j = i / block_size;
    const int64_t block = block_tables[s * max_blocks_per_seq + j];
    if (block < 0 || block >= num_blocks) {
      lk_report_index(sink, LK_CUDA_ENTRY_KV_CACHE_GATHER, LK_CUDA_ARG_BLOCK_TABLES, s, j, block, num_blocks);
      return skipped_row();
    }
    const int64_t from = (block * block_size + i - j * block_size) * row_bytes;
    return row_offsets{from, from, r * row_bytes};
  }
};

lk_status run_gather(lk_cuda_stream stream, const lk_kv_cache_gather_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  const lk_kv_cache_gather_params p = *params;
  lk_status status = lk_kv_cache_gather_check(&p, 0);
  if (status != LK_OK || p.num_seqs == 0) return status;
  const cudaStream_t s = lk_cuda_as_stream(stream);
  const int64_t covered = p.max_blocks_per_seq * p.cache.block_size; /* the check ruled out overflow */
  /* rows any call with these counts can write */
  const int64_t most_rows = covered > 0 && p.num_seqs > p.out_tokens / covered ? p.out_tokens : p.num_seqs * covered;
  if (p.num_seqs > (INT64_MAX / 8 - 1) / 2) return lk_fail(LK_ERR_OUT_OF_MEMORY, "num_seqs: %lld sequences' offsets", (long long)p.num_seqs);

  gather_job job;
  job.bases = copy_bases{static_cast<const unsigned char *>(p.cache.key_cache), static_cast<const unsigned char *>(p.cache.value_cache),
                         static_cast<unsigned char *>(p.key_out), static_cast<unsigned char *>(p.value_out)};
  job.row_bytes = cache_row_bytes(p.cache);
  job.block_size = p.cache.block_size;
  job.num_blocks = p.cache.num_blocks;
  job.max_blocks_per_seq = p.max_blocks_per_seq;
  job.num_seqs = p.num_seqs;
  job.out_tokens = p.out_tokens;
  job.block_tables = p.block_tables;
  if ((status = lk_cuda_error_sink_get(&job.sink)) != LK_OK) return status;

  scratch offsets;
  if ((status = offsets.allocate((size_t)(2 * p.num_seqs + 1) * sizeof(int64_t), s)) != LK_OK) return status;
  scan_args a;
  a.seq_lens = p.seq_lens;
  a.num_seqs = p.num_seqs;
  a.covered = covered;
  a.out_tokens = p.out_tokens;
  a.starts = static_cast<int64_t *>(offsets.memory);
  a.seq_rows = a.starts + p.num_seqs + 1;
  a.sink = job.sink;
  LK_LAUNCH(dim3(1), dim3(kCheckThreads), 0, s, scan_seq_lens)(a);
  if ((status = lk_cuda_launched("scan_seq_lens")) != LK_OK) return status;
  job.starts = a.starts;
  job.seq_rows = a.seq_rows;

  if (most_rows > 0) {
    const int width = access_width({(uint64_t)(uintptr_t)p.cache.key_cache, (uint64_t)(uintptr_t)p.cache.value_cache,
                                    (uint64_t)(uintptr_t)p.key_out, (uint64_t)(uintptr_t)p.value_out, (uint64_t)job.row_bytes});
    copy_geometry g;
    if ((status = plan_copy(most_rows, job.row_bytes / width, &g)) != LK_OK) return status;
    job.words = (int32_t)(job.row_bytes / width);
    status = with_word(width, [&](auto w) {
      using Word = typename decltype(w)::type;
      LK_LAUNCH(g.grid, g.block, 0, s, copy_rows<Word, gather_job>)(job);
      return lk_cuda_launched("copy_rows (kv cache gather)");
    });
    if (status != LK_OK) return status;
  }
  return offsets.release();
}

/* ---- copy blocks -------------------------------------------------------------------------------
 * check_block_mapping, one block, before anything is copied: every block id in [0, num_blocks),
 * then, over the pairs with src != dst, no destination named twice and no source that is another
 * pair's destination (a table of destination -> first pair). The first bad pair in order is
 * reported (bounds before repeats, as on the CPU) and *failed set, and copy_rows then copies
 * nothing: a bad mapping leaves the caches as they were. */
struct mapping_check_args {
  const int64_t *block_mapping;
  int64_t num_pairs, num_blocks;
  unsigned long long *table;
  int bits;
  int32_t *failed;
  lk_cuda_error_sink sink;
};

__global__ void __launch_bounds__(kCheckThreads) check_block_mapping(mapping_check_args a) {
  __shared__ unsigned long long first; /* 2 p + side (bounds), 2 p + kind (repeats) */
  const int64_t thread = threadIdx.x, threads = blockDim.x;
  const int64_t *mapping = a.block_mapping, *destinations = a.block_mapping + 1;
  if (thread == 0) first = kEmpty;
  for (int64_t i = thread; i < ((int64_t)1 << a.bits); i += threads) a.table[i] = kEmpty;
  __syncthreads();
  for (int64_t e = thread; e < 2 * a.num_pairs; e += threads)
    if (mapping[e] < 0 || mapping[e] >= a.num_blocks) atomicMin(&first, (unsigned long long)e);
  __syncthreads();
  const unsigned long long outside = first;
  if (outside != kEmpty) {
    if (thread == 0) {
      lk_report_index(a.sink, LK_CUDA_ENTRY_KV_CACHE_COPY_BLOCKS, LK_CUDA_ARG_BLOCK_MAPPING, (int64_t)(outside / 2),
                      (int64_t)(outside % 2), mapping[outside], a.num_blocks);
      *a.failed = 1;
    }
    return;
  }
  for (int64_t p = thread; p < a.num_pairs; p += threads)
    if (mapping[2 * p] != mapping[2 * p + 1]) table_insert(a.table, a.bits, destinations, 2, mapping[2 * p + 1], p);
  __syncthreads();
  for (int64_t p = thread; p < a.num_pairs; p += threads) {
    const int64_t src = mapping[2 * p], dst = mapping[2 * p + 1];
    if (src == dst) continue;
    if (table_find(a.table, a.bits, destinations, 2, dst) != p) atomicMin(&first, (unsigned long long)(2 * p));
    else if (table_find(a.table, a.bits, destinations, 2, src) >= 0) atomicMin(&first, (unsigned long long)(2 * p + 1));
  }
  __syncthreads();
  if (thread == 0) {
    const unsigned long long found = first;
    if (found != kEmpty) {
      const int64_t p = (int64_t)(found / 2), block = found % 2 ? mapping[2 * p] : mapping[2 * p + 1];
      lk_report_index(a.sink, LK_CUDA_ENTRY_KV_CACHE_COPY_BLOCKS, LK_CUDA_ARG_BLOCK_MAPPING_REPEAT, p,
                      table_find(a.table, a.bits, destinations, 2, block), block, a.num_blocks);
    }
    *a.failed = found != kEmpty;
  }
}

struct copy_job {
  copy_bases bases; /* the caches -> the caches */
  int64_t row_bytes, block_size, num_blocks, num_pairs;
  int32_t words;
  const int64_t *block_mapping;
  const int32_t *failed; /* check_block_mapping's verdict */

  __device__ int64_t prepare() const { return *failed ? 0 : num_pairs * block_size; }

  __device__ row_offsets resolve(int64_t r) const {
    const int64_t pair = r / block_size, offset = r - pair * block_size;
    const int64_t src = block_mapping[2 * pair], dst = block_mapping[2 * pair + 1];
    /* checked before; tested again so that no value read here can address memory outside */
    if (src == dst || src < 0 || src >= num_blocks || dst < 0 || dst >= num_blocks) return skipped_row();
    const int64_t from = (src * block_size + offset) * row_bytes;
    return row_offsets{from, from, (dst * block_size + offset) * row_bytes};
  }
};

lk_status run_copy_blocks(lk_cuda_stream stream, const lk_kv_cache_copy_blocks_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  const lk_kv_cache_copy_blocks_params p = *params;
  lk_status status = lk_kv_cache_copy_blocks_check(&p);
  if (status != LK_OK || p.num_pairs == 0) return status;
  if (p.num_pairs > INT64_MAX / p.cache.block_size || p.num_pairs > ((int64_t)1 << 58))
    return lk_fail(LK_ERR_UNSUPPORTED, "num_pairs: %lld pairs of %lld rows each are more rows than this library addresses",
                   (long long)p.num_pairs, (long long)p.cache.block_size);
  const cudaStream_t s = lk_cuda_as_stream(stream);
  mapping_check_args a;
  a.block_mapping = p.block_mapping;
  a.num_pairs = p.num_pairs;
  a.num_blocks = p.cache.num_blocks;
  a.bits = table_bits(p.num_pairs);
  if ((status = lk_cuda_error_sink_get(&a.sink)) != LK_OK) return status;
  const size_t table_bytes = ((size_t)1 << a.bits) * sizeof(unsigned long long);
  scratch check;
  if ((status = check.allocate(table_bytes + sizeof(int32_t), s)) != LK_OK) return status;
  a.table = static_cast<unsigned long long *>(check.memory);
  a.failed = reinterpret_cast<int32_t *>(static_cast<unsigned char *>(check.memory) + table_bytes);
  LK_LAUNCH(dim3(1), dim3(kCheckThreads), 0, s, check_block_mapping)(a);
  if ((status = lk_cuda_launched("check_block_mapping")) != LK_OK) return status;

  copy_job job;
  job.bases = copy_bases{static_cast<const unsigned char *>(p.cache.key_cache), static_cast<const unsigned char *>(p.cache.value_cache),
                         static_cast<unsigned char *>(p.cache.key_cache), static_cast<unsigned char *>(p.cache.value_cache)};
  job.row_bytes = cache_row_bytes(p.cache);
  job.block_size = p.cache.block_size;
  job.num_blocks = p.cache.num_blocks;
  job.num_pairs = p.num_pairs;
  job.block_mapping = p.block_mapping;
  job.failed = a.failed;
  const int width =
      access_width({(uint64_t)(uintptr_t)p.cache.key_cache, (uint64_t)(uintptr_t)p.cache.value_cache, (uint64_t)job.row_bytes});
  copy_geometry g;
  if ((status = plan_copy(p.num_pairs * p.cache.block_size, job.row_bytes / width, &g)) != LK_OK) return status;
  job.words = (int32_t)(job.row_bytes / width);
  status = with_word(width, [&](auto w) {
    using Word = typename decltype(w)::type;
    LK_LAUNCH(g.grid, g.block, 0, s, copy_rows<Word, copy_job>)(job);
    return lk_cuda_launched("copy_rows (kv cache copy blocks)");
  });
  if (status != LK_OK) return status;
  return check.release();
}

} // namespace

extern "C" {

LK_CUDA_API lk_status lk_cuda_kv_cache_write(lk_cuda_stream stream, const lk_kv_cache_write_params *params) {
  return run_write(stream, params);
}

LK_CUDA_API lk_status lk_cuda_kv_cache_gather(lk_cuda_stream stream, const lk_kv_cache_gather_params *params) {
  return run_gather(stream, params);
}

LK_CUDA_API lk_status lk_cuda_kv_cache_copy_blocks(lk_cuda_stream stream, const lk_kv_cache_copy_blocks_params *params) {
  return run_copy_blocks(stream, params);
}

} // extern "C"
