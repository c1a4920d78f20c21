/* Tensor headers, storage lifetime and host transfers. Headers and storage records come from free lists on
 * the context and blocks from the backend's pool, so steady-state steps reach no system allocator. */
#include "core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/context.h"
#include "core/op_impl.h"

static nb_storage *storage_new(nb_ctx *ctx, size_t bytes) {
    nb_backend *be = ctx->backend;
    void *data = be->alloc(be, bytes);
    if (!data) {
        NB_FAIL(ctx, be->name, "out of device memory allocating %zu bytes\n  hint: lower train.batch", bytes);
        return NULL;
    }
    nb_storage *s = ctx->free_storages;
    if (s) {
        ctx->free_storages = s->next_free;
    } else {
        s = nb_xmalloc(sizeof *s);
        ctx->header_allocs++;
    }
    s->data = data;
    s->bytes = bytes;
    s->refs = 1;
    s->next_free = NULL;
    return s;
}

static void storage_release(nb_ctx *ctx, nb_storage *s) {
    if (!s || --s->refs > 0) return;
    ctx->backend->release(ctx->backend, s->data, s->bytes);
    s->data = NULL;
    s->next_free = ctx->free_storages;
    ctx->free_storages = s;
}

void nb_set_contiguous_strides(nb_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

nb_tensor *nb_tensor_header(nb_ctx *ctx, nb_dtype dtype, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > NB_MAX_DIMS) {
        NB_FAIL(ctx, "tensor", "%d dimensions requested; nibble supports 0 to %d", ndim, NB_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            NB_FAIL(ctx, "tensor", "dimension %d is %lld; sizes must be >= 0", i, (long long)shape[i]);
            return NULL;
        }
    }
    nb_tensor *t = ctx->free_tensors;
    if (t) {
        ctx->free_tensors = t->next_free;
    } else {
        t = nb_xmalloc(sizeof *t);
        ctx->header_allocs++;
    }
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    nb_set_contiguous_strides(t);
    t->refs = 1;
    t->is_leaf = true;
    return t;
}

