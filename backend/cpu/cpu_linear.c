/* Fully connected layers: y = x W^T + b, and the two products of its backward, with oneDNN's sgemm. OpenBLAS
 * 0.3.21 does not recognise every CPU it runs on and falls back to its SSE3 (Prescott) kernels there, which
 * left AlexNet's classifier at a fifth of its step time; oneDNN's sgemm is JIT-compiled for the CPU at hand.
 * Under mixed precision (a bf16 input) the three products are oneDNN bf16 matmuls accumulating in f32: the
 * output (logits, for the loss) and the weight gradient are f32, the input gradient bf16. */
#include <string.h>

#include "backend/cpu/cpu.h"

/* C[m, n] = A[m, k] B[k, n] with A, B bf16 and C of type ct, each given by its row and column strides (a
 * transposed operand is a strided one), as a cached oneDNN matmul */
static int bf16_matmul(cpu_backend *be, int phase, int64_t m, int64_t n, int64_t k, const int64_t as[2],
                       const int64_t bs[2], dnnl_data_type_t ct, const void *a, const void *b, void *c) {
    cpu_key key;
    cpu_key_init(&key, NB_OP_LINEAR, phase);
    int64_t geo[7] = {m, n, k, as[0], as[1], bs[0], bs[1]};
    cpu_key_add(&key, geo, sizeof geo);
    cpu_key_add(&key, &ct, sizeof ct);
    cpu_prim *p = cpu_cache_find(be, &key);
    if (!p) {
        dnnl_memory_desc_t amd, bmd, cmd;
        dnnl_dims_t ad = {m, k}, bd = {k, n}, cd = {m, n}, ast = {as[0], as[1]}, bst = {bs[0], bs[1]}, cst = {n, 1};
        dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_bf16, ast);
        dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dnnl_bf16, bst);
        dnnl_memory_desc_init_by_strides(&cmd, 2, cd, ct, cst);
        dnnl_matmul_desc_t d;
        dnnl_primitive_desc_t pd;
        if (dnnl_matmul_desc_init(&d, &amd, &bmd, NULL, &cmd) != dnnl_success ||
            dnnl_primitive_desc_create(&pd, &d, be->attr, be->engine, NULL) != dnnl_success) {
            NB_FAIL(be->base.ctx, "linear", "oneDNN has no bf16 matrix product of [%lld,%lld] by [%lld,%lld]",
                    (long long)m, (long long)k, (long long)k, (long long)n);
            return -1;
        }
        p = cpu_prim_make(be, &key, pd, (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST}, 3, NULL);
        if (!p) return -1;
    }
    return cpu_prim_run(be, p, (void *[]){(void *)a, (void *)b, c}, "linear");
}

static int lowp_forward(cpu_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out[0];
    int64_t N = x->shape[0], K = x->shape[1], M = w->shape[0];
    nb_tensor *wl = cpu_lowp_weight(be, w, NB_LAYOUT_PLAIN);
    if (!wl) return -1;
    nb_node_set_saved(n, 1, wl);
    float *yp = nb_data(y);
    if (N && M && K) {
        /* y[N, M] = x[N, K] W^T, W^T being W [M, K] read by columns */
        if (bf16_matmul(be, PHASE_FWD, N, M, K, (int64_t[]){K, 1}, (int64_t[]){1, K}, dnnl_f32, nb_data(x),
                        nb_data(wl), yp))
            return -1;
    } else {
        memset(yp, 0, sizeof(float) * (size_t)N * (size_t)M);
    }
    if (b) {
        const float *bp = nb_data(b);
        for (int64_t i = 0; i < N; i++)
            for (int64_t o = 0; o < M; o++) yp[i * M + o] += bp[o];
    }
    return 0;
}

