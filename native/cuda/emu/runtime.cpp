/* The emulator's runtime API: one device ("LlmKernels CUDA emulator"), device memory that is host
 * memory placed against an inaccessible page, streams and events that complete at issue (the
 * emulator runs everything synchronously, which is one valid order of any stream program), and the
 * error calls. Copies check their direction: a "device" pointer that cudaMalloc did not return is
 * cudaErrorInvalidValue, as passing a host pointer for device memory would fail on a GPU.
 *
 * LK_CUDA_EMU_DEVICES=0 makes the emulator report no device (the no-GPU answer, for tests);
 * LK_CUDA_EMU_SMS sets its multiprocessor count (default 8), which grid heuristics read. */
#include "lk_emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <mutex>

struct CUstream_st {
  int device;
};
struct CUevent_st {
  bool recorded;
  std::chrono::steady_clock::time_point when;
};

namespace {

constexpr size_t kAlignment = 256; /* cudaMalloc's guarantee */
constexpr unsigned char kCanary = 0xa5;

struct allocation {
  void *mapping;
  size_t mapping_bytes;
  size_t bytes;
  size_t slack; /* canary bytes between the data and the guard page */
};

std::mutex g_mutex;
std::map<uintptr_t, allocation> g_allocations; /* by data address */
thread_local cudaError_t t_last_error = cudaSuccess;
thread_local int t_device = 0;

cudaError_t fail(cudaError_t error) {
  t_last_error = error;
  return error;
}

int env_int(const char *name, int fallback, int lo, int hi) {
  const char *text = getenv(name);
  if (!text || !*text) return fallback;
  const long v = strtol(text, nullptr, 10);
  return v < lo ? lo : v > hi ? hi : (int)v;
}

int device_count() { return env_int("LK_CUDA_EMU_DEVICES", 1, 0, 1); }

/* The allocation holding [pointer, pointer + bytes), or NULL. */
const allocation *find(const void *pointer, size_t bytes) {
  const uintptr_t p = (uintptr_t)pointer;
  auto it = g_allocations.upper_bound(p);
  if (it == g_allocations.begin()) return nullptr;
  --it;
  if (p < it->first || p + bytes > it->first + it->second.bytes || p + bytes < p) return nullptr;
  return &it->second;
}

bool range_is_device(const void *pointer, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return find(pointer, bytes) != nullptr;
}

bool range_is_host(const void *pointer, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const uintptr_t p = (uintptr_t)pointer;
  auto it = g_allocations.upper_bound(p + bytes - 1);
  if (it == g_allocations.begin()) return true;
  --it;
  return it->first + it->second.bytes <= p; /* no allocation overlaps it */
}

cudaError_t allocate(void **pointer, size_t bytes) {
  if (!pointer) return fail(cudaErrorInvalidValue);
  *pointer = nullptr;
  if (device_count() == 0) return fail(cudaErrorNoDevice);
  if (bytes == 0) return cudaSuccess; /* as cudaMalloc: success, a NULL pointer */
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t data_pages = (bytes + kAlignment + page - 1) / page;
  const size_t mapping_bytes = (data_pages + 1) * page;
  void *mapping = mmap(nullptr, mapping_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
  unsigned char *guard = (unsigned char *)mapping + data_pages * page;
  mprotect(guard, page, PROT_NONE);
  /* as close to the guard page as the 256-byte alignment allows */
  unsigned char *data = (unsigned char *)(((uintptr_t)guard - bytes) & ~(uintptr_t)(kAlignment - 1));
  const size_t slack = (size_t)(guard - data) - bytes;
  memset(data, 0xff, bytes); /* fresh device memory is not zero on a GPU either */
  memset(data + bytes, kCanary, slack);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_allocations[(uintptr_t)data] = allocation{mapping, mapping_bytes, bytes, slack};
  *pointer = data;
  return cudaSuccess;
}

cudaError_t release(void *pointer) {
  if (!pointer) return cudaSuccess;
  allocation a;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_allocations.find((uintptr_t)pointer);
    if (it == g_allocations.end()) return fail(cudaErrorInvalidValue);
    a = it->second;
    g_allocations.erase(it);
  }
  const unsigned char *tail = (const unsigned char *)pointer + a.bytes;
  bool overrun = false;
  for (size_t i = 0; i < a.slack; i++) overrun = overrun || tail[i] != kCanary;
  munmap(a.mapping, a.mapping_bytes);
  if (overrun) {
    fprintf(stderr, "CUDA emulator: a write past the end of a %zu-byte device allocation\n", a.bytes);
    return fail(cudaErrorIllegalAddress);
  }
  return cudaSuccess;
}

cudaError_t copy(void *destination, const void *source, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (!destination || !source) return fail(cudaErrorInvalidValue);
  const bool source_device = range_is_device(source, bytes), destination_device = range_is_device(destination, bytes);
  bool ok;
  switch (kind) {
  case cudaMemcpyHostToDevice: ok = destination_device && range_is_host(source, bytes); break;
  case cudaMemcpyDeviceToHost: ok = source_device && range_is_host(destination, bytes); break;
  case cudaMemcpyDeviceToDevice: ok = source_device && destination_device; break;
  case cudaMemcpyHostToHost: ok = range_is_host(source, bytes) && range_is_host(destination, bytes); break;
  case cudaMemcpyDefault: ok = true; break;
  default: return fail(cudaErrorInvalidMemcpyDirection);
  }
  if (!ok) return fail(cudaErrorInvalidValue);
  memmove(destination, source, bytes);
  return cudaSuccess;
}

} // namespace

