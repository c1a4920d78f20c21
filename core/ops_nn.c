/* Front-ends of the network ops: convolution, linear, batch norm, activations, pooling, dropout.
 * Each validates shapes and attributes, fills in defaults and hands the node to the backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/op_impl.h"

static int def1(int v) { return v ? v : 1; }

nb_tensor *nb_conv2d(nb_tensor *x, nb_tensor *w, nb_tensor *b, nb_conv_attr a) {
    if (!x || !w) return NULL;
    nb_ctx *ctx = x->ctx;
    if (nb_check_float(ctx, "conv2d", "input", x, 4) || nb_check_float(ctx, "conv2d", "weight", w, 4)) return NULL;
    for (int i = 0; i < 2; i++) {
        a.stride[i] = def1(a.stride[i]);
        a.dilation[i] = def1(a.dilation[i]);
        NB_REQUIRE(ctx, a.stride[i] > 0 && a.dilation[i] > 0 && a.pad[i] >= 0, NULL, "conv2d",
                   "stride %d, dilation %d and padding %d must be positive (padding >= 0)", a.stride[i],
                   a.dilation[i], a.pad[i]);
    }
    a.groups = def1(a.groups);
    int64_t C = x->shape[1], O = w->shape[0], g = a.groups;
    NB_REQUIRE(ctx, g > 0 && C % g == 0 && O % g == 0, NULL, "conv2d",
               "groups=%lld must divide the input channels of %s and the output channels of weight %s",
               (long long)g, NB_SHAPE(x), NB_SHAPE(w));
    NB_REQUIRE(ctx, w->shape[1] * g == C, NULL, "conv2d",
               "input %s has %lld channels, but weight %s with groups=%lld expects %lld", NB_SHAPE(x),
               (long long)C, NB_SHAPE(w), (long long)g, (long long)(w->shape[1] * g));
    if (b) {
        if (nb_check_float(ctx, "conv2d", "bias", b, 1)) return NULL;
        NB_REQUIRE(ctx, b->shape[0] == O, NULL, "conv2d", "bias %s must have %lld elements (weight %s)",
                   NB_SHAPE(b), (long long)O, NB_SHAPE(w));
    }
    int64_t out[2];
    for (int i = 0; i < 2; i++) {
        int64_t in = x->shape[2 + i], k = w->shape[2 + i];
        out[i] = (in + 2 * a.pad[i] - a.dilation[i] * (k - 1) - 1) / a.stride[i] + 1;
        NB_REQUIRE(ctx, in + 2 * a.pad[i] >= a.dilation[i] * (k - 1) + 1, NULL, "conv2d",
                   "kernel %s (dilation %d) is larger than the padded input %s (padding %d)", NB_SHAPE(w),
                   a.dilation[i], NB_SHAPE(x), a.pad[i]);
    }
    nb_tensor *in[3] = {x, w, b};
    nb_node *n = nb_op_begin(ctx, NB_OP_CONV2D, in, 3, 1);
    n->attr.conv = a;
    int64_t ys[4] = {x->shape[0], O, out[0], out[1]};
    nb_op_out(n, 0, NB_F32, 4, ys);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_linear(nb_tensor *x, nb_tensor *w, nb_tensor *b) {
    if (!x || !w) return NULL;
    nb_ctx *ctx = x->ctx;
    if (nb_check_float(ctx, "linear", "input", x, 2) || nb_check_float(ctx, "linear", "weight", w, 2)) return NULL;
    NB_REQUIRE(ctx, x->shape[1] == w->shape[1], NULL, "linear",
               "input %s has %lld features, but weight %s expects %lld\n  hint: weight is [out_features, "
               "in_features] as in torch.nn.Linear",
               NB_SHAPE(x), (long long)x->shape[1], NB_SHAPE(w), (long long)w->shape[1]);
    if (b) {
        if (nb_check_float(ctx, "linear", "bias", b, 1)) return NULL;
        NB_REQUIRE(ctx, b->shape[0] == w->shape[0], NULL, "linear", "bias %s must have %lld elements (weight %s)",
                   NB_SHAPE(b), (long long)w->shape[0], NB_SHAPE(w));
    }
    x = nb_to_plain(x);
    if (!nb_is_contiguous(w)) w = nb_to_plain(w);
    if (b && !nb_is_contiguous(b)) b = nb_to_plain(b);
    if (!x || !w) return NULL;
    nb_tensor *in[3] = {x, w, b};
    nb_node *n = nb_op_begin(ctx, NB_OP_LINEAR, in, 3, 1);
    int64_t ys[2] = {x->shape[0], w->shape[0]};
    nb_op_out(n, 0, NB_F32, 2, ys);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_batchnorm2d(nb_tensor *x, nb_tensor *weight, nb_tensor *bias, nb_tensor *running_mean,
                          nb_tensor *running_var, nb_bn_attr a) {
    if (!x) return NULL;
    nb_ctx *ctx = x->ctx;
    if (nb_check_float(ctx, "batchnorm2d", "input", x, 4)) return NULL;
    int64_t C = x->shape[1];
    nb_tensor *vecs[4] = {weight, bias, running_mean, running_var};
    static const char *const names[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        nb_tensor *v = vecs[i];
        if (!v) continue;
        if (nb_check_float(ctx, "batchnorm2d", names[i], v, 1)) return NULL;
        NB_REQUIRE(ctx, v->shape[0] == C && nb_is_contiguous(v), NULL, "batchnorm2d",
                   "%s %s must be a contiguous vector of %lld elements for input %s", names[i], NB_SHAPE(v),
                   (long long)C, NB_SHAPE(x));
    }
    NB_REQUIRE(ctx, (weight == NULL) == (bias == NULL), NULL, "batchnorm2d",
               "weight and bias must both be given or both be absent");
    NB_REQUIRE(ctx, (running_mean == NULL) == (running_var == NULL), NULL, "batchnorm2d",
               "running_mean and running_var must both be given or both be absent");
    NB_REQUIRE(ctx, a.training || running_mean, NULL, "batchnorm2d",
               "evaluation mode needs running statistics for input %s", NB_SHAPE(x));
    if (a.eps == 0.0f) a.eps = 1e-5f;
    NB_REQUIRE(ctx, a.eps > 0.0f && a.momentum >= 0.0f && a.momentum <= 1.0f, NULL, "batchnorm2d",
               "eps %g must be > 0 and momentum %g within [0, 1]", (double)a.eps, (double)a.momentum);
    if (a.training) {
        int64_t per_channel = x->shape[0] * x->shape[2] * x->shape[3];
        NB_REQUIRE(ctx, per_channel > 1, NULL, "batchnorm2d",
                   "training needs more than one value per channel, got input %s\n  hint: use a batch of "
                   "more than one sample",
                   NB_SHAPE(x));
    }
    if (x->layout == NB_LAYOUT_PLAIN && !nb_is_contiguous(x)) x = nb_to_plain(x);
    if (!x) return NULL;
    nb_tensor *in[5] = {x, weight, bias, running_mean, running_var};
    a.sync = a.training && ctx->sync_bn && ctx->comm;
    nb_node *n = nb_op_begin(ctx, NB_OP_BATCHNORM2D, in, 5, 1);
    n->attr.bn = a;
    nb_op_out(n, 0, NB_F32, 4, x->shape);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_eltwise_node(nb_op op, nb_tensor *x, float alpha) {
    if (!x) return NULL;
    nb_ctx *ctx = x->ctx;
    if (nb_check_float(ctx, nb_op_name(op), "input", x, -1)) return NULL;
    if (x->layout == NB_LAYOUT_PLAIN && !nb_is_contiguous(x)) x = nb_to_plain(x);
    if (!x) return NULL;
    nb_node *n = nb_op_begin(ctx, op, &x, 1, 1);
    n->attr.eltwise.alpha = alpha;
    nb_op_out(n, 0, NB_F32, x->ndim, x->shape);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_relu(nb_tensor *x) { return nb_eltwise_node(NB_OP_RELU, x, 0.0f); }
nb_tensor *nb_relu6(nb_tensor *x) { return nb_eltwise_node(NB_OP_RELU6, x, 0.0f); }
nb_tensor *nb_leaky_relu(nb_tensor *x, float slope) { return nb_eltwise_node(NB_OP_LEAKY_RELU, x, slope); }
nb_tensor *nb_sigmoid(nb_tensor *x) { return nb_eltwise_node(NB_OP_SIGMOID, x, 0.0f); }
nb_tensor *nb_hardswish(nb_tensor *x) { return nb_eltwise_node(NB_OP_HARDSWISH, x, 0.0f); }
nb_tensor *nb_silu(nb_tensor *x) { return nb_eltwise_node(NB_OP_SILU, x, 0.0f); }

static nb_tensor *pool(nb_op op, nb_tensor *x, nb_pool_attr a) {
    if (!x) return NULL;
    nb_ctx *ctx = x->ctx;
    const char *name = nb_op_name(op);
    if (nb_check_float(ctx, name, "input", x, 4)) return NULL;
    if (op == NB_OP_GLOBAL_AVGPOOL) {
        a = (nb_pool_attr){.kernel = {(int)x->shape[2], (int)x->shape[3]}};
    }
    int64_t out[2];
    for (int i = 0; i < 2; i++) {
        if (!a.stride[i]) a.stride[i] = a.kernel[i];
        a.dilation[i] = def1(a.dilation[i]);
        NB_REQUIRE(ctx, a.kernel[i] > 0 && a.stride[i] > 0 && a.pad[i] >= 0, NULL, name,
                   "kernel %d, stride %d must be positive and padding %d >= 0", a.kernel[i], a.stride[i], a.pad[i]);
        NB_REQUIRE(ctx, 2 * a.pad[i] <= a.kernel[i], NULL, name,
                   "padding %d must be at most half the kernel %d (as in PyTorch)", a.pad[i], a.kernel[i]);
        int64_t in = x->shape[2 + i], span = (int64_t)a.dilation[i] * (a.kernel[i] - 1) + 1;
        NB_REQUIRE(ctx, in + 2 * a.pad[i] >= span, NULL, name, "window %lld is larger than the padded input %s",
                   (long long)span, NB_SHAPE(x));
        int64_t num = in + 2 * a.pad[i] - span;
        out[i] = (a.ceil_mode ? (num + a.stride[i] - 1) / a.stride[i] : num / a.stride[i]) + 1;
        /* PyTorch: the last window must start inside the input or the left padding */
        if (a.ceil_mode && (out[i] - 1) * a.stride[i] >= in + a.pad[i]) out[i]--;
    }
    NB_REQUIRE(ctx, !(a.ceil_mode && op != NB_OP_MAXPOOL2D), NULL, name, "ceil_mode is supported for max pooling only");
    if (x->layout == NB_LAYOUT_PLAIN && !nb_is_contiguous(x)) x = nb_to_plain(x);
    if (!x) return NULL;
    nb_node *n = nb_op_begin(ctx, op, &x, 1, 1);
    n->attr.pool = a;
    int64_t ys[4] = {x->shape[0], x->shape[1], out[0], out[1]};
    nb_op_out(n, 0, NB_F32, 4, ys);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_maxpool2d(nb_tensor *x, nb_pool_attr a) { return pool(NB_OP_MAXPOOL2D, x, a); }
