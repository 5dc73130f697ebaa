/* MoE gating and combine for AVX-512 F/BW/DQ/VL (compiled with those flags only; chosen at run time). */
#include "simd_avx512.h"
#include "moe_simd.h"
#include "moe_select_avx512.h"
#define MOE_EXP_FOR_SUM moe_exp_for_sum
#include "moe_batch_simd.h"
#include "moe_combine_simd.h"

/* The back stages of a pair, and the general kernel for the tokens they declined. */
static void moe_pair_finish(const moe_job *job, moe_pair *q) {
  bool done[2];
  moe_tokens_back(job, q, done);
  for (int u = 0; u < 2; u++)
    if (!done[u] && (u == 0 || q->t[1] != q->t[0])) moe_token_avx512(job, q->t[u]);
}

void lk_moe_rows_avx512(const void *arg, int64_t begin, int64_t end) {
  const moe_job *job = (const moe_job *)arg;
  int64_t t = moe_rows_batched_avx512(job, begin, end); /* short rows, few picks: a lane a token */
  if (!moe_ranked_applies(job)) {
    for (; t < end; t++) moe_token_avx512(job, t); /* the general kernel */
    return;
  }
  /* In pairs (an odd last token twice), software-pipelined: pair i's front stages run before pair
   * i - 1's back ones, which start by loading the candidates pair i - 1 stored piece by piece (a
   * load no store forwards: it waits for the stores to reach the cache) and gathering from its
   * rows; 3 % faster on DeepSeek-V3's shape than each pair's back stages right after its front
   * ones (137.6 against 142.2 ns a token, best of 6). Two pairs' buffers, once per range (each
   * 16 KB array is probed page by page where it is declared). */
  float buffer0[MOE_ROW_MAX + 16], buffer1[MOE_ROW_MAX + 16], buffer2[MOE_ROW_MAX + 16], buffer3[MOE_ROW_MAX + 16];
  float *const buffer[2][2] = {{buffer0, buffer1}, {buffer2, buffer3}};
  moe_pair pair[2];
  int cur = 0;
  bool pending = false;
  for (; t < end; t += 2, cur ^= 1) {
    moe_pair *q = &pair[cur];
    q->t[0] = t;
    q->t[1] = t + 1 < end ? t + 1 : t;
    if (t + 3 < end) moe_prefetch_rows_avx512(job, t + 2, 2); /* the next pair's rows */
    moe_tokens_front(job, q, buffer[cur]);
    if (pending) moe_pair_finish(job, &pair[cur ^ 1]);
    pending = true;
  }
  if (pending) moe_pair_finish(job, &pair[cur ^ 1]);
}
