/* Vectorised exp, sigmoid, SiLU, tanh, erf and GELU over a SIMD mapping (include simd_avx2.h or
 * simd_avx512.h first): one source for both ISAs, f32 arithmetic with FMA.
 *
 * Maximum errors against float64 at the f32 input, measured by native/tests/test_vector_math.c
 * over every exponent (docs/activations.md has the table, the tails and how it is measured):
 *   exp 0.91 ulp, sigmoid 2.4, tanh 1.34, erf 1.22, SiLU 3.5 (AVX2) / 2.6 (AVX-512),
 *   GELU 5.3 (erf, x >= -5.5), 9.2 (tanh, x >= -2).
 *
 * How (the Cephes / SLEEF scheme; the coefficients are our own minimax fits, Lawson's method in
 * 80-bit arithmetic, rounded to f32):
 *   exp(x)   x = n ln2 + r, |r| <= ln2/2, Cody-Waite reduction with a 9-bit ln2_hi so n ln2_hi is
 *            exact; e^r = 1 + r (1 + r P4(r)); then 2^n applied in two halves (AVX2) or by vscalefps
 *            (AVX-512), so results down to the subnormals are rounded once and overflow gives +inf.
 *            x is clamped to [-104, 89] first: exp(89) overflows, exp(-104) rounds to 0, and the
 *            clamp keeps inf - inf out of the reduction (min/max pass NaN through).
 *   sigmoid  with e = exp(-|x|) <= 1: 1/(1+e) for x >= 0, e/(1+e) below, so neither form ever
 *            divides by an infinity and sigmoid(-100) is the subnormal it should be, not 0.
 *   SiLU     x * sigmoid(x): x recip(1 + e^-x) with a reciprocal estimate and a Newton step for
 *            lanes >= -87; below, (x p / (1 + e)) 2^n with e^-|x| = p 2^n, scaled last so x e^x
 *            keeps its bits where e^x is subnormal; x clamped so silu(-inf) is -0, not NaN.
 *   tanh     |x| < 0.625: x + x^3 P4(x^2) (odd polynomial: no cancellation near 0); above,
 *            1 - 2/(exp(2|x|) + 1) with the sign copied back; exp(2|x|) = inf gives exactly 1.
 *   erf      |x| < 0.921875: x + x P5(x^2); above, erf = 1 - erfc and erfc(a) = exp(-(a^2 +
 *            R8(a))), where a^2 is split exactly into hi + lo (FMA) so the exponent keeps f32
 *            accuracy even at a = 3.9, where a^2 ~ 15. a is clamped at 3.92, where erf rounds to 1.
 *   GELU     0.5 x (1 + erf(x/sqrt2)) without the cancellation of 1 + erf for x < 0: below
 *            x/sqrt2 = -0.921875 it is 0.5 x erfc(|x|/sqrt2) from the same exp form, with x^2/2
 *            exact, so it keeps relative accuracy down to x = -5.54; below that, where
 *            |gelu| < 1e-7, it returns -0.
 *   GELU tanh 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi)(x + 0.044715 x^3): the SiLU
 *            forms again, so there is no cancellation for x < 0 either. */
#ifndef LK_SIMD_MATH_H
#define LK_SIMD_MATH_H

#include <float.h>

/* ---- exp ------------------------------------------------------------------------------------ */

#define LK_EXP_MAX_ARG 89.0f   /* exp overflows to +inf from 88.7228 */
#define LK_EXP_MIN_ARG -104.0f /* exp rounds to 0 below -103.97 */

/* p * 2^n for integral n in [-252, 252] (as f32), rounded once, overflowing to inf and
 * underflowing through the subnormals. */
static LK_INLINE lk_vf lk_v_scale_pow2(lk_vf p, lk_vf n) {
#if LK_VEC_LANES == 16
  return _mm512_scalef_ps(p, n);
#else
  /* 2^n as 2^h * 2^(n-h), h = n/2 rounded: both factors normal for every n in range, and the
   * first product is exact (a power of two times a normal), so only the second one rounds. */
  lk_vf h = lk_v_round(lk_v_mul(n, lk_v_set1(0.5f)));
  lk_vi bias = lk_vi_set1(127);
  lk_vf s1 = lk_v_as_f32(lk_vi_slli(lk_vi_add(lk_v_cvt_i32(h), bias), 23));
  lk_vf s2 = lk_v_as_f32(lk_vi_slli(lk_vi_add(lk_v_cvt_i32(lk_v_sub(n, h)), bias), 23));
  return lk_v_mul(lk_v_mul(p, s1), s2);
#endif
}

