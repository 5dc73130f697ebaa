/* lk_cuda_moe_routing, lk_cuda_moe_permute, lk_cuda_moe_combine: the routing plan, the token rows
 * into expert order and the experts' outputs back, weighted; the contracts of lk_moe_routing,
 * lk_moe_permute and lk_moe_combine (llmkernels.h, docs/moe.md) on the GPU. docs/cuda/moe.md has
 * the mapping, the decisions and the handling of bad indices.
 *
 * The plan is a stable counting sort, as on the CPU, in parallel: the slots in chunks (a multiple
 * of 32 slots each, one warp a chunk), a histogram of local experts per chunk, an exclusive sum
 * over the chunks per expert, offsets of the padded counts over the experts, then each chunk's
 * slots placed at its experts' next rows in slot order. Inside a chunk, 32 slots at a time, a
 * slot's rank among the earlier lanes of the same expert comes from 32 shuffles; the last of them
 * moves the expert's counter on. Up to 8192 slots and 1024 local experts (decode batches) it is one
 * block and one launch, the chunk histograms in shared memory; beyond, four launches over a
 * stream-ordered scratch of [chunks, local] counters.
 *
 * An expert id outside [0, num_experts) is reported (the first, at the next synchronisation) and its
 * slot is treated as routed to no local expert: no row, -1 in slot_rows. The plan is then a valid
 * plan of the other slots, nothing is written out of bounds, and its counts, offsets and rows
 * differ from what the CPU (which refuses the call before writing anything) would give.
 *
 * Permute and combine are memory-bound row moves: 16-byte accesses where every row allows them,
 * several loads in flight a thread. Combine adds each token's rows in slot order with one fmaf each
 * from 0, rounded once: the CPU scalar kernel's operations, so the same bits. */
#include "lk_cuda_device.cuh"
#include "moe_check.h"

