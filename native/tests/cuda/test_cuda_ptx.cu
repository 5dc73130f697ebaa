/* The instructions the tensor-core kernels rest on (lk_cuda_ptx.cuh) and the warp and block
 * operations the others use, against their PTX ISA definitions computed on the host: mma.sync
 * m16n8k16 (bf16 and f16, operands built lane by lane from the documented fragment layout),
 * ldmatrix x2/x4 with and without .trans, cp.async with zero fill and wait_group, the f32 -> 16-bit
 * packing, shuffles (xor, down, up, indexed, with a width), ballot and __syncthreads_or/count.
 *
 * Built twice: test_cuda_ptx with nvcc for a GPU (skipped without one), and test_cuda_ptx_emu as
 * C++ over the emulator. Passing both shows that the emulator implements what the hardware does,
 * which is what makes the emulated kernel tests evidence about the GPU kernels. Inputs are small
 * multiples of 1/4, so products and sums are exact in f32 whatever the accumulation order. */
#include "lk_cuda_ptx.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace {

int failures = 0, checks = 0;

void expect(bool ok, const char *what, int index, double got, double want) {
  checks++;
  if (ok) return;
  if (failures++ < 10) fprintf(stderr, "FAILED: %s [%d]: got %g, want %g\n", what, index, got, want);
}

