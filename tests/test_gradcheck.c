/* Every op's backward against central finite differences of its own forward (float32, step h, loss
 * sum(f(x) * r) for a fixed random r). Inputs of piecewise ops are kept clear of their kinks and ties so
 * that the difference quotient sees one smooth piece. Tolerance 1e-3: with h = 1e-2 the quotient of float32
 * forward passes is good to about 3e-5 here, so a real error in a backward stands out by orders. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "tests/support/op_harness.h"
#include "tests/support/testutil.h"

#define H 1e-2
#define TOL 1e-3
#define SAMPLES 40

typedef struct {
    oh_spec spec;
    nb_ctx *ctx;
    int reseed; /* dropout: the same mask on every evaluation */
} closure;

static nb_tensor *call(nb_tensor **in, void *user) {
    closure *c = user;
    if (c->reseed) nb_ctx_seed(c->ctx, 42, 3);
    return oh_run(&c->spec, in);
}

/* Distinct values spaced at least 0.05 apart, shuffled, none within 0.05 of a kink (0, +-3, 6). */
static nb_tensor *spaced(nb_ctx *ctx, int ndim, const int64_t *shape, float lo, float hi, uint64_t seed) {
    nb_tensor *t = nb_tensor_new(ctx, NB_F32, ndim, shape);
    int64_t n = nb_numel(t);
    float *v = malloc(sizeof(float) * (size_t)n);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n);
    nb_rng r = nb_rng_make(seed, 1);
    nb_rng_permutation(&r, perm, n);
    static const float kinks[] = {0.0f, 3.0f, -3.0f, 6.0f};
    for (int64_t i = 0; i < n; i++) {
        float x = lo + (hi - lo) * ((float)perm[i] + 0.5f) / (float)n;
        for (int k = 0; k < 4; k++)
            if (fabsf(x - kinks[k]) < 0.05f) x = kinks[k] + (x < kinks[k] ? -0.05f : 0.05f);
        v[i] = x;
    }
    nb_tensor_copy_from_host(t, v, sizeof(float) * (size_t)n);
    free(v);
    free(perm);
    return t;
}

static nb_tensor *randn(nb_ctx *ctx, int ndim, const int64_t *shape, uint64_t seed, float scale) {
    nb_tensor *t = nb_tensor_new(ctx, NB_F32, ndim, shape);
    tu_randn(t, seed);
    if (scale != 1.0f) {
        float *h = tu_host(t);
        for (int64_t i = 0; i < nb_numel(t); i++) h[i] *= scale;
        nb_tensor_copy_from_host(t, h, sizeof(float) * (size_t)nb_numel(t));
        free(h);
    }
    return t;
}

/* Check the gradient of every f32 input that differentiates (the mask says which). */
static void check(const char *what, closure *c, nb_tensor **in, int n_in, unsigned mask) {
    for (int i = 0; i < n_in; i++) {
        if (!(mask & (1u << i)) || !in[i]) continue;
        char w[96];
        snprintf(w, sizeof w, "%s d/d%s", what, c->spec.names[i] ? c->spec.names[i] : "x");
        tu_gradcheck(c->ctx, call, in, n_in, i, c, SAMPLES, H, TOL, w);
    }
    assert_int_equal(c->ctx->n_errors, 0);
}

static closure make(nb_ctx *ctx, const char *op) {
    closure c = {.ctx = ctx};
    assert_int_equal(oh_spec_for(op, &c.spec), 0);
    return c;
}

static void release_all(nb_tensor **in, int n) {
    for (int i = 0; i < n; i++) nb_release(in[i]);
}

