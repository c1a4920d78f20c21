/* The run directory (train.out, default runs/<cfg name>): refusing to start over a run that is there unless
 * resumed, the resolved configuration (config.cfg), the metrics file (metrics.jsonl) with the history it
 * holds, and the chart (curves.png). Checkpoints go there too (train/trainer.c). */
#ifndef NB_RUN_DIR_H
#define NB_RUN_DIR_H

#include <stdbool.h>
#include <stdio.h>

#include "core/context.h"
#include "setup/settings.h"
#include "train/history.h"

typedef enum { NB_RUN_NEW, NB_RUN_RESUME } nb_run_start;

/* train.out, or runs/<name of the cfg file without .cfg>. */
void nb_run_dir_path(const nb_settings *s, const char *cfg_path, char *out, size_t n);
/* A new run needs a directory without last.h5; a resumed one needs it. 0, or -1 after reporting. */
int nb_run_dir_check(nb_ctx *ctx, const char *out, nb_run_start start);
/* Create the directory and write config.cfg (a temporary file, then renamed). */
int nb_run_dir_create(nb_ctx *ctx, const char *out, const char *config_text);
/* metrics.jsonl for appending, after dropping the lines logged past last_step into h (a resumed run continues
 * its curves); NULL after reporting. */
FILE *nb_run_metrics_open(nb_ctx *ctx, const char *out, int64_t last_step, nb_history *h);
/* curves.png from the history: loss and top-1 (or the task's score), training and validation. */
void nb_run_chart(const char *out, const nb_history *h, bool has_val);

#endif
