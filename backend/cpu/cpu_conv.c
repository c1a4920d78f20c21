/* Convolution on oneDNN: forward, backward-data and backward-weights primitives, created once per shape and
 * cached. Activations stay in the blocked layout oneDNN prefers from one convolution to the next, and a
 * parameter weight is converted once to the layout the forward primitive prefers and kept there. Under mixed
 * precision (a bf16 input, core/autocast.c) the products run in bf16 (AVX-512 BF16 or AMX where the CPU has
 * them), writing a bf16 output and input gradient, with the bias and the weight gradient in f32; the f32
 * weight is read through its bf16 copy, made once per step (cpu_lowp_weight). */
#include <string.h>

#include "backend/cpu/cpu.h"

typedef struct {
    dnnl_dims_t strides, dil, pad;
} conv_geom;

static conv_geom geom(const nb_conv_attr *a) {
    conv_geom g;
    for (int i = 0; i < 2; i++) {
        g.strides[i] = a->stride[i];
        g.dil[i] = a->dilation[i] - 1; /* oneDNN counts dilation from 0 */
        g.pad[i] = a->pad[i];
    }
    return g;
}

/* Weight descriptors: oneDNN wants 5-D (g, O/g, I/g, kh, kw) for grouped convolution. */
static void weights_md(const nb_tensor *w, int groups, int any, dnnl_data_type_t dt, dnnl_memory_desc_t *md) {
    memset(md, 0, sizeof *md);
    if (groups == 1) {
        dnnl_dims_t d = {w->shape[0], w->shape[1], w->shape[2], w->shape[3]};
        dnnl_memory_desc_init_by_tag(md, 4, d, dt, any ? dnnl_format_tag_any : dnnl_oihw);
    } else {
        dnnl_dims_t d = {groups, w->shape[0] / groups, w->shape[1], w->shape[2], w->shape[3]};
        dnnl_memory_desc_init_by_tag(md, 5, d, dt, any ? dnnl_format_tag_any : dnnl_goihw);
    }
}

/* the type the products read the weight in: the input's (f32, or bf16 under mixed precision) */
static dnnl_data_type_t compute_type(const nb_node *n) { return n->in[0]->dtype == NB_BF16 ? dnnl_bf16 : dnnl_f32; }

static void key_conv(cpu_key *k, int phase, const nb_node *n) {
    cpu_key_init(k, NB_OP_CONV2D, phase);
    const nb_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    cpu_key_add(k, x->shape, sizeof(int64_t) * 4);
    cpu_key_add(k, w->shape, sizeof(int64_t) * 4);
    int has_bias = b != NULL, dt = (int)x->dtype;
    cpu_key_add(k, &has_bias, sizeof has_bias);
    cpu_key_add(k, &dt, sizeof dt);
    cpu_key_add(k, &n->attr.conv, sizeof n->attr.conv);
}

/* The interned layout for a weight: grouped descriptors are 5-D, but the tensor is 4-D [O, I/g, kh, kw];
 * both describe the same bytes, so the tensor carries the 5-D descriptor's layout number. */
static int weight_layout(cpu_backend *be, const dnnl_memory_desc_t *md, const nb_tensor *w, int groups) {
    dnnl_memory_desc_t plain;
    weights_md(w, groups, 0, md->data_type, &plain);
    if (dnnl_memory_desc_equal(&plain, md)) return NB_LAYOUT_PLAIN;
    return cpu_intern(be, md, NULL);
}

static cpu_prim *fwd_prim(cpu_backend *be, const nb_node *n) {
    cpu_key k;
    key_conv(&k, PHASE_FWD, n);
    cpu_prim *p = cpu_cache_find(be, &k);
    if (p) return p;
    const nb_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out[0];
    const nb_conv_attr *a = &n->attr.conv;
    conv_geom g = geom(a);
    dnnl_memory_desc_t xmd, wmd, bmd, ymd;
    cpu_md_any(x, &xmd);
    weights_md(w, a->groups, 1, compute_type(n), &wmd);
    cpu_md_any(y, &ymd);
    if (b) cpu_md_plain(b, &bmd);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd;
    if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &xmd, &wmd,
                                                   b ? &bmd : NULL, &ymd, g.strides, g.dil, g.pad, g.pad) !=
            dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, be->attr, be->engine, NULL) != dnnl_success) {
        NB_FAIL(be->base.ctx, "conv2d", "oneDNN has no convolution for input %s, weight %s", NB_SHAPE(x), NB_SHAPE(w));
        return NULL;
    }
    const nb_tensor *shapes[4] = {x, NULL, y, b};
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    p = cpu_prim_make(be, &k, pd, args, b ? 4 : 3, shapes);
    if (p) p->layout[1] = weight_layout(be, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), w, a->groups);
    return p;
}

