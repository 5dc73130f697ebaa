#if !defined(_WIN32)
#  define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -std=c11 */
#endif

#include "guarded_buffer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(_WIN32)
#  define WIN32_LEAN_AND_MEAN
#  include <windows.h>
#else
#  include <sys/mman.h>
#  include <unistd.h>
#  if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#    define MAP_ANONYMOUS MAP_ANON
#  endif
#endif

static size_t page_size(void) {
#if defined(_WIN32)
  SYSTEM_INFO info;
  GetSystemInfo(&info);
  return info.dwPageSize;
#else
  return (size_t)sysconf(_SC_PAGESIZE);
#endif
}

/* Maps `bytes` of read-write memory; NULL on failure. */
static void *map_pages(size_t bytes) {
#if defined(_WIN32)
  return VirtualAlloc(NULL, bytes, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
#else
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
#endif
}

static int protect_none(void *page, size_t bytes) {
#if defined(_WIN32)
  DWORD old;
  return VirtualProtect(page, bytes, PAGE_NOACCESS, &old) ? 0 : -1;
#else
  return mprotect(page, bytes, PROT_NONE);
#endif
}

static int protect_read_only(void *pages, size_t bytes) {
#if defined(_WIN32)
  DWORD old;
  return VirtualProtect(pages, bytes, PAGE_READONLY, &old) ? 0 : -1;
#else
  return mprotect(pages, bytes, PROT_READ);
#endif
}

static void unmap_pages(void *p, size_t bytes) {
#if defined(_WIN32)
  (void)bytes;
  VirtualFree(p, 0, MEM_RELEASE);
#else
  munmap(p, bytes);
#endif
}

guarded_buffer guarded_alloc(size_t bytes, guard_edge edge) {
  guarded_buffer buffer = {0};
  size_t page = page_size();
  size_t data_pages = (bytes + page - 1) / page;
  size_t mapping_bytes = (data_pages + 2) * page;
  uint8_t *mapping = map_pages(mapping_bytes);
  if (!mapping) return buffer;
  uint8_t *front_guard = mapping;
  uint8_t *back_guard = mapping + (data_pages + 1) * page;
  if (protect_none(front_guard, page) != 0 || protect_none(back_guard, page) != 0) {
    unmap_pages(mapping, mapping_bytes);
    return buffer;
  }
  buffer.data = edge == GUARD_EDGE_END ? back_guard - bytes : front_guard + page;
  buffer.bytes = bytes;
  buffer.mapping = mapping;
  buffer.mapping_bytes = mapping_bytes;
  return buffer;
}

int guarded_make_read_only(guarded_buffer *buffer) {
  size_t page = page_size();
  size_t data_bytes = buffer->mapping_bytes - 2 * page;
  if (!buffer->mapping || data_bytes == 0) return 0;
  return protect_read_only((uint8_t *)buffer->mapping + page, data_bytes);
}

void guarded_free(guarded_buffer *buffer) {
  if (buffer->mapping) unmap_pages(buffer->mapping, buffer->mapping_bytes);
  buffer->data = NULL;
  buffer->bytes = 0;
  buffer->mapping = NULL;
  buffer->mapping_bytes = 0;
}

guarded_buffer guarded_alloc_or_exit(size_t bytes, guard_edge edge) {
  guarded_buffer b = guarded_alloc(bytes, edge);
  if (!b.data && bytes) {
    fprintf(stderr, "guarded_alloc of %zu bytes failed\n", bytes);
    exit(2);
  }
  return b;
}