int64_t nb_numel(const nb_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t nb_tensor_bytes(const nb_tensor *t) { return (size_t)nb_numel(t) * nb_dtype_size(t->dtype); }

bool nb_is_contiguous(const nb_tensor *t) {
    if (t->layout != NB_LAYOUT_PLAIN) return false;
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool nb_same_shape(const nb_tensor *a, const nb_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

int nb_tensor_alloc(nb_tensor *t, int layout) {
    nb_backend *be = t->ctx->backend;
    /* a backend's layout may be a blocking of one element type: a tensor of another type asked to take it (an
     * f32 operand arranged like its bf16 partner) takes the same blocking in its own type, and its size */
    if (layout != NB_LAYOUT_PLAIN && be->layout_as && (layout = be->layout_as(be, layout, t->dtype)) < 0) return -1;
    t->layout = layout;
    t->offset = 0;
    if (layout == NB_LAYOUT_PLAIN) nb_set_contiguous_strides(t);
    size_t bytes = layout == NB_LAYOUT_PLAIN ? nb_tensor_bytes(t) : be->layout_bytes(be, t);
    nb_storage *s = storage_new(t->ctx, bytes);
    if (!s) return -1;
    storage_release(t->ctx, t->storage);
    t->storage = s;
    t->data_released = false;
    return 0;
}

void nb_share_storage(nb_tensor *dst, const nb_tensor *src) {
    dst->storage = src->storage;
    dst->storage->refs++;
    dst->layout = src->layout;
    dst->offset = src->offset;
    memcpy(dst->stride, src->stride, sizeof dst->stride);
}

void *nb_data(const nb_tensor *t) {
    if (!t->storage) {
        NB_FAIL(t->ctx, "tensor",
                "%s %s has no data: %s",
                t->name[0] ? t->name : "tensor", NB_SHAPE(t),
                t->data_released ? "backward released it after its last use\n  hint: read activations before "
                                   "nb_backward, or mark them with nb_keep"
                                 : "it was never allocated");
        return NULL;
    }
    return (char *)t->storage->data + t->offset * (int64_t)nb_dtype_size(t->dtype);
}

void nb_retain(nb_tensor *t) {
    if (t) t->refs++;
}

void nb_release(nb_tensor *t) {
    if (!t) return;
    NB_ASSERT(t->refs > 0);
    if (--t->refs > 0) return;
    nb_ctx *ctx = t->ctx;
    storage_release(ctx, t->storage);
    t->storage = NULL;
    if (t->grad) nb_release(t->grad);
    t->grad = NULL;
    if (t->lowp) nb_release(t->lowp);
    t->lowp = NULL;
    t->next_free = ctx->free_tensors;
    ctx->free_tensors = t;
}

static nb_tensor *new_alloc(nb_ctx *ctx, nb_dtype dtype, int ndim, const int64_t *shape, int layout) {
    nb_tensor *t = nb_tensor_header(ctx, dtype, ndim, shape);
    if (!t) return NULL;
    if (nb_tensor_alloc(t, layout) != 0) {
        nb_release(t);
        return NULL;
    }
    return t;
}

nb_tensor *nb_tensor_new(nb_ctx *ctx, nb_dtype dtype, int ndim, const int64_t *shape) {
    nb_tensor *t = new_alloc(ctx, dtype, ndim, shape, NB_LAYOUT_PLAIN);
    if (t && ctx->backend->fill(ctx->backend, t, 0.0) != 0) {
        nb_release(t);
        return NULL;
    }
    return t;
}

nb_tensor *nb_tensor_from_host(nb_ctx *ctx, nb_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    nb_tensor *t = new_alloc(ctx, dtype, ndim, shape, NB_LAYOUT_PLAIN);
    if (!t) return NULL;
    size_t bytes = nb_tensor_bytes(t);
    if (bytes && ctx->backend->upload(ctx->backend, nb_data(t), data, bytes) != 0) {
        nb_release(t);
        return NULL;
    }
    return t;
}

nb_tensor *nb_tensor_scalar(nb_ctx *ctx, float value) { return nb_tensor_from_host(ctx, NB_F32, 0, NULL, &value); }

nb_tensor *nb_tensor_like(const nb_tensor *src) {
    nb_ctx *ctx = src->ctx;
    nb_tensor *t = new_alloc(ctx, src->dtype, src->ndim, src->shape, src->layout);
    if (t && ctx->backend->fill(ctx->backend, t, 0.0) != 0) {
        nb_release(t);
        return NULL;
    }
    return t;
}

nb_tensor *nb_tensor_clone(const nb_tensor *src) {
    nb_ctx *ctx = src->ctx;
    nb_tensor *t = new_alloc(ctx, src->dtype, src->ndim, src->shape, src->layout);
    if (t && ctx->backend->relayout(ctx->backend, t, src) != 0) {
        nb_release(t);
        return NULL;
    }
    return t;
}

int nb_tensor_to_host(const nb_tensor *t, void *dst, size_t bytes) {
    nb_ctx *ctx = t->ctx;
    nb_backend *be = ctx->backend;
    NB_REQUIRE(ctx, bytes == nb_tensor_bytes(t), -1, "tensor_to_host",
               "%s %s holds %zu bytes but the destination has %zu", t->name[0] ? t->name : "tensor", NB_SHAPE(t),
               nb_tensor_bytes(t), bytes);
    if (bytes == 0) return 0;
    if (nb_is_contiguous(t)) {
        void *p = nb_data(t);
        return p ? be->download(be, dst, p, bytes) : -1;
    }
    if (!nb_data(t)) return -1;
    nb_tensor *tmp = new_alloc(ctx, t->dtype, t->ndim, t->shape, NB_LAYOUT_PLAIN);
    if (!tmp) return -1;
    int rc = be->relayout(be, tmp, t);
    if (rc == 0) rc = be->download(be, dst, nb_data(tmp), bytes);
    nb_release(tmp);
    return rc;
}

int nb_tensor_copy_from_host(nb_tensor *t, const void *src, size_t bytes) {
    nb_ctx *ctx = t->ctx;
    nb_backend *be = ctx->backend;
    NB_REQUIRE(ctx, bytes == nb_tensor_bytes(t), -1, "tensor_copy_from_host",
               "%s %s holds %zu bytes but the source has %zu", t->name[0] ? t->name : "tensor", NB_SHAPE(t),
               nb_tensor_bytes(t), bytes);
    t->version++;
    if (bytes == 0) return 0;
    if (nb_is_contiguous(t)) {
        void *p = nb_data(t);
        return p ? be->upload(be, p, src, bytes) : -1;
    }
    if (!nb_data(t)) return -1;
    nb_tensor *tmp = nb_tensor_from_host(ctx, t->dtype, t->ndim, t->shape, src);
    if (!tmp) return -1;
    int rc = be->relayout(be, t, tmp);
    nb_release(tmp);
    return rc;
}

int nb_tensor_copy(nb_tensor *dst, const nb_tensor *src) {
    nb_ctx *ctx = dst->ctx;
    NB_REQUIRE(ctx, nb_same_shape(dst, src) && dst->dtype == src->dtype, -1, "tensor_copy",
               "source %s does not match destination %s", NB_SHAPE(src), NB_SHAPE(dst));
    if (!nb_data(dst) || !nb_data(src)) return -1;
    dst->version++;
    return ctx->backend->relayout(ctx->backend, dst, src);
}

float nb_item(const nb_tensor *t) {
    float v = 0.0f;
    if (t->dtype != NB_F32 || nb_numel(t) != 1) {
        NB_FAIL(t->ctx, "item", "needs a one-element f32 tensor, got %s", NB_SHAPE(t));
        return 0.0f / 0.0f;
    }
    if (nb_tensor_to_host(t, &v, sizeof v) != 0) return 0.0f / 0.0f;
    return v;
}

int nb_fill(nb_tensor *t, double value) {
    nb_ctx *ctx = t->ctx;
    if (!nb_data(t)) return -1;
    t->version++;
    if (t->layout == NB_LAYOUT_PLAIN || value == 0.0) return ctx->backend->fill(ctx->backend, t, value);
    /* a blocked layout may have padding that must stay zero: fill plain, then convert */
    nb_tensor *tmp = new_alloc(ctx, t->dtype, t->ndim, t->shape, NB_LAYOUT_PLAIN);
    if (!tmp) return -1;
    int rc = ctx->backend->fill(ctx->backend, tmp, value);
    if (rc == 0) rc = ctx->backend->relayout(ctx->backend, t, tmp);
    nb_release(tmp);
    return rc;
}

void nb_set_requires_grad(nb_tensor *t, bool on) {
    if (!t) return;
    if (on && !nb_dtype_is_float(t->dtype)) {
        NB_FAIL(t->ctx, "set_requires_grad", "%s %s is not f32 or bf16; only those carry gradients",
                t->name[0] ? t->name : "tensor", NB_SHAPE(t));
        return;
    }
    t->requires_grad = on;
}

void nb_set_name(nb_tensor *t, const char *name) {
    if (t) snprintf(t->name, sizeof t->name, "%s", name ? name : "");
}

void nb_zero_grad(nb_tensor *t) {
    if (!t || !t->grad) return;
    nb_release(t->grad);
    t->grad = NULL;
}

static int relayout_one(nb_tensor *t, int layout) {
    if (t->layout == layout && (layout != NB_LAYOUT_PLAIN || nb_is_contiguous(t))) return 0;
    nb_ctx *ctx = t->ctx;
    if (!nb_data(t)) return -1;
    nb_tensor *tmp = new_alloc(ctx, t->dtype, t->ndim, t->shape, layout);
    if (!tmp) return -1;
    if (ctx->backend->relayout(ctx->backend, tmp, t) != 0) {
        nb_release(tmp);
        return -1;
    }
    /* swap storage: t keeps its identity (optimizers and tapes hold the pointer) */
    nb_storage *old = t->storage;
    t->storage = tmp->storage;
    t->layout = layout;
    t->offset = 0;
    memcpy(t->stride, tmp->stride, sizeof t->stride);
    tmp->storage = old;
    nb_release(tmp);
    return 0;
}

int nb_activation_layout(const nb_tensor *t) { return t->ctx->backend->activation_layout(t->ctx->backend, t); }

int nb_tensor_relayout(nb_tensor *t, int layout) {
    if (relayout_one(t, layout) != 0) return -1;
    if (t->grad && relayout_one(t->grad, layout) != 0) return -1;
    return 0;
}
