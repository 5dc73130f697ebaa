/* lk_cuda_moe_gating against the CPU library's scalar reference (which test_moe.c checks against
 * float64), over a reduced form of test_moe.c's grid: every scheme x dtype x renormalise x bias x
 * scaling, expert counts 1 to 2048 (each side of every kernel configuration: one token a lane up
 * to 8, a warp up to 256, 16 a lane up to 512, chunks of 256 beyond) x k 1, 2, 8 and min(32, E),
 * ragged token counts, strided and misaligned logits (the element loads), grouped selection
 * (DeepSeek-V3's and V2's shapes, groups of one, one group kept, every group kept, 32 groups),
 * exact ties, NaN and infinities in the logits and in the bias, saturated sigmoids, and token
 * counts past one pass of the grid.
 *
 * Per token: the ids bit for bit equal to the reference's; each weight within 1e-5 relative of
 * float64 (test_moe.c's rule for the CPU's own kernels), with the worst error printed beside the
 * CPU's and the largest distance from the CPU's weights in ulps. The emulator uses the C library's
 * expf and divides exactly, so it differs from the CPU only where softmax's sum over the row is a
 * tree here; on a GPU, expf and the sigmoid's __fdividef differ by a few ulp more. Where the
 * contract's decisions have no clear margin in float64 (two candidates on either side of the group
 * or top-k boundary, or two chosen weights, within 1e-5 relative of each other without being an
 * exact tie of equal inputs), f32 rounding may decide either way, on a GPU as between the CPU's
 * own ISAs: random rows are redrawn until clear (a few times), and a token that stays unclear is
 * only checked for k distinct ids in range (the run prints how many). Outputs carry poisoned
 * slack, which must stay untouched; gaps between logits rows hold +inf, which must not be read.
 * The argument contract is the CPU's, message for message, without a device too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_harness.h"
#include "test_harness.h"

#define MAX_E 2048
#define MAX_K LK_MOE_MAX_TOP_K
#define REL 1e-5
#define REDRAWS 16
#define SLACK 37
#define ID_POISON ((int32_t)0x7EADBEEF)

static uint64_t case_counter;
static long calls, tokens_checked, tokens_unclear, redraws;
static double worst_ulps[3];  /* per scheme: |w - the CPU's w| in ulps of f32 */
static double worst_ratio[3][2]; /* per scheme, GPU and CPU: |w - float64| / (REL |float64|) */

typedef enum fill_kind { FILL_UNIFORM, FILL_GRID, FILL_TIES, FILL_NONFINITE, FILL_DEEP } fill_kind;
typedef enum bias_kind { BIAS_NONE, BIAS_RANDOM, BIAS_EQUAL, BIAS_PATTERN, BIAS_SPECIAL, BIAS_NAN } bias_kind;

typedef struct gating_case {
  lk_moe_scoring scoring;
  lk_dtype dtype;
  bool renormalize;
  bias_kind bias;
  float scale, spread, bias_amplitude;
  int64_t tokens, experts, top_k, groups, topk_groups;
  int layout; /* 0 contiguous; 1 padded stride; 2 base one element off (element loads) */
  fill_kind fill;
} gating_case;

static const lk_moe_scoring schemes[] = {LK_MOE_SOFTMAX_TOPK, LK_MOE_TOPK_SOFTMAX, LK_MOE_SIGMOID};
static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};

static int64_t stride_of(const gating_case *c) { return c->layout == 1 ? c->experts + 5 + c->experts % 3 : c->experts; }

/* ---- rows ------------------------------------------------------------------------------------------- */

static void fill_ties(const gating_case *c, int64_t token, float *v) {
  static const float five[5] = {1.0f, 0.5f, 1.0f, -0.5f, 0.25f};
  const int64_t E = c->experts;
  for (int64_t e = 0; e < E; e++) {
    switch (token % 7) {
    case 0: v[e] = 0.75f; break;
    case 1: v[e] = five[(e * 3) % 5]; break;
    case 2: v[e] = (e == E - 1 || e == E / 2 || e == E - 3) ? 1.0f : 0.0f; break;
    case 3: v[e] = e == 0 ? -3.0f : -2.0f; break;
    case 4: v[e] = (e / 4) % 2 ? 1.0f : 0.0f; break;
    case 5: v[e] = (float)(((E - e) / 3) % 16) * 0.125f; break;
    default: v[e] = (float)(((e % 8) * 5) % 8) * 0.0625f; break;
    }
  }
}

static void fill_nonfinite(const gating_case *c, int64_t token, float *v) {
  const int64_t E = c->experts, k = c->top_k;
  for (int64_t e = 0; e < E; e++) v[e] = (float)((e * 37) % E - E / 2) * (4.0f / (float)E);
  switch (token % 10) {
  case 0: v[0] = v[E / 2] = v[E - 1] = NAN; break;
  case 1:
    for (int64_t e = 0; e < E - (k > 2 ? k - 2 : 0); e++) v[e] = NAN; /* NaN must fill what is left */
    break;
  case 2:
    v[E / 3] = v[E - 1] = INFINITY;
    v[0] = v[1 % E] = -INFINITY;
    break;
  case 3:
    for (int64_t e = 0; e < E; e++) v[e] = NAN;
    break;
  case 4:
    for (int64_t e = 0; e < E; e++) v[e] = -INFINITY;
    break;
  case 5:
    for (int64_t e = 0; e < E; e++) v[e] = e == E / 2 ? 0.5f : -INFINITY;
    break;
  case 6: v[E / 2] = INFINITY; break;
  case 7:
    v[1 % E] = NAN;
    v[2 % E] = v[5 % E] = INFINITY;
    v[3 % E] = -INFINITY;
    break;
  case 8: /* -0 and +0 tie: the lower id first */
    for (int64_t e = 0; e < E; e++) v[e] = e % 2 ? 0.0f : -0.0f;
    break;
  default:
    for (int64_t e = 0; e < E; e++) v[e] = e >= E - 2 ? -INFINITY : NAN;
    break;
  }
}