namespace {

constexpr unsigned kFull = 0xffffffffu;

/* ---- the routing plan ------------------------------------------------------------------------------ */

constexpr int kPlanWarps = 8;                   /* the one-block plan: a chunk a warp */
constexpr int32_t kOneBlockSlots = 8192;        /* at most 32 rounds of 32 slots a warp */
constexpr int32_t kOneBlockExperts = 1024;      /* (2 + 8) x 1024 int32 of shared memory */
constexpr int kChunkWarps = 4;                  /* the multi-launch plan's count and place kernels */
constexpr int64_t kScratchMaxCounters = 1 << 22; /* [chunks, local] int32: at most 16 MiB */

struct routing_args {
  const int32_t *expert_ids;
  int32_t slots, experts, begin, local, block;
  int32_t chunk, chunks; /* slots a chunk (a multiple of 32), and how many */
  int32_t *counts, *offsets, *sorted_slots, *slot_rows, *block_experts;
  int32_t *counters; /* [chunks, local]: the chunk histograms, then their exclusive sums (multi-launch) */
  lk_cuda_error_sink sink;
};

__device__ __forceinline__ int32_t padded(const routing_args &a, int32_t count) {
  return (count + a.block - 1) / a.block * a.block;
}

/* 32 consecutive slots of one chunk, a lane each: the slot's local expert (-1: none, past the
 * chunk, or a bad id, which is reported when `report`), its rank among the lanes before it with the
 * same expert, and how many lanes have that expert. */
struct slot_lane {
  int32_t slot, expert, rank, same;
};

__device__ __forceinline__ slot_lane slot_lane_of(const routing_args &a, int64_t s, int64_t end, bool report) {
  const int lane = (int)threadIdx.x % 32;
  const int32_t slot = s < end ? (int32_t)s : -1;
  int32_t e = -1;
  if (slot >= 0) {
    const int32_t id = a.expert_ids[slot];
    if (id < 0 || id >= a.experts) {
      if (report) lk_report_index(a.sink, LK_CUDA_ENTRY_MOE_ROUTING, LK_CUDA_ARG_EXPERT_IDS, slot, -1, id, a.experts);
    } else if (id >= a.begin && id - a.begin < a.local) {
      e = id - a.begin;
    }
  }
  int rank = 0, same = 0;
  for (int j = 0; j < 32; j++) {
    const int32_t other = __shfl_sync(kFull, e, j);
    rank += other == e && j < lane ? 1 : 0;
    same += other == e ? 1 : 0;
  }
  return slot_lane{slot, e, rank, same};
}

/* A warp: chunk c's histogram of local experts into row[0, local). */
__device__ __forceinline__ void count_chunk(const routing_args &a, int32_t c, int32_t *row) {
  const int lane = (int)threadIdx.x % 32;
  for (int32_t e = lane; e < a.local; e += 32) row[e] = 0;
  __syncwarp();
  const int64_t first = (int64_t)c * a.chunk, end = first + a.chunk < a.slots ? first + a.chunk : a.slots;
  for (int64_t s0 = first; s0 < end; s0 += 32) {
    const slot_lane s = slot_lane_of(a, s0 + lane, end, true);
    if (s.expert >= 0 && s.rank == s.same - 1) row[s.expert] += s.same; /* the last lane of each expert */
    __syncwarp();
  }
}

/* A warp: chunk c's slots to their rows, offsets[e] + row[e] + rank, row[e] holding the slots of
 * expert e in the chunks before (and moved on past this chunk's). */
__device__ __forceinline__ void place_chunk(const routing_args &a, int32_t c, int32_t *row, const int32_t *offsets) {
  const int lane = (int)threadIdx.x % 32;
  const int64_t first = (int64_t)c * a.chunk, end = first + a.chunk < a.slots ? first + a.chunk : a.slots;
  for (int64_t s0 = first; s0 < end; s0 += 32) {
    const slot_lane s = slot_lane_of(a, s0 + lane, end, false);
    const int32_t r = s.expert >= 0 ? offsets[s.expert] + row[s.expert] + s.rank : -1;
    __syncwarp();
    if (s.expert >= 0 && s.rank == s.same - 1) row[s.expert] += s.same;
    __syncwarp();
    if (s.slot >= 0) {
      if (r >= 0) a.sorted_slots[r] = s.slot;
      if (a.slot_rows) a.slot_rows[s.slot] = r;
    }
  }
}

/* The exclusive sum of v over the block (blockDim.x a multiple of 32), and the total. scratch: 32
 * int32 of shared memory. */
__device__ __forceinline__ int32_t block_exclusive_sum(int32_t v, int32_t *scratch, int32_t &total) {
  const int lane = (int)threadIdx.x % 32, warp = (int)threadIdx.x / 32, warps = (int)blockDim.x / 32;
  int32_t x = v;
  for (int o = 1; o < 32; o <<= 1) {
    const int32_t y = __shfl_up_sync(kFull, x, o);
    if (lane >= o) x += y;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = x;
  __syncthreads();
  if (warp == 0) {
    int32_t w = lane < warps ? scratch[lane] : 0;
    for (int o = 1; o < 32; o <<= 1) {
      const int32_t y = __shfl_up_sync(kFull, w, o);
      if (lane >= o) w += y;
    }
    scratch[lane] = w;
  }
  __syncthreads();
  total = scratch[warps - 1];
  return (warp > 0 ? scratch[warp - 1] : 0) + x - v;
}

/* The whole block: offsets of the padded counts (a contiguous range of experts a thread), to the
 * output and, when given, to a copy in shared memory. */
__device__ __forceinline__ void padded_offsets(const routing_args &a, const int32_t *counts, int32_t *offsets_copy, int32_t *scratch) {
  const int32_t threads = (int32_t)blockDim.x, t = (int32_t)threadIdx.x;
  const int32_t per = (a.local + threads - 1) / threads, first = min(t * per, a.local), end = min(first + per, a.local);
  int32_t sum = 0;
  for (int32_t e = first; e < end; e++) sum += padded(a, counts[e]);
  int32_t total;
  int32_t row = block_exclusive_sum(sum, scratch, total);
  for (int32_t e = first; e < end; e++) {
    a.offsets[e] = row;
    if (offsets_copy) offsets_copy[e] = row;
    row += padded(a, counts[e]);
  }
  if (t == 0) {
    a.offsets[a.local] = total;
    if (offsets_copy) offsets_copy[a.local] = total;
  }
}

/* The whole block, a warp an expert: the padding rows (-1) and the experts of the blocks. */
__device__ __forceinline__ void padding_and_blocks(const routing_args &a, const int32_t *offsets, const int32_t *counts) {
  const int lane = (int)threadIdx.x % 32, warp = (int)threadIdx.x / 32, warps = (int)blockDim.x / 32;
  for (int32_t e = warp; e < a.local; e += warps) {
    const int32_t first = offsets[e], end = offsets[e + 1];
    for (int32_t r = first + counts[e] + lane; r < end; r += 32) a.sorted_slots[r] = -1;
    if (a.block_experts && a.block > 1)
      for (int32_t b = first / a.block + lane; b < end / a.block; b += 32) a.block_experts[b] = a.begin + e;
  }
}

/* Decode batches: everything in one block of kPlanWarps warps, chunk w for warp w. Dynamic shared
 * memory: [kPlanWarps, local] counters, [local] counts, [local + 1] offsets. */
__global__ void __launch_bounds__(kPlanWarps * 32) moe_routing_one_block(routing_args a) {
  __shared__ int32_t scratch[32];
  int32_t *counters = reinterpret_cast<int32_t *>(lk_dynamic_shared());
  int32_t *counts = counters + kPlanWarps * a.local, *offsets = counts + a.local;
  const int32_t warp = (int32_t)threadIdx.x / 32;
  count_chunk(a, warp, counters + warp * a.local);
  __syncthreads();
  for (int32_t e = (int32_t)threadIdx.x; e < a.local; e += (int32_t)blockDim.x) {
    int32_t running = 0;
    for (int w = 0; w < kPlanWarps; w++) {
      const int32_t h = counters[w * a.local + e];
      counters[w * a.local + e] = running;
      running += h;
    }
    counts[e] = running;
    a.counts[e] = running;
  }
  __syncthreads();
  padded_offsets(a, counts, offsets, scratch);
  __syncthreads();
  padding_and_blocks(a, offsets, counts);
  place_chunk(a, warp, counters + warp * a.local, offsets);
}

/* Larger plans, in four launches: count, the sums over chunks, the offsets (one block), place. */
__global__ void __launch_bounds__(kChunkWarps * 32) moe_routing_count(routing_args a) {
  const int32_t c = (int32_t)blockIdx.x * kChunkWarps + (int32_t)threadIdx.x / 32;
  if (c < a.chunks) count_chunk(a, c, a.counters + (int64_t)c * a.local);
}

__global__ void __launch_bounds__(128) moe_routing_chunk_sums(routing_args a) {
  const int32_t e = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x);
  if (e >= a.local) return;
  int32_t running = 0;
  for (int32_t c = 0; c < a.chunks; c++) {
    int32_t *counter = a.counters + (int64_t)c * a.local + e;
    const int32_t h = *counter;
    *counter = running;
    running += h;
  }
  a.counts[e] = running;
}

__global__ void __launch_bounds__(1024) moe_routing_offsets(routing_args a) {
  __shared__ int32_t scratch[32];
  padded_offsets(a, a.counts, nullptr, scratch);
  __syncthreads(); /* the block's writes to offsets, visible to all of it */
  padding_and_blocks(a, a.offsets, a.counts);
}

__global__ void __launch_bounds__(kChunkWarps * 32) moe_routing_place(routing_args a) {
  const int32_t c = (int32_t)blockIdx.x * kChunkWarps + (int32_t)threadIdx.x / 32;
  if (c < a.chunks) place_chunk(a, c, a.counters + (int64_t)c * a.local, a.offsets);
}

lk_status routing(lk_cuda_stream stream, const lk_moe_routing_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_moe_routing_params p = *params;
  lk_status status = lk_moe_routing_check(&p, 0);
  if (status != LK_OK) return status;
  const cudaStream_t s = lk_cuda_as_stream(stream);
  routing_args a;
  a.expert_ids = p.expert_ids;
  a.slots = (int32_t)(p.num_tokens * p.top_k);
  a.experts = (int32_t)p.num_experts;
  a.begin = (int32_t)p.expert_begin;
  a.local = (int32_t)(p.expert_end - p.expert_begin);
  a.block = (int32_t)p.block_size;
  a.counts = p.expert_counts;
  a.offsets = p.expert_offsets;
  a.sorted_slots = p.sorted_slots;
  a.slot_rows = p.slot_rows;
  a.block_experts = p.block_experts;
  a.counters = nullptr;
  if ((status = lk_cuda_error_sink_get(&a.sink)) != LK_OK) return status;

  if (a.slots <= kOneBlockSlots && a.local <= kOneBlockExperts) {
    a.chunk = ((a.slots + kPlanWarps - 1) / kPlanWarps + 31) / 32 * 32;
    if (a.chunk == 0) a.chunk = 32;
    a.chunks = kPlanWarps;
    const size_t shared = ((size_t)kPlanWarps * a.local + a.local + a.local + 1) * sizeof(int32_t);
    LK_LAUNCH(dim3(1), dim3(kPlanWarps * 32), shared, s, moe_routing_one_block)(a);
    return lk_cuda_launched("moe_routing_one_block");
  }

  /* chunks of at least 256 slots, and few enough that [chunks, local] stays within the scratch cap */
  int64_t chunks = ((int64_t)a.slots + 255) / 256;
  const int64_t max_chunks = kScratchMaxCounters / a.local > 0 ? kScratchMaxCounters / a.local : 1;
  if (chunks > max_chunks) chunks = max_chunks;
  if (chunks < 1) chunks = 1;
  int64_t chunk = ((a.slots + chunks - 1) / chunks + 31) / 32 * 32;
  if (chunk < 32) chunk = 32;
  a.chunk = (int32_t)chunk;
  a.chunks = (int32_t)((a.slots + chunk - 1) / chunk);
  if (a.chunks < 1) a.chunks = 1;
  void *scratch = nullptr;
  LK_CUDA_TRY(cudaMallocAsync(&scratch, (size_t)a.chunks * (size_t)a.local * sizeof(int32_t), s), "cudaMallocAsync");
  a.counters = static_cast<int32_t *>(scratch);
  const dim3 chunk_grid((unsigned)((a.chunks + kChunkWarps - 1) / kChunkWarps));
  LK_LAUNCH(chunk_grid, dim3(kChunkWarps * 32), 0, s, moe_routing_count)(a);
  status = lk_cuda_launched("moe_routing_count");
  if (status == LK_OK) {
    LK_LAUNCH(dim3((unsigned)((a.local + 127) / 128)), dim3(128), 0, s, moe_routing_chunk_sums)(a);
    status = lk_cuda_launched("moe_routing_chunk_sums");
  }
  if (status == LK_OK) {
    LK_LAUNCH(dim3(1), dim3(1024), 0, s, moe_routing_offsets)(a);
    status = lk_cuda_launched("moe_routing_offsets");
  }
  if (status == LK_OK) {
    LK_LAUNCH(chunk_grid, dim3(kChunkWarps * 32), 0, s, moe_routing_place)(a);
    status = lk_cuda_launched("moe_routing_place");
  }
  const lk_status freed = lk_cuda_check(cudaFreeAsync(scratch, s), "cudaFreeAsync");
  return status != LK_OK ? status : freed;
}

/* ---- row moves ---------------------------------------------------------------------------------------- */

constexpr int kMoveThreads = 256;
constexpr int kMoveUnroll = 4;   /* accesses in flight a thread */
constexpr int kMoveBlocksPerSm = 8;

int multiprocessor_count() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 1;
  }
  return count > 0 ? count : 1;
}

