/* lk_cuda_moe_gating: router logits [tokens, experts] -> each token's top-k experts and weights,
 * the contract of lk_moe_gating (llmkernels.h, docs/moe.md) on the GPU. docs/cuda/moe.md has the
 * mapping, the decisions and where results may differ from the CPU's.
 *
 * One token per segment of L lanes (a warp holds 32 / L tokens): lane l of a segment holds its
 * token's experts (q L + l) V + v (q < P / V loads of V elements: 16-byte loads where the rows
 * allow), so a segment reads its row coalesced and every lane's experts ascend. L is the least
 * power of two with 8 L >= experts (8 experts a lane: Mixtral one token a lane, Qwen's 60/64 eight
 * lanes, DeepSeek-V3's 256 a warp); 384 and 512 take 16 a lane, and more go in chunks of 256 (the
 * running top k carried from chunk to chunk, one entry a lane). (32 a lane, for up to 1024 in
 * registers, took 220 registers a thread.)
 *
 * Every ranking is the contract's one total order, as unsigned integers: an expert's selection
 * score becomes rank_key (NaN lowest, -0 equal to +0, 0 reserved for "not a candidate"), and equal
 * keys go to the lower id. The top k come from k rounds of a segment argmax over the lanes' heads:
 *   - each lane keeps its best two candidates (head and second, one pass over its experts);
 *   - a round takes the segment's largest head key and, among lanes holding it, the lowest id (two
 *     redux.sync on a full warp, two shuffle butterflies on a segment);
 *   - the lane that held the winner writes it to shared memory and moves its second up; only a
 *     lane that wins a third time rescans its experts (for the best below its last win), about
 *     once a token for 8 of 256.
 * Grouped selection first scores the groups: where a group is whole loads of Q consecutive lanes
 * (DeepSeek-V3's groups of 32: Q = 8 lanes of f32, 4 of bf16), from the keys in registers by a
 * top-two butterfly over the Q lanes; otherwise by a pass over each group's logits. The kept
 * groups' mask then takes the other experts out of the running.
 *
 * The weights follow the CPU's scalar kernel (moe.c) operation for operation: each selected
 * expert's score recomputed from its logit (reloaded: its row is in L1/L2) by the same formula,
 * TOPK_SOFTMAX's softmax, the renormalising sum and the scaling in selection order, then each
 * weight's rank in the output order (descending, ties to the lower id). Products that feed a sum
 * are __fmul_rn, so nvcc cannot contract them into an fma the CPU does not have. What differs:
 * softmax's sum over the row, which here is a tree (the emulator, too); on a GPU also CUDA's expf
 * and the reciprocal estimate every division uses (2 ulp each) against the C library's expf and
 * correctly rounded division. */
#include "lk_cuda_device.cuh"
#include "moe_check.h"