/* p * 2^n for integral n in [-126, 127]: 2^n is a normal f32. */
static LK_INLINE lk_vf lk_v_scale_pow2_normal(lk_vf p, lk_vf n) {
#if LK_VEC_LANES == 16
  return _mm512_scalef_ps(p, n);
#else
  return lk_v_mul(p, lk_v_as_f32(lk_vi_slli(lk_vi_add(lk_v_cvt_i32(n), lk_vi_set1(127)), 23)));
#endif
}

/* 1 / d for finite d >= 1 whose reciprocal is normal: the ISA's estimate (12 bits on AVX2, 14 on
 * AVX-512) and one Newton step, about 1 ulp; a division costs 3-5x the issue slots. */
static LK_INLINE lk_vf lk_v_recip(lk_vf d) {
#if LK_VEC_LANES == 16
  lk_vf r = _mm512_rcp14_ps(d);
#else
  lk_vf r = _mm256_rcp_ps(d);
#endif
  return lk_v_fmadd(r, lk_v_fnmadd(d, r, lk_v_set1(1.0f)), r);
}

/* e^r for |r| <= ln2/2 (plus rounding slack): 1 + r (1 + r P4(r)), P4 a minimax fit of
 * (e^r - 1 - r) / r^2 with relative error 3e-9 in e^r before rounding; six FMAs. */
static LK_INLINE lk_vf lk_v_exp_reduced(lk_vf r) {
  const lk_vf one = lk_v_set1(1.0f);
  lk_vf p = lk_v_set1(1.381461276e-03f);
  p = lk_v_fmadd(p, r, lk_v_set1(8.368710056e-03f));
  p = lk_v_fmadd(p, r, lk_v_set1(4.166838899e-02f));
  p = lk_v_fmadd(p, r, lk_v_set1(1.666652113e-01f));
  p = lk_v_fmadd(p, r, lk_v_set1(4.999999404e-01f));
  p = lk_v_fmadd(p, r, one);
  return lk_v_fmadd(p, r, one);
}

/* ln2 = LN2_HI + LN2_LO with LN2_HI of 9 significant bits: n * LN2_HI is exact for |n| < 2^15. */
#define LK_LN2_HI 0.693359375f
#define LK_LN2_LO -2.12194440e-4f
#define LK_LOG2E 1.44269504088896341f

/* e^(hi + lo) for hi + lo in [-115, 0] and lo small against hi or exact: the reduction subtracts
 * n ln2 from hi before lo joins in, so lo's bits are not lost to hi's rounding. */
static LK_INLINE lk_vf lk_v_exp_split(lk_vf hi, lk_vf lo) {
  lk_vf n = lk_v_round(lk_v_mul(lk_v_add(hi, lo), lk_v_set1(LK_LOG2E)));
  lk_vf r = lk_v_fnmadd(n, lk_v_set1(LK_LN2_HI), hi);
  r = lk_v_add(lk_v_fnmadd(n, lk_v_set1(LK_LN2_LO), r), lo);
  return lk_v_scale_pow2(lk_v_exp_reduced(r), n);
}

/* e^x as p * 2^n (p = e^r in [0.7, 1.42], n integral) for x clamped to [lo, 89]: callers that
 * multiply the result by something first (x e^x) scale once at the end, so a subnormal e^x does
 * not lose the product's bits. */
static LK_INLINE lk_vf lk_v_exp_parts(lk_vf x, float lo, lk_vf *n_out) {
  /* min/max return their second operand when either is NaN: NaN goes through. */
  x = lk_v_max(lk_v_set1(lo), lk_v_min(lk_v_set1(LK_EXP_MAX_ARG), x));
  lk_vf n = lk_v_round(lk_v_mul(x, lk_v_set1(LK_LOG2E)));
  lk_vf r = lk_v_fnmadd(n, lk_v_set1(LK_LN2_HI), x);
  r = lk_v_fnmadd(n, lk_v_set1(LK_LN2_LO), r);
  *n_out = n;
  return lk_v_exp_reduced(r);
}

