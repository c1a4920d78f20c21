/* Compression: the projection onto each codebook is optimal (against exhaustive search on small vectors);
 * ADMM's scaled dual follows the growing penalty; after ADMM training every quantized layer lies on its codebook (at most the codebook's values, equal to
 * α·codes, which the checkpoint carries, with α per layer or per output channel); pruning leaves exactly the target sparsity in each layer, and masked
 * weights stay zero through SGD steps with momentum and weight decay; channel pruning zeroes whole filters and
 * their batch-norm scale and shift, only where no residual sum reads the channel; the distillation loss and
 * its gradient match PyTorch; a combined prune + ADMM + distillation run resumes bit for bit; post-training
 * quantization and DFQ keep their promises; bad [compress] settings are clear configuration errors. */
#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "compress/codebook.h"
#include "compress/compressor.h"
#include "core/arith.h"
#include "datasets/synth_images.h"
#include "core/rng.h"
#include "tests/support/ckpt_bytes.h"
#include "tests/support/run.h"
#include "tests/support/synth.h"
#include "tests/support/testutil.h"

static char dir[128], cfg[512];

static int setup(void **st) {
    (void)st;
    if (make_test_dir(dir, sizeof dir, "compress")) return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/train.h5", dir);
    synth_write_h5(p, 1024, 1, 12, 12, 4, true, 21);
    snprintf(p, sizeof p, "%s/val.h5", dir);
    synth_write_h5(p, 256, 1, 12, 12, 4, true, 22);
    snprintf(cfg, sizeof cfg, "%s/small.cfg", dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "# CIFAR-style ResNet-8 on 1,024 synthetic 12x12 images in 4 classes\n"
            "[model]\narch = resnet8\nnum_classes = 4\nin_channels = 1\ninput_size = 12\n"
            "[data]\nformat = hdf5\ntrain = %s/train.h5\nval = %s/val.h5\naugment = flip\nmean = 0.3\nstd = 0.3\nworkers = 1\n"
            "[train]\nepochs = 2\nbatch = 64\nlog_every = 8\n"
            "[optim]\ntype = sgd\nlr = 0.05\nmomentum = 0.9\nwd = 5e-4\nschedule = cosine\n"
            "[compress]\nrho = 0.05\nrho_growth = 1.5\nadmm_interval = 4\n",
            dir, dir);
    fclose(f);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    return remove_test_dir(dir);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static void run_ok(const char *const *argv) {
    run_result r;
    run_prog(&r, argv);
    if (r.status != 0) fail_msg("bin/%s exited %d:\n%s", argv[0], r.status, r.err);
}

/* ---- the projection ---- */

/* min over every code vector of ||v - a*q||² with its best a >= 0 */
static double exhaustive(const nb_codebook *cb, const float *v, int n) {
    int vals[20], k = 0;
    for (int i = 0; i < cb->n_levels; i++) {
        vals[k++] = cb->levels[i];
        vals[k++] = -cb->levels[i];
    }
    if (cb->zero) vals[k++] = 0;
    long total = 1;
    for (int i = 0; i < n; i++) total *= k;
    double best = INFINITY;
    for (long idx = 0; idx < total; idx++) {
        long r = idx;
        double vq = 0, qq = 0;
        int q[8];
        for (int i = 0; i < n; i++) {
            q[i] = vals[r % k];
            r /= k;
            vq += v[i] * q[i];
            qq += q[i] * q[i];
        }
        double a = qq > 0 && vq > 0 ? vq / qq : 0, e = 0;
        for (int i = 0; i < n; i++) e += ((double)v[i] - a * q[i]) * ((double)v[i] - a * q[i]);
        if (e < best) best = e;
    }
    return best;
}

static void test_projection_optimal(void **st) {
    (void)st;
    static const char *const books[] = {"binary", "ternary", "pm2", "pm4", "pow2_3"};
    for (int c = 0; c < 5; c++) {
        nb_codebook cb;
        assert_int_equal(nb_codebook_parse(books[c], &cb), 0);
        for (int trial = 0; trial < 200; trial++) {
            int n = 2 + trial % 5;
            float v[8];
            int8_t q[8];
            nb_rng r = nb_rng_make((uint64_t)trial, (uint64_t)c);
            for (int i = 0; i < n; i++) v[i] = (nb_rng_unit(&r) - 0.5f) * (trial % 3 ? 1.0f : 10.0f);
            float a = nb_project_optimal(&cb, v, n, q);
            double e = nb_project_error(v, n, a, q), best = exhaustive(&cb, v, n);
            if (e > best * (1 + 1e-6) + 1e-12)
                fail_msg("%s, %d values: error %.9g, exhaustive search finds %.9g", books[c], n, e, best);
            /* a fixed point of the alternation: a = <v,q>/<q,q> and q the nearest levels */
            double vq = 0, qq = 0;
            for (int i = 0; i < n; i++) {
                vq += v[i] * q[i];
                qq += q[i] * q[i];
            }
            if (qq > 0) assert_true(fabs(a - vq / qq) <= 1e-5 * fabs(a) + 1e-7);
        }
    }
    /* parsing: unknown names and empty codebooks are refused; bits count the sign */
    nb_codebook cb;
    assert_int_not_equal(nb_codebook_parse("pow2_0", &cb), 0);
    assert_int_not_equal(nb_codebook_parse("octal", &cb), 0);
    assert_int_equal(nb_codebook_parse("pm4", &cb), 0);
    assert_int_equal(cb.bits, 3);
    assert_int_equal(nb_codebook_parse("ternary", &cb), 0);
    assert_int_equal(cb.bits, 2);
    /* the baselines' closed forms */
    float v[6] = {0.9f, -0.1f, 0.5f, -0.8f, 0.05f, 0.3f};
    int8_t q[6];
    float a = nb_project_bwn(v, 6, q);
    assert_true(fabsf(a - (0.9f + 0.1f + 0.5f + 0.8f + 0.05f + 0.3f) / 6) < 1e-6f);
    assert_true(q[0] == 1 && q[1] == -1 && q[4] == 1);
    a = nb_project_twn(v, 6, q); /* threshold 0.7 * mean|v| = 0.308 */
    assert_true(q[1] == 0 && q[4] == 0 && q[5] == 0 && q[0] == 1 && q[3] == -1);
    assert_true(fabsf(a - (0.9f + 0.5f + 0.8f) / 3) < 1e-6f);
    nb_codebook_parse("pm2", &cb);
    a = nb_project_round(&cb, v, 6, q); /* min-max: 0.9 / 2 */
    assert_true(fabsf(a - 0.45f) < 1e-6f && q[0] == 2 && q[3] == -2 && q[2] == 1 && q[4] == 0);
}

/* ---- checkpoints ---- */

static float *read_ds(hid_t f, const char *name, int64_t *n) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) fail_msg("no dataset %s", name);
    hid_t sp = H5Dget_space(d);
    *n = H5Sget_simple_extent_npoints(sp);
    float *buf = malloc(sizeof(float) * (size_t)(*n ? *n : 1));
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Sclose(sp);
    H5Dclose(d);
    return buf;
}