int cpu_conv_forward(cpu_backend *be, nb_node *n) {
    if (be->reference_conv) return cpu_conv_ref_forward(be, n);
    nb_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out[0];
    cpu_prim *p = fwd_prim(be, n);
    if (!p) return -1;
    bool own_x = false, own_w = false;
    /* an input in another layout (a channel slice, a plain concatenation) is converted for this call only:
     * keeping the copy until backward would hold a second copy of the activation for the whole step, and
     * converting again in backward costs one reorder */
    nb_tensor *xs = cpu_as_layout(be, x, p->layout[0], &own_x);
    if (!xs) return -1;

    nb_tensor *ws = w;
    if (x->dtype == NB_BF16) {
        /* the weight's bf16 copy, held by the node for backward (a parameter's copy is shared with its cache) */
        ws = cpu_lowp_weight(be, w, p->layout[1]);
        if (!ws) return -1;
        nb_node_set_saved(n, 1, ws);
    } else if (w->layout != p->layout[1]) {
        bool is_param = w->is_leaf && w->storage && w->storage->refs == 1 && w->layout == NB_LAYOUT_PLAIN;
        if (is_param) {
            /* convert the parameter itself once; it stays in this layout from now on */
            if (nb_tensor_relayout(w, p->layout[1]) != 0) return -1;
        } else {
            ws = cpu_as_layout(be, w, p->layout[1], &own_w);
            if (!ws) return -1;
            nb_node_set_saved(n, 1, ws);
        }
    }
    int rc = nb_out_alloc(y, p->layout[2]);
    if (rc == 0) rc = cpu_prim_run(be, p, (void *[]){nb_data(xs), nb_data(ws), nb_data(y), b ? nb_data(b) : NULL}, "conv2d");
    if (own_x) nb_release(xs);
    return rc;
}

static cpu_prim *bwd_data_prim(cpu_backend *be, const nb_node *n, cpu_prim *fwd) {
    cpu_key k;
    key_conv(&k, PHASE_BWD_DATA, n);
    cpu_prim *p = cpu_cache_find(be, &k);
    if (p) return p;
    const nb_tensor *x = n->in[0], *w = n->in[1];
    const nb_conv_attr *a = &n->attr.conv;
    conv_geom g = geom(a);
    /* every layout left to oneDNN: pinning one to the forward's choice can leave only the reference
     * implementation (a 3-channel stem's plain input with blocked gradients runs 1000x slower) */
    dnnl_memory_desc_t xmd, wmd, ymd;
    cpu_md_any(x, &xmd);
    cpu_md_any(n->out[0], &ymd);
    weights_md(w, a->groups, 1, compute_type(n), &wmd);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd;
    if (dnnl_dilated_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &xmd, &wmd, &ymd, g.strides,
                                                         g.dil, g.pad, g.pad) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, be->attr, be->engine, fwd->pd) != dnnl_success) {
        NB_FAIL(be->base.ctx, "conv2d", "oneDNN has no backward-data convolution for input %s, weight %s",
                NB_SHAPE(x), NB_SHAPE(w));
        return NULL;
    }
    const nb_tensor *shapes[3] = {x, NULL, n->out[0]};
    p = cpu_prim_make(be, &k, pd, (int[]){DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST}, 3, shapes);
    if (p) p->layout[1] = weight_layout(be, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), w, a->groups);
    return p;
}

static cpu_prim *bwd_weights_prim(cpu_backend *be, const nb_node *n, cpu_prim *fwd) {
    cpu_key k;
    key_conv(&k, PHASE_BWD_WEIGHTS, n);
    cpu_prim *p = cpu_cache_find(be, &k);
    if (p) return p;
    const nb_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    const nb_conv_attr *a = &n->attr.conv;
    conv_geom g = geom(a);
    dnnl_memory_desc_t xmd, wmd, bmd, ymd;
    /* Strided dense convolutions compute their weight gradient faster as im2col + sgemm on plain tensors
     * than with the blocked direct kernel (measured with oneDNN 2.6 on AVX2: 30 -> 23 ms for ResNet-18's
     * 64->128 3x3/2 at batch 16, more than the two reorders cost). A fixed rule, not a timing race, so that
     * runs stay bit-reproducible. Below 64 input channels the direct kernel wins (2x for 16 -> 32). */
    bool gemm = x->dtype == NB_F32 && a->groups == 1 && (a->stride[0] > 1 || a->stride[1] > 1) && w->shape[2] == 3 && w->shape[3] == 3 &&
                x->shape[1] >= 64;
    if (gemm) {
        cpu_md_plain(x, &xmd);
        cpu_md_plain(n->out[0], &ymd);
    } else {
        cpu_md_any(x, &xmd);
        cpu_md_any(n->out[0], &ymd);
    }
    weights_md(w, a->groups, 1, dnnl_f32, &wmd); /* the weight gradient is f32 under mixed precision too */
    if (b) cpu_md_plain(b, &bmd);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd;
    if (dnnl_dilated_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &xmd, &wmd,
                                                            b ? &bmd : NULL, &ymd, g.strides, g.dil, g.pad,
                                                            g.pad) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, be->attr, be->engine, fwd->pd) != dnnl_success) {
        NB_FAIL(be->base.ctx, "conv2d", "oneDNN has no backward-weights convolution for input %s, weight %s",
                NB_SHAPE(x), NB_SHAPE(w));
        return NULL;
    }
    const nb_tensor *shapes[4] = {x, NULL, n->out[0], b};
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_BIAS};
    p = cpu_prim_make(be, &k, pd, args, b ? 4 : 3, shapes);
    if (p)
        p->layout[1] =
            weight_layout(be, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0), w, a->groups);
    return p;
}

