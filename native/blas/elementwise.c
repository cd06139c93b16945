/*
 * One-pass kernels over float32 on the wasm heap: exp, logsumexp and softmax's gradient over the
 * last axis, and the LoRA input's dropout. Each is cut across `split` threads by elements or rows.
 * The loops vectorise because the binding is built with -fno-trapping-math (mft reads no FP flags).
 */
#include "native.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Whether [at, at + n) lies within a heap of `len` floats. */
static int within(double at, double n, size_t len) { return at >= 0 && n >= 0 && at + n <= (double)len; }

/*
 * exp in the form the compiler vectorises (Cephes' expf: e^x = 2^n e^r, |r| <= ln2/2, a degree-6
 * polynomial for e^r; about 1 ulp). Below -87.33 (e^x under the smallest normal float) it gives 0,
 * above 88.72 +inf; NaN stays NaN. The stock wasm Exp calls a scalar libm expf.
 */
static inline float exp1(float x) {
  const float lo = -87.33654f, hi = 88.72283f;
  const float c = x < lo ? lo : (x > hi ? hi : x);
  /* n = round(c / ln2): adding and taking away 1.5 * 2^23 rounds to the nearest integer */
  const float fn = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const int32_t n = (int32_t)fn;
  const float r = c - fn * 0.693359375f + fn * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  /* 2^n as 2^(n/2) 2^(n - n/2): n reaches 128 and -126, past one float exponent */
  const int32_t n1 = n >> 1, b1 = (n1 + 127) << 23, b2 = (n - n1 + 127) << 23;
  float s1, s2;
  memcpy(&s1, &b1, sizeof s1);
  memcpy(&s2, &b2, sizeof s2);
  y = y * s1 * s2;
  /* selects, not branches, so that the loops calling it vectorise */
  y = x < lo ? 0.0f : y;
  return x > hi ? (float)INFINITY : y;
}

/* An elementwise job: `in` (and `other`, a second input where there is one) to `out`, rows of `cols`. */
struct job {
  const float *in, *other;
  float *out;
  long long cols;
};

MFT_VECTOR_CLONES static void run_exp(const void *ctx, long long lo, long long hi) {
  const struct job *j = ctx;
  for (long long i = lo; i < hi; i++) j->out[i] = exp1(j->in[i]);
}

/* exp(heap, inOffset, outOffset, n) */
napi_value exp_kernel(napi_env env, napi_callback_info info) {
  double v[3];
  size_t len;
  float *heap = heap_and_numbers(env, info, "exp(heap, inOffset, outOffset, n)", v, 3, &len);
  if (!heap) return NULL;
  if (!within(v[0], v[2], len) || !within(v[1], v[2], len)) return fail(env, "exp: an operand lies outside the heap");
  const struct job j = {heap + (size_t)v[0], NULL, heap + (size_t)v[1], 1};
  run_ranges(run_exp, &j, (long long)v[2], v[2]);
  return NULL;
}

/* sum(a * b) of a row (b = NULL: sum(a * a)), in 16 lanes, the lanes' sum in double. */
static inline double row_dot(const float *a, const float *b, long long cols) {
  const long long whole = cols / 16 * 16;
  float lane[16] = {0};
  for (long long c = 0; c < whole; c += 16)
    for (int k = 0; k < 16; k++) lane[k] += a[c + k] * (b ? b[c + k] : a[c + k]);
  double sum = 0;
  for (int k = 0; k < 16; k++) sum += lane[k];
  for (long long c = whole; c < cols; c++) sum += (double)(a[c] * (b ? b[c] : a[c]));
  return sum;
}

/* The max of a row, in 16 lanes (a NaN is never picked: it reaches a result through exp's sum). */
static inline float row_max(const float *x, long long cols) {
  const long long whole = cols / 16 * 16;
  float lane[16];
  for (int k = 0; k < 16; k++) lane[k] = -INFINITY;
  for (long long c = 0; c < whole; c += 16)
    for (int k = 0; k < 16; k++) lane[k] = x[c + k] > lane[k] ? x[c + k] : lane[k];
  float m = -INFINITY;
  for (int k = 0; k < 16; k++) m = lane[k] > m ? lane[k] : m;
  for (long long c = whole; c < cols; c++) m = x[c] > m ? x[c] : m;
  return m;
}

