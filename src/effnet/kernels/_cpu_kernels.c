/* Batch norm (training mode) + activation, forward and backward, for float32 activations in
 * channels_last layout on the CPU, seen as a row-major [M, C] matrix (M = N * H * W).
 *
 * Native PyTorch runs BN and the activation as separate operators: BN reads its input twice
 * and writes an output, the activation reads that and writes another, and the backward pass
 * does the same in reverse, saving two full activations per layer. Here the forward reads x
 * twice and writes y once; the backward reads (dy, x) and writes dz, then reads (dz, x) and
 * writes dx over dz, recomputing the activation's input instead of storing it. Sums over rows are accumulated per thread in
 * float over blocks of 32 rows, then in double, and merged in thread order, so results do not
 * depend on scheduling (only on the thread count).
 *
 * act: 0 = identity, 1 = SiLU (x * sigmoid(x)), 2 = ReLU, 3 = ReLU6.
 * Also the squeeze-and-excitation gate gradient (effnet_se_gate_grad, at the end).
 * Built by effnet/nn/fused.py with the system C compiler; called through ctypes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#define BLOCK 32

/* Cephes expf: 2^n * p(r) with |r| <= ln(2)/2, about 1 ulp; vectorises, keeps NaN as NaN. */
static inline float exp_approx(float x) {
    x = x > 88.0f ? 88.0f : x;
    x = x < -88.0f ? -88.0f : x;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int i; float f; } scale;
    scale.i = ((int)n + 127) << 23;
    return p * scale.f;
}

/* NaN stays NaN in every branch, as in PyTorch's own activations. */
static inline float act_forward(float z, int act) {
    switch (act) {
    case 1: return z / (1.0f + exp_approx(-z));
    case 2: return z < 0.0f ? 0.0f : z;
    case 3: return z < 0.0f ? 0.0f : (z > 6.0f ? 6.0f : z);
    default: return z;
    }
}

static inline float act_derivative(float z, int act) {
    switch (act) {
    case 1: {
        float s = 1.0f / (1.0f + exp_approx(-z));
        return s * (1.0f + z * (1.0f - s));
    }
    case 2: return z > 0.0f ? 1.0f : 0.0f;
    case 3: return (z > 0.0f && z < 6.0f) ? 1.0f : 0.0f;
    default: return 1.0f;
    }
}

/* Merge per-thread partial sums [threads][2C] in thread order into out[2C]. */
static void merge(const double *partial, int threads, long C, double *out) {
    memset(out, 0, 2 * C * sizeof(double));
    for (int t = 0; t < threads; t++)
        for (long c = 0; c < 2 * C; c++) out[c] += partial[t * 2 * C + c];
}

/* The skeleton both column-sum kernels share: rows in blocks of BLOCK, float sums per block
 * (bs, bq) flushed into the thread's double sums (s, q), merged in thread order; ROW adds row
 * m into bs and bq. Returns 1 if a thread could not allocate its block sums. */
#define COLUMN_SUMS(ROW)                                                  \
    int failed = 0;                                                       \
    _Pragma("omp parallel num_threads(threads)")                          \
    {                                                                     \
        int t = omp_get_thread_num();                                     \
        double *s = partial + (long)t * 2 * C, *q = s + C;                \
        float *bs = calloc(2 * C, sizeof(float)), *bq = bs + C;           \
        if (!bs) {                                                        \
            _Pragma("omp atomic write")                                   \
            failed = 1;                                                   \
        }                                                                 \
        memset(s, 0, 2 * C * sizeof(double));                             \
        _Pragma("omp for schedule(static)")                               \
        for (long m0 = 0; m0 < M; m0 += BLOCK) {                          \
            if (!bs) continue;                                            \
            long m1 = m0 + BLOCK < M ? m0 + BLOCK : M;                    \
            for (long m = m0; m < m1; m++) {                              \
                ROW                                                       \
            }                                                             \
            for (long c = 0; c < C; c++) {                                \
                s[c] += bs[c];                                            \
                q[c] += bq[c];                                            \
                bs[c] = 0.0f;                                             \
                bq[c] = 0.0f;                                             \
            }                                                             \
        }                                                                 \
        free(bs);                                                         \
    }                                                                     \
    if (failed) return 1;                                                 \
    merge(partial, threads, C, out);                                      \
    return 0;

