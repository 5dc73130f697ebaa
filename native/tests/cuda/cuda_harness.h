/* What every CUDA kernel test shares: device copies of host buffers (the test builds its inputs on
 * the host, runs the CPU library's scalar reference on host copies and the CUDA entry point on
 * device copies of the same bytes, then compares), one stream, and the skip rule.
 *
 * Each test is linked twice (native/tests/CMakeLists.txt): against llmkernels_cuda, where it runs
 * on a GPU and is skipped (exit 77, the reason printed) without one, and against
 * llmkernels_cuda_emu, the same kernels on the CPU emulator, which always has its one device. */
#ifndef LK_CUDA_HARNESS_H
#define LK_CUDA_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "llmkernels_cuda.h"

/* The number of CUDA devices (0: the tests' device part is skipped); prints device 0. */
int cuda_test_begin(void);
/* The test's summary line and exit code: 77 (skipped) when there was no device and no check
 * failed, so CTest reports the skip. */
int cuda_test_finish(const char *name, int device_count);

/* A device buffer holding a copy of `bytes` host bytes (NULL for 0 bytes); exits on failure. */
void *device_mirror(const void *host, size_t bytes);
/* A device buffer of `bytes` bytes, every byte 0xff (NaN in f32, f16 and bf16); NULL for 0. */
void *device_poisoned(size_t bytes);
/* Copies device bytes back to the host (waits for the test stream first). */
void host_from_device(void *host, const void *device, size_t bytes);
void device_free(void *device);

/* The test's stream (created on first use; a non-blocking stream, as a host would use). */
lk_cuda_stream cuda_test_stream(void);
/* Synchronises the test stream and checks it reported LK_OK (no kernel found a bad index). */
void cuda_test_sync(void);

/* A CPU context on the scalar reference kernels, one thread. */
lk_cpu_context *reference_context(void);

#endif
