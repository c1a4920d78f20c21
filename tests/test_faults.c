/* The faults users meet, injected: a file-size limit (ulimit -f: EFBIG) and a full disk (a small tmpfs:
 * ENOSPC) while a checkpoint, the metrics or an export is written; a batch larger than the data set or than
 * memory; SIGTERM from a job scheduler; a stale last.h5.tmp from a killed write; the run directory moved away
 * mid-run. Each fault must stop the
 * program with a message naming the file (or the setting) and leave every earlier file byte-identical. And
 * a soak: the resident memory recorded in each epoch's metrics line does not grow from epoch 2 to the last.
 * And files on which libhdf5 itself crashes or loops, refused with a message, and the process that walks HDF5
 * files first kept between files and replaced when it dies. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>

#include "backend/select.h"
#include "formats/h5_probe.h"

#include "tests/support/run.h"
#include "tests/support/synth.h"

static char dir[128], cfg[300];

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static void pathf(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static int setup(void **st) {
    (void)st;
    if (make_test_dir(dir, sizeof dir, "faults")) return -1;
    char p[300], text[1024];
    pathf(p, sizeof p, "data.h5");
    synth_write_h5(p, 256, 1, 8, 8, 4, true, 5);
    snprintf(text, sizeof text,
             "[model]\narch = smallcnn\nwidth = 0.25\nnum_classes = 4\ninput_size = 8\n"
             "[data]\nformat = hdf5\ntrain = %s\nval = %s\nmean = 0.3\nstd = 0.3\nworkers = 1\n"
             "[train]\nepochs = 1\nbatch = 32\nlog_every = 2\n[optim]\nlr = 0.05\nmomentum = 0.9\n",
             p, p);
    write_test_file(dir, "tiny.cfg", text);
    pathf(cfg, sizeof cfg, "tiny.cfg");
    return 0;
}

static int teardown(void **st) {
    (void)st;
    return remove_test_dir(dir);
}

static void run_ok(const char *const *argv, run_result *r) {
    run_prog(r, argv);
    if (r->status) fail_msg("%s exited %d:\n%s", argv[0], r->status, r->err);
}

/* a finished one-epoch run in dir/<name>; its last.h5 path into last */
static void trained(const char *name, char *out_kv, size_t n, char *last, size_t nl) {
    char run[300];
    pathf(run, sizeof run, name);
    snprintf(out_kv, n, "train.out=%s", run);
    run_result r;
    run_ok(ARGV("train", cfg, out_kv), &r);
    snprintf(last, nl, "%s/last.h5", run);
}

static char *slurp(const char *path, size_t *n) {
    char *b = read_file(path, n);
    if (!b) fail_msg("%s is missing", path);
    return b;
}

/* path holds exactly the bytes `want` */
static void unchanged(const char *path, const char *want, size_t n) {
    size_t m;
    char *got = slurp(path, &m);
    if (m != n || memcmp(got, want, n)) fail_msg("%s changed (%zu bytes, was %zu)", path, m, n);
    free(got);
}

static void no_tmp_left(const char *run) {
    run_result r;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.tmp' || true", run);
    run_cmd(&r, ARGV("sh", "-c", cmd));
    if (atoi(r.out) != 0) fail_msg("temporary files left in %s", run);
}

/* bin/<prog> args... under `ulimit -f kb` (KiB), through sh so that the limit is the child's alone */
static void run_limited(run_result *r, long kb, const char *args) {
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "ulimit -f %ld; exec %s/%s", kb, getenv("NB_BIN_DIR") ? getenv("NB_BIN_DIR") : "build/rel/bin",
             args);
    run_cmd(r, ARGV("sh", "-c", cmd));
}