static const char *const resnet8_convs[] = {"layer1.0.conv1.weight", "layer1.0.conv2.weight", "layer2.0.conv1.weight",
                                            "layer2.0.conv2.weight", "layer2.0.downsample.0.weight",
                                            "layer3.0.conv1.weight", "layer3.0.conv2.weight",
                                            "layer3.0.downsample.0.weight"};

/* Every quantized layer of the run's last.h5 and best.h5 equals alpha x codes, codes in {0,±1,±2}, with one
 * alpha per layer or one per output channel; at most 5 distinct values per alpha. */
static void check_on_codebook(const char *out, bool per_channel) {
    char path[700];
    for (int which = 0; which < 2; which++) {
        snprintf(path, sizeof path, "%s/%s", out, which ? "best.h5" : "last.h5");
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        assert_true(f >= 0);
        for (size_t k = 0; k < sizeof resnet8_convs / sizeof *resnet8_convs; k++) {
            char name[200];
            int64_t n, nc, na;
            snprintf(name, sizeof name, "model/%s", resnet8_convs[k]);
            float *w = read_ds(f, name, &n);
            snprintf(name, sizeof name, "compress/admm/codes/%s", resnet8_convs[k]);
            float *codes = read_ds(f, name, &nc); /* int8 read as float */
            snprintf(name, sizeof name, "compress/admm/alpha/%s", resnet8_convs[k]);
            float *alpha = read_ds(f, name, &na);
            assert_int_equal(n, nc);
            if (per_channel ? na < 8 || n % na : na != 1)
                fail_msg("%s %s: %lld scales for %lld weights (%s)", path, resnet8_convs[k], (long long)na, (long long)n,
                         per_channel ? "one per output channel wanted" : "one per layer wanted");
            int64_t per = n / na;
            for (int64_t g = 0; g < na; g++) {
                assert_true(alpha[g] > 0);
                float distinct[16];
                int nd = 0;
                for (int64_t i = g * per; i < (g + 1) * per; i++) {
                    if (w[i] != alpha[g] * codes[i])
                        fail_msg("%s %s[%lld] = %.9g, not alpha %.9g x code %g", path, resnet8_convs[k], (long long)i,
                                 w[i], alpha[g], codes[i]);
                    assert_true(fabsf(codes[i]) <= 2);
                    bool seen = false;
                    for (int j = 0; j < nd; j++) seen |= distinct[j] == w[i];
                    if (!seen && nd < 16) distinct[nd++] = w[i];
                }
                if (nd > 5) fail_msg("%s %s holds %d distinct values under one alpha; {0,±1,±2} allows 5", path,
                                     resnet8_convs[k], nd);
            }
            if (per_channel) { /* the scales are the channels' own, not one repeated */
                int differ = 0;
                for (int64_t g = 1; g < na; g++) differ += alpha[g] != alpha[0];
                assert_true(differ > 0);
            }
            free(w);
            free(codes);
            free(alpha);
        }
        /* the first convolution and the classifier stay full precision */
        int64_t n;
        float *w = read_ds(f, "model/conv1.weight", &n);
        int nd = 0;
        for (int64_t i = 1; i < n; i++) nd += w[i] != w[0];
        assert_true(nd > 20);
        free(w);
        H5Fclose(f);
    }
}

