/* lk_moe_gating on every ISA this CPU runs, against a float64 reference of the contract in
 * llmkernels.h and docs/moe.md.
 *
 * The reference reads the stored logits exactly (f16 and bf16 widened without rounding) and does
 * everything in double: the scores (softmax over all experts, the logits, or sigmoid), the
 * selection scores (score + correction_bias with a bias, else the logit itself, which ranks as p
 * does and, for a softmax row made NaN by a NaN or +inf logit, ranks the logits as numbers while
 * with a bias every selection score is NaN and all tie), the group scores (the sum of a group's two best
 * selection scores with a bias, else its best one), the ranking (descending, NaN below -inf, ties
 * to the lower index), the weights (p, softmax over the k selected logits, or sigmoid; then
 * renormalised, then scaled) and the output order (descending weight, ties to the lower id).
 *
 * Per token the kernel's answer must have: k distinct ids in [0, experts) and no unwritten (poison)
 * weight; the reference's weight, within 1e-5 relative, for each id it chose (NaN exactly where the
 * formulas give NaN); weights in non-increasing order with NaN last, equal weights of equal logits
 * in ascending id order. Then the selection:
 *   - where the reference's decisions all have a clear margin (no two candidates on either side
 *     of the group or the top-k boundary within 1e-5 relative of each other unless their inputs
 *     are identical, which makes them an exact tie) the set of ids must be the reference's, and
 *     where the weights are clear too, the ids must come in the reference's order exactly;
 *   - otherwise (f32 cannot resolve what double can) the choice must be valid within that
 *     tolerance: no unchosen eligible expert ranks above a chosen one by more than it, and each
 *     chosen expert's group may be among the kept ones.
 * Random inputs are redrawn (a few times) until the reference's decisions are clear, so nearly every
 * token is checked exactly; the run prints how many were not.
 *
 * Parts: the sweep (every scheme x dtype x renormalize x bias x scale x expert count x k, ragged
 * token counts, small/large/tiny spreads, random and permuted-grid logits, strided logits whose gaps
 * hold +inf, outputs against guard pages with poisoned slack, 1-3 threads); grouped selection
 * (DeepSeek-V3 and V2 shapes, topk_groups == num_groups against the ungrouped call, one kept group,
 * groups of one and two experts); deliberate exact ties (the lowest ids, identical on every ISA);
 * NaN and infinities; saturated sigmoid; the argument contract (every invalid field refused with a
 * message that starts with its name, nothing written). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

#define MAX_E 512
#define MAX_K LK_MOE_MAX_TOP_K
#define REL 1e-5 /* weights: relative tolerance; scores: the relative gap below which two are "near" */
#define ID_POISON ((int32_t)0x7EADBEEF)
#define REDRAWS 16

static lk_cpu_context *contexts[3][GRID_MAX_THREADS + 1];
static lk_isa isas[3];
static int isa_count;
static uint64_t base_seed = 0x3E5EED2026ull;
static uint64_t case_counter;
static long kernel_calls, tokens_exact, tokens_set_only, tokens_tolerant, redraw_count;
static long softmax_nan_rows; /* SOFTMAX_TOPK token checks whose p are all NaN */
static double worst_ratio[3]; /* worst |w - reference| / (REL |reference|) per scheme */

static const lk_moe_scoring schemes[] = {LK_MOE_SOFTMAX_TOPK, LK_MOE_TOPK_SOFTMAX, LK_MOE_SIGMOID};
static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};

static const char *scheme_label(lk_moe_scoring s) {
  switch (s) {
  case LK_MOE_SOFTMAX_TOPK: return "softmax_topk";
  case LK_MOE_TOPK_SOFTMAX: return "topk_softmax";
  case LK_MOE_SIGMOID: return "sigmoid";
  }
  return "?";
}

/* ---- cases ----------------------------------------------------------------------------------- */

typedef enum pattern {
  PATTERN_UNIFORM, /* independent uniform values in [-spread, spread] */
  PATTERN_GRID     /* a random permutation of evenly spaced values in [-spread, spread] */
} pattern;

typedef enum bias_kind {
  BIAS_RANDOM,  /* uniform in [-amplitude, amplitude] */
  BIAS_EQUAL,   /* every expert `amplitude` */
  BIAS_PATTERN, /* {0, amplitude, 0} repeating */
  BIAS_SPECIAL  /* random, with +inf, -inf and NaN among them (amplitude < 0: NaN only) */
} bias_kind;

typedef struct moe_case {
  lk_moe_scoring scoring;
  lk_dtype dtype;
  bool renormalize, bias;
  float scale; /* routed_scaling_factor */
  int64_t tokens, experts, top_k, stride, groups, topk_groups;
  float spread, bias_amplitude;
  pattern pattern;
  bias_kind bias_kind;
  int threads;
  int output_layout; /* 0: outputs end at a guard page; 1: poisoned slack after them; 2: they start at one */
} moe_case;

typedef void (*row_fill)(const moe_case *c, int64_t token, rng *r, float *values);

typedef struct case_options {
  row_fill fill;              /* NULL: random rows (c->pattern), redrawn until the reference is clear */
  bool require_clear;         /* constructed rows: the reference must find every decision clear */
  bool same_ids_on_every_isa; /* ids bit for bit equal on every ISA */
  bool compare_ungrouped;     /* topk_groups == num_groups: the ungrouped call must choose the same */
  bool check_nan_rule;        /* NaN chosen only when fewer than k non-NaN (ungrouped) */
} case_options;

static int64_t row_stride(const moe_case *c) { return c->stride ? c->stride : c->experts; }

static const char *describe(const moe_case *c, uint64_t seed, char *buffer, size_t size) {
  snprintf(buffer, size,
           "%s %s renormalize %d bias %d (kind %d, amplitude %g) scale %g: tokens %lld experts %lld k %lld "
           "stride %lld groups %lld keep %lld, spread %g pattern %d, %d threads, output layout %d, seed 0x%llx",
           scheme_label(c->scoring), dtype_label(c->dtype), (int)c->renormalize, (int)c->bias, (int)c->bias_kind,
           (double)c->bias_amplitude, (double)c->scale, (long long)c->tokens, (long long)c->experts,
           (long long)c->top_k, (long long)c->stride, (long long)c->groups, (long long)c->topk_groups,
           (double)c->spread, (int)c->pattern, c->threads, c->output_layout, (unsigned long long)seed);
  return buffer;
}

/* ---- the float64 reference ------------------------------------------------------------------ */

typedef struct token {
  int64_t experts;
  double x[MAX_E];     /* the stored logits, exactly */
  double b[MAX_E];     /* the bias, 0 without one */
  double score[MAX_E]; /* p, the logits or sigmoid */
  double sel[MAX_E];   /* score + bias */
  double mag[MAX_E];   /* |score| + |bias|: the scale of the rounding in sel */
  double max_mag;
} token;

typedef struct ranked {
  double v;
  int id;
} ranked;

/* The one total order: higher first, NaN below every number, equal to the lower index. */
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

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static void token_load(const moe_case *c, token *t, const void *row, const float *bias) {
  const int64_t E = c->experts;
  t->experts = E;
  for (int64_t e = 0; e < E; e++) {
    t->x[e] = (double)tensor_load(c->dtype, row, e);
    t->b[e] = bias ? (double)bias[e] : 0.0;
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
  } else if (c->scoring == LK_MOE_TOPK_SOFTMAX) {
    for (int64_t e = 0; e < E; e++) t->score[e] = t->x[e];
  } else {
    for (int64_t e = 0; e < E; e++) t->score[e] = sigmoid(t->x[e]);
  }
  /* The selection score: score + bias with a bias; else the logit itself, which orders as p does
   * (exactly, where p is a number) and which f32 holds exactly: no rounding, so no near ties. */
  t->max_mag = 0.0;
  for (int64_t e = 0; e < E; e++) {
    t->sel[e] = bias ? t->score[e] + t->b[e] : t->x[e];
    t->mag[e] = bias ? fabs(t->score[e]) + fabs(t->b[e]) : 0.0;
    if (isfinite(t->mag[e]) && t->mag[e] > t->max_mag) t->max_mag = t->mag[e];
  }
}

