/* Internals of the CUDA backend: the device, its one stream, the cuBLAS and cuDNN handles, the caching pool,
 * the convolution-plan cache and the helpers every op file uses. Tensors on this backend are always in the
 * plain layout (NCHW); everything runs on one stream, so a block returned to the pool can be handed out again
 * at once: later work on the stream is ordered after earlier users of the block. */
#ifndef NB_CUDA_H
#define NB_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <stdbool.h>
#include <stddef.h>

#include "backend/cuda/kernels.h"
#include "core/backend.h"
#include "core/op_impl.h"
#include "core/pool.h"

typedef struct {
    uint64_t hash;
    size_t key_len;
    unsigned char *key;
    void *value;
} cuda_cache_slot;

typedef struct {
    cuda_cache_slot *slots;
    size_t cap, n;
    void (*free_value)(void *);
} cuda_cache;

typedef struct {
    nb_backend base;
    int device;
    char device_name[256];
    cudaStream_t stream;
    cublasHandle_t blas;
    cudnnHandle_t dnn;
    nb_pool pool;
    cuda_cache conv_plans;

    void *workspace; /* cuDNN workspace, grown on demand (only while new shapes appear) */
    size_t workspace_bytes;
    size_t workspace_limit; /* algorithms needing more are not considered */

    bool tf32;      /* convolutions may use TF32 tensor cores (PyTorch's default); NB_TF32=0 turns it off */
    bool benchmark; /* time cuDNN's algorithms once per shape (NB_CUDNN_BENCHMARK=1) instead of its heuristics */
} cuda_backend;

static inline cuda_backend *cuda_of(nb_backend *be) { return (cuda_backend *)be; }

/* Report a failed CUDA, cuBLAS or cuDNN call with the op name; each evaluates to -1. */
int cuda_fail(cuda_backend *be, const char *op, const char *call, const char *why, const char *file, int line);
#define CUDA_RT(be, op, call)                                                                                  \
    do {                                                                                                       \
        cudaError_t e_ = (call);                                                                               \
        if (e_ != cudaSuccess) return cuda_fail((be), (op), #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
    } while (0)
#define CUDA_DNN(be, op, call)                                                                                 \
    do {                                                                                                       \
        cudnnStatus_t e_ = (call);                                                                             \
        if (e_ != CUDNN_STATUS_SUCCESS)                                                                        \
            return cuda_fail((be), (op), #call, cudnnGetErrorString(e_), __FILE__, __LINE__);                 \
    } while (0)
#define CUDA_BLAS(be, op, call)                                                                                \
    do {                                                                                                       \
        cublasStatus_t e_ = (call);                                                                            \
        if (e_ != CUBLAS_STATUS_SUCCESS)                                                                       \
            return cuda_fail((be), (op), #call, cublasGetStatusString(e_), __FILE__, __LINE__);                \
    } while (0)
/* A kernel launcher's status (0 or a cudaError_t) */
#define CUDA_K(be, op, call)                                                                                   \
    do {                                                                                                       \
        int e_ = (call);                                                                                       \
        if (e_ != 0)                                                                                           \
            return cuda_fail((be), (op), #call, cudaGetErrorString((cudaError_t)e_), __FILE__, __LINE__);     \
    } while (0)

/* Device scratch from the pool (stream-ordered reuse makes an immediate release safe). */
void *cuda_scratch(cuda_backend *be, size_t bytes);
void cuda_scratch_release(cuda_backend *be, void *p, size_t bytes);
/* The cuDNN workspace, at least `bytes` long (NULL and an error when the device is out of memory). */
void *cuda_workspace(cuda_backend *be, size_t bytes);

/* Header + plain storage. */
nb_tensor *cuda_new(cuda_backend *be, nb_dtype dt, int ndim, const int64_t *shape);
/* t itself when plain contiguous, else a contiguous copy (*owned set: the caller releases it). */
nb_tensor *cuda_contiguous(cuda_backend *be, nb_tensor *t, bool *owned);
int cuda_relayout(nb_backend *be, nb_tensor *dst, const nb_tensor *src);

/* Small hash map from byte keys to owned values (convolution plans). */
void *cuda_cache_find(const cuda_cache *c, const void *key, size_t len);
void cuda_cache_put(cuda_cache *c, const void *key, size_t len, void *value);
void cuda_cache_free(cuda_cache *c);

/* Per-op implementations */
int cuda_conv_forward(cuda_backend *be, nb_node *n);
int cuda_conv_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
void cuda_conv_plan_free(void *plan);
int cuda_linear_forward(cuda_backend *be, nb_node *n);
int cuda_linear_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cuda_bn_forward(cuda_backend *be, nb_node *n);
int cuda_bn_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cuda_pool_forward(cuda_backend *be, nb_node *n);
int cuda_pool_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cuda_pointwise_forward(cuda_backend *be, nb_node *n); /* activations, add, scale, dropout */
int cuda_pointwise_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cuda_shape_forward(cuda_backend *be, nb_node *n); /* mul_channel, channel shuffle */
int cuda_shape_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cuda_loss_forward(cuda_backend *be, nb_node *n); /* softmax, log-softmax, losses */
int cuda_loss_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cuda_multibox_forward(cuda_backend *be, nb_node *n); /* on host copies */
int cuda_fake_quant_forward(cuda_backend *be, nb_node *n);
int cuda_fake_quant_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cuda_multibox_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);

/* Kernels over whole buffers (the backend table's element-wise entries) */
int cuda_fill(nb_backend *be, nb_tensor *t, double v);
int cuda_axpby(nb_backend *be, nb_tensor *y, float a, const nb_tensor *x, float b);
int cuda_mul(nb_backend *be, nb_tensor *y, const nb_tensor *x);
int cuda_sum_squares(nb_backend *be, const nb_tensor *t, double *out);
int cuda_rng_fill(nb_backend *be, nb_tensor *t, const nb_rng_fill *spec);
int cuda_sgd_step(nb_backend *be, const nb_sgd_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *buf);
int cuda_adam_step(nb_backend *be, const nb_adam_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *m,
                   nb_tensor *v);
int cuda_counter_add(nb_backend *be, nb_tensor *t, int64_t v);
int cuda_sum_abs(nb_backend *be, const nb_tensor *t, double threshold, double *sum, int64_t *count);
int cuda_sign_codes(nb_backend *be, nb_tensor *v, nb_tensor *codes, double threshold, float alpha);
int cuda_abs_mul_add(nb_backend *be, nb_tensor *acc, const nb_tensor *a, const nb_tensor *b);
int cuda_range(nb_backend *be, const nb_tensor *t, double *lo, double *hi);
int cuda_bn_fold(nb_backend *be, nb_tensor *sf, nb_tensor *inv, const nb_tensor *gamma, const nb_tensor *var, float eps);

#endif
