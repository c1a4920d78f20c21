/* bin/eval CKPT [CFG] [section.key=value ...]: top-1, top-5 and loss of a checkpoint on the validation set
 * (data.val), as one JSON object on stdout; for a detector, VOC07 11-point and all-point mAP and the loss. Without CFG the configuration stored in the checkpoint is used;
 * it runs on the device that configuration trained on (train.device), or on the CPU where there is no GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/select.h"
#include "core/context.h"
#include "train/trainer.h"

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
    ctx = nb_ctx_from_cfg(&cfg, true);
    nb_model *m = nb_model_from_cfg(ctx, &cfg);
    nb_ckpt_load_model(ctx, ckpt, &m->params, true);
    nb_dataset val;
    nb_data_from_cfg(ctx, &cfg, true, &val);
    nb_data_for_model(ctx, &cfg, m, &val);
    nb_loader_cfg lc;
    nb_loader_cfg_from(ctx, &cfg, &val, false, &lc);
    nb_eval_result r;
    if (nb_evaluate(ctx, m, &val, &lc, &r)) return 1;
    if (m->priors)
        printf("{\"checkpoint\": \"%s\", \"data\": \"%s\", \"n\": %lld, \"map07\": %.6f, \"map\": %.6f, \"loss\": %.6f}\n",
               ckpt, val.source, (long long)r.n, r.map07, r.map, r.loss);
    else
        printf("{\"checkpoint\": \"%s\", \"data\": \"%s\", \"n\": %lld, \"top1\": %.6f, \"top5\": %.6f, \"loss\": %.6f}\n",
               ckpt, val.source, (long long)r.n, r.top1, r.top5, r.loss);
    nb_dataset_free(&val);
    nb_model_free(m);
    nb_cfg_free(&cfg);
    nb_ctx_free(ctx);
    return 0;
}