static bool same_value(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* Identical inputs give identical f32 selection scores: an exact tie, not a near one. Equal
 * infinities and NaN rank equal whatever their inputs. */
static bool same_expert_key(const token *t, int a, int b) {
  if (isnan(t->sel[a]) && isnan(t->sel[b])) return true;
  if (isinf(t->sel[a]) && t->sel[a] == t->sel[b]) return true;
  return same_value(t->x[a], t->x[b]) && t->b[a] == t->b[b];
}

static bool near_expert(const void *ctx, int a, int b) {
  const token *t = ctx;
  double va = t->sel[a], vb = t->sel[b];
  if (!isfinite(va) || !isfinite(vb) || same_expert_key(t, a, b)) return false;
  return fabs(va - vb) <= REL * fmax(t->mag[a], t->mag[b]);
}

typedef struct group_info {
  const token *t;
  int64_t count, size, keep;
  ranked order[MAX_E]; /* the groups, ranked */
  double mag[MAX_E];
  int top[MAX_E][2];
  int ntop[MAX_E];
  double max_mag;
} group_info;

static group_info groups_scratch;

static bool same_group_key(const group_info *g, int a, int b) {
  if (g->ntop[a] != g->ntop[b]) return false;
  for (int i = 0; i < g->ntop[a]; i++)
    if (!same_expert_key(g->t, g->top[a][i], g->top[b][i])) return false;
  return true;
}

static double group_score_of(const group_info *g, int group) {
  double s = 0.0;
  for (int i = 0; i < g->ntop[group]; i++) s += g->t->sel[g->top[group][i]];
  return s;
}

static bool near_group(const void *ctx, int a, int b) {
  const group_info *g = ctx;
  double va = group_score_of(g, a), vb = group_score_of(g, b);
  if (!isfinite(va) || !isfinite(vb) || same_group_key(g, a, b)) return false;
  return fabs(va - vb) <= REL * fmax(g->mag[a], g->mag[b]);
}

/* Ranks the groups of t into groups_scratch. */
static group_info *rank_groups(const moe_case *c, const token *t) {
  group_info *g = &groups_scratch;
  g->t = t;
  g->count = c->groups;
  g->size = c->experts / c->groups;
  g->keep = c->topk_groups;
  g->max_mag = 0.0;
  ranked members[MAX_E];
  for (int64_t group = 0; group < g->count; group++) {
    for (int64_t i = 0; i < g->size; i++) {
      int e = (int)(group * g->size + i);
      members[i].v = t->sel[e];
      members[i].id = e;
    }
    qsort(members, (size_t)g->size, sizeof members[0], ranked_compare);
    int n = c->bias && g->size >= 2 ? 2 : 1;
    g->ntop[group] = n;
    g->mag[group] = 0.0;
    for (int i = 0; i < n; i++) {
      g->top[group][i] = members[i].id;
      g->mag[group] += t->mag[members[i].id];
    }
    if (isfinite(g->mag[group]) && g->mag[group] > g->max_mag) g->max_mag = g->mag[group];
    g->order[group].v = group_score_of(g, (int)group);
    g->order[group].id = (int)group;
  }
  qsort(g->order, (size_t)g->count, sizeof g->order[0], ranked_compare);
  return g;
}

/* True when no item ranked before `cut` is near one ranked at or after it. */
static bool boundary_clear(const ranked *r, int64_t n, int64_t cut, double window, bool (*near)(const void *, int, int),
                           const void *ctx) {
  if (cut <= 0 || cut >= n) return true;
  for (int64_t i = cut - 1; i >= 0; i--) {
    if (isnan(r[i].v)) continue;
    if (isfinite(r[i].v) && isfinite(r[cut].v) && r[i].v - r[cut].v > window) break;
    for (int64_t j = cut; j < n; j++) {
      if (isnan(r[j].v)) break;
      if (isfinite(r[i].v) && isfinite(r[j].v) && r[i].v - r[j].v > window) break;
      if (near(ctx, r[i].id, r[j].id)) return false;
    }
  }
  return true;
}

/* The weights the contract gives the experts `ids` (any order) of token t. */
static void reference_weights(const moe_case *c, const token *t, const int32_t *ids, int64_t n, double *w) {
  if (c->scoring == LK_MOE_TOPK_SOFTMAX) {
    double m = -INFINITY, sum = 0.0;
    bool nan = false;
    for (int64_t j = 0; j < n; j++) {
      double x = t->x[ids[j]];
      if (isnan(x)) nan = true;
      else if (x > m) m = x;
    }
    if (nan) m = NAN;
    for (int64_t j = 0; j < n; j++) sum += (w[j] = exp(t->x[ids[j]] - m));
    for (int64_t j = 0; j < n; j++) w[j] /= sum;
  } else {
    for (int64_t j = 0; j < n; j++) w[j] = t->score[ids[j]];
  }
  if (c->renormalize) {
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) sum += w[j];
    for (int64_t j = 0; j < n; j++) w[j] /= sum;
  }
  if (c->scale != 0.0f)
    for (int64_t j = 0; j < n; j++) w[j] *= (double)c->scale;
}

typedef struct reference {
  int32_t ids[MAX_K]; /* output order */
  double w[MAX_K];
  bool selection_clear, order_clear, has_nan_weight;
} reference;

static bool near_weight(const token *t, int a, double wa, int b, double wb) {
  if (!isfinite(wa) || !isfinite(wb) || same_value(t->x[a], t->x[b])) return false;
  return fabs(wa - wb) <= REL * fmax(fabs(wa), fabs(wb));
}

/* Marks the experts of the kept groups (all of them without grouping). Returns whether the group
 * boundary is clear. */
static bool eligible_experts(const moe_case *c, const token *t, bool *eligible) {
  const int64_t E = c->experts;
  if (c->groups <= 1) {
    for (int64_t e = 0; e < E; e++) eligible[e] = true;
    return true;
  }
  group_info *g = rank_groups(c, t);
  for (int64_t e = 0; e < E; e++) eligible[e] = false;
  for (int64_t i = 0; i < g->keep; i++)
    for (int64_t m = 0; m < g->size; m++) eligible[g->order[i].id * g->size + m] = true;
  return boundary_clear(g->order, g->count, g->keep, REL * g->max_mag, near_group, g);
}

static void compute_reference(const moe_case *c, const token *t, reference *r) {
  const int64_t E = c->experts, k = c->top_k;
  bool eligible[MAX_E];
  bool groups_clear = eligible_experts(c, t, eligible);
  ranked list[MAX_E];
  int64_t n = 0;
  for (int64_t e = 0; e < E; e++)
    if (eligible[e]) {
      list[n].v = t->sel[e];
      list[n].id = (int)e;
      n++;
    }
  qsort(list, (size_t)n, sizeof list[0], ranked_compare);
  r->selection_clear = groups_clear && boundary_clear(list, n, k, REL * t->max_mag, near_expert, t);
  int32_t selected[MAX_K] = {0};
  double w[MAX_K];
  for (int64_t j = 0; j < k; j++) selected[j] = list[j].id;
  reference_weights(c, t, selected, k, w);
  ranked out[MAX_K];
  for (int64_t j = 0; j < k; j++) {
    out[j].v = w[j];
    out[j].id = selected[j];
  }
  qsort(out, (size_t)k, sizeof out[0], ranked_compare);
  r->has_nan_weight = false;
  r->order_clear = true;
  for (int64_t j = 0; j < k; j++) {
    r->ids[j] = out[j].id;
    r->w[j] = out[j].v;
    r->has_nan_weight |= isnan(out[j].v) != 0;
    if (j > 0 && near_weight(t, out[j - 1].id, out[j - 1].v, out[j].id, out[j].v)) r->order_clear = false;
  }
}

/* ---- checking one token --------------------------------------------------------------------- */

static const char *format_ids(char *buffer, size_t size, const int32_t *ids, int64_t n) {
  size_t used = 0;
  buffer[0] = '\0';
  for (int64_t j = 0; j < n && used + 16 < size; j++)
    used += (size_t)snprintf(buffer + used, size - used, "%s%d", j ? " " : "[", (int)ids[j]);
  if (used + 2 < size) snprintf(buffer + used, size - used, "]");
  return buffer;
}

