/*
 * A thin N-API binding to a system CBLAS (OpenBLAS first): single-precision matrix products on
 * Float32Array views, used as the wasm backend's BatchMatMul kernel. The library is opened at run
 * time (dlopen), so building this needs no BLAS headers and a machine without the library simply
 * keeps the other kernels. Batches come as a list of element offsets, so broadcasting stays in JS.
 *
 * OpenBLAS itself runs single-threaded: its own threads cost more to wake than the small products
 * of a LoRA step take, and its thread count is one setting for the whole process. Instead a product
 * is cut into up to `split` parts of at least SPLIT_MIN_MACS multiply-adds (batches, else rows, else
 * columns of C), each on a helper thread calling the library; smaller ones run on the caller.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
/* Threads one large product is cut across (shared by every worker thread of the process). */
static int split = 1;
enum { MAX_SPLIT = 64 };
static const double SPLIT_MIN_MACS = 1 << 23; /* per part: below, concurrent calls gain little (measured) */

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
 * Helper threads kept for the calling thread (a training worker, or the main thread), so that a
 * split costs a wake-up, not a thread start: a fresh thread also gets fresh OpenBLAS buffers, whose
 * first touch costs more than a small product. The pool ends with the thread that owns it.
 */
typedef void *(*task_fn)(void *);
struct pool {
  int size, active, generation, pending, stop;
  pthread_t ids[MAX_SPLIT];
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  task_fn fn;
  void *args[MAX_SPLIT];
};
struct helper_arg {
  struct pool *pool;
  int index;
};

