/* The CUDA backend: device selection, its stream and library handles, pooled device memory, host transfers,
 * strided copies, the element-wise entries of the backend table, and dispatch of nodes to the op files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda.h"
#include "core/rng.h"

int cuda_fail(cuda_backend *be, const char *op, const char *call, const char *why, const char *file, int line) {
    nb_raise(be->base.ctx, file, line, op, "%s failed on %s: %s", call, be->device_name, why);
    return -1;
}

/* ---- memory ---- */

static void *sys_alloc(void *user, size_t bytes) {
    (void)user;
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky-free error so later calls are not blamed */
        return NULL;
    }
    return p;
}

static void sys_free(void *user, void *p) {
    (void)user;
    cudaFree(p);
}

static void *cuda_alloc(nb_backend *b, size_t bytes) {
    cuda_backend *be = cuda_of(b);
    void *p = nb_pool_get(&be->pool, bytes);
    if (!p) {
        /* blocks cached for other sizes may be what the device lacks: hand them back and try once more */
        cudaStreamSynchronize(be->stream);
        nb_pool_trim(&be->pool);
        p = nb_pool_get(&be->pool, bytes);
    }
    return p;
}

static void cuda_release(nb_backend *b, void *p, size_t bytes) { nb_pool_put(&cuda_of(b)->pool, p, bytes); }

void *cuda_scratch(cuda_backend *be, size_t bytes) {
    void *p = cuda_alloc(&be->base, bytes ? bytes : 1);
    if (!p) NB_FAIL(be->base.ctx, be->device_name, "out of device memory allocating %zu bytes of scratch", bytes);
    return p;
}

void cuda_scratch_release(cuda_backend *be, void *p, size_t bytes) { cuda_release(&be->base, p, bytes ? bytes : 1); }

void *cuda_workspace(cuda_backend *be, size_t bytes) {
    if (bytes <= be->workspace_bytes) return be->workspace;
    /* cudaFree waits for the device, so work still queued on the old buffer finishes first */
    cudaFree(be->workspace);
    be->workspace = NULL;
    be->workspace_bytes = 0;
    if (cudaMalloc(&be->workspace, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        cudaStreamSynchronize(be->stream);
        nb_pool_trim(&be->pool);
        if (cudaMalloc(&be->workspace, bytes) != cudaSuccess) {
            (void)cudaGetLastError();
            be->workspace = NULL;
            NB_FAIL(be->base.ctx, be->device_name, "out of device memory allocating a %zu-byte cuDNN workspace", bytes);
            return NULL;
        }
    }
    be->workspace_bytes = bytes;
    return be->workspace;
}

static int cuda_upload(nb_backend *b, void *dst, const void *src, size_t bytes) {
    cuda_backend *be = cuda_of(b);
    /* from pageable memory the copy is staged before this returns, so the caller may reuse src at once */
    CUDA_RT(be, "upload", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, be->stream));
    return 0;
}

static int cuda_download(nb_backend *b, void *dst, const void *src, size_t bytes) {
    cuda_backend *be = cuda_of(b);
    CUDA_RT(be, "download", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, be->stream));
    CUDA_RT(be, "download", cudaStreamSynchronize(be->stream));
    return 0;
}

static void cuda_mem_stats(nb_backend *b, nb_mem_stats *out) { *out = cuda_of(b)->pool.stats; }

nb_tensor *cuda_new(cuda_backend *be, nb_dtype dt, int ndim, const int64_t *shape) {
    nb_tensor *t = nb_tensor_header(be->base.ctx, dt, ndim, shape);
    if (!t) return NULL;
    if (nb_tensor_alloc(t, NB_LAYOUT_PLAIN) != 0) {
        nb_release(t);
        return NULL;
    }
    return t;
}

/* ---- layouts: plain only ---- */

static size_t cuda_layout_bytes(nb_backend *b, const nb_tensor *t) {
    (void)b;
    return nb_tensor_bytes(t);
}

static int cuda_activation_layout(nb_backend *b, const nb_tensor *t) {
    (void)b;
    (void)t;
    return NB_LAYOUT_PLAIN;
}

