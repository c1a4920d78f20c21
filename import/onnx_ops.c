/* The ONNX importer's rules: for each ONNX op type nibble runs, how a node becomes nibble's ops, and which of its
 * initializer inputs are trained (see onnx_graph.h). A rule reads its attributes from the node at every pass
 * (they are few) and its constant inputs from their host values. Errors say what the node asked that nibble
 * does not do; the caller adds the file, the node, its op type and the opset. A new ONNX op is a function and a
 * row of `rules` below. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arith.h"
#include "core/check.h"
#include "import/onnx_graph.h"

#define WHERE "onnx" /* the run loop names the node */

static nb_ctx *ctx_of(ox_run *r) { return r->m->ctx; }

/* the ints of attribute name, which must have `want` of them (or be absent: dflt each) */
static int pair_attr(ox_run *r, const ox_step *s, const char *name, int want, int64_t dflt, int64_t *out) {
    int n;
    const int64_t *v = ox_get_ints(s->node, name, &n);
    for (int k = 0; k < want; k++) out[k] = dflt;
    if (!v) return 0;
    NB_REQUIRE(ctx_of(r), n == want, -1, WHERE, "%s has %d values; nibble runs 2-d ops (%d expected)", name, n, want);
    memcpy(out, v, sizeof(int64_t) * (size_t)want);
    return 0;
}

/* A 2-d window op's padding: symmetric pads, or auto_pad's SAME where it is symmetric. */
static int window_pads(ox_run *r, const ox_step *s, const nb_tensor *x, const int64_t *k, const int64_t *st,
                       const int64_t *dil, int pad[2]) {
    int64_t p[4];
    if (pair_attr(r, s, "pads", 4, 0, p)) return -1;
    const Onnx__AttributeProto *ap = ox_get_attr(s->node, "auto_pad");
    char mode[32] = "NOTSET";
    if (ap && ap->s.len) snprintf(mode, sizeof mode, "%.*s", (int)ap->s.len, (const char *)ap->s.data);
    if (!strcmp(mode, "VALID")) {
        p[0] = p[1] = p[2] = p[3] = 0;
    } else if (!strncmp(mode, "SAME", 4)) {
        for (int d = 0; d < 2; d++) {
            int64_t in = x->shape[2 + d], out = (in + st[d] - 1) / st[d];
            int64_t total = (out - 1) * st[d] + (k[d] - 1) * dil[d] + 1 - in;
            if (total < 0) total = 0;
            int64_t small = total / 2, big = total - small;
            p[d] = !strcmp(mode, "SAME_UPPER") ? small : big;
            p[d + 2] = total - p[d];
        }
    } else {
        NB_REQUIRE(ctx_of(r), !strcmp(mode, "NOTSET"), -1, WHERE, "auto_pad %s", mode);
    }
    NB_REQUIRE(ctx_of(r), p[0] == p[2] && p[1] == p[3], -1, WHERE,
               "asymmetric padding (pads %lld,%lld,%lld,%lld): nibble's 2-d ops pad both sides alike",
               (long long)p[0], (long long)p[1], (long long)p[2], (long long)p[3]);
    pad[0] = (int)p[0];
    pad[1] = (int)p[1];
    return 0;
}

static int need_rank(ox_run *r, const nb_tensor *x, int ndim, const char *what) {
    if (!x) return -1;
    NB_REQUIRE(ctx_of(r), x->ndim == ndim, -1, WHERE, "%s is %s; nibble runs this op on %d dimensions", what, NB_SHAPE(x), ndim);
    return 0;
}

/* the initializer w must have these dimensions (-1: any); a disagreement names it */
static int need_dims(ox_run *r, const ox_value *w, int ndim, const int64_t *dims, const char *use) {
    bool ok = w->ndim == ndim;
    for (int k = 0; ok && k < ndim; k++) ok = dims[k] < 0 || w->dims[k] == dims[k];
    if (ok) return 0;
    char want[128] = "[";
    for (int k = 0; k < ndim; k++) {
        size_t at = strlen(want);
        if (dims[k] < 0) snprintf(want + at, sizeof want - at, "%s?", k ? "," : "");
        else snprintf(want + at, sizeof want - at, "%s%lld", k ? "," : "", (long long)dims[k]);
    }
    NB_FAIL(ctx_of(r), WHERE, "initializer '%s' is %s, but %s needs %s]", w->name, ox_dims_fmt((char[128]){0}, 128, w),
            use, want);
    return -1;
}

/* ---- layers with parameters ---- */

static int run_conv(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    ox_value *w = ox_const_in(r, s, 1), *b = ox_has_in(s, 2) ? ox_const_in(r, s, 2) : NULL;
    if (need_rank(r, x, 4, "the input") || !w || (ox_has_in(s, 2) && !b)) return -1;
    int64_t group = ox_get_int(s->node, "group", 1), k[2], st[2], dil[2];
    if (pair_attr(r, s, "strides", 2, 1, st) || pair_attr(r, s, "dilations", 2, 1, dil)) return -1;
    NB_REQUIRE(ctx_of(r), group >= 1 && x->shape[1] % group == 0, -1, WHERE, "group %lld for %lld input channels",
               (long long)group, (long long)x->shape[1]);
    if (need_dims(r, w, 4, (int64_t[]){-1, x->shape[1] / group, -1, -1}, "a convolution of the input's channels"))
        return -1;
    k[0] = w->dims[2];
    k[1] = w->dims[3];
    int64_t ks[2];
    if (pair_attr(r, s, "kernel_shape", 2, 0, ks)) return -1;
    NB_REQUIRE(ctx_of(r), (!ks[0] || ks[0] == k[0]) && (!ks[1] || ks[1] == k[1]), -1, WHERE,
               "kernel_shape %lldx%lld, but its weight '%s' is %s", (long long)ks[0], (long long)ks[1], w->name,
               ox_dims_fmt((char[128]){0}, 128, w));
    if (b && need_dims(r, b, 1, (int64_t[]){w->dims[0]}, "the bias of the convolution")) return -1;
    nb_conv_attr a = {.stride = {(int)st[0], (int)st[1]}, .dilation = {(int)dil[0], (int)dil[1]}, .groups = (int)group};
    if (window_pads(r, s, x, k, st, dil, a.pad)) return -1;
    a.pad[0] += s->extra_pad[0];
    a.pad[1] += s->extra_pad[1];
    nb_set_scope_name(ctx_of(r), s->scope);
    return ox_out(r, s, 0, nb_conv2d(x, w->tensor, b ? b->tensor : NULL, a));
}