/* Threads a row: a power of two, about `work` / kMoveUnroll units each, at most a block. */
int threads_per_row(int64_t units) {
  int t = 1;
  while (t < kMoveThreads && (int64_t)t * kMoveUnroll < units) t <<= 1;
  return t;
}

dim3 move_grid(int64_t rows, int rows_per_block) {
  const int64_t needed = (rows + rows_per_block - 1) / rows_per_block;
  const int64_t cap = (int64_t)multiprocessor_count() * kMoveBlocksPerSm;
  return dim3((unsigned)(needed < cap ? needed : cap));
}

/* Bytes moved as one access: U = 16, 8, 4 or 2. */
template <int U>
struct unit_of {
  using type = lk_vec<uint32_t, U / 4>;
};
template <>
struct unit_of<2> {
  using type = uint16_t;
};

/* ---- permute ------------------------------------------------------------------------------------------ */

struct permute_args {
  const unsigned char *input;
  unsigned char *output;
  const int32_t *sorted_slots;
  int64_t rows, input_stride_bytes, output_stride_bytes;
  int32_t slots, top_k;
  int64_t units; /* of U bytes a row */
  int threads_per_row;
  lk_cuda_error_sink sink;
};

template <int U>
__global__ void __launch_bounds__(kMoveThreads) moe_permute_rows(permute_args a) {
  using unit = typename unit_of<U>::type;
  const int tpr = a.threads_per_row, rows_per_block = kMoveThreads / tpr;
  const int sub = (int)threadIdx.x % tpr;
  const int64_t step = (int64_t)gridDim.x * rows_per_block;
  for (int64_t r = (int64_t)blockIdx.x * rows_per_block + (int)threadIdx.x / tpr; r < a.rows; r += step) {
    const int32_t slot = a.sorted_slots[r];
    unit *out = reinterpret_cast<unit *>(a.output + r * a.output_stride_bytes);
    if (slot < -1 || slot >= a.slots) {
      if (sub == 0) lk_report_index(a.sink, LK_CUDA_ENTRY_MOE_PERMUTE, LK_CUDA_ARG_SORTED_SLOTS, r, -1, slot, a.slots);
      continue;
    }
    if (slot < 0) {
      const unit zero{};
      for (int64_t u = sub; u < a.units; u += tpr) out[u] = zero;
      continue;
    }
    const unit *in = reinterpret_cast<const unit *>(a.input + (int64_t)(slot / a.top_k) * a.input_stride_bytes);
    int64_t u = sub;
    for (; u + (kMoveUnroll - 1) * (int64_t)tpr < a.units; u += kMoveUnroll * (int64_t)tpr) {
      unit v[kMoveUnroll];
#pragma unroll
      for (int i = 0; i < kMoveUnroll; i++) v[i] = in[u + i * tpr];
#pragma unroll
      for (int i = 0; i < kMoveUnroll; i++) out[u + i * tpr] = v[i];
    }
    for (; u < a.units; u += tpr) out[u] = in[u];
  }
}

