/* The quantization-aware baselines: TWN (ternary weight networks, Li & Liu 2016) and BWN (binary weight
 * networks, Rastegari et al. 2016). Each step runs forward and backward with the quantized weights (TWN:
 * threshold 0.7·mean|W|, α the mean magnitude above it; BWN: α = mean|W|, sign(W)) and applies the gradient
 * to the full-precision weights (the straight-through estimator): the float weights are stashed at batch
 * begin and put back before the optimizer step. Evaluation sees the quantized network; at the end the
 * weights stay quantized, and checkpoints carry codes and α as ADMM's do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compressor.h"
#include "core/arith.h"
#include "core/check.h"

typedef struct {
    nb_tensor *w, *stash, *codes, *alpha;
    nb_tensor *work; /* a plain copy of w, where the backend keeps w in a blocked layout */
} fq_layer;

typedef struct {
    bool binary;
    fq_layer *layers;
    int n;
} fakequant;

/* W <- alpha * codes on the device: BWN's alpha = mean|W| with sign codes, TWN's threshold 0.7 mean|W| and
 * alpha the mean magnitude above it (compress/codebook.c's nb_project_bwn and nb_project_twn, to the bit on
 * the CPU) */
static int fakequant_layer(fq_layer *l, bool binary) {
    nb_tensor *v = l->w;
    if (!nb_is_contiguous(l->w)) { /* the projection runs in plain order, as the codes are stored */
        if (!l->work && !(l->work = nb_tensor_new(l->w->ctx, NB_F32, l->w->ndim, l->w->shape))) return -1;
        v = l->work;
        if (nb_tensor_copy(v, l->w)) return -1;
    }
    int64_t n = nb_numel(v), count;
    double s, threshold = -1.0, above;
    if (nb_sum_abs(v, -1.0, &s, NULL)) return -1;
    float alpha = n ? (float)(s / (double)n) : 0.0f;
    if (!binary) {
        threshold = n ? 0.7 * s / (double)n : 0.0;
        if (nb_sum_abs(v, threshold, &above, &count)) return -1;
        alpha = count ? (float)(above / (double)count) : 0.0f;
    }
    if (nb_sign_codes(v, l->codes, threshold, alpha) || nb_fill(l->alpha, alpha)) return -1;
    return v != l->w ? nb_tensor_copy(l->w, v) : 0;
}

static int quantize(fakequant *f, nb_quantize_mode mode) {
    for (int k = 0; k < f->n; k++) {
        fq_layer *l = &f->layers[k];
        if (mode == NB_QUANTIZE_KEEP_FLOAT && nb_tensor_copy(l->stash, l->w)) return -1;
        if (fakequant_layer(l, f->binary)) return -1;
    }
    return 0;
}

static int restore(fakequant *f) {
    for (int k = 0; k < f->n; k++)
        if (nb_tensor_copy(f->layers[k].w, f->layers[k].stash)) return -1;
    return 0;
}

static int fakequant_batch_begin(nb_compressor *c, nb_step *s) {
    (void)s;
    return quantize(c->impl, NB_QUANTIZE_KEEP_FLOAT);
}

static int fakequant_before_step(nb_compressor *c, nb_step *s) {
    (void)s;
    return restore(c->impl);
}

static int fakequant_eval_begin(nb_compressor *c) { return quantize(c->impl, NB_QUANTIZE_KEEP_FLOAT); }
static int fakequant_eval_end(nb_compressor *c) { return restore(c->impl); }
static int fakequant_finish(nb_compressor *c) { return quantize(c->impl, NB_QUANTIZE_FOR_GOOD); }

static void fakequant_state(nb_compressor *c, nb_ckpt_extra *out) {
    fakequant *f = c->impl;
    for (int k = 0; k < f->n; k++) {
        nb_ckpt_extra_add(out, f->layers[k].codes, "compress/%s/codes/%s", c->name, f->layers[k].w->name);
        nb_ckpt_extra_add(out, f->layers[k].alpha, "compress/%s/alpha/%s", c->name, f->layers[k].w->name);
    }
}

static void free_fq(fakequant *f) {
    for (int k = 0; k < f->n; k++) {
        nb_release(f->layers[k].stash);
        nb_release(f->layers[k].codes);
        nb_release(f->layers[k].alpha);
        nb_release(f->layers[k].work);
    }
    free(f->layers);
    free(f);
}

static void fakequant_destroy(nb_compressor *c) {
    free_fq(c->impl);
    free(c);
}

static nb_compressor *fakequant_new(nb_ctx *ctx, const nb_settings *s, nb_model *m, nb_method which) {
    const nb_compress_settings *cs = &s->compress;
    nb_tensor *sel[512];
    int n = nb_compress_select(cs, cs->layers, m, sel, 512);
    NB_REQUIRE(ctx, n > 0, NULL, "config", "compress.layers = %s selects no convolution or linear weight of %s",
               cs->layers, m->spec.arch);
    fakequant *f = nb_xcalloc(1, sizeof *f);
    f->binary = which == NB_METHOD_BWN;
    f->layers = nb_xcalloc((size_t)n, sizeof *f->layers);
    for (int k = 0; k < n; k++) {
        fq_layer *l = &f->layers[k];
        l->w = sel[k];
        l->stash = nb_tensor_like(l->w);
        l->codes = nb_tensor_new(ctx, NB_I8, l->w->ndim, l->w->shape);
        l->alpha = nb_tensor_new(ctx, NB_F32, 1, (int64_t[]){1});
        f->n = k + 1;
        if (!l->stash || !l->codes || !l->alpha) {
            free_fq(f);
            return NULL;
        }
        char name[NB_NAME_MAX];
        snprintf(name, sizeof name, "codes of %.80s", l->w->name);
        nb_set_name(l->codes, name);
        snprintf(name, sizeof name, "alpha of %.80s", l->w->name);
        nb_set_name(l->alpha, name);
    }
    nb_compressor *c = nb_xcalloc(1, sizeof *c);
    *c = (nb_compressor){.name = f->binary ? "bwn" : "twn", .impl = f, .batch_begin = fakequant_batch_begin,
                         .before_step = fakequant_before_step, .eval_begin = fakequant_eval_begin,
                         .eval_end = fakequant_eval_end, .finish = fakequant_finish, .state = fakequant_state,
                         .destroy = fakequant_destroy};
    return c;
}

nb_compressor *nb_twn_new(nb_ctx *ctx, const nb_settings *s, nb_model *m, int64_t steps_per_epoch) {
    (void)steps_per_epoch;
    return fakequant_new(ctx, s, m, NB_METHOD_TWN);
}

nb_compressor *nb_bwn_new(nb_ctx *ctx, const nb_settings *s, nb_model *m, int64_t steps_per_epoch) {
    (void)steps_per_epoch;
    return fakequant_new(ctx, s, m, NB_METHOD_BWN);
}