static void test_admm_on_codebook(void **st) {
    (void)st;
    char out[600], outkv[620];
    snprintf(out, sizeof out, "%s/admm", dir);
    snprintf(outkv, sizeof outkv, "train.out=%s", out);
    run_ok(ARGV("train", cfg, outkv, "compress.methods=admm", "compress.codebook=pm2"));
    check_on_codebook(out, false);
    snprintf(out, sizeof out, "%s/admm_channel", dir);
    snprintf(outkv, sizeof outkv, "train.out=%s", out);
    run_ok(ARGV("train", cfg, outkv, "compress.methods=admm", "compress.codebook=pm2", "compress.scale=channel"));
    check_on_codebook(out, true);
}

static void test_pruning(void **st) {
    (void)st;
    char out[600], outkv[620], path[700];
    /* unstructured, 75%, SGD with momentum 0.9 and weight decay: zeros stay zeros through every step */
    snprintf(out, sizeof out, "%s/prune", dir);
    snprintf(outkv, sizeof outkv, "train.out=%s", out);
    run_ok(ARGV("train", cfg, outkv, "compress.methods=prune", "compress.sparsity=0.75", "compress.prune_epochs=1",
                "compress.prune_every=4"));
    snprintf(path, sizeof path, "%s/last.h5", out);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    for (size_t k = 0; k < sizeof resnet8_convs / sizeof *resnet8_convs; k++) {
        char name[200];
        int64_t n, nm, zeros = 0;
        snprintf(name, sizeof name, "model/%s", resnet8_convs[k]);
        float *w = read_ds(f, name, &n);
        snprintf(name, sizeof name, "compress/prune/mask/%s", resnet8_convs[k]);
        float *m = read_ds(f, name, &nm);
        assert_int_equal(n, nm);
        for (int64_t i = 0; i < n; i++) {
            zeros += w[i] == 0.0f;
            if (m[i] == 0.0f && w[i] != 0.0f) fail_msg("%s[%lld] is masked but %g", resnet8_convs[k], (long long)i, w[i]);
        }
        if (zeros != llround(0.75 * (double)n))
            fail_msg("%s: %lld of %lld weights are zero, the target is %lld", resnet8_convs[k], (long long)zeros,
                     (long long)n, (long long)llround(0.75 * (double)n));
        free(w);
        free(m);
    }
    H5Fclose(f);

    /* channels, half of them: whole filters and their BN scale and shift, only where no residual sum reads */
    snprintf(out, sizeof out, "%s/prune_channels", dir);
    snprintf(outkv, sizeof outkv, "train.out=%s", out);
    run_result r;
    run_prog(&r, ARGV("train", cfg, outkv, "compress.methods=prune", "compress.sparsity=0.5", "compress.granularity=channel"));
    if (r.status) fail_msg("bin/train exited %d:\n%s", r.status, r.err);
    assert_non_null(strstr(r.err, "leaves whole")); /* the conv2s and downsamples feed residual sums */
    snprintf(path, sizeof path, "%s/last.h5", out);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    static const char *const prunable[3] = {"layer1.0", "layer2.0", "layer3.0"};
    for (int k = 0; k < 3; k++) {
        char name[200];
        int64_t n, C;
        snprintf(name, sizeof name, "model/%s.conv1.weight", prunable[k]);
        float *w = read_ds(f, name, &n);
        snprintf(name, sizeof name, "model/%s.bn1.weight", prunable[k]);
        float *g = read_ds(f, name, &C);
        snprintf(name, sizeof name, "model/%s.bn1.bias", prunable[k]);
        float *b = read_ds(f, name, &C);
        int64_t per = n / C, dead = 0;
        for (int64_t c = 0; c < C; c++) {
            bool zero = true;
            for (int64_t i = 0; i < per; i++) zero &= w[c * per + i] == 0.0f;
            if (zero) {
                dead++;
                assert_true(g[c] == 0.0f && b[c] == 0.0f);
            }
        }
        if (dead != C / 2) fail_msg("%s.conv1: %lld of %lld filters pruned, want %lld", prunable[k], (long long)dead,
                                    (long long)C, (long long)(C / 2));
        free(w);
        free(g);
        free(b);
    }
    int64_t n;
    float *w = read_ds(f, "model/layer1.0.conv2.weight", &n);
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) zeros += w[i] == 0.0f;
    assert_true(zeros < n / 10); /* left whole */
    free(w);
    H5Fclose(f);
}

