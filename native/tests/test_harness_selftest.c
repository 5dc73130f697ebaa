/* The harness checks itself before anything trusts it: the 16-bit conversions (the tests'
 * oracle) against the formats' definitions and, where the compiler has _Float16, against it;
 * guard pages really fault; poison is NaN; message matching is by whole word. */
#if !defined(_WIN32)
#  define _POSIX_C_SOURCE 200809L /* sigaction */
#endif

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_harness.h"

#if !defined(_WIN32)
#  include <signal.h>
#  include <unistd.h>
#endif

typedef uint16_t (*to_16)(float);
typedef float (*from_16)(uint16_t);

/* Low halves of binary32 patterns tried under every high half: zero, ones, and the rounding
 * boundaries of binary16 (bit 12 for normals, bits 13..15 for the largest subnormal shifts) and
 * of bfloat16 (bit 15), each exact, just below and just above. */
static const uint16_t low_halves[] = {0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x2001,
                                      0x3000, 0x4000, 0x4001, 0x5000, 0x7FFF, 0x8000, 0x8001, 0xC000,
                                      0xFFFF, 0x5A5A};

/* Round to nearest, ties to even, from the definition: the result is the nearest of the
 * representable neighbours, and at a tie the one with an even last bit. */
static bool rounds_to_nearest_even(float value, uint16_t result, from_16 from, uint16_t max_finite) {
  uint16_t magnitude = result & 0x7FFF;
  if (magnitude > max_finite) return false; /* callers handle overflow separately */
  double target = fabs((double)value);
  double chosen = fabs((double)from(result));
  double error = fabs(chosen - target);
  if (magnitude < max_finite) {
    double up = fabs((double)from((uint16_t)(magnitude + 1)));
    double up_error = fabs(up - target);
    if (up_error < error || (up_error == error && (magnitude & 1))) return false;
  }
  if (magnitude > 0) {
    double down = fabs((double)from((uint16_t)(magnitude - 1)));
    double down_error = fabs(down - target);
    if (down_error < error || (down_error == error && (magnitude & 1))) return false;
  }
  return (result & 0x8000) == (f32_bits(value) & 0x80000000u ? 0x8000 : 0);
}

static void check_format(const char *name, to_16 to, from_16 from, uint16_t max_finite, double overflow_threshold) {
  check_context_push("%s", name);
  long wrong_round_trip = 0, wrong_nan = 0;
  for (uint32_t bits = 0; bits <= 0xFFFF; bits++) {
    float value = from((uint16_t)bits);
    if (isnan(value)) {
      if (!isnan(from(to(value)))) wrong_nan++;
    } else if (to(value) != bits) {
      wrong_round_trip++;
    }
  }
  CHECKF(wrong_round_trip == 0, "%ld values do not survive a round trip", wrong_round_trip);
  CHECKF(wrong_nan == 0, "%ld NaNs do not stay NaN", wrong_nan);

  long wrong_rounding = 0, wrong_overflow = 0;
  uint32_t first_wrong = 0;
  for (uint32_t high = 0; high <= 0xFFFF; high++)
    for (size_t l = 0; l < sizeof low_halves / sizeof low_halves[0]; l++) {
      uint32_t bits = high << 16 | low_halves[l];
      float value = f32_from_bits(bits);
      uint16_t result = to(value);
      if (isnan(value)) {
        if (!isnan(from(result))) wrong_rounding++;
      } else if (fabs((double)value) >= overflow_threshold) {
        if (!isinf(from(result)) || signbit(from(result)) != signbit(value)) wrong_overflow++;
      } else if (!rounds_to_nearest_even(value, result, from, max_finite) && wrong_rounding++ == 0) {
        first_wrong = bits;
      }
    }
  CHECKF(wrong_rounding == 0, "%ld values are not rounded to nearest even; first 0x%08x -> 0x%04x", wrong_rounding,
         first_wrong, to(f32_from_bits(first_wrong)));
  CHECKF(wrong_overflow == 0, "%ld values beyond the range do not give infinity", wrong_overflow);
  check_context_pop();
}

