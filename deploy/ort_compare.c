/* nibble's outputs beside ONNX Runtime's over a dataset (see ort_compare.h): the inputs go to ONNX Runtime
 * exactly as nibble saw them (the same floats, through a temporary file), its outputs come back the same way. */
#include "deploy/ort_compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/check.h"
#include "core/ops.h"

static bool is_mnn(const char *model) {
    size_t k = strlen(model);
    return k > 4 && !strcmp(model + k - 4, ".mnn");
}

/* MNN on the same inputs: its runner (scripts/mnn_run.cpp, built by scripts/mnn_setup.sh) takes ort_run.js's
 * command line */
static int run_mnn(nb_ctx *ctx, const char *root, const char *model, const char *in, const char *dims,
                   const char *out, const char *th, const char *bt) {
    char runner[1200];
    const char *env = getenv("NB_MNN_RUN");
    if (env && env[0]) snprintf(runner, sizeof runner, "%s", env);
    else snprintf(runner, sizeof runner, "%s/build/mnn/mnn_run", root);
    NB_REQUIRE(ctx, access(runner, X_OK) == 0, -1, model,
               "MNN's runner %s is missing: scripts/mnn_setup.sh builds MNN from its source and the runner (or set "
               "NB_MNN_RUN)", runner);
    pid_t pid = fork();
    NB_REQUIRE(ctx, pid >= 0, -1, model, "cannot start %s", runner);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execl(runner, runner, model, in, dims, out, "--threads", th, "--batch", bt, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    NB_REQUIRE(ctx, WIFEXITED(status) && WEXITSTATUS(status) == 0, -1, model, "MNN did not run it (%s exited with %d)",
               runner, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

/* ONNX Runtime (or MNN, for a .mnn model) on the raw inputs in `in` ([n, c, h, w]), outputs into `out` */
static int run_ort(nb_ctx *ctx, const char *root, const char *onnx, const char *in, int64_t n, const nb_dataset *ds,
                   const char *out, int threads, int batch) {
    char script[1200], node_path[1200], dims[128], th[16], bt[16];
    snprintf(script, sizeof script, "%s/scripts/ort_run.js", root);
    const char *env = getenv("NB_ORT_NODE_PATH");
    snprintf(node_path, sizeof node_path, "%s", env && env[0] ? env : "");
    if (!node_path[0]) snprintf(node_path, sizeof node_path, "%s/build/ort/node_modules", root);
    snprintf(dims, sizeof dims, "%lld,%d,%d,%d", (long long)n, ds->c, ds->h, ds->w);
    snprintf(th, sizeof th, "%d", threads);
    snprintf(bt, sizeof bt, "%d", batch);
    if (is_mnn(onnx)) return run_mnn(ctx, root, onnx, in, dims, out, th, bt);
    pid_t pid = fork();
    NB_REQUIRE(ctx, pid >= 0, -1, onnx, "cannot start node for ONNX Runtime");
    if (pid == 0) {
        setenv("NODE_PATH", node_path, 1);
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execlp("node", "node", script, onnx, in, dims, out, "--level", "all", "--threads", th, "--batch", bt,
               (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    NB_REQUIRE(ctx, WIFEXITED(status) && WEXITSTATUS(status) == 0, -1, onnx,
               "ONNX Runtime did not run it (node %s exited with %d; is onnxruntime-node in %s? make deps installs "
               "it)",
               script, WIFEXITED(status) ? WEXITSTATUS(status) : -1, node_path);
    return 0;
}

/* The comparison of nibble's outputs with an engine's: an external one (ONNX Runtime, MNN) through files when
 * theirs_by is NULL, else that engine in this process, batch by batch; nibble's outputs from the model, or
 * from mine_by */
static int compare(nb_model *m, const nb_dataset *ds, const nb_loader_cfg *lc, const char *onnx, const char *root,
                   int threads, const nb_engine *theirs_by, const nb_engine *mine_by, int64_t limit,
                   nb_ort_comparison *out) {
    nb_ctx *ctx = m->ctx;
    memset(out, 0, sizeof *out);
    char in_path[64], out_path[64];
    snprintf(in_path, sizeof in_path, "/tmp/nibble-ort-%d.in.f32", (int)getpid());
    snprintf(out_path, sizeof out_path, "/tmp/nibble-ort-%d.out.f32", (int)getpid());
    FILE *fin = theirs_by ? NULL : fopen(in_path, "wb");
    NB_REQUIRE(ctx, theirs_by || fin, -1, in_path, "cannot write ONNX Runtime's inputs");
    int64_t n = limit > 0 && limit < ds->n ? limit : ds->n, done = 0, per = 0;
    float *mine = NULL, *theirs = NULL;
    int64_t *labels = nb_xmalloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    bool prev = nb_set_grad_enabled(ctx, false);
    nb_loader *l = nb_loader_new(ds, lc);
    nb_loader_start(l, 0, 0);
    const nb_batch *b;
    int rc = 0;
    while (rc == 0 && done < n && (b = nb_loader_next(l))) {
        int k = (int)(n - done < b->n ? n - done : b->n);
        size_t mark = nb_scope_begin(ctx);
        int64_t xs[4] = {k, ds->c, ds->h, ds->w}, sample = (int64_t)ds->c * ds->h * ds->w;
        nb_tensor *x = NULL, *z = NULL;
        if (!mine_by) { /* nibble's outputs: the model's (its simulation), or the engine's that stands for it */
            x = nb_tensor_from_host(ctx, NB_F32, 4, xs, b->x);
            z = x ? m->forward(m, x, false) : NULL;
            if (!z) rc = -1;
        }
        if (rc == 0 && !mine) {
            per = mine_by ? mine_by->outputs : nb_numel(z) / k;
            mine = nb_xmalloc(sizeof(float) * (size_t)(n * per));
            if (theirs_by) theirs = nb_xmalloc(sizeof(float) * (size_t)(n * per));
        }
        if (rc == 0 && !mine_by && nb_tensor_to_host(z, mine + done * per, sizeof(float) * (size_t)(k * per))) rc = -1;
        if (rc == 0 && mine_by && mine_by->fn(mine_by->user, b->x, k, mine + done * per)) rc = -1;
        if (rc == 0 && theirs_by && theirs_by->fn(theirs_by->user, b->x, k, theirs + done * per)) rc = -1;
        if (rc == 0 && fin && fwrite(b->x, sizeof(float), (size_t)(k * sample), fin) != (size_t)(k * sample)) rc = -1;
        for (int i = 0; i < k; i++) labels[done + i] = b->y[i];
        nb_release(x);
        nb_scope_end(ctx, mark);
        done += k;
    }
    nb_loader_free(l);
    nb_set_grad_enabled(ctx, prev);
    if (fin && fclose(fin) != 0) rc = -1;
    if (rc == 0 && !theirs_by) rc = run_ort(ctx, root, onnx, in_path, done, ds, out_path, threads, lc->batch);
    if (rc == 0 && !theirs_by) {
        FILE *f = fopen(out_path, "rb");
        theirs = nb_xmalloc(sizeof(float) * (size_t)(done * per));
        size_t got = f ? fread(theirs, sizeof(float), (size_t)(done * per), f) : 0;
        if (f) fclose(f);
        if (got != (size_t)(done * per)) {
            NB_FAIL(ctx, onnx, "ONNX Runtime returned %zu output values, nibble %lld: the model's output has another "
                    "shape", got, (long long)(done * per));
            rc = -1;
        }
    }
    if (!theirs_by) {
        unlink(in_path);
        unlink(out_path);
    }
    if (rc == 0) {
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < done * per; i++) lo = fmin(lo, mine[i]), hi = fmax(hi, mine[i]);
        out->n = done;
        out->step = (hi - lo) / 255.0;
        int64_t close = 0, agree = 0, right = 0;
        for (int64_t i = 0; i < done * per; i++) {
            double d = fabs((double)mine[i] - (double)theirs[i]);
            out->max_abs_diff = fmax(out->max_abs_diff, d);
            close += d <= out->step;
        }
        out->within_step = done ? (double)close / (double)(done * per) : NAN;
        out->top1 = out->top1_agreement = NAN;
        if (!m->priors && per == m->spec.num_classes) {
            for (int64_t i = 0; i < done; i++) {
                int64_t a = 0, c = 0;
                for (int64_t j = 1; j < per; j++) {
                    if (mine[i * per + j] > mine[i * per + a]) a = j;
                    if (theirs[i * per + j] > theirs[i * per + c]) c = j;
                }
                agree += a == c;
                right += c == labels[i];
            }
            out->top1 = done ? (double)right / (double)done : NAN;
            out->top1_agreement = done ? (double)agree / (double)done : NAN;
        }
    }
    free(mine);
    free(theirs);
    free(labels);
    return rc;
}

int nb_ort_compare(nb_model *m, const nb_dataset *ds, const nb_loader_cfg *lc, const char *onnx, const char *root,
                   int threads, int64_t limit, nb_ort_comparison *out) {
    return compare(m, ds, lc, onnx, root, threads, NULL, NULL, limit, out);
}

int nb_engine_compare(nb_model *m, const nb_dataset *ds, const nb_loader_cfg *lc, nb_engine_fn fn, void *user,
                      int64_t limit, nb_ort_comparison *out) {
    nb_engine theirs = {fn, user, 0};
    return compare(m, ds, lc, "", "", 1, &theirs, NULL, limit, out);
}

int nb_ort_compare_engine(const nb_engine *mine, nb_model *m, const nb_dataset *ds, const nb_loader_cfg *lc,
                          const char *onnx, const char *root, int threads, int64_t limit, nb_ort_comparison *out) {
    return compare(m, ds, lc, onnx, root, threads, NULL, mine, limit, out);
}