/*
 * sum(exp(x - m)) of a row: blocks of 256 values summed in 16 float lanes, the blocks' lanes in
 * double (float lanes through a vocabulary-wide row would lose about sqrt(cols / 16) ulp); the
 * exponentials into `e` unless NULL.
 */
static inline double row_exp_sum(const float *x, float m, long long cols, float *e) {
  const long long whole = cols / 16 * 16;
  double total[16] = {0};
  for (long long c0 = 0; c0 < whole; c0 += 256) {
    const long long end = c0 + 256 < whole ? c0 + 256 : whole;
    float lane[16] = {0};
    for (long long c = c0; c < end; c += 16)
      for (int k = 0; k < 16; k++) {
        const float v = exp1(x[c + k] - m);
        if (e) e[c + k] = v;
        lane[k] += v;
      }
    for (int k = 0; k < 16; k++) total[k] += lane[k];
  }
  double sum = 0;
  for (int k = 0; k < 16; k++) sum += total[k];
  for (long long c = whole; c < cols; c++) {
    const float v = exp1(x[c] - m);
    if (e) e[c] = v;
    sum += v;
  }
  return sum;
}

/*
 * logsumexp of rows: m = max, out = m + log(sum(exp(x - m))). Rows of only -inf give -inf, like
 * tfjs.
 */
MFT_VECTOR_CLONES static void run_log_sum_exp(const void *ctx, long long lo, long long hi) {
  const struct job *j = ctx;
  for (long long r = lo; r < hi; r++) {
    const float *x = j->in + r * j->cols;
    const float m = row_max(x, j->cols);
    /* no finite logit: -inf, where x - m would be NaN */
    j->out[r] = m == -INFINITY ? m : m + (float)log(row_exp_sum(x, m, j->cols, NULL));
  }
}

/*
 * Softmax of rows, tfjs's formula: e = exp(x - max), out = e / sum(e) (as e times the sum's
 * reciprocal). A row of only -inf gives NaN, as tfjs's kernels do.
 */
MFT_VECTOR_CLONES static void run_softmax(const void *ctx, long long lo, long long hi) {
  const struct job *j = ctx;
  const long long cols = j->cols;
  for (long long r = lo; r < hi; r++) {
    const float *x = j->in + r * cols;
    float *out = j->out + r * cols;
    const float m = row_max(x, cols);
    const float inv = (float)(1.0 / row_exp_sum(x, m, cols, out));
    for (long long c = 0; c < cols; c++) out[c] *= inv;
  }
}

/* softmax(heap, inOffset, outOffset, rows, cols) */
napi_value softmax(napi_env env, napi_callback_info info) {
  double v[4];
  size_t len;
  float *heap = heap_and_numbers(env, info, "softmax(heap, inOffset, outOffset, rows, cols)", v, 4, &len);
  if (!heap) return NULL;
  const double size = v[2] * v[3];
  if (v[3] < 1 || !within(v[0], size, len) || !within(v[1], size, len))
    return fail(env, "softmax: an operand lies outside the heap");
  const struct job j = {heap + (size_t)v[0], NULL, heap + (size_t)v[1], (long long)v[3]};
  run_ranges(run_softmax, &j, (long long)v[2], size);
  return NULL;
}

/* The gradient of row logsumexp: dz = dy * exp(z - logsumexp(z)), per row (`in` = z, `other` = lse). */
struct lse_grad_job {
  struct job io;
  const float *dy;
};

MFT_VECTOR_CLONES static void run_log_sum_exp_grad(const void *ctx, long long lo, long long hi) {
  const struct lse_grad_job *j = ctx;
  const long long cols = j->io.cols;
  for (long long r = lo; r < hi; r++) {
    const float *z = j->io.in + r * cols;
    float *out = j->io.out + r * cols;
    const float l = j->io.other[r], g = j->dy[r];
    for (long long c = 0; c < cols; c++) out[c] = g * exp1(z[c] - l);
  }
}

