/* Mixed precision (train.precision = bf16, core/autocast.c) against PyTorch 1.13's CPU autocast
 * (tests/fixtures/bf16.h5, scripts/gen_bf16_fixtures.py):
 *   - every op that runs in bf16, and two that fall back to f32, forward and backward, from plain and blocked
 *     inputs: within BF16_TOL of autocast's result and within F64_BOUND of the exact (float64) one, where
 *     nibble's own f32 lands within 1e-4; the output type shows where the op ran;
 *   - the cast rounds to nearest even exactly as torch's .to(torch.bfloat16) does;
 *   - one training step of ResNet-18 in bf16: the loss and every parameter's gradient as close to float64 as
 *     autocast's are (within twice its error);
 *   - bin/train with train.precision = bf16 resumes bit for bit, uses less memory than fp32, and refuses fp16.
 * Errors are max|got - ref| / max|ref| over a tensor (a bf16 value carries 8 significant bits: 2^-8 = 0.4%). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hdf5.h>

#include "core/arith.h"
#include "core/bf16.h"
#include "core/context.h"
#include "core/ops.h"
#include "formats/h5_checksum.h"
#include "models/model.h"
#include "optim/optim.h"
#include "setup/checkpoint.h"
#include "task/task.h"
#include "tests/support/ckpt_bytes.h"
#include "tests/support/det_weights.h"
#include "tests/support/op_harness.h"
#include "tests/support/run.h"
#include "tests/support/synth.h"
#include "tests/support/testutil.h"
#include "train/step.h"

/* nibble bf16 against autocast bf16: both round the same inputs the same way, and differ in the order of f32
 * accumulation and in where they round a result (torch rounds a convolution's weight gradient to bf16, nibble
 * keeps it f32) */
#define BF16_TOL (1.0 / 64)
/* nibble bf16 against float64 (four bf16 steps of the largest value); a result further than BF16_TOL from
 * autocast's passes when it is closer to float64 than autocast's is (torch's bf16 SiLU backward) */
#define F64_BOUND (1.0 / 64)

static hid_t fixture;

static int setup(void **st) {
    (void)st;
    fixture = tu_open("tests/fixtures/bf16.h5");
    return 0;
}

/* The backend under test trains in bf16 (the CUDA backend does not yet: its pass skips these, saying so). */
static void require_bf16(void) {
    nb_ctx *ctx = tu_ctx();
    bool ok = nb_autocast_supported(ctx, NB_BF16);
    nb_ctx_free(ctx);
    if (!ok) {
        print_message("the %s backend has no bf16 kernels: skipped\n", tu_device_name());
        skip();
    }
}

static int teardown(void **st) {
    (void)st;
    H5Fclose(fixture);
    return 0;
}

static double max_err(const float *got, const float *ref, int64_t n) {
    double e = 0, m = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= e)) e = d; /* NaN wins */
        if (fabs(ref[i]) > m) m = fabs(ref[i]);
    }
    return e / m;
}

static bool listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n])) return true;
    return false;
}

static double worst_torch, worst_f64; /* reported at the end */

