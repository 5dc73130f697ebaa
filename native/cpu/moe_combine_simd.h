/* MoE combine over a SIMD mapping (included by moe_avx2.c and moe_avx512.c after their mapping
 * header): per token, the weighted sum of its expert rows in f32, in slot order, with one fused
 * multiply-add per slot and element (fmaf in the scalar kernel: the same bits on every ISA),
 * rounded once to the output's dtype. The hidden dimension goes in chunks of four vectors, each
 * chunk reading every slot's row, so the accumulators stay in registers whatever the width.
 * Large outputs (LK_STREAMING_STORE_MIN_BYTES) are written with streaming stores where a row starts
 * aligned: the output is not read, and a plain store's read for ownership would add half again
 * to a k = 2 combine's traffic. */
#include "moe_combine.h"
#include "simd_dtype.h"

void LK_ISA_SUFFIX(lk_moe_combine_rows)(const void *arg, int64_t begin, int64_t end) {
  const moe_combine_job *job = (const moe_combine_job *)arg;
  const lk_moe_combine_params *p = &job->p;
  const int64_t h = p->hidden, V = LK_VEC_LANES;
  const void *rows[LK_MOE_MAX_TOP_K];
  float w[LK_MOE_MAX_TOP_K];
  lk_vf wv[LK_MOE_MAX_TOP_K];
  for (int64_t t = begin; t < end; t++) {
    const int64_t n = moe_combine_sources(p, t, rows, w);
    for (int64_t j = 0; j < n; j++) wv[j] = lk_v_set1(w[j]);
    void *out = (char *)p->output + (size_t)t * (size_t)p->output_stride * lk_dtype_size(p->dtype);
    const bool stream = job->streaming && lk_stream_head(out, p->dtype) == 0; /* rows that start aligned */
    int64_t i = 0;
    for (; i + 4 * V <= h; i += 4 * V) {
      lk_vf a0 = lk_v_zero(), a1 = lk_v_zero(), a2 = lk_v_zero(), a3 = lk_v_zero();
      for (int64_t j = 0; j < n; j++) {
        a0 = lk_v_fmadd(wv[j], lk_v_load(rows[j], i, p->dtype), a0);
        a1 = lk_v_fmadd(wv[j], lk_v_load(rows[j], i + V, p->dtype), a1);
        a2 = lk_v_fmadd(wv[j], lk_v_load(rows[j], i + 2 * V, p->dtype), a2);
        a3 = lk_v_fmadd(wv[j], lk_v_load(rows[j], i + 3 * V, p->dtype), a3);
      }
      if (stream) {
        lk_v_stream2(out, i, p->dtype, a0, a1, false);
        lk_v_stream2(out, i + 2 * V, p->dtype, a2, a3, false);
      } else {
        lk_v_store(out, i, p->dtype, a0, false);
        lk_v_store(out, i + V, p->dtype, a1, false);
        lk_v_store(out, i + 2 * V, p->dtype, a2, false);
        lk_v_store(out, i + 3 * V, p->dtype, a3, false);
      }
    }
    for (; i + V <= h; i += V) {
      lk_vf a = lk_v_zero();
      for (int64_t j = 0; j < n; j++) a = lk_v_fmadd(wv[j], lk_v_load(rows[j], i, p->dtype), a);
      lk_v_store(out, i, p->dtype, a, false);
    }
    for (; i < h; i++) { /* the ragged tail, as the scalar kernel does it */
      float a = 0.0f;
      for (int64_t j = 0; j < n; j++) a = fmaf(w[j], lk_load_element(rows[j], i, p->dtype), a);
      lk_store_element(out, i, p->dtype, a);
    }
  }
  if (job->streaming) lk_v_stream_fence();
}
