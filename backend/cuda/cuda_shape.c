/* Channel shuffle and the channel-broadcast product on the GPU (concatenation is the core's: strided copies
 * into the output). */
#include "backend/cuda/cuda.h"

int cuda_shape_forward(cuda_backend *be, nb_node *n) {
    nb_tensor *y = n->out[0], *x = n->in[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    switch (n->op) {
    case NB_OP_CHANNEL_SHUFFLE:
        CUDA_K(be, "channel_shuffle", nbk_channel_shuffle(be->stream, nb_data(y), nb_data(x), x->shape[0], x->shape[1],
                                                          x->shape[2] * x->shape[3], n->attr.shuffle.groups, 0));
        return 0;
    case NB_OP_MUL_CHANNEL: {
        const nb_tensor *s = n->in[1];
        CUDA_K(be, "mul_channel", nbk_mul_channel(be->stream, nb_data(y), nb_data(x), nb_data(s), x->shape[0], x->shape[1],
                                                  x->shape[2] * x->shape[3], s->shape[0] == 1 && x->shape[0] != 1));
        return 0;
    }
    default: return -1;
    }
}

int cuda_shape_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_tensor *x = n->in[0];
    bool own = false;
    nb_tensor *gy = cuda_contiguous(be, gout[0], &own);
    if (!gy) return -1;
    int rc = 0;
    switch (n->op) {
    case NB_OP_CHANNEL_SHUFFLE:
        if (!gin[0]) break;
        if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) {
            rc = -1;
            break;
        }
        {
            int e = nbk_channel_shuffle(be->stream, nb_data(gin[0]), nb_data(gy), x->shape[0], x->shape[1],
                                        x->shape[2] * x->shape[3], n->attr.shuffle.groups, 1);
            if (e) rc = cuda_fail(be, "channel_shuffle", "nbk_channel_shuffle", cudaGetErrorString((cudaError_t)e),
                                  __FILE__, __LINE__);
        }
        break;
    case NB_OP_MUL_CHANNEL: {
        const nb_tensor *s = n->in[1];
        int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
        int bcast = s->shape[0] == 1 && N != 1;
        int e = 0;
        if (gin[0]) {
            if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) rc = -1;
            else e = nbk_mul_channel(be->stream, nb_data(gin[0]), nb_data(gy), nb_data(s), N, C, HW, bcast);
        }
        if (rc == 0 && e == 0 && gin[1]) {
            if (nb_out_alloc(gin[1], NB_LAYOUT_PLAIN) != 0) rc = -1;
            else e = nbk_mul_channel_grad_scale(be->stream, nb_data(gin[1]), nb_data(x), nb_data(gy), N, C, HW, bcast);
        }
        if (e) rc = cuda_fail(be, "mul_channel", "kernel", cudaGetErrorString((cudaError_t)e), __FILE__, __LINE__);
        break;
    }
    default: rc = -1;
    }
    if (own) nb_release(gy);
    return rc;
}
