/* The quantization-aware baselines: TWN (ternary weight networks, Li & Liu 2016) and BWN (binary weight
 * networks, Rastegari et al. 2016). Each step runs forward and backward with the quantized weights (TWN:
 * threshold 0.7·mean|W|, α the mean magnitude above it; BWN: α = mean|W|, sign(W)) and applies the gradient
 * to the full-precision weights (the straight-through estimator): the float weights are stashed at batch
 * begin and put back before the optimizer step. Evaluation sees the quantized network; at the end the
 * weights stay quantized, and checkpoints carry codes and α as ADMM's do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/codebook.h"
#include "compress/compressor.h"
#include "core/check.h"

typedef struct {
    nb_tensor *w, *stash, *codes, *alpha;
} fq_layer;

typedef struct {
    bool binary;
    fq_layer *layers;
    int n;
} fakequant;

static int quantize(fakequant *f, bool keep_float) {
    for (int k = 0; k < f->n; k++) {
        fq_layer *l = &f->layers[k];
        if (keep_float && nb_tensor_copy(l->stash, l->w)) return -1;
        int64_t n = nb_numel(l->w);
        float *w = nb_host_copy(l->w);
        int8_t *q = nb_xmalloc((size_t)(n ? n : 1));
        if (!w) return -1;
        float alpha = f->binary ? nb_project_bwn(w, n, q) : nb_project_twn(w, n, q);
        for (int64_t i = 0; i < n; i++) w[i] = alpha * (float)q[i];
        int rc = nb_host_store(l->w, w) || nb_tensor_copy_from_host(l->codes, q, (size_t)n) ||
                 nb_tensor_copy_from_host(l->alpha, &alpha, sizeof alpha);
        free(w);
        free(q);
        if (rc) return -1;
    }
    return 0;
}

static int restore(fakequant *f) {
    for (int k = 0; k < f->n; k++)
        if (nb_tensor_copy(f->layers[k].w, f->layers[k].stash)) return -1;
    return 0;
}

static int batch_begin(nb_compressor *c, nb_step *s) {
    (void)s;
    return quantize(c->impl, true);
}

static int before_step(nb_compressor *c, nb_step *s) {
    (void)s;
    return restore(c->impl);
}

static int eval_begin(nb_compressor *c) { return quantize(c->impl, true); }
static int eval_end(nb_compressor *c) { return restore(c->impl); }
static int finish(nb_compressor *c) { return quantize(c->impl, false); }

static void state(nb_compressor *c, nb_ckpt_extra *out) {
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
    }
    free(f->layers);
    free(f);
}

static void destroy(nb_compressor *c) {
    free_fq(c->impl);
    free(c);
}

nb_compressor *nb_fakequant_new(nb_ctx *ctx, const nb_cfg *cfg, nb_model *m, const char *method) {
    nb_tensor *sel[512];
    int n = nb_compress_select(cfg, m, "compress.layers", sel, 512);
    NB_REQUIRE(ctx, n > 0, NULL, "config", "compress.layers = %s selects no convolution or linear weight of %s",
               nb_cfg_str(cfg, "compress.layers"), m->spec.arch);
    fakequant *f = nb_xcalloc(1, sizeof *f);
    f->binary = !strcmp(method, "bwn");
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
    *c = (nb_compressor){.name = f->binary ? "bwn" : "twn", .impl = f, .batch_begin = batch_begin,
                         .before_step = before_step, .eval_begin = eval_begin, .eval_end = eval_end,
                         .finish = finish, .state = state, .destroy = destroy};
    return c;
}
