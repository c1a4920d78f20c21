/* The run directory (see run_dir.h). */
#include "train/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/check.h"
#include "train/chart.h"

static bool file_exists(const char *p) {
    struct stat s;
    return stat(p, &s) == 0;
}

static int mkdir_p(const char *path) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) && errno != EEXIST ? -1 : 0;
}

void nb_run_dir_path(const nb_settings *s, const char *cfg_path, char *out, size_t n) {
    if (s->train.out[0]) {
        snprintf(out, n, "%s", s->train.out);
        return;
    }
    const char *base = strrchr(cfg_path, '/');
    base = base ? base + 1 : cfg_path;
    size_t l = strlen(base);
    if (l > 4 && !strcmp(base + l - 4, ".cfg")) l -= 4;
    snprintf(out, n, "runs/%.*s", (int)l, base[0] ? base : "run");
}

int nb_run_dir_check(nb_ctx *ctx, const char *out, nb_run_start start) {
    char last[600];
    snprintf(last, sizeof last, "%s/last.h5", out);
    if (start == NB_RUN_NEW && file_exists(last)) {
        NB_FAIL(ctx, out, "already holds a run (last.h5)\n  hint: add --resume to continue it, or set "
                          "train.out=... for a new run");
        return -1;
    }
    if (start == NB_RUN_RESUME && !file_exists(last)) {
        NB_FAIL(ctx, out, "has no last.h5 to resume from");
        return -1;
    }
    return 0;
}

/* A temporary file of the run's own writers (last.h5.tmp, metrics.jsonl.tmp, curves.png.tmp ...) is what a
 * killed write leaves behind: never a complete file, since the writers rename only complete ones */
static void remove_stale(const char *out) {
    DIR *d = opendir(out);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".tmp")) continue;
        char path[1100];
        snprintf(path, sizeof path, "%s/%s", out, e->d_name);
        if (unlink(path) == 0)
            fprintf(stderr, "nibble: note: removed %s, left by a write that was interrupted (the file it was to "
                            "replace is complete)\n", path);
    }
    closedir(d);
}

int nb_run_dir_create(nb_ctx *ctx, const char *out, const char *config_text) {
    if (mkdir_p(out)) {
        NB_FAIL(ctx, out, "cannot create the run directory: %s", strerror(errno));
        return -1;
    }
    remove_stale(out);
    char path[600], tmp[620];
    snprintf(path, sizeof path, "%s/config.cfg", out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(config_text, f) < 0 || fclose(f) || rename(tmp, path)) {
        NB_FAIL(ctx, path, "cannot write: %s", strerror(errno));
        return -1;
    }
    return 0;
}

FILE *nb_run_metrics_open(nb_ctx *ctx, const char *out, int64_t last_step, nb_history *h) {
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    nb_history_load(h, path, last_step);
    FILE *f = fopen(path, "a");
    if (!f) NB_FAIL(ctx, path, "cannot open for writing: %s", strerror(errno));
    return f;
}

void nb_run_chart(const char *out, const nb_history *h, bool has_val) {
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/curves.png", out);
    nb_series loss[2] = {{h->step_epoch, h->step_loss, h->n_steps, "train", 31, 119, 180},
                         {h->epoch, h->val_loss, h->n_epochs, "val", 214, 39, 40}};
    nb_series acc[2] = {{h->epoch, h->train_top1, h->n_epochs, "train", 31, 119, 180},
                        {h->epoch, h->val_top1, h->n_epochs, "val", 214, 39, 40}};
    nb_panel panels[2] = {{"loss", "epoch", loss, has_val ? 2 : 1, 0}, {"top-1 accuracy", "epoch", acc, has_val ? 2 : 1, 1}};
    if (nb_chart_write(path, panels, 2, err, sizeof err)) fprintf(stderr, "nibble: warning: %s\n", err);
}
