/* Data-parallel training with mpirun on this machine: two ranks with synchronized batch norm reach the
 * parameters one process reaches with the same global batch (within 1e-5), while per-rank batch norm (the
 * default) is a different computation; the ranks stay bit-identical, rank 0 alone writes the run, a two-rank
 * run resumes bit for bit and refuses another rank count, and a rank that dies ends the job with a message
 * and an intact, resumable checkpoint. Without MPI the synchronized batch norm's own backward (used only
 * across ranks) is checked against the ordinary one through a group of one. */
#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/arith.h"
#include "core/ops.h"
#include "tests/support/ckpt_bytes.h"
#include "tests/support/run.h"
#include "tests/support/synth.h"
#include "tests/support/testutil.h"

static char dir[128], cfg[512], train_bin[512];

static int setup(void **st) {
    (void)st;
    if (make_test_dir(dir, sizeof dir, "dist")) return -1;
    char p[512], text[1024];
    snprintf(p, sizeof p, "%s/train.h5", dir);
    synth_write_h5(p, 520, 1, 12, 12, 4, true, 41);
    snprintf(p, sizeof p, "%s/val.h5", dir);
    synth_write_h5(p, 200, 1, 12, 12, 4, true, 42);
    snprintf(text, sizeof text,
             "# smallcnn on 520 synthetic 12x12 images: a global batch of 64, 9 steps an epoch (the last of 8)\n"
             "[model]\narch = smallcnn\nnum_classes = 4\nin_channels = 1\ninput_size = 12\nwidth = 0.25\n"
             "[data]\nformat = hdf5\ntrain = %s/train.h5\nval = %s/val.h5\naugment = crop_flip\nmean = 0.3\n"
             "std = 0.3\nworkers = 1\n"
             "[train]\nepochs = 2\nbatch = 64\nlog_every = 2\nthreads = 1\n"
             "[optim]\ntype = sgd\nlr = 0.05\nmomentum = 0.9\nwd = 5e-4\n",
             dir, dir);
    write_test_file(dir, "small.cfg", text);
    snprintf(cfg, sizeof cfg, "%s/small.cfg", dir);
    const char *bin = getenv("NB_BIN_DIR");
    snprintf(train_bin, sizeof train_bin, "%s/train", bin && bin[0] ? bin : "build/rel/bin");
    /* Open MPI's own allocations are not ours to check: the sanitizer build's ranks skip leak detection */
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    return remove_test_dir(dir);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* mpirun on this machine: loopback, root allowed (CI runs as root), no cross-memory attach (containers) */
#define MPIRUN "mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "btl_vader_single_copy_mechanism", \
               "none", "-x", "ASAN_OPTIONS", "-np"

static bool have_mpirun(void) {
    run_result r;
    run_cmd(&r, ARGV("sh", "-c", "command -v mpirun"));
    return r.status == 0;
}

static void skip_without_mpi(void) {
    const char *dev = getenv("NB_TEST_DEVICE");
    if (dev && !strcmp(dev, "cuda")) {
        print_message("SKIPPED: data-parallel training runs on CPU ranks (its CPU pass covers it)\n");
        skip();
    }
    if (!have_mpirun()) {
        print_message("SKIPPED: no mpirun (scripts/install-deps.sh installs openmpi-bin)\n");
        skip();
    }
}

/* bin/train, alone (ranks 0) or under mpirun with `ranks` ranks, into dir/<name>, with extra overrides */
static void train(int ranks, const char *name, const char *const *extra, run_result *r) {
    char outkv[600];
    snprintf(outkv, sizeof outkv, "train.out=%s/%s", dir, name);
    const char *argv[40];
    int k = 0;
    char np[8];
    snprintf(np, sizeof np, "%d", ranks);
    if (ranks > 0) {
        const char *pre[] = {MPIRUN, np};
        for (size_t i = 0; i < sizeof pre / sizeof *pre; i++) argv[k++] = pre[i];
    }
    argv[k++] = train_bin;
    argv[k++] = cfg;
    argv[k++] = outkv;
    for (int i = 0; extra && extra[i]; i++) argv[k++] = extra[i];
    argv[k] = NULL;
    run_cmd(r, argv);
}

static void train_ok(int ranks, const char *name, const char *const *extra) {
    run_result r;
    train(ranks, name, extra, &r);
    if (r.status) fail_msg("bin/train (%d ranks) into %s exited %d:\n%s", ranks, name, r.status, r.err);
}

/* the largest relative difference between the two checkpoints' tensors under model/ (parameters and
 * batch-norm statistics), max |a - b| / max |a| per tensor */
static double worst_model_diff(const char *a_name, const char *b_name, char *where, size_t n) {
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s/last.h5", dir, a_name);
    snprintf(pb, sizeof pb, "%s/%s/last.h5", dir, b_name);
    const char *names[] = {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                           "conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias", "bn2.running_mean",
                           "bn2.running_var", "fc.weight", "fc.bias"};
    hid_t fa = tu_open(pa), fb = tu_open(pb);
    double worst = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char ds[128];
        snprintf(ds, sizeof ds, "model/%s", names[i]);
        if (!tu_has(fa, ds)) continue;
        int nd;
        int64_t sh[4];
        float *x = tu_read_f32(fa, ds, &nd, sh), *y = tu_read_f32(fb, ds, &nd, sh);
        int64_t count = 1;
        for (int d = 0; d < nd; d++) count *= sh[d];
        double dmax = 0, amax = 1e-30;
        for (int64_t j = 0; j < count; j++) {
            dmax = fmax(dmax, fabs((double)x[j] - (double)y[j]));
            amax = fmax(amax, fabs((double)x[j]));
        }
        if (dmax / amax > worst) {
            worst = dmax / amax;
            snprintf(where, n, "%s", names[i]);
        }
        free(x);
        free(y);
    }
    H5Fclose(fa);
    H5Fclose(fb);
    return worst;
}