static void fill_row(const gating_case *c, int64_t token, rng *r, float *v) {
  const int64_t E = c->experts;
  switch (c->fill) {
  case FILL_TIES: fill_ties(c, token, v); return;
  case FILL_NONFINITE: fill_nonfinite(c, token, v); return;
  case FILL_DEEP: /* sigmoids from 2^-126 down into the subnormals */
    for (int64_t e = 0; e < E; e++) v[e] = -88.0f + rng_uniform(r, -c->spread, c->spread);
    return;
  case FILL_GRID:
    for (int64_t e = 0; e < E; e++) v[e] = E > 1 ? -c->spread + 2.0f * c->spread * (float)e / (float)(E - 1) : 0.0f;
    for (int64_t e = E - 1; e > 0; e--) {
      const int64_t j = (int64_t)rng_below(r, (uint32_t)(e + 1));
      const float t = v[e];
      v[e] = v[j];
      v[j] = t;
    }
    return;
  default:
    for (int64_t e = 0; e < E; e++) v[e] = rng_uniform(r, -c->spread, c->spread);
    return;
  }
}

static void fill_bias(const gating_case *c, rng *r, float *b) {
  const int64_t E = c->experts;
  const float a = c->bias_amplitude;
  for (int64_t e = 0; e < E; e++) {
    switch (c->bias) {
    case BIAS_EQUAL: b[e] = a; break;
    case BIAS_PATTERN: b[e] = e % 3 == 1 ? a : 0.0f; break;
    case BIAS_NAN: b[e] = e % 5 == 2 ? NAN : rng_uniform(r, -a, a); break;
    case BIAS_SPECIAL: {
      const int64_t m = e % 11;
      b[e] = m == 3 ? INFINITY : m == 6 ? -INFINITY : m == 9 ? NAN : rng_uniform(r, -a, a);
      break;
    }
    default: b[e] = rng_uniform(r, -a, a); break;
    }
  }
}

/* ---- whether the contract's decisions are clear (float64) --------------------------------------------
 * test_moe.c's rule, compactly: no two candidates across the group boundary or the top-k boundary,
 * and no two neighbours in the output's weight order, within REL of each other unless their inputs
 * are identical (an exact tie, the same on every implementation). */

typedef struct ranked {
  double v;
  int id;
} ranked;

static bool ranks_before(double va, int ia, double vb, int ib) {
  if (isnan(va)) return isnan(vb) && ia < ib;
  if (isnan(vb)) return true;
  if (va != vb) return va > vb;
  return ia < ib;
}

static int ranked_compare(const void *pa, const void *pb) {
  const ranked *a = pa, *b = pb;
  if (a->id == b->id) return 0;
  return ranks_before(a->v, a->id, b->v, b->id) ? -1 : 1;
}

typedef struct token_ref {
  int64_t E;
  double x[MAX_E], b[MAX_E], score[MAX_E], sel[MAX_E], mag[MAX_E];
} token_ref;

static token_ref scratch_token;