/* One fixture case in bf16 (blocked: the first 4-D input in the network's layout first) */
static void run_case(const char *op, const char *name, hid_t g, bool blocked) {
    nb_ctx *ctx = tu_ctx();
    oh_spec s;
    assert_int_equal(oh_spec_for(op, &s), 0);
    oh_read_attrs(g, &s);
    char lowp[128] = "";
    hid_t a = H5Aopen(g, "lowp", H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    char *v = NULL;
    if (H5Tis_variable_str(t) > 0) {
        H5Aread(a, t, &v);
        snprintf(lowp, sizeof lowp, "%s", v);
        H5free_memory(v);
    } else {
        size_t sz = H5Tget_size(t);
        assert_true(sz < sizeof lowp);
        H5Aread(a, t, lowp);
        lowp[sz] = 0;
    }
    H5Tclose(t);
    H5Aclose(a);
    nb_tensor *leaf[OH_MAX_IN] = {0}, *in[OH_MAX_IN] = {0};
    bool moved = false;
    for (int i = 0; i < s.n_in; i++) {
        leaf[i] = in[i] = tu_load(ctx, g, s.names[i]);
        if (!in[i]) continue;
        char gname[80];
        snprintf(gname, sizeof gname, "grad_%s", s.names[i]);
        if (tu_has(g, gname)) nb_set_requires_grad(in[i], true);
        if (blocked && !moved && in[i]->ndim == 4) {
            assert_int_equal(nb_tensor_relayout(in[i], nb_activation_layout(in[i])), 0);
            moved = true;
        }
    }
    if (blocked && !moved) goto done;
    nb_set_autocast(ctx, NB_BF16);
    /* the activations an earlier bf16 layer would hand over: cast on the tape, so gradients reach the f32 leaves */
    for (int i = 0; i < s.n_in; i++)
        if (in[i] && listed(lowp, s.names[i])) in[i] = nb_cast(in[i], NB_BF16);
    nb_tensor *y = oh_run(&s, in);
    nb_set_autocast(ctx, NB_F32);
    if (!y) fail_msg("%s/%s: %s", op, name, nb_ctx_last_error(ctx));
    /* where it ran: bf16 out of the ops with bf16 kernels, f32 out of linear layers and the fallbacks */
    bool bf16_kernel = strcmp(op, "linear") && strcmp(op, "mul_channel") && strcmp(op, "hardsigmoid");
    if (y->dtype != (bf16_kernel ? NB_BF16 : NB_F32))
        fail_msg("%s/%s: output %s, expected %s", op, name, nb_dtype_name(y->dtype), bf16_kernel ? "bf16" : "f32");
    int nd;
    int64_t sh[8];
    float *got = tu_host(y), *ref = tu_read_f32(g, "y", &nd, sh), *ref64 = tu_read_f32(g, "y64", &nd, sh);
    int64_t n = nb_numel(y);
    double et = max_err(got, ref, n), e64 = max_err(got, ref64, n), tt = max_err(ref, ref64, n);
    print_message("%-15s %-15s%s forward:  %.2e from autocast, %.2e from float64\n", op, name, blocked ? " blocked" : "", et, e64);
    if (!strcmp(op, "cast")) {
        /* rounding to nearest even, exactly as torch; but a subnormal input may become zero (AVX-512 BF16's
         * vcvtneps2bf16, which oneDNN uses, treats subnormal inputs as zero) */
        for (int64_t i = 0; i < n; i++)
            if (got[i] != ref[i] && !(got[i] == 0 && fabsf(ref[i]) < 1.2e-38f))
                fail_msg("cast of element %lld: %g, torch %g", (long long)i, got[i], ref[i]);
    }
    if ((et > BF16_TOL && e64 > tt) || e64 > F64_BOUND)
        fail_msg("%s/%s forward: %.3g from autocast, %.3g from float64 (autocast's %.3g)", op, name, et, e64, tt);
    if (et > worst_torch) worst_torch = et;
    if (e64 > worst_f64) worst_f64 = e64;
    free(got);
    free(ref);
    free(ref64);
    if (tu_has(g, "gy")) {
        nb_tensor *gy = tu_load(ctx, g, "gy");
        if (nb_backward(y, gy) != 0) fail_msg("%s/%s backward: %s", op, name, nb_ctx_last_error(ctx));
        nb_release(gy);
        for (int i = 0; i < s.n_in; i++) {
            char gn[80], gn64[80];
            snprintf(gn, sizeof gn, "grad_%s", s.names[i]);
            snprintf(gn64, sizeof gn64, "grad64_%s", s.names[i]);
            if (!leaf[i] || !tu_has(g, gn)) continue;
            assert_non_null(leaf[i]->grad);
            assert_int_equal(leaf[i]->grad->dtype, NB_F32); /* the f32 leaf's gradient, through the cast */
            float *gg = tu_host(leaf[i]->grad), *r = tu_read_f32(g, gn, &nd, sh), *r64 = tu_read_f32(g, gn64, &nd, sh);
            int64_t m = nb_numel(leaf[i]);
            double gt = max_err(gg, r, m), g64 = max_err(gg, r64, m), t64 = max_err(r, r64, m);
            print_message("%-15s %-15s%s grad %-12s %.2e from autocast, %.2e from float64\n", op, name,
                          blocked ? " blocked" : "", s.names[i], gt, g64);
            if ((gt > BF16_TOL && g64 > t64) || g64 > F64_BOUND)
                fail_msg("%s/%s gradient of %s: %.3g from autocast, %.3g from float64 (autocast's %.3g)", op, name,
                         s.names[i], gt, g64, t64);
            if (gt > worst_torch) worst_torch = gt;
            if (g64 > worst_f64) worst_f64 = g64;
            free(gg);
            free(r);
            free(r64);
        }
    }
    assert_int_equal(ctx->n_errors, 0);
done:
    for (int i = 0; i < s.n_in; i++) nb_release(leaf[i]);
    nb_ctx_free(ctx);
}

static void test_ops_against_autocast(void **st) {
    (void)st;
    require_bf16();
    hid_t ops = H5Gopen2(fixture, "ops", H5P_DEFAULT);
    char names[64][64], cases[16][64];
    int n = tu_list_groups(ops, names, 64), total = 0;
    assert_true(n >= 15);
    for (int i = 0; i < n; i++) {
        hid_t og = H5Gopen2(ops, names[i], H5P_DEFAULT);
        int nc = tu_list_groups(og, cases, 16);
        for (int k = 0; k < nc; k++) {
            hid_t cg = H5Gopen2(og, cases[k], H5P_DEFAULT);
            run_case(names[i], cases[k], cg, false);
            run_case(names[i], cases[k], cg, true);
            H5Gclose(cg);
            total++;
        }
        H5Gclose(og);
    }
    H5Gclose(ops);
    print_message("%d cases: worst %.2e from autocast (bound %.2e), %.2e from float64 (bound %.2e)\n", total,
                  worst_torch, BF16_TOL, worst_f64, F64_BOUND);
}

/* Host and device conversions agree with each other on every bf16 boundary case, NaN included. */
static void test_cast_host(void **st) {
    (void)st;
    require_bf16();
    nb_ctx *ctx = tu_ctx();
    float v[] = {1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -1.0f - 0x1p-8f, 1e-40f, -3e38f, 3.4e38f, INFINITY, NAN, -0.0f, 0.1f};
    int64_t n = sizeof v / sizeof *v;
    nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 1, &n, v), *b = nb_cast(x, NB_BF16);
    uint16_t got[16];
    assert_int_equal(nb_tensor_to_host(b, got, sizeof(uint16_t) * (size_t)n), 0);
    for (int64_t i = 0; i < n; i++) {
        uint16_t want = nb_f32_to_bf16(v[i]);
        if (isnan(v[i])) assert_true((got[i] & 0x7fff) > 0x7f80);
        else if (fpclassify(v[i]) == FP_SUBNORMAL) assert_true(got[i] == want || (got[i] & 0x7fff) == 0);
        else assert_int_equal(got[i], want);
    }
    assert_int_equal(got[0], 0x3f80); /* 1 + 2^-8 is a tie: to the even 1.0 */
    assert_int_equal(got[1], 0x3f82); /* 1 + 3 * 2^-8: up to the even 1 + 2^-6 */
    assert_true(isinf(nb_bf16_to_f32(got[5])));
    nb_release(x);
    nb_ctx_free(ctx);
}