static const char *format_weights(char *buffer, size_t size, const double *w, int64_t n) {
  size_t used = 0;
  buffer[0] = '\0';
  for (int64_t j = 0; j < n && used + 24 < size; j++)
    used += (size_t)snprintf(buffer + used, size - used, "%s%.9g", j ? " " : "[", w[j]);
  if (used + 2 < size) snprintf(buffer + used, size - used, "]");
  return buffer;
}

static bool weight_agrees(float got, double want, double *ratio) {
  *ratio = 0.0;
  if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
  if (isinf(want) || isinf(got)) return (double)got == want;
  double err = fabs((double)got - want);
  if (want != 0.0) *ratio = err / (REL * fabs(want));
  return err <= REL * fabs(want) + 1e-38;
}

/* The kernel's choice is valid within the tolerance (for tokens whose reference is not clear). */
static bool tolerant_selection_ok(const moe_case *c, const token *t, const int32_t *ids, char *why, size_t why_size) {
  const int64_t E = c->experts, k = c->top_k;
  bool eligible[MAX_E], selected[MAX_E];
  for (int64_t e = 0; e < E; e++) selected[e] = false;
  for (int64_t j = 0; j < k; j++) selected[ids[j]] = true;
  if (c->groups > 1) {
    /* A group may be kept when fewer than topk_groups groups surely rank above it (before it and
     * not near it); it is surely kept when fewer than topk_groups may rank above it. */
    group_info *g = rank_groups(c, t);
    bool sure[MAX_E], possible[MAX_E], used[MAX_E];
    for (int64_t a = 0; a < g->count; a++) {
      int64_t surely_above = 0, maybe_above = 0;
      double va = group_score_of(g, (int)a);
      for (int64_t h = 0; h < g->count; h++) {
        if (h == a) continue;
        double vh = group_score_of(g, (int)h);
        bool near = near_group(g, (int)h, (int)a);
        bool before = ranks_before(vh, (int)h, va, (int)a);
        surely_above += before && !near;
        maybe_above += before || near;
      }
      possible[a] = surely_above < g->keep;
      sure[a] = maybe_above < g->keep;
      used[a] = false;
    }
    int64_t groups_used = 0;
    for (int64_t j = 0; j < k; j++) {
      int group = (int)(ids[j] / g->size);
      if (!possible[group]) {
        snprintf(why, why_size, "expert %d is in group %d, which at least %lld groups outrank by more than the tolerance",
                 (int)ids[j], group, (long long)g->keep);
        return false;
      }
      if (!used[group]) groups_used++;
      used[group] = true;
    }
    if (groups_used > g->keep) {
      snprintf(why, why_size, "the ids span %lld groups, more than the %lld kept", (long long)groups_used,
               (long long)g->keep);
      return false;
    }
    for (int64_t e = 0; e < E; e++) eligible[e] = sure[e / g->size] || used[e / g->size];
  } else {
    for (int64_t e = 0; e < E; e++) eligible[e] = true;
  }
  for (int64_t e = 0; e < E; e++) {
    if (!eligible[e] || selected[e]) continue;
    for (int64_t j = 0; j < k; j++) {
      int s = ids[j];
      if (ranks_before(t->sel[e], (int)e, t->sel[s], s) && !near_expert(t, (int)e, s)) {
        snprintf(why, why_size, "expert %lld (selection score %.9g) ranks above chosen expert %d (%.9g)", (long long)e,
                 t->sel[e], s, t->sel[s]);
        return false;
      }
    }
  }
  return true;
}

/* Whether the kernel's ids are the reference's choice: -1 no (why says how); 0 the same ids in the
 * same order; 1 the same set (the order is NaN or near-tied); 2 valid within the tolerance (the
 * reference has no clear margin). */
static int selection_matches(const moe_case *c, const token *t, const reference *r, const int32_t *ids,
                             const case_options *o, char *why, size_t why_size) {
  const int64_t E = c->experts, k = c->top_k;
  char a[512], b[512], ws[512];
  if (o->check_nan_rule && c->groups <= 1) {
    int64_t numbers = 0, nan_chosen = 0;
    for (int64_t e = 0; e < E; e++) numbers += !isnan(t->sel[e]);
    for (int64_t j = 0; j < k; j++) nan_chosen += isnan(t->sel[ids[j]]) != 0;
    int64_t expected = k > numbers ? k - numbers : 0;
    if (nan_chosen != expected) {
      snprintf(why, why_size, "%lld experts with a NaN selection score chosen, expected %lld (%lld are numbers); ids %s",
               (long long)nan_chosen, (long long)expected, (long long)numbers, format_ids(a, sizeof a, ids, k));
      return -1;
    }
  }
  if (r->selection_clear) {
    bool same_set = true;
    bool in_reference[MAX_E];
    for (int64_t e = 0; e < E; e++) in_reference[e] = false;
    for (int64_t j = 0; j < k; j++) in_reference[r->ids[j]] = true;
    for (int64_t j = 0; j < k; j++) same_set &= in_reference[ids[j]];
    bool exact = r->order_clear && !r->has_nan_weight;
    bool same_order = true;
    if (exact)
      for (int64_t j = 0; j < k; j++) same_order &= ids[j] == r->ids[j];
    if (!same_set || !same_order) {
      snprintf(why, why_size, "ids %s, reference %s (reference weights %s)", format_ids(a, sizeof a, ids, k),
               format_ids(b, sizeof b, r->ids, k), format_weights(ws, sizeof ws, r->w, k));
      return -1;
    }
    return exact ? 0 : 1;
  }
  char reason[256] = "";
  if (!tolerant_selection_ok(c, t, ids, reason, sizeof reason)) {
    snprintf(why, why_size, "(no clear margin in the reference) %s; ids %s, reference %s", reason,
             format_ids(a, sizeof a, ids, k), format_ids(b, sizeof b, r->ids, k));
    return -1;
  }
  return 2;
}

static void check_token(const moe_case *c, const token *t, const reference *r, const float *w, const int32_t *ids,
                        int64_t index, const char *who, const case_options *o) {
  const int64_t E = c->experts, k = c->top_k;
  char a[512], b[512];
  bool seen[MAX_E];
  for (int64_t e = 0; e < E; e++) seen[e] = false;
  bool ids_ok = true;
  for (int64_t j = 0; j < k; j++) {
    if (ids[j] < 0 || ids[j] >= E || seen[ids[j]]) ids_ok = false;
    else seen[ids[j]] = true;
  }
  if (!CHECKF(ids_ok, "%s token %lld: ids %s are not %lld distinct ids in [0, %lld) (reference %s)", who,
              (long long)index, format_ids(a, sizeof a, ids, k), (long long)k, (long long)E,
              format_ids(b, sizeof b, r->ids, k)))
    return;
  int64_t unwritten = 0;
  for (int64_t j = 0; j < k; j++) unwritten += tensor_is_poison(LK_DTYPE_F32, w, j);
  if (!CHECKF(unwritten == 0, "%s token %lld: %lld weights unwritten", who, (long long)index, (long long)unwritten))
    return;

  /* the weights of the experts it chose */
  double want[MAX_K], got[MAX_K];
  reference_weights(c, t, ids, k, want);
  int64_t bad = -1;
  for (int64_t j = 0; j < k; j++) {
    double ratio;
    got[j] = (double)w[j];
    if (!weight_agrees(w[j], want[j], &ratio) && bad < 0) bad = j;
    if (ratio > worst_ratio[c->scoring]) worst_ratio[c->scoring] = ratio;
  }
  CHECKF(bad < 0, "%s token %lld: weight %lld (expert %d) is %.9g, reference %.12g; weights %s, reference %s", who,
         (long long)index, (long long)bad, bad >= 0 ? (int)ids[bad] : -1, bad >= 0 ? got[bad] : 0.0,
         bad >= 0 ? want[bad] : 0.0, format_weights(a, sizeof a, got, k), format_weights(b, sizeof b, want, k));

  /* their order: descending weight, NaN last, equal weights of equal logits by ascending id */
  int64_t disorder = -1;
  for (int64_t j = 0; j + 1 < k && disorder < 0; j++) {
    float u = w[j], v = w[j + 1];
    bool ok;
    if (isnan(u)) ok = isnan(v) != 0;
    else if (isnan(v)) ok = true;
    else ok = u > v || (u == v && (!same_value(t->x[ids[j]], t->x[ids[j + 1]]) || ids[j] < ids[j + 1]));
    if (!ok) disorder = j;
  }
  CHECKF(disorder < 0, "%s token %lld: out of order at %lld: ids %s weights %s", who, (long long)index,
         (long long)disorder, format_ids(a, sizeof a, ids, k), format_weights(b, sizeof b, got, k));

  /* the selection */
  char why[1024] = "";
  int mode = selection_matches(c, t, r, ids, o, why, sizeof why);
  if (c->scoring == LK_MOE_SOFTMAX_TOPK && isnan(t->score[0])) softmax_nan_rows++;
  CHECKF(mode >= 0, "%s token %lld: %s", who, (long long)index, why);
  if (mode == 0) tokens_exact++;
  else if (mode == 1) tokens_set_only++;
  else if (mode == 2) tokens_tolerant++;
}