/* The widest access every row of both tensors allows: base, stride and row bytes its multiples. */
int access_bytes(const void *a, int64_t a_stride_bytes, const void *b, int64_t b_stride_bytes, int64_t row_bytes, int element) {
  for (int u = 16; u > element; u >>= 1)
    if ((uintptr_t)a % u == 0 && (uintptr_t)b % u == 0 && a_stride_bytes % u == 0 && b_stride_bytes % u == 0 && row_bytes % u == 0)
      return u;
  return element;
}

template <int U>
lk_status launch_permute(const permute_args &a, cudaStream_t stream) {
  LK_LAUNCH(move_grid(a.rows, kMoveThreads / a.threads_per_row), dim3(kMoveThreads), 0, stream, moe_permute_rows<U>)(a);
  return lk_cuda_launched("moe_permute_rows");
}

lk_status permute(lk_cuda_stream stream, const lk_moe_permute_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_moe_permute_params p = *params;
  lk_status status = lk_moe_permute_check(&p, 0);
  if (status != LK_OK || p.num_rows == 0) return status;
  const int size = p.dtype == LK_DTYPE_F32 ? 4 : 2;
  permute_args a;
  a.input = static_cast<const unsigned char *>(p.input);
  a.output = static_cast<unsigned char *>(p.output);
  a.sorted_slots = p.sorted_slots;
  a.rows = p.num_rows;
  a.input_stride_bytes = p.input_stride * size;
  a.output_stride_bytes = p.output_stride * size;
  a.slots = (int32_t)(p.num_tokens * p.top_k);
  a.top_k = (int32_t)p.top_k;
  if ((status = lk_cuda_error_sink_get(&a.sink)) != LK_OK) return status;
  const int64_t row_bytes = p.hidden * size;
  const int u = access_bytes(p.input, a.input_stride_bytes, p.output, a.output_stride_bytes, row_bytes, size);
  a.units = row_bytes / u;
  a.threads_per_row = threads_per_row(a.units);
  const cudaStream_t s = lk_cuda_as_stream(stream);
  switch (u) {
  case 16: return launch_permute<16>(a, s);
  case 8: return launch_permute<8>(a, s);
  case 4: return launch_permute<4>(a, s);
  default: return launch_permute<2>(a, s);
  }
}

