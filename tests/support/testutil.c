/* Shared test helpers: tolerance, error capture, HDF5 fixture reading, finite-difference checks. */
#include "tests/support/testutil.h"

#include "core/bf16.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/select.h"
#include "core/arith.h"
#include "core/rng.h"

double tu_rel_err(const float *got, const float *ref, int64_t n) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)ref[i] * ref[i];
    double rms = n ? sqrt(ss / (double)n) : 0.0;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        double scale = fmax(fabs((double)ref[i]), rms);
        double e = scale > 0 ? d / scale : d;
        if (!(e <= worst)) worst = e; /* NaN propagates */
    }
    return worst;
}

void tu_assert_close(const char *what, const float *got, const float *ref, int64_t n, double tol) {
    double e = tu_rel_err(got, ref, n);
    if (e <= tol) return;
    fprintf(stderr, "%s: relative error %.3g exceeds %.3g over %lld elements\n", what, e, tol, (long long)n);
    int shown = 0;
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)ref[i] * ref[i];
    double rms = n ? sqrt(ss / (double)n) : 0.0;
    for (int64_t i = 0; i < n && shown < 6; i++) {
        double d = fabs((double)got[i] - ref[i]), sc = fmax(fabs((double)ref[i]), rms);
        if (!(d <= tol * sc)) {
            fprintf(stderr, "  [%lld] got %.8g want %.8g\n", (long long)i, got[i], ref[i]);
            shown++;
        }
    }
    fail_msg("%s differs from the reference (relative error %.3g > %.3g)", what, e, tol);
}

void tu_assert_tensor_close(const char *what, const nb_tensor *got, const float *ref, int64_t n, double tol) {
    assert_non_null(got);
    assert_int_equal(nb_numel(got), n);
    float *h = tu_host(got);
    tu_assert_close(what, h, ref, n, tol);
    free(h);
}

float *tu_host(const nb_tensor *t) {
    int64_t n = nb_numel(t);
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    assert_non_null(h);
    if (t->dtype == NB_BF16) { /* widened exactly, in place from the back */
        uint16_t *b = (uint16_t *)h;
        assert_int_equal(nb_tensor_to_host(t, b, sizeof(uint16_t) * (size_t)n), 0);
        for (int64_t i = n; i-- > 0;) h[i] = nb_bf16_to_f32(b[i]);
        return h;
    }
    assert_int_equal(nb_tensor_to_host(t, h, sizeof(float) * (size_t)n), 0);
    return h;
}

/* ---- error capture ---- */

static void record_error(void *user, const char *msg) {
    (void)user;
    (void)msg; /* the message stays in ctx->last_error */
}

nb_device tu_device(void) {
    const char *d = getenv("NB_TEST_DEVICE");
    return d && !strcmp(d, "cuda") ? NB_DEVICE_CUDA : NB_DEVICE_CPU;
}

const char *tu_device_name(void) { return tu_device() == NB_DEVICE_CUDA ? "cuda" : "cpu"; }

nb_ctx *tu_ctx(void) {
    nb_ctx *ctx = nb_ctx_new(tu_device());
    assert_non_null(ctx);
    nb_ctx_set_error_handler(ctx, record_error, NULL);
    return ctx;
}

void tu_expect_error(nb_ctx *ctx, const char *substring) {
    if (ctx->n_errors == 0) fail_msg("expected an error mentioning \"%s\", got none", substring);
    if (!strstr(ctx->last_error, substring))
        fail_msg("expected an error mentioning \"%s\", got: %s", substring, ctx->last_error);
    tu_clear_error(ctx);
}

void tu_clear_error(nb_ctx *ctx) {
    ctx->n_errors = 0;
    ctx->last_error[0] = 0;
}

/* ---- HDF5 ---- */

hid_t tu_open(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("cannot open fixture %s (regenerate with `make fixtures`)", path);
    return f;
}

bool tu_has(hid_t group, const char *name) { return H5Lexists(group, name, H5P_DEFAULT) > 0; }

static void *read_any(hid_t group, const char *name, int *ndim, int64_t *shape, hid_t memtype, size_t elsize) {
    if (!tu_has(group, name)) return NULL;
    hid_t d = H5Dopen2(group, name, H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hsize_t dims[8];
    int nd = H5Sget_simple_extent_ndims(s);
    H5Sget_simple_extent_dims(s, dims, NULL);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        shape[i] = (int64_t)dims[i];
        n *= (int64_t)dims[i];
    }
    *ndim = nd;
    void *buf = malloc(elsize * (size_t)(n ? n : 1));
    assert_non_null(buf);
    if (n && H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) fail_msg("cannot read dataset %s", name);
    H5Sclose(s);
    H5Dclose(d);
    return buf;
}

float *tu_read_f32(hid_t group, const char *name, int *ndim, int64_t *shape) {
    return read_any(group, name, ndim, shape, H5T_NATIVE_FLOAT, sizeof(float));
}

int64_t *tu_read_i64(hid_t group, const char *name, int *ndim, int64_t *shape) {
    return read_any(group, name, ndim, shape, H5T_NATIVE_INT64, sizeof(int64_t));
}

