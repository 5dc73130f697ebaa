/* MoE gating and combine for AVX-512 F/BW/DQ/VL (compiled with those flags only; chosen at run time). */
#include "simd_avx512.h"
#include "moe_simd.h"
#include "moe_select_avx512.h"
#define MOE_EXP_FOR_SUM moe_exp_for_sum
#include "moe_batch_simd.h"
#include "moe_combine_simd.h"

void lk_moe_rows_avx512(const void *arg, int64_t begin, int64_t end) {
  const moe_job *job = (const moe_job *)arg;
  /* once per range: a 16 KB array is probed page by page where it is declared */
  float buffer0[MOE_ROW_MAX + 16], buffer1[MOE_ROW_MAX + 16];
  float *const buffer[2] = {buffer0, buffer1};
  int64_t t = moe_rows_batched_avx512(job, begin, end); /* short rows, few picks: a lane a token */
  for (; t < end; t += 2) { /* in pairs (moe_tokens_ranked); an odd last token twice */
    const int64_t pair[2] = {t, t + 1 < end ? t + 1 : t};
    bool done[2];
    if (t + 3 < end) moe_prefetch_rows_avx512(job, t + 2, 2); /* the next pair, while this pair's chains run */
    moe_tokens_ranked(job, pair, buffer, done);
    for (int u = 0; u < 2 && t + u < end; u++)
      if (!done[u]) moe_token_avx512(job, t + u); /* the general kernel */
  }
}
