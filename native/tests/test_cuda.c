/* llmkernels_cuda's helpers (llmkernels_cuda.h). On every host where the library builds: the
 * ABI version, the versions call, the device count (0 without a driver or a device, with the
 * reason in lk_last_error), and the argument contract of every helper (errors naming the
 * argument, before any CUDA call). With a GPU: memory, copies both ways and on the device, memset,
 * streams, events, properties, and a CUDA error (freeing a host pointer) coming back as
 * LK_ERR_DEVICE with the CUDA error's name. Without one, the device part is reported skipped
 * with the reason, and the test exits 77 (CTest's SKIP_RETURN_CODE) if everything else passed. */
#include "llmkernels_cuda.h"
#include "test_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_contract(int32_t count) {
  CHECK(lk_cuda_abi_version() == LK_CUDA_ABI_VERSION);
  int32_t runtime = -1, driver = -1;
  CHECK_STATUS(lk_cuda_versions(&runtime, &driver), LK_OK);
  CHECKF(runtime >= 11000, "runtime %d", (int)runtime);
  CHECKF(driver >= 0, "driver %d", (int)driver);
  CHECK_INVALID(lk_cuda_versions(NULL, &driver), "out_runtime");
  CHECK_INVALID(lk_cuda_versions(&runtime, NULL), "out_driver");
  CHECK_INVALID(lk_cuda_device_count(NULL), "out_count");

  lk_cuda_device_properties properties;
  CHECK_INVALID(lk_cuda_device_properties_get(0, NULL), "out_properties");
  CHECK_INVALID(lk_cuda_device_properties_get(-1, &properties), "device");
  CHECK_INVALID(lk_cuda_device_properties_get(count, &properties), "device");
  CHECK_INVALID(lk_cuda_device_synchronize(count), "device");
  CHECK_INVALID(lk_cuda_set_device(count), "device");
  CHECK_INVALID(lk_cuda_set_device(-1), "device");

  void *pointer = (void *)1;
  CHECK_INVALID(lk_cuda_malloc(0, 64, NULL), "out_pointer");
  CHECK_INVALID(lk_cuda_malloc(0, 0, &pointer), "bytes");
  CHECK(pointer == NULL); /* cleared before the error */
  CHECK_INVALID(lk_cuda_malloc(count, 64, &pointer), "device");
  CHECK_STATUS(lk_cuda_free(NULL), LK_OK);

  char host[16];
  CHECK_INVALID(lk_cuda_memset(NULL, 0, 16, NULL), "pointer");
  CHECK_STATUS(lk_cuda_memset(NULL, 0, 0, NULL), LK_OK); /* nothing to set */
  CHECK_INVALID(lk_cuda_memcpy(host, host, 16, (lk_cuda_copy_kind)0, NULL), "kind");
  CHECK_INVALID(lk_cuda_memcpy(host, host, 16, (lk_cuda_copy_kind)4, NULL), "kind");
  CHECK_INVALID(lk_cuda_memcpy(NULL, host, 16, LK_CUDA_HOST_TO_DEVICE, NULL), "destination");
  CHECK_INVALID(lk_cuda_memcpy(host, NULL, 16, LK_CUDA_DEVICE_TO_HOST, NULL), "source");
  CHECK_STATUS(lk_cuda_memcpy(NULL, NULL, 0, LK_CUDA_DEVICE_TO_DEVICE, NULL), LK_OK);

  lk_cuda_stream stream = (lk_cuda_stream)1;
  CHECK_INVALID(lk_cuda_stream_create(0, NULL), "out_stream");
  CHECK_INVALID(lk_cuda_stream_create(count, &stream), "device");
  CHECK(stream == NULL);
  CHECK_INVALID(lk_cuda_stream_destroy(NULL), "stream");

  lk_cuda_event event = (lk_cuda_event)1;
  float ms = 0.0f;
  CHECK_INVALID(lk_cuda_event_create(0, NULL), "out_event");
  CHECK_INVALID(lk_cuda_event_create(count, &event), "device");
  CHECK(event == NULL);
  CHECK_INVALID(lk_cuda_event_destroy(NULL), "event");
  CHECK_INVALID(lk_cuda_event_record(NULL, NULL), "event");
  CHECK_INVALID(lk_cuda_event_elapsed_ms(NULL, (lk_cuda_event)1, &ms), "start");
  CHECK_INVALID(lk_cuda_event_elapsed_ms((lk_cuda_event)1, NULL, &ms), "end");
  CHECK_INVALID(lk_cuda_event_elapsed_ms((lk_cuda_event)1, (lk_cuda_event)1, NULL), "out_milliseconds");
}

