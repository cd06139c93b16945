/*
 * A thin N-API binding to a system CBLAS (OpenBLAS first): single-precision matrix products on
 * Float32Array views, used as the wasm backend's BatchMatMul kernel. The library is opened at run
 * time (dlopen), so building this needs no BLAS headers and a machine without the library simply
 * keeps the other kernels. Batches come as a list of element offsets, so broadcasting stays in JS.
 */
#include <dlfcn.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

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
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
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
  return core_name(env);
}

/* threads(n?): set the library's thread count when n is given (OpenBLAS only); returns it, or 0 if unknown. */
static napi_value threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1 && set_threads) set_threads(int_arg(env, argv[0]));
  napi_value out;
  napi_create_int32(env, get_threads ? get_threads() : 0, &out);
  return out;
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
  for (size_t t = 0; t < offsets_len; t += 3)
    sgemm(ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS, m, n, k, 1.0f,
          heap + (size_t)offsets[t], trans_a ? m : k, heap + (size_t)offsets[t + 1], trans_b ? k : n,
          0.0f, (float *)heap + (size_t)offsets[t + 2], n);
  return NULL;
}

NAPI_MODULE_INIT() {
  const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {{"open", open_library}, {"threads", threads}, {"sgemm", gemm}};
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, functions[i].name, fn);
  }
  return exports;
}
