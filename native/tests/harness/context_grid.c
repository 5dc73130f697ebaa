/* Contexts per ISA and thread count, and per-part timing: see context_grid.h. */
#include "context_grid.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "lk_expect.h"

void context_grid_create(lk_cpu_context *contexts[][GRID_MAX_THREADS + 1], lk_isa isas[3], int *isa_count) {
  *isa_count = supported_isas(isas);
  CHECKF(*isa_count >= 1 && isas[0] == LK_ISA_SCALAR, "lk_cpu_supported_isas() = 0x%x lacks scalar",
         lk_cpu_supported_isas());
  for (int k = 0; k < *isa_count; k++)
    for (int threads = 1; threads <= GRID_MAX_THREADS; threads++) {
      lk_cpu_options options = {threads, isas[k]};
      if (!CHECK_STATUS(lk_cpu_context_create(&options, &contexts[k][threads]), LK_OK)) {
        fprintf(stderr, "cannot create a %s context with %d threads\n", lk_isa_name(isas[k]), threads);
        exit(1);
      }
      lk_cpu_context_info info;
      CHECK_STATUS(lk_cpu_context_get_info(contexts[k][threads], &info), LK_OK);
      CHECK(info.isa == isas[k] && info.num_threads == threads);
    }
  if (!(lk_cpu_supported_isas() & (1u << LK_ISA_AVX512)))
    check_skip("AVX-512 variant", "this CPU or OS does not run AVX-512 (test_context checks the refusal)");
}

void context_grid_destroy(lk_cpu_context *contexts[][GRID_MAX_THREADS + 1], int isa_count) {
  for (int k = 0; k < isa_count; k++)
    for (int threads = 1; threads <= GRID_MAX_THREADS; threads++) lk_cpu_context_destroy(contexts[k][threads]);
}

void run_timed(const char *part, void (*test)(void)) {
  clock_t cpu_start = clock();
#if defined(TIME_UTC)
  struct timespec start, end;
  timespec_get(&start, TIME_UTC);
#endif
  test();
  double cpu = (double)(clock() - cpu_start) / CLOCKS_PER_SEC;
#if defined(TIME_UTC)
  timespec_get(&end, TIME_UTC);
  double wall = (double)(end.tv_sec - start.tv_sec) + 1e-9 * (double)(end.tv_nsec - start.tv_nsec);
  printf("%-22s %7.3f s wall %7.3f s cpu\n", part, wall, cpu);
#else
  printf("%-22s %7.3f s cpu\n", part, cpu);
#endif
}
