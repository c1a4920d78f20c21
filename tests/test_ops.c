/* Every op's forward and backward against PyTorch (float64 references from scripts/gen_fixtures.py).
 * Each 4-D case runs twice: from plain NCHW input and from the blocked layout a network would hold.
 * Tolerance: 1e-4 relative (tu_rel_err). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/select.h"
#include "core/arith.h"
#include "core/ops.h"
#include "tests/support/op_harness.h"
#include "tests/support/testutil.h"

#define TOL 1e-4

static hid_t fixture;
static bool reference_conv; /* run convolutions through the im2col + sgemm path instead of oneDNN */

static int setup(void **state) {
    (void)state;
    fixture = tu_open("tests/fixtures/ops.h5");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    H5Fclose(fixture);
    return 0;
}

static void run_case(const char *op, const char *name, hid_t g, int blocked) {
    nb_ctx *ctx = tu_ctx();
    nb_cpu_use_reference_conv(ctx, reference_conv);
    oh_spec s;
    assert_int_equal(oh_spec_for(op, &s), 0);
    oh_read_attrs(g, &s);
    nb_tensor *in[OH_MAX_IN] = {0};
    int moved = 0;
    for (int i = 0; i < s.n_in; i++) {
        in[i] = tu_load(ctx, g, s.names[i]);
        if (!in[i]) continue;
        char gname[80];
        snprintf(gname, sizeof gname, "grad_%s", s.names[i]);
        if (tu_has(g, gname)) nb_set_requires_grad(in[i], true);
        /* the first 4-D activation goes into the backend's network layout */
        if (blocked && !moved && in[i]->ndim == 4 && in[i]->dtype == NB_F32) {
            int lay = nb_activation_layout(in[i]);
            assert_int_equal(nb_tensor_relayout(in[i], lay), 0);
            moved = 1;
        }
    }
    if (blocked && !moved) {
        for (int i = 0; i < s.n_in; i++) nb_release(in[i]);
        nb_ctx_free(ctx);
        return;
    }
    char what[160];
    nb_tensor *y = oh_run(&s, in);
    if (!y) fail_msg("%s/%s: %s", op, name, nb_ctx_last_error(ctx));
    int nd;
    int64_t shape[8];
    float *ref = tu_read_f32(g, "y", &nd, shape);
    assert_int_equal(nd, y->ndim);
    for (int d = 0; d < nd; d++) assert_int_equal(shape[d], y->shape[d]);
    snprintf(what, sizeof what, "%s/%s%s forward", op, name, blocked ? " (blocked)" : "");
    tu_assert_tensor_close(what, y, ref, nb_numel(y), TOL);
    free(ref);

    if (tu_has(g, "running_mean_out")) {
        for (int k = 3; k <= 4; k++) {
            float *r = tu_read_f32(g, k == 3 ? "running_mean_out" : "running_var_out", &nd, shape);
            snprintf(what, sizeof what, "%s/%s %s", op, name, s.names[k]);
            tu_assert_tensor_close(what, in[k], r, nb_numel(in[k]), TOL);
            free(r);
        }
    }

    if (tu_has(g, "gy")) {
        nb_tensor *gy = tu_load(ctx, g, "gy");
        if (nb_backward(y, gy) != 0) fail_msg("%s/%s backward: %s", op, name, nb_ctx_last_error(ctx));
        nb_release(gy);
        for (int i = 0; i < s.n_in; i++) {
            char gname[80];
            snprintf(gname, sizeof gname, "grad_%s", s.names[i]);
            if (!in[i] || !tu_has(g, gname)) continue;
            float *gr = tu_read_f32(g, gname, &nd, shape);
            snprintf(what, sizeof what, "%s/%s%s gradient of %s", op, name, blocked ? " (blocked)" : "", s.names[i]);
            assert_non_null(in[i]->grad);
            tu_assert_tensor_close(what, in[i]->grad, gr, nb_numel(in[i]), TOL);
            free(gr);
        }
    }
    assert_int_equal(ctx->n_errors, 0);
    for (int i = 0; i < s.n_in; i++) nb_release(in[i]);
    nb_ctx_free(ctx);
}

static void run_op(const char *op) {
    hid_t g = H5Gopen2(fixture, op, H5P_DEFAULT);
    assert_true(g >= 0);
    char names[32][64];
    int n = tu_list_groups(g, names, 32);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        hid_t c = H5Gopen2(g, names[i], H5P_DEFAULT);
        run_case(op, names[i], c, 0);
        run_case(op, names[i], c, 1);
        H5Gclose(c);
    }
    H5Gclose(g);
}

#define OP_TEST(name)                                                                                          \
    static void test_##name(void **state) {                                                                    \
        (void)state;                                                                                           \
        run_op(#name);                                                                                         \
    }
OP_TEST(conv2d)

static void test_conv2d_reference(void **state) {
    (void)state;
    reference_conv = true;
    run_op("conv2d");
    reference_conv = false;
}
OP_TEST(linear)
OP_TEST(batchnorm2d)
OP_TEST(relu)
OP_TEST(relu6)
OP_TEST(leaky_relu)
OP_TEST(sigmoid)
OP_TEST(hardswish)
OP_TEST(maxpool2d)
OP_TEST(avgpool2d)
OP_TEST(global_avgpool)
OP_TEST(add)
OP_TEST(scale)
OP_TEST(mul_channel)
OP_TEST(concat)
OP_TEST(slice)
OP_TEST(channel_shuffle)
OP_TEST(reshape)
OP_TEST(softmax)
OP_TEST(log_softmax)
OP_TEST(cross_entropy)
OP_TEST(kl_div)
OP_TEST(smooth_l1)
OP_TEST(mse)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),          cmocka_unit_test(test_conv2d_reference),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_batchnorm2d),     cmocka_unit_test(test_relu),
        cmocka_unit_test(test_relu6),           cmocka_unit_test(test_leaky_relu),
        cmocka_unit_test(test_sigmoid),         cmocka_unit_test(test_hardswish),
        cmocka_unit_test(test_maxpool2d),       cmocka_unit_test(test_avgpool2d),
        cmocka_unit_test(test_global_avgpool),  cmocka_unit_test(test_add),
        cmocka_unit_test(test_scale),           cmocka_unit_test(test_mul_channel),
        cmocka_unit_test(test_concat),          cmocka_unit_test(test_slice),
        cmocka_unit_test(test_channel_shuffle), cmocka_unit_test(test_reshape),
        cmocka_unit_test(test_softmax),         cmocka_unit_test(test_log_softmax),
        cmocka_unit_test(test_cross_entropy),   cmocka_unit_test(test_kl_div),
        cmocka_unit_test(test_smooth_l1),       cmocka_unit_test(test_mse),
    };
    return cmocka_run_group_tests_name("ops vs PyTorch", tests, setup, teardown);
}