/* A checkpoint write past the file-size limit: EFBIG (not a SIGXFSZ kill), the file named, last.h5 as it was */
static void test_checkpoint_file_too_large(void **st) {
    (void)st;
    char kv[400], last[400], best[400];
    trained("efbig", kv, sizeof kv, last, sizeof last);
    snprintf(best, sizeof best, "%s/best.h5", kv + strlen("train.out="));
    size_t n, nb;
    char *before = slurp(last, &n), *best_before = slurp(best, &nb);
    char args[1200];
    snprintf(args, sizeof args, "train %s %s train.epochs=2 --resume", cfg, kv);
    run_result r;
    run_limited(&r, (long)(n / 1024 / 2), args);
    if (r.status == 0 || r.status > 128) fail_msg("status %d (a signal?):\n%s", r.status, r.err);
    /* best.h5 when the epoch improved on it, else last.h5: the first checkpoint written */
    if ((!strstr(r.err, last) && !strstr(r.err, best)) || !strstr(r.err, "File too large") ||
        !strstr(r.err, "earlier file of this name is unchanged"))
        fail_msg("the message does not name the checkpoint and the reason:\n%s", r.err);
    unchanged(last, before, n);
    unchanged(best, best_before, nb);
    free(best_before);
    no_tmp_left(kv + strlen("train.out="));
    /* the run goes on from that checkpoint once the limit is gone */
    run_ok(ARGV("train", cfg, kv, "train.epochs=2", "--resume"), &r);
    free(before);
}

/* A full disk: the run directory on a tmpfs of a few KB more than its files, mounted in a mount namespace of
 * the test's own (unshare); skipped, saying so, where namespaces or tmpfs are not permitted */
static void test_checkpoint_disk_full(void **st) {
    (void)st;
    char kv[400], last[400], after[400];
    trained("enospc", kv, sizeof kv, last, sizeof last);
    const char *run = kv + strlen("train.out=");
    pathf(after, sizeof after, "enospc_after");
    size_t n;
    char *before = slurp(last, &n);
    char cmd[3000];
    const char *bin = getenv("NB_BIN_DIR") ? getenv("NB_BIN_DIR") : "build/rel/bin";
    /* the tmpfs holds the run's files and 24 KB more: the new config.cfg and metrics fit, the next
     * last.h5.tmp (about the size of last.h5) does not */
    snprintf(cmd, sizeof cmd,
             "set -u; mkdir -p %s/mnt '%s'; size=$(( $(du -sk '%s' | cut -f1) + 24 ));"
             "mount -t tmpfs -o size=${size}k tmpfs %s/mnt 2>/dev/null || exit 77; cp -a '%s'/. %s/mnt/;"
             "%s/train %s train.out=%s/mnt train.epochs=2 --resume; rc=$?; cp -a %s/mnt/. '%s'/; exit $rc",
             dir, after, run, dir, run, dir, bin, cfg, dir, dir, after);
    run_result r;
    run_cmd(&r, ARGV("unshare", "-rm", "sh", "-c", cmd));
    if (r.status == 77 || (r.status == 1 && strstr(r.err, "unshare"))) {
        print_message("SKIPPED the full-disk case: no tmpfs in a mount namespace here (%s)\n", r.err);
        free(before);
        return;
    }
    if (r.status == 0 || r.status > 128) fail_msg("status %d:\n%s", r.status, r.err);
    if (!strstr(r.err, "No space left on device") || (!strstr(r.err, "/mnt/last.h5") && !strstr(r.err, "/mnt/best.h5")))
        fail_msg("the message does not name last.h5 and the reason:\n%s", r.err);
    char saved[500];
    snprintf(saved, sizeof saved, "%s/last.h5", after);
    unchanged(saved, before, n);
    no_tmp_left(after);
    print_message("full disk: %s", strstr(r.err, "nibble: error"));
    free(before);
}

/* The metrics file past the limit (made large by earlier lines): the error names it, its lines and last.h5
 * stay as they were */
