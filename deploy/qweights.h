/* The integer codes and scales that compression stored in a checkpoint for each quantized layer
 * (compress/<method>/codes/<weight> and compress/<method>/alpha/<weight>: ADMM, TWN, BWN, post-training
 * quantization), read for a quantized export. */
#ifndef NB_QWEIGHTS_H
#define NB_QWEIGHTS_H

#include <hdf5.h>
#include <stdint.h>

#include "core/context.h"

typedef struct {
    char method[32]; /* "admm", "ptq", ... */
    int8_t *codes;   /* like the weight */
    float *alpha;    /* one scale per tensor (n_alpha 1) or per output channel */
    int64_t n, n_alpha;
} nb_qweight;

typedef struct {
    hid_t file;
    char path[1024];
    char methods[8][32];
    int n_methods;
} nb_qweights;

/* Open a checkpoint's compression records; a checkpoint with none is fine (nothing quantized). 0, or -1
 * after reporting. */
int nb_qweights_open(nb_ctx *ctx, nb_qweights *q, const char *ckpt);
void nb_qweights_close(nb_qweights *q);
/* The codes and scales of the weight `name` with n elements and `channels` output channels: 1 when found,
 * 0 when the layer is not quantized, -1 after reporting a record of the wrong size. */
int nb_qweight_find(nb_ctx *ctx, const nb_qweights *q, const char *name, int64_t n, int64_t channels, nb_qweight *w);
void nb_qweight_free(nb_qweight *w);

#endif
