/* ONNX import (model.arch = onnx) against PyTorch and against nibble's own export:
 *   - torchvision models nibble's zoo does not have (scripts/gen_import_fixtures.py exported them with PyTorch
 *     1.13 and stripped their weights; the test fills them by tests/support/det_weights.c's rule): evaluation
 *     logits within 1e-4 of PyTorch's float64 answer, and one SGD step (momentum, weight decay, training-mode
 *     batch norms) changing every sampled parameter and batch-norm statistic as PyTorch's float64 step does,
 *     as closely as PyTorch's own float32 step comes to it;
 *   - every zoo model exported by bin/export's code and imported again: the same parameter names and the same
 *     outputs;
 *   - bad files: an op nibble lacks, bytes that are not ONNX, a truncated file, a shape computed from the batch
 *     size, an initializer whose shape disagrees with its use, a name defined twice: each an error naming what
 *     is wrong, and no model;
 *   - a network of one's own (experiments/secnn.onnx) through bin/train with its classifier made anew, --resume
 *     bit for bit, bin/export and ONNX Runtime, then ADMM, distillation from the trained import, and channel
 *     pruning, each exported and run in ONNX Runtime; bin/import's listing and its exit status on a bad file. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/check.h"
#include "deploy/export.h"
#include "deploy/onnx_builder.h"
#include "import/onnx_import.h"
#include "setup/assemble.h"
#include "task/task.h"
#include "tests/support/ckpt_bytes.h"
#include "tests/support/det_weights.h"
#include "tests/support/run.h"
#include "tests/support/synth.h"
#include "tests/support/testutil.h"
#include "train/step.h"

/* ---- the stripped torchvision exports ---- */

/* The file's bytes with every float initializer that has no values filled by the deterministic rule */
static uint8_t *filled_onnx(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    Onnx__ModelProto *p = onnx__model_proto__unpack(NULL, (size_t)n, buf);
    assert_non_null(p);
    free(buf);
    for (size_t i = 0; i < p->graph->n_initializer; i++) {
        Onnx__TensorProto *t = p->graph->initializer[i];
        if (t->data_type != OX_FLOAT || t->raw_data.len || t->n_float_data) continue;
        int64_t cnt = 1;
        for (size_t k = 0; k < t->n_dims; k++) cnt *= t->dims[k];
        float *v = malloc(sizeof(float) * (size_t)(cnt ? cnt : 1));
        dw_values(t->name, (int)t->n_dims, t->dims, v);
        /* the unpacked model's buffers belong to protobuf-c's allocator (malloc): swap in ours */
        free(t->raw_data.data);
        t->raw_data.data = (uint8_t *)v;
        t->raw_data.len = sizeof(float) * (size_t)cnt;
        t->has_raw_data = 1;
    }
    uint8_t *out = ox_pack(p, len);
    onnx__model_proto__free_unpacked(p, NULL);
    return out;
}