static void test_kd_loss_vs_torch(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    hid_t f = tu_open("tests/fixtures/kd.h5");
    nb_tensor *s = tu_load(ctx, f, "student"), *t = tu_load(ctx, f, "teacher"), *y = tu_load(ctx, f, "labels");
    float alpha = (float)tu_attr_double(f, "alpha", 0), T = (float)tu_attr_double(f, "temperature", 0),
          eps = (float)tu_attr_double(f, "label_smoothing", 0);
    nb_set_requires_grad(s, true);
    size_t mark = nb_scope_begin(ctx);
    /* what the kd compressor builds from the trainer's cross-entropy */
    nb_tensor *loss = nb_add_scaled(nb_cross_entropy(s, y, eps), alpha, nb_kl_div(s, t, T), 1.0f - alpha);
    int nd;
    int64_t sh[4];
    float *want = tu_read_f32(f, "loss", &nd, sh), *gw = tu_read_f32(f, "grad_student", &nd, sh);
    tu_assert_tensor_close("distillation loss", loss, want, 1, 1e-5);
    assert_int_equal(nb_backward(loss, NULL), 0);
    tu_assert_tensor_close("distillation loss gradient", s->grad, gw, 80, 1e-5);
    nb_scope_end(ctx, mark);
    free(want);
    free(gw);
    nb_release(s);
    nb_release(t);
    nb_release(y);
    H5Fclose(f);
    nb_ctx_free(ctx);
}

static void test_combined_resume(void **st) {
    (void)st;
    /* a teacher for the distillation: a short plain run */
    char tout[600], toutkv[620], teacher[640];
    snprintf(tout, sizeof tout, "%s/teacher", dir);
    snprintf(toutkv, sizeof toutkv, "train.out=%s", tout);
    run_ok(ARGV("train", cfg, toutkv, "train.epochs=1"));
    snprintf(teacher, sizeof teacher, "compress.teacher=%s/best.h5", tout);
    const char *methods = "compress.methods=prune,admm,kd";
    char a[600], b[600], akv[620], bkv[620];
    snprintf(a, sizeof a, "%s/combined_a", dir);
    snprintf(b, sizeof b, "%s/combined_b", dir);
    snprintf(akv, sizeof akv, "train.out=%s", a);
    snprintf(bkv, sizeof bkv, "train.out=%s", b);
    run_ok(ARGV("train", cfg, akv, methods, teacher, "compress.sparsity=0.5", "compress.prune_epochs=1",
                "compress.prune_every=4", "compress.codebook=pm4", "compress.importance=taylor"));
    run_ok(ARGV("train", cfg, bkv, methods, teacher, "compress.sparsity=0.5", "compress.prune_epochs=1",
                "compress.prune_every=4", "compress.codebook=pm4", "compress.importance=taylor", "train.steps=22"));
    run_ok(ARGV("train", cfg, bkv, methods, teacher, "compress.sparsity=0.5", "compress.prune_epochs=1",
                "compress.prune_every=4", "compress.codebook=pm4", "compress.importance=taylor", "--resume"));
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/last.h5", a);
    snprintf(pb, sizeof pb, "%s/last.h5", b);
    ckpt_bytes x = ckpt_bytes_read(pa), y = ckpt_bytes_read(pb);
    assert_true(x.len > 10000);
    assert_non_null(memmem(x.buf, x.len, "compress/admm/U/", 16)); /* the compression state is in there */
    assert_non_null(memmem(x.buf, x.len, "compress/prune/score/", 21));
    assert_int_equal(x.len, y.len);
    if (memcmp(x.buf, y.buf, x.len)) fail_msg("%s and %s (resumed at step 22) differ", pa, pb);
    free(x.buf);
    free(y.buf);
}