namespace lk_emu {
bool is_device_pointer(const void *pointer) { return range_is_device(pointer, 1); }
} // namespace lk_emu

cudaError_t cudaGetDeviceCount(int *count) {
  if (!count) return fail(cudaErrorInvalidValue);
  *count = device_count();
  return *count == 0 ? fail(cudaErrorNoDevice) : cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
  if (!device) return fail(cudaErrorInvalidValue);
  *device = t_device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  t_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
  if (!prop) return fail(cudaErrorInvalidValue);
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "LlmKernels CUDA emulator (CPU)");
  prop->totalGlobalMem = (size_t)16 << 30;
  prop->sharedMemPerBlock = 48 << 10;
  prop->sharedMemPerBlockOptin = 227 << 10;
  prop->sharedMemPerMultiprocessor = 228 << 10;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = env_int("LK_CUDA_EMU_SMS", 8, 1, 1024);
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->l2CacheSize = 4 << 20;
  prop->memoryBusWidth = 64;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
  cudaDeviceProp p;
  if (!value) return fail(cudaErrorInvalidValue);
  const cudaError_t error = cudaGetDeviceProperties(&p, device);
  if (error != cudaSuccess) return error;
  switch (attr) {
  case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)p.sharedMemPerBlock; return cudaSuccess;
  case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; return cudaSuccess;
  case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)p.sharedMemPerBlockOptin; return cudaSuccess;
  }
  return fail(cudaErrorInvalidValue);
}

cudaError_t cudaDriverGetVersion(int *version) {
  if (!version) return fail(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version) {
  if (!version) return fail(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return device_count() ? cudaSuccess : fail(cudaErrorNoDevice); }

cudaError_t cudaMalloc(void **pointer, size_t bytes) { return allocate(pointer, bytes); }
cudaError_t cudaFree(void *pointer) { return release(pointer); }
cudaError_t cudaMallocAsync(void **pointer, size_t bytes, cudaStream_t) { return allocate(pointer, bytes); }
cudaError_t cudaFreeAsync(void *pointer, cudaStream_t) { return release(pointer); }

cudaError_t cudaHostAlloc(void **pointer, size_t bytes, unsigned int) {
  if (!pointer) return fail(cudaErrorInvalidValue);
  *pointer = calloc(1, bytes ? bytes : 1);
  return *pointer ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaHostGetDevicePointer(void **device_pointer, void *host_pointer, unsigned int) {
  if (!device_pointer || !host_pointer) return fail(cudaErrorInvalidValue);
  *device_pointer = host_pointer;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void *pointer) {
  free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *pointer, int value, size_t bytes, cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  if (!range_is_device(pointer, bytes)) return fail(cudaErrorInvalidValue);
  memset(pointer, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemset(void *pointer, int value, size_t bytes) { return cudaMemsetAsync(pointer, value, bytes, 0); }

cudaError_t cudaMemcpy(void *destination, const void *source, size_t bytes, cudaMemcpyKind kind) {
  return copy(destination, source, bytes, kind);
}

cudaError_t cudaMemcpyAsync(void *destination, const void *source, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return copy(destination, source, bytes, kind);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int) {
  if (!stream) return fail(cudaErrorInvalidValue);
  *stream = new CUstream_st{t_device};
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!stream) return fail(cudaErrorInvalidResourceHandle);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaEventCreate(cudaEvent_t *event) {
  if (!event) return fail(cudaErrorInvalidValue);
  *event = new CUevent_st{false, {}};
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (!event) return fail(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (!event) return fail(cudaErrorInvalidResourceHandle);
  event->recorded = true;
  event->when = std::chrono::steady_clock::now();
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *milliseconds, cudaEvent_t start, cudaEvent_t end) {
  if (!milliseconds) return fail(cudaErrorInvalidValue);
  if (!start || !end) return fail(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
  *milliseconds = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t error = t_last_error;
  t_last_error = cudaSuccess;
  return error;
}

cudaError_t cudaPeekAtLastError(void) { return t_last_error; }

namespace lk_emu {
/* LK_LAUNCH's error: the next cudaGetLastError reports it, as for a real launch. */
void set_launch_error(cudaError_t error) {
  if (error != cudaSuccess) t_last_error = error;
}
} // namespace lk_emu

const char *cudaGetErrorName(cudaError_t error) {
  switch (error) {
  case cudaSuccess: return "cudaSuccess";
  case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
  case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
  case cudaErrorInitializationError: return "cudaErrorInitializationError";
  case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
  case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
  case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
  case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
  case cudaErrorNoDevice: return "cudaErrorNoDevice";
  case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
  case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
  case cudaErrorNotReady: return "cudaErrorNotReady";
  case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
  case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
  case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t error) {
  switch (error) {
  case cudaSuccess: return "no error";
  case cudaErrorInvalidValue: return "invalid argument";
  case cudaErrorMemoryAllocation: return "out of memory";
  case cudaErrorInitializationError: return "initialization error";
  case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  case cudaErrorInvalidDevicePointer: return "invalid device pointer";
  case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
  case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
  case cudaErrorNoDevice: return "no CUDA-capable device is detected";
  case cudaErrorInvalidDevice: return "invalid device ordinal";
  case cudaErrorInvalidResourceHandle: return "invalid resource handle";
  case cudaErrorNotReady: return "device not ready";
  case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
  case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
  case cudaErrorLaunchFailure: return "unspecified launch failure (the emulator printed why)";
  }
  return "unknown error";
}
