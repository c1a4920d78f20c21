/* Softmax, log-softmax and the losses on the GPU (backend/cuda/k_loss.cu). The loss stays on the device;
 * cross-entropy alone reads back one integer, the first out-of-range label, so that a bad label is reported
 * as on the CPU rather than silently averaged in. */
#include "backend/cuda/cuda.h"

static void around(const nb_tensor *t, int axis, int64_t *outer, int64_t *len, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= t->shape[i];
    for (int i = axis + 1; i < t->ndim; i++) *inner *= t->shape[i];
    *len = t->shape[axis];
}

static int cross_entropy_forward(cuda_backend *be, nb_node *n) {
    nb_tensor *z = n->in[0], *lab = n->in[1], *y = n->out[0];
    int64_t N = z->shape[0], C = z->shape[1];
    size_t bytes = sizeof(double) * (size_t)N + sizeof(int64_t);
    char *scratch = cuda_scratch(be, bytes);
    if (!scratch) return -1;
    int64_t *bad = (int64_t *)(scratch + sizeof(double) * (size_t)N), first = 0;
    int e = nbk_cross_entropy_forward(be->stream, nb_data(y), nb_data(z), nb_data(lab), N, C, n->attr.ce.label_smoothing,
                                      (double *)scratch, bad);
    int rc = 0;
    if (e) rc = cuda_fail(be, "cross_entropy", "kernel", cudaGetErrorString((cudaError_t)e), __FILE__, __LINE__);
    if (rc == 0) rc = be->base.download(&be->base, &first, bad, sizeof first);
    cuda_scratch_release(be, scratch, bytes);
    if (rc == 0 && first) {
        int64_t i = first - 1, v = 0;
        if (be->base.download(&be->base, &v, (const int64_t *)nb_data(lab) + i, sizeof v) != 0) return -1;
        NB_FAIL(be->base.ctx, "cross_entropy", "label %lld of sample %lld is outside [0, %lld) for logits %s",
                (long long)v, (long long)i, (long long)C, NB_SHAPE(z));
        return -1;
    }
    return rc;
}

int cuda_loss_forward(cuda_backend *be, nb_node *n) {
    nb_tensor *y = n->out[0], *a = n->in[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    const char *op = nb_op_name(n->op);
    switch (n->op) {
    case NB_OP_SOFTMAX:
    case NB_OP_LOG_SOFTMAX: {
        int64_t outer, len, inner;
        around(a, n->attr.axis.axis, &outer, &len, &inner);
        CUDA_K(be, op, nbk_softmax_forward(be->stream, nb_data(y), nb_data(a), outer, len, inner,
                                           n->op == NB_OP_LOG_SOFTMAX));
        return 0;
    }
    case NB_OP_CROSS_ENTROPY: return cross_entropy_forward(be, n);
    case NB_OP_KL_DIV: {
        int64_t N = a->shape[0];
        size_t bytes = sizeof(double) * (size_t)(N ? N : 1);
        double *rows = cuda_scratch(be, bytes);
        if (!rows) return -1;
        int e = nbk_kl_div_forward(be->stream, nb_data(y), nb_data(a), nb_data(n->in[1]), N, a->shape[1],
                                   n->attr.kl.temperature, rows);
        cuda_scratch_release(be, rows, bytes);
        if (e) return cuda_fail(be, op, "kernel", cudaGetErrorString((cudaError_t)e), __FILE__, __LINE__);
        return 0;
    }
    case NB_OP_SMOOTH_L1:
    case NB_OP_MSE: {
        size_t bytes = sizeof(double) * NBK_SUMSQ_BLOCKS;
        double *part = cuda_scratch(be, bytes);
        if (!part) return -1;
        int e = nbk_regression_forward(be->stream, nb_data(y), nb_data(a), nb_data(n->in[1]), nb_numel(a),
                                       n->op == NB_OP_MSE, n->attr.smooth_l1.beta, part);
        cuda_scratch_release(be, part, bytes);
        if (e) return cuda_fail(be, op, "kernel", cudaGetErrorString((cudaError_t)e), __FILE__, __LINE__);
        return 0;
    }
    default: return -1;
    }
}

int cuda_loss_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_tensor *a = n->in[0], *b = n->in[1];
    const char *op = nb_op_name(n->op);
    bool own = false;
    nb_tensor *gy = cuda_contiguous(be, gout[0], &own);
    if (!gy) return -1;
    int e = 0, rc = 0;
    switch (n->op) {
    case NB_OP_SOFTMAX:
    case NB_OP_LOG_SOFTMAX: {
        if (!gin[0]) break;
        if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) {
            rc = -1;
            break;
        }
        int64_t outer, len, inner;
        around(a, n->attr.axis.axis, &outer, &len, &inner);
        e = nbk_softmax_backward(be->stream, nb_data(gin[0]), nb_data(n->out[0]), nb_data(gy), outer, len, inner,
                                 n->op == NB_OP_LOG_SOFTMAX);
        break;
    }
    case NB_OP_CROSS_ENTROPY:
    case NB_OP_KL_DIV:
        /* the labels and the teacher get no gradient */
        if (!gin[0]) break;
        if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) {
            rc = -1;
            break;
        }
        if (n->op == NB_OP_CROSS_ENTROPY)
            e = nbk_cross_entropy_backward(be->stream, nb_data(gin[0]), nb_data(a), nb_data(b), nb_data(gy), a->shape[0],
                                           a->shape[1], n->attr.ce.label_smoothing);
        else
            e = nbk_kl_div_backward(be->stream, nb_data(gin[0]), nb_data(a), nb_data(b), nb_data(gy), a->shape[0],
                                    a->shape[1], n->attr.kl.temperature);
        break;
    case NB_OP_SMOOTH_L1:
    case NB_OP_MSE:
        for (int k = 0; k < 2 && e == 0 && rc == 0; k++) {
            if (!gin[k]) continue;
            if (nb_out_alloc(gin[k], NB_LAYOUT_PLAIN) != 0) {
                rc = -1;
                break;
            }
            e = nbk_regression_backward(be->stream, nb_data(gin[k]), nb_data(a), nb_data(b), nb_data(gy), nb_numel(a),
                                        n->op == NB_OP_MSE, n->attr.smooth_l1.beta, k == 0 ? 1.0f : -1.0f);
        }
        break;
    default: rc = -1;
    }
    if (own) nb_release(gy);
    if (e) return cuda_fail(be, op, "kernel", cudaGetErrorString((cudaError_t)e), __FILE__, __LINE__);
    return rc;
}