nb_tensor *nb_avgpool2d(nb_tensor *x, nb_pool_attr a) { return pool(NB_OP_AVGPOOL2D, x, a); }
nb_tensor *nb_global_avgpool(nb_tensor *x) { return pool(NB_OP_GLOBAL_AVGPOOL, x, (nb_pool_attr){0}); }

nb_tensor *nb_spatial_map(nb_tensor *x, nb_tensor *m, int oh, int ow) {
    if (!x || !m) return NULL;
    if (nb_check_float(x->ctx, "spatial_map", "input", x, 4)) return NULL;
    int64_t N = x->shape[0], C = x->shape[1], px = x->shape[2] * x->shape[3];
    NB_REQUIRE(x->ctx, m->ndim == 2 && m->shape[0] == (int64_t)oh * ow && m->shape[1] == px, NULL, "spatial_map",
               "a map %s cannot take %s to %dx%d pixels", NB_SHAPE(m), NB_SHAPE(x), oh, ow);
    nb_tensor *y = nb_linear(nb_reshape(x, 2, (int64_t[]){N * C, px}), m, NULL);
    return nb_reshape(y, 4, (int64_t[]){N, C, oh, ow});
}

/* nb_spatial_map by a matrix m of host values (taken and freed) */
static nb_tensor *spatial_map(nb_tensor *x, int oh, int ow, float *m) {
    int64_t px = x->shape[2] * x->shape[3];
    nb_tensor *mt = nb_tensor_from_host(x->ctx, NB_F32, 2, (int64_t[]){(int64_t)oh * ow, px}, m);
    free(m);
    nb_tensor *y = nb_spatial_map(x, mt, oh, ow);
    nb_release(mt); /* the tape keeps its own reference */
    return y;
}

