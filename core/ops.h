/* The differentiable ops. Each checks its inputs (a bad shape, dtype or axis is reported naming the op and
 * the shapes, and the op returns NULL), runs on the inputs' backend and, when gradients are needed, records
 * itself on the tape. Outputs belong to the current scope. Any NULL input makes an op return NULL silently,
 * so a chain of ops needs one check at the end. Layouts: convolution, batch norm, pooling, activations and
 * add work in whatever layout the backend prefers; the others convert their inputs to plain layout. */
#ifndef NB_OPS_H
#define NB_OPS_H

#include "core/tape.h"
#include "core/tensor.h"

/* x [N,C,H,W], w [O,C/groups,kh,kw], b [O] or NULL */
nb_tensor *nb_conv2d(nb_tensor *x, nb_tensor *w, nb_tensor *b, nb_conv_attr a);
/* x [N,in], w [out,in], b [out] or NULL */
nb_tensor *nb_linear(nb_tensor *x, nb_tensor *w, nb_tensor *b);
/* x [N,C,H,W]; weight, bias, running_mean, running_var [C]. In training the running statistics are updated
 * in place with PyTorch's rule (unbiased variance, momentum weight on the new value). a.relu fuses a ReLU. */
nb_tensor *nb_batchnorm2d(nb_tensor *x, nb_tensor *weight, nb_tensor *bias, nb_tensor *running_mean,
                          nb_tensor *running_var, nb_bn_attr a);

/* The unary element-wise ops of core/op_table.h (impl UNARY): nb_unary(op, x, alpha) runs any of them, and
 * each row also gets nb_<name>(x) (alpha 0), defined by core/ops_unary.c from the table. */
nb_tensor *nb_unary(nb_op op, nb_tensor *x, float alpha);
#define NB_UNARY_DECLARE(E, name, attr, cost, impl, deploy, quant) NB_UNARY_DECLARE_##impl(name)
#define NB_UNARY_DECLARE_UNARY(name) nb_tensor *nb_##name(nb_tensor *x);
#define NB_UNARY_DECLARE_KERNEL(name)
#define NB_UNARY_DECLARE_VIEW(name)
NB_OP_TABLE(NB_UNARY_DECLARE)

nb_tensor *nb_relu(nb_tensor *x);
nb_tensor *nb_relu6(nb_tensor *x);
nb_tensor *nb_leaky_relu(nb_tensor *x, float slope);
nb_tensor *nb_sigmoid(nb_tensor *x);
nb_tensor *nb_hardswish(nb_tensor *x);
nb_tensor *nb_silu(nb_tensor *x); /* x * sigmoid(x) (swish), as torch.nn.functional.silu */

nb_tensor *nb_maxpool2d(nb_tensor *x, nb_pool_attr a);
nb_tensor *nb_avgpool2d(nb_tensor *x, nb_pool_attr a);
nb_tensor *nb_global_avgpool(nb_tensor *x); /* [N,C,H,W] -> [N,C,1,1] */
/* PyTorch's adaptive average pooling to [N,C,oh,ow]: output cell i averages input rows floor(i*H/oh) to
 * ceil((i+1)*H/oh) - 1 (and the same for columns); windows may overlap or repeat a row when H < oh. */
nb_tensor *nb_adaptive_avgpool(nb_tensor *x, int oh, int ow);
/* [N,C,H,W] -> [N,C,oh,ow] by PyTorch's nearest rule (source index floor(i * H / oh)); a product with a
 * constant 0/1 matrix, as adaptive average pooling is, so every backend runs it and export writes a Gemm */
nb_tensor *nb_upsample_nearest(nb_tensor *x, int oh, int ow);
/* y[n, c] = M x[n, c] for a constant M [oh*ow, H*W]: each output pixel a fixed combination of input pixels, as one
 * matrix product that every backend runs (with its backward) and export writes as a Gemm, or a Gather where M
 * selects; what adaptive pooling, nearest upsampling and the importer's Resize and ConvTranspose are made of */
nb_tensor *nb_spatial_map(nb_tensor *x, nb_tensor *m, int oh, int ow);
nb_tensor *nb_dropout(nb_tensor *x, float p, int training);