static void *helper(void *arg) {
  struct helper_arg *h = arg;
  struct pool *p = h->pool;
  const int index = h->index;
  free(h);
  int seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->generation == seen && !p->stop) pthread_cond_wait(&p->go, &p->mu);
    if (p->stop) break;
    seen = p->generation;
    if (index >= p->active) continue;
    task_fn fn = p->fn;
    void *a = p->args[index + 1];
    pthread_mutex_unlock(&p->mu);
    fn(a);
    pthread_mutex_lock(&p->mu);
    if (--p->pending == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void end_pool(void *arg) {
  struct pool *p = arg;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->size; i++) pthread_join(p->ids[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->go);
  pthread_cond_destroy(&p->done);
  free(p);
}

static void make_pool_key(void) { pthread_key_create(&pool_key, end_pool); }

/* The calling thread's pool with at least `helpers` threads (fewer if threads cannot be had). */
static struct pool *pool_of_caller(int helpers) {
  pthread_once(&pool_once, make_pool_key);
  struct pool *p = pthread_getspecific(pool_key);
  if (!p) {
    p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    pthread_setspecific(pool_key, p);
  }
  while (p->size < helpers) {
    struct helper_arg *h = malloc(sizeof *h);
    if (!h) break;
    *h = (struct helper_arg){p, p->size};
    if (pthread_create(&p->ids[p->size], NULL, helper, h) != 0) {
      free(h);
      break;
    }
    p->size++;
  }
  return p;
}

/* Run fn(args[i]) for i < count: 0 on this thread, the others on the caller's helper threads. */
static void run_split(task_fn fn, void **args, int count) {
  struct pool *p = count > 1 ? pool_of_caller(count - 1) : NULL;
  const int helpers = p ? (p->size < count - 1 ? p->size : count - 1) : 0;
  if (helpers > 0) {
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    for (int i = 1; i <= helpers; i++) p->args[i] = args[i];
    p->active = helpers;
    p->pending = helpers;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
  }
  fn(args[0]);
  for (int i = helpers + 1; i < count; i++) fn(args[i]); /* no helper to be had: do it here */
  if (helpers > 0) {
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
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

/*
 * Transpose on the same heap: out = in with its axes permuted. The caller merges axes that stay
 * neighbours, so either the last axis stays last (rows of `dims[last]` floats are copied) or it
 * moves to output axis p (a 2-D transpose in 32 x 32 tiles over output axes p and last, for every
 * index of the others). Work items (outer indices, times tile rows in the 2-D case) are cut across
 * `split` threads like a large product.
 */
enum { MAX_RANK = 8, TILE = 32 };
struct transpose_job {
  const float *in;
  float *out;
  int rank, p;                   /* p: the output axis holding the input's last axis (rank-1: none) */
  long long od[MAX_RANK];        /* output dims */
  long long ist[MAX_RANK];       /* input stride of each output axis */
  long long ost[MAX_RANK];       /* output stride of each output axis */
  long long outer, tiles, lo, hi; /* items [lo, hi) of outer * tiles */
};

static void *run_transpose(void *arg) {
  const struct transpose_job *j = arg;
  const int last = j->rank - 1;
  for (long long item = j->lo; item < j->hi; item++) {
    long long rest = item / j->tiles, tile = item % j->tiles, ib = 0, ob = 0;
    for (int a = last - 1; a >= 0; a--) { /* the outer index over every axis but p and last */
      if (a == j->p) continue;
      const long long i = rest % j->od[a];
      rest /= j->od[a];
      ib += i * j->ist[a];
      ob += i * j->ost[a];
    }
    if (j->p == last) {
      memcpy(j->out + ob, j->in + ib, (size_t)j->od[last] * sizeof(float));
      continue;
    }
    const long long r0 = tile * TILE, r1 = r0 + TILE < j->od[j->p] ? r0 + TILE : j->od[j->p];
    const long long cols = j->od[last], is = j->ist[last], os = j->ost[j->p];
    for (long long c0 = 0; c0 < cols; c0 += TILE) {
      const long long c1 = c0 + TILE < cols ? c0 + TILE : cols;
      for (long long r = r0; r < r1; r++)
        for (long long c = c0; c < c1; c++) j->out[ob + r * os + c] = j->in[ib + r + c * is];
    }
  }
  return NULL;
}

/* transpose(heap, inOffset, outOffset, dims, perm): dims and perm as Int32Arrays, axes merged. */
static napi_value transpose(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) return fail(env, "transpose(heap, inOffset, outOffset, dims, perm)");
  napi_typedarray_type type;
  size_t heap_len, rank, perm_len;
  void *heap_data, *dims_data, *perm_data;
  if (napi_get_typedarray_info(env, argv[0], &type, &heap_len, &heap_data, NULL, NULL) != napi_ok ||
      type != napi_float32_array)
    return fail(env, "heap must be a Float32Array");
  if (napi_get_typedarray_info(env, argv[3], &type, &rank, &dims_data, NULL, NULL) != napi_ok ||
      type != napi_int32_array || rank < 1 || rank > MAX_RANK ||
      napi_get_typedarray_info(env, argv[4], &type, &perm_len, &perm_data, NULL, NULL) != napi_ok ||
      type != napi_int32_array || perm_len != rank)
    return fail(env, "dims and perm must be Int32Arrays of one rank (at most 8)");
  double in_at = 0, out_at = 0;
  napi_get_value_double(env, argv[1], &in_at);
  napi_get_value_double(env, argv[2], &out_at);
  const int32_t *dims = dims_data, *perm = perm_data;
  long long size = 1, stride[MAX_RANK];
  for (int a = (int)rank - 1; a >= 0; a--) {
    if (dims[a] < 1 || perm[a] < 0 || perm[a] >= (int)rank) return fail(env, "transpose: bad dims or perm");
    stride[a] = size;
    size *= dims[a];
  }
  if (in_at < 0 || out_at < 0 || in_at + size > heap_len || out_at + size > heap_len)
    return fail(env, "transpose: an operand lies outside the heap");
  struct transpose_job job = {.in = (const float *)heap_data + (size_t)in_at,
                              .out = (float *)heap_data + (size_t)out_at,
                              .rank = (int)rank};
  const int last = (int)rank - 1;
  job.p = last;
  long long osize = 1;
  for (int a = last; a >= 0; a--) {
    job.od[a] = dims[perm[a]];
    job.ist[a] = stride[perm[a]];
    job.ost[a] = osize;
    osize *= job.od[a];
    if (perm[a] == last) job.p = a;
  }
  job.outer = size / job.od[last] / (job.p == last ? 1 : job.od[job.p]);
  job.tiles = job.p == last ? 1 : (job.od[job.p] + TILE - 1) / TILE;
  const long long items = job.outer * job.tiles;
  int count = size >= (1 << 16) ? split : 1;
  if (count > items) count = (int)items;
  struct transpose_job parts[MAX_SPLIT];
  void *args[MAX_SPLIT];
  for (int i = 0; i < count; i++) {
    parts[i] = job;
    parts[i].lo = items * i / count;
    parts[i].hi = items * (i + 1) / count;
    args[i] = &parts[i];
  }
  run_split(run_transpose, args, count);
  return NULL;
}

/*
 * Softmax's gradient over the last axis in one pass, the formula of tfjs's Softmax_grad:
 *   t = dy * y;  dx = t - sum(t) * y   (per row of `cols` values; the sum in double)
 * where the composite costs four kernels and three tensors the size of the scores.
 */
struct softmax_grad_job {
  const float *y, *dy;
  float *out;
  long long cols, lo, hi; /* rows [lo, hi) */
};

static void *run_softmax_grad(void *arg) {
  const struct softmax_grad_job *j = arg;
  for (long long r = j->lo; r < j->hi; r++) {
    const float *y = j->y + r * j->cols, *dy = j->dy + r * j->cols;
    float *out = j->out + r * j->cols;
    double sum = 0;
    for (long long c = 0; c < j->cols; c++) sum += (double)(dy[c] * y[c]);
    const float s = (float)sum;
    for (long long c = 0; c < j->cols; c++) out[c] = dy[c] * y[c] - s * y[c];
  }
  return NULL;
}

/* softmaxGrad(heap, yOffset, dyOffset, outOffset, rows, cols) */
static napi_value softmax_grad(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) return fail(env, "softmaxGrad(heap, yOffset, dyOffset, outOffset, rows, cols)");
  napi_typedarray_type type;
  size_t heap_len;
  void *heap_data;
  if (napi_get_typedarray_info(env, argv[0], &type, &heap_len, &heap_data, NULL, NULL) != napi_ok ||
      type != napi_float32_array)
    return fail(env, "heap must be a Float32Array");
  double at[3] = {0, 0, 0}, rows = 0, cols = 0;
  for (int i = 0; i < 3; i++) napi_get_value_double(env, argv[1 + i], &at[i]);
  napi_get_value_double(env, argv[4], &rows);
  napi_get_value_double(env, argv[5], &cols);
  const double size = rows * cols;
  for (int i = 0; i < 3; i++)
    if (rows < 0 || cols < 1 || at[i] < 0 || at[i] + size > heap_len)
      return fail(env, "softmaxGrad: an operand lies outside the heap");
  float *heap = heap_data;
  struct softmax_grad_job job = {heap + (size_t)at[0], heap + (size_t)at[1], heap + (size_t)at[2],
                                 (long long)cols, 0, (long long)rows};
  int count = size >= (1 << 16) ? split : 1;
  if (count > rows) count = rows < 1 ? 1 : (int)rows;
  struct softmax_grad_job parts[MAX_SPLIT];
  void *args[MAX_SPLIT];
  for (int i = 0; i < count; i++) {
    parts[i] = job;
    parts[i].lo = job.hi * i / count;
    parts[i].hi = job.hi * (i + 1) / count;
    args[i] = &parts[i];
  }
  run_split(run_softmax_grad, args, count);
  return NULL;
}

/*
 * exp over float32, in the form the compiler vectorises (Cephes' expf: e^x = 2^n e^r, |r| <= ln2/2,
 * a degree-6 polynomial for e^r; about 1 ulp). Below -87.33 (e^x under the smallest normal float)
 * it gives 0, above 88.72 +inf; NaN stays NaN. The stock wasm Exp calls a scalar libm expf. (The
 * loop vectorises because the binding is built with -fno-trapping-math: mft reads no FP flags.)
 */
struct exp_job {
  const float *in;
  float *out;
  long long lo, hi;
};

static inline float exp1(float x) {
  const float lo = -87.33654f, hi = 88.72283f;
  float c = x < lo ? lo : x;
  c = c > hi ? hi : c;
  const float t = c * 1.44269504088896341f + 0.5f;
  int n = (int)t;
  n -= (float)n > t; /* floor */
  const float fn = (float)n;
  const float r = c - fn * 0.693359375f + fn * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  /* 2^n as 2^(n/2) 2^(n - n/2): n reaches 128 and -126, past one float exponent */
  const int n1 = n >> 1;
  union {
    int32_t i;
    float f;
  } s1 = {.i = (n1 + 127) << 23}, s2 = {.i = (n - n1 + 127) << 23};
  y = y * s1.f * s2.f;
  return x < lo ? 0.0f : x > hi ? (float)INFINITY : y;
}

static void *run_exp(void *arg) {
  const struct exp_job *j = arg;
  for (long long i = j->lo; i < j->hi; i++) j->out[i] = exp1(j->in[i]);
  return NULL;
}

/*
 * Softmax over rows [lo, hi) of `cols` values: e = exp(x - max), out = e / sum(e). The max and the
 * sum run in 8 lanes, which the compiler vectorises (the sum's order differs from a plain loop's
 * only by float round-off).
 */
struct softmax_job {
  const float *in;
  float *out;
  long long cols, lo, hi;
};

static void *run_softmax(void *arg) {
  const struct softmax_job *j = arg;
  const long long cols = j->cols, whole = cols / 8 * 8;
  for (long long r = j->lo; r < j->hi; r++) {
    const float *x = j->in + r * cols;
    float *y = j->out + r * cols;
    float lane[8];
    for (int k = 0; k < 8; k++) lane[k] = -INFINITY;
    for (long long c = 0; c < whole; c += 8)
      for (int k = 0; k < 8; k++) lane[k] = x[c + k] > lane[k] ? x[c + k] : lane[k];
    float m = -INFINITY;
    for (int k = 0; k < 8; k++) m = lane[k] > m ? lane[k] : m;
    for (long long c = whole; c < cols; c++) m = x[c] > m ? x[c] : m;
    for (long long c = 0; c < cols; c++) y[c] = exp1(x[c] - m);
    for (int k = 0; k < 8; k++) lane[k] = 0.0f;
    for (long long c = 0; c < whole; c += 8)
      for (int k = 0; k < 8; k++) lane[k] += y[c + k];
    float sum = 0.0f;
    for (int k = 0; k < 8; k++) sum += lane[k];
    for (long long c = whole; c < cols; c++) sum += y[c];
    const float inv = 1.0f / sum;
    for (long long c = 0; c < cols; c++) y[c] *= inv;
  }
  return NULL;
}

/* softmax(heap, inOffset, outOffset, rows, cols) */
static napi_value softmax(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) return fail(env, "softmax(heap, inOffset, outOffset, rows, cols)");
  napi_typedarray_type type;
  size_t heap_len;
  void *heap_data;
  if (napi_get_typedarray_info(env, argv[0], &type, &heap_len, &heap_data, NULL, NULL) != napi_ok ||
      type != napi_float32_array)
    return fail(env, "heap must be a Float32Array");
  double v[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4; i++) napi_get_value_double(env, argv[1 + i], &v[i]);
  const double in_at = v[0], out_at = v[1], rows = v[2], cols = v[3], size = rows * cols;
  if (rows < 0 || cols < 1 || in_at < 0 || out_at < 0 || in_at + size > heap_len || out_at + size > heap_len)
    return fail(env, "softmax: an operand lies outside the heap");
  float *heap = heap_data;
  int count = size >= (1 << 16) ? split : 1;
  if (count > rows) count = rows < 1 ? 1 : (int)rows;
  struct softmax_job parts[MAX_SPLIT];
  void *args[MAX_SPLIT];
  for (int i = 0; i < count; i++) {
    parts[i] = (struct softmax_job){heap + (size_t)in_at, heap + (size_t)out_at, (long long)cols,
                                    (long long)(rows * i / count), (long long)(rows * (i + 1) / count)};
    args[i] = &parts[i];
  }
  run_split(run_softmax, args, count);
  return NULL;
}