static void test_f16(void) {
  /* 65520 is halfway between 65504 and 2^16 and rounds to even: infinity. */
  check_format("f16", f32_to_f16, f16_to_f32, 0x7BFF, 65520.0);
  CHECK(f32_to_f16(1.0f) == 0x3C00);
  CHECK(f32_to_f16(-2.0f) == 0xC000);
  CHECK(f32_to_f16(65504.0f) == 0x7BFF);
  CHECK(f32_to_f16(65519.996f) == 0x7BFF);
  CHECK(f32_to_f16(65520.0f) == 0x7C00);
  CHECK(f32_to_f16(0.1f) == 0x2E66);
  CHECK(f32_to_f16(ldexpf(1.0f, -14)) == 0x0400);        /* smallest normal */
  CHECK(f32_to_f16(ldexpf(1.0f, -24)) == 0x0001);        /* smallest subnormal */
  CHECK(f32_to_f16(ldexpf(1.0f, -25)) == 0x0000);        /* half of it: tie to even zero */
  CHECK(f32_to_f16(ldexpf(1.5f, -25)) == 0x0001);
  CHECK(f32_to_f16(ldexpf(3.0f, -25)) == 0x0002);        /* 1.5 units: tie to even 2 */
  CHECK(f32_to_f16(ldexpf(5.0f, -25)) == 0x0002);        /* 2.5 units: tie to even 2 */
  CHECK(f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3C00); /* tie between 1 and 1 + 2^-10 */
  CHECK(f32_to_f16(1.0f + ldexpf(3.0f, -11)) == 0x3C02);
  CHECK(f32_to_f16(-0.0f) == 0x8000);
  CHECK(f32_to_f16(INFINITY) == 0x7C00 && f32_to_f16(-INFINITY) == 0xFC00);
  CHECK(isnan(f16_to_f32(f32_to_f16(NAN))));
  CHECK(isnan(f16_to_f32(f32_to_f16(f32_from_bits(0x7F800001u))))); /* payload only in the low bits */
  CHECK(f16_to_f32(0x0001) == ldexpf(1.0f, -24));
  CHECK(f16_to_f32(0x03FF) == ldexpf(1023.0f, -24));
  CHECK(f16_to_f32(0xFBFF) == -65504.0f);

#if defined(__FLT16_MAX__)
  /* GCC and Clang's _Float16 conversion (libgcc or F16C) is an implementation we did not write. */
  long disagreements = 0;
  uint32_t first = 0;
  for (uint32_t high = 0; high <= 0xFFFF; high++)
    for (size_t l = 0; l < sizeof low_halves / sizeof low_halves[0]; l++) {
      float value = f32_from_bits(high << 16 | low_halves[l]);
      if (isnan(value)) continue;
      __extension__ _Float16 theirs = (__extension__(_Float16)value);
      uint16_t theirs_bits;
      memcpy(&theirs_bits, &theirs, sizeof theirs_bits);
      if (theirs_bits != f32_to_f16(value) && disagreements++ == 0) first = high << 16 | low_halves[l];
    }
  CHECKF(disagreements == 0, "%ld values convert differently from _Float16; first 0x%08x", disagreements, first);
#endif
}

static void test_bf16(void) {
  /* halfway between the largest finite bfloat16 and 2^128, exact in binary32 */
  check_format("bf16", f32_to_bf16, bf16_to_f32, 0x7F7F, (double)f32_from_bits(0x7F7F8000u));
  CHECK(f32_to_bf16(1.0f) == 0x3F80);
  CHECK(f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3F80); /* tie to even */
  CHECK(f32_to_bf16(1.0f + ldexpf(3.0f, -8)) == 0x3F82);
  CHECK(f32_to_bf16(f32_from_bits(0x7F7FFFFFu)) == 0x7F80); /* FLT_MAX rounds up to infinity */
  CHECK(f32_to_bf16(f32_from_bits(0x00000001u)) == 0x0000); /* smallest f32 subnormal */
  CHECK(f32_to_bf16(f32_from_bits(0x00008000u)) == 0x0000); /* tie to even zero */
  CHECK(f32_to_bf16(f32_from_bits(0x00018000u)) == 0x0002);
  CHECK(isnan(bf16_to_f32(f32_to_bf16(f32_from_bits(0x7F800001u)))));
  CHECK(isnan(bf16_to_f32(f32_to_bf16(f32_from_bits(0xFF800001u)))));
  CHECK(bf16_to_f32(0xC0A0) == -5.0f);
}

static void test_tensor(void) {
  static const lk_dtype dtypes[] = {LK_DTYPE_F32, LK_DTYPE_F16, LK_DTYPE_BF16};
  static const uint32_t default_nans[] = {0x7FC00000u, 0x7E00u, 0x7FC0u}; /* what x86 arithmetic makes */
  for (size_t d = 0; d < 3; d++) {
    uint32_t buffer[4];
    tensor_poison(dtypes[d], buffer, 3);
    CHECK(isnan(tensor_load(dtypes[d], buffer, 2)));
    CHECK(tensor_is_poison(dtypes[d], buffer, 0));
    tensor_store(dtypes[d], buffer, 1, 0.0f);
    CHECK(!tensor_is_poison(dtypes[d], buffer, 1) && tensor_is_poison(dtypes[d], buffer, 2));
    tensor_store(dtypes[d], buffer, 1, 1.0f / 3.0f);
    CHECK(tensor_load(dtypes[d], buffer, 1) == dtype_round(dtypes[d], 1.0f / 3.0f));
    /* poison is not what a kernel's arithmetic produces */
    CHECK(dtype_poison_bits(dtypes[d]) != default_nans[d] && (dtype_poison_bits(dtypes[d]) | 0x8000u) != (default_nans[d] | 0x8000u));
  }
  CHECK(dtype_ulp(LK_DTYPE_F16, 1.0) == ldexp(1.0, -10));
  CHECK(dtype_ulp(LK_DTYPE_F16, 1.999) == ldexp(1.0, -10));
  CHECK(dtype_ulp(LK_DTYPE_BF16, 2.0) == ldexp(1.0, -6));
  CHECK(dtype_ulp(LK_DTYPE_F32, 0.75) == ldexp(1.0, -24));
}