/* logSumExpGrad(heap, zOffset, lseOffset, dyOffset, outOffset, rows, cols) */
napi_value log_sum_exp_grad(napi_env env, napi_callback_info info) {
  double v[6];
  size_t len;
  float *heap = heap_and_numbers(
      env, info, "logSumExpGrad(heap, zOffset, lseOffset, dyOffset, outOffset, rows, cols)", v, 6, &len);
  if (!heap) return NULL;
  const double size = v[4] * v[5];
  if (v[5] < 1 || !within(v[0], size, len) || !within(v[1], v[4], len) || !within(v[2], v[4], len) ||
      !within(v[3], size, len))
    return fail(env, "logSumExpGrad: an operand lies outside the heap");
  const struct lse_grad_job j = {
      {heap + (size_t)v[0], heap + (size_t)v[1], heap + (size_t)v[3], (long long)v[5]}, heap + (size_t)v[2]};
  run_ranges(run_log_sum_exp_grad, &j, (long long)v[4], size);
  return NULL;
}

/*
 * SwiGLU's product (src/model/swiglu.ts): act = silu(g) * u = g * u * sigmoid(g), and its
 * gradient, with s = sigmoid(g) = 1 / (1 + e), e = exp(-g):
 *   du = dy * g * s,  dg = dy * u * s * (1 + g * (1 - s))
 * where 1 - s is taken as e * s (1 when e overflows), which keeps its relative precision as s
 * nears 1 (the difference would keep only its absolute precision, which g then multiplies).
 */
MFT_VECTOR_CLONES static void run_swiglu(const void *ctx, long long lo, long long hi) {
  const struct job *j = ctx;
  for (long long i = lo; i < hi; i++) {
    const float g = j->in[i];
    j->out[i] = g * j->other[i] / (1.0f + exp1(-g));
  }
}

/* swiglu(heap, gateOffset, upOffset, outOffset, n) */
napi_value swiglu(napi_env env, napi_callback_info info) {
  double v[4];
  size_t len;
  float *heap = heap_and_numbers(env, info, "swiglu(heap, gateOffset, upOffset, outOffset, n)", v, 4, &len);
  if (!heap) return NULL;
  if (!within(v[0], v[3], len) || !within(v[1], v[3], len) || !within(v[2], v[3], len))
    return fail(env, "swiglu: an operand lies outside the heap");
  const struct job j = {heap + (size_t)v[0], heap + (size_t)v[1], heap + (size_t)v[2], 1};
  run_ranges(run_swiglu, &j, (long long)v[3], v[3]);
  return NULL;
}

struct swiglu_grad_job {
  const float *g, *u, *dy;
  float *dg, *du;
};

MFT_VECTOR_CLONES static void run_swiglu_grad(const void *ctx, long long lo, long long hi) {
  const struct swiglu_grad_job *j = ctx;
  for (long long i = lo; i < hi; i++) {
    const float g = j->g[i], u = j->u[i], dy = j->dy[i];
    const float e = exp1(-g), s = 1.0f / (1.0f + e), rest = e < INFINITY ? e * s : 1.0f;
    j->du[i] = dy * g * s;
    j->dg[i] = dy * u * s * (1.0f + g * rest);
  }
}

/* swigluGrad(heap, gateOffset, upOffset, dyOffset, dGateOffset, dUpOffset, n) */
napi_value swiglu_grad(napi_env env, napi_callback_info info) {
  double v[6];
  size_t len;
  float *heap = heap_and_numbers(
      env, info, "swigluGrad(heap, gateOffset, upOffset, dyOffset, dGateOffset, dUpOffset, n)", v, 6, &len);
  if (!heap) return NULL;
  for (int k = 0; k < 5; k++)
    if (!within(v[k], v[5], len)) return fail(env, "swigluGrad: an operand lies outside the heap");
  const struct swiglu_grad_job j = {heap + (size_t)v[0], heap + (size_t)v[1], heap + (size_t)v[2],
                                    heap + (size_t)v[3], heap + (size_t)v[4]};
  run_ranges(run_swiglu_grad, &j, (long long)v[5], 4 * v[5]);
  return NULL;
}

