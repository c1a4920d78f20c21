/* End-to-end parity: a conv-BN-ReLU-pool x2 + linear network trained on a fixed batch reproduces
 * torch.optim's losses (SGD with momentum and weight decay for 20 steps; SGD-Nesterov and AdamW for 10)
 * within 1e-4 relative; after the first step every parameter and running statistic equals the exact (float64)
 * PyTorch step within 1e-4. The final parameters are only checked loosely (2e-2): training on this batch
 * is chaotic at float32 resolution (a ReLU or max-pool choice flips), so that perturbing the initial weights
 * of the float64 run by 1e-6 moves its final parameters by up to 7e-3, and PyTorch's own float32 run ends
 * 9e-4 away from its float64 run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "optim/optim.h"
#include "tests/support/testutil.h"

#define NPARAM 12
static const char *const names[NPARAM] = {"conv1.weight",     "bn1.weight",      "bn1.bias",         "bn1.running_mean",
                                          "bn1.running_var",  "conv2.weight",    "bn2.weight",       "bn2.bias",
                                          "bn2.running_mean", "bn2.running_var", "fc.weight",        "fc.bias"};
static const int trainable[NPARAM] = {1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1};

static hid_t fx;

static int setup(void **state) {
    (void)state;
    fx = tu_open("tests/fixtures/smallcnn.h5");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    H5Fclose(fx);
    return 0;
}

static nb_tensor *forward(nb_tensor **p, nb_tensor *x) {
    nb_bn_attr bn = {.momentum = 0.1f, .eps = 1e-5f, .training = 1};
    nb_pool_attr pool = {.kernel = {2, 2}};
    nb_tensor *h = nb_conv2d(x, p[0], NULL, (nb_conv_attr){.pad = {1, 1}});
    h = nb_maxpool2d(nb_relu(nb_batchnorm2d(h, p[1], p[2], p[3], p[4], bn)), pool);
    h = nb_conv2d(h, p[5], NULL, (nb_conv_attr){.pad = {1, 1}});
    h = nb_maxpool2d(nb_relu(nb_batchnorm2d(h, p[6], p[7], p[8], p[9], bn)), pool);
    return nb_linear(nb_flatten(h), p[10], p[11]);
}

static void run(const char *run_name, nb_optim_config cfg) {
    nb_ctx *ctx = tu_ctx();
    hid_t init = H5Gopen2(fx, "init", H5P_DEFAULT), g = H5Gopen2(fx, run_name, H5P_DEFAULT);
    nb_tensor *p[NPARAM], *opt_params[NPARAM];
    int n_opt = 0;
    for (int i = 0; i < NPARAM; i++) {
        p[i] = tu_load(ctx, init, names[i]);
        if (trainable[i]) {
            nb_set_requires_grad(p[i], true);
            opt_params[n_opt++] = p[i];
        }
    }
    nb_tensor *x = tu_load(ctx, fx, "x"), *labels = tu_load(ctx, fx, "labels");
    int nd;
    int64_t sh[8];
    float *want = tu_read_f32(g, "losses", &nd, sh);
    int steps = (int)sh[0];
    nb_optim *o = nb_optim_new(ctx, &cfg, opt_params, n_opt);
    assert_non_null(o);
    float got[32];
    hid_t after1 = H5Gopen2(g, "after1", H5P_DEFAULT);
    for (int s = 0; s < steps; s++) {
        size_t mark = nb_scope_begin(ctx);
        nb_optim_zero_grad(o);
        nb_tensor *loss = nb_cross_entropy(forward(p, x), labels, 0.0f);
        assert_non_null(loss);
        got[s] = nb_item(loss);
        assert_int_equal(nb_backward(loss, NULL), 0);
        assert_int_equal(nb_optim_step(o), 0);
        nb_scope_end(ctx, mark);
        for (int i = 0; s == 0 && i < NPARAM; i++) {
            float *ref = tu_read_f32(after1, names[i], &nd, sh);
            char what[96];
            snprintf(what, sizeof what, "%s %s after one step", run_name, names[i]);
            tu_assert_tensor_close(what, p[i], ref, nb_numel(p[i]), 1e-4);
            free(ref);
        }
    }
    H5Gclose(after1);
    for (int s = 0; s < steps; s++) {
        double rel = fabs(got[s] - want[s]) / fabs(want[s]);
        if (rel > 1e-4) fail_msg("%s: loss at step %d is %.8f, PyTorch %.8f (relative %.2g)", run_name, s, got[s], want[s], rel);
    }
    hid_t fin = H5Gopen2(g, "final", H5P_DEFAULT);
    for (int i = 0; i < NPARAM; i++) {
        float *ref = tu_read_f32(fin, names[i], &nd, sh);
        char what[96];
        snprintf(what, sizeof what, "%s final %s", run_name, names[i]);
        tu_assert_tensor_close(what, p[i], ref, nb_numel(p[i]), 2e-2);
        free(ref);
    }
    H5Gclose(fin);
    free(want);
    nb_optim_free(o);
    for (int i = 0; i < NPARAM; i++) nb_release(p[i]);
    nb_release(x);
    nb_release(labels);
    H5Gclose(init);
    H5Gclose(g);
    nb_ctx_free(ctx);
}

static void test_sgd_20_steps(void **st) {
    (void)st;
    run("sgd", (nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f});
}

static void test_nesterov_10_steps(void **st) {
    (void)st;
    run("nesterov",
        (nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 0.05f, .momentum = 0.9f, .nesterov = 1, .weight_decay = 5e-4f});
}

static void test_adamw_10_steps(void **st) {
    (void)st;
    nb_optim_config c = nb_optim_defaults(NB_OPTIM_ADAMW);
    c.lr = 1e-3f;
    c.weight_decay = 0.01f;
    run("adamw", c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_20_steps),
        cmocka_unit_test(test_nesterov_10_steps),
        cmocka_unit_test(test_adamw_10_steps),
    };
    return cmocka_run_group_tests_name("small CNN training vs PyTorch", tests, setup, teardown);
}
