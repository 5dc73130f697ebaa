/* Checks on what the library returns: a status, and for a failure the message lk_last_error()
 * gives, which must name the offending argument as a whole word ("x" does not match inside
 * "x_stride"). Failures print the status names and the library's message. */
#ifndef LK_TEST_LK_EXPECT_H
#define LK_TEST_LK_EXPECT_H

#include <stdbool.h>

#include "llmkernels.h"

/* True when `name` occurs in `message` delimited by characters that cannot be part of a C
 * identifier (or the ends of the string). */
bool message_names(const char *message, const char *name);

/* True when `message` starts with one of the words of a '|'-separated list of names, followed by
 * ':' or ' ' ("top_k: 9 is outside ..."): the native convention of naming the argument first. */
bool message_starts_with_name(const char *message, const char *names);

/* True when `word` occurs anywhere in `text`, ignoring ASCII case. */
bool contains_ignoring_case(const char *text, const char *word);

bool check_status_at(lk_status got, lk_status want, const char *file, int line, const char *expr);
/* Expects `want` (a failure) and a message naming `name`, or naming one of the words of a
 * '|'-separated list such as "y|residual" when either argument may be blamed. */
bool check_failure_at(lk_status got, lk_status want, const char *name, const char *file, int line,
                      const char *expr);

#define CHECK_STATUS(call, want) check_status_at((call), (want), __FILE__, __LINE__, #call)
#define CHECK_INVALID(call, name) \
  check_failure_at((call), LK_ERR_INVALID_ARGUMENT, (name), __FILE__, __LINE__, #call)
#define CHECK_UNSUPPORTED(call, name) \
  check_failure_at((call), LK_ERR_UNSUPPORTED, (name), __FILE__, __LINE__, #call)

/* The ISA levels this CPU runs, scalar first; returns how many were written (at most 3). */
int supported_isas(lk_isa out[3]);

#endif
