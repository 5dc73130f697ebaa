/* Attention prefill on tensor cores: FlashAttention-2's forward pass (Dao, 2023) written against
 * the sm_80 instructions directly (lk_cuda_ptx.cuh): mma.sync m16n8k16 with f32 accumulators,
 * ldmatrix for the operand fragments, cp.async for the tiles. Hopper runs the same code (sm_90
 * cubin); a wgmma/TMA path (FlashAttention-3) is future work that needs CUDA 12 and a GPU to tune.
 *
 * One thread block per (query block of kBlockM rows, query head, sequence), four warps, each warp
 * owning 16 * kMTiles query rows; key tiles of kBlockN rows (prefill_traits). The block walks the key tiles its rows can see (causal, window):
 *   K tile -> S = Q K^T (mma, operands from shared memory by ldmatrix) -> the contract's score
 *   (scale, softcap, ALiBi, bias) and mask -> online softmax in registers (running max and sum per
 *   row, the quad of threads sharing a row reduced by shuffles) -> P rounded to the operand type
 *   straight from the S accumulators into A fragments (their layouts coincide) -> O += P V (V
 *   through ldmatrix.trans).
 * The V tile loads while S is computed and the next K tile while P V is, as in FlashAttention-2, so
 * one buffer each suffices. Shared-memory rows are padded by 16 bytes: the 8 rows an ldmatrix reads
 * then fall on 8 different bank groups, where unpadded 128-byte multiples would conflict 8 ways.
 *
 * Rounding points (docs/cuda.md): q, k, v as the operand type (f32 inputs are rounded to bf16 here:
 * tensor cores take 16-bit operands), scores and softmax in f32, P rounded to the operand type for
 * the P V product (as FlashAttention), accumulation in f32, out rounded once.
 *
 * Head dims up to 256 run in the smallest class of 64, 128, 256 that holds them, the columns past
 * head_dim zero in Q, K and V. Paged keys: each tile's physical rows are looked up (and checked)
 * once into shared memory; a bad block-table entry masks its keys. Tiles load with cp.async where
 * every row is 16-byte aligned and head_dim a multiple of 8, element by element otherwise. */
#include "attention_common.cuh"
#include "lk_cuda_ptx.cuh"

#include <type_traits>

namespace {

template <int kHeadDim_, int kMTiles_, int kBlockN_>
struct prefill_traits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kMTiles = kMTiles_; /* 16-row mma tiles a warp owns */
  static constexpr int kBlockM = kWarps * 16 * kMTiles;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kPitch = kHeadDim + 8; /* elements between shared rows: 16 bytes of padding */
  static constexpr int kDimTiles = kHeadDim / 8; /* n tiles of O */
  static constexpr int kKeyTiles = kBlockN / 8;  /* n tiles of S */
  static constexpr int kKSteps = kHeadDim / 16;  /* k steps of Q K^T */
  static constexpr int kPSteps = kBlockN / 16;   /* k steps of P V */
  static constexpr size_t kTileBytes = (size_t)(kBlockM + 2 * kBlockN) * kPitch * 2;
  /* the epilogue stages O (f32 at most) over the tiles, so the tile area holds either */
  static constexpr size_t kStageBytes = (size_t)kBlockM * kHeadDim * 4;
  static constexpr size_t kAreaBytes = kTileBytes > kStageBytes ? kTileBytes : kStageBytes;
  static constexpr size_t kSharedBytes = kAreaBytes + kBlockN * sizeof(int64_t);
  static_assert(kHeadDim % 16 == 0 && kDimTiles % 2 == 0 && kKeyTiles % 2 == 0, "fragment pairs");
};

constexpr float kLog2e = 1.4426950408889634f;

/* Rows [0, kRows) of a tile into shared memory (row r at tile + r * kPitch), from row_of(r): the
 * row's first element, or NULL for a row to zero. Columns from head_dim to kHeadDim are zeroed. */
