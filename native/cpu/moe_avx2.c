/* MoE gating and combine for AVX2 + FMA (compiled with those flags only; chosen at run time). */
#include "simd_avx2.h"
#include "moe_simd.h"
#include "moe_batch_simd.h"
#include "moe_combine_simd.h"

void lk_moe_rows_avx2(const void *arg, int64_t begin, int64_t end) {
  const moe_job *job = (const moe_job *)arg;
  for (int64_t t = moe_rows_batched_avx2(job, begin, end); t < end; t++) moe_token_avx2(job, t); /* batches of 8, then one by one */
}
