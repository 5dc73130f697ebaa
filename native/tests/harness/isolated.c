#if !defined(_WIN32)
#  define _POSIX_C_SOURCE 200809L /* fork, waitpid */
#endif

#include "isolated.h"

#include <stdio.h>

#if !defined(_WIN32)
#  include <sys/wait.h>
#  include <unistd.h>
#endif

isolated_outcome run_isolated(int (*probe)(void *arg), void *arg) {
  isolated_outcome outcome = {false, 0, 0};
#if defined(_WIN32)
  outcome.exited = true;
  outcome.exit_code = probe(arg);
#else
  fflush(NULL); /* or buffered output would be printed twice */
  pid_t child = fork();
  if (child == 0) _exit(probe(arg) & 0xFF); /* _exit: no atexit handlers, no leak report of the parent's memory */
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child) {
    outcome.signal = -1;
    return outcome;
  }
  if (WIFEXITED(status)) {
    outcome.exited = true;
    outcome.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    outcome.signal = WTERMSIG(status);
  }
#endif
  return outcome;
}

const char *isolated_describe(isolated_outcome outcome) {
  static char text[64];
  if (outcome.exited) snprintf(text, sizeof text, "exited with %d", outcome.exit_code);
  else if (outcome.signal > 0) snprintf(text, sizeof text, "killed by signal %d", outcome.signal);
  else snprintf(text, sizeof text, "could not be run");
  return text;
}
