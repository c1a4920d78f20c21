/* Max, average and global-average pooling on the GPU with nibble's kernels (backend/cuda/k_pooling.cu).
 * Max pooling saves the arg-max of each window (slot 0, int32) when backward will need it. */
#include "backend/cuda/cuda.h"

static nbk_pool geom(const nb_node *n) {
    const nb_pool_attr *a = &n->attr.pool;
    const nb_tensor *x = n->in[0], *y = n->out[0];
    return (nbk_pool){.N = x->shape[0], .C = x->shape[1], .H = x->shape[2], .W = x->shape[3], .OH = y->shape[2],
                      .OW = y->shape[3], .kh = a->kernel[0], .kw = a->kernel[1], .sh = a->stride[0], .sw = a->stride[1],
                      .ph = a->pad[0], .pw = a->pad[1], .dh = a->dilation[0], .dw = a->dilation[1],
                      .exclude_pad = a->exclude_pad};
}

int cuda_pool_forward(cuda_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *y = n->out[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    nbk_pool g = geom(n);
    const char *op = nb_op_name(n->op);
    switch (n->op) {
    case NB_OP_MAXPOOL2D: {
        nb_tensor *am = NULL;
        if (nb_node_wants_grad(be->base.ctx, n)) {
            am = nb_node_save(n, NB_I32, 4, y->shape, NB_LAYOUT_PLAIN);
            if (!am) return -1;
        }
        CUDA_K(be, op, nbk_maxpool_forward(be->stream, &g, nb_data(y), am ? nb_data(am) : NULL, nb_data(x)));
        return 0;
    }
    case NB_OP_AVGPOOL2D: CUDA_K(be, op, nbk_avgpool_forward(be->stream, &g, nb_data(y), nb_data(x))); return 0;
    case NB_OP_GLOBAL_AVGPOOL:
        CUDA_K(be, op, nbk_global_avg_forward(be->stream, nb_data(y), nb_data(x), g.N * g.C, g.H * g.W));
        return 0;
    default: return -1;
    }
}

int cuda_pool_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    if (!gin[0]) return 0;
    if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) return -1;
    nbk_pool g = geom(n);
    const char *op = nb_op_name(n->op);
    bool own = false;
    nb_tensor *gy = cuda_contiguous(be, gout[0], &own);
    if (!gy) return -1;
    int e = 0;
    switch (n->op) {
    case NB_OP_MAXPOOL2D:
        if (n->n_saved < 1 || !n->saved[0]) {
            NB_FAIL(be->base.ctx, op, "the forward pass kept no arg-max for input %s", NB_SHAPE(n->in[0]));
            if (own) nb_release(gy);
            return -1;
        }
        e = nbk_maxpool_backward(be->stream, &g, nb_data(gin[0]), nb_data(gy), nb_data(n->saved[0]));
        break;
    case NB_OP_AVGPOOL2D: e = nbk_avgpool_backward(be->stream, &g, nb_data(gin[0]), nb_data(gy)); break;
    case NB_OP_GLOBAL_AVGPOOL: e = nbk_global_avg_backward(be->stream, nb_data(gin[0]), nb_data(gy), g.N * g.C, g.H * g.W); break;
    default: e = (int)cudaErrorInvalidValue;
    }
    if (own) nb_release(gy);
    if (e) return cuda_fail(be, op, "pooling kernel", cudaGetErrorString((cudaError_t)e), __FILE__, __LINE__);
    return 0;
}
