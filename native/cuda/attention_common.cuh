/* Attention on the GPU, what the prefill kernel (attention_prefill.cu, tensor cores) and the decode
 * kernel (attention_decode.cu, flash-decoding) share: the job attention.cu validates and hands to
 * one of them, and the device-side definitions of the contract (llmkernels.h, lk_attention), the
 * same as the CPU's attention.h:
 *   - a sequence's queries and keys, read from device memory and checked as they are read (a bad
 *     offset or length is reported through the error sink and the sequence skipped);
 *   - query i of Sq sits at key position pos = i + Sk - Sq; visible keys [lo, hi] from the causal
 *     flag and the window;
 *   - the score: dot * scale, then softcap * tanh(s / softcap), then - slope * |pos - j|, then
 *     + bias[h, token, j] (a -inf bias masks the key, a NaN anywhere makes the row NaN);
 *   - paged keys through the block table, each entry checked before it addresses the cache;
 *   - the finished row: out = acc / l rounded once, lse = m + log(l); no visible key: out 0, lse -inf. */
#ifndef LK_ATTENTION_COMMON_CUH
#define LK_ATTENTION_COMMON_CUH

#include "lk_cuda_device.cuh"

/* What the kernels read: the validated params with everything resolved (strides in elements, the
 * scale, the bounds), as one by-value kernel argument. */
struct lk_cuda_attention_job {
  const void *q, *k, *v;
  void *out;
  float *lse;
  const int32_t *cu_seqlens_q, *cu_seqlens_k, *seqlens_k, *block_tables;
  const void *key_cache, *value_cache; /* paged when key_cache != NULL */
  int64_t num_blocks, block_size, max_blocks_per_seq;
  int64_t q_stride, k_stride, v_stride, out_stride;
  int64_t window_left, window_right;
  int64_t bias_head_stride, bias_row_stride;
  int64_t max_seqlen_q, max_seqlen_k; /* resolved: never 0 */
  const float *alibi_slopes, *bias;
  float scale, softcap;
  int32_t num_seqs, num_heads, num_kv_heads, head_dim, group; /* group: query heads per kv head */
  bool causal, paged;
  lk_dtype dtype;
  lk_cuda_error_sink sink;
  int32_t multiprocessor_count; /* of the current device, for grid heuristics */
};

/* The two kernels' launchers (attention.cu picks one by max_seqlen_q). */
lk_status lk_cuda_attention_prefill(const lk_cuda_attention_job &job, cudaStream_t stream);
lk_status lk_cuda_attention_decode(const lk_cuda_attention_job &job, cudaStream_t stream);

/* ---- device-side definitions ------------------------------------------------------------------- */

/* Sequence s: its first query token, query count and key count, after checking what they come from
 * (cu_seqlens_q[s], [s + 1]; cu_seqlens_k or seqlens_k) against the bounds the grid was sized by.
 * false when they are bad: reported (every caller may report: the sink keeps the first) and the
 * sequence is to be skipped. */
__device__ __forceinline__ bool lk_attention_sequence(const lk_cuda_attention_job &a, int s, int64_t *q_begin, int64_t *sq,
                                                      int64_t *sk) {
  const int64_t q0 = a.cu_seqlens_q[s], q1 = a.cu_seqlens_q[s + 1];
  if ((s == 0 && q0 != 0) || q0 < 0) {
    lk_report_index(a.sink, LK_CUDA_ENTRY_ATTENTION, LK_CUDA_ARG_CU_SEQLENS_Q, s, -1, q0, a.max_seqlen_q);
    return false;
  }
  if (q1 < q0 || q1 - q0 > a.max_seqlen_q) {
    lk_report_index(a.sink, LK_CUDA_ENTRY_ATTENTION, LK_CUDA_ARG_CU_SEQLENS_Q, s + 1, -1, q1, a.max_seqlen_q);
    return false;
  }
  int64_t keys;
  if (a.paged) {
    keys = a.seqlens_k[s];
    const int64_t covered = a.max_blocks_per_seq * a.block_size;
    const int64_t bound = a.max_seqlen_k < covered ? a.max_seqlen_k : covered;
    if (keys < 0 || keys > bound) {
      lk_report_index(a.sink, LK_CUDA_ENTRY_ATTENTION, LK_CUDA_ARG_SEQLENS_K, s, -1, keys, bound);
      return false;
    }
  } else {
    const int64_t k0 = a.cu_seqlens_k[s], k1 = a.cu_seqlens_k[s + 1];
    if ((s == 0 && k0 != 0) || k0 < 0) {
      lk_report_index(a.sink, LK_CUDA_ENTRY_ATTENTION, LK_CUDA_ARG_CU_SEQLENS_K, s, -1, k0, a.max_seqlen_k);
      return false;
    }
    if (k1 < k0 || k1 - k0 > a.max_seqlen_k) {
      lk_report_index(a.sink, LK_CUDA_ENTRY_ATTENTION, LK_CUDA_ARG_CU_SEQLENS_K, s + 1, -1, k1, a.max_seqlen_k);
      return false;
    }
    keys = k1 - k0;
  }
  *q_begin = q0;
  *sq = q1 - q0;
  *sk = keys;
  return true;
}