static void test_post_training(void **st) {
    (void)st;
    char fp[600], fpkv[620], ckpt[640], q[640], qd[640];
    snprintf(fp, sizeof fp, "%s/fp", dir);
    snprintf(fpkv, sizeof fpkv, "train.out=%s", fp);
    run_ok(ARGV("train", cfg, fpkv));
    snprintf(ckpt, sizeof ckpt, "%s/best.h5", fp);
    snprintf(q, sizeof q, "%s/ptq.h5", dir);
    snprintf(qd, sizeof qd, "%s/dfq.h5", dir);
    run_result r;
    run_prog(&r, ARGV("quantize", ckpt, q, "compress.codebook=pm4", "quantize.scale=channel"));
    if (r.status) fail_msg("bin/quantize exited %d:\n%s", r.status, r.err);
    assert_non_null(strstr(r.out, "\"bits\": 3"));
    /* per-channel codes: every filter of a quantized layer is its own alpha times codes in {0,±1,±2,±4} */
    hid_t f = H5Fopen(q, H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t n, C, nc;
    float *w = read_ds(f, "model/layer2.0.conv1.weight", &n), *alpha = read_ds(f, "compress/ptq/alpha/layer2.0.conv1.weight", &C),
          *codes = read_ds(f, "compress/ptq/codes/layer2.0.conv1.weight", &nc);
    assert_int_equal(C, 32);
    for (int64_t i = 0; i < n; i++) {
        assert_true(w[i] == alpha[i / (n / C)] * codes[i]);
        float c = fabsf(codes[i]);
        assert_true(c == 0 || c == 1 || c == 2 || c == 4);
    }
    free(w);
    free(alpha);
    free(codes);
    H5Fclose(f);
    /* DFQ's batch-norm folding and cross-layer equalization leave the network's function alone: the logits of
     * the validation images do not move */
    run_prog(&r, ARGV("quantize", ckpt, qd, "quantize.dfq=true", "quantize.method=none"));
    if (r.status) fail_msg("bin/quantize exited %d:\n%s", r.status, r.err);
    assert_non_null(strstr(r.out, "\"equalized_pairs\": 3"));
    char val[600], l0[640], l1[640];
    snprintf(val, sizeof val, "%s/val.h5", dir);
    snprintf(l0, sizeof l0, "%s/logits_fp.h5", dir);
    snprintf(l1, sizeof l1, "%s/logits_dfq.h5", dir);
    run_ok(ARGV("predict", ckpt, val, l0));
    run_ok(ARGV("predict", qd, val, l1));
    hid_t f0 = H5Fopen(l0, H5F_ACC_RDONLY, H5P_DEFAULT), f1 = H5Fopen(l1, H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t n0, n1;
    float *z0 = read_ds(f0, "logits", &n0), *z1 = read_ds(f1, "logits", &n1);
    assert_int_equal(n0, n1);
    double dd = 0, zz = 0;
    for (int64_t i = 0; i < n0; i++) {
        dd += ((double)z1[i] - z0[i]) * ((double)z1[i] - z0[i]);
        zz += (double)z0[i] * z0[i];
    }
    if (sqrt(dd / zz) > 1e-5) fail_msg("folding and equalization moved the logits by %.3g (relative L2)", sqrt(dd / zz));
    free(z0);
    free(z1);
    H5Fclose(f0);
    H5Fclose(f1);
}

static void test_bad_settings(void **st) {
    (void)st;
    static const struct {
        const char *setting, *extra, *message;
    } cases[] = {
        {"compress.methods=prune", "compress.sparsity=1.5", "compress.sparsity (1.5) must be in [0, 1)"},
        {"compress.methods=admm", "compress.codebook=pow2_0", "compress.codebook = pow2_0: unknown codebook"},
        {"compress.methods=admm", "compress.codebook=octal", "unknown codebook"},
        {"compress.methods=quantise", "compress.rho=1", "compress.methods: unknown method 'quantise'"},
        {"compress.methods=kd", "compress.kd_alpha=0.5", "compress.teacher names no checkpoint"},
        {"compress.methods=admm", "compress.layers=nothing.*", "selects no convolution or linear weight"},
        {"compress.methods=prune", "compress.granularity=filters", "compress.granularity"},
        {"compress.methods=admm", "compress.admm_final_epochs=2", "compress.admm_final_epochs (2) must be in [0, train.epochs = 2)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[600], outkv[620];
        snprintf(out, sizeof out, "%s/bad%zu", dir, i);
        snprintf(outkv, sizeof outkv, "train.out=%s", out);
        run_result r;
        run_prog(&r, ARGV("train", cfg, outkv, cases[i].setting, cases[i].extra));
        if (r.status == 0) fail_msg("%s %s was accepted", cases[i].setting, cases[i].extra);
        if (!strstr(r.err, cases[i].message))
            fail_msg("%s %s: expected a message with \"%s\", got:\n%s", cases[i].setting, cases[i].extra, cases[i].message,
                     r.err);
        assert_int_not_equal(access(out, F_OK), 0); /* nothing was written */
    }
    /* two settings that are each valid but not together */
    char out[600], outkv[620];
    snprintf(out, sizeof out, "%s/bad_pair", dir);
    snprintf(outkv, sizeof outkv, "train.out=%s", out);
    run_result r;
    run_prog(&r, ARGV("train", cfg, outkv, "compress.methods=admm", "compress.admm_forward=quantized",
                      "compress.extragradient=true"));
    assert_int_not_equal(r.status, 0);
    if (!strstr(r.err, "does not combine with compress.extragradient"))
        fail_msg("expected the quantized forward and extragradient to be refused, got:\n%s", r.err);
    assert_int_not_equal(access(out, F_OK), 0);
    /* an ADMM run measured in steps alone (train.epochs = 0) is valid while admm_final_epochs stays 0 */
    snprintf(out, sizeof out, "%s/admm_steps", dir);
    snprintf(outkv, sizeof outkv, "train.out=%s", out);
    run_ok(ARGV("train", cfg, outkv, "compress.methods=admm", "train.epochs=0", "train.steps=3"));
    snprintf(out, sizeof out, "%s/bad_prune_admm", dir);
    snprintf(outkv, sizeof outkv, "train.out=%s", out);
    run_prog(&r, ARGV("train", cfg, outkv, "compress.methods=prune,admm", "compress.admm_forward=quantized"));
    assert_int_not_equal(r.status, 0);
    if (!strstr(r.err, "does not combine with prune"))
        fail_msg("expected the quantized forward and pruning to be refused, got:\n%s", r.err);
    assert_int_not_equal(access(out, F_OK), 0);
}

static float *ckpt_extra_host(const nb_ckpt_extra *x, const char *path) {
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->items[i].path, path)) return nb_host_copy(x->items[i].tensor);
    fail_msg("the ADMM state lists no %s", path);
    return NULL;
}

/* A ResNet-8 with an ADMM compressor from cfg_text (10 steps an epoch), for the tests that drive its hooks by
 * hand. */
typedef struct {
    nb_ctx *ctx;
    nb_model *m;
    nb_cfg cfg;
    nb_compress_set set;
} admm_fixture;

static void admm_fixture_open(admm_fixture *f, uint64_t seed, const char *cfg_text) {
    f->ctx = tu_ctx();
    nb_model_spec spec = {.arch = "resnet8", .num_classes = 4, .in_channels = 1, .input_size = 12, .width = 1.0f, .seed = seed};
    f->m = nb_model_create(f->ctx, &spec);
    assert_non_null(f->m);
    nb_cfg_init(&f->cfg);
    assert_int_equal(nb_cfg_load_string(&f->cfg, cfg_text, "admm.cfg"), 0);
    nb_settings *s = malloc(sizeof *s);
    nb_settings_read(&f->cfg, s);
    nb_method_set methods;
    assert_int_equal(nb_methods_parse(f->ctx, s, f->m, &methods), 0);
    assert_int_equal(nb_compress_new(f->ctx, s, &methods, f->m, 10, &f->set), 0);
    free(s);
    assert_int_equal(f->set.n, 1);
}

static void admm_fixture_close(admm_fixture *f) {
    nb_compress_free(&f->set);
    nb_cfg_free(&f->cfg);
    nb_model_free(f->m);
    nb_ctx_free(f->ctx);
}

/* A gradient element ADMM's hooks computed against the value worked out by hand: float32 sums of the same
 * terms in another order, so a relative tolerance with a floor for elements near zero. */
static bool grad_matches(float got, float want) { return fabsf(got - want) <= 1e-6f + 1e-5f * fabsf(want); }

/* One G/U step by hand: G = Proj(W + U), then the scaled dual U = (U + W - G) / growth, so that the penalty
 * gradient at the grown rho, rho0 growth (W - G + U), carries the unscaled dual rho0 (W - G) that ADMM's
 * multiplier update gives, not one inflated by the growth. */
static void test_admm_dual_follows_rho(void **st) {
    (void)st;
    admm_fixture f;
    admm_fixture_open(&f, 1, "[compress]\nmethods = admm\ncodebook = ternary\nrho = 0.1\nrho_growth = 2\nadmm_interval = 1\n");
    nb_ctx *ctx = f.ctx;
    nb_model *m = f.m;
    nb_compress_set set = f.set;
    const char *name = "layer2.0.conv1.weight";
    nb_tensor *w = nb_params_find(&m->params, name);
    assert_non_null(w);
    int64_t n = nb_numel(w);
    float *w1 = nb_host_copy(w);
    nb_rng rng = nb_rng_make(5, 0);
    for (int64_t i = 0; i < n; i++) w1[i] = 1.5f * w1[i] + 0.01f * (nb_rng_unit(&rng) - 0.5f);
    assert_int_equal(nb_host_store(w, w1), 0);
    nb_step s = {.ctx = ctx, .model = m, .step = 0};
    assert_int_equal(nb_compress_step(&set, NB_HOOK_BATCH_END, &s), 0); /* the G and U steps */
    nb_ckpt_extra x = {0};
    nb_compress_state(&set, &x);
    char path[200];
    snprintf(path, sizeof path, "compress/admm/G/%s", name);
    float *g = ckpt_extra_host(&x, path);
    snprintf(path, sizeof path, "compress/admm/U/%s", name);
    float *u = ckpt_extra_host(&x, path);
    int8_t *q = malloc((size_t)n);
    nb_codebook cb;
    assert_int_equal(nb_codebook_parse("ternary", &cb), 0);
    float alpha = nb_project_optimal(&cb, w1, n, q); /* U was 0: G = Proj(W) */
    double moved = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabsf(g[i] - alpha * (float)q[i]) > 1e-6f * alpha) fail_msg("G[%lld] = %g, Proj(W) = %g", (long long)i, g[i], alpha * q[i]);
        if (fabsf(u[i] - (w1[i] - g[i]) / 2) > 1e-6f) fail_msg("U[%lld] = %g, (W - G) / 2 = %g", (long long)i, u[i], (w1[i] - g[i]) / 2);
        moved += fabs(w1[i] - g[i]);
    }
    assert_true(moved > 0); /* the residual is not trivially zero */
    /* the next step's penalty gradient: rho 0.2 (W - G + U) = 0.2 (W - G) + 0.1 (W - G) */
    w->grad = nb_tensor_like(w);
    assert_non_null(w->grad);
    assert_int_equal(nb_fill(w->grad, 0.0), 0);
    s.step = 1;
    assert_int_equal(nb_compress_step(&set, NB_HOOK_BEFORE_STEP, &s), 0);
    float *grad = nb_host_copy(w->grad);
    for (int64_t i = 0; i < n; i++) {
        float want = 0.3f * (w1[i] - g[i]);
        if (!grad_matches(grad[i], want))
            fail_msg("penalty gradient [%lld] = %g, want 0.2 (W - G) + 0.1 (W - G) = %g", (long long)i, grad[i], want);
    }
    free(grad);
    free(q);
    free(g);
    free(u);
    free(w1);
    nb_ckpt_extra_free(&x);
    admm_fixture_close(&f);
}

