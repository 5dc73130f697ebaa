/* lk_last_error(): one message per host thread, so concurrent callers never see each other's. */
#include "lk_internal.h"

#include <stdarg.h>
#include <stdio.h>

#if defined(_MSC_VER)
#  define LK_THREAD_LOCAL __declspec(thread)
#else
#  define LK_THREAD_LOCAL _Thread_local
#endif

static LK_THREAD_LOCAL char last_error[512];

LK_API lk_status lk_fail(lk_status status, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(last_error, sizeof last_error, format, args);
  va_end(args);
  return status;
}

LK_API void lk_clear_error(void) { last_error[0] = '\0'; }

LK_API const char *lk_last_error(void) { return last_error; }

LK_API const char *lk_status_name(lk_status status) {
  switch (status) {
  case LK_OK: return "LK_OK";
  case LK_ERR_INVALID_ARGUMENT: return "LK_ERR_INVALID_ARGUMENT";
  case LK_ERR_UNSUPPORTED: return "LK_ERR_UNSUPPORTED";
  case LK_ERR_OUT_OF_MEMORY: return "LK_ERR_OUT_OF_MEMORY";
  case LK_ERR_BUSY: return "LK_ERR_BUSY";
  case LK_ERR_INTERNAL: return "LK_ERR_INTERNAL";
  case LK_ERR_DEVICE: return "LK_ERR_DEVICE";
  }
  return "unknown status";
}

const char *lk_dtype_name(lk_dtype dtype) {
  switch (dtype) {
  case LK_DTYPE_F32: return "f32";
  case LK_DTYPE_F16: return "f16";
  case LK_DTYPE_BF16: return "bf16";
  }
  return "invalid";
}
