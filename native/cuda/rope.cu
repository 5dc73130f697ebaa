/* lk_cuda_rope: rotary position embedding in place on q and, if given, k (lk_rope, llmkernels.h):
 * NeoX and GPT-J pairing, partial rot_dim, GQA head counts, token strides (q and k may be views
 * into one fused qkv buffer), int32 or int64 positions, every dtype.
 *
 * Per token t, head and pair j < rot_dim / 2, with c = cache[pos[t], j], s = cache[pos[t],
 * rot_dim / 2 + j]: a' = a c - b s, b' = b c + a s. The products and the sum are __fmul_rn and
 * __fadd_rn (never contracted into an FMA), each result rounded once to the dtype: the operations
 * of rope_scalar.c in its order, so a GPU result equals the CPU's bit for bit (NaN payloads
 * aside), which test_cuda_rope.c checks.
 *
 * Positions live in device memory: each token's is checked against [0, max_position) where it is
 * read. A bad one is never used as an address: that token's q and k are left as they are, the
 * other tokens are rotated, and the first bad position a thread reports (lk_report_index) comes
 * back as LK_ERR_INVALID_ARGUMENT naming positions at the next synchronisation.
 *
 * Work unit: VEC pairs of one head, read and written as two VEC-element vectors (16 bytes each on
 * the vector path): NeoX, elements [j0, j0 + VEC) and [j0 + half, ...); GPT-J, the 2 VEC elements
 * from 2 j0. The pairs' cos and sin are VEC floats each from the token's cache row (L1 and L2 hits
 * after the first head: the row is shared by every head of the token).
 *
 * Launch geometry (memory bound: each rotated element is read once and written once, the cache
 * rows come from L2). A block is `lanes` threads along the units of a token (q's heads, then k's)
 * by `256 / lanes` tokens: lanes is a multiple of 32 near the token's unit count, so that a token
 * takes whole passes of its block (Llama-3-8B: 32 + 8 heads x 8 bf16 units = 320 units, 160 lanes
 * x 2 passes), or for tokens of at most 32 units a power of two with several tokens a block. Each
 * unit is 32 bytes of q or k in flight a thread (64 with its cos/sin): ~35 KiB a multiprocessor
 * at the ~1100 threads that 40-56 registers leave resident, against the ~13 KiB that H200's read
 * bandwidth (half of 4.8 TB/s) times ~700 ns of loaded latency asks of each of its 132
 * multiprocessors. One block a group of tokens (grid.x, a grid-stride loop past 2^31 - 1); when
 * that leaves fewer than two blocks a multiprocessor (decode: one to a few tokens), a token's units
 * are split over grid.y blocks of one or a few warps instead. Expected: ~85% of copy bandwidth on
 * large calls (every rotated byte read once and written once, each warp access whole 32-byte
 * sectors); partial rotary moves only the first rot_dim elements of each head, so fewer bytes are
 * in flight a warp. Not measured: no GPU has been available.
 *
 * Vector path: where q and k start 16-byte aligned, their token strides and head_dim are multiples
 * of 16 bytes, rot_dim / 2 is a multiple of VEC and the cache starts 16-byte aligned; else one pair
 * a unit, element accesses (same arithmetic). */
#include "lk_cuda_device.cuh"
#include "lk_cuda_grid.h"
#include "rope_check.h"

namespace {

constexpr int kThreads = 256;

struct rope_args {
  void *q;
  void *k; /* nullptr: q only */
  const void *positions;
  const float *cache;
  int64_t tokens, q_stride, k_stride, head_dim, rot_dim, max_position;
  int32_t num_heads;      /* q's; k's heads follow them in the unit numbering */
  int32_t units_per_head; /* rot_dim / 2 / VEC */
  int32_t units;          /* of a token: (num_heads + k's heads) * units_per_head */
  lk_cuda_error_sink sink;
};

/* N floats from p: 16-byte loads where N allows (the host checked the alignment). */
template <int N>
__device__ __forceinline__ void load_floats(const float *p, float (&out)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 4) {
      const lk_vec<float, 4> v = *reinterpret_cast<const lk_vec<float, 4> *>(p + i);
#pragma unroll
      for (int e = 0; e < 4; e++) out[i + e] = v.v[e];
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; i++) out[i] = p[i];
  }
}

