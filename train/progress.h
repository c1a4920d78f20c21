/* What a run shows while it trains: the start line, a progress line (redrawn on a terminal, one line every
 * train.log_every steps otherwise), metrics.jsonl's step and epoch lines, the console's epoch line, notes on
 * unreadable images, and curves.png. Rank 0 writes the files; the other ranks log nowhere. */
#ifndef NB_PROGRESS_H
#define NB_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include "train/history.h"
#include "train/trainer.h"

typedef struct {
    nb_trainer *t;
    FILE *metrics;
    nb_history hist;
    bool tty;
    double session_start, seconds0; /* this session's start, and the training seconds before it */
    double win_loss, win_t0, last_draw;
    int64_t win_n, win_steps, ep_n;
    int64_t skipped_train, skipped_val; /* unreadable images reported so far */
} nb_progress;

/* Open metrics.jsonl (dropping lines logged after the checkpoint) and print the start line. 0, or -1 after
 * reporting. */
int nb_progress_open(nb_progress *p, nb_trainer *t);
void nb_progress_epoch(nb_progress *p); /* an epoch's batches begin */
/* After a step of epoch e on batch b (loss lv, the group's; learning rate lr): the training clock, the step
 * line every train.log_every steps, the terminal's progress line. */
void nb_progress_step(nb_progress *p, int64_t e, const nb_batch *b, float lv, float lr);
void nb_progress_line_end(nb_progress *p); /* the batches ended: end a redrawn line */
void nb_progress_interrupted(nb_progress *p, int64_t e);
void nb_progress_report_skipped(nb_progress *p);
/* Epoch e's metrics line (lr: the rate at its end; extra: the compressors' and ranks' fields; the process's
 * resident memory now and at its peak, so that a leak per epoch shows; loss scaling's state when it is on),
 * history and console line. 0, or -1
 * after reporting that the metrics file could not be written (disk full: the lines before stay as they were). */
int nb_progress_epoch_end(nb_progress *p, int64_t e, double lr, double train_loss, double train_score,
                           const nb_eval_result *ev, bool best, const char *extra);
void nb_progress_chart(nb_progress *p);
void nb_progress_close(nb_progress *p);

#endif
