/* Post-training quantization, the baselines that need no training: each selected weight tensor (or each of its
 * output channels) is replaced by α·codes, with α from a min-max scale and codes rounded to the nearest level
 * ("round", the naive baseline), or with the optimal α and codes ("optimal", the ADMM projection applied
 * once). Codes and scales join the checkpoint as compress/ptq/codes/<name> and compress/ptq/alpha/<name>. */
#ifndef NB_PTQ_H
#define NB_PTQ_H

#include <stdbool.h>

#include "compress/codebook.h"
#include "compress/compressor.h"

typedef struct {
    nb_codebook cb;
    bool per_channel; /* one α per output channel */
    bool optimal;     /* optimal projection instead of round-to-nearest */
} nb_ptq_spec;

/* Quantize the weights in w[0..n) in place; the codes and α tensors it creates are added to extra (owned by
 * the caller afterwards: release them with nb_ptq_release). Returns the relative error ||W - Q||² / ||W||²
 * over all of them, or -1 after reporting. */
double nb_ptq_apply(nb_ctx *ctx, nb_tensor **w, int n, const nb_ptq_spec *spec, nb_ckpt_extra *extra);
void nb_ptq_release(nb_ckpt_extra *extra);

#endif
