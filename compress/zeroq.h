/* Distilled calibration data (ZeroQ, Cai et al. 2020): inputs made from the model alone, for full-integer
 * quantization without a single real image. Random images are optimized (Adam) until, at every batch norm,
 * the batch statistics of what reaches it match the running statistics the batch norm learned from the real
 * data: the mean per channel and the variance per channel, squared errors summed over the layers. */
#ifndef NB_ZEROQ_H
#define NB_ZEROQ_H

#include <stdbool.h>
#include <stdint.h>

#include "models/model.h"

typedef struct {
    int images;        /* how many to make, in one batch */
    int steps;         /* optimizer steps */
    float lr;          /* Adam's step size on the pixels (ZeroQ: 0.5) */
    uint64_t seed;     /* the starting noise */
    bool quiet;        /* no progress on stderr */
} nb_zeroq_cfg;

/* Distil cfg->images inputs for m (its float network: call before placing a quantization simulation) into
 * out (images x in_channels x input_size^2 floats, in the normalised space the model reads). *final_loss:
 * the statistics loss at the end (and *first_loss at the start), to show it fell. 0, or -1 after reporting
 * (a model without batch norms has nothing to match). */
int nb_zeroq_distill(nb_model *m, const nb_zeroq_cfg *cfg, float *out, double *first_loss, double *final_loss);

#endif