template <typename Tr, bool kAsync, int kRows, typename Tin, typename Tm, typename RowOf>
__device__ __forceinline__ void load_tile(Tm *tile, int head_dim, const Tin *any_valid, RowOf row_of) {
  constexpr int kChunks = Tr::kHeadDim / 8;
  for (int c = (int)threadIdx.x; c < kRows * kChunks; c += Tr::kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const Tin *src = row_of(r);
    Tm *dst = tile + r * Tr::kPitch + col;
    if constexpr (kAsync) {
      /* head_dim % 8 == 0: a chunk is wholly inside the row or wholly past it */
      const bool valid = src != nullptr && col < head_dim;
      lk_cp_async_16(dst, valid ? (const void *)(src + col) : (const void *)any_valid, valid);
    } else {
      lk_vec<Tm, 8> v;
#pragma unroll
      for (int e = 0; e < 8; e++) v.v[e] = src && col + e < head_dim ? lk_from_float<Tm>(lk_to_float(src[col + e])) : Tm{};
      *reinterpret_cast<lk_vec<Tm, 8> *>(dst) = v;
    }
  }
}

template <typename Tin, typename Tm, typename Tr, bool kAsync>
__global__ void __launch_bounds__(Tr::kThreads) attention_prefill(lk_cuda_attention_job a, int seq_offset) {
  const int s = (int)blockIdx.z + seq_offset, h = (int)blockIdx.y;
  const int m_block = (int)(gridDim.x - 1 - blockIdx.x); /* the longest causal blocks first */
  int64_t q_begin, sq64, sk64;
  if (!lk_attention_sequence(a, s, &q_begin, &sq64, &sk64)) return;
  /* positions in int: sequence offsets are int32 by the contract */
  const int sq = (int)sq64, sk = (int)sk64, m0 = m_block * Tr::kBlockM;
  if (m0 >= sq) return;
  const int kvh = h / a.group, tid = (int)threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4; /* an mma fragment's row group and column pair */
  const int64_t k0 = a.paged ? 0 : a.cu_seqlens_k[s];

  unsigned char *smem = lk_dynamic_shared();
  Tm *sQ = reinterpret_cast<Tm *>(smem);
  Tm *sK = sQ + Tr::kBlockM * Tr::kPitch;
  Tm *sV = sK + Tr::kBlockN * Tr::kPitch;
  int64_t *sRow = reinterpret_cast<int64_t *>(smem + Tr::kAreaBytes); /* the tile's physical key rows, -1: masked */

  /* every row's visible keys (within [0, sk)); the block's key range is the first row's lo to the
   * last row's hi */
  const int warp_row0 = warp * 16 * Tr::kMTiles;
  int row_lo[Tr::kMTiles][2], row_hi[Tr::kMTiles][2];
  auto visible = [&](int i, int *lo, int *hi) {
    int64_t l, h;
    lk_attention_visible(a, (int64_t)i + sk - sq, sk, &l, &h);
    *lo = (int)(l > 0 ? l : 0);
    *hi = (int)(h > -1 ? h : -1);
  };
#pragma unroll
  for (int mt = 0; mt < Tr::kMTiles; mt++)
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int i = m0 + warp_row0 + mt * 16 + g + half * 8;
      if (i < sq) visible(i, &row_lo[mt][half], &row_hi[mt][half]);
      else row_lo[mt][half] = 1, row_hi[mt][half] = 0;
    }
  int block_lo, first_hi, last_lo, block_hi;
  visible(m0, &block_lo, &first_hi);
  visible((m0 + Tr::kBlockM < sq ? m0 + Tr::kBlockM : sq) - 1, &last_lo, &block_hi);
  const int n_first = block_hi >= block_lo ? block_lo / Tr::kBlockN : 0;
  const int n_last = block_hi >= block_lo ? block_hi / Tr::kBlockN : -1;

  const Tin *q = static_cast<const Tin *>(a.q);
  load_tile<Tr, kAsync, Tr::kBlockM>(sQ, a.head_dim, q, [&](int r) -> const Tin * {
    return m0 + r < sq ? q + (q_begin + m0 + r) * a.q_stride + (int64_t)h * a.head_dim : nullptr;
  });
  const Tin *k_base = static_cast<const Tin *>(a.paged ? a.key_cache : a.k);
  const Tin *v_base = static_cast<const Tin *>(a.paged ? a.value_cache : a.v);
  auto key_row = [&](const Tin *base, int64_t stride, int r) -> const Tin * {
    const int64_t row = sRow[r];
    if (row < 0) return nullptr;
    return a.paged ? base + (row * a.num_kv_heads + kvh) * a.head_dim : base + row * stride + (int64_t)kvh * a.head_dim;
  };
  /* the tile's physical rows: contiguous keys k0 + j, paged keys through the block table; whether
   * one the tile needs is outside the cache (rare: then the mask reads sRow) */
  auto find_rows = [&](int n_block) {
    bool bad = false;
    for (int r = tid; r < Tr::kBlockN; r += Tr::kThreads) {
      const int j = n_block * Tr::kBlockN + r;
      int64_t row = -1;
      if (j < sk) {
        if (!a.paged) row = k0 + j;
        else {
          const int64_t column = j / a.block_size;
          const int64_t block = a.block_tables[(int64_t)s * a.max_blocks_per_seq + column];
          if (block >= 0 && block < a.num_blocks) row = block * a.block_size + j % a.block_size;
          else {
            lk_report_index(a.sink, LK_CUDA_ENTRY_ATTENTION, LK_CUDA_ARG_BLOCK_TABLES, s, column, block, a.num_blocks);
            bad = true;
          }
        }
      }
      sRow[r] = row;
    }
    return __syncthreads_or(bad) != 0; /* also the barrier that publishes sRow */
  };
  bool tile_bad = false;
  if (n_first <= n_last) {
    tile_bad = find_rows(n_first);
    load_tile<Tr, kAsync, Tr::kBlockN>(sK, a.head_dim, k_base, [&](int r) { return key_row(k_base, a.k_stride, r); });
  }
  lk_cp_async_commit();

  float acc_o[Tr::kMTiles][Tr::kDimTiles][4];
  float row_max[Tr::kMTiles][2], row_sum[Tr::kMTiles][2];
  bool row_nan[Tr::kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < Tr::kMTiles; mt++) {
#pragma unroll
    for (int dt = 0; dt < Tr::kDimTiles; dt++)
#pragma unroll
      for (int i = 0; i < 4; i++) acc_o[mt][dt][i] = 0.0f;
#pragma unroll
    for (int half = 0; half < 2; half++) row_max[mt][half] = -INFINITY, row_sum[mt][half] = 0.0f, row_nan[mt][half] = false;
  }
  const float slope = a.alibi_slopes ? a.alibi_slopes[h] : 0.0f;

  for (int n_block = n_first; n_block <= n_last; n_block++) {
    const int j0 = n_block * Tr::kBlockN;
    lk_cp_async_wait<0>();
    __syncthreads(); /* K (and Q) landed; every warp is done with the last tile's V */
    load_tile<Tr, kAsync, Tr::kBlockN>(sV, a.head_dim, v_base, [&](int r) { return key_row(v_base, a.v_stride, r); });
    lk_cp_async_commit();

    /* S = Q K^T */
    float acc_s[Tr::kMTiles][Tr::kKeyTiles][4];
#pragma unroll
    for (int mt = 0; mt < Tr::kMTiles; mt++)
#pragma unroll
      for (int nt = 0; nt < Tr::kKeyTiles; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) acc_s[mt][nt][i] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < Tr::kKSteps; ks++) {
      uint32_t qa[Tr::kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < Tr::kMTiles; mt++)
        lk_ldmatrix_x4(qa[mt], sQ + (warp_row0 + mt * 16 + (lane / 8) % 2 * 8 + lane % 8) * Tr::kPitch + ks * 16 + lane / 16 * 8);
#pragma unroll
      for (int nt = 0; nt < Tr::kKeyTiles; nt += 2) {
        uint32_t kb[4]; /* b of key tiles nt (kb[0], kb[1]) and nt + 1 (kb[2], kb[3]) */
        lk_ldmatrix_x4(kb, sK + (nt * 8 + lane / 16 * 8 + lane % 8) * Tr::kPitch + ks * 16 + (lane / 8) % 2 * 8);
#pragma unroll
        for (int mt = 0; mt < Tr::kMTiles; mt++) {
          lk_mma_16816<Tm>(acc_s[mt][nt], qa[mt], kb, acc_s[mt][nt]);
          lk_mma_16816<Tm>(acc_s[mt][nt + 1], qa[mt], kb + 2, acc_s[mt][nt + 1]);
        }
      }
    }

    /* scores, mask, online softmax: element i of acc_s[mt][nt] is row g (+ 8 for i >= 2), key
     * column nt * 8 + 2t + (i & 1) */
