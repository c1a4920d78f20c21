/* Knowledge distillation (Hinton, Vinyals, Dean 2015): a teacher network, loaded from any nibble checkpoint
 * and its configuration, runs in evaluation mode on each batch, and the student's loss becomes
 *   alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)),
 * the cross-entropy being the trainer's own (with its label smoothing). The teacher is rebuilt from its file
 * on resume, so it needs no checkpoint state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compressor.h"
#include "core/check.h"
#include "core/ops.h"
#include "setup/assemble.h"

typedef struct {
    nb_model *teacher;
    float alpha, temperature;
    double last_kl;
} kd;

static int kd_before_backward(nb_compressor *c, nb_step *s) {
    kd *k = c->impl;
    bool prev = nb_set_grad_enabled(s->ctx, false);
    nb_tensor *t = k->teacher->forward(k->teacher, s->x, false);
    nb_set_grad_enabled(s->ctx, prev);
    if (!t) return -1;
    nb_tensor *kl = nb_kl_div(s->logits, t, k->temperature);
    nb_tensor *loss = nb_add_scaled(s->loss, k->alpha, kl, 1.0f - k->alpha);
    if (!loss) return -1;
    s->loss = loss;
    return 0;
}

static void kd_destroy(nb_compressor *c) {
    kd *k = c->impl;
    nb_model_free(k->teacher);
    free(k);
    free(c);
}

nb_compressor *nb_kd_new(nb_ctx *ctx, const nb_settings *s, nb_model *m, int64_t steps_per_epoch) {
    (void)steps_per_epoch;
    const char *path = s->compress.teacher, *tcfg_path = s->compress.teacher_cfg;
    float alpha = (float)s->compress.kd_alpha, T = (float)s->compress.kd_temperature;
    NB_REQUIRE(ctx, path[0], NULL, "config", "compress.methods has kd but compress.teacher names no checkpoint");
    NB_REQUIRE(ctx, alpha >= 0 && alpha <= 1 && T > 0, NULL, "config",
               "compress.kd_alpha (%g) must be in [0, 1] and compress.kd_temperature (%g) > 0", (double)alpha, (double)T);
    nb_cfg tcfg;
    nb_cfg_init(&tcfg);
    int rc = nb_cfg_for_checkpoint(ctx, &tcfg, path, tcfg_path, 0, NULL);
    if (rc && !tcfg.err[0]) { /* the checkpoint's own error is reported */
        nb_cfg_free(&tcfg);
        return NULL;
    }
    if (rc) {
        NB_FAIL(ctx, "config", "the teacher's configuration: %s", tcfg.err);
        nb_cfg_free(&tcfg);
        return NULL;
    }
    nb_settings *ts = nb_xmalloc(sizeof *ts);
    nb_settings_read(&tcfg, ts);
    nb_cfg_free(&tcfg);
    nb_model *teacher = nb_model_for(ctx, ts);
    free(ts);
    if (!teacher) return NULL;
    if (nb_ckpt_load_model(ctx, path, &teacher->params, NB_NAMES_ALL)) {
        nb_model_free(teacher);
        return NULL;
    }
    if (teacher->spec.num_classes != m->spec.num_classes || teacher->spec.in_channels != m->spec.in_channels) {
        NB_FAIL(ctx, path, "the teacher (%s: %d classes, %d input channels) does not match the student (%s: %d, %d)",
                teacher->spec.arch, teacher->spec.num_classes, teacher->spec.in_channels, m->spec.arch,
                m->spec.num_classes, m->spec.in_channels);
        nb_model_free(teacher);
        return NULL;
    }
    for (int i = 0; i < teacher->params.n; i++) nb_set_requires_grad(teacher->params.items[i].t, false);
    kd *k = nb_xcalloc(1, sizeof *k);
    k->teacher = teacher;
    k->alpha = alpha;
    k->temperature = T;
    nb_compressor *c = nb_xcalloc(1, sizeof *c);
    *c = (nb_compressor){.name = "kd", .impl = k, .before_backward = kd_before_backward, .destroy = kd_destroy};
    return c;
}
