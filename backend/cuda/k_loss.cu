/* Softmax, log-softmax and the losses (cross-entropy with label smoothing, distillation KL with temperature,
 * smooth-L1, MSE). Row statistics (max, log-sum-exp) are computed in double, one block per row, and batch
 * means add the rows in a fixed order, as the CPU backend does. The upstream gradient of a loss is read from
 * device memory, so backward never waits for the host. */
#include "backend/cuda/k_common.cuh"

/* log-sum-exp of z[0..len)*invT with stride st, valid in every thread of the block */
static __device__ double block_lse(const float *z, int64_t len, int64_t st, double invT) {
    double m = -INFINITY;
    for (int64_t c = threadIdx.x; c < len; c += NBK_THREADS) m = fmax(m, (double)z[c * st] * invT);
    m = nbk_block_bcast(nbk_block_max(m));
    double s = 0.0;
    for (int64_t c = threadIdx.x; c < len; c += NBK_THREADS) s += exp((double)z[c * st] * invT - m);
    s = nbk_block_bcast(nbk_block_sum(s));
    return m + log(s);
}

/* ---- softmax over an axis: (outer, len, inner) ---- */

static __global__ void softmax_rows_k(float *y, const float *x, int64_t len, int log_out) {
    const float *z = x + blockIdx.x * len;
    float *out = y + blockIdx.x * len;
    double lse = block_lse(z, len, 1, 1.0);
    for (int64_t c = threadIdx.x; c < len; c += NBK_THREADS) {
        double lp = (double)z[c] - lse;
        out[c] = (float)(log_out ? lp : exp(lp));
    }
}

static __global__ void softmax_strided_k(float *y, const float *x, int64_t outer, int64_t len, int64_t inner,
                                         int log_out) {
    NBK_LOOP(r, outer * inner) {
        int64_t o = r / inner, i = r % inner;
        const float *z = x + o * len * inner + i;
        float *out = y + o * len * inner + i;
        double m = -INFINITY, s = 0.0;
        for (int64_t c = 0; c < len; c++) m = fmax(m, (double)z[c * inner]);
        for (int64_t c = 0; c < len; c++) s += exp((double)z[c * inner] - m);
        double lse = m + log(s);
        for (int64_t c = 0; c < len; c++) {
            double lp = (double)z[c * inner] - lse;
            out[c * inner] = (float)(log_out ? lp : exp(lp));
        }
    }
}

extern "C" int nbk_softmax_forward(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t len, int64_t inner,
                                   int log_out) {
    if (outer * len * inner == 0) return 0;
    if (inner == 1 && outer < 2147483647)
        softmax_rows_k<<<(unsigned)outer, NBK_THREADS, 0, s>>>(y, x, len, log_out);
    else
        softmax_strided_k<<<nbk_grid(outer * inner), NBK_THREADS, 0, s>>>(y, x, outer, len, inner, log_out);
    return nbk_status();
}

static __global__ void softmax_bwd_k(float *gx, const float *y, const float *g, int64_t outer, int64_t len,
                                     int64_t inner, int log_out) {
    NBK_LOOP(r, outer * inner) {
        int64_t o = r / inner, i = r % inner, base = o * len * inner + i;
        double dot = 0.0;
        for (int64_t c = 0; c < len; c++) {
            int64_t k = base + c * inner;
            dot += log_out ? (double)g[k] : (double)g[k] * y[k];
        }
        for (int64_t c = 0; c < len; c++) {
            int64_t k = base + c * inner;
            gx[k] = log_out ? (float)(g[k] - exp((double)y[k]) * dot) : (float)(y[k] * (g[k] - dot));
        }
    }
}

extern "C" int nbk_softmax_backward(cudaStream_t s, float *gx, const float *y, const float *gy, int64_t outer,
                                    int64_t len, int64_t inner, int log_out) {
    if (outer * len * inner == 0) return 0;
    softmax_bwd_k<<<nbk_grid(outer * inner), NBK_THREADS, 0, s>>>(gx, y, gy, outer, len, inner, log_out);
    return nbk_status();
}

/* ---- batch means ---- */

/* out = scale * sum(v[0..n)), added in a fixed order by one block */
static __global__ void mean_k(float *out, const double *v, int64_t n, double scale) {
    double acc = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += NBK_THREADS) acc += v[i];
    acc = nbk_block_sum(acc);
    if (threadIdx.x == 0) *out = (float)(acc * scale);
}

/* ---- cross-entropy ---- */

static __global__ void label_check_k(const int64_t *labels, int64_t N, int64_t C, int64_t *bad) {
    int64_t first = 0;
    for (int64_t i = 0; i < N; i++)
        if (labels[i] < 0 || labels[i] >= C) {
            first = i + 1;
            break;
        }
    *bad = first;
}

static __global__ void ce_rows_k(double *row_loss, const float *x, const int64_t *labels, int64_t C, float smoothing) {
    const float *z = x + blockIdx.x * C;
    int64_t lab = labels[blockIdx.x];
    double lse = block_lse(z, C, 1, 1.0);
    double sum = 0.0;
    for (int64_t c = threadIdx.x; c < C; c += NBK_THREADS) sum += (double)z[c] - lse;
    sum = nbk_block_sum(sum);
    if (threadIdx.x == 0) {
        double eps = smoothing;
        row_loss[blockIdx.x] = lab >= 0 && lab < C ? -(1.0 - eps) * ((double)z[lab] - lse) - eps / (double)C * sum : 0.0;
    }
}