/* The [oh*ow, H*W] matrix of a step that maps pixels (Resize, ConvTranspose's spreading), made at the first pass
 * and again whenever the sizes change: *fresh a zeroed buffer for the caller to fill and hand to keep_pixel_map,
 * or NULL when s->select fits already; -1 after reporting a matrix too large to make */
static int pixel_map(ox_run *r, ox_step *s, int64_t H, int64_t W, int64_t oh, int64_t ow, float **fresh) {
    *fresh = NULL;
    if (s->select && s->select->shape[0] == oh * ow && s->select->shape[1] == H * W) return 0;
    NB_REQUIRE(ctx_of(r), oh * ow * H * W <= ((int64_t)1 << 24), -1, WHERE,
               "%s of %lldx%lld to %lldx%lld: nibble maps the pixels by a product with a constant matrix, which is too "
               "large here", s->node->op_type, (long long)H, (long long)W, (long long)oh, (long long)ow);
    *fresh = nb_xcalloc((size_t)(oh * ow * H * W), sizeof **fresh);
    return 0;
}

/* s->select made of m (freed), [rows, cols] */
static int keep_pixel_map(ox_run *r, ox_step *s, int64_t rows, int64_t cols, float *m) {
    nb_release(s->select);
    s->select = nb_tensor_from_host(ctx_of(r), NB_F32, 2, (int64_t[]){rows, cols}, m);
    free(m);
    return s->select ? 0 : -1;
}

/* ConvTranspose: x spread out by the stride (a product with a constant 0/1 matrix, as Resize; output_padding
 * adds zeros at the bottom and right), then the convolution with the weight flipped and its channel axes swapped
 * (how the model holds it, OX_PARAM_CONVT), padded by dilation (k - 1) - pads on both sides */
static int run_conv_transpose(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    ox_value *w = ox_const_in(r, s, 1), *b = ox_has_in(s, 2) ? ox_const_in(r, s, 2) : NULL;
    if (need_rank(r, x, 4, "the input") || !w || (ox_has_in(s, 2) && !b)) return -1;
    int64_t g = ox_get_int(s->node, "group", 1), st[2], dil[2], p[4], op[2];
    if (pair_attr(r, s, "strides", 2, 1, st) || pair_attr(r, s, "dilations", 2, 1, dil) ||
        pair_attr(r, s, "pads", 4, 0, p) || pair_attr(r, s, "output_padding", 2, 0, op))
        return -1;
    const Onnx__AttributeProto *ap = ox_get_attr(s->node, "auto_pad");
    NB_REQUIRE(ctx_of(r), !ap || !ap->s.len || (ap->s.len == 6 && !memcmp(ap->s.data, "NOTSET", 6)), -1, WHERE,
               "a ConvTranspose with auto_pad (give pads)");
    NB_REQUIRE(ctx_of(r), !ox_get_attr(s->node, "output_shape"), -1, WHERE, "a ConvTranspose with output_shape (give pads)");
    NB_REQUIRE(ctx_of(r), p[0] == p[2] && p[1] == p[3], -1, WHERE, "asymmetric pads");
    if (need_dims(r, w, 4, (int64_t[]){x->shape[1], -1, -1, -1}, "a transposed convolution of the input's channels"))
        return -1;
    int64_t cout = w->dims[1] * g, kh = w->dims[2], kw = w->dims[3];
    if (b && need_dims(r, b, 1, (int64_t[]){cout}, "the bias of the transposed convolution")) return -1;
    int pad[2] = {(int)(dil[0] * (kh - 1) - p[0]), (int)(dil[1] * (kw - 1) - p[1])};
    NB_REQUIRE(ctx_of(r), pad[0] >= 0 && pad[1] >= 0, -1, WHERE,
               "pads larger than dilation x (kernel - 1): the output would be cropped");
    int64_t H = x->shape[2], W = x->shape[3];
    int64_t h2 = (H - 1) * st[0] + 1 + op[0], w2 = (W - 1) * st[1] + 1 + op[1];
    nb_tensor *z = x;
    if (h2 != H || w2 != W) {
        float *m;
        if (pixel_map(r, s, H, W, h2, w2, &m)) return -1;
        if (m) {
            for (int64_t i = 0; i < H; i++)
                for (int64_t j = 0; j < W; j++) m[((i * st[0]) * w2 + j * st[1]) * (H * W) + i * W + j] = 1.0f;
            if (keep_pixel_map(r, s, h2 * w2, H * W, m)) return -1;
        }
        nb_set_scope_name(ctx_of(r), s->scope);
        z = nb_spatial_map(x, s->select, (int)h2, (int)w2);
    }
    nb_conv_attr a = {.pad = {pad[0], pad[1]}, .dilation = {(int)dil[0], (int)dil[1]}, .groups = (int)g};
    nb_set_scope_name(ctx_of(r), s->scope);
    return ox_out(r, s, 0, nb_conv2d(z, w->tensor, b ? b->tensor : NULL, a));
}

static int run_batchnorm(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    if (!x) return -1;
    ox_value *p[4];
    for (int k = 0; k < 4; k++)
        if (!(p[k] = ox_const_in(r, s, k + 1))) return -1;
    NB_REQUIRE(ctx_of(r), x->ndim == 4 || x->ndim == 2, -1, WHERE, "a batch norm of %s (nibble's take [N,C,H,W] or [N,C])",
               NB_SHAPE(x));
    static const char *const what[4] = {"scale", "shift", "mean", "variance"};
    for (int k = 0; k < 4; k++) {
        char use[64];
        snprintf(use, sizeof use, "the batch norm's %s", what[k]);
        if (need_dims(r, p[k], 1, (int64_t[]){x->shape[1]}, use)) return -1;
    }
    nb_ctx *ctx = ctx_of(r);
    bool training = r->training && !ctx->bn_frozen;
    /* ONNX's momentum weighs the running value (PyTorch's 0.1 is exported as 0.9) */
    nb_bn_attr a = {.momentum = 1.0f - ox_get_float(s->node, "momentum", 0.9f),
                    .eps = ox_get_float(s->node, "epsilon", 1e-5f),
                    .training = training,
                    .relu = s->relu_out >= 0 && x->ndim == 4};
    nb_set_scope_name(ctx, s->scope);
    nb_tensor *in = x->ndim == 2 ? nb_reshape(x, 4, (int64_t[]){x->shape[0], x->shape[1], 1, 1}) : x;
    nb_tensor *y = nb_batchnorm2d(in, p[0]->tensor, p[1]->tensor, p[2]->tensor, p[3]->tensor, a);
    if (y && training && s->nbt && nb_counter_add(s->nbt, 1) != 0) return -1;
    if (y && x->ndim == 2) y = nb_reshape(y, 2, x->shape);
    if (y && s->relu_out >= 0 && x->ndim == 2) y = nb_relu(y);
    return ox_out(r, s, 0, y);
}

