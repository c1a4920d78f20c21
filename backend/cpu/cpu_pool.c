/* Max, average and global-average pooling on oneDNN, in the input's layout. Max pooling keeps oneDNN's
 * workspace (the arg-max positions) as a saved tensor for backward. */
#include <string.h>

#include "backend/cpu/cpu.h"

static dnnl_alg_kind_t pool_alg(const nb_node *n) {
    if (n->op == NB_OP_MAXPOOL2D) return dnnl_pooling_max;
    return n->attr.pool.exclude_pad ? dnnl_pooling_avg_exclude_padding : dnnl_pooling_avg_include_padding;
}

static void pool_geom(const nb_node *n, dnnl_dims_t st, dnnl_dims_t k, dnnl_dims_t dil, dnnl_dims_t pl,
                      dnnl_dims_t pr) {
    const nb_pool_attr *a = &n->attr.pool;
    const nb_tensor *x = n->in[0], *y = n->out[0];
    for (int i = 0; i < 2; i++) {
        st[i] = a->stride[i];
        k[i] = a->kernel[i];
        dil[i] = a->dilation[i] - 1;
        pl[i] = a->pad[i];
        /* right padding that makes the output size come out as computed (ceil mode may need more) */
        int64_t span = (int64_t)a->dilation[i] * (a->kernel[i] - 1) + 1;
        pr[i] = (y->shape[2 + i] - 1) * a->stride[i] + span - x->shape[2 + i] - a->pad[i];
        if (pr[i] < 0) pr[i] = 0;
    }
}

static cpu_prim *pool_fwd_prim(cpu_backend *be, const nb_node *n, dnnl_prop_kind_t prop) {
    const nb_tensor *x = n->in[0], *y = n->out[0];
    cpu_key k;
    cpu_key_init(&k, n->op, prop == dnnl_forward_inference ? PHASE_FWD_INFER : PHASE_FWD);
    cpu_key_tensor(&k, x);
    cpu_key_add(&k, y->shape, sizeof(int64_t) * 4);
    cpu_key_add(&k, &n->attr.pool, sizeof n->attr.pool);
    cpu_prim *p = cpu_cache_find(be, &k);
    if (p) return p;
    dnnl_memory_desc_t xmd, ymd;
    if (cpu_md(be, x, &xmd)) return NULL;
    cpu_md_any(y, &ymd);
    dnnl_dims_t st, ker, dil, pl, pr;
    pool_geom(n, st, ker, dil, pl, pr);
    dnnl_pooling_v2_desc_t d;
    dnnl_primitive_desc_t pd;
    if (dnnl_pooling_v2_forward_desc_init(&d, prop, pool_alg(n), &xmd, &ymd, st, ker, dil, pl, pr) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &d, be->attr, be->engine, NULL) != dnnl_success) {
        NB_FAIL(be->base.ctx, nb_op_name(n->op), "oneDNN has no pooling for input %s", NB_SHAPE(x));
        return NULL;
    }
    const nb_tensor *shapes[3] = {x, y, NULL};
    bool ws = n->op == NB_OP_MAXPOOL2D && prop == dnnl_forward_training;
    return cpu_prim_make(be, &k, pd, (int[]){DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_WORKSPACE}, ws ? 3 : 2, shapes);
}

int cpu_pool_forward(cpu_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *y = n->out[0];
    dnnl_prop_kind_t prop = nb_node_wants_grad(be->base.ctx, n) ? dnnl_forward_training : dnnl_forward_inference;
    cpu_prim *p = pool_fwd_prim(be, n, prop);
    if (!p) return -1;
    if (nb_out_alloc(y, p->layout[1]) != 0) return -1;
    void *h[3] = {nb_data(x), nb_data(y), NULL};
    if (p->nargs == 3) {
        nb_tensor *ws = nb_node_save(n, NB_U8, 4, y->shape, p->layout[2]);
        if (!ws) return -1;
        h[2] = nb_data(ws);
    }
    return cpu_prim_run(be, p, h, nb_op_name(n->op));
}

int cpu_pool_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *y = n->out[0], *gy = gout[0];
    if (!gin[0]) return 0;
    cpu_prim *fwd = pool_fwd_prim(be, n, dnnl_forward_training);
    if (!fwd) return -1;
    cpu_key k;
    cpu_key_init(&k, n->op, PHASE_BWD);
    cpu_key_tensor(&k, x);
    cpu_key_tensor(&k, gy);
    cpu_key_add(&k, &n->attr.pool, sizeof n->attr.pool);
    cpu_prim *p = cpu_cache_find(be, &k);
    if (!p) {
        dnnl_memory_desc_t xmd, gmd;
        cpu_md_any(x, &xmd);
        if (cpu_md(be, gy, &gmd)) return -1;
        xmd = *dnnl_primitive_desc_query_md(fwd->pd, dnnl_query_src_md, 0);
        dnnl_dims_t st, ker, dil, pl, pr;
        pool_geom(n, st, ker, dil, pl, pr);
        dnnl_pooling_v2_desc_t d;
        dnnl_primitive_desc_t pd;
        if (dnnl_pooling_v2_backward_desc_init(&d, pool_alg(n), &xmd, &gmd, st, ker, dil, pl, pr) != dnnl_success ||
            dnnl_primitive_desc_create(&pd, &d, be->attr, be->engine, fwd->pd) != dnnl_success) {
            NB_FAIL(be->base.ctx, nb_op_name(n->op), "oneDNN has no pooling backward for input %s", NB_SHAPE(x));
            return -1;
        }
        const nb_tensor *shapes[3] = {x, y, NULL};
        bool ws = n->op == NB_OP_MAXPOOL2D;
        p = cpu_prim_make(be, &k, pd, (int[]){DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_WORKSPACE}, ws ? 3 : 2,
                          shapes);
        if (!p) return -1;
    }
    if (nb_out_alloc(gin[0], x->layout) != 0) return -1;
    void *h[3] = {nb_data(gin[0]), nb_data(gy), p->nargs == 3 ? nb_data(n->saved[0]) : NULL};
    return cpu_prim_run(be, p, h, nb_op_name(n->op));
}
