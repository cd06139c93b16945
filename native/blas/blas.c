/*
 * A thin N-API binding to a system CBLAS (OpenBLAS first): single-precision matrix products on
 * Float32Array views, used as the wasm backend's BatchMatMul kernel (the binding's other kernels:
 * transpose.c, elementwise.c; its helper threads: pool.c). The library is opened at run
 * time (dlopen), so building this needs no BLAS headers and a machine without the library simply
 * keeps the other kernels. Batches come as a list of element offsets, so broadcasting stays in JS.
 *
 * OpenBLAS itself runs single-threaded: its own threads cost more to wake than the small products
 * of a LoRA step take, and its thread count is one setting for the whole process. Instead a product
 * is cut into up to `split` parts of at least SPLIT_MIN_MACS multiply-adds (batches, else rows, else
 * columns of C), each on a helper thread calling the library; smaller ones run on the caller.
 */
#include "native.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                         float, float *, int);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);
typedef char *(*corename_fn)(void);

static void *library;
static sgemm_fn sgemm;
static set_threads_fn set_threads;
static get_threads_fn get_threads;
static corename_fn corename;
static const double SPLIT_MIN_MACS = 1 << 23; /* per part: below, concurrent calls gain little (measured) */

static int int_arg(napi_env env, napi_value v) {
  int32_t x = 0;
  napi_get_value_int32(env, v, &x);
  return x;
}

static int is_true(napi_env env, napi_value v) {
  bool b = false;
  napi_get_value_bool(env, v, &b);
  return b;
}

static napi_value core_name(napi_env env) {
  napi_value name;
  const char *core = corename ? corename() : "";
  napi_create_string_utf8(env, core ? core : "", NAPI_AUTO_LENGTH, &name);
  return name;
}

/* open(path): dlopen the library and find cblas_sgemm; returns the OpenBLAS core name or "". */
static napi_value open_library(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[4096];
  size_t len = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok)
    return fail(env, "open(path) needs a library path");
  /* One library per process: workers share it, and a second open() (another worker) reuses it. */
  if (library) return core_name(env);
  /*
   * OpenBLAS starts a thread per core when it loads, and those threads keep concurrent calls from
   * running in parallel even after openblas_set_num_threads(1) (measured: two threads' small
   * products took as long as one thread doing both). Loaded with OPENBLAS_NUM_THREADS=1 it starts
   * none; the caller's value is put back for mft's own reading of it.
   */
  const char *had = getenv("OPENBLAS_NUM_THREADS");
  char saved[64] = "";
  if (had) snprintf(saved, sizeof saved, "%s", had);
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (had) setenv("OPENBLAS_NUM_THREADS", saved, 1);
  else unsetenv("OPENBLAS_NUM_THREADS");
  if (!handle) return fail(env, dlerror());
  sgemm_fn found = (sgemm_fn)dlsym(handle, "cblas_sgemm");
  if (!found) {
    dlclose(handle);
    char message[4200];
    snprintf(message, sizeof message, "%s has no cblas_sgemm", path);
    return fail(env, message);
  }
  library = handle;
  sgemm = found;
  set_threads = (set_threads_fn)dlsym(handle, "openblas_set_num_threads");
  get_threads = (get_threads_fn)dlsym(handle, "openblas_get_num_threads");
  corename = (corename_fn)dlsym(handle, "openblas_get_corename");
  if (set_threads) set_threads(1);
  return core_name(env);
}

/*
 * threads(n?): set how many threads a large product is cut across (OpenBLAS only: another library
 * keeps its own threading); returns it, or 0 when the library threads itself.
 */
static napi_value threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1 && set_threads) {
    int n = int_arg(env, argv[0]);
    split = n < 1 ? 1 : n > MAX_SPLIT ? MAX_SPLIT : n;
  }
  napi_value out;
  napi_create_int32(env, set_threads ? split : 0, &out);
  return out;
}

/* One part of a product: batches [b0, b1) whole, or of every batch rows / columns [i0, i1) of C. */
struct part {
  const float *heap;
  const double *offsets;
  size_t b0, b1;
  int m, n, k, trans_a, trans_b;
  int by_rows, by_cols, i0, i1;
};

