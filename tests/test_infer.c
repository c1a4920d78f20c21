/* nibble's inference path in float (infer/net.h, nb_infer_net_new_float): the zoo's networks, their weights set
 * by the rule of tests/support/det_weights.c, compiled to oneDNN float steps on NHWC values (batch norms
 * folded, ReLU and ReLU6 fused, ShuffleNet's slices and interleaving concatenations, nearest upsampling as a
 * gather of pixels, the detectors' outputs), compute what the
 * training forward pass computes in evaluation mode; a network whose channels were pruned (batch-norm scale
 * and shift zero) runs with those channels gone and still computes the same; any batch size; a graph with no
 * step for it is an error naming the layer. The integer path is held to ONNX Runtime in test_quant. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ops.h"
#include "infer/net.h"
#include "models/model.h"
#include "tests/support/det_weights.h"
#include "tests/support/testutil.h"

static nb_model *make_spec(nb_ctx *ctx, nb_model_spec spec) {
    nb_model *m = nb_model_create(ctx, &spec);
    assert_non_null(m);
    assert_int_equal(dw_fill_params(&m->params), 0);
    return m;
}

static nb_model *make(nb_ctx *ctx, const char *arch, int in_channels, int size) {
    return make_spec(ctx, (nb_model_spec){.arch = arch, .num_classes = 10, .in_channels = in_channels,
                                          .input_size = size, .width = 1.0f, .seed = 1});
}

/* a detector as configs/synth_detect.cfg sets them up: SSD's scales, ratios 2 and 3 */
static nb_model *make_detector(nb_ctx *ctx, const char *arch, bool dense) {
    nb_model_spec spec = {.arch = arch, .num_classes = 7, .in_channels = 3, .input_size = 160, .width = 0.5f, .seed = 1};
    spec.det.first_scale = 0.1f;
    spec.det.min_scale = 0.2f;
    spec.det.max_scale = 0.88f;
    spec.det.n_ratios = 2;
    spec.det.ratios[0] = 2.0f;
    spec.det.ratios[1] = 3.0f;
    spec.det.dense_predictor = dense;
    spec.det.head_channels = dense ? 128 : 0;
    return make_spec(ctx, spec);
}

/* m's evaluation-mode forward pass of n images from the shared rule's "input"; *per: its values per image */
static float *forward(nb_model *m, int64_t n, const float *xh, int64_t *per) {
    nb_ctx *ctx = m->ctx;
    int64_t c = m->spec.in_channels, s = m->spec.input_size;
    bool prev = nb_set_grad_enabled(ctx, false);
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, (int64_t[]){n, c, s, s}, xh);
    nb_tensor *y = m->forward(m, x, false);
    assert_non_null(y);
    float *out = malloc(sizeof(float) * (size_t)nb_numel(y));
    *per = nb_numel(y) / n;
    assert_int_equal(nb_tensor_to_host(y, out, sizeof(float) * (size_t)nb_numel(y)), 0);
    nb_release(x);
    nb_scope_end(ctx, mark);
    nb_set_grad_enabled(ctx, prev);
    return out;
}

/* The float inference path against the forward pass, batch n, within tol of the outputs' largest magnitude */
static void assert_same(const char *what, nb_model *m, int64_t n, double tol) {
    int64_t c = m->spec.in_channels, s = m->spec.input_size;
    int64_t xs[4] = {n, c, s, s};
    float *xh = malloc(sizeof(float) * (size_t)(n * c * s * s));
    dw_values("input", 4, xs, xh);
    int64_t per;
    float *ref = forward(m, n, xh, &per);
    nb_infer_net *net = nb_infer_net_new_float(m, NULL);
    if (!net) fail_msg("%s: %s", what, nb_ctx_last_error(m->ctx));
    assert_int_equal(nb_infer_net_outputs(net), per);
    float *y = malloc(sizeof(float) * (size_t)(n * per));
    assert_int_equal(nb_infer_net_run(net, xh, n, y), 0);
    double big = 1e-6, worst = 0;
    for (int64_t i = 0; i < n * per; i++) big = fmax(big, fabs(ref[i]));
    for (int64_t i = 0; i < n * per; i++) worst = fmax(worst, fabs(ref[i] - y[i]));
    fprintf(stderr, "%s: batch %lld, largest output %.4g, largest difference %.3g\n", what, (long long)n, big, worst);
    if (worst > tol * big) fail_msg("%s: the float inference path differs from the forward pass by %g (outputs up to %g)",
                                    what, worst, big);
    /* one image at a time: the same values (another batch size re-instantiates the steps) */
    float *y1 = malloc(sizeof(float) * (size_t)per);
    assert_int_equal(nb_infer_net_run(net, xh + (n - 1) * c * s * s, 1, y1), 0);
    for (int64_t k = 0; k < per; k++)
        if (fabs(y1[k] - y[(n - 1) * per + k]) > tol * big)
            fail_msg("%s: image %lld alone gives %g, in the batch %g", what, (long long)(n - 1), y1[k], y[(n - 1) * per + k]);
    free(y1);
    free(y);
    free(ref);
    free(xh);
    nb_infer_net_free(net);
}