/* a linear layer: x [N, in] by weight w (held [out, in] whatever the ONNX form) */
static int linear(ox_run *r, ox_step *s, nb_tensor *x, ox_value *w, ox_value *b) {
    if (need_rank(r, x, 2, "the input")) return -1;
    int64_t in = x->shape[1], out = w->transposed ? w->dims[1] : w->dims[0];
    bool fits = w->ndim == 2 && (w->transposed ? w->dims[0] : w->dims[1]) == in;
    NB_REQUIRE(ctx_of(r), fits, -1, WHERE, "initializer '%s' is %s, but the input %s has %lld features", w->name,
               ox_dims_fmt((char[128]){0}, 128, w), NB_SHAPE(x), (long long)in);
    if (b) {
        bool ok = b->n == out && (b->ndim == 1 || (b->ndim == 2 && b->dims[0] == 1));
        NB_REQUIRE(ctx_of(r), ok, -1, WHERE, "initializer '%s' is %s, but the layer has %lld outputs", b->name,
                   ox_dims_fmt((char[128]){0}, 128, b), (long long)out);
    }
    nb_set_scope_name(ctx_of(r), s->scope);
    return ox_out(r, s, 0, nb_linear(x, w->tensor, b ? b->tensor : NULL));
}

static int run_gemm(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    ox_value *w = ox_const_in(r, s, 1), *b = ox_has_in(s, 2) ? ox_const_in(r, s, 2) : NULL;
    if (!x || !w || (ox_has_in(s, 2) && !b)) return -1;
    NB_REQUIRE(ctx_of(r), !ox_get_int(s->node, "transA", 0), -1, WHERE, "transA = 1 (nibble's linear layers read [N, in])");
    NB_REQUIRE(ctx_of(r), ox_get_float(s->node, "alpha", 1.0f) == 1.0f && ox_get_float(s->node, "beta", 1.0f) == 1.0f,
               -1, WHERE, "alpha or beta other than 1");
    return linear(r, s, x, w, b);
}

static int run_matmul(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    ox_value *w = ox_const_in(r, s, 1);
    if (!x || !w) return -1;
    return linear(r, s, x, w, NULL);
}

/* ---- element-wise ---- */

static int run_relu(ox_run *r, ox_step *s) { return ox_out(r, s, 0, nb_relu(ox_in(r, s, 0))); }
static int run_sigmoid(ox_run *r, ox_step *s) { return ox_out(r, s, 0, nb_sigmoid(ox_in(r, s, 0))); }
static int run_hardswish(ox_run *r, ox_step *s) { return ox_out(r, s, 0, nb_hardswish(ox_in(r, s, 0))); }
static int run_leaky_relu(ox_run *r, ox_step *s) {
    return ox_out(r, s, 0, nb_leaky_relu(ox_in(r, s, 0), ox_get_float(s->node, "alpha", 0.01f)));
}

static int run_hardsigmoid(ox_run *r, ox_step *s) {
    float alpha = ox_get_float(s->node, "alpha", 0.2f), beta = ox_get_float(s->node, "beta", 0.5f);
    NB_REQUIRE(ctx_of(r), fabsf(alpha - 1.0f / 6.0f) < 1e-6f && beta == 0.5f, -1, WHERE,
               "HardSigmoid with alpha %g and beta %g (nibble's is PyTorch's: alpha 1/6, beta 0.5)", (double)alpha,
               (double)beta);
    return ox_out(r, s, 0, nb_hardsigmoid(ox_in(r, s, 0)));
}

/* a scalar constant input, or an attribute (older opsets) */
static int scalar_in(ox_run *r, const ox_step *s, int k, const char *attr, float dflt, float *out, bool *given) {
    *out = dflt;
    *given = false;
    if (ox_has_in(s, k)) {
        ox_value *v = ox_const_in(r, s, k);
        if (!v) return -1;
        NB_REQUIRE(ctx_of(r), v->n == 1, -1, WHERE, "input %d must be a scalar", k);
        *out = v->is_int ? (float)v->i[0] : v->f[0];
        *given = true;
    } else if (attr && ox_get_attr(s->node, attr)) {
        *out = ox_get_float(s->node, attr, dflt);
        *given = true;
    }
    return 0;
}

static int run_clip(ox_run *r, ox_step *s) {
    float lo, hi;
    bool has_lo, has_hi;
    if (scalar_in(r, s, 1, "min", -INFINITY, &lo, &has_lo) || scalar_in(r, s, 2, "max", INFINITY, &hi, &has_hi))
        return -1;
    nb_tensor *x = ox_in(r, s, 0);
    if (lo == 0.0f && hi == 6.0f) return ox_out(r, s, 0, nb_relu6(x));
    if (lo == 0.0f && !has_hi) return ox_out(r, s, 0, nb_relu(x));
    NB_FAIL(ctx_of(r), WHERE, "Clip to [%g, %g]: nibble has ReLU (0, none) and ReLU6 (0, 6)", (double)lo, (double)hi);
    return -1;
}

static bool same_shape(const nb_tensor *a, const nb_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int k = 0; k < a->ndim; k++)
        if (a->shape[k] != b->shape[k]) return false;
    return true;
}

/* whether s is [N,C,1,1] beside x [N,C,H,W]: a squeeze-and-excitation scale */
static bool channel_scale(const nb_tensor *x, const nb_tensor *s) {
    return x->ndim == 4 && s->ndim == 4 && s->shape[0] == x->shape[0] && s->shape[1] == x->shape[1] &&
           s->shape[2] == 1 && s->shape[3] == 1;
}

/* ax * x + ac * c, c a constant that broadcasts to x's shape along ONNX's rules (its dimensions aligned at the end,
 * each 1 or x's), as x + c, x - c (ac -1) or c - x (ax -1) */