static LK_INLINE lk_vf lk_v_exp(lk_vf x) {
  lk_vf n;
  lk_vf p = lk_v_exp_parts(x, LK_EXP_MIN_ARG, &n);
  return lk_v_scale_pow2(p, n);
}

/* ---- sigmoid and SiLU ------------------------------------------------------------------------ */

static LK_INLINE lk_vf lk_v_copy_sign(lk_vf magnitude, lk_vf sign_of) {
  return lk_v_or(magnitude, lk_v_and(sign_of, lk_v_set1(-0.0f)));
}

static LK_INLINE lk_vf lk_v_sigmoid(lk_vf x) {
  lk_vf e = lk_v_exp(lk_v_neg(lk_v_abs(x)));
  lk_vf numerator = lk_v_select(lk_v_cmp_lt(x, lk_v_zero()), e, lk_v_set1(1.0f));
  return lk_v_div(numerator, lk_v_add(e, lk_v_set1(1.0f)));
}

/* x * sigmoid(z): z = x for SiLU, z = 2u for the tanh GELU. With e = e^-|z| = p 2^n:
 * x / (1 + e) for z >= 0, and for z < 0 (x p / (1 + e)) 2^n, scaled last so that x e^-|z| keeps
 * its bits where e^-|z| alone would be subnormal (silu(-90) ~ -1e-37 is a normal f32).
 * x_floor: x is clamped there (and z at -120) where x e^z underflows to 0 anyway: x * 0 would be
 * NaN for x = -inf, and the clamp of e^z must not leave a huge x times a tiny e. */
static LK_INLINE lk_vf lk_v_mul_sigmoid(lk_vf x, lk_vf z, float x_floor) {
  x = lk_v_max(lk_v_set1(x_floor), x); /* NaN passes through */
  lk_vf n;
  lk_vf p = lk_v_exp_parts(lk_v_neg(lk_v_abs(z)), -120.0f, &n);
  lk_vf e = lk_v_scale_pow2(p, n);
  lk_vmask negative = lk_v_cmp_lt(z, lk_v_zero());
  lk_vf q = lk_v_div(lk_v_select(negative, lk_v_mul(x, p), x), lk_v_add(e, lk_v_set1(1.0f)));
  return lk_v_scale_pow2(q, lk_v_select(negative, n, lk_v_zero()));
}

/* SiLU is what SwiGLU spends its time on: vectors with every lane >= -87 (or NaN), nearly all of
 * them, take x / (1 + e^-x) in every lane with e^-x <= e^87 finite, so the division can be a reciprocal estimate
 * and a Newton step, and 2^n a single normal scale (e^-x is clamped at e^-87, where 1 + e^-x is 1
 * already). Lanes below -87 (where e^x is subnormal) take the full form, chosen lane by lane. 120 e^-120 < 2^-150:
 * silu(x) rounds to -0 below -120. */
static LK_INLINE lk_vf lk_v_silu(lk_vf x) {
  lk_vf z = lk_v_max(lk_v_set1(-87.0f), lk_v_neg(x)); /* NaN passes */
  lk_vf n = lk_v_round(lk_v_mul(z, lk_v_set1(LK_LOG2E)));
  lk_vf r = lk_v_fnmadd(n, lk_v_set1(LK_LN2_HI), z);
  r = lk_v_fnmadd(n, lk_v_set1(LK_LN2_LO), r);
  lk_vf e = lk_v_scale_pow2_normal(lk_v_exp_reduced(r), n);
  lk_vf y = lk_v_mul(x, lk_v_recip(lk_v_add(e, lk_v_set1(1.0f))));
  /* Lane by lane, so an element's result never depends on its neighbours. */
  lk_vmask far = lk_v_cmp_lt(x, lk_v_set1(-87.0f));
  if (lk_v_mask_any(far)) y = lk_v_select(far, lk_v_mul_sigmoid(x, x, -120.0f), y);
  return y;
}

