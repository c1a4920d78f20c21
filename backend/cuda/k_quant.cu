/* Fake quantization on the GPU (core/ops.h: nb_fake_quant), in the CPU backend's arithmetic to the bit: x / s
 * as x * (1 / s), per tensor round(x / s) + z, per channel round(x / s + z) (no fused multiply-add), rounding
 * half to even. The step size's and zero point's LSQ gradients are summed per group: fixed blocks of partial
 * sums in double, then one thread per group adds them in order, all on the device. */
#include "backend/cuda/k_common.cuh"

static __device__ float grid_zero(float z, int qmin, int qmax) { return fminf(fmaxf(nearbyintf(z), (float)qmin), (float)qmax); }

static __device__ float grid_index(float x, float inv, float z, int per_channel) {
    return per_channel ? nearbyintf(__fadd_rn(__fmul_rn(x, inv), z)) : __fadd_rn(nearbyintf(__fmul_rn(x, inv)), z);
}

static __global__ void fake_quant_k(float *y, const float *x, const float *scale, const float *zp, nbk_fake_quant g) {
    NBK_LOOP(i, g.n) {
        int64_t c = (i / g.inner) % g.groups;
        float s = scale[c], inv = 1.0f / s, z = grid_zero(zp[c], g.qmin, g.qmax);
        float q = fminf(fmaxf(grid_index(x[i], inv, z, g.per_channel), (float)g.qmin), (float)g.qmax);
        y[i] = __fmul_rn(q - z, s);
    }
}

extern "C" int nbk_fake_quant_forward(cudaStream_t s, float *y, const float *x, const float *scale, const float *zp,
                                      const nbk_fake_quant *g) {
    if (g->n == 0) return 0;
    fake_quant_k<<<nbk_grid(g->n), NBK_THREADS, 0, s>>>(y, x, scale, zp, *g);
    return nbk_status();
}

static __global__ void fake_quant_dx_k(float *dx, const float *x, const float *dy, const float *scale, const float *zp,
                                       nbk_fake_quant g) {
    NBK_LOOP(i, g.n) {
        int64_t c = (i / g.inner) % g.groups;
        float s = scale[c], inv = 1.0f / s, z = grid_zero(zp[c], g.qmin, g.qmax);
        float q = grid_index(x[i], inv, z, g.per_channel);
        dx[i] = q >= (float)g.qmin && q <= (float)g.qmax ? dy[i] : 0.0f;
    }
}

/* block b of group c: its share of the group's elements, partial[2 (c S + b)] the step size's sum, the next
 * the zero point's */
static __global__ void fake_quant_param_partial_k(double *partial, const float *x, const float *dy, const float *scale,
                                                  const float *zp, nbk_fake_quant g, int S) {
    int64_t c = blockIdx.x / S, b = blockIdx.x % S, count = g.n / g.groups;
    float s = scale[c], inv = 1.0f / s, z = grid_zero(zp[c], g.qmin, g.qmax);
    float small = (float)g.qmin - z, big = (float)g.qmax - z, gf = g.grad_factor;
    double ds = 0.0, dz = 0.0;
    for (int64_t j = b * NBK_THREADS + threadIdx.x; j < count; j += (int64_t)S * NBK_THREADS) {
        int64_t i = (j / g.inner) * g.groups * g.inner + c * g.inner + j % g.inner;
        float q = grid_index(x[i], inv, z, g.per_channel);
        if (q >= (float)g.qmin && q <= (float)g.qmax) {
            float xfq = __fmul_rn(q - z, s);
            ds += (double)__fmul_rn(__fmul_rn(__fmul_rn(dy[i], xfq - x[i]), inv), gf);
        } else {
            ds += (double)__fmul_rn(__fmul_rn(dy[i], q < (float)g.qmin ? small : big), gf);
            dz += (double)__fmul_rn(__fmul_rn(-dy[i], s), gf);
        }
    }
    ds = nbk_block_sum(ds);
    dz = nbk_block_sum(dz);
    if (threadIdx.x == 0) {
        partial[2 * blockIdx.x] = ds;
        partial[2 * blockIdx.x + 1] = dz;
    }
}

static __global__ void fake_quant_param_final_k(float *dscale, float *dzp, const double *partial, int64_t groups, int S) {
    NBK_LOOP(c, groups) {
        double ds = 0.0, dz = 0.0;
        for (int b = 0; b < S; b++) {
            ds += partial[2 * (c * S + b)];
            dz += partial[2 * (c * S + b) + 1];
        }
        if (dscale) dscale[c] = (float)ds;
        if (dzp) dzp[c] = (float)dz;
    }
}

extern "C" int nbk_fake_quant_blocks(const nbk_fake_quant *g) {
    int64_t per = (g->n / g->groups + NBK_THREADS - 1) / NBK_THREADS;
    return per < 1 ? 1 : per > 256 ? 256 : (int)per;
}

extern "C" int nbk_fake_quant_backward(cudaStream_t s, float *dx, float *dscale, float *dzp, const float *x,
                                       const float *dy, const float *scale, const float *zp, const nbk_fake_quant *g,
                                       double *partial) {
    if (dx && g->n) fake_quant_dx_k<<<nbk_grid(g->n), NBK_THREADS, 0, s>>>(dx, x, dy, scale, zp, *g);
    if (dscale || dzp) {
        int S = nbk_fake_quant_blocks(g);
        fake_quant_param_partial_k<<<(unsigned)(g->groups * S), NBK_THREADS, 0, s>>>(partial, x, dy, scale, zp, *g, S);
        fake_quant_param_final_k<<<nbk_grid(g->groups), NBK_THREADS, 0, s>>>(dscale, dzp, partial, g->groups, S);
    }
    return nbk_status();
}