static int count_lines(const char *path, const char *needle) {
    size_t n;
    char *text = read_file(path, &n);
    assert_non_null(text);
    int k = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++) k++;
    free(text);
    return k;
}

static void test_two_ranks_match_one(void **st) {
    (void)st;
    skip_without_mpi();
    /* synchronized batch norm: the two ranks compute what one process computes on the whole batch */
    train_ok(0, "one_sync", ARGV("train.sync_bn=true"));
    train_ok(2, "two_sync", ARGV("train.sync_bn=true"));
    char where[128] = "";
    double d = worst_model_diff("one_sync", "two_sync", where, sizeof where);
    print_message("sync BN: 2 ranks vs 1 process after 17 steps: worst relative difference %.2e (%s)\n", d, where);
    if (d > 1e-5) fail_msg("2 ranks with synchronized BN differ from 1 process by %.3g (%s)", d, where);
    /* per-rank batch norm (the default) normalises each half batch by itself: another computation */
    train_ok(0, "one", NULL);
    train_ok(2, "two", NULL);
    double dp = worst_model_diff("one", "two", where, sizeof where);
    print_message("per-rank BN: 2 ranks vs 1 process: worst relative difference %.2e (%s)\n", dp, where);
    assert_true(dp > 1e-4);
    /* rank 0 alone wrote the metrics: one line per epoch, and the ranks stayed identical */
    char metrics[600];
    snprintf(metrics, sizeof metrics, "%s/two/metrics.jsonl", dir);
    assert_int_equal(count_lines(metrics, "\"type\": \"epoch\""), 2);
    if (count_lines(metrics, "\"ranks_consistent\": true") != 2) {
        size_t n;
        char *m = read_file(metrics, &n);
        fail_msg("the ranks' parameters were not identical after each epoch:\n%s", m);
    }
    assert_true(count_lines(metrics, "\"comm_share\"") > 0);
    /* loss scaling over two ranks: each rank's scaled gradients are summed, then checked and unscaled; a
     * power-of-two scale (growing every 3 steps) leaves the trained network bit for bit the unscaled one's */
    train_ok(2, "two_ls", ARGV("train.loss_scale=dynamic", "train.loss_scale_init=1024", "train.loss_scale_interval=3"));
    double dl = worst_model_diff("two", "two_ls", where, sizeof where);
    if (dl != 0) fail_msg("2 ranks with loss scaling differ from 2 without by %.3g (%s)", dl, where);
    snprintf(metrics, sizeof metrics, "%s/two_ls/metrics.jsonl", dir);
    assert_int_equal(count_lines(metrics, "\"skipped_steps\": 0"), count_lines(metrics, "\"loss_scale\": "));
    assert_true(count_lines(metrics, "\"loss_scale\": ") >= 2);
}

