/* The CUDA backend's own kernels, as C-callable launchers: element-wise arithmetic, batch-norm statistics and
 * normalisation, pooling, channel shuffles, losses, optimizer updates. Each enqueues work on `s` and returns
 * 0 or the cudaError_t of the launch; none synchronises. Reductions write per-block partial sums that a
 * second kernel adds in a fixed order, so results are bit-reproducible for a given shape (no atomics). */
#ifndef NB_CUDA_KERNELS_H
#define NB_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NBK_MAX_DIMS 6

/* ---- copies and fills ---- */
typedef struct {
    int ndim;
    int64_t shape[NBK_MAX_DIMS], dst_stride[NBK_MAX_DIMS], src_stride[NBK_MAX_DIMS];
} nbk_strides;
int nbk_strided_copy(cudaStream_t s, void *dst, const void *src, int elem_size, const nbk_strides *g);
int nbk_fill(cudaStream_t s, void *p, int elem_size, int64_t n, uint64_t pattern); /* pattern: one element's bits */
int nbk_add_i64(cudaStream_t s, int64_t *p, int64_t n, int64_t v);

/* ---- element-wise ---- */
enum { NBK_RELU = 0, NBK_RELU6, NBK_LEAKY, NBK_SIGMOID, NBK_HARDSWISH, NBK_SILU };
int nbk_act_forward(cudaStream_t s, int kind, float *y, const float *x, float alpha, int64_t n);
/* xy is x, or y for the sigmoid (whose derivative is written in its output) */
int nbk_act_backward(cudaStream_t s, int kind, float *gx, const float *xy, const float *gy, float alpha, int64_t n);
/* the unary element-wise ops of core/op_table.h (impl UNARY; op is the nb_op value): whether this file has a
 * kernel for op, and y = f(x), or y = gy * f'(x) when gy is not NULL */
int nbk_unary_supported(int op);
int nbk_unary(cudaStream_t s, int op, float alpha, float *y, const float *x, const float *gy, int64_t n);
int nbk_add(cudaStream_t s, float *y, float a, const float *x, float b, const float *z, int relu, int64_t n);
int nbk_axpby(cudaStream_t s, float *y, float a, const float *x, float b, int64_t n); /* y = a*x + b*y */
int nbk_mul(cudaStream_t s, float *y, const float *x, int64_t n);                      /* y = y*x */
int nbk_scale(cudaStream_t s, float *y, float a, const float *x, int64_t n);            /* y = a*x */
int nbk_relu_mask_scale(cudaStream_t s, float *gx, const float *y, float a, const float *g, int64_t n);
int nbk_dropout(cudaStream_t s, float *y, const float *x, int64_t n, float p, uint64_t seed, uint64_t stream,
                uint64_t offset);

/* ---- reductions ---- */
#define NBK_SUMSQ_BLOCKS 256
/* partial[NBK_SUMSQ_BLOCKS] (device) receives per-block sums of squares */
int nbk_sum_squares(cudaStream_t s, const float *x, int64_t n, double *partial);
/* partial[2*NBK_SUMSQ_BLOCKS]: per-block sums of |x| over |x| > threshold, then per-block counts of them */
int nbk_sum_abs(cudaStream_t s, const float *x, int64_t n, double threshold, double *partial);

/* ---- compression ---- */
/* codes = sign(v) (+1 at 0) where |v| > threshold, else 0; v = alpha * codes */
int nbk_sign_codes(cudaStream_t s, float *v, int8_t *codes, int64_t n, double threshold, float alpha);
int nbk_abs_mul_add(cudaStream_t s, float *acc, const float *a, const float *b, int64_t n); /* acc += |a*b| */
/* per block: -min and max of x, in partial[block] and partial[NBK_SUMSQ_BLOCKS + block] */
int nbk_range(cudaStream_t s, const float *x, int64_t n, double *partial);
int nbk_bn_fold(cudaStream_t s, float *sf, float *inv, const float *gamma, const float *var, int64_t n, float eps);

/* ---- batch norm (NCHW): statistics per channel over N*HW values ---- */
int nbk_bn_splits(int64_t N, int64_t C, int64_t HW); /* blocks per channel of the reductions below */
/* partial[2*C*S]: sums of x and x^2 */
int nbk_bn_stats_partial(cudaStream_t s, const float *x, int64_t N, int64_t C, int64_t HW, int S, double *partial);
/* mean, var (biased) from the partials; updates running stats when given (PyTorch's unbiased rule) */
int nbk_bn_stats_finalize(cudaStream_t s, const double *partial, int64_t C, int S, int64_t M, float *mean,
                          float *var, float *running_mean, float *running_var, float momentum);
int nbk_bn_apply(cudaStream_t s, float *y, const float *x, const float *mean, const float *var, const float *gamma,
                 const float *beta, float eps, int relu, int64_t N, int64_t C, int64_t HW);
/* partial[2*C*S]: sums of g and g*(x - mean), where g = gy masked by y > 0 when y is given (fused ReLU) */
int nbk_bn_bwd_partial(cudaStream_t s, const float *gy, const float *x, const float *y, const float *mean, int64_t N,
                       int64_t C, int64_t HW, int S, double *partial);
/* dgamma, dbeta (either may be NULL) and the two per-channel coefficients bwd_apply needs */
int nbk_bn_bwd_finalize(cudaStream_t s, const double *partial, int64_t C, int S, int64_t M, const float *var,
                        float eps, float *dgamma, float *dbeta, float *k1, float *k2);
