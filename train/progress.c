/* Progress, metrics lines and the chart of a run (see progress.h). */
#include "train/progress.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/check.h"
#include "train/run_dir.h"

/* resident memory of this process now (/proc/self/statm) and at its peak (getrusage), in MiB */
static void rss_mb(double *now_mb, double *peak_mb) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    if (f) fclose(f);
    *now_mb = (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
    struct rusage ru;
    *peak_mb = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fmt_duration(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

/* Optimizer steps still to run: to the end of the last epoch, or to train.steps when that comes first. */
static int64_t steps_left(const nb_trainer *t) {
    int64_t total = t->epochs * nb_loader_batches(t->loader);
    if (t->set.train.steps > 0 && t->set.train.steps < total) total = t->set.train.steps;
    return total > t->st.global_step ? total - t->st.global_step : 0;
}

/* Image-folder files that could not be decoded are skipped; say so when their number grows. */
static void report_skipped(const nb_dataset *ds, int64_t *reported) {
    if (!ds->skipped) return;
    pthread_mutex_lock(&ds->skipped->mu);
    int64_t n = ds->skipped->count;
    char first[600];
    snprintf(first, sizeof first, "%s", ds->skipped->first);
    pthread_mutex_unlock(&ds->skipped->mu);
    if (n > *reported)
        fprintf(stderr, "nibble: note: %lld unreadable image%s in %s skipped so far (each replaced by the next readable "
                        "one); the first: %s\n",
                (long long)n, n == 1 ? "" : "s", ds->source, first);
    *reported = n;
}

int nb_progress_open(nb_progress *p, nb_trainer *t) {
    memset(p, 0, sizeof *p);
    p->t = t;
    /* the other ranks log nowhere: the metrics are the group's, and rank 0 writes them (rewriting the file to
     * drop lines logged after the checkpoint is rank 0's job alone) */
    p->metrics = t->writer ? nb_run_metrics_open(t->ctx, t->out, t->st.global_step, &p->hist) : fopen("/dev/null", "w");
    if (!p->metrics) {
        nb_history_free(&p->hist);
        return -1;
    }
    p->tty = isatty(2) && !t->quiet;
    p->session_start = now();
    p->seconds0 = t->st.seconds;
    int ranks = nb_dist_size(t->dist);
    if (!t->quiet)
        fprintf(stderr, "nibble: training %s (%lld parameters) on %lld images, %lld batches of %d per epoch, %d threads%s%s -> %s "
                        "(best.h5 by %s)\n",
                t->model->spec.arch, (long long)nb_params_count(&t->model->params, NULL), (long long)t->train.n,
                (long long)nb_loader_batches(t->loader), (int)t->set.train.batch, omp_get_max_threads(),
                ranks > 1 ? " per rank, " : "", ranks > 1 ? nb_dist_describe(t->dist) : "", t->out, t->task->score_key);
    return 0;
}

void nb_progress_epoch(nb_progress *p) {
    p->win_loss = 0;
    p->win_n = p->win_steps = p->ep_n = 0;
    p->win_t0 = now();
    p->last_draw = 0;
}

/* Loss scaling's fields of a metrics line, appended to out: the scale the next step uses and the steps skipped
 * for an overflow so far (nothing when loss scaling is off) */
static void scaler_fields(const nb_trainer *t, char *out, size_t n) {
    size_t used = strlen(out);
    if (t->st.scaler.scale > 0)
        snprintf(out + used, n - used, ", \"loss_scale\": %.9g, \"skipped_steps\": %lld", t->st.scaler.scale,
                 (long long)t->st.scaler.skipped);
}

void nb_progress_step(nb_progress *p, int64_t e, const nb_batch *b, float lv, float lr) {
    nb_trainer *t = p->t;
    int64_t nb = nb_loader_batches(t->loader), log_every = t->set.train.log_every;
    p->ep_n += b->global_n;
    p->win_loss += lv;
    p->win_n += b->global_n;
    p->win_steps++;
    double tnow = now();
    t->st.seconds = p->seconds0 + (tnow - p->session_start);
    if (log_every > 0 && t->st.global_step % log_every == 0) {
        double rate = (double)p->win_n / (tnow - p->win_t0);
        char comm[160] = "";
        if (nb_dist_size(t->dist) > 1) /* the share of the window rank 0 spent waiting for gradient sums */
            snprintf(comm, sizeof comm, ", \"comm_share\": %.4f", nb_dist_take_wait_seconds(t->dist) / (tnow - p->win_t0));
        scaler_fields(t, comm, sizeof comm);
        double epoch = (double)e + (double)(b->index + 1) / (double)nb, loss = p->win_loss / (double)p->win_steps;
        fprintf(p->metrics,
                "{\"type\": \"step\", \"epoch\": %.4f, \"step\": %lld, \"lr\": %.6g, \"train_loss\": %.6f, "
                "\"img_per_s\": %.1f, \"seconds\": %.1f%s}\n",
                epoch, (long long)t->st.global_step, (double)lr, loss, rate, t->st.seconds, comm);
        fflush(p->metrics);
        nb_history_add_step(&p->hist, epoch, loss);
        if (!p->tty && !t->quiet) {
            char eta[32];
            fmt_duration((double)steps_left(t) * (double)b->n / rate, eta, sizeof eta);
            fprintf(stderr, "epoch %lld/%lld  step %lld/%lld  loss %.4f  lr %.4g  %.0f img/s  ETA %s\n",
                    (long long)e + 1, (long long)t->epochs, (long long)b->index + 1, (long long)nb, loss, (double)lr,
                    rate, eta);
        }
        p->win_loss = 0;
        p->win_n = p->win_steps = 0;
        p->win_t0 = tnow;
    }
    if (p->tty && tnow - p->last_draw > 0.5) {
        double rate = (double)t->st.images_seen / fmax(t->st.seconds, 1e-9);
        char eta[32];
        fmt_duration((double)steps_left(t) * (double)t->set.train.batch /
                         ((double)p->ep_n / fmax(tnow - p->session_start, 1e-9)),
                     eta, sizeof eta);
        fprintf(stderr, "\repoch %lld/%lld  step %lld/%lld  loss %.4f  lr %.4g  %.0f img/s  ETA %s   ", (long long)e + 1,
                (long long)t->epochs, (long long)b->index + 1, (long long)nb, (double)lv, (double)lr, rate, eta);
        p->last_draw = tnow;
    }
}

void nb_progress_line_end(nb_progress *p) {
    if (p->tty) fputc('\n', stderr);
}

void nb_progress_interrupted(nb_progress *p, int64_t e) {
    nb_trainer *t = p->t;
    if (p->tty) fputc('\n', stderr);
    if (t->writer)
        fprintf(stderr, "nibble: interrupted at epoch %lld, batch %lld; saved %s/last.h5\n  resume with: bin/train %s "
                        "--resume\n",
                (long long)e, (long long)t->st.batch, t->out, t->cfg->path);
}

void nb_progress_report_skipped(nb_progress *p) {
    report_skipped(&p->t->train, &p->skipped_train);
    if (p->t->has_val) report_skipped(&p->t->val, &p->skipped_val);
}

int nb_progress_epoch_end(nb_progress *p, int64_t e, double lr, double train_loss, double train_score,
                          const nb_eval_result *ev, bool best, const char *extra) {
    nb_trainer *t = p->t;
    nb_task *task = t->task;
    t->st.seconds = p->seconds0 + (now() - p->session_start);
    char fields[200], console[200], scaler[100] = "";
    task->epoch_fields(task, train_score, ev, fields, sizeof fields);
    scaler_fields(t, scaler, sizeof scaler);
    double rss, peak;
    rss_mb(&rss, &peak);
    fprintf(p->metrics,
            "{\"type\": \"epoch\", \"epoch\": %lld, \"step\": %lld, \"lr\": %.6g, \"train_loss\": %.6f, "
            "\"val_loss\": %.6f, %s, \"img_per_s\": %.1f, \"seconds\": %.1f, \"rss_mb\": %.1f, \"peak_rss_mb\": %.1f%s%s}\n",
            (long long)e + 1, (long long)t->st.global_step, lr, train_loss, ev->loss, fields,
            (double)t->st.images_seen / fmax(t->st.seconds, 1e-9), t->st.seconds, rss, peak, scaler, extra);
    /* the step lines' errors too: ferror stays set */
    if (fflush(p->metrics) != 0 || ferror(p->metrics)) {
        int err = errno;
        NB_FAIL(t->ctx, "train", "cannot write %s/metrics.jsonl: %s; its earlier lines are intact, and %s/last.h5 "
                "holds the last checkpoint", t->out, strerror(err ? err : EIO), t->out);
        return -1;
    }
    nb_history_add_epoch(&p->hist, (double)(e + 1), train_score, ev->loss, ev->score);
    if (t->quiet) return 0;
    task->epoch_console(task, train_score, ev, console, sizeof console);
    fprintf(stderr, "epoch %lld/%lld  train loss %.4f%s%s  (%.0fs)\n", (long long)e + 1, (long long)t->epochs, train_loss,
            console, best ? "  best" : "", t->st.seconds);
    return 0;
}

void nb_progress_chart(nb_progress *p) {
    if (p->t->writer) nb_run_chart(p->t->out, &p->hist, p->t->has_val);
}

void nb_progress_close(nb_progress *p) {
    report_skipped(&p->t->train, &p->skipped_train); /* a run that stopped inside an epoch */
    fclose(p->metrics);
    nb_history_free(&p->hist);
}
