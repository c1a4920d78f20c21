/* The named tensor list and the initialisers. */
#include "layers/params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arith.h"
#include "core/check.h"

void nb_params_init(nb_params *ps, nb_ctx *ctx, uint64_t seed) {
    memset(ps, 0, sizeof *ps);
    ps->ctx = ctx;
    ps->seed = seed;
}

void nb_params_free(nb_params *ps) {
    for (int i = 0; i < ps->n; i++) nb_release(ps->items[i].t);
    free(ps->items);
    memset(ps, 0, sizeof *ps);
}

nb_tensor *nb_params_add(nb_params *ps, const char *prefix, const char *name, nb_param_kind kind, nb_dtype dt,
                         int ndim, const int64_t *shape) {
    char full[NB_NAME_MAX];
    if (prefix && prefix[0]) snprintf(full, sizeof full, "%s.%s", prefix, name);
    else snprintf(full, sizeof full, "%s", name);
    NB_ASSERT(!nb_params_find(ps, full));
    nb_tensor *t = nb_tensor_new(ps->ctx, dt, ndim, shape);
    if (!t) return NULL;
    nb_set_name(t, full);
    if (kind == NB_PARAM) nb_set_requires_grad(t, true);
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 64;
        ps->items = nb_xrealloc(ps->items, sizeof *ps->items * (size_t)ps->cap);
    }
    ps->items[ps->n++] = (nb_param_entry){t, kind};
    return t;
}

nb_tensor *nb_params_find(const nb_params *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->items[i].t->name, name)) return ps->items[i].t;
    return NULL;
}

int64_t nb_params_count(const nb_params *ps, const char *prefix) {
    int64_t n = 0;
    size_t pl = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < ps->n; i++) {
        const char *nm = ps->items[i].t->name;
        if (ps->items[i].kind != NB_PARAM) continue;
        if (pl && (strncmp(nm, prefix, pl) || (nm[pl] != '.' && nm[pl] != 0))) continue;
        n += nb_numel(ps->items[i].t);
    }
    return n;
}

int64_t nb_params_count_direct(const nb_params *ps, const char *layer) {
    int64_t n = 0;
    size_t pl = strlen(layer);
    for (int i = 0; i < ps->n; i++) {
        const char *nm = ps->items[i].t->name;
        if (ps->items[i].kind == NB_PARAM && !strncmp(nm, layer, pl) && nm[pl] == '.' && !strchr(nm + pl + 1, '.'))
            n += nb_numel(ps->items[i].t);
    }
    return n;
}

uint64_t nb_name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

int nb_init_kaiming_normal_fan_out(nb_params *ps, nb_tensor *w) {
    int64_t fan_out = w->shape[0];
    for (int i = 2; i < w->ndim; i++) fan_out *= w->shape[i];
    nb_rng_fill f = {.dist = NB_RNG_NORMAL, .a = 0.0f, .b = (float)sqrt(2.0 / (double)fan_out), .seed = ps->seed,
                     .stream = nb_name_hash(w->name)};
    return nb_fill_random(w, &f);
}

int nb_init_uniform(nb_params *ps, nb_tensor *t, float bound) {
    nb_rng_fill f = {.dist = NB_RNG_UNIFORM, .a = -bound, .b = bound, .seed = ps->seed, .stream = nb_name_hash(t->name)};
    return nb_fill_random(t, &f);
}
