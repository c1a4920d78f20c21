/* The backend interface: everything that touches device memory goes through this table, so op, model and
 * optimizer code never assume host pointers. The CPU backend (oneDNN, OpenBLAS, OpenMP) is the reference;
 * a CUDA backend implements the same table. All functions return 0 on success, -1 after reporting an error
 * through the context. */
#ifndef NB_BACKEND_H
#define NB_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tape.h"
#include "core/tensor.h"

typedef enum { NB_DEVICE_CPU = 0, NB_DEVICE_CUDA = 1 } nb_device;

typedef struct {
    uint64_t sys_allocs;    /* blocks requested from the system (malloc / cudaMalloc) */
    uint64_t pool_hits;     /* requests served from the pool's free lists */
    size_t bytes_reserved;  /* held by the pool, in use or free */
    size_t bytes_in_use;
    size_t peak_in_use;
} nb_mem_stats;

typedef enum { NB_RNG_UNIFORM = 0, NB_RNG_NORMAL = 1 } nb_rng_dist;

typedef struct {
    nb_rng_dist dist;
    float a, b;           /* uniform [a, b) or normal (mean a, std b) */
    uint64_t seed, stream; /* element i draws from counter (stream, offset + i) */
    uint64_t offset;
} nb_rng_fill;

typedef struct {
    float lr, momentum, dampening, weight_decay;
    int nesterov;
    int first_step; /* momentum buffer starts as the gradient itself, as in torch.optim.SGD */
} nb_sgd_step;

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int decoupled; /* AdamW: p *= 1 - lr*wd instead of adding wd*p to the gradient */
    int64_t step;  /* 1-based step count for bias correction */
} nb_adam_step;

typedef struct nb_backend nb_backend;
struct nb_backend {
    const char *name;
    nb_device device;
    nb_ctx *ctx;
    void (*destroy)(nb_backend *be);

    /* memory: pooled, so a steady-state training step never reaches the system allocator */
    void *(*alloc)(nb_backend *be, size_t bytes);
    void (*release)(nb_backend *be, void *ptr, size_t bytes);
    int (*upload)(nb_backend *be, void *dst, const void *host, size_t bytes);
    int (*download)(nb_backend *be, void *host, const void *src, size_t bytes);
    void (*mem_stats)(nb_backend *be, nb_mem_stats *out);

    /* layouts */
    size_t (*layout_bytes)(nb_backend *be, const nb_tensor *t);
    int (*relayout)(nb_backend *be, nb_tensor *dst, const nb_tensor *src); /* same shape, any layouts */
    /* The layout this backend's convolutions produce for an activation of t's shape (benchmarks and tests
     * use it to start from what a network would hold). */
    int (*activation_layout)(nb_backend *be, const nb_tensor *t);
    /* The layout that arranges elements as `layout` does, holding dtype instead (a CAST keeps blocked
     * activations blocked); relayout converts between the two. NULL: a backend with plain casts only. */
    int (*layout_as)(nb_backend *be, int layout, nb_dtype dtype);

    /* Mixed precision (core/autocast.c): whether this backend runs op on activations of dtype (bf16), its
     * parameters staying f32; an op it declines gets its bf16 inputs cast to f32. NULL: f32 only. */
    bool (*lowp_supports)(nb_backend *be, nb_op op, nb_dtype dtype);
    /* whether the hardware computes dtype itself (AVX-512 BF16, AMX) rather than emulating it slowly */
    bool (*lowp_native)(nb_backend *be, nb_dtype dtype);

    /* ops (core/op_table.h): whether this backend runs op at all (core reports a clear error before
     * dispatching one it declines); then, for impl KERNEL, forward allocates the node's outputs (choosing their
     * layout) and backward allocates gin[i] for each non-NULL gin[i] header, in the layout of in[i] (gout[i]
     * has the layout of out[i]); for impl UNARY, unary writes y = f(x), or y = gy * f'(x) when gy is given,
     * element by element over the physical buffer of x (y and gy share its layout and are allocated). */
    bool (*supports)(nb_backend *be, nb_op op);
    int (*forward)(nb_backend *be, nb_node *node);
    int (*backward)(nb_backend *be, nb_node *node, nb_tensor *const *gout, nb_tensor **gin);
    int (*unary)(nb_backend *be, nb_op op, float alpha, nb_tensor *y, const nb_tensor *x, const nb_tensor *gy);

    /* element-wise kernels over the physical buffer (operands share one layout) */
    int (*fill)(nb_backend *be, nb_tensor *t, double value);
    int (*axpby)(nb_backend *be, nb_tensor *y, float a, const nb_tensor *x, float b); /* y = a*x + b*y */
    int (*mul)(nb_backend *be, nb_tensor *y, const nb_tensor *x);                      /* y = y * x (masks) */
    int (*sum_squares)(nb_backend *be, const nb_tensor *t, double *out);
    int (*rng_fill)(nb_backend *be, nb_tensor *t, const nb_rng_fill *spec);
    int (*sgd_step)(nb_backend *be, const nb_sgd_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *buf);
    int (*adam_step)(nb_backend *be, const nb_adam_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *m,
                     nb_tensor *v);
    /* adds v to every element of an i64 tensor where it lives (batch counters), without a host round trip */
    int (*counter_add)(nb_backend *be, nb_tensor *t, int64_t v);

    /* compression arithmetic where the weights live (no host copy per step) */
    /* sum of |x| over the elements with |x| > threshold (every element when threshold < 0), in double, and
     * how many there are */
    int (*sum_abs)(nb_backend *be, const nb_tensor *t, double threshold, double *sum, int64_t *count);
    /* codes = sign(v) (+1 at 0) where |v| > threshold, 0 elsewhere; then v = alpha * codes. v plain f32, codes
     * plain i8 of its shape: the binary and ternary projections */
    int (*sign_codes)(nb_backend *be, nb_tensor *v, nb_tensor *codes, double threshold, float alpha);
    int (*abs_mul_add)(nb_backend *be, nb_tensor *acc, const nb_tensor *a, const nb_tensor *b); /* acc += |a*b| */
    /* quantization: the smallest and largest element of a plain contiguous tensor (a quantizer's first range),
     * and a batch norm's fold factors per channel, sf = gamma / sqrt(var + eps) in float32 as torch's ConvBn2d
     * computes them, and inv = 1 / sf (0 where sf is 0) */
    int (*range)(nb_backend *be, const nb_tensor *t, double *lo, double *hi);
    int (*bn_fold)(nb_backend *be, nb_tensor *sf, nb_tensor *inv, const nb_tensor *gamma, const nb_tensor *var, float eps);
};

#endif
