/* Assembly of a run's parts from its settings (see assemble.h). */
#include "setup/assemble.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/select.h"
#include "core/check.h"
#include "datasets/det_data.h"
#include "import/onnx_import.h"
#include "setup/checkpoint.h"

int nb_cfg_for_checkpoint(nb_ctx *ctx, nb_cfg *cfg, const char *ckpt, const char *cfg_path, int n_args,
                          char *const *args) {
    int rc;
    if (cfg_path && cfg_path[0]) {
        rc = nb_cfg_load(cfg, cfg_path);
    } else {
        char *text = nb_ckpt_read_config(ctx, ckpt);
        if (!text) return -1;
        rc = nb_cfg_load_string(cfg, text, ckpt);
        free(text);
    }
    for (int i = 0; i < n_args && rc == 0; i++)
        if (args[i][0] != '-' && strchr(args[i], '=')) rc = nb_cfg_override(cfg, args[i]);
    return rc ? -1 : 0;
}

nb_ctx *nb_ctx_for(const nb_settings *s, nb_device_policy policy) {
    if ((nb_device)s->train.device.id != NB_DEVICE_CUDA) return nb_ctx_new(NB_DEVICE_CPU);
    char why[512];
    if (policy == NB_DEVICE_OR_CPU && !nb_cuda_available(why, sizeof why)) {
        fprintf(stderr, "nibble: note: train.device = cuda, but %s; running on the CPU\n", why);
        return nb_ctx_new(NB_DEVICE_CPU);
    }
    return nb_ctx_new(NB_DEVICE_CUDA);
}

nb_model *nb_model_for(nb_ctx *ctx, const nb_settings *s) {
    nb_model_spec spec = {.arch = s->model.arch,
                          .num_classes = (int)s->model.num_classes,
                          .in_channels = (int)s->model.in_channels,
                          .input_size = (int)s->model.input_size,
                          .width = (float)s->model.width,
                          .zero_init_residual = s->model.zero_init_residual,
                          .seed = (uint64_t)s->train.seed};
    /* one more than a detector takes, so that too many ratios are reported rather than cut */
    spec.det.n_ratios = s->detect.ratios.n < NB_PRIOR_RATIOS + 1 ? s->detect.ratios.n : NB_PRIOR_RATIOS + 1;
    for (int r = 0; r < spec.det.n_ratios && r < NB_PRIOR_RATIOS; r++) spec.det.ratios[r] = (float)s->detect.ratios.v[r];
    spec.det.first_scale = (float)s->detect.first_scale;
    spec.det.min_scale = (float)s->detect.min_scale;
    spec.det.max_scale = (float)s->detect.max_scale;
    spec.det.head_channels = (int)s->detect.head_channels;
    spec.det.dense_predictor = s->detect.predictor.id == NB_PREDICTOR_DENSE;
    spec.det.neg_pos = (float)s->detect.neg_pos;
    spec.det.score_min = (float)s->detect.score_min;
    spec.det.nms_iou = (float)s->detect.nms_iou;
    spec.det.top_k = (int)s->detect.top_k;
    if (!strcmp(spec.arch, "onnx")) return nb_onnx_import(ctx, &spec, s->model.onnx);
    return nb_model_create(ctx, &spec);
}

/* Where a folder dataset's split lives: data.root/train or data.root/val. */
static void split_dir(const nb_settings *s, nb_data_split split, char *out, size_t n) {
    snprintf(out, n, "%s/%s", s->data.root, split == NB_SPLIT_VAL ? "val" : "train");
}

bool nb_has_val(const nb_settings *s) {
    switch ((nb_data_format)s->data.format.id) {
    case NB_DATA_CIFAR: return true;
    case NB_DATA_FOLDER: {
        char dir[1100];
        struct stat st;
        split_dir(s, NB_SPLIT_VAL, dir, sizeof dir);
        return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    }
    case NB_DATA_VOC:
    case NB_DATA_IDX:
    case NB_DATA_HDF5: break;
    }
    return s->data.val[0] != 0;
}

