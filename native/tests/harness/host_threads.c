#include "host_threads.h"

#include <stddef.h>

#if defined(_WIN32)
#  define WIN32_LEAN_AND_MEAN
#  include <windows.h>
#else
#  include <pthread.h>
#endif

typedef struct thread_start {
  host_thread_body body;
  void *arg;
} thread_start;

#if defined(_WIN32)
static DWORD WINAPI thread_main(LPVOID p) {
  thread_start *start = p;
  start->body(start->arg);
  return 0;
}
#else
static void *thread_main(void *p) {
  thread_start *start = p;
  start->body(start->arg);
  return NULL;
}
#endif

bool run_host_threads(int count, host_thread_body body, void *const *args) {
  thread_start starts[HOST_THREADS_MAX];
  bool started[HOST_THREADS_MAX] = {false};
  bool all_started = count <= HOST_THREADS_MAX;
  if (count > HOST_THREADS_MAX) count = HOST_THREADS_MAX;
#if defined(_WIN32)
  HANDLE threads[HOST_THREADS_MAX];
  for (int i = 0; i < count; i++) {
    starts[i].body = body;
    starts[i].arg = args[i];
    threads[i] = CreateThread(NULL, 0, thread_main, &starts[i], 0, NULL);
    started[i] = threads[i] != NULL;
    all_started = all_started && started[i];
  }
  for (int i = 0; i < count; i++) {
    if (!started[i]) continue;
    WaitForSingleObject(threads[i], INFINITE);
    CloseHandle(threads[i]);
  }
#else
  pthread_t threads[HOST_THREADS_MAX];
  for (int i = 0; i < count; i++) {
    starts[i].body = body;
    starts[i].arg = args[i];
    started[i] = pthread_create(&threads[i], NULL, thread_main, &starts[i]) == 0;
    all_started = all_started && started[i];
  }
  for (int i = 0; i < count; i++)
    if (started[i]) pthread_join(threads[i], NULL);
#endif
  return all_started;
}
