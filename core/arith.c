/* The backend's arithmetic behind core/arith.h, with the checks that keep a bad call from reaching a kernel. */
#include "core/arith.h"

#include "core/check.h"
#include "core/context.h"

static nb_backend *backend_of(const nb_tensor *t) { return t->ctx->backend; }

int nb_axpby(nb_tensor *y, float a, const nb_tensor *x, float b) { return backend_of(y)->axpby(backend_of(y), y, a, x, b); }

int nb_mul_inplace(nb_tensor *y, const nb_tensor *x) { return backend_of(y)->mul(backend_of(y), y, x); }

int nb_abs_mul_add(nb_tensor *acc, const nb_tensor *a, const nb_tensor *b) {
    int rc = backend_of(acc)->abs_mul_add(backend_of(acc), acc, a, b);
    if (rc == 0) acc->version++;
    return rc;
}

int nb_sum_squares(const nb_tensor *t, double *out) { return backend_of(t)->sum_squares(backend_of(t), t, out); }

int nb_sum_abs(const nb_tensor *t, double threshold, double *sum, int64_t *count) {
    int64_t unused;
    return backend_of(t)->sum_abs(backend_of(t), t, threshold, sum, count ? count : &unused);
}

int nb_sign_codes(nb_tensor *v, nb_tensor *codes, double threshold, float alpha) {
    NB_REQUIRE(v->ctx, v->dtype == NB_F32 && codes->dtype == NB_I8 && nb_same_shape(v, codes), -1, "sign_codes",
               "weights %s (f32) and codes %s (i8) of one shape expected", NB_SHAPE(v), NB_SHAPE(codes));
    int rc = backend_of(v)->sign_codes(backend_of(v), v, codes, threshold, alpha);
    if (rc == 0) {
        v->version++;
        codes->version++;
    }
    return rc;
}

int nb_range(const nb_tensor *t, double *lo, double *hi) {
    NB_REQUIRE(t->ctx, t->dtype == NB_F32 && nb_is_contiguous(t) && nb_numel(t) > 0, -1, "range",
               "a plain contiguous f32 tensor with elements expected, got %s", NB_SHAPE(t));
    return backend_of(t)->range(backend_of(t), t, lo, hi);
}

int nb_bn_fold(nb_tensor *sf, nb_tensor *inv, const nb_tensor *gamma, const nb_tensor *var, float eps) {
    const nb_tensor *all[4] = {sf, inv, gamma, var};
    for (int i = 0; i < 4; i++)
        NB_REQUIRE(sf->ctx, all[i]->dtype == NB_F32 && nb_is_contiguous(all[i]) && nb_numel(all[i]) == nb_numel(sf), -1,
                   "bn_fold", "four plain f32 tensors of C elements expected, got %s %s %s %s", NB_SHAPE(sf),
                   NB_SHAPE(inv), NB_SHAPE(gamma), NB_SHAPE(var));
    int rc = backend_of(sf)->bn_fold(backend_of(sf), sf, inv, gamma, var, eps);
    if (rc == 0) {
        sf->version++;
        inv->version++;
    }
    return rc;
}

int nb_fill_random(nb_tensor *t, const nb_rng_fill *spec) { return backend_of(t)->rng_fill(backend_of(t), t, spec); }

int nb_sgd_update(const nb_sgd_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *buf) {
    return backend_of(p)->sgd_step(backend_of(p), s, p, g, buf);
}

int nb_adam_update(const nb_adam_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *m, nb_tensor *v) {
    return backend_of(p)->adam_step(backend_of(p), s, p, g, m, v);
}

int nb_counter_add(nb_tensor *t, int64_t v) { return backend_of(t)->counter_add(backend_of(t), t, v); }

size_t nb_storage_bytes(const nb_tensor *t) {
    return t->layout == NB_LAYOUT_PLAIN ? nb_tensor_bytes(t) : backend_of(t)->layout_bytes(backend_of(t), t);
}

int nb_storage_download(const nb_tensor *t, void *host, size_t bytes) {
    void *d = nb_data(t);
    return d ? backend_of(t)->download(backend_of(t), host, d, bytes) : -1;
}

int nb_storage_upload(nb_tensor *t, const void *host, size_t bytes) {
    void *d = nb_data(t);
    return d ? backend_of(t)->upload(backend_of(t), d, host, bytes) : -1;
}
