/* Batch normalisation over NCHW: per-channel statistics accumulated in double (as the CPU backend and PyTorch's
 * CPU kernels do), normalisation with an optional fused ReLU, and the backward pass. Each channel's N*HW
 * values are cut into S slices by shape alone; a block sums one slice, and a second kernel adds the slices in
 * order, so the result is the same on every run. */
#include "backend/cuda/k_common.cuh"

extern "C" int nbk_bn_splits(int64_t N, int64_t C, int64_t HW) {
    (void)C;
    int64_t M = N * HW, S = M / 4096;
    if (S < 1) S = 1;
    if (S > 256) S = 256;
    return (int)S;
}

/* Walks a channel's values j in [lo, hi) of the virtual N*HW sequence, thread by thread, without a division
 * per element: a step of NBK_THREADS is q whole planes and r values. */
struct chan_walk {
    int64_t n, k, q, r, HW;
    __device__ chan_walk(int64_t j, int64_t HW_) : HW(HW_) {
        n = j / HW;
        k = j - n * HW;
        q = NBK_THREADS / HW;
        r = NBK_THREADS - q * HW;
    }
    __device__ void step() {
        n += q;
        k += r;
        if (k >= HW) {
            k -= HW;
            n++;
        }
    }
};

static __global__ void bn_stats_partial_k(const float *x, int64_t N, int64_t C, int64_t HW, int S, double *partial) {
    int64_t c = blockIdx.y, M = N * HW, chunk = (M + S - 1) / S;
    int64_t lo = blockIdx.x * chunk, hi = lo + chunk < M ? lo + chunk : M;
    double s = 0.0, q = 0.0;
    if (lo + threadIdx.x < hi) {
        chan_walk w(lo + threadIdx.x, HW);
        for (int64_t j = lo + threadIdx.x; j < hi; j += NBK_THREADS, w.step()) {
            double v = x[(w.n * C + c) * HW + w.k];
            s += v;
            q += v * v;
        }
    }
    s = nbk_block_sum(s);
    q = nbk_block_sum(q);
    if (threadIdx.x == 0) {
        partial[(c * S + blockIdx.x) * 2] = s;
        partial[(c * S + blockIdx.x) * 2 + 1] = q;
    }
}

extern "C" int nbk_bn_stats_partial(cudaStream_t s, const float *x, int64_t N, int64_t C, int64_t HW, int S,
                                    double *partial) {
    if (C == 0) return 0;
    dim3 grid((unsigned)S, (unsigned)C);
    bn_stats_partial_k<<<grid, NBK_THREADS, 0, s>>>(x, N, C, HW, S, partial);
    return nbk_status();
}

static __global__ void bn_stats_finalize_k(const double *partial, int64_t C, int S, int64_t M, float *mean, float *var,
                                           float *rmean, float *rvar, float momentum) {
    NBK_LOOP(c, C) {
        double s = 0.0, q = 0.0;
        for (int k = 0; k < S; k++) {
            s += partial[(c * S + k) * 2];
            q += partial[(c * S + k) * 2 + 1];
        }
        double m = s / (double)M, v = q / (double)M - m * m;
        float bm = (float)m, bv = (float)(v > 0.0 ? v : 0.0);
        mean[c] = bm;
        var[c] = bv;
        if (rmean) {
            /* PyTorch's rule, in float as the CPU backend: momentum weighs the new value, the variance unbiased */
            float unbias = (float)((double)M / ((double)M - 1.0));
            rmean[c] = (1.0f - momentum) * rmean[c] + momentum * bm;
            rvar[c] = (1.0f - momentum) * rvar[c] + momentum * bv * unbias;
        }
    }
}

extern "C" int nbk_bn_stats_finalize(cudaStream_t s, const double *partial, int64_t C, int S, int64_t M, float *mean,
                                     float *var, float *running_mean, float *running_var, float momentum) {
    if (C == 0) return 0;
    bn_stats_finalize_k<<<nbk_grid(C), NBK_THREADS, 0, s>>>(partial, C, S, M, mean, var, running_mean, running_var,
                                                            momentum);
    return nbk_status();
}

/* ---- normalisation: one thread per value (four per thread when planes hold multiples of four) ---- */

