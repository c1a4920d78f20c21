/* Optimizers, schedules and clipping against torch.optim (fixtures/optim.h5), and exact state round trips. */
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

static hid_t fx;

static int setup(void **state) {
    (void)state;
    fx = tu_open("tests/fixtures/optim.h5");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    H5Fclose(fx);
    return 0;
}

/* The fixture's loss: sum((p - target)^2 * (1 + 0.1 step)) + 0.05 sum(b^4) + 0.1 sum(p) sum(b). */
static void set_grads(nb_ctx *ctx, nb_tensor *p, nb_tensor *b, const float *target, int step) {
    float ph[24], bh[5], gp[24], gb[5];
    nb_tensor_to_host(p, ph, sizeof ph);
    nb_tensor_to_host(b, bh, sizeof bh);
    float sp = 0, sb = 0;
    for (int i = 0; i < 24; i++) sp += ph[i];
    for (int i = 0; i < 5; i++) sb += bh[i];
    for (int i = 0; i < 24; i++) gp[i] = 2.0f * (ph[i] - target[i]) * (1.0f + 0.1f * (float)step) + 0.1f * sb;
    for (int i = 0; i < 5; i++) gb[i] = 0.2f * bh[i] * bh[i] * bh[i] + 0.1f * sp;
    nb_zero_grad(p);
    nb_zero_grad(b);
    p->grad = nb_tensor_from_host(ctx, NB_F32, p->ndim, p->shape, gp);
    b->grad = nb_tensor_from_host(ctx, NB_F32, 1, b->shape, gb);
}

static void check_optimizer(const char *name, nb_optim_config cfg) {
    nb_ctx *ctx = tu_ctx();
    nb_tensor *p = tu_load(ctx, fx, "p0"), *b = tu_load(ctx, fx, "b0");
    nb_set_name(p, "p");
    nb_set_name(b, "b");
    int nd;
    int64_t sh[8];
    float *target = tu_read_f32(fx, "target", &nd, sh);
    hid_t g = H5Gopen2(fx, name, H5P_DEFAULT);
    float *tp = tu_read_f32(g, "p", &nd, sh), *tb = tu_read_f32(g, "b", &nd, sh);
    nb_tensor *params[2] = {p, b};
    nb_optim *o = nb_optim_new(ctx, &cfg, params, 2);
    assert_non_null(o);
    for (int step = 0; step < 10; step++) {
        set_grads(ctx, p, b, target, step);
        assert_int_equal(nb_optim_step(o), 0);
        char what[96];
        snprintf(what, sizeof what, "%s step %d p", name, step);
        tu_assert_tensor_close(what, p, tp + step * 24, 24, 1e-5);
        snprintf(what, sizeof what, "%s step %d b", name, step);
        tu_assert_tensor_close(what, b, tb + step * 5, 5, 1e-5);
    }
    H5Gclose(g);
    free(target);
    free(tp);
    free(tb);
    nb_optim_free(o);
    nb_release(p);
    nb_release(b);
    nb_ctx_free(ctx);
}

static void test_sgd_momentum_wd(void **st) {
    (void)st;
    check_optimizer("sgd_momentum_wd",
                    (nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f, .weight_decay = 1e-2f});
}

static void test_sgd_nesterov(void **st) {
    (void)st;
    check_optimizer("sgd_nesterov", (nb_optim_config){.kind = NB_OPTIM_SGD,
                                                      .lr = 0.05f,
                                                      .momentum = 0.9f,
                                                      .nesterov = 1,
                                                      .weight_decay = 5e-4f});
}

static void test_sgd_dampening(void **st) {
    (void)st;
    check_optimizer("sgd_dampening",
                    (nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 0.1f, .momentum = 0.5f, .dampening = 0.3f});
}

static void test_sgd_plain(void **st) {
    (void)st;
    check_optimizer("sgd_plain", (nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 0.05f});
}

static void test_adam(void **st) {
    (void)st;
    nb_optim_config c = nb_optim_defaults(NB_OPTIM_ADAM);
    c.lr = 0.01f;
    c.beta2 = 0.99f;
    c.weight_decay = 1e-2f;
    check_optimizer("adam_wd", c);
}

static void test_adamw(void **st) {
    (void)st;
    nb_optim_config c = nb_optim_defaults(NB_OPTIM_ADAMW);
    c.lr = 0.01f;
    c.weight_decay = 0.05f;
    check_optimizer("adamw", c);
}

static void check_schedule(const char *name, nb_schedule s) {
    hid_t g = H5Gopen2(fx, "schedules", H5P_DEFAULT);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    double want[30];
    H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, want);
    H5Dclose(d);
    H5Gclose(g);
    for (int e = 0; e < 30; e++) {
        double got = nb_schedule_lr(&s, e);
        if (fabs(got - want[e]) > 1e-9 * fmax(1.0, fabs(want[e])))
            fail_msg("%s schedule at epoch %d: got %.12g, torch %.12g", name, e, got, want[e]);
    }
}

