/* lk_glu on every ISA this CPU runs x dtype x activation x layout (gate first, up first, split),
 * against float64 act(gate) * up and against the scalar ISA.
 *
 * Every d from 1 to 257 (ragged vector tails and streaming heads), three tokens with row strides
 * wider than the rows (the gaps hold NaN poison that must survive), inputs read-only on guard-paged
 * buffers whose last row ends at the guard page, the output too. Each case also runs in place
 * (out == x, out_stride == x_stride: the output overwrites each row's first d elements) and must
 * give the out-of-place result bit for bit. Large cases (outputs past the streaming-store
 * threshold, two threads) check the streaming path and the thread split the same way. Gate
 * values are spread over [-12, 12] plus NaN and infinities; up over [-2, 2]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activation_reference.h"

static lk_cpu_context *contexts[3][3]; /* [isa][threads] */
static lk_isa isas[3];
static int isa_count;

typedef struct glu_case {
  lk_dtype dtype;
  lk_activation activation;
  lk_glu_layout layout;
  int64_t tokens, d;
  int64_t x_stride, up_stride, out_stride; /* 0 or wider than the row */
  int threads;
  bool specials;
} glu_case;

static int64_t span(int64_t tokens, int64_t stride, int64_t width) { return (tokens - 1) * stride + width; }

