/* bin/export against independent readers: every exported file passes the onnx package's full checker, and
 * ONNX Runtime (onnxruntime-node) computes the same logits as bin/predict within 1e-4 on the same images —
 * for ResNet-20, ResNet-18, ShuffleNetV2, MobileNetV2 and MuffNet, with batch norms kept or folded; for
 * ADMM-ternary and ADMM-{0,±1,±2,±4} checkpoints exported as int8 (and int4) codes with DequantizeLinear, at
 * most 30% of the float file's size; for a channel-pruned checkpoint exported as a smaller network; for every
 * activation of the op table, exported alone. Bad
 * input (another architecture's checkpoint, a truncated one, an op with no ONNX form) is a clear error that
 * leaves no file behind and an existing one untouched. */
#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/ops.h"
#include "deploy/export.h"
#include "deploy/model_crypt.h"
#include "tests/support/op_harness.h"
#include "tests/support/run.h"
#include "tests/support/synth.h"
#include "tests/support/testutil.h"

static char dir[128];

#define GRAY_N 64
#define RGB_N 16
#define CLASSES 4

static void pathf(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static int setup(void **st) {
    (void)st;
    if (make_test_dir(dir, sizeof dir, "export")) return -1;
    char p[512], text[2048];
    pathf(p, sizeof p, "gray.h5");
    synth_write_h5(p, GRAY_N, 1, 16, 16, CLASSES, true, 31);
    pathf(p, sizeof p, "rgb.h5");
    synth_write_h5(p, RGB_N, 3, 32, 32, CLASSES, true, 32);
    snprintf(text, sizeof text,
             "# CIFAR-style ResNet-20 on 16x16 grey images\n"
             "[model]\narch = resnet20\nnum_classes = 4\nin_channels = 1\ninput_size = 16\n"
             "[data]\nformat = hdf5\ntrain = %s/gray.h5\nval = %s/gray.h5\naugment = none\nmean = 0.3\nstd = 0.3\n"
             "workers = 1\n[train]\nepochs = 1\nbatch = 16\nlog_every = 100\n"
             "[optim]\ntype = sgd\nlr = 0.05\nmomentum = 0.9\n"
             "[compress]\nrho = 0.05\nadmm_interval = 1\n",
             dir, dir);
    write_test_file(dir, "gray.cfg", text);
    snprintf(text, sizeof text,
             "# ImageNet-style networks on 32x32 colour images, two steps\n"
             "[model]\narch = resnet18\nnum_classes = 4\nin_channels = 3\ninput_size = 32\n"
             "[data]\nformat = hdf5\ntrain = %s/rgb.h5\nval = %s/rgb.h5\naugment = none\n"
             "mean = 0.485, 0.456, 0.406\nstd = 0.229, 0.224, 0.225\nworkers = 1\n"
             "[train]\nepochs = 1\nsteps = 2\nbatch = 8\nlog_every = 100\n"
             "[optim]\ntype = sgd\nlr = 0.05\nmomentum = 0.9\n",
             dir, dir);
    write_test_file(dir, "rgb.cfg", text);
    use_ort_node_path();
    return 0;
}

static int teardown(void **st) {
    (void)st;
    return remove_test_dir(dir);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static void run_ok(const char *what, const char *const *argv, run_result *r) {
    run_prog(r, argv);
    if (r->status) fail_msg("%s exited %d:\n%s", what, r->status, r->err);
}

/* A short training run into dir/<name> with up to four overrides (NULL for none); returns dir/<name>/last.h5. */
static void train(char *ckpt, size_t n, const char *name, const char *cfg, const char *const *overrides) {
    char cfgp[512], out[512], outkv[600];
    pathf(cfgp, sizeof cfgp, cfg);
    pathf(out, sizeof out, name);
    snprintf(outkv, sizeof outkv, "train.out=%s", out);
    const char *argv[16] = {"train", cfgp, outkv};
    int k = 3;
    for (int i = 0; overrides && overrides[i] && k < 15; i++) argv[k++] = overrides[i];
    argv[k] = NULL;
    run_result r;
    run_ok("bin/train", argv, &r);
    snprintf(ckpt, n, "%s/last.h5", out);
}

/* bin/export CKPT -o dir/<onnx> [flags]: returns the output path; stdout in *r */
static void export_ok(char *onnx, size_t n, const char *ckpt, const char *name, const char *f1, const char *f2,
                      run_result *r) {
    pathf(onnx, n, name);
    const char *argv[10] = {"export", ckpt, "-o", onnx};
    int k = 4;
    if (f1) argv[k++] = f1;
    if (f2) argv[k++] = f2;
    argv[k] = NULL;
    run_ok("bin/export", argv, r);
}

static void onnx_checker_ok(const char *onnx) {
    run_result r;
    run_cmd(&r, ARGV("/usr/bin/python3", "scripts/onnx_check.py", onnx));
    if (r.status) fail_msg("the onnx checker rejects %s:\n%s%s", onnx, r.out, r.err);
}

/* scripts/mnn_forms_check.py: the file uses only the forms MNN's converter reads correctly (want_ok) or not */
static void mnn_forms(const char *onnx, bool want_ok) {
    run_result r;
    run_cmd(&r, ARGV("/usr/bin/python3", "scripts/mnn_forms_check.py", onnx));
    if (want_ok && r.status) fail_msg("%s is not in MNN's forms:\n%s%s", onnx, r.out, r.err);
    if (!want_ok && !r.status) fail_msg("the MNN forms check took %s, which is not in them:\n%s", onnx, r.out);
}

static int64_t file_size(const char *path) {
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (int64_t)sb.st_size;
}

/* images of an HDF5 file as the loader prepares them: u8 / 255, then (x - mean) / std per channel */
static float *normalized_images(const char *h5, int n, int c, int s, const float *mean, const float *std) {
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "images", H5P_DEFAULT);
    size_t count = (size_t)n * (size_t)c * (size_t)s * (size_t)s, plane = (size_t)s * (size_t)s;
    unsigned char *u8 = malloc(count);
    assert_true(H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, u8) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    float *x = malloc(sizeof(float) * count);
    for (size_t i = 0; i < count; i++) {
        int ch = (int)(i / plane % (size_t)c);
        float v = (float)u8[i] * (1.0f / 255.0f);
        x[i] = (v - mean[ch]) * (1.0f / std[ch]);
    }
    free(u8);
    return x;
}

/* ONNX Runtime's logits for the images of h5 against bin/predict's for the checkpoint: within 1e-4. With key,
 * onnx is an encrypted export: bin/export --decrypt hands the model to ONNX Runtime through a pipe, never as a
 * file. */
static void ort_matches_predict_key(const char *onnx, const char *key, const char *ckpt, const char *h5, int n, int c,
                                    int s, const float *mean, const float *std) {
    char logits[512], in[512], out[600], dims[64];
    snprintf(logits, sizeof logits, "%s.logits.h5", onnx);
    snprintf(in, sizeof in, "%s.in.f32", onnx);
    snprintf(out, sizeof out, "%s.out.f32", onnx);
    run_result r;
    run_ok("bin/predict", ARGV("predict", ckpt, h5, logits), &r);
    hid_t f = tu_open(logits);
    int nd;
    int64_t shape[4];
    float *want = tu_read_f32(f, "logits", &nd, shape);
    H5Fclose(f);
    assert_int_equal(shape[0], n);
    float *x = normalized_images(h5, n, c, s, mean, std);
    FILE *fp = fopen(in, "wb");
    assert_int_equal(fwrite(x, sizeof(float), (size_t)n * c * s * s, fp), (size_t)n * c * s * s);
    fclose(fp);
    free(x);
    snprintf(dims, sizeof dims, "%d,%d,%d,%d", n, c, s, s);
    if (key) {
        char cmd[3000];
        snprintf(cmd, sizeof cmd, "set -e -o pipefail; %s/export --decrypt '%s' '%s' -o - | node scripts/ort_run.js - '%s' %s '%s'",
                 getenv("NB_BIN_DIR") ? getenv("NB_BIN_DIR") : "build/rel/bin", key, onnx, in, dims, out);
        run_cmd(&r, ARGV("bash", "-c", cmd));
    } else {
        run_cmd(&r, ARGV("node", "scripts/ort_run.js", onnx, in, dims, out));
    }
    if (r.status) fail_msg("ONNX Runtime could not run %s:\n%s%s", onnx, r.out, r.err);
    size_t bytes;
    float *got = (float *)read_file(out, &bytes);
    assert_non_null(got);
    assert_int_equal(bytes, sizeof(float) * (size_t)(shape[0] * shape[1]));
    char what[700];
    snprintf(what, sizeof what, "ONNX Runtime on %s vs bin/predict", onnx);
    tu_assert_close(what, got, want, shape[0] * shape[1], 1e-4);
    free(got);
    free(want);
}

static void ort_matches_predict(const char *onnx, const char *ckpt, const char *h5, int n, int c, int s,
                                const float *mean, const float *std) {
    ort_matches_predict_key(onnx, NULL, ckpt, h5, n, c, s, mean, std);
}

static const float gray_mean[1] = {0.3f}, gray_std[1] = {0.3f};
static const float rgb_mean[3] = {0.485f, 0.456f, 0.406f}, rgb_std[3] = {0.229f, 0.224f, 0.225f};

static void check_float_export(const char *ckpt, const char *name, bool rgb, const char *flag) {
    char onnx[512], h5[512];
    run_result r;
    export_ok(onnx, sizeof onnx, ckpt, name, flag, NULL, &r);
    onnx_checker_ok(onnx);
    pathf(h5, sizeof h5, rgb ? "rgb.h5" : "gray.h5");
    if (rgb)
        ort_matches_predict(onnx, ckpt, h5, RGB_N, 3, 32, rgb_mean, rgb_std);
    else
        ort_matches_predict(onnx, ckpt, h5, GRAY_N, 1, 16, gray_mean, gray_std);
    run_ok("bin/export --check", ARGV("export", "--check", onnx), &r);
    if (flag && !strcmp(flag, "--fold-bn") && strstr(r.out, "BatchNormalization"))
        fail_msg("%s still has batch norms after --fold-bn:\n%s", onnx, r.out);
}

static void test_float_zoo(void **st) {
    (void)st;
    char ckpt[600];
    train(ckpt, sizeof ckpt, "r20", "gray.cfg", ARGV("train.steps=3"));
    check_float_export(ckpt, "r20.onnx", false, NULL);
    check_float_export(ckpt, "r20_folded.onnx", false, "--fold-bn");
    char onnx[512];
    run_result r;
    export_ok(onnx, sizeof onnx, ckpt, "r20_softmax.onnx", "--softmax", NULL, &r);
    onnx_checker_ok(onnx);
    run_ok("bin/export --check", ARGV("export", "--check", onnx), &r);
    assert_non_null(strstr(r.out, "output probabilities float32 [N,4]"));
    const char *archs[] = {"resnet18", "shufflenet_v2_x1_0", "mobilenet_v2", "muffnet_x1_0"};
    for (int i = 0; i < 4; i++) {
        char kv[64], name[64];
        snprintf(kv, sizeof kv, "model.arch=%s", archs[i]);
        train(ckpt, sizeof ckpt, archs[i], "rgb.cfg", ARGV(kv));
        snprintf(name, sizeof name, "%s.onnx", archs[i]);
        check_float_export(ckpt, name, true, NULL);
        snprintf(name, sizeof name, "%s_folded.onnx", archs[i]);
        check_float_export(ckpt, name, true, "--fold-bn");
    }
}

/* A probe model m (one op, flattened) on the N x C x S x S input x: nibble's outputs (count of them) into want,
 * its export to dir/<arch>.onnx checked, and ONNX Runtime's outputs on the same input (malloc'd). */
static float *probe_outputs(nb_model *m, const float *x, int N, int C, int S, float *want, size_t count) {
    nb_ctx *ctx = m->ctx;
    nb_tensor *xt = nb_tensor_from_host(ctx, NB_F32, 4, (int64_t[]){N, C, S, S}, x);
    bool prev = nb_set_grad_enabled(ctx, false);
    size_t mark = nb_scope_begin(ctx);
    assert_int_equal(nb_tensor_to_host(m->forward(m, xt, false), want, sizeof(float) * count), 0);
    nb_scope_end(ctx, mark);
    nb_set_grad_enabled(ctx, prev);
    nb_release(xt);
    char onnx[512], in[600], out[600], dims[64];
    pathf(onnx, sizeof onnx, m->spec.arch);
    strcat(onnx, ".onnx");
    snprintf(in, sizeof in, "%s.in.f32", onnx);
    snprintf(out, sizeof out, "%s.out.f32", onnx);
    snprintf(dims, sizeof dims, "%d,%d,%d,%d", N, C, S, S);
    nb_export_opts o = {.opset = 17};
    nb_export_report rep;
    if (nb_export_onnx(m, NULL, &o, onnx, &rep)) fail_msg("%s: %s", m->spec.arch, nb_ctx_last_error(ctx));
    onnx_checker_ok(onnx);
    FILE *fp = fopen(in, "wb");
    size_t n_in = (size_t)N * C * S * S;
    assert_int_equal(fwrite(x, sizeof(float), n_in, fp), n_in);
    fclose(fp);
    run_result r;
    run_cmd(&r, ARGV("node", "scripts/ort_run.js", onnx, in, dims, out));
    if (r.status) fail_msg("ONNX Runtime could not run %s:\n%s%s", onnx, r.out, r.err);
    size_t bytes;
    float *got = (float *)read_file(out, &bytes);
    assert_int_equal(bytes, sizeof(float) * count);
    return got;
}

/* The model of an activation probe: the op of core/op_table.h that impl names, alone, flattened. */
static nb_tensor *activation_probe_forward(nb_model *m, nb_tensor *x, bool training) {
    (void)training;
    oh_spec s;
    assert_int_equal(oh_spec_for(nb_op_name(*(nb_op *)m->impl), &s), 0);
    s.alpha = 0.1f; /* leaky ReLU's slope */
    return nb_flatten(oh_run(&s, &x));
}

/* Every activation of the op table (the ops with nb_eltwise_attr), exported alone: the file passes the checker
 * and ONNX Runtime computes nibble's values within 1e-5, on inputs from -8 to 8 that stay clear of the kinks.
 * An activation added to the table is exported and checked here with no change to this test. */
static void test_activations_export(void **st) {
    (void)st;
    enum { N = 2, C = 3, S = 5 };
    int checked = 0;
    for (int op = 0; op < NB_OP_COUNT; op++) {
        if (strcmp(nb_op_attr_member((nb_op)op), "eltwise")) continue;
        nb_ctx *ctx = tu_ctx();
        nb_model_spec spec = {.arch = nb_op_name((nb_op)op), .num_classes = C * S * S, .in_channels = C, .input_size = S,
                              .width = 1};
        nb_model *m = nb_model_alloc(ctx, &spec, sizeof(nb_op), activation_probe_forward, NULL);
        *(nb_op *)m->impl = (nb_op)op;
        float x[N * C * S * S], want[N * C * S * S];
        for (int i = 0; i < N * C * S * S; i++) x[i] = -8.0f + 16.0f * (float)((i * 37) % (N * C * S * S)) / (N * C * S * S) + 0.013f;
        float *got = probe_outputs(m, x, N, C, S, want, N * C * S * S);
        char what[600];
        snprintf(what, sizeof what, "ONNX Runtime on the exported %s", spec.arch);
        tu_assert_close(what, got, want, N * C * S * S, 1e-5);
        free(got);
        nb_model_free(m);
        nb_ctx_free(ctx);
        checked++;
    }
    assert_true(checked >= 5);
}

/* An interleaving concatenation (ShuffleNet's concatenation and shuffle) and its readers: the export writes
 * the plain concatenation and each reader takes the channels where they lie (deploy/onnx_emit.c, "channel
 * orders"). A max pooling cannot (a Gather puts them in order), slices of channels become the runs that hold
 * them (left as pieces when only another interleaving concatenation reads them), and the network's output gets
 * them in order: ONNX Runtime computes nibble's values exactly. */
static nb_tensor *interleave_probe_forward(nb_model *m, nb_tensor *x, bool training) {
    (void)m;
    (void)training;
    nb_tensor *y = nb_concat_shuffle((nb_tensor *[]){x, nb_relu6(x)}, 2);
    nb_tensor *a = nb_slice(y, 1, 0, 4), *b = nb_slice(y, 1, 4, 4);
    nb_tensor *z = nb_concat_shuffle((nb_tensor *[]){a, b}, 2);
    nb_tensor *w = nb_flatten(nb_relu(nb_slice(z, 1, 1, 5)));
    nb_tensor *p = nb_flatten(nb_maxpool2d(y, (nb_pool_attr){.kernel = {2, 2}, .stride = {1, 1}, .dilation = {1, 1}}));
    nb_tensor *zf = nb_flatten(z);
    return nb_concat((nb_tensor *[]){p, zf, w}, 3, 1);
}

/* The network's output itself interleaved: its producer's result is renamed, the Gather writes "logits" */
static nb_tensor *interleave_tail_forward(nb_model *m, nb_tensor *x, bool training) {
    (void)m;
    (void)training;
    nb_tensor *f = nb_flatten(x);
    return nb_relu(nb_concat_shuffle((nb_tensor *[]){f, nb_relu6(f)}, 2));
}

static void test_interleave_export(void **st) {
    (void)st;
    enum { N = 2, C = 4, S = 3 };
    const int out = 2 * C * (S - 1) * (S - 1) + 2 * C * S * S + 5 * S * S;
    nb_ctx *ctx = tu_ctx();
    nb_model_spec spec = {.arch = "interleave", .num_classes = out, .in_channels = C, .input_size = S, .width = 1};
    nb_model *m = nb_model_alloc(ctx, &spec, 0, interleave_probe_forward, NULL);
    float x[N * C * S * S], want[N * out];
    for (int i = 0; i < N * C * S * S; i++) x[i] = -4.0f + 11.0f * (float)((i * 29) % (N * C * S * S)) / (N * C * S * S);
    float *got = probe_outputs(m, x, N, C, S, want, N * out);
    tu_assert_close("ONNX Runtime on the exported interleavings", got, want, N * out, 0.0);
    free(got);
    char onnx[512];
    pathf(onnx, sizeof onnx, "interleave.onnx");
    run_result r;
    run_ok("bin/export --check", ARGV("export", "--check", onnx), &r);
    if (strstr(r.out, "Transpose")) fail_msg("a Transpose in the interleavings' export:\n%s", r.out);
    assert_non_null(strstr(r.out, "Gather"));
    nb_model_free(m);
    nb_ctx_free(ctx);

    ctx = tu_ctx();
    spec.num_classes = 2 * C * S * S;
    spec.arch = "interleave_tail";
    m = nb_model_alloc(ctx, &spec, 0, interleave_tail_forward, NULL);
    got = probe_outputs(m, x, N, C, S, want, N * 2 * C * S * S);
    tu_assert_close("ONNX Runtime on an export whose output is interleaved", got, want, N * 2 * C * S * S, 0.0);
    free(got);
    pathf(onnx, sizeof onnx, "interleave_tail.onnx");
    run_ok("bin/export --check", ARGV("export", "--check", onnx), &r);
    assert_non_null(strstr(r.out, "Gather"));
    nb_model_free(m);
    nb_ctx_free(ctx);
}

/* A fake-quantization probe: x through one quantizer (its grid and parameters in impl), flattened. */
typedef struct {
    nb_fake_quant_attr a;
    float scale[4], zero_point[4];
} fq_probe;

static nb_tensor *fake_quant_probe_forward(nb_model *m, nb_tensor *x, bool training) {
    (void)training;
    fq_probe *p = m->impl;
    int64_t groups = p->a.axis < 0 ? 1 : x->shape[p->a.axis];
    nb_tensor *s = nb_tensor_from_host(m->ctx, NB_F32, 1, &groups, p->scale);
    nb_tensor *z = nb_tensor_from_host(m->ctx, NB_F32, 1, &groups, p->zero_point);
    nb_tensor *y = nb_flatten(nb_fake_quant(x, s, z, p->a));
    nb_release(s); /* the tape holds them while it records */
    nb_release(z);
    return y;
}

/* Fake quantization exported as QuantizeLinear + DequantizeLinear (a Clip before them for a grid narrower than
 * 8 bits): ONNX Runtime gives nibble's values, every one on the same grid point but where x / s falls within
 * rounding of a half step (ONNX divides, torch and nibble multiply by 1 / s), and those one step apart. */
static void test_fake_quant_export(void **st) {
    (void)st;
    enum { N = 2, C = 4, S = 5, COUNT = N * C * S * S };
    fq_probe probes[] = {
        {{.qmin = 0, .qmax = 255, .axis = -1}, {0.02f}, {128}},
        {{.qmin = -128, .qmax = 127, .axis = -1}, {0.015f}, {0}},
        {{.qmin = 0, .qmax = 15, .axis = -1}, {0.25f}, {3}},
        {{.qmin = 0, .qmax = 255, .axis = 1}, {0.01f, 0.02f, 0.03f, 0.015f}, {120, 128, 100, 140}},
    };
    for (size_t k = 0; k < sizeof probes / sizeof *probes; k++) {
        nb_ctx *ctx = tu_ctx();
        char arch[32];
        snprintf(arch, sizeof arch, "fake_quant_%zu", k);
        nb_model_spec spec = {.arch = arch, .num_classes = C * S * S, .in_channels = C, .input_size = S, .width = 1};
        nb_model *m = nb_model_alloc(ctx, &spec, sizeof(fq_probe), fake_quant_probe_forward, NULL);
        *(fq_probe *)m->impl = probes[k];
        float x[COUNT], want[COUNT];
        for (int i = 0; i < COUNT; i++) x[i] = -3.0f + 6.0f * (float)((i * 37) % COUNT) / COUNT + 0.0013f;
        float *got = probe_outputs(m, x, N, C, S, want, COUNT);
        int off = 0;
        for (int i = 0; i < COUNT; i++) {
            int c = probes[k].a.axis < 0 ? 0 : i / (S * S) % C;
            float step = probes[k].scale[c], d = fabsf(got[i] - want[i]);
            if (d > 1.001f * step) fail_msg("%s [%d]: ONNX Runtime %g, nibble %g: more than a step (%g) apart", arch, i, got[i], want[i], step);
            off += d > 1e-6f * step;
        }
        if (off > COUNT / 100) fail_msg("%s: %d of %d values a step apart", arch, off, COUNT);
        free(got);
        nb_model_free(m);
        nb_ctx_free(ctx);
    }
    /* a grid QuantizeLinear cannot hold: an error naming the layer's op and the grid, and no file */
    nb_ctx *ctx = tu_ctx();
    nb_model_spec spec = {.arch = "fake_quant_10bit", .num_classes = C * S * S, .in_channels = C, .input_size = S, .width = 1};
    nb_model *m = nb_model_alloc(ctx, &spec, sizeof(fq_probe), fake_quant_probe_forward, NULL);
    *(fq_probe *)m->impl = (fq_probe){{.qmin = 0, .qmax = 1023, .axis = -1}, {0.01f}, {0}};
    char onnx[512];
    pathf(onnx, sizeof onnx, "fake_quant_10bit.onnx");
    nb_export_opts o = {.opset = 17};
    nb_export_report rep;
    assert_int_equal(nb_export_onnx(m, NULL, &o, onnx, &rep), -1);
    tu_expect_error(ctx, "fake_quant: the grid [0, 1023] is wider than 8 bits");
    assert_int_equal(access(onnx, F_OK), -1);
    nb_model_free(m);
    nb_ctx_free(ctx);
}

/* "N layers float, M int8, K int4" from bin/export --check */
static void layer_counts(const char *onnx, int *fl, int *i8, int *i4) {
    run_result r;
    run_ok("bin/export --check", ARGV("export", "--check", onnx), &r);
    const char *p = strstr(r.out, " layers float, ");
    assert_non_null(p);
    while (p > r.out && p[-1] != ' ') p--;
    assert_int_equal(sscanf(p, "%d layers float, %d int8, %d int4", fl, i8, i4), 3);
}

static void test_quantized(void **st) {
    (void)st;
    const char *codebooks[] = {"ternary", "pm4"};
    for (int i = 0; i < 2; i++) {
        char ckpt[600], name[64], cbkv[64], fonnx[512], qonnx[512], q4onnx[512], h5[512];
        snprintf(name, sizeof name, "admm_%s", codebooks[i]);
        snprintf(cbkv, sizeof cbkv, "compress.codebook=%s", codebooks[i]);
        train(ckpt, sizeof ckpt, name, "gray.cfg", ARGV("compress.methods=admm", cbkv));
        run_result r;
        snprintf(name, sizeof name, "admm_%s_float.onnx", codebooks[i]);
        export_ok(fonnx, sizeof fonnx, ckpt, name, "--float", NULL, &r);
        snprintf(name, sizeof name, "admm_%s.onnx", codebooks[i]);
        export_ok(qonnx, sizeof qonnx, ckpt, name, NULL, NULL, &r);
        assert_non_null(strstr(r.out, "(admm)"));
        snprintf(name, sizeof name, "admm_%s_int4.onnx", codebooks[i]);
        export_ok(q4onnx, sizeof q4onnx, ckpt, name, "--opset", "21", &r);
        onnx_checker_ok(fonnx);
        onnx_checker_ok(qonnx); /* the Debian onnx package's checker stops at opset 17: int4 is checked by running */
        pathf(h5, sizeof h5, "gray.h5");
        ort_matches_predict(qonnx, ckpt, h5, GRAY_N, 1, 16, gray_mean, gray_std);
        ort_matches_predict(q4onnx, ckpt, h5, GRAY_N, 1, 16, gray_mean, gray_std);
        /* every layer ADMM quantized (all but the first convolution and the classifier) is stored as codes */
        int fl, i8, i4;
        layer_counts(qonnx, &fl, &i8, &i4);
        assert_int_equal(fl, 2);
        assert_int_equal(i8, 20);
        assert_int_equal(i4, 0);
        layer_counts(q4onnx, &fl, &i8, &i4);
        assert_int_equal(fl, 2);
        assert_int_equal(i4, 20);
        int64_t sf = file_size(fonnx), sq = file_size(qonnx), s4 = file_size(q4onnx);
        print_message("ADMM %s: float %lld bytes, int8 %lld (%.1f%%), int4 %lld (%.1f%%)\n", codebooks[i],
                      (long long)sf, (long long)sq, 100.0 * (double)sq / (double)sf, (long long)s4,
                      100.0 * (double)s4 / (double)sf);
        if (sq > 0.30 * (double)sf) fail_msg("the int8 export is %lld bytes, over 30%% of the float %lld", (long long)sq, (long long)sf);
        assert_true(s4 < sq);
        /* --mnn: one alpha per layer repeated per channel (MNN reads a per-tensor scale as channel 0's), int8
         * containers for int4 codes, the same network; the plain export's per-tensor scales fail the check */
        char monnx[512];
        snprintf(name, sizeof name, "admm_%s_mnn.onnx", codebooks[i]);
        pathf(monnx, sizeof monnx, name);
        run_ok("bin/export --mnn", ARGV("export", ckpt, "-o", monnx, "--opset", "21", "--mnn"), &r);
        assert_non_null(strstr(r.out, "no activation grids"));
        mnn_forms(monnx, true);
        mnn_forms(qonnx, false);
        ort_matches_predict(monnx, ckpt, h5, GRAY_N, 1, 16, gray_mean, gray_std);
        layer_counts(monnx, &fl, &i8, &i4);
        assert_int_equal(i8, 20);
        assert_int_equal(i4, 0);
    }
    /* post-training int8 codes, per tensor and per channel: codes up to 127 put alpha*code's float rounding well
     * above an absolute bound on alpha, and the exporter takes them (it once refused them as off their codebook) */
    const char *scales[] = {"quantize.scale=layer", "quantize.scale=channel"};
    for (int i = 0; i < 2; i++) {
        char ckpt[600], q[600], name[64], onnx[512], h5[512];
        train(ckpt, sizeof ckpt, i ? "ptq8_channel_fp" : "ptq8_layer_fp", "gray.cfg", ARGV("train.steps=3"));
        snprintf(name, sizeof name, "ptq8_%d.h5", i);
        pathf(q, sizeof q, name);
        run_result r;
        run_ok("bin/quantize", ARGV("quantize", ckpt, q, "compress.codebook=int8", scales[i]), &r);
        snprintf(name, sizeof name, "ptq8_%d.onnx", i);
        export_ok(onnx, sizeof onnx, q, name, NULL, NULL, &r);
        assert_non_null(strstr(r.out, "20 layers as int8 codes (ptq)"));
        pathf(h5, sizeof h5, "gray.h5");
        ort_matches_predict(onnx, q, h5, GRAY_N, 1, 16, gray_mean, gray_std);
    }
}

static void test_pruned_channels(void **st) {
    (void)st;
    char ckpt[600], pruned[512], whole[512], h5[512];
    train(ckpt, sizeof ckpt, "prune_channels", "gray.cfg",
          ARGV("compress.methods=prune", "compress.granularity=channel", "compress.sparsity=0.5",
               "compress.prune_epochs=0.5"));
    run_result r;
    export_ok(pruned, sizeof pruned, ckpt, "pruned.onnx", NULL, NULL, &r);
    long long removed = -1, prunable = -1;
    const char *p = strstr(r.out, "weights float; ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "weights float; %lld of %lld prunable channels removed", &removed, &prunable), 2);
    export_ok(whole, sizeof whole, ckpt, "pruned_kept.onnx", "--keep-channels", NULL, &r);
    onnx_checker_ok(pruned);
    pathf(h5, sizeof h5, "gray.h5");
    ort_matches_predict(pruned, ckpt, h5, GRAY_N, 1, 16, gray_mean, gray_std);
    ort_matches_predict(whole, ckpt, h5, GRAY_N, 1, 16, gray_mean, gray_std);
    /* ResNet-20's first convolution of each block is free to shrink: half its channels go */
    print_message("channel pruning: %lld of %lld channels removed; %lld bytes vs %lld kept\n", removed, prunable,
                  (long long)file_size(pruned), (long long)file_size(whole));
    assert_true(prunable >= 9 * 16);
    assert_true(removed >= prunable / 2 - 9);
    assert_true(file_size(pruned) < file_size(whole) * 0.8);
}

/* bin/export --encrypt: the encrypted file decrypts (deploy/model_crypt.h, in memory) to exactly the bytes of the
 * plain export; every flipped bit, a cut, an extension and a wrong key are refused; ONNX Runtime runs the model
 * decrypted into a pipe with bin/predict's logits */
static void test_encrypted_export(void **st) {
    (void)st;
    char ckpt[600], plain[512], enc[512], key[512], other[512], h5[512];
    train(ckpt, sizeof ckpt, "encrypt", "gray.cfg", NULL);
    pathf(key, sizeof key, "model.key");
    pathf(other, sizeof other, "other.key");
    unlink(key);
    unlink(other);
    run_result r;
    run_ok("bin/export --new-key", ARGV("export", "--new-key", key), &r);
    run_ok("bin/export --new-key", ARGV("export", "--new-key", other), &r);
    run_prog(&r, ARGV("export", "--new-key", key));
    if (r.status == 0 || !strstr(r.err, "never overwritten")) fail_msg("a key file was overwritten:\n%s", r.err);
    export_ok(plain, sizeof plain, ckpt, "plain.onnx", NULL, NULL, &r);
    export_ok(enc, sizeof enc, ckpt, "model.enc", "--encrypt", key, &r);
    size_t np, ne;
    unsigned char *p = (unsigned char *)read_file(plain, &np), *e = (unsigned char *)read_file(enc, &ne);
    assert_non_null(p);
    assert_non_null(e);
    assert_true(ne == nb_model_encrypted_size(np));
    /* no run of 64 plaintext bytes survives in the encrypted file */
    for (size_t i = 0; i + 64 <= np; i += 64) assert_null(memmem(e, ne, p + i, 64));
    unsigned char k[NB_MODEL_KEY_BYTES], k2[NB_MODEL_KEY_BYTES], *d;
    size_t nd;
    assert_int_equal(nb_model_key_read(key, k), 0);
    assert_int_equal(nb_model_key_read(other, k2), 0);
    assert_int_equal(nb_model_decrypt(k, e, ne, &d, &nd), NB_CRYPT_OK);
    assert_int_equal(nd, np);
    assert_memory_equal(d, p, np);
    nb_model_plaintext_free(d, nd);
    /* one flipped bit (a different bit each time) in every byte of the header, the first and the last chunk's
     * edges and every chunk boundary, and at 2,000 places spread over the rest; then cuts and an extension */
    int refused = 0;
    for (size_t i = 0; i < ne; i++) {
        size_t in_chunk = i >= 32 ? (i - 32) % (NB_CRYPT_CHUNK + 17) : 0;
        bool edge = i < 512 || i + 512 >= ne || in_chunk < 64 || in_chunk + 64 >= NB_CRYPT_CHUNK + 17;
        if (!edge && i % (ne / 2000 + 1)) continue;
        e[i] ^= (unsigned char)(1u << (i % 8));
        int c = nb_model_decrypt(k, e, ne, &d, &nd);
        e[i] ^= (unsigned char)(1u << (i % 8));
        if (c == NB_CRYPT_OK) fail_msg("a flipped bit at byte %zu of %zu was not noticed", i, ne);
        assert_null(d);
        refused++;
    }
    for (size_t cut = 0; cut < ne; cut += ne / 7 + 1) assert_int_not_equal(nb_model_decrypt(k, e, cut, &d, &nd), NB_CRYPT_OK);
    assert_int_not_equal(nb_model_decrypt(k, e, ne - 1, &d, &nd), NB_CRYPT_OK);
    unsigned char *longer = malloc(ne + 1);
    memcpy(longer, e, ne);
    longer[ne] = 0;
    assert_int_not_equal(nb_model_decrypt(k, longer, ne + 1, &d, &nd), NB_CRYPT_OK);
    free(longer);
    assert_int_equal(nb_model_decrypt(k2, e, ne, &d, &nd), NB_CRYPT_REJECTED);
    assert_int_equal(nb_model_decrypt(k, p, np, &d, &nd), NB_CRYPT_NOT_ENCRYPTED);
    /* the CLI: a wrong key is an error naming the file, and writes nothing */
    char out[600];
    snprintf(out, sizeof out, "%s.wrong", enc);
    run_prog(&r, ARGV("export", "--decrypt", other, enc, "-o", out));
    if (r.status == 0 || !strstr(r.err, enc) || !strstr(r.err, "authentication failed"))
        fail_msg("decrypting with the wrong key: status %d\n%s", r.status, r.err);
    assert_int_equal(access(out, F_OK), -1);
    print_message("encrypted export: %zu bytes for %zu; %d one-bit changes, 8 cuts, an extension and a wrong key "
                  "all refused\n", ne, np, refused);
    free(p);
    free(e);
    pathf(h5, sizeof h5, "gray.h5");
    ort_matches_predict_key(enc, key, ckpt, h5, GRAY_N, 1, 16, gray_mean, gray_std);
}

/* A model whose forward pass ends in an op with no ONNX form */
static nb_tensor *mse_forward(nb_model *m, nb_tensor *x, bool training) {
    (void)m;
    (void)training;
    nb_tensor *f = nb_flatten(x);
    return nb_mse(f, f);
}

static void test_bad_input(void **st) {
    (void)st;
    char ckpt[600], out[512], cfg[512], trunc[512], text[256];
    train(ckpt, sizeof ckpt, "for_errors", "gray.cfg", ARGV("train.steps=1"));
    pathf(out, sizeof out, "kept.onnx");
    FILE *f = fopen(out, "w");
    fputs("an earlier export", f);
    fclose(f);
    /* a checkpoint of another architecture than the cfg names */
    snprintf(text, sizeof text, "include = gray.cfg\n[model]\narch = resnet32\n");
    write_test_file(dir, "other.cfg", text);
    pathf(cfg, sizeof cfg, "other.cfg");
    run_result r;
    run_prog(&r, ARGV("export", ckpt, cfg, "-o", out));
    assert_int_not_equal(r.status, 0);
    if (!strstr(r.err, ckpt) || !strstr(r.err, "do not match the model")) fail_msg("unclear error: %s", r.err);
    /* a truncated checkpoint */
    pathf(trunc, sizeof trunc, "truncated.h5");
    size_t n;
    char *bytes = read_file(ckpt, &n);
    f = fopen(trunc, "wb");
    fwrite(bytes, 1, n / 2, f);
    fclose(f);
    free(bytes);
    run_prog(&r, ARGV("export", trunc, "-o", out));
    assert_int_not_equal(r.status, 0);
    if (!strstr(r.err, trunc) || !strstr(r.err, "truncated")) fail_msg("unclear error: %s", r.err);
    /* the earlier file is untouched and no temporary file is left */
    char *kept = read_file(out, &n);
    assert_string_equal(kept, "an earlier export");
    free(kept);
    run_cmd(&r, ARGV("sh", "-c", "ls \"$0\" | grep -c tmp || true", dir));
    assert_string_equal(r.out, "0\n");
    /* an op the exporter does not know: an error that names it, and no file */
    nb_ctx *ctx = tu_ctx();
    nb_model_spec spec = {.arch = "mse_probe", .num_classes = 1, .in_channels = 1, .input_size = 4, .width = 1};
    nb_model *m = nb_model_alloc(ctx, &spec, 1, mse_forward, NULL);
    nb_export_opts o = {.opset = 17};
    nb_export_report rep;
    char none[512];
    pathf(none, sizeof none, "unknown_op.onnx");
    assert_int_equal(nb_export_onnx(m, NULL, &o, none, &rep), -1);
    tu_expect_error(ctx, "op mse has no ONNX export");
    assert_int_equal(access(none, F_OK), -1);
    nb_model_free(m);
    nb_ctx_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_zoo),
        cmocka_unit_test(test_quantized),
        cmocka_unit_test(test_pruned_channels),
        cmocka_unit_test(test_encrypted_export),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_activations_export),
        cmocka_unit_test(test_interleave_export),
        cmocka_unit_test(test_fake_quant_export),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