static nb_tensor *add_constant(ox_run *r, ox_step *s, nb_tensor *x, const ox_value *c, float ax, float ac) {
    nb_ctx *ctx = ctx_of(r);
    NB_REQUIRE(ctx, !c->is_int && c->ndim <= x->ndim, NULL, WHERE, "the constant %s %s does not broadcast to %s",
               c->name, ox_dims_fmt((char[128]){0}, 128, c), NB_SHAPE(x));
    int off = x->ndim - c->ndim;
    for (int k = 0; k < c->ndim; k++)
        NB_REQUIRE(ctx, c->dims[k] == 1 || c->dims[k] == x->shape[off + k], NULL, WHERE,
                   "the constant %s %s does not broadcast to %s", c->name, ox_dims_fmt((char[128]){0}, 128, c),
                   NB_SHAPE(x));
    bool same = s->operand && s->operand->ndim == x->ndim;
    for (int k = 0; same && k < x->ndim; k++) same = s->operand->shape[k] == x->shape[k];
    if (!same) {
        nb_release(s->operand);
        int64_t n = nb_numel(x);
        float *v = nb_xmalloc(sizeof(float) * (size_t)(n ? n : 1));
        for (int64_t e = 0; e < n; e++) {
            int64_t rem = e, src = 0, stride = 1;
            for (int k = x->ndim - 1; k >= 0; k--) {
                int64_t i = rem % x->shape[k];
                rem /= x->shape[k];
                if (k >= off && c->dims[k - off] != 1) src += i * stride;
                if (k >= off) stride *= c->dims[k - off];
            }
            v[e] = c->f[src];
        }
        s->operand = nb_tensor_from_host(ctx, NB_F32, x->ndim, x->shape, v);
        free(v);
        if (!s->operand) return NULL;
    }
    return nb_add_scaled(x, ax, s->operand, ac);
}

/* Add, Sub, Mul, Div of two runtime tensors, or of one and a constant */
static int run_arith(ox_run *r, ox_step *s) {
    const char *op = s->node->op_type;
    bool const_b = ox_has_in(s, 1) && r->g->v[s->in[1]].kind == OXV_CONST;
    bool const_a = ox_has_in(s, 0) && r->g->v[s->in[0]].kind == OXV_CONST;
    bool commutes = op[0] == 'A' || op[0] == 'M';
    int xi = const_a && (commutes || op[0] == 'S') ? 1 : 0, ci = 1 - xi;
    if (const_a && op[0] == 'D') {
        NB_FAIL(ctx_of(r), WHERE, "a constant divided by a tensor");
        return -1;
    }
    nb_tensor *x = ox_in(r, s, xi);
    if (!x) return -1;
    if (const_a || const_b) {
        ox_value *c = ox_const_in(r, s, ci);
        if (!c) return -1;
        if (c->n == 1 && (op[0] == 'M' || op[0] == 'D')) {
            float v = c->is_int ? (float)c->i[0] : c->f[0];
            NB_REQUIRE(ctx_of(r), op[0] == 'M' || v != 0.0f, -1, WHERE, "division by zero");
            return ox_out(r, s, 0, nb_scale(x, op[0] == 'M' ? v : 1.0f / v));
        }
        /* a constant added or subtracted: x + c as alpha x + beta C, C the constant broadcast to x's shape (made
         * again when the batch changes); c - x too */
        if (op[0] == 'A' || op[0] == 'S')
            return ox_out(r, s, 0, add_constant(r, s, x, c, op[0] == 'S' && xi == 1 ? -1.0f : 1.0f,
                                                 op[0] == 'S' && xi == 0 ? -1.0f : 1.0f));
        /* a per-channel constant ([C,1,1] or [1,C,1,1]) on an image: a channel scale */
        bool per_channel = x->ndim == 4 && !c->is_int && c->n == x->shape[1] && c->ndim >= 3 &&
                           c->dims[c->ndim - 1] == 1 && c->dims[c->ndim - 2] == 1 && (op[0] == 'M' || op[0] == 'D');
        if (per_channel) {
            if (!s->operand) {
                float *v = nb_xmalloc(sizeof(float) * (size_t)c->n);
                for (int64_t k = 0; k < c->n; k++) v[k] = op[0] == 'M' ? c->f[k] : 1.0f / c->f[k];
                s->operand = nb_tensor_from_host(ctx_of(r), NB_F32, 4, (int64_t[]){1, c->n, 1, 1}, v);
                free(v);
                if (!s->operand) return -1;
            }
            return ox_out(r, s, 0, nb_mul_channel(x, s->operand));
        }
        NB_FAIL(ctx_of(r), WHERE,
                "%s of %s and the constant %s %s: nibble multiplies or divides by a scalar or per-channel constant",
                op, NB_SHAPE(x), c->name, ox_dims_fmt((char[128]){0}, 128, c));
        return -1;
    }
    nb_tensor *y = ox_in(r, s, 1);
    if (!y) return -1;
    if (same_shape(x, y)) {
        if (op[0] == 'A') return ox_out(r, s, 0, s->relu_out >= 0 ? nb_add_relu(x, y) : nb_add(x, y));
        if (op[0] == 'S') return ox_out(r, s, 0, nb_add_scaled(x, 1.0f, y, -1.0f));
    }
    if (op[0] == 'M' && channel_scale(x, y)) return ox_out(r, s, 0, nb_mul_channel(x, y));
    if (op[0] == 'M' && channel_scale(y, x)) return ox_out(r, s, 0, nb_mul_channel(y, x));
    NB_FAIL(ctx_of(r), WHERE,
            "%s of %s and %s: nibble adds and subtracts equal shapes and multiplies by a [N,C,1,1] scale", op,
            NB_SHAPE(x), NB_SHAPE(y));
    return -1;
}

/* ---- pooling ---- */

static int run_pool(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    if (need_rank(r, x, 4, "the input")) return -1;
    bool max = !strcmp(s->node->op_type, "MaxPool");
    int64_t k[2], st[2], dil[2];
    if (pair_attr(r, s, "kernel_shape", 2, 0, k) || pair_attr(r, s, "strides", 2, 1, st) ||
        pair_attr(r, s, "dilations", 2, 1, dil))
        return -1;
    NB_REQUIRE(ctx_of(r), k[0] > 0 && k[1] > 0, -1, WHERE, "kernel_shape is missing");
    nb_pool_attr a = {.kernel = {(int)k[0], (int)k[1]}, .stride = {(int)st[0], (int)st[1]},
                      .dilation = {(int)dil[0], (int)dil[1]}};
    if (window_pads(r, s, x, k, st, dil, a.pad)) return -1;
    int ceil_mode = (int)ox_get_int(s->node, "ceil_mode", 0);
    if (max) {
        a.ceil_mode = ceil_mode;
        NB_REQUIRE(ctx_of(r), s->n_out == 1 || s->out[1] < 0, -1, WHERE, "MaxPool's indices output");
        return ox_out(r, s, 0, nb_maxpool2d(x, a));
    }
    NB_REQUIRE(ctx_of(r), dil[0] == 1 && dil[1] == 1, -1, WHERE, "dilated average pooling");
    a.exclude_pad = !ox_get_int(s->node, "count_include_pad", 0);
    if (ceil_mode) { /* nibble's average pooling floors; the same when ceiling adds no window */
        for (int d = 0; d < 2; d++) {
            int64_t span = x->shape[2 + d] + 2 * a.pad[d] - k[d];
            NB_REQUIRE(ctx_of(r), span % st[d] == 0, -1, WHERE,
                       "average pooling with ceil_mode = 1 where it adds a window (nibble's floors)");
        }
    }
    return ox_out(r, s, 0, nb_avgpool2d(x, a));
}

