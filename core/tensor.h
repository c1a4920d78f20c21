/* The tensor: a shape, strides and dtype over refcounted device storage that only the backend touches.
 * layout 0 is plain strided memory; any other value names a backend layout (e.g. oneDNN's nChw8c blocking)
 * whose bytes are opaque to the core. */
#ifndef NB_TENSOR_H
#define NB_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"

#define NB_MAX_DIMS 6
#define NB_NAME_MAX 96
#define NB_LAYOUT_PLAIN 0

typedef struct nb_ctx nb_ctx;

typedef struct nb_storage {
    void *data; /* device pointer: never dereferenced outside a backend */
    size_t bytes;
    int refs;
    struct nb_storage *next_free;
} nb_storage;

typedef struct nb_tensor {
    nb_ctx *ctx;
    nb_dtype dtype;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t stride[NB_MAX_DIMS]; /* in elements; meaningful for the plain layout only */
    int64_t offset;              /* in elements into storage */
    int layout;
    nb_storage *storage; /* NULL before allocation and after backward released the data */
    int refs;
    uint32_t version; /* bumped by every in-place write, so backward can detect stale saved tensors */
    bool requires_grad;
    bool is_leaf;     /* made by the user (parameter, input), not by an op */
    bool retain_grad; /* keep the gradient of a non-leaf after backward */
    bool in_scope;    /* one reference is held by the context's scope */
    bool keep;        /* never release this tensor's data early during backward */
    bool data_released;
    struct nb_tensor *grad;
    /* a parameter's low-precision copy for mixed-precision convolutions and linear layers (the backend makes
     * it in the layout its kernels read), valid while lowp_version == version: the weight is cast once per
     * step, not once per use */
    struct nb_tensor *lowp;
    uint32_t lowp_version;
    char name[NB_NAME_MAX];
    struct nb_tensor *next_free;
} nb_tensor;

/* Tensors made here belong to the caller (release with nb_release). Shapes are given as ndim + array. */
nb_tensor *nb_tensor_new(nb_ctx *ctx, nb_dtype dtype, int ndim, const int64_t *shape); /* zero-filled */
nb_tensor *nb_tensor_from_host(nb_ctx *ctx, nb_dtype dtype, int ndim, const int64_t *shape, const void *data);
nb_tensor *nb_tensor_scalar(nb_ctx *ctx, float value);
nb_tensor *nb_tensor_like(const nb_tensor *t); /* same shape, dtype and layout, zero-filled */
nb_tensor *nb_tensor_clone(const nb_tensor *t); /* same shape, dtype and layout, copied data, no grad */

void nb_retain(nb_tensor *t);
void nb_release(nb_tensor *t);

int64_t nb_numel(const nb_tensor *t);
bool nb_is_contiguous(const nb_tensor *t); /* plain layout with row-major strides */
bool nb_same_shape(const nb_tensor *a, const nb_tensor *b);
size_t nb_tensor_bytes(const nb_tensor *t); /* logical bytes: numel * dtype size */

/* Copy between host memory (plain, row-major) and the tensor, whatever its layout or device. */
int nb_tensor_to_host(const nb_tensor *t, void *dst, size_t bytes);
int nb_tensor_copy_from_host(nb_tensor *t, const void *src, size_t bytes);
int nb_tensor_copy(nb_tensor *dst, const nb_tensor *src); /* same shape; converts layout */
float nb_item(const nb_tensor *t);                         /* value of a one-element f32 tensor */
int nb_fill(nb_tensor *t, double value);

void nb_set_requires_grad(nb_tensor *t, bool on);
void nb_set_name(nb_tensor *t, const char *name);
void nb_zero_grad(nb_tensor *t); /* drops the gradient */

/* Convert storage to another layout in place (same logical content); used to keep weights in the layout
 * the backend prefers. The gradient, if any, is converted too. */
int nb_tensor_relayout(nb_tensor *t, int layout);
/* The layout the backend's convolutions produce for an activation of t's shape (what a network would hold:
 * benchmarks and tests start from it). */
int nb_activation_layout(const nb_tensor *t);

/* Storage management used by ops and backends. */
int nb_tensor_alloc(nb_tensor *t, int layout); /* sets layout, allocates (uninitialised) storage */
nb_tensor *nb_tensor_header(nb_ctx *ctx, nb_dtype dtype, int ndim, const int64_t *shape); /* no storage */
void nb_set_contiguous_strides(nb_tensor *t);
void *nb_data(const nb_tensor *t); /* device pointer to element 0 (storage + offset) */

#endif
