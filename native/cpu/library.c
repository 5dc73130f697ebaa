/* Library-wide entry points: versions and the struct layout table for the bindings check. */
#include "lk_internal.h"
/* declarations only: the CUDA header's structs are in the layout table too, so that the managed
 * layout tests check them against this compiler on every host, with or without llmkernels_cuda */
#include "llmkernels_cuda.h"

#define LK_VERSION_STRING "0.1.0"

LK_API int32_t lk_abi_version(void) { return LK_ABI_VERSION; }
LK_API const char *lk_version(void) { return LK_VERSION_STRING; }

LK_API int64_t lk_struct_size(const char *struct_name) {
  if (!struct_name) return -1;
#define LK_LAYOUT_STRUCT(s) if (strcmp(struct_name, #s) == 0) return (int64_t)sizeof(s);
#define LK_LAYOUT_FIELD(s, f)
#include "generated/struct_layout.g.h"
#undef LK_LAYOUT_STRUCT
#undef LK_LAYOUT_FIELD
  return -1;
}

LK_API int64_t lk_struct_field_offset(const char *struct_name, const char *field_name) {
  if (!struct_name || !field_name) return -1;
#define LK_LAYOUT_STRUCT(s)
#define LK_LAYOUT_FIELD(s, f)                                                                      \
  if (strcmp(struct_name, #s) == 0 && strcmp(field_name, #f) == 0) return (int64_t)offsetof(s, f);
#include "generated/struct_layout.g.h"
#undef LK_LAYOUT_STRUCT
#undef LK_LAYOUT_FIELD
  return -1;
}
