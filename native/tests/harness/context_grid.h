/* A context per (ISA this CPU runs, thread count), created and checked once per test program,
 * and per-part timing of a suite. */
#ifndef LK_TEST_CONTEXT_GRID_H
#define LK_TEST_CONTEXT_GRID_H

#include "llmkernels.h"

#define GRID_MAX_THREADS 3

/* Fills isas/isa_count (scalar first) and contexts[k][threads] for threads 1..GRID_MAX_THREADS,
 * checking each context's info; exits the test if one cannot be created. Reports the AVX-512
 * variant as skipped where the CPU or OS does not run it. */
void context_grid_create(lk_cpu_context *contexts[][GRID_MAX_THREADS + 1], lk_isa isas[3], int *isa_count);
void context_grid_destroy(lk_cpu_context *contexts[][GRID_MAX_THREADS + 1], int isa_count);

/* Runs test and prints its wall time and the processor time of all threads (clock(), on POSIX),
 * which a busy machine does not inflate, so growth of a suite's runtime shows where it happens. */
void run_timed(const char *part, void (*test)(void));

#endif
