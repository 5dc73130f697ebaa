/* The library-wide entry points: ABI version, names, CPU detection, the layout table the
 * bindings check, and lk_last_error's thread-local contract. */
#include <stdio.h>
#include <string.h>

#include "test_harness.h"

static void test_version(void) {
  CHECKF(lk_abi_version() == LK_ABI_VERSION, "library ABI %d, header ABI %d", lk_abi_version(), LK_ABI_VERSION);
  const char *version = lk_version();
  unsigned major, minor, patch;
  int consumed = 0;
  CHECKF(version && sscanf(version, "%u.%u.%u%n", &major, &minor, &patch, &consumed) == 3 &&
             version[consumed] == '\0',
         "lk_version() = \"%s\" is not major.minor.patch", version ? version : "(null)");
}

static void test_names(void) {
  static const lk_status statuses[] = {LK_OK, LK_ERR_INVALID_ARGUMENT, LK_ERR_UNSUPPORTED,
                                       LK_ERR_OUT_OF_MEMORY, LK_ERR_BUSY, LK_ERR_INTERNAL, LK_ERR_DEVICE};
  enum { STATUS_COUNT = sizeof statuses / sizeof statuses[0] };
  char names[STATUS_COUNT][64];
  for (int i = 0; i < STATUS_COUNT; i++) {
    const char *name = lk_status_name(statuses[i]);
    CHECKF(name && name[0], "lk_status_name(%d) is empty", (int)statuses[i]);
    snprintf(names[i], sizeof names[i], "%s", name ? name : "");
    for (int j = 0; j < i; j++)
      CHECKF(strcmp(names[i], names[j]) != 0, "statuses %d and %d are both named \"%s\"", i, j, names[i]);
  }
  CHECK(contains_ignoring_case(names[1], "invalid"));
  CHECK(contains_ignoring_case(names[2], "unsupported"));
  CHECK(contains_ignoring_case(names[4], "busy"));
  CHECK(contains_ignoring_case(names[6], "device"));
  CHECK(lk_status_name((lk_status)99) != NULL); /* no crash on a value from a newer library */
  CHECK(lk_status_name((lk_status)-1) != NULL);

  static const struct { lk_isa isa; const char *word; } isas[] = {
      {LK_ISA_AUTO, "auto"}, {LK_ISA_SCALAR, "scalar"}, {LK_ISA_AVX2, "avx2"}, {LK_ISA_AVX512, "avx512"}};
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    const char *name = lk_isa_name(isas[i].isa);
    CHECKF(name && contains_ignoring_case(name, isas[i].word), "lk_isa_name(%d) = \"%s\", expected \"%s\"",
           (int)isas[i].isa, name ? name : "(null)", isas[i].word);
  }
  CHECK(lk_isa_name((lk_isa)42) != NULL);
}

static void test_cpu_detection(void) {
  uint32_t mask = lk_cpu_supported_isas();
  CHECKF(mask & (1u << LK_ISA_SCALAR), "supported ISAs 0x%x lack scalar", mask);
  CHECKF((mask & ~((1u << LK_ISA_SCALAR) | (1u << LK_ISA_AVX2) | (1u << LK_ISA_AVX512) | (1u << LK_ISA_AUTO))) == 0,
         "supported ISAs 0x%x has bits of no lk_isa", mask);
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  /* The compiler's own CPUID and XGETBV probe is an independent opinion. */
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#  if !defined(__clang__) && __GNUC__ >= 12 /* the first GCC that knows "f16c" here */
  avx2 = avx2 && __builtin_cpu_supports("f16c");
#  endif
  bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  CHECKF(((mask >> LK_ISA_AVX2) & 1u) == avx2, "library says AVX2 %s, compiler's probe says %s",
         (mask >> LK_ISA_AVX2) & 1u ? "yes" : "no", avx2 ? "yes" : "no");
  CHECKF(((mask >> LK_ISA_AVX512) & 1u) == avx512, "library says AVX-512 %s, compiler's probe says %s",
         (mask >> LK_ISA_AVX512) & 1u ? "yes" : "no", avx512 ? "yes" : "no");
#endif
  printf("supported ISAs:%s%s%s\n", mask & (1u << LK_ISA_SCALAR) ? " scalar" : "",
         mask & (1u << LK_ISA_AVX2) ? " avx2" : "", mask & (1u << LK_ISA_AVX512) ? " avx512" : "");

  char brand[256];
  memset(brand, 'x', sizeof brand);
  CHECK_STATUS(lk_cpu_brand(brand, (int32_t)sizeof brand), LK_OK);
  CHECK(memchr(brand, '\0', sizeof brand) != NULL);
  brand[sizeof brand - 1] = '\0';
  printf("CPU: %s\n", brand);
  char truncated[8];
  memset(truncated, 'x', sizeof truncated);
  CHECK_STATUS(lk_cpu_brand(truncated, (int32_t)sizeof truncated), LK_OK);
  CHECKF(memchr(truncated, '\0', sizeof truncated) != NULL, "a truncated brand is not NUL-terminated");
  truncated[sizeof truncated - 1] = '\0';
  CHECKF(strncmp(truncated, brand, strlen(truncated)) == 0, "truncated brand \"%s\" is not a prefix of \"%s\"",
         truncated, brand);
  char one = 'x';
  CHECK_STATUS(lk_cpu_brand(&one, 1), LK_OK);
  CHECK(one == '\0');
  CHECK_INVALID(lk_cpu_brand(NULL, 16), "buffer");
  char untouched = 'x';
  CHECK_INVALID(lk_cpu_brand(&untouched, -1), "capacity");
  CHECK(untouched == 'x');
  lk_status status = lk_cpu_brand(&untouched, 0); /* nothing fits, not even the NUL: OK or refused */
  CHECKF(status == LK_OK || status == LK_ERR_INVALID_ARGUMENT, "capacity 0 gave %s", lk_status_name(status));
  CHECK(untouched == 'x');
}

