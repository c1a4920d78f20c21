/* ADMM low-bit quantization (Leng, Dou, Li, Zhu, Jin, AAAI 2018). Training minimises loss(W) subject to each
 * quantized layer's W lying in {α·q : q in the codebook}; ADMM splits it with an auxiliary G on the codebook
 * and a scaled dual U:
 *   W-step: SGD on loss(W) + (ρ/2)||W - G + U||², i.e. ρ(W - G + U) added to W's gradient every step
 *           (optionally by extragradient, the trainer's two-gradient step);
 *   G-step: G = Proj(W + U), the optimal α and codes (compress/codebook.c), every admm_interval steps; one α
 *           per layer, or per output channel with compress.scale = channel (depthwise filters, whose ranges
 *           differ from channel to channel by orders of magnitude, lose too much under one α);
 *   U-step: U = U + W - G, right after, then rescaled for the next ρ (below).
 * ρ grows by rho_growth at every G-step, which pulls W onto the codebook as training proceeds. Two options
 * take the loss gradient at Proj(W) and pass it straight through to W, as BWN/TWN do: admm_forward = quantized
 * in every step, admm_final_epochs = N in the last N epochs only, which then drop the penalty and the G/U
 * steps (the quantized retraining that follows ADMM in ADMM-NN, Ren et al. 2019). Evaluation and
 * best.h5 see the network quantized (W replaced by Proj(W)); at the end of training W becomes Proj(W) for
 * good, and every checkpoint carries the integer codes and α of each layer. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/codebook.h"
#include "compress/compressor.h"
#include "core/arith.h"
#include "core/check.h"

typedef struct {
    nb_tensor *w;            /* the parameter (borrowed) */
    nb_codebook cb;
    nb_tensor *G, *U;        /* like w */
    nb_tensor *codes, *alpha; /* int8 like w (plain), f32 [groups]: the last projection of W itself */
    int64_t groups;           /* 1, or w's output channels with compress.scale = channel (an α for each) */
    nb_tensor *stash;        /* W during evaluation */
    nb_tensor *latent;       /* the float W during a quantized-forward step */
} admm_layer;

typedef struct {
    nb_ctx *ctx;
    admm_layer *layers;
    int n;
    double rho0, growth;
    int64_t interval;
    bool quantized_forward; /* the W-step's loss gradient taken at Proj(W), straight through to W */
    int64_t final_from;     /* from this step on: quantized forward, no penalty, no G/U steps (INT64_MAX: never) */
    double last_dist; /* ||W - G||² / ||W||² at the last G-step; ||W - Proj(W)||² / ||W||² in the final epochs */
} admm;

static double rho_at(const admm *a, int64_t step) { return a->rho0 * pow(a->growth, (double)(step / a->interval)); }

/* The optimal projection of v (w's plain layout, output channel major) group by group: codes into q, the
 * groups' α into alpha, α·q into out. */
static void project_groups(const admm_layer *l, const float *v, int8_t *q, float *alpha, float *out) {
    int64_t n = nb_numel(l->w), per = n / l->groups;
    for (int64_t g = 0; g < l->groups; g++) {
        alpha[g] = nb_project_optimal(&l->cb, v + g * per, per, q + g * per);
        for (int64_t i = g * per; i < (g + 1) * per; i++) out[i] = alpha[g] * (float)q[i];
    }
}

/* codes and alpha of Proj(v); writes alpha * codes into out */
static int project(admm_layer *l, const float *v, float *out) {
    int64_t n = nb_numel(l->w);
    int8_t *q = nb_xmalloc((size_t)(n ? n : 1));
    float *alpha = nb_xmalloc(sizeof(float) * (size_t)l->groups);
    project_groups(l, v, q, alpha, out);
    int rc = nb_tensor_copy_from_host(l->codes, q, (size_t)n) ||
             nb_tensor_copy_from_host(l->alpha, alpha, sizeof(float) * (size_t)l->groups);
    free(q);
    free(alpha);
    return rc ? -1 : 0;
}

