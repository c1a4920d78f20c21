/* The ops of impl VIEW (core/op_table.h), which the core implements on top of the backend's relayout: reshape
 * and slice (views sharing storage), relayout (a copy into another layout), cast (a copy into another element
 * type, in the same arrangement) and concatenation (each part copied into its place). Also the argument checks
 * the other op files share. */
#include <string.h>

#include "core/op_impl.h"

int nb_check_float(nb_ctx *ctx, const char *op, const char *what, const nb_tensor *t, int ndim) {
    if (!nb_dtype_is_float(t->dtype)) {
        NB_FAIL(ctx, op, "%s %s must be f32 (or bf16), got %s", what, NB_SHAPE(t), nb_dtype_name(t->dtype));
        return -1;
    }
    if (ndim >= 0 && t->ndim != ndim) {
        NB_FAIL(ctx, op, "%s must have %d dimensions, got %s", what, ndim, NB_SHAPE(t));
        return -1;
    }
    return 0;
}

int nb_norm_axis(nb_ctx *ctx, const char *op, const nb_tensor *t, int axis) {
    int a = axis < 0 ? axis + t->ndim : axis;
    if (a < 0 || a >= t->ndim) {
        NB_FAIL(ctx, op, "axis %d is out of range for %s (valid: %d to %d)", axis, NB_SHAPE(t), -t->ndim,
                t->ndim - 1);
        return -1;
    }
    return a;
}

static int make_view(nb_tensor *out, const nb_tensor *in, int64_t offset) {
    if (!nb_data(in)) return -1;
    out->storage = in->storage;
    out->storage->refs++;
    out->layout = NB_LAYOUT_PLAIN;
    out->offset = offset;
    return 0;
}

/* The region of whole (plain) that part k of a concatenation occupies: a strided view sharing whole's storage. */
static nb_tensor *concat_part_view(const nb_node *n, nb_tensor *whole, int k) {
    int a = n->attr.axis.axis;
    const nb_tensor *part = n->in[k];
    nb_tensor *v = nb_tensor_header(whole->ctx, whole->dtype, part->ndim, part->shape);
    if (!v) return NULL;
    memcpy(v->stride, whole->stride, sizeof v->stride);
    int64_t offset;
    if (n->attr.axis.interleave) {
        v->stride[a] *= n->n_in; /* every n-th channel, from channel k */
        offset = k * whole->stride[a];
    } else {
        int64_t before = 0;
        for (int i = 0; i < k; i++) before += n->in[i]->shape[a];
        offset = before * whole->stride[a];
    }
    if (make_view(v, whole, whole->offset + offset) != 0) {
        nb_release(v);
        return NULL;
    }
    return v;
}