/* ADMM with the quantized forward: a batch runs on Proj(W), and before the optimizer step the float W is back,
 * bit for bit, with the batch's gradient (taken at Proj(W), straight through) plus rho (W - G + U). */
static void test_admm_quantized_forward(void **st) {
    (void)st;
    admm_fixture f;
    admm_fixture_open(&f, 2, "[compress]\nmethods = admm\ncodebook = pm2\nrho = 0.25\nadmm_forward = quantized\nadmm_interval = 5\n");
    nb_ctx *ctx = f.ctx;
    nb_compress_set set = f.set;
    nb_tensor *w = nb_params_find(&f.m->params, "layer3.0.conv2.weight");
    assert_non_null(w);
    int64_t n = nb_numel(w);
    float *w1 = nb_host_copy(w);
    int8_t *q = malloc((size_t)n);
    nb_codebook cb;
    assert_int_equal(nb_codebook_parse("pm2", &cb), 0);
    float alpha = nb_project_optimal(&cb, w1, n, q); /* G starts at Proj(W), U at 0 */
    nb_step s = {.ctx = ctx, .model = f.m, .step = 0};
    assert_int_equal(nb_compress_step(&set, NB_HOOK_BATCH_BEGIN, &s), 0);
    float *seen = nb_host_copy(w);
    int64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        if (seen[i] != alpha * (float)q[i]) fail_msg("forward weight [%lld] = %g, Proj(W) = %g", (long long)i, seen[i], alpha * q[i]);
        off += seen[i] != w1[i];
    }
    assert_true(off > n / 2); /* the float weights really were replaced */
    float *gs = malloc(sizeof(float) * (size_t)n);
    nb_rng rng = nb_rng_make(9, 0);
    for (int64_t i = 0; i < n; i++) gs[i] = nb_rng_unit(&rng) - 0.5f;
    w->grad = nb_tensor_like(w);
    assert_non_null(w->grad);
    assert_int_equal(nb_host_store(w->grad, gs), 0);
    assert_int_equal(nb_compress_step(&set, NB_HOOK_BEFORE_STEP, &s), 0);
    float *back = nb_host_copy(w), *grad = nb_host_copy(w->grad);
    for (int64_t i = 0; i < n; i++) {
        if (back[i] != w1[i]) fail_msg("float weight [%lld] came back as %g, was %g", (long long)i, back[i], w1[i]);
        float want = gs[i] + 0.25f * (w1[i] - alpha * (float)q[i]);
        if (!grad_matches(grad[i], want))
            fail_msg("gradient [%lld] = %g, want g + rho (W - G) = %g", (long long)i, grad[i], want);
    }
    free(back);
    free(grad);
    free(gs);
    free(seen);
    free(q);
    free(w1);
    admm_fixture_close(&f);
}

