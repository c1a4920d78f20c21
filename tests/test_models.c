/* The model zoo against torchvision: parameter counts equal torchvision's, multiply-adds at 224x224 within
 * 2% of the published figures, and with the same weights (set by the rule of tests/support/det_weights.c,
 * which scripts/gen_model_fixtures.py applies to torchvision's models) and input, evaluation logits within
 * 1e-4 of PyTorch's float64 ones. MuffNet, which torchvision lacks, is held to its design: the cost of the
 * ShuffleNetV2 it is compared with. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "models/model.h"
#include "tests/support/det_weights.h"
#include "tests/support/testutil.h"

static nb_model *make(nb_ctx *ctx, const char *arch, int size) {
    nb_model_spec spec = {.arch = arch, .num_classes = 1000, .in_channels = 3, .input_size = size, .width = 1.0f, .seed = 1};
    nb_model *m = nb_model_create(ctx, &spec);
    assert_non_null(m);
    return m;
}

/* Multiply-adds of one 224x224 image, from the recorded tape. */
static double macs_224(nb_ctx *ctx, nb_model *m) {
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){1, 3, 224, 224});
    bool prev = nb_set_grad_enabled(ctx, false);
    nb_set_record_all(ctx, true);
    size_t mark = nb_scope_begin(ctx);
    assert_non_null(m->forward(m, x, false));
    nb_set_record_all(ctx, false);
    nb_set_grad_enabled(ctx, prev);
    double macs = 0;
    for (size_t i = 0; i < nb_tape_size(ctx); i++) macs += (double)nb_node_macs(nb_tape_node(ctx, i));
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    return macs;
}

static void test_counts(void **st) {
    (void)st;
    static const struct {
        const char *arch;
        int64_t params; /* torchvision's */
        double macs;    /* published multiply-adds at 224x224; 0: none published */
    } zoo[] = {
        {"resnet18", 11689512, 1.82e9},     {"resnet34", 21797672, 3.6e9},       {"resnet50", 25557032, 4.1e9},
        {"alexnet", 61100840, 0},           {"shufflenet_v2_x0_5", 1366792, 41e6}, {"shufflenet_v2_x1_0", 2278604, 146e6},
        {"mobilenet_v2", 3504872, 300e6},
    };
    nb_ctx *ctx = tu_ctx();
    for (size_t i = 0; i < sizeof zoo / sizeof *zoo; i++) {
        nb_model *m = make(ctx, zoo[i].arch, 224);
        int64_t p = nb_params_count(&m->params, NULL);
        if (p != zoo[i].params) fail_msg("%s: %lld parameters, torchvision has %lld", zoo[i].arch, (long long)p, (long long)zoo[i].params);
        double macs = macs_224(ctx, m);
        if (zoo[i].macs > 0 && fabs(macs / zoo[i].macs - 1.0) > 0.02)
            fail_msg("%s: %.4g multiply-adds at 224x224, published %.4g (more than 2%% apart)", zoo[i].arch, macs, zoo[i].macs);
        nb_model_free(m);
    }
    /* MuffNet costs what the ShuffleNetV2 of the same name costs, within 2% */
    static const char *const pairs[2][2] = {{"muffnet_x0_5", "shufflenet_v2_x0_5"}, {"muffnet_x1_0", "shufflenet_v2_x1_0"}};
    for (int i = 0; i < 2; i++) {
        nb_model *a = make(ctx, pairs[i][0], 224), *b = make(ctx, pairs[i][1], 224);
        double ma = macs_224(ctx, a), mb = macs_224(ctx, b);
        if (fabs(ma / mb - 1.0) > 0.02) fail_msg("%s: %.4g multiply-adds against %s's %.4g", pairs[i][0], ma, pairs[i][1], mb);
        nb_model_free(a);
        nb_model_free(b);
    }
    nb_ctx_free(ctx);
}

static void test_forward_parity(void **st) {
    (void)st;
    hid_t f = tu_open("tests/fixtures/models.h5");
    char names[16][64];
    int n = tu_list_groups(f, names, 16);
    assert_true(n >= 7);
    nb_ctx *ctx = tu_ctx();
    for (int k = 0; k < n; k++) {
        hid_t g = H5Gopen2(f, names[k], H5P_DEFAULT);
        int size = 0, batch = 0;
        tu_attr_ints(g, "input_size", &size, 1);
        tu_attr_ints(g, "batch", &batch, 1);
        nb_model *m = make(ctx, names[k], size);
        assert_int_equal(dw_fill_params(&m->params), 0);
        int64_t xs[4] = {batch, 3, size, size};
        float *xh = malloc(sizeof(float) * (size_t)(batch * 3 * size * size));
        dw_values("input", 4, xs, xh);
        nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, xs, xh);
        int nd;
        int64_t sh[8];
        float *ref = tu_read_f32(g, "logits", &nd, sh);
        bool prev = nb_set_grad_enabled(ctx, false);
        size_t mark = nb_scope_begin(ctx);
        nb_tensor *y = m->forward(m, x, false);
        char what[160];
        snprintf(what, sizeof what, "%.63s logits (eval, %dx3x%dx%d) vs torchvision", names[k], batch, size, size);
        tu_assert_tensor_close(what, y, ref, sh[0] * sh[1], 1e-4);
        nb_scope_end(ctx, mark);
        nb_set_grad_enabled(ctx, prev);
        free(ref);
        free(xh);
        nb_release(x);
        nb_model_free(m);
        H5Gclose(g);
    }
    nb_ctx_free(ctx);
    H5Fclose(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_forward_parity),
    };
    return cmocka_run_group_tests_name("model zoo vs torchvision", tests, NULL, NULL);
}