/* exp(heap, inOffset, outOffset, n) */
static napi_value exp_kernel(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) return fail(env, "exp(heap, inOffset, outOffset, n)");
  napi_typedarray_type type;
  size_t heap_len;
  void *heap_data;
  if (napi_get_typedarray_info(env, argv[0], &type, &heap_len, &heap_data, NULL, NULL) != napi_ok ||
      type != napi_float32_array)
    return fail(env, "heap must be a Float32Array");
  double in_at = 0, out_at = 0, n = 0;
  napi_get_value_double(env, argv[1], &in_at);
  napi_get_value_double(env, argv[2], &out_at);
  napi_get_value_double(env, argv[3], &n);
  if (n < 0 || in_at < 0 || out_at < 0 || in_at + n > heap_len || out_at + n > heap_len)
    return fail(env, "exp: an operand lies outside the heap");
  float *heap = heap_data;
  int count = n >= (1 << 16) ? split : 1;
  struct exp_job parts[MAX_SPLIT];
  void *args[MAX_SPLIT];
  for (int i = 0; i < count; i++) {
    parts[i] = (struct exp_job){heap + (size_t)in_at, heap + (size_t)out_at, (long long)(n * i / count),
                                (long long)(n * (i + 1) / count)};
    args[i] = &parts[i];
  }
  run_split(run_exp, args, count);
  return NULL;
}