/* ADMM's final epochs (admm_final_epochs): until then a step is plain ADMM (the float W forward, the penalty in
 * the gradient, G/U steps); from then on the forward is Proj(W), the gradient reaches the float W untouched,
 * and G and U stay where ADMM left them. */
static void test_admm_final_epochs(void **st) {
    (void)st;
    admm_fixture f; /* the final epoch starts at step 20 */
    admm_fixture_open(&f, 3,
                      "[train]\nepochs = 3\n[compress]\nmethods = admm\ncodebook = ternary\nrho = 0.5\nrho_growth = 1\n"
                      "admm_interval = 1\nadmm_final_epochs = 1\n");
    nb_ctx *ctx = f.ctx;
    nb_compress_set set = f.set;
    nb_tensor *w = nb_params_find(&f.m->params, "layer2.0.conv2.weight");
    assert_non_null(w);
    int64_t n = nb_numel(w);
    float *gs = malloc(sizeof(float) * (size_t)n);
    nb_rng rng = nb_rng_make(4, 0);
    for (int64_t i = 0; i < n; i++) gs[i] = nb_rng_unit(&rng) - 0.5f;
    w->grad = nb_tensor_like(w);
    assert_non_null(w->grad);
    nb_codebook cb;
    assert_int_equal(nb_codebook_parse("ternary", &cb), 0);
    int8_t *q = malloc((size_t)n);
    char gpath[200];
    snprintf(gpath, sizeof gpath, "compress/admm/G/%s", w->name);
    for (int64_t step = 19; step <= 20; step++) {
        bool final = step == 20;
        float *w1 = nb_host_copy(w);
        nb_ckpt_extra x0 = {0};
        nb_compress_state(&set, &x0);
        float *g0 = ckpt_extra_host(&x0, gpath);
        nb_step s = {.ctx = ctx, .model = f.m, .step = step};
        assert_int_equal(nb_compress_step(&set, NB_HOOK_BATCH_BEGIN, &s), 0);
        float *seen = nb_host_copy(w);
        float alpha = nb_project_optimal(&cb, w1, n, q);
        for (int64_t i = 0; i < n; i++) {
            float want = final ? alpha * (float)q[i] : w1[i];
            if (seen[i] != want) fail_msg("step %lld: forward weight [%lld] = %g, want %g", (long long)step, (long long)i, seen[i], want);
        }
        assert_int_equal(nb_host_store(w->grad, gs), 0);
        assert_int_equal(nb_compress_step(&set, NB_HOOK_BEFORE_STEP, &s), 0);
        float *back = nb_host_copy(w), *grad = nb_host_copy(w->grad);
        int64_t changed = 0;
        for (int64_t i = 0; i < n; i++) {
            if (back[i] != w1[i]) fail_msg("step %lld: float weight [%lld] = %g, was %g", (long long)step, (long long)i, back[i], w1[i]);
            changed += grad[i] != gs[i];
        }
        if (final) assert_int_equal(changed, 0); /* no penalty */
        else assert_true(changed > n / 2);       /* the penalty rho (W - G + U) */
        /* the optimizer moves W; the G step follows it before the final epoch only */
        for (int64_t i = 0; i < n; i++) back[i] -= 0.1f * gs[i];
        assert_int_equal(nb_host_store(w, back), 0);
        assert_int_equal(nb_compress_step(&set, NB_HOOK_BATCH_END, &s), 0);
        nb_ckpt_extra x1 = {0};
        nb_compress_state(&set, &x1);
        float *g1 = ckpt_extra_host(&x1, gpath);
        int64_t moved = 0;
        for (int64_t i = 0; i < n; i++) moved += g1[i] != g0[i];
        if (final) assert_int_equal(moved, 0);
        else assert_true(moved > 0);
        free(g0);
        free(g1);
        nb_ckpt_extra_free(&x0);
        nb_ckpt_extra_free(&x1);
        free(back);
        free(grad);
        free(seen);
        free(w1);
    }
    free(q);
    free(gs);
    admm_fixture_close(&f);
}