static int run_global_avgpool(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    if (need_rank(r, x, 4, "the input")) return -1;
    return ox_out(r, s, 0, nb_global_avgpool(x));
}

/* ReduceMean over the two spatial axes: global average pooling */
static int run_reduce_mean(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    if (need_rank(r, x, 4, "the input")) return -1;
    int n = 0;
    int64_t axes[8];
    const int64_t *a = ox_get_ints(s->node, "axes", &n);
    if (a) {
        memcpy(axes, a, sizeof(int64_t) * (size_t)(n < 8 ? n : 8));
    } else if (ox_has_in(s, 1)) {
        ox_value *v = ox_const_in(r, s, 1);
        if (!v) return -1;
        n = (int)(v->n < 8 ? v->n : 8);
        for (int k = 0; k < n; k++) axes[k] = v->i[k];
    }
    bool spatial = n == 2;
    for (int k = 0; k < n; k++) spatial = spatial && ((axes[k] + 4) % 4 == 2 || (axes[k] + 4) % 4 == 3);
    spatial = spatial && (axes[0] + 4) % 4 != (axes[1] + 4) % 4;
    NB_REQUIRE(ctx_of(r), spatial, -1, WHERE, "a mean over other axes than the two spatial ones");
    nb_tensor *y = nb_global_avgpool(x);
    if (y && !ox_get_int(s->node, "keepdims", 1)) y = nb_flatten(y);
    return ox_out(r, s, 0, y);
}

/* ---- shapes ---- */

static int run_flatten(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    if (!x) return -1;
    int64_t axis = ox_get_int(s->node, "axis", 1);
    if (axis < 0) axis += x->ndim;
    NB_REQUIRE(ctx_of(r), axis >= 1 && axis <= x->ndim, -1, WHERE, "Flatten at axis %lld of %s (the batch stays first)",
               (long long)ox_get_int(s->node, "axis", 1), NB_SHAPE(x));
    if (axis == 1) return ox_out(r, s, 0, nb_flatten(x));
    int64_t a = 1, b = 1;
    for (int k = 0; k < x->ndim; k++) *(k < axis ? &a : &b) *= x->shape[k];
    return ox_out(r, s, 0, nb_reshape(x, 2, (int64_t[]){a, b}));
}

static int run_reshape(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    ox_value *shape = ox_const_in(r, s, 1);
    if (!x || !shape) return -1;
    NB_REQUIRE(ctx_of(r), shape->is_int && shape->n >= 1 && shape->n <= NB_MAX_DIMS, -1, WHERE,
               "the shape must be 1 to %d integers", NB_MAX_DIMS);
    int64_t dims[NB_MAX_DIMS];
    bool allowzero = ox_get_int(s->node, "allowzero", 0);
    for (int64_t k = 0; k < shape->n; k++) {
        dims[k] = shape->batch[k] ? x->shape[0] : shape->i[k];
        if (dims[k] == 0 && !allowzero) {
            NB_REQUIRE(ctx_of(r), k < x->ndim, -1, WHERE, "shape element %lld copies a dimension %s lacks", (long long)k,
                       NB_SHAPE(x));
            dims[k] = x->shape[k];
        }
    }
    /* a graph exported with a fixed batch reshapes to that number: the batch of this pass */
    if (!shape->batch[0] && r->g->input_batch > 0 && shape->i[0] == r->g->input_batch && x->shape[0] != r->g->input_batch)
        dims[0] = x->shape[0];
    return ox_out(r, s, 0, nb_reshape(x, (int)shape->n, dims));
}

/* ShuffleNet's channel shuffle, [N,g,C/g,H,W] transposed to [N,C/g,g,H,W]; any other transposition is refused */
static int run_transpose(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    if (!x) return -1;
    int n;
    const int64_t *perm = ox_get_ints(s->node, "perm", &n);
    bool identity = perm && n == x->ndim;
    for (int k = 0; identity && k < n; k++) identity = perm[k] == k;
    if (identity) return ox_out(r, s, 0, x);
    bool shuffle = perm && n == 5 && x->ndim == 5 && perm[0] == 0 && perm[1] == 2 && perm[2] == 1 && perm[3] == 3 &&
                   perm[4] == 4;
    NB_REQUIRE(ctx_of(r), shuffle, -1, WHERE,
               "a transposition of %s: nibble's is the channel shuffle's, perm 0,2,1,3,4 of [N,groups,C/groups,H,W]",
               NB_SHAPE(x));
    int64_t N = x->shape[0], g = x->shape[1], c = x->shape[2], H = x->shape[3], W = x->shape[4];
    nb_tensor *y = nb_channel_shuffle(nb_reshape(x, 4, (int64_t[]){N, g * c, H, W}), (int)g);
    return ox_out(r, s, 0, nb_reshape(y, 5, (int64_t[]){N, c, g, H, W}));
}

static int run_concat(ox_run *r, ox_step *s) {
    nb_tensor *xs[OX_MAX_IN];
    int n = 0;
    for (int k = 0; k < s->n_in; k++) {
        if (!ox_has_in(s, k)) continue;
        if (!(xs[n++] = ox_in(r, s, k))) return -1;
    }
    NB_REQUIRE(ctx_of(r), n >= 1, -1, WHERE, "no inputs");
    return ox_out(r, s, 0, nb_concat(xs, n, (int)ox_get_int(s->node, "axis", 0)));
}