static inline void stats_row(const float *row, const float *shift, long C, float *bs, float *bq) {
    #pragma omp simd
    for (long c = 0; c < C; c++) {
        float v = row[c] - shift[c];
        bs[c] += v;
        bq[c] += v * v;
    }
}

/* out[0:C] = sum over rows of x, out[C:2C] = sum of (x - shift)^2, per channel.
 * shift (a rough mean, e.g. the first row) keeps the one-pass variance accurate. */
int effnet_bn_stats(const float *x, long M, long C, const float *shift, double *partial, double *out, int threads) {
    COLUMN_SUMS(stats_row(x + m * C, shift, C, bs, bq);)
}

/* The activation is a compile-time constant inside each row loop (so the loop vectorises);
 * DISPATCH picks the specialisation once per row. */
#define DISPATCH(act, call) \
    switch (act) {          \
    case 1: call(1); break; \
    case 2: call(2); break; \
    case 3: call(3); break; \
    default: call(0);       \
    }

static inline __attribute__((always_inline)) void apply_row(const float *row, float *out, long C, const float *scale,
                                                            const float *shift, const int act) {
    #pragma omp simd
    for (long c = 0; c < C; c++) out[c] = act_forward(row[c] * scale[c] + shift[c], act);
}

/* y = act(x * scale + shift) */
void effnet_bn_act_apply(const float *x, float *y, long M, long C, const float *scale, const float *shift,
                         int act, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long m = 0; m < M; m++) {
#define APPLY(A) apply_row(x + m * C, y + m * C, C, scale, shift, A)
        DISPATCH(act, APPLY)
#undef APPLY
    }
}

static inline __attribute__((always_inline)) void sums_row(const float *row, const float *grad, float *dz_out,
                                                           long C, const float *scale, const float *shift,
                                                           const float *mean, float *bs, float *bq, const int act) {
    #pragma omp simd
    for (long c = 0; c < C; c++) {
        float dz = grad[c] * act_derivative(row[c] * scale[c] + shift[c], act);
        dz_out[c] = dz;
        bs[c] += dz;
        bq[c] += dz * (row[c] - mean[c]);
    }
}

/* With dz = dy * act'(x * scale + shift): out[0:C] = sum dz, out[C:2C] = sum dz * (x - mean), and
 * dz itself written to dz_out (the dx buffer): the second pass then reads it instead of
 * recomputing the activation's derivative (measured 25% faster: SiLU's exp and division, not
 * memory, were the limit of that pass). */
int effnet_bn_act_backward_sums(const float *dy, const float *x, float *dz_out, long M, long C, const float *scale,
                                const float *shift, const float *mean, int act, double *partial, double *out,
                                int threads) {
#define SUMS(A) sums_row(x + m * C, dy + m * C, dz_out + m * C, C, scale, shift, mean, bs, bq, A)
    COLUMN_SUMS(DISPATCH(act, SUMS))
#undef SUMS
}

/* dx = a * dz + b * x + d in place over dz (per-channel a, b, d from the sums; see fused.py). */
void effnet_bn_act_backward_apply(float *dz_dx, const float *x, long M, long C, const float *a, const float *b,
                                  const float *d, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long m = 0; m < M; m++) {
        const float *row = x + m * C;
        float *out = dz_dx + m * C;
        #pragma omp simd
        for (long c = 0; c < C; c++) out[c] = a[c] * out[c] + b[c] * row[c] + d[c];
    }
}

/* Squeeze-and-excitation, backward of y = x * gate[n, c]: out[n, c] = sum over the H*W rows
 * of image n of dy * x. One image per thread at a time (so the result does not depend on
 * scheduling); float sums over blocks of 32 rows, then double. */