nb_tensor *tu_load(nb_ctx *ctx, hid_t group, const char *name) {
    if (!tu_has(group, name)) return NULL;
    hid_t d = H5Dopen2(group, name, H5P_DEFAULT);
    hid_t ty = H5Dget_type(d);
    bool is_int = H5Tget_class(ty) == H5T_INTEGER;
    H5Tclose(ty);
    H5Dclose(d);
    int nd;
    int64_t shape[8];
    void *buf = is_int ? (void *)tu_read_i64(group, name, &nd, shape) : (void *)tu_read_f32(group, name, &nd, shape);
    nb_tensor *t = nb_tensor_from_host(ctx, is_int ? NB_I64 : NB_F32, nd, shape, buf);
    free(buf);
    assert_non_null(t);
    nb_set_name(t, name);
    return t;
}

double tu_attr_double(hid_t obj, const char *name, double fallback) {
    if (H5Aexists(obj, name) <= 0) return fallback;
    double v = fallback;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    return v;
}

int tu_attr_ints(hid_t obj, const char *name, int *out, int max) {
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t s = H5Aget_space(a);
    int n = (int)H5Sget_simple_extent_npoints(s);
    if (n > max) fail_msg("attribute %s has %d values, expected at most %d", name, n, max);
    H5Aread(a, H5T_NATIVE_INT, out);
    H5Sclose(s);
    H5Aclose(a);
    return n;
}

typedef struct {
    char (*names)[64];
    int n, max;
} group_list;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    group_list *l = data;
    H5O_info_t oi;
    H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT);
    if (oi.type == H5O_TYPE_GROUP && l->n < l->max) snprintf(l->names[l->n++], 64, "%s", name);
    return 0;
}

int tu_list_groups(hid_t group, char names[][64], int max) {
    group_list l = {names, 0, max};
    H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, NULL, collect, &l);
    return l.n;
}

/* ---- random fills ---- */

void tu_randn(nb_tensor *t, uint64_t seed) {
    nb_rng_fill spec = {.dist = NB_RNG_NORMAL, .a = 0.0f, .b = 1.0f, .seed = seed, .stream = 7};
    assert_int_equal(nb_fill_random(t, &spec), 0);
}

void tu_rand_uniform(nb_tensor *t, uint64_t seed, float lo, float hi) {
    nb_rng_fill spec = {.dist = NB_RNG_UNIFORM, .a = lo, .b = hi, .seed = seed, .stream = 9};
    assert_int_equal(nb_fill_random(t, &spec), 0);
}

/* ---- finite differences ---- */

static double weighted_sum(nb_ctx *ctx, tu_fn f, nb_tensor **in, void *user, const float *r) {
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *y = f(in, user);
    assert_non_null(y);
    float *h = tu_host(y);
    double s = 0.0;
    for (int64_t i = 0; i < nb_numel(y); i++) s += (double)h[i] * r[i];
    free(h);
    nb_scope_end(ctx, mark);
    return s;
}

void tu_gradcheck(nb_ctx *ctx, tu_fn f, nb_tensor **in, int n_in, int which, void *user, int samples, double h,
                  double tol, const char *what) {
    (void)n_in;
    nb_tensor *x = in[which];
    /* analytic gradient of sum(f(x) * r) */
    bool prev = nb_set_grad_enabled(ctx, false);
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *y0 = f(in, user);
    assert_non_null(y0);
    int64_t ny = nb_numel(y0);
    int nd = y0->ndim;
    int64_t ys[NB_MAX_DIMS];
    memcpy(ys, y0->shape, sizeof ys);
    nb_scope_end(ctx, mark);
    nb_set_grad_enabled(ctx, prev);

    nb_tensor *r = nb_tensor_new(ctx, NB_F32, nd, ys);
    tu_randn(r, 1234);
    float *rh = tu_host(r);

    nb_zero_grad(x);
    x->requires_grad = true;
    mark = nb_scope_begin(ctx);
    nb_tensor *y = f(in, user);
    assert_non_null(y);
    assert_int_equal(nb_backward(y, r), 0);
    nb_scope_end(ctx, mark);
    assert_non_null(x->grad);
    float *g = tu_host(x->grad);
    nb_zero_grad(x);
    (void)ny;

    int64_t nx = nb_numel(x);
    float *xh = tu_host(x);
    prev = nb_set_grad_enabled(ctx, false);
    int64_t step = nx > samples ? nx / samples : 1;
    float *num = malloc(sizeof(float) * (size_t)nx), *ana = malloc(sizeof(float) * (size_t)nx);
    int64_t k = 0;
    for (int64_t i = 0; i < nx && k < samples; i += step, k++) {
        float orig = xh[i];
        xh[i] = (float)(orig + h);
        assert_int_equal(nb_tensor_copy_from_host(x, xh, sizeof(float) * (size_t)nx), 0);
        double fp = weighted_sum(ctx, f, in, user, rh);
        xh[i] = (float)(orig - h);
        assert_int_equal(nb_tensor_copy_from_host(x, xh, sizeof(float) * (size_t)nx), 0);
        double fm = weighted_sum(ctx, f, in, user, rh);
        xh[i] = orig;
        num[k] = (float)((fp - fm) / (2.0 * h));
        ana[k] = g[i];
    }
    assert_int_equal(nb_tensor_copy_from_host(x, xh, sizeof(float) * (size_t)nx), 0);
    nb_set_grad_enabled(ctx, prev);
    tu_assert_close(what, ana, num, k, tol);
    free(num);
    free(ana);
    free(xh);
    free(g);
    free(rh);
    nb_release(r);
}