/* ---- running a case ------------------------------------------------------------------------- */

typedef struct outputs {
  guarded_buffer w_buffer, id_buffer;
  float *weights;
  int32_t *ids;
  int64_t count, slack;
} outputs;

static outputs outputs_alloc(int64_t count, int layout) {
  outputs o;
  o.count = count;
  o.slack = layout == 0 ? 0 : 5;
  guard_edge edge = layout == 2 ? GUARD_EDGE_START : GUARD_EDGE_END;
  o.w_buffer = guarded_alloc_or_exit((size_t)(count + o.slack) * sizeof(float), edge);
  o.id_buffer = guarded_alloc_or_exit((size_t)(count + o.slack) * sizeof(int32_t), edge);
  o.weights = o.w_buffer.data;
  o.ids = o.id_buffer.data;
  tensor_poison(LK_DTYPE_F32, o.weights, count + o.slack);
  for (int64_t i = 0; i < count + o.slack; i++) o.ids[i] = ID_POISON;
  return o;
}

static void outputs_free(outputs *o) {
  guarded_free(&o->w_buffer);
  guarded_free(&o->id_buffer);
}

static int64_t slack_written(const outputs *o) {
  int64_t n = 0;
  for (int64_t i = o->count; i < o->count + o->slack; i++)
    n += !tensor_is_poison(LK_DTYPE_F32, o->weights, i) + (o->ids[i] != ID_POISON);
  return n;
}

static lk_moe_gating_params params_for(const moe_case *c, const void *logits, const float *bias, const outputs *o) {
  lk_moe_gating_params p;
  memset(&p, 0, sizeof p);
  p.logits = logits;
  p.weights = o->weights;
  p.expert_ids = o->ids;
  p.correction_bias = c->bias ? bias : NULL;
  p.num_tokens = c->tokens;
  p.num_experts = c->experts;
  p.top_k = c->top_k;
  p.logits_stride = c->stride;
  p.num_groups = c->groups;
  p.topk_groups = c->topk_groups;
  p.routed_scaling_factor = c->scale;
  p.scoring = c->scoring;
  p.flags = c->renormalize ? LK_MOE_RENORMALIZE : 0u;
  p.dtype = c->dtype;
  return p;
}

static void fill_random(const moe_case *c, int64_t token, rng *r, float *v) {
  (void)token;
  const int64_t E = c->experts;
  const float s = c->spread;
  if (c->pattern == PATTERN_GRID && E > 1) {
    int order[MAX_E];
    for (int64_t e = 0; e < E; e++) order[e] = (int)e;
    for (int64_t e = E - 1; e > 0; e--) {
      int64_t j = rng_below(r, (uint32_t)(e + 1));
      int tmp = order[e];
      order[e] = order[j];
      order[j] = tmp;
    }
    for (int64_t e = 0; e < E; e++) v[e] = -s + 2.0f * s * (float)order[e] / (float)(E - 1);
  } else {
    for (int64_t e = 0; e < E; e++) v[e] = rng_uniform(r, -s, s);
  }
}

static void fill_bias(const moe_case *c, rng *r, float *bias) {
  for (int64_t e = 0; e < c->experts; e++) {
    switch (c->bias_kind) {
    case BIAS_RANDOM: bias[e] = rng_uniform(r, -c->bias_amplitude, c->bias_amplitude); break;
    case BIAS_EQUAL: bias[e] = c->bias_amplitude; break;
    case BIAS_PATTERN: bias[e] = e % 3 == 1 ? c->bias_amplitude : 0.0f; break;
    case BIAS_SPECIAL: {
      const float a = fabsf(c->bias_amplitude);
      const int64_t i = e % 37;
      const bool infinities = c->bias_amplitude > 0.0f;
      bias[e] = i == 20 ? NAN : infinities && i == 5 ? INFINITY : infinities && i == 11 ? -INFINITY : rng_uniform(r, -a, a);
      break;
    }
    }
  }
}

static token token_scratch;

static void run_case(const moe_case *c, const case_options *o) {
  const int64_t E = c->experts, k = c->top_k, T = c->tokens, stride = row_stride(c);
  const size_t size = dtype_size(c->dtype);
  const uint64_t seed = base_seed + 0x9E3779B97F4A7C15ull * ++case_counter;
  char what[512];
  check_context_push("%s", describe(c, seed, what, sizeof what));
  rng r = rng_seeded(seed);
  token *t = &token_scratch;

  guarded_buffer bias = guarded_alloc_or_exit((size_t)E * sizeof(float), GUARD_EDGE_END);
  fill_bias(c, &r, bias.data);
  guarded_make_read_only(&bias);
  const float *bias_values = c->bias ? bias.data : NULL;

  int64_t logit_count = T > 0 ? (T - 1) * stride + E : 0;
  guarded_buffer logits = guarded_alloc_or_exit((size_t)logit_count * size, GUARD_EDGE_END);
  for (int64_t i = 0; i < logit_count; i++) tensor_store(c->dtype, logits.data, i, INFINITY); /* the gaps */
  reference *refs = malloc((size_t)(T > 0 ? T : 1) * sizeof *refs);
  float values[MAX_E];
  for (int64_t tok = 0; tok < T; tok++) {
    void *row = (char *)logits.data + (size_t)(tok * stride) * size;
    for (int attempt = 0;; attempt++) {
      if (o->fill) o->fill(c, tok, &r, values);
      else fill_random(c, tok, &r, values);
      for (int64_t e = 0; e < E; e++) tensor_store(c->dtype, row, e, values[e]);
      token_load(c, t, row, bias_values);
      compute_reference(c, t, &refs[tok]);
      bool clear = refs[tok].selection_clear && refs[tok].order_clear;
      if (clear || o->fill || attempt + 1 >= REDRAWS) break;
      redraw_count++;
    }
    if (o->require_clear)
      CHECKF(refs[tok].selection_clear && refs[tok].order_clear,
             "test construction: token %lld of a constructed case has a near tie in the reference", (long long)tok);
  }
  guarded_make_read_only(&logits);

  outputs out[3];
  bool ran[3];
  for (int i = 0; i < isa_count; i++) {
    out[i] = outputs_alloc(T * k, c->output_layout);
    lk_moe_gating_params p = params_for(c, logits.data, bias_values, &out[i]);
    kernel_calls++;
    ran[i] = CHECKF(lk_moe_gating(contexts[i][c->threads], &p) == LK_OK, "%s: status not LK_OK: %s",
                    lk_isa_name(isas[i]), lk_last_error());
    CHECKF(slack_written(&out[i]) == 0, "%s: %lld output elements written past [tokens, k]", lk_isa_name(isas[i]),
           (long long)slack_written(&out[i]));
  }

  /* topk_groups == num_groups keeps every group: the ungrouped call must choose the same */
  outputs ungrouped;
  memset(&ungrouped, 0, sizeof ungrouped);
  bool have_ungrouped = false;
  if (o->compare_ungrouped && c->groups > 1 && c->topk_groups == c->groups) {
    moe_case flat = *c;
    flat.groups = 0;
    flat.topk_groups = 0;
    ungrouped = outputs_alloc(T * k, 0);
    lk_moe_gating_params p = params_for(&flat, logits.data, bias_values, &ungrouped);
    kernel_calls++;
    have_ungrouped = CHECK_STATUS(lk_moe_gating(contexts[isa_count - 1][c->threads], &p), LK_OK);
  }

  for (int64_t tok = 0; tok < T; tok++) {
    token_load(c, t, (const char *)logits.data + (size_t)(tok * stride) * size, bias_values);
    for (int i = 0; i < isa_count; i++) {
      if (!ran[i]) continue;
      char who[64];
      snprintf(who, sizeof who, "%s x%d", lk_isa_name(isas[i]), c->threads);
      check_token(c, t, &refs[tok], out[i].weights + tok * k, out[i].ids + tok * k, tok, who, o);
      if (o->same_ids_on_every_isa && i > 0 && ran[0]) {
        char a[512], b[512];
        CHECKF(memcmp(out[i].ids + tok * k, out[0].ids + tok * k, (size_t)k * sizeof(int32_t)) == 0,
               "token %lld: ids %s on %s, %s on %s", (long long)tok, format_ids(a, sizeof a, out[i].ids + tok * k, k),
               lk_isa_name(isas[i]), format_ids(b, sizeof b, out[0].ids + tok * k, k), lk_isa_name(isas[0]));
      }
    }
    if (have_ungrouped && refs[tok].selection_clear && refs[tok].order_clear && ran[isa_count - 1]) {
      char a[512], b[512];
      CHECKF(memcmp(ungrouped.ids + tok * k, out[isa_count - 1].ids + tok * k, (size_t)k * sizeof(int32_t)) == 0,
             "token %lld: topk_groups == num_groups chose %s, the ungrouped call %s", (long long)tok,
             format_ids(a, sizeof a, out[isa_count - 1].ids + tok * k, k),
             format_ids(b, sizeof b, ungrouped.ids + tok * k, k));
    }
  }

  if (o->compare_ungrouped && c->groups > 1 && c->topk_groups == c->groups) outputs_free(&ungrouped);
  for (int i = 0; i < isa_count; i++) outputs_free(&out[i]);
  free(refs);
  guarded_free(&logits);
  guarded_free(&bias);
  check_context_pop();
}