nb_tensor *nb_add(nb_tensor *a, nb_tensor *b);
nb_tensor *nb_add_relu(nb_tensor *a, nb_tensor *b); /* relu(a + b) in one pass: a residual join */
nb_tensor *nb_add_scaled(nb_tensor *a, float alpha, nb_tensor *b, float beta); /* alpha*a + beta*b */
nb_tensor *nb_scale(nb_tensor *x, float s);
/* x [N,C,H,W] times s [N,C,1,1] or [1,C,1,1], broadcast over the rest */
nb_tensor *nb_mul_channel(nb_tensor *x, nb_tensor *s);

nb_tensor *nb_concat(nb_tensor *const *xs, int n, int axis);
/* nb_channel_shuffle(nb_concat(xs, n, 1), n) for n parts of equal channels, written in one pass: output
 * channel k*n + i is channel k of part i (ShuffleNet's unit ending) */
nb_tensor *nb_concat_shuffle(nb_tensor *const *xs, int n);
nb_tensor *nb_slice(nb_tensor *x, int axis, int64_t start, int64_t len); /* a view when x is plain */
int nb_split(nb_tensor *x, int axis, const int64_t *sizes, int n, nb_tensor **outs);
nb_tensor *nb_channel_shuffle(nb_tensor *x, int groups);
nb_tensor *nb_reshape(nb_tensor *x, int ndim, const int64_t *shape); /* one -1 allowed */
nb_tensor *nb_flatten(nb_tensor *x);                                 /* [N, ...] -> [N, prod(...)] */
nb_tensor *nb_to_plain(nb_tensor *x); /* plain contiguous layout; x itself when it already is */
nb_tensor *nb_to_layout(nb_tensor *x, int layout);
/* x converted to dtype (f32 <-> bf16, rounding to nearest even), in the same arrangement; x itself when it
 * already has it. Differentiable: the gradient is converted back. */
nb_tensor *nb_cast(nb_tensor *x, nb_dtype dtype);

nb_tensor *nb_softmax(nb_tensor *x, int axis);
nb_tensor *nb_log_softmax(nb_tensor *x, int axis);

/* Fake quantization: y = (clamp(round(x / s) + z, qmin, qmax) - z) * s, as torch.fake_quantize_per_tensor_affine
 * and fake_quantize_per_channel_affine compute it (in float32, x / s as x * (1 / s)). The step size s and the zero
 * point z are f32 tensors of one element (a.axis = -1) or of x's size along a.axis (per channel); z is rounded
 * to the nearest integer of [qmin, qmax]. x's gradient passes straight through where round(x / s) + z lies
 * within [qmin, qmax] and is zero outside. s and z get gradients when they require them: those of the learned
 * step size (LSQ, Esser et al. 2020; torch._fake_quantize_learnable_*), times a.grad_factor (0 reads as 1). */
nb_tensor *nb_fake_quant(nb_tensor *x, nb_tensor *scale, nb_tensor *zero_point, nb_fake_quant_attr a);

/* Losses return a scalar (shape []), averaged over the batch. */
/* logits [N,C], labels i64 [N]; label smoothing as torch.nn.CrossEntropyLoss */
nb_tensor *nb_cross_entropy(nb_tensor *logits, nb_tensor *labels, float label_smoothing);
/* T^2 * KL(softmax(teacher/T) || softmax(student/T)), batch mean; the teacher gets no gradient */
nb_tensor *nb_kl_div(nb_tensor *student, nb_tensor *teacher, float temperature);
nb_tensor *nb_smooth_l1(nb_tensor *x, nb_tensor *target, float beta); /* mean over elements */
nb_tensor *nb_mse(nb_tensor *x, nb_tensor *target);                   /* mean over elements */
/* SSD's multibox loss (Liu et al. 2016). pred [N,4+C,P] holds for each default box p 4 box offsets then C class
 * scores (class 0: background) along axis 1, the layout a detector's convolutions give without a transpose;
 * target [N,P,5] holds each default box's matched class (an integer, 0 for background) then the
 * 4 encoded offsets. Smooth-L1 (beta) of the positives' offsets plus softmax cross-entropy of the positives
 * and of the neg_pos_ratio x as many negatives with the highest background loss in each image (hard
 * negative mining; ties by prior index), summed and divided by the batch's positives (1 when none). */
nb_tensor *nb_multibox_loss(nb_tensor *pred, nb_tensor *target, float neg_pos_ratio, float beta);

#endif