static void test_conv2d(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    struct { int C, O, k, s, p, d, g; } cases[] = {{4, 6, 3, 1, 1, 1, 1}, {6, 6, 3, 2, 1, 1, 6}, {4, 8, 3, 1, 2, 2, 2}};
    for (int i = 0; i < 3; i++) {
        closure c = make(ctx, "conv2d");
        c.spec.stride[0] = c.spec.stride[1] = cases[i].s;
        c.spec.pad[0] = c.spec.pad[1] = cases[i].p;
        c.spec.dilation[0] = c.spec.dilation[1] = cases[i].d;
        c.spec.groups = cases[i].g;
        nb_tensor *in[3] = {randn(ctx, 4, (int64_t[]){2, cases[i].C, 7, 7}, 1 + i, 1.0f),
                            randn(ctx, 4, (int64_t[]){cases[i].O, cases[i].C / cases[i].g, cases[i].k, cases[i].k}, 2 + i, 0.5f),
                            randn(ctx, 1, (int64_t[]){cases[i].O}, 3 + i, 1.0f)};
        check("conv2d", &c, in, 3, 7);
        release_all(in, 3);
    }
    nb_ctx_free(ctx);
}

static void test_linear(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    closure c = make(ctx, "linear");
    nb_tensor *in[3] = {randn(ctx, 2, (int64_t[]){4, 9}, 1, 1), randn(ctx, 2, (int64_t[]){5, 9}, 2, 0.5f),
                        randn(ctx, 1, (int64_t[]){5}, 3, 1)};
    check("linear", &c, in, 3, 7);
    release_all(in, 3);
    nb_ctx_free(ctx);
}

static void test_batchnorm2d(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    for (int variant = 0; variant < 4; variant++) {
        int training = variant & 1;
        closure c = make(ctx, "batchnorm2d");
        c.spec.training = training;
        c.spec.relu = variant >> 1;
        nb_tensor *in[5] = {randn(ctx, 4, (int64_t[]){3, 5, 4, 4}, 1, 1.5f), randn(ctx, 1, (int64_t[]){5}, 2, 1),
                            randn(ctx, 1, (int64_t[]){5}, 3, 1), nb_tensor_new(ctx, NB_F32, 1, (int64_t[]){5}),
                            nb_tensor_new(ctx, NB_F32, 1, (int64_t[]){5})};
        nb_fill(in[4], 1.0);
        check(training ? (c.spec.relu ? "batchnorm2d+relu train" : "batchnorm2d train")
                       : (c.spec.relu ? "batchnorm2d+relu eval" : "batchnorm2d eval"),
              &c, in, 5, c.spec.relu ? 1 : 7); /* a scale or shift step moves a whole channel across
                                                  the ReLU's kink; their gradients are checked against PyTorch */
        release_all(in, 5);
    }
    nb_ctx_free(ctx);
}

/* every activation of the op table: the ops whose attributes are nb_eltwise_attr */
static void test_activations(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    int checked = 0;
    for (int op = 0; op < NB_OP_COUNT; op++) {
        if (strcmp(nb_op_attr_member((nb_op)op), "eltwise")) continue;
        closure c = make(ctx, nb_op_name((nb_op)op));
        c.spec.alpha = 0.1f;
        nb_tensor *in[1] = {spaced(ctx, 4, (int64_t[]){2, 8, 3, 3}, -8.0f, 8.0f, 10 + checked++)};
        check(c.spec.op, &c, in, 1, 1);
        release_all(in, 1);
    }
    assert_true(checked >= 5);
    nb_ctx_free(ctx);
}

static void test_pooling(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    struct { const char *op; int k, s, p, d, ceil, excl; } cases[] = {
        {"maxpool2d", 3, 2, 1, 1, 0, 0}, {"maxpool2d", 2, 2, 0, 1, 1, 0}, {"maxpool2d", 3, 1, 1, 2, 0, 0},
        {"avgpool2d", 3, 2, 1, 1, 0, 0}, {"avgpool2d", 3, 2, 1, 1, 0, 1}, {"global_avgpool", 0, 0, 0, 0, 0, 0}};
    for (int i = 0; i < 6; i++) {
        closure c = make(ctx, cases[i].op);
        c.spec.kernel[0] = c.spec.kernel[1] = cases[i].k;
        c.spec.stride[0] = c.spec.stride[1] = cases[i].s;
        c.spec.pad[0] = c.spec.pad[1] = cases[i].p;
        c.spec.dilation[0] = c.spec.dilation[1] = cases[i].d;
        c.spec.ceil_mode = cases[i].ceil;
        c.spec.exclude_pad = cases[i].excl;
        /* distinct, well separated values: no ties for max pooling to break differently */
        nb_tensor *in[1] = {spaced(ctx, 4, (int64_t[]){2, 3, 7, 7}, -4.0f, 4.0f, 20 + i)};
        check(cases[i].op, &c, in, 1, 1);
        release_all(in, 1);
    }
    nb_ctx_free(ctx);
}