/* t in layout `layout`, converting into a temporary that *tmp takes ownership of when needed */
static void *in_layout(cpu_backend *be, nb_tensor *t, int layout, nb_tensor **tmp) {
    bool owned;
    nb_tensor *c = cpu_as_layout(be, t, layout, &owned);
    if (!c) return NULL;
    if (owned) *tmp = c;
    return nb_data(c);
}

int cpu_conv_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    if (be->reference_conv) return cpu_conv_ref_backward(be, n, gout, gin);
    nb_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *gy = gout[0];
    cpu_prim *fwd = fwd_prim(be, n);
    if (!fwd) return -1;
    nb_tensor *xs = x; /* converted below where the primitive wants another layout */
    nb_tensor *ws = n->n_saved > 1 && n->saved[1] ? n->saved[1] : w;
    nb_tensor *tmp[4] = {NULL, NULL, NULL, NULL};
    int rc = 0;

    if (gin[0]) {
        cpu_prim *p = bwd_data_prim(be, n, fwd);
        if (!p) return -1;
        void *hw = in_layout(be, ws, p->layout[1], &tmp[0]);
        void *hg = in_layout(be, gy, p->layout[2], &tmp[1]);
        /* write straight into the gradient when the input's layout is the primitive's */
        bool direct = x->layout == p->layout[0] && (x->layout != NB_LAYOUT_PLAIN || nb_is_contiguous(x));
        nb_tensor *gx = direct ? gin[0] : (tmp[2] = cpu_new(be, x->dtype, 4, x->shape, p->layout[0]));
        if (!hw || !hg || !gx || (direct && nb_out_alloc(gin[0], x->layout) != 0)) rc = -1;
        if (rc == 0) rc = cpu_prim_run(be, p, (void *[]){nb_data(gx), hw, hg}, "conv2d");
        if (rc == 0 && !direct) {
            rc = nb_out_alloc(gin[0], x->layout);
            if (rc == 0) rc = cpu_relayout(&be->base, gin[0], gx);
        }
        for (int i = 0; i < 4; i++) nb_release(tmp[i]), tmp[i] = NULL;
        if (rc) return rc;
    }
    if (gin[1] || (b && gin[2])) {
        cpu_prim *p = bwd_weights_prim(be, n, fwd);
        if (!p) return -1;
        void *hx = in_layout(be, xs, p->layout[0], &tmp[0]);
        void *hg = in_layout(be, gy, p->layout[2], &tmp[1]);
        bool direct = gin[1] && w->layout == p->layout[1];
        nb_tensor *gw = direct ? gin[1] : (tmp[2] = cpu_new(be, NB_F32, 4, w->shape, p->layout[1]));
        if (direct && nb_out_alloc(gin[1], w->layout) != 0) rc = -1;
        nb_tensor *gb = NULL;
        if (b) {
            gb = gin[2] ? gin[2] : (tmp[3] = cpu_new(be, NB_F32, 1, b->shape, NB_LAYOUT_PLAIN));
            if (gin[2] && nb_out_alloc(gin[2], NB_LAYOUT_PLAIN) != 0) rc = -1;
        }
        if (!hx || !hg || !gw || (b && !gb)) rc = -1;
        if (rc == 0) rc = cpu_prim_run(be, p, (void *[]){hx, nb_data(gw), hg, gb ? nb_data(gb) : NULL}, "conv2d");
        if (rc == 0 && gin[1] && !direct) {
            rc = nb_out_alloc(gin[1], w->layout);
            if (rc == 0) rc = cpu_relayout(&be->base, gin[1], gw);
        }
        for (int i = 0; i < 4; i++) nb_release(tmp[i]);
    }
    return rc;
}
