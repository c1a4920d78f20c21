/* The compressor set: building it from [compress], calling its hooks in order, and what the methods share
 * (which weights to act on, per-layer overrides, host copies). */
#include "compress/compressor.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

/* the rows of NB_METHODS (compressor.h): each method's name and constructor */
typedef nb_compressor *(*method_new)(nb_ctx *ctx, const nb_settings *s, nb_model *m, int64_t steps_per_epoch);
#define NB_METHOD_DECLARE(E, name) nb_compressor *nb_##name##_new(nb_ctx *, const nb_settings *, nb_model *, int64_t);
NB_METHODS(NB_METHOD_DECLARE)
#define NB_METHOD_ROW(E, name) {#name, NB_METHOD_##E, nb_##name##_new},
static const struct {
    const char *name;
    nb_method id;
    method_new make;
} method_names[] = {NB_METHODS(NB_METHOD_ROW)};

bool nb_methods_has(const nb_method_set *set, nb_method which) {
    for (int i = 0; i < set->n; i++)
        if (set->list[i] == which) return true;
    return false;
}

/* The rules on combinations, all of them. */
static int check_combinations(nb_ctx *ctx, const nb_settings *s, const nb_model *m, const nb_method_set *set) {
    const nb_compress_settings *c = &s->compress;
    NB_REQUIRE(ctx, !m->priors || !nb_methods_has(set, NB_METHOD_KD), -1, "config",
               "compress.methods: distillation (kd) is for classifiers; a detector takes admm, prune, twn, bwn");
    /* ADMM's straight-through steps need a latent float W: the trainer's hooks run in list order, so another
     * method's before_step would see Proj(W), and pruning's masks would be applied to it and then undone by the
     * restore; an extragradient's second gradient would be taken at the float weights */
    bool straight_through = c->admm_forward.id == NB_ADMM_QUANTIZED || c->admm_final_epochs > 0;
    if (!nb_methods_has(set, NB_METHOD_ADMM) || !straight_through) return 0;
    NB_REQUIRE(ctx, !nb_methods_has(set, NB_METHOD_PRUNE), -1, "config",
               "compress.admm_forward = quantized (or admm_final_epochs > 0) does not combine with "
               "prune in compress.methods");
    NB_REQUIRE(ctx, !c->extragradient, -1, "config",
               "compress.admm_forward = quantized (or admm_final_epochs > 0) does not combine with "
               "compress.extragradient = true: the extragradient's second gradient would be taken at "
               "the float weights");
    return 0;
}

int nb_methods_parse(nb_ctx *ctx, const nb_settings *s, const nb_model *m, nb_method_set *out) {
    memset(out, 0, sizeof *out);
    const char *list = s->compress.methods;
    if (!strcmp(list, "none") || !list[0]) return 0;
    char buf[NB_CFG_VALUE_MAX];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ", "); tok; tok = strtok(NULL, ", ")) {
        NB_REQUIRE(ctx, out->n < NB_METHODS_MAX, -1, "config", "compress.methods lists more than 8 methods");
        size_t k = 0, n_names = sizeof method_names / sizeof *method_names;
        while (k < n_names && strcmp(method_names[k].name, tok)) k++;
        if (k == n_names) {
            char known[128] = "";
            for (size_t i = 0; i < n_names; i++) snprintf(known + strlen(known), sizeof known - strlen(known), "%s, ", method_names[i].name);
            NB_FAIL(ctx, "config", "compress.methods: unknown method '%s' (known: %sor none)", tok, known);
            return -1;
        }
        out->list[out->n++] = method_names[k].id;
    }
    return check_combinations(ctx, s, m, out);
}

int nb_compress_new(nb_ctx *ctx, const nb_settings *s, const nb_method_set *methods, nb_model *m,
                    int64_t steps_per_epoch, nb_compress_set *set) {
    memset(set, 0, sizeof *set);
    for (int i = 0; i < methods->n; i++) {
        nb_compressor *c = method_names[methods->list[i]].make(ctx, s, m, steps_per_epoch);
        if (!c) {
            nb_compress_free(set);
            return -1;
        }
        set->items[set->n++] = c;
    }
    set->extragradient = methods->n > 0 && s->compress.extragradient;
    return 0;
}

void nb_compress_free(nb_compress_set *set) {
    for (int i = 0; i < set->n; i++)
        if (set->items[i]->destroy) set->items[i]->destroy(set->items[i]);
    set->n = 0;
}