int nb_data_load(nb_ctx *ctx, const nb_settings *s, nb_data_split split, nb_dataset *ds) {
    const nb_data_settings *d = &s->data;
    bool val = split == NB_SPLIT_VAL;
    int64_t limit = val ? d->val_limit : d->limit;
    const char *images = val ? d->val : d->train;
    switch ((nb_data_format)d->format.id) {
    case NB_DATA_VOC:
        return nb_dataset_load_voc(ctx, ds, d->root, images, d->classes, (int)s->model.input_size, limit);
    case NB_DATA_FOLDER:
    case NB_DATA_CIFAR: {
        NB_REQUIRE(ctx, d->root[0], -1, "config", "data.format = %s needs data.root", d->format.name);
        if (d->format.id == NB_DATA_CIFAR) return nb_dataset_load_cifar(ctx, ds, d->root, !val, limit);
        char dir[1100];
        split_dir(s, split, dir, sizeof dir);
        return nb_dataset_load_folder(ctx, ds, dir, (int)s->model.input_size, limit);
    }
    case NB_DATA_HDF5: return nb_dataset_load_hdf5(ctx, ds, images, limit);
    case NB_DATA_IDX: break;
    }
    char labels[1024];
    const char *given = val ? d->val_labels : d->train_labels;
    if (given[0]) {
        snprintf(labels, sizeof labels, "%s", given);
    } else if (nb_idx_labels_path(images, labels, sizeof labels)) {
        NB_FAIL(ctx, images, "cannot derive the labels file from this name (no 'images-idx3' in it)\n  hint: set "
                             "data.%s_labels",
                val ? "val" : "train");
        return -1;
    }
    return nb_dataset_load_idx(ctx, ds, images, labels, limit);
}

int nb_loader_cfg_for(nb_ctx *ctx, const nb_settings *s, const nb_dataset *ds, nb_data_split split, nb_loader_cfg *lc) {
    const nb_data_settings *d = &s->data;
    bool train = split == NB_SPLIT_TRAIN;
    memset(lc, 0, sizeof *lc);
    lc->batch = (int)(train ? s->train.batch : s->train.eval_batch);
    /* evaluation in one batch at most: a larger eval_batch would only set aside memory no image fills (the
     * scores do not depend on how the set is cut) */
    if (!train && ds->n > 0 && s->train.eval_batch > ds->n) lc->batch = (int)ds->n;
    lc->shuffle = train && s->train.shuffle;
    lc->seed = (uint64_t)s->train.seed;
    lc->pad = (int)d->pad;
    lc->workers = (int)d->workers;
    nb_augment_kind aug = (nb_augment_kind)d->augment.id;
    const char *aug_name = d->augment.name;
    if (train) {
        if (aug == NB_AUGMENT_FLIP || aug == NB_AUGMENT_CROP_FLIP || aug == NB_AUGMENT_RRC_FLIP) lc->augment |= NB_AUG_FLIP;
        if (aug == NB_AUGMENT_CROP || aug == NB_AUGMENT_CROP_FLIP) lc->augment |= NB_AUG_CROP;
        if (aug == NB_AUGMENT_RRC || aug == NB_AUGMENT_RRC_FLIP) lc->augment |= NB_AUG_RRC;
        if (aug == NB_AUGMENT_SSD) lc->augment |= NB_AUG_SSD;
    }
    NB_REQUIRE(ctx, !train || !ds->det || aug == NB_AUGMENT_NONE || aug == NB_AUGMENT_SSD, -1, "config",
               "data.augment = %s: detection data (data.format = voc) takes none or ssd", aug_name);
    NB_REQUIRE(ctx, !train || ds->det || aug != NB_AUGMENT_SSD, -1, "config",
               "data.augment = ssd is detection's augmentation; it needs data.format = voc");
    NB_REQUIRE(ctx, !(lc->augment & NB_AUG_CROP) || !ds->files, -1, "config",
               "data.augment = %s: the padded random crop is for in-memory data; image folders take rrc or rrc_flip",
               aug_name);
    NB_REQUIRE(ctx, !(lc->augment & NB_AUG_RRC) || ds->files, -1, "config",
               "data.augment = %s: the random resized crop needs an image folder (data.format = folder); use crop "
               "or crop_flip",
               aug_name);
    lc->scale_min = d->scale_min;
    lc->resize = (int)d->resize;
    NB_REQUIRE(ctx, lc->scale_min > 0 && lc->scale_min <= 1 && lc->resize >= 0, -1, "config",
               "data.scale_min (%g) must be in (0, 1] and data.resize (%d) >= 0", lc->scale_min, lc->resize);
    NB_REQUIRE(ctx, lc->batch > 0 && lc->workers > 0 && lc->pad >= 0, -1, "config",
               "train.batch (%d), train.eval_batch, data.workers (%d) must be positive and data.pad (%d) >= 0",
               lc->batch, lc->workers, lc->pad);
    NB_REQUIRE(ctx, ds->c <= NB_MAX_CHANNELS, -1, "config", "%d image channels; at most %d supported", ds->c,
               NB_MAX_CHANNELS);
    int nm = d->mean.n < NB_MAX_CHANNELS ? d->mean.n : NB_MAX_CHANNELS;
    int ns = d->std.n < NB_MAX_CHANNELS ? d->std.n : NB_MAX_CHANNELS;
    NB_REQUIRE(ctx, (nm == 1 || nm == ds->c) && (ns == 1 || ns == ds->c), -1, "config",
               "data.mean and data.std need 1 or %d values (one per channel), got %d and %d", ds->c, nm, ns);
    for (int c = 0; c < ds->c; c++) {
        lc->mean[c] = (float)d->mean.v[nm == 1 ? 0 : c];
        lc->std[c] = (float)d->std.v[ns == 1 ? 0 : c];
        NB_REQUIRE(ctx, lc->std[c] > 0, -1, "config", "data.std must be positive");
    }
    return 0;
}