/* ---- tanh ------------------------------------------------------------------------------------ */

static LK_INLINE lk_vf lk_v_tanh(lk_vf x) {
  lk_vf a = lk_v_abs(x);
  lk_vf s = lk_v_mul(x, x);
  lk_vf p = lk_v_set1(-5.704987328e-03f);
  p = lk_v_fmadd(p, s, lk_v_set1(2.063908800e-02f));
  p = lk_v_fmadd(p, s, lk_v_set1(-5.373971537e-02f));
  p = lk_v_fmadd(p, s, lk_v_set1(1.333144158e-01f));
  p = lk_v_fmadd(p, s, lk_v_set1(-3.333328068e-01f));
  lk_vf small = lk_v_fmadd(lk_v_mul(a, s), p, a);
  lk_vf e = lk_v_exp(lk_v_add(a, a));
  lk_vf large = lk_v_sub(lk_v_set1(1.0f), lk_v_div(lk_v_set1(2.0f), lk_v_add(e, lk_v_set1(1.0f))));
  /* NaN fails the compare and takes the large form, which is NaN too. Both forms are computed on
   * |x| and take x's sign last, so tanh(-0) is -0. */
  return lk_v_copy_sign(lk_v_select(lk_v_cmp_lt(a, lk_v_set1(0.625f)), small, large), x);
}

/* ---- erf, erfc and GELU ---------------------------------------------------------------------- */

#define LK_ERF_SMALL 0.921875f /* below: the odd polynomial; above: 1 - erfc */
#define LK_ERF_ONE 3.92f       /* erf rounds to 1 (erfc < 2^-26) from about 3.83 */

/* erf(x) / x - 1 for x^2 = s, s <= 0.921875^2. */
static LK_INLINE lk_vf lk_v_erf_small_poly(lk_vf s) {
  lk_vf p = lk_v_set1(-5.990893114e-04f);
  p = lk_v_fmadd(p, s, lk_v_set1(4.993189592e-03f));
  p = lk_v_fmadd(p, s, lk_v_set1(-2.676662430e-02f));
  p = lk_v_fmadd(p, s, lk_v_set1(1.128181666e-01f));
  p = lk_v_fmadd(p, s, lk_v_set1(-3.761249483e-01f));
  return lk_v_fmadd(p, s, lk_v_set1(1.283791512e-01f));
}

/* erfc(a) = exp(-(a^2 + R(a))) for a in [0.921875, 3.92], given a^2 = s_hi + s_lo exactly. */
static LK_INLINE lk_vf lk_v_erfc_mid(lk_vf a, lk_vf s_hi, lk_vf s_lo) {
  lk_vf u = lk_v_sub(a, lk_v_set1(2.421875f)); /* centred: the terms fall off, no cancellation */
  lk_vf r = lk_v_set1(-1.632531394e-06f);
  r = lk_v_fmadd(r, u, lk_v_set1(1.429915937e-05f));
  r = lk_v_fmadd(r, u, lk_v_set1(-8.487152809e-05f));
  r = lk_v_fmadd(r, u, lk_v_set1(4.582395486e-04f));
  r = lk_v_fmadd(r, u, lk_v_set1(-2.336690668e-03f));
  r = lk_v_fmadd(r, u, lk_v_set1(1.156146266e-02f));
  r = lk_v_fmadd(r, u, lk_v_set1(-5.873262137e-02f));
  r = lk_v_fmadd(r, u, lk_v_set1(3.616503477e-01f));
  r = lk_v_fmadd(r, u, lk_v_set1(1.528914332e+00f));
  return lk_v_exp_split(lk_v_neg(s_hi), lk_v_neg(lk_v_add(s_lo, r)));
}

static LK_INLINE lk_vf lk_v_erf(lk_vf x) {
  lk_vf s = lk_v_mul(x, x);
  lk_vf small = lk_v_fmadd(x, lk_v_erf_small_poly(s), x);
  lk_vf a = lk_v_min(lk_v_set1(LK_ERF_ONE), lk_v_abs(x)); /* NaN passes */
  lk_vf a2 = lk_v_mul(a, a);
  lk_vf erfc = lk_v_erfc_mid(a, a2, lk_v_fmsub(a, a, a2));
  lk_vf large = lk_v_copy_sign(lk_v_sub(lk_v_set1(1.0f), erfc), x);
  return lk_v_select(lk_v_cmp_lt(lk_v_abs(x), lk_v_set1(LK_ERF_SMALL)), small, large);
}

