/* The CUDA library's helpers: versions, devices, memory, copies, streams and events, each a thin
 * checked wrapper over the CUDA runtime so that a .NET host can own device memory and time
 * kernels without other packages. Arguments are checked before any CUDA call, and every CUDA
 * error comes back as an lk_status with the error's name and text (lk_cuda_check). */
#include "lk_cuda_internal.h"

#include <mutex>
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

cudaStream_t as_stream(lk_cuda_stream stream) { return lk_cuda_as_stream(stream); }
cudaEvent_t as_event(lk_cuda_event event) { return reinterpret_cast<cudaEvent_t>(event); }


/* ---- the kernels' index-error records (lk_cuda_internal.h) ---------------------------------------- */

constexpr int kMaxDevices = 64;
std::mutex g_sink_mutex;
lk_cuda_index_error *g_records = nullptr;        /* [kMaxDevices], mapped host memory */
lk_cuda_index_error *g_records_device = nullptr; /* its device address */
int32_t *g_claimed[kMaxDevices];                 /* device memory, one word a device */

const char *entry_point_name(int32_t kernel) {
  switch (kernel) {
  case LK_CUDA_ENTRY_KV_CACHE_WRITE: return "lk_cuda_kv_cache_write";
  case LK_CUDA_ENTRY_KV_CACHE_GATHER: return "lk_cuda_kv_cache_gather";
  case LK_CUDA_ENTRY_KV_CACHE_COPY_BLOCKS: return "lk_cuda_kv_cache_copy_blocks";
  case LK_CUDA_ENTRY_ROPE: return "lk_cuda_rope";
  case LK_CUDA_ENTRY_ATTENTION: return "lk_cuda_attention";
  case LK_CUDA_ENTRY_MOE_ROUTING: return "lk_cuda_moe_routing";
  case LK_CUDA_ENTRY_MOE_PERMUTE: return "lk_cuda_moe_permute";
  case LK_CUDA_ENTRY_MOE_COMBINE: return "lk_cuda_moe_combine";
  }
  return "a kernel";
}

lk_status report(const lk_cuda_index_error &e) {
  const long long i = (long long)e.index, j = (long long)e.index2, v = (long long)e.value, b = (long long)e.bound;
  const char *by = entry_point_name(e.kernel);
  switch ((lk_cuda_index_argument)e.argument) {
  case LK_CUDA_ARG_SLOT_MAPPING:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "slot_mapping[%lld]: slot %lld is outside the cache's %lld slots (found on the device by %s)", i, v, b, by);
  case LK_CUDA_ARG_BLOCK_TABLES:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_tables[%lld][%lld]: block %lld is outside [0, num_blocks = %lld) (found on the device by %s)", i, j, v, b, by);
  case LK_CUDA_ARG_SEQ_LENS:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "seq_lens[%lld]: %lld is negative or needs more than max_blocks_per_seq * block_size = %lld tokens (found on the device by %s)", i, v, b, by);
  case LK_CUDA_ARG_BLOCK_MAPPING:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_mapping[%lld][%lld]: block %lld is outside [0, num_blocks = %lld) (found on the device by %s)", i, j, v, b, by);
  case LK_CUDA_ARG_POSITIONS:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "positions[%lld]: %lld is outside [0, max_position = %lld) (found on the device by %s)", i, v, b, by);
  case LK_CUDA_ARG_CU_SEQLENS_Q:
  case LK_CUDA_ARG_CU_SEQLENS_K:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s[%lld]: %lld does not continue the offsets (they start at 0, never decrease, and no sequence is longer than %lld) (found on the device by %s)",
                   e.argument == LK_CUDA_ARG_CU_SEQLENS_Q ? "cu_seqlens_q" : "cu_seqlens_k", i, v, b, by);
  case LK_CUDA_ARG_SEQLENS_K:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "seqlens_k[%lld]: %lld is negative, past max_seqlen_k or more than the block table covers (%lld) (found on the device by %s)", i, v, b, by);
  case LK_CUDA_ARG_EXPERT_IDS:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "expert_ids[%lld]: %lld is outside [0, num_experts = %lld) (found on the device by %s)", i, v, b, by);
  case LK_CUDA_ARG_SORTED_SLOTS:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "sorted_slots[%lld]: %lld is neither -1 nor in [0, num_tokens * top_k = %lld) (found on the device by %s)", i, v, b, by);
  case LK_CUDA_ARG_SLOT_ROWS:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "slot_rows[%lld]: %lld is neither -1 nor in [0, num_rows = %lld) (found on the device by %s)", i, v, b, by);
  case LK_CUDA_ARG_SLOT_MAPPING_REPEAT:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "slot_mapping[%lld]: slot %lld is slot_mapping[%lld]'s too (two tokens name one slot) (found on the device by %s)", i, v, j, by);
  case LK_CUDA_ARG_BLOCK_MAPPING_REPEAT:
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_mapping[%lld]: block %lld is named by pair %lld too (a destination named twice, or the destination of one pair and the source of another) (found on the device by %s)", i, v, j, by);
  default: break;
  }
  return lk_fail(LK_ERR_INTERNAL, "a kernel recorded an unknown index error (argument %d)", (int)e.argument);
}