int nb_view_forward(nb_ctx *ctx, nb_node *n) {
    nb_tensor *x = n->in[0], *y = n->out[0];
    switch (n->op) {
    case NB_OP_RESHAPE: /* x is plain contiguous (the front-end made sure) */
        nb_set_contiguous_strides(y);
        return make_view(y, x, x->offset);
    case NB_OP_SLICE: {
        int a = n->attr.slice.axis;
        memcpy(y->stride, x->stride, sizeof y->stride);
        return make_view(y, x, x->offset + n->attr.slice.start * x->stride[a]);
    }
    case NB_OP_RELAYOUT:
        if (nb_tensor_alloc(y, n->attr.relayout.layout) != 0) return -1;
        return ctx->backend->relayout(ctx->backend, y, x);
    case NB_OP_CAST: {
        nb_backend *be = ctx->backend;
        int layout = x->layout == NB_LAYOUT_PLAIN || !be->layout_as ? NB_LAYOUT_PLAIN : be->layout_as(be, x->layout, y->dtype);
        if (layout < 0 || nb_tensor_alloc(y, layout) != 0) return -1;
        return be->relayout(be, y, x);
    }
    case NB_OP_CONCAT:
        if (nb_tensor_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
        for (int k = 0; k < n->n_in; k++) {
            if (nb_numel(n->in[k]) == 0) continue;
            nb_tensor *v = concat_part_view(n, y, k);
            int rc = v ? ctx->backend->relayout(ctx->backend, v, n->in[k]) : -1;
            nb_release(v);
            if (rc) return -1;
        }
        return 0;
    default: return -1; /* not a view (core/dispatch.c sends only views here) */
    }
}

int nb_view_backward(nb_ctx *ctx, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_backend *be = ctx->backend;
    nb_tensor *x = n->in[0];
    switch (n->op) {
    case NB_OP_RESHAPE:
    case NB_OP_RELAYOUT:
    case NB_OP_CAST: {
        if (!gin[0]) return 0;
        if (nb_tensor_alloc(gin[0], x->layout) != 0) return -1;
        /* a cast's gradient is the output's, converted back to the input's type (and layout) */
        if (n->op != NB_OP_RESHAPE) return be->relayout(be, gin[0], gout[0]);
        /* same element order on both sides: view the gradient in the input's shape and copy */
        nb_tensor *v = nb_tensor_header(ctx, gout[0]->dtype, x->ndim, x->shape);
        if (!v || make_view(v, gout[0], gout[0]->offset) != 0) return -1;
        int rc = be->relayout(be, gin[0], v);
        nb_release(v);
        return rc;
    }
    case NB_OP_CONCAT:
        /* each part's gradient is its region of the output's, in the part's own layout */
        for (int k = 0; k < n->n_in; k++) {
            if (!gin[k]) continue;
            if (nb_tensor_alloc(gin[k], n->in[k]->layout) != 0) return -1;
            if (nb_numel(gin[k]) == 0) continue;
            nb_tensor *v = concat_part_view(n, gout[0], k);
            int rc = v ? be->relayout(be, gin[k], v) : -1;
            nb_release(v);
            if (rc) return -1;
        }
        return 0;
    case NB_OP_SLICE: {
        if (!gin[0]) return 0;
        if (nb_tensor_alloc(gin[0], NB_LAYOUT_PLAIN) != 0 || be->fill(be, gin[0], 0.0) != 0) return -1;
        int a = n->attr.slice.axis;
        nb_tensor *part = nb_tensor_header(ctx, gout[0]->dtype, x->ndim, x->shape);
        if (!part) return -1;
        part->shape[a] = n->attr.slice.len;
        memcpy(part->stride, gin[0]->stride, sizeof part->stride);
        int rc = make_view(part, gin[0], n->attr.slice.start * gin[0]->stride[a]);
        if (rc == 0) rc = be->relayout(be, part, gout[0]);
        nb_release(part);
        return rc;
    }
    default: return -1;
    }
}

nb_tensor *nb_to_layout(nb_tensor *x, int layout) {
    if (!x) return NULL;
    nb_backend *be = x->ctx->backend;
    /* another type's layout means its blocking in x's type (nb_tensor_alloc) */
    if (layout != NB_LAYOUT_PLAIN && be->layout_as && (layout = be->layout_as(be, layout, x->dtype)) < 0) return NULL;
    if (x->layout == layout && (layout != NB_LAYOUT_PLAIN || nb_is_contiguous(x))) return x;
    nb_ctx *ctx = x->ctx;
    nb_node *n = nb_op_begin(ctx, NB_OP_RELAYOUT, &x, 1, 1);
    n->attr.relayout.layout = layout;
    nb_op_out(n, 0, x->dtype, x->ndim, x->shape);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_to_plain(nb_tensor *x) { return nb_to_layout(x, NB_LAYOUT_PLAIN); }

nb_tensor *nb_cast(nb_tensor *x, nb_dtype dtype) {
    if (!x) return NULL;
    if (x->dtype == dtype) return x;
    nb_ctx *ctx = x->ctx;
    NB_REQUIRE(ctx, nb_dtype_is_float(x->dtype) && nb_dtype_is_float(dtype), NULL, "cast",
               "%s cannot become %s: casts convert between f32 and bf16", NB_SHAPE(x), nb_dtype_name(dtype));
    nb_node *n = nb_op_begin(ctx, NB_OP_CAST, &x, 1, 1);
    n->attr.cast.dtype = (int)dtype;
    nb_op_out(n, 0, dtype, x->ndim, x->shape);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_reshape(nb_tensor *x, int ndim, const int64_t *shape) {
    if (!x) return NULL;
    nb_ctx *ctx = x->ctx;
    NB_REQUIRE(ctx, ndim >= 0 && ndim <= NB_MAX_DIMS, NULL, "reshape", "%d dimensions requested for %s", ndim,
               NB_SHAPE(x));
    int64_t s[NB_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1) {
            NB_REQUIRE(ctx, infer < 0, NULL, "reshape", "more than one -1 in the new shape for %s", NB_SHAPE(x));
            infer = i;
        } else {
            /* a shape whose product overflows cannot match any tensor's element count */
            NB_REQUIRE(ctx, s[i] >= 0 && (s[i] == 0 || known <= INT64_MAX / s[i]), NULL, "reshape",
                       "size %lld at dimension %d for %s", (long long)s[i], i, NB_SHAPE(x));
            known *= s[i];
        }
    }
    int64_t total = nb_numel(x);
    if (infer >= 0) {
        NB_REQUIRE(ctx, known > 0 && total % known == 0, NULL, "reshape",
                   "cannot infer dimension %d: %lld elements of %s do not divide by %lld", infer, (long long)total,
                   NB_SHAPE(x), (long long)known);
        s[infer] = total / known;
        known *= s[infer];
    }
    NB_REQUIRE(ctx, known == total, NULL, "reshape", "%s has %lld elements; the new shape has %lld", NB_SHAPE(x),
               (long long)total, (long long)known);
    x = nb_to_plain(x);
    if (!x) return NULL;
    nb_node *n = nb_op_begin(ctx, NB_OP_RESHAPE, &x, 1, 1);
    nb_op_out(n, 0, x->dtype, ndim, s);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_flatten(nb_tensor *x) {
    if (!x) return NULL;
    NB_REQUIRE(x->ctx, x->ndim >= 1, NULL, "flatten", "needs at least one dimension, got %s", NB_SHAPE(x));
    int64_t s[2] = {x->shape[0], -1};
    if (x->shape[0] == 0) s[1] = 0;
    return nb_reshape(x, 2, s);
}

nb_tensor *nb_slice(nb_tensor *x, int axis, int64_t start, int64_t len) {
    if (!x) return NULL;
    nb_ctx *ctx = x->ctx;
    int a = nb_norm_axis(ctx, "slice", x, axis);
    if (a < 0) return NULL;
    NB_REQUIRE(ctx, start >= 0 && len >= 0 && start + len <= x->shape[a], NULL, "slice",
               "range [%lld, %lld) is outside dimension %d of %s", (long long)start, (long long)(start + len), a,
               NB_SHAPE(x));
    if (x->layout != NB_LAYOUT_PLAIN) x = nb_to_plain(x);
    if (!x) return NULL;
    nb_node *n = nb_op_begin(ctx, NB_OP_SLICE, &x, 1, 1);
    n->attr.slice = (nb_slice_attr){.axis = a, .start = start, .len = len};
    int64_t s[NB_MAX_DIMS];
    memcpy(s, x->shape, sizeof s);
    s[a] = len;
    nb_op_out(n, 0, x->dtype, x->ndim, s);
    return nb_op_finish1(ctx, n);
}

int nb_split(nb_tensor *x, int axis, const int64_t *sizes, int n, nb_tensor **outs) {
    if (!x) return -1;
    nb_ctx *ctx = x->ctx;
    int a = nb_norm_axis(ctx, "split", x, axis);
    if (a < 0) return -1;
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
    NB_REQUIRE(ctx, total == x->shape[a], -1, "split", "sizes add up to %lld but dimension %d of %s is %lld",
               (long long)total, a, NB_SHAPE(x), (long long)x->shape[a]);
    if (x->layout != NB_LAYOUT_PLAIN) x = nb_to_plain(x);
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        outs[i] = nb_slice(x, a, start, sizes[i]);
        if (!outs[i]) return -1;
        start += sizes[i];
    }
    return 0;
}
