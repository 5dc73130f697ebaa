/* Which ISA levels this CPU *and OS* can run. CPUID says what the core implements; XGETBV says
 * whether the OS saves the YMM/ZMM state on context switches, without which AVX code corrupts
 * registers of other threads (or faults). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE /* syscall(), for the AMX permission below */
#endif
#include "lk_internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#  define LK_X86 1
#  if defined(_MSC_VER)
#    include <intrin.h>
static void cpuid(uint32_t leaf, uint32_t subleaf, uint32_t r[4]) {
  int regs[4];
  __cpuidex(regs, (int)leaf, (int)subleaf);
  for (int i = 0; i < 4; i++) r[i] = (uint32_t)regs[i];
}
static uint64_t xgetbv0(void) { return _xgetbv(0); }
#  else
#    include <cpuid.h>
static void cpuid(uint32_t leaf, uint32_t subleaf, uint32_t r[4]) {
  __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
}
static uint64_t xgetbv0(void) {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((uint64_t)edx << 32) | eax;
}
#  endif
#endif

/* Managed callers (the .NET JIT uses VEX-encoded YMM code) can enter with the upper halves of
 * the vector registers dirty; the first legacy-SSE instruction of our baseline code (argument
 * checks, struct copies) then pays a state transition. Measured on a [1, 4096] f32 RMSNorm from
 * C#: 620 ns instead of 440 ns. VZEROUPPER at entry costs about a cycle. */
#if LK_X86 && (defined(__GNUC__) || defined(__clang__))
#  include <immintrin.h>
__attribute__((target("avx"))) void lk_avx_zeroupper(void) { _mm256_zeroupper(); }
#elif LK_X86
void lk_avx_zeroupper(void) { _mm256_zeroupper(); }
#else
void lk_avx_zeroupper(void) {}
#endif

uint32_t lk_detect_isas(void) {
  uint32_t isas = 1u << LK_ISA_SCALAR;
#if LK_X86
  uint32_t r[4];
  cpuid(0, 0, r);
  uint32_t max_leaf = r[0];
  if (max_leaf < 7) return isas;
  cpuid(1, 0, r);
  bool fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1, f16c = (r[2] >> 29) & 1;
  if (!osxsave || !avx) return isas;
  uint64_t xcr0 = xgetbv0();
  bool ymm_state = (xcr0 & 0x6) == 0x6;          /* SSE + AVX state */
  bool zmm_state = (xcr0 & 0xe6) == 0xe6;        /* + opmask, ZMM_Hi256, Hi16_ZMM */
  cpuid(7, 0, r);
  bool avx2 = (r[1] >> 5) & 1;
  bool avx512f = (r[1] >> 16) & 1, avx512dq = (r[1] >> 17) & 1, avx512bw = (r[1] >> 30) & 1,
       avx512vl = (r[1] >> 31) & 1;
  if (ymm_state && avx2 && fma && f16c) isas |= 1u << LK_ISA_AVX2;
  if (ymm_state && zmm_state && avx2 && fma && f16c && avx512f && avx512dq && avx512bw && avx512vl)
    isas |= 1u << LK_ISA_AVX512;
#endif
  return isas;
}

/* AVX512_BF16 (vdpbf16ps: Cooper Lake, Sapphire Rapids, Zen 4): an extension the AVX-512 kernels
 * use where it exists, not an ISA level of its own. */
static bool detect_avx512_bf16(void) {
#if LK_X86
  if (!(lk_cpu_supported_isas() & (1u << LK_ISA_AVX512))) return false;
  uint32_t r[4];
  cpuid(7, 0, r);
  if (r[0] < 1) return false; /* no subleaf 1 */
  cpuid(7, 1, r);
  return (r[0] >> 5) & 1;
#else
  return false;
#endif
}

/* LLMK_AVX512_BF16=0 in the environment turns the extension off (the tests run the plain AVX-512
 * kernels that way too). */
bool lk_cpu_has_avx512_bf16(void) {
  static volatile int cached; /* 0 unknown, 1 no, 2 yes; benign race as above (CPUID traps in VMs) */
  if (!cached) {
    const char *setting = getenv("LLMK_AVX512_BF16");
    cached = (setting && strcmp(setting, "0") == 0) || !detect_avx512_bf16() ? 1 : 2;
  }
  return cached == 2;
}

