/* The multibox loss on host arrays (core/ops.h, nb_multibox_loss): the CPU backend's implementation, which
 * the CUDA backend also runs on host copies (the loss touches N*P*(C+9) numbers once per step; the mining's
 * per-image sort is what a GPU would do worst). */
#ifndef NB_MULTIBOX_HOST_H
#define NB_MULTIBOX_HOST_H

#include <stdint.h>

typedef struct {
    double loc, conf;  /* the two sums, before the division by the number of positives */
    int64_t pos, neg;  /* positives and mined negatives in the batch */
    int64_t bad_label; /* 1 + the flat index (image * P + prior) of the first class target that is not an
                          integer in [0, C), else 0 */
    float bad_value;
} nb_multibox_parts;

/* pred [N,4+C,P], target [N,P,5]. Returns the loss; with grad (like pred) also writes up * d loss / d pred. */
double nb_multibox_host(const float *pred, const float *target, int64_t N, int64_t P, int64_t C, double neg_pos_ratio,
                        double beta, float up, float *grad, nb_multibox_parts *parts);

/* Reports a bad class target found by nb_multibox_host (parts->bad_label), naming image and prior. */
typedef struct nb_ctx nb_ctx;
typedef struct nb_tensor nb_tensor;
int nb_multibox_report(nb_ctx *ctx, const nb_tensor *pred, const nb_multibox_parts *parts);

#endif
