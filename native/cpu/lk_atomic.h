/* The few atomics the thread pool and the context guard need, for GCC/Clang and MSVC
 * (MSVC's C mode has no <stdatomic.h> without /experimental:c11atomics). */
#ifndef LK_ATOMIC_H
#define LK_ATOMIC_H

#if defined(_MSC_VER) && !defined(__clang__)
#  include <intrin.h>
#  define lk_atomic_load(p) _InterlockedOr((volatile long *)(p), 0)
#  define lk_atomic_store(p, v) _InterlockedExchange((volatile long *)(p), (long)(v))
#  define lk_atomic_exchange(p, v) _InterlockedExchange((volatile long *)(p), (long)(v))
#  define lk_atomic_add(p, v) (_InterlockedExchangeAdd((volatile long *)(p), (long)(v)) + (long)(v))
#  define lk_cpu_relax() _mm_pause()
#else
#  define lk_atomic_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#  define lk_atomic_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#  define lk_atomic_exchange(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
#  define lk_atomic_add(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#  if defined(__x86_64__) || defined(__i386__)
#    define lk_cpu_relax() __builtin_ia32_pause()
#  else
#    define lk_cpu_relax() ((void)0)
#  endif
#endif

#endif /* LK_ATOMIC_H */