template <typename T, typename P, bool kGptj, bool kVec>
__global__ void __launch_bounds__(kThreads) rope_tokens(rope_args a) {
  constexpr int VEC = kVec ? 16 / (int)sizeof(T) : 1;
  using vec = lk_vec<T, VEC>;
  const int64_t half = a.rot_dim / 2;
  for (int64_t t = (int64_t)blockIdx.x * blockDim.y + threadIdx.y; t < a.tokens; t += (int64_t)gridDim.x * blockDim.y) {
    const int64_t pos = (int64_t) static_cast<const P *>(a.positions)[t];
    if (pos < 0 || pos >= a.max_position) {
      if (threadIdx.x == 0 && blockIdx.y == 0)
        lk_report_index(a.sink, LK_CUDA_ENTRY_ROPE, LK_CUDA_ARG_POSITIONS, t, -1, pos, a.max_position);
      continue; /* this token's q and k stay as they are */
    }
    const float *cos_row = a.cache + pos * a.rot_dim;
    const float *sin_row = cos_row + half;
    for (int64_t u = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; u < a.units; u += (int64_t)gridDim.y * blockDim.x) {
      const int32_t head = (int32_t)u / a.units_per_head; /* u < units <= INT32_MAX: a 32-bit division */
      const int64_t j0 = (int64_t)((int32_t)u - head * a.units_per_head) * VEC;
      T *x = head < a.num_heads ? static_cast<T *>(a.q) + t * a.q_stride + (int64_t)head * a.head_dim
                                : static_cast<T *>(a.k) + t * a.k_stride + (int64_t)(head - a.num_heads) * a.head_dim;
      vec *lo_at = reinterpret_cast<vec *>(x + (kGptj ? 2 * j0 : j0));
      vec *hi_at = reinterpret_cast<vec *>(x + (kGptj ? 2 * j0 + VEC : j0 + half));
      const vec lo = *lo_at, hi = *hi_at;
      float c[VEC], s[VEC];
      load_floats<VEC>(cos_row + j0, c);
      load_floats<VEC>(sin_row + j0, s);
      vec lo_out, hi_out;
#pragma unroll
      for (int p = 0; p < VEC; p++) {
        /* pair p: NeoX (lo[p], hi[p]); GPT-J elements 2p and 2p + 1 of lo followed by hi */
        const int ia = kGptj ? 2 * p : p, ib = kGptj ? 2 * p + 1 : p;
        const float av = lk_to_float(kGptj ? (ia < VEC ? lo.v[ia % VEC] : hi.v[ia % VEC]) : lo.v[p]);
        const float bv = lk_to_float(kGptj ? (ib < VEC ? lo.v[ib % VEC] : hi.v[ib % VEC]) : hi.v[p]);
        const T ra = lk_from_float<T>(__fadd_rn(__fmul_rn(av, c[p]), -__fmul_rn(bv, s[p])));
        const T rb = lk_from_float<T>(__fadd_rn(__fmul_rn(bv, c[p]), __fmul_rn(av, s[p])));
        if (kGptj) {
          if (ia < VEC) lo_out.v[ia % VEC] = ra;
          else hi_out.v[ia % VEC] = ra;
          if (ib < VEC) lo_out.v[ib % VEC] = rb;
          else hi_out.v[ib % VEC] = rb;
        } else {
          lo_out.v[p] = ra;
          hi_out.v[p] = rb;
        }
      }
      *lo_at = lo_out;
      *hi_at = hi_out;
    }
  }
}

struct rope_geometry {
  dim3 grid, block;
};

/* The block shape and grid of the comment at the top, for `units` units a token. */
rope_geometry geometry_for(int64_t tokens, int64_t units, int multiprocessors) {
  const auto round32 = [](int64_t v) { return (v + 31) / 32 * 32; };
  int64_t lanes, splits = 1;
  if (units <= 32) {
    lanes = lk_pow2_at_least(units, 32);
  } else {
    const int64_t passes = (units + kThreads - 1) / kThreads;
    lanes = round32((units + passes - 1) / passes);
  }
  int64_t tokens_a_block = kThreads / lanes < tokens ? kThreads / lanes : tokens;
  int64_t token_blocks = (tokens + tokens_a_block - 1) / tokens_a_block;
  const int64_t wanted = 2 * (int64_t)multiprocessors;
  if (token_blocks < wanted && units > 32) {
    /* few tokens: a token's units over several blocks of (down to) one warp */
    const int64_t most = (units + 31) / 32, fewest = (units + kThreads - 1) / kThreads;
    const int64_t spread = (wanted + token_blocks - 1) / token_blocks;
    splits = spread < most ? spread : most;
    if (splits < fewest) splits = fewest; /* one pass a block, at most kThreads lanes */
    lanes = round32((units + splits - 1) / splits);
    splits = (units + lanes - 1) / lanes;
    tokens_a_block = kThreads / lanes < tokens ? kThreads / lanes : tokens;
    token_blocks = (tokens + tokens_a_block - 1) / tokens_a_block;
  }
  rope_geometry g;
  g.grid = dim3((unsigned)(token_blocks < INT32_MAX ? token_blocks : INT32_MAX), (unsigned)(splits < 65535 ? splits : 65535));
  g.block = dim3((unsigned)lanes, (unsigned)tokens_a_block);
  return g;
}