/*
 * Inverted dropout in place of its mask (src/model/dropout.ts, which defines it): element i of
 * the counter-based mask is kept when fmix32(fmix32(lo(i) + k1) ^ (k2 + hi(i))) >= rate * 2^32,
 * and out = x * keep or x * 0, the values the mask tensor and a multiply give.
 */
static uint32_t fmix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x85ebca6bu;
  x ^= x >> 13;
  x *= 0xc2b2ae35u;
  return x ^ (x >> 16);
}

struct dropout_job {
  const float *in;
  float *out;
  uint32_t k1, k2, threshold;
  float keep;
  double skip; /* mask index of element 0 */
  long long lo, hi;
};

static void *run_dropout(void *arg) {
  const struct dropout_job *j = arg;
  const double first = j->skip + (double)j->lo;
  uint32_t low = (uint32_t)fmod(first, 4294967296.0);
  uint32_t high_key = j->k2 + (uint32_t)floor(first / 4294967296.0);
  for (long long i = j->lo; i < j->hi; i++) {
    const float m = fmix32(fmix32(low + j->k1) ^ high_key) >= j->threshold ? j->keep : 0.0f;
    j->out[i] = j->in[i] * m;
    if (++low == 0) high_key++;
  }
  return NULL;
}

/* dropout(heap, inOffset, outOffset, n, rate, seed, skip) */
static napi_value dropout(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 7) return fail(env, "dropout(heap, inOffset, outOffset, n, rate, seed, skip)");
  napi_typedarray_type type;
  size_t heap_len;
  void *heap_data;
  if (napi_get_typedarray_info(env, argv[0], &type, &heap_len, &heap_data, NULL, NULL) != napi_ok ||
      type != napi_float32_array)
    return fail(env, "heap must be a Float32Array");
  double v[6] = {0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 6; i++) napi_get_value_double(env, argv[1 + i], &v[i]);
  const double in_at = v[0], out_at = v[1], n = v[2], rate = v[3], seed = v[4], skip = v[5];
  if (n < 0 || in_at < 0 || out_at < 0 || in_at + n > heap_len || out_at + n > heap_len)
    return fail(env, "dropout: an operand lies outside the heap");
  if (!(rate > 0 && rate < 1) || seed < 0 || seed > 4294967295.0 || skip < 0)
    return fail(env, "dropout: rate in (0, 1), seed a 32-bit word, skip >= 0");
  const uint32_t s = (uint32_t)seed;
  const double t = floor(rate * 4294967296.0);
  float *heap = heap_data;
  struct dropout_job job = {heap + (size_t)in_at, heap + (size_t)out_at, fmix32(s ^ 0x9e3779b9u),
                            fmix32(s + 0x7f4a7c15u), t > 4294967295.0 ? 4294967295u : (uint32_t)t,
                            (float)(1.0 / (1.0 - rate)), skip, 0, (long long)n};
  int count = n >= (1 << 16) ? split : 1;
  struct dropout_job parts[MAX_SPLIT];
  void *args[MAX_SPLIT];
  for (int i = 0; i < count; i++) {
    parts[i] = job;
    parts[i].lo = (long long)(n * i / count);
    parts[i].hi = (long long)(n * (i + 1) / count);
    args[i] = &parts[i];
  }
  run_split(run_dropout, args, count);
  return NULL;
}

NAPI_MODULE_INIT() {
  const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {{"open", open_library}, {"threads", threads}, {"sgemm", gemm}, {"transpose", transpose}, {"softmaxGrad", softmax_grad}, {"exp", exp_kernel}, {"dropout", dropout}, {"softmax", softmax}};
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, functions[i].name, fn);
  }
  return exports;
}