static LK_INLINE lk_vf lk_v_gelu_erf(lk_vf x) {
  const lk_vf half = lk_v_set1(0.5f);
  lk_vf t = lk_v_mul(x, lk_v_set1(0.70710678118654752f));
  lk_vf half_x = lk_v_mul(half, x);
  /* |t| small: 0.5 x (1 + erf(t)), 1 + erf(t) >= 0.19 so the sum loses under 3 bits. */
  lk_vf erf_t = lk_v_fmadd(t, lk_v_erf_small_poly(lk_v_mul(t, t)), t);
  lk_vf small = lk_v_fmadd(half_x, erf_t, half_x);
  /* |t| large: erfc(|t|) with t^2 = x^2 / 2 split exactly (halving is exact). */
  lk_vf xc = lk_v_min(lk_v_set1(LK_ERF_ONE * 1.41421356f), lk_v_abs(x)); /* NaN passes */
  lk_vf x2 = lk_v_mul(xc, xc);
  lk_vf erfc = lk_v_erfc_mid(lk_v_mul(xc, lk_v_set1(0.70710678118654752f)), lk_v_mul(x2, half),
                             lk_v_mul(lk_v_fmsub(xc, xc, x2), half));
  /* x > 0: x (1 - erfc/2) (not x - 0.5 x erfc: inf - inf at x = inf); x < 0: 0.5 x erfc, and -0
   * once erfc is beyond the fit (x < -5.54). */
  lk_vf positive = lk_v_mul(x, lk_v_fnmadd(half, erfc, lk_v_set1(1.0f)));
  lk_vf negative = lk_v_select(lk_v_cmp_lt(xc, lk_v_set1(LK_ERF_ONE * 1.41421356f)), lk_v_mul(half_x, erfc),
                               lk_v_set1(-0.0f));
  lk_vf large = lk_v_select(lk_v_cmp_lt(x, lk_v_zero()), negative, positive);
  lk_vmask is_small = lk_v_cmp_lt(lk_v_abs(t), lk_v_set1(LK_ERF_SMALL));
  /* NaN: not small, not negative: positive = x - 0.5 x erfc, NaN. */
  return lk_v_select(is_small, small, large);
}

static LK_INLINE lk_vf lk_v_gelu_tanh(lk_vf x) {
  /* 2u = 2 sqrt(2/pi) x (1 + 0.044715 x^2) */
  lk_vf inner = lk_v_fmadd(lk_v_mul(x, x), lk_v_set1(0.044715f), lk_v_set1(1.0f));
  lk_vf two_u = lk_v_mul(lk_v_mul(x, lk_v_set1(1.5957691216057308f)), inner);
  /* 2u(-13) = -177: below x = -13 the result rounds to -0. */
  return lk_v_mul_sigmoid(x, two_u, -13.0f);
}

/* ---- 16-bit outputs -------------------------------------------------------------------------- */
/* A bf16 (f16) result keeps 8 (11) significant bits: f32 math with a relative error far below half
 * an output ulp rounds the same nearly always, and the activation kernels use these cheaper forms
 * when the output is 16-bit (docs/activations.md: "16-bit outputs" has the measured errors).
 * Special values behave exactly as in the f32 forms above. */
typedef enum { LK_OUT16_BF16, LK_OUT16_F16 } lk_out16;

/* 2^f for |f| <= 0.5 (plus rounding slack): relative-error fits with the constant term 1 (so 2^0 is
 * exactly 1 and x / (1 + e^-x) halves tiny x exactly), degree 4 (2^-17.7, bf16) or 5 (2^-22.0,
 * f16), measured in f32 Horner over |f| <= 0.51. */
