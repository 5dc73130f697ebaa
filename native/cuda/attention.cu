/* lk_cuda_attention: the checks, then one of two kernels (attention_common.cuh):
 *   - decode (attention_decode.cu, flash-decoding) when every sequence has at most
 *     kDecodeMaxQueries queries: one new token per sequence, or a few (speculative decoding);
 *   - prefill (attention_prefill.cu, FlashAttention-2 on tensor cores) otherwise.
 *
 * A GPU grid is sized on the host, so the call needs max_seqlen_q and max_seqlen_k (FlashAttention's
 * varlen API takes them for the same reason). When either is 0 the sequence offsets and lengths (and
 * the block tables) are copied back to the host, which synchronises the stream, and checked with the
 * CPU's full rules before anything is launched; given both, only what needs no device read is
 * checked here and the kernels check the rest as they read it. */
#include "attention_check.h"
#include "attention_common.cuh"

#include <vector>

namespace {

constexpr int64_t kDecodeMaxQueries = 8;

int multiprocessor_count() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 1;
  }
  return count;
}

template <typename T>
lk_status copy_back(std::vector<T> &host, const T *device, int64_t count, const char *name, cudaStream_t stream) {
  host.resize((size_t)count);
  if (count == 0) return LK_OK;
  if (!device) return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: NULL", name);
  LK_CUDA_TRY(cudaMemcpyAsync(host.data(), device, sizeof(T) * (size_t)count, cudaMemcpyDeviceToHost, stream),
              "cudaMemcpyAsync (reading the sequence lengths back: pass max_seqlen_q and max_seqlen_k to avoid it)");
  return LK_OK;
}

/* max_seqlen_q / max_seqlen_k not given: the index arrays read back and checked with the CPU's
 * rules (on host copies; the tensors are only addressed, never read); the bounds from them. */
lk_status check_on_host(lk_attention_params &p, cudaStream_t stream) {
  std::vector<int32_t> cu_q, cu_k, lens, tables;
  lk_status status;
  if ((status = copy_back(cu_q, p.cu_seqlens_q, p.num_seqs + 1, "cu_seqlens_q", stream)) != LK_OK) return status;
  const bool paged = p.cache.key_cache != nullptr;
  if (paged) {
    if ((status = copy_back(lens, p.seqlens_k, p.num_seqs, "seqlens_k", stream)) != LK_OK) return status;
    if ((status = copy_back(tables, p.block_tables, p.num_seqs * p.max_blocks_per_seq, "block_tables", stream)) != LK_OK)
      return status;
  } else if ((status = copy_back(cu_k, p.cu_seqlens_k, p.num_seqs + 1, "cu_seqlens_k", stream)) != LK_OK) {
    return status;
  }
  LK_CUDA_TRY(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  lk_attention_params h = p;
  h.cu_seqlens_q = cu_q.data();
  h.cu_seqlens_k = paged ? nullptr : cu_k.data();
  h.seqlens_k = paged ? lens.data() : nullptr;
  h.block_tables = paged ? tables.data() : nullptr;
  if ((status = lk_attention_check(&h, 1)) != LK_OK) return status;
  int64_t max_q = 0, max_k = 0;
  for (int64_t s = 0; s < p.num_seqs; s++) {
    const int64_t sq = cu_q[s + 1] - cu_q[s], sk = paged ? lens[s] : cu_k[s + 1] - cu_k[s];
    max_q = sq > max_q ? sq : max_q;
    max_k = sk > max_k ? sk : max_k;
  }
  if (p.max_seqlen_q == 0) p.max_seqlen_q = max_q;
  if (p.max_seqlen_k == 0) p.max_seqlen_k = max_k;
  return LK_OK;
}

lk_status run(lk_cuda_stream stream_handle, const lk_attention_params *params) {
  lk_clear_error();
  if (!params) return lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  lk_attention_params p = *params;
  lk_status status = lk_attention_check(&p, 0);
  if (status != LK_OK || p.num_seqs == 0) return status;
  const cudaStream_t stream = lk_cuda_as_stream(stream_handle);
  if ((p.max_seqlen_q == 0 || p.max_seqlen_k == 0) && (status = check_on_host(p, stream)) != LK_OK) return status;
  if (p.max_seqlen_q == 0) return LK_OK; /* no sequence has a query */
  if (p.num_seqs > INT32_MAX - 1 || p.num_heads > 65535)
    return lk_fail(LK_ERR_UNSUPPORTED, "num_seqs: %lld sequences of %lld heads exceed the CUDA grid", (long long)p.num_seqs,
                   (long long)p.num_heads);

  lk_cuda_attention_job job;
  job.q = p.q;
  job.k = p.k;
  job.v = p.v;
  job.out = p.out;
  job.lse = p.lse;
  job.cu_seqlens_q = p.cu_seqlens_q;
  job.cu_seqlens_k = p.cu_seqlens_k;
  job.seqlens_k = p.seqlens_k;
  job.block_tables = p.block_tables;
  job.paged = p.cache.key_cache != nullptr;
  job.key_cache = p.cache.key_cache;
  job.value_cache = p.cache.value_cache;
  job.num_blocks = p.cache.num_blocks;
  job.block_size = job.paged ? p.cache.block_size : 1;
  job.max_blocks_per_seq = p.max_blocks_per_seq;
  job.q_stride = p.q_stride;
  job.k_stride = p.k_stride;
  job.v_stride = p.v_stride;
  job.out_stride = p.out_stride;
  job.window_left = p.window_left;
  job.window_right = p.window_right;
  job.bias_head_stride = p.bias_head_stride;
  job.bias_row_stride = p.bias_row_stride;
  job.max_seqlen_q = p.max_seqlen_q;
  job.max_seqlen_k = p.max_seqlen_k > 0 ? p.max_seqlen_k : 1; /* keys all empty: rows still get out 0, lse -inf */
  job.alibi_slopes = p.alibi_slopes;
  job.bias = p.bias;
  job.scale = p.scale;
  job.softcap = p.softcap;
  job.num_seqs = (int32_t)p.num_seqs;
  job.num_heads = (int32_t)p.num_heads;
  job.num_kv_heads = (int32_t)p.num_kv_heads;
  job.head_dim = (int32_t)p.head_dim;
  job.group = (int32_t)(p.num_heads / p.num_kv_heads);
  job.causal = (p.flags & LK_ATTENTION_CAUSAL) != 0;
  job.dtype = p.dtype;
  job.multiprocessor_count = multiprocessor_count();
  if ((status = lk_cuda_error_sink_get(&job.sink)) != LK_OK) return status;
  return p.max_seqlen_q <= kDecodeMaxQueries ? lk_cuda_attention_decode(job, stream) : lk_cuda_attention_prefill(job, stream);
}

} // namespace

extern "C" LK_CUDA_API lk_status lk_cuda_attention(lk_cuda_stream stream, const lk_attention_params *params) {
  return run(stream, params);
}