/* training: gx = gamma*invstd*(g - k1 - (x-mean)*k2); else gx = gamma*invstd*g. gamma may be NULL (1). */
int nbk_bn_bwd_apply(cudaStream_t s, float *gx, const float *gy, const float *x, const float *y, const float *mean,
                     const float *var, const float *gamma, const float *k1, const float *k2, float eps, int training,
                     int64_t N, int64_t C, int64_t HW);
/* per-channel sums of x (NCHW) into out[C] as float: conv bias gradients */
int nbk_channel_sum(cudaStream_t s, const float *x, int64_t N, int64_t C, int64_t HW, double *partial, float *out);

/* ---- pooling (NCHW) ---- */
typedef struct {
    int64_t N, C, H, W, OH, OW;
    int kh, kw, sh, sw, ph, pw, dh, dw;
    int exclude_pad;
} nbk_pool;
int nbk_maxpool_forward(cudaStream_t s, const nbk_pool *p, float *y, int32_t *argmax, const float *x);
int nbk_maxpool_backward(cudaStream_t s, const nbk_pool *p, float *gx, const float *gy, const int32_t *argmax);
int nbk_avgpool_forward(cudaStream_t s, const nbk_pool *p, float *y, const float *x);
int nbk_avgpool_backward(cudaStream_t s, const nbk_pool *p, float *gx, const float *gy);
int nbk_global_avg_forward(cudaStream_t s, float *y, const float *x, int64_t rows, int64_t HW);
int nbk_global_avg_backward(cudaStream_t s, float *gx, const float *gy, int64_t rows, int64_t HW);

/* ---- shapes and broadcasts ---- */
int nbk_channel_shuffle(cudaStream_t s, float *y, const float *x, int64_t N, int64_t C, int64_t HW, int64_t groups,
                        int inverse);
/* y[n,c,:] = x[n,c,:] * sc[n or 0, c] */
int nbk_mul_channel(cudaStream_t s, float *y, const float *x, const float *sc, int64_t N, int64_t C, int64_t HW,
                    int broadcast);
/* gs[r] = sum over HW (and over samples when broadcast) of x*g, r = (n,c) or c */
int nbk_mul_channel_grad_scale(cudaStream_t s, float *gs, const float *x, const float *g, int64_t N, int64_t C,
                               int64_t HW, int broadcast);
int nbk_rows_set(cudaStream_t s, float *y, const float *b, int64_t rows, int64_t cols); /* y[i,:] = b */
int nbk_rows_sum(cudaStream_t s, float *out, const float *x, int64_t rows, int64_t cols); /* column sums */

/* ---- softmax and losses (plain tensors) ---- */
int nbk_softmax_forward(cudaStream_t s, float *y, const float *x, int64_t outer, int64_t len, int64_t inner, int log_out);
int nbk_softmax_backward(cudaStream_t s, float *gx, const float *y, const float *gy, int64_t outer, int64_t len,
                         int64_t inner, int log_out);
/* loss: one float; row_loss: N doubles of scratch; bad_label: one int64 that receives the first bad sample
 * index + 1 (0 when every label is within [0, C)) */
int nbk_cross_entropy_forward(cudaStream_t s, float *loss, const float *z, const int64_t *labels, int64_t N, int64_t C,
                              float smoothing, double *row_loss, int64_t *bad_label);
int nbk_cross_entropy_backward(cudaStream_t s, float *gz, const float *z, const int64_t *labels, const float *gloss,
                               int64_t N, int64_t C, float smoothing);
int nbk_kl_div_forward(cudaStream_t s, float *loss, const float *st, const float *te, int64_t N, int64_t C, float T,
                       double *row_loss);
int nbk_kl_div_backward(cudaStream_t s, float *gs, const float *st, const float *te, const float *gloss, int64_t N,
                        int64_t C, float T);
/* mean over n elements of (x-t)^2 (mse) or smooth-L1 with beta; partial: NBK_SUMSQ_BLOCKS doubles */
int nbk_regression_forward(cudaStream_t s, float *loss, const float *x, const float *t, int64_t n, int mse, float beta,
                           double *partial);
int nbk_regression_backward(cudaStream_t s, float *g, const float *x, const float *t, const float *gloss, int64_t n,
                            int mse, float beta, float sign);

/* ---- fake quantization: element i of x is in group (i / inner) % groups ---- */
typedef struct {
    int64_t n, groups, inner;
    int qmin, qmax, per_channel;
    float grad_factor;
} nbk_fake_quant;
int nbk_fake_quant_forward(cudaStream_t s, float *y, const float *x, const float *scale, const float *zp,
                           const nbk_fake_quant *g);
/* blocks per group of the parameter gradients: partial holds 2 * groups * that many doubles */
int nbk_fake_quant_blocks(const nbk_fake_quant *g);
/* dx (may be NULL), and the step size's and zero point's gradients (either may be NULL) */
int nbk_fake_quant_backward(cudaStream_t s, float *dx, float *dscale, float *dzp, const float *x, const float *dy,
                            const float *scale, const float *zp, const nbk_fake_quant *g, double *partial);

/* ---- optimizers (torch.optim's order of operations) ---- */
int nbk_sgd(cudaStream_t s, float *p, const float *g, float *buf, int64_t n, float lr, float momentum, float dampening,
            float wd, int nesterov, int first);
int nbk_adam(cudaStream_t s, float *p, const float *g, float *m, float *v, int64_t n, float lr, float b1, float b2,
             float eps, float wd, int decoupled, float bc1, float bc2_sqrt);

#ifdef __cplusplus
}
#endif

#endif