/* SGD with momentum over m's parameters (at most 128, listed into params) */
static nb_optim *sgd_of(nb_model *m, nb_tensor **params, int *np) {
    for (int i = 0; i < m->params.n; i++)
        if (m->params.items[i].kind == NB_PARAM && *np < 128) params[(*np)++] = m->params.items[i].t;
    nb_optim_config oc = {.kind = NB_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f};
    return nb_optim_new(m->ctx, &oc, params, *np);
}

/* what sgd_of and a step's setup made, and the context */
static void free_step(nb_ctx *ctx, nb_model *m, nb_optim *o, nb_task *task, nb_tensor *x, nb_tensor *y) {
    nb_task_free(task);
    nb_optim_free(o);
    nb_release(x);
    nb_release(y);
    nb_model_free(m);
    nb_ctx_free(ctx);
}

/* Gradients of ResNet-18 after one step in bf16, against float64, as close as autocast's. */
static void test_resnet18_step(void **st) {
    (void)st;
    require_bf16();
    nb_ctx *ctx = tu_ctx();
    nb_model_spec spec = {.arch = "resnet18", .num_classes = 10, .in_channels = 3, .input_size = 64, .width = 1.0f, .seed = 1};
    nb_model *m = nb_model_create(ctx, &spec);
    assert_non_null(m);
    assert_int_equal(dw_fill_params(&m->params), 0);
    int64_t xs[4] = {4, 3, 64, 64};
    float *xv = malloc(sizeof(float) * 4 * 3 * 64 * 64);
    dw_values("input", 4, xs, xv);
    nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, xs, xv);
    free(xv);
    hid_t g = H5Gopen2(fixture, "step_resnet18", H5P_DEFAULT);
    nb_tensor *y = tu_load(ctx, g, "labels");
    nb_tensor *params[128];
    int np = 0;
    nb_optim *o = sgd_of(m, params, &np);
    nb_task *task = nb_task_classify(m, 0.0f);
    nb_step_parts parts = {.model = m, .optim = o, .task = task, .precision = NB_BF16};
    float loss;
    assert_int_equal(nb_train_step(ctx, &parts, x, y, 0, 0, &loss), 0);
    int nd;
    int64_t sh[8];
    float *lb = tu_read_f32(g, "loss_bf16", &nd, sh), *l64 = tu_read_f32(g, "loss_f64", &nd, sh);
    print_message("loss: nibble bf16 %.6f, autocast %.6f, float64 %.6f\n", loss, lb[0], l64[0]);
    assert_true(fabs(loss - l64[0]) <= 2 * fabs(lb[0] - l64[0]) + 1e-3);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < np; i++) {
        nb_tensor *p = params[i];
        assert_non_null(p->grad);
        hid_t h = H5Gopen2(g, p->name, H5P_DEFAULT);
        assert_true(h >= 0);
        int64_t *idx = tu_read_i64(h, "idx", &nd, sh), k = sh[0];
        float *gb = tu_read_f32(h, "bf16", &nd, sh), *g64 = tu_read_f32(h, "f64", &nd, sh), *all = tu_host(p->grad);
        double en = 0, et = 0, norm = 1e-30;
        for (int64_t j = 0; j < k; j++) {
            double r = g64[j];
            en += (all[idx[j]] - r) * (all[idx[j]] - r);
            et += (gb[j] - r) * (gb[j] - r);
            norm += r * r;
        }
        en = sqrt(en / norm), et = sqrt(et / norm);
        /* nibble's error from float64 at most twice autocast's, or within 1% where autocast is closer still */
        if (en > 2 * et && en > 0.01) fail_msg("%s: gradient %.3g from float64, autocast's %.3g", p->name, en, et);
        if (en / (et + 1e-3) > worst) worst = en / (et + 1e-3), worst_name = p->name;
        free(idx);
        free(gb);
        free(g64);
        free(all);
        H5Gclose(h);
    }
    print_message("%d parameters' gradients; the largest ratio of nibble's error to autocast's: %.2f (%s)\n", np, worst,
                  worst_name);
    free(lb);
    free(l64);
    H5Gclose(g);
    free_step(ctx, m, o, task, x, y);
}

