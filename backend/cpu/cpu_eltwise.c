/* Activations on oneDNN's eltwise primitives, which run in any layout and keep blocked padding at zero. */
#include "backend/cpu/cpu.h"

static dnnl_alg_kind_t alg_of(nb_op op, float *alpha, float *beta) {
    *beta = 0.0f;
    switch (op) {
    case NB_OP_RELU: *alpha = 0.0f; return dnnl_eltwise_relu;
    case NB_OP_LEAKY_RELU: return dnnl_eltwise_relu; /* alpha is the negative slope */
    case NB_OP_RELU6: *alpha = 0.0f; *beta = 6.0f; return dnnl_eltwise_clip_v2; /* zero gradient at both bounds, as torch */
    case NB_OP_SIGMOID: *alpha = 0.0f; return dnnl_eltwise_logistic_use_dst_for_bwd;
    case NB_OP_HARDSWISH: *alpha = 0.0f; return dnnl_eltwise_hardswish;
    case NB_OP_SILU: *alpha = 1.0f; return dnnl_eltwise_swish; /* x * sigmoid(alpha x) */
    default: return dnnl_alg_kind_undef;
    }
}

static cpu_prim *fwd_prim(cpu_backend *be, const nb_node *n) {
    const nb_tensor *x = n->in[0];
    float alpha = n->attr.eltwise.alpha, beta;
    dnnl_alg_kind_t alg = alg_of(n->op, &alpha, &beta);
    cpu_key k;
    cpu_key_init(&k, n->op, PHASE_FWD);
    cpu_key_tensor(&k, x);
    cpu_key_add(&k, &alpha, sizeof alpha);
    cpu_prim *p = cpu_cache_find(be, &k);
    if (p) return p;
    dnnl_memory_desc_t md;
    if (cpu_md(be, x, &md)) return NULL;
    dnnl_eltwise_desc_t d;
    dnnl_primitive_desc_t pd;
    if (dnnl_eltwise_forward_desc_init(&d, dnnl_forward_training, alg, &md, alpha, beta) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &d, be->attr, be->engine, NULL) != dnnl_success) {
        NB_FAIL(be->base.ctx, nb_op_name(n->op), "oneDNN has no eltwise primitive for input %s", NB_SHAPE(x));
        return NULL;
    }
    return cpu_prim_make(be, &k, pd, (int[]){DNNL_ARG_SRC, DNNL_ARG_DST}, 2, NULL);
}

int cpu_eltwise_forward(cpu_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *y = n->out[0];
    cpu_prim *p = fwd_prim(be, n);
    if (!p) return -1;
    if (nb_out_alloc(y, x->layout) != 0) return -1;
    return cpu_prim_run(be, p, (void *[]){nb_data(x), nb_data(y)}, nb_op_name(n->op));
}

int cpu_eltwise_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *y = n->out[0], *gy = gout[0];
    if (!gin[0]) return 0;
    float alpha = n->attr.eltwise.alpha, beta;
    dnnl_alg_kind_t alg = alg_of(n->op, &alpha, &beta);
    bool use_dst = alg == dnnl_eltwise_logistic_use_dst_for_bwd;
    cpu_prim *fwd = fwd_prim(be, n);
    if (!fwd) return -1;
    cpu_key k;
    cpu_key_init(&k, n->op, PHASE_BWD);
    cpu_key_tensor(&k, x);
    cpu_key_tensor(&k, gy);
    cpu_key_add(&k, &alpha, sizeof alpha);
    cpu_prim *p = cpu_cache_find(be, &k);
    if (!p) {
        dnnl_memory_desc_t md, gmd;
        if (cpu_md(be, x, &md) || cpu_md(be, gy, &gmd)) return -1;
        dnnl_eltwise_desc_t d;
        dnnl_primitive_desc_t pd;
        if (dnnl_eltwise_backward_desc_init(&d, alg, &gmd, &md, alpha, beta) != dnnl_success ||
            dnnl_primitive_desc_create(&pd, &d, be->attr, be->engine, fwd->pd) != dnnl_success) {
            NB_FAIL(be->base.ctx, nb_op_name(n->op), "oneDNN has no eltwise backward for input %s", NB_SHAPE(x));
            return -1;
        }
        p = cpu_prim_make(be, &k, pd, (int[]){use_dst ? DNNL_ARG_DST : DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC},
                          3, NULL);
        if (!p) return -1;
    }
    if (nb_out_alloc(gin[0], x->layout) != 0) return -1;
    return cpu_prim_run(be, p, (void *[]){nb_data(use_dst ? y : x), nb_data(gy), nb_data(gin[0])}, nb_op_name(n->op));
}
