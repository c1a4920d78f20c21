/* The CUDA backend against the CPU backend on whole networks: from the same initial weights (both draw them
 * on the host) and the same batch, a few SGD steps give the same losses, parameters and BN running
 * statistics, and a checkpoint written from one backend loads on the other with the same evaluation logits.
 * (Several steps are not compared: on small batches training is chaotic at FP32 resolution, and two correct
 * CPU implementations drift apart by percents within three steps.)
 * Without a GPU (or in a build without CUDA) every test is reported as skipped, with the reason. The CUDA
 * pass of the suite runs with NB_TF32=0, so both sides compute in FP32. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/select.h"
#include "core/rng.h"
#include "models/model.h"
#include "optim/optim.h"
#include "tests/support/testutil.h"
#include "setup/checkpoint.h"
#include "task/task.h"
#include "train/step.h"

static char skip_reason[512];

static int setup(void **st) {
    (void)st;
    if (!nb_cuda_available(skip_reason, sizeof skip_reason)) fprintf(stderr, "skipping: %s\n", skip_reason);
    else skip_reason[0] = 0;
    return 0;
}

typedef struct {
    nb_ctx *ctx;
    nb_model *m;
    nb_optim *o;
    nb_tensor *x, *y;
} side;

static void side_init(side *s, nb_device dev, const nb_model_spec *spec, const float *x, const int64_t *y, int B) {
    s->ctx = nb_ctx_new(dev);
    assert_non_null(s->ctx);
    s->m = nb_model_create(s->ctx, spec);
    assert_non_null(s->m);
    nb_tensor *params[512];
    int np = 0;
    for (int i = 0; i < s->m->params.n; i++)
        if (s->m->params.items[i].kind == NB_PARAM) params[np++] = s->m->params.items[i].t;
    nb_optim_config oc = {.kind = NB_OPTIM_SGD, .lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = true};
    s->o = nb_optim_new(s->ctx, &oc, params, np);
    assert_non_null(s->o);
    int64_t xs[4] = {B, spec->in_channels, spec->input_size, spec->input_size};
    s->x = nb_tensor_from_host(s->ctx, NB_F32, 4, xs, x);
    s->y = nb_tensor_from_host(s->ctx, NB_I64, 1, (int64_t[]){B}, y);
}

static void side_free(side *s) {
    nb_release(s->x);
    nb_release(s->y);
    nb_optim_free(s->o);
    nb_model_free(s->m);
    nb_ctx_free(s->ctx);
}

/* one SGD step of bin/train's code path on the side's batch, classification with label smoothing ls */
static int train_step(side *s, float ls, float *loss) {
    nb_task *task = nb_task_classify(s->m, ls);
    nb_step_parts parts = {.model = s->m, .optim = s->o, .task = task};
    int rc = nb_train_step(s->ctx, &parts, s->x, s->y, 0, 0, loss);
    nb_task_free(task);
    return rc;
}

static float *eval_logits(side *s) {
    bool prev = nb_set_grad_enabled(s->ctx, false);
    size_t mark = nb_scope_begin(s->ctx);
    nb_tensor *z = s->m->forward(s->m, s->x, false);
    assert_non_null(z);
    float *h = tu_host(z);
    nb_scope_end(s->ctx, mark);
    nb_set_grad_enabled(s->ctx, prev);
    return h;
}

/* Compare every parameter and buffer of two models by name. */
static void compare_params(const char *arch, const nb_model *a, const nb_model *b, double tol, const char *when) {
    assert_int_equal(a->params.n, b->params.n);
    for (int i = 0; i < a->params.n; i++) {
        nb_tensor *ta = a->params.items[i].t, *tb = nb_params_find(&b->params, ta->name);
        assert_non_null(tb);
        char what[200];
        snprintf(what, sizeof what, "%s %s %s (cuda vs cpu)", arch, ta->name, when);
        if (ta->dtype == NB_I64) {
            int64_t va, vb;
            nb_tensor_to_host(ta, &va, sizeof va);
            nb_tensor_to_host(tb, &vb, sizeof vb);
            assert_int_equal(va, vb);
            continue;
        }
        float *ref = tu_host(ta);
        tu_assert_tensor_close(what, tb, ref, nb_numel(ta), tol);
        free(ref);
    }
}