/* Whether every tensor of a's params (parameters alone: kind NB_PARAM, or buffers too) equals b's bit for bit. */
static bool same_params(const nb_model *a, const nb_model *b, bool buffers, const char **which) {
    for (int i = 0; i < a->params.n; i++) {
        if (!buffers && a->params.items[i].kind != NB_PARAM) continue;
        const nb_tensor *x = a->params.items[i].t, *y = b->params.items[i].t;
        if (x->dtype != NB_F32) continue; /* batch counters */
        float *hx = tu_host(x), *hy = tu_host(y);
        bool same = !memcmp(hx, hy, sizeof(float) * (size_t)nb_numel(x));
        free(hx);
        free(hy);
        *which = x->name;
        if (!same) return false;
    }
    return true;
}

/* ---- bin/train in bf16 ---- */

static char dir[128], cfg[512];

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static int setup_run(void **st) {
    (void)st;
    if (make_test_dir(dir, sizeof dir, "precision")) return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/train.h5", dir);
    synth_write_h5(p, 1024, 1, 16, 16, 4, true, 21);
    snprintf(p, sizeof p, "%s/val.h5", dir);
    synth_write_h5(p, 256, 1, 16, 16, 4, true, 22);
    snprintf(cfg, sizeof cfg, "%s/bf16.cfg", dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "# ResNet-8 in bf16 on 1,024 synthetic 16x16 images\n"
            "[model]\narch = resnet8\nnum_classes = 4\nin_channels = 1\ninput_size = 16\n"
            "[data]\nformat = hdf5\ntrain = %s/train.h5\nval = %s/val.h5\naugment = flip\nmean = 0.3\nstd = 0.3\n"
            "[train]\nepochs = 2\nbatch = 64\nlog_every = 4\nprecision = bf16\n"
            "[optim]\ntype = sgd\nlr = 0.05\nschedule = cosine\n",
            dir, dir);
    fclose(f);
    return 0;
}

static int teardown_run(void **st) {
    (void)st;
    return remove_test_dir(dir);
}

static void train_ok(const char *const *argv) {
    run_result r;
    run_prog(&r, argv);
    if (r.status != 0) fail_msg("bin/train exited %d:\n%s", r.status, r.err);
}