/* logSumExp(heap, inOffset, outOffset, rows, cols): out has `rows` values */
napi_value log_sum_exp(napi_env env, napi_callback_info info) {
  double v[4];
  size_t len;
  float *heap = heap_and_numbers(env, info, "logSumExp(heap, inOffset, outOffset, rows, cols)", v, 4, &len);
  if (!heap) return NULL;
  if (v[3] < 1 || !within(v[0], v[2] * v[3], len) || !within(v[1], v[2], len))
    return fail(env, "logSumExp: an operand lies outside the heap");
  const struct job j = {heap + (size_t)v[0], NULL, heap + (size_t)v[1], (long long)v[3]};
  run_ranges(run_log_sum_exp, &j, (long long)v[2], v[2] * v[3]);
  return NULL;
}

/*
 * Softmax's gradient in one pass, the formula of tfjs's Softmax_grad (`in` = y, `other` = dy):
 *   t = dy * y;  dx = t - sum(t) * y   (per row; the sum in 16 lanes, the lanes' sum in double)
 * where the composite costs four kernels and three tensors the size of the scores.
 */
MFT_VECTOR_CLONES static void run_softmax_grad(const void *ctx, long long lo, long long hi) {
  const struct job *j = ctx;
  const long long cols = j->cols;
  for (long long r = lo; r < hi; r++) {
    const float *y = j->in + r * cols, *dy = j->other + r * cols;
    float *out = j->out + r * cols;
    const float s = (float)row_dot(dy, y, cols);
    for (long long c = 0; c < cols; c++) out[c] = dy[c] * y[c] - s * y[c];
  }
}

/* softmaxGrad(heap, yOffset, dyOffset, outOffset, rows, cols) */
napi_value softmax_grad(napi_env env, napi_callback_info info) {
  double v[5];
  size_t len;
  float *heap =
      heap_and_numbers(env, info, "softmaxGrad(heap, yOffset, dyOffset, outOffset, rows, cols)", v, 5, &len);
  if (!heap) return NULL;
  const double size = v[3] * v[4];
  if (v[4] < 1 || !within(v[0], size, len) || !within(v[1], size, len) || !within(v[2], size, len))
    return fail(env, "softmaxGrad: an operand lies outside the heap");
  const struct job j = {heap + (size_t)v[0], heap + (size_t)v[1], heap + (size_t)v[2], (long long)v[4]};
  run_ranges(run_softmax_grad, &j, (long long)v[3], size);
  return NULL;
}

/*
 * RMSNorm of rows (src/model/rms-norm.ts): y = (x * r) * w, r = 1 / sqrt(mean(x^2) + eps), and its
 * gradient for x: dx = r * (w * dy) - x * (r^3 * mean(w * dy * x)).
 */
struct norm_job {
  const float *x, *w, *dy;
  float *out;
  long long cols;
  double eps;
};

MFT_VECTOR_CLONES static void run_rms_norm(const void *ctx, long long lo, long long hi) {
  const struct norm_job *j = ctx;
  const long long cols = j->cols;
  for (long long r = lo; r < hi; r++) {
    const float *x = j->x + r * cols;
    float *out = j->out + r * cols;
    const float s = (float)(1.0 / sqrt(row_dot(x, NULL, cols) / (double)cols + j->eps));
    for (long long c = 0; c < cols; c++) out[c] = x[c] * s * j->w[c];
  }
}