/* Whole-network gradients differ between two correct FP32 implementations: other summation orders flip
 * ReLUs whose inputs sit at rounding distance from zero, and batch norm's backward amplifies small
 * differences where a channel varies little over the batch. Measured between nibble's two CPU convolutions
 * (oneDNN and the im2col reference, both matching PyTorch op by op) on these networks: up to 4.6e-3 in
 * ||g1 - g2|| / ||g2|| per tensor, and single elements off by 10%. So gradients are compared as whole
 * tensors, in L2, with 4x that spread; gradients that are zero in exact arithmetic (the bias of a batch norm
 * followed by convolution and batch norm) hold rounding noise only, and are compared against the network's
 * gradient scale instead of their own. A wrong kernel is off by far more. */
#define GRAD_TOL 2e-2

static double l2_rel(const float *got, const float *ref, int64_t n, double floor_norm) {
    double dd = 0.0, rr = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i];
        dd += d * d;
        rr += (double)ref[i] * ref[i];
    }
    return sqrt(dd) / fmax(sqrt(rr), floor_norm);
}

static double rms(const nb_tensor *t) {
    float *h = tu_host(t);
    double ss = 0.0;
    for (int64_t k = 0; k < nb_numel(t); k++) ss += (double)h[k] * h[k];
    free(h);
    return sqrt(ss / (double)nb_numel(t));
}

/* Every gradient, then every updated parameter (a linear function of it: the same tolerance), in L2 against
 * the CPU's. */
static void compare_grads(const char *arch, const nb_model *a, const nb_model *b) {
    double gscale = 0.0, pscale = 0.0; /* the largest per-element RMS of any gradient, of any parameter */
    for (int i = 0; i < a->params.n; i++) {
        nb_tensor *t = a->params.items[i].t;
        if (a->params.items[i].kind != NB_PARAM) continue;
        assert_non_null(t->grad);
        gscale = fmax(gscale, rms(t->grad));
        pscale = fmax(pscale, rms(t));
    }
    int checked = 0;
    for (int i = 0; i < a->params.n; i++) {
        nb_tensor *ta = a->params.items[i].t, *tb = nb_params_find(&b->params, ta->name);
        if (a->params.items[i].kind != NB_PARAM) continue;
        assert_non_null(tb->grad);
        int64_t n = nb_numel(ta);
        float *ref = tu_host(ta->grad), *got = tu_host(tb->grad);
        double e = l2_rel(got, ref, n, 1e-3 * gscale * sqrt((double)n));
        if (!(e <= GRAD_TOL)) fail_msg("%s gradient of %s: L2 relative error %.3g (cuda vs cpu) > %.3g", arch, ta->name, e, GRAD_TOL);
        free(ref);
        free(got);
        ref = tu_host(ta);
        got = tu_host(tb);
        e = l2_rel(got, ref, n, 1e-3 * pscale * sqrt((double)n));
        if (!(e <= GRAD_TOL)) fail_msg("%s %s after one step: L2 relative error %.3g (cuda vs cpu) > %.3g", arch, ta->name, e, GRAD_TOL);
        free(ref);
        free(got);
        checked++;
    }
    assert_true(checked > 3);
}