/* what adaptive pooling and upsampling both need: a 4-d float input and a non-empty output size */
static int check_resize(nb_ctx *ctx, const char *op, const nb_tensor *x, int oh, int ow) {
    if (nb_check_float(ctx, op, "input", x, 4)) return -1;
    NB_REQUIRE(ctx, oh > 0 && ow > 0 && x->shape[2] > 0 && x->shape[3] > 0, -1, op,
               "output %dx%d and input %s must be non-empty", oh, ow, NB_SHAPE(x));
    return 0;
}

/* Composed from other ops, so every backend has it: the identity, an ordinary average pooling when the
 * windows tile the input, and otherwise the linear map that averages each window ([oh*ow, H*W] weights),
 * which is what the general case is. */
nb_tensor *nb_adaptive_avgpool(nb_tensor *x, int oh, int ow) {
    if (!x) return NULL;
    if (check_resize(x->ctx, "adaptive_avgpool", x, oh, ow)) return NULL;
    int64_t H = x->shape[2], W = x->shape[3];
    if (H == oh && W == ow) return x;
    if (H % oh == 0 && W % ow == 0)
        return nb_avgpool2d(x, (nb_pool_attr){.kernel = {(int)(H / oh), (int)(W / ow)}});
    int64_t cells = (int64_t)oh * ow, px = H * W;
    float *p = nb_xcalloc((size_t)(cells * px), sizeof(float));
    for (int64_t i = 0; i < oh; i++) {
        int64_t h0 = i * H / oh, h1 = ((i + 1) * H + oh - 1) / oh;
        for (int64_t j = 0; j < ow; j++) {
            int64_t w0 = j * W / ow, w1 = ((j + 1) * W + ow - 1) / ow;
            float v = 1.0f / (float)((h1 - h0) * (w1 - w0));
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++) p[(i * ow + j) * px + h * W + w] = v;
        }
    }
    return spatial_map(x, oh, ow, p);
}