static void test_dropout(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    closure c = make(ctx, "dropout");
    c.spec.alpha = 0.3f; /* the harness passes alpha as p */
    c.reseed = 1;
    nb_tensor *in[1] = {randn(ctx, 2, (int64_t[]){6, 20}, 1, 1)};
    check("dropout", &c, in, 1, 1);
    release_all(in, 1);
    nb_ctx_free(ctx);
}

static void test_arithmetic(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    closure c = make(ctx, "add");
    c.spec.alpha = 0.5f;
    c.spec.beta = -2.0f;
    nb_tensor *in[2] = {randn(ctx, 3, (int64_t[]){2, 3, 4}, 1, 1), randn(ctx, 3, (int64_t[]){2, 3, 4}, 2, 1)};
    check("add", &c, in, 2, 3);
    release_all(in, 2);
    c = make(ctx, "add");
    c.spec.relu = 1;
    in[0] = spaced(ctx, 2, (int64_t[]){4, 6}, -3.0f, 3.0f, 31);
    in[1] = nb_tensor_new(ctx, NB_F32, 2, (int64_t[]){4, 6}); /* a + 0 keeps the kink spacing of a */
    check("add+relu", &c, in, 2, 3);
    release_all(in, 2);
    c = make(ctx, "scale");
    c.spec.alpha = 1.7f;
    in[0] = randn(ctx, 2, (int64_t[]){3, 4}, 3, 1);
    check("scale", &c, in, 1, 1);
    release_all(in, 1);
    for (int shared = 0; shared < 2; shared++) {
        c = make(ctx, "mul_channel");
        in[0] = randn(ctx, 4, (int64_t[]){2, 3, 3, 3}, 4, 1);
        in[1] = randn(ctx, 4, (int64_t[]){shared ? 1 : 2, 3, 1, 1}, 5, 1);
        check(shared ? "mul_channel shared" : "mul_channel", &c, in, 2, 3);
        release_all(in, 2);
    }
    nb_ctx_free(ctx);
}

static void test_shape_ops(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    closure c = make(ctx, "concat");
    c.spec.n_in = 3;
    c.spec.axis = 1;
    c.spec.names[0] = "x0";
    c.spec.names[1] = "x1";
    c.spec.names[2] = "x2";
    nb_tensor *in[3] = {randn(ctx, 4, (int64_t[]){2, 2, 3, 3}, 1, 1), randn(ctx, 4, (int64_t[]){2, 3, 3, 3}, 2, 1),
                        randn(ctx, 4, (int64_t[]){2, 1, 3, 3}, 3, 1)};
    check("concat", &c, in, 3, 7);
    release_all(in, 3);
    c = make(ctx, "slice");
    c.spec.axis = 1;
    c.spec.start = 2;
    c.spec.len = 3;
    in[0] = randn(ctx, 4, (int64_t[]){2, 6, 2, 2}, 4, 1);
    check("slice", &c, in, 1, 1);
    release_all(in, 1);
    c = make(ctx, "channel_shuffle");
    c.spec.groups = 3;
    in[0] = randn(ctx, 4, (int64_t[]){2, 6, 2, 2}, 5, 1);
    check("channel_shuffle", &c, in, 1, 1);
    release_all(in, 1);
    c = make(ctx, "reshape");
    c.spec.shape_nd = 2;
    c.spec.shape[0] = 4;
    c.spec.shape[1] = -1;
    in[0] = randn(ctx, 3, (int64_t[]){2, 6, 2}, 6, 1);
    check("reshape", &c, in, 1, 1);
    release_all(in, 1);
    nb_ctx_free(ctx);
}