/* The ImageNet recipe starts on an ImageNet-style folder (a synthetic one, shrunk) and runs a few steps. */
static void test_admm_r18_recipe(void **st) {
    (void)st;
    char root[300], rootkv[320], out[320];
    snprintf(root, sizeof root, "%s/tree", dir);
    nb_synth_spec s = {.classes = 3, .train_per_class = 6, .val_per_class = 2, .min_side = 40, .max_side = 96, .seed = 3};
    char err[256];
    if (nb_synth_image_tree(root, &s, err, sizeof err)) fail_msg("%s", err);
    snprintf(rootkv, sizeof rootkv, "data.root=%s", root);
    snprintf(out, sizeof out, "train.out=%s/admm_r18", dir);
    run_ok(ARGV("train", "experiments/admm_r18.cfg", rootkv, out, "model.init=", "model.num_classes=3",
                "model.input_size=48", "model.width=0.25", "train.batch=6", "train.steps=3", "data.workers=1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admm_r18_recipe),
        cmocka_unit_test(test_projection_optimal), cmocka_unit_test(test_admm_on_codebook),
        cmocka_unit_test(test_admm_dual_follows_rho), cmocka_unit_test(test_admm_quantized_forward),
        cmocka_unit_test(test_admm_final_epochs),
        cmocka_unit_test(test_pruning),            cmocka_unit_test(test_kd_loss_vs_torch),
        cmocka_unit_test(test_combined_resume),    cmocka_unit_test(test_post_training),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests_name("compression", tests, setup, teardown);
}