/* The first record a device holds, reported and cleared; LK_OK when none holds one. The host reads
 * only its mapped copy: a device is cleared (its claim word zeroed) only after it reported. */
lk_status take_index_error() {
  std::lock_guard<std::mutex> lock(g_sink_mutex);
  if (!g_records) return LK_OK;
  for (int d = 0; d < kMaxDevices; d++) {
    if (!g_claimed[d] || g_records[d].argument == LK_CUDA_ARG_NONE) continue;
    const lk_cuda_index_error e = const_cast<const lk_cuda_index_error &>(g_records[d]);
    g_records[d].argument = LK_CUDA_ARG_NONE;
    int current = 0;
    if (cudaGetDevice(&current) == cudaSuccess && cudaSetDevice(d) == cudaSuccess) {
      (void)cudaMemset(g_claimed[d], 0, sizeof(int32_t));
      (void)cudaDeviceSynchronize();
      (void)cudaSetDevice(current);
    }
    (void)cudaGetLastError();
    return report(e);
  }
  return LK_OK;
}

} // namespace

lk_status lk_cuda_error_sink_get(lk_cuda_error_sink *out) {
  int device = 0;
  LK_CUDA_TRY(cudaGetDevice(&device), "cudaGetDevice");
  if (device < 0 || device >= kMaxDevices)
    return lk_fail(LK_ERR_UNSUPPORTED, "device %d: this library serves devices 0..%d", device, kMaxDevices - 1);
  std::lock_guard<std::mutex> lock(g_sink_mutex);
  if (!g_records) {
    void *host = NULL, *mapped = NULL;
    LK_CUDA_TRY(cudaHostAlloc(&host, sizeof(lk_cuda_index_error) * kMaxDevices, cudaHostAllocMapped | cudaHostAllocPortable),
                "cudaHostAlloc (the kernels' error records)");
    memset(host, 0, sizeof(lk_cuda_index_error) * kMaxDevices);
    const lk_status status = lk_cuda_check(cudaHostGetDevicePointer(&mapped, host, 0), "cudaHostGetDevicePointer");
    if (status != LK_OK) {
      (void)cudaFreeHost(host);
      return status;
    }
    g_records = static_cast<lk_cuda_index_error *>(host);
    g_records_device = static_cast<lk_cuda_index_error *>(mapped);
  }
  if (!g_claimed[device]) {
    void *claimed = NULL;
    LK_CUDA_TRY(cudaMalloc(&claimed, sizeof(int32_t)), "cudaMalloc (a kernel error claim)");
    const lk_status status = lk_cuda_check(cudaMemset(claimed, 0, sizeof(int32_t)), "cudaMemset");
    if (status == LK_OK) LK_CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    if (status != LK_OK) {
      (void)cudaFree(claimed);
      return status;
    }
    g_claimed[device] = static_cast<int32_t *>(claimed);
  }
  out->claimed = g_claimed[device];
  out->record = g_records_device + device;
  return LK_OK;
}

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
  memcpy(out->name, p.name, sizeof out->name - 1); /* NUL-terminated: out was zeroed */
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
  LK_CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return take_index_error();
}

LK_CUDA_API lk_status lk_cuda_set_device(int32_t device) {
  lk_clear_error();
  return use_device(device);
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
  LK_CUDA_TRY(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
  return take_index_error();
}

LK_CUDA_API lk_status lk_cuda_kernel_error_check(void) {
  lk_clear_error();
  return take_index_error();
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
