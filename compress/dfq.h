/* Data-free quantization (Nagel, van Baalen, Blankevoort, Welling, ICCV 2019), without any training data:
 * batch norms that follow a convolution are folded into it (the BN becomes the identity plus a bias), then
 * cross-layer equalization rescales each pair conv -> BN -> ReLU -> conv so that the two weight tensors share
 * their per-channel ranges (ReLU is positively homogeneous, so the network computes the same function) —
 * which is what per-tensor scales need; after quantization, bias correction removes the expected shift of
 * each layer's output, E[(Q(W) - W) x], with E[x] for the input of a ReLU taken from the preceding batch
 * norm's statistics (a clipped normal). */
#ifndef NB_DFQ_H
#define NB_DFQ_H

#include <stdbool.h>

#include "models/model.h"

/* What folding leaves to know about each folded batch norm's output: its per-channel mean and spread (after
 * equalization's rescaling), which bias correction needs. */
typedef struct {
    nb_tensor *conv_w; /* the convolution the batch norm followed */
    int64_t channels;
    float *mean, *std;
} nb_dfq_bn;

typedef struct {
    nb_dfq_bn *bn;
    int n;
    int pairs; /* pairs equalized */
} nb_dfq;

/* Fold the batch norms of m in place, and equalize the pairs when asked (without, it is the naive baseline of
 * the folded setting that deployment uses). 0, or -1 after reporting. */
int nb_dfq_equalize(nb_ctx *ctx, nb_model *m, bool equalize, nb_dfq *d);
/* After quantization: for each quantized weight q[k] (float original fp[k]) whose input is a ReLU of a folded
 * batch norm's output, subtract E[(Q(W) - W) x] from the bias of the batch norm that follows it. */
int nb_dfq_bias_correct(nb_ctx *ctx, nb_model *m, const nb_dfq *d, nb_tensor **q, nb_tensor **fp, int n);
void nb_dfq_free(nb_dfq *d);

#endif