#pragma unroll
    for (int mt = 0; mt < Tr::kMTiles; mt++)
#pragma unroll
      for (int half = 0; half < 2; half++) {
        const int qi = m0 + warp_row0 + mt * 16 + g + half * 8, pos = qi + sk - sq;
        const int lo = row_lo[mt][half] - j0, hi = row_hi[mt][half] - j0; /* in tile columns */
        const float *bias_row = a.bias && qi < sq ? a.bias + (int64_t)h * a.bias_head_stride + (q_begin + qi) * a.bias_row_stride
                                                  : nullptr;
        float tile_max = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < Tr::kKeyTiles; nt++)
#pragma unroll
          for (int e = 0; e < 2; e++) {
            const int col = nt * 8 + 2 * t + e;
            float score = -INFINITY;
            if (col >= lo && col <= hi && (!tile_bad || sRow[col] >= 0)) {
              score = lk_attention_score(a, acc_s[mt][nt][half * 2 + e], slope, bias_row, pos, j0 + col);
              if (score != score) row_nan[mt][half] = true, score = -INFINITY; /* the row ends NaN, as on the CPU */
            }
            acc_s[mt][nt][half * 2 + e] = score;
            tile_max = fmaxf(tile_max, score);
          }
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
        const float m_new = fmaxf(row_max[mt][half], tile_max);
        if (m_new == -INFINITY) { /* nothing visible yet: P is 0 */
#pragma unroll
          for (int nt = 0; nt < Tr::kKeyTiles; nt++) acc_s[mt][nt][half * 2] = acc_s[mt][nt][half * 2 + 1] = 0.0f;
          continue;
        }
        const float rescale = exp2f((row_max[mt][half] - m_new) * kLog2e); /* 0 when the old max was -inf */
        row_max[mt][half] = m_new;
        row_sum[mt][half] *= rescale;