/* Run a's last.h5 and run b's are the same bytes (b: stopped and resumed). */
static void assert_same_last(const char *a, const char *b) {
    char la[700], lb[700];
    snprintf(la, sizeof la, "%s/%s/last.h5", dir, a);
    snprintf(lb, sizeof lb, "%s/%s/last.h5", dir, b);
    ckpt_bytes x = ckpt_bytes_read(la), y = ckpt_bytes_read(lb);
    assert_true(x.len > 10000);
    assert_int_equal(x.len, y.len);
    if (memcmp(x.buf, y.buf, x.len)) fail_msg("%s and %s differ", la, lb);
    free(x.buf);
    free(y.buf);
}

/* A metric of epoch 2 in run's metrics.jsonl ("val_top1", "val_loss") */
static double epoch2(const char *run, const char *key) {
    char p[700], k[64];
    snprintf(p, sizeof p, "%s/%s/metrics.jsonl", dir, run);
    snprintf(k, sizeof k, "\"%s\": ", key);
    char *m = read_file(p, NULL);
    assert_non_null(m);
    const char *e2 = strstr(m, "\"type\": \"epoch\", \"epoch\": 2");
    assert_non_null(e2);
    const char *v = strstr(e2, k);
    assert_non_null(v);
    double x = atof(v + strlen(k));
    free(m);
    return x;
}

/* 2 epochs == 23 steps + --resume, bit for bit; the run learns as the fp32 run does */
static void test_train_resume(void **st) {
    (void)st;
    char oa[600], ob[600], oc[600];
    snprintf(oa, sizeof oa, "train.out=%s/a", dir);
    snprintf(ob, sizeof ob, "train.out=%s/b", dir);
    snprintf(oc, sizeof oc, "train.out=%s/f32", dir);
    train_ok(ARGV("train", cfg, oa));
    train_ok(ARGV("train", cfg, ob, "train.steps=23"));
    train_ok(ARGV("train", cfg, ob, "--resume"));
    train_ok(ARGV("train", cfg, oc, "train.precision=fp32"));
    assert_same_last("a", "b");
    double bf = epoch2("a", "val_top1"), f32 = epoch2("f32", "val_top1");
    print_message("ResNet-8, epoch 2: val top-1 %.4f in bf16, %.4f in fp32\n", bf, f32);
    assert_true(bf > 0.4 && fabs(bf - f32) < 0.05); /* 4 classes: chance is 0.25 */
}

static void test_refused(void **st) {
    (void)st;
    char o[600];
    snprintf(o, sizeof o, "train.out=%s/c", dir);
    run_result r;
    run_prog(&r, ARGV("train", cfg, o, "train.precision=fp16"));
    assert_int_not_equal(r.status, 0);
    assert_true(r.status < 128);
    assert_non_null(strstr(r.err, "train.precision = fp16"));
    /* loss scaling's factors must move the scale the right way, within f32 */
    const char *bad[][2] = {{"train.loss_scale_backoff=1.5", "train.loss_scale_backoff = 1.5"},
                            {"train.loss_scale_growth=0.5", "train.loss_scale_growth = 0.5"},
                            {"train.loss_scale_init=1e39", "train.loss_scale_init = 1e+39"},
                            {"train.loss_scale_interval=-1", "train.loss_scale_interval = -1"}};
    for (int i = 0; i < 4; i++) {
        run_prog(&r, ARGV("train", cfg, o, "train.loss_scale=dynamic", bad[i][0]));
        assert_true(r.status > 0 && r.status < 128);
        if (!strstr(r.err, bad[i][1])) fail_msg("%s: no \"%s\" in:\n%s", bad[i][0], bad[i][1], r.err);
    }
}

/* Quantization-aware training (W8A8, LSQ) in bf16 learns as it does in fp32, and resumes bit for bit. Its
 * quantizers hand f32 tensors to ops whose other operand is bf16: the residual adds (test_mixed_add). */
static void test_qat(void **st) {
    (void)st;
    char oa[600], ob[600], oc[600];
    snprintf(oa, sizeof oa, "train.out=%s/qat_a", dir);
    snprintf(ob, sizeof ob, "train.out=%s/qat_b", dir);
    snprintf(oc, sizeof oc, "train.out=%s/qat_f32", dir);
#define QAT "model.arch=resnet14", "compress.methods=qat", "compress.wbits=8", "compress.abits=8"
    train_ok(ARGV("train", cfg, oa, QAT));
    train_ok(ARGV("train", cfg, ob, QAT, "train.steps=23"));
    train_ok(ARGV("train", cfg, ob, QAT, "--resume"));
    train_ok(ARGV("train", cfg, oc, QAT, "train.precision=fp32"));
#undef QAT
    assert_same_last("qat_a", "qat_b");
    /* the loss, not top-1: this set's top-1 moves by 0.1 between runs of equal loss (two of its classes are close) */
    double bf = epoch2("qat_a", "val_loss"), f32 = epoch2("qat_f32", "val_loss");
    print_message("ResNet-14 W8A8 QAT, epoch 2: val loss %.4f in bf16, %.4f in fp32 (chance: %.4f)\n", bf, f32, log(4.0));
    assert_true(bf < 0.75 * log(4.0) && fabs(bf - f32) < 0.1);
}

