/* The CUDA library's helpers: versions, devices, memory, copies, streams and events, each a thin
 * checked wrapper over the CUDA runtime so that a .NET host can own device memory and time
 * kernels without other packages. Arguments are checked before any CUDA call, and every CUDA
 * error comes back as an lk_status with the error's name and text (lk_cuda_check). */
#include "lk_cuda_internal.h"

#include <string.h>

namespace {

/* The device count, where no device and no usable driver are a count of 0 with `why` set (the
 * answers a host without a usable GPU gets); other failures are LK_ERR_DEVICE. */
lk_status count_devices(int *count, const char **why) {
  *count = 0;
  *why = "";
  const cudaError_t error = cudaGetDeviceCount(count);
  if (error == cudaErrorNoDevice || error == cudaErrorInsufficientDriver) {
    (void)cudaGetLastError();
    *count = 0;
    *why = error == cudaErrorNoDevice ? "no CUDA device" : "no usable NVIDIA driver (none, or older than this library's CUDA runtime)";
    return LK_OK;
  }
  return lk_cuda_check(error, "cudaGetDeviceCount");
}

/* LK_OK when `device` names a device; else why not. */
lk_status check_device(int32_t device) {
  int count = 0;
  const char *why = "";
  const lk_status status = count_devices(&count, &why);
  if (status != LK_OK) return status;
  if (device < 0 || device >= count)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "device: %d is not a CUDA device (this host has %d%s%s)", (int)device, count,
                   *why ? ": " : "", why);
  return LK_OK;
}

/* Makes `device` the calling thread's current device, after checking it. */
lk_status use_device(int32_t device) {
  const lk_status status = check_device(device);
  if (status != LK_OK) return status;
  return lk_cuda_check(cudaSetDevice(device), "cudaSetDevice");
}

/* *out = what `create` makes on `device` (made the current device first); NULL on any failure. */
template <typename Handle, typename Create>
lk_status create_on_device(int32_t device, Handle *out, const char *out_name, const char *what, Create create) {
  lk_clear_error();
  if (!out) return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: NULL", out_name);
  *out = NULL;
  const lk_status status = use_device(device);
  if (status != LK_OK) return status;
  return lk_cuda_check(create(out), what);
}

cudaStream_t as_stream(lk_cuda_stream stream) { return reinterpret_cast<cudaStream_t>(stream); }
cudaEvent_t as_event(lk_cuda_event event) { return reinterpret_cast<cudaEvent_t>(event); }

} // namespace

extern "C" {

LK_CUDA_API int32_t lk_cuda_abi_version(void) { return LK_CUDA_ABI_VERSION; }

LK_CUDA_API lk_status lk_cuda_versions(int32_t *out_runtime, int32_t *out_driver) {
  lk_clear_error();
  if (!out_runtime) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_runtime: NULL");
  if (!out_driver) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_driver: NULL");
  /* the runtime is linked in: its version is the one built with (cudaRuntimeGetVersion itself
   * fails on a host without a device) */
  int driver = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess) { /* 0 without a driver: not an error */
    (void)cudaGetLastError();
    driver = 0;
  }
  *out_runtime = CUDART_VERSION;
  *out_driver = driver;
  return LK_OK;
}