int nb_compress_epoch(nb_compress_set *set, nb_edge edge, int64_t epoch) {
    for (int i = 0; i < set->n; i++) {
        nb_compressor *c = set->items[i];
        int (*h)(nb_compressor *, int64_t) = edge == NB_AT_BEGIN ? c->epoch_begin : c->epoch_end;
        if (h && h(c, epoch)) return -1;
    }
    return 0;
}

int nb_compress_step(nb_compress_set *set, int which, nb_step *s) {
    for (int i = 0; i < set->n; i++) {
        nb_compressor *c = set->items[i];
        int (*h)(nb_compressor *, nb_step *) = which == NB_HOOK_BATCH_BEGIN       ? c->batch_begin
                                               : which == NB_HOOK_BEFORE_BACKWARD ? c->before_backward
                                               : which == NB_HOOK_BEFORE_STEP     ? c->before_step
                                                                                  : c->batch_end;
        if (h && h(c, s)) return -1;
    }
    return 0;
}

int nb_compress_eval(nb_compress_set *set, nb_edge edge) {
    /* swapped in in order, out in reverse: composition unwinds */
    bool begin = edge == NB_AT_BEGIN;
    for (int k = 0; k < set->n; k++) {
        nb_compressor *c = set->items[begin ? k : set->n - 1 - k];
        int (*h)(nb_compressor *) = begin ? c->eval_begin : c->eval_end;
        if (h && h(c)) return -1;
    }
    return 0;
}

int nb_compress_finish(nb_compress_set *set) {
    for (int i = 0; i < set->n; i++)
        if (set->items[i]->finish && set->items[i]->finish(set->items[i])) return -1;
    return 0;
}

void nb_compress_state(nb_compress_set *set, nb_ckpt_extra *out) {
    for (int i = 0; i < set->n; i++)
        if (set->items[i]->state) set->items[i]->state(set->items[i], out);
}

int nb_compress_params(nb_compress_set *set, nb_tensor **out, int max) {
    int n = 0;
    for (int i = 0; i < set->n; i++)
        if (set->items[i]->params) n += set->items[i]->params(set->items[i], out + (n < max ? n : max), n < max ? max - n : 0);
    return n < max ? n : max;
}

void nb_compress_metrics(nb_compress_set *set, char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < set->n; i++) {
        size_t used = strlen(buf);
        if (set->items[i]->metrics && used < n) set->items[i]->metrics(set->items[i], buf + used, n - used);
    }
}

/* ---- shared ---- */

static bool matches_any(const char *patterns, const char *name) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", patterns);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        if (!fnmatch(tok, name, 0)) return true;
    return false;
}

int nb_compress_select(const nb_compress_settings *c, const char *layers, const nb_model *m, nb_tensor **out, int max) {
    const char *include = layers, *exclude = c->exclude;
    bool dflt = !strcmp(include, "default");
    int first = -1, last = -1;
    for (int i = 0; i < m->params.n; i++) {
        const nb_tensor *t = m->params.items[i].t;
        if (m->params.items[i].kind != NB_PARAM || t->ndim < 2) continue;
        if (first < 0 && t->ndim == 4) first = i;
        if (t->ndim == 2) last = i;
    }
    int n = 0;
    for (int i = 0; i < m->params.n && n < max; i++) {
        nb_tensor *t = m->params.items[i].t;
        if (m->params.items[i].kind != NB_PARAM || t->ndim < 2) continue;
        if (dflt ? (i == first || i == last) : !matches_any(include, t->name)) continue;
        if (exclude[0] && matches_any(exclude, t->name)) continue;
        out[n++] = t;
    }
    return n;
}

const char *nb_compress_override(const char *list, const char *name, char *buf, size_t n) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        char *pat = tok, *val = eq + 1;
        for (char *e = eq - 1; e >= pat && *e == ' '; e--) *e = 0;
        while (*val == ' ') val++;
        if (!fnmatch(pat, name, 0)) {
            snprintf(buf, n, "%s", val);
            for (char *e = buf + strlen(buf) - 1; e >= buf && *e == ' '; e--) *e = 0;
            return buf;
        }
    }
    return NULL;
}

float *nb_host_copy(const nb_tensor *t) {
    int64_t n = nb_numel(t);
    float *h = nb_xmalloc(sizeof(float) * (size_t)(n ? n : 1));
    if (nb_tensor_to_host(t, h, sizeof(float) * (size_t)n) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

int nb_host_store(nb_tensor *t, const float *h) { return nb_tensor_copy_from_host(t, h, sizeof(float) * (size_t)nb_numel(t)); }