static void test_metrics_file_too_large(void **st) {
    (void)st;
    char kv[400], last[400], metrics[600];
    trained("metrics", kv, sizeof kv, last, sizeof last);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", kv + strlen("train.out="));
    /* 300 KB of step lines from before the checkpoint: a resume keeps them */
    FILE *f = fopen(metrics, "a");
    for (int i = 0; i < 3000; i++)
        fprintf(f, "{\"type\": \"step\", \"epoch\": 0.1, \"step\": 1, \"lr\": 0.05, \"train_loss\": 1.0, "
                   "\"img_per_s\": 1.0, \"seconds\": 0.1}\n");
    fclose(f);
    size_t n, nl;
    char *before = slurp(metrics, &n), *ckpt = slurp(last, &nl);
    assert_true(nl < 200 * 1024 && n > 250 * 1024);
    char args[1200];
    snprintf(args, sizeof args, "train %s %s train.epochs=2 --resume", cfg, kv);
    run_result r;
    run_limited(&r, 200, args);
    if (r.status == 0 || r.status > 128) fail_msg("status %d:\n%s", r.status, r.err);
    if (!strstr(r.err, metrics) || !strstr(r.err, "File too large")) fail_msg("the message does not name %s:\n%s", metrics, r.err);
    unchanged(metrics, before, n);
    unchanged(last, ckpt, nl);
    no_tmp_left(kv + strlen("train.out="));
    free(before);
    free(ckpt);
}

/* An export over an earlier one past the limit: the earlier file stays, nothing else is left */
static void test_export_file_too_large(void **st) {
    (void)st;
    char kv[400], last[400], onnx[400];
    trained("export", kv, sizeof kv, last, sizeof last);
    pathf(onnx, sizeof onnx, "model.onnx");
    run_result r;
    run_ok(ARGV("export", last, "-o", onnx, "--opset", "13"), &r);
    size_t n;
    char *before = slurp(onnx, &n);
    char args[1200];
    snprintf(args, sizeof args, "export %s -o %s", last, onnx);
    run_limited(&r, 1, args);
    if (r.status == 0 || r.status > 128) fail_msg("status %d:\n%s", r.status, r.err);
    if (!strstr(r.err, onnx) || !strstr(r.err, "File too large")) fail_msg("the message does not name %s:\n%s", onnx, r.err);
    unchanged(onnx, before, n);
    no_tmp_left(dir);
    free(before);
}

/* A batch larger than the data, and one larger than memory: refused before anything is allocated for it */
static void test_batch_too_large(void **st) {
    (void)st;
    char run[300], kv[400];
    pathf(run, sizeof run, "bigbatch");
    snprintf(kv, sizeof kv, "train.out=%s", run);
    run_result r;
    run_prog(&r, ARGV("train", cfg, kv, "train.batch=1000000"));
    if (r.status != 1 || !strstr(r.err, "train.batch = 1000000 is larger than the training set (256 images"))
        fail_msg("status %d:\n%s", r.status, r.err);
    /* ResNet-56 on 8,192 images of 64x64 in one batch: about 130 GB for its activations and gradients (17 MB per
     * image measured); a machine with more free memory than that would start the run, so it is not asked there */
    FILE *mi = fopen("/proc/meminfo", "r");
    char line[256];
    double avail_kb = 0;
    while (mi && fgets(line, sizeof line, mi))
        if (sscanf(line, "MemAvailable: %lf kB", &avail_kb) == 1) break;
    if (mi) fclose(mi);
    if (avail_kb > 100e6) {
        print_message("SKIPPED the memory case: %.0f GB available here\n", avail_kb / 1e6);
    } else {
        char big[300], data_kv[400];
        pathf(big, sizeof big, "big.h5");
        synth_write_h5(big, 8192, 1, 64, 64, 4, true, 6);
        snprintf(data_kv, sizeof data_kv, "data.train=%s", big);
        run_prog(&r, ARGV("train", cfg, kv, data_kv, "data.val=", "train.batch=8192", "model.arch=resnet56",
                          "model.input_size=64"));
        if (r.status != 1 || !strstr(r.err, "train.batch = 8192 needs about") || !strstr(r.err, "available"))
            fail_msg("status %d:\n%s", r.status, r.err);
        print_message("%s", strstr(r.err, "nibble: error"));
        unlink(big);
    }
    struct stat sb;
    assert_int_not_equal(stat(run, &sb), 0); /* refused before the run directory was made */
}

/* SIGTERM (a scheduler's) saves last.h5 and prints the resume command, as Ctrl-C does; a stale last.h5.tmp is
 * removed with a note when the run resumes */