/* ---- the sweep ------------------------------------------------------------------------------ */

static const case_options random_options = {NULL, false, false, false, false};

static float spread_for(lk_moe_scoring s, long n) {
  switch (n % 3) {
  case 0: return 1.0f;
  case 1: return s == LK_MOE_SIGMOID ? 6.0f : 16.0f; /* sigmoid saturates in f32 beyond: see test_saturated */
  default: return 0.02f;
  }
}

/* The k the sweeps try for E experts: 1, 2, 8 and min(MAX_K, E), those up to E and each once,
 * ascending; returns how many. */
static int k_values(int64_t E, int64_t ks[4]) {
  const int64_t all[4] = {1, 2, 8, E < MAX_K ? E : MAX_K};
  int n = 0;
  for (int i = 0; i < 4; i++)
    if (all[i] <= E && (n == 0 || all[i] > ks[n - 1])) ks[n++] = all[i];
  return n;
}

typedef struct group_shape {
  int64_t experts, groups, keep, k;
} group_shape;

/* A case of shape g (groups <= 1: ungrouped) in one scheme and dtype; the caller sets the rest. */
static moe_case shape_case(const group_shape *g, lk_moe_scoring scoring, lk_dtype dtype) {
  moe_case c;
  memset(&c, 0, sizeof c);
  c.scoring = scoring;
  c.dtype = dtype;
  c.experts = g->experts;
  c.groups = g->groups > 1 ? g->groups : 0;
  c.topk_groups = g->groups > 1 ? g->keep : 0;
  c.top_k = g->k;
  return c;
}

static void test_sweep(void) {
  static const int64_t expert_counts[] = {1, 2, 7, 8, 33, 60, 64, 128, 160, 256, 384};
  static const int64_t token_counts[] = {0, 1, 3, 17, 100};
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
              for (int ki = 0; ki < k_count; ki++) {
                const int64_t k = ks[ki];
                moe_case c = shape_case(&(group_shape){E, 0, 0, k}, schemes[s], dtypes[d]);
                c.renormalize = renormalize;
                c.bias = bias;
                c.scale = scaled ? 2.5f : 0.0f;
                c.tokens = token_counts[n % 5];
                c.spread = spread_for(c.scoring, n);
                c.pattern = (n / 3) % 2 ? PATTERN_GRID : PATTERN_UNIFORM;
                c.bias_kind = BIAS_RANDOM;
                c.bias_amplitude = (n / 2) % 2 ? 0.5f : 0.02f;
                c.stride = n % 4 == 3 ? E + 1 + n % 13 : 0;
                c.groups = n % 7 == 6 ? 1 : 0; /* 1: no grouping either */
                c.topk_groups = c.groups ? (int64_t)(n % 3) : 0; /* ignored without grouping */
                c.threads = 1 + (int)((n / 5) % 3);
                c.output_layout = (int)(n % 3);
                run_case(&c, &random_options);
                n++;
              }
            }
}

/* ---- grouped selection ----------------------------------------------------------------------- */

static void test_grouped(void) {
  static const group_shape shapes[] = {
      {256, 8, 4, 8},   /* DeepSeek-V3 */
      {160, 8, 3, 6},   /* DeepSeek-V2 */
      {64, 8, 8, 8},    /* every group kept: the ungrouped result */
      {64, 8, 1, 8},    /* one group kept, k its size */
      {64, 8, 1, 3},    /* one group kept */
      {16, 16, 4, 4},   /* groups of one expert, k all the kept */
      {32, 32, 8, 6},   /* groups of one, 32 groups */
      {32, 16, 5, 7},   /* groups of two */
      {128, 4, 2, 32},  /* k 32 */
      {384, 32, 6, 16}, /* 32 groups of 12 */
      {60, 4, 2, 8},    /* groups of 15 */
      {7, 7, 3, 2},     /* an odd count in groups of one */
      {60, 2, 2, 5},    /* two groups, both kept */
      {256, 8, 1, 2},   /* DeepSeek-V3's groups, one kept and k its best two: the groups' threshold at its edge */
      {256, 8, 3, 5},   /* three kept */
      {256, 8, 2, 12},  /* k past the kept groups' best two: the lane maxima's threshold */
      {256, 8, 8, 16},  /* every group kept */
  };
  static const int64_t token_counts[] = {1, 3, 17, 100, 0};
  case_options options = random_options;
  options.compare_ungrouped = true;
  long n = 0;
  for (size_t g = 0; g < sizeof shapes / sizeof shapes[0]; g++)
    for (size_t s = 0; s < 3; s++)
      for (size_t d = 0; d < 3; d++)
        for (int renormalize = 0; renormalize < 2; renormalize++)
          for (int bias = 0; bias < 2; bias++)
            for (int scaled = 0; scaled < 2; scaled++) {
              moe_case c = shape_case(&shapes[g], schemes[s], dtypes[d]);
              c.renormalize = renormalize;
              c.bias = bias;
              c.scale = scaled ? (n % 4 < 2 ? 2.5f : 16.0f) : 0.0f; /* DeepSeek-V3's, V2's */
              c.tokens = token_counts[n % 5];
              c.spread = spread_for(c.scoring, n);
              c.pattern = (n / 3) % 2 ? PATTERN_GRID : PATTERN_UNIFORM;
              c.bias_kind = BIAS_RANDOM;
              c.bias_amplitude = (n / 2) % 2 ? 0.5f : 0.05f;
              c.stride = n % 5 == 4 ? c.experts + 3 : 0;
              c.threads = 1 + (int)(n % 3);
              c.output_layout = (int)((n / 2) % 3);
              run_case(&c, &options);
              n++;
            }
  /* DeepSeek-V3's routing exactly: sigmoid, bias, renormalised, x 2.5, 100 tokens */
  for (size_t d = 0; d < 3; d++)
    for (int variant = 0; variant < 4; variant++) {
      moe_case c = shape_case(&(group_shape){256, 8, 4, 8}, LK_MOE_SIGMOID, dtypes[d]);
      c.renormalize = true;
      c.bias = true;
      c.scale = 2.5f;
      c.tokens = 100;
      c.spread = variant % 2 ? 4.0f : 1.0f;
      c.pattern = variant / 2 ? PATTERN_GRID : PATTERN_UNIFORM;
      c.bias_kind = BIAS_RANDOM;
      c.bias_amplitude = 0.1f;
      c.threads = 1 + variant % 3;
      c.output_layout = variant % 3;
      run_case(&c, &options);
    }
}