static void test_softmax_losses(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    for (int i = 0; i < 2; i++) {
        closure c = make(ctx, i ? "log_softmax" : "softmax");
        c.spec.axis = 1;
        nb_tensor *in[1] = {randn(ctx, 3, (int64_t[]){3, 5, 2}, 1 + i, 2)};
        check(c.spec.op, &c, in, 1, 1);
        release_all(in, 1);
    }
    for (int ls = 0; ls < 2; ls++) {
        closure c = make(ctx, "cross_entropy");
        c.spec.label_smoothing = ls ? 0.2f : 0.0f;
        int64_t lab[6] = {0, 3, 1, 4, 4, 2};
        nb_tensor *in[2] = {randn(ctx, 2, (int64_t[]){6, 5}, 3, 2), nb_tensor_from_host(ctx, NB_I64, 1, (int64_t[]){6}, lab)};
        check("cross_entropy", &c, in, 2, 1);
        release_all(in, 2);
    }
    closure c = make(ctx, "kl_div");
    c.spec.temperature = 3.0f;
    nb_tensor *in[2] = {randn(ctx, 2, (int64_t[]){4, 6}, 4, 2), randn(ctx, 2, (int64_t[]){4, 6}, 5, 2)};
    check("kl_div", &c, in, 2, 1);
    release_all(in, 2);
    for (int k = 0; k < 2; k++) {
        c = make(ctx, k ? "mse" : "smooth_l1");
        c.spec.beta = 0.7f;
        in[0] = spaced(ctx, 2, (int64_t[]){4, 5}, -3.0f, 3.0f, 6 + k);
        in[1] = nb_tensor_new(ctx, NB_F32, 2, (int64_t[]){4, 5}); /* d = x: kinks at |d| = beta are smooth */
        check(c.spec.op, &c, in, 2, 3);
        release_all(in, 2);
    }
    nb_ctx_free(ctx);
}

/* Fake quantization is a staircase in x and in its rounded zero point, so finite differences say nothing there;
 * where every value saturates the grid, y = (qmax - z) s or (qmin - z) s is smooth in the step size, and LSQ's
 * step-size gradient is exactly its derivative. */
static void test_fake_quant_step_size(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    closure c = make(ctx, "fake_quant");
    c.spec.qmin = -8;
    c.spec.qmax = 7;
    c.spec.axis = -1;
    c.spec.grad_factor = 1.0f;
    nb_tensor *x = spaced(ctx, 2, (int64_t[]){4, 6}, 5.0f, 9.0f, 41);
    float *h = tu_host(x);
    for (int64_t i = 0; i < nb_numel(x); i += 2) h[i] = -h[i]; /* both ends of the grid */
    nb_tensor_copy_from_host(x, h, sizeof(float) * (size_t)nb_numel(x));
    free(h);
    nb_tensor *in[3] = {x, nb_tensor_from_host(ctx, NB_F32, 1, (int64_t[]){1}, (float[]){0.25f}),
                        nb_tensor_new(ctx, NB_F32, 1, (int64_t[]){1})};
    check("fake_quant saturated", &c, in, 3, 2);
    release_all(in, 3);
    nb_ctx_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),      cmocka_unit_test(test_linear),      cmocka_unit_test(test_batchnorm2d),
        cmocka_unit_test(test_activations), cmocka_unit_test(test_pooling),     cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_arithmetic),  cmocka_unit_test(test_shape_ops),   cmocka_unit_test(test_softmax_losses),
        cmocka_unit_test(test_fake_quant_step_size),
    };
    return cmocka_run_group_tests_name("finite-difference gradients", tests, NULL, NULL);
}