/* ---- combine ------------------------------------------------------------------------------------------ */

struct combine_args {
  const void *expert_output;
  const float *weights;
  const int32_t *slot_rows;
  void *output;
  int64_t tokens, expert_stride, output_stride, hidden; /* strides in elements */
  int32_t top_k, rows;
  int threads_per_row;
  lk_cuda_error_sink sink;
};

/* Per token: every slot's row in slot order, a = fmaf(w, x, a) from 0 (moe_permute.c's scalar
 * kernel), then one rounding to T. A thread holds kMoveUnroll vectors of V elements of the row,
 * tpr V apart, so each slot's row is read with kMoveUnroll independent loads. */
template <typename T, int V>
__global__ void __launch_bounds__(kMoveThreads) moe_combine_rows(combine_args a) {
  using vec = lk_vec<T, V>;
  const int tpr = a.threads_per_row, rows_per_block = kMoveThreads / tpr;
  const int sub = (int)threadIdx.x % tpr;
  const int64_t step = (int64_t)gridDim.x * rows_per_block, span = (int64_t)tpr * V;
  for (int64_t t = (int64_t)blockIdx.x * rows_per_block + (int)threadIdx.x / tpr; t < a.tokens; t += step) {
    T *out = static_cast<T *>(a.output) + t * a.output_stride;
    const int32_t *slots = a.slot_rows + t * a.top_k;
    const float *weights = a.weights + t * a.top_k;
    for (int64_t base = (int64_t)sub * V; base < a.hidden; base += span * kMoveUnroll) {
      float acc[kMoveUnroll][V];
#pragma unroll
      for (int i = 0; i < kMoveUnroll; i++)
#pragma unroll
        for (int v = 0; v < V; v++) acc[i][v] = 0.0f;
#pragma unroll 2
      for (int j = 0; j < a.top_k; j++) {
        const int32_t r = slots[j];
        if (r < -1 || r >= a.rows) {
          if (sub == 0 && base == 0)
            lk_report_index(a.sink, LK_CUDA_ENTRY_MOE_COMBINE, LK_CUDA_ARG_SLOT_ROWS, t * a.top_k + j, -1, r, a.rows);
          continue;
        }
        if (r < 0) continue; /* routed to another process */
        const float w = weights[j];
        const T *row = static_cast<const T *>(a.expert_output) + (int64_t)r * a.expert_stride;
#pragma unroll
        for (int i = 0; i < kMoveUnroll; i++) {
          const int64_t at = base + i * span;
          if (at < a.hidden) {
            const vec x = *reinterpret_cast<const vec *>(row + at);
#pragma unroll
            for (int v = 0; v < V; v++) acc[i][v] = fmaf(w, lk_to_float(x.v[v]), acc[i][v]);
          }
        }
      }
#pragma unroll
      for (int i = 0; i < kMoveUnroll; i++) {
        const int64_t at = base + i * span;
        if (at < a.hidden) {
          vec y;
#pragma unroll
          for (int v = 0; v < V; v++) y.v[v] = lk_from_float<T>(acc[i][v]);
          *reinterpret_cast<vec *>(out + at) = y;
        }
      }
    }
  }
}

