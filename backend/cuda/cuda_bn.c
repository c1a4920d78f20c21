/* Batch normalisation on the GPU with nibble's own kernels (backend/cuda/k_batchnorm.cu): statistics in
 * double as on the CPU, an optional fused ReLU whose mask backward reads back from the output, and PyTorch's
 * running-statistics rule. Training saves the batch mean and biased variance (slots 0 and 1) for backward. */
#include "backend/cuda/cuda.h"

#define BN_K(call)                                                                                             \
    do {                                                                                                       \
        int e_ = (call);                                                                                       \
        if (e_ != 0) {                                                                                         \
            rc = cuda_fail(be, "batchnorm2d", #call, cudaGetErrorString((cudaError_t)e_), __FILE__, __LINE__); \
            goto done;                                                                                         \
        }                                                                                                      \
    } while (0)

int cuda_bn_forward(cuda_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2], *rm = n->in[3], *rv = n->in[4], *y = n->out[0];
    const nb_bn_attr *a = &n->attr.bn;
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    NB_REQUIRE(be->base.ctx, !a->sync, -1, "batchnorm2d",
               "synchronized batch norm (train.sync_bn) is implemented on the CPU backend only");
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    bool own = false;
    nb_tensor *xs = cuda_contiguous(be, x, &own);
    if (!xs) return -1;
    int rc = 0;
    double *part = NULL;
    size_t part_bytes = 0;
    nb_tensor *mean = rm, *var = rv;
    if (a->training) {
        mean = cuda_new(be, NB_F32, 1, &C);
        nb_node_set_saved(n, 0, mean);
        var = cuda_new(be, NB_F32, 1, &C);
        nb_node_set_saved(n, 1, var);
        int S = nbk_bn_splits(N, C, HW);
        part_bytes = sizeof(double) * 2 * (size_t)C * (size_t)S;
        part = mean && var ? cuda_scratch(be, part_bytes) : NULL;
        if (!part) {
            rc = -1;
            goto done;
        }
        BN_K(nbk_bn_stats_partial(be->stream, nb_data(xs), N, C, HW, S, part));
        BN_K(nbk_bn_stats_finalize(be->stream, part, C, S, N * HW, nb_data(mean), nb_data(var),
                                   rm ? nb_data(rm) : NULL, rv ? nb_data(rv) : NULL, a->momentum));
        if (rm) {
            rm->version++;
            rv->version++;
        }
    }
    BN_K(nbk_bn_apply(be->stream, nb_data(y), nb_data(xs), nb_data(mean), nb_data(var), gamma ? nb_data(gamma) : NULL,
                      beta ? nb_data(beta) : NULL, a->eps, a->relu, N, C, HW));
done:
    if (part) cuda_scratch_release(be, part, part_bytes);
    if (own) nb_release(xs);
    return rc;
}

int cuda_bn_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *gamma = n->in[1], *y = n->out[0];
    const nb_bn_attr *a = &n->attr.bn;
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    nb_tensor *mean = a->training ? n->saved[0] : n->in[3];
    nb_tensor *var = a->training ? n->saved[1] : n->in[4];
    for (int i = 0; i < 3; i++)
        if (gin[i] && nb_out_alloc(gin[i], NB_LAYOUT_PLAIN) != 0) return -1;
    bool own_x = false, own_g = false;
    nb_tensor *xs = cuda_contiguous(be, x, &own_x), *gy = xs ? cuda_contiguous(be, gout[0], &own_g) : NULL;
    int rc = 0;
    int S = nbk_bn_splits(N, C, HW);
    size_t part_bytes = sizeof(double) * 2 * (size_t)C * (size_t)S, k_bytes = sizeof(float) * 2 * (size_t)(C ? C : 1);
    double *part = NULL;
    float *k = NULL;
    const float *mask = a->relu ? nb_data(y) : NULL;
    if (!xs || !gy || (a->relu && !mask)) {
        rc = -1;
        goto done;
    }
    part = cuda_scratch(be, part_bytes);
    k = cuda_scratch(be, k_bytes);
    if (!part || !k) {
        rc = -1;
        goto done;
    }
    BN_K(nbk_bn_bwd_partial(be->stream, nb_data(gy), nb_data(xs), mask, nb_data(mean), N, C, HW, S, part));
    BN_K(nbk_bn_bwd_finalize(be->stream, part, C, S, N * HW, nb_data(var), a->eps,
                             gamma && gin[1] ? nb_data(gin[1]) : NULL, gamma && gin[2] ? nb_data(gin[2]) : NULL, k,
                             k + C));
    if (gin[0])
        BN_K(nbk_bn_bwd_apply(be->stream, nb_data(gin[0]), nb_data(gy), nb_data(xs), mask, nb_data(mean),
                              nb_data(var), gamma ? nb_data(gamma) : NULL, k, k + C, a->eps, a->training, N, C, HW));
done:
    if (part) cuda_scratch_release(be, part, part_bytes);
    if (k) cuda_scratch_release(be, k, k_bytes);
    if (own_x) nb_release(xs);
    if (own_g) nb_release(gy);
    return rc;
}