template <typename I>
static __global__ void bn_apply_k(float *y, const float *x, const float *mean, const float *var, const float *gamma,
                                  const float *beta, float eps, int relu, I n, I C, I HW) {
    for (I i = (I)blockIdx.x * NBK_THREADS + threadIdx.x; i < n; i += (I)gridDim.x * NBK_THREADS) {
        I c = (i / HW) % C;
        float inv = 1.0f / sqrtf(var[c] + eps);
        float sc = gamma ? gamma[c] * inv : inv, sh = (beta ? beta[c] : 0.0f) - mean[c] * sc;
        float v = x[i] * sc + sh;
        y[i] = relu && v < 0.0f ? 0.0f : v;
    }
}

template <typename I>
static __global__ void bn_apply4_k(float4 *y, const float4 *x, const float *mean, const float *var, const float *gamma,
                                   const float *beta, float eps, int relu, I n4, I C, I HW) {
    for (I i = (I)blockIdx.x * NBK_THREADS + threadIdx.x; i < n4; i += (I)gridDim.x * NBK_THREADS) {
        I c = (i * 4 / HW) % C;
        float inv = 1.0f / sqrtf(var[c] + eps);
        float sc = gamma ? gamma[c] * inv : inv, sh = (beta ? beta[c] : 0.0f) - mean[c] * sc;
        float4 v = x[i];
        v.x = v.x * sc + sh;
        v.y = v.y * sc + sh;
        v.z = v.z * sc + sh;
        v.w = v.w * sc + sh;
        if (relu) {
            v.x = v.x < 0.0f ? 0.0f : v.x;
            v.y = v.y < 0.0f ? 0.0f : v.y;
            v.z = v.z < 0.0f ? 0.0f : v.z;
            v.w = v.w < 0.0f ? 0.0f : v.w;
        }
        y[i] = v;
    }
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" int nbk_bn_apply(cudaStream_t s, float *y, const float *x, const float *mean, const float *var,
                            const float *gamma, const float *beta, float eps, int relu, int64_t N, int64_t C,
                            int64_t HW) {
    int64_t n = N * C * HW;
    if (n == 0) return 0;
    bool v4 = HW % 4 == 0 && aligned16(x) && aligned16(y);
    if (n < INT32_MAX) {
        if (v4)
            bn_apply4_k<uint32_t><<<nbk_grid(n / 4), NBK_THREADS, 0, s>>>(
                (float4 *)y, (const float4 *)x, mean, var, gamma, beta, eps, relu, (uint32_t)(n / 4), (uint32_t)C, (uint32_t)HW);
        else
            bn_apply_k<uint32_t><<<nbk_grid(n), NBK_THREADS, 0, s>>>(y, x, mean, var, gamma, beta, eps, relu,
                                                                     (uint32_t)n, (uint32_t)C, (uint32_t)HW);
    } else {
        bn_apply_k<int64_t><<<nbk_grid(n), NBK_THREADS, 0, s>>>(y, x, mean, var, gamma, beta, eps, relu, n, C, HW);
    }
    return nbk_status();
}

/* ---- backward ---- */

static __global__ void bn_bwd_partial_k(const float *gy, const float *x, const float *y, const float *mean, int64_t N,
                                        int64_t C, int64_t HW, int S, double *partial) {
    int64_t c = blockIdx.y, M = N * HW, chunk = (M + S - 1) / S;
    int64_t lo = blockIdx.x * chunk, hi = lo + chunk < M ? lo + chunk : M;
    float m = mean[c];
    double sg = 0.0, sgx = 0.0;
    if (lo + threadIdx.x < hi) {
        chan_walk w(lo + threadIdx.x, HW);
        for (int64_t j = lo + threadIdx.x; j < hi; j += NBK_THREADS, w.step()) {
            int64_t i = (w.n * C + c) * HW + w.k;
            float g = gy[i];
            if (y && !(y[i] > 0.0f)) g = 0.0f;
            sg += g;
            sgx += (double)g * (double)(x[i] - m);
        }
    }
    sg = nbk_block_sum(sg);
    sgx = nbk_block_sum(sgx);
    if (threadIdx.x == 0) {
        partial[(c * S + blockIdx.x) * 2] = sg;
        partial[(c * S + blockIdx.x) * 2 + 1] = sgx;
    }
}

