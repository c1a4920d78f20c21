/* Fake quantization on the GPU with nibble's kernels (backend/cuda/k_quant.cu); the step size and zero point
 * stay on the device. */
#include "backend/cuda/cuda.h"

static nbk_fake_quant geometry(const nb_node *n) {
    const nb_fake_quant_attr *a = &n->attr.fake_quant;
    nbk_fake_quant g = {.n = nb_numel(n->in[0]), .qmin = a->qmin, .qmax = a->qmax, .per_channel = a->axis >= 0,
                        .grad_factor = a->grad_factor};
    nb_fake_quant_groups(n, &g.groups, &g.inner);
    return g;
}

int cuda_fake_quant_forward(cuda_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *y = n->out[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    nbk_fake_quant g = geometry(n);
    CUDA_K(be, "fake_quant", nbk_fake_quant_forward(be->stream, nb_data(y), nb_data(x), nb_data(n->in[1]), nb_data(n->in[2]), &g));
    return 0;
}

int cuda_fake_quant_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nbk_fake_quant g = geometry(n);
    for (int k = 0; k < 3; k++)
        if (gin[k] && nb_out_alloc(gin[k], NB_LAYOUT_PLAIN) != 0) return -1;
    size_t bytes = gin[1] || gin[2] ? sizeof(double) * 2 * (size_t)(g.groups * nbk_fake_quant_blocks(&g)) : 0;
    double *partial = bytes ? cuda_scratch(be, bytes) : NULL;
    if (bytes && !partial) return -1;
    int e = nbk_fake_quant_backward(be->stream, gin[0] ? nb_data(gin[0]) : NULL, gin[1] ? nb_data(gin[1]) : NULL,
                                    gin[2] ? nb_data(gin[2]) : NULL, nb_data(n->in[0]), nb_data(gout[0]),
                                    nb_data(n->in[1]), nb_data(n->in[2]), &g, partial);
    /* released at once, as every scratch here: the work on the one stream runs in order */
    if (partial) cuda_scratch_release(be, partial, bytes);
    if (e) return cuda_fail(be, "fake_quant", "nbk_fake_quant_backward", cudaGetErrorString((cudaError_t)e), __FILE__, __LINE__);
    return 0;
}