/* Adds ||w - g||² and ||w||² of one layer to the running sums of the relative distance admm_dist reports. */
static void add_distance(const float *w, const float *g, int64_t n, double *dist, double *norm) {
    for (int64_t i = 0; i < n; i++) {
        *dist += ((double)w[i] - g[i]) * ((double)w[i] - g[i]);
        *norm += (double)w[i] * w[i];
    }
}

/* the auxiliaries follow the parameter's layout (a convolution may have moved it to a blocked one) */
static int align(admm_layer *l) {
    if (l->G->layout != l->w->layout && nb_tensor_relayout(l->G, l->w->layout)) return -1;
    if (l->U->layout != l->w->layout && nb_tensor_relayout(l->U, l->w->layout)) return -1;
    return 0;
}

/* G = Proj(W + U); U = (U + W - G) / growth. U is the dual scaled by 1/ρ, and ρ grows by `growth` for the
 * steps that follow: without the division the unscaled dual ρU would grow with ρ too, and the pull toward
 * the codebook would compound (Boyd et al. 2011, §3.4.1, varying penalty). The sums run where the weights
 * live; the projection itself, an exact sweep over the sorted magnitudes (compress/codebook.c), runs on the
 * host, once an interval. */
static int g_and_u_steps(admm *a) {
    float shrink = (float)(1.0 / a->growth);
    double dist = 0.0, norm = 0.0;
    for (int k = 0; k < a->n; k++) {
        admm_layer *l = &a->layers[k];
        /* G = W + U */
        if (align(l) || nb_tensor_copy(l->G, l->U) || nb_axpby(l->G, 1.0f, l->w, 1.0f)) return -1;
        int64_t n = nb_numel(l->w);
        float *w = nb_host_copy(l->w), *v = nb_host_copy(l->G);
        int8_t *q = nb_xmalloc((size_t)(n ? n : 1));
        float *alpha = nb_xmalloc(sizeof(float) * (size_t)l->groups);
        int rc = !w || !v;
        if (!rc) {
            project_groups(l, v, q, alpha, v); /* v becomes G */
            add_distance(w, v, n, &dist, &norm);
            rc = nb_host_store(l->G, v);
        }
        free(q);
        free(alpha);
        free(w);
        free(v);
        /* U = (U + W - G) * shrink */
        if (rc || nb_axpby(l->U, 1.0f, l->w, 1.0f) || nb_axpby(l->U, -1.0f, l->G, 1.0f) ||
            nb_axpby(l->U, 0.0f, l->U, shrink))
            return -1;
    }
    a->last_dist = norm > 0 ? dist / norm : 0.0;
    return 0;
}

/* Quantized forward: the batch runs on Proj(W), and before the optimizer step the float W comes back to take
 * the loss gradient of the projected network (the straight-through estimator) plus the ADMM penalty's. */
static bool forward_quantized(const admm *a, int64_t step) { return a->quantized_forward || step >= a->final_from; }

static int admm_batch_begin(nb_compressor *c, nb_step *s) {
    admm *a = c->impl;
    if (!forward_quantized(a, s->step)) return 0;
    bool final = s->step >= a->final_from;
    double dist = 0.0, norm = 0.0;
    for (int k = 0; k < a->n; k++) {
        admm_layer *l = &a->layers[k];
        if (nb_tensor_copy(l->latent, l->w)) return -1;
        int64_t n = nb_numel(l->w);
        float *w = nb_host_copy(l->w), *p = nb_xmalloc(sizeof(float) * (size_t)(n ? n : 1));
        int rc = !w || project(l, w, p) || nb_host_store(l->w, p);
        if (final && !rc) add_distance(w, p, n, &dist, &norm);
        free(w);
        free(p);
        if (rc) return -1;
    }
    /* without G-steps in the final epochs, the distance reported is the float W's to its projection */
    if (final) a->last_dist = norm > 0 ? dist / norm : 0.0;
    return 0;
}