int cuda_relayout(nb_backend *b, nb_tensor *dst, const nb_tensor *src) {
    cuda_backend *be = cuda_of(b);
    nb_ctx *ctx = b->ctx;
    NB_REQUIRE(ctx, nb_same_shape(dst, src) && dst->dtype == src->dtype, -1, "relayout", "cannot copy %s into %s",
               NB_SHAPE(src), NB_SHAPE(dst));
    NB_REQUIRE(ctx, dst->layout == NB_LAYOUT_PLAIN && src->layout == NB_LAYOUT_PLAIN, -1, "relayout",
               "the CUDA backend keeps every tensor in the plain layout (got layouts %d and %d)", src->layout,
               dst->layout);
    void *d = nb_data(dst), *s = nb_data(src);
    if (!d || !s) return -1;
    int64_t n = nb_numel(src);
    if (n == 0) return 0;
    size_t es = nb_dtype_size(src->dtype);
    if (nb_is_contiguous(dst) && nb_is_contiguous(src)) {
        CUDA_RT(be, "relayout", cudaMemcpyAsync(d, s, (size_t)n * es, cudaMemcpyDeviceToDevice, be->stream));
        return 0;
    }
    nbk_strides g = {.ndim = src->ndim ? src->ndim : 1};
    for (int k = 0; k < src->ndim; k++) {
        g.shape[k] = src->shape[k];
        g.dst_stride[k] = dst->stride[k];
        g.src_stride[k] = src->stride[k];
    }
    if (src->ndim == 0) g.shape[0] = 1, g.dst_stride[0] = g.src_stride[0] = 1;
    CUDA_K(be, "relayout", nbk_strided_copy(be->stream, d, s, (int)es, &g));
    return 0;
}

nb_tensor *cuda_contiguous(cuda_backend *be, nb_tensor *t, bool *owned) {
    *owned = false;
    if (nb_is_contiguous(t)) return t;
    nb_tensor *c = cuda_new(be, t->dtype, t->ndim, t->shape);
    if (!c) return NULL;
    if (cuda_relayout(&be->base, c, t) != 0) {
        nb_release(c);
        return NULL;
    }
    *owned = true;
    return c;
}

/* ---- the plan cache ---- */

static uint64_t fnv(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h | 1;
}

void *cuda_cache_find(const cuda_cache *c, const void *key, size_t len) {
    if (!c->cap) return NULL;
    uint64_t h = fnv(key, len);
    for (size_t i = h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        const cuda_cache_slot *s = &c->slots[i];
        if (!s->hash) return NULL;
        if (s->hash == h && s->key_len == len && !memcmp(s->key, key, len)) return s->value;
    }
}

static void cache_insert(cuda_cache *c, cuda_cache_slot slot) {
    for (size_t i = slot.hash & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        if (!c->slots[i].hash) {
            c->slots[i] = slot;
            c->n++;
            return;
        }
    }
}

void cuda_cache_put(cuda_cache *c, const void *key, size_t len, void *value) {
    if ((c->n + 1) * 2 > c->cap) {
        cuda_cache_slot *old = c->slots;
        size_t old_cap = c->cap;
        c->cap = old_cap ? old_cap * 2 : 128;
        c->slots = nb_xcalloc(c->cap, sizeof *c->slots);
        c->n = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].hash) cache_insert(c, old[i]);
        free(old);
    }
    unsigned char *k = nb_xmalloc(len);
    memcpy(k, key, len);
    cache_insert(c, (cuda_cache_slot){.hash = fnv(key, len), .key_len = len, .key = k, .value = value});
}

void cuda_cache_free(cuda_cache *c) {
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->slots[i].hash) continue;
        if (c->free_value) c->free_value(c->slots[i].value);
        free(c->slots[i].key);
    }
    free(c->slots);
    c->slots = NULL;
    c->cap = c->n = 0;
}

/* ---- element-wise entries ---- */

static int need_dense(nb_backend *be, const nb_tensor *t, const char *what) {
    if (!nb_is_contiguous(t)) {
        NB_FAIL(be->ctx, what, "needs a contiguous tensor, got a strided view %s", NB_SHAPE(t));
        return -1;
    }
    return nb_data(t) ? 0 : -1;
}

static int same_shape(nb_backend *be, const nb_tensor *a, const nb_tensor *b, const char *what) {
    if (!nb_same_shape(a, b)) {
        NB_FAIL(be->ctx, what, "operands %s and %s must share a shape", NB_SHAPE(a), NB_SHAPE(b));
        return -1;
    }
    return need_dense(be, a, what) || need_dense(be, b, what) ? -1 : 0;
}