/* Host -> device -> device -> host, a memset in between, on the default stream and on a stream. */
static void test_device(int32_t device) {
  check_context_push("device %d", (int)device);
  lk_cuda_device_properties p;
  CHECK_STATUS(lk_cuda_device_properties_get(device, &p), LK_OK);
  CHECK(p.ordinal == device);
  CHECK(strlen(p.name) > 0);
  CHECKF(p.compute_capability_major >= 5, "cc %d.%d", (int)p.compute_capability_major, (int)p.compute_capability_minor);
  CHECK(p.multiprocessor_count > 0);
  CHECK(p.total_memory_bytes > ((uint64_t)1 << 30));
  printf("device %d: %s, sm_%d%d, %d SMs, %.1f GiB\n", (int)device, p.name, (int)p.compute_capability_major,
         (int)p.compute_capability_minor, (int)p.multiprocessor_count, (double)p.total_memory_bytes / (1 << 30));

  enum { N = 1 << 20 };
  unsigned char *host = (unsigned char *)malloc(N), *back = (unsigned char *)malloc(N);
  for (int i = 0; i < N; i++) host[i] = (unsigned char)(i * 131 + 7);
  void *a = NULL, *b = NULL;
  CHECK_STATUS(lk_cuda_malloc(device, N, &a), LK_OK);
  CHECK_STATUS(lk_cuda_malloc(device, N, &b), LK_OK);
  for (int on_stream = 0; on_stream < 2 && a && b; on_stream++) {
    lk_cuda_stream stream = NULL;
    if (on_stream) CHECK_STATUS(lk_cuda_stream_create(device, &stream), LK_OK);
    lk_cuda_event start = NULL, end = NULL;
    CHECK_STATUS(lk_cuda_event_create(device, &start), LK_OK);
    CHECK_STATUS(lk_cuda_event_create(device, &end), LK_OK);
    CHECK_STATUS(lk_cuda_event_record(start, stream), LK_OK);
    CHECK_STATUS(lk_cuda_memcpy(a, host, N, LK_CUDA_HOST_TO_DEVICE, stream), LK_OK);
    CHECK_STATUS(lk_cuda_memset(b, 0xab, N, stream), LK_OK);
    CHECK_STATUS(lk_cuda_memcpy(b, a, N / 2, LK_CUDA_DEVICE_TO_DEVICE, stream), LK_OK);
    CHECK_STATUS(lk_cuda_event_record(end, stream), LK_OK);
    memset(back, 0, N);
    CHECK_STATUS(lk_cuda_memcpy(back, b, N, LK_CUDA_DEVICE_TO_HOST, stream), LK_OK);
    CHECK_STATUS(lk_cuda_stream_synchronize(stream), LK_OK);
    bool same = true;
    for (int i = 0; i < N; i++) same = same && back[i] == (i < N / 2 ? host[i] : 0xab);
    CHECKF(same, "round trip on %s", on_stream ? "a stream" : "the default stream");
    float ms = -1.0f;
    CHECK_STATUS(lk_cuda_event_elapsed_ms(start, end, &ms), LK_OK);
    CHECKF(ms >= 0.0f, "%g ms", (double)ms);
    CHECK_STATUS(lk_cuda_event_destroy(start), LK_OK);
    CHECK_STATUS(lk_cuda_event_destroy(end), LK_OK);
    if (stream) CHECK_STATUS(lk_cuda_stream_destroy(stream), LK_OK);
  }
  CHECK_STATUS(lk_cuda_device_synchronize(device), LK_OK);
  CHECK_STATUS(lk_cuda_set_device(device), LK_OK);
  /* a CUDA error: the runtime refuses to free a host pointer */
  CHECK_STATUS(lk_cuda_free(host), LK_ERR_DEVICE);
  CHECKF(strstr(lk_last_error(), "cudaFree") && strstr(lk_last_error(), "cudaError"), "message: %s", lk_last_error());
  /* and the next call does not see it again */
  CHECK_STATUS(lk_cuda_device_synchronize(device), LK_OK);
  CHECK_STATUS(lk_cuda_free(a), LK_OK);
  CHECK_STATUS(lk_cuda_free(b), LK_OK);
  free(host);
  free(back);
  check_context_pop();
}

int main(void) {
  int32_t count = -1;
  CHECK_STATUS(lk_cuda_device_count(&count), LK_OK);
  CHECK(count >= 0);
  char reason[512];
  snprintf(reason, sizeof reason, "%s", count > 0 ? "" : lk_last_error());
  if (count == 0) CHECKF(strlen(reason) > 0, "device count 0 without a reason");
  test_contract(count < 0 ? 0 : count);
  for (int32_t d = 0; d < count; d++) test_device(d);
  if (count <= 0) {
    check_skip("the device part (memory, copies, streams, events, properties)", reason);
    const int failed = check_summary("test_cuda");
    return failed ? failed : 77;
  }
  return check_summary("test_cuda");
}