/* AMX with BF16 tiles (Sapphire Rapids and later): CPUID's AMX-TILE and AMX-BF16, the OS saving
 * the tile state (XCR0 bits 17-18), and on Linux the process's permission to use it, which the
 * kernel grants on request (arch_prctl ARCH_REQ_XCOMP_PERM; without it the first tile instruction
 * faults). Only Linux is wired: elsewhere the decode kernel keeps vdpbf16ps. */
#if LK_X86 && defined(__linux__) && defined(__GNUC__)
#  include <sys/syscall.h>
#  include <unistd.h>
static bool detect_amx_bf16(void) { /* after lk_cpu_has_avx512_bf16(): the kernel uses both */
  uint32_t r[4];
  cpuid(7, 0, r);
  const bool amx_bf16 = (r[3] >> 22) & 1, amx_tile = (r[3] >> 24) & 1;
  if (!amx_bf16 || !amx_tile || (xgetbv0() & 0x60000) != 0x60000) return false;
  enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
  return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#else
static bool detect_amx_bf16(void) { return false; }
#endif

/* AMX is opt-in: LLMK_AMX=1 in the environment. Asking Linux for the tile state raises the
 * minimum signal stack of every thread of the process (AT_MINSIGSTKSZ, about 12 KB with AMX), and
 * runtimes that give their threads small alternate signal stacks then fail to start threads: a
 * library must not do that to its host unasked. The tests run it (native/tests/CMakeLists.txt). */
bool lk_cpu_has_amx_bf16(void) {
  static volatile int cached; /* 0 unknown, 1 no, 2 yes; the permission request is idempotent */
  if (!cached) {
    const char *setting = getenv("LLMK_AMX");
    cached = setting && strcmp(setting, "1") == 0 && lk_cpu_has_avx512_bf16() && detect_amx_bf16() ? 2 : 1;
  }
  return cached == 2;
}

LK_API uint32_t lk_cpu_supported_isas(void) {
  static volatile uint32_t cached; /* benign race: every thread computes the same value */
  if (!cached) cached = lk_detect_isas();
  return cached;
}

LK_API const char *lk_isa_name(lk_isa isa) {
  switch (isa) {
  case LK_ISA_AUTO: return "auto";
  case LK_ISA_SCALAR: return "scalar";
  case LK_ISA_AVX2: return "avx2";
  case LK_ISA_AVX512: return "avx512";
  }
  return "invalid";
}

lk_status lk_isa_from_environment(lk_isa *out) {
  *out = LK_ISA_AUTO;
  const char *value = getenv("LLMK_ISA");
  if (!value || !*value || strcmp(value, "auto") == 0) return LK_OK;
  for (int isa = LK_ISA_SCALAR; isa <= LK_ISA_AVX512; isa++) {
    if (strcmp(value, lk_isa_name((lk_isa)isa)) == 0) {
      *out = (lk_isa)isa;
      return LK_OK;
    }
  }
  return lk_fail(LK_ERR_INVALID_ARGUMENT, "LLMK_ISA='%s' is not one of auto, scalar, avx2, avx512", value);
}

LK_API lk_status lk_cpu_brand(char *buffer, int32_t capacity) {
  if (!buffer || capacity <= 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "buffer: NULL or capacity <= 0");
  char brand[49] = "unknown CPU";
#if LK_X86
  uint32_t r[4];
  cpuid(0x80000000u, 0, r);
  if (r[0] >= 0x80000004u) {
    for (uint32_t leaf = 0; leaf < 3; leaf++) {
      cpuid(0x80000002u + leaf, 0, r);
      memcpy(brand + leaf * 16, r, 16);
    }
    brand[48] = '\0';
  }
#endif
  const char *start = brand;
  while (*start == ' ') start++;
  size_t n = strlen(start);
  if (n >= (size_t)capacity) n = (size_t)capacity - 1;
  memcpy(buffer, start, n);
  buffer[n] = '\0';
  return LK_OK;
}
