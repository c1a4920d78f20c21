/* What the kernel files share: launch geometry, grid-stride loops, block reductions in double. Every kernel
 * runs with NBK_THREADS threads per block; reductions depend on that to be reproducible. */
#ifndef NB_K_COMMON_CUH
#define NB_K_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "backend/cuda/kernels.h"

#define NBK_THREADS 256
#define NBK_MAX_BLOCKS 8192

static inline unsigned nbk_grid(int64_t n) {
    int64_t b = (n + NBK_THREADS - 1) / NBK_THREADS;
    if (b < 1) b = 1;
    if (b > NBK_MAX_BLOCKS) b = NBK_MAX_BLOCKS;
    return (unsigned)b;
}

static inline int nbk_status(void) { return (int)cudaGetLastError(); }

#define NBK_LOOP(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * NBK_THREADS + threadIdx.x; i < (n); i += (int64_t)gridDim.x * NBK_THREADS)

/* Sum of v over the block, valid in thread 0. Fixed shuffle tree: the same bits for the same inputs. Ends
 * with a barrier, so it can be called again in the same kernel. */
static __device__ double nbk_block_sum(double v) {
    __shared__ double part[NBK_THREADS / 32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = lane < NBK_THREADS / 32 ? part[lane] : 0.0;
    if (warp == 0)
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    __syncthreads();
    return v;
}

static __device__ double nbk_block_max(double v) {
    __shared__ double part[NBK_THREADS / 32];
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_down_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = lane < NBK_THREADS / 32 ? part[lane] : -INFINITY;
    if (warp == 0)
        for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_down_sync(0xffffffffu, v, o));
    __syncthreads();
    return v;
}

/* Broadcast thread 0's value to the whole block. */
static __device__ double nbk_block_bcast(double v) {
    __shared__ double b;
    if (threadIdx.x == 0) b = v;
    __syncthreads();
    v = b;
    __syncthreads();
    return v;
}

#endif
