/*
 * Transpose on the wasm heap: out = in with its axes permuted. The caller merges axes that stay
 * neighbours (src/backend/blas.ts, mergedTranspose), so either the last axis stays last (rows of
 * `dims[last]` floats are copied) or it moves to output axis p (a 2-D transpose in 32 x 32 tiles
 * over output axes p and last, for every index of the others). The work items (outer indices,
 * times tile rows in the 2-D case) are cut across `split` threads.
 */
#include "native.h"

#include <string.h>

enum { MAX_RANK = 8, TILE = 32 };
struct transpose_job {
  const float *in;
  float *out;
  int rank, p;             /* p: the output axis holding the input's last axis (rank-1: none) */
  long long od[MAX_RANK];  /* output dims */
  long long ist[MAX_RANK]; /* input stride of each output axis */
  long long ost[MAX_RANK]; /* output stride of each output axis */
  long long tiles;         /* tile rows per outer index (1 when the last axis stays last) */
};

/* Work items [lo, hi): outer indices times tile rows. */
static void run_transpose(const void *ctx, long long lo, long long hi) {
  const struct transpose_job *j = ctx;
  const int last = j->rank - 1;
  for (long long item = lo; item < hi; item++) {
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
}

/* transpose(heap, inOffset, outOffset, dims, perm): dims and perm as Int32Arrays, axes merged. */
napi_value transpose(napi_env env, napi_callback_info info) {
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
  const long long outer = size / job.od[last] / (job.p == last ? 1 : job.od[job.p]);
  job.tiles = job.p == last ? 1 : (job.od[job.p] + TILE - 1) / TILE;
  run_ranges(run_transpose, &job, outer * job.tiles, (double)size);
  return NULL;
}

