/* Max, average and global-average pooling over NCHW. Max pooling records the arg-max of each window (an index
 * into the input plane); both backward passes gather, one thread per input value, from the windows that
 * cover it in a fixed order, so no atomics and no run-to-run differences. */
#include "backend/cuda/k_common.cuh"

/* ---- max ---- */

static __global__ void maxpool_fwd_k(nbk_pool p, float *y, int32_t *argmax, const float *x, int64_t n) {
    NBK_LOOP(i, n) {
        int64_t ow = i % p.OW, oh = (i / p.OW) % p.OH, nc = i / (p.OW * p.OH);
        const float *plane = x + nc * p.H * p.W;
        int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
        float best = -INFINITY;
        int32_t at = -1;
        for (int a = 0; a < p.kh; a++) {
            int64_t h = h0 + (int64_t)a * p.dh;
            if (h < 0 || h >= p.H) continue;
            for (int b = 0; b < p.kw; b++) {
                int64_t w = w0 + (int64_t)b * p.dw;
                if (w < 0 || w >= p.W) continue;
                float v = plane[h * p.W + w];
                /* the first maximum wins; NaN propagates, as in PyTorch */
                if (at < 0 || v > best || isnan(v)) {
                    best = v;
                    at = (int32_t)(h * p.W + w);
                    if (isnan(v)) break;
                }
            }
            if (isnan(best)) break;
        }
        y[i] = best;
        if (argmax) argmax[i] = at;
    }
}

extern "C" int nbk_maxpool_forward(cudaStream_t s, const nbk_pool *p, float *y, int32_t *argmax, const float *x) {
    int64_t n = p->N * p->C * p->OH * p->OW;
    if (n == 0) return 0;
    maxpool_fwd_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(*p, y, argmax, x, n);
    return nbk_status();
}

/* the output rows (or columns) whose window tap `a` lands on input position h */
static __device__ __forceinline__ int64_t out_of_tap(int64_t h, int a, int stride, int pad, int dil, int64_t OH) {
    int64_t t = h + pad - (int64_t)a * dil;
    if (t < 0 || t % stride) return -1;
    t /= stride;
    return t < OH ? t : -1;
}

static __global__ void maxpool_bwd_k(nbk_pool p, float *gx, const float *gy, const int32_t *argmax, int64_t n) {
    NBK_LOOP(i, n) {
        int64_t w = i % p.W, h = (i / p.W) % p.H, nc = i / (p.W * p.H);
        int32_t self = (int32_t)(h * p.W + w);
        const float *g = gy + nc * p.OH * p.OW;
        const int32_t *am = argmax + nc * p.OH * p.OW;
        float acc = 0.0f;
        for (int a = 0; a < p.kh; a++) {
            int64_t oh = out_of_tap(h, a, p.sh, p.ph, p.dh, p.OH);
            if (oh < 0) continue;
            for (int b = 0; b < p.kw; b++) {
                int64_t ow = out_of_tap(w, b, p.sw, p.pw, p.dw, p.OW);
                if (ow < 0) continue;
                if (am[oh * p.OW + ow] == self) acc += g[oh * p.OW + ow];
            }
        }
        gx[i] = acc;
    }
}

extern "C" int nbk_maxpool_backward(cudaStream_t s, const nbk_pool *p, float *gx, const float *gy,
                                    const int32_t *argmax) {
    int64_t n = p->N * p->C * p->H * p->W;
    if (n == 0) return 0;
    maxpool_bwd_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(*p, gx, gy, argmax, n);
    return nbk_status();
}

/* ---- average ---- */

/* PyTorch's divisor: the taps inside the padded input (count_include_pad), or inside the input itself */
static __device__ __forceinline__ float avg_divisor(const nbk_pool &p, int64_t oh, int64_t ow) {
    int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
    int ch = 0, cw = 0;
    for (int a = 0; a < p.kh; a++) {
        int64_t h = h0 + (int64_t)a * p.dh;
        ch += p.exclude_pad ? (h >= 0 && h < p.H) : (h < p.H + p.ph);
    }
    for (int b = 0; b < p.kw; b++) {
        int64_t w = w0 + (int64_t)b * p.dw;
        cw += p.exclude_pad ? (w >= 0 && w < p.W) : (w < p.W + p.pw);
    }
    return (float)(ch * cw);
}