#pragma unroll
        for (int dt = 0; dt < Tr::kDimTiles; dt++) acc_o[mt][dt][half * 2] *= rescale, acc_o[mt][dt][half * 2 + 1] *= rescale;
#pragma unroll
        for (int nt = 0; nt < Tr::kKeyTiles; nt++)
#pragma unroll
          for (int e = 0; e < 2; e++) {
            const float p = exp2f((acc_s[mt][nt][half * 2 + e] - m_new) * kLog2e);
            acc_s[mt][nt][half * 2 + e] = p;
            row_sum[mt][half] += p;
          }
      }

    lk_cp_async_wait<0>();
    __syncthreads(); /* V landed; every warp is done with K and the tile's rows */
    if (n_block < n_last) {
      tile_bad = find_rows(n_block + 1);
      load_tile<Tr, kAsync, Tr::kBlockN>(sK, a.head_dim, k_base, [&](int r) { return key_row(k_base, a.k_stride, r); });
    }
    lk_cp_async_commit();

    /* O += P V: the S accumulators of key tiles 2ps, 2ps + 1 are the A fragment of k step ps */
#pragma unroll
    for (int ps = 0; ps < Tr::kPSteps; ps++) {
      uint32_t pa[Tr::kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < Tr::kMTiles; mt++) {
        pa[mt][0] = lk_pack2<Tm>(acc_s[mt][2 * ps][0], acc_s[mt][2 * ps][1]);
        pa[mt][1] = lk_pack2<Tm>(acc_s[mt][2 * ps][2], acc_s[mt][2 * ps][3]);
        pa[mt][2] = lk_pack2<Tm>(acc_s[mt][2 * ps + 1][0], acc_s[mt][2 * ps + 1][1]);
        pa[mt][3] = lk_pack2<Tm>(acc_s[mt][2 * ps + 1][2], acc_s[mt][2 * ps + 1][3]);
      }
#pragma unroll
      for (int dt = 0; dt < Tr::kDimTiles; dt += 2) {
        uint32_t vb[4]; /* b of dim tiles dt (vb[0], vb[1]) and dt + 1 (vb[2], vb[3]) */
        lk_ldmatrix_x4_trans(vb, sV + (ps * 16 + (lane / 8) % 2 * 8 + lane % 8) * Tr::kPitch + dt * 8 + lane / 16 * 8);
#pragma unroll
        for (int mt = 0; mt < Tr::kMTiles; mt++) {
          lk_mma_16816<Tm>(acc_o[mt][dt], pa[mt], vb, acc_o[mt][dt]);
          lk_mma_16816<Tm>(acc_o[mt][dt + 1], pa[mt], vb + 2, acc_o[mt][dt + 1]);
        }
      }
    }
  }

  /* epilogue: the rows' sums over their quads, out = acc / l staged through shared memory (over the
   * tiles, after every warp is done with them) for whole-row stores, lse */
  lk_cp_async_wait<0>();
  __syncthreads();
  Tin *stage = reinterpret_cast<Tin *>(smem);