/* state_dict names, one per line, in the fixture's order */
static char *read_names(hid_t g) {
    hid_t d = H5Dopen2(g, "names", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    char *s = calloc((size_t)n + 1, 1);
    assert_true(H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    return s;
}

static nb_settings *sgd_settings(void) {
    nb_cfg cfg;
    nb_cfg_init(&cfg);
    const char *o[] = {"optim.type=sgd", "optim.lr=0.05", "optim.momentum=0.9", "optim.wd=5e-4"};
    for (int i = 0; i < 4; i++) assert_int_equal(nb_cfg_override(&cfg, o[i]), 0);
    nb_settings *s = malloc(sizeof *s);
    nb_settings_read(&cfg, s);
    nb_cfg_free(&cfg);
    return s;
}

static void torchvision_case(nb_ctx *ctx, hid_t f, const char *arch) {
    hid_t g = H5Gopen2(f, arch, H5P_DEFAULT);
    int size = 0, batch = 0;
    tu_attr_ints(g, "input_size", &size, 1);
    tu_attr_ints(g, "batch", &batch, 1);
    char path[1200];
    snprintf(path, sizeof path, "tests/fixtures/import/%s.onnx", arch);
    size_t len;
    uint8_t *bytes = filled_onnx(path, &len);
    nb_model_spec spec = {.arch = "onnx", .num_classes = 10, .in_channels = 3, .input_size = size, .width = 1.0f};
    nb_model *m = nb_onnx_import_bytes(ctx, &spec, bytes, len, path);
    free(bytes);
    if (!m) fail_msg("%s", nb_ctx_last_error(ctx));

    /* evaluation */
    int64_t xs[4] = {batch, 3, size, size};
    float *xh = malloc(sizeof(float) * (size_t)(batch * 3 * size * size));
    dw_values("input", 4, xs, xh);
    nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, xs, xh);
    int nd;
    int64_t sh[8];
    float *ref = tu_read_f32(g, "logits", &nd, sh);
    bool prev = nb_set_grad_enabled(ctx, false);
    size_t mark = nb_scope_begin(ctx);
    char what[1200];
    snprintf(what, sizeof what, "imported %s logits (eval, %dx3x%dx%d) vs PyTorch float64", arch, batch, size, size);
    tu_assert_tensor_close(what, m->forward(m, x, false), ref, sh[0] * sh[1], 1e-4);
    nb_scope_end(ctx, mark);
    nb_set_grad_enabled(ctx, prev);
    free(ref);

    /* one SGD step in training mode */
    float **before = calloc((size_t)m->params.n, sizeof *before);
    /* in the file's layout (an import holds a ConvTranspose or [in, out] weight as its own op reads it) */
    for (int i = 0; i < m->params.n; i++)
        if (m->params.items[i].t->dtype == NB_F32) {
            before[i] = malloc(sizeof(float) * (size_t)nb_numel(m->params.items[i].t));
            assert_int_equal(nb_onnx_file_layout(m, m->params.items[i].t, before[i]), 0);
        }
    nb_settings *s = sgd_settings();
    nb_optim *o = nb_optim_for(ctx, s, m);
    free(s);
    int64_t labels_h[8];
    for (int i = 0; i < batch; i++) labels_h[i] = i % 10;
    nb_tensor *labels = nb_tensor_from_host(ctx, NB_I64, 1, (int64_t[]){batch}, labels_h);
    nb_task *task = nb_task_classify(m, 0.0f);
    nb_step_parts parts = {.model = m, .optim = o, .task = task};
    float loss;
    assert_int_equal(nb_train_step(ctx, &parts, x, labels, 0, 0, &loss), 0);
    nb_task_free(task);
    double want_loss = tu_attr_double(g, "loss", NAN), loss_err32 = tu_attr_double(g, "loss_err32", 0);
    printf("  %-20s loss %.7f (PyTorch float64 %.7f, float32 off by %.2g)\n", arch, (double)loss, want_loss, loss_err32);
    assert_true(fabs(loss - want_loss) <= 4 * loss_err32 + 2e-6 * fabs(want_loss));

    char *names = read_names(g);
    float *delta = tu_read_f32(g, "delta", &nd, sh);
    int64_t n_delta = sh[0];
    int64_t *counts = tu_read_i64(g, "counts", &nd, sh);
    double *err32 = NULL;
    {
        hid_t d = H5Dopen2(g, "err32", H5P_DEFAULT), sp = H5Dget_space(d);
        err32 = malloc(sizeof(double) * (size_t)H5Sget_simple_extent_npoints(sp));
        assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, err32) >= 0);
        H5Sclose(sp);
        H5Dclose(d);
    }
    int64_t at = 0;
    int checked = 0;
    double worst = 0; /* nibble's deviation over PyTorch float32's, the largest */
    char worst_name[NB_NAME_MAX] = "";
    for (char *name = strtok(names, "\n"); name; name = strtok(NULL, "\n"), checked++) {
        nb_tensor *t = nb_params_find(&m->params, name);
        if (!t) { /* a buffer the graph only reads (a constant operand of the import): the step left it alone */
            for (int64_t j = 0; j < counts[checked]; j++)
                if (delta[at + j] != 0.0f)
                    fail_msg("%s: state_dict tensor '%s' changed in the step but is no tensor of the import", arch, name);
            at += counts[checked];
            continue;
        }
        int k = 0;
        while (m->params.items[k].t != t) k++;
        int64_t n = nb_numel(t), cnt = n <= 64 ? n : 32;
        assert_int_equal(cnt, counts[checked]);
        float *now = malloc(sizeof(float) * (size_t)n);
        assert_int_equal(nb_onnx_file_layout(m, t, now), 0);
        double dev = 0;
        for (int64_t j = 0; j < cnt; j++) {
            int64_t idx = n <= 64 ? j : j * (n - 1) / 31;
            double got = (double)now[idx] - (double)before[k][idx];
            dev = fmax(dev, fabs(got - (double)delta[at + j]));
        }
        /* float32 rounding of the value itself sets the floor: a change is only seen to a value's last bit */
        double scale = 0;
        for (int64_t j = 0; j < cnt; j++) scale = fmax(scale, fabs((double)before[k][n <= 64 ? j : j * (n - 1) / 31]));
        double allowed = 4 * err32[checked] + 4e-7 * fmax(scale, 1e-3);
        if (dev / allowed > worst) {
            worst = dev / allowed;
            snprintf(worst_name, sizeof worst_name, "%s", name);
        }
        if (dev > allowed)
            fail_msg("%s: '%s' after one step is %.3g from PyTorch float64 (its float32 step: %.3g)", arch, name, dev,
                     err32[checked]);
        at += cnt;
        free(now);
    }
    assert_int_equal(at, n_delta);
    printf("  %-20s %d tensors after one step; the closest call: %s at %.2f of its allowance\n", arch, checked,
           worst_name, worst);
    free(names);
    free(delta);
    free(counts);
    free(err32);
    for (int i = 0; i < m->params.n; i++) free(before[i]);
    free(before);
    free(xh);
    nb_release(x);
    nb_release(labels);
    nb_optim_free(o);
    nb_model_free(m);
    H5Gclose(g);
}