static __global__ void avgpool_fwd_k(nbk_pool p, float *y, const float *x, int64_t n) {
    NBK_LOOP(i, n) {
        int64_t ow = i % p.OW, oh = (i / p.OW) % p.OH, nc = i / (p.OW * p.OH);
        const float *plane = x + nc * p.H * p.W;
        int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
        float acc = 0.0f;
        for (int a = 0; a < p.kh; a++) {
            int64_t h = h0 + (int64_t)a * p.dh;
            if (h < 0 || h >= p.H) continue;
            for (int b = 0; b < p.kw; b++) {
                int64_t w = w0 + (int64_t)b * p.dw;
                if (w >= 0 && w < p.W) acc += plane[h * p.W + w];
            }
        }
        float d = avg_divisor(p, oh, ow);
        y[i] = d > 0.0f ? acc / d : 0.0f;
    }
}

extern "C" int nbk_avgpool_forward(cudaStream_t s, const nbk_pool *p, float *y, const float *x) {
    int64_t n = p->N * p->C * p->OH * p->OW;
    if (n == 0) return 0;
    avgpool_fwd_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(*p, y, x, n);
    return nbk_status();
}

static __global__ void avgpool_bwd_k(nbk_pool p, float *gx, const float *gy, int64_t n) {
    NBK_LOOP(i, n) {
        int64_t w = i % p.W, h = (i / p.W) % p.H, nc = i / (p.W * p.H);
        const float *g = gy + nc * p.OH * p.OW;
        float acc = 0.0f;
        for (int a = 0; a < p.kh; a++) {
            int64_t oh = out_of_tap(h, a, p.sh, p.ph, p.dh, p.OH);
            if (oh < 0) continue;
            for (int b = 0; b < p.kw; b++) {
                int64_t ow = out_of_tap(w, b, p.sw, p.pw, p.dw, p.OW);
                if (ow < 0) continue;
                float d = avg_divisor(p, oh, ow);
                if (d > 0.0f) acc += g[oh * p.OW + ow] / d;
            }
        }
        gx[i] = acc;
    }
}

extern "C" int nbk_avgpool_backward(cudaStream_t s, const nbk_pool *p, float *gx, const float *gy) {
    int64_t n = p->N * p->C * p->H * p->W;
    if (n == 0) return 0;
    avgpool_bwd_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(*p, gx, gy, n);
    return nbk_status();
}

/* ---- global average: one warp per (sample, channel) plane ---- */

static __global__ void global_avg_fwd_k(float *y, const float *x, int64_t rows, int64_t HW) {
    int lane = threadIdx.x & 31;
    for (int64_t r = ((int64_t)blockIdx.x * NBK_THREADS + threadIdx.x) / 32; r < rows;
         r += (int64_t)gridDim.x * (NBK_THREADS / 32)) {
        const float *p = x + r * HW;
        double acc = 0.0;
        for (int64_t k = lane; k < HW; k += 32) acc += p[k];
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
        if (lane == 0) y[r] = (float)(acc / (double)HW);
    }
}

extern "C" int nbk_global_avg_forward(cudaStream_t s, float *y, const float *x, int64_t rows, int64_t HW) {
    if (rows == 0) return 0;
    global_avg_fwd_k<<<nbk_grid(rows * 32), NBK_THREADS, 0, s>>>(y, x, rows, HW);
    return nbk_status();
}

static __global__ void global_avg_bwd_k(float *gx, const float *gy, int64_t n, int64_t HW) {
    float inv = 1.0f / (float)HW;
    NBK_LOOP(i, n) gx[i] = gy[i / HW] * inv;
}

extern "C" int nbk_global_avg_backward(cudaStream_t s, float *gx, const float *gy, int64_t rows, int64_t HW) {
    if (rows * HW == 0) return 0;
    global_avg_bwd_k<<<nbk_grid(rows * HW), NBK_THREADS, 0, s>>>(gx, gy, rows * HW, HW);
    return nbk_status();
}