int effnet_se_gate_grad(const float *dy, const float *x, long N, long HW, long C, float *out, int threads) {
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        double *acc = malloc(C * sizeof(double));
        float *block = malloc(C * sizeof(float));
        if (!acc || !block) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(static)
        for (long n = 0; n < N; n++) {
            if (!acc || !block) continue;
            for (long c = 0; c < C; c++) acc[c] = 0.0;
            for (long r0 = 0; r0 < HW; r0 += BLOCK) {
                long r1 = r0 + BLOCK < HW ? r0 + BLOCK : HW;
                for (long c = 0; c < C; c++) block[c] = 0.0f;
                for (long r = r0; r < r1; r++) {
                    const float *g = dy + (n * HW + r) * C, *v = x + (n * HW + r) * C;
                    #pragma omp simd
                    for (long c = 0; c < C; c++) block[c] += g[c] * v[c];
                }
                for (long c = 0; c < C; c++) acc[c] += block[c];
            }
            for (long c = 0; c < C; c++) out[n * C + c] = (float)acc[c];
        }
        free(acc);
        free(block);
    }
    return failed;
}

/* For each kernel tap (i, j) of output (n, oh, ow) that lands inside x: BODY with ih, iw,
 * in = the input pixel's channels and wt = the tap's weights (BODY is the variadic argument). */
#define FOR_EACH_TAP(...)                                                           \
    for (long i = 0; i < k; i++) {                                                  \
        long ih = oh * s + i - pt;                                                  \
        if (ih < 0 || ih >= H) continue;                                            \
        for (long j = 0; j < k; j++) {                                              \
            long iw = ow * s + j - pl;                                              \
            if (iw < 0 || iw >= W) continue;                                        \
            const float *in = x + ((n * H + ih) * W + iw) * C, *wt = w + (i * k + j) * C; \
            __VA_ARGS__                                                             \
        }                                                                           \
    }

/* Depthwise convolution, channels_last, no bias: y[n, oh, ow, c] = sum over (i, j) of
 * x[n, oh*s + i - pt, ow*s + j - pl, c] * w[i, j, c] (zero outside x). w is [k, k, C].
 * Any top/left padding (TF SAME pads its odd pixel after, PyTorch symmetrically), so SAME
 * needs no padded copy of x. One output row per task; the inner loop runs over channels. */
void effnet_dw_forward(const float *x, const float *w, float *y, long N, long H, long W, long C, long OH, long OW,
                       long k, long s, long pt, long pl, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (long n = 0; n < N; n++) {
        for (long oh = 0; oh < OH; oh++) {
            float *out = y + ((n * OH + oh) * OW) * C;
            for (long ow = 0; ow < OW; ow++) {
                float *o = out + ow * C;
                for (long c = 0; c < C; c++) o[c] = 0.0f;
                FOR_EACH_TAP({
                    _Pragma("omp simd")
                    for (long c = 0; c < C; c++) o[c] += in[c] * wt[c];
                })
            }
        }
    }
}

/* Both gradients in one pass over (dy, x): dx by scattering each output's gradient back to
 * the inputs it read (one image per task, so no two threads write the same dx), and dw summed
 * per image in float, per thread in double, merged in thread order. partial: [threads][k*k*C]
 * doubles, zeroed by the caller; dw_out: [k*k*C]. */
int effnet_dw_backward(const float *dy, const float *x, const float *w, float *dx, double *partial, float *dw_out,
                       long N, long H, long W, long C, long OH, long OW, long k, long s, long pt, long pl,
                       int threads) {
    long kkc = k * k * C;
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        double *acc = partial + (long)t * kkc;
        float *image = calloc(kkc, sizeof(float));
        if (!image) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(static)
        for (long n = 0; n < N; n++) {
            if (!image) continue;
            float *gx = dx + n * H * W * C;
            memset(gx, 0, H * W * C * sizeof(float));
            memset(image, 0, kkc * sizeof(float));
            for (long oh = 0; oh < OH; oh++) {
                for (long ow = 0; ow < OW; ow++) {
                    const float *g = dy + ((n * OH + oh) * OW + ow) * C;
                    FOR_EACH_TAP({
                        float *gin = gx + (ih * W + iw) * C, *gw = image + (i * k + j) * C;
                        _Pragma("omp simd")
                        for (long c = 0; c < C; c++) {
                            gin[c] += g[c] * wt[c];
                            gw[c] += g[c] * in[c];
                        }
                    })
                }
            }
            for (long q = 0; q < kkc; q++) acc[q] += image[q];
        }
        free(image);
    }
    if (failed) return 1;
    for (long q = 0; q < kkc; q++) {
        double sum = 0.0;
        for (int t = 0; t < threads; t++) sum += partial[(long)t * kkc + q];
        dw_out[q] = (float)sum;
    }
    return 0;
}
