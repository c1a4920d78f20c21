/* Fully connected layers on cuBLAS: y = x W^T + b and the two products of its backward. cuBLAS is
 * column-major, so each row-major product is written as its transpose: y^T = W x^T, and so on. */
#include "backend/cuda/cuda.h"

static const float one = 1.0f, zero = 0.0f;

int cuda_linear_forward(cuda_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    int N = (int)x->shape[0], K = (int)x->shape[1], M = (int)w->shape[0];
    if (N == 0 || M == 0) return 0;
    if (b) CUDA_K(be, "linear", nbk_rows_set(be->stream, nb_data(y), nb_data(b), N, M));
    if (K == 0) return b ? 0 : cuda_fill(&be->base, y, 0.0);
    CUDA_BLAS(be, "linear", cublasSgemm(be->blas, CUBLAS_OP_T, CUBLAS_OP_N, M, N, K, &one, nb_data(w), K, nb_data(x), K,
                                        b ? &one : &zero, nb_data(y), M));
    return 0;
}

int cuda_linear_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *w = n->in[1];
    int N = (int)x->shape[0], K = (int)x->shape[1], M = (int)w->shape[0];
    bool own = false;
    nb_tensor *g = cuda_contiguous(be, gout[0], &own);
    if (!g) return -1;
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        if (gin[i] && nb_out_alloc(gin[i], NB_LAYOUT_PLAIN) != 0) rc = -1;
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if (rc == 0 && gin[0]) {
        /* gx [N,K] = g [N,M] W [M,K] */
        if (N && K && M)
            st = cublasSgemm(be->blas, CUBLAS_OP_N, CUBLAS_OP_N, K, N, M, &one, nb_data(w), K, nb_data(g), M, &zero,
                             nb_data(gin[0]), K);
        else rc = cuda_fill(&be->base, gin[0], 0.0);
    }
    if (rc == 0 && st == CUBLAS_STATUS_SUCCESS && gin[1]) {
        /* gW [M,K] = g^T [M,N] x [N,K] */
        if (N && K && M)
            st = cublasSgemm(be->blas, CUBLAS_OP_N, CUBLAS_OP_T, K, M, N, &one, nb_data(x), K, nb_data(g), M, &zero,
                             nb_data(gin[1]), K);
        else rc = cuda_fill(&be->base, gin[1], 0.0);
    }
    if (st != CUBLAS_STATUS_SUCCESS)
        rc = cuda_fail(be, "linear", "cublasSgemm", cublasGetStatusString(st), __FILE__, __LINE__);
    if (rc == 0 && gin[2]) {
        int e = nbk_rows_sum(be->stream, nb_data(gin[2]), nb_data(g), N, M);
        if (e) rc = cuda_fail(be, "linear", "nbk_rows_sum", cudaGetErrorString((cudaError_t)e), __FILE__, __LINE__);
    }
    if (own) nb_release(g);
    return rc;
}