static void test_sigterm_and_stale_tmp(void **st) {
    (void)st;
    char run[300], kv[400], errf[400], metrics[600], last[600], tmp[700];
    pathf(run, sizeof run, "sigterm");
    snprintf(kv, sizeof kv, "train.out=%s", run);
    pathf(errf, sizeof errf, "sigterm.err");
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    pid_t pid = spawn_prog(ARGV("train", cfg, kv, "train.epochs=500"), errf);
    for (int i = 0; i < 1200; i++) {
        size_t n = 0;
        free(read_file(metrics, &n));
        if (n > 0) break;
        usleep(50000);
    }
    kill(pid, SIGTERM);
    assert_int_equal(wait_prog(pid), 130);
    char *err = read_file(errf, NULL);
    if (!err || !strstr(err, "resume with: bin/train")) fail_msg("no resume command after SIGTERM:\n%s", err);
    free(err);
    snprintf(last, sizeof last, "%s/last.h5", run);
    snprintf(tmp, sizeof tmp, "%s.tmp", last);
    FILE *f = fopen(tmp, "w");
    fputs("half a checkpoint", f);
    fclose(f);
    run_result r;
    run_ok(ARGV("train", cfg, kv, "train.epochs=1", "train.steps=1", "--resume"), &r);
    if (!strstr(r.err, "removed") || !strstr(r.err, "last.h5.tmp")) fail_msg("no note about the stale file:\n%s", r.err);
    assert_int_equal(access(tmp, F_OK), -1);
}

/* The run directory moved away mid-run (a cleanup job, a full reorganisation): the next checkpoint cannot be
 * written, and the run stops saying which file and why, not with a crash */
static void test_run_dir_vanishes(void **st) {
    (void)st;
    char run[300], gone[320], kv[400], errf[400], metrics[600];
    pathf(run, sizeof run, "vanish");
    snprintf(gone, sizeof gone, "%s_moved", run);
    snprintf(kv, sizeof kv, "train.out=%s", run);
    pathf(errf, sizeof errf, "vanish.err");
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    pid_t pid = spawn_prog(ARGV("train", cfg, kv, "train.epochs=100000", "train.save_every=1"), errf);
    for (int i = 0; i < 1200; i++) {
        size_t n = 0;
        free(read_file(metrics, &n));
        if (n > 0) break;
        usleep(50000);
    }
    assert_int_equal(rename(run, gone), 0);
    int status = wait_prog(pid);
    char *err = read_file(errf, NULL);
    if (status != 1 || !err || !strstr(err, run) || !strstr(err, "No such file or directory"))
        fail_msg("status %d after the run directory went:\n%s", status, err ? err : "");
    print_message("%s", strstr(err, "nibble: error"));
    free(err);
}

/* Soak: the resident memory at each epoch's end (rss_mb in metrics.jsonl) stays flat from epoch 2 to 12: no
 * leak per step, per evaluation, per checkpoint or per chart */
static void test_memory_flat(void **st) {
    (void)st;
    char kv[400], last[400], metrics[400];
    char run[300];
    pathf(run, sizeof run, "soak");
    snprintf(kv, sizeof kv, "train.out=%s", run);
    run_result r;
    run_ok(ARGV("train", cfg, kv, "train.epochs=12", "train.save_every=3"), &r);
    (void)last;
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    char *m = slurp(metrics, NULL);
    double rss[13] = {0}, peak[13] = {0};
    int epochs = 0;
    for (char *line = strtok(m, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "\"type\": \"epoch\"")) continue;
        int e = atoi(strstr(line, "\"epoch\": ") + 9);
        char *p = strstr(line, "\"rss_mb\": "), *q = strstr(line, "\"peak_rss_mb\": ");
        assert_non_null(p);
        assert_non_null(q);
        assert_true(e >= 1 && e <= 12);
        rss[e] = atof(p + 10);
        peak[e] = atof(q + 15);
        epochs++;
    }
    free(m);
    assert_int_equal(epochs, 12);
    print_message("resident memory at the end of epochs 2, 7, 12: %.1f, %.1f, %.1f MB (peak %.1f, %.1f, %.1f)\n",
                  rss[2], rss[7], rss[12], peak[2], peak[7], peak[12]);
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer holds freed memory in its quarantine (up to 256 MB), so resident memory grows by design
     * there; LeakSanitizer checks at every program's exit instead */
    print_message("the flat-memory check is the plain build's (AddressSanitizer's quarantine grows)\n");
    return;
