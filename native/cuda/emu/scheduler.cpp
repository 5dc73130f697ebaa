/* The emulator's blocks and threads: every CUDA thread of a block is a fiber with its own stack,
 * switched by a few instructions of assembly (x86-64 System V: ucontext's swapcontext makes a
 * system call per switch, and a warp shuffle here is 64 switches). A block runs in rounds: each
 * ready thread runs until it reaches a barrier or exits; then the barriers every live thread of
 * the block (or of a warp) has reached are released. A round that releases nothing while threads
 * still wait is a deadlock: reported, and the launch fails (lk_emu.h has the rules it enforces). */
#include "lk_emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#if !defined(__x86_64__)
#  error "the CUDA emulator's fibers are written for x86-64"
#endif

extern "C" {
/* Saves the callee-saved registers on the current stack and its pointer in *from, then resumes
 * the stack `to`, which was saved the same way (or prepared by prepare_stack). */
void lk_emu_switch(void **from, void *to);
void lk_emu_fiber_entry(void);
#if defined(__clang__)
extern char __start_lk_emu_shared[] __attribute__((weak));
extern char __stop_lk_emu_shared[] __attribute__((weak));
#endif
}

asm(R"(
  .text
  .globl lk_emu_switch
  .hidden lk_emu_switch
  .type lk_emu_switch, @function
lk_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lk_emu_switch, .-lk_emu_switch

  .globl lk_emu_fiber_entry
  .hidden lk_emu_fiber_entry
  .type lk_emu_fiber_entry, @function
lk_emu_fiber_entry:
  call lk_emu_fiber_main
  ud2
  .size lk_emu_fiber_entry, .-lk_emu_fiber_entry
)");

namespace lk_emu {

enum class run_state { ready, at_block_barrier, at_warp_barrier, done };

/* What a warp operation deposits for the other lanes: a shuffled value, the operands of an mma,
 * the row address of an ldmatrix. */
struct deposit {
  uint64_t value;
  uint32_t a[4], b[2];
  const void *address;
};

/* An issued cp.async: the source bytes are read at issue and land at the wait that covers the group. */
struct async_copy {
  void *destination;
  unsigned char bytes[16];
  int size;
  uint64_t group;
};

struct thread_state {
  uint3 idx;
  int linear, lane, warp;
  run_state state;
  void *stack_pointer;
  const char *waiting_at; /* the barrier's name, for a deadlock report */
  deposit out;
  std::vector<async_copy> pending_copies;
  uint64_t committed_groups;
};

thread_state *g_current = nullptr;
uint3 g_block_idx;
dim3 g_block_dim, g_grid_dim;

namespace {

constexpr size_t kStackBytes = 256 << 10; /* a thread's registers and local arrays */
constexpr size_t kMaxThreads = 1024;
constexpr size_t kMaxSharedBytes = 227 << 10; /* sm_90's opt-in maximum a block */

std::vector<thread_state> g_threads;
int g_thread_count = 0;
void *g_scheduler_stack_pointer = nullptr;
const std::function<void()> *g_body = nullptr;
unsigned char *g_stacks = nullptr; /* kMaxThreads stacks, each above an inaccessible page */
size_t g_page = 0;
unsigned char *g_dynamic_shared = nullptr; /* kMaxSharedBytes, 128-byte aligned as the hardware's */

size_t stack_slot_bytes() { return kStackBytes + g_page; }

bool reserve_stacks() {
  if (g_stacks) return true;
  g_page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t total = stack_slot_bytes() * kMaxThreads;
  void *mapping = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapping == MAP_FAILED) return false;
  g_stacks = (unsigned char *)mapping;
  /* a stack overflow faults on the page below the stack instead of corrupting its neighbour */
  for (size_t t = 0; t < kMaxThreads; t++) mprotect(g_stacks + t * stack_slot_bytes(), g_page, PROT_NONE);
  return true;
}

/* The initial stack of thread t: what lk_emu_switch pops (MXCSR and x87 control words, six
 * registers) and returns to, lk_emu_fiber_entry, which is entered with rsp 16-byte aligned so that
 * its call leaves lk_emu_fiber_main with the ABI's rsp % 16 == 8. */
void *prepare_stack(int t) {
  uintptr_t top = (uintptr_t)(g_stacks + (size_t)t * stack_slot_bytes() + stack_slot_bytes());
  top &= ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)top;
  *--sp = (uint64_t)(uintptr_t)&lk_emu_fiber_entry;
  for (int r = 0; r < 6; r++) *--sp = 0;      /* rbp rbx r12 r13 r14 r15 */
  uint32_t control[2];
  __asm__ volatile("stmxcsr %0" : "=m"(control[0]));
  __asm__ volatile("fnstcw %0" : "=m"(control[1]));
  *--sp = (uint64_t)control[0] | ((uint64_t)(control[1] & 0xffffu) << 32);
  return sp;
}