static void test_rng(void) {
  rng a = rng_seeded(42), b = rng_seeded(42);
  bool same = true, in_range = true;
  for (int i = 0; i < 1000; i++) {
    float u = rng_uniform(&a, -3.0f, 5.0f);
    same = same && u == rng_uniform(&b, -3.0f, 5.0f);
    in_range = in_range && u >= -3.0f && u <= 5.0f;
  }
  CHECK(same);
  CHECK(in_range);
  CHECK(rng_next(&a) != rng_next(&(rng){43}));
}

static void test_message_names(void) {
  CHECK(message_names("x_stride (3) must be >= hidden (4)", "x_stride"));
  CHECK(!message_names("x_stride (3) must be >= hidden (4)", "x"));
  CHECK(message_names("params->y overlaps x", "y"));
  CHECK(message_names("y", "y"));
  CHECK(!message_names("every", "y"));
  CHECK(!message_names(NULL, "y"));
  CHECK(message_names("bad weight_dtype", "weight_dtype") && !message_names("bad weight_dtype", "dtype"));
  CHECK(message_starts_with_name("top_k: 9 is outside [1, 8]", "top_k"));
  CHECK(message_starts_with_name("top_k: 9 is outside [1, 8]", "topk_groups|top_k"));
  CHECK(!message_starts_with_name("top_k: 9", "top"));
  CHECK(!message_starts_with_name("bad top_k: 9", "top_k"));
  CHECK(!message_starts_with_name(NULL, "top_k"));
}

#if !defined(_WIN32)
enum { FAULT_EXIT_CODE = 99 };

static void exit_on_fault(int signal_number) {
  (void)signal_number;
  _exit(FAULT_EXIT_CODE);
}

static int touch_byte(void *byte) {
  /* Our handler instead of the sanitizer's, which would symbolize a report for each probe. */
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = exit_on_fault;
  sigaction(SIGSEGV, &action, NULL);
  sigaction(SIGBUS, &action, NULL); /* macOS reports a PROT_NONE access as SIGBUS */
  *(volatile unsigned char *)byte = 1;
  return 0;
}

static int return_argument(void *arg) { return *(int *)arg; }

/* True if writing the byte at `offset` from the data start faults (in a child process). */
static bool access_faults(guarded_buffer *buffer, ptrdiff_t offset) {
  isolated_outcome outcome = run_isolated(touch_byte, (unsigned char *)buffer->data + offset);
  return !(outcome.exited && outcome.exit_code == 0);
}
#endif

static void test_guarded_buffers(void) {
  static const size_t sizes[] = {0, 1, 3, 4095, 4096, 4097, 100000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    for (int edge = 0; edge < 2; edge++) {
      guarded_buffer b = guarded_alloc(sizes[i], (guard_edge)edge);
      if (!CHECKF(b.data != NULL, "guarded_alloc(%zu) failed", sizes[i])) continue;
      memset(b.data, 0xAB, b.bytes);
      CHECK(b.bytes == sizes[i]);
#if !defined(_WIN32)
      if (edge == GUARD_EDGE_END) CHECKF(access_faults(&b, (ptrdiff_t)b.bytes), "one past %zu bytes", sizes[i]);
      else CHECKF(access_faults(&b, -1), "one before %zu bytes", sizes[i]);
#endif
      guarded_free(&b);
    }
#if !defined(_WIN32)
  guarded_buffer b = guarded_alloc(64, GUARD_EDGE_END);
  CHECK(!access_faults(&b, 63)); /* the probe itself works */
  isolated_outcome exited = run_isolated(return_argument, &(int){7});
  CHECKF(exited.exited && exited.exit_code == 7, "a probe returning 7 %s", isolated_describe(exited));
  guarded_make_read_only(&b);
  CHECK(access_faults(&b, 0));
  guarded_free(&b);
#endif
}

int main(void) {
  test_f16();
  test_bf16();
  test_tensor();
  test_rng();
  test_message_names();
  test_guarded_buffers();
  return check_summary("test_harness");
}