static int admm_before_step(nb_compressor *c, nb_step *s) {
    admm *a = c->impl;
    float rho = (float)rho_at(a, s->step);
    for (int k = 0; k < a->n; k++) {
        admm_layer *l = &a->layers[k];
        if (forward_quantized(a, s->step) && nb_tensor_copy(l->w, l->latent)) return -1;
        if (s->step >= a->final_from) continue;
        nb_tensor *g = l->w->grad;
        if (!g) continue;
        if (align(l)) return -1;
        if (g->layout != l->w->layout && nb_tensor_relayout(g, l->w->layout)) return -1;
        /* g += rho * (W - G + U) */
        if (nb_axpby(g, rho, l->w, 1.0f) || nb_axpby(g, rho, l->U, 1.0f) || nb_axpby(g, -rho, l->G, 1.0f))
            return -1;
    }
    return 0;
}

static int admm_batch_end(nb_compressor *c, nb_step *s) {
    admm *a = c->impl;
    return (s->step + 1) % a->interval == 0 && s->step < a->final_from ? g_and_u_steps(a) : 0;
}

/* W <- Proj(W), keeping the float W in the stash for evaluation */
static int quantize_weights(admm *a, nb_quantize_mode mode) {
    bool stash = mode == NB_QUANTIZE_KEEP_FLOAT;
    for (int k = 0; k < a->n; k++) {
        admm_layer *l = &a->layers[k];
        float *w = nb_host_copy(l->w);
        if (!w) return -1;
        if (stash) {
            nb_release(l->stash);
            l->stash = nb_tensor_clone(l->w);
            if (!l->stash) return -1;
        }
        int rc = project(l, w, w) || nb_host_store(l->w, w);
        free(w);
        if (rc) return -1;
    }
    return 0;
}

static int admm_eval_begin(nb_compressor *c) { return quantize_weights(c->impl, NB_QUANTIZE_KEEP_FLOAT); }

static int admm_eval_end(nb_compressor *c) {
    admm *a = c->impl;
    for (int k = 0; k < a->n; k++) {
        admm_layer *l = &a->layers[k];
        if (l->stash && nb_tensor_copy(l->w, l->stash)) return -1;
        nb_release(l->stash);
        l->stash = NULL;
    }
    return 0;
}

static int admm_finish(nb_compressor *c) { return quantize_weights(c->impl, NB_QUANTIZE_FOR_GOOD); }

static void admm_state(nb_compressor *c, nb_ckpt_extra *out) {
    admm *a = c->impl;
    for (int k = 0; k < a->n; k++) {
        admm_layer *l = &a->layers[k];
        nb_ckpt_extra_add(out, l->G, "compress/admm/G/%s", l->w->name);
        nb_ckpt_extra_add(out, l->U, "compress/admm/U/%s", l->w->name);
        nb_ckpt_extra_add(out, l->codes, "compress/admm/codes/%s", l->w->name);
        nb_ckpt_extra_add(out, l->alpha, "compress/admm/alpha/%s", l->w->name);
    }
}

static void admm_metrics(nb_compressor *c, char *buf, size_t n) {
    admm *a = c->impl;
    snprintf(buf, n, ", \"admm_layers\": %d, \"admm_dist\": %.6g", a->n, a->last_dist);
}

static void free_admm(admm *a) {
    for (int k = 0; k < a->n; k++) {
        admm_layer *l = &a->layers[k];
        nb_release(l->G);
        nb_release(l->U);
        nb_release(l->codes);
        nb_release(l->alpha);
        nb_release(l->stash);
        nb_release(l->latent);
    }
    free(a->layers);
    free(a);
}

static void admm_destroy(nb_compressor *c) {
    free_admm(c->impl);
    free(c);
}

static nb_tensor *named(nb_tensor *t, const char *what, const char *of) {
    if (t) {
        char name[NB_NAME_MAX];
        snprintf(name, sizeof name, "%s of %.80s", what, of);
        nb_set_name(t, name);
    }
    return t;
}

