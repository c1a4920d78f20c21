/* The compressor set: building it from [compress], calling its hooks in order, and what the methods share
 * (which weights to act on, per-layer overrides, host copies). */
#include "compress/compressor.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

nb_compressor *nb_admm_new(nb_ctx *ctx, const nb_cfg *cfg, nb_model *m, int64_t steps_per_epoch);
nb_compressor *nb_prune_new(nb_ctx *ctx, const nb_cfg *cfg, nb_model *m, int64_t steps_per_epoch);
nb_compressor *nb_kd_new(nb_ctx *ctx, const nb_cfg *cfg, nb_model *m);
nb_compressor *nb_fakequant_new(nb_ctx *ctx, const nb_cfg *cfg, nb_model *m, const char *method);

int nb_compress_from_cfg(nb_ctx *ctx, const nb_cfg *cfg, nb_model *m, int64_t steps_per_epoch, nb_compress_set *set) {
    memset(set, 0, sizeof *set);
    const char *list = nb_cfg_str(cfg, "compress.methods");
    if (!strcmp(list, "none") || !list[0]) return 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ", "); tok; tok = strtok(NULL, ", ")) {
        if (set->n == 8) {
            NB_FAIL(ctx, "config", "compress.methods lists more than 8 methods");
            nb_compress_free(set);
            return -1;
        }
        nb_compressor *c = NULL;
        if (!strcmp(tok, "admm")) c = nb_admm_new(ctx, cfg, m, steps_per_epoch);
        else if (!strcmp(tok, "prune")) c = nb_prune_new(ctx, cfg, m, steps_per_epoch);
        else if (!strcmp(tok, "kd")) c = nb_kd_new(ctx, cfg, m);
        else if (!strcmp(tok, "twn") || !strcmp(tok, "bwn")) c = nb_fakequant_new(ctx, cfg, m, tok);
        else {
            NB_FAIL(ctx, "config", "compress.methods: unknown method '%s' (known: admm, prune, kd, twn, bwn, or none)", tok);
            nb_compress_free(set);
            return -1;
        }
        if (!c) {
            nb_compress_free(set);
            return -1;
        }
        set->items[set->n++] = c;
    }
    set->extragradient = nb_cfg_bool(cfg, "compress.extragradient");
    return 0;
}

void nb_compress_free(nb_compress_set *set) {
    for (int i = 0; i < set->n; i++)
        if (set->items[i]->destroy) set->items[i]->destroy(set->items[i]);
    set->n = 0;
}

int nb_compress_epoch(nb_compress_set *set, bool begin, int64_t epoch) {
    for (int i = 0; i < set->n; i++) {
        nb_compressor *c = set->items[i];
        int (*h)(nb_compressor *, int64_t) = begin ? c->epoch_begin : c->epoch_end;
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

int nb_compress_eval(nb_compress_set *set, bool begin) {
    /* swapped in in order, out in reverse: composition unwinds */
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

int nb_compress_select(const nb_cfg *cfg, const nb_model *m, const char *layers_key, nb_tensor **out, int max) {
    const char *include = nb_cfg_str(cfg, layers_key), *exclude = nb_cfg_str(cfg, "compress.exclude");
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