MFT_VECTOR_CLONES static void run_rms_norm_grad(const void *ctx, long long lo, long long hi) {
  const struct norm_job *j = ctx;
  const long long cols = j->cols, whole = cols / 16 * 16;
  for (long long r = lo; r < hi; r++) {
    const float *x = j->x + r * cols, *dy = j->dy + r * cols;
    float *dx = j->out + r * cols;
    const double inv = 1.0 / sqrt(row_dot(x, NULL, cols) / (double)cols + j->eps);
    float lane[16] = {0}; /* sum(w * dy * x) */
    for (long long c = 0; c < whole; c += 16)
      for (int k = 0; k < 16; k++) lane[k] += j->w[c + k] * dy[c + k] * x[c + k];
    double wdx = 0;
    for (int k = 0; k < 16; k++) wdx += lane[k];
    for (long long c = whole; c < cols; c++) wdx += (double)(j->w[c] * dy[c] * x[c]);
    const float s = (float)inv, t = (float)(inv * inv * inv * wdx / (double)cols);
    for (long long c = 0; c < cols; c++) dx[c] = s * (j->w[c] * dy[c]) - x[c] * t;
  }
}

/* rmsNorm(heap, xOffset, wOffset, outOffset, rows, cols, eps) */
napi_value rms_norm(napi_env env, napi_callback_info info) {
  double v[6];
  size_t len;
  float *heap = heap_and_numbers(env, info, "rmsNorm(heap, xOffset, wOffset, outOffset, rows, cols, eps)", v, 6, &len);
  if (!heap) return NULL;
  const double size = v[3] * v[4];
  if (v[4] < 1 || !within(v[0], size, len) || !within(v[1], v[4], len) || !within(v[2], size, len))
    return fail(env, "rmsNorm: an operand lies outside the heap");
  const struct norm_job j = {heap + (size_t)v[0], heap + (size_t)v[1], NULL, heap + (size_t)v[2], (long long)v[4], v[5]};
  run_ranges(run_rms_norm, &j, (long long)v[3], size);
  return NULL;
}

/* rmsNormGrad(heap, xOffset, wOffset, dyOffset, dxOffset, rows, cols, eps) */
napi_value rms_norm_grad(napi_env env, napi_callback_info info) {
  double v[7];
  size_t len;
  float *heap = heap_and_numbers(env, info, "rmsNormGrad(heap, xOffset, wOffset, dyOffset, dxOffset, rows, cols, eps)",
                                 v, 7, &len);
  if (!heap) return NULL;
  const double size = v[4] * v[5];
  if (v[5] < 1 || !within(v[0], size, len) || !within(v[1], v[5], len) || !within(v[2], size, len) ||
      !within(v[3], size, len))
    return fail(env, "rmsNormGrad: an operand lies outside the heap");
  const struct norm_job j = {heap + (size_t)v[0], heap + (size_t)v[1], heap + (size_t)v[2],
                             heap + (size_t)v[3], (long long)v[5], v[6]};
  run_ranges(run_rms_norm_grad, &j, (long long)v[4], 2 * size);
  return NULL;
}

/*
 * One AdamW update (src/train/adamw.ts) in tfjs's float32 operations and order, so that its values
 * are those of the tfjs ops bit for bit (the binding is built without contracting a * b + c):
 *   p' = p * decay - (m' / (sqrt(v') / bc2 + eps)) * step
 *   m' = m * b1 + g * (1 - b1),  v' = v * b2 + (g * g) * (1 - b2)
 */
struct adamw_job {
  const float *p, *g, *m, *v;
  float *p1, *m1, *v1;
  float decay, b1, c1, b2, c2, bc2, eps, step;
};

MFT_VECTOR_CLONES static void run_adamw(const void *ctx, long long lo, long long hi) {
  const struct adamw_job *j = ctx;
  for (long long i = lo; i < hi; i++) {
    const float g = j->g[i];
    const float m = j->m[i] * j->b1 + g * j->c1;
    const float v = j->v[i] * j->b2 + (g * g) * j->c2;
    j->p1[i] = j->p[i] * j->decay - (m / (sqrtf(v) / j->bc2 + j->eps)) * j->step;
    j->m1[i] = m;
    j->v1[i] = v;
  }
}

/*
 * adamw(heap, pOffset, gOffset, mOffset, vOffset, pOutOffset, mOutOffset, vOutOffset, n,
 *       decay, b1, 1 - b1, b2, 1 - b2, bc2, eps, step): the scalars rounded to float32, as tfjs does
 */
