/* Opt-in bandwidth measurements for the memory-bound CUDA kernel tests (LK_CUDA_BENCH=1): a call's
 * best time over a few repetitions, and the same for a device-to-device copy that reads and writes
 * as many bytes, so that a result reads as a fraction of what this device's memory can move. It
 * prints; it checks nothing (timing is no test on a shared machine, and the emulator's times say
 * nothing about a GPU). Header-only, for the test that includes it. */
#ifndef LK_CUDA_BENCH_H
#define LK_CUDA_BENCH_H

#include <stdio.h>
#include <stdlib.h>

#include "cuda_harness.h"
#include "test_harness.h"

static int cuda_bench_enabled(void) {
  const char *v = getenv("LK_CUDA_BENCH");
  return v && *v && *v != '0';
}

typedef void (*cuda_bench_call)(void *context);

/* The best of 5 timings of 10 calls in a row, in milliseconds a call (3 calls to warm up first). */
static double cuda_bench_best_ms(cuda_bench_call call, void *context) {
  lk_cuda_event start = NULL, end = NULL;
  if (lk_cuda_event_create(0, &start) != LK_OK || lk_cuda_event_create(0, &end) != LK_OK) {
    fprintf(stderr, "lk_cuda_event_create: %s\n", lk_last_error());
    return -1.0;
  }
  for (int i = 0; i < 3; i++) call(context);
  cuda_test_sync();
  double best = 1e30;
  for (int r = 0; r < 5; r++) {
    float ms = 0.0f;
    lk_cuda_event_record(start, cuda_test_stream());
    for (int i = 0; i < 10; i++) call(context);
    lk_cuda_event_record(end, cuda_test_stream());
    cuda_test_sync();
    if (lk_cuda_event_elapsed_ms(start, end, &ms) == LK_OK && ms / 10.0 < best) best = ms / 10.0;
  }
  lk_cuda_event_destroy(start);
  lk_cuda_event_destroy(end);
  return best;
}

typedef struct cuda_bench_copy {
  void *source, *destination;
  size_t bytes;
} cuda_bench_copy;

static void cuda_bench_copy_call(void *context) {
  const cuda_bench_copy *c = (const cuda_bench_copy *)context;
  CHECK_STATUS(lk_cuda_memcpy(c->destination, c->source, c->bytes, LK_CUDA_DEVICE_TO_DEVICE, cuda_test_stream()), LK_OK);
}

/* Prints the call's time, its bandwidth for `moved_bytes` (read plus written), and the ratio to a
 * device-to-device copy of moved_bytes / 2 (which reads and writes that much). */
static void cuda_bench_report(const char *label, cuda_bench_call call, void *context, double moved_bytes) {
  const double ms = cuda_bench_best_ms(call, context);
  cuda_bench_copy copy = {NULL, NULL, (size_t)(moved_bytes / 2)};
  copy.source = device_poisoned(copy.bytes);
  copy.destination = device_poisoned(copy.bytes);
  const double copy_ms = cuda_bench_best_ms(cuda_bench_copy_call, &copy);
  device_free(copy.source);
  device_free(copy.destination);
  printf("bench %-52s %9.3f ms %8.1f GB/s   copy %8.1f GB/s   ratio %.2f\n", label, ms, moved_bytes / ms * 1e-6,
         moved_bytes / copy_ms * 1e-6, copy_ms / ms);
}

#endif /* LK_CUDA_BENCH_H */
