/* lk_cpu_context: creation and its arguments, forcing an ISA by option and by LLMK_ISA, and use
 * from several host threads: one context shared (each call either runs correctly or reports
 * LK_ERR_BUSY without touching anything) and one context per thread (every call runs). */
#if !defined(_WIN32)
#  define _POSIX_C_SOURCE 200809L /* setenv, unsetenv under -std=c11 */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

static void set_isa_variable(const char *value) {
#if defined(_WIN32)
  _putenv_s("LLMK_ISA", value ? value : "");
#else
  if (value) setenv("LLMK_ISA", value, 1);
  else unsetenv("LLMK_ISA");
#endif
}

static lk_isa best_isa(void) {
  lk_isa isas[3];
  return isas[supported_isas(isas) - 1];
}

static void check_info(lk_cpu_context *context, int32_t threads, lk_isa isa) {
  lk_cpu_context_info info = {-1, (lk_isa)-1};
  if (!CHECK_STATUS(lk_cpu_context_get_info(context, &info), LK_OK)) return;
  if (threads > 0) CHECKF(info.num_threads == threads, "num_threads %d, expected %d", info.num_threads, threads);
  else CHECKF(info.num_threads >= 1, "num_threads %d for the default", info.num_threads);
  CHECKF(info.isa == isa, "isa %s, expected %s", lk_isa_name(info.isa), lk_isa_name(isa));
}

static void test_create(void) {
  lk_cpu_context *context = NULL;
  if (CHECK_STATUS(lk_cpu_context_create(NULL, &context), LK_OK)) {
    check_info(context, 0, best_isa());
    lk_cpu_context_destroy(context);
  }
  for (int32_t threads = 0; threads <= 4; threads++) {
    lk_cpu_options options = {threads, LK_ISA_AUTO};
    context = NULL;
    check_context_push("num_threads = %d", threads);
    if (CHECK_STATUS(lk_cpu_context_create(&options, &context), LK_OK)) {
      check_info(context, threads, best_isa());
      lk_cpu_context_destroy(context);
    }
    check_context_pop();
  }
  lk_cpu_context_destroy(NULL);

  lk_cpu_options negative = {-1, LK_ISA_AUTO};
  CHECK_INVALID(lk_cpu_context_create(&negative, &context), "num_threads");
  negative.num_threads = INT32_MIN;
  CHECK_INVALID(lk_cpu_context_create(&negative, &context), "num_threads");
  lk_cpu_options bad_isa = {1, (lk_isa)9};
  CHECK_INVALID(lk_cpu_context_create(&bad_isa, &context), "isa");
  bad_isa.isa = (lk_isa)-1;
  CHECK_INVALID(lk_cpu_context_create(&bad_isa, &context), "isa");
  CHECK_INVALID(lk_cpu_context_create(NULL, NULL), "out_context");

  lk_cpu_context_info info;
  CHECK_INVALID(lk_cpu_context_get_info(NULL, &info), "context");
  if (CHECK_STATUS(lk_cpu_context_create(NULL, &context), LK_OK)) {
    CHECK_INVALID(lk_cpu_context_get_info(context, NULL), "out_info");
    lk_cpu_context_destroy(context);
  }

  /* Pools are started and joined cleanly, many times over (ASan's leak check sees the rest). */
  for (int i = 0; i < 40; i++) {
    lk_cpu_options options = {1 + i % 4, LK_ISA_AUTO};
    context = NULL;
    if (!CHECK_STATUS(lk_cpu_context_create(&options, &context), LK_OK)) break;
    lk_cpu_context_destroy(context);
  }
}

static void test_forced_isa(void) {
  static const lk_isa levels[] = {LK_ISA_SCALAR, LK_ISA_AVX2, LK_ISA_AVX512};
  uint32_t supported = lk_cpu_supported_isas();
  for (size_t i = 0; i < 3; i++) {
    lk_cpu_options options = {2, levels[i]};
    lk_cpu_context *context = NULL;
    check_context_push("forcing %s", lk_isa_name(levels[i]));
    if (supported & (1u << levels[i])) {
      if (CHECK_STATUS(lk_cpu_context_create(&options, &context), LK_OK)) {
        check_info(context, 2, levels[i]);
        lk_cpu_context_destroy(context);
      }
    } else {
      lk_status status = lk_cpu_context_create(&options, &context);
      const char *message = lk_last_error();
      CHECKF(status == LK_ERR_UNSUPPORTED, "returned %s", lk_status_name(status));
      CHECKF(contains_ignoring_case(message, levels[i] == LK_ISA_AVX512 ? "avx512" : "avx2"),
             "the message \"%s\" does not name the ISA", message ? message : "(null)");
    }
    check_context_pop();
  }
  if (supported & (1u << LK_ISA_AVX512))
    check_skip("refusing a forced AVX-512", "this CPU runs AVX-512");
}