/* ---- deliberate exact ties -------------------------------------------------------------------- */

static void fill_ties(const moe_case *c, int64_t token, rng *r, float *v) {
  (void)r;
  static const float five[5] = {1.0f, 0.5f, 1.0f, -0.5f, 0.25f};
  const int64_t E = c->experts;
  for (int64_t e = 0; e < E; e++) {
    switch (token % 7) {
    case 0: v[e] = 0.75f; break;                                          /* all equal */
    case 1: v[e] = five[(e * 3) % 5]; break;                              /* five values, repeated */
    case 2: v[e] = (e == E - 1 || e == E / 2 || e == E - 3) ? 1.0f : 0.0f; break; /* three high ids tied on top */
    case 3: v[e] = e == 0 ? -3.0f : -2.0f; break;                         /* all equal but the first */
    case 4: v[e] = (e / 4) % 2 ? 1.0f : 0.0f; break;                      /* blocks */
    case 5: v[e] = (float)(((E - e) / 3) % 16) * 0.125f; break;           /* descending triplets, cyclic */
    default: v[e] = (float)(((e % 8) * 5) % 8) * 0.0625f; break;          /* every run of 8 the same */
    }
  }
}

static void test_ties(void) {
  static const int64_t expert_counts[] = {8, 60, 64, 256, 384};
  case_options options = {fill_ties, true, true, false, false};
  long n = 0;
  for (size_t s = 0; s < 3; s++)
    for (size_t d = 0; d < 3; d++)
      for (int bias_mode = 0; bias_mode < 3; bias_mode++)
        for (int renormalize = 0; renormalize < 2; renormalize++)
          for (size_t ei = 0; ei < sizeof expert_counts / sizeof expert_counts[0]; ei++) {
            const int64_t E = expert_counts[ei];
            int64_t ks[4];
            const int k_count = k_values(E, ks);
            for (int ki = 0; ki < k_count; ki++) {
              const int64_t k = ks[ki];
              moe_case c = shape_case(&(group_shape){E, 0, 0, k}, schemes[s], dtypes[d]);
              c.renormalize = renormalize;
              c.bias = bias_mode > 0;
              c.bias_kind = bias_mode == 1 ? BIAS_EQUAL : BIAS_PATTERN;
              c.bias_amplitude = bias_mode == 1 ? 0.1f : 0.3f;
              c.scale = n % 2 ? 2.5f : 0.0f;
              c.tokens = 7;
              c.threads = 1 + (int)(n % 3);
              c.output_layout = (int)(n % 3);
              run_case(&c, &options);
              n++;
            }
          }
  /* tied groups: every group alike (row 6), all equal (row 0), ... With a bias, pairs of different
   * experts can sum to the same group score in double and not in f32: those tokens are checked
   * within the tolerance, so the construction need not be clear here. */
  options.require_clear = false;
  static const group_shape shapes[] = {{256, 8, 4, 8}, {64, 8, 2, 4}, {64, 8, 8, 8}, {32, 16, 5, 7}, {16, 16, 4, 4}};
  for (size_t g = 0; g < sizeof shapes / sizeof shapes[0]; g++)
    for (size_t s = 0; s < 3; s++)
      for (size_t d = 0; d < 3; d++)
        for (int bias_mode = 0; bias_mode < 3; bias_mode++) {
          moe_case c = shape_case(&shapes[g], schemes[s], dtypes[d]);
          c.renormalize = bias_mode != 1;
          c.bias = bias_mode > 0;
          c.bias_kind = bias_mode == 1 ? BIAS_EQUAL : BIAS_PATTERN;
          c.bias_amplitude = bias_mode == 1 ? 0.1f : 0.3f;
          c.scale = bias_mode == 2 ? 2.5f : 0.0f;
          c.tokens = 7;
          c.threads = 1 + (int)(n % 3);
          run_case(&c, &options);
          n++;
        }
}

/* The all-equal row explicitly: ids 0..k-1 ascending, every weight the same, on every ISA. */
static void test_all_equal_explicit(void) {
  for (size_t s = 0; s < 3; s++)
    for (size_t d = 0; d < 3; d++)
      for (int ki = 0; ki < 3; ki++) {
        const int64_t E = 64, k = ki == 0 ? 1 : ki == 1 ? 8 : 32;
        uint16_t half[64];
        float full[64];
        for (int e = 0; e < E; e++) {
          full[e] = 0.375f;
          half[e] = dtypes[d] == LK_DTYPE_F16 ? f32_to_f16(0.375f) : f32_to_bf16(0.375f);
        }
        for (int i = 0; i < isa_count; i++) {
          float w[32];
          int32_t ids[32];
          for (int j = 0; j < 32; j++) ids[j] = ID_POISON;
          lk_moe_gating_params p;
          memset(&p, 0, sizeof p);
          p.logits = dtypes[d] == LK_DTYPE_F32 ? (const void *)full : (const void *)half;
          p.weights = w;
          p.expert_ids = ids;
          p.num_tokens = 1;
          p.num_experts = E;
          p.top_k = k;
          p.scoring = schemes[s];
          p.dtype = dtypes[d];
          kernel_calls++;
          if (!CHECK_STATUS(lk_moe_gating(contexts[i][1], &p), LK_OK)) continue;
          bool ascending = true, equal = true;
          for (int j = 0; j < k; j++) {
            ascending &= ids[j] == j;
            equal &= w[j] == w[0];
          }
          CHECKF(ascending && equal, "%s %s %s k %lld: all-equal logits gave ids %d %d ... and weights %g %g ...",
                 lk_isa_name(isas[i]), scheme_label(schemes[s]), dtype_label(dtypes[d]), (long long)k, ids[0],
                 k > 1 ? ids[1] : -1, (double)w[0], k > 1 ? (double)w[1] : 0.0);
          double want = schemes[s] == LK_MOE_SOFTMAX_TOPK ? 1.0 / 64 : schemes[s] == LK_MOE_TOPK_SOFTMAX ? 1.0 / (double)k
                                                                                                            : sigmoid(0.375);
          CHECKF(fabs(w[0] - want) <= REL * want, "%s %s: weight %.9g, expected %.9g", lk_isa_name(isas[i]),
                 scheme_label(schemes[s]), (double)w[0], want);
        }
      }
}

/* ---- NaN and infinities --------------------------------------------------------------------- */

static void fill_nonfinite(const moe_case *c, int64_t token, rng *r, float *v) {
  (void)r;
  const int64_t E = c->experts, k = c->top_k;
  for (int64_t e = 0; e < E; e++) v[e] = (float)((e * 37) % E - E / 2) * (4.0f / (float)E); /* distinct, |v| <= 2 */
  switch (token % 9) {
  case 0: v[0] = v[E / 2] = v[E - 1] = NAN; break;
  case 1: { /* k - 2 numbers (none for k <= 2), NaN elsewhere: NaN must fill the rest */
    int64_t numbers = k > 2 ? k - 2 : 0;
    for (int64_t e = 0; e < E - numbers; e++) v[e] = NAN;
    break;
  }
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
  default: /* NaN everywhere but two -inf: -inf before NaN */
    for (int64_t e = 0; e < E; e++) v[e] = e >= E - 2 ? -INFINITY : NAN;
    break;
  }
}