/* bin/train with dynamic loss scaling (bf16): the scale grows every 5 steps from 1024, across a --resume that
 * continues it bit for bit; the metrics show it; nothing overflows in bf16 here, and the network trained is
 * the unscaled run's (test_train_resume's "a") bit for bit. */
static void test_loss_scale_run(void **st) {
    (void)st;
    char oa[600], ob[600], la[700], ref[700];
    snprintf(oa, sizeof oa, "train.out=%s/ls_a", dir);
    snprintf(ob, sizeof ob, "train.out=%s/ls_b", dir);
#define LS "train.loss_scale=dynamic", "train.loss_scale_init=1024", "train.loss_scale_interval=5"
    train_ok(ARGV("train", cfg, oa, LS));
    train_ok(ARGV("train", cfg, ob, LS, "train.steps=23"));
    train_ok(ARGV("train", cfg, ob, LS, "--resume"));
#undef LS
    assert_same_last("ls_a", "ls_b");
    snprintf(la, sizeof la, "%s/ls_a/last.h5", dir);
    snprintf(ref, sizeof ref, "%s/a/last.h5", dir);
    /* 32 steps: six growths */
    assert_true(epoch2("ls_a", "loss_scale") == 65536.0 && epoch2("ls_a", "skipped_steps") == 0.0);
    nb_ctx *ctx = tu_ctx();
    nb_model_spec spec = {.arch = "resnet8", .num_classes = 4, .in_channels = 1, .input_size = 16, .width = 1.0f, .seed = 1};
    nb_model *ms = nb_model_create(ctx, &spec), *mr = nb_model_create(ctx, &spec);
    assert_int_equal(nb_ckpt_load_model(ctx, la, &ms->params, NB_NAMES_ALL), 0);
    assert_int_equal(nb_ckpt_load_model(ctx, ref, &mr->params, NB_NAMES_ALL), 0);
    const char *which = "";
    if (!same_params(ms, mr, true, &which)) fail_msg("%s differs from the unscaled run's %s", which, ref);
    nb_model_free(ms);
    nb_model_free(mr);
    nb_ctx_free(ctx);
    /* a checkpoint whose scale is not a positive finite number (edited, and checksummed again) is refused at
     * --resume, naming the file and the value */
    const double bad[2] = {-1.0, NAN};
    for (int i = 0; i < 2; i++) {
        hid_t f = H5Fopen(la, H5F_ACC_RDWR, H5P_DEFAULT);
        assert_true(f >= 0);
        hid_t d = H5Dopen2(f, "state/loss_scale", H5P_DEFAULT);
        assert_true(d >= 0);
        assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &bad[i]) >= 0);
        H5Dclose(d);
        H5Fclose(f);
        assert_int_equal(nb_h5_seal(NULL, la), 0);
        run_result r;
        run_prog(&r, ARGV("train", cfg, oa, "train.loss_scale=dynamic", "train.epochs=3", "--resume"));
        if (r.status != 1 || !strstr(r.err, la) || !strstr(r.err, "state/loss_scale is"))
            fail_msg("a scale of %g: bin/train --resume exited %d:\n%s", bad[i], r.status, r.err);
    }
}

/* An add of a bf16 and an f32 tensor, both blocked, in either order: computed in f32 (as torch promotes) on
 * the bf16 operand's values, each operand's gradient exact. The second operand is arranged like the first,
 * whose layout is a bf16 one when the first is bf16: the f32 copy must take that blocking at f32's size. */
