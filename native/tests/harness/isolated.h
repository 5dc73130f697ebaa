/* Runs a probe in a child process, so that a crash or a sanitizer abort becomes a failed check
 * with a reason instead of the end of the test run. POSIX fork; on Windows the probe runs in
 * process (a crash there ends the run, as it would without this). */
#ifndef LK_TEST_ISOLATED_H
#define LK_TEST_ISOLATED_H

#include <stdbool.h>

typedef struct isolated_outcome {
  bool exited;   /* returned normally: exit_code holds the probe's return value (0..255) */
  int exit_code;
  int signal;    /* the signal that ended it, when it did not exit */
} isolated_outcome;

/* The probe must not use a context (thread pool) created before the call: only the calling
 * thread exists in the child. Its return value becomes the exit code. */
isolated_outcome run_isolated(int (*probe)(void *arg), void *arg);

/* "exited with 3", "killed by signal 11", for failure messages. */
const char *isolated_describe(isolated_outcome outcome);

#endif