static LK_INLINE lk_vf lk_v_exp2_reduced16(lk_vf f, lk_out16 out) {
  lk_vf p;
  if (out == LK_OUT16_BF16) {
    p = lk_v_set1(9.582852945e-03f);
    p = lk_v_fmadd(p, f, lk_v_set1(5.590642989e-02f));
    p = lk_v_fmadd(p, f, lk_v_set1(2.402409911e-01f));
    p = lk_v_fmadd(p, f, lk_v_set1(6.931241751e-01f));
    return lk_v_fmadd(p, f, lk_v_set1(1.0f));
  }
  p = lk_v_set1(1.326472615e-03f);
  p = lk_v_fmadd(p, f, lk_v_set1(9.671512991e-03f));
  p = lk_v_fmadd(p, f, lk_v_set1(5.550733581e-02f));
  p = lk_v_fmadd(p, f, lk_v_set1(2.402224243e-01f));
  p = lk_v_fmadd(p, f, lk_v_set1(6.931470037e-01f));
  return lk_v_fmadd(p, f, lk_v_set1(1.0f));
}

/* 1 / d for finite d >= 1 with a normal reciprocal, for 16-bit outputs. LK_OUT16_RECIP_NEWTON_BF16
 * 0: bf16 takes the AVX-512 estimate alone (relative error <= 2^-14); AVX2's 12-bit estimate, and
 * every f16 reciprocal, get the Newton step. */
#ifndef LK_OUT16_RECIP_NEWTON_BF16
#define LK_OUT16_RECIP_NEWTON_BF16 0
#endif
static LK_INLINE lk_vf lk_v_recip16(lk_vf d, lk_out16 out) {
#if LK_VEC_LANES == 16
  if (out == LK_OUT16_BF16 && !LK_OUT16_RECIP_NEWTON_BF16) return _mm512_rcp14_ps(d);
#endif
  (void)out;
  return lk_v_recip(d);
}

/* x * sigmoid(s) = x / (1 + e^-s) for 16-bit outputs: e^-s = 2^f 2^n with t = -s log2(e), n = round(t)
 * and f = t - n from one FMA (the product exact, so f carries only log2(e)'s rounding, under 2^-25
 * relative per unit of |t|); s is clamped at 87 (1 + e^-87 is 1). Lanes with s < -87, where e^s is
 * subnormal, take the f32 form lk_v_mul_sigmoid (zero_below as there), lane by lane. NaN passes
 * through the min and every step. */
static LK_INLINE lk_vf lk_v_mul_sigmoid16(lk_vf x, lk_vf s, float zero_below, lk_out16 out) {
  const lk_vf minus_log2e = lk_v_set1(-LK_LOG2E);
  lk_vf sc = lk_v_min(lk_v_set1(87.0f), s);
  lk_vf n = lk_v_round(lk_v_mul(sc, minus_log2e));
  lk_vf f = lk_v_fmsub(sc, minus_log2e, n);
  lk_vf e = lk_v_scale_pow2_normal(lk_v_exp2_reduced16(f, out), n);
  lk_vf y = lk_v_mul(x, lk_v_recip16(lk_v_add(e, lk_v_set1(1.0f)), out));
  lk_vmask far = lk_v_cmp_lt(s, lk_v_set1(-87.0f));
  if (lk_v_mask_any(far)) y = lk_v_select(far, lk_v_mul_sigmoid(x, s, zero_below), y);
  return y;
}

static LK_INLINE lk_vf lk_v_silu16(lk_vf x, lk_out16 out) { return lk_v_mul_sigmoid16(x, x, -120.0f, out); }

static LK_INLINE lk_vf lk_v_gelu_tanh16(lk_vf x, lk_out16 out) {
  lk_vf inner = lk_v_fmadd(lk_v_mul(x, x), lk_v_set1(0.044715f), lk_v_set1(1.0f));
  lk_vf two_u = lk_v_mul(lk_v_mul(x, lk_v_set1(1.5957691216057308f)), inner);
  return lk_v_mul_sigmoid16(x, two_u, -13.0f, out);
}

static LK_INLINE lk_vf lk_v_relu(lk_vf x) { return lk_v_max(lk_v_zero(), x); /* NaN and -0 pass */ }

#endif /* LK_SIMD_MATH_H */