static void test_schedules(void **st) {
    (void)st;
    check_schedule("step", (nb_schedule){.kind = NB_SCHED_STEP, .base_lr = 0.1, .step_size = 7, .gamma = 0.5});
    check_schedule("multistep", (nb_schedule){.kind = NB_SCHED_MULTISTEP,
                                              .base_lr = 0.1,
                                              .gamma = 0.1,
                                              .milestones = {5, 12, 20},
                                              .n_milestones = 3});
    check_schedule("cosine", (nb_schedule){.kind = NB_SCHED_COSINE, .base_lr = 0.1, .total = 30, .min_lr = 0.001});
    check_schedule("poly", (nb_schedule){.kind = NB_SCHED_POLY, .base_lr = 0.1, .total = 25, .power = 2.0});
    check_schedule("warmup_cosine", (nb_schedule){.kind = NB_SCHED_COSINE,
                                                  .base_lr = 0.1,
                                                  .total = 30,
                                                  .warmup = 5,
                                                  .warmup_start_factor = 0.1});
}

static void test_clip(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    hid_t g = H5Gopen2(fx, "clip", H5P_DEFAULT);
    nb_tensor *a = nb_tensor_new(ctx, NB_F32, 2, (int64_t[]){3, 4}), *b = nb_tensor_new(ctx, NB_F32, 1, (int64_t[]){7});
    a->grad = tu_load(ctx, g, "g1");
    b->grad = tu_load(ctx, g, "g2");
    nb_tensor *ps[2] = {a, b};
    double norm = nb_clip_grad_norm(ps, 2, 2.0);
    int nd;
    int64_t sh[4];
    float *want_norm = tu_read_f32(g, "norm", &nd, sh), *o1 = tu_read_f32(g, "g1_out", &nd, sh),
          *o2 = tu_read_f32(g, "g2_out", &nd, sh);
    assert_true(fabs(norm - want_norm[0]) < 1e-5 * want_norm[0]);
    tu_assert_tensor_close("clipped g1", a->grad, o1, 12, 1e-6);
    tu_assert_tensor_close("clipped g2", b->grad, o2, 7, 1e-6);
    free(want_norm);
    free(o1);
    free(o2);
    H5Gclose(g);
    nb_release(a);
    nb_release(b);
    nb_ctx_free(ctx);
}

/* Save the state after 4 steps, restore it into a fresh optimizer, and both continue identically. */
static void test_state_roundtrip(void **st) {
    (void)st;
    nb_optim_kind kinds[2] = {NB_OPTIM_SGD, NB_OPTIM_ADAMW};
    for (int kk = 0; kk < 2; kk++) {
        nb_ctx *ctx = tu_ctx();
        int nd;
        int64_t sh[8];
        float *target = tu_read_f32(fx, "target", &nd, sh);
        nb_tensor *p = tu_load(ctx, fx, "p0"), *b = tu_load(ctx, fx, "b0");
        nb_set_name(p, "p");
        nb_set_name(b, "b");
        nb_optim_config cfg = nb_optim_defaults(kinds[kk]);
        cfg.momentum = 0.9f;
        cfg.lr = 0.01f;
        nb_tensor *ps[2] = {p, b};
        nb_optim *o = nb_optim_new(ctx, &cfg, ps, 2);
        for (int s = 0; s < 4; s++) {
            set_grads(ctx, p, b, target, s);
            nb_optim_step(o);
        }
        /* snapshot: parameters and named state through host memory, as a checkpoint would */
        float p_saved[24], b_saved[5];
        nb_tensor_to_host(p, p_saved, sizeof p_saved);
        nb_tensor_to_host(b, b_saved, sizeof b_saved);
        int n_state = nb_optim_state_count(o);
        assert_true(n_state > 0);
        nb_optim_entry entries[16];
        float *blobs[16];
        for (int i = 0; i < n_state; i++) {
            assert_int_equal(nb_optim_state_at(o, i, &entries[i]), 0);
            blobs[i] = entries[i].tensor ? tu_host(entries[i].tensor) : NULL;
        }
        nb_tensor *p2 = nb_tensor_from_host(ctx, NB_F32, p->ndim, p->shape, p_saved);
        nb_tensor *b2 = nb_tensor_from_host(ctx, NB_F32, 1, b->shape, b_saved);
        nb_set_name(p2, "p");
        nb_set_name(b2, "b");
        nb_tensor *ps2[2] = {p2, b2};
        nb_optim *o2 = nb_optim_new(ctx, &cfg, ps2, 2);
        for (int i = 0; i < n_state; i++) {
            int64_t numel = entries[i].tensor ? nb_numel(entries[i].tensor) : 0;
            assert_int_equal(nb_optim_state_load(o2, entries[i].name, blobs[i], numel, entries[i].step), 0);
            free(blobs[i]);
        }
        for (int s = 4; s < 8; s++) {
            set_grads(ctx, p, b, target, s);
            set_grads(ctx, p2, b2, target, s);
            nb_optim_step(o);
            nb_optim_step(o2);
        }
        float x1[24], x2[24];
        nb_tensor_to_host(p, x1, sizeof x1);
        nb_tensor_to_host(p2, x2, sizeof x2);
        assert_memory_equal(x1, x2, sizeof x1);
        /* a wrong entry is reported, not ignored */
        assert_int_not_equal(nb_optim_state_load(o2, "exp_avg/nonexistent", x1, 24, 0), 0);
        tu_expect_error(ctx, "names no parameter");
        nb_optim_free(o);
        nb_optim_free(o2);
        nb_release(p);
        nb_release(b);
        nb_release(p2);
        nb_release(b2);
        free(target);
        nb_ctx_free(ctx);
    }
}