nb_compressor *nb_admm_new(nb_ctx *ctx, const nb_settings *s, nb_model *m, int64_t steps_per_epoch) {
    const nb_compress_settings *cs = &s->compress;
    nb_codebook dflt;
    if (nb_codebook_parse(cs->codebook, &dflt)) {
        NB_FAIL(ctx, "config", "compress.codebook = %s: unknown codebook (binary, ternary, pm2 = {0,±1,±2}, pm4 = "
                               "{0,±1,±2,±4}, pow2_N = {0,±1,...,±2^N} with N from 1 to 6)",
                cs->codebook);
        return NULL;
    }
    double rho = cs->rho, growth = cs->rho_growth;
    int64_t interval = cs->admm_interval;
    if (interval == 0) interval = steps_per_epoch;
    NB_REQUIRE(ctx, rho > 0 && growth >= 1.0 && interval > 0, NULL, "config",
               "compress.rho (%g) must be > 0, compress.rho_growth (%g) >= 1 and compress.admm_interval (%lld) >= 0",
               rho, growth, (long long)interval);
    nb_tensor *sel[512];
    int n = nb_compress_select(cs, cs->layers, m, sel, 512);
    NB_REQUIRE(ctx, n > 0, NULL, "config", "compress.layers = %s selects no convolution or linear weight of %s",
               cs->layers, m->spec.arch);
    bool quantized_forward = cs->admm_forward.id == NB_ADMM_QUANTIZED;
    double final_epochs = cs->admm_final_epochs;
    bool straight_through = quantized_forward || final_epochs > 0; /* in some steps: needs latent copies */
    int64_t epochs = s->train.epochs;
    NB_REQUIRE(ctx, final_epochs == 0 || (final_epochs > 0 && final_epochs < (double)epochs), NULL, "config",
               "compress.admm_final_epochs (%g) must be in [0, train.epochs = %lld)", final_epochs, (long long)epochs);
    admm *a = nb_xcalloc(1, sizeof *a);
    a->ctx = ctx;
    a->rho0 = rho;
    a->growth = growth;
    a->interval = interval;
    a->quantized_forward = quantized_forward;
    a->final_from = final_epochs > 0 ? (int64_t)llround(((double)epochs - final_epochs) * (double)steps_per_epoch)
                                     : INT64_MAX;
    a->layers = nb_xcalloc((size_t)n, sizeof *a->layers);
    bool per_channel = cs->scale.id == NB_SCALE_CHANNEL;
    for (int k = 0; k < n; k++) {
        admm_layer *l = &a->layers[k];
        l->w = sel[k];
        l->cb = dflt;
        char buf[32];
        const char *o = nb_compress_override(cs->codebook_layers, l->w->name, buf, sizeof buf);
        if (o && nb_codebook_parse(o, &l->cb)) {
            NB_FAIL(ctx, "config", "compress.codebook_layers: unknown codebook '%s' for %s", o, l->w->name);
            a->n = k;
            free_admm(a);
            return NULL;
        }
        l->G = named(nb_tensor_like(l->w), "G", l->w->name);
        l->U = named(nb_tensor_like(l->w), "U", l->w->name);
        l->codes = named(nb_tensor_new(ctx, NB_I8, l->w->ndim, l->w->shape), "codes", l->w->name);
        l->groups = per_channel ? l->w->shape[0] : 1;
        l->alpha = named(nb_tensor_new(ctx, NB_F32, 1, (int64_t[]){l->groups}), "alpha", l->w->name);
        if (straight_through) l->latent = named(nb_tensor_like(l->w), "latent", l->w->name);
        a->n = k + 1;
        if (!l->G || !l->U || !l->codes || !l->alpha || (straight_through && !l->latent)) {
            free_admm(a);
            return NULL;
        }
        /* G starts at the projection of the starting weights, U at zero */
        float *w = nb_host_copy(l->w);
        int rc = !w || project(l, w, w) || nb_host_store(l->G, w);
        free(w);
        if (rc) {
            free_admm(a);
            return NULL;
        }
    }
    nb_compressor *c = nb_xcalloc(1, sizeof *c);
    *c = (nb_compressor){.name = "admm", .impl = a, .batch_begin = admm_batch_begin,
                         .before_step = admm_before_step, .batch_end = admm_batch_end,
                         .eval_begin = admm_eval_begin, .eval_end = admm_eval_end, .finish = admm_finish,
                         .state = admm_state, .metrics = admm_metrics, .destroy = admm_destroy};
    return c;
}
