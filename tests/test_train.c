/* bin/train, bin/eval and bin/predict end to end on small synthetic data: exact resume, Ctrl-C, a NaN loss,
 * and bad input (a typo'd key, missing and truncated data, a mismatched model.init, a truncated or edited
 * checkpoint (refused by its digest), a second run into a used
 * directory), each with a clear message, a non-zero exit, and the existing run directory left as it was. */
#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/ckpt_bytes.h"
#include "tests/support/run.h"
#include "tests/support/synth.h"

static char dir[128], cfg[512];

static void pathf(char *out, const char *fmt, const char *name) { snprintf(out, 512, fmt, dir, name); } /* dir is short */

static int setup(void **st) {
    (void)st;
    if (make_test_dir(dir, sizeof dir, "train")) return -1;
    char p[512];
    pathf(p, "%s/%s", "train.h5");
    synth_write_h5(p, 2000, 1, 12, 12, 4, true, 11);
    pathf(p, "%s/%s", "val.h5");
    synth_write_h5(p, 300, 1, 12, 12, 4, true, 12);
    pathf(cfg, "%s/%s", "small.cfg");
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "# smallcnn on 2,000 synthetic 12x12 images in 4 classes\n"
            "[model]\narch = smallcnn\nnum_classes = 4\nin_channels = 1\ninput_size = 12\nwidth = 0.25\n"
            "[data]\nformat = hdf5\ntrain = %s/train.h5\nval = %s/val.h5\naugment = crop_flip\nmean = 0.3\nstd = 0.3\n"
            "[train]\nepochs = 2\nbatch = 64\nlog_every = 5\nlabel_smoothing = 0.1\n"
            "[optim]\ntype = sgd\nlr = 0.05\nschedule = cosine\nwarmup_epochs = 0.3\n",
            dir, dir);
    fclose(f);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    return remove_test_dir(dir);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static void train_ok(const char *const *argv) {
    run_result r;
    run_prog(&r, argv);
    if (r.status != 0) fail_msg("bin/train exited %d:\n%s", r.status, r.err);
}

static int64_t ckpt_i64(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    int64_t v = -1;
    H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
    H5Dclose(d);
    H5Fclose(f);
    return v;
}

static void assert_same_ckpt(const char *a, const char *b) {
    ckpt_bytes x = ckpt_bytes_read(a), y = ckpt_bytes_read(b);
    assert_true(x.len > 10000); /* parameters, BN statistics, momentum buffers and counters are all there */
    assert_int_equal(x.len, y.len);
    if (memcmp(x.buf, y.buf, x.len)) fail_msg("%s and %s differ", a, b);
    free(x.buf);
    free(y.buf);
}

/* 2 epochs in one go == 1 epoch + resume + 1 epoch == 1.5 epochs + resume + the rest, bit for bit. */
static void test_exact_resume(void **st) {
    (void)st;
    char a[512], b[512], c[512], oa[600], ob[600], oc[600];
    pathf(a, "%s/%s", "run_a");
    pathf(b, "%s/%s", "run_b");
    pathf(c, "%s/%s", "run_c");
    snprintf(oa, sizeof oa, "train.out=%s", a);
    snprintf(ob, sizeof ob, "train.out=%s", b);
    snprintf(oc, sizeof oc, "train.out=%s", c);
    train_ok(ARGV("train", cfg, oa));
    train_ok(ARGV("train", cfg, ob, "train.steps=32")); /* 2000 / 64 -> 32 batches: exactly one epoch */
    train_ok(ARGV("train", cfg, ob, "--resume"));
    train_ok(ARGV("train", cfg, oc, "train.steps=47"));
    char p[700];
    snprintf(p, sizeof p, "%s/last.h5", c);
    assert_int_equal(ckpt_i64(p, "state/batch"), 15); /* stopped mid-epoch */
    train_ok(ARGV("train", cfg, oc, "--resume"));
    char la[700], lb[700], lc[700];
    snprintf(la, sizeof la, "%s/last.h5", a);
    snprintf(lb, sizeof lb, "%s/last.h5", b);
    snprintf(lc, sizeof lc, "%s/last.h5", c);
    assert_int_equal(ckpt_i64(la, "state/global_step"), 64);
    assert_same_ckpt(la, lb);
    assert_same_ckpt(la, lc);
    /* the run directory has everything a researcher looks at */
    const char *files[] = {"best.h5", "config.cfg", "curves.png", "metrics.jsonl"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", a, files[i]);
        struct stat s;
        assert_int_equal(stat(p, &s), 0);
        assert_true(s.st_size > 0);
    }
    /* resumed metrics match the uninterrupted run's, line for line, apart from timings */
    snprintf(p, sizeof p, "%s/metrics.jsonl", a);
    char *ma = read_file(p, NULL);
    snprintf(p, sizeof p, "%s/metrics.jsonl", c);
    char *mc = read_file(p, NULL);
    int lines_a = 0, lines_c = 0;
    for (char *q = ma; *q; q++) lines_a += *q == '\n';
    for (char *q = mc; *q; q++) lines_c += *q == '\n';
    assert_int_equal(lines_a, lines_c);
    assert_non_null(strstr(ma, "\"type\": \"epoch\", \"epoch\": 2, \"step\": 64"));
    assert_non_null(strstr(ma, "\"val_top1\""));
    free(ma);
    free(mc);
}