static void compare_model(const char *arch, int size, int in_ch, float width) {
    if (skip_reason[0]) skip();
    enum { B = 16 };
    nb_model_spec spec = {.arch = arch, .num_classes = 10, .in_channels = in_ch, .input_size = size, .width = width, .seed = 3};
    int64_t n = (int64_t)B * in_ch * size * size;
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = nb_philox_normal(11, 1, (uint64_t)i);
    int64_t y[B];
    for (int i = 0; i < B; i++) y[i] = (i * 7) % 10;
    side cpu, gpu;
    side_init(&cpu, NB_DEVICE_CPU, &spec, x, y, B);
    side_init(&gpu, NB_DEVICE_CUDA, &spec, x, y, B);
    compare_params(arch, cpu.m, gpu.m, 0.0, "at initialisation");

    float *zc = eval_logits(&cpu), *zg = eval_logits(&gpu);
    char what[128];
    snprintf(what, sizeof what, "%s evaluation logits", arch);
    tu_assert_close(what, zg, zc, B * 10, 1e-4);
    free(zc);
    free(zg);

    /* one training step: the loss, every gradient, then the updated parameters and running statistics */
    float lc, lg;
    assert_int_equal(train_step(&cpu, 0.1f, &lc), 0);
    assert_int_equal(train_step(&gpu, 0.1f, &lg), 0);
    if (!(fabs(lc - lg) <= 1e-5 * fabs(lc))) fail_msg("%s: training loss %.8g on cuda, %.8g on cpu", arch, lg, lc);
    compare_grads(arch, cpu.m, gpu.m);
    /* the buffers (BN running statistics, batch counts) come from the forward pass alone */
    for (int i = 0; i < cpu.m->params.n; i++) {
        nb_tensor *ta = cpu.m->params.items[i].t, *tb = nb_params_find(&gpu.m->params, ta->name);
        if (cpu.m->params.items[i].kind != NB_BUFFER) continue;
        if (ta->dtype == NB_I64) {
            int64_t va, vb;
            nb_tensor_to_host(ta, &va, sizeof va);
            nb_tensor_to_host(tb, &vb, sizeof vb);
            assert_int_equal(va, vb);
            continue;
        }
        /* running statistics are O(0.1) or more after a step, except means that are zero in exact arithmetic
         * (a batch norm fed by a bias-free convolution of normalised values): those are compared absolutely */
        int64_t n = nb_numel(ta);
        float *ref = tu_host(ta), *got = tu_host(tb);
        double e = l2_rel(got, ref, n, 1e-2 * sqrt((double)n));
        if (!(e <= 1e-4)) fail_msg("%s %s after one step: L2 relative error %.3g (cuda vs cpu) > 1e-4", arch, ta->name, e);
        free(ref);
        free(got);
    }

    /* checkpoints move both ways: GPU weights evaluated on the CPU and the reverse give the same logits */
    char path[64];
    snprintf(path, sizeof path, "/tmp/nibble-backends-%d.h5", (int)getpid());
    assert_int_equal(nb_ckpt_save(gpu.ctx, path, &gpu.m->params, gpu.o, NULL, NULL, NULL), 0);
    assert_int_equal(nb_ckpt_load_model(cpu.ctx, path, &cpu.m->params, NB_NAMES_ALL), 0);
    compare_params(arch, gpu.m, cpu.m, 0.0, "after a GPU checkpoint loaded on the CPU");
    zc = eval_logits(&cpu);
    zg = eval_logits(&gpu);
    snprintf(what, sizeof what, "%s logits of the GPU checkpoint on the CPU", arch);
    tu_assert_close(what, zc, zg, B * 10, 1e-4);
    free(zc);
    free(zg);
    assert_int_equal(nb_ckpt_save(cpu.ctx, path, &cpu.m->params, cpu.o, NULL, NULL, NULL), 0);
    assert_int_equal(nb_ckpt_load_model(gpu.ctx, path, &gpu.m->params, NB_NAMES_ALL), 0);
    compare_params(arch, cpu.m, gpu.m, 0.0, "after a CPU checkpoint loaded on the GPU");
    unlink(path);
    side_free(&cpu);
    side_free(&gpu);
    free(x);
}

static void test_smallcnn(void **st) {
    (void)st;
    compare_model("smallcnn", 28, 1, 1.0f);
}

static void test_resnet20(void **st) {
    (void)st;
    compare_model("resnet20", 28, 1, 1.0f);
}

static void test_resnet18(void **st) {
    (void)st;
    compare_model("resnet18", 64, 3, 0.5f);
}

static void test_shufflenetv2(void **st) {
    (void)st;
    compare_model("shufflenet_v2_x0_5", 64, 3, 1.0f);
}

/* Repeated runs on the GPU give the same bits: deterministic cuDNN algorithms, fixed-order reductions. */
static void test_cuda_determinism(void **st) {
    (void)st;
    if (skip_reason[0]) skip();
    enum { B = 8 };
    nb_model_spec spec = {.arch = "resnet20", .num_classes = 10, .in_channels = 1, .input_size = 28, .width = 1.0f, .seed = 5};
    float *x = malloc(sizeof(float) * B * 28 * 28);
    for (int i = 0; i < B * 28 * 28; i++) x[i] = nb_philox_normal(2, 1, (uint64_t)i);
    int64_t y[B] = {0, 1, 2, 3, 4, 5, 6, 7};
    float *w[2];
    for (int r = 0; r < 2; r++) {
        side g;
        side_init(&g, NB_DEVICE_CUDA, &spec, x, y, B);
        for (int s = 0; s < 3; s++) {
            float l;
            assert_int_equal(train_step(&g, 0.0f, &l), 0);
        }
        w[r] = tu_host(nb_params_find(&g.m->params, "layer3.2.conv2.weight"));
        side_free(&g);
    }
    assert_memory_equal(w[0], w[1], sizeof(float) * 64 * 64 * 9);
    free(w[0]);
    free(w[1]);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smallcnn),
        cmocka_unit_test(test_resnet20),
        cmocka_unit_test(test_resnet18),
        cmocka_unit_test(test_shufflenetv2),
        cmocka_unit_test(test_cuda_determinism),
    };
    return cmocka_run_group_tests_name("CUDA backend vs CPU backend", tests, setup, NULL);
}