static void test_compressed_resume(void **st) {
    (void)st;
    skip_without_mpi();
    const char *c1 = "compress.methods=prune,admm", *c2 = "compress.importance=taylor", *c3 = "compress.sparsity=0.5",
               *c4 = "compress.prune_epochs=1";
    /* two ranks, straight through, and stopped at step 11 then resumed: the same bytes */
    train_ok(2, "straight", ARGV(c1, c2, c3, c4));
    train_ok(2, "resumed", ARGV(c1, c2, c3, c4, "train.steps=11"));
    train_ok(2, "resumed", ARGV(c1, c2, c3, c4, "--resume"));
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/straight/last.h5", dir);
    snprintf(pb, sizeof pb, "%s/resumed/last.h5", dir);
    ckpt_bytes x = ckpt_bytes_read(pa), y = ckpt_bytes_read(pb);
    assert_non_null(memmem(x.buf, x.len, "compress/admm/U/", 16));
    assert_int_equal(x.len, y.len);
    if (memcmp(x.buf, y.buf, x.len)) fail_msg("a resumed 2-rank run differs from a straight one");
    free(x.buf);
    free(y.buf);
    snprintf(pa, sizeof pa, "%s/straight/metrics.jsonl", dir);
    if (count_lines(pa, "\"ranks_consistent\": true") != 2) {
        size_t n;
        char *m = read_file(pa, &n);
        fail_msg("the ranks' parameters were not identical after each epoch:\n%s", m);
    }
    /* the same with loss scaling: the hooks (Taylor importance, ADMM's proximal term) read the unscaled
     * gradients, so a power-of-two scale changes no bit of what they train */
    train_ok(2, "straight_ls", ARGV(c1, c2, c3, c4, "train.loss_scale=dynamic", "train.loss_scale_init=256",
                                    "train.loss_scale_interval=4"));
    char where[128] = "";
    double dl = worst_model_diff("straight", "straight_ls", where, sizeof where);
    if (dl != 0) fail_msg("prune + admm with loss scaling differ from the run without by %.3g (%s)", dl, where);
    /* another rank count is refused */
    run_result r;
    train(0, "resumed", ARGV(c1, c2, c3, c4, "--resume"), &r);
    assert_int_not_equal(r.status, 0);
    if (!strstr(r.err, "was written by a run of 2 ranks")) fail_msg("unclear error: %s", r.err);
}

static pid_t spawn_mpirun(const char *errfile, const char *const *argv) {
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(errfile, "w", stderr);
        (void)f;
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* the pid of the child of `parent` whose environment says OMPI_COMM_WORLD_RANK=rank, or -1 */
static pid_t rank_pid(pid_t parent, int rank) {
    char cmd[128], want[64];
    snprintf(cmd, sizeof cmd, "pgrep -P %d", (int)parent);
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    FILE *p = popen(cmd, "r");
    int child;
    pid_t found = -1;
    while (p && fscanf(p, "%d", &child) == 1) {
        char envp[64], env[65536];
        snprintf(envp, sizeof envp, "/proc/%d/environ", child);
        FILE *f = fopen(envp, "rb"); /* /proc files have no size: read what there is */
        size_t n = f ? fread(env, 1, sizeof env - 1, f) : 0;
        if (f) fclose(f);
        env[n] = 0;
        for (size_t i = 0; i < n; i += strlen(env + i) + 1)
            if (!strcmp(env + i, want)) found = child;
    }
    if (p) pclose(p);
    return found;
}

static void test_rank_dies(void **st) {
    (void)st;
    skip_without_mpi();
    char outkv[600], last[600], errfile[600];
    snprintf(outkv, sizeof outkv, "train.out=%s/killed", dir);
    snprintf(last, sizeof last, "%s/killed/last.h5", dir);
    snprintf(errfile, sizeof errfile, "%s/killed.err", dir);
    pid_t mpirun = spawn_mpirun(errfile, ARGV(MPIRUN, "2", train_bin, cfg, outkv, "train.epochs=1000", "train.save_every=3"));
    /* wait for a checkpoint, then kill rank 1 */
    for (int i = 0; i < 600 && access(last, F_OK) != 0; i++) usleep(50000);
    assert_int_equal(access(last, F_OK), 0);
    usleep(300000);
    pid_t victim = -1;
    for (int i = 0; i < 50 && victim < 0; i++, usleep(100000)) victim = rank_pid(mpirun, 1);
    if (victim < 0) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "ps -ef --forest | grep -B2 -A3 %d", (int)mpirun);
        if (system(cmd)) {}
        fail_msg("no rank 1 among mpirun's (%d) children", (int)mpirun);
    }
    kill(victim, SIGKILL);
    int status;
    assert_int_equal(waitpid(mpirun, &status, 0), mpirun);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    size_t n;
    char *err = read_file(errfile, &n);
    if (!strstr(err, "the job was stopped") || !strstr(err, "last complete checkpoint") || !strstr(err, "rank 1"))
        fail_msg("no clear message when rank 1 died:\n%s", err);
    free(err);
    /* the checkpoint is whole and resumes with two ranks */
    hid_t f = tu_open(last);
    int nd;
    int64_t sh[4];
    int64_t *step = tu_read_i64(f, "state/global_step", &nd, sh);
    H5Fclose(f);
    char steps[64];
    snprintf(steps, sizeof steps, "train.steps=%lld", (long long)*step + 4);
    print_message("rank 1 killed; last.h5 at step %lld resumes\n", (long long)*step);
    free(step);
    train_ok(2, "killed", ARGV("train.epochs=1000", "train.save_every=3", steps, "--resume"));
}