static void test_eval_predict_summary(void **st) {
    (void)st;
    char ck[600], val[512], out[512];
    snprintf(ck, sizeof ck, "%s/run_a/best.h5", dir);
    pathf(val, "%s/%s", "val.h5");
    pathf(out, "%s/%s", "logits.h5");
    run_result r;
    run_prog(&r, ARGV("eval", ck));
    if (r.status) fail_msg("bin/eval: %s", r.err);
    char *p = strstr(r.out, "\"top1\": ");
    assert_non_null(p);
    double top1 = strtod(p + 8, NULL);
    assert_true(top1 > 0.5 && top1 <= 1.0); /* the synthetic classes are learnable */
    run_prog(&r, ARGV("predict", ck, val, out));
    if (r.status) fail_msg("bin/predict: %s", r.err);
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT), fv = H5Fopen(val, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "logits", H5P_DEFAULT), dl = H5Dopen2(fv, "labels", H5P_DEFAULT);
    assert_int_equal(H5Sget_simple_extent_npoints(H5Dget_space(d)), 300 * 4);
    float *z = malloc(sizeof(float) * 1200);
    int64_t lab[300];
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z);
    H5Dread(dl, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    H5Dclose(d);
    H5Dclose(dl);
    H5Fclose(f);
    H5Fclose(fv);
    int correct = 0;
    for (int i = 0; i < 300; i++) {
        int arg = 0;
        for (int c = 1; c < 4; c++)
            if (z[i * 4 + c] > z[i * 4 + arg]) arg = c;
        correct += arg == lab[i];
    }
    free(z);
    assert_true(fabs(correct / 300.0 - top1) < 1e-9); /* predict and eval agree */
    run_prog(&r, ARGV("train", cfg, "--summary"));
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "conv1"));
    assert_non_null(strstr(r.out, "[1,8,12,12]"));
    assert_non_null(strstr(r.out, "total"));
}

/* Snapshot of every file in a run directory, to show a failed command changed nothing. */
typedef struct {
    char *data[8];
    size_t n[8];
} snapshot;

static const char *const run_files[8] = {"last.h5", "best.h5", "config.cfg", "metrics.jsonl", "curves.png"};

static void snap(snapshot *s, const char *run) {
    for (int i = 0; i < 5; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", run, run_files[i]);
        s->data[i] = read_file(p, &s->n[i]);
        assert_non_null(s->data[i]);
    }
}

static void assert_unchanged(const snapshot *s, const char *run) {
    for (int i = 0; i < 5; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", run, run_files[i]);
        size_t n;
        char *now = read_file(p, &n);
        assert_non_null(now);
        if (n != s->n[i] || memcmp(now, s->data[i], n)) fail_msg("%s was changed by a failed run", p);
        free(now);
    }
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s/last.h5.tmp", run);
    assert_int_not_equal(access(tmp, F_OK), 0);
}

static void expect_failure(const char *const *argv, const char *msg) {
    run_result r;
    run_prog(&r, argv);
    if (r.status == 0) fail_msg("expected failure (%s), got exit 0", msg);
    if (!strstr(r.err, msg)) fail_msg("expected \"%s\" in stderr:\n%s", msg, r.err);
}