void yield_to_scheduler() { lk_emu_switch(&g_current->stack_pointer, g_scheduler_stack_pointer); }

void wait_at(run_state state, const char *name) {
  g_current->state = state;
  g_current->waiting_at = name;
  yield_to_scheduler();
}

bool reverse_order() {
  static const int reverse = [] {
    const char *order = getenv("LK_CUDA_EMU_ORDER");
    return order && strcmp(order, "reverse") == 0 ? 1 : 0;
  }();
  return reverse != 0;
}

/* Releases what can be released after a round; false when nothing could (all left are stuck). */
bool release_barriers() {
  bool released = false;
  bool all_at_block_barrier = true;
  for (int t = 0; t < g_thread_count; t++)
    if (g_threads[t].state != run_state::done && g_threads[t].state != run_state::at_block_barrier)
      all_at_block_barrier = false;
  if (all_at_block_barrier) {
    for (int t = 0; t < g_thread_count; t++)
      if (g_threads[t].state == run_state::at_block_barrier) g_threads[t].state = run_state::ready, released = true;
    return released;
  }
  for (int w = 0; w * 32 < g_thread_count; w++) {
    const int begin = w * 32, end = std::min(g_thread_count, begin + 32);
    bool all = true, any = false;
    for (int t = begin; t < end; t++) {
      if (g_threads[t].state == run_state::done) continue;
      if (g_threads[t].state != run_state::at_warp_barrier) all = false;
      else any = true;
    }
    if (all && any)
      for (int t = begin; t < end; t++)
        if (g_threads[t].state == run_state::at_warp_barrier) g_threads[t].state = run_state::ready, released = true;
  }
  return released;
}

void report_deadlock() {
  fprintf(stderr, "CUDA emulator: deadlock in block (%u, %u, %u) of a (%u, %u, %u) x (%u, %u, %u) launch:\n", g_block_idx.x,
          g_block_idx.y, g_block_idx.z, g_grid_dim.x, g_grid_dim.y, g_grid_dim.z, g_block_dim.x, g_block_dim.y,
          g_block_dim.z);
  int shown = 0;
  for (int t = 0; t < g_thread_count && shown < 16; t++) {
    const thread_state &s = g_threads[t];
    if (s.state == run_state::done) continue;
    fprintf(stderr, "  thread %d (warp %d lane %d) waits at %s\n", t, s.warp, s.lane, s.waiting_at);
    shown++;
  }
  fprintf(stderr, "  (a barrier some live threads of the block or warp never reach)\n");
}

#if defined(__clang__)
void poison_static_shared() {
  if (__start_lk_emu_shared && __stop_lk_emu_shared)
    memset(__start_lk_emu_shared, 0xff, (size_t)(__stop_lk_emu_shared - __start_lk_emu_shared));
}
#else
void poison_static_shared() {}
#endif

bool run_block(size_t shared_bytes) {
  poison_static_shared();
  memset(g_dynamic_shared, 0xff, shared_bytes);
  const bool reverse = reverse_order();
  for (int t = 0; t < g_thread_count; t++) {
    thread_state &s = g_threads[t];
    s.idx.x = (unsigned)t % g_block_dim.x;
    s.idx.y = (unsigned)t / g_block_dim.x % g_block_dim.y;
    s.idx.z = (unsigned)t / (g_block_dim.x * g_block_dim.y);
    s.linear = t;
    s.lane = t % 32;
    s.warp = t / 32;
    s.state = run_state::ready;
    s.waiting_at = "";
    s.pending_copies.clear();
    s.committed_groups = 0;
    s.stack_pointer = prepare_stack(t);
  }
  for (;;) {
    bool any_live = false;
    for (int i = 0; i < g_thread_count; i++) {
      const int t = reverse ? g_thread_count - 1 - i : i;
      if (g_threads[t].state != run_state::ready) continue;
      g_current = &g_threads[t];
      lk_emu_switch(&g_scheduler_stack_pointer, g_current->stack_pointer);
    }
    g_current = nullptr;
    for (int t = 0; t < g_thread_count; t++) any_live = any_live || g_threads[t].state != run_state::done;
    if (!any_live) return true;
    if (!release_barriers()) {
      report_deadlock();
      return false;
    }
  }
}

} // namespace