int cpu_linear_forward(cpu_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    if (x->dtype == NB_BF16) return lowp_forward(be, n);
    int N = (int)x->shape[0], K = (int)x->shape[1], M = (int)w->shape[0];
    float *yp = nb_data(y);
    const float *xp = nb_data(x), *wp = nb_data(w);
    if (b) {
        const float *bp = nb_data(b);
        for (int i = 0; i < N; i++) memcpy(yp + (size_t)i * M, bp, sizeof(float) * (size_t)M);
    }
    if (N && M && K) CPU_DNNL(be, "linear", dnnl_sgemm('N', 'T', N, M, K, 1.0f, xp, K, wp, K, b ? 1.0f : 0.0f, yp, M));
    else if (!b) memset(yp, 0, sizeof(float) * (size_t)N * (size_t)M);
    return 0;
}

/* the two products of backward in bf16: gx[N, K] = g W, gw[M, K] = g^T x (g cast to bf16 once) */
static int lowp_backward(cpu_backend *be, nb_node *n, const nb_tensor *gy, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *w = n->in[1];
    int64_t N = x->shape[0], K = x->shape[1], M = w->shape[0];
    nb_tensor *g = cpu_new(be, NB_BF16, 2, gy->shape, NB_LAYOUT_PLAIN);
    int rc = g ? cpu_relayout(&be->base, g, gy) : -1;
    if (rc == 0 && gin[0]) {
        rc = nb_out_alloc(gin[0], NB_LAYOUT_PLAIN);
        if (rc == 0 && N && K && M)
            rc = bf16_matmul(be, PHASE_BWD_DATA, N, K, M, (int64_t[]){M, 1}, (int64_t[]){K, 1}, dnnl_bf16, nb_data(g),
                             nb_data(n->saved[1]), nb_data(gin[0]));
        else if (rc == 0) memset(nb_data(gin[0]), 0, 2 * (size_t)N * (size_t)K);
    }
    if (rc == 0 && gin[1]) {
        rc = nb_out_alloc(gin[1], NB_LAYOUT_PLAIN);
        if (rc == 0 && N && K && M)
            rc = bf16_matmul(be, PHASE_BWD_WEIGHTS, M, K, N, (int64_t[]){1, M}, (int64_t[]){K, 1}, dnnl_f32, nb_data(g),
                             nb_data(x), nb_data(gin[1]));
        else if (rc == 0) memset(nb_data(gin[1]), 0, sizeof(float) * (size_t)M * (size_t)K);
    }
    nb_release(g);
    return rc;
}

int cpu_linear_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *w = n->in[1], *gy = gout[0];
    int N = (int)x->shape[0], K = (int)x->shape[1], M = (int)w->shape[0];
    const float *g = nb_data(gy);
    if (x->dtype == NB_BF16) {
        if (lowp_backward(be, n, gy, gin)) return -1;
    } else {
        if (gin[0]) {
            if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) return -1;
            float *gx = nb_data(gin[0]);
            if (N && K && M) CPU_DNNL(be, "linear", dnnl_sgemm('N', 'N', N, K, M, 1.0f, g, M, nb_data(w), K, 0.0f, gx, K));
            else memset(gx, 0, sizeof(float) * (size_t)N * (size_t)K);
        }
        if (gin[1]) {
            if (nb_out_alloc(gin[1], NB_LAYOUT_PLAIN) != 0) return -1;
            float *gw = nb_data(gin[1]);
            if (N && K && M) CPU_DNNL(be, "linear", dnnl_sgemm('T', 'N', M, K, N, 1.0f, g, M, nb_data(x), K, 0.0f, gw, K));
            else memset(gw, 0, sizeof(float) * (size_t)M * (size_t)K);
        }
    }
    if (gin[2]) {
        if (nb_out_alloc(gin[2], NB_LAYOUT_PLAIN) != 0) return -1;
        float *gb = nb_data(gin[2]);
        /* summed sample by sample in order: the same result for any thread count */
        for (int o = 0; o < M; o++) gb[o] = 0.0f;
        for (int i = 0; i < N; i++)
            for (int o = 0; o < M; o++) gb[o] += g[(size_t)i * M + o];
    }
    return 0;
}