int cuda_fill(nb_backend *b, nb_tensor *t, double v) {
    cuda_backend *be = cuda_of(b);
    if (need_dense(b, t, "fill")) return -1;
    int64_t n = nb_numel(t);
    if (n == 0) return 0;
    if (v == 0.0) {
        CUDA_RT(be, "fill", cudaMemsetAsync(nb_data(t), 0, nb_tensor_bytes(t), be->stream));
        return 0;
    }
    uint64_t bits = 0;
    switch (t->dtype) {
    case NB_F32: {
        float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        bits = u;
        break;
    }
    case NB_I8: bits = (uint8_t)(int8_t)v; break;
    case NB_U8: bits = (uint8_t)v; break;
    case NB_I32: bits = (uint32_t)(int32_t)v; break;
    case NB_I64: bits = (uint64_t)(int64_t)v; break;
    default: return -1;
    }
    CUDA_K(be, "fill", nbk_fill(be->stream, nb_data(t), (int)nb_dtype_size(t->dtype), n, bits));
    return 0;
}

int cuda_axpby(nb_backend *b, nb_tensor *y, float a, const nb_tensor *x, float bb) {
    cuda_backend *be = cuda_of(b);
    if (same_shape(b, y, x, "axpby")) return -1;
    CUDA_K(be, "axpby", nbk_axpby(be->stream, nb_data(y), a, nb_data(x), bb, nb_numel(y)));
    return 0;
}

int cuda_mul(nb_backend *b, nb_tensor *y, const nb_tensor *x) {
    cuda_backend *be = cuda_of(b);
    if (same_shape(b, y, x, "mul")) return -1;
    CUDA_K(be, "mul", nbk_mul(be->stream, nb_data(y), nb_data(x), nb_numel(y)));
    y->version++;
    return 0;
}

int cuda_sum_squares(nb_backend *b, const nb_tensor *t, double *out) {
    cuda_backend *be = cuda_of(b);
    if (need_dense(b, t, "sum_squares")) return -1;
    size_t bytes = sizeof(double) * NBK_SUMSQ_BLOCKS;
    double *part = cuda_scratch(be, bytes), host[NBK_SUMSQ_BLOCKS];
    if (!part) return -1;
    int rc = nbk_sum_squares(be->stream, nb_data(t), nb_numel(t), part);
    if (rc == 0) rc = b->download(b, host, part, bytes) ? -1 : 0;
    else cuda_fail(be, "sum_squares", "nbk_sum_squares", cudaGetErrorString((cudaError_t)rc), __FILE__, __LINE__);
    cuda_scratch_release(be, part, bytes);
    if (rc) return -1;
    double s = 0.0;
    for (int i = 0; i < NBK_SUMSQ_BLOCKS; i++) s += host[i];
    *out = s;
    return 0;
}

int cuda_sum_abs(nb_backend *b, const nb_tensor *t, double threshold, double *sum, int64_t *count) {
    cuda_backend *be = cuda_of(b);
    if (need_dense(b, t, "sum_abs")) return -1;
    size_t bytes = sizeof(double) * 2 * NBK_SUMSQ_BLOCKS;
    double *part = cuda_scratch(be, bytes), host[2 * NBK_SUMSQ_BLOCKS];
    if (!part) return -1;
    int rc = nbk_sum_abs(be->stream, nb_data(t), nb_numel(t), threshold, part);
    if (rc == 0) rc = b->download(b, host, part, bytes) ? -1 : 0;
    else cuda_fail(be, "sum_abs", "nbk_sum_abs", cudaGetErrorString((cudaError_t)rc), __FILE__, __LINE__);
    cuda_scratch_release(be, part, bytes);
    if (rc) return -1;
    double s = 0.0, k = 0.0;
    for (int i = 0; i < NBK_SUMSQ_BLOCKS; i++) {
        s += host[i];
        k += host[NBK_SUMSQ_BLOCKS + i];
    }
    *sum = s;
    *count = (int64_t)k;
    return 0;
}

int cuda_sign_codes(nb_backend *b, nb_tensor *v, nb_tensor *codes, double threshold, float alpha) {
    cuda_backend *be = cuda_of(b);
    if (need_dense(b, v, "sign_codes") || need_dense(b, codes, "sign_codes")) return -1;
    CUDA_K(be, "sign_codes", nbk_sign_codes(be->stream, nb_data(v), nb_data(codes), nb_numel(v), threshold, alpha));
    return 0;
}