const uint3 &current_thread_idx() { return g_current->idx; }
int current_lane() { return g_current->lane; }

void syncthreads() { wait_at(run_state::at_block_barrier, "__syncthreads"); }

/* Deposit, barrier, count, barrier (the second as in warp_exchange: no deposit is overwritten early). */
int syncthreads_count(bool predicate) {
  g_current->out.value = predicate ? 1 : 0;
  syncthreads();
  int count = 0;
  for (int t = 0; t < g_thread_count; t++) count += g_threads[t].state != run_state::done && g_threads[t].out.value;
  syncthreads();
  return count;
}
void syncwarp() { wait_at(run_state::at_warp_barrier, "a warp operation (__syncwarp, shuffle, vote, ldmatrix, mma)"); }

unsigned warp_live_mask() {
  const int begin = g_current->warp * 32;
  unsigned mask = 0;
  for (int l = 0; l < 32 && begin + l < g_thread_count; l++)
    if (g_threads[begin + l].state != run_state::done) mask |= 1u << l;
  return mask;
}

/* Deposit, barrier, read, barrier: the second barrier keeps a fast lane from overwriting its
 * deposit (in its next exchange) before a slow lane has read it. */
uint64_t warp_exchange(uint64_t value, int source_lane) {
  g_current->out.value = value;
  syncwarp();
  const thread_state &source = g_threads[g_current->warp * 32 + (source_lane & 31)];
  const int index = g_current->warp * 32 + (source_lane & 31);
  const uint64_t got = index < g_thread_count && source.state != run_state::done ? source.out.value : value;
  syncwarp();
  return got;
}

unsigned warp_ballot(bool predicate) {
  g_current->out.value = predicate ? 1 : 0;
  syncwarp();
  unsigned bits = 0;
  const int begin = g_current->warp * 32;
  for (int l = 0; l < 32 && begin + l < g_thread_count; l++)
    if (g_threads[begin + l].state != run_state::done && g_threads[begin + l].out.value) bits |= 1u << l;
  syncwarp();
  return bits;
}

unsigned char *dynamic_shared() { return g_dynamic_shared; }

namespace {

float b16_to_float(uint16_t bits, bool bf16) {
  if (bf16) return __uint_as_float((uint32_t)bits << 16);
  /* IEEE binary16 */
  const uint32_t sign = (uint32_t)(bits & 0x8000u) << 16, exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    const float magnitude = (float)mantissa * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

uint16_t half_of(uint32_t reg, int which) { return (uint16_t)(which ? reg >> 16 : reg & 0xffffu); }

const thread_state &lane_state(int lane) { return g_threads[g_current->warp * 32 + lane]; }

void require_full_warp(const char *what) {
  const int begin = g_current->warp * 32;
  for (int l = 0; l < 32; l++)
    if (begin + l >= g_thread_count || g_threads[begin + l].state == run_state::done) {
      fprintf(stderr, "CUDA emulator: %s with lane %d of warp %d absent or exited (the instruction needs all 32)\n", what,
              l, g_current->warp);
      abort();
    }
}

} // namespace

/* mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 (PTX ISA, "Matrix Fragments for
 * mma.m16n8k16 with floating point type"), with g = lane / 4 and t = lane % 4:
 *   A (16 x 16, row): a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, 2t+1], a[2] = A[g][2t+8, 2t+9],
 *                     a[3] = A[g+8][2t+8, 2t+9]   (low half first)
 *   B (16 x 8, col):  b[0] = B[2t, 2t+1][g],  b[1] = B[2t+8, 2t+9][g]
 *   C, D (16 x 8):    c[0], c[1] = C[g][2t, 2t+1], c[2], c[3] = C[g+8][2t, 2t+1] */
void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], bool bf16) {
  require_full_warp("mma.sync");
  memcpy(g_current->out.a, a, sizeof g_current->out.a);
  memcpy(g_current->out.b, b, sizeof g_current->out.b);
  syncwarp();
  auto A = [&](int row, int col) {
    const thread_state &s = lane_state((row % 8) * 4 + (col % 8) / 2);
    return b16_to_float(half_of(s.out.a[(row >= 8 ? 1 : 0) + (col >= 8 ? 2 : 0)], col % 2), bf16);
  };
  auto B = [&](int k, int n) {
    const thread_state &s = lane_state(n * 4 + (k % 8) / 2);
    return b16_to_float(half_of(s.out.b[k >= 8 ? 1 : 0], k % 2), bf16);
  };
  const int g = g_current->lane / 4, t = g_current->lane % 4;
  float result[4];
  for (int i = 0; i < 4; i++) {
    const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i % 2);
    float sum = c[i];
    for (int k = 0; k < 16; k++) sum = fmaf(A(row, k), B(k, col), sum);
    result[i] = sum;
  }
  syncwarp();
  memcpy(d, result, sizeof result);
}

/* ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16: lanes 8i..8i+7 give the row addresses of
 * matrix i; out[i] of lane l holds matrix i's row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 (low
 * half first), or with .trans its column l / 4, rows 2 (l % 4) and 2 (l % 4) + 1. */
void ldmatrix(uint32_t *out, int count, bool transpose, const void *row_address) {
  require_full_warp("ldmatrix");
  g_current->out.address = row_address;
  syncwarp();
  const int l = g_current->lane;
  uint32_t result[4] = {0, 0, 0, 0};
  for (int i = 0; i < count; i++) {
    uint16_t e[2];
    for (int j = 0; j < 2; j++) {
      const int row = transpose ? 2 * (l % 4) + j : l / 4;
      const int col = transpose ? l / 4 : 2 * (l % 4) + j;
      const uint16_t *address = (const uint16_t *)lane_state(8 * i + row).out.address;
      e[j] = address[col];
    }
    result[i] = (uint32_t)e[0] | ((uint32_t)e[1] << 16);
  }
  syncwarp();
  memcpy(out, result, sizeof(uint32_t) * (size_t)count);
}

/* cp.async.cg.shared.global [dst], [src], 16, src_size: src_size bytes copied, the rest of the 16
 * zero-filled (src_size 0: zeros, the source not read). */
void cp_async(void *shared_destination, const void *global_source, int bytes, int source_bytes) {
  async_copy copy;
  copy.destination = shared_destination;
  copy.size = bytes;
  memset(copy.bytes, 0, sizeof copy.bytes);
  if (source_bytes > 0) memcpy(copy.bytes, global_source, (size_t)source_bytes);
  copy.group = g_current->committed_groups; /* the group the next commit closes */
  g_current->pending_copies.push_back(copy);
}

void cp_async_commit() { g_current->committed_groups++; }

/* cp.async.wait_group n: all but the n most recently committed groups are complete. Copies not
 * yet committed are not waited for (they belong to no group). */
void cp_async_wait(int pending_groups) {
  thread_state &s = *g_current;
  const uint64_t complete_below = s.committed_groups >= (uint64_t)pending_groups ? s.committed_groups - (uint64_t)pending_groups : 0;
  size_t kept = 0;
  for (size_t i = 0; i < s.pending_copies.size(); i++) {
    const async_copy &copy = s.pending_copies[i];
    if (copy.group < complete_below) memcpy(copy.destination, copy.bytes, (size_t)copy.size);
    else s.pending_copies[kept++] = copy;
  }
  s.pending_copies.resize(kept);
}

cudaError_t launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t, const std::function<void()> &body) {
  const uint64_t threads = (uint64_t)block.x * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.y > 65535 || grid.z > 65535 || shared_bytes > kMaxSharedBytes)
    return cudaErrorInvalidConfiguration;
  if (g_current) {
    fprintf(stderr, "CUDA emulator: a launch from inside a kernel (dynamic parallelism) is not emulated\n");
    return cudaErrorLaunchFailure;
  }
  if (!reserve_stacks()) return cudaErrorMemoryAllocation;
  g_threads.resize(kMaxThreads);
  if (!g_dynamic_shared && !(g_dynamic_shared = (unsigned char *)aligned_alloc(128, kMaxSharedBytes))) return cudaErrorMemoryAllocation;
  g_thread_count = (int)threads;
  g_block_dim = block;
  g_grid_dim = grid;
  g_body = &body;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        g_block_idx.x = x, g_block_idx.y = y, g_block_idx.z = z;
        if (!run_block(shared_bytes)) return cudaErrorLaunchFailure;
      }
  return cudaSuccess;
}

} // namespace lk_emu

/* Where every fiber starts: the kernel call, then back to the scheduler for good. */
extern "C" __attribute__((used, visibility("hidden"))) void lk_emu_fiber_main(void) {
  (*lk_emu::g_body)();
  lk_emu::thread_state &s = *lk_emu::g_current;
  if (!s.pending_copies.empty()) lk_emu::cp_async_wait(0); /* an exiting thread's copies still land */
  s.state = lk_emu::run_state::done;
  lk_emu::yield_to_scheduler();
  abort(); /* a finished fiber is never resumed */
}
