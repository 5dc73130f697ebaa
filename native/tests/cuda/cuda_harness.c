/* The CUDA tests' shared part (cuda_harness.h). */
#include "cuda_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_harness.h"

static lk_cuda_stream test_stream;
static lk_cpu_context *scalar_context;
static char no_device_reason[512];

int cuda_test_begin(void) {
  int32_t count = 0;
  if (lk_cuda_device_count(&count) != LK_OK) {
    fprintf(stderr, "lk_cuda_device_count: %s\n", lk_last_error());
    exit(1);
  }
  if (count == 0) {
    snprintf(no_device_reason, sizeof no_device_reason, "%s", lk_last_error());
    return 0;
  }
  lk_cuda_device_properties p;
  if (lk_cuda_device_properties_get(0, &p) == LK_OK)
    printf("device 0: %s, sm_%d%d, %d SMs\n", p.name, (int)p.compute_capability_major, (int)p.compute_capability_minor,
           (int)p.multiprocessor_count);
  return (int)count;
}

int cuda_test_finish(const char *name, int device_count) {
  if (test_stream) lk_cuda_stream_destroy(test_stream);
  if (scalar_context) lk_cpu_context_destroy(scalar_context);
  if (device_count == 0) {
    check_skip("the kernels on a device", no_device_reason);
    const int failed = check_summary(name);
    return failed ? failed : 77;
  }
  return check_summary(name);
}

static void fail_exit(const char *what) {
  fprintf(stderr, "%s: %s\n", what, lk_last_error());
  exit(2);
}

void *device_mirror(const void *host, size_t bytes) {
  if (bytes == 0) return NULL;
  void *device = NULL;
  if (lk_cuda_malloc(0, bytes, &device) != LK_OK) fail_exit("lk_cuda_malloc");
  if (lk_cuda_memcpy(device, host, bytes, LK_CUDA_HOST_TO_DEVICE, NULL) != LK_OK) fail_exit("lk_cuda_memcpy (to the device)");
  return device;
}

void *device_poisoned(size_t bytes) {
  if (bytes == 0) return NULL;
  void *device = NULL;
  if (lk_cuda_malloc(0, bytes, &device) != LK_OK) fail_exit("lk_cuda_malloc");
  if (lk_cuda_memset(device, 0xff, bytes, NULL) != LK_OK) fail_exit("lk_cuda_memset");
  return device;
}

void host_from_device(void *host, const void *device, size_t bytes) {
  if (bytes == 0) return;
  if (lk_cuda_stream_synchronize(cuda_test_stream()) != LK_OK) fail_exit("lk_cuda_stream_synchronize");
  if (lk_cuda_memcpy(host, device, bytes, LK_CUDA_DEVICE_TO_HOST, NULL) != LK_OK) fail_exit("lk_cuda_memcpy (to the host)");
}

void device_free(void *device) {
  if (device && lk_cuda_free(device) != LK_OK) fail_exit("lk_cuda_free");
}

lk_cuda_stream cuda_test_stream(void) {
  if (!test_stream && lk_cuda_stream_create(0, &test_stream) != LK_OK) fail_exit("lk_cuda_stream_create");
  return test_stream;
}

void cuda_test_sync(void) { CHECK_STATUS(lk_cuda_stream_synchronize(cuda_test_stream()), LK_OK); }

lk_cpu_context *reference_context(void) {
  if (!scalar_context) {
    lk_cpu_options options = {1, LK_ISA_SCALAR};
    if (lk_cpu_context_create(&options, &scalar_context) != LK_OK) fail_exit("lk_cpu_context_create");
  }
  return scalar_context;
}
