/* Counting assertions: every check is counted, a failure prints where and why and the run goes
 * on, so one run shows every broken case; check_summary() turns the tally into the exit code. */
#ifndef LK_TEST_CHECK_H
#define LK_TEST_CHECK_H

#include <stdbool.h>

#if defined(__GNUC__) || defined(__clang__)
#  define LK_TEST_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#  define LK_TEST_PRINTF(fmt_index, first_arg)
#endif

/* Counts one check; on failure prints "file:line: FAILED: expr: <message>". Returns ok. */
bool check_at(bool ok, const char *file, int line, const char *expr, const char *fmt, ...)
    LK_TEST_PRINTF(5, 6);

#define CHECK(cond) check_at((cond), __FILE__, __LINE__, #cond, NULL)
#define CHECKF(cond, ...) check_at((cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

/* Extra lines printed after each failure until the matching pop: the case being run, so a
 * failure deep in a sweep says which inputs produced it. Nested up to a small fixed depth. */
void check_context_push(const char *fmt, ...) LK_TEST_PRINTF(1, 2);
void check_context_pop(void);

/* A part of the suite that cannot run here (no threads library, ISA absent): printed, not failed. */
void check_skip(const char *what, const char *why);

long check_failures(void);

/* Prints "<name>: N checks passed, M failed" and returns the process exit code. */
int check_summary(const char *name);

#endif