#pragma unroll
  for (int mt = 0; mt < Tr::kMTiles; mt++)
#pragma unroll
    for (int half = 0; half < 2; half++) {
      float l = row_sum[mt][half];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      int nan = row_nan[mt][half] ? 1 : 0;
      nan |= __shfl_xor_sync(0xffffffffu, nan, 1);
      nan |= __shfl_xor_sync(0xffffffffu, nan, 2);
      const float factor = lk_attention_output_scale(l, nan != 0);
      const int r = warp_row0 + mt * 16 + g + half * 8;
#pragma unroll
      for (int dt = 0; dt < Tr::kDimTiles; dt++)
#pragma unroll
        for (int e = 0; e < 2; e++)
          stage[r * Tr::kHeadDim + dt * 8 + 2 * t + e] = lk_from_float<Tin>(acc_o[mt][dt][half * 2 + e] * factor);
      const int64_t qi = m0 + r;
      if (a.lse && t == 0 && qi < sq) a.lse[(q_begin + qi) * a.num_heads + h] = lk_attention_lse(row_max[mt][half], l, nan != 0);
    }
  __syncwarp();
  /* each warp stores its own rows */
  Tin *out = static_cast<Tin *>(a.out);
  const bool vector = sizeof(Tin) == 2 && a.head_dim % 8 == 0 && lk_aligned(out, a.out_stride, sizeof(Tin), 16) &&
                      ((int64_t)h * a.head_dim * (int64_t)sizeof(Tin)) % 16 == 0;
  constexpr int kWarpRows = 16 * Tr::kMTiles;
  if (vector) {
    constexpr int kChunks = Tr::kHeadDim / 8;
    for (int c = lane; c < kWarpRows * kChunks; c += 32) {
      const int r = warp_row0 + c / kChunks, col = c % kChunks * 8;
      if (m0 + r >= sq || col >= a.head_dim) continue;
      *reinterpret_cast<lk_vec<Tin, 8> *>(out + (q_begin + m0 + r) * a.out_stride + (int64_t)h * a.head_dim + col) =
          *reinterpret_cast<const lk_vec<Tin, 8> *>(stage + r * Tr::kHeadDim + col);
    }
  } else {
    for (int c = lane; c < kWarpRows * Tr::kHeadDim; c += 32) {
      const int r = warp_row0 + c / Tr::kHeadDim, col = c % Tr::kHeadDim;
      if (m0 + r >= sq || col >= a.head_dim) continue;
      out[(q_begin + m0 + r) * a.out_stride + (int64_t)h * a.head_dim + col] = stage[r * Tr::kHeadDim + col];
    }
  }
}

