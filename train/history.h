/* The run's metric history, read back from metrics.jsonl so that a resumed run keeps its curves: lines
 * logged after the checkpoint being resumed are dropped from the file, the rest feed the chart. */
#ifndef NB_HISTORY_H
#define NB_HISTORY_H

#include <stdint.h>

typedef struct {
    double *step_epoch, *step_loss; /* per logged step: fractional epoch, mean training loss */
    int n_steps, cap_steps;
    double *epoch, *train_top1, *val_loss, *val_top1; /* per epoch */
    int n_epochs, cap_epochs;
} nb_history;

/* Read path (if it exists), keep the lines with step <= last_step, rewrite the file with those alone. */
int nb_history_load(nb_history *h, const char *path, int64_t last_step);
void nb_history_add_step(nb_history *h, double epoch, double loss);
void nb_history_add_epoch(nb_history *h, double epoch, double train_top1, double val_loss, double val_top1);
void nb_history_free(nb_history *h);

#endif