static int run_split(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    if (!x) return -1;
    int64_t axis = ox_get_int(s->node, "axis", 0);
    if (axis < 0) axis += x->ndim;
    NB_REQUIRE(ctx_of(r), axis >= 0 && axis < x->ndim, -1, WHERE, "axis %lld of %s", (long long)axis, NB_SHAPE(x));
    int64_t sizes[OX_MAX_OUT];
    int n = s->n_out, cnt = 0;
    const int64_t *a = ox_get_ints(s->node, "split", &cnt);
    if (ox_has_in(s, 1)) {
        ox_value *v = ox_const_in(r, s, 1);
        if (!v) return -1;
        NB_REQUIRE(ctx_of(r), v->n == n, -1, WHERE, "%lld sizes for %d outputs", (long long)v->n, n);
        for (int k = 0; k < n; k++) sizes[k] = v->i[k];
    } else if (a) {
        NB_REQUIRE(ctx_of(r), cnt == n, -1, WHERE, "%d sizes for %d outputs", cnt, n);
        memcpy(sizes, a, sizeof(int64_t) * (size_t)n);
    } else {
        NB_REQUIRE(ctx_of(r), x->shape[axis] % n == 0, -1, WHERE, "%lld cannot split evenly in %d",
                   (long long)x->shape[axis], n);
        for (int k = 0; k < n; k++) sizes[k] = x->shape[axis] / n;
    }
    nb_tensor *outs[OX_MAX_OUT];
    if (nb_split(x, (int)axis, sizes, n, outs) != 0) return -1;
    for (int k = 0; k < n; k++)
        if (ox_out(r, s, k, outs[k])) return -1;
    return 0;
}

static int run_slice(ox_run *r, ox_step *s) {
    nb_tensor *y = ox_in(r, s, 0);
    ox_value *st = ox_const_in(r, s, 1), *en = ox_const_in(r, s, 2);
    ox_value *ax = ox_has_in(s, 3) ? ox_const_in(r, s, 3) : NULL, *sp = ox_has_in(s, 4) ? ox_const_in(r, s, 4) : NULL;
    if (!y || !st || !en) return -1;
    NB_REQUIRE(ctx_of(r), st->is_int && en->is_int && st->n == en->n, -1, WHERE,
               "starts and ends must be integer lists of one length");
    for (int64_t j = 0; j < st->n && y; j++) {
        int64_t axis = ax ? ax->i[j] : j, step = sp ? sp->i[j] : 1;
        if (axis < 0) axis += y->ndim;
        NB_REQUIRE(ctx_of(r), axis >= 0 && axis < y->ndim, -1, WHERE, "axis out of range for %s", NB_SHAPE(y));
        NB_REQUIRE(ctx_of(r), step == 1, -1, WHERE, "a slice with step %lld (nibble's take every element)",
                   (long long)step);
        int64_t len = y->shape[axis], a = st->i[j], b = en->i[j];
        if (a < 0) a += len;
        if (b < 0) b += len;
        a = a < 0 ? 0 : a > len ? len : a;
        b = b < a ? a : b > len ? len : b;
        if (a == 0 && b == len) continue;
        y = nb_slice(y, (int)axis, a, b - a);
    }
    return ox_out(r, s, 0, y);
}

/* x's channels ix[0..M) (in range), in nibble's ops: one slice per run of consecutive channels, concatenated
 * when there are few runs; else the even and odd positions gathered apart and interleaved (a concatenation and
 * shuffle), recursively. The orders bin/export writes for slices of ShuffleNet's interleaved channels take a
 * few levels; any order ends in single channels. */
static nb_tensor *gather_channels(nb_tensor *x, const int64_t *ix, int64_t M) {
    int64_t runs = 1;
    for (int64_t j = 1; j < M; j++) runs += ix[j] != ix[j - 1] + 1;
    if (runs == 1) return M == x->shape[1] ? x : nb_slice(x, 1, ix[0], M);
    if (runs <= 8 || M % 2) {
        nb_tensor **parts = nb_xmalloc(sizeof *parts * (size_t)runs);
        int n = 0;
        for (int64_t j = 0; j < M;) {
            int64_t e = j + 1;
            while (e < M && ix[e] == ix[e - 1] + 1) e++;
            parts[n++] = nb_slice(x, 1, ix[j], e - j);
            j = e;
        }
        nb_tensor *y = nb_concat(parts, n, 1);
        free(parts);
        return y;
    }
    int64_t *half = nb_xmalloc(sizeof(int64_t) * (size_t)M);
    for (int64_t j = 0; j < M / 2; j++) {
        half[j] = ix[2 * j];
        half[M / 2 + j] = ix[2 * j + 1];
    }
    nb_tensor *parts[2] = {gather_channels(x, half, M / 2), gather_channels(x, half + M / 2, M / 2)};
    free(half);
    return nb_concat_shuffle(parts, 2);
}

static int channel_gather(ox_run *r, ox_step *s, nb_tensor *x, const ox_value *idx) {
    int64_t C = x->shape[1], M = idx->n;
    NB_REQUIRE(ctx_of(r), M >= 1, -1, WHERE, "a gather of no channels");
    int64_t *ix = nb_xmalloc(sizeof(int64_t) * (size_t)M);
    for (int64_t j = 0; j < M; j++) {
        ix[j] = idx->i[j] < 0 ? idx->i[j] + C : idx->i[j];
        if (ix[j] < 0 || ix[j] >= C) {
            free(ix);
            NB_FAIL(ctx_of(r), WHERE, "index %lld out of range for %lld channels", (long long)idx->i[j], (long long)C);
            return -1;
        }
    }
    nb_tensor *y = gather_channels(x, ix, M);
    free(ix);
    return ox_out(r, s, 0, y);
}

/* Gather of constant indices: along the last axis of a [R, K] tensor, nibble's nearest upsampling (a product with
 * a 0/1 selection matrix, what bin/export writes it as); along the channels of an image, slices */
static int run_gather(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    ox_value *idx = ox_const_in(r, s, 1);
    if (!x || !idx) return -1;
    int64_t axis = ox_get_int(s->node, "axis", 0);
    if (axis < 0) axis += x->ndim;
    if (x->ndim == 4 && axis == 1 && idx->is_int && idx->ndim == 1) return channel_gather(r, s, x, idx);
    NB_REQUIRE(ctx_of(r), x->ndim == 2 && axis == 1 && idx->is_int && idx->ndim == 1, -1, WHERE,
               "a gather along axis %lld of %s: nibble gathers the columns of a matrix or the channels of an image by "
               "a list of indices", (long long)axis, NB_SHAPE(x));
    int64_t K = x->shape[1], M = idx->n;
    if (!s->select) {
        float *sel = nb_xcalloc((size_t)(M * K), sizeof *sel);
        for (int64_t i = 0; i < M; i++) {
            int64_t c = idx->i[i] < 0 ? idx->i[i] + K : idx->i[i];
            if (c < 0 || c >= K) {
                free(sel);
                NB_FAIL(ctx_of(r), WHERE, "index %lld out of range for %lld columns", (long long)idx->i[i], (long long)K);
                return -1;
            }
            sel[i * K + c] = 1.0f;
        }
        s->select = nb_tensor_from_host(ctx_of(r), NB_F32, 2, (int64_t[]){M, K}, sel);
        free(sel);
        if (!s->select) return -1;
    }
    nb_set_scope_name(ctx_of(r), s->scope);
    return ox_out(r, s, 0, nb_linear(x, s->select, NULL));
}

