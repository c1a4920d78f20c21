/* Element-wise kernels: strided copies and fills, activations and their gradients, sums, dropout, the sum of
 * squares behind gradient clipping, and the SGD and Adam updates in torch.optim's order of operations. */
#include "backend/cuda/k_common.cuh"
#include "core/rng.h"

/* ---- copies and fills ---- */

template <typename T>
static __global__ void strided_copy_k(T *dst, const T *src, nbk_strides g, int64_t n) {
    NBK_LOOP(i, n) {
        int64_t rem = i, so = 0, d = 0;
        for (int k = g.ndim - 1; k >= 0; k--) {
            int64_t idx = rem % g.shape[k];
            rem /= g.shape[k];
            so += idx * g.src_stride[k];
            d += idx * g.dst_stride[k];
        }
        dst[d] = src[so];
    }
}

extern "C" int nbk_strided_copy(cudaStream_t s, void *dst, const void *src, int elem_size, const nbk_strides *g) {
    int64_t n = 1;
    for (int k = 0; k < g->ndim; k++) n *= g->shape[k];
    if (n == 0) return 0;
    unsigned grid = nbk_grid(n);
    switch (elem_size) {
    case 1: strided_copy_k<uint8_t><<<grid, NBK_THREADS, 0, s>>>((uint8_t *)dst, (const uint8_t *)src, *g, n); break;
    case 2: strided_copy_k<uint16_t><<<grid, NBK_THREADS, 0, s>>>((uint16_t *)dst, (const uint16_t *)src, *g, n); break;
    case 4: strided_copy_k<uint32_t><<<grid, NBK_THREADS, 0, s>>>((uint32_t *)dst, (const uint32_t *)src, *g, n); break;
    case 8: strided_copy_k<uint64_t><<<grid, NBK_THREADS, 0, s>>>((uint64_t *)dst, (const uint64_t *)src, *g, n); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return nbk_status();
}

template <typename T>
static __global__ void fill_k(T *p, int64_t n, T v) {
    NBK_LOOP(i, n) p[i] = v;
}

extern "C" int nbk_fill(cudaStream_t s, void *p, int elem_size, int64_t n, uint64_t pattern) {
    if (n == 0) return 0;
    unsigned grid = nbk_grid(n);
    switch (elem_size) {
    case 1: fill_k<uint8_t><<<grid, NBK_THREADS, 0, s>>>((uint8_t *)p, n, (uint8_t)pattern); break;
    case 2: fill_k<uint16_t><<<grid, NBK_THREADS, 0, s>>>((uint16_t *)p, n, (uint16_t)pattern); break;
    case 4: fill_k<uint32_t><<<grid, NBK_THREADS, 0, s>>>((uint32_t *)p, n, (uint32_t)pattern); break;
    case 8: fill_k<uint64_t><<<grid, NBK_THREADS, 0, s>>>((uint64_t *)p, n, (uint64_t)pattern); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return nbk_status();
}

static __global__ void add_i64_k(int64_t *p, int64_t n, int64_t v) {
    NBK_LOOP(i, n) p[i] += v;
}

extern "C" int nbk_add_i64(cudaStream_t s, int64_t *p, int64_t n, int64_t v) {
    if (n == 0) return 0;
    add_i64_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(p, n, v);
    return nbk_status();
}

/* ---- activations ---- */

/* NaN passes through every activation (x < 0 is false for NaN), so a diverging run still shows NaN loss */
static __device__ __forceinline__ float act(int kind, float x, float alpha) {
    switch (kind) {
    case NBK_RELU: return x < 0.0f ? 0.0f : x;
    case NBK_RELU6: return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
    case NBK_LEAKY: return x > 0.0f ? x : alpha * x;
    case NBK_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case NBK_SILU: return x / (1.0f + expf(-x));
    default: { /* hardswish */
        float r = x + 3.0f;
        r = r < 0.0f ? 0.0f : (r > 6.0f ? 6.0f : r);
        return x * r / 6.0f;
    }
    }
}

/* torch's derivatives: zero at the kinks of relu and relu6, x/3 + 1/2 on [-3, 3] for hardswish; given the output
 * for sigmoid, the input for the others */
static __device__ __forceinline__ float act_grad(int kind, float xy, float g, float alpha) {
    switch (kind) {
    case NBK_RELU: return xy > 0.0f ? g : 0.0f;
    case NBK_RELU6: return xy > 0.0f && xy < 6.0f ? g : 0.0f;
    case NBK_LEAKY: return xy > 0.0f ? g : alpha * g;
    case NBK_SIGMOID: return g * xy * (1.0f - xy);
    case NBK_SILU: { /* xy is x: s (1 + x (1 - s)) */
        float s = 1.0f / (1.0f + expf(-xy));
        return g * s * (1.0f + xy * (1.0f - s));
    }
    default: return xy < -3.0f ? 0.0f : (xy <= 3.0f ? g * (xy / 3.0f + 0.5f) : g);
    }
}

static __global__ void act_fwd_k(int kind, float *y, const float *x, float alpha, int64_t n) {
    NBK_LOOP(i, n) y[i] = act(kind, x[i], alpha);
}

static __global__ void act_bwd_k(int kind, float *gx, const float *xy, const float *gy, float alpha, int64_t n) {
    NBK_LOOP(i, n) gx[i] = act_grad(kind, xy[i], gy[i], alpha);
}

extern "C" int nbk_act_forward(cudaStream_t s, int kind, float *y, const float *x, float alpha, int64_t n) {
    if (n == 0) return 0;
    act_fwd_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(kind, y, x, alpha, n);
    return nbk_status();
}

extern "C" int nbk_act_backward(cudaStream_t s, int kind, float *gx, const float *xy, const float *gy, float alpha,
                                int64_t n) {
    if (n == 0) return 0;
    act_bwd_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(kind, gx, xy, gy, alpha, n);
    return nbk_status();
}

/* ---- sums ---- */

static __global__ void add_k(float *y, float a, const float *x, float b, const float *z, int relu, int64_t n) {
    if (relu) {
        NBK_LOOP(i, n) {
            float v = a * x[i] + b * z[i];
            y[i] = v < 0.0f ? 0.0f : v;
        }
    } else {
        NBK_LOOP(i, n) y[i] = a * x[i] + b * z[i];
    }
}

/* the four-wide form of a plain residual sum: the common case in every network */
static __global__ void add4_k(float4 *y, const float4 *x, const float4 *z, int relu, int64_t n4) {
    NBK_LOOP(i, n4) {
        float4 a = x[i], b = z[i], v = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
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

extern "C" int nbk_add(cudaStream_t s, float *y, float a, const float *x, float b, const float *z, int relu, int64_t n) {
    if (n == 0) return 0;
    if (a == 1.0f && b == 1.0f && n % 4 == 0 && aligned16(y) && aligned16(x) && aligned16(z)) {
        add4_k<<<nbk_grid(n / 4), NBK_THREADS, 0, s>>>((float4 *)y, (const float4 *)x, (const float4 *)z, relu, n / 4);
    } else {
        add_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(y, a, x, b, z, relu, n);
    }
    return nbk_status();
}

static __global__ void axpby_k(float *y, float a, const float *x, float b, int64_t n) {
    NBK_LOOP(i, n) y[i] = a * x[i] + b * y[i];
}

extern "C" int nbk_axpby(cudaStream_t s, float *y, float a, const float *x, float b, int64_t n) {
    if (n == 0) return 0;
    axpby_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(y, a, x, b, n);
    return nbk_status();
}

static __global__ void mul_k(float *y, const float *x, int64_t n) {
    NBK_LOOP(i, n) y[i] *= x[i];
}

extern "C" int nbk_mul(cudaStream_t s, float *y, const float *x, int64_t n) {
    if (n == 0) return 0;
    mul_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(y, x, n);
    return nbk_status();
}

static __global__ void scale_k(float *y, float a, const float *x, int64_t n) {
    NBK_LOOP(i, n) y[i] = a * x[i];
}

extern "C" int nbk_scale(cudaStream_t s, float *y, float a, const float *x, int64_t n) {
    if (n == 0) return 0;
    scale_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(y, a, x, n);
    return nbk_status();
}

static __global__ void relu_mask_scale_k(float *gx, const float *y, float a, const float *g, int64_t n) {
    NBK_LOOP(i, n) gx[i] = y[i] > 0.0f ? a * g[i] : 0.0f;
}

extern "C" int nbk_relu_mask_scale(cudaStream_t s, float *gx, const float *y, float a, const float *g, int64_t n) {
    if (n == 0) return 0;
    relu_mask_scale_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(gx, y, a, g, n);
    return nbk_status();
}

/* the mask of element i is Philox word (seed, stream, offset + i): the same as on the CPU */
static __global__ void dropout_k(float *y, const float *x, int64_t n, float p, float sc, uint64_t seed, uint64_t stream,
                                 uint64_t offset) {
    NBK_LOOP(i, n) {
        bool keep = nb_u32_to_unit(nb_philox_u32(seed, stream, offset + (uint64_t)i)) >= p;
        y[i] = keep ? x[i] * sc : 0.0f;
    }
}

extern "C" int nbk_dropout(cudaStream_t s, float *y, const float *x, int64_t n, float p, uint64_t seed,
                           uint64_t stream, uint64_t offset) {
    if (n == 0) return 0;
    dropout_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(y, x, n, p, 1.0f / (1.0f - p), seed, stream, offset);
    return nbk_status();
}

/* ---- sum of squares: a fixed grid, each block's share summed in order ---- */

static __global__ void sum_squares_k(const float *x, int64_t n, double *partial) {
    double acc = 0.0;
    NBK_LOOP(i, n) acc += (double)x[i] * (double)x[i];
    acc = nbk_block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

extern "C" int nbk_sum_squares(cudaStream_t s, const float *x, int64_t n, double *partial) {
    sum_squares_k<<<NBK_SUMSQ_BLOCKS, NBK_THREADS, 0, s>>>(x, n, partial);
    return nbk_status();
}

/* ---- compression: sums of magnitudes, sign projections, importance accumulation ---- */

static __global__ void sum_abs_k(const float *x, int64_t n, double threshold, double *partial) {
    double acc = 0.0, cnt = 0.0;
    NBK_LOOP(i, n) {
        double a = fabs((double)x[i]);
        if (a > threshold) {
            acc += a;
            cnt += 1.0;
        }
    }
    acc = nbk_block_sum(acc);
    cnt = nbk_block_sum(cnt);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = acc;
        partial[NBK_SUMSQ_BLOCKS + blockIdx.x] = cnt;
    }
}

extern "C" int nbk_sum_abs(cudaStream_t s, const float *x, int64_t n, double threshold, double *partial) {
    sum_abs_k<<<NBK_SUMSQ_BLOCKS, NBK_THREADS, 0, s>>>(x, n, threshold, partial);
    return nbk_status();
}

static __global__ void sign_codes_k(float *v, int8_t *codes, int64_t n, double threshold, float alpha) {
    NBK_LOOP(i, n) {
        int8_t c = (int8_t)(fabs((double)v[i]) > threshold ? (v[i] < 0 ? -1 : 1) : 0);
        codes[i] = c;
        v[i] = alpha * (float)c;
    }
}

extern "C" int nbk_sign_codes(cudaStream_t s, float *v, int8_t *codes, int64_t n, double threshold, float alpha) {
    sign_codes_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(v, codes, n, threshold, alpha);
    return nbk_status();
}

static __global__ void abs_mul_add_k(float *acc, const float *a, const float *b, int64_t n) {
    NBK_LOOP(i, n) acc[i] += fabsf(a[i] * b[i]);
}

extern "C" int nbk_abs_mul_add(cudaStream_t s, float *acc, const float *a, const float *b, int64_t n) {
    abs_mul_add_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(acc, a, b, n);
    return nbk_status();
}

/* ---- quantization: a tensor's range, batch-norm fold factors ---- */

static __global__ void range_k(const float *x, int64_t n, double *partial) {
    double neg_lo = -INFINITY, hi = -INFINITY;
    NBK_LOOP(i, n) {
        neg_lo = fmax(neg_lo, -(double)x[i]);
        hi = fmax(hi, (double)x[i]);
    }
    neg_lo = nbk_block_max(neg_lo);
    hi = nbk_block_max(hi);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = neg_lo;
        partial[NBK_SUMSQ_BLOCKS + blockIdx.x] = hi;
    }
}

extern "C" int nbk_range(cudaStream_t s, const float *x, int64_t n, double *partial) {
    range_k<<<NBK_SUMSQ_BLOCKS, NBK_THREADS, 0, s>>>(x, n, partial);
    return nbk_status();
}

/* IEEE division and square root (no fast math here), so the factors are the CPU's to the bit */
static __global__ void bn_fold_k(float *sf, float *inv, const float *gamma, const float *var, int64_t n, float eps) {
    NBK_LOOP(c, n) {
        float s = __fdiv_rn(gamma[c], __fsqrt_rn(__fadd_rn(var[c], eps)));
        sf[c] = s;
        inv[c] = s != 0.0f ? __fdiv_rn(1.0f, s) : 0.0f;
    }
}

extern "C" int nbk_bn_fold(cudaStream_t s, float *sf, float *inv, const float *gamma, const float *var, int64_t n,
                           float eps) {
    bn_fold_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(sf, inv, gamma, var, n, eps);
    return nbk_status();
}

/* ---- optimizers ---- */

static __global__ void sgd_k(float *p, const float *g, float *buf, int64_t n, float lr, float mom, float damp, float wd,
                             int nesterov, int first) {
    NBK_LOOP(i, n) {
        float d = g[i];
        if (wd != 0.0f) d = d + wd * p[i];
        if (buf) {
            float b = first ? d : buf[i] * mom + (1.0f - damp) * d;
            buf[i] = b;
            d = nesterov ? d + mom * b : b;
        }
        p[i] = p[i] - lr * d;
    }
}

extern "C" int nbk_sgd(cudaStream_t s, float *p, const float *g, float *buf, int64_t n, float lr, float momentum,
                       float dampening, float wd, int nesterov, int first) {
    if (n == 0) return 0;
    sgd_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(p, g, buf, n, lr, momentum, dampening, wd, nesterov, first);
    return nbk_status();
}

static __global__ void adam_k(float *p, const float *g, float *m, float *v, int64_t n, float lr, float b1, float b2,
                              float eps, float wd, int decoupled, float step_size, float bc2_sqrt) {
    NBK_LOOP(i, n) {
        float gi = g[i], pi = p[i];
        if (decoupled) pi = pi * (1.0f - lr * wd);
        else if (wd != 0.0f) gi = gi + wd * pi;
        float mi = m[i] * b1 + (1.0f - b1) * gi;
        float vi = v[i] * b2 + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

extern "C" int nbk_adam(cudaStream_t s, float *p, const float *g, float *m, float *v, int64_t n, float lr, float b1,
                        float b2, float eps, float wd, int decoupled, float bc1, float bc2_sqrt) {
    if (n == 0) return 0;
    adam_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(p, g, m, v, n, lr, b1, b2, eps, wd, decoupled, lr / bc1, bc2_sqrt);
    return nbk_status();
}