extern "C" int nbk_cross_entropy_forward(cudaStream_t s, float *loss, const float *z, const int64_t *labels, int64_t N,
                                         int64_t C, float smoothing, double *row_loss, int64_t *bad_label) {
    label_check_k<<<1, 1, 0, s>>>(labels, N, C, bad_label);
    if (N > 0) ce_rows_k<<<(unsigned)N, NBK_THREADS, 0, s>>>(row_loss, z, labels, C, smoothing);
    mean_k<<<1, NBK_THREADS, 0, s>>>(loss, row_loss, N, N ? 1.0 / (double)N : 0.0);
    return nbk_status();
}

static __global__ void ce_bwd_k(float *gz, const float *x, const int64_t *labels, const float *gloss, int64_t N,
                                int64_t C, float smoothing) {
    const float *z = x + blockIdx.x * C;
    int64_t lab = labels[blockIdx.x];
    double lse = block_lse(z, C, 1, 1.0), eps = smoothing, sc = (double)*gloss / (double)N;
    for (int64_t c = threadIdx.x; c < C; c += NBK_THREADS) {
        double q = eps / (double)C + (c == lab ? 1.0 - eps : 0.0);
        gz[blockIdx.x * C + c] = (float)(sc * (exp((double)z[c] - lse) - q));
    }
}

extern "C" int nbk_cross_entropy_backward(cudaStream_t s, float *gz, const float *z, const int64_t *labels,
                                          const float *gloss, int64_t N, int64_t C, float smoothing) {
    if (N == 0) return 0;
    ce_bwd_k<<<(unsigned)N, NBK_THREADS, 0, s>>>(gz, z, labels, gloss, N, C, smoothing);
    return nbk_status();
}

/* ---- distillation: T^2 * KL(softmax(t/T) || softmax(s/T)), batch mean ---- */

static __global__ void kl_rows_k(double *row_loss, const float *st, const float *te, int64_t C, double invT) {
    const float *sr = st + blockIdx.x * C, *tr = te + blockIdx.x * C;
    double lse_s = block_lse(sr, C, 1, invT), lse_t = block_lse(tr, C, 1, invT);
    double acc = 0.0;
    for (int64_t c = threadIdx.x; c < C; c += NBK_THREADS) {
        double lt = (double)tr[c] * invT - lse_t, ls = (double)sr[c] * invT - lse_s;
        acc += exp(lt) * (lt - ls);
    }
    acc = nbk_block_sum(acc);
    if (threadIdx.x == 0) row_loss[blockIdx.x] = acc;
}

extern "C" int nbk_kl_div_forward(cudaStream_t s, float *loss, const float *st, const float *te, int64_t N, int64_t C,
                                  float T, double *row_loss) {
    if (N > 0) kl_rows_k<<<(unsigned)N, NBK_THREADS, 0, s>>>(row_loss, st, te, C, 1.0 / (double)T);
    mean_k<<<1, NBK_THREADS, 0, s>>>(loss, row_loss, N, N ? (double)T * (double)T / (double)N : 0.0);
    return nbk_status();
}

static __global__ void kl_bwd_k(float *gs, const float *st, const float *te, const float *gloss, int64_t N, int64_t C,
                                double T) {
    const float *sr = st + blockIdx.x * C, *tr = te + blockIdx.x * C;
    double invT = 1.0 / T, lse_s = block_lse(sr, C, 1, invT), lse_t = block_lse(tr, C, 1, invT);
    double sc = (double)*gloss * T / (double)N;
    for (int64_t c = threadIdx.x; c < C; c += NBK_THREADS)
        gs[blockIdx.x * C + c] = (float)(sc * (exp((double)sr[c] * invT - lse_s) - exp((double)tr[c] * invT - lse_t)));
}

extern "C" int nbk_kl_div_backward(cudaStream_t s, float *gs, const float *st, const float *te, const float *gloss,
                                   int64_t N, int64_t C, float T) {
    if (N == 0) return 0;
    kl_bwd_k<<<(unsigned)N, NBK_THREADS, 0, s>>>(gs, st, te, gloss, N, C, (double)T);
    return nbk_status();
}

/* ---- regression losses: mean over all elements ---- */

static __device__ __forceinline__ double reg_term(double d, int mse, double beta) {
    if (mse) return d * d;
    double a = fabs(d);
    return a < beta ? 0.5 * d * d / beta : a - 0.5 * beta;
}

static __global__ void regression_partial_k(double *partial, const float *x, const float *t, int64_t n, int mse,
                                            double beta) {
    double acc = 0.0;
    NBK_LOOP(i, n) acc += reg_term((double)x[i] - (double)t[i], mse, beta);
    acc = nbk_block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

extern "C" int nbk_regression_forward(cudaStream_t s, float *loss, const float *x, const float *t, int64_t n, int mse,
                                      float beta, double *partial) {
    regression_partial_k<<<NBK_SUMSQ_BLOCKS, NBK_THREADS, 0, s>>>(partial, x, t, n, mse, (double)beta);
    mean_k<<<1, NBK_THREADS, 0, s>>>(loss, partial, NBK_SUMSQ_BLOCKS, n ? 1.0 / (double)n : 0.0);
    return nbk_status();
}

static __global__ void regression_bwd_k(float *g, const float *x, const float *t, const float *gloss, int64_t n, int mse,
                                        double beta, double sign) {
    double sc = sign * (double)*gloss / (double)n;
    NBK_LOOP(i, n) {
        double d = (double)x[i] - (double)t[i], gr;
        if (mse) gr = 2.0 * d;
        else gr = fabs(d) < beta ? d / beta : (d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0);
        g[i] = (float)(sc * gr);
    }
}

extern "C" int nbk_regression_backward(cudaStream_t s, float *g, const float *x, const float *t, const float *gloss,
                                       int64_t n, int mse, float beta, float sign) {
    if (n == 0) return 0;
    regression_bwd_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(g, x, t, gloss, n, mse, (double)beta, (double)sign);
    return nbk_status();
}