/* The layout table for the structs the C# side passes by pointer; lk_rms_norm_params is
 * checked with its kernel. */
static void test_struct_layout(void) {
  CHECK(lk_struct_size("lk_cpu_options") == (int64_t)sizeof(lk_cpu_options));
  CHECK(lk_struct_field_offset("lk_cpu_options", "num_threads") == (int64_t)offsetof(lk_cpu_options, num_threads));
  CHECK(lk_struct_field_offset("lk_cpu_options", "isa") == (int64_t)offsetof(lk_cpu_options, isa));
  CHECK(lk_struct_size("lk_cpu_context_info") == (int64_t)sizeof(lk_cpu_context_info));
  CHECK(lk_struct_field_offset("lk_cpu_context_info", "num_threads") ==
        (int64_t)offsetof(lk_cpu_context_info, num_threads));
  CHECK(lk_struct_field_offset("lk_cpu_context_info", "isa") == (int64_t)offsetof(lk_cpu_context_info, isa));

  CHECK(lk_struct_size("lk_no_such_struct") == -1);
  CHECK(lk_struct_size("") == -1);
  CHECK(lk_struct_size(NULL) == -1);
  CHECK(lk_struct_size("LK_RMS_NORM_PARAMS") == -1); /* names are exact */
  CHECK(lk_struct_field_offset("lk_rms_norm_params", NULL) == -1);
  CHECK(lk_struct_field_offset(NULL, "x") == -1);
  CHECK(lk_struct_field_offset("lk_cpu_options", "x") == -1); /* a field of another struct */
}

/* lk_last_error is per thread: a failure here is invisible to a thread that never failed. */
typedef struct last_error_probe {
  char seen_before[128];
  char seen_after_own_failure[128];
  lk_status own_status;
} last_error_probe;

static void probe_last_error(void *arg) {
  last_error_probe *probe = arg;
  const char *message = lk_last_error();
  snprintf(probe->seen_before, sizeof probe->seen_before, "%s", message ? message : "(null)");
  probe->own_status = lk_cpu_context_get_info(NULL, NULL);
  message = lk_last_error();
  snprintf(probe->seen_after_own_failure, sizeof probe->seen_after_own_failure, "%s", message ? message : "(null)");
}

static void test_last_error_is_thread_local(void) {
  CHECK_INVALID(lk_cpu_brand(NULL, 16), "buffer");
  char mine[256];
  snprintf(mine, sizeof mine, "%s", lk_last_error());
  last_error_probe probe = {{0}, {0}, LK_OK};
  void *args[1] = {&probe};
  if (!CHECK(run_host_threads(1, probe_last_error, args))) return;
  CHECKF(probe.seen_before[0] == '\0', "a fresh thread sees \"%s\", expected \"\"", probe.seen_before);
  CHECK(probe.own_status == LK_ERR_INVALID_ARGUMENT);
  CHECK(probe.seen_after_own_failure[0] != '\0');
  CHECKF(strcmp(lk_last_error(), mine) == 0, "another thread's failure changed this thread's message to \"%s\"",
         lk_last_error());
}

int main(void) {
  test_version();
  test_names();
  test_cpu_detection();
  test_struct_layout();
  test_last_error_is_thread_local();
  return check_summary("test_library");
}