nb_tensor *nb_upsample_nearest(nb_tensor *x, int oh, int ow) {
    if (!x) return NULL;
    if (check_resize(x->ctx, "upsample_nearest", x, oh, ow)) return NULL;
    int64_t H = x->shape[2], W = x->shape[3];
    if (H == oh && W == ow) return x;
    int64_t cells = (int64_t)oh * ow, px = H * W;
    float *p = nb_xcalloc((size_t)(cells * px), sizeof(float));
    float sh = (float)H / (float)oh, sw = (float)W / (float)ow;
    for (int64_t i = 0; i < oh; i++) {
        int64_t h = (int64_t)floorf((float)i * sh);
        if (h > H - 1) h = H - 1;
        for (int64_t j = 0; j < ow; j++) {
            int64_t w = (int64_t)floorf((float)j * sw);
            if (w > W - 1) w = W - 1;
            p[(i * ow + j) * px + h * W + w] = 1.0f;
        }
    }
    return spatial_map(x, oh, ow, p);
}

nb_tensor *nb_dropout(nb_tensor *x, float p, int training) {
    if (!x) return NULL;
    nb_ctx *ctx = x->ctx;
    NB_REQUIRE(ctx, p >= 0.0f && p < 1.0f, NULL, "dropout", "probability %g must be in [0, 1)", (double)p);
    if (nb_check_float(ctx, "dropout", "input", x, -1)) return NULL;
    if (!training || p == 0.0f) return x;
    x = nb_to_plain(x);
    if (!x) return NULL;
    nb_node *n = nb_op_begin(ctx, NB_OP_DROPOUT, &x, 1, 1);
    n->attr.dropout = (nb_dropout_attr){.p = p, .seed = ctx->seed, .stream = ctx->stream, .offset = ctx->offset};
    ctx->offset += (uint64_t)nb_numel(x);
    nb_op_out(n, 0, NB_F32, x->ndim, x->shape);
    return nb_op_finish1(ctx, n);
}