/* Pad: by nothing, the identity (PyTorch exports average pooling with one); nibble's convolutions and pools pad
 * inside themselves */
static int run_pad(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    if (!x) return -1;
    int n = 0;
    const int64_t *pads = ox_get_ints(s->node, "pads", &n);
    int64_t buf[2 * NB_MAX_DIMS];
    if (!pads && ox_has_in(s, 1)) {
        ox_value *v = ox_const_in(r, s, 1);
        if (!v) return -1;
        NB_REQUIRE(ctx_of(r), v->is_int, -1, WHERE, "pads must be integers");
        n = (int)(v->n < 2 * NB_MAX_DIMS ? v->n : 2 * NB_MAX_DIMS);
        for (int k = 0; k < n; k++) buf[k] = v->i[k];
        pads = buf;
    }
    bool none = true;
    for (int k = 0; k < n; k++) none = none && pads[k] == 0;
    NB_REQUIRE(ctx_of(r), none, -1, WHERE,
               "a Pad that adds values: nibble pads inside its convolutions and pools (export with their padding)");
    return ox_out(r, s, 0, x);
}

static int run_silu(ox_run *r, ox_step *s) { return ox_out(r, s, 0, nb_silu(ox_in(r, s, s->silu_in))); }

/* Resize's source coordinate of output index i (ONNX's coordinate_transformation_mode) */
static double resize_coord(const char *mode, int64_t i, int64_t in, int64_t out, double scale) {
    if (!strcmp(mode, "asymmetric")) return (double)i / scale;
    if (!strcmp(mode, "align_corners")) return out > 1 ? (double)i * (double)(in - 1) / (double)(out - 1) : 0.0;
    if (!strcmp(mode, "pytorch_half_pixel") && out == 1) return 0.0;
    return ((double)i + 0.5) / scale - 0.5; /* half_pixel, pytorch_half_pixel */
}

/* The 1-d interpolation of Resize along one axis: w [out, in], row i the weights of output i */
static int resize_axis(const ox_step *s, const char *ct, bool linear, int64_t in, int64_t out, double scale, double *w) {
    const Onnx__AttributeProto *nm = ox_get_attr(s->node, "nearest_mode");
    char nmode[32] = "round_prefer_floor";
    if (nm && nm->s.len) snprintf(nmode, sizeof nmode, "%.*s", (int)nm->s.len, (const char *)nm->s.data);
    for (int64_t i = 0; i < out; i++) {
        double x = resize_coord(ct, i, in, out, scale);
        if (linear) {
            x = x < 0 ? 0 : x; /* ONNX and PyTorch clamp below; above, the last pixel repeats */
            int64_t x0 = (int64_t)floor(x), x1 = x0 + 1 < in ? x0 + 1 : in - 1;
            if (x0 > in - 1) x0 = in - 1;
            double f = x - (double)x0;
            w[i * in + x0] += 1.0 - f;
            w[i * in + x1] += f;
            continue;
        }
        double v;
        if (!strcmp(nmode, "floor")) v = floor(x);
        else if (!strcmp(nmode, "ceil")) v = ceil(x);
        else if (!strcmp(nmode, "round_prefer_ceil")) v = floor(x + 0.5);
        else if (!strcmp(nmode, "round_prefer_floor")) v = ceil(x - 0.5);
        else return -1;
        int64_t k = (int64_t)v;
        k = k < 0 ? 0 : k > in - 1 ? in - 1 : k;
        w[i * in + k] = 1.0;
    }
    return 0;
}

/* Resize of an image's height and width, nearest or (bi)linear: a product with the constant matrix that maps its
 * H x W pixels to the oh x ow ones (the kronecker product of the two axes' interpolations), as nibble's own
 * nearest upsampling is (and so on every backend, with its backward, and exported as a Gather or Gemm) */
static int run_resize(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    if (need_rank(r, x, 4, "the input")) return -1;
    const Onnx__AttributeProto *ma = ox_get_attr(s->node, "mode"), *ca = ox_get_attr(s->node, "coordinate_transformation_mode");
    char mode[32] = "nearest", ct[32] = "half_pixel";
    if (ma && ma->s.len) snprintf(mode, sizeof mode, "%.*s", (int)ma->s.len, (const char *)ma->s.data);
    if (ca && ca->s.len) snprintf(ct, sizeof ct, "%.*s", (int)ca->s.len, (const char *)ca->s.data);
    bool linear = !strcmp(mode, "linear");
    NB_REQUIRE(ctx_of(r), linear || !strcmp(mode, "nearest"), -1, WHERE, "Resize mode %s (nibble's: nearest, linear)", mode);
    NB_REQUIRE(ctx_of(r), !strcmp(ct, "asymmetric") || !strcmp(ct, "align_corners") || !strcmp(ct, "half_pixel") ||
                              !strcmp(ct, "pytorch_half_pixel"),
               -1, WHERE, "Resize coordinate_transformation_mode %s", ct);
    int64_t H = x->shape[2], W = x->shape[3], oh = 0, ow = 0;
    double sh = 0, sw = 0;
    ox_value *scales = ox_has_in(s, 2) ? ox_const_in(r, s, 2) : NULL, *sizes = ox_has_in(s, 3) ? ox_const_in(r, s, 3) : NULL;
    if ((ox_has_in(s, 2) && !scales) || (ox_has_in(s, 3) && !sizes)) return -1;
    if (sizes && sizes->n == 4) {
        NB_REQUIRE(ctx_of(r), sizes->i[0] == x->shape[0] || sizes->batch[0], -1, WHERE, "a Resize of the batch");
        NB_REQUIRE(ctx_of(r), sizes->i[1] == x->shape[1], -1, WHERE, "a Resize of the channels");
        oh = sizes->i[2];
        ow = sizes->i[3];
        sh = (double)oh / (double)H;
        sw = (double)ow / (double)W;
    } else {
        NB_REQUIRE(ctx_of(r), scales && scales->n == 4 && !scales->is_int, -1, WHERE, "Resize needs scales or sizes of 4");
        NB_REQUIRE(ctx_of(r), scales->f[0] == 1.0f && scales->f[1] == 1.0f, -1, WHERE, "a Resize of the batch or channels");
        sh = scales->f[2];
        sw = scales->f[3];
        /* the output side must be a size before it is converted to one */
        NB_REQUIRE(ctx_of(r), sh > 0 && sw > 0 && (double)H * sh <= 1e6 && (double)W * sw <= 1e6, -1, WHERE,
                   "Resize scales %g x %g of a %lldx%lld input", sh, sw, (long long)H, (long long)W);
        oh = (int64_t)floor((double)H * sh);
        ow = (int64_t)floor((double)W * sw);
    }
    NB_REQUIRE(ctx_of(r), oh > 0 && ow > 0, -1, WHERE, "a Resize to %lldx%lld", (long long)oh, (long long)ow);
    float *m;
    if (pixel_map(r, s, H, W, oh, ow, &m)) return -1;
    if (m) { /* the kronecker product of the two axes' interpolations */
        double *ah = nb_xcalloc((size_t)(oh * H), sizeof *ah), *aw = nb_xcalloc((size_t)(ow * W), sizeof *aw);
        int rc = resize_axis(s, ct, linear, H, oh, sh, ah) | resize_axis(s, ct, linear, W, ow, sw, aw);
        for (int64_t i = 0; i < oh && !rc; i++)
            for (int64_t j = 0; j < ow; j++)
                for (int64_t a = 0; a < H; a++)
                    if (ah[i * H + a] != 0.0)
                        for (int64_t b = 0; b < W; b++) m[(i * ow + j) * (H * W) + a * W + b] = (float)(ah[i * H + a] * aw[j * W + b]);
        free(ah);
        free(aw);
        if (rc) {
            free(m);
            NB_FAIL(ctx_of(r), WHERE, "Resize nearest_mode is not one of floor, ceil, round_prefer_floor, "
                    "round_prefer_ceil");
            return -1;
        }
        if (keep_pixel_map(r, s, oh * ow, H * W, m)) return -1;
    }
    nb_set_scope_name(ctx_of(r), s->scope);
    return ox_out(r, s, 0, nb_spatial_map(x, s->select, (int)oh, (int)ow));
}