napi_value adamw(napi_env env, napi_callback_info info) {
  double v[16];
  size_t len;
  float *heap = heap_and_numbers(env, info,
                                 "adamw(heap, p, g, m, v, pOut, mOut, vOut, n, decay, b1, c1, b2, c2, bc2, eps, step)",
                                 v, 16, &len);
  if (!heap) return NULL;
  for (int k = 0; k < 7; k++)
    if (!within(v[k], v[7], len)) return fail(env, "adamw: an operand lies outside the heap");
  float *at[7];
  for (int k = 0; k < 7; k++) at[k] = heap + (size_t)v[k];
  const struct adamw_job j = {at[0], at[1], at[2], at[3], at[4], at[5], at[6],
                              (float)v[8], (float)v[9], (float)v[10], (float)v[11],
                              (float)v[12], (float)v[13], (float)v[14], (float)v[15]};
  run_ranges(run_adamw, &j, (long long)v[7], 7 * v[7]);
  return NULL;
}

/*
 * Inverted dropout in place of its mask (src/model/dropout.ts defines it): element i of the
 * counter-based mask is kept when fmix32(fmix32(lo(i) + k1) ^ (k2 + hi(i))) >= rate * 2^32, and
 * out = x * keep or x * 0, the values the mask tensor and a multiply give.
 */
static inline uint32_t fmix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x85ebca6bu;
  x ^= x >> 13;
  x *= 0xc2b2ae35u;
  return x ^ (x >> 16);
}

struct dropout_job {
  struct job io;
  uint32_t k1, k2, threshold;
  float keep;
  double skip; /* mask index of element 0 */
};

/* n elements whose mask indices share their high word: low words base - k1 .. base - k1 + n - 1. */
MFT_VECTOR_CLONES static void dropout_span(const float *in, float *out, long long n, uint32_t base,
                                           uint32_t high_key, uint32_t threshold, float keep) {
  for (long long i = 0; i < n; i++) {
    const uint32_t h = fmix32(fmix32(base + (uint32_t)i) ^ high_key);
    out[i] = in[i] * (h >= threshold ? keep : 0.0f);
  }
}

static void run_dropout(const void *ctx, long long lo, long long hi) {
  const struct dropout_job *j = ctx;
  const double first = j->skip + (double)lo;
  uint32_t low = (uint32_t)fmod(first, 4294967296.0);
  uint32_t high_key = j->k2 + (uint32_t)floor(first / 4294967296.0);
  /* In spans that do not carry into the high word, so that the loop has no branch and vectorises. */
  for (long long i = lo; i < hi;) {
    const long long room = (long long)(4294967296.0 - low), n = hi - i < room ? hi - i : room;
    dropout_span(j->io.in + i, j->io.out + i, n, low + j->k1, high_key, j->threshold, j->keep);
    i += n;
    low += (uint32_t)n;
    if (low == 0) high_key++;
  }
}

/* dropout(heap, inOffset, outOffset, n, rate, seed, skip) */
napi_value dropout(napi_env env, napi_callback_info info) {
  double v[6];
  size_t len;
  float *heap = heap_and_numbers(env, info, "dropout(heap, inOffset, outOffset, n, rate, seed, skip)", v, 6, &len);
  if (!heap) return NULL;
  const double n = v[2], rate = v[3], seed = v[4], skip = v[5];
  if (!within(v[0], n, len) || !within(v[1], n, len)) return fail(env, "dropout: an operand lies outside the heap");
  if (!(rate > 0 && rate < 1) || seed < 0 || seed > 4294967295.0 || skip < 0)
    return fail(env, "dropout: rate in (0, 1), seed a 32-bit word, skip >= 0");
  const uint32_t s = (uint32_t)seed;
  const double t = floor(rate * 4294967296.0);
  const struct dropout_job j = {{heap + (size_t)v[0], NULL, heap + (size_t)v[1], 1},
                                fmix32(s ^ 0x9e3779b9u),
                                fmix32(s + 0x7f4a7c15u),
                                t > 4294967295.0 ? 4294967295u : (uint32_t)t,
                                (float)(1.0 / (1.0 - rate)),
                                skip};
  run_ranges(run_dropout, &j, (long long)n, n);
  return NULL;
}