/* LLMK_ISA is read at creation, by LK_ISA_AUTO only. */
static void test_isa_variable(void) {
  uint32_t supported = lk_cpu_supported_isas();
  static const struct { const char *value; lk_isa isa; } names[] = {
      {"scalar", LK_ISA_SCALAR}, {"avx2", LK_ISA_AVX2}, {"avx512", LK_ISA_AVX512}};
  for (size_t i = 0; i < 3; i++) {
    set_isa_variable(names[i].value);
    check_context_push("LLMK_ISA=%s", names[i].value);
    lk_cpu_context *context = NULL;
    lk_status status = lk_cpu_context_create(NULL, &context);
    if (supported & (1u << names[i].isa)) {
      if (CHECK_STATUS(status, LK_OK)) {
        check_info(context, 0, names[i].isa);
        lk_cpu_context_destroy(context);
      }
    } else {
      const char *message = lk_last_error();
      CHECKF(status == LK_ERR_UNSUPPORTED, "returned %s", lk_status_name(status));
      CHECKF(contains_ignoring_case(message, names[i].value), "the message \"%s\" does not name %s",
             message ? message : "(null)", names[i].value);
      if (status == LK_OK) lk_cpu_context_destroy(context);
    }
    check_context_pop();
  }

  set_isa_variable("avx2");
  lk_cpu_options forced = {1, LK_ISA_SCALAR};
  lk_cpu_context *context = NULL;
  check_context_push("LLMK_ISA=avx2 with isa = scalar in the options");
  if (CHECK_STATUS(lk_cpu_context_create(&forced, &context), LK_OK)) {
    check_info(context, 1, LK_ISA_SCALAR);
    lk_cpu_context_destroy(context);
  }
  check_context_pop();

  set_isa_variable("sse9");
  CHECK_INVALID(lk_cpu_context_create(NULL, &context), "LLMK_ISA");

  set_isa_variable(NULL);
  context = NULL;
  if (CHECK_STATUS(lk_cpu_context_create(NULL, &context), LK_OK)) {
    check_info(context, 0, best_isa());
    lk_cpu_context_destroy(context);
  }
}

/* ---- several host threads ------------------------------------------------------------------- */

enum { WORK_ROWS = 64, WORK_HIDDEN = 1024, CALLS_PER_THREAD = 300 };

typedef struct workload {
  guarded_buffer x, weight, y, expected;
  lk_rms_norm_params params;
} workload;

static workload workload_make(uint64_t seed) {
  workload w;
  size_t bytes = (size_t)WORK_ROWS * WORK_HIDDEN * sizeof(float);
  w.x = guarded_alloc(bytes, GUARD_EDGE_END);
  w.weight = guarded_alloc(WORK_HIDDEN * sizeof(float), GUARD_EDGE_END);
  w.y = guarded_alloc(bytes, GUARD_EDGE_END);
  w.expected = guarded_alloc(bytes, GUARD_EDGE_END);
  rng r = rng_seeded(seed);
  for (int i = 0; i < WORK_ROWS * WORK_HIDDEN; i++) ((float *)w.x.data)[i] = rng_uniform(&r, -1.0f, 1.0f);
  for (int i = 0; i < WORK_HIDDEN; i++) ((float *)w.weight.data)[i] = rng_uniform(&r, -1.0f, 1.0f);
  memset(&w.params, 0, sizeof w.params);
  w.params.x = w.x.data;
  w.params.weight = w.weight.data;
  w.params.rows = WORK_ROWS;
  w.params.hidden = WORK_HIDDEN;
  w.params.eps = 1e-6f;
  w.params.dtype = LK_DTYPE_F32;
  w.params.weight_dtype = LK_DTYPE_F32;
  return w;
}

/* The result every later call must reproduce bit for bit (same ISA, same inputs). */
static bool workload_expect(workload *w, lk_cpu_context *context) {
  w->params.y = w->expected.data;
  bool ok = CHECK_STATUS(lk_rms_norm(context, &w->params), LK_OK);
  w->params.y = w->y.data;
  return ok;
}

static void workload_free(workload *w) {
  guarded_free(&w->x);
  guarded_free(&w->weight);
  guarded_free(&w->y);
  guarded_free(&w->expected);
}

typedef struct hammer {
  lk_cpu_context *context; /* shared, or NULL: the thread makes its own */
  lk_isa own_isa;
  workload *work;
  int ok, busy, wrong_status, wrong_output, busy_wrote, busy_silent;
  lk_status first_wrong_status;
} hammer;