static void test_nonfinite(void) {
  static const int64_t expert_counts[] = {8, 33, 64};
  static const int64_t ks[] = {1, 3, 8};
  case_options options = {fill_nonfinite, true, true, false, true};
  long n = 0;
  for (size_t s = 0; s < 3; s++)
    for (size_t d = 0; d < 3; d++)
      for (int bias = 0; bias < 2; bias++)
        for (int renormalize = 0; renormalize < 2; renormalize++) {
          for (size_t ei = 0; ei < 3; ei++)
            for (size_t ki = 0; ki < 3; ki++) {
              moe_case c = shape_case(&(group_shape){expert_counts[ei], 0, 0, ks[ki]}, schemes[s], dtypes[d]);
              c.renormalize = renormalize;
              c.bias = bias;
              c.bias_kind = BIAS_RANDOM;
              c.bias_amplitude = 0.5f;
              c.scale = n % 2 ? 2.5f : 0.0f;
              c.tokens = 9;
              c.threads = 1 + (int)(n % 3);
              c.output_layout = (int)(n % 3);
              run_case(&c, &options);
              n++;
            }
          /* grouped: groups of 8 and of 2 */
          static const group_shape shapes[] = {{64, 8, 3, 4}, {32, 16, 4, 5}, {256, 8, 4, 8}};
          for (size_t g = 0; g < 3; g++) {
            moe_case c = shape_case(&shapes[g], schemes[s], dtypes[d]);
            c.renormalize = renormalize;
            c.bias = bias;
            c.bias_kind = BIAS_RANDOM;
            c.bias_amplitude = 0.5f;
            c.tokens = 9;
            c.threads = 1;
            run_case(&c, &options);
            n++;
          }
        }
}

/* Sigmoid of large logits is 1 in f32. Without a bias the logits rank, exactly; with a small one,
 * p + bias near 1 has ties that double tells apart, and the choice must stay valid within the
 * tolerance (those tokens are mostly checked that way). */
static void test_saturated(void) {
  for (size_t d = 0; d < 3; d++)
    for (int bias = 0; bias < 2; bias++)
      for (int grouped = 0; grouped < 2; grouped++) {
        moe_case c = shape_case(&(group_shape){256, grouped ? 8 : 0, grouped ? 4 : 0, 8}, LK_MOE_SIGMOID, dtypes[d]);
        c.renormalize = true;
        c.bias = bias;
        c.bias_kind = BIAS_RANDOM;
        c.bias_amplitude = 1e-3f;
        c.scale = 2.5f;
        c.tokens = 17;
        c.spread = 30.0f;
        c.pattern = PATTERN_UNIFORM;
        c.threads = 2;
        run_case(&c, &random_options);
      }
}

/* A correction bias with +inf, -inf and NaN among its values, or NaN alone: selection scores of
 * +inf, -inf and NaN for those experts whatever the logits. The vector kernels leave such calls to
 * the general one, which ranks them like any other scores (NaN last). */
static void test_nonfinite_bias(void) {
  static const group_shape shapes[] = {{256, 8, 4, 8}, {256, 1, 1, 8}, {64, 1, 1, 2}, {60, 4, 2, 6}};
  for (size_t g = 0; g < sizeof shapes / sizeof shapes[0]; g++)
    for (size_t s = 0; s < 3; s++)
      for (size_t d = 0; d < 3; d++)
        for (int nan_only = 0; nan_only < 2; nan_only++) {
          moe_case c = shape_case(&shapes[g], schemes[s], dtypes[d]);
          c.renormalize = true;
          c.bias = true;
          c.bias_kind = BIAS_SPECIAL;
          c.bias_amplitude = nan_only ? -0.2f : 0.2f;
          c.scale = 2.5f;
          c.tokens = 9;
          c.spread = 2.0f;
          c.pattern = PATTERN_UNIFORM;
          c.threads = 1 + (int)(g % 2);
          run_case(&c, &random_options);
        }
}

/* ---- the argument contract ----------------------------------------------------------------- */

enum { A_TOKENS = 4, A_EXPERTS = 64, A_K = 8 };

typedef struct argument_buffers {
  float logits[A_TOKENS * A_EXPERTS];
  float bias[A_EXPERTS];
  float weights[A_TOKENS * A_K];
  int32_t ids[A_TOKENS * A_K];
} argument_buffers;

static void poison_arguments(argument_buffers *b) {
  tensor_poison(LK_DTYPE_F32, b->weights, A_TOKENS * A_K);
  for (int i = 0; i < A_TOKENS * A_K; i++) b->ids[i] = ID_POISON;
}

/* Refused with a message that starts with `name`, and nothing written anywhere. */
static void expect_rejected(lk_cpu_context *context, const lk_moe_gating_params *p, argument_buffers *b,
                            const char *name, const char *what) {
  check_context_push("%s", what);
  poison_arguments(b);
  argument_buffers before;
  memcpy(&before, b, sizeof before);
  lk_status status = lk_moe_gating(context, p);
  char message[512];
  const char *last = lk_last_error();
  snprintf(message, sizeof message, "%s", last ? last : "");
  if (CHECK_INVALID(status, name))
    CHECKF(message_starts_with_name(message, name), "the message \"%s\" does not start with '%s'", message, name);
  CHECKF(memcmp(&before, b, sizeof before) == 0, "a refused call wrote to its buffers");
  check_context_pop();
}

static void expect_accepted(lk_cpu_context *context, const lk_moe_gating_params *p, const char *what) {
  check_context_push("%s", what);
  CHECK_STATUS(lk_moe_gating(context, p), LK_OK);
  check_context_pop();
}