/* ---- synchronized batch norm through a group of one ---- */

static int sum_alone(nb_comm *c, double *buf, int64_t n) {
    (void)c;
    (void)buf;
    (void)n;
    return 0;
}

/* y = BN(x) in training, differentiated with upstream gradient r: outputs, gradients and running statistics */
typedef struct {
    float *y, *gx, *gg, *gb, *rm, *rv;
} bn_result;

static bn_result bn_run(nb_ctx *ctx, bool relu, bool blocked) {
    int64_t xs[4] = {6, 20, 5, 7}, cs[1] = {20};
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, xs), *r = nb_tensor_new(ctx, NB_F32, 4, xs);
    nb_tensor *g = nb_tensor_new(ctx, NB_F32, 1, cs), *b = nb_tensor_new(ctx, NB_F32, 1, cs);
    nb_tensor *rm = nb_tensor_new(ctx, NB_F32, 1, cs), *rv = nb_tensor_new(ctx, NB_F32, 1, cs);
    tu_randn(x, 1);
    tu_randn(r, 2);
    tu_rand_uniform(g, 3, 0.5f, 1.5f);
    tu_randn(b, 4);
    nb_fill(rv, 1.0);
    nb_set_requires_grad(x, true);
    nb_set_requires_grad(g, true);
    nb_set_requires_grad(b, true);
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *xin = x;
    if (blocked) {
        int layout = nb_activation_layout(x);
        xin = nb_to_layout(x, layout);
    }
    nb_tensor *y = nb_batchnorm2d(xin, g, b, rm, rv, (nb_bn_attr){.momentum = 0.1f, .training = 1, .relu = relu});
    assert_non_null(y);
    assert_int_equal(nb_backward(y, r), 0); /* the gradient of sum(y * r) */
    bn_result out = {tu_host(nb_to_plain(y)), tu_host(x->grad), tu_host(g->grad), tu_host(b->grad), tu_host(rm),
                     tu_host(rv)};
    nb_scope_end(ctx, mark);
    nb_tensor *all[] = {x, r, g, b, rm, rv};
    for (int i = 0; i < 6; i++) nb_release(all[i]);
    return out;
}

static void test_sync_bn_alone(void **st) {
    (void)st;
    nb_comm alone = {.rank = 0, .size = 1, .share = 1.0, .allreduce_f64 = sum_alone};
    for (int relu = 0; relu < 2; relu++)
        for (int blocked = 0; blocked < 2; blocked++) {
            nb_ctx *a = tu_ctx(), *s = tu_ctx();
            s->comm = &alone;
            s->sync_bn = true;
            bn_result p = bn_run(a, relu, blocked), q = bn_run(s, relu, blocked);
            char what[64];
            snprintf(what, sizeof what, "sync BN (relu %d, blocked %d): ", relu, blocked);
            float *pa[] = {p.y, p.gx, p.gg, p.gb, p.rm, p.rv}, *qa[] = {q.y, q.gx, q.gg, q.gb, q.rm, q.rv};
            const char *names[] = {"output", "input gradient", "scale gradient", "shift gradient", "running mean",
                                   "running var"};
            int64_t counts[] = {6 * 20 * 35, 6 * 20 * 35, 20, 20, 20, 20};
            for (int i = 0; i < 6; i++) {
                char w[128];
                snprintf(w, sizeof w, "%s%s", what, names[i]);
                tu_assert_close(w, qa[i], pa[i], counts[i], 1e-5);
                free(pa[i]);
                free(qa[i]);
            }
            s->comm = NULL;
            nb_ctx_free(a);
            nb_ctx_free(s);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_bn_alone),
        cmocka_unit_test(test_two_ranks_match_one),
        cmocka_unit_test(test_compressed_resume),
        cmocka_unit_test(test_rank_dies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
