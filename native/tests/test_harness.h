/* The native tests' harness, one include: counting checks (check.h), guard-paged buffers
 * (guarded_buffer.h), contexts per ISA and thread count and per-part timing (context_grid.h),
 * seeded random inputs (rng.h), the 16-bit float oracle (float16.h), dtype-generic element access
 * and poison (tensor.h), row-strided matrices with poisoned gaps (strided.h), status and message
 * checks (lk_expect.h), host threads (host_threads.h) and probes in a child process (isolated.h). */
#ifndef LK_TEST_HARNESS_H
#define LK_TEST_HARNESS_H

#include "harness/check.h"
#include "harness/float16.h"
#include "harness/guarded_buffer.h"
#include "harness/host_threads.h"
#include "harness/isolated.h"
#include "harness/lk_expect.h"
#include "harness/context_grid.h"
#include "harness/rng.h"
#include "harness/strided.h"
#include "harness/tensor.h"

#endif