static void test_mixed_add(void **st) {
    (void)st;
    require_bf16();
    nb_ctx *ctx = tu_ctx();
    int64_t sh[4] = {4, 16, 8, 8}, n = 4 * 16 * 8 * 8;
    for (int order = 0; order < 2; order++) {
        nb_tensor *a = nb_tensor_new(ctx, NB_F32, 4, sh), *b = nb_tensor_new(ctx, NB_F32, 4, sh);
        tu_randn(a, 7);
        tu_randn(b, 8);
        float *av = tu_host(a), *bv = tu_host(b), *gy = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) gy[i] = (float)(i % 7) - 3.0f;
        assert_int_equal(nb_tensor_relayout(a, nb_activation_layout(a)), 0);
        assert_int_equal(nb_tensor_relayout(b, nb_activation_layout(b)), 0);
        nb_set_requires_grad(a, true);
        nb_set_requires_grad(b, true);
        nb_set_autocast(ctx, NB_BF16);
        nb_tensor *a16 = nb_cast(a, NB_BF16);
        nb_tensor *y = order ? nb_add(b, a16) : nb_add(a16, b);
        nb_set_autocast(ctx, NB_F32);
        if (!y) fail_msg("%s", nb_ctx_last_error(ctx));
        assert_int_equal(y->dtype, NB_F32);
        float *yv = tu_host(y);
        for (int64_t i = 0; i < n; i++) {
            float want = nb_bf16_to_f32(nb_f32_to_bf16(av[i])) + bv[i];
            if (yv[i] != want) fail_msg("order %d, element %lld: %g, expected %g", order, (long long)i, yv[i], want);
        }
        nb_tensor *g = nb_tensor_from_host(ctx, NB_F32, 4, sh, gy);
        assert_int_equal(nb_backward(y, g), 0);
        float *ga = tu_host(a->grad), *gb = tu_host(b->grad);
        for (int64_t i = 0; i < n; i++)
            if (ga[i] != gy[i] || gb[i] != gy[i])
                fail_msg("order %d, gradient %lld: %g and %g, expected %g", order, (long long)i, ga[i], gb[i], gy[i]);
        free(av);
        free(bv);
        free(yv);
        free(gy);
        free(ga);
        free(gb);
        nb_release(g);
        nb_release(a);
        nb_release(b);
    }
    assert_int_equal(ctx->n_errors, 0);
    nb_ctx_free(ctx);
}

/* ---- loss scaling ---- */

/* Loss scaling through whole steps of ResNet-8 in `precision`. From a power of two, three steps land on the
 * unscaled run's parameters and batch-norm statistics bit for bit: a factor 2^k commutes with every rounding
 * (f32's and bf16's) short of overflow, and the unscale's 2^-k is exact. From 2^127 backward overflows: such a
 * step changes no parameter, halves the scale and returns 2, until the scale is small enough to train. */
static void loss_scale_steps(nb_dtype precision) {
    nb_ctx *ctx = tu_ctx();
    nb_model_spec spec = {.arch = "resnet8", .num_classes = 4, .in_channels = 1, .input_size = 16, .width = 1.0f, .seed = 3};
    nb_model *m0 = nb_model_create(ctx, &spec), *m1 = nb_model_create(ctx, &spec), *m2 = nb_model_create(ctx, &spec);
    nb_tensor *p0[128], *p1[128], *p2[128];
    int n0 = 0, n1 = 0, n2 = 0;
    nb_optim *o0 = sgd_of(m0, p0, &n0), *o1 = sgd_of(m1, p1, &n1), *o2 = sgd_of(m2, p2, &n2);
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){32, 1, 16, 16});
    tu_randn(x, 9);
    int64_t lab[32];
    for (int i = 0; i < 32; i++) lab[i] = i % 4;
    nb_tensor *y = nb_tensor_from_host(ctx, NB_I64, 1, (int64_t[]){32}, lab);
    nb_task *task = nb_task_classify(m0, 0.0f);
    nb_loss_scaler ls = {.scale = 0x1p16, .growth = 2, .backoff = 0.5, .interval = 2};
    nb_step_parts plain = {.model = m0, .optim = o0, .task = task, .precision = precision};
    nb_step_parts scaled = {.model = m1, .optim = o1, .task = task, .precision = precision, .scaler = &ls};
    const char *which = "";
    float l0, l1;
    for (int s = 0; s < 3; s++) {
        assert_int_equal(nb_train_step(ctx, &plain, x, y, s, 0, &l0), 0);
        assert_int_equal(nb_train_step(ctx, &scaled, x, y, s, 0, &l1), 0);
        if (l0 != l1 || !same_params(m0, m1, true, &which))
            fail_msg("%s, step %d: the scaled run differs (loss %.9g vs %.9g; %s)", nb_dtype_name(precision), s, l1, l0,
                     which);
    }
    assert_true(ls.scale == 0x1p17 && ls.good == 1 && ls.skipped == 0);

    /* the first convolution's weights at 1e-3 of their size: batch norm makes the forward the same, and the
     * gradients behind it, divided by its thousandfold smaller deviation, pass f32's range at a scale of 2^127 */
    nb_model *ref = nb_model_create(ctx, &spec); /* m2's parameters as they stand */
    nb_tensor *w2 = m2->params.items[0].t, *wr = ref->params.items[0].t;
    assert_int_equal(w2->ndim, 4);
    assert_int_equal(nb_axpby(w2, 1e-3f, w2, 0.0f) || nb_axpby(wr, 1e-3f, wr, 0.0f), 0);
    nb_loss_scaler big = {.scale = 0x1p127, .growth = 2, .backoff = 0.5, .interval = 1000};
    nb_step_parts over = {.model = m2, .optim = o2, .task = task, .precision = precision, .scaler = &big};
    int s, rc = 2;
    for (s = 0; s < 64 && rc == 2; s++) {
        double before = big.scale;
        rc = nb_train_step(ctx, &over, x, y, s, 0, &l1);
        if (rc == 2) {
            if (!same_params(m2, ref, false, &which)) fail_msg("step %d overflowed but changed %s", s, which);
            assert_true(big.scale == before / 2 && big.skipped == s + 1);
        }
    }
    assert_int_equal(rc, 0);
    assert_false(same_params(m2, ref, false, &which)); /* the first clean step trains */
    print_message("%s: 3 steps from a scale of 2^16 equal the unscaled ones bit for bit; from 2^127, %lld steps "
                  "overflowed and were skipped, then 2^%d trained\n",
                  nb_dtype_name(precision), (long long)big.skipped, (int)log2(big.scale));
    assert_true(big.skipped >= 1);
    nb_model_free(ref);
    nb_optim_free(o1);
    nb_optim_free(o2);
    nb_model_free(m1);
    nb_model_free(m2);
    free_step(ctx, m0, o0, task, x, y);
}

