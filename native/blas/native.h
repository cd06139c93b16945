/*
 * What the binding's files share: argument helpers, the thread count a large piece of work is cut
 * across, and the helper threads that run the parts (pool.c).
 */
#ifndef MFT_NATIVE_H
#define MFT_NATIVE_H
#define _POSIX_C_SOURCE 200809L
#include <node_api.h>
#include <stddef.h>

enum { MAX_SPLIT = 64 };

/*
 * The elementwise loops are compiled for AVX-512 and AVX2 as well as the baseline (SSE2 on x86-64),
 * the loader picking the widest the CPU has (GNU ifunc), so that one build runs on any x86-64
 * machine at its vector width. Elsewhere (other C libraries and OSes, arm64: NEON is the baseline)
 * one version.
 */
#include <limits.h> /* defines __GLIBC__ on glibc, whose loader resolves the clones */
#if defined(__x86_64__) && defined(__GLIBC__) && (defined(__clang__) || __GNUC__ >= 11)
#define MFT_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MFT_VECTOR_CLONES
#endif
/* Threads one large piece of work is cut across (shared by every worker thread of the process). */
extern int split;

/* Throw `message` as a JS Error; returns NULL for the caller to return. */
napi_value fail(napi_env env, const char *message);

/*
 * The arguments (heap, n1, ..., n_count) of a kernel on the wasm heap: the heap's floats (and its
 * length in `heap_len`), the numbers in `numbers`; NULL after throwing when they are not that.
 */
float *heap_and_numbers(napi_env env, napi_callback_info info, const char *usage, double *numbers,
                        size_t count, size_t *heap_len);

/* Run fn(args[i]) for i < count: 0 on this thread, the others on the caller's helper threads. */
typedef void *(*task_fn)(void *);
void run_split(task_fn fn, void **args, int count);

/* fn(ctx, lo, hi) over [0, total) in up to `split` parts once the work reaches `elements` >= 2^16. */
typedef void (*range_fn)(const void *ctx, long long lo, long long hi);
void run_ranges(range_fn fn, const void *ctx, long long total, double elements);

/* The kernels besides sgemm, registered by blas.c. */
napi_value transpose(napi_env env, napi_callback_info info);
napi_value softmax_grad(napi_env env, napi_callback_info info);
napi_value exp_kernel(napi_env env, napi_callback_info info);
napi_value dropout(napi_env env, napi_callback_info info);
napi_value log_sum_exp(napi_env env, napi_callback_info info);
napi_value log_sum_exp_grad(napi_env env, napi_callback_info info);
napi_value softmax(napi_env env, napi_callback_info info);
napi_value swiglu(napi_env env, napi_callback_info info);
napi_value swiglu_grad(napi_env env, napi_callback_info info);
napi_value adamw(napi_env env, napi_callback_info info);
napi_value rms_norm(napi_env env, napi_callback_info info);
napi_value rms_norm_grad(napi_env env, napi_callback_info info);

#endif