template <typename Tin, typename Tm, typename Tr, bool kAsync>
lk_status launch(const lk_cuda_attention_job &a, cudaStream_t stream) {
  auto kernel = attention_prefill<Tin, Tm, Tr, kAsync>;
  /* over 48 KiB of dynamic shared memory needs an opt-in, once per kernel and device */
  static bool opted_in[64] = {};
  int device = 0;
  LK_CUDA_TRY(cudaGetDevice(&device), "cudaGetDevice");
  if (device >= 0 && device < 64 && !opted_in[device]) {
    LK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)Tr::kSharedBytes),
                "cudaFuncSetAttribute (attention prefill's shared memory)");
    opted_in[device] = true;
  }
  const int64_t m_blocks = (a.max_seqlen_q + Tr::kBlockM - 1) / Tr::kBlockM;
  if (m_blocks > INT32_MAX) return lk_fail(LK_ERR_UNSUPPORTED, "max_seqlen_q: %lld exceeds the CUDA grid", (long long)a.max_seqlen_q);
  for (int first = 0; first < a.num_seqs; first += 65535) {
    const int count = a.num_seqs - first < 65535 ? a.num_seqs - first : 65535;
    LK_LAUNCH(dim3((unsigned)m_blocks, (unsigned)a.num_heads, (unsigned)count), dim3(Tr::kThreads), Tr::kSharedBytes, stream,
              kernel)(a, first);
    const lk_status status = lk_cuda_launched("attention_prefill");
    if (status != LK_OK) return status;
  }
  return LK_OK;
}

/* cp.async needs every row it reads 16-byte aligned and whole 8-element chunks. */
bool async_loads(const lk_cuda_attention_job &a) {
  constexpr size_t e = 2;
  if (a.head_dim % 8 != 0 || !lk_aligned(a.q, a.q_stride, e, 16)) return false;
  if (a.paged) return lk_aligned(a.key_cache, a.head_dim, e, 16) && lk_aligned(a.value_cache, a.head_dim, e, 16);
  return lk_aligned(a.k, a.k_stride, e, 16) && lk_aligned(a.v, a.v_stride, e, 16);
}

template <typename Tin, typename Tm>
lk_status dispatch_head_dim(const lk_cuda_attention_job &a, cudaStream_t stream) {
  const bool async = !std::is_same<Tin, float>::value && async_loads(a);
  auto run = [&](auto traits) {
    using Tr = decltype(traits);
    if constexpr (std::is_same<Tin, float>::value) return launch<Tin, Tm, Tr, false>(a, stream);
    else return async ? launch<Tin, Tm, Tr, true>(a, stream) : launch<Tin, Tm, Tr, false>(a, stream);
  };
  /* tile shapes that fit the 255 registers without spills (ptxas -v, sm_80 and sm_90) */
  if (a.head_dim <= 64) return run(prefill_traits<64, 2, 64>{});
  if (a.head_dim <= 128) return run(prefill_traits<128, 1, 64>{});
  return run(prefill_traits<256, 1, 32>{});
}

} // namespace

lk_status lk_cuda_attention_prefill(const lk_cuda_attention_job &job, cudaStream_t stream) {
  return lk_cuda_dispatch_dtype(job.dtype, [&](auto element) {
    using T = decltype(element);
    using Tm = typename std::conditional<std::is_same<T, float>::value, lk_bf16, T>::type;
    return dispatch_head_dim<T, Tm>(job, stream);
  });
}
