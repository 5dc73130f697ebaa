#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Failures beyond this many are counted but not printed: a broken kernel in a sweep would
 * otherwise bury the first, most telling message under thousands of similar ones. */
#define MAX_PRINTED_FAILURES 50
#define MAX_CONTEXT_DEPTH 4

static long passed;
static long failed;
static char context_lines[MAX_CONTEXT_DEPTH][512];
static int context_depth;

bool check_at(bool ok, const char *file, int line, const char *expr, const char *fmt, ...) {
  if (ok) {
    passed++;
    return true;
  }
  failed++;
  if (failed > MAX_PRINTED_FAILURES) {
    if (failed == MAX_PRINTED_FAILURES + 1) fprintf(stderr, "... further failures are counted, not printed\n");
    return false;
  }
  fprintf(stderr, "%s:%d: FAILED: %s", file, line, expr);
  if (fmt) {
    va_list args;
    va_start(args, fmt);
    fputs(": ", stderr);
    vfprintf(stderr, fmt, args);
    va_end(args);
  }
  fputc('\n', stderr);
  for (int i = 0; i < context_depth && i < MAX_CONTEXT_DEPTH; i++) fprintf(stderr, "    in %s\n", context_lines[i]);
  fflush(stderr);
  return false;
}

void check_context_push(const char *fmt, ...) {
  if (context_depth < MAX_CONTEXT_DEPTH) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(context_lines[context_depth], sizeof context_lines[0], fmt, args);
    va_end(args);
  }
  context_depth++;
}

void check_context_pop(void) {
  if (context_depth > 0) context_depth--;
}

void check_skip(const char *what, const char *why) {
  printf("SKIP: %s: %s\n", what, why);
}

long check_failures(void) { return failed; }

int check_summary(const char *name) {
  printf("%s: %ld checks passed, %ld failed\n", name, passed, failed);
  fflush(stdout);
  return failed == 0 ? 0 : 1;
}
