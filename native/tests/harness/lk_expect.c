#include "lk_expect.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

static bool is_identifier_char(char c) {
  return isalnum((unsigned char)c) || c == '_';
}

bool message_names(const char *message, const char *name) {
  size_t length = strlen(name);
  if (!message || length == 0) return false;
  for (const char *at = strstr(message, name); at; at = strstr(at + 1, name)) {
    bool starts_word = at == message || !is_identifier_char(at[-1]);
    bool ends_word = !is_identifier_char(at[length]);
    if (starts_word && ends_word) return true;
  }
  return false;
}

/* Whether match(message, word) holds for one of the words of a '|'-separated list. */
static bool any_name(const char *message, const char *names, bool (*match)(const char *, const char *)) {
  char word[64];
  while (*names) {
    size_t length = strcspn(names, "|");
    if (length > 0 && length < sizeof word) {
      memcpy(word, names, length);
      word[length] = '\0';
      if (match(message, word)) return true;
    }
    names += length;
    if (*names == '|') names++;
  }
  return false;
}

static bool message_names_any(const char *message, const char *names) { return any_name(message, names, message_names); }

static bool leads_with(const char *message, const char *name) {
  size_t length = strlen(name);
  return message && strncmp(message, name, length) == 0 && (message[length] == ':' || message[length] == ' ');
}

bool message_starts_with_name(const char *message, const char *names) { return any_name(message, names, leads_with); }

/* Copied before anything else calls into the library: the pointer is only valid until then. */
static void copy_last_error(char *out, size_t capacity) {
  const char *message = lk_last_error();
  snprintf(out, capacity, "%s", message ? message : "(null)");
}

bool check_status_at(lk_status got, lk_status want, const char *file, int line, const char *expr) {
  char message[512];
  copy_last_error(message, sizeof message);
  return check_at(got == want, file, line, expr, "returned %s, expected %s (last error: \"%s\")",
                  lk_status_name(got), lk_status_name(want), message);
}

bool check_failure_at(lk_status got, lk_status want, const char *name, const char *file, int line,
                      const char *expr) {
  char message[512];
  copy_last_error(message, sizeof message);
  if (!check_at(got == want, file, line, expr, "returned %s, expected %s naming '%s' (last error: \"%s\")",
                lk_status_name(got), lk_status_name(want), name, message))
    return false;
  return check_at(message_names_any(message, name), file, line, expr,
                  "the message \"%s\" does not name '%s'", message, name);
}

int supported_isas(lk_isa out[3]) {
  static const lk_isa levels[] = {LK_ISA_SCALAR, LK_ISA_AVX2, LK_ISA_AVX512};
  uint32_t mask = lk_cpu_supported_isas();
  int count = 0;
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
    if (mask & (1u << levels[i])) out[count++] = levels[i];
  return count;
}

bool contains_ignoring_case(const char *text, const char *word) {
  size_t n = strlen(word);
  for (; text && *text; text++) {
    size_t i = 0;
    while (i < n && text[i] && tolower((unsigned char)text[i]) == tolower((unsigned char)word[i])) i++;
    if (i == n) return true;
  }
  return false;
}
