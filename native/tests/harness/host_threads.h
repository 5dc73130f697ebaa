/* Host threads for the concurrency tests: pthreads on POSIX, the Win32 API on Windows (MSVC has
 * no pthreads, and C11 <threads.h> is still optional there). */
#ifndef LK_TEST_HOST_THREADS_H
#define LK_TEST_HOST_THREADS_H

#include <stdbool.h>

#define HOST_THREADS_MAX 16

typedef void (*host_thread_body)(void *arg);

/* Runs body(args[i]) for i < count, each on its own new thread, and joins them all. False if a
 * thread could not be started (those that did start are still joined). */
bool run_host_threads(int count, host_thread_body body, void *const *args);

#endif