static int check_data_fits(nb_ctx *ctx, const nb_model *m, const nb_dataset *ds) {
    NB_REQUIRE(ctx, ds->n > 0, -1, ds->source, "holds no samples");
    NB_REQUIRE(ctx, !ds->det == !m->priors, -1, ds->source, "%s, but model.arch = %s is %s",
               ds->det ? "is detection data (data.format = voc)" : "is classification data",
               m->spec.arch, m->priors ? "a detector" : "a classifier");
    if (ds->det)
        NB_REQUIRE(ctx, ds->det->voc.n_classes + 1 == m->spec.num_classes, -1, ds->source,
                   "has %d object classes, so the detector needs model.num_classes = %d (the background counts too), "
                   "not %d",
                   ds->det->voc.n_classes, ds->det->voc.n_classes + 1, m->spec.num_classes);
    NB_REQUIRE(ctx, ds->c == m->spec.in_channels, -1, ds->source,
               "images have %d channels but the model takes %d (model.in_channels)", ds->c, m->spec.in_channels);
    NB_REQUIRE(ctx, ds->h == m->spec.input_size && ds->w == m->spec.input_size, -1, ds->source,
               "images are %dx%d but the model is built for %dx%d (model.input_size)", ds->h, ds->w,
               m->spec.input_size, m->spec.input_size);
    NB_REQUIRE(ctx, ds->max_label < m->spec.num_classes, -1, ds->source,
               "has label %lld but the model has %d classes (model.num_classes)", (long long)ds->max_label,
               m->spec.num_classes);
    return 0;
}

int nb_data_for_model(nb_ctx *ctx, const nb_settings *s, const nb_model *m, nb_dataset *ds) {
    if (check_data_fits(ctx, m, ds)) return -1;
    if (!ds->det) return 0;
    int P = nb_priors(m->priors, NULL, 0);
    nb_cbox *p = nb_xmalloc(sizeof(nb_cbox) * (size_t)P);
    nb_priors(m->priors, p, P);
    nb_dataset_set_priors(ds, p, P, (float)s->detect.match_iou, (float)s->detect.expand_max);
    free(p);
    return 0;
}

int nb_schedule_for(nb_ctx *ctx, const nb_settings *s, nb_schedule *sched) {
    const nb_optim_settings *o = &s->optim;
    memset(sched, 0, sizeof *sched);
    sched->kind = (nb_sched_kind)o->schedule.id;
    sched->base_lr = o->lr;
    sched->step_size = o->step_size;
    sched->gamma = o->gamma;
    sched->n_milestones = o->milestones.n < NB_SCHED_MAX_MILESTONES ? o->milestones.n : NB_SCHED_MAX_MILESTONES;
    for (int i = 0; i < sched->n_milestones; i++) sched->milestones[i] = o->milestones.v[i];
    sched->total = (double)s->train.epochs;
    sched->min_lr = o->min_lr;
    sched->power = o->power;
    sched->warmup = o->warmup_epochs;
    sched->warmup_start_factor = o->warmup_start;
    NB_REQUIRE(ctx, sched->kind != NB_SCHED_STEP || sched->step_size > 0, -1, "config", "optim.step_size must be > 0");
    NB_REQUIRE(ctx, sched->kind != NB_SCHED_MULTISTEP || sched->n_milestones > 0, -1, "config",
               "optim.schedule = multistep needs optim.milestones");
    return 0;
}

nb_optim *nb_optim_for(nb_ctx *ctx, const nb_settings *s, nb_model *m) {
    const nb_optim_settings *os = &s->optim;
    nb_optim_kind kind = (nb_optim_kind)os->type.id;
    nb_optim_config oc = nb_optim_defaults(kind);
    oc.lr = (float)os->lr;
    oc.momentum = kind == NB_OPTIM_SGD ? (float)os->momentum : 0.0f;
    oc.nesterov = os->nesterov;
    oc.weight_decay = (float)os->wd;
    oc.wd_exempt_1d = os->wd_exempt;
    oc.beta1 = (float)os->beta1;
    oc.beta2 = (float)os->beta2;
    oc.eps = (float)os->eps;
    nb_tensor **params = nb_xmalloc(sizeof(nb_tensor *) * (size_t)(m->params.n ? m->params.n : 1));
    int n = 0;
    for (int i = 0; i < m->params.n; i++)
        if (m->params.items[i].kind == NB_PARAM) params[n++] = m->params.items[i].t;
    nb_optim *o = nb_optim_new(ctx, &oc, params, n);
    free(params);
    return o;
}