template <typename T, int V>
lk_status launch_combine(combine_args a, cudaStream_t stream) {
  a.threads_per_row = threads_per_row((a.hidden + V - 1) / V);
  LK_LAUNCH(move_grid(a.tokens, kMoveThreads / a.threads_per_row), dim3(kMoveThreads), 0, stream, moe_combine_rows<T, V>)(a);
  return lk_cuda_launched("moe_combine_rows");
}

lk_status combine(lk_cuda_stream stream, const lk_moe_combine_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_moe_combine_params p = *params;
  lk_status status = lk_moe_combine_check(&p, 0);
  if (status != LK_OK || p.num_tokens == 0) return status;
  combine_args a;
  a.expert_output = p.expert_output;
  a.weights = p.weights;
  a.slot_rows = p.slot_rows;
  a.output = p.output;
  a.tokens = p.num_tokens;
  a.expert_stride = p.expert_stride;
  a.output_stride = p.output_stride;
  a.hidden = p.hidden;
  a.top_k = (int32_t)p.top_k;
  a.rows = (int32_t)p.num_rows;
  a.threads_per_row = 1;
  if ((status = lk_cuda_error_sink_get(&a.sink)) != LK_OK) return status;
  const cudaStream_t s = lk_cuda_as_stream(stream);
  return lk_cuda_dispatch_dtype(p.dtype, [&](auto element) {
    using T = decltype(element);
    constexpr int kVec = 16 / (int)sizeof(T);
    const bool vector = p.hidden % kVec == 0 && lk_aligned(p.expert_output, p.expert_stride, sizeof(T), 16) &&
                        lk_aligned(p.output, p.output_stride, sizeof(T), 16);
    return vector ? launch_combine<T, kVec>(a, s) : launch_combine<T, 1>(a, s);
  });
}

} // namespace

extern "C" {

LK_CUDA_API lk_status lk_cuda_moe_routing(lk_cuda_stream stream, const lk_moe_routing_params *params) { return routing(stream, params); }

LK_CUDA_API lk_status lk_cuda_moe_permute(lk_cuda_stream stream, const lk_moe_permute_params *params) { return permute(stream, params); }

LK_CUDA_API lk_status lk_cuda_moe_combine(lk_cuda_stream stream, const lk_moe_combine_params *params) { return combine(stream, params); }

} // extern "C"