static void test_zoo_float(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    const struct {
        const char *arch;
        int in_channels, size;
    } zoo[] = {{"resnet20", 1, 16}, {"resnet18", 3, 32}, {"mobilenet_v2", 3, 32}, {"shufflenet_v2_x1_0", 3, 32},
               {"muffnet_x1_0", 3, 32}, {"alexnet", 3, 224},
               {"alexnet", 3, 64}};
    for (size_t i = 0; i < sizeof zoo / sizeof zoo[0]; i++) {
        nb_model *m = make(ctx, zoo[i].arch, zoo[i].in_channels, zoo[i].size);
        assert_same(zoo[i].arch, m, 3, 1e-4);
        nb_model_free(m);
    }
    /* the detectors: LRSSD's cascade upsamples coarser boxes (nearest), every head's [N, 4 + C, A H W] maps
     * are concatenated along their last axis */
    const struct {
        const char *arch;
        bool dense;
    } det[] = {{"lrssd_mobilenet_v2", false}, {"lrssd_mobilenet_v2", true}, {"ssd_mobilenet_v2", false},
               {"ssdlite_mobilenet_v2", false}};
    for (size_t i = 0; i < sizeof det / sizeof det[0]; i++) {
        nb_model *d = make_detector(ctx, det[i].arch, det[i].dense);
        char what[96];
        snprintf(what, sizeof what, "%s%s", det[i].arch, det[i].dense ? " (dense predictor)" : "");
        assert_same(what, d, 2, 1e-4);
        nb_model_free(d);
    }
    /* AlexNet at 64x64 above: its adaptive pooling of a 1x1 map to 6x6 copies pixels, recorded as a matrix
     * product with one-hot rows (the detectors' nearest upsampling is the same): one gather of pixels. At 300x300
     * it averages 8x8 into 6x6, recorded through a reshape that moves values across images: no step for that,
     * and the error names the layer */
    nb_model *m = make(ctx, "alexnet", 3, 300);
    assert_null(nb_infer_net_new_float(m, NULL));
    if (!strstr(nb_ctx_last_error(ctx), "avgpool")) fail_msg("the error does not name the layer: %s", nb_ctx_last_error(ctx));
    tu_expect_error(ctx, "across images");
    nb_model_free(m);
    nb_ctx_free(ctx);
}

/* Half the channels of every block's first batch norm with zero scale and shift (what channel pruning
 * leaves): the channels are gone from the compiled network (its convolutions are narrower) and the outputs
 * are the forward pass's */
static void test_pruned_channels(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_model *m = make(ctx, "resnet18", 3, 32);
    int pruned = 0;
    for (int l = 1; l <= 4; l++)
        for (int b = 0; b < 2; b++) {
            char gname[64], bname[64];
            snprintf(gname, sizeof gname, "layer%d.%d.bn1.weight", l, b);
            snprintf(bname, sizeof bname, "layer%d.%d.bn1.bias", l, b);
            nb_tensor *g = nb_params_find(&m->params, gname), *be = nb_params_find(&m->params, bname);
            assert_non_null(g);
            assert_non_null(be);
            int64_t C = nb_numel(g);
            float *v = malloc(sizeof(float) * (size_t)C);
            for (int k = 0; k < 2; k++) {
                nb_tensor *t = k ? be : g;
                assert_int_equal(nb_tensor_to_host(t, v, sizeof(float) * (size_t)C), 0);
                for (int64_t c = 0; c < C; c += 2) v[c] = 0.0f;
                assert_int_equal(nb_tensor_copy_from_host(t, v, sizeof(float) * (size_t)C), 0);
            }
            pruned += (int)(C / 2);
            free(v);
        }
    assert_same("resnet18, half of every block's inner channels pruned", m, 2, 1e-4);
    /* the compiled network is smaller: its description lists layer1.0.conv2 reading 32 of 64 channels */
    nb_infer_net *net = nb_infer_net_new_float(m, NULL);
    assert_non_null(net);
    char desc[16384];
    nb_infer_net_describe(net, desc, sizeof desc);
    const char *c2 = strstr(desc, "layer1.0.conv2");
    if (!c2 || !strstr(c2, "in 32")) fail_msg("the pruned channels are still in the compiled network:\n%s", desc);
    assert_true(pruned > 0);
    nb_infer_net_free(net);
    nb_model_free(m);
    nb_ctx_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zoo_float),
        cmocka_unit_test(test_pruned_channels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
