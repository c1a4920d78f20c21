/* bin/quantize CKPT OUT.h5 [CFG] [section.key=value ...]: post-training quantization of a checkpoint, with
 * no data: the weights compress.layers selects go onto compress.codebook by quantize.method (round: min-max
 * scale and nearest level, the naive baseline; optimal: the exact projection) with one scale per tensor or
 * per output channel (quantize.scale); quantize.dfq first equalises consecutive layers and corrects biases
 * from the batch-norm statistics (data-free quantization). OUT.h5 holds the quantized weights, ready for
 * bin/eval, with the codes and scales (quantize.method = none applies the transforms alone).
 *
 * With quantize.activations = B the quantization is full-integer, as deployment engines run it: every
 * convolution and linear layer's weight (quantize.weights bits, symmetric, per quantize.scale, batch norms
 * folded in) and every activation (B bits, unsigned with a zero point), the activations' ranges calibrated on
 * the first quantize.calibration training images (quantize.range). OUT.h5 keeps the float weights and adds
 * the quantizers (quant/...): bin/eval evaluates the integer network, bin/export writes it. With
 * quantize.data_free = zeroq no image is read: the calibration images are distilled from the model (its batch
 * norms' statistics, compress/zeroq.h); with quantize.data_free = bn the ranges come from those statistics
 * carried through the network, with no image at all (compress/bn_ranges.h).
 *
 * Prints a JSON summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/select.h"
#include "compress/bn_ranges.h"
#include "compress/dfq.h"
#include "compress/ptq.h"
#include "compress/qsim.h"
#include "compress/zeroq.h"
#include "core/check.h"
#include "setup/assemble.h"
#include "setup/checkpoint.h"

/* Full-integer post-training quantization: place the quantizers, calibrate them on training images, save the
 * float weights with them */