int cuda_range(nb_backend *b, const nb_tensor *t, double *lo, double *hi) {
    cuda_backend *be = cuda_of(b);
    if (need_dense(b, t, "range")) return -1;
    size_t bytes = sizeof(double) * 2 * NBK_SUMSQ_BLOCKS;
    double *part = cuda_scratch(be, bytes), host[2 * NBK_SUMSQ_BLOCKS];
    if (!part) return -1;
    int rc = nbk_range(be->stream, nb_data(t), nb_numel(t), part);
    if (rc == 0) rc = b->download(b, host, part, bytes) ? -1 : 0;
    else cuda_fail(be, "range", "nbk_range", cudaGetErrorString((cudaError_t)rc), __FILE__, __LINE__);
    cuda_scratch_release(be, part, bytes);
    if (rc) return -1;
    double neg_lo = -INFINITY, h = -INFINITY;
    for (int i = 0; i < NBK_SUMSQ_BLOCKS; i++) {
        neg_lo = fmax(neg_lo, host[i]);
        h = fmax(h, host[NBK_SUMSQ_BLOCKS + i]);
    }
    *lo = -neg_lo;
    *hi = h;
    return 0;
}

int cuda_bn_fold(nb_backend *b, nb_tensor *sf, nb_tensor *inv, const nb_tensor *gamma, const nb_tensor *var, float eps) {
    cuda_backend *be = cuda_of(b);
    if (need_dense(b, sf, "bn_fold") || need_dense(b, inv, "bn_fold") || need_dense(b, gamma, "bn_fold") ||
        need_dense(b, var, "bn_fold"))
        return -1;
    CUDA_K(be, "bn_fold", nbk_bn_fold(be->stream, nb_data(sf), nb_data(inv), nb_data(gamma), nb_data(var), nb_numel(sf), eps));
    return 0;
}

int cuda_abs_mul_add(nb_backend *b, nb_tensor *acc, const nb_tensor *x, const nb_tensor *y) {
    cuda_backend *be = cuda_of(b);
    if (same_shape(b, acc, x, "abs_mul_add") || same_shape(b, acc, y, "abs_mul_add")) return -1;
    CUDA_K(be, "abs_mul_add", nbk_abs_mul_add(be->stream, nb_data(acc), nb_data(x), nb_data(y), nb_numel(acc)));
    return 0;
}

/* Initialisers run once: drawing on the host with the CPU backend's code and uploading gives a network
 * initialised on the GPU exactly the weights it would get on the CPU. */
int cuda_rng_fill(nb_backend *b, nb_tensor *t, const nb_rng_fill *spec) {
    if (t->dtype != NB_F32 || !nb_is_contiguous(t)) {
        NB_FAIL(b->ctx, "rng_fill", "needs a plain contiguous f32 tensor, got %s", NB_SHAPE(t));
        return -1;
    }
    int64_t n = nb_numel(t);
    float *h = nb_xmalloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        h[i] = nb_philox_draw(spec->dist == NB_RNG_NORMAL, spec->a, spec->b, spec->seed, spec->stream,
                              spec->offset + (uint64_t)i);
    void *d = nb_data(t);
    int rc = d && n ? b->upload(b, d, h, sizeof(float) * (size_t)n) : (d ? 0 : -1);
    /* the staged copy must finish before the host buffer goes */
    if (rc == 0 && cudaStreamSynchronize(cuda_of(b)->stream) != cudaSuccess) rc = -1;
    free(h);
    t->version++;
    return rc;
}

int cuda_sgd_step(nb_backend *b, const nb_sgd_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *buf) {
    cuda_backend *be = cuda_of(b);
    if (same_shape(b, p, g, "sgd") || (buf && same_shape(b, p, buf, "sgd"))) return -1;
    CUDA_K(be, "sgd", nbk_sgd(be->stream, nb_data(p), nb_data(g), buf ? nb_data(buf) : NULL, nb_numel(p), s->lr,
                              s->momentum, s->dampening, s->weight_decay, s->nesterov, s->first_step));
    p->version++;
    return 0;
}

int cuda_adam_step(nb_backend *b, const nb_adam_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *m,
                   nb_tensor *v) {
    cuda_backend *be = cuda_of(b);
    if (same_shape(b, p, g, "adam") || same_shape(b, p, m, "adam") || same_shape(b, p, v, "adam")) return -1;
    float bc1 = 1.0f - (float)pow(s->beta1, (double)s->step), bc2 = 1.0f - (float)pow(s->beta2, (double)s->step);
    CUDA_K(be, "adam", nbk_adam(be->stream, nb_data(p), nb_data(g), nb_data(m), nb_data(v), nb_numel(p), s->lr,
                                s->beta1, s->beta2, s->eps, s->weight_decay, s->decoupled, bc1, sqrtf(bc2)));
    p->version++;
    return 0;
}

