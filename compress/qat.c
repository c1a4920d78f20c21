/* Quantization-aware training (compress.methods = qat): the whole network, weights and activations, trained
 * through the quantization simulation (compress/qsim.h), with LSQ's learned step sizes (Esser et al. 2020)
 * trained by the run's optimizer beside the weights. The activations' step sizes start from a calibration on
 * the first training batch (quantize.range); the weights' from the weights. Batch norms are folded into the
 * weights they follow before quantization, and for the last compress.freeze_bn epochs their statistics stop
 * moving (torch's freeze_bn_stats), so the network trained is the folded one deployed. With admm, twn or bwn
 * before it, those methods keep the weights they select on their codebooks and qat quantizes the rest and
 * every activation. Evaluation and best.h5 see the simulated network; the step sizes are in the checkpoint
 * (quant/...), where bin/eval and bin/export find them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compressor.h"
#include "compress/qsim.h"
#include "core/check.h"

typedef struct {
    nb_qsim *q;
    nb_ctx *ctx;
    int64_t epochs;     /* of the run */
    double freeze_bn;   /* the last epochs with frozen statistics */
    int range_passes;   /* calibration passes: 1 for min-max, 2 with histograms */
    bool checked;       /* the step sizes' state was read (after a resume's load) */
    bool ready;
    int64_t epoch;
} qat;

static int calibrate(qat *a, nb_step *s) {
    nb_model *m = s->model;
    nb_ctx *ctx = a->ctx;
    bool prev = nb_set_grad_enabled(ctx, false);
    int rc = 0;
    for (int pass = 0; pass < a->range_passes && rc == 0; pass++) {
        nb_qsim_calibrate_begin(a->q, pass);
        size_t mark = nb_scope_begin(ctx);
        rc = m->forward(m, s->x, false) ? 0 : -1;
        nb_scope_end(ctx, mark);
    }
    nb_set_grad_enabled(ctx, prev);
    return rc ? -1 : nb_qsim_calibrate_end(a->q);
}

static int qat_batch_begin(nb_compressor *c, nb_step *s) {
    qat *a = c->impl;
    if (!a->checked) { /* a resumed run has its step sizes from the checkpoint; a new one calibrates now */
        a->checked = true;
        int rc = nb_qsim_sync(a->q, "resume");
        if (rc < 0) return -1;
        a->ready = rc == 1;
    }
    if (!a->ready) {
        if (calibrate(a, s)) return -1;
        a->ready = true;
    }
    return 0;
}

static int qat_epoch_begin(nb_compressor *c, int64_t epoch) {
    qat *a = c->impl;
    a->epoch = epoch;
    a->ctx->bn_frozen = a->freeze_bn > 0 && (double)epoch >= (double)a->epochs - a->freeze_bn;
    return 0;
}

static void qat_state(nb_compressor *c, nb_ckpt_extra *out) { nb_qsim_state(((qat *)c->impl)->q, out); }

static int qat_params(nb_compressor *c, nb_tensor **out, int max) { return nb_qsim_params(((qat *)c->impl)->q, out, max); }

static void qat_metrics(nb_compressor *c, char *buf, size_t n) {
    qat *a = c->impl;
    snprintf(buf, n, ", \"bn_frozen\": %s", a->ctx->bn_frozen ? "true" : "false");
}

static void qat_destroy(nb_compressor *c) {
    qat *a = c->impl;
    a->ctx->bn_frozen = false;
    nb_qsim_free(a->q);
    free(a);
    free(c);
}

nb_compressor *nb_qat_new(nb_ctx *ctx, const nb_settings *s, nb_model *m, int64_t steps_per_epoch) {
    (void)steps_per_epoch;
    NB_REQUIRE(ctx, !ctx->comm, NULL, "config",
               "compress.methods = qat does not run data-parallel yet (its step sizes are not reduced across ranks)");
    nb_qsim_cfg cfg;
    nb_qsim_cfg_from(s, m, &cfg);
    const nb_compress_settings *cs = &s->compress;
    qat *a = nb_xcalloc(1, sizeof *a);
    a->ctx = ctx;
    a->epochs = s->train.epochs;
    a->freeze_bn = cs->freeze_bn;
    a->range_passes = cfg.range == NB_QRANGE_MINMAX ? 1 : 2;
    a->q = nb_qsim_new(m, &cfg);
    if (!a->q) {
        free(a);
        return NULL;
    }
    nb_compressor *c = nb_xcalloc(1, sizeof *c);
    *c = (nb_compressor){.name = "qat", .impl = a, .batch_begin = qat_batch_begin, .epoch_begin = qat_epoch_begin,
                         .state = qat_state, .params = qat_params, .metrics = qat_metrics, .destroy = qat_destroy};
    return c;
}
