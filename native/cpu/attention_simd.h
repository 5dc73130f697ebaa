/* Attention over a SIMD mapping: included by attention_avx2.c and attention_avx512.c after their
 * mapping header. The portable kernel's row loop (attention.c) with the dot product and the
 * accumulator update in vectors of LK_VEC_LANES (two chains for the dot), the rest of head_dim in
 * scalar, one instantiation per dtype. The sums run in another order than the portable kernel's,
 * so results differ from it within rounding; paged and contiguous keys, and any thread count,
 * still give bit-identical results per ISA.
 * This is the step before the tiled kernels (docs/attention.md): a row still reads each key and
 * value once per query head. */
#include "attention.h"
#include "simd_dtype.h"

static LK_INLINE void LK_ISA_SUFFIX(attention_rows)(const lk_attention_job *job, int64_t begin, int64_t end,
                                                    lk_dtype dtype) {
  const lk_attention_params *p = &job->p;
  const int64_t d = p->head_dim, size = (int64_t)lk_dtype_size(dtype), dv = d / LK_VEC_LANES * LK_VEC_LANES;
  float q[LK_ATTENTION_MAX_HEAD_DIM], acc[LK_ATTENTION_MAX_HEAD_DIM];
  for (int64_t r = begin; r < end; r++) {
    const lk_attention_row row = lk_attention_row_at(job, r);
    const int64_t t = row.token, h = row.head;
    const char *q_row = (const char *)p->q + (t * p->q_stride + h * d) * size;
    int64_t e = 0;
    for (; e < dv; e += LK_VEC_LANES) {
      lk_v_store(q, e, LK_DTYPE_F32, lk_v_load(q_row, e, dtype), false);
      lk_v_store(acc, e, LK_DTYPE_F32, lk_v_zero(), false);
    }
    for (; e < d; e++) {
      q[e] = lk_load_element(q_row, e, dtype);
      acc[e] = 0.0f;
    }
    const float slope = p->alibi_slopes ? p->alibi_slopes[h] : 0.0f;
    const float *bias_row = p->bias ? p->bias + h * p->bias_head_stride + t * p->bias_row_stride : NULL;
    float m = -INFINITY, l = 0.0f;
    bool nan_score = false;
    for (int64_t j = row.lo; j <= row.hi; j++) {
      const void *k_row = lk_attention_kv(job, false, row.seq, j, row.kv_head);
      lk_vf c0 = lk_v_zero(), c1 = lk_v_zero();
      for (e = 0; e + 2 * LK_VEC_LANES <= dv; e += 2 * LK_VEC_LANES) {
        c0 = lk_v_fmadd(lk_v_load(q, e, LK_DTYPE_F32), lk_v_load(k_row, e, dtype), c0);
        c1 = lk_v_fmadd(lk_v_load(q, e + LK_VEC_LANES, LK_DTYPE_F32), lk_v_load(k_row, e + LK_VEC_LANES, dtype), c1);
      }
      for (; e < dv; e += LK_VEC_LANES) c0 = lk_v_fmadd(lk_v_load(q, e, LK_DTYPE_F32), lk_v_load(k_row, e, dtype), c0);
      float dot = lk_v_hsum(lk_v_add(c0, c1));
      for (; e < d; e++) dot += q[e] * lk_load_element(k_row, e, dtype);
      const float score = lk_attention_score(p, dot, slope, bias_row, row.pos, j);
      if (score != score) nan_score = true; /* a NaN in q, k or the bias: the whole row is NaN */
      if (!(score > -INFINITY)) continue;   /* masked by the bias */
      if (score > m) {
        const float rescale = expf(m - score); /* 0 for the first key */
        const lk_vf rescale_v = lk_v_set1(rescale);
        for (e = 0; e < dv; e += LK_VEC_LANES)
          lk_v_store(acc, e, LK_DTYPE_F32, lk_v_mul(lk_v_load(acc, e, LK_DTYPE_F32), rescale_v), false);
        for (; e < d; e++) acc[e] *= rescale;
        l *= rescale;
        m = score;
      }
      const float w = expf(score - m);
      l += w;
      const void *v_row = lk_attention_kv(job, true, row.seq, j, row.kv_head);
      const lk_vf w_v = lk_v_set1(w);
      for (e = 0; e < dv; e += LK_VEC_LANES)
        lk_v_store(acc, e, LK_DTYPE_F32, lk_v_fmadd(w_v, lk_v_load(v_row, e, dtype), lk_v_load(acc, e, LK_DTYPE_F32)), false);
      for (; e < d; e++) acc[e] += w * lk_load_element(v_row, e, dtype);
    }
    char *out_row = (char *)p->out + (t * p->out_stride + h * d) * size;
    const float inv = nan_score ? NAN : l > 0.0f ? 1.0f / l : 0.0f; /* no visible key: out 0 */
    const lk_vf inv_v = lk_v_set1(inv);
    for (e = 0; e < dv; e += LK_VEC_LANES)
      lk_v_store(out_row, e, dtype, lk_v_mul(lk_v_load(acc, e, LK_DTYPE_F32), inv_v), false);
    for (; e < d; e++) lk_store_element(out_row, e, dtype, acc[e] * inv);
    if (p->lse) p->lse[t * p->num_heads + h] = nan_score ? NAN : l > 0.0f ? m + logf(l) : -INFINITY;
  }
}

void LK_ISA_SUFFIX(lk_attention_rows)(const void *job_, int64_t begin, int64_t end) {
  const lk_attention_job *job = (const lk_attention_job *)job_;
  switch (job->p.dtype) {
  case LK_DTYPE_F16: LK_ISA_SUFFIX(attention_rows)(job, begin, end, LK_DTYPE_F16); break;
  case LK_DTYPE_BF16: LK_ISA_SUFFIX(attention_rows)(job, begin, end, LK_DTYPE_BF16); break;
  default: LK_ISA_SUFFIX(attention_rows)(job, begin, end, LK_DTYPE_F32); break;
  }
}
