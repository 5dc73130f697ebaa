/* The sm_80 instructions the tensor-core kernels use, one wrapper each: mma.sync m16n8k16 with f32
 * accumulators (bf16 and f16 operands), ldmatrix (x2, x4, .trans), cp.async with zero fill, and
 * the f32 -> 2 x 16-bit packing of operands. Under LK_CUDA_EMU each is the emulator's
 * implementation of the PTX ISA's definition (emu/scheduler.cpp), so a fragment-layout mistake in
 * a kernel fails the emulated tests exactly as it would fail on a GPU.
 *
 * All of them are warp-collective except cp.async and the packing: every lane of the warp must
 * execute them together. */
#ifndef LK_CUDA_PTX_CUH
#define LK_CUDA_PTX_CUH

#include "lk_cuda_device.cuh"

/* d = a * b + c for a 16x16 (row) by 16x8 (col) product; fragments as the PTX ISA's "Matrix
 * Fragments for mma.m16n8k16" (emu/scheduler.cpp spells them out). */
template <typename T>
__device__ __forceinline__ void lk_mma_16816(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  static_assert(std::is_same<T, lk_bf16>::value || std::is_same<T, lk_f16>::value, "mma operands are bf16 or f16");
#if defined(LK_CUDA_EMU)
  lk_emu::mma_m16n8k16(d, a, b, c, std::is_same<T, lk_bf16>::value);
#else
  if constexpr (std::is_same<T, lk_bf16>::value) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%10, %11, %12, %13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
                   "f"(c[3]));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%10, %11, %12, %13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
                   "f"(c[3]));
  }
#endif
}

#if !defined(LK_CUDA_EMU)
__device__ __forceinline__ uint32_t lk_shared_address(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }
#endif

/* Four 8x8 matrices of 16-bit elements from shared memory: lane l gives the address of row l % 8
 * of matrix l / 8; out[i] is matrix i's fragment (row l / 4, columns 2 (l % 4) + {0, 1}). */
__device__ __forceinline__ void lk_ldmatrix_x4(uint32_t out[4], const void *row) {
#if defined(LK_CUDA_EMU)
  lk_emu::ldmatrix(out, 4, false, row);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(out[0]), "=r"(out[1]), "=r"(out[2]), "=r"(out[3])
               : "r"(lk_shared_address(row)));
#endif
}

/* The same, each matrix transposed: out[i] holds column l / 4, rows 2 (l % 4) + {0, 1}. */
__device__ __forceinline__ void lk_ldmatrix_x4_trans(uint32_t out[4], const void *row) {
#if defined(LK_CUDA_EMU)
  lk_emu::ldmatrix(out, 4, true, row);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(out[0]), "=r"(out[1]), "=r"(out[2]), "=r"(out[3])
               : "r"(lk_shared_address(row)));
#endif
}

/* Two matrices: lanes 0-15 give the addresses (the others' are ignored but must be valid). */
__device__ __forceinline__ void lk_ldmatrix_x2(uint32_t out[2], const void *row) {
#if defined(LK_CUDA_EMU)
  lk_emu::ldmatrix(out, 2, false, row);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(out[0]), "=r"(out[1])
               : "r"(lk_shared_address(row)));
#endif
}

__device__ __forceinline__ void lk_ldmatrix_x2_trans(uint32_t out[2], const void *row) {
#if defined(LK_CUDA_EMU)
  lk_emu::ldmatrix(out, 2, true, row);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(out[0]), "=r"(out[1])
               : "r"(lk_shared_address(row)));
#endif
}

/* 16 bytes global -> shared, asynchronously (cp.async.cg: through L2 only); valid false writes 16
 * zero bytes and reads nothing (rows past a sequence's end). Both addresses 16-byte aligned. The
 * data is there after the lk_cp_async_wait covering its group, and for other threads after a
 * barrier that follows it. */
__device__ __forceinline__ void lk_cp_async_16(void *shared_destination, const void *global_source, bool valid) {
#if defined(LK_CUDA_EMU)
  lk_emu::cp_async(shared_destination, global_source, 16, valid ? 16 : 0);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(lk_shared_address(shared_destination)),
               "l"(global_source), "r"(valid ? 16 : 0));
#endif
}

__device__ __forceinline__ void lk_cp_async_commit() {
#if defined(LK_CUDA_EMU)
  lk_emu::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

/* Waits until at most `Pending` of this thread's committed groups are still in flight. */
template <int Pending>
__device__ __forceinline__ void lk_cp_async_wait() {
#if defined(LK_CUDA_EMU)
  lk_emu::cp_async_wait(Pending);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
#endif
}

/* Two f32 rounded to T (round to nearest even) in one register, lo in the low half: an mma operand. */
template <typename T>
__device__ __forceinline__ uint32_t lk_pack2(float lo, float hi) {
#if defined(LK_CUDA_EMU)
  return (uint32_t)lk_from_float<T>(lo).bits | ((uint32_t)lk_from_float<T>(hi).bits << 16);
#else
  uint32_t r;
  if constexpr (std::is_same<T, lk_bf16>::value) asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  else asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#endif
}

#endif /* LK_CUDA_PTX_CUH */
