/* Channel shuffles, channel-broadcast products and row broadcasts/sums (linear-layer biases) over plain
 * tensors. Sums run in a fixed order per output, in double. */
#include "backend/cuda/k_common.cuh"

/* forward: y[:, j*g + i] = x[:, i*(C/g) + j]; inverse undoes it */
static __global__ void shuffle_k(float *y, const float *x, int64_t n, int64_t C, int64_t HW, int64_t g, int inverse) {
    int64_t cpg = C / g;
    NBK_LOOP(e, n) {
        int64_t k = e % HW, co = (e / HW) % C, nn = e / (HW * C), ci;
        if (!inverse) ci = (co % g) * cpg + co / g;
        else ci = (co % cpg) * g + co / cpg;
        y[e] = x[(nn * C + ci) * HW + k];
    }
}

extern "C" int nbk_channel_shuffle(cudaStream_t s, float *y, const float *x, int64_t N, int64_t C, int64_t HW,
                                   int64_t groups, int inverse) {
    int64_t n = N * C * HW;
    if (n == 0) return 0;
    shuffle_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(y, x, n, C, HW, groups, inverse);
    return nbk_status();
}

static __global__ void mul_channel_k(float *y, const float *x, const float *sc, int64_t n, int64_t C, int64_t HW,
                                     int bcast) {
    NBK_LOOP(e, n) {
        int64_t row = e / HW; /* n*C + c */
        y[e] = x[e] * sc[bcast ? row % C : row];
    }
}

extern "C" int nbk_mul_channel(cudaStream_t s, float *y, const float *x, const float *sc, int64_t N, int64_t C,
                               int64_t HW, int broadcast) {
    int64_t n = N * C * HW;
    if (n == 0) return 0;
    mul_channel_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(y, x, sc, n, C, HW, broadcast);
    return nbk_status();
}

/* one warp per output: (sample, channel) rows, or a channel summed over the samples in order */
static __global__ void mul_channel_gs_k(float *gs, const float *x, const float *g, int64_t N, int64_t C, int64_t HW,
                                        int bcast) {
    int lane = threadIdx.x & 31;
    int64_t rows = bcast ? C : N * C;
    for (int64_t r = ((int64_t)blockIdx.x * NBK_THREADS + threadIdx.x) / 32; r < rows;
         r += (int64_t)gridDim.x * (NBK_THREADS / 32)) {
        double acc = 0.0;
        int64_t n0 = bcast ? 0 : r / C, n1 = bcast ? N : r / C + 1, c = bcast ? r : r % C;
        for (int64_t nn = n0; nn < n1; nn++) {
            const float *xr = x + (nn * C + c) * HW, *gr = g + (nn * C + c) * HW;
            for (int64_t k = lane; k < HW; k += 32) acc += (double)xr[k] * (double)gr[k];
        }
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
        if (lane == 0) gs[r] = (float)acc;
    }
}

extern "C" int nbk_mul_channel_grad_scale(cudaStream_t s, float *gs, const float *x, const float *g, int64_t N,
                                          int64_t C, int64_t HW, int broadcast) {
    int64_t rows = broadcast ? C : N * C;
    if (rows == 0) return 0;
    mul_channel_gs_k<<<nbk_grid(rows * 32), NBK_THREADS, 0, s>>>(gs, x, g, N, C, HW, broadcast);
    return nbk_status();
}

static __global__ void rows_set_k(float *y, const float *b, int64_t n, int64_t cols) {
    NBK_LOOP(e, n) y[e] = b[e % cols];
}

extern "C" int nbk_rows_set(cudaStream_t s, float *y, const float *b, int64_t rows, int64_t cols) {
    if (rows * cols == 0) return 0;
    rows_set_k<<<nbk_grid(rows * cols), NBK_THREADS, 0, s>>>(y, b, rows * cols, cols);
    return nbk_status();
}

static __global__ void rows_sum_k(float *out, const float *x, int64_t rows, int64_t cols) {
    NBK_LOOP(o, cols) {
        double acc = 0.0;
        for (int64_t i = 0; i < rows; i++) acc += x[i * cols + o];
        out[o] = (float)acc;
    }
}

extern "C" int nbk_rows_sum(cudaStream_t s, float *out, const float *x, int64_t rows, int64_t cols) {
    if (cols == 0) return 0;
    rows_sum_k<<<nbk_grid(cols), NBK_THREADS, 0, s>>>(out, x, rows, cols);
    return nbk_status();
}