static void test_arguments(void) {
  static argument_buffers b;
  rng r = rng_seeded(base_seed ^ 0xA46u);
  for (int i = 0; i < A_TOKENS * A_EXPERTS; i++) b.logits[i] = rng_uniform(&r, -2.0f, 2.0f);
  for (int i = 0; i < A_EXPERTS; i++) b.bias[i] = rng_uniform(&r, -0.1f, 0.1f);
  lk_moe_gating_params good;
  memset(&good, 0, sizeof good);
  good.logits = b.logits;
  good.weights = b.weights;
  good.expert_ids = b.ids;
  good.correction_bias = b.bias;
  good.num_tokens = A_TOKENS;
  good.num_experts = A_EXPERTS;
  good.top_k = A_K;
  good.num_groups = 8;
  good.topk_groups = 4;
  good.routed_scaling_factor = 2.5f;
  good.scoring = LK_MOE_SIGMOID;
  good.flags = LK_MOE_RENORMALIZE;
  good.dtype = LK_DTYPE_F32;

  for (int i = 0; i < isa_count; i++) {
    lk_cpu_context *context = contexts[i][1];
    check_context_push("isa %s", lk_isa_name(isas[i]));
    lk_moe_gating_params p = good;
    expect_accepted(context, &p, "the valid call");
    p.num_groups = 0; p.topk_groups = 0;
    expect_accepted(context, &p, "no grouping");
    p.num_groups = 0; p.topk_groups = -5;
    expect_accepted(context, &p, "num_groups 0: topk_groups ignored");
    p.num_groups = 1; p.topk_groups = 99;
    expect_accepted(context, &p, "num_groups 1: topk_groups ignored");
    p.num_groups = 1; p.topk_groups = 0; p.top_k = 32; p.num_tokens = 1; /* the outputs hold one token of 32 */
    expect_accepted(context, &p, "num_groups 1 with k 32");
    p = good; p.num_groups = 32; p.topk_groups = 8;
    expect_accepted(context, &p, "32 groups of 2");
    p = good; p.num_groups = 2; p.topk_groups = 1;
    expect_accepted(context, &p, "2 groups keep 1");
    p = good; p.num_groups = 8; p.topk_groups = 1; p.top_k = 8;
    expect_accepted(context, &p, "k equal to what one kept group holds");
    p = good; p.correction_bias = NULL; p.routed_scaling_factor = 0.0f; p.flags = 0;
    expect_accepted(context, &p, "no bias, no scale, no flags");
    p = good; p.logits_stride = A_EXPERTS;
    expect_accepted(context, &p, "logits_stride == num_experts");
    p = good; p.num_tokens = 2; p.logits_stride = 2 * A_EXPERTS;
    expect_accepted(context, &p, "logits_stride wider");
    p = good; p.num_experts = 32; p.logits_stride = A_EXPERTS; p.num_groups = 0; p.top_k = 32; p.num_tokens = 1;
    expect_accepted(context, &p, "k == num_experts == 32");
    p = good; p.num_experts = 1; p.logits_stride = A_EXPERTS; p.num_groups = 0; p.top_k = 1;
    expect_accepted(context, &p, "one expert");
    p = good; p.weights = (float *)b.ids; p.expert_ids = (int32_t *)b.weights;
    expect_accepted(context, &p, "outputs swapped between the buffers (disjoint)");
    for (int s = 0; s < 3; s++)
      for (int d = 0; d < 3; d++) {
        p = good; p.scoring = schemes[s]; p.dtype = dtypes[d];
        expect_accepted(context, &p, "every scheme and dtype");
      }

    /* zero tokens: nothing written, NULL buffers allowed */
    p = good; p.num_tokens = 0;
    poison_arguments(&b);
    argument_buffers before;
    memcpy(&before, &b, sizeof before);
    expect_accepted(context, &p, "num_tokens 0");
    CHECKF(memcmp(&before, &b, sizeof before) == 0, "num_tokens 0 wrote its outputs");
    p.logits = NULL; p.weights = NULL; p.expert_ids = NULL; p.correction_bias = NULL;
    expect_accepted(context, &p, "num_tokens 0 with NULL buffers");

    p = good;
    expect_rejected(NULL, &p, &b, "context", "context NULL");
    poison_arguments(&b);
    CHECK_INVALID(lk_moe_gating(context, NULL), "params");

    p = good; p.logits = NULL;
    expect_rejected(context, &p, &b, "logits", "logits NULL");
    p = good; p.weights = NULL;
    expect_rejected(context, &p, &b, "weights", "weights NULL");
    p = good; p.expert_ids = NULL;
    expect_rejected(context, &p, &b, "expert_ids", "expert_ids NULL");
    p = good; p.num_tokens = -1;
    expect_rejected(context, &p, &b, "num_tokens", "num_tokens -1");
    p = good; p.num_tokens = INT64_MIN;
    expect_rejected(context, &p, &b, "num_tokens", "num_tokens INT64_MIN");
    p = good; p.num_experts = 0;
    expect_rejected(context, &p, &b, "num_experts", "num_experts 0");
    p = good; p.num_experts = -64;
    expect_rejected(context, &p, &b, "num_experts", "num_experts negative");
    p = good; p.num_experts = 0; p.num_tokens = 0;
    expect_rejected(context, &p, &b, "num_experts", "num_experts 0 with no tokens");
    p = good; p.top_k = 0;
    expect_rejected(context, &p, &b, "top_k", "top_k 0");
    p = good; p.top_k = -1;
    expect_rejected(context, &p, &b, "top_k", "top_k -1");
    p = good; p.num_groups = 0; p.top_k = 33; p.num_tokens = 1;
    expect_rejected(context, &p, &b, "top_k", "top_k 33 > LK_MOE_MAX_TOP_K");
    p = good; p.num_groups = 0; p.num_experts = 8; p.logits_stride = A_EXPERTS; p.top_k = 9;
    expect_rejected(context, &p, &b, "top_k", "top_k > num_experts");
    p = good; p.num_groups = 0; p.top_k = 0; p.num_tokens = 0;
    expect_rejected(context, &p, &b, "top_k", "top_k 0 with no tokens");
    p = good; p.logits_stride = A_EXPERTS - 1;
    expect_rejected(context, &p, &b, "logits_stride", "logits_stride < num_experts");
    p = good; p.logits_stride = -1;
    expect_rejected(context, &p, &b, "logits_stride", "logits_stride -1");
    p = good; p.logits_stride = -A_EXPERTS;
    expect_rejected(context, &p, &b, "logits_stride", "logits_stride -num_experts");
    p = good; p.num_groups = -1;
    expect_rejected(context, &p, &b, "num_groups", "num_groups -1");
    p = good; p.num_groups = 3;
    expect_rejected(context, &p, &b, "num_groups", "num_groups not dividing num_experts");
    p = good; p.num_groups = 128; p.topk_groups = 4;
    expect_rejected(context, &p, &b, "num_groups", "num_groups > num_experts");
    p = good; p.num_groups = 64; p.topk_groups = 8;
    expect_rejected(context, &p, &b, "num_groups", "num_groups 64 > LK_MOE_MAX_GROUPS");
    p = good; p.topk_groups = 0;
    expect_rejected(context, &p, &b, "topk_groups", "topk_groups 0");
    p = good; p.topk_groups = -1;
    expect_rejected(context, &p, &b, "topk_groups", "topk_groups -1");
    p = good; p.topk_groups = 9;
    expect_rejected(context, &p, &b, "topk_groups", "topk_groups > num_groups");
    p = good; p.num_groups = 16; p.topk_groups = 1; p.top_k = 5;
    expect_rejected(context, &p, &b, "top_k|topk_groups", "top_k > what the kept groups hold");
    p = good; p.num_groups = 8; p.topk_groups = 2; p.top_k = 17;
    expect_rejected(context, &p, &b, "top_k|topk_groups", "top_k 17 > 2 groups of 8");
    p = good; p.scoring = (lk_moe_scoring)3;
    expect_rejected(context, &p, &b, "scoring", "scoring 3");
    p = good; p.scoring = (lk_moe_scoring)-1;
    expect_rejected(context, &p, &b, "scoring", "scoring -1");
    p = good; p.dtype = (lk_dtype)3;
    expect_rejected(context, &p, &b, "dtype", "dtype 3");
    p = good; p.dtype = (lk_dtype)-1;
    expect_rejected(context, &p, &b, "dtype", "dtype -1");
    p = good; p.flags = 2;
    expect_rejected(context, &p, &b, "flags", "flags 2");
    p = good; p.flags = LK_MOE_RENORMALIZE | 0x80000000u;
    expect_rejected(context, &p, &b, "flags", "flags with the top bit");
    /* outputs overlapping each other or the logits (docs/moe.md) */
    p = good; p.expert_ids = (int32_t *)b.weights;
    expect_rejected(context, &p, &b, "weights|expert_ids", "expert_ids == weights");
    p = good; p.expert_ids = (int32_t *)(b.weights + A_TOKENS * A_K - 3);
    expect_rejected(context, &p, &b, "weights|expert_ids", "expert_ids overlapping the end of weights");
    p = good; p.weights = (float *)b.logits + 5;
    expect_rejected(context, &p, &b, "weights|logits", "weights inside the logits");
    p = good; p.expert_ids = (int32_t *)(b.logits + A_TOKENS * A_EXPERTS - 1);
    expect_rejected(context, &p, &b, "expert_ids|logits", "expert_ids overlapping the logits' last element");
    check_context_pop();
  }
}

int main(void) {
  const char *seed = getenv("LK_TEST_SEED");
  if (seed && *seed) base_seed = strtoull(seed, NULL, 0);
  context_grid_create(contexts, isas, &isa_count);
  run_timed("arguments", test_arguments);
  run_timed("sweep", test_sweep);
  run_timed("grouped", test_grouped);
  run_timed("exact ties", test_ties);
  run_timed("all equal", test_all_equal_explicit);
  run_timed("nan and infinities", test_nonfinite);
  run_timed("saturated sigmoid", test_saturated);
  run_timed("non-finite bias", test_nonfinite_bias);
  context_grid_destroy(contexts, isa_count);
  printf("%llu cases, %ld kernel calls, ISAs:", (unsigned long long)case_counter, kernel_calls);
  for (int k = 0; k < isa_count; k++) printf(" %s", lk_isa_name(isas[k]));
  printf("\ntokens checked: %ld exactly, %ld as a set (weights near-tied or NaN), %ld within the tolerance "
         "(no clear margin after %d draws); %ld redraws\n",
         tokens_exact, tokens_set_only, tokens_tolerant, REDRAWS, redraw_count);
  printf("softmax_topk token checks whose p are all NaN: %ld\n", softmax_nan_rows);
  printf("worst weight error / (1e-5 relative): softmax_topk %.3f topk_softmax %.3f sigmoid %.3f\n", worst_ratio[0],
         worst_ratio[1], worst_ratio[2]);
  return check_summary("test_moe");
}