static bool same_value(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

static bool same_key(const token_ref *t, int a, int b) {
  if (isnan(t->sel[a]) && isnan(t->sel[b])) return true;
  if (isinf(t->sel[a]) && t->sel[a] == t->sel[b]) return true;
  return same_value(t->x[a], t->x[b]) && same_value(t->b[a], t->b[b]);
}

static bool near_expert(const token_ref *t, int a, int b) {
  if (!isfinite(t->sel[a]) || !isfinite(t->sel[b]) || same_key(t, a, b)) return false;
  return fabs(t->sel[a] - t->sel[b]) <= REL * fmax(t->mag[a], t->mag[b]);
}

static void token_load(const gating_case *c, token_ref *t, const float *row, const float *bias) {
  const int64_t E = c->experts;
  t->E = E;
  for (int64_t e = 0; e < E; e++) {
    t->x[e] = row[e];
    t->b[e] = bias ? bias[e] : 0.0;
  }
  if (c->scoring == LK_MOE_SOFTMAX_TOPK) {
    double m = -INFINITY, sum = 0.0;
    bool nan = false;
    for (int64_t e = 0; e < E; e++) {
      if (isnan(t->x[e])) nan = true;
      else if (t->x[e] > m) m = t->x[e];
    }
    if (nan) m = NAN;
    for (int64_t e = 0; e < E; e++) sum += (t->score[e] = exp(t->x[e] - m));
    for (int64_t e = 0; e < E; e++) t->score[e] /= sum;
  } else {
    for (int64_t e = 0; e < E; e++) t->score[e] = c->scoring == LK_MOE_SIGMOID ? 1.0 / (1.0 + exp(-t->x[e])) : t->x[e];
  }
  for (int64_t e = 0; e < E; e++) {
    t->sel[e] = bias ? t->score[e] + t->b[e] : t->x[e];
    t->mag[e] = bias ? fabs(t->score[e]) + fabs(t->b[e]) : 0.0;
  }
}

/* No item ranked before cut near one ranked at or after it (r sorted). */
static bool boundary_clear(const ranked *r, int64_t n, int64_t cut, bool (*near)(const void *, int, int), const void *ctx) {
  if (cut <= 0 || cut >= n) return true;
  for (int64_t i = 0; i < cut; i++)
    for (int64_t j = cut; j < n; j++)
      if (near(ctx, r[i].id, r[j].id)) return false;
  return true;
}

static bool near_expert_cb(const void *ctx, int a, int b) { return near_expert(ctx, a, b); }

typedef struct group_ref {
  const token_ref *t;
  int64_t size;
  int top[MAX_K][2], ntop[MAX_K];
  double score[MAX_K], mag[MAX_K];
} group_ref;

static bool near_group_cb(const void *ctx, int a, int b) {
  const group_ref *g = ctx;
  if (!isfinite(g->score[a]) || !isfinite(g->score[b])) return false;
  bool same = g->ntop[a] == g->ntop[b];
  for (int i = 0; same && i < g->ntop[a]; i++) same = same_key(g->t, g->top[a][i], g->top[b][i]);
  if (same) return false;
  return fabs(g->score[a] - g->score[b]) <= REL * fmax(g->mag[a], g->mag[b]);
}

/* The contract's decisions for token t in float64; whether they are clear. Fills want[0..k) with
 * the weights in the output order (the ids of a clear token are the CPU's). */
static bool token_clear(const gating_case *c, const token_ref *t, bool has_bias, double *want) {
  const int64_t E = c->experts, k = c->top_k;
  static ranked list[MAX_E];
  static bool eligible[MAX_E];
  for (int64_t e = 0; e < E; e++) eligible[e] = true;
  if (c->groups > 1) {
    static group_ref g;
    g.t = t;
    g.size = E / c->groups;
    ranked order[MAX_K];
    for (int64_t h = 0; h < c->groups; h++) {
      for (int64_t i = 0; i < g.size; i++) {
        list[i].v = t->sel[h * g.size + i];
        list[i].id = (int)(h * g.size + i);
      }
      qsort(list, (size_t)g.size, sizeof list[0], ranked_compare);
      g.ntop[h] = has_bias && g.size >= 2 ? 2 : 1;
      g.score[h] = g.mag[h] = 0.0;
      for (int i = 0; i < g.ntop[h]; i++) {
        g.top[h][i] = list[i].id;
        g.score[h] += t->sel[list[i].id];
        g.mag[h] += t->mag[list[i].id];
      }
      order[h].v = g.score[h];
      order[h].id = (int)h;
    }
    qsort(order, (size_t)c->groups, sizeof order[0], ranked_compare);
    if (!boundary_clear(order, c->groups, c->topk_groups, near_group_cb, &g)) return false;
    for (int64_t e = 0; e < E; e++) eligible[e] = false;
    for (int64_t i = 0; i < c->topk_groups; i++)
      for (int64_t m = 0; m < g.size; m++) eligible[order[i].id * g.size + m] = true;
  }
  int64_t n = 0;
  for (int64_t e = 0; e < E; e++)
    if (eligible[e]) {
      list[n].v = t->sel[e];
      list[n].id = (int)e;
      n++;
    }
  qsort(list, (size_t)n, sizeof list[0], ranked_compare);
  if (!boundary_clear(list, n, k, near_expert_cb, t)) return false;
  /* the weights of the chosen, in double, and their order */
  ranked w[MAX_K];
  double m = -INFINITY, sum = 0.0;
  bool nan = false;
  for (int64_t j = 0; j < k; j++) {
    nan = nan || isnan(t->x[list[j].id]);
    w[j].id = list[j].id;
    w[j].v = t->score[list[j].id];
    if (c->scoring == LK_MOE_TOPK_SOFTMAX && t->x[w[j].id] > m) m = t->x[w[j].id];
  }
  if (c->scoring == LK_MOE_TOPK_SOFTMAX) {
    for (int64_t j = 0; j < k; j++) sum += (w[j].v = exp(t->x[w[j].id] - m));
    for (int64_t j = 0; j < k; j++) w[j].v = nan ? NAN : w[j].v / sum;
  }
  if (c->renormalize) {
    double total = 0.0;
    for (int64_t j = 0; j < k; j++) total += w[j].v;
    for (int64_t j = 0; j < k; j++) w[j].v /= total;
  }
  if (c->scale != 0.0f)
    for (int64_t j = 0; j < k; j++) w[j].v *= (double)c->scale;
  qsort(w, (size_t)k, sizeof w[0], ranked_compare);
  for (int64_t j = 0; j < k; j++) want[j] = w[j].v;
  for (int64_t j = 1; j < k; j++) {
    const double a = w[j - 1].v, b = w[j].v;
    if (!isfinite(a) || !isfinite(b) || same_value(t->x[w[j - 1].id], t->x[w[j].id])) continue;
    if (fabs(a - b) <= REL * fmax(fabs(a), fabs(b))) return false;
  }
  return true;
}

/* ---- one case ---------------------------------------------------------------------------------------- */

static double ulps_apart(float a, float b) {
  const double scale = fmax(fabs((double)a), fabs((double)b));
  if (scale == 0.0) return 0.0;
  const double ulp = ldexp(1.0, ilogb(scale > 1.17549435e-38 ? scale : 1.17549435e-38) - 23);
  return fabs((double)a - (double)b) / ulp;
}

static const char *scheme_label(lk_moe_scoring s) {
  return s == LK_MOE_SOFTMAX_TOPK ? "softmax_topk" : s == LK_MOE_TOPK_SOFTMAX ? "topk_softmax" : "sigmoid";
}

static void run_case(const gating_case *c) {
  const int64_t E = c->experts, k = c->top_k, T = c->tokens, stride = stride_of(c);
  const size_t size = dtype_size(c->dtype);
  const int64_t offset = c->layout == 2 ? 1 : 0;
  const uint64_t seed = 0xC0DA3E5EEDull + 0x9E3779B97F4A7C15ull * ++case_counter;
  check_context_push("%s %s renormalize %d bias %d (%g) scale %g: tokens %lld experts %lld k %lld groups %lld keep %lld "
                     "layout %d fill %d spread %g seed 0x%llx",
                     scheme_label(c->scoring), dtype_label(c->dtype), (int)c->renormalize, (int)c->bias,
                     (double)c->bias_amplitude, (double)c->scale, (long long)T, (long long)E, (long long)k,
                     (long long)c->groups, (long long)c->topk_groups, c->layout, (int)c->fill, (double)c->spread,
                     (unsigned long long)seed);
  rng r = rng_seeded(seed);
  const bool has_bias = c->bias != BIAS_NONE;
  float *bias = malloc((size_t)E * sizeof(float));
  fill_bias(c, &r, bias);

  const int64_t count = offset + (T > 0 ? (T - 1) * stride + E : 0);
  unsigned char *logits = malloc((size_t)(count > 0 ? count : 1) * size);
  for (int64_t i = 0; i < count; i++) tensor_store(c->dtype, logits, i, INFINITY); /* gaps, never read */
  float *values = malloc((size_t)E * sizeof(float));
  bool *clear = malloc((size_t)(T > 0 ? T : 1));
  double *exact = malloc((size_t)(T > 0 ? T : 1) * (size_t)k * sizeof(double));
  token_ref *t = &scratch_token;
  for (int64_t tok = 0; tok < T; tok++) {
    unsigned char *row = logits + (size_t)(offset + tok * stride) * size;
    for (int attempt = 0;; attempt++) {
      fill_row(c, tok, &r, values);
      for (int64_t e = 0; e < E; e++) {
        tensor_store(c->dtype, row, e, values[e]);
        values[e] = tensor_load(c->dtype, row, e); /* as stored */
      }
      token_load(c, t, values, has_bias ? bias : NULL);
      clear[tok] = token_clear(c, t, has_bias, exact + tok * k);
      const bool constructed = c->fill == FILL_TIES || c->fill == FILL_NONFINITE;
      if (clear[tok] || constructed || attempt + 1 >= REDRAWS) break;
      redraws++;
    }
  }

  /* the reference, on host copies */
  const int64_t out_count = T * k + SLACK;
  float *want_w = malloc((size_t)out_count * sizeof(float)), *got_w = malloc((size_t)out_count * sizeof(float));
  int32_t *want_id = malloc((size_t)out_count * sizeof(int32_t)), *got_id = malloc((size_t)out_count * sizeof(int32_t));
  tensor_poison(LK_DTYPE_F32, want_w, out_count);
  for (int64_t i = 0; i < out_count; i++) want_id[i] = ID_POISON;
  float *d_weights = device_mirror(want_w, (size_t)out_count * sizeof(float)); /* poison, slack and all */
  int32_t *d_ids = device_mirror(want_id, (size_t)out_count * sizeof(int32_t));
  lk_moe_gating_params p;
  memset(&p, 0, sizeof p);
  p.num_tokens = T;
  p.num_experts = E;
  p.top_k = k;
  p.logits_stride = c->layout == 1 ? stride : 0;
  p.num_groups = c->groups;
  p.topk_groups = c->topk_groups;
  p.routed_scaling_factor = c->scale;
  p.scoring = c->scoring;
  p.flags = c->renormalize ? LK_MOE_RENORMALIZE : 0;
  p.dtype = c->dtype;
  lk_moe_gating_params h = p;
  h.logits = logits + (size_t)offset * size;
  h.weights = want_w;
  h.expert_ids = want_id;
  h.correction_bias = has_bias ? bias : NULL;
  CHECK_STATUS(lk_moe_gating(reference_context(), &h), LK_OK);

  unsigned char *d_logits = device_mirror(logits, (size_t)count * size);
  float *d_bias = device_mirror(bias, (size_t)E * sizeof(float));
  lk_moe_gating_params d = p;
  d.logits = d_logits ? d_logits + (size_t)offset * size : NULL;
  d.weights = d_weights;
  d.expert_ids = d_ids;
  d.correction_bias = has_bias ? d_bias : NULL;
  calls++;
  if (CHECK_STATUS(lk_cuda_moe_gating(cuda_test_stream(), &d), LK_OK)) {
    cuda_test_sync();
    host_from_device(got_w, d_weights, (size_t)out_count * sizeof(float));
    host_from_device(got_id, d_ids, (size_t)out_count * sizeof(int32_t));
    int64_t slack_written = 0;
    for (int64_t i = T * k; i < out_count; i++)
      slack_written += !tensor_is_poison(LK_DTYPE_F32, got_w, i) || got_id[i] != ID_POISON;
    CHECKF(slack_written == 0, "%lld output elements written past [tokens, k]", (long long)slack_written);
    const int si = c->scoring == LK_MOE_SOFTMAX_TOPK ? 0 : c->scoring == LK_MOE_TOPK_SOFTMAX ? 1 : 2;
    int64_t bad = 0;
    for (int64_t tok = 0; tok < T && bad < 3; tok++) {
      const int32_t *gi = got_id + tok * k, *wi = want_id + tok * k;
      const float *gw = got_w + tok * k, *ww = want_w + tok * k;
      tokens_checked++;
      bool valid = true;
      for (int64_t j = 0; j < k; j++) {
        valid = valid && gi[j] >= 0 && gi[j] < E;
        for (int64_t i = 0; i < j; i++) valid = valid && gi[i] != gi[j];
      }
      if (!CHECKF(valid, "token %lld: ids are not %lld distinct ids in [0, %lld)", (long long)tok, (long long)k, (long long)E)) {
        bad++;
        continue;
      }
      if (!clear[tok]) {
        tokens_unclear++;
        continue;
      }
      /* ids: the CPU's, bit for bit; weights: within REL of float64 (test_moe.c's rule for the CPU's
       * own kernels), and how far from the CPU's */
      bool same = memcmp(gi, wi, (size_t)k * sizeof(int32_t)) == 0;
      for (int64_t j = 0; same && j < k; j++) {
        const double x = exact[tok * k + j];
        const float a = gw[j], b = ww[j];
        if (isnan(x) || isnan(a) || isnan(b)) {
          same = isnan(x) && isnan(a) && isnan(b);
          continue;
        }
        if (isinf(x)) {
          same = (double)a == x && (double)b == x;
          continue;
        }
        const double ra = fabs((double)a - x) / (REL * fabs(x) + 1e-38), rb = fabs((double)b - x) / (REL * fabs(x) + 1e-38);
        same = ra <= 1.0;
        if (ra > worst_ratio[si][0]) worst_ratio[si][0] = ra;
        if (rb > worst_ratio[si][1]) worst_ratio[si][1] = rb;
        const double u = ulps_apart(a, b);
        if (u > worst_ulps[si]) worst_ulps[si] = u;
      }
      if (!same) {
        bad++;
        char line[1024];
        size_t used = 0;
        for (int64_t j = 0; j < k && used + 64 < sizeof line; j++)
          used += (size_t)snprintf(line + used, sizeof line - used, " (%d %.9g | %d %.9g | %.9g)", gi[j], (double)gw[j], wi[j],
                                   (double)ww[j], exact[tok * k + j]);
        CHECKF(false, "token %lld: (id weight | the CPU's | float64):%s", (long long)tok, line);
      }
    }
  }

  device_free(d_logits);
  device_free(d_bias);
  device_free(d_weights);
  device_free(d_ids);
  free(bias);
  free(logits);
  free(values);
  free(clear);
  free(exact);
  free(want_w);
  free(got_w);
  free(want_id);
  free(got_id);
  check_context_pop();
}

/* ---- the grid ------------------------------------------------------------------------------------------ */

static int k_values(int64_t E, int64_t ks[4]) {
  const int64_t all[4] = {1, 2, 8, E < MAX_K ? E : MAX_K};
  int n = 0;
  for (int i = 0; i < 4; i++)
    if (all[i] <= E && (n == 0 || all[i] > ks[n - 1])) ks[n++] = all[i];
  return n;
}

static gating_case base_case(lk_moe_scoring s, lk_dtype d, int64_t E, int64_t k) {
  gating_case c;
  memset(&c, 0, sizeof c);
  c.scoring = s;
  c.dtype = d;
  c.experts = E;
  c.top_k = k;
  c.spread = 1.0f;
  c.bias_amplitude = 0.5f;
  return c;
}

static float spread_for(lk_moe_scoring s, long n) {
  switch (n % 3) {
  case 0: return 1.0f;
  case 1: return s == LK_MOE_SIGMOID ? 6.0f : 16.0f;
  default: return 0.02f;
  }
}

static void test_sweep(void) {
  static const int64_t expert_counts[] = {1, 2, 7, 8, 33, 60, 64, 129, 256, 384, 1000, 1500};
  static const int64_t token_counts[] = {1, 3, 17, 0, 9};
  long n = 0;
  for (size_t s = 0; s < 3; s++)
    for (size_t d = 0; d < 3; d++)
      for (int renormalize = 0; renormalize < 2; renormalize++)
        for (int bias = 0; bias < 2; bias++)
          for (int scaled = 0; scaled < 2; scaled++)
            for (size_t ei = 0; ei < sizeof expert_counts / sizeof expert_counts[0]; ei++) {
              const int64_t E = expert_counts[ei];
              int64_t ks[4];
              const int k_count = k_values(E, ks);
              /* one k a combination in turn (all four for the small counts) */
              for (int ki = 0; ki < k_count; ki++) {
                if (E > 64 && ki != (int)(n % k_count)) continue;
                gating_case c = base_case(schemes[s], dtypes[d], E, ks[ki]);
                c.renormalize = renormalize;
                c.bias = bias ? BIAS_RANDOM : BIAS_NONE;
                c.bias_amplitude = (n / 2) % 2 ? 0.5f : 0.02f;
                c.scale = scaled ? 2.5f : 0.0f;
                c.tokens = token_counts[n % 5] + (E <= 8 ? 40 : 0);
                c.spread = spread_for(c.scoring, n);
                c.fill = (n / 3) % 2 ? FILL_GRID : FILL_UNIFORM;
                c.layout = (int)(n % 3);
                c.groups = n % 7 == 6 ? 1 : 0; /* 1: no grouping either */
                c.topk_groups = c.groups ? 1 : 0;
                run_case(&c);
                n++;
              }
            }
}

typedef struct group_shape {
  int64_t experts, groups, keep, k;
} group_shape;

static void test_grouped(void) {
  static const group_shape shapes[] = {
      {256, 8, 4, 8},   /* DeepSeek-V3 */
      {160, 8, 3, 6},   /* DeepSeek-V2 */
      {64, 8, 8, 8},    /* every group kept */
      {64, 8, 1, 8},    /* one group kept, k its size */
      {64, 8, 1, 3},
      {16, 16, 4, 4},   /* groups of one */
      {32, 32, 8, 6},
      {32, 16, 5, 7},   /* groups of two */
      {128, 4, 2, 32},  /* k 32 */
      {384, 32, 6, 16}, /* 32 groups of 12 */
      {60, 4, 2, 8},    /* groups of 15 */
      {7, 7, 3, 2},
      {8, 2, 1, 4},     /* one token a lane, groups of four */
      {60, 2, 2, 5},
      {256, 8, 1, 2},
      {256, 8, 2, 12},
      {256, 2, 1, 8},   /* groups of 128: a whole warp's loads */
      {512, 8, 3, 8},   /* 16 a lane */
      {2048, 8, 4, 8},  /* chunks, groups of 256 */
      {1536, 32, 5, 32},
  };
  long n = 0;
  for (size_t g = 0; g < sizeof shapes / sizeof shapes[0]; g++)
    for (size_t s = 0; s < 3; s++)
      for (size_t d = 0; d < 3; d++)
        for (int bias = 0; bias < 2; bias++)
          for (int renormalize = 0; renormalize < 2; renormalize++) {
            gating_case c = base_case(schemes[s], dtypes[d], shapes[g].experts, shapes[g].k);
            c.groups = shapes[g].groups;
            c.topk_groups = shapes[g].keep;
            c.renormalize = renormalize;
            c.bias = bias ? BIAS_RANDOM : BIAS_NONE;
            c.bias_amplitude = (n / 2) % 2 ? 0.5f : 0.05f;
            c.scale = n % 4 == 1 ? 2.5f : n % 4 == 3 ? 16.0f : 0.0f;
            c.tokens = shapes[g].experts >= 1024 ? 3 : 1 + (int64_t)(n % 4) * 5;
            c.spread = spread_for(c.scoring, n);
            c.fill = (n / 3) % 2 ? FILL_GRID : FILL_UNIFORM;
            c.layout = (int)((n / 2) % 3);
            run_case(&c);
            n++;
          }
}

/* Past one pass of the grid (16 blocks an SM): DeepSeek-V3's routing and Mixtral's. */
static void test_many_tokens(void) {
  for (size_t d = 0; d < 3; d++) {
    gating_case c = base_case(LK_MOE_SIGMOID, dtypes[d], 256, 8);
    c.groups = 8;
    c.topk_groups = 4;
    c.renormalize = true;
    c.bias = BIAS_RANDOM;
    c.bias_amplitude = 0.1f;
    c.scale = 2.5f;
    c.tokens = 700;
    c.spread = 4.0f;
    run_case(&c);
    c = base_case(LK_MOE_TOPK_SOFTMAX, dtypes[d], 8, 2);
    c.tokens = 20000;
    c.spread = 4.0f;
    c.layout = (int)d;
    run_case(&c);
    c = base_case(LK_MOE_SOFTMAX_TOPK, dtypes[d], 60, 4);
    c.renormalize = true;
    c.tokens = 3000;
    run_case(&c);
  }
}

static void test_ties(void) {
  static const int64_t expert_counts[] = {8, 60, 64, 256, 384, 1500};
  long n = 0;
  for (size_t s = 0; s < 3; s++)
    for (size_t d = 0; d < 3; d++)
      for (int bias_mode = 0; bias_mode < 3; bias_mode++)
        for (size_t ei = 0; ei < sizeof expert_counts / sizeof expert_counts[0]; ei++) {
          const int64_t E = expert_counts[ei];
          int64_t ks[4];
          const int k_count = k_values(E, ks);
          for (int ki = 0; ki < k_count; ki++) {
            gating_case c = base_case(schemes[s], dtypes[d], E, ks[ki]);
            c.fill = FILL_TIES;
            c.renormalize = n % 2 == 0;
            c.bias = bias_mode == 0 ? BIAS_NONE : bias_mode == 1 ? BIAS_EQUAL : BIAS_PATTERN;
            c.bias_amplitude = bias_mode == 1 ? 0.1f : 0.3f;
            c.scale = n % 3 == 0 ? 2.5f : 0.0f;
            c.tokens = 7;
            c.layout = (int)(n % 3);
            run_case(&c);
            n++;
          }
        }
  static const group_shape shapes[] = {{256, 8, 4, 8}, {64, 8, 2, 4}, {64, 8, 8, 8}, {32, 16, 5, 7}, {16, 16, 4, 4}, {1536, 8, 3, 8}};
  for (size_t g = 0; g < sizeof shapes / sizeof shapes[0]; g++)
    for (size_t s = 0; s < 3; s++)
      for (size_t d = 0; d < 3; d++)
        for (int bias_mode = 0; bias_mode < 3; bias_mode++) {
          gating_case c = base_case(schemes[s], dtypes[d], shapes[g].experts, shapes[g].k);
          c.groups = shapes[g].groups;
          c.topk_groups = shapes[g].keep;
          c.fill = FILL_TIES;
          c.renormalize = bias_mode != 1;
          c.bias = bias_mode == 0 ? BIAS_NONE : bias_mode == 1 ? BIAS_EQUAL : BIAS_PATTERN;
          c.bias_amplitude = bias_mode == 1 ? 0.1f : 0.3f;
          c.scale = bias_mode == 2 ? 2.5f : 0.0f;
          c.tokens = 7;
          run_case(&c);
        }
}

/* All-equal logits: ids 0..k-1 ascending and equal weights, explicitly. */
static void test_all_equal(void) {
  for (size_t s = 0; s < 3; s++)
    for (size_t d = 0; d < 3; d++)
      for (int ei = 0; ei < 3; ei++) {
        const int64_t E = ei == 0 ? 8 : ei == 1 ? 256 : 1100, k = ei == 0 ? 8 : ei == 1 ? 32 : 9;
        unsigned char *row = malloc((size_t)E * 4);
        for (int64_t e = 0; e < E; e++) tensor_store(dtypes[d], row, e, 0.375f);
        void *d_row = device_mirror(row, (size_t)E * dtype_size(dtypes[d]));
        float *d_w = device_poisoned((size_t)k * sizeof(float));
        int32_t *d_ids = device_poisoned((size_t)k * sizeof(int32_t));
        lk_moe_gating_params p;
        memset(&p, 0, sizeof p);
        p.logits = d_row;
        p.weights = d_w;
        p.expert_ids = d_ids;
        p.num_tokens = 1;
        p.num_experts = E;
        p.top_k = k;
        p.scoring = schemes[s];
        p.dtype = dtypes[d];
        calls++;
        if (CHECK_STATUS(lk_cuda_moe_gating(cuda_test_stream(), &p), LK_OK)) {
          float w[32];
          int32_t ids[32];
          host_from_device(w, d_w, (size_t)k * sizeof(float));
          host_from_device(ids, d_ids, (size_t)k * sizeof(int32_t));
          bool ascending = true, equal = true;
          for (int64_t j = 0; j < k; j++) {
            ascending = ascending && ids[j] == (int32_t)j;
            equal = equal && w[j] == w[0];
          }
          CHECKF(ascending && equal, "%s %s E %lld k %lld: all-equal logits gave ids %d %d ... and weights %g %g ...",
                 scheme_label(schemes[s]), dtype_label(dtypes[d]), (long long)E, (long long)k, ids[0], ids[1], (double)w[0],
                 (double)w[1]);
        }
        device_free(d_row);
        device_free(d_w);
        device_free(d_ids);
        free(row);
      }
}

static void test_nonfinite(void) {
  static const int64_t expert_counts[] = {8, 33, 64, 256, 1100};
  static const int64_t ks[] = {1, 3, 8};
  long n = 0;
  for (size_t s = 0; s < 3; s++)
    for (size_t d = 0; d < 3; d++)
      for (int bias = 0; bias < 2; bias++) {
        for (size_t ei = 0; ei < sizeof expert_counts / sizeof expert_counts[0]; ei++)
          for (size_t ki = 0; ki < 3; ki++) {
            gating_case c = base_case(schemes[s], dtypes[d], expert_counts[ei], ks[ki]);
            c.fill = FILL_NONFINITE;
            c.renormalize = n % 2 == 0;
            c.bias = bias ? BIAS_RANDOM : BIAS_NONE;
            c.scale = n % 3 == 1 ? 2.5f : 0.0f;
            c.tokens = 10;
            c.layout = (int)(n % 3);
            run_case(&c);
            n++;
          }
        static const group_shape shapes[] = {{64, 8, 3, 4}, {32, 16, 4, 5}, {256, 8, 4, 8}};
        for (size_t g = 0; g < 3; g++) {
          gating_case c = base_case(schemes[s], dtypes[d], shapes[g].experts, shapes[g].k);
          c.groups = shapes[g].groups;
          c.topk_groups = shapes[g].keep;
          c.fill = FILL_NONFINITE;
          c.renormalize = true;
          c.bias = bias ? BIAS_RANDOM : BIAS_NONE;
          c.tokens = 10;
          run_case(&c);
        }
      }
  /* a bias with +inf, -inf and NaN, or NaN among numbers */
  static const group_shape bias_shapes[] = {{256, 8, 4, 8}, {256, 1, 1, 8}, {64, 1, 1, 2}, {60, 4, 2, 6}, {1100, 1, 1, 8}};
  for (size_t g = 0; g < sizeof bias_shapes / sizeof bias_shapes[0]; g++)
    for (size_t s = 0; s < 3; s++)
      for (int nan_only = 0; nan_only < 2; nan_only++) {
        gating_case c = base_case(schemes[s], dtypes[g % 3], bias_shapes[g].experts, bias_shapes[g].k);
        c.groups = bias_shapes[g].groups;
        c.topk_groups = bias_shapes[g].keep;
        c.renormalize = true;
        c.bias = nan_only ? BIAS_NAN : BIAS_SPECIAL;
        c.tokens = 9;
        c.spread = 2.0f;
        run_case(&c);
      }
  /* sigmoid subnormal (logits near -88): renormalised, the weights are numbers */
  for (size_t d = 0; d < 3; d++)
    for (int bias = 0; bias < 2; bias++) {
      gating_case c = base_case(LK_MOE_SIGMOID, dtypes[d], 64, 4);
      c.fill = FILL_DEEP;
      c.spread = 0.7f;
      c.renormalize = true;
      c.bias = bias ? BIAS_RANDOM : BIAS_NONE;
      c.tokens = 17;
      run_case(&c);
    }
  /* sigmoid saturated to 1 in f32 */
  for (size_t d = 0; d < 3; d++)
    for (int bias = 0; bias < 2; bias++) {
      gating_case c = base_case(LK_MOE_SIGMOID, dtypes[d], 256, 8);
      c.groups = bias ? 8 : 0;
      c.topk_groups = bias ? 4 : 0;
      c.renormalize = true;
      c.bias = bias ? BIAS_RANDOM : BIAS_NONE;
      c.bias_amplitude = 1e-3f;
      c.scale = 2.5f;
      c.tokens = 17;
      c.spread = 30.0f;
      run_case(&c);
    }
}

/* ---- the argument contract: the CPU's, message for message, before any launch ---------------------- */

static void expect_same_refusal(const lk_moe_gating_params *p, const char *name) {
  char cpu_message[512];
  const lk_status cpu = lk_moe_gating(reference_context(), p);
  snprintf(cpu_message, sizeof cpu_message, "%s", lk_last_error());
  if (CHECK_INVALID(lk_cuda_moe_gating(NULL, p), name))
    CHECKF(cpu == LK_ERR_INVALID_ARGUMENT && strcmp(cpu_message, lk_last_error()) == 0, "CUDA refused with \"%s\", the CPU with \"%s\"",
           lk_last_error(), cpu_message);
}

static void test_arguments(void) {
  static float logits[64], weights[64];
  static int32_t ids[64];
  lk_moe_gating_params p;
  memset(&p, 0, sizeof p);
  p.logits = logits;
  p.weights = weights;
  p.expert_ids = ids;
  p.num_tokens = 2;
  p.num_experts = 16;
  p.top_k = 2;
  p.dtype = LK_DTYPE_F32;
  CHECK_INVALID(lk_cuda_moe_gating(NULL, NULL), "params");
  lk_moe_gating_params b = p;
  b.top_k = 0;
  expect_same_refusal(&b, "top_k");
  b.top_k = 17;
  expect_same_refusal(&b, "top_k");
  b = p;
  b.num_experts = 0;
  expect_same_refusal(&b, "num_experts");
  b = p;
  b.num_groups = 3;
  b.topk_groups = 1;
  expect_same_refusal(&b, "num_groups");
  b.num_groups = 4;
  b.topk_groups = 5;
  expect_same_refusal(&b, "topk_groups");
  b.topk_groups = 1;
  b.top_k = 5;
  expect_same_refusal(&b, "top_k");
  b = p;
  b.logits_stride = 8;
  expect_same_refusal(&b, "logits_stride");
  b.logits_stride = -1;
  expect_same_refusal(&b, "logits_stride");
  b = p;
  b.scoring = (lk_moe_scoring)7;
  expect_same_refusal(&b, "scoring");
  b = p;
  b.flags = 2;
  expect_same_refusal(&b, "flags");
  b = p;
  b.dtype = (lk_dtype)9;
  expect_same_refusal(&b, "dtype");
  b = p;
  b.weights = NULL;
  expect_same_refusal(&b, "weights");
  b = p;
  b.expert_ids = (int32_t *)(weights + 2);
  expect_same_refusal(&b, "expert_ids");
  b = p;
  b.weights = logits + 3;
  expect_same_refusal(&b, "weights");
  b = p;
  b.num_tokens = -1;
  expect_same_refusal(&b, "num_tokens");
  /* no tokens touch nothing */
  b = p;
  b.num_tokens = 0;
  b.logits = NULL;
  b.weights = NULL;
  b.expert_ids = NULL;
  CHECK_STATUS(lk_cuda_moe_gating(NULL, &b), LK_OK);
}

int main(void) {
  const int devices = cuda_test_begin();
  run_timed("arguments", test_arguments);
  if (devices > 0) {
    run_timed("sweep", test_sweep);
    run_timed("grouped", test_grouped);
    run_timed("many tokens", test_many_tokens);
    run_timed("ties", test_ties);
    run_timed("all equal", test_all_equal);
    run_timed("non-finite", test_nonfinite);
    printf("%ld calls, %ld tokens checked, %ld of them without a clear margin (ids checked for validity only), %ld redraws\n",
           calls, tokens_checked, tokens_unclear, redraws);
    for (int i = 0; i < 3; i++)
      printf("%s weights: worst |error| / (1e-5 relative) against float64 %.3f here, %.3f the CPU's; at most %.0f ulp from "
             "the CPU's\n",
             scheme_label(schemes[i]), worst_ratio[i][0], worst_ratio[i][1], worst_ulps[i]);
  }
  return cuda_test_finish("test_cuda_moe", devices);
}