extern "C" int nbk_bn_bwd_partial(cudaStream_t s, const float *gy, const float *x, const float *y, const float *mean,
                                  int64_t N, int64_t C, int64_t HW, int S, double *partial) {
    if (C == 0) return 0;
    dim3 grid((unsigned)S, (unsigned)C);
    bn_bwd_partial_k<<<grid, NBK_THREADS, 0, s>>>(gy, x, y, mean, N, C, HW, S, partial);
    return nbk_status();
}

static __global__ void bn_bwd_finalize_k(const double *partial, int64_t C, int S, int64_t M, const float *var, float eps,
                                         float *dgamma, float *dbeta, float *k1, float *k2) {
    NBK_LOOP(c, C) {
        double sg = 0.0, sgx = 0.0;
        for (int k = 0; k < S; k++) {
            sg += partial[(c * S + k) * 2];
            sgx += partial[(c * S + k) * 2 + 1];
        }
        double inv = 1.0 / sqrt((double)var[c] + (double)eps);
        if (dbeta) dbeta[c] = (float)sg;
        if (dgamma) dgamma[c] = (float)(sgx * inv);
        if (k1) k1[c] = (float)(sg / (double)M);
        if (k2) k2[c] = (float)(sgx / (double)M * inv * inv);
    }
}

extern "C" int nbk_bn_bwd_finalize(cudaStream_t s, const double *partial, int64_t C, int S, int64_t M, const float *var,
                                   float eps, float *dgamma, float *dbeta, float *k1, float *k2) {
    if (C == 0) return 0;
    bn_bwd_finalize_k<<<nbk_grid(C), NBK_THREADS, 0, s>>>(partial, C, S, M, var, eps, dgamma, dbeta, k1, k2);
    return nbk_status();
}

template <typename I>
static __global__ void bn_bwd_apply_k(float *gx, const float *gy, const float *x, const float *y, const float *mean,
                                      const float *var, const float *gamma, const float *k1, const float *k2, float eps,
                                      int training, I n, I C, I HW) {
    for (I i = (I)blockIdx.x * NBK_THREADS + threadIdx.x; i < n; i += (I)gridDim.x * NBK_THREADS) {
        I c = (i / HW) % C;
        float inv = 1.0f / sqrtf(var[c] + eps), sc = gamma ? gamma[c] * inv : inv;
        float g = gy[i];
        if (y && !(y[i] > 0.0f)) g = 0.0f;
        gx[i] = training ? sc * (g - k1[c] - (x[i] - mean[c]) * k2[c]) : sc * g;
    }
}

extern "C" int nbk_bn_bwd_apply(cudaStream_t s, float *gx, const float *gy, const float *x, const float *y,
                                const float *mean, const float *var, const float *gamma, const float *k1,
                                const float *k2, float eps, int training, int64_t N, int64_t C, int64_t HW) {
    int64_t n = N * C * HW;
    if (n == 0) return 0;
    if (n < INT32_MAX)
        bn_bwd_apply_k<uint32_t><<<nbk_grid(n), NBK_THREADS, 0, s>>>(gx, gy, x, y, mean, var, gamma, k1, k2, eps, training,
                                                                     (uint32_t)n, (uint32_t)C, (uint32_t)HW);
    else
        bn_bwd_apply_k<int64_t><<<nbk_grid(n), NBK_THREADS, 0, s>>>(gx, gy, x, y, mean, var, gamma, k1, k2, eps, training,
                                                                    n, C, HW);
    return nbk_status();
}

/* ---- per-channel sums (convolution bias gradients) ---- */

static __global__ void channel_sum_finalize_k(const double *partial, int64_t C, int S, float *out) {
    NBK_LOOP(c, C) {
        double s = 0.0;
        for (int k = 0; k < S; k++) s += partial[(c * S + k) * 2];
        out[c] = (float)s;
    }
}

extern "C" int nbk_channel_sum(cudaStream_t s, const float *x, int64_t N, int64_t C, int64_t HW, double *partial,
                               float *out) {
    if (C == 0) return 0;
    int S = nbk_bn_splits(N, C, HW);
    int rc = nbk_bn_stats_partial(s, x, N, C, HW, S, partial);
    if (rc) return rc;
    channel_sum_finalize_k<<<nbk_grid(C), NBK_THREADS, 0, s>>>(partial, C, S, out);
    return nbk_status();
}