#define TRY(call)                                                                    \
  do {                                                                               \
    const cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                         \
      fprintf(stderr, "%s: %s (%s)\n", #call, cudaGetErrorName(e_), cudaGetErrorString(e_)); \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)

template <typename T>
T *to_device(const T *host, size_t count) {
  T *device = nullptr;
  TRY(cudaMalloc((void **)&device, sizeof(T) * count));
  TRY(cudaMemcpy(device, host, sizeof(T) * count, cudaMemcpyHostToDevice));
  return device;
}

template <typename T>
void to_host(T *host, const T *device, size_t count) {
  TRY(cudaDeviceSynchronize());
  TRY(cudaMemcpy(host, device, sizeof(T) * count, cudaMemcpyDeviceToHost));
}

float b16_value(uint16_t bits, bool bf16) {
  if (bf16) {
    uint32_t u = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  const int exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
  const float magnitude = exponent ? ldexpf(1.0f + mantissa / 1024.0f, exponent - 15) : ldexpf(mantissa / 1024.0f, -14);
  return bits & 0x8000 ? -magnitude : magnitude;
}

/* Exact 16-bit patterns of small multiples of 1/4 (both formats hold them exactly). */
uint16_t b16_bits(float v, bool bf16) {
  if (bf16) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return (uint16_t)(u >> 16);
  }
  if (v == 0.0f) return 0;
  int exponent;
  const float m = frexpf(fabsf(v), &exponent); /* v = m 2^e, m in [0.5, 1) */
  const uint16_t bits = (uint16_t)(((exponent - 1 + 15) << 10) | (uint16_t)((m * 2.0f - 1.0f) * 1024.0f));
  return v < 0 ? (uint16_t)(bits | 0x8000) : bits;
}

/* ---- mma.sync ------------------------------------------------------------------------------------ */

template <typename T>
__global__ void mma_kernel(const uint16_t *A, const uint16_t *B, const float *C, float *D) {
  /* fragments straight from the PTX ISA's tables (g = lane / 4, t = lane % 4) */
  const int lane = (int)threadIdx.x, g = lane / 4, t = lane % 4;
  auto a_at = [&](int row, int col) { return (uint32_t)A[row * 16 + col]; };
  auto b_at = [&](int k, int n) { return (uint32_t)B[k * 8 + n]; };
  uint32_t a[4], b[2];
  a[0] = a_at(g, 2 * t) | a_at(g, 2 * t + 1) << 16;
  a[1] = a_at(g + 8, 2 * t) | a_at(g + 8, 2 * t + 1) << 16;
  a[2] = a_at(g, 2 * t + 8) | a_at(g, 2 * t + 9) << 16;
  a[3] = a_at(g + 8, 2 * t + 8) | a_at(g + 8, 2 * t + 9) << 16;
  b[0] = b_at(2 * t, g) | b_at(2 * t + 1, g) << 16;
  b[1] = b_at(2 * t + 8, g) | b_at(2 * t + 9, g) << 16;
  float c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
  float d[4];
  lk_mma_16816<T>(d, a, b, c);
  D[g * 8 + 2 * t] = d[0];
  D[g * 8 + 2 * t + 1] = d[1];
  D[(g + 8) * 8 + 2 * t] = d[2];
  D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

template <typename T>
void test_mma(bool bf16) {
  uint16_t A[16 * 16], B[16 * 8];
  float Af[16 * 16], Bf[16 * 8], C[16 * 8], D[16 * 8];
  for (int i = 0; i < 256; i++) Af[i] = (float)((i * 7 + 3) % 13 - 6) * 0.25f, A[i] = b16_bits(Af[i], bf16);
  for (int i = 0; i < 128; i++) Bf[i] = (float)((i * 5 + 1) % 11 - 5) * 0.25f, B[i] = b16_bits(Bf[i], bf16);
  for (int i = 0; i < 128; i++) C[i] = (float)(i % 9 - 4);
  for (int i = 0; i < 256; i++) expect(b16_value(A[i], bf16) == Af[i], "16-bit encoding of A", i, b16_value(A[i], bf16), Af[i]);
  uint16_t *dA = to_device(A, 256), *dB = to_device(B, 128);
  float *dC = to_device(C, 128), *dD = to_device(D, 128);
  LK_LAUNCH(dim3(1), dim3(32), 0, nullptr, mma_kernel<T>)(dA, dB, dC, dD);
  TRY(cudaGetLastError());
  to_host(D, dD, 128);
  for (int m = 0; m < 16; m++)
    for (int n = 0; n < 8; n++) {
      float want = C[m * 8 + n];
      for (int k = 0; k < 16; k++) want += Af[m * 16 + k] * Bf[k * 8 + n];
      expect(D[m * 8 + n] == want, bf16 ? "mma bf16" : "mma f16", m * 8 + n, D[m * 8 + n], want);
    }
  TRY(cudaFree(dA));
  TRY(cudaFree(dB));
  TRY(cudaFree(dC));
  TRY(cudaFree(dD));
}

/* ---- ldmatrix --------------------------------------------------------------------------------------
 * Four 8x8 matrices of 16-bit elements in shared memory, element (i, r, c) = i * 64 + r * 8 + c
 * (as bits), rows padded to 12 elements; lane l gives the address of row l % 8 of matrix l / 8. */
__global__ void ldmatrix_kernel(uint32_t *out) {
  __shared__ __align__(16) uint16_t tile[4 * 8 * 16];
  const int lane = (int)threadIdx.x;
  for (int e = lane; e < 4 * 8 * 16; e += 32) {
    const int i = e / 128, r = e / 16 % 8, c = e % 16;
    tile[e] = (uint16_t)(c < 8 ? i * 64 + r * 8 + c : 0xffff);
  }
  __syncwarp();
  const uint16_t *row = tile + (lane / 8) * 128 + (lane % 8) * 16;
  uint32_t r4[4], r4t[4], r2[2], r2t[2];
  lk_ldmatrix_x4(r4, row);
  lk_ldmatrix_x4_trans(r4t, row);
  lk_ldmatrix_x2(r2, row);
  lk_ldmatrix_x2_trans(r2t, row);
  for (int i = 0; i < 4; i++) out[lane * 12 + i] = r4[i], out[lane * 12 + 4 + i] = r4t[i];
  for (int i = 0; i < 2; i++) out[lane * 12 + 8 + i] = r2[i], out[lane * 12 + 10 + i] = r2t[i];
}

void test_ldmatrix() {
  uint32_t out[32 * 12];
  uint32_t *d = to_device(out, 32 * 12);
  LK_LAUNCH(dim3(1), dim3(32), 0, nullptr, ldmatrix_kernel)(d);
  TRY(cudaGetLastError());
  to_host(out, d, 32 * 12);
  for (int l = 0; l < 32; l++)
    for (int i = 0; i < 4; i++) {
      const int r = l / 4, c = 2 * (l % 4);
      const uint32_t plain = (uint32_t)(i * 64 + r * 8 + c) | (uint32_t)(i * 64 + r * 8 + c + 1) << 16;
      const uint32_t trans = (uint32_t)(i * 64 + c * 8 + r) | (uint32_t)(i * 64 + (c + 1) * 8 + r) << 16;
      expect(out[l * 12 + i] == plain, "ldmatrix.x4", l * 4 + i, out[l * 12 + i], plain);
      expect(out[l * 12 + 4 + i] == trans, "ldmatrix.x4.trans", l * 4 + i, out[l * 12 + 4 + i], trans);
      if (i < 2) {
        expect(out[l * 12 + 8 + i] == plain, "ldmatrix.x2", l * 2 + i, out[l * 12 + 8 + i], plain);
        expect(out[l * 12 + 10 + i] == trans, "ldmatrix.x2.trans", l * 2 + i, out[l * 12 + 10 + i], trans);
      }
    }
  TRY(cudaFree(d));
}

/* ---- cp.async ------------------------------------------------------------------------------------
 * Two groups of 16-byte copies, the second with zero fill for odd chunks: after wait_group 1 the
 * first group has landed (the second may have), after wait_group 0 both. */
__global__ void cp_async_kernel(const uint32_t *source, uint32_t *out) {
  __shared__ __align__(16) uint32_t tile[2 * 32 * 4];
  const int lane = (int)threadIdx.x;
  for (int e = lane; e < 2 * 32 * 4; e += 32) tile[e] = 0xdeadbeefu;
  __syncwarp();
  lk_cp_async_16(tile + lane * 4, source + lane * 4, true);
  lk_cp_async_commit();
  lk_cp_async_16(tile + 128 + lane * 4, source + 128 + lane * 4, lane % 2 == 0);
  lk_cp_async_commit();
  lk_cp_async_wait<1>();
  __syncwarp();
  for (int i = 0; i < 4; i++) out[lane * 4 + i] = tile[((lane + 1) % 32) * 4 + i]; /* another lane's first-group copy */
  lk_cp_async_wait<0>();
  __syncwarp();
  for (int i = 0; i < 4; i++) out[128 + lane * 4 + i] = tile[128 + ((lane + 1) % 32) * 4 + i];
}

void test_cp_async() {
  uint32_t source[256], out[256];
  for (int i = 0; i < 256; i++) source[i] = 1000u + (uint32_t)i;
  uint32_t *ds = to_device(source, 256), *dout = to_device(out, 256);
  LK_LAUNCH(dim3(1), dim3(32), 0, nullptr, cp_async_kernel)(ds, dout);
  TRY(cudaGetLastError());
  to_host(out, dout, 256);
  for (int l = 0; l < 32; l++)
    for (int i = 0; i < 4; i++) {
      const int other = (l + 1) % 32;
      expect(out[l * 4 + i] == source[other * 4 + i], "cp.async group 1 after wait_group 1", l * 4 + i, out[l * 4 + i],
             source[other * 4 + i]);
      const uint32_t want = other % 2 == 0 ? source[128 + other * 4 + i] : 0u;
      expect(out[128 + l * 4 + i] == want, "cp.async group 2 (zero fill) after wait_group 0", l * 4 + i, out[128 + l * 4 + i], want);
    }
  TRY(cudaFree(ds));
  TRY(cudaFree(dout));
}

/* ---- packing, shuffles, votes, block reductions ----------------------------------------------- */

__global__ void warp_kernel(const float *values, uint32_t *packed, int *shuffled, int *votes) {
  const int lane = (int)threadIdx.x % 32, warp = (int)threadIdx.x / 32;
  if (warp == 0) {
    packed[lane * 2] = lk_pack2<lk_bf16>(values[lane * 2], values[lane * 2 + 1]);
    packed[64 + lane * 2] = lk_pack2<lk_f16>(values[lane * 2], values[lane * 2 + 1]);
    packed[lane * 2 + 1] = (uint32_t)lk_from_float<lk_bf16>(values[lane * 2]).bits;
    packed[64 + lane * 2 + 1] = (uint32_t)lk_from_float<lk_f16>(values[lane * 2]).bits;
  }
  const int v = (int)threadIdx.x * 10;
  int *s = shuffled + threadIdx.x * 6;
  s[0] = __shfl_xor_sync(0xffffffffu, v, 5);
  s[1] = __shfl_down_sync(0xffffffffu, v, 3);
  s[2] = __shfl_up_sync(0xffffffffu, v, 2);
  s[3] = __shfl_sync(0xffffffffu, v, 7);
  s[4] = __shfl_down_sync(0xffffffffu, v, 3, 16);
  s[5] = __shfl_sync(0xffffffffu, v, 21, 16);
  const unsigned ballot = __ballot_sync(0xffffffffu, lane % 3 == 0);
  const int any_big = __syncthreads_or(threadIdx.x == 40);
  const int count = __syncthreads_count(threadIdx.x % 5 == 0);
  if (threadIdx.x == 0) votes[0] = (int)ballot, votes[1] = any_big, votes[2] = count;
}

void test_warp() {
  float values[64];
  for (int i = 0; i < 64; i++) values[i] = 1.0f + (float)i * 0.00390625f * 0.37f - (i % 2 ? 3.0f : 0.0f);
  uint32_t packed[128];
  int shuffled[64 * 6], votes[3];
  float *dv = to_device(values, 64);
  uint32_t *dp = to_device(packed, 128);
  int *ds = to_device(shuffled, 64 * 6), *dvotes = to_device(votes, 3);
  LK_LAUNCH(dim3(1), dim3(64), 0, nullptr, warp_kernel)(dv, dp, ds, dvotes);
  TRY(cudaGetLastError());
  to_host(packed, dp, 128);
  to_host(shuffled, ds, 64 * 6);
  to_host(votes, dvotes, 3);
  for (int l = 0; l < 32; l++) {
    /* the packed pair's low half is the first value, rounded as lk_from_float rounds it */
    expect((packed[l * 2] & 0xffffu) == packed[l * 2 + 1], "bf16x2 low half", l, packed[l * 2] & 0xffff, packed[l * 2 + 1]);
    expect((packed[64 + l * 2] & 0xffffu) == packed[64 + l * 2 + 1], "f16x2 low half", l, packed[64 + l * 2] & 0xffff,
           packed[64 + l * 2 + 1]);
  }
  for (int tid = 0; tid < 64; tid++) {
    const int lane = tid % 32, base = tid - lane;
    const int want[6] = {(base + (lane ^ 5)) * 10,
                         (lane + 3 < 32 ? tid + 3 : tid) * 10,
                         (lane >= 2 ? tid - 2 : tid) * 10,
                         (base + 7) * 10,
                         ((lane % 16) + 3 < 16 ? tid + 3 : tid) * 10,
                         (base + (lane & ~15) + (21 & 15)) * 10};
    for (int k = 0; k < 6; k++) expect(shuffled[tid * 6 + k] == want[k], "shuffle", tid * 6 + k, shuffled[tid * 6 + k], want[k]);
  }
  expect((unsigned)votes[0] == 0x49249249u, "ballot", 0, votes[0], 0x49249249u);
  expect(votes[1] == 1, "__syncthreads_or", 0, votes[1], 1);
  expect(votes[2] == 13, "__syncthreads_count", 0, votes[2], 13);
  TRY(cudaFree(dv));
  TRY(cudaFree(dp));
  TRY(cudaFree(ds));
  TRY(cudaFree(dvotes));
}

} // namespace

int main() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    printf("SKIP: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp p;
  TRY(cudaGetDeviceProperties(&p, 0));
  printf("device 0: %s, sm_%d%d\n", p.name, p.major, p.minor);
  test_mma<lk_bf16>(true);
  test_mma<lk_f16>(false);
  test_ldmatrix();
  test_cp_async();
  test_warp();
  printf("test_cuda_ptx: %d checks passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