namespace {

constexpr int kThreads = 128; /* 4 warps */
/* __launch_bounds__' second argument: without a minimum of blocks an SM, ptxas (11.8, sm_90) held
 * 33 of these kernels to 56-80 registers and spilled 8-32 bytes in their token loops, trading the
 * spills for occupancy; with one it allocates what they need (51 for DeepSeek-V3's f32 shape). */
constexpr int kMinBlocks = 1;
constexpr int kWarps = kThreads / 32;
constexpr int kBlocksPerSm = 16; /* the grid's cap: more blocks than fit, then a token loop */
constexpr unsigned kFull = 0xffffffffu;

struct gating_args {
  const void *logits;
  float *weights;
  int32_t *expert_ids;
  const float *bias; /* correction bias or nullptr */
  int64_t tokens, stride;
  int32_t experts, k, groups, topk_groups, group_size;
  int32_t group_shift; /* aligned groups: a group is 1 << group_shift consecutive loads of one slot */
  bool aligned_groups, renormalize;
  float scale; /* 0: none */
  lk_moe_scoring scoring;
};

struct softmax_stats {
  float max, inv_sum;
};

/* ---- the one total order ------------------------------------------------------------------------ */

/* The selection score v as a key whose unsigned order is the contract's: higher first, NaN below
 * -inf (key 1), -0 equal to +0; key 0 is no candidate at all (padding, a dropped group). */
__device__ __forceinline__ uint32_t rank_key(float v) {
  const uint32_t u = __float_as_uint(v + 0.0f); /* -0 + 0 = +0 */
  const uint32_t key = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return v != v ? 1u : key;
}

/* The score of a key (exact but for -0, which comes back +0, and NaN, which comes back a NaN). */
__device__ __forceinline__ float key_value(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

/* moe_better (moe.h) on keys: whether (a, ia) ranks before (b, ib). Integer compares, no branch. */
__device__ __forceinline__ bool key_before(uint32_t a, int32_t ia, uint32_t b, int32_t ib) {
  return (a > b) | ((a == b) & (ia < ib));
}

/* ---- the CPU's formulas (moe.c) -----------------------------------------------------------------
 * Every rounding where the CPU's C code has one: nvcc contracts a product feeding a sum into an fma
 * (expf's last multiply into 1 + expf(-x), too), which the _rn intrinsics forbid.
 *
 * Divisions are quotient(): a reciprocal estimate and a multiply (__fdividef, 2 ulp on a GPU; the
 * emulator divides exactly, as the CPU does). A correctly rounded division is a call (1.0f / y,
 * every time) or has one on its slow path (__fdiv_rn, behind a 7-instruction fast path); the
 * sigmoid of every expert is DeepSeek-V3's hot loop, and the estimate took it from about 32 to 20
 * instructions an expert. The estimate is valid for divisors in [2^-126, 2^126], which the callers
 * see to. expf is CUDA's accurate one (8 instructions, 2 ulp), not __expf, whose error grows with
 * |x| (2 + 1.17 |x| ulp). */

__device__ __forceinline__ float quotient(float a, float b) { return __fdividef(a, b); }

/* 1 / (1 + e), e >= 0: both operands scaled by 2^-64 (exactly), so that a divisor past 2^126
 * (logits below -87.3, whose sigmoid is subnormal) stays in the estimate's range. */
__device__ __forceinline__ float sigmoid_of(float x) {
  return quotient(0x1p-64f, __fmul_rn(__fadd_rn(1.0f, expf(-x)), 0x1p-64f));
}

__device__ __forceinline__ float softmax_of(float x, softmax_stats s) { return __fmul_rn(expf(__fsub_rn(x, s.max)), s.inv_sum); }

/* The score the weights come from: softmax's p, sigmoid's p, or the logit (TOPK_SOFTMAX). */
__device__ __forceinline__ float moe_score(const gating_args &a, softmax_stats s, float x) {
  if (a.scoring == LK_MOE_SOFTMAX_TOPK) return softmax_of(x, s);
  if (a.scoring == LK_MOE_SIGMOID) return sigmoid_of(x);
  return x;
}

/* What experts are ranked by: the score plus the bias, or without one the logit itself. */
__device__ __forceinline__ float moe_selection(const gating_args &a, softmax_stats s, float x, float bias) {
  return a.bias ? __fadd_rn(moe_score(a, s, x), bias) : x;
}

/* rank_key(moe_selection) of P experts, the scheme's branch taken once for all of them. */
template <int P>
__device__ __forceinline__ void selection_keys(const gating_args &a, softmax_stats s, const float (&x)[P], const float (&bias)[P],
                                               uint32_t (&key)[P]) {
  if (!a.bias) {
#pragma unroll
    for (int j = 0; j < P; j++) key[j] = rank_key(x[j]);
  } else if (a.scoring == LK_MOE_SIGMOID) {
#pragma unroll
    for (int j = 0; j < P; j++) key[j] = rank_key(__fadd_rn(sigmoid_of(x[j]), bias[j]));
  } else if (a.scoring == LK_MOE_SOFTMAX_TOPK) {
#pragma unroll
    for (int j = 0; j < P; j++) key[j] = rank_key(__fadd_rn(softmax_of(x[j], s), bias[j]));
  } else {
#pragma unroll
    for (int j = 0; j < P; j++) key[j] = rank_key(__fadd_rn(x[j], bias[j]));
  }
}

/* ---- segments of L lanes -------------------------------------------------------------------------
 * Segments are aligned blocks of L lanes, so an xor of an offset below L stays inside one. Every
 * lane of the warp calls these (segments of invalid tokens too). */

template <int L>
__device__ __forceinline__ uint32_t seg_max(uint32_t v) {
  if constexpr (L == 32) {
    return __reduce_max_sync(kFull, v);
  } else {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
    return v;
  }
}

template <int L>
__device__ __forceinline__ int32_t seg_min(int32_t v) {
  if constexpr (L == 32) {
    return __reduce_min_sync(kFull, v);
  } else {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(kFull, v, o));
    return v;
  }
}

/* The same bits on every lane: each step adds the same two values, in either order. */
template <int L>
__device__ __forceinline__ float seg_sum(float v) {
#pragma unroll
  for (int o = L / 2; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

template <int L>
__device__ __forceinline__ bool seg_any(bool b, int lane) {
  if constexpr (L == 32) {
    return __any_sync(kFull, b) != 0;
  } else {
    return ((__ballot_sync(kFull, b) >> (lane & ~(L - 1))) & ((1u << L) - 1u)) != 0;
  }
}

/* A top-two (t1 >= t2) of keys, merged with another. */
__device__ __forceinline__ void top2_add(uint32_t &t1, uint32_t &t2, uint32_t c) {
  t2 = max(t2, min(t1, c));
  t1 = max(t1, c);
}
__device__ __forceinline__ void top2_merge(uint32_t &t1, uint32_t &t2, uint32_t o1, uint32_t o2) {
  t2 = max(min(t1, o1), max(t2, o2));
  t1 = max(t1, o1);
}

/* ---- a lane's experts ------------------------------------------------------------------------------ */

/* Expert of element j (load q = j / V, lane sl of its segment) of the chunk starting at c0. */
template <int L, int V, typename I>
__device__ __forceinline__ I expert_of(I c0, int j, int sl) {
  return c0 + (I)(((j / V) * L + sl) * V + j % V);
}

template <typename T, int L, int P, int V, typename I>
__device__ __forceinline__ void load_chunk(const T *row, I c0, int32_t experts, int sl, bool valid, float (&x)[P]) {
#pragma unroll
  for (int q = 0; q < P / V; q++) {
    const I e0 = expert_of<L, V>(c0, q * V, sl);
    const bool in = valid && e0 < (I)experts; /* a vector is all in or all out: experts % V == 0 */
    if constexpr (V > 1) {
      lk_vec<T, V> v{};
      if (in) v = *reinterpret_cast<const lk_vec<T, V> *>(row + e0);
#pragma unroll
      for (int i = 0; i < V; i++) x[q * V + i] = lk_to_float(v.v[i]);
    } else {
      x[q] = in ? lk_to_float(row[e0]) : 0.0f;
    }
  }
}

/* The correction bias of a lane's experts (0 without one), in the logits' loads: V floats at a time
 * as 16-byte loads where V > 1 (the host takes the vector path only for a 16-byte aligned bias). */
template <int L, int P, int V, typename I>
__device__ __forceinline__ void load_bias(const float *bias, I c0, int32_t experts, int sl, float (&b)[P]) {
#pragma unroll
  for (int q = 0; q < P / V; q++) {
    const I e0 = expert_of<L, V>(c0, q * V, sl);
    const bool in = bias && e0 < (I)experts;
    if constexpr (V % 4 == 0) {
#pragma unroll
      for (int h = 0; h < V / 4; h++) {
        lk_vec<float, 4> v{};
        if (in) v = *reinterpret_cast<const lk_vec<float, 4> *>(bias + e0 + 4 * h);
#pragma unroll
        for (int i = 0; i < 4; i++) b[q * V + 4 * h + i] = v.v[i];
      }
    } else {
#pragma unroll
      for (int i = 0; i < V; i++) b[q * V + i] = in ? __ldg(bias + e0 + i) : 0.0f;
    }
  }
}

/* ---- softmax's max and 1 / sum -------------------------------------------------------------------
 * The max of the logits as the CPU takes it (NaN ignored, then the whole row NaN), by keys; the sum
 * in lane order, then a tree over the segment. */
template <int L, int P, int V, typename I>
__device__ __forceinline__ void stats_add_max(const float (&x)[P], I c0, int32_t experts, int sl, bool valid, uint32_t &max_key,
                                              bool &nan) {
#pragma unroll
  for (int j = 0; j < P; j++)
    if (valid && expert_of<L, V>(c0, j, sl) < (I)experts) {
      max_key = max(max_key, rank_key(x[j]));
      nan = nan || x[j] != x[j];
    }
}

template <int L, int P, int V, typename I>
__device__ __forceinline__ float stats_add_sum(const float (&x)[P], I c0, int32_t experts, int sl, bool valid, float max,
                                               float sum) {
#pragma unroll
  for (int j = 0; j < P; j++)
    if (valid && expert_of<L, V>(c0, j, sl) < (I)experts) sum = __fadd_rn(sum, expf(__fsub_rn(x[j], max)));
  return sum;
}

__device__ __forceinline__ softmax_stats stats_of(float max, float sum, bool nan) {
  const float nan_value = __uint_as_float(0x7fc00000u);
  return softmax_stats{nan ? nan_value : max, nan ? nan_value : quotient(1.0f, sum)}; /* sum in [1, experts] */
}

/* ---- groups ----------------------------------------------------------------------------------------
 * group_key[g * tpw + seg]: the rank key of the sum of group g's two best selection scores with a
 * bias (groups of more than one expert), else of its best one (moe_keep_groups in moe.c). */

__device__ __forceinline__ uint32_t group_key_of(const gating_args &a, uint32_t t1, uint32_t t2) {
  return a.bias && a.group_size > 1 ? rank_key(__fadd_rn(key_value(t1), key_value(t2))) : t1;
}

/* Groups of Q = 1 << group_shift whole loads in one slot: the keys in registers, a butterfly over Q lanes. */
template <int L, int P, int V>
__device__ __forceinline__ void group_keys_aligned(const gating_args &a, const uint32_t (&key)[P], int sl, int tpw, int seg,
                                                   uint32_t *group_key) {
  const int q_lanes = 1 << a.group_shift;
#pragma unroll
  for (int q = 0; q < P / V; q++) {
    uint32_t t1 = 0, t2 = 0;
#pragma unroll
    for (int v = 0; v < V; v++) top2_add(t1, t2, key[q * V + v]);
    for (int o = 1; o < q_lanes; o <<= 1) {
      const uint32_t o1 = __shfl_xor_sync(kFull, t1, o), o2 = __shfl_xor_sync(kFull, t2, o);
      top2_merge(t1, t2, o1, o2);
    }
    const int load = q * L + sl, g = load >> a.group_shift;
    if ((load & (q_lanes - 1)) == 0 && g < a.groups) group_key[g * tpw + seg] = group_key_of(a, t1, t2);
  }
}

/* Any other shape: each group's selection scores recomputed from its logits (the same function of
 * the same inputs as the keys in registers, so the same bits). */
template <typename T, int L>
__device__ __forceinline__ void group_keys_general(const gating_args &a, softmax_stats st, const T *row, bool valid, int sl,
                                                   int tpw, int seg, uint32_t *group_key) {
  for (int g = 0; g < a.groups; g++) {
    uint32_t t1 = 0, t2 = 0;
    if (valid)
      for (int i = sl; i < a.group_size; i += L) {
        const int64_t e = (int64_t)g * a.group_size + i;
        top2_add(t1, t2, rank_key(moe_selection(a, st, lk_to_float(row[e]), a.bias ? a.bias[e] : 0.0f)));
      }
#pragma unroll
    for (int o = 1; o < L; o <<= 1) {
      const uint32_t o1 = __shfl_xor_sync(kFull, t1, o), o2 = __shfl_xor_sync(kFull, t2, o);
      top2_merge(t1, t2, o1, o2);
    }
    if (sl == 0) group_key[g * tpw + seg] = group_key_of(a, t1, t2);
  }
}

/* The kept groups of the segment's token, as a mask: each group's rank among all by the one order. */
template <int L>
__device__ __forceinline__ uint32_t kept_groups(const gating_args &a, const uint32_t *group_key, int tpw, int seg, int sl,
                                                int lane) {
  __syncwarp();
  uint32_t kept = 0;
  for (int g0 = 0; g0 < a.groups; g0 += L) {
    const int g = g0 + sl;
    bool keep = false;
    if (g < a.groups) {
      const uint32_t s = group_key[g * tpw + seg];
      int rank = 0;
      for (int h = 0; h < a.groups; h++) rank += key_before(group_key[h * tpw + seg], h, s, g) ? 1 : 0;
      keep = rank < a.topk_groups;
    }
    const uint32_t bits = __ballot_sync(kFull, keep);
    const uint32_t mine = L == 32 ? bits : (bits >> (lane & ~(L - 1))) & ((1u << (L & 31)) - 1u);
    kept |= mine << g0;
  }
  return kept;
}

__device__ __forceinline__ bool group_kept(const gating_args &a, uint32_t kept, int64_t g) {
  return g < a.groups && ((kept >> g) & 1u) != 0;
}

/* ---- the top k --------------------------------------------------------------------------------------- */

/* A lane's best two candidates (by key, ties to the lower id), in the order offered: ascending ids. */
struct lane_top {
  uint32_t hk, sk;
  int32_t he, se;
  bool second; /* sk, se are the best below the head; false once moved up */
};

/* Both branch-free: the conditions differ from lane to lane, and a branch would run both sides. */
__device__ __forceinline__ void top_offer(lane_top &s, uint32_t c, int32_t e) {
  const bool head = c > s.hk, second = c > s.sk;
  s.sk = head ? s.hk : second ? c : s.sk;
  s.se = head ? s.he : second ? e : s.se;
  s.hk = head ? c : s.hk;
  s.he = head ? e : s.he;
}

/* (c, e) as the best seen below (hk, he), offered in ascending ids. */
__device__ __forceinline__ void below_offer(uint32_t &bk, int32_t &be, uint32_t hk, int32_t he, uint32_t c, int32_t e) {
  const bool take = (c < hk || (c == hk && e > he)) && c > bk;
  bk = take ? c : bk;
  be = take ? e : be;
}

/* k rounds over the segment: round r's winner to res_id[r * tpw + seg] (and res_key[r], chunked).
 * Candidates: (carried_key, carried_id), whose id is below every expert of the chunk (0: none), and
 * the lane's P keys. A round without any candidate left (chunked only) writes key 0. */
template <int L, int P, int V, typename I>
__device__ __forceinline__ void select_top_k(const gating_args &a, const uint32_t (&key)[P], I c0, int sl, uint32_t carried_key,
                                             int32_t carried_id, bool valid, int tpw, int seg, int32_t *res_id,
                                             uint32_t *res_key) {
  lane_top s{0u, 0u, INT32_MAX, INT32_MAX, true};
  top_offer(s, carried_key, carried_id);
#pragma unroll
  for (int j = 0; j < P; j++) top_offer(s, key[j], (int32_t)expert_of<L, V>(c0, j, sl));
  for (int r = 0; r < a.k; r++) {
    const uint32_t m = seg_max<L>(s.hk);
    const int32_t w = seg_min<L>(s.hk == m ? s.he : INT32_MAX);
    if (res_key && m == 0 && sl == 0) {
      res_key[r] = 0;
      res_id[r] = INT32_MAX;
    }
    if (valid && m != 0 && s.hk == m && s.he == w) {
      res_id[r * tpw + seg] = w;
      if (res_key) res_key[r] = m;
      if (s.second) {
        s.hk = s.sk;
        s.he = s.se;
        s.second = false;
      } else {
        uint32_t bk = 0;
        int32_t be = INT32_MAX;
        below_offer(bk, be, s.hk, s.he, carried_key, carried_id);
#pragma unroll
        for (int j = 0; j < P; j++) below_offer(bk, be, s.hk, s.he, key[j], (int32_t)expert_of<L, V>(c0, j, sl));
        s.hk = bk;
        s.he = be;
      }
    }
  }
}

/* ---- the weights and the output ---------------------------------------------------------------------
 * moe_token's last lines and moe_finish (moe.c, moe.h), with the k selected in res_id in selection
 * order; lane sl handles selections sl, sl + L, ... Sums run over res_w in that order, serially;
 * res_key holds the weights' keys for the output order. */
template <typename T, int L, int R>
__device__ __forceinline__ void finish(const gating_args &a, softmax_stats st, const T *row, int64_t t, bool valid, int sl,
                                       int tpw, int seg, const int32_t *res_id, float *res_w, uint32_t *res_key) {
  const int k = a.k;
  float w[R];
  int32_t id[R];
  __syncwarp();
#pragma unroll
  for (int i = 0; i < R; i++) {
    const int j = sl + i * L;
    id[i] = j < k ? res_id[j * tpw + seg] : 0;
    w[i] = j < k && valid ? moe_score(a, st, lk_to_float(row[id[i]])) : 0.0f;
  }
  auto publish = [&] {
    __syncwarp();
#pragma unroll
    for (int i = 0; i < R; i++)
      if (sl + i * L < k) res_w[(sl + i * L) * tpw + seg] = w[i];
    __syncwarp();
  };
  if (a.scoring == LK_MOE_TOPK_SOFTMAX) { /* moe_softmax_k */
    publish();
    float max = -INFINITY;
    bool nan = false;
    for (int r = 0; r < k; r++) {
      const float v = res_w[r * tpw + seg];
      nan = nan || v != v;
      if (v > max) max = v;
    }
#pragma unroll
    for (int i = 0; i < R; i++) w[i] = expf(__fsub_rn(w[i], max));
    publish();
    float sum = 0.0f;
    for (int r = 0; r < k; r++) sum = __fadd_rn(sum, res_w[r * tpw + seg]);
#pragma unroll
    for (int i = 0; i < R; i++) w[i] = nan ? __uint_as_float(0x7fc00000u) : quotient(w[i], sum); /* sum in [1, k] */
  }
  if (a.renormalize) {
    publish();
    float sum = 0.0f;
    for (int r = 0; r < k; r++) sum = __fadd_rn(sum, res_w[r * tpw + seg]);
    /* weights are at most 1, so sum <= 32; scaled by 2^64 (exactly), a sum of subnormal weights
     * stays in the estimate's range too */
#pragma unroll
    for (int i = 0; i < R; i++) w[i] = quotient(__fmul_rn(w[i], 0x1p64f), __fmul_rn(sum, 0x1p64f));
  }
  if (a.scale != 0.0f) {
#pragma unroll
    for (int i = 0; i < R; i++) w[i] = __fmul_rn(w[i], a.scale);
  }
  /* the output order: each weight's rank, by its key */
  __syncwarp();
#pragma unroll
  for (int i = 0; i < R; i++)
    if (sl + i * L < k) res_key[(sl + i * L) * tpw + seg] = rank_key(w[i]);
  __syncwarp();
#pragma unroll
  for (int i = 0; i < R; i++) {
    if (sl + i * L >= k) continue;
    const uint32_t mine = rank_key(w[i]);
    int rank = 0;
    for (int r = 0; r < k; r++) rank += key_before(res_key[r * tpw + seg], res_id[r * tpw + seg], mine, id[i]) ? 1 : 0;
    if (valid) {
      a.weights[t * k + rank] = w[i];
      a.expert_ids[t * k + rank] = id[i];
    }
  }
  __syncwarp(); /* before the next token's rounds overwrite res_id and res_w */
}

/* ---- the kernels --------------------------------------------------------------------------------------
 * moe_gating_rows: the whole row in registers (experts <= L P). moe_gating_chunked: L = 32 and the
 * row in chunks of 32 P experts. V: elements a load (16 bytes, or 1 where rows are not aligned). */
template <typename T, int L, int P, int V>
__global__ void __launch_bounds__(kThreads, kMinBlocks) moe_gating_rows(gating_args a) {
  static_assert(L >= 1 && L <= 32 && (L & (L - 1)) == 0, "a segment is a power of two of lanes");
  static_assert(P % V == 0, "whole loads");
  constexpr int tpw = 32 / L;
  constexpr int kMaxK = L * P >= 32 ? 32 : L * P;
  constexpr int R = (kMaxK + L - 1) / L;
  __shared__ int32_t sh_id[kWarps][kMaxK * tpw];
  __shared__ float sh_w[kWarps][kMaxK * tpw];
  __shared__ uint32_t sh_group[kWarps][kMaxK * tpw]; /* num_groups <= experts */

  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32, seg = lane / L, sl = lane % L;
  int32_t *res_id = sh_id[warp];
  float *res_w = sh_w[warp];
  uint32_t *group_key = sh_group[warp];

  const int64_t step = (int64_t)gridDim.x * kWarps * tpw;
  for (int64_t first = ((int64_t)blockIdx.x * kWarps + warp) * tpw; first < a.tokens; first += step) {
    const int64_t t = first + seg;
    const bool valid = t < a.tokens; /* an invalid segment still takes part in the warp's collectives */
    const T *row = static_cast<const T *>(a.logits) + (valid ? t : 0) * a.stride;
    float x[P];
    load_chunk<T, L, P, V>(row, 0, a.experts, sl, valid, x);
    softmax_stats st{0.0f, 1.0f};
    if (a.scoring == LK_MOE_SOFTMAX_TOPK) {
      uint32_t max_key = 0;
      bool nan = false;
      stats_add_max<L, P, V>(x, 0, a.experts, sl, valid, max_key, nan);
      max_key = seg_max<L>(max_key);
      nan = seg_any<L>(nan, lane);
      const float max = key_value(max_key);
      st = stats_of(max, seg_sum<L>(stats_add_sum<L, P, V>(x, 0, a.experts, sl, valid, max, 0.0f)), nan);
    }
    float bias[P]; /* from L1: in registers across tokens they cost more than they save */
    load_bias<L, P, V>(a.bias, 0, a.experts, sl, bias);
    uint32_t key[P];
    selection_keys<P>(a, st, x, bias, key);
#pragma unroll
    for (int j = 0; j < P; j++)
      if (!valid || expert_of<L, V>(0, j, sl) >= a.experts) key[j] = 0;
    if (a.groups > 1) {
      if (a.aligned_groups) group_keys_aligned<L, P, V>(a, key, sl, tpw, seg, group_key);
      else group_keys_general<T, L>(a, st, row, valid, sl, tpw, seg, group_key);
      const uint32_t kept = kept_groups<L>(a, group_key, tpw, seg, sl, lane);
#pragma unroll
      for (int j = 0; j < P; j++) {
        const int32_t g = a.aligned_groups ? ((j / V) * L + sl) >> a.group_shift : expert_of<L, V>(0, j, sl) / a.group_size;
        if (!group_kept(a, kept, g)) key[j] = 0;
      }
    }
    select_top_k<L, P, V>(a, key, 0, sl, 0u, INT32_MAX, valid, tpw, seg, res_id, (uint32_t *)nullptr);
    finish<T, L, R>(a, st, row, t, valid, sl, tpw, seg, res_id, res_w, group_key); /* the group keys are spent */
  }
}

template <typename T, int P, int V>
__global__ void __launch_bounds__(kThreads, kMinBlocks) moe_gating_chunked(gating_args a) {
  static_assert(P % V == 0, "whole loads");
  constexpr int L = 32, kChunk = 32 * P;
  __shared__ int32_t sh_id[kWarps][32];
  __shared__ float sh_w[kWarps][32];
  __shared__ uint32_t sh_group[kWarps][32];
  __shared__ uint32_t sh_key[kWarps][32];

  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
  int32_t *res_id = sh_id[warp];
  uint32_t *res_key = sh_key[warp], *group_key = sh_group[warp];
  float *res_w = sh_w[warp];

  for (int64_t t = (int64_t)blockIdx.x * kWarps + warp; t < a.tokens; t += (int64_t)gridDim.x * kWarps) {
    const T *row = static_cast<const T *>(a.logits) + t * a.stride;
    float x[P];
    softmax_stats st{0.0f, 1.0f};
    if (a.scoring == LK_MOE_SOFTMAX_TOPK) {
      uint32_t max_key = 0;
      bool nan = false;
      for (int64_t c0 = 0; c0 < a.experts; c0 += kChunk) {
        load_chunk<T, L, P, V>(row, c0, a.experts, lane, true, x);
        stats_add_max<L, P, V>(x, c0, a.experts, lane, true, max_key, nan);
      }
      max_key = seg_max<L>(max_key);
      nan = seg_any<L>(nan, lane);
      const float max = key_value(max_key);
      float sum = 0.0f;
      for (int64_t c0 = 0; c0 < a.experts; c0 += kChunk) {
        load_chunk<T, L, P, V>(row, c0, a.experts, lane, true, x);
        sum = stats_add_sum<L, P, V>(x, c0, a.experts, lane, true, max, sum);
      }
      st = stats_of(max, seg_sum<L>(sum), nan);
    }
    uint32_t kept = kFull;
    if (a.groups > 1) {
      group_keys_general<T, L>(a, st, row, true, lane, 1, 0, group_key);
      kept = kept_groups<L>(a, group_key, 1, 0, lane, lane);
    }
    for (int64_t c0 = 0; c0 < a.experts; c0 += kChunk) {
      load_chunk<T, L, P, V>(row, c0, a.experts, lane, true, x);
      float bias[P];
      load_bias<L, P, V>(a.bias, c0, a.experts, lane, bias);
      uint32_t key[P];
      selection_keys<P>(a, st, x, bias, key);
#pragma unroll
      for (int j = 0; j < P; j++) {
        const int64_t e = expert_of<L, V>(c0, j, lane);
        if (e >= a.experts || (a.groups > 1 && !group_kept(a, kept, e / a.group_size))) key[j] = 0;
      }
      /* the running top k of the chunks before, entry `lane` in each lane: ids below this chunk's */
      __syncwarp();
      const uint32_t carried_key = c0 > 0 && lane < a.k ? res_key[lane] : 0u;
      const int32_t carried_id = c0 > 0 && lane < a.k ? res_id[lane] : INT32_MAX;
      __syncwarp();
      select_top_k<L, P, V>(a, key, c0, lane, carried_key, carried_id, true, 1, 0, res_id, res_key);
    }
    finish<T, L, 1>(a, st, row, t, true, lane, 1, 0, res_id, res_w, group_key); /* the group keys are spent */
  }
}

int multiprocessor_count() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 1;
  }
  return count > 0 ? count : 1;
}

template <typename T, int L, int P, bool kChunked>
lk_status launch(gating_args a, bool vector_loads, cudaStream_t stream) {
  constexpr int kVec = 16 / (int)sizeof(T);
  const int v = vector_loads ? kVec : 1;
  /* groups that are whole loads of a power of two of lanes (DeepSeek-V3's groups of 32: 8 lanes'
   * f32 loads, 4 lanes' bf16 ones) are scored from the keys in registers */
  a.aligned_groups = false;
  if (!kChunked && a.groups > 1 && a.group_size % v == 0) {
    const int q = a.group_size / v;
    if ((q & (q - 1)) == 0 && q <= L) {
      a.aligned_groups = true;
      a.group_shift = 0;
      while ((1 << a.group_shift) < q) a.group_shift++;
    }
  }
  const int64_t per_block = (int64_t)kWarps * (32 / L);
  const int64_t needed = (a.tokens + per_block - 1) / per_block;
  const int64_t cap = (int64_t)multiprocessor_count() * kBlocksPerSm;
  const dim3 grid((unsigned)(needed < cap ? needed : cap));
  if constexpr (kChunked) {
    if (vector_loads) LK_LAUNCH(grid, dim3(kThreads), 0, stream, moe_gating_chunked<T, P, kVec>)(a);
    else LK_LAUNCH(grid, dim3(kThreads), 0, stream, moe_gating_chunked<T, P, 1>)(a);
    return lk_cuda_launched("moe_gating_chunked");
  } else {
    if (vector_loads) LK_LAUNCH(grid, dim3(kThreads), 0, stream, moe_gating_rows<T, L, P, kVec>)(a);
    else LK_LAUNCH(grid, dim3(kThreads), 0, stream, moe_gating_rows<T, L, P, 1>)(a);
    return lk_cuda_launched("moe_gating_rows");
  }
}

template <typename T>
lk_status dispatch(const gating_args &a, bool vector_loads, cudaStream_t stream) {
  const int32_t e = a.experts;
  if (e <= 8) return launch<T, 1, 8, false>(a, vector_loads, stream);
  if (e <= 16) return launch<T, 2, 8, false>(a, vector_loads, stream);
  if (e <= 32) return launch<T, 4, 8, false>(a, vector_loads, stream);
  if (e <= 64) return launch<T, 8, 8, false>(a, vector_loads, stream);
  if (e <= 128) return launch<T, 16, 8, false>(a, vector_loads, stream);
  if (e <= 256) return launch<T, 32, 8, false>(a, vector_loads, stream);
  if (e <= 512) return launch<T, 32, 16, false>(a, vector_loads, stream);
  return launch<T, 32, 8, true>(a, vector_loads, stream);
}

lk_status run(lk_cuda_stream stream, const lk_moe_gating_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_moe_gating_params p = *params;
  const lk_status status = lk_moe_gating_check(&p);
  if (status != LK_OK || p.num_tokens == 0) return status;
  gating_args a;
  a.logits = p.logits;
  a.weights = p.weights;
  a.expert_ids = p.expert_ids;
  a.bias = p.correction_bias;
  a.tokens = p.num_tokens;
  a.stride = p.logits_stride;
  a.experts = (int32_t)p.num_experts;
  a.k = (int32_t)p.top_k;
  a.groups = p.num_groups > 1 ? (int32_t)p.num_groups : 1;
  a.topk_groups = p.num_groups > 1 ? (int32_t)p.topk_groups : 1;
  a.group_size = a.experts / a.groups;
  a.group_shift = 0;
  a.aligned_groups = false;
  a.renormalize = (p.flags & LK_MOE_RENORMALIZE) != 0;
  a.scale = p.routed_scaling_factor;
  a.scoring = p.scoring;
  return lk_cuda_dispatch_dtype(p.dtype, [&](auto element) {
    using T = decltype(element);
    constexpr int kVec = 16 / (int)sizeof(T);
    const bool vector_loads = p.num_experts % kVec == 0 && lk_aligned(p.logits, p.logits_stride, sizeof(T), 16) &&
                              (uintptr_t)p.correction_bias % 16 == 0;
    return dispatch<T>(a, vector_loads, lk_cuda_as_stream(stream));
  });
}

} // namespace

extern "C" {

LK_CUDA_API lk_status lk_cuda_moe_gating(lk_cuda_stream stream, const lk_moe_gating_params *params) { return run(stream, params); }

} // extern "C"