static int full_integer(nb_ctx *ctx, const nb_settings *s, const nb_cfg *cfg, nb_model *m, const char *ckpt,
                        const char *out, const nb_dfq *dfq) {
    const nb_quantize_settings *qs = &s->quantize;
    nb_qsim_cfg qc;
    nb_qsim_cfg_from(s, m, &qc);
    /* data-free: the calibration images are distilled from the float network first */
    float *distilled = NULL;
    double first = 0, last = 0;
    int64_t images = qs->calibration;
    if (qs->data_free.id == NB_DATA_FREE_ZEROQ) {
        NB_REQUIRE(ctx, images > 0 && images <= 4096, -1, "config",
                   "quantize.calibration = %lld: distil 1 to 4096 images", (long long)images);
        nb_zeroq_cfg zc = {.images = (int)images, .steps = (int)qs->distill_steps, .lr = 0.5f, .seed = s->train.seed};
        distilled = nb_xmalloc(sizeof(float) * (size_t)(images * m->spec.in_channels * m->spec.input_size *
                                                         m->spec.input_size));
        if (nb_zeroq_distill(m, &zc, distilled, &first, &last)) return -1;
    }
    nb_qsim *q = nb_qsim_new(m, &qc);
    if (!q) return -1;
    nb_dataset train = {0};
    int rc;
    if (qs->data_free.id == NB_DATA_FREE_BN) {
        nb_bn_ranges_cfg bc = {.sigmas = qs->bn_sigmas, .channels = m->spec.in_channels};
        const nb_setting_list *mean = &s->data.mean, *std = &s->data.std;
        for (int c = 0; c < bc.channels && c < 16; c++) { /* a list of one value holds for every channel */
            double mu = mean->v[c < mean->n ? c : mean->n - 1], sd = std->v[c < std->n ? c : std->n - 1];
            bc.input_lo[c] = (0.0 - mu) / sd;
            bc.input_hi[c] = (1.0 - mu) / sd;
        }
        images = 0;
        rc = nb_bn_ranges(q, m, &bc);
    } else if (distilled) {
        rc = nb_qsim_calibrate_images(q, distilled, images, 64, false);
    } else {
        nb_loader_cfg lc;
        if (nb_data_load(ctx, s, NB_SPLIT_TRAIN, &train) || nb_data_for_model(ctx, s, m, &train) ||
            nb_loader_cfg_for(ctx, s, &train, NB_SPLIT_VAL, &lc))
            return -1;
        lc.shuffle = false;
        if (images > train.n) images = train.n;
        rc = nb_qsim_calibrate(q, &train, &lc, images, false);
    }
    free(distilled);
    char *text = nb_cfg_to_string(cfg);
    nb_ckpt_extra extra = {0};
    nb_qsim_state(q, &extra);
    if (rc == 0) rc = nb_ckpt_save(ctx, out, &m->params, NULL, NULL, text, &extra);
    char desc[512];
    nb_qsim_describe(q, desc, sizeof desc);
    if (rc == 0)
        printf("{\"checkpoint\": \"%s\", \"out\": \"%s\", \"full_integer\": %s, \"calibration_images\": %lld, "
               "\"data_free\": \"%s\", \"distill_loss\": [%.6g, %.6g], \"range\": \"%s\", \"dfq\": %s, "
               "\"equalized_pairs\": %d}\n",
               ckpt, out, desc, (long long)images, qs->data_free.name, first, last, qs->range.name,
               qs->dfq ? "true" : "false", dfq->pairs);
    nb_ckpt_extra_free(&extra);
    free(text);
    nb_dataset_free(&train);
    nb_qsim_free(q);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bin/quantize CKPT OUT.h5 [CFG] [section.key=value ...]\n");
        return 2;
    }
    const char *ckpt = argv[1], *out = argv[2];
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU);
    nb_cfg cfg;
    nb_cfg_init(&cfg);
    const char *cfg_path = NULL;
    for (int i = 3; i < argc; i++)
        if (!strchr(argv[i], '=')) cfg_path = argv[i];
    int rc = nb_cfg_for_checkpoint(ctx, &cfg, ckpt, cfg_path, argc - 3, argv + 3);
    if (rc) {
        fprintf(stderr, "nibble: error: %s\n", cfg.err);
        return 1;
    }
    nb_settings *s = nb_xmalloc(sizeof *s);
    nb_settings_read(&cfg, s);
    const nb_quantize_settings *qs = &s->quantize;
    const char *method = qs->method.name;
    nb_ptq_spec spec = {.per_channel = qs->scale.id == NB_SCALE_CHANNEL, .optimal = qs->method.id == NB_QUANTIZE_OPTIMAL};
    bool quantize = qs->method.id != NB_QUANTIZE_NONE; /* only the transforms: folding, equalization */
    const char *cbname = s->compress.codebook;
    if (nb_codebook_parse(cbname, &spec.cb)) {
        NB_FAIL(ctx, "config", "compress.codebook = %s: unknown codebook (binary, ternary, pm2, pm4, pow2_N)", cbname);
        return 1;
    }
    nb_model *m = nb_model_for(ctx, s);
    nb_ckpt_load_model(ctx, ckpt, &m->params, NB_NAMES_ALL);
    /* deployment folds batch norms into the convolutions: quantize.fold_bn alone is that setting's naive
     * baseline, quantize.dfq adds equalization and bias correction */
    nb_dfq dfq = {0};
    bool dfq_on = qs->dfq, fold = dfq_on || qs->fold_bn;
    if (fold && nb_dfq_equalize(ctx, m, dfq_on, &dfq)) return 1;
    if (qs->activations > 0) {
        int frc = full_integer(ctx, s, &cfg, m, ckpt, out, &dfq) ? 1 : 0;
        nb_dfq_free(&dfq);
        nb_model_free(m);
        free(s);
        nb_cfg_free(&cfg);
        nb_ctx_free(ctx);
        return frc;
    }
    nb_tensor *sel[512];
    int n = nb_compress_select(&s->compress, s->compress.layers, m, sel, 512);
    if (n == 0) {
        NB_FAIL(ctx, "config", "compress.layers selects no weight of %s", m->spec.arch);
        return 1;
    }
    /* bias correction needs the float weights beside the quantized ones */
    nb_tensor *fp[512];
    bool correct = quantize && dfq_on && qs->bias_correction;
    for (int k = 0; correct && k < n; k++) fp[k] = nb_tensor_clone(sel[k]);
    nb_ckpt_extra extra = {0};
    double err = quantize ? nb_ptq_apply(ctx, sel, n, &spec, &extra) : 0.0;
    if (err < 0) return 1;
    if (correct && nb_dfq_bias_correct(ctx, m, &dfq, sel, fp, n)) return 1;
    for (int k = 0; correct && k < n; k++) nb_release(fp[k]);
    char *text = nb_cfg_to_string(&cfg);
    if (nb_ckpt_save(ctx, out, &m->params, NULL, NULL, text, &extra)) return 1;
    printf("{\"checkpoint\": \"%s\", \"out\": \"%s\", \"codebook\": \"%s\", \"bits\": %d, \"method\": \"%s\", \"scale\": \"%s\", "
           "\"folded_bn\": %s, \"dfq\": %s, \"equalized_pairs\": %d, \"bias_corrected\": %s, \"layers\": %d, "
           "\"relative_error\": %.6g}\n",
           ckpt, out, spec.cb.name, spec.cb.bits, method, spec.per_channel ? "channel" : "layer",
           fold ? "true" : "false", dfq_on ? "true" : "false", dfq.pairs, correct ? "true" : "false", n, err);
    nb_dfq_free(&dfq);
    free(text);
    nb_ptq_release(&extra);
    nb_model_free(m);
    free(s);
    nb_cfg_free(&cfg);
    nb_ctx_free(ctx);
    return 0;
}