/* Checks are tallied here and asserted by the main thread: the harness counters are not
 * thread-safe, and a failure message from inside the race would interleave. */
static void hammer_body(void *arg) {
  hammer *h = arg;
  lk_cpu_context *context = h->context;
  if (!context) {
    lk_cpu_options options = {2, h->own_isa};
    if (lk_cpu_context_create(&options, &context) != LK_OK) {
      h->wrong_status = CALLS_PER_THREAD;
      h->first_wrong_status = LK_ERR_INTERNAL;
      return;
    }
  }
  size_t bytes = h->work->y.bytes;
  for (int call = 0; call < CALLS_PER_THREAD; call++) {
    tensor_poison(LK_DTYPE_F32, h->work->y.data, (int64_t)(bytes / sizeof(float)));
    lk_status status = lk_rms_norm(context, &h->work->params);
    if (status == LK_OK) {
      h->ok++;
      if (memcmp(h->work->y.data, h->work->expected.data, bytes) != 0) h->wrong_output++;
    } else if (status == LK_ERR_BUSY) {
      h->busy++;
      const char *message = lk_last_error();
      if (!message || !message[0]) h->busy_silent++;
      for (size_t i = 0; i < bytes / sizeof(float); i++)
        if (!tensor_is_poison(LK_DTYPE_F32, h->work->y.data, (int64_t)i)) {
          h->busy_wrote++;
          break;
        }
    } else if (h->wrong_status++ == 0) {
      h->first_wrong_status = status;
    }
  }
  if (!h->context) lk_cpu_context_destroy(context);
}

static void run_hammers(const char *what, lk_cpu_context *shared, int thread_count) {
  hammer hammers[2];
  workload work[2];
  void *args[2];
  lk_isa isa = best_isa();
  lk_cpu_context *reference = NULL;
  lk_cpu_options options = {1, isa};
  if (!CHECK_STATUS(lk_cpu_context_create(&options, &reference), LK_OK)) return;
  for (int t = 0; t < thread_count; t++) {
    work[t] = workload_make(0xC0FFEEull + (uint64_t)t);
    workload_expect(&work[t], reference);
    memset(&hammers[t], 0, sizeof hammers[t]);
    hammers[t].context = shared;
    hammers[t].own_isa = isa;
    hammers[t].work = &work[t];
    args[t] = &hammers[t];
  }
  lk_cpu_context_destroy(reference);
  check_context_push("%s", what);
  if (CHECK(run_host_threads(thread_count, hammer_body, args))) {
    int busy = 0, ok = 0;
    for (int t = 0; t < thread_count; t++) {
      hammer *h = &hammers[t];
      busy += h->busy;
      ok += h->ok;
      CHECKF(h->wrong_status == 0, "thread %d: %d calls returned neither LK_OK nor LK_ERR_BUSY (first: %s)", t,
             h->wrong_status, lk_status_name(h->first_wrong_status));
      CHECKF(h->wrong_output == 0, "thread %d: %d successful calls produced wrong output", t, h->wrong_output);
      CHECKF(h->busy_wrote == 0, "thread %d: %d calls refused with LK_ERR_BUSY wrote to y anyway", t, h->busy_wrote);
      CHECKF(h->busy_silent == 0, "thread %d: %d LK_ERR_BUSY refusals left lk_last_error() empty", t, h->busy_silent);
      if (!shared) CHECKF(h->busy == 0, "thread %d: own context reported busy %d times", t, h->busy);
    }
    /* One thread may starve (a loaded machine, an emulator), but a refusal means another call
     * was running, and that call succeeds. */
    CHECKF(ok > 0, "no call succeeded");
    printf("%s: %d calls, %d refused as busy\n", what, thread_count * CALLS_PER_THREAD, busy);
  }
  check_context_pop();
  for (int t = 0; t < thread_count; t++) workload_free(&work[t]);
}

static void test_threads(void) {
  for (int32_t threads = 1; threads <= 2; threads++) {
    lk_cpu_options options = {threads, LK_ISA_AUTO};
    lk_cpu_context *shared = NULL;
    if (!CHECK_STATUS(lk_cpu_context_create(&options, &shared), LK_OK)) continue;
    char what[80];
    snprintf(what, sizeof what, "two host threads on one context with %d workers", threads);
    run_hammers(what, shared, 2);
    lk_cpu_context_destroy(shared);
  }
  run_hammers("two host threads, a context each", NULL, 2);
}

int main(void) {
  set_isa_variable(NULL); /* the suite decides; an inherited LLMK_ISA would skew "auto" */
  test_create();
  test_forced_isa();
  test_isa_variable();
  test_threads();
  return check_summary("test_context");
}
