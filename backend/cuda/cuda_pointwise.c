/* Activations, sums, scaling and dropout on the GPU: one element-wise kernel each way
 * (backend/cuda/k_elementwise.cu). */
#include "backend/cuda/cuda.h"

static int act_kind(nb_op op) {
    switch (op) {
    case NB_OP_RELU: return NBK_RELU;
    case NB_OP_RELU6: return NBK_RELU6;
    case NB_OP_LEAKY_RELU: return NBK_LEAKY;
    case NB_OP_SIGMOID: return NBK_SIGMOID;
    case NB_OP_HARDSWISH: return NBK_HARDSWISH;
    case NB_OP_SILU: return NBK_SILU;
    default: return -1;
    }
}

int cuda_pointwise_forward(cuda_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *y = n->out[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    NB_REQUIRE(be->base.ctx, nb_is_contiguous(x) && (n->op != NB_OP_ADD || nb_is_contiguous(n->in[1])), -1,
               nb_op_name(n->op), "needs contiguous inputs, got %s", NB_SHAPE(x));
    int64_t len = nb_numel(y);
    const char *op = nb_op_name(n->op);
    switch (n->op) {
    case NB_OP_ADD:
        CUDA_K(be, op, nbk_add(be->stream, nb_data(y), n->attr.add.alpha, nb_data(x), n->attr.add.beta,
                               nb_data(n->in[1]), n->attr.add.relu, len));
        return 0;
    case NB_OP_SCALE: CUDA_K(be, op, nbk_scale(be->stream, nb_data(y), n->attr.add.alpha, nb_data(x), len)); return 0;
    case NB_OP_DROPOUT: {
        const nb_dropout_attr *a = &n->attr.dropout;
        CUDA_K(be, op, nbk_dropout(be->stream, nb_data(y), nb_data(x), len, a->p, a->seed, a->stream, a->offset));
        return 0;
    }
    default:
        CUDA_K(be, op, nbk_act_forward(be->stream, act_kind(n->op), nb_data(y), nb_data(x), n->attr.eltwise.alpha, len));
        return 0;
    }
}

int cuda_pointwise_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    const char *op = nb_op_name(n->op);
    bool own = false;
    nb_tensor *gy = cuda_contiguous(be, gout[0], &own);
    if (!gy) return -1;
    int64_t len = nb_numel(gy);
    const float *g = nb_data(gy);
    int e = 0;
    for (int k = 0; k < n->n_in && e == 0; k++) {
        if (!gin[k]) continue;
        if (n->op == NB_OP_ADD && k == 1 && gin[0] && n->attr.add.alpha == n->attr.add.beta) {
            nb_share_storage(gin[1], gin[0]);
            continue;
        }
        if (nb_out_alloc(gin[k], NB_LAYOUT_PLAIN) != 0) {
            if (own) nb_release(gy);
            return -1;
        }
        float *gx = nb_data(gin[k]);
        switch (n->op) {
        case NB_OP_ADD: {
            float s = k == 0 ? n->attr.add.alpha : n->attr.add.beta;
            if (n->attr.add.relu) e = nbk_relu_mask_scale(be->stream, gx, nb_data(n->out[0]), s, g, len);
            else e = nbk_scale(be->stream, gx, s, g, len);
            break;
        }
        case NB_OP_SCALE: e = nbk_scale(be->stream, gx, n->attr.add.alpha, g, len); break;
        case NB_OP_DROPOUT: {
            const nb_dropout_attr *a = &n->attr.dropout;
            e = nbk_dropout(be->stream, gx, g, len, a->p, a->seed, a->stream, a->offset);
            break;
        }
        default: {
            /* the sigmoid's derivative reads its output, the others their input */
            const nb_tensor *xy = n->op == NB_OP_SIGMOID ? n->out[0] : n->in[0];
            e = nbk_act_backward(be->stream, act_kind(n->op), gx, nb_data(xy), g, n->attr.eltwise.alpha, len);
        }
        }
    }
    if (own) nb_release(gy);
    if (e) return cuda_fail(be, op, "element-wise kernel", cudaGetErrorString((cudaError_t)e), __FILE__, __LINE__);
    return 0;
}