static void *run_part(void *arg) {
  const struct part *p = arg;
  const int lda = p->trans_a ? p->m : p->k, ldb = p->trans_b ? p->k : p->n;
  for (size_t t = p->b0; t < p->b1; t++) {
    const float *a = p->heap + (size_t)p->offsets[3 * t];
    const float *b = p->heap + (size_t)p->offsets[3 * t + 1];
    float *c = (float *)p->heap + (size_t)p->offsets[3 * t + 2];
    int m = p->m, n = p->n;
    if (p->by_rows) { /* rows i0..i1 of op(A) and of C */
      a += p->trans_a ? (size_t)p->i0 : (size_t)p->i0 * p->k;
      c += (size_t)p->i0 * p->n;
      m = p->i1 - p->i0;
    } else if (p->by_cols) { /* columns i0..i1 of op(B) and of C */
      b += p->trans_b ? (size_t)p->i0 * p->k : (size_t)p->i0;
      c += p->i0;
      n = p->i1 - p->i0;
    }
    sgemm(ROW_MAJOR, p->trans_a ? TRANS : NO_TRANS, p->trans_b ? TRANS : NO_TRANS, m, n, p->k, 1.0f, a,
          lda, b, ldb, 0.0f, c, p->n);
  }
  return NULL;
}

/*
 * sgemm(heap, offsets, m, n, k, transA, transB): for each batch t, C_t = op(A_t) op(B_t), row-major,
 * where A_t, B_t, C_t start at heap elements offsets[3t], offsets[3t + 1], offsets[3t + 2].
 */
static napi_value gemm(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!sgemm) return fail(env, "sgemm before open()");
  if (argc < 7) return fail(env, "sgemm(heap, offsets, m, n, k, transA, transB)");
  napi_typedarray_type type;
  size_t heap_len, offsets_len;
  void *heap_data, *offsets_data;
  if (napi_get_typedarray_info(env, argv[0], &type, &heap_len, &heap_data, NULL, NULL) != napi_ok ||
      type != napi_float32_array)
    return fail(env, "heap must be a Float32Array");
  if (napi_get_typedarray_info(env, argv[1], &type, &offsets_len, &offsets_data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || offsets_len % 3 != 0)
    return fail(env, "offsets must be a Float64Array of (a, b, c) triples");
  const int m = int_arg(env, argv[2]), n = int_arg(env, argv[3]), k = int_arg(env, argv[4]);
  const int trans_a = is_true(env, argv[5]), trans_b = is_true(env, argv[6]);
  const float *heap = heap_data;
  const double *offsets = offsets_data;
  const double a_size = (double)m * k, b_size = (double)k * n, c_size = (double)m * n;
  for (size_t t = 0; t < offsets_len; t += 3)
    if (offsets[t] < 0 || offsets[t + 1] < 0 || offsets[t + 2] < 0 ||
        offsets[t] + a_size > heap_len || offsets[t + 1] + b_size > heap_len ||
        offsets[t + 2] + c_size > heap_len)
      return fail(env, "sgemm: an operand lies outside the heap");
  const size_t batches = offsets_len / 3;
  struct part whole = {heap, offsets, 0, batches, m, n, k, trans_a, trans_b, 0, 0, 0, 0};
  const double parts_worth = (double)batches * a_size * n / SPLIT_MIN_MACS;
  int count = parts_worth < split ? (int)parts_worth : split;
  if (count < 1) count = 1;
  /* Cut batches when there are enough; else rows, else columns, in parts of at least 16. */
  const int by_batch = batches >= (size_t)count;
  const int by_rows = !by_batch && m >= n;
  const int extent = by_batch ? (int)batches : by_rows ? m : n;
  if (!by_batch && extent / 16 < count) count = extent / 16 > 0 ? extent / 16 : 1;
  if (count <= 1) {
    run_part(&whole);
    return NULL;
  }
  struct part parts[MAX_SPLIT];
  for (int i = 0; i < count; i++) {
    const int lo = (int)((long long)extent * i / count), hi = (int)((long long)extent * (i + 1) / count);
    parts[i] = whole;
    if (by_batch) {
      parts[i].b0 = (size_t)lo;
      parts[i].b1 = (size_t)hi;
    } else {
      parts[i].by_rows = by_rows;
      parts[i].by_cols = !by_rows;
      parts[i].i0 = lo;
      parts[i].i1 = hi;
    }
  }
  void *args[MAX_SPLIT];
  for (int i = 0; i < count; i++) args[i] = &parts[i];
  run_split(run_part, args, count);
  return NULL;
}

NAPI_MODULE_INIT() {
  const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {
      {"open", open_library},
      {"threads", threads},
      {"sgemm", gemm},
      {"transpose", transpose},
      {"softmaxGrad", softmax_grad},
      {"exp", exp_kernel},
      {"dropout", dropout},
      {"logSumExp", log_sum_exp},
      {"logSumExpGrad", log_sum_exp_grad},
      {"softmax", softmax},
      {"swiglu", swiglu},
      {"swigluGrad", swiglu_grad},
      {"adamw", adamw},
      {"rmsNorm", rms_norm},
      {"rmsNormGrad", rms_norm_grad},
  };
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, functions[i].name, fn);
  }
  return exports;
}
