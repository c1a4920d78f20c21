/* The rule of scripts/gen_model_fixtures.py, in C; the two must stay identical. */
#include "tests/support/det_weights.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static double unit_draw(uint64_t h, uint64_t i) {
    uint64_t z = h + i + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return 2.0 * ((double)(z >> 40) / (double)(1 << 24)) - 1.0;
}

void dw_values(const char *name, int ndim, const int64_t *shape, float *dst) {
    int64_t n = 1, fan_in = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    for (int i = 1; i < ndim; i++) fan_in *= shape[i];
    const char *dot = strrchr(name, '.');
    const char *leaf = dot ? dot + 1 : name;
    uint64_t h = fnv1a64(name);
    for (int64_t i = 0; i < n; i++) {
        double v = unit_draw(h, (uint64_t)i), out;
        if (!strcmp(leaf, "weight") && ndim >= 2) out = v * sqrt(6.0 / (double)fan_in);
        else if (!strcmp(leaf, "weight")) out = 1.0 + 0.2 * v;
        else if (!strcmp(leaf, "running_var")) out = 1.0 + 0.25 * (v + 1.0);
        else out = (strcmp(name, "input") ? 0.1 : 1.0) * v;
        dst[i] = (float)out;
    }
}

int dw_fill_params(nb_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        nb_tensor *t = ps->items[i].t;
        if (t->dtype != NB_F32) continue;
        int64_t n = nb_numel(t);
        float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
        if (!h) return -1;
        dw_values(t->name, t->ndim, t->shape, h);
        int rc = nb_tensor_copy_from_host(t, h, sizeof(float) * (size_t)n);
        free(h);
        if (rc) return -1;
    }
    return 0;
}