/* The keys query position pos may see, [*lo, *hi] (empty when hi < lo), of sk keys. */
__device__ __forceinline__ void lk_attention_visible(const lk_cuda_attention_job &a, int64_t pos, int64_t sk, int64_t *lo,
                                                     int64_t *hi) {
  int64_t l = 0, h = sk - 1;
  if (a.causal && pos < h) h = pos;
  if (a.window_left >= 0 && pos - a.window_left > l) l = pos - a.window_left;
  if (a.window_right >= 0 && pos + a.window_right < h) h = pos + a.window_right;
  *lo = l;
  *hi = h;
}

/* The score of key j for query position pos of head h (slope: alibi_slopes[h] or 0; bias_row: the
 * query token's bias row of head h, or NULL), in llmkernels.h's order. */
__device__ __forceinline__ float lk_attention_score(const lk_cuda_attention_job &a, float dot, float slope,
                                                    const float *bias_row, int64_t pos, int64_t j) {
  float score = dot * a.scale;
  if (a.softcap > 0.0f) score = a.softcap * tanhf(score / a.softcap);
  if (a.alibi_slopes) score -= slope * (float)(pos > j ? pos - j : j - pos);
  if (bias_row) score += bias_row[j];
  return score;
}

/* Key (values: value) j's row of kv head kvh in sequence s, as T elements; NULL when the block
 * table entry it needs is outside the cache (reported: the caller masks the key). For contiguous
 * keys, k0 is cu_seqlens_k[s] (the caller has it from lk_attention_sequence). */
template <typename T>
__device__ __forceinline__ const T *lk_attention_kv_row(const lk_cuda_attention_job &a, bool values, int s, int64_t k0,
                                                        int64_t j, int kvh) {
  if (!a.paged) {
    const int64_t stride = values ? a.v_stride : a.k_stride;
    return static_cast<const T *>(values ? a.v : a.k) + (k0 + j) * stride + (int64_t)kvh * a.head_dim;
  }
  /* j < 2^31 (sequence lengths are int32): one 32-bit division, where 64-bit ones are a subroutine call
   * each on the GPU (a block_size past 32 bits holds every key in its first block) */
  const int64_t column = a.block_size <= INT32_MAX ? (int64_t)((uint32_t)j / (uint32_t)a.block_size) : 0;
  const int64_t block = a.block_tables[(int64_t)s * a.max_blocks_per_seq + column];
  if (block < 0 || block >= a.num_blocks) {
    lk_report_index(a.sink, LK_CUDA_ENTRY_ATTENTION, LK_CUDA_ARG_BLOCK_TABLES, s, column, block, a.num_blocks);
    return nullptr;
  }
  const int64_t row = block * a.block_size + (j - column * a.block_size);
  return static_cast<const T *>(values ? a.value_cache : a.key_cache) + (row * a.num_kv_heads + kvh) * a.head_dim;
}

/* The finished row's factor and lse from its running max m and sum l (nan: a score was NaN). */
__device__ __forceinline__ float lk_attention_output_scale(float l, bool nan) {
  return nan ? __int_as_float(0x7fc00000) : l > 0.0f ? 1.0f / l : 0.0f;
}
__device__ __forceinline__ float lk_attention_lse(float m, float l, bool nan) {
  return nan ? __int_as_float(0x7fc00000) : l > 0.0f ? m + logf(l) : -__int_as_float(0x7f800000);
}

#endif /* LK_ATTENTION_COMMON_CUH */