static void test_torchvision(void **st) {
    (void)st;
    hid_t f = tu_open("tests/fixtures/import.h5");
    char names[16][64];
    int n = tu_list_groups(f, names, 16);
    assert_int_equal(n, 9);
    nb_ctx *ctx = tu_ctx();
    for (int k = 0; k < n; k++) torchvision_case(ctx, f, names[k]);
    nb_ctx_free(ctx);
    H5Fclose(f);
}

/* ---- zoo models, exported and imported again ---- */

static void round_trip(nb_ctx *ctx, const char *arch, int classes, int channels, int size) {
    nb_model_spec spec = {.arch = arch, .num_classes = classes, .in_channels = channels, .input_size = size,
                          .width = 1.0f, .seed = 1};
    if (!strncmp(arch, "ssd", 3) || !strncmp(arch, "lrssd", 5)) {
        spec.det.n_ratios = 1;
        spec.det.ratios[0] = 2.0f;
        spec.det.first_scale = 0.1f;
        spec.det.min_scale = 0.2f;
        spec.det.max_scale = 0.9f;
        spec.det.score_min = 0.01f;
        spec.det.nms_iou = 0.45f;
        spec.det.top_k = 200;
        spec.det.neg_pos = 3.0f;
    }
    nb_model *m = nb_model_create(ctx, &spec);
    assert_non_null(m);
    assert_int_equal(dw_fill_params(&m->params), 0);
    char path[128];
    snprintf(path, sizeof path, "/tmp/nb_import_rt_%d_%s.onnx", (int)getpid(), arch);
    nb_export_opts o = {.opset = 17};
    nb_export_report r;
    assert_int_equal(nb_export_onnx(m, NULL, &o, path, &r), 0);
    nb_model_spec is = {.arch = "onnx", .num_classes = classes, .in_channels = channels, .input_size = size,
                        .width = 1.0f};
    nb_model *im = nb_onnx_import(ctx, &is, path);
    unlink(path);
    if (!im) fail_msg("%s", nb_ctx_last_error(ctx));
    /* the same names, both ways */
    for (int i = 0; i < m->params.n; i++)
        if (!nb_params_find(&im->params, m->params.items[i].t->name))
            fail_msg("%s: '%s' is missing from the imported model", arch, m->params.items[i].t->name);
    for (int i = 0; i < im->params.n; i++)
        if (!nb_params_find(&m->params, im->params.items[i].t->name))
            fail_msg("%s: the imported model has '%s', which the zoo model has not", arch, im->params.items[i].t->name);
    assert_int_equal(im->params.n, m->params.n);
    int64_t xs[4] = {2, channels, size, size};
    float *xh = malloc(sizeof(float) * (size_t)(2 * channels * size * size));
    dw_values("input", 4, xs, xh);
    nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, xs, xh);
    bool prev = nb_set_grad_enabled(ctx, false);
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *y0 = m->forward(m, x, false), *y1 = im->forward(im, x, false);
    assert_non_null(y0);
    assert_non_null(y1);
    assert_int_equal(nb_numel(y0), nb_numel(y1));
    float *a = tu_host(y0), *b = tu_host(y1);
    double dmax = 0, amax = 0;
    for (int64_t i = 0; i < nb_numel(y0); i++) {
        dmax = fmax(dmax, fabs((double)a[i] - b[i]));
        amax = fmax(amax, fabs((double)a[i]));
    }
    printf("  %-22s %3d tensors, outputs %-14s largest difference %.3g (of %.3g)\n", arch, m->params.n, NB_SHAPE(y0),
           dmax, amax);
    /* the same ops on the same values; only ShuffleNet's export reorders channels (and so sums) */
    assert_true(dmax <= 1e-6 * fmax(amax, 1.0));
    nb_scope_end(ctx, mark);
    nb_set_grad_enabled(ctx, prev);
    free(a);
    free(b);
    free(xh);
    nb_release(x);
    nb_model_free(im);
    nb_model_free(m);
}