static void run_case(const glu_case *c) {
  const bool split = c->layout == LK_GLU_SPLIT;
  const int64_t width = split ? c->d : 2 * c->d;
  const int64_t xs = c->x_stride ? c->x_stride : width, us = c->up_stride ? c->up_stride : c->d,
                os = c->out_stride ? c->out_stride : c->d;
  const size_t size = dtype_size(c->dtype);
  guarded_buffer x = guarded_alloc((size_t)span(c->tokens, xs, width) * size, GUARD_EDGE_END);
  guarded_buffer up = guarded_alloc(split ? (size_t)span(c->tokens, us, c->d) * size : 0, GUARD_EDGE_END);
  int64_t out_count = span(c->tokens, os, c->d);
  guarded_buffer out = guarded_alloc((size_t)out_count * size, GUARD_EDGE_END);
  void *reference_out = malloc((size_t)out_count * size);
  tensor_poison(c->dtype, x.data, span(c->tokens, xs, width));
  if (split) tensor_poison(c->dtype, up.data, span(c->tokens, us, c->d));
  rng r = rng_seeded(0xA11CEull + (uint64_t)c->d * 131 + (uint64_t)c->activation * 7 + (uint64_t)c->layout);
  /* gate and up element i of token t */
  const int64_t gate_at = c->layout == LK_GLU_UP_FIRST ? c->d : 0, up_at = c->layout == LK_GLU_GATE_FIRST ? c->d : 0;
  for (int64_t t = 0; t < c->tokens; t++)
    for (int64_t i = 0; i < c->d; i++) {
      float g = rng_uniform(&r, -12.0f, 12.0f), u = rng_uniform(&r, -2.0f, 2.0f);
      if (c->specials && i % 17 == 3) g = (i / 17) % 3 == 0 ? NAN : (i / 17) % 3 == 1 ? INFINITY : -INFINITY;
      tensor_store(c->dtype, x.data, t * xs + gate_at + i, g);
      if (split) tensor_store(c->dtype, up.data, t * us + i, u);
      else tensor_store(c->dtype, x.data, t * xs + up_at + i, u);
    }
  void *x_copy = malloc(x.bytes);
  memcpy(x_copy, x.data, x.bytes);
  guarded_make_read_only(&x);
  if (split) guarded_make_read_only(&up);

  for (int k = 0; k < isa_count; k++) {
    check_context_push("isa %s dtype %s %s layout %d tokens %lld d %lld strides %lld/%lld/%lld threads %d",
                       lk_isa_name(isas[k]), dtype_label(c->dtype), activation_label(c->activation), (int)c->layout,
                       (long long)c->tokens, (long long)c->d, (long long)c->x_stride, (long long)c->up_stride,
                       (long long)c->out_stride, c->threads);
    tensor_poison(c->dtype, out.data, out_count);
    lk_glu_params p = {x.data, split ? up.data : NULL, out.data, c->tokens, c->d, c->x_stride, c->up_stride,
                       c->out_stride, c->activation, c->layout, c->dtype};
    if (!CHECK_STATUS(lk_glu(contexts[k][c->threads], &p), LK_OK)) {
      check_context_pop();
      continue;
    }
    long bad = 0, gaps = 0, vs_scalar = 0;
    for (int64_t t = 0; t < c->tokens; t++) {
      for (int64_t i = 0; i < c->d; i++) {
        double g = tensor_load(c->dtype, x.data, t * xs + gate_at + i);
        double u = split ? tensor_load(c->dtype, up.data, t * us + i) : tensor_load(c->dtype, x.data, t * xs + up_at + i);
        double act = activation_reference(c->activation, g);
        float got = tensor_load(c->dtype, out.data, t * os + i);
        if (!activation_agrees(c->activation, c->dtype, got, act, u) && bad++ == 0)
          CHECKF(false, "token %lld, i %lld: gate %a up %a: got %a, want %a", (long long)t, (long long)i, g, u,
                 (double)got, act * u);
        if (k > 0) {
          float s = tensor_load(c->dtype, reference_out, t * os + i);
          double tol = 2.0 * activation_tolerance(c->activation, c->dtype, act, u, act * u);
          bool ok = (isnan(s) && isnan(got)) || s == got || fabs((double)s - got) <= tol;
          if (!ok && vs_scalar++ == 0)
            CHECKF(false, "token %lld, i %lld: %a here, %a on scalar", (long long)t, (long long)i, (double)got, (double)s);
        }
      }
      if (t + 1 < c->tokens)
        for (int64_t i = c->d; i < os; i++)
          if (!tensor_is_poison(c->dtype, out.data, t * os + i)) gaps++;
    }
    CHECKF(bad == 0, "%ld elements off the float64 reference", bad);
    CHECKF(gaps == 0, "%ld gap elements overwritten", gaps);
    if (k == 0) memcpy(reference_out, out.data, out.bytes);

    /* In place: out = x with x's stride, on a writable copy; bit for bit (a NaN may differ in payload). */
    {
      void *inplace = malloc(x.bytes);
      memcpy(inplace, x_copy, x.bytes);
      lk_glu_params q = p;
      q.x = inplace;
      q.out = inplace;
      q.out_stride = xs;
      if (CHECK_STATUS(lk_glu(contexts[k][c->threads], &q), LK_OK)) {
        long differ = 0;
        for (int64_t t = 0; t < c->tokens; t++)
          for (int64_t i = 0; i < c->d; i++)
            if (tensor_bits(c->dtype, inplace, t * xs + i) != tensor_bits(c->dtype, out.data, t * os + i) &&
                !(isnan(tensor_load(c->dtype, inplace, t * xs + i)) && isnan(tensor_load(c->dtype, out.data, t * os + i))) &&
                differ++ == 0)
              fprintf(stderr, "t %lld i %lld: %a vs %a (gate %a)\n", (long long)t, (long long)i,
                      (double)tensor_load(c->dtype, inplace, t * xs + i), (double)tensor_load(c->dtype, out.data, t * os + i),
                      (double)tensor_load(c->dtype, x_copy, t * xs + gate_at + i));
        CHECKF(differ == 0, "in place differs from out of place in %ld elements", differ);
      }
      free(inplace);
    }
    check_context_pop();
  }
  free(x_copy);
  free(reference_out);
  guarded_free(&x);
  guarded_free(&up);
  guarded_free(&out);
}

/* Rows fewer than threads (a decode step): the row is split by elements across threads; the output
 * must equal the single-thread one bit for bit (NaN payloads aside). */
