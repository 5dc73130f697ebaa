#define _POSIX_C_SOURCE 200809L
/* A persistent pool of worker threads. A call publishes one task and bumps a generation counter;
 * workers spin briefly on the counter (a kernel call usually follows another within
 * microseconds, and a futex wake costs more than a short kernel) and then sleep on a condition
 * variable. The caller runs share 0 itself and spins until the others are done. */
#include "lk_atomic.h"
#include "lk_internal.h"

#include <stdlib.h>

#if defined(_WIN32)
#  include <windows.h>
typedef HANDLE lk_thread;
typedef CRITICAL_SECTION lk_mutex;
typedef CONDITION_VARIABLE lk_cond;
#  define lk_mutex_init(m) InitializeCriticalSection(m)
#  define lk_mutex_destroy(m) DeleteCriticalSection(m)
#  define lk_mutex_lock(m) EnterCriticalSection(m)
#  define lk_mutex_unlock(m) LeaveCriticalSection(m)
#  define lk_cond_init(c) InitializeConditionVariable(c)
#  define lk_cond_destroy(c) ((void)0)
#  define lk_cond_wait(c, m) SleepConditionVariableCS((c), (m), INFINITE)
#  define lk_cond_broadcast(c) WakeAllConditionVariable(c)
#  define lk_yield() SwitchToThread()
#else
#  include <pthread.h>
#  include <sched.h>
typedef pthread_t lk_thread;
typedef pthread_mutex_t lk_mutex;
typedef pthread_cond_t lk_cond;
#  define lk_mutex_init(m) pthread_mutex_init((m), NULL)
#  define lk_mutex_destroy(m) pthread_mutex_destroy(m)
#  define lk_mutex_lock(m) pthread_mutex_lock(m)
#  define lk_mutex_unlock(m) pthread_mutex_unlock(m)
#  define lk_cond_init(c) pthread_cond_init((c), NULL)
#  define lk_cond_destroy(c) pthread_cond_destroy(c)
#  define lk_cond_wait(c, m) pthread_cond_wait((c), (m))
#  define lk_cond_broadcast(c) pthread_cond_broadcast(c)
#  define lk_yield() sched_yield()
#endif

/* About 20-50 microseconds of pause instructions before a worker sleeps. */
#define LK_SPIN_ITERATIONS 4000

typedef struct lk_worker {
  lk_thread_pool *pool;
  int index;
  lk_thread thread;
} lk_worker;

struct lk_thread_pool {
  int num_workers;            /* threads besides the caller */
  lk_worker *workers;
  lk_mutex mutex;
  lk_cond wake;
  volatile long generation;   /* bumped once per published task */
  volatile long pending;      /* workers still running the current task */
  volatile long shutdown;
  /* The current task; written before the generation bump that publishes it. */
  lk_task_fn task;
  void *arg;
  int task_threads;
};

static void run_share(lk_thread_pool *pool, int index) {
  if (index < pool->task_threads) pool->task(pool->arg, index, pool->task_threads);
}

#if defined(_WIN32)
static DWORD WINAPI worker_main(LPVOID param)
#else
static void *worker_main(void *param)
#endif
{
  lk_worker *self = (lk_worker *)param;
  lk_thread_pool *pool = self->pool;
  long seen = 0;
  for (;;) {
    long generation = lk_atomic_load(&pool->generation);
    for (int spin = 0; generation == seen && spin < LK_SPIN_ITERATIONS; spin++) {
      lk_cpu_relax();
      generation = lk_atomic_load(&pool->generation);
    }
    if (generation == seen) {
      lk_mutex_lock(&pool->mutex);
      while ((generation = lk_atomic_load(&pool->generation)) == seen && !lk_atomic_load(&pool->shutdown))
        lk_cond_wait(&pool->wake, &pool->mutex);
      lk_mutex_unlock(&pool->mutex);
    }
    if (lk_atomic_load(&pool->shutdown)) break;
    seen = generation;
    run_share(pool, self->index);
    lk_atomic_add(&pool->pending, -1);
  }
#if defined(_WIN32)
  return 0;
#else
  return NULL;
#endif
}

lk_status lk_thread_pool_create(int num_threads, lk_thread_pool **out_pool) {
  *out_pool = NULL;
  lk_thread_pool *pool = (lk_thread_pool *)calloc(1, sizeof *pool);
  if (!pool) return lk_fail(LK_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
  pool->num_workers = num_threads - 1;
  pool->workers = (lk_worker *)calloc((size_t)(num_threads > 1 ? num_threads - 1 : 1), sizeof(lk_worker));
  if (!pool->workers) {
    free(pool);
    return lk_fail(LK_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
  }
  lk_mutex_init(&pool->mutex);
  lk_cond_init(&pool->wake);
  for (int i = 0; i < pool->num_workers; i++) {
    lk_worker *w = &pool->workers[i];
    w->pool = pool;
    w->index = i + 1;
#if defined(_WIN32)
    w->thread = CreateThread(NULL, 0, worker_main, w, 0, NULL);
    bool started = w->thread != NULL;
#else
    bool started = pthread_create(&w->thread, NULL, worker_main, w) == 0;
#endif
    if (!started) {
      pool->num_workers = i; /* join the ones that did start */
      lk_thread_pool_destroy(pool);
      return lk_fail(LK_ERR_OUT_OF_MEMORY, "num_threads: could not start worker thread %d", i + 1);
    }
  }
  *out_pool = pool;
  return LK_OK;
}

void lk_thread_pool_destroy(lk_thread_pool *pool) {
  if (!pool) return;
  lk_mutex_lock(&pool->mutex);
  lk_atomic_store(&pool->shutdown, 1);
  lk_cond_broadcast(&pool->wake);
  lk_mutex_unlock(&pool->mutex);
  for (int i = 0; i < pool->num_workers; i++) {
#if defined(_WIN32)
    WaitForSingleObject(pool->workers[i].thread, INFINITE);
    CloseHandle(pool->workers[i].thread);
#else
    pthread_join(pool->workers[i].thread, NULL);
#endif
  }
  lk_cond_destroy(&pool->wake);
  lk_mutex_destroy(&pool->mutex);
  free(pool->workers);
  free(pool);
}

void lk_thread_pool_run(lk_thread_pool *pool, int num_threads, lk_task_fn task, void *arg) {
  if (!pool || num_threads <= 1 || pool->num_workers == 0) {
    task(arg, 0, 1);
    return;
  }
  if (num_threads > pool->num_workers + 1) num_threads = pool->num_workers + 1;
  pool->task = task;
  pool->arg = arg;
  pool->task_threads = num_threads;
  /* Every worker takes part in every generation (those past task_threads do nothing), so
   * `pending` always counts all of them and no worker can miss a generation. */
  lk_atomic_store(&pool->pending, (long)pool->num_workers);
  lk_mutex_lock(&pool->mutex);
  lk_atomic_add(&pool->generation, 1);
  lk_cond_broadcast(&pool->wake);
  lk_mutex_unlock(&pool->mutex);
  task(arg, 0, num_threads);
  for (unsigned spin = 0; lk_atomic_load(&pool->pending) != 0; spin++) {
    if (spin < 100000u) lk_cpu_relax();
    else lk_yield();
  }
}