int cuda_counter_add(nb_backend *b, nb_tensor *t, int64_t v) {
    cuda_backend *be = cuda_of(b);
    NB_REQUIRE(b->ctx, t->dtype == NB_I64, -1, "counter_add", "%s %s must be i64", t->name, NB_SHAPE(t));
    if (need_dense(b, t, "counter_add")) return -1;
    CUDA_K(be, "counter_add", nbk_add_i64(be->stream, nb_data(t), nb_numel(t), v));
    t->version++;
    return 0;
}

/* ---- dispatch: one kernel table over core/op_table.h's ops ---- */

typedef struct {
    int (*forward)(cuda_backend *be, nb_node *n);
    int (*backward)(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
} cuda_kernel;

#define POINTWISE {cuda_pointwise_forward, cuda_pointwise_backward}
#define POOL {cuda_pool_forward, cuda_pool_backward}
#define SHAPE {cuda_shape_forward, cuda_shape_backward}
#define LOSS {cuda_loss_forward, cuda_loss_backward}
/* ops of impl KERNEL; views are the core's, unary ops go to cuda_unary */
static const cuda_kernel cuda_kernels[NB_OP_COUNT] = {
    [NB_OP_CONV2D] = {cuda_conv_forward, cuda_conv_backward},
    [NB_OP_LINEAR] = {cuda_linear_forward, cuda_linear_backward},
    [NB_OP_BATCHNORM2D] = {cuda_bn_forward, cuda_bn_backward},
    [NB_OP_RELU] = POINTWISE, [NB_OP_RELU6] = POINTWISE, [NB_OP_LEAKY_RELU] = POINTWISE, [NB_OP_SIGMOID] = POINTWISE,
    [NB_OP_HARDSWISH] = POINTWISE, [NB_OP_SILU] = POINTWISE, [NB_OP_ADD] = POINTWISE, [NB_OP_SCALE] = POINTWISE, [NB_OP_DROPOUT] = POINTWISE,
    [NB_OP_MAXPOOL2D] = POOL, [NB_OP_AVGPOOL2D] = POOL, [NB_OP_GLOBAL_AVGPOOL] = POOL,
    [NB_OP_MUL_CHANNEL] = SHAPE, [NB_OP_CHANNEL_SHUFFLE] = SHAPE,
    [NB_OP_SOFTMAX] = LOSS, [NB_OP_LOG_SOFTMAX] = LOSS, [NB_OP_CROSS_ENTROPY] = LOSS, [NB_OP_KL_DIV] = LOSS,
    [NB_OP_SMOOTH_L1] = LOSS, [NB_OP_MSE] = LOSS,
    [NB_OP_MULTIBOX] = {cuda_multibox_forward, cuda_multibox_backward},
    [NB_OP_FAKE_QUANT] = {cuda_fake_quant_forward, cuda_fake_quant_backward},
};

static bool cuda_supports(nb_backend *b, nb_op op) {
    (void)b;
    return (unsigned)op < NB_OP_COUNT && (cuda_kernels[op].forward || nbk_unary_supported((int)op));
}

static int cuda_forward(nb_backend *b, nb_node *n) { return cuda_kernels[n->op].forward(cuda_of(b), n); }

static int cuda_backward(nb_backend *b, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    return cuda_kernels[n->op].backward(cuda_of(b), n, gout, gin);
}

/* the unary element-wise ops: f(x), or gy * f'(x), over plain buffers (k_unary.cu) */
static int cuda_unary(nb_backend *b, nb_op op, float alpha, nb_tensor *y, const nb_tensor *x, const nb_tensor *gy) {
    cuda_backend *be = cuda_of(b);
    if (need_dense(b, x, nb_op_name(op)) || need_dense(b, y, nb_op_name(op)) || (gy && need_dense(b, gy, nb_op_name(op))))
        return -1;
    CUDA_K(be, nb_op_name(op), nbk_unary(be->stream, (int)op, alpha, nb_data(y), nb_data(x), gy ? nb_data(gy) : NULL,
                                         nb_numel(x)));
    return 0;
}

static void cuda_destroy(nb_backend *b) {
    cuda_backend *be = cuda_of(b);
    cudaStreamSynchronize(be->stream);
    cuda_cache_free(&be->conv_plans);
    nb_pool_destroy(&be->pool);
    cudaFree(be->workspace);
    cudnnDestroy(be->dnn);
    cublasDestroy(be->blas);
    cudaStreamDestroy(be->stream);
    free(be);
}

static bool env_flag(const char *name, bool fallback) {
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    return strcmp(v, "0") != 0 && strcmp(v, "false") != 0 && strcmp(v, "off") != 0;
}

bool nb_cuda_probe(char *why, size_t n) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        /* a machine without the NVIDIA driver reports an "insufficient" one: say what it most likely means */
        snprintf(why, n, "%s (CUDA runtime: %s)",
                 e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice ? "no NVIDIA GPU and driver on this machine"
                                                                            : "no usable CUDA device",
                 cudaGetErrorString(e));
        (void)cudaGetLastError();
        return false;
    }
    if (count == 0) {
        snprintf(why, n, "no CUDA device on this machine");
        return false;
    }
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
        snprintf(why, n, "%.200s (compute capability %d.%d, %.0f GiB)", p.name, p.major, p.minor,
                 (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    else
        snprintf(why, n, "CUDA device 0");
    return true;
}

nb_backend *nb_cuda_backend_new(nb_ctx *ctx) {
    char why[256];
    if (!nb_cuda_probe(why, sizeof why)) {
        NB_FAIL(ctx, "cuda", "%s\n  hint: run on a machine with an NVIDIA GPU, or set train.device = cpu", why);
        return NULL;
    }
    cuda_backend *be = nb_xcalloc(1, sizeof *be);
    be->base = (nb_backend){
        .name = "cuda",
        .device = NB_DEVICE_CUDA,
        .ctx = ctx,
        .destroy = cuda_destroy,
        .alloc = cuda_alloc,
        .release = cuda_release,
        .upload = cuda_upload,
        .download = cuda_download,
        .mem_stats = cuda_mem_stats,
        .layout_bytes = cuda_layout_bytes,
        .relayout = cuda_relayout,
        .activation_layout = cuda_activation_layout,
        .supports = cuda_supports,
        .forward = cuda_forward,
        .backward = cuda_backward,
        .unary = cuda_unary,
        .fill = cuda_fill,
        .axpby = cuda_axpby,
        .mul = cuda_mul,
        .sum_squares = cuda_sum_squares,
        .rng_fill = cuda_rng_fill,
        .sgd_step = cuda_sgd_step,
        .adam_step = cuda_adam_step,
        .counter_add = cuda_counter_add,
        .sum_abs = cuda_sum_abs,
        .sign_codes = cuda_sign_codes,
        .abs_mul_add = cuda_abs_mul_add,
        .range = cuda_range,
        .bn_fold = cuda_bn_fold,
    };
    snprintf(be->device_name, sizeof be->device_name, "%s", why);
    be->device = 0;
    const char *dev = getenv("NB_CUDA_DEVICE");
    if (dev && *dev) be->device = atoi(dev);
    if (cudaSetDevice(be->device) != cudaSuccess ||
        cudaStreamCreateWithFlags(&be->stream, cudaStreamNonBlocking) != cudaSuccess) {
        NB_FAIL(ctx, "cuda", "cannot start CUDA device %d (%s)", be->device, cudaGetErrorString(cudaGetLastError()));
        free(be);
        return NULL;
    }
    if (cublasCreate(&be->blas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(be->blas, be->stream) != CUBLAS_STATUS_SUCCESS) {
        NB_FAIL(ctx, "cuda", "cannot start cuBLAS on %s", be->device_name);
        cudaStreamDestroy(be->stream);
        free(be);
        return NULL;
    }
    if (cudnnCreate(&be->dnn) != CUDNN_STATUS_SUCCESS || cudnnSetStream(be->dnn, be->stream) != CUDNN_STATUS_SUCCESS) {
        NB_FAIL(ctx, "cuda", "cannot start cuDNN on %s", be->device_name);
        cublasDestroy(be->blas);
        cudaStreamDestroy(be->stream);
        free(be);
        return NULL;
    }
    /* cuBLAS stays in strict FP32 (PyTorch's default for matrix products); pointer mode host for alpha/beta */
    cublasSetMathMode(be->blas, CUBLAS_DEFAULT_MATH);
    be->tf32 = env_flag("NB_TF32", true);
    be->benchmark = env_flag("NB_CUDNN_BENCHMARK", false);
    be->workspace_limit = (size_t)1 << 30;
    nb_pool_init(&be->pool, sys_alloc, sys_free, NULL);
    be->conv_plans.free_value = cuda_conv_plan_free;
    return &be->base;
}