static void test_loss_scale(void **st) {
    (void)st;
    loss_scale_steps(NB_F32);
    require_bf16();
    loss_scale_steps(NB_BF16);
}

/* The memory a training step holds: bf16 activations and their gradients take half of f32's. */
static size_t step_peak(nb_dtype precision) {
    nb_ctx *ctx = tu_ctx();
    nb_model_spec spec = {.arch = "resnet20", .num_classes = 10, .in_channels = 1, .input_size = 28, .width = 1.0f, .seed = 1};
    nb_model *m = nb_model_create(ctx, &spec);
    nb_tensor *params[128];
    int np = 0;
    nb_optim *o = sgd_of(m, params, &np);
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){64, 1, 28, 28});
    tu_randn(x, 5);
    int64_t lab[64];
    for (int i = 0; i < 64; i++) lab[i] = i % 10;
    nb_tensor *y = nb_tensor_from_host(ctx, NB_I64, 1, (int64_t[]){64}, lab);
    nb_task *task = nb_task_classify(m, 0.0f);
    nb_step_parts parts = {.model = m, .optim = o, .task = task, .precision = precision};
    float loss;
    for (int s = 0; s < 2; s++) assert_int_equal(nb_train_step(ctx, &parts, x, y, s, 0, &loss), 0);
    nb_mem_stats ms;
    nb_mem_stats_get(ctx, &ms);
    free_step(ctx, m, o, task, x, y);
    return ms.peak_in_use;
}

static void test_memory(void **st) {
    (void)st;
    require_bf16();
    size_t f32 = step_peak(NB_F32), bf16 = step_peak(NB_BF16);
    print_message("ResNet-20, batch 64: peak %.1f MiB in fp32, %.1f MiB in bf16\n", f32 / 1048576.0, bf16 / 1048576.0);
    assert_true(bf16 < 0.7 * f32);
}

int main(void) {
    const struct CMUnitTest ops[] = {
        cmocka_unit_test(test_cast_host),
        cmocka_unit_test(test_ops_against_autocast),
        cmocka_unit_test(test_resnet18_step),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_mixed_add),
        cmocka_unit_test(test_loss_scale),
    };
    const struct CMUnitTest runs[] = {
        cmocka_unit_test(test_train_resume),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_qat),
        cmocka_unit_test(test_loss_scale_run),
    };
    int rc = cmocka_run_group_tests_name("bf16 ops and step vs PyTorch autocast", ops, setup, teardown);
    return rc | cmocka_run_group_tests_name("bin/train in bf16", runs, setup_run, teardown_run);
}
