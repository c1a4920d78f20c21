/* The unary element-wise ops (impl UNARY in core/op_table.h) on the GPU: for each, its value f(x) and its
 * derivative times the incoming gradient, gy * f'(x), in one grid-stride kernel. core/ops_unary.c does the rest
 * (front-end, recording, backward). A new unary op is a case in unary_value, unary_grad and
 * nbk_unary_supported. */
#include "backend/cuda/k_common.cuh"
#include "core/op_table.h"

/* the nb_op values, in the table's order (core/tape.h makes the same enum for C) */
#define NBK_OP_ENUM(E, name, attr, cost, impl, deploy, quant) NBK_OP_##E,
enum { NB_OP_TABLE(NBK_OP_ENUM) NBK_OP_COUNT };
#undef NBK_OP_ENUM

static __device__ float unary_value(int op, float x, float alpha) {
    (void)alpha;
    switch (op) {
    case NBK_OP_HARDSIGMOID: return fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f; /* relu6(x + 3) / 6 */
    case NBK_OP_SQUARE: return x * x;
    default: return x;
    }
}

static __device__ float unary_grad(int op, float x, float g, float alpha) {
    (void)alpha;
    (void)x;
    switch (op) {
    case NBK_OP_HARDSIGMOID: return x > -3.0f && x < 3.0f ? g / 6.0f : 0.0f;
    case NBK_OP_SQUARE: return 2.0f * x * g;
    default: return g;
    }
}

extern "C" int nbk_unary_supported(int op) {
    switch (op) {
    case NBK_OP_HARDSIGMOID:
    case NBK_OP_SQUARE: return 1;
    default: return 0;
    }
}

static __global__ void unary_k(int op, float alpha, float *y, const float *x, const float *gy, int64_t n) {
    if (gy) {
        NBK_LOOP(i, n) y[i] = unary_grad(op, x[i], gy[i], alpha);
    } else {
        NBK_LOOP(i, n) y[i] = unary_value(op, x[i], alpha);
    }
}

extern "C" int nbk_unary(cudaStream_t s, int op, float alpha, float *y, const float *x, const float *gy, int64_t n) {
    if (n == 0) return 0;
    unary_k<<<nbk_grid(n), NBK_THREADS, 0, s>>>(op, alpha, y, x, gy, n);
    return nbk_status();
}