static void test_bad_input(void **st) {
    (void)st;
    char run[512], out[600];
    snprintf(run, sizeof run, "%s/run_a", dir);
    snprintf(out, sizeof out, "train.out=%s", run);
    snapshot s;
    snap(&s, run);

    char bad[512];
    pathf(bad, "%s/%s", "typo.cfg");
    FILE *f = fopen(bad, "w");
    fprintf(f, "include = small.cfg\n[optim]\nlrr = 0.1\n");
    fclose(f);
    expect_failure(ARGV("train", bad, out, "--resume"), "typo.cfg:3: unknown key 'lrr' in [optim]; did you mean 'optim.lr'?");
    expect_failure(ARGV("train", cfg, out), "already holds a run (last.h5)");

    char opt[700];
    snprintf(opt, sizeof opt, "data.train=%s/nonexistent.h5", dir);
    expect_failure(ARGV("train", cfg, out, opt, "--resume"), "nonexistent.h5: cannot open as an HDF5 data set");

    /* truncated HDF5 */
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "head -c 20000 %s/train.h5 > %s/cut.h5", dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(opt, sizeof opt, "data.train=%s/cut.h5", dir);
    expect_failure(ARGV("train", cfg, out, opt, "--resume"), "cut.h5:");

    /* truncated idx */
    synth_write_idx(dir, "tiny", 100, 12, 12, 4, true, 5);
    snprintf(cmd, sizeof cmd, "head -c 400 %s/tiny-images-idx3-ubyte.gz > %s/cut-images-idx3-ubyte.gz && cp %s/tiny-labels-idx1-ubyte.gz %s/cut-labels-idx1-ubyte.gz",
             dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    char opt2[700];
    snprintf(opt, sizeof opt, "data.train=%s/cut-images-idx3-ubyte.gz", dir);
    expect_failure(ARGV("train", cfg, out, "data.format=idx", opt, "--resume"), "cut-images-idx3-ubyte.gz: truncated or corrupt");

    /* model.init from a network of another width: the message names the tensor and both shapes */
    snprintf(opt, sizeof opt, "model.init=%s/best.h5", run);
    snprintf(opt2, sizeof opt2, "train.out=%s/run_wide", dir);
    expect_failure(ARGV("train", cfg, opt2, opt, "model.width=0.5"),
                   "conv1.weight has shape [8,1,3,3] in the checkpoint but [16,1,3,3] in the model");
    expect_failure(ARGV("train", cfg, opt2, opt, "model.arch=resnet20"), "do not match the model by name");
    /* a truncated checkpoint */
    snprintf(cmd, sizeof cmd, "head -c 3000 %s/best.h5 > %s/cut_ckpt.h5", run, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(opt, sizeof opt, "model.init=%s/cut_ckpt.h5", dir);
    expect_failure(ARGV("train", cfg, opt2, opt), "cut_ckpt.h5: checksum mismatch");
    /* one changed byte in the middle of a checkpoint: refused by its digest before libhdf5 reads it */
    snprintf(cmd, sizeof cmd, "cp %s/best.h5 %s/edited.h5 && printf '\\377' | dd of=%s/edited.h5 bs=1 seek=4000 conv=notrunc 2>/dev/null",
             run, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(opt, sizeof opt, "model.init=%s/edited.h5", dir);
    expect_failure(ARGV("train", cfg, opt2, opt), "edited.h5: checksum mismatch");
    /* a run directory whose checkpoint is broken refuses to resume, and keeps the file */
    assert_unchanged(&s, run);
    for (int i = 0; i < 5; i++) free(s.data[i]);
}

static void test_interrupt_and_nan(void **st) {
    (void)st;
    char run[512], out[600], errf[512];
    snprintf(run, sizeof run, "%s/run_int", dir);
    snprintf(out, sizeof out, "train.out=%s", run);
    pathf(errf, "%s/%s", "int.err");
    pid_t pid = spawn_prog(ARGV("train", cfg, out, "train.epochs=200"), errf);
    /* wait for training to be under way */
    char metrics[700];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    for (int i = 0; i < 600; i++) {
        size_t n = 0;
        char *m = read_file(metrics, &n);
        free(m);
        if (n > 0) break;
        usleep(50000);
    }
    kill(pid, SIGINT);
    assert_int_equal(wait_prog(pid), 130);
    char *err = read_file(errf, NULL);
    assert_non_null(strstr(err, "resume with: bin/train"));
    free(err);
    char last[700];
    snprintf(last, sizeof last, "%s/last.h5", run);
    int64_t step = ckpt_i64(last, "state/global_step");
    assert_true(step > 0);
    char steps[64];
    snprintf(steps, sizeof steps, "train.steps=%lld", (long long)step + 3);
    train_ok(ARGV("train", cfg, out, "train.epochs=200", steps, "--resume"));
    assert_int_equal(ckpt_i64(last, "state/global_step"), step + 3);

    /* a diverging run stops at the first non-finite loss and keeps the last good checkpoint */
    snprintf(run, sizeof run, "%s/run_nan", dir);
    snprintf(out, sizeof out, "train.out=%s", run);
    run_result r;
    run_prog(&r, ARGV("train", cfg, out, "optim.lr=1e30", "optim.warmup_epochs=0", "train.save_every=1"));
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "the loss is"));
    assert_non_null(strstr(r.err, "last good checkpoint"));
    snprintf(last, sizeof last, "%s/last.h5", run);
    char *p = strstr(r.err, "(step ");
    assert_non_null(p);
    int64_t bad_step = strtoll(p + 6, NULL, 10);
    assert_true(bad_step >= 1);
    assert_int_equal(ckpt_i64(last, "state/global_step"), bad_step);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_resume),
        cmocka_unit_test(test_eval_predict_summary),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_interrupt_and_nan),
    };
    return cmocka_run_group_tests_name("bin/train, bin/eval, bin/predict", tests, setup, teardown);
}
