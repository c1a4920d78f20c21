/* Data-free activation ranges from the batch norms' statistics (quantize.data_free = bn; DFQ, Nagel et al.
 * 2019, §5: after a batch norm, channel c is distributed as N(beta_c, gamma_c^2)): no image at all, not even a
 * distilled one. Each channel's mean and variance are carried through the recorded forward pass op by op (a
 * batch norm resets them to its beta and gamma, a convolution or linear layer sums its inputs' with the
 * weights assuming independence, a ReLU rectifies the Gaussian, an add sums, a concatenation or slice moves
 * channels, other element-wise ops integrate the Gaussian by Gauss-Hermite quadrature), with each value's
 * hard bounds (0 after a ReLU, 6 after a ReLU6, the normalised pixel range at the input: the input is taken as
 * N(0, 1) per channel within it). A quantizer's range is [min_c mean_c - k sd_c, max_c mean_c + k sd_c] inside
 * those bounds, k = quantize.bn_sigmas. An op without a rule (softmax inside the network) is an error naming
 * the layer. */
#ifndef NB_BN_RANGES_H
#define NB_BN_RANGES_H

#include "compress/qsim.h"
#include "models/model.h"

typedef struct {
    double sigmas;                /* k: the range is k standard deviations about each channel's mean */
    int channels;                 /* the input's channels, and the pixel range each is normalised from: */
    double input_lo[16], input_hi[16]; /* (0 - mean_c) / std_c and (1 - mean_c) / std_c */
} nb_bn_ranges_cfg;

/* Set every activation quantizer of q (placed on m) from the moments, and finish the calibration
 * (nb_qsim_calibrate_end). 0, or -1 after reporting. */
int nb_bn_ranges(nb_qsim *q, nb_model *m, const nb_bn_ranges_cfg *cfg);

#endif
