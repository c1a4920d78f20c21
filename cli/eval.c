/* bin/eval CKPT [CFG] [section.key=value ...]: a checkpoint evaluated on the validation set (data.val) as one
 * JSON object on stdout: top-1, top-5 and loss for a classifier; VOC07 11-point and all-point mAP and the loss
 * for a detector. Without CFG the configuration stored in the checkpoint is used; it runs on the device that
 * configuration trained on (train.device), or on the CPU where there is no GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/select.h"
#include "core/check.h"
#include "setup/assemble.h"
#include "setup/checkpoint.h"
#include "task/task.h"

static int load_cfg(nb_ctx *ctx, nb_cfg *cfg, const char *ckpt, int argc, char **argv) {
    const char *cfg_path = NULL;
    for (int i = 2; i < argc; i++)
        if (!strchr(argv[i], '=')) cfg_path = argv[i];
    int rc = nb_cfg_for_checkpoint(ctx, cfg, ckpt, cfg_path, argc - 2, argv + 2);
    if (rc) fprintf(stderr, "nibble: error: %s\n", cfg->err);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bin/eval CKPT [CFG] [section.key=value ...]\n");
        return 2;
    }
    const char *ckpt = argv[1];
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU); /* reads the configuration; then the one it names */
    nb_cfg cfg;
    nb_cfg_init(&cfg);
    if (load_cfg(ctx, &cfg, ckpt, argc, argv)) return 1;
    nb_ctx_free(ctx);
    nb_settings *s = nb_xmalloc(sizeof *s);
    nb_settings_read(&cfg, s);
    ctx = nb_ctx_for(s, NB_DEVICE_OR_CPU);
    nb_model *m = nb_model_for(ctx, s);
    nb_ckpt_load_model(ctx, ckpt, &m->params, NB_NAMES_ALL);
    nb_dataset val;
    nb_data_load(ctx, s, NB_SPLIT_VAL, &val);
    nb_data_for_model(ctx, s, m, &val);
    nb_loader_cfg lc;
    nb_loader_cfg_for(ctx, s, &val, NB_SPLIT_VAL, &lc);
    nb_task *task = nb_task_for(m, s);
    nb_eval_result r;
    if (task->evaluate(task, &val, &lc, &r)) return 1;
    char fields[200];
    task->eval_fields(task, &r, fields, sizeof fields);
    printf("{\"checkpoint\": \"%s\", \"data\": \"%s\", \"n\": %lld, %s, \"loss\": %.6f}\n", ckpt, val.source,
           (long long)r.n, fields, r.loss);
    nb_task_free(task);
    nb_dataset_free(&val);
    nb_model_free(m);
    free(s);
    nb_cfg_free(&cfg);
    nb_ctx_free(ctx);
    return 0;
}