#endif
    /* one page in a hundred of slack for the allocator's own bookkeeping, never a steady climb */
    if (rss[12] > rss[2] * 1.01 + 1.0 || peak[12] > peak[2] * 1.01 + 1.0)
        fail_msg("memory grows: %.1f MB at epoch 2, %.1f MB at epoch 12 (peak %.1f -> %.1f)", rss[2], rss[12], peak[2],
                 peak[12]);
}

/* Files on which libhdf5 1.10 itself crashes or loops (fuzz/upstream/, found by the fuzzers): nibble refuses
 * them with a message naming the file and exits 1, where it used to die by SIGSEGV or hang for ever. A
 * child process walks each file first (formats/h5_probe.h); its time limit is shortened here. */
static void test_malformed_hdf5(void **st) {
    (void)st;
    setenv("NB_H5_PROBE_SECONDS", "3", 1);
    const struct {
        const char *file, *says;
    } ckpts[] = {{"fuzz/upstream/checkpoint/global-heap-memcpy-overlap", "libhdf5 "},
                 {"fuzz/upstream/checkpoint/global-heap-vlen-loop", "did not finish reading this checkpoint in 3 s"},
                 /* the walk's iteration stops before config; the reader opens it by name, and loops */
                 {"fuzz/upstream/checkpoint/config-by-name-loop", "did not finish reading this checkpoint in 3 s"}};
    run_result r;
    for (size_t i = 0; i < sizeof ckpts / sizeof *ckpts; i++) {
        run_prog(&r, ARGV("eval", ckpts[i].file));
        if (r.status != 1 || !strstr(r.err, ckpts[i].file) || !strstr(r.err, ckpts[i].says))
            fail_msg("bin/eval %s exited %d:\n%s", ckpts[i].file, r.status, r.err);
    }
    /* a data set (the fuzz input's first byte is the target's own switch) handed to bin/predict */
    size_t n;
    char *bytes = slurp("fuzz/upstream/hdf5_data/local-heap-null-memcpy", &n), data[300], out_kv[400], last[400],
         pred[300];
    pathf(data, sizeof data, "malformed.h5");
    FILE *f = fopen(data, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes + 1, 1, n - 1, f), n - 1);
    fclose(f);
    free(bytes);
    trained("for_predict", out_kv, sizeof out_kv, last, sizeof last);
    pathf(pred, sizeof pred, "pred.h5");
    run_prog(&r, ARGV("predict", last, data, pred));
    /* "libhdf5 crashed" (a signal), or under AddressSanitizer "libhdf5 failed" (its report ends the child) */
    if (r.status != 1 || !strstr(r.err, data) || !strstr(r.err, "malformed HDF5 file, refused"))
        fail_msg("bin/predict on %s exited %d:\n%s", data, r.status, r.err);
    unsetenv("NB_H5_PROBE_SECONDS");
}

static void recorded(void *user, const char *message) {
    snprintf(user, 2048, "%s", message);
}

/* path's bytes replaced by those of from (skipping its first skip bytes), in place: same inode */
static void rewrite(const char *path, const char *from, size_t skip) {
    size_t n;
    char *bytes = slurp(from, &n);
    FILE *f = fopen(path, "r+b");
    if (!f) f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes + skip, 1, n - skip, f), n - skip);
    assert_int_equal(ftruncate(fileno(f), (off_t)(n - skip)), 0);
    fclose(f);
    free(bytes);
    struct timespec pause = {0, 2000000}; /* a new modification time, even on a coarse clock */
    nanosleep(&pause, NULL);
}

/* The walker (formats/h5_probe.c): one process walks a context's files one after another; SIGINT (Ctrl-C, the
 * parent's to handle) leaves it; a crash or a loop in libhdf5 ends it, and the next file gets a fresh one; a
 * file rewritten in place is walked as it is now, not as libhdf5 saw it before; with an HDF5 file open in
 * the parent when it forks, it walks one file only; the context's end reaps it. */
