/* lk_cuda_attention's decode kernel (attention.cu sends it every call whose sequences have at most 8
 * queries): flash-decoding over contiguous or paged K/V, in f32 on the CUDA cores, then a combine
 * kernel when the keys were split. docs/cuda/attention-decode.md has the reasoning and the numbers.
 *
 * Geometry. A thread block (128 threads, 256 for many rows) serves one (sequence, kv head, split):
 * every query row that reads the kv head -- its whole GQA group for each of the sequence's (<= 8)
 * queries, R = Sq x group rows -- so each K and V row of the split is read from global memory once.
 * A block holds 16 x threads / D rows (D: head_dim's class, 64, 128 or 256; at most 64 rows); more go
 * to further blocks of the same kv head ("row chunks"), the only case where a row is read twice. The
 * keys are walked in tiles of TK (TK x D x element = 8 KB: 32 keys of bf16 at head_dim 128):
 *   - staging: K and V tiles go global -> shared with cp.async.cg, 16 bytes a thread and instruction;
 *     threads / TK consecutive threads share a row (one lk_attention_kv_row lookup a thread and tile),
 *     so a warp instruction reads whole 32-byte sectors of 32 / lanes rows. Three K buffers and two V
 *     buffers: while tile t is computed, K(t+1), K(t+2) and V(t+1) are in flight, 24 KB a block
 *     (96 KB an SM at 4 blocks). Rows are padded to an odd number of 16-byte units, so the reads
 *     below are free of bank conflicts. Rows whose head_dim x element is not a multiple of 16 bytes,
 *     or misaligned bases or strides, are staged element by element (same buffers, plain loads).
 *   - scores: thread (key, head_dim slice, row set) forms partial dot products for 4 rows at a time
 *     from its K row in shared memory and the f32 queries (the same row across a warp: broadcast),
 *     and leaves them in shared memory; slices are chosen so that few rows still use every thread.
 *   - softmax: a segment of min(TK, 32) lanes per row sums the partials, applies the contract's score
 *     (lk_attention_score), the mask and the NaN rule, reduces the tile's max with shuffles, and
 *     writes p = exp(s - m_new), the rescale factor and the new running max to shared memory. Each
 *     lane keeps its own part of the running sum l (summed once at the end). A row's position,
 *     visible keys, head and slope are computed once, in a table in shared memory.
 *   - P.V: thread (4-element slice of head_dim, 4 rows, key slice) keeps 4 x 4 f32 accumulators in
 *     registers for the whole split, so each V element read from shared memory feeds 4 rows; the key
 *     slices are summed once at the end.
 * Three barriers a tile. No local memory: the key and chunk loops stay rolled (unrolled, their loads
 * outgrow the 128 registers that 4 blocks of 128 threads an SM allow, and ptxas spills). A key
 * hidden from some row of the tile (causal edge, window, -inf bias) switches P.V to a path that
 * skips it for that row instead of adding 0 x v, so a NaN or infinity in a value the row does not
 * see never reaches it (the CPU's rule).
 *
 * Flash-decoding. When num_seqs x num_kv_heads x row chunks blocks would not fill the GPU (fewer
 * than 2 per multiprocessor), each sequence's visible keys are cut into splits of split_keys (a
 * multiple of TK, at least kMinSplitKeys) and grid.z = splits. Each split block writes an f32
 * partial per row (m, l, unnormalised accumulator) to stream-ordered scratch (cudaMallocAsync);
 * the combine kernel rescales them to the common max (out = sum w_s acc_s / sum w_s l_s,
 * w_s = exp(m_s - max m), lse = max m + log l) and rounds once. Splits past a sequence's own keys
 * exit at once and are not combined. With one split the block writes the output itself.
 *
 * Bad device data (lk_attention_sequence, lk_attention_kv_row): a bad sequence writes nothing; a
 * block-table entry outside the cache masks its keys (zeros are staged, nothing is read). */
#include "attention_common.cuh"
#include "lk_cuda_ptx.cuh"

