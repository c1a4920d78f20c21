/* Every op of core/op_table.h, forward and backward, against PyTorch (float64 references from
 * scripts/gen_fixtures.py): an op without a fixture group fails, unless it is checked elsewhere (named below).
 * Each 4-D case runs twice: from plain NCHW input and from the blocked layout a network would hold.
 * Tolerance: 1e-4 relative (tu_rel_err). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

/* Ops whose PyTorch check lives elsewhere, and where */
static const char *tested_elsewhere(nb_op op) {
    switch (op) {
    case NB_OP_DROPOUT: return "random: its statistics in test_engine.c, its gradient in test_gradcheck.c";
    case NB_OP_MULTIBOX: return "tests/fixtures/multibox.h5, in test_detect.c";
    case NB_OP_RELAYOUT: return "the layout copy every blocked-layout case here runs";
    case NB_OP_CAST: return "bf16 rounding against PyTorch's .to(torch.bfloat16), in test_precision.c";
    default: return NULL;
    }
}

static void run_op(const char *op) {
    if (H5Lexists(fixture, op, H5P_DEFAULT) <= 0) {
        const char *why = tested_elsewhere((nb_op)nb_op_from_name(op));
        if (why) {
            print_message("%s is checked elsewhere: %s\n", op, why);
            return;
        }
        fail_msg("op %s (core/op_table.h) has no PyTorch fixture: add its cases to scripts/gen_fixtures.py and run "
                 "make fixtures", op);
    }
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

/* one test per row of the op table */
static void test_op(void **state) { run_op(nb_op_name((nb_op)(intptr_t)*state)); }

static void test_conv2d_reference(void **state) {
    (void)state;
    reference_conv = true;
    run_op("conv2d");
    reference_conv = false;
}

/* every group of the fixture file names an op of the table */
static void test_fixtures_name_ops(void **state) {
    (void)state;
    char names[64][64];
    int n = tu_list_groups(fixture, names, 64);
    assert_true(n > 0);
    for (int i = 0; i < n; i++)
        if (nb_op_from_name(names[i]) < 0) fail_msg("tests/fixtures/ops.h5 has a group %s, which is no op", names[i]);
}

int main(void) {
    struct CMUnitTest tests[NB_OP_COUNT + 2];
    for (int op = 0; op < NB_OP_COUNT; op++)
        tests[op] = (struct CMUnitTest){nb_op_name((nb_op)op), test_op, NULL, NULL, (void *)(intptr_t)op};
    tests[NB_OP_COUNT] = (struct CMUnitTest){"conv2d_reference", test_conv2d_reference, NULL, NULL, NULL};
    tests[NB_OP_COUNT + 1] = (struct CMUnitTest){"fixtures_name_ops", test_fixtures_name_ops, NULL, NULL, NULL};
    return cmocka_run_group_tests_name("ops vs PyTorch", tests, setup, teardown);
}
