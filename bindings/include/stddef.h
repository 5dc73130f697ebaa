/* Minimal <stddef.h> for the bindings generator only: the libclang NuGet runtime ships no clang
 * builtin headers, so the generator parses native/include with -nostdinc and this folder as the
 * system include path. It covers what the C ABI header may use; the types come from clang's own
 * predefined macros, so they match the target being parsed. Never used by a real build. */
#ifndef LLMK_BINDINGS_STDDEF_H
#define LLMK_BINDINGS_STDDEF_H

typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;

#define NULL ((void *)0)
#define offsetof(type, member) __builtin_offsetof(type, member)

#endif
