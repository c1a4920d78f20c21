/* Fuzz target: checkpoints, read as a model built from a fixed cfg (smallcnn at width 0.125 on 8x8 images with
 * SGD momentum, the cfg of the committed seeds) reads one: the stored config, the weights, the optimizer
 * state, the training position, the integer codes and scales (qweights) and the activation quantizers (qsim)
 * that bin/export reads, and the cfg that bin/export resolves from the checkpoint. */
#include <stdlib.h>

#include "compress/qsim.h"
#include "deploy/qweights.h"
#include "fuzz/support/fuzz_files.h"
#include "setup/assemble.h"
#include "setup/checkpoint.h"

static const char cfg_text[] = "[model]\narch = smallcnn\nwidth = 0.125\ninput_size = 8\n"
                               "[optim]\nmomentum = 0.9\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static nb_settings *s;
    static nb_model *m;
    static nb_optim *o;
    nb_ctx *ctx = fz_ctx();
    if (!m) {
        nb_cfg c;
        nb_cfg_init(&c);
        if (nb_cfg_load_string(&c, cfg_text, "fuzz_checkpoint")) abort();
        s = malloc(sizeof *s);
        nb_settings_read(&c, s);
        nb_cfg_free(&c);
        m = nb_model_for(ctx, s);
        o = nb_optim_for(ctx, s, m);
        if (!m || !o) abort();
    }
    const char *path = fz_write("ckpt.h5", data, size);
    free(nb_ckpt_read_config(ctx, path));
    nb_ckpt_load_model(ctx, path, &m->params, NB_NAMES_ALL);
    nb_ckpt_load_model(ctx, path, &m->params, NB_NAMES_PRESENT);
    nb_ckpt_load_optim(ctx, path, o);
    nb_train_state st;
    nb_ckpt_load_state(ctx, path, &st);
    nb_qweights q;
    if (nb_qweights_open(ctx, &q, path) == 0) nb_qweights_close(&q);
    nb_qsim *qs = NULL;
    if (nb_qsim_for_checkpoint(m, s, path, &qs) == 0) nb_qsim_free(qs);
    nb_cfg c;
    nb_cfg_init(&c);
    nb_cfg_for_checkpoint(ctx, &c, path, NULL, 0, NULL);
    nb_cfg_free(&c);
    return 0;
}
