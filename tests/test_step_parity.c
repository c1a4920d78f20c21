/* From the same weights (a PyTorch model saved in nibble's checkpoint layout by scripts/gen_fixtures.py) and
 * the same batch, one training step of bin/train's code path (model.init loading, nb_train_step, SGD with
 * momentum and weight decay) gives PyTorch's parameters and BN running statistics within 1e-4. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/support/testutil.h"
#include "setup/checkpoint.h"
#include "setup/assemble.h"
#include "task/task.h"
#include "train/step.h"

static void one_step(const char *arch, const char *width) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/step_%s.h5", arch);
    nb_ctx *ctx = tu_ctx();
    nb_cfg cfg;
    nb_cfg_init(&cfg);
    char o1[64], o2[64];
    snprintf(o1, sizeof o1, "model.arch=%s", arch);
    snprintf(o2, sizeof o2, "model.width=%s", width);
    const char *overrides[] = {o1, o2, "optim.type=sgd", "optim.lr=0.1", "optim.momentum=0.9", "optim.wd=5e-4"};
    for (int i = 0; i < 6; i++) assert_int_equal(nb_cfg_override(&cfg, overrides[i]), 0);
    nb_settings *s = malloc(sizeof *s);
    nb_settings_read(&cfg, s);
    nb_model *m = nb_model_for(ctx, s);
    assert_non_null(m);
    assert_int_equal(nb_ckpt_load_model(ctx, path, &m->params, NB_NAMES_ALL), 0);
    nb_optim *o = nb_optim_for(ctx, s, m);
    free(s);
    hid_t f = tu_open(path), b = H5Gopen2(f, "batch", H5P_DEFAULT), after = H5Gopen2(f, "after", H5P_DEFAULT);
    nb_tensor *x = tu_load(ctx, b, "x"), *y = tu_load(ctx, b, "labels");
    int nd;
    int64_t sh[8];
    float loss, *want_loss = tu_read_f32(b, "loss", &nd, sh);
    nb_task *task = nb_task_classify(m, 0.0f);
    nb_step_parts parts = {.model = m, .optim = o, .task = task};
    assert_int_equal(nb_train_step(ctx, &parts, x, y, 0, 0, &loss), 0);
    nb_task_free(task);
    assert_true(fabs(loss - want_loss[0]) < 1e-5 * fabs(want_loss[0]));
    int checked = 0;
    for (int i = 0; i < m->params.n; i++) {
        nb_tensor *t = m->params.items[i].t;
        char what[160];
        snprintf(what, sizeof what, "%s %s after one step", arch, t->name);
        if (t->dtype == NB_I64) {
            int64_t got, *ref = tu_read_i64(after, t->name, &nd, sh);
            nb_tensor_to_host(t, &got, sizeof got);
            assert_int_equal(got, ref[0]); /* num_batches_tracked */
            free(ref);
            continue;
        }
        float *ref = tu_read_f32(after, t->name, &nd, sh);
        tu_assert_tensor_close(what, t, ref, nb_numel(t), 1e-4);
        free(ref);
        checked++;
    }
    assert_true(checked > 10);
    free(want_loss);
    H5Gclose(b);
    H5Gclose(after);
    H5Fclose(f);
    nb_release(x);
    nb_release(y);
    nb_optim_free(o);
    nb_model_free(m);
    nb_cfg_free(&cfg);
    nb_ctx_free(ctx);
}

static void test_resnet20(void **st) {
    (void)st;
    one_step("resnet20", "1.0");
}

static void test_smallcnn(void **st) {
    (void)st;
    one_step("smallcnn", "0.5");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet20),
        cmocka_unit_test(test_smallcnn),
    };
    return cmocka_run_group_tests_name("one training step vs PyTorch", tests, NULL, NULL);
}