template <typename T, typename P, bool kGptj>
lk_status launch(const lk_rope_params &p, cudaStream_t stream) {
  constexpr int64_t kVecElements = 16 / (int64_t)sizeof(T);
  const int64_t half = p.rot_dim / 2, heads = p.num_heads + (p.k ? p.num_kv_heads : 0);
  const bool vec = half % kVecElements == 0 && (heads == 1 || (p.head_dim * (int64_t)sizeof(T)) % 16 == 0) &&
                   lk_aligned(p.q, p.tokens > 1 ? p.q_stride : 0, sizeof(T), 16) &&
                   (!p.k || lk_aligned(p.k, p.tokens > 1 ? p.k_stride : 0, sizeof(T), 16)) &&
                   lk_aligned(p.cos_sin_cache, p.rot_dim, sizeof(float), 16);
  const int64_t per_unit = vec ? kVecElements : 1;
  const int64_t units = heads * (half / per_unit);
  if (units > INT32_MAX)
    return lk_fail(LK_ERR_UNSUPPORTED, "num_heads: %lld heads x %lld pairs a token exceed what lk_cuda_rope indexes (2^31 - 1 units)",
                   (long long)heads, (long long)half);
  int multiprocessors = 1;
  lk_status status = lk_cuda_multiprocessors(&multiprocessors);
  if (status != LK_OK) return status;
  rope_args a;
  a.q = p.q;
  a.k = p.k;
  a.positions = p.positions;
  a.cache = p.cos_sin_cache;
  a.tokens = p.tokens;
  a.q_stride = p.q_stride;
  a.k_stride = p.k_stride;
  a.head_dim = p.head_dim;
  a.rot_dim = p.rot_dim;
  a.max_position = p.max_position;
  a.num_heads = (int32_t)p.num_heads;
  a.units_per_head = (int32_t)(half / per_unit);
  a.units = (int32_t)units;
  if ((status = lk_cuda_error_sink_get(&a.sink)) != LK_OK) return status;
  const rope_geometry g = geometry_for(p.tokens, units, multiprocessors);
  if (vec) LK_LAUNCH(g.grid, g.block, 0, stream, rope_tokens<T, P, kGptj, true>)(a);
  else LK_LAUNCH(g.grid, g.block, 0, stream, rope_tokens<T, P, kGptj, false>)(a);
  return lk_cuda_launched("rope_tokens");
}

template <typename T>
lk_status launch_for(const lk_rope_params &p, cudaStream_t stream) {
  const bool gptj = p.style == LK_ROPE_GPTJ;
  if (p.position_type == LK_INDEX_I64) return gptj ? launch<T, int64_t, true>(p, stream) : launch<T, int64_t, false>(p, stream);
  return gptj ? launch<T, int32_t, true>(p, stream) : launch<T, int32_t, false>(p, stream);
}

lk_status run(lk_cuda_stream stream, const lk_rope_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_rope_params p = *params;
  const lk_status status = lk_rope_check(&p);
  if (status != LK_OK || p.tokens == 0) return status;
  if (p.num_heads > INT32_MAX)
    return lk_fail(LK_ERR_UNSUPPORTED, "num_heads: %lld exceeds what lk_cuda_rope indexes (2^31 - 1)", (long long)p.num_heads);
  return lk_cuda_dispatch_dtype(p.dtype, [&](auto element) {
    using T = decltype(element);
    return launch_for<T>(p, lk_cuda_as_stream(stream));
  });
}

} // namespace

extern "C" {

LK_CUDA_API lk_status lk_cuda_rope(lk_cuda_stream stream, const lk_rope_params *params) { return run(stream, params); }

} // extern "C"
