/* Convolution on cuDNN: forward, backward-data and backward-filter, with descriptors and algorithms chosen
 * once per shape and cached (a plan). Algorithms come from cuDNN's heuristics, or from timing each candidate
 * once (NB_CUDNN_BENCHMARK=1, PyTorch's cudnn.benchmark); backward algorithms are restricted to the
 * deterministic ones, so that a run repeats bit for bit. TF32 tensor cores are allowed for convolutions as in
 * PyTorch's default; NB_TF32=0 restricts cuDNN to FP32 FMA arithmetic (the test suite runs that way). */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda.h"

typedef struct {
    int64_t x[4], w[4];
    int stride[2], pad[2], dilation[2], groups, bias;
} conv_key;

typedef struct {
    cudnnTensorDescriptor_t x, y, b;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnMathType_t fwd_math;
    size_t fwd_ws;
    bool have_bwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnMathType_t bwd_data_math;
    size_t bwd_data_ws;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnMathType_t bwd_filter_math;
    size_t bwd_filter_ws;
} conv_plan;

void cuda_conv_plan_free(void *p) {
    conv_plan *c = p;
    cudnnDestroyTensorDescriptor(c->x);
    cudnnDestroyTensorDescriptor(c->y);
    cudnnDestroyTensorDescriptor(c->b);
    cudnnDestroyFilterDescriptor(c->w);
    cudnnDestroyConvolutionDescriptor(c->conv);
    free(c);
}

static conv_key key_of(const nb_node *n) {
    conv_key k;
    memset(&k, 0, sizeof k);
    for (int i = 0; i < 4; i++) {
        k.x[i] = n->in[0]->shape[i];
        k.w[i] = n->in[1]->shape[i];
    }
    const nb_conv_attr *a = &n->attr.conv;
    for (int i = 0; i < 2; i++) {
        k.stride[i] = a->stride[i];
        k.pad[i] = a->pad[i];
        k.dilation[i] = a->dilation[i];
    }
    k.groups = a->groups;
    k.bias = n->in[2] != NULL;
    return k;
}

static bool math_allowed(const cuda_backend *be, cudnnMathType_t m) {
    return be->tf32 || m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH;
}