LK_CUDA_API lk_status lk_cuda_device_count(int32_t *out_count) {
  lk_clear_error();
  if (!out_count) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_count: NULL");
  *out_count = 0;
  int count = 0;
  const char *why = "";
  const lk_status status = count_devices(&count, &why);
  if (status != LK_OK) return status;
  if (count == 0) lk_fail(LK_OK, "%s (CUDA runtime %d.%d)", why, CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
  *out_count = count;
  return LK_OK;
}

LK_CUDA_API lk_status lk_cuda_device_properties_get(int32_t device, lk_cuda_device_properties *out_properties) {
  lk_clear_error();
  if (!out_properties) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_properties: NULL");
  const lk_status status = check_device(device);
  if (status != LK_OK) return status;
  cudaDeviceProp p;
  LK_CUDA_TRY(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  lk_cuda_device_properties *out = out_properties;
  memset(out, 0, sizeof *out);
  strncpy(out->name, p.name, sizeof out->name - 1);
  out->ordinal = device;
  out->compute_capability_major = p.major;
  out->compute_capability_minor = p.minor;
  out->multiprocessor_count = p.multiProcessorCount;
  out->total_memory_bytes = p.totalGlobalMem;
  out->shared_memory_per_block_optin_bytes = p.sharedMemPerBlockOptin;
  out->l2_cache_bytes = p.l2CacheSize;
  out->memory_bus_width_bits = p.memoryBusWidth;
  out->pci_bus_id = p.pciBusID;
  out->pci_device_id = p.pciDeviceID;
  return LK_OK;
}

LK_CUDA_API lk_status lk_cuda_device_synchronize(int32_t device) {
  lk_clear_error();
  const lk_status status = use_device(device);
  if (status != LK_OK) return status;
  return lk_cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

LK_CUDA_API lk_status lk_cuda_malloc(int32_t device, size_t bytes, void **out_pointer) {
  lk_clear_error();
  if (!out_pointer) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_pointer: NULL");
  *out_pointer = NULL;
  if (bytes == 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "bytes: 0 (a device allocation must have a size)");
  const lk_status status = use_device(device);
  if (status != LK_OK) return status;
  return lk_cuda_check(cudaMalloc(out_pointer, bytes), "cudaMalloc");
}

LK_CUDA_API lk_status lk_cuda_free(void *pointer) {
  lk_clear_error();
  if (!pointer) return LK_OK;
  return lk_cuda_check(cudaFree(pointer), "cudaFree");
}

LK_CUDA_API lk_status lk_cuda_memset(void *pointer, int32_t value, size_t bytes, lk_cuda_stream stream) {
  lk_clear_error();
  if (bytes == 0) return LK_OK;
  if (!pointer) return lk_fail(LK_ERR_INVALID_ARGUMENT, "pointer: NULL with bytes %zu", bytes);
  return lk_cuda_check(cudaMemsetAsync(pointer, value, bytes, as_stream(stream)), "cudaMemsetAsync");
}

LK_CUDA_API lk_status lk_cuda_memcpy(void *destination, const void *source, size_t bytes, lk_cuda_copy_kind kind,
                                     lk_cuda_stream stream) {
  lk_clear_error();
  cudaMemcpyKind cuda_kind;
  switch (kind) {
  case LK_CUDA_HOST_TO_DEVICE: cuda_kind = cudaMemcpyHostToDevice; break;
  case LK_CUDA_DEVICE_TO_HOST: cuda_kind = cudaMemcpyDeviceToHost; break;
  case LK_CUDA_DEVICE_TO_DEVICE: cuda_kind = cudaMemcpyDeviceToDevice; break;
  default: return lk_fail(LK_ERR_INVALID_ARGUMENT, "kind: %d is not an lk_cuda_copy_kind value", (int)kind);
  }
  if (bytes == 0) return LK_OK;
  if (!destination) return lk_fail(LK_ERR_INVALID_ARGUMENT, "destination: NULL with bytes %zu", bytes);
  if (!source) return lk_fail(LK_ERR_INVALID_ARGUMENT, "source: NULL with bytes %zu", bytes);
  if (!stream) return lk_cuda_check(cudaMemcpy(destination, source, bytes, cuda_kind), "cudaMemcpy");
  return lk_cuda_check(cudaMemcpyAsync(destination, source, bytes, cuda_kind, as_stream(stream)), "cudaMemcpyAsync");
}

LK_CUDA_API lk_status lk_cuda_stream_create(int32_t device, lk_cuda_stream *out_stream) {
  return create_on_device(device, out_stream, "out_stream", "cudaStreamCreateWithFlags", [](lk_cuda_stream *out) {
    cudaStream_t stream = NULL;
    const cudaError_t error = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    *out = reinterpret_cast<lk_cuda_stream>(stream);
    return error;
  });
}

LK_CUDA_API lk_status lk_cuda_stream_destroy(lk_cuda_stream stream) {
  lk_clear_error();
  if (!stream) return lk_fail(LK_ERR_INVALID_ARGUMENT, "stream: NULL (the default stream is not destroyed)");
  return lk_cuda_check(cudaStreamDestroy(as_stream(stream)), "cudaStreamDestroy");
}

LK_CUDA_API lk_status lk_cuda_stream_synchronize(lk_cuda_stream stream) {
  lk_clear_error();
  return lk_cuda_check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

LK_CUDA_API lk_status lk_cuda_event_create(int32_t device, lk_cuda_event *out_event) {
  return create_on_device(device, out_event, "out_event", "cudaEventCreate", [](lk_cuda_event *out) {
    cudaEvent_t event = NULL;
    const cudaError_t error = cudaEventCreate(&event);
    *out = reinterpret_cast<lk_cuda_event>(event);
    return error;
  });
}

LK_CUDA_API lk_status lk_cuda_event_destroy(lk_cuda_event event) {
  lk_clear_error();
  if (!event) return lk_fail(LK_ERR_INVALID_ARGUMENT, "event: NULL");
  return lk_cuda_check(cudaEventDestroy(as_event(event)), "cudaEventDestroy");
}

LK_CUDA_API lk_status lk_cuda_event_record(lk_cuda_event event, lk_cuda_stream stream) {
  lk_clear_error();
  if (!event) return lk_fail(LK_ERR_INVALID_ARGUMENT, "event: NULL");
  return lk_cuda_check(cudaEventRecord(as_event(event), as_stream(stream)), "cudaEventRecord");
}

LK_CUDA_API lk_status lk_cuda_event_elapsed_ms(lk_cuda_event start, lk_cuda_event end, float *out_milliseconds) {
  lk_clear_error();
  if (!start) return lk_fail(LK_ERR_INVALID_ARGUMENT, "start: NULL");
  if (!end) return lk_fail(LK_ERR_INVALID_ARGUMENT, "end: NULL");
  if (!out_milliseconds) return lk_fail(LK_ERR_INVALID_ARGUMENT, "out_milliseconds: NULL");
  return lk_cuda_check(cudaEventElapsedTime(out_milliseconds, as_event(start), as_event(end)), "cudaEventElapsedTime");
}

} // extern "C"