namespace {

constexpr int kKStages = 3;
constexpr int kVStages = 2;
constexpr int kRowsPerThread = 4;   /* P.V accumulators (4 rows x 4 elements) and the scores' register block */
constexpr int kPvElements = 4;
constexpr int kMaxRowsPerBlock = 64; /* 8 queries x a group of 8 */
constexpr int64_t kMinSplitKeys = 256;
constexpr int kMaxSplits = 1024;
constexpr int kCombineThreads = 128;
constexpr size_t kDefaultSharedBytes = 48 << 10; /* what a block gets without opting in */

/* The tile for head dims up to D (64, 128 or 256): about 8 KB of K, 8 to 64 keys. */
template <typename T, int D>
struct decode_traits {
  static constexpr int kRawKeys = 8192 / (D * (int)sizeof(T));
  static constexpr int kTileKeys = kRawKeys < 8 ? 8 : kRawKeys > 64 ? 64 : kRawKeys;
  static constexpr int kLanesPerRow = kTileKeys < 32 ? kTileKeys : 32; /* softmax segment */
  static constexpr int kKeysPerLane = kTileKeys / kLanesPerRow;
  static_assert(kTileKeys % kLanesPerRow == 0 && (kLanesPerRow & (kLanesPerRow - 1)) == 0, "softmax segments");
};

struct decode_args {
  lk_cuda_attention_job job;
  float *partials;        /* splits > 1: [num_seqs, max_seqlen_q, num_heads, splits] records */
  int64_t split_keys;     /* keys per split, a multiple of the tile */
  int32_t splits;
  int32_t rows_per_block; /* rows of a row chunk (a multiple of 4) */
  int32_t row_capacity;   /* rows the shared layout holds: min(R, rows_per_block) rounded up to 4 */
  int32_t qk_slices;      /* head_dim slices of the scores (a power of 2) */
  int32_t record;         /* floats per partial: m, l, 2 spare, then head_dim rounded up to 4 */
  bool vec;               /* rows staged with 16-byte cp.async */
};

/* ---- shared memory, the same arithmetic on the host and the device --------------------------------- */

__host__ __device__ __forceinline__ uint32_t round16(uint32_t x) { return (x + 15u) & ~15u; }

/* A staged K or V row: head_dim rounded up to 8 elements, padded to an odd number of 16-byte units
 * (rows read by consecutive lanes then fall on distinct banks). */
__host__ __device__ __forceinline__ uint32_t row_pitch(int element, int d8) {
  return (((uint32_t)(d8 * element) / 16u) | 1u) * 16u;
}

struct decode_layout {
  uint32_t k, v, key_ok, q, scores, m, alpha, l_row, nan, l_lanes, row_table, flag, bytes;
};

/* What the softmax and the output need of a row, fixed for the block: computed once, read as a
 * broadcast, instead of a division by the group and the window arithmetic in every tile. */
struct decode_row {
  int token, head, pos, lo, hi; /* visible keys [lo, hi] */
  float slope;
};

/* kv: K and V tiles, reused at the end for the key slices' accumulators (16 floats a thread);
 * key_ok: per K buffer and key, whether its rows were staged; q: [rows][d8] f32; scores: [slices][rows]
 * [TK] partial dots, slice 0 then the probabilities; m: running max, two generations; l_lanes: the
 * softmax lanes' parts of the running sum; row_table: decode_row per row. */
__host__ __device__ __forceinline__ decode_layout decode_layout_of(int element, int tile, int lanes, int d8, int rows,
                                                                   int slices, int threads) {
  decode_layout L;
  const uint32_t kv = (uint32_t)((kKStages + kVStages) * tile) * row_pitch(element, d8);
  const uint32_t reduce = (uint32_t)(kRowsPerThread * kPvElements * threads) * 4u;
  uint32_t at = 0;
  L.k = at;
  L.v = at + (uint32_t)(kKStages * tile) * row_pitch(element, d8);
  at = round16(kv > reduce ? kv : reduce);
  L.key_ok = at;
  at += round16((uint32_t)(kKStages * tile) * 4u);
  L.q = at;
  at += (uint32_t)(rows * d8) * 4u;
  L.scores = at;
  at += (uint32_t)(slices * rows * tile) * 4u;
  L.m = at;
  at += (uint32_t)(2 * rows) * 4u;
  L.alpha = at;
  at += (uint32_t)rows * 4u;
  L.l_row = at;
  at += (uint32_t)rows * 4u;
  L.nan = at;
  at += (uint32_t)rows * 4u;
  L.l_lanes = at;
  at += (uint32_t)(rows * lanes) * 4u;
  L.row_table = at;
  at += round16((uint32_t)(rows * sizeof(decode_row)));
  L.flag = at;
  at += 16u;
  L.bytes = at;
  return L;
}

/* ---- device helpers ------------------------------------------------------------------------------ */

/* 4 elements of a staged row as f32 (8 or 16 bytes, aligned to their size). */
template <typename T>
__device__ __forceinline__ void load4(const unsigned char *p, float out[4]) {
  const lk_vec<T, 4> v = *reinterpret_cast<const lk_vec<T, 4> *>(p);
#pragma unroll
  for (int e = 0; e < 4; e++) out[e] = lk_to_float(v.v[e]);
}

/* 8 elements of a staged row as f32 (16 or 32 bytes, 16-byte aligned). */
template <typename T>
__device__ __forceinline__ void load8(const unsigned char *p, float out[8]) {
  if constexpr (sizeof(T) == 2) {
    const lk_vec<T, 8> v = *reinterpret_cast<const lk_vec<T, 8> *>(p);
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = lk_to_float(v.v[e]);
  } else {
    const lk_vec<float, 4> lo = *reinterpret_cast<const lk_vec<float, 4> *>(p);
    const lk_vec<float, 4> hi = *reinterpret_cast<const lk_vec<float, 4> *>(p + 16);
#pragma unroll
    for (int e = 0; e < 4; e++) {
      out[e] = lo.v[e];
      out[e + 4] = hi.v[e];
    }
  }
}

/* The keys a sequence's rows may see, [*begin, *begin + *count): from the first query's lowest
 * visible key to the last query's highest (both bounds grow with the query position, so every
 * row's range lies inside). */
__device__ __forceinline__ void sequence_keys(const lk_cuda_attention_job &job, int64_t sq, int64_t sk, int64_t *begin,
                                              int64_t *count) {
  int64_t lo_first, hi_first, lo_last, hi_last;
  lk_attention_visible(job, sk - sq, sk, &lo_first, &hi_first);
  lk_attention_visible(job, sk - 1, sk, &lo_last, &hi_last);
  *begin = lo_first;
  *count = hi_last >= lo_first ? hi_last - lo_first + 1 : 0;
}

/* How many splits hold keys of a sequence with `count` visible keys (at least 1: split 0 answers for
 * rows that see nothing). */
__device__ __forceinline__ int64_t splits_used(const decode_args &a, int64_t count) {
  const int64_t used = count > 0 ? (count + a.split_keys - 1) / a.split_keys : 1;
  return used < a.splits ? used : a.splits;
}

__device__ __forceinline__ float *partial_record(const decode_args &a, int s, int64_t i, int h, int split) {
  const lk_cuda_attention_job &job = a.job;
  return a.partials + ((((int64_t)s * job.max_seqlen_q + i) * job.num_heads + h) * a.splits + split) * a.record;
}

/* Stages keys [first, first + TK) (those before `end`; zeros for the rest and for keys whose block
 * table entry is bad) of K or V into `tile`; key_ok (K only) says which were staged. */
template <typename T, int TK, int NT>
__device__ __forceinline__ void stage_tile(const decode_args &a, bool values, int s, int k0, int kvh, int first, int end,
                                           unsigned char *tile, uint32_t pitch, int d8, int *key_ok) {
  const lk_cuda_attention_job &job = a.job;
  const int d = job.head_dim;
  if (a.vec) {
    /* `lanes` threads a row (NT / TK, so that a tile is one row a thread; fewer for short rows): one
     * row lookup a thread and tile, each warp instruction whole 32-byte sectors of 32 / lanes rows */
    const int per_row = d8 * (int)sizeof(T) / 16, valid_chunks = d * (int)sizeof(T) / 16;
    int lanes = NT / TK;
    while (lanes > per_row) lanes /= 2;
    const int lane = (int)threadIdx.x % lanes;
    for (int kk = (int)threadIdx.x / lanes; kk < TK; kk += NT / lanes) {
      const int j = first + kk;
      const T *row = j < end ? lk_attention_kv_row<T>(job, values, s, k0, j, kvh) : nullptr;
      if (key_ok && lane == 0) key_ok[kk] = row != nullptr;
      for (int chunk = lane; chunk < per_row; chunk += lanes) {
        const bool valid = row != nullptr && chunk < valid_chunks;
        lk_cp_async_16(tile + (uint32_t)kk * pitch + (uint32_t)chunk * 16u,
                       valid ? static_cast<const void *>(row + chunk * (16 / (int)sizeof(T))) : job.q, valid);
      }
    }
  } else {
    for (int c = (int)threadIdx.x; c < TK * d8; c += NT) {
      const int kk = c / d8, e = c % d8;
      const int j = first + kk;
      const T *row = j < end ? lk_attention_kv_row<T>(job, values, s, k0, j, kvh) : nullptr;
      if (key_ok && e == 0) key_ok[kk] = row != nullptr;
      T value{};
      if (row && e < d) value = row[e];
      *reinterpret_cast<T *>(tile + (uint32_t)kk * pitch + (uint32_t)e * sizeof(T)) = value;
    }
  }
}

/* 4 blocks of 128 threads an SM (2 of 256): at most 128 registers a thread */
template <typename T, int D, int NT>
__global__ void __launch_bounds__(NT, 512 / NT) attention_decode_kernel(const decode_args a) {
  using traits = decode_traits<T, D>;
  constexpr int TK = traits::kTileKeys, LPR = traits::kLanesPerRow, KPL = traits::kKeysPerLane;
  constexpr int NSEG = NT / LPR;
  const float kMinusInf = -__int_as_float(0x7f800000);
  const lk_cuda_attention_job &job = a.job;
  const int s = (int)blockIdx.x, kvh = (int)blockIdx.y % job.num_kv_heads, row_chunk = (int)blockIdx.y / job.num_kv_heads;
  const int split = (int)blockIdx.z, tid = (int)threadIdx.x;

  /* tokens, keys and positions fit 32 bits (the offsets and lengths are int32) */
  int q0, sq, sk;
  {
    int64_t q0_, sq_, sk_;
    if (!lk_attention_sequence(job, s, &q0_, &sq_, &sk_)) return;
    q0 = (int)q0_, sq = (int)sq_, sk = (int)sk_;
  }
  const int group = job.group, row_begin = row_chunk * a.rows_per_block;
  const int rows_left = sq * group - row_begin;
  if (rows_left <= 0) return;
  const int rows = rows_left < a.rows_per_block ? rows_left : a.rows_per_block;
  int split_begin, split_end;
  {
    int64_t key_begin, key_count;
    sequence_keys(job, sq, sk, &key_begin, &key_count);
    if (split >= splits_used(a, key_count)) return;
    const int64_t first = key_begin + split * a.split_keys, end = key_begin + key_count;
    split_begin = (int)first;
    split_end = (int)(split == a.splits - 1 || first + a.split_keys > end ? end : first + a.split_keys);
  }
  const int tiles = split_end > split_begin ? (split_end - split_begin + TK - 1) / TK : 0;
  const int k0 = job.paged ? 0 : job.cu_seqlens_k[s];

  const int d = job.head_dim, d8 = (d + 7) & ~7, chunks = d8 / 8, cap = a.row_capacity;
  const decode_layout L = decode_layout_of((int)sizeof(T), TK, LPR, d8, cap, a.qk_slices, NT);
  const uint32_t pitch = row_pitch((int)sizeof(T), d8);
  unsigned char *smem = lk_dynamic_shared();
  unsigned char *k_tiles = smem + L.k, *v_tiles = smem + L.v;
  int *key_ok = reinterpret_cast<int *>(smem + L.key_ok);
  float *q_s = reinterpret_cast<float *>(smem + L.q);
  float *scores = reinterpret_cast<float *>(smem + L.scores);
  float *m_s = reinterpret_cast<float *>(smem + L.m);
  float *alpha_s = reinterpret_cast<float *>(smem + L.alpha);
  int *nan_s = reinterpret_cast<int *>(smem + L.nan);
  float *l_lanes = reinterpret_cast<float *>(smem + L.l_lanes);
  decode_row *row_table = reinterpret_cast<decode_row *>(smem + L.row_table);
  int *careful = reinterpret_cast<int *>(smem + L.flag);

  /* the rows: geometry, f32 queries (zeros past head_dim), softmax state */
  for (int r = tid; r < rows; r += NT) {
    const int row = row_begin + r, i = row / group;
    decode_row info;
    info.token = q0 + i;
    info.head = kvh * group + row % group;
    info.pos = i + sk - sq;
    int64_t lo, hi;
    lk_attention_visible(job, info.pos, sk, &lo, &hi);
    info.lo = (int)lo;
    info.hi = (int)hi;
    info.slope = job.alibi_slopes ? job.alibi_slopes[info.head] : 0.0f;
    row_table[r] = info;
    m_s[r] = kMinusInf;
    nan_s[r] = 0;
  }
  for (int idx = tid; idx < rows * d8; idx += NT) {
    const int r = idx / d8, e = idx % d8, row = row_begin + r;
    const int64_t token = q0 + row / group;
    const int h = kvh * group + row % group;
    q_s[idx] = e < d ? lk_to_float(static_cast<const T *>(job.q)[token * job.q_stride + (int64_t)h * d + e]) : 0.0f;
  }
  for (int idx = tid; idx < rows * LPR; idx += NT) l_lanes[idx] = 0.0f;

  /* the scores' thread roles: key, head_dim slice (chunks [qk_c0, qk_c1)), row set */
  const int qk_slices = a.qk_slices, qk_key = tid % TK, qk_unit = tid / TK;
  const int qk_slice = qk_unit % qk_slices, qk_set = qk_unit / qk_slices, qk_sets = (NT / TK) / qk_slices;
  const int qk_per = (chunks + qk_slices - 1) / qk_slices, qk_c0 = qk_slice * qk_per;
  const int qk_c1 = qk_c0 + qk_per < chunks ? qk_c0 + qk_per : chunks;
  float *qk_out = scores + qk_slice * cap * TK + qk_key;
  /* P.V's: 4-element slice of head_dim, 4 rows, key slice */
  const int pv_slices = d8 / kPvElements, pv_groups = (rows + kRowsPerThread - 1) / kRowsPerThread;
  const int pv_key_slices_raw = (NT / pv_slices) / pv_groups;
  const int pv_key_slices = pv_key_slices_raw < TK ? pv_key_slices_raw : TK;
  const int pv_slice = tid % pv_slices, pv_unit = tid / pv_slices;
  const bool pv_active = pv_unit < pv_groups * pv_key_slices;
  const int pv_r0 = (pv_unit % pv_groups) * kRowsPerThread, pv_key_slice = pv_unit / pv_groups;
  const int pv_per = (TK + pv_key_slices - 1) / pv_key_slices, pv_k0 = pv_key_slice * pv_per;
  const uint32_t pv_v = (uint32_t)(pv_slice * kPvElements * (int)sizeof(T));
  float acc[kRowsPerThread][kPvElements];
#pragma unroll
  for (int r = 0; r < kRowsPerThread; r++)
#pragma unroll
    for (int e = 0; e < kPvElements; e++) acc[r][e] = 0.0f;

  /* pipeline: K(0) V(0) | K(1) before the loop; iteration t queues V(t+1) | K(t+2) */
  if (tiles > 0) {
    stage_tile<T, TK, NT>(a, false, s, k0, kvh, split_begin, split_end, k_tiles, pitch, d8, key_ok);
    stage_tile<T, TK, NT>(a, true, s, k0, kvh, split_begin, split_end, v_tiles, pitch, d8, nullptr);
  }
  lk_cp_async_commit();
  if (tiles > 1)
    stage_tile<T, TK, NT>(a, false, s, k0, kvh, split_begin + TK, split_end, k_tiles + TK * pitch, pitch, d8, key_ok + TK);
  lk_cp_async_commit();

  for (int t = 0; t < tiles; t++) {
    lk_cp_async_wait<1>(); /* K(t), V(t) landed; K(t+1) may still fly */
    __syncthreads();       /* ... for every thread; and tile t-1 is done with its buffers */
    if (t + 1 < tiles)
      stage_tile<T, TK, NT>(a, true, s, k0, kvh, split_begin + (t + 1) * TK, split_end,
                            v_tiles + ((t + 1) % kVStages) * TK * pitch, pitch, d8, nullptr);
    lk_cp_async_commit();
    if (t + 2 < tiles)
      stage_tile<T, TK, NT>(a, false, s, k0, kvh, split_begin + (t + 2) * TK, split_end,
                            k_tiles + ((t + 2) % kKStages) * TK * pitch, pitch, d8, key_ok + ((t + 2) % kKStages) * TK);
    lk_cp_async_commit();

    const int tile_begin = split_begin + t * TK;
    const int tile_len = split_end - tile_begin < TK ? split_end - tile_begin : TK;

    /* scores: partial dots of up to 4 rows a pass over this thread's slice of head_dim */
    if (tid == 0) *careful = 0;
    if (qk_key < tile_len) {
      const unsigned char *k_row = k_tiles + (t % kKStages) * TK * pitch + (uint32_t)qk_key * pitch;
#pragma unroll 1
      for (int r0 = qk_set; r0 < rows; r0 += kRowsPerThread * qk_sets) {
        /* rows past the block's repeat its last one (branch-free; not stored) */
        int q_rows[kRowsPerThread];
#pragma unroll
        for (int jj = 0; jj < kRowsPerThread; jj++) {
          const int r = r0 + jj * qk_sets;
          q_rows[jj] = (r < rows ? r : rows - 1) * d8;
        }
        float dot[kRowsPerThread] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 1 /* an iteration has 4 independent chains; unrolled, its loads outgrow 128 registers */
        for (int c = qk_c0; c < qk_c1; c++) {
          float k8[8];
          load8<T>(k_row + (uint32_t)c * 8u * sizeof(T), k8);
#pragma unroll
          for (int jj = 0; jj < kRowsPerThread; jj++) {
            float q8[8];
            load8<float>(reinterpret_cast<const unsigned char *>(q_s + q_rows[jj] + c * 8), q8);
#pragma unroll
            for (int e = 0; e < 8; e++) dot[jj] = fmaf(q8[e], k8[e], dot[jj]);
          }
        }
#pragma unroll
        for (int jj = 0; jj < kRowsPerThread; jj++) {
          const int r = r0 + jj * qk_sets;
          if (r < rows) qk_out[r * TK] = dot[jj];
        }
      }
    }
    __syncthreads();

    /* softmax: one segment of LPR lanes per row */
    {
      const int seg = tid / LPR, lane = tid % LPR, cur = t & 1;
      const int *ok = key_ok + (t % kKStages) * TK;
      for (int pass = 0; pass * NSEG < rows; pass++) {
        const int r = pass * NSEG + seg;
        const bool row_ok = r < rows;
        const decode_row info = row_table[row_ok ? r : 0];
        const float *bias_row =
            job.bias ? job.bias + (int64_t)info.head * job.bias_head_stride + (int64_t)info.token * job.bias_row_stride : nullptr;
        float sc[KPL];
        float tile_max = kMinusInf;
#pragma unroll
        for (int q = 0; q < KPL; q++) {
          const int kk = lane + LPR * q, j = tile_begin + kk;
          float v = kMinusInf;
          if (row_ok && kk < tile_len && ok[kk]) {
            if (j >= info.lo && j <= info.hi) {
              float dot = 0.0f;
              for (int slice = 0; slice < qk_slices; slice++) dot += scores[(slice * cap + r) * TK + kk];
              v = lk_attention_score(job, dot, info.slope, bias_row, info.pos, j);
              if (v != v) {
                nan_s[r] = 1; /* a NaN score: the row is NaN, and the key adds nothing */
                v = kMinusInf;
              } else if (v == kMinusInf) {
                *careful = 1;
              }
            } else {
              *careful = 1; /* staged but hidden from this row */
            }
          }
          sc[q] = v;
          tile_max = fmaxf(tile_max, v);
        }
#pragma unroll
        for (int offset = LPR / 2; offset > 0; offset >>= 1)
          tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
        if (row_ok) {
          const float m_old = m_s[cur * cap + r], m_new = fmaxf(m_old, tile_max);
          const bool none = m_new == kMinusInf;
          const float alpha = none ? 1.0f : expf(m_old - m_new);
          float sum = 0.0f;
#pragma unroll
          for (int q = 0; q < KPL; q++) {
            const float p = sc[q] == kMinusInf ? 0.0f : expf(sc[q] - m_new);
            scores[r * TK + lane + LPR * q] = p;
            sum += p;
          }
          l_lanes[r * LPR + lane] = l_lanes[r * LPR + lane] * alpha + sum;
          if (lane == 0) {
            alpha_s[r] = alpha;
            m_s[(cur ^ 1) * cap + r] = m_new;
          }
        }
      }
    }
    __syncthreads();

    /* P.V into the registers' accumulators (rows past the block's, up to the capacity's multiple of
     * 4, compute on what their shared memory holds and are never stored: no branches) */
    if (pv_active) {
      const unsigned char *v_slice = v_tiles + (t % kVStages) * TK * pitch + pv_v;
      const float *p_rows = scores + pv_r0 * TK;
      float alpha[kRowsPerThread];
#pragma unroll
      for (int a4 = 0; a4 < kRowsPerThread; a4++) alpha[a4] = alpha_s[pv_r0 + a4];
#pragma unroll
      for (int a4 = 0; a4 < kRowsPerThread; a4++)
#pragma unroll
        for (int e = 0; e < kPvElements; e++) acc[a4][e] *= alpha[a4];
      const int k_end = pv_k0 + pv_per < tile_len ? pv_k0 + pv_per : tile_len;
      if (*careful == 0) {
#pragma unroll 1 /* unrolled, the V rows and probabilities of several keys outgrow 128 registers (spills) */
        for (int kk = pv_k0; kk < k_end; kk++) {
          float v4[kPvElements];
          load4<T>(v_slice + (uint32_t)kk * pitch, v4);
#pragma unroll
          for (int a4 = 0; a4 < kRowsPerThread; a4++) {
            const float p = p_rows[a4 * TK + kk];
#pragma unroll
            for (int e = 0; e < kPvElements; e++) acc[a4][e] = fmaf(p, v4[e], acc[a4][e]);
          }
        }
      } else {
        /* a key hidden from a row (p = 0) adds nothing to it, not even 0 x v */
#pragma unroll 1
        for (int kk = pv_k0; kk < k_end; kk++) {
          float v4[kPvElements];
          load4<T>(v_slice + (uint32_t)kk * pitch, v4);
#pragma unroll
          for (int a4 = 0; a4 < kRowsPerThread; a4++) {
            const float p = p_rows[a4 * TK + kk];
#pragma unroll
            for (int e = 0; e < kPvElements; e++) acc[a4][e] = p > 0.0f ? fmaf(p, v4[e], acc[a4][e]) : acc[a4][e];
          }
        }
      }
    }
  }

  /* the key slices' accumulators summed in shared memory (the tiles' space: [key slice][row][d8], the
   * rows padded to the groups' 4), then the rows out */
  lk_cp_async_wait<0>();
  __syncthreads();
  float *reduce = reinterpret_cast<float *>(smem);
  const int padded_rows = pv_groups * kRowsPerThread;
  if (pv_active) {
#pragma unroll
    for (int a4 = 0; a4 < kRowsPerThread; a4++)
#pragma unroll
      for (int e = 0; e < kPvElements; e++)
        reduce[(pv_key_slice * padded_rows + pv_r0 + a4) * d8 + pv_slice * kPvElements + e] = acc[a4][e];
  }
  float *l_row = reinterpret_cast<float *>(smem + L.l_row);
  for (int r = tid; r < rows; r += NT) {
    float l = 0.0f;
    for (int lane = 0; lane < LPR; lane++) l += l_lanes[r * LPR + lane];
    l_row[r] = l;
  }
  __syncthreads();
  const int m_final = tiles & 1;
  for (int idx = tid; idx < rows * d; idx += NT) {
    const int r = idx / d, e = idx % d;
    float v = 0.0f;
    for (int ks = 0; ks < pv_key_slices; ks++) v += reduce[(ks * padded_rows + r) * d8 + e];
    const decode_row info = row_table[r];
    const float l = l_row[r], m = m_s[m_final * cap + r];
    const bool nan = nan_s[r] != 0;
    if (a.splits == 1) {
      static_cast<T *>(job.out)[(int64_t)info.token * job.out_stride + (int64_t)info.head * d + e] =
          lk_from_float<T>(v * lk_attention_output_scale(l, nan));
      if (e == 0 && job.lse) job.lse[(int64_t)info.token * job.num_heads + info.head] = lk_attention_lse(m, l, nan);
    } else {
      float *record = partial_record(a, s, info.token - q0, info.head, split);
      record[4 + e] = v;
      if (e == 0) {
        record[0] = m;
        record[1] = nan ? __int_as_float(0x7fc00000) : l;
      }
    }
  }
}

/* One block per (sequence, head): the splits' partials of each of its queries rescaled to their
 * common max and summed in split order (as the CPU's lk_attention_combine_row), rounded once. */
template <typename T>
__global__ void __launch_bounds__(kCombineThreads) attention_decode_combine(const decode_args a) {
  const lk_cuda_attention_job &job = a.job;
  const int s = (int)blockIdx.x, h = (int)blockIdx.y, tid = (int)threadIdx.x;
  int64_t q0, sq, sk;
  if (!lk_attention_sequence(job, s, &q0, &sq, &sk) || sq == 0) return;
  int64_t key_begin, key_count;
  sequence_keys(job, sq, sk, &key_begin, &key_count);
  const int used = (int)splits_used(a, key_count);
  const int d = job.head_dim;
  const float minus_inf = -__int_as_float(0x7f800000);
  for (int64_t i = 0; i < sq; i++) {
    const float *record = partial_record(a, s, i, h, 0);
    float m = minus_inf;
    bool nan = false;
    for (int sp = 0; sp < used; sp++) {
      const float ms = record[(int64_t)sp * a.record], ls = record[(int64_t)sp * a.record + 1];
      if (ls != ls) nan = true;
      if (ms > m) m = ms;
    }
    float l = 0.0f;
    if (m > minus_inf)
      for (int sp = 0; sp < used; sp++) {
        const float ms = record[(int64_t)sp * a.record];
        if (ms > minus_inf) l += expf(ms - m) * record[(int64_t)sp * a.record + 1];
      }
    const float inv = lk_attention_output_scale(l, nan);
    const int64_t token = q0 + i;
    for (int e = tid; e < d; e += kCombineThreads) {
      float v = 0.0f;
      if (m > minus_inf)
        for (int sp = 0; sp < used; sp++) {
          const float ms = record[(int64_t)sp * a.record];
          if (ms > minus_inf) v += expf(ms - m) * record[(int64_t)sp * a.record + 4 + e];
        }
      static_cast<T *>(job.out)[token * job.out_stride + (int64_t)h * d + e] = lk_from_float<T>(v * inv);
    }
    if (tid == 0 && job.lse) job.lse[token * job.num_heads + h] = lk_attention_lse(m, l, nan);
  }
}

/* ---- the launch ---------------------------------------------------------------------------------- */

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* An upper bound on the keys any sequence's rows see: max_seqlen_k, or less under a window. */
int64_t key_span(const lk_cuda_attention_job &job) {
  const int64_t max_k = job.max_seqlen_k, wl = job.window_left, wr = job.window_right;
  if (wl < 0 || wl >= max_k || !(job.causal || (wr >= 0 && wr < max_k))) return max_k;
  const int64_t span = job.max_seqlen_q + wl + (job.causal ? 0 : wr);
  return span < max_k ? span : max_k;
}

template <typename T, int D, int NT>
lk_status run_decode(const lk_cuda_attention_job &job, cudaStream_t stream) {
  using traits = decode_traits<T, D>;
  constexpr int TK = traits::kTileKeys;
  const int d8 = (job.head_dim + 7) & ~7;
  const int64_t rows_total = job.max_seqlen_q * job.group;

  int device = 0, opt_in = 0;
  LK_CUDA_TRY(cudaGetDevice(&device), "cudaGetDevice");
  LK_CUDA_TRY(cudaDeviceGetAttribute(&opt_in, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "cudaDeviceGetAttribute");

  /* rows a block: what 4 x 4 accumulators a thread cover, fewer if shared memory says so */
  int rows_per_block = 16 * NT / D < kMaxRowsPerBlock ? 16 * NT / D : kMaxRowsPerBlock;
  int capacity = 0, slices = 0;
  uint32_t bytes = 0;
  for (;;) {
    const int64_t rows = rows_total < rows_per_block ? rows_total : rows_per_block;
    capacity = (int)round_up(rows, kRowsPerThread);
    /* the scores' row sets: enough for 4 rows a thread, the rest of the threads on head_dim slices */
    int sets = 1;
    while (sets < NT / TK && sets * kRowsPerThread < rows) sets *= 2;
    slices = (NT / TK) / sets;
    bytes = decode_layout_of((int)sizeof(T), TK, traits::kLanesPerRow, d8, capacity, slices, NT).bytes;
    if (bytes <= (uint32_t)opt_in || rows_per_block <= kRowsPerThread) break;
    rows_per_block /= 2;
  }
  if (bytes > (uint32_t)opt_in)
    return lk_fail(LK_ERR_UNSUPPORTED, "head_dim: %d needs %u bytes of shared memory a block, the device allows %d",
                   (int)job.head_dim, bytes, opt_in);
  const int64_t row_chunks = (rows_total + rows_per_block - 1) / rows_per_block;
  if ((int64_t)job.num_kv_heads * row_chunks > 65535)
    return lk_fail(LK_ERR_UNSUPPORTED, "num_kv_heads: %d kv heads of %lld row chunks exceed the CUDA grid", (int)job.num_kv_heads,
                   (long long)row_chunks);

  /* flash-decoding: split the keys when the blocks would not give every multiprocessor two */
  decode_args a;
  a.job = job;
  a.partials = nullptr;
  a.splits = 1;
  a.split_keys = INT64_MAX / 4;
  a.rows_per_block = rows_per_block;
  a.row_capacity = capacity;
  a.qk_slices = slices;
  a.record = 4 + (int32_t)round_up(job.head_dim, 4);
  const int64_t blocks = (int64_t)job.num_seqs * job.num_kv_heads * row_chunks;
  const int64_t target = 2 * (int64_t)(job.multiprocessor_count > 0 ? job.multiprocessor_count : 1);
  const int64_t span = key_span(job);
  if (blocks < target && span > kMinSplitKeys) {
    const int64_t wanted = (target + blocks - 1) / blocks;
    int64_t keys = round_up((span + wanted - 1) / wanted, TK);
    if (keys < round_up(kMinSplitKeys, TK)) keys = round_up(kMinSplitKeys, TK);
    if ((span + keys - 1) / keys > kMaxSplits) keys = round_up((span + kMaxSplits - 1) / kMaxSplits, TK);
    const int64_t splits = (span + keys - 1) / keys;
    if (splits > 1) {
      a.splits = (int32_t)splits;
      a.split_keys = keys;
    }
  }
  const size_t element = sizeof(T);
  a.vec = (job.head_dim * (int64_t)element) % 16 == 0 &&
          (job.paged ? lk_aligned(job.key_cache, 0, element, 16) && lk_aligned(job.value_cache, 0, element, 16)
                     : lk_aligned(job.k, job.k_stride, element, 16) && lk_aligned(job.v, job.v_stride, element, 16));

  if (bytes > kDefaultSharedBytes)
    LK_CUDA_TRY(cudaFuncSetAttribute(attention_decode_kernel<T, D, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                "cudaFuncSetAttribute (attention_decode)");
  if (a.splits > 1) {
    const size_t partial_bytes =
        sizeof(float) * (size_t)job.num_seqs * (size_t)job.max_seqlen_q * (size_t)job.num_heads * (size_t)a.splits * (size_t)a.record;
    LK_CUDA_TRY(cudaMallocAsync(reinterpret_cast<void **>(&a.partials), partial_bytes, stream),
                "cudaMallocAsync (attention decode partials)");
  }
  const dim3 grid((unsigned)job.num_seqs, (unsigned)(job.num_kv_heads * row_chunks), (unsigned)a.splits);
  LK_LAUNCH(grid, dim3(NT), bytes, stream, attention_decode_kernel<T, D, NT>)(a);
  lk_status status = lk_cuda_launched("attention_decode");
  if (a.splits > 1) {
    if (status == LK_OK) {
      LK_LAUNCH(dim3((unsigned)job.num_seqs, (unsigned)job.num_heads), dim3(kCombineThreads), 0, stream, attention_decode_combine<T>)(a);
      status = lk_cuda_launched("attention_decode_combine");
    }
    const lk_status freed = lk_cuda_check(cudaFreeAsync(a.partials, stream), "cudaFreeAsync (attention decode partials)");
    if (status == LK_OK) status = freed;
  }
  return status;
}

} // namespace

/* Head dims up to 64, 128 and 256 take their own tile; 256 threads where a block's rows need them
 * (R x head-dim class past 2048: each thread holds 4 rows x 4 elements). */
lk_status lk_cuda_attention_decode(const lk_cuda_attention_job &job, cudaStream_t stream) {
  const int64_t rows = job.max_seqlen_q * job.group;
  return lk_cuda_dispatch_dtype(job.dtype, [&](auto element) -> lk_status {
    using T = decltype(element);
    if (job.head_dim <= 64) return rows * 64 > 2048 ? run_decode<T, 64, 256>(job, stream) : run_decode<T, 64, 128>(job, stream);
    if (job.head_dim <= 128) return rows * 128 > 2048 ? run_decode<T, 128, 256>(job, stream) : run_decode<T, 128, 128>(job, stream);
    return rows * 256 > 2048 ? run_decode<T, 256, 256>(job, stream) : run_decode<T, 256, 128>(job, stream);
  });
}