static void run_decode(lk_dtype dtype, lk_activation act, int64_t tokens, int64_t d) {
  const size_t size = dtype_size(dtype);
  const int64_t n = tokens * 2 * d;
  void *x = malloc((size_t)n * size), *one = malloc((size_t)(tokens * d) * size), *two = malloc((size_t)(tokens * d) * size);
  rng r = rng_seeded(0xDEC0DEull + (uint64_t)d);
  for (int64_t i = 0; i < n; i++) {
    float v = rng_uniform(&r, -12.0f, 12.0f);
    if (i % 29 == 5) v = (i / 29) % 3 == 0 ? NAN : (i / 29) % 3 == 1 ? INFINITY : -INFINITY;
    tensor_store(dtype, x, i, v);
  }
  for (int k = 0; k < isa_count; k++) {
    check_context_push("decode isa %s dtype %s %s tokens %lld d %lld", lk_isa_name(isas[k]), dtype_label(dtype),
                       activation_label(act), (long long)tokens, (long long)d);
    lk_glu_params p = {x, NULL, one, tokens, d, 0, 0, 0, act, LK_GLU_GATE_FIRST, dtype};
    tensor_poison(dtype, one, tokens * d);
    tensor_poison(dtype, two, tokens * d);
    if (CHECK_STATUS(lk_glu(contexts[k][1], &p), LK_OK)) {
      p.out = two;
      if (CHECK_STATUS(lk_glu(contexts[k][2], &p), LK_OK)) {
        long differ = 0;
        for (int64_t i = 0; i < tokens * d; i++)
          differ += tensor_bits(dtype, one, i) != tensor_bits(dtype, two, i) &&
                    !(isnan(tensor_load(dtype, one, i)) && isnan(tensor_load(dtype, two, i)));
        CHECKF(differ == 0, "2 threads differ from 1 in %ld elements", differ);
      }
    }
    check_context_pop();
  }
  free(x);
  free(one);
  free(two);
}

int main(void) {
  isa_count = supported_isas(isas);
  for (int k = 0; k < isa_count; k++)
    for (int threads = 1; threads <= 2; threads++) {
      lk_cpu_options options = {threads, isas[k]};
      if (!CHECK_STATUS(lk_cpu_context_create(&options, &contexts[k][threads]), LK_OK)) return 1;
    }
  const lk_glu_layout layouts[] = {LK_GLU_GATE_FIRST, LK_GLU_UP_FIRST, LK_GLU_SPLIT};
  for (int di = 0; di < 3; di++)
    for (int a = 0; a < ACTIVATION_COUNT; a++)
      for (int l = 0; l < 3; l++)
        for (int64_t d = 1; d <= 257; d++) {
          /* every d for SiLU and GELU; every third otherwise (the tails are the same code) */
          if (all_activations[a] != LK_ACTIVATION_SILU && all_activations[a] != LK_ACTIVATION_GELU_ERF && d % 3 && d > 40)
            continue;
          glu_case c = {all_dtypes[di], all_activations[a], layouts[l], 3, d, 0, 0, 0, 1, d % 5 == 1};
          if (d % 2) { /* strided rows */
            c.x_stride = (layouts[l] == LK_GLU_SPLIT ? d : 2 * d) + 3;
            c.up_stride = layouts[l] == LK_GLU_SPLIT ? d + 5 : 0;
            c.out_stride = d + 2;
          }
          run_case(&c);
        }
  /* Large: streaming stores (out >= 8 MiB) and two threads. */
  for (int di = 0; di < 3; di++)
    for (int l = 0; l < 3; l++) {
      glu_case c = {all_dtypes[di], LK_ACTIVATION_SILU, layouts[l], 96, 14336 + 5, 0, 0, 0, 2, true};
      if (all_dtypes[di] != LK_DTYPE_F32) c.tokens = 300;
      run_case(&c);
      c.activation = LK_ACTIVATION_GELU_TANH;
      c.tokens = 4;
      c.threads = 1;
      run_case(&c);
    }
  /* Decode: one row split by elements over two threads (pieces of 64-element multiples, ragged). */
  for (int di = 0; di < 3; di++)
    for (int a = 0; a < ACTIVATION_COUNT; a++) {
      run_decode(all_dtypes[di], all_activations[a], 1, 14336);
      run_decode(all_dtypes[di], all_activations[a], 1, 8192 + 37);
    }
  run_decode(LK_DTYPE_BF16, LK_ACTIVATION_SILU, 1, 100003);
  for (int k = 0; k < isa_count; k++)
    for (int threads = 1; threads <= 2; threads++) lk_cpu_context_destroy(contexts[k][threads]);
  return check_summary("glu");
}