/* Loss scaling's rule, GradScaler's: the backoff at an overflow, the growth after `interval` clean steps in a
 * row (the count restarting at each change), never past what f32 holds. */
static void test_loss_scale_rule(void **st) {
    (void)st;
    nb_loss_scaler ls = {.scale = 8, .growth = 2, .backoff = 0.5, .interval = 2};
    const bool over[] = {false, false, false, true, false, false, true, true, false};
    const double want[] = {8, 16, 16, 8, 8, 16, 8, 4, 4};
    for (int i = 0; i < 9; i++) {
        nb_loss_scale_update(&ls, over[i]);
        if (ls.scale != want[i]) fail_msg("after update %d: scale %g, expected %g", i, ls.scale, want[i]);
    }
    assert_int_equal(ls.skipped, 3);
    assert_int_equal(ls.good, 1);
    nb_loss_scaler top = {.scale = 0x1p127, .growth = 2, .backoff = 0.5, .interval = 1};
    nb_loss_scale_update(&top, false);
    assert_true(top.scale == 0x1p127); /* 2^128 is inf in f32 */
    nb_loss_scaler fixed = {.scale = 4, .growth = 2, .backoff = 0.5, .interval = 0};
    for (int i = 0; i < 5; i++) nb_loss_scale_update(&fixed, false);
    assert_true(fixed.scale == 4);
}

/* The unscale after backward: each gradient times 1/scale (exact for a power of two); an inf or a NaN in any
 * gradient drops them all and says so. */
static void test_loss_scale_unscale(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_tensor *p = nb_tensor_new(ctx, NB_F32, 1, (int64_t[]){3}), *b = nb_tensor_new(ctx, NB_F32, 1, (int64_t[]){1});
    nb_set_name(p, "p");
    nb_set_name(b, "b");
    nb_tensor *ps[2] = {p, b};
    nb_optim_config oc = nb_optim_defaults(NB_OPTIM_SGD);
    nb_optim *o = nb_optim_new(ctx, &oc, ps, 2);
    nb_loss_scaler ls = {.scale = 1024, .growth = 2, .backoff = 0.5, .interval = 10};
    const float bad[2] = {INFINITY, NAN};
    for (int k = 0; k < 3; k++) {
        float gp[3] = {3072.0f, -6.5f, 1e-30f}, gb[1] = {0.75f};
        if (k > 0) gp[1] = bad[k - 1];
        p->grad = nb_tensor_from_host(ctx, NB_F32, 1, p->shape, gp);
        b->grad = nb_tensor_from_host(ctx, NB_F32, 1, b->shape, gb);
        bool overflow = true;
        assert_int_equal(nb_loss_scale_unscale(&ls, o, &overflow), 0);
        assert_int_equal(overflow, k > 0);
        if (k > 0) {
            assert_null(p->grad);
            assert_null(b->grad);
            continue;
        }
        float hp[3], hb[1];
        assert_int_equal(nb_tensor_to_host(p->grad, hp, sizeof hp), 0);
        assert_int_equal(nb_tensor_to_host(b->grad, hb, sizeof hb), 0);
        for (int i = 0; i < 3; i++)
            if (hp[i] != gp[i] / 1024.0f) fail_msg("gradient %d: %g, expected %g", i, hp[i], gp[i] / 1024.0f);
        assert_true(hb[0] == gb[0] / 1024.0f);
        nb_zero_grad(p);
        nb_zero_grad(b);
    }
    nb_optim_free(o);
    nb_release(p);
    nb_release(b);
    assert_int_equal(ctx->n_errors, 0);
    nb_ctx_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_momentum_wd), cmocka_unit_test(test_sgd_nesterov), cmocka_unit_test(test_sgd_dampening),
        cmocka_unit_test(test_sgd_plain),       cmocka_unit_test(test_adam),         cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_schedules),       cmocka_unit_test(test_clip),         cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_loss_scale_rule),  cmocka_unit_test(test_loss_scale_unscale),
    };
    return cmocka_run_group_tests_name("optimizers vs torch.optim", tests, setup, teardown);
}