#define PLAN_DNN(call)                                                                                         \
    do {                                                                                                       \
        cudnnStatus_t e_ = (call);                                                                             \
        if (e_ != CUDNN_STATUS_SUCCESS) {                                                                      \
            cuda_fail(be, "conv2d", #call, cudnnGetErrorString(e_), __FILE__, __LINE__);                        \
            cuda_conv_plan_free(p);                                                                            \
            return NULL;                                                                                       \
        }                                                                                                      \
    } while (0)

/* xp, wp: contiguous input and weight data, which timing runs read (the plan exists after the forward pass,
 * so backward passes NULL) */
static conv_plan *plan_for(cuda_backend *be, const nb_node *n, void *xp, void *wp) {
    conv_key k = key_of(n);
    conv_plan *p = cuda_cache_find(&be->conv_plans, &k, sizeof k);
    if (p) return p;
    p = nb_xcalloc(1, sizeof *p);
    const nb_tensor *x = n->in[0], *w = n->in[1], *y = n->out[0];
    const nb_conv_attr *a = &n->attr.conv;
    cudnnCreateTensorDescriptor(&p->x);
    cudnnCreateTensorDescriptor(&p->y);
    cudnnCreateTensorDescriptor(&p->b);
    cudnnCreateFilterDescriptor(&p->w);
    cudnnCreateConvolutionDescriptor(&p->conv);
    PLAN_DNN(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)x->shape[0], (int)x->shape[1],
                                        (int)x->shape[2], (int)x->shape[3]));
    PLAN_DNN(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)y->shape[0], (int)y->shape[1],
                                        (int)y->shape[2], (int)y->shape[3]));
    PLAN_DNN(cudnnSetTensor4dDescriptor(p->b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, (int)w->shape[0], 1, 1));
    PLAN_DNN(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)w->shape[0], (int)w->shape[1],
                                        (int)w->shape[2], (int)w->shape[3]));
    PLAN_DNN(cudnnSetConvolution2dDescriptor(p->conv, a->pad[0], a->pad[1], a->stride[0], a->stride[1], a->dilation[0],
                                             a->dilation[1], CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    PLAN_DNN(cudnnSetConvolutionGroupCount(p->conv, a->groups));
    PLAN_DNN(cudnnSetConvolutionMathType(p->conv, be->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));

    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    if (be->benchmark && xp && wp) {
        void *ws = cuda_workspace(be, be->workspace_limit);
        if (!ws) {
            cuda_conv_plan_free(p);
            return NULL;
        }
        /* timing runs write into the output, which forward overwrites next */
        PLAN_DNN(cudnnFindConvolutionForwardAlgorithmEx(be->dnn, p->x, xp, p->w, wp, p->conv, p->y,
                                                        nb_data(y), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf, ws,
                                                        be->workspace_limit));
    } else {
        PLAN_DNN(cudnnGetConvolutionForwardAlgorithm_v7(be->dnn, p->x, p->w, p->conv, p->y,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
    }
    int pick = -1;
    for (int i = 0; i < got && pick < 0; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= be->workspace_limit &&
            math_allowed(be, perf[i].mathType))
            pick = i;
    if (pick < 0) {
        NB_FAIL(be->base.ctx, "conv2d", "cuDNN offers no forward algorithm for input %s, weight %s (groups %d)",
                NB_SHAPE(x), NB_SHAPE(w), a->groups);
        cuda_conv_plan_free(p);
        return NULL;
    }
    p->fwd = perf[pick].algo;
    p->fwd_math = be->tf32 ? perf[pick].mathType : CUDNN_FMA_MATH;
    p->fwd_ws = perf[pick].memory;
    cuda_cache_put(&be->conv_plans, &k, sizeof k, p);
    return p;
}

#undef PLAN_DNN

/* The backward algorithms, chosen at the first backward of a shape; gx and gw are scratch buffers of the
 * right sizes that timing runs may overwrite. */
static int plan_backward(cuda_backend *be, conv_plan *p, const nb_node *n, void *xp, void *wp, void *gyp, void *gxp,
                         void *gwp) {
    if (p->have_bwd) return 0;
    const nb_tensor *x = n->in[0], *w = n->in[1];
    cudnnConvolutionBwdDataAlgoPerf_t dperf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t fperf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int gd = 0, gf = 0;
    CUDA_DNN(be, "conv2d", cudnnSetConvolutionMathType(p->conv, be->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    if (be->benchmark) {
        void *ws = cuda_workspace(be, be->workspace_limit);
        if (!ws) return -1;
        CUDA_DNN(be, "conv2d", cudnnFindConvolutionBackwardDataAlgorithmEx(
                                   be->dnn, p->w, wp, p->y, gyp, p->conv, p->x, gxp,
                                   CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &gd, dperf, ws, be->workspace_limit));
        CUDA_DNN(be, "conv2d", cudnnFindConvolutionBackwardFilterAlgorithmEx(
                                   be->dnn, p->x, xp, p->y, gyp, p->conv, p->w, gwp,
                                   CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &gf, fperf, ws, be->workspace_limit));
    } else {
        CUDA_DNN(be, "conv2d", cudnnGetConvolutionBackwardDataAlgorithm_v7(be->dnn, p->w, p->y, p->conv, p->x,
                                                                           CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &gd,
                                                                           dperf));
        CUDA_DNN(be, "conv2d", cudnnGetConvolutionBackwardFilterAlgorithm_v7(be->dnn, p->x, p->y, p->conv, p->w,
                                                                             CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                                             &gf, fperf));
    }
    int pd = -1, pf = -1;
    for (int i = 0; i < gd && pd < 0; i++)
        if (dperf[i].status == CUDNN_STATUS_SUCCESS && dperf[i].determinism == CUDNN_DETERMINISTIC &&
            dperf[i].memory <= be->workspace_limit && math_allowed(be, dperf[i].mathType))
            pd = i;
    for (int i = 0; i < gf && pf < 0; i++)
        if (fperf[i].status == CUDNN_STATUS_SUCCESS && fperf[i].determinism == CUDNN_DETERMINISTIC &&
            fperf[i].memory <= be->workspace_limit && math_allowed(be, fperf[i].mathType))
            pf = i;
    if (pd < 0 || pf < 0) {
        NB_FAIL(be->base.ctx, "conv2d",
                "cuDNN offers no deterministic backward-%s algorithm for input %s, weight %s (groups %d)",
                pd < 0 ? "data" : "filter", NB_SHAPE(x), NB_SHAPE(w), n->attr.conv.groups);
        return -1;
    }
    p->bwd_data = dperf[pd].algo;
    p->bwd_data_math = be->tf32 ? dperf[pd].mathType : CUDNN_FMA_MATH;
    p->bwd_data_ws = dperf[pd].memory;
    p->bwd_filter = fperf[pf].algo;
    p->bwd_filter_math = be->tf32 ? fperf[pf].mathType : CUDNN_FMA_MATH;
    p->bwd_filter_ws = fperf[pf].memory;
    p->have_bwd = true;
    return 0;
}

static const float one = 1.0f, zero = 0.0f;

int cuda_conv_forward(cuda_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    if (nb_numel(y) == 0) return 0;
    /* a channel slice (a view) is copied once; backward reuses the copy */
    bool own_x = false, own_w = false;
    nb_tensor *xs = cuda_contiguous(be, x, &own_x), *ws = xs ? cuda_contiguous(be, w, &own_w) : NULL;
    if (own_x) nb_node_set_saved(n, 0, xs);
    if (own_w) nb_node_set_saved(n, 1, ws);
    if (!xs || !ws) return -1;
    conv_plan *p = plan_for(be, n, nb_data(xs), nb_data(ws));
    if (!p) return -1;
    void *wsp = cuda_workspace(be, p->fwd_ws);
    if (p->fwd_ws && !wsp) return -1;
    CUDA_DNN(be, "conv2d", cudnnSetConvolutionMathType(p->conv, p->fwd_math));
    CUDA_DNN(be, "conv2d", cudnnConvolutionForward(be->dnn, &one, p->x, nb_data(xs), p->w, nb_data(ws), p->conv, p->fwd,
                                                   wsp, p->fwd_ws, &zero, p->y, nb_data(y)));
    if (b) CUDA_DNN(be, "conv2d", cudnnAddTensor(be->dnn, &one, p->b, nb_data(b), &one, p->y, nb_data(y)));
    return 0;
}

int cuda_conv_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    nb_tensor *xs = n->n_saved > 0 && n->saved[0] ? n->saved[0] : x;
    nb_tensor *ws = n->n_saved > 1 && n->saved[1] ? n->saved[1] : w;
    for (int i = 0; i < 3; i++)
        if (gin[i] && nb_out_alloc(gin[i], NB_LAYOUT_PLAIN) != 0) return -1;
    int64_t N = x->shape[0], O = w->shape[0], OHW = gout[0]->shape[2] * gout[0]->shape[3];
    if (nb_numel(gout[0]) == 0) {
        for (int i = 0; i < 3; i++)
            if (gin[i] && cuda_fill(&be->base, gin[i], 0.0) != 0) return -1;
        return 0;
    }
    bool own_g = false;
    nb_tensor *gy = cuda_contiguous(be, gout[0], &own_g);
    if (!gy) return -1;
    int rc = 0;
    conv_plan *p = plan_for(be, n, NULL, NULL);
    if (!p) rc = -1;
    if (rc == 0 && !p->have_bwd) {
        /* timing runs need somewhere to write: the gradients themselves, or temporaries */
        nb_tensor *tx = gin[0] ? NULL : cuda_new(be, NB_F32, 4, x->shape);
        nb_tensor *tw = gin[1] ? NULL : cuda_new(be, NB_F32, 4, w->shape);
        nb_tensor *gx = gin[0] ? gin[0] : tx, *gw = gin[1] ? gin[1] : tw;
        rc = gx && gw ? plan_backward(be, p, n, nb_data(xs), nb_data(ws), nb_data(gy), nb_data(gx), nb_data(gw)) : -1;
        nb_release(tx);
        nb_release(tw);
    }
    if (rc == 0 && gin[0]) {
        void *wsp = cuda_workspace(be, p->bwd_data_ws);
        cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
        if (p->bwd_data_ws && !wsp) rc = -1;
        if (rc == 0) st = cudnnSetConvolutionMathType(p->conv, p->bwd_data_math);
        if (rc == 0 && st == CUDNN_STATUS_SUCCESS)
            st = cudnnConvolutionBackwardData(be->dnn, &one, p->w, nb_data(ws), p->y, nb_data(gy), p->conv, p->bwd_data,
                                              wsp, p->bwd_data_ws, &zero, p->x, nb_data(gin[0]));
        if (st != CUDNN_STATUS_SUCCESS)
            rc = cuda_fail(be, "conv2d", "cudnnConvolutionBackwardData", cudnnGetErrorString(st), __FILE__, __LINE__);
    }
    if (rc == 0 && gin[1]) {
        void *wsp = cuda_workspace(be, p->bwd_filter_ws);
        cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
        if (p->bwd_filter_ws && !wsp) rc = -1;
        if (rc == 0) st = cudnnSetConvolutionMathType(p->conv, p->bwd_filter_math);
        if (rc == 0 && st == CUDNN_STATUS_SUCCESS)
            st = cudnnConvolutionBackwardFilter(be->dnn, &one, p->x, nb_data(xs), p->y, nb_data(gy), p->conv,
                                                p->bwd_filter, wsp, p->bwd_filter_ws, &zero, p->w, nb_data(gin[1]));
        if (st != CUDNN_STATUS_SUCCESS)
            rc = cuda_fail(be, "conv2d", "cudnnConvolutionBackwardFilter", cudnnGetErrorString(st), __FILE__, __LINE__);
    }
    if (rc == 0 && b && gin[2]) {
        int S = nbk_bn_splits(N, O, OHW);
        size_t bytes = sizeof(double) * 2 * (size_t)O * (size_t)S;
        double *part = cuda_scratch(be, bytes);
        if (!part) rc = -1;
        int e = part ? nbk_channel_sum(be->stream, nb_data(gy), N, O, OHW, part, nb_data(gin[2])) : 0;
        if (e) rc = cuda_fail(be, "conv2d", "nbk_channel_sum", cudaGetErrorString((cudaError_t)e), __FILE__, __LINE__);
        if (part) cuda_scratch_release(be, part, bytes);
    }
    if (own_g) nb_release(gy);
    return rc;
}
