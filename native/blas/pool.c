/* Helper threads, one small pool per calling thread, and the ways work is cut across them. */
#include "native.h"

#include <pthread.h>
#include <stdlib.h>

int split = 1;

napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

float *heap_and_numbers(napi_env env, napi_callback_info info, const char *usage, double *numbers,
                        size_t count, size_t *heap_len) {
  enum { MAX_ARGS = 20 };
  napi_value argv[MAX_ARGS];
  size_t argc = MAX_ARGS;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < count + 1 || count + 1 > MAX_ARGS) return fail(env, usage), NULL;
  napi_typedarray_type type;
  void *data;
  if (napi_get_typedarray_info(env, argv[0], &type, heap_len, &data, NULL, NULL) != napi_ok ||
      type != napi_float32_array)
    return fail(env, "heap must be a Float32Array"), NULL;
  for (size_t i = 0; i < count; i++)
    if (napi_get_value_double(env, argv[1 + i], &numbers[i]) != napi_ok) return fail(env, usage), NULL;
  return data;
}

/*
 * Helper threads kept for the calling thread (a training worker, or the main thread), so that a
 * split costs a wake-up, not a thread start: a fresh thread also gets fresh OpenBLAS buffers, whose
 * first touch costs more than a small product. The pool ends with the thread that owns it.
 */
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
void run_split(task_fn fn, void **args, int count) {
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

struct range_part {
  range_fn fn;
  const void *ctx;
  long long lo, hi;
};

static void *run_range(void *arg) {
  const struct range_part *p = arg;
  p->fn(p->ctx, p->lo, p->hi);
  return NULL;
}

void run_ranges(range_fn fn, const void *ctx, long long total, double elements) {
  int count = elements >= (1 << 16) ? split : 1;
  if (count > total) count = total < 1 ? 1 : (int)total;
  struct range_part parts[MAX_SPLIT];
  void *args[MAX_SPLIT];
  for (int i = 0; i < count; i++) {
    parts[i] = (struct range_part){fn, ctx, total * i / count, total * (i + 1) / count};
    args[i] = &parts[i];
  }
  run_split(run_range, args, count);
}