static void test_zoo_round_trip(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    round_trip(ctx, "smallcnn", 10, 1, 28);
    round_trip(ctx, "resnet20", 10, 3, 32);
    round_trip(ctx, "resnet18", 10, 3, 64);
    round_trip(ctx, "resnet50", 10, 3, 64);
    round_trip(ctx, "alexnet", 10, 3, 64);
    round_trip(ctx, "mobilenet_v2", 10, 3, 64);
    round_trip(ctx, "shufflenet_v2_x0_5", 10, 3, 64);
    round_trip(ctx, "muffnet_x0_5", 10, 3, 64);
    round_trip(ctx, "ssd_resnet18", 4, 3, 128);
    round_trip(ctx, "ssdlite_mobilenet_v2", 4, 3, 128);
    round_trip(ctx, "lrssd_mobilenet_v2", 4, 3, 128);
    nb_ctx_free(ctx);
}

/* ---- bad files ---- */

/* A small classifier, x [N,3,8,8] -> Conv 3x3 (conv.weight [4,3,3,3]) -> <act> -> GlobalAveragePool -> Flatten ->
 * Gemm (fc.weight [10,4]) -> y; `act` the op type of the node named "act" (Relu for a good graph) */
static Onnx__ModelProto *small_graph(const char *act, const int64_t *wdims) {
    Onnx__ModelProto *p = ox_model_new("bad", 8, 17);
    Onnx__GraphProto *g = p->graph;
    int64_t wd[4] = {4, 3, 3, 3};
    if (wdims) memcpy(wd, wdims, sizeof wd);
    float w[4 * 8 * 3 * 3] = {0}, fc[40] = {0};
    ox_init_f32(g, "conv.weight", 4, wd, w);
    ox_init_f32(g, "fc.weight", 2, (int64_t[]){10, 4}, fc);
    ox_graph_io(g, 0, "x", OX_FLOAT, 4, (int64_t[]){0, 3, 8, 8}, "N");
    Onnx__NodeProto *c = ox_node(g, "Conv", "conv", 2, (const char *[]){"x", "conv.weight"}, 1, (const char *[]){"c"});
    ox_attr_ints(c, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    ox_node(g, act, "act", 1, (const char *[]){"c"}, 1, (const char *[]){"a"});
    ox_node(g, "GlobalAveragePool", "pool", 1, (const char *[]){"a"}, 1, (const char *[]){"p"});
    ox_node(g, "Flatten", "flat", 1, (const char *[]){"p"}, 1, (const char *[]){"f"});
    ox_attr_int(ox_node(g, "Gemm", "fc", 2, (const char *[]){"f", "fc.weight"}, 1, (const char *[]){"y"}), "transB", 1);
    ox_graph_io(g, 1, "y", OX_FLOAT, 2, (int64_t[]){0, 10}, "N");
    return p;
}

/* importing p must fail with an error mentioning each of the substrings, and give no model */
static void refused(nb_ctx *ctx, Onnx__ModelProto *p, const char *const *want) {
    size_t len;
    uint8_t *bytes = ox_pack(p, &len);
    ox_model_free(p);
    nb_model_spec spec = {.arch = "onnx", .num_classes = 10, .in_channels = 3, .input_size = 8, .width = 1.0f};
    tu_clear_error(ctx);
    nb_model *m = nb_onnx_import_bytes(ctx, &spec, bytes, len, "bad.onnx");
    free(bytes);
    if (m) fail_msg("a bad graph was imported (expected an error mentioning \"%s\")", want[0]);
    printf("  refused: %s\n", nb_ctx_last_error(ctx));
    for (int k = 0; want[k]; k++)
        if (!strstr(nb_ctx_last_error(ctx), want[k]))
            fail_msg("expected an error mentioning \"%s\", got: %s", want[k], nb_ctx_last_error(ctx));
    tu_clear_error(ctx);
}

static void test_bad_files(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_model_spec spec = {.arch = "onnx", .num_classes = 10, .in_channels = 3, .input_size = 8, .width = 1.0f};
    /* the good graph imports, and the checks below fail for the reason they name */
    size_t len;
    Onnx__ModelProto *good = small_graph("Relu", NULL);
    uint8_t *bytes = ox_pack(good, &len);
    ox_model_free(good);
    nb_model *m = nb_onnx_import_bytes(ctx, &spec, bytes, len, "good.onnx");
    if (!m) fail_msg("%s", nb_ctx_last_error(ctx));
    nb_model_free(m);

    /* an op nibble does not have: the node, its op type and the opset */
    refused(ctx, small_graph("Erf", NULL), (const char *[]){"bad.onnx", "node 'act' (Erf, opset 17)", "no Erf op", NULL});
    /* bytes that are not ONNX, and a truncated file */
    tu_clear_error(ctx);
    const char junk[] = "this is not a protobuf at all \xff\xff\xff\xff";
    assert_null(nb_onnx_import_bytes(ctx, &spec, (const uint8_t *)junk, sizeof junk, "junk.onnx"));
    tu_expect_error(ctx, "junk.onnx: not an ONNX model");
    for (size_t cut = len / 3; cut < len; cut += len / 3) {
        assert_null(nb_onnx_import_bytes(ctx, &spec, bytes, cut, "cut.onnx"));
        tu_expect_error(ctx, "cut.onnx");
    }
    free(bytes);
    /* an initializer whose shape disagrees with its use */
    refused(ctx, small_graph("Relu", (int64_t[]){4, 5, 3, 3}),
            (const char *[]){"node 'conv' (Conv, opset 17)", "initializer 'conv.weight' is [4,5,3,3]", "[?,3,?,?]", NULL});
    /* a shape computed from the batch size by arithmetic: x.view(2 * x.size(0), -1) */
    Onnx__ModelProto *p = small_graph("Relu", NULL);
    Onnx__GraphProto *g = p->graph;
    ox_init_i64(g, "zero", 1, (int64_t[]){1}, (int64_t[]){0});
    ox_init_i64(g, "two", 0, NULL, (int64_t[]){2});
    ox_init_i64(g, "rest", 1, (int64_t[]){1}, (int64_t[]){-1});
    ox_rename(g, "f", "f0");
    ox_node(g, "Shape", "shape", 1, (const char *[]){"p"}, 1, (const char *[]){"s"});
    ox_node(g, "Gather", "batch", 2, (const char *[]){"s", "zero"}, 1, (const char *[]){"b"});
    ox_node(g, "Mul", "twice", 2, (const char *[]){"b", "two"}, 1, (const char *[]){"b2"});
    ox_node(g, "Concat", "target", 2, (const char *[]){"b2", "rest"}, 1, (const char *[]){"t"});
    ox_attr_int(g->node[g->n_node - 1], "axis", 0);
    ox_node(g, "Reshape", "view", 2, (const char *[]){"f0", "t"}, 1, (const char *[]){"f"});
    /* nodes must stay in order: the Gemm (now reading f) goes last */
    Onnx__NodeProto *gemm = g->node[4];
    memmove(&g->node[4], &g->node[5], sizeof *g->node * (g->n_node - 5));
    g->node[g->n_node - 1] = gemm;
    refused(ctx, p, (const char *[]){"node 'twice' (Mul, opset 17)", "batch size enters arithmetic", NULL});
    /* a name defined twice: two initializers, and a node writing an initializer's name */
    p = small_graph("Relu", NULL);
    ox_init_f32(p->graph, "fc.weight", 2, (int64_t[]){10, 4}, (float[40]){0});
    refused(ctx, p, (const char *[]){"name collision", "'fc.weight'", NULL});
    p = small_graph("Relu", NULL);
    ox_rename(p->graph, "a", "fc.weight");
    refused(ctx, p, (const char *[]){"name collision", "node 'act' (Relu) writes 'fc.weight'", "an initializer", NULL});
    /* an op of another domain */
    p = small_graph("Relu", NULL);
    free(p->graph->node[1]->domain);
    p->graph->node[1]->domain = strdup("com.microsoft");
    refused(ctx, p, (const char *[]){"node 'act' (Relu, domain com.microsoft)", NULL});
    /* a file that is not there */
    assert_null(nb_onnx_import(ctx, &spec, "/nonexistent/model.onnx"));
    tu_expect_error(ctx, "/nonexistent/model.onnx: cannot open the ONNX model");
    nb_ctx_free(ctx);
}

/* ---- a model of one's own through bin/train, --resume, compression and bin/export ---- */

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static void prog_ok(const char *what, const char *const *argv, run_result *r) {
    run_prog(r, argv);
    if (r->status != 0) fail_msg("%s exited %d:\n%s%s", what, r->status, r->out, r->err);
}

/* bin/eval CKPT --onnx MODEL: ONNX Runtime's top classes agree with nibble's on every image */
static void ort_agrees(const char *ckpt, const char *onnx) {
    run_result r;
    use_ort_node_path();
    prog_ok("bin/eval --onnx", ARGV("eval", ckpt, "--onnx", onnx, "--limit", "200"), &r);
    const char *a = strstr(r.out, "\"top1_agreement\": ");
    assert_non_null(a);
    double agree = strtod(a + 18, NULL);
    const char *d = strstr(r.out, "\"max_abs_diff\": ");
    double diff = strtod(d + 16, NULL);
    printf("  %s in ONNX Runtime: top-1 agreement %.4f, largest logit difference %.3g\n", onnx, agree, diff);
    assert_true(agree == 1.0);
    assert_true(diff < 1e-3);
}

/* bin/train cfg from the float checkpoint `best` with the overrides `how` into dir/run_<name>, its best checkpoint
 * exported (the report mentioning `shows`) and run in ONNX Runtime */
static void compressed(const char *dir, const char *cfg, const char *best, const char *name, const char *shows,
                       const char *const *how) {
    char run[600], ckpt[700], out[700], o_out[800], o_init[800];
    const char *argv[16] = {"train", cfg, o_out, o_init};
    int n = 4;
    for (int k = 0; how[k] && n < 15; k++) argv[n++] = how[k];
    argv[n] = NULL;
    snprintf(run, sizeof run, "%s/run_%s", dir, name);
    snprintf(o_out, sizeof o_out, "train.out=%s", run);
    snprintf(o_init, sizeof o_init, "model.init=%s", best);
    run_result r;
    prog_ok(name, argv, &r);
    snprintf(ckpt, sizeof ckpt, "%s/best.h5", run);
    snprintf(out, sizeof out, "%s/%s.onnx", dir, name);
    prog_ok("bin/export", ARGV("export", ckpt, "-o", out), &r);
    printf("  %s", r.out);
    assert_non_null(strstr(r.out, shows));
    if (!strcmp(name, "prune")) assert_null(strstr(r.out, " 0 of 216 prunable")); /* channels did go */
    ort_agrees(ckpt, out);
}

static void test_own_model_end_to_end(void **st) {
    (void)st;
    char dir[128], p[700], cfg[700];
    assert_int_equal(make_test_dir(dir, sizeof dir, "import"), 0);
    /* the user's network (scripts/secnn.py: squeeze-and-excitation, hard-swish), 10 classes, beside its cfg */
    size_t n;
    char *onnx = read_file("experiments/secnn.onnx", &n);
    assert_non_null(onnx);
    snprintf(p, sizeof p, "%s/secnn.onnx", dir);
    FILE *f = fopen(p, "wb");
    assert_int_equal(fwrite(onnx, 1, n, f), n);
    fclose(f);
    free(onnx);
    snprintf(p, sizeof p, "%s/train.h5", dir);
    synth_write_h5(p, 1000, 1, 12, 12, 4, true, 11);
    snprintf(p, sizeof p, "%s/val.h5", dir);
    synth_write_h5(p, 300, 1, 12, 12, 4, true, 12);
    char text[1400];
    snprintf(text, sizeof text,
             "# the imported network on 12x12 synthetic images in 4 classes: its classifier made anew\n"
             "[model]\narch = onnx\nonnx = secnn.onnx\nnum_classes = 4\nin_channels = 1\ninput_size = 12\n"
             "[data]\nformat = hdf5\ntrain = %s/train.h5\nval = %s/val.h5\naugment = crop_flip\nmean = 0.3\nstd = 0.3\n"
             "[train]\nepochs = 2\nbatch = 64\nlog_every = 5\nlabel_smoothing = 0.1\n"
             "[optim]\ntype = sgd\nlr = 0.05\nschedule = cosine\nwarmup_epochs = 0.3\n",
             dir, dir);
    write_test_file(dir, "own.cfg", text);
    snprintf(cfg, sizeof cfg, "%s/own.cfg", dir);
    run_result r;
    /* the listing: what import made of the graph */
    prog_ok("bin/train --summary", ARGV("train", cfg, "--summary"), &r);
    assert_non_null(strstr(r.out, "made anew: 10 -> 4 classes"));
    assert_non_null(strstr(r.out, "HardSwish          hardswish -> [2,24,12,12]"));
    /* 2 epochs in one go == 23 steps (mid-epoch) + --resume, bit for bit */
    char a[600], b[600], oa[800], ob[800];
    snprintf(a, sizeof a, "%s/run_a", dir);
    snprintf(b, sizeof b, "%s/run_b", dir);
    snprintf(oa, sizeof oa, "train.out=%s", a);
    snprintf(ob, sizeof ob, "train.out=%s", b);
    prog_ok("bin/train", ARGV("train", cfg, oa), &r);
    prog_ok("bin/train", ARGV("train", cfg, ob, "train.steps=23"), &r);
    prog_ok("bin/train --resume", ARGV("train", cfg, ob, "--resume"), &r);
    char la[800], lb[800];
    snprintf(la, sizeof la, "%s/last.h5", a);
    snprintf(lb, sizeof lb, "%s/last.h5", b);
    ckpt_bytes x = ckpt_bytes_read(la), y = ckpt_bytes_read(lb);
    assert_true(x.len > 10000);
    assert_int_equal(x.len, y.len);
    if (memcmp(x.buf, y.buf, x.len)) fail_msg("%s and %s differ: the resumed import did not continue bit for bit", la, lb);
    free(x.buf);
    free(y.buf);
    /* exported, it runs in ONNX Runtime as nibble runs it */
    char best[700], out[700];
    snprintf(best, sizeof best, "%s/best.h5", a);
    snprintf(out, sizeof out, "%s/float.onnx", dir);
    prog_ok("bin/export", ARGV("export", best, "-o", out), &r);
    ort_agrees(best, out);
    /* ADMM to {0, +-1, +-2, +-4} x alpha, then channel pruning: exported as codes and without the channels */
    compressed(dir, cfg, best, "admm", "int8 codes (admm)",
               ARGV("compress.methods=admm", "compress.codebook=pm4", "train.epochs=1", "compress.admm_interval=10"));
    /* distillation with the trained import as the teacher of a fresh one */
    char teacher[800];
    snprintf(teacher, sizeof teacher, "compress.teacher=%s", best);
    compressed(dir, cfg, best, "kd", "0 layers as int8 codes (none)",
               ARGV("compress.methods=kd", teacher, "train.epochs=1"));
    compressed(dir, cfg, best, "prune", "of 216 prunable channels removed",
               ARGV("compress.methods=prune", "compress.sparsity=0.5", "compress.granularity=channel",
                    "compress.prune_epochs=1", "train.epochs=2"));
    /* bin/import lists a file, and refuses one that is not ONNX with exit status 1 */
    prog_ok("bin/import", ARGV("import", "experiments/secnn.onnx"), &r);
    assert_non_null(strstr(r.out, "59 nodes: 59 run as nibble ops, 0 folded at import"));
    assert_non_null(strstr(r.out, "blocks.3.se.fc2.weight [64,16,1,1]"));
    write_test_file(dir, "junk.onnx", "not a model");
    snprintf(p, sizeof p, "%s/junk.onnx", dir);
    run_prog(&r, ARGV("import", p));
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "junk.onnx: not an ONNX model"));
    assert_int_equal(remove_test_dir(dir), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torchvision),
        cmocka_unit_test(test_zoo_round_trip),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_own_model_end_to_end),
    };
    return cmocka_run_group_tests_name("ONNX import", tests, NULL, NULL);
}
