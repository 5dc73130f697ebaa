/* Buffers with an inaccessible page on each side, placed so that one edge of the data touches a
 * guard page: reading or writing one byte past that edge faults at once, where a heap overrun
 * would pass silently (System.Numerics.Tensors' BoundedMemory is the model). This is what
 * catches a SIMD tail that loads a full vector past the end of a row. */
#ifndef LK_TEST_GUARDED_BUFFER_H
#define LK_TEST_GUARDED_BUFFER_H

#include <stddef.h>

typedef enum guard_edge {
  GUARD_EDGE_END,  /* data ends exactly at the back guard page: catches over-reads and -writes */
  GUARD_EDGE_START /* data starts exactly after the front guard page: catches under-runs */
} guard_edge;

typedef struct guarded_buffer {
  void *data;   /* `bytes` usable bytes; NULL if the allocation failed */
  size_t bytes;
  void *mapping; /* the whole reservation, guard pages included */
  size_t mapping_bytes;
} guarded_buffer;

/* bytes may be 0: data then points at the guard page itself, so any access faults. */
guarded_buffer guarded_alloc(size_t bytes, guard_edge edge);
/* guarded_alloc, or the test exits (status 2) naming the size: for tests that cannot go on without it. */
guarded_buffer guarded_alloc_or_exit(size_t bytes, guard_edge edge);
/* Makes the data read-only, so a kernel that writes to an input it declares const faults. */
int guarded_make_read_only(guarded_buffer *buffer);
void guarded_free(guarded_buffer *buffer);

#endif