static int run_identity(ox_run *r, ox_step *s) { return ox_out(r, s, 0, ox_in(r, s, 0)); }

static int run_dropout(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    float p;
    bool given;
    if (!x || scalar_in(r, s, 1, "ratio", 0.5f, &p, &given)) return -1;
    if (!r->training || p == 0.0f) return ox_out(r, s, 0, x);
    return ox_out(r, s, 0, nb_dropout(x, p, 1));
}

static int run_softmax(ox_run *r, ox_step *s) {
    nb_tensor *x = ox_in(r, s, 0);
    if (!x) return -1;
    /* before opset 13 the axis splits the tensor into a matrix; the same as a row-wise softmax when it is last */
    int64_t axis = ox_get_int(s->node, "axis", r->g->opset >= 13 ? -1 : 1);
    if (axis < 0) axis += x->ndim;
    NB_REQUIRE(ctx_of(r), r->g->opset >= 13 || axis == x->ndim - 1, -1, WHERE,
               "Softmax before opset 13 over axis %lld of %s", (long long)axis, NB_SHAPE(x));
    bool log = s->node->op_type[0] == 'L';
    return ox_out(r, s, 0, log ? nb_log_softmax(x, (int)axis) : nb_softmax(x, (int)axis));
}

/* Roles: which initializer inputs are trained. Gemm's weight is transposed when it is stored [in, out] (transB
 * 0), as MatMul's always is: the model holds [out, in] under the initializer's name, as nibble's linear layers
 * do (and bin/export writes it with transB = 1). */
static const ox_rule rules[] = {
    {"Conv", run_conv, {OX_OPERAND, OX_PARAM, OX_PARAM}, "conv2d", false},
    {"ConvTranspose", run_conv_transpose, {OX_OPERAND, OX_PARAM_CONVT, OX_PARAM}, "conv2d (after spreading by the stride)", false},
    {"BatchNormalization", run_batchnorm, {OX_OPERAND, OX_PARAM, OX_PARAM, OX_BUFFER, OX_BUFFER}, "batchnorm2d", false},
    {"Gemm", run_gemm, {OX_OPERAND, OX_PARAM, OX_PARAM}, "linear", false},
    {"MatMul", run_matmul, {OX_OPERAND, OX_PARAM_T}, "linear", false},
    {"Relu", run_relu, {0}, "relu", true},
    {"LeakyRelu", run_leaky_relu, {0}, "leaky_relu", true},
    {"Sigmoid", run_sigmoid, {0}, "sigmoid", true},
    {"HardSigmoid", run_hardsigmoid, {0}, "hardsigmoid", true},
    {"HardSwish", run_hardswish, {0}, "hardswish", true},
    {"Clip", run_clip, {0}, "relu6 or relu", true},
    {"Add", run_arith, {0}, "add", false},
    {"Sub", run_arith, {0}, "add (alpha 1, beta -1)", false},
    {"Mul", run_arith, {0}, "mul_channel or scale", false},
    {"Div", run_arith, {0}, "scale", false},
    {"MaxPool", run_pool, {0}, "maxpool2d", false},
    {"AveragePool", run_pool, {0}, "avgpool2d", false},
    {"GlobalAveragePool", run_global_avgpool, {0}, "global_avgpool", false},
    {"ReduceMean", run_reduce_mean, {0}, "global_avgpool", false},
    {"Flatten", run_flatten, {0}, "reshape", false},
    {"Reshape", run_reshape, {0}, "reshape", false},
    {"Transpose", run_transpose, {0}, "channel_shuffle", false},
    {"Concat", run_concat, {0}, "concat", false},
    {"Split", run_split, {0}, "slice", false},
    {"Slice", run_slice, {0}, "slice", false},
    {"Gather", run_gather, {0}, "slices, or a 0/1 selection (linear)", false},
    {"Identity", run_identity, {0}, "the identity", true},
    {"Pad", run_pad, {0}, "the identity (padding by nothing)", true},
    {"Resize", run_resize, {0}, "linear by a constant interpolation matrix", false},
    {"Dropout", run_dropout, {0}, "dropout", true},
    {"Softmax", run_softmax, {0}, "softmax", false},
    {"LogSoftmax", run_softmax, {0}, "log_softmax", false},
};

const ox_rule *ox_silu_rule(void) {
    static const ox_rule silu = {"Mul", run_silu, {0}, "silu (with the Sigmoid before it)", true};
    return &silu;
}

const ox_rule *ox_rule_for(const char *op_type) {
    for (size_t k = 0; k < sizeof rules / sizeof *rules; k++)
        if (!strcmp(rules[k].op_type, op_type)) return &rules[k];
    return NULL;
}

void ox_supported_list(char *buf, size_t n) {
    buf[0] = 0;
    for (size_t k = 0; k < sizeof rules / sizeof *rules; k++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", k ? ", " : "", rules[k].op_type);
}