static void test_hdf5_walker(void **st) {
    (void)st;
    setenv("NB_H5_PROBE_SECONDS", "1", 1);
    char msg[2048] = "", a[300], b[300];
    pathf(a, sizeof a, "walk-a.h5");
    pathf(b, sizeof b, "walk-b.h5");
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU);
    assert_non_null(ctx);
    nb_ctx_set_error_handler(ctx, recorded, msg);

    rewrite(a, "fuzz/seeds/checkpoint/trained.h5", 0);
    assert_int_equal(nb_h5_probe(ctx, a, "checkpoint"), 0);
    int first = ctx->walker_pid;
    assert_true(first > 0);
    rewrite(b, "fuzz/seeds/checkpoint/full_integer.h5", 0);
    assert_int_equal(nb_h5_probe(ctx, b, "checkpoint"), 0);
    assert_int_equal(ctx->walker_pid, first); /* the same walker */
    kill(first, SIGINT);
    rewrite(a, "fuzz/seeds/checkpoint/full_integer.h5", 0);
    assert_int_equal(nb_h5_probe(ctx, a, "checkpoint"), 0);
    assert_int_equal(ctx->walker_pid, first);

    /* a's inode, now a file on which libhdf5 loops: refused after its time, the walker killed */
    rewrite(a, "fuzz/upstream/checkpoint/global-heap-vlen-loop", 0);
    assert_int_equal(nb_h5_probe(ctx, a, "checkpoint"), -1);
    if (!strstr(msg, a) || !strstr(msg, "did not finish reading this checkpoint in 1 s")) fail_msg("said: %s", msg);
    assert_int_equal(ctx->walker_pid, 0);
    assert_int_equal(kill(first, 0), -1); /* gone, and reaped */
    /* a crash (SIGSEGV, or under AddressSanitizer its report and exit) in the fresh walker */
    rewrite(b, "fuzz/upstream/hdf5_data/local-heap-null-memcpy", 1);
    assert_int_equal(nb_h5_probe(ctx, b, "data set"), -1);
    if (!strstr(msg, b) || !strstr(msg, "malformed HDF5 file, refused")) fail_msg("said: %s", msg);
    assert_int_equal(ctx->walker_pid, 0);
    rewrite(b, "fuzz/seeds/checkpoint/trained.h5", 0);
    assert_int_equal(nb_h5_probe(ctx, b, "checkpoint"), 0);
    int second = ctx->walker_pid;
    assert_true(second > 0 && second != first);
    nb_ctx_free(ctx);
    assert_int_equal(waitpid(second, NULL, WNOHANG), -1); /* reaped by nb_ctx_free */
    assert_int_equal(errno, ECHILD);

    /* an HDF5 file open in the parent: its walker walks one file, then makes way */
    ctx = nb_ctx_new(NB_DEVICE_CPU);
    nb_ctx_set_error_handler(ctx, recorded, msg);
    hid_t open_one = H5Fopen("fuzz/seeds/checkpoint/trained.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(open_one >= 0);
    rewrite(a, "fuzz/seeds/checkpoint/trained.h5", 0);
    assert_int_equal(nb_h5_probe(ctx, a, "checkpoint"), 0);
    assert_int_equal(ctx->walker_pid, 0);
    H5Fclose(open_one);
    rewrite(a, "fuzz/seeds/checkpoint/full_integer.h5", 0);
    assert_int_equal(nb_h5_probe(ctx, a, "checkpoint"), 0);
    assert_true(ctx->walker_pid > 0);
    nb_ctx_free(ctx);
    unsetenv("NB_H5_PROBE_SECONDS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_file_too_large), cmocka_unit_test(test_checkpoint_disk_full),
        cmocka_unit_test(test_metrics_file_too_large),   cmocka_unit_test(test_export_file_too_large),
        cmocka_unit_test(test_batch_too_large),          cmocka_unit_test(test_sigterm_and_stale_tmp),
        cmocka_unit_test(test_run_dir_vanishes),
        cmocka_unit_test(test_memory_flat),             cmocka_unit_test(test_malformed_hdf5),
        cmocka_unit_test(test_hdf5_walker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
