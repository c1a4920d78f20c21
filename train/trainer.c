/* The training loop, evaluation, run-directory bookkeeping and the model summary. */
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/select.h"
#include "core/arith.h"
#include "core/check.h"
#include "compress/channel_deps.h"
#include "core/ops.h"
#include "datasets/det_data.h"
#include "detect/decode.h"
#include "train/chart.h"
#include "train/history.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

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

nb_ctx *nb_ctx_from_cfg(const nb_cfg *cfg, bool fallback) {
    if (strcmp(nb_cfg_str(cfg, "train.device"), "cuda")) return nb_ctx_new(NB_DEVICE_CPU);
    char why[512];
    if (fallback && !nb_cuda_available(why, sizeof why)) {
        fprintf(stderr, "nibble: note: train.device = cuda, but %s; running on the CPU\n", why);
        return nb_ctx_new(NB_DEVICE_CPU);
    }
    return nb_ctx_new(NB_DEVICE_CUDA);
}

nb_model *nb_model_from_cfg(nb_ctx *ctx, const nb_cfg *cfg) {
    nb_model_spec spec = {.arch = nb_cfg_str(cfg, "model.arch"),
                          .num_classes = (int)nb_cfg_int(cfg, "model.num_classes"),
                          .in_channels = (int)nb_cfg_int(cfg, "model.in_channels"),
                          .input_size = (int)nb_cfg_int(cfg, "model.input_size"),
                          .width = (float)nb_cfg_float(cfg, "model.width"),
                          .zero_init_residual = nb_cfg_bool(cfg, "model.zero_init_residual"),
                          .seed = (uint64_t)nb_cfg_int(cfg, "train.seed")};
    double ratios[NB_PRIOR_RATIOS + 1];
    spec.det.n_ratios = nb_cfg_floats(cfg, "detect.ratios", ratios, NB_PRIOR_RATIOS + 1);
    for (int r = 0; r < spec.det.n_ratios && r < NB_PRIOR_RATIOS; r++) spec.det.ratios[r] = (float)ratios[r];
    spec.det.first_scale = (float)nb_cfg_float(cfg, "detect.first_scale");
    spec.det.min_scale = (float)nb_cfg_float(cfg, "detect.min_scale");
    spec.det.max_scale = (float)nb_cfg_float(cfg, "detect.max_scale");
    spec.det.head_channels = (int)nb_cfg_int(cfg, "detect.head_channels");
    spec.det.dense_predictor = !strcmp(nb_cfg_str(cfg, "detect.predictor"), "dense");
    spec.det.neg_pos = (float)nb_cfg_float(cfg, "detect.neg_pos");
    spec.det.score_min = (float)nb_cfg_float(cfg, "detect.score_min");
    spec.det.nms_iou = (float)nb_cfg_float(cfg, "detect.nms_iou");
    spec.det.top_k = (int)nb_cfg_int(cfg, "detect.top_k");
    return nb_model_create(ctx, &spec);
}

/* Where a folder dataset's split lives: data.root/train or data.root/val. */
static void split_dir(const nb_cfg *cfg, bool val, char *out, size_t n) {
    snprintf(out, n, "%s/%s", nb_cfg_str(cfg, "data.root"), val ? "val" : "train");
}

bool nb_cfg_has_val(const nb_cfg *cfg) {
    const char *format = nb_cfg_str(cfg, "data.format");
    if (!strcmp(format, "cifar")) return true;
    if (!strcmp(format, "voc")) return nb_cfg_str(cfg, "data.val")[0] != 0;
    if (!strcmp(format, "folder")) {
        char dir[1100];
        struct stat st;
        split_dir(cfg, true, dir, sizeof dir);
        return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    }
    return nb_cfg_str(cfg, "data.val")[0] != 0;
}

int nb_data_from_cfg(nb_ctx *ctx, const nb_cfg *cfg, bool val, nb_dataset *ds) {
    const char *format = nb_cfg_str(cfg, "data.format");
    int64_t limit = nb_cfg_int(cfg, val ? "data.val_limit" : "data.limit");
    if (!strcmp(format, "voc"))
        return nb_dataset_load_voc(ctx, ds, nb_cfg_str(cfg, "data.root"), nb_cfg_str(cfg, val ? "data.val" : "data.train"),
                                   nb_cfg_str(cfg, "data.classes"), (int)nb_cfg_int(cfg, "model.input_size"), limit);
    if (!strcmp(format, "folder") || !strcmp(format, "cifar")) {
        NB_REQUIRE(ctx, nb_cfg_str(cfg, "data.root")[0], -1, "config", "data.format = %s needs data.root", format);
        if (!strcmp(format, "cifar")) return nb_dataset_load_cifar(ctx, ds, nb_cfg_str(cfg, "data.root"), !val, limit);
        char dir[1100];
        split_dir(cfg, val, dir, sizeof dir);
        return nb_dataset_load_folder(ctx, ds, dir, (int)nb_cfg_int(cfg, "model.input_size"), limit);
    }
    const char *images = nb_cfg_str(cfg, val ? "data.val" : "data.train");
    if (!strcmp(format, "hdf5")) return nb_dataset_load_hdf5(ctx, ds, images, limit);
    char labels[1024];
    const char *given = nb_cfg_str(cfg, val ? "data.val_labels" : "data.train_labels");
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

int nb_loader_cfg_from(nb_ctx *ctx, const nb_cfg *cfg, const nb_dataset *ds, bool train, nb_loader_cfg *lc) {
    memset(lc, 0, sizeof *lc);
    lc->batch = (int)nb_cfg_int(cfg, train ? "train.batch" : "train.eval_batch");
    lc->shuffle = train && nb_cfg_bool(cfg, "train.shuffle");
    lc->seed = (uint64_t)nb_cfg_int(cfg, "train.seed");
    lc->pad = (int)nb_cfg_int(cfg, "data.pad");
    lc->workers = (int)nb_cfg_int(cfg, "data.workers");
    const char *aug = nb_cfg_str(cfg, "data.augment");
    if (train) {
        if (strstr(aug, "flip")) lc->augment |= NB_AUG_FLIP;
        if (!strncmp(aug, "crop", 4)) lc->augment |= NB_AUG_CROP;
        if (!strncmp(aug, "rrc", 3)) lc->augment |= NB_AUG_RRC;
        if (!strcmp(aug, "ssd")) lc->augment |= NB_AUG_SSD;
    }
    NB_REQUIRE(ctx, !train || !ds->det || !strcmp(aug, "none") || !strcmp(aug, "ssd"), -1, "config",
               "data.augment = %s: detection data (data.format = voc) takes none or ssd", aug);
    NB_REQUIRE(ctx, !train || ds->det || strcmp(aug, "ssd"), -1, "config",
               "data.augment = ssd is detection's augmentation; it needs data.format = voc");
    NB_REQUIRE(ctx, !(lc->augment & NB_AUG_CROP) || !ds->files, -1, "config",
               "data.augment = %s: the padded random crop is for in-memory data; image folders take rrc or rrc_flip",
               aug);
    NB_REQUIRE(ctx, !(lc->augment & NB_AUG_RRC) || ds->files, -1, "config",
               "data.augment = %s: the random resized crop needs an image folder (data.format = folder); use crop "
               "or crop_flip",
               aug);
    lc->scale_min = nb_cfg_float(cfg, "data.scale_min");
    lc->resize = (int)nb_cfg_int(cfg, "data.resize");
    NB_REQUIRE(ctx, lc->scale_min > 0 && lc->scale_min <= 1 && lc->resize >= 0, -1, "config",
               "data.scale_min (%g) must be in (0, 1] and data.resize (%d) >= 0", lc->scale_min, lc->resize);
    NB_REQUIRE(ctx, lc->batch > 0 && lc->workers > 0 && lc->pad >= 0, -1, "config",
               "train.batch (%d), train.eval_batch, data.workers (%d) must be positive and data.pad (%d) >= 0",
               lc->batch, lc->workers, lc->pad);
    NB_REQUIRE(ctx, ds->c <= NB_MAX_CHANNELS, -1, "config", "%d image channels; at most %d supported", ds->c,
               NB_MAX_CHANNELS);
    double mean[NB_MAX_CHANNELS], std[NB_MAX_CHANNELS];
    int nm = nb_cfg_floats(cfg, "data.mean", mean, NB_MAX_CHANNELS), ns = nb_cfg_floats(cfg, "data.std", std, NB_MAX_CHANNELS);
    NB_REQUIRE(ctx, (nm == 1 || nm == ds->c) && (ns == 1 || ns == ds->c), -1, "config",
               "data.mean and data.std need 1 or %d values (one per channel), got %d and %d", ds->c, nm, ns);
    for (int c = 0; c < ds->c; c++) {
        lc->mean[c] = (float)mean[nm == 1 ? 0 : c];
        lc->std[c] = (float)std[ns == 1 ? 0 : c];
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

int nb_data_for_model(nb_ctx *ctx, const nb_cfg *cfg, const nb_model *m, nb_dataset *ds) {
    if (check_data_fits(ctx, m, ds)) return -1;
    if (!ds->det) return 0;
    int P = nb_priors(m->priors, NULL, 0);
    nb_cbox *p = nb_xmalloc(sizeof(nb_cbox) * (size_t)P);
    nb_priors(m->priors, p, P);
    nb_dataset_set_priors(ds, p, P, (float)nb_cfg_float(cfg, "detect.match_iou"), (float)nb_cfg_float(cfg, "detect.expand_max"));
    free(p);
    return 0;
}

static int make_schedule(nb_ctx *ctx, const nb_cfg *cfg, nb_schedule *s) {
    static const char *const kinds[] = {"constant", "step", "multistep", "cosine", "poly"};
    const char *k = nb_cfg_str(cfg, "optim.schedule");
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 5; i++)
        if (!strcmp(k, kinds[i])) s->kind = (nb_sched_kind)i;
    s->base_lr = nb_cfg_float(cfg, "optim.lr");
    s->step_size = nb_cfg_float(cfg, "optim.step_size");
    s->gamma = nb_cfg_float(cfg, "optim.gamma");
    s->n_milestones = nb_cfg_floats(cfg, "optim.milestones", s->milestones, NB_SCHED_MAX_MILESTONES);
    s->total = (double)nb_cfg_int(cfg, "train.epochs");
    s->min_lr = nb_cfg_float(cfg, "optim.min_lr");
    s->power = nb_cfg_float(cfg, "optim.power");
    s->warmup = nb_cfg_float(cfg, "optim.warmup_epochs");
    s->warmup_start_factor = nb_cfg_float(cfg, "optim.warmup_start");
    NB_REQUIRE(ctx, s->kind != NB_SCHED_STEP || s->step_size > 0, -1, "config", "optim.step_size must be > 0");
    NB_REQUIRE(ctx, s->kind != NB_SCHED_MULTISTEP || s->n_milestones > 0, -1, "config",
               "optim.schedule = multistep needs optim.milestones");
    return 0;
}

nb_optim *nb_optim_from_cfg(nb_ctx *ctx, const nb_cfg *cfg, nb_model *m) {
    const char *type = nb_cfg_str(cfg, "optim.type");
    nb_optim_kind kind = !strcmp(type, "sgd") ? NB_OPTIM_SGD : !strcmp(type, "adam") ? NB_OPTIM_ADAM : NB_OPTIM_ADAMW;
    nb_optim_config oc = nb_optim_defaults(kind);
    oc.lr = (float)nb_cfg_float(cfg, "optim.lr");
    oc.momentum = kind == NB_OPTIM_SGD ? (float)nb_cfg_float(cfg, "optim.momentum") : 0.0f;
    oc.nesterov = nb_cfg_bool(cfg, "optim.nesterov");
    oc.weight_decay = (float)nb_cfg_float(cfg, "optim.wd");
    oc.wd_exempt_1d = nb_cfg_bool(cfg, "optim.wd_exempt");
    oc.beta1 = (float)nb_cfg_float(cfg, "optim.beta1");
    oc.beta2 = (float)nb_cfg_float(cfg, "optim.beta2");
    oc.eps = (float)nb_cfg_float(cfg, "optim.eps");
    nb_tensor **params = nb_xmalloc(sizeof(nb_tensor *) * (size_t)(m->params.n ? m->params.n : 1));
    int n = 0;
    for (int i = 0; i < m->params.n; i++)
        if (m->params.items[i].kind == NB_PARAM) params[n++] = m->params.items[i].t;
    nb_optim *o = nb_optim_new(ctx, &oc, params, n);
    free(params);
    return o;
}

static void default_out(const nb_cfg *cfg, char *out, size_t n) {
    const char *given = nb_cfg_str(cfg, "train.out");
    if (given[0]) {
        snprintf(out, n, "%s", given);
        return;
    }
    const char *base = strrchr(cfg->path, '/');
    base = base ? base + 1 : cfg->path;
    size_t l = strlen(base);
    if (l > 4 && !strcmp(base + l - 4, ".cfg")) l -= 4;
    snprintf(out, n, "runs/%.*s", (int)l, base[0] ? base : "run");
}

int nb_trainer_setup(nb_trainer *t, nb_ctx *ctx, nb_cfg *cfg, bool resume, nb_dist *dist) {
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    t->cfg = cfg;
    t->dist = dist;
    int ranks = nb_dist_size(dist);
    t->writer = nb_dist_rank(dist) == 0;
    if (!t->writer) t->quiet = true;
    int threads = (int)nb_cfg_int(cfg, "train.threads");
    /* ranks on one machine share its cores: by default each takes its part rather than all of them */
    if (threads <= 0 && nb_dist_local_size(dist) > 1 && !getenv("OMP_NUM_THREADS")) {
        threads = omp_get_num_procs() / nb_dist_local_size(dist);
        if (threads < 1) threads = 1;
    }
    if (threads > 0) omp_set_num_threads(threads);
    const char *device = nb_cfg_str(cfg, "train.device");
    NB_REQUIRE(ctx, !strcmp(device, nb_ctx_backend_name(ctx)), -1, "config",
               "train.device = %s, but the context runs on the %s backend", device, nb_ctx_backend_name(ctx));
    default_out(cfg, t->out, sizeof t->out);
    char last[600];
    snprintf(last, sizeof last, "%s/last.h5", t->out);
    if (!resume && file_exists(last)) {
        NB_FAIL(ctx, t->out, "already holds a run (last.h5)\n  hint: add --resume to continue it, or set "
                             "train.out=... for a new run");
        return -1;
    }
    if (resume && !file_exists(last)) {
        NB_FAIL(ctx, t->out, "has no last.h5 to resume from");
        return -1;
    }
    int64_t epochs = nb_cfg_int(cfg, "train.epochs");
    t->steps_limit = nb_cfg_int(cfg, "train.steps");
    NB_REQUIRE(ctx, epochs > 0 || t->steps_limit > 0, -1, "config", "train.epochs or train.steps must be positive");
    if (nb_data_from_cfg(ctx, cfg, false, &t->train)) return -1;
    t->has_val = nb_cfg_has_val(cfg);
    if (t->has_val && nb_data_from_cfg(ctx, cfg, true, &t->val)) return -1;
    t->model = nb_model_from_cfg(ctx, cfg);
    if (!t->model) return -1;
    if (nb_data_for_model(ctx, cfg, t->model, &t->train) || (t->has_val && nb_data_for_model(ctx, cfg, t->model, &t->val)))
        return -1;
    NB_REQUIRE(ctx, !t->model->priors || !strstr(nb_cfg_str(cfg, "compress.methods"), "kd"), -1, "config",
               "compress.methods: distillation (kd) is for classifiers; a detector takes admm, prune, twn, bwn");
    const char *init = nb_cfg_str(cfg, "model.init");
    if (init[0] && nb_ckpt_load_model(ctx, init, &t->model->params, nb_cfg_bool(cfg, "model.init_strict"))) return -1;
    t->optim = nb_optim_from_cfg(ctx, cfg, t->model);
    if (!t->optim || make_schedule(ctx, cfg, &t->sched)) return -1;
    nb_loader_cfg lc;
    if (nb_loader_cfg_from(ctx, cfg, &t->train, true, &lc)) return -1;
    int64_t batch = nb_cfg_int(cfg, "train.batch");
    NB_REQUIRE(ctx, batch >= ranks, -1, "config", "train.batch = %lld is the global batch; %d ranks need at least %d",
               (long long)batch, ranks, ranks);
    lc.shard = nb_dist_rank(dist);
    lc.shards = ranks;
    t->loader = nb_loader_new(&t->train, &lc);
    t->st = (nb_train_state){.best_top1 = -1.0, .best_epoch = -1, .ranks = ranks};
    if (resume) {
        if (nb_ckpt_load_model(ctx, last, &t->model->params, true) || nb_ckpt_load_optim(ctx, last, t->optim) ||
            nb_ckpt_load_state(ctx, last, &t->st))
            return -1;
        NB_REQUIRE(ctx, t->st.ranks == ranks, -1, last,
                   "was written by a run of %lld rank%s; resume it with as many (this is %d)\n  hint: mpirun -np %lld "
                   "bin/train ... --resume",
                   (long long)t->st.ranks, t->st.ranks == 1 ? "" : "s", ranks, (long long)t->st.ranks);
    }
    ctx->sync_bn = nb_cfg_bool(cfg, "train.sync_bn");
    nb_dist_attach(dist, ctx, (size_t)(nb_cfg_float(cfg, "train.bucket_mb") * 1048576.0));
    if (nb_compress_from_cfg(ctx, cfg, t->model, nb_loader_batches(t->loader), &t->compress)) return -1;
    if (resume) {
        nb_ckpt_extra extra = {0};
        nb_compress_state(&t->compress, &extra);
        int rc = nb_ckpt_load_extra(ctx, last, &extra);
        nb_ckpt_extra_free(&extra);
        if (rc) return -1;
    }
    t->config_text = nb_cfg_to_string(cfg);
    if (!t->writer) return 0;
    /* from here on the run directory is written */
    if (mkdir_p(t->out)) {
        NB_FAIL(ctx, t->out, "cannot create the run directory: %s", strerror(errno));
        return -1;
    }
    char path[600], tmp[620];
    snprintf(path, sizeof path, "%s/config.cfg", t->out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(t->config_text, f) < 0 || fclose(f) || rename(tmp, path)) {
        NB_FAIL(ctx, path, "cannot write: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void nb_trainer_free(nb_trainer *t) {
    nb_compress_free(&t->compress);
    nb_loader_free(t->loader);
    nb_optim_free(t->optim);
    nb_model_free(t->model);
    nb_dataset_free(&t->train);
    nb_dataset_free(&t->val);
    free(t->config_text);
    memset(t, 0, sizeof *t);
}

/* ---- evaluation ---- */

static void count_correct(const float *logits, const int64_t *y, int n, int C, int64_t *top1, int64_t *top5) {
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * C;
        float target = z[y[i]];
        int above = 0; /* classes scoring strictly higher than the true one; ties count for the true class */
        for (int c = 0; c < C; c++) above += z[c] > target;
        *top1 += above == 0;
        *top5 += above < 5;
    }
}

/* Detectors: the multibox loss on the matched targets, and VOC mAP of the decoded detections against every
 * ground-truth object of the images (difficult ones included, as VOC counts them), in the devkit's pixels. */
static int evaluate_detector(nb_ctx *ctx, nb_model *m, const nb_dataset *ds, const nb_loader_cfg *lc, nb_eval_result *r) {
    const nb_det_data *d = ds->det;
    nb_loader *l = nb_loader_new(ds, lc);
    bool prev = nb_set_grad_enabled(ctx, false);
    int C = m->spec.num_classes, P = d->n_priors, D = 4 + C, rc = 0;
    nb_decode_cfg dc = {0.1f, 0.2f, m->spec.det.score_min, m->spec.det.nms_iou, m->spec.det.top_k};
    float *out = nb_xmalloc(sizeof(float) * (size_t)lc->batch * (size_t)D * (size_t)P);
    int64_t cap = 1024, n_det = 0, n_img = 0;
    nb_detection *dets = nb_xmalloc(sizeof(nb_detection) * (size_t)cap);
    double loss_sum = 0;
    nb_loader_start(l, 0, 0);
    const nb_batch *b;
    while ((b = nb_loader_next(l))) {
        if (b->n == 0) continue;
        size_t mark = nb_scope_begin(ctx);
        int64_t xs[4] = {b->n, ds->c, ds->h, ds->w}, ts[3] = {b->n, P, 5};
        nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, xs, b->x), *y = nb_tensor_from_host(ctx, NB_F32, 3, ts, b->targets);
        nb_tensor *z = m->forward(m, x, false);
        nb_tensor *loss = nb_multibox_loss(z, y, m->spec.det.neg_pos, 1.0f);
        if (!loss || nb_tensor_to_host(z, out, sizeof(float) * (size_t)b->n * (size_t)D * (size_t)P)) rc = -1;
        for (int i = 0; i < b->n && !rc; i++) {
            if (n_det + dc.top_k > cap) {
                cap = 2 * cap + dc.top_k;
                dets = nb_xrealloc(dets, sizeof(nb_detection) * (size_t)cap);
            }
            const nb_voc_image *im = &d->voc.images[b->y[i]];
            int k = nb_decode(&dc, out + (size_t)i * D * P, P, d->priors, P, C, (int)b->y[i], dets + n_det);
            for (int j = 0; j < k; j++) { /* fractions -> the devkit's 1-based pixels */
                nb_box *bx = &dets[n_det + j].box;
                *bx = (nb_box){bx->x1 * (float)im->width + 1, bx->y1 * (float)im->height + 1, bx->x2 * (float)im->width + 1,
                               bx->y2 * (float)im->height + 1};
            }
            n_det += k;
        }
        if (!rc) {
            loss_sum += (double)nb_item(loss) * b->n;
            n_img += b->n;
        }
        nb_release(x);
        nb_release(y);
        nb_scope_end(ctx, mark);
        if (rc) break;
    }
    nb_loader_free(l);
    free(out);
    nb_set_grad_enabled(ctx, prev);
    int64_t n_gt = 0;
    for (int64_t i = 0; i < d->voc.n; i++) n_gt += d->voc.images[i].n_objects;
    nb_gt_object *gt = nb_xmalloc(sizeof(nb_gt_object) * (size_t)(n_gt ? n_gt : 1));
    int64_t g = 0;
    for (int64_t i = 0; i < d->voc.n; i++)
        for (int k = 0; k < d->voc.images[i].n_objects; k++) {
            const nb_voc_object *o = &d->voc.images[i].objects[k];
            gt[g++] = (nb_gt_object){(int)i, o->cls, o->box, o->difficult};
        }
    double *ap = nb_xmalloc(sizeof(double) * (size_t)C);
    nb_voc_eval_cfg e07 = {true, true, 0.5f}, eall = {false, true, 0.5f};
    r->map07 = rc ? NAN : nb_voc_map(&e07, dets, (int)n_det, gt, (int)n_gt, C - 1, ap);
    r->map = rc ? NAN : nb_voc_map(&eall, dets, (int)n_det, gt, (int)n_gt, C - 1, ap);
    r->n = n_img;
    r->loss = n_img ? loss_sum / (double)n_img : NAN;
    r->top1 = r->map07;
    r->top5 = NAN;
    free(ap);
    free(gt);
    free(dets);
    return rc;
}

int nb_evaluate(nb_ctx *ctx, nb_model *m, const nb_dataset *ds, const nb_loader_cfg *lc, nb_eval_result *r) {
    r->map07 = r->map = NAN;
    if (ds->det) return evaluate_detector(ctx, m, ds, lc, r);
    nb_loader *l = nb_loader_new(ds, lc);
    bool prev = nb_set_grad_enabled(ctx, false);
    int C = m->spec.num_classes, rc = 0;
    double loss_sum = 0;
    int64_t top1 = 0, top5 = 0, n = 0;
    float *logits = nb_xmalloc(sizeof(float) * (size_t)lc->batch * (size_t)C);
    nb_loader_start(l, 0, 0);
    const nb_batch *b;
    while ((b = nb_loader_next(l))) {
        if (b->n == 0) continue; /* a shard of a batch smaller than the group */
        size_t mark = nb_scope_begin(ctx);
        int64_t xs[4] = {b->n, ds->c, ds->h, ds->w}, ys[1] = {b->n};
        nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, xs, b->x), *y = nb_tensor_from_host(ctx, NB_I64, 1, ys, b->y);
        nb_tensor *z = m->forward(m, x, false);
        nb_tensor *loss = nb_cross_entropy(z, y, 0.0f);
        if (!loss || nb_tensor_to_host(z, logits, sizeof(float) * (size_t)b->n * (size_t)C)) rc = -1;
        if (!rc) {
            loss_sum += (double)nb_item(loss) * b->n;
            count_correct(logits, b->y, b->n, C, &top1, &top5);
            n += b->n;
        }
        nb_release(x);
        nb_release(y);
        nb_scope_end(ctx, mark);
        if (rc) break;
    }
    nb_loader_free(l);
    free(logits);
    nb_set_grad_enabled(ctx, prev);
    if (rc == 0 && lc->shards > 1 && ctx->comm) { /* each rank evaluated its shard */
        double sums[4] = {loss_sum, (double)top1, (double)top5, (double)n};
        rc = ctx->comm->allreduce_f64(ctx->comm, sums, 4);
        loss_sum = sums[0];
        top1 = (int64_t)sums[1];
        top5 = (int64_t)sums[2];
        n = (int64_t)sums[3];
    }
    r->n = n;
    r->loss = n ? loss_sum / (double)n : NAN;
    r->top1 = n ? (double)top1 / (double)n : NAN;
    r->top5 = n ? (double)top5 / (double)n : NAN;
    return rc;
}

/* ---- training ---- */

/* Forward and backward at the current weights: the loss (with the hooks' changes) and the gradients. */
static int forward_backward(nb_model *m, nb_optim *o, nb_step *s, float label_smoothing, nb_compress_set *set,
                            float *loss, float *logits) {
    nb_tensor *z = m->forward(m, s->x, true);
    nb_tensor *l = m->priors ? nb_multibox_loss(z, s->y, m->spec.det.neg_pos, 1.0f) : nb_cross_entropy(z, s->y, label_smoothing);
    s->logits = z;
    s->loss = l;
    if (l && set && nb_compress_step(set, NB_HOOK_BEFORE_BACKWARD, s)) return -1;
    l = s->loss;
    *loss = l ? nb_item(l) : NAN;
    if (!l) return -1;
    nb_comm *comm = s->ctx->comm;
    if (comm && comm->size > 1) { /* the group's loss: every rank agrees on it, and on whether it is finite */
        double v = isfinite(*loss) ? (double)*loss * comm->share : INFINITY;
        if (comm->allreduce_f64(comm, &v, 1)) return -1;
        *loss = (float)v;
    }
    if (!isfinite(*loss)) return 1;
    if (logits && nb_tensor_to_host(z, logits, sizeof(float) * (size_t)nb_numel(z))) return -1;
    nb_optim_zero_grad(o);
    return nb_backward(l, NULL);
}

/* Korpelevich's extragradient: step to W - lr * g, take the gradient there, come back to W. */
static int extrapolate(nb_model *m, nb_optim *o, nb_step *s, float label_smoothing, nb_compress_set *set,
                       float *loss) {
    nb_tensor *small[256];
    nb_tensor **saved = o->n <= 256 ? small : nb_xmalloc(sizeof(nb_tensor *) * (size_t)o->n);
    int rc = 0;
    for (int i = 0; i < o->n; i++) {
        nb_tensor *p = o->slots[i].param;
        saved[i] = p->grad ? nb_tensor_clone(p) : NULL;
        if (p->grad && (!saved[i] || (p->grad->layout != p->layout && nb_tensor_relayout(p->grad, p->layout)) ||
                        nb_axpby(p, -(float)s->lr, p->grad, 1.0f)))
            rc = -1;
    }
    float unused;
    if (rc == 0) rc = forward_backward(m, o, s, label_smoothing, set, &unused, NULL);
    if (rc == 0) rc = nb_compress_step(set, NB_HOOK_BEFORE_STEP, s);
    for (int i = 0; i < o->n; i++) {
        if (saved[i] && rc == 0) rc = nb_tensor_copy(o->slots[i].param, saved[i]);
        nb_release(saved[i]);
    }
    if (saved != small) free(saved);
    (void)loss;
    return rc;
}

int nb_train_step_hooked(nb_ctx *ctx, nb_model *m, nb_optim *o, nb_tensor *x, nb_tensor *y, float label_smoothing,
                         double clip_norm, nb_compress_set *set, int64_t step, int64_t epoch, float *loss,
                         float *logits) {
    size_t mark = nb_scope_begin(ctx);
    nb_step s = {.ctx = ctx, .model = m, .optim = o, .x = x, .y = y, .step = step, .epoch = epoch, .lr = o->cfg.lr};
    int rc = set && set->n ? nb_compress_step(set, NB_HOOK_BATCH_BEGIN, &s) : 0;
    if (!rc) rc = forward_backward(m, o, &s, label_smoothing, set, loss, logits);
    if (!rc && set && set->n) rc = nb_compress_step(set, NB_HOOK_BEFORE_STEP, &s);
    if (!rc && set && set->extragradient) {
        nb_tape_clear(ctx);
        rc = extrapolate(m, o, &s, label_smoothing, set, loss);
    }
    if (!rc && clip_norm > 0) {
        nb_tensor *small[256];
        nb_tensor **ps = o->n <= 256 ? small : nb_xmalloc(sizeof(nb_tensor *) * (size_t)o->n);
        for (int i = 0; i < o->n; i++) ps[i] = o->slots[i].param;
        if (nb_clip_grad_norm(ps, o->n, clip_norm) < 0) rc = -1;
        if (ps != small) free(ps);
    }
    if (!rc) rc = nb_optim_step(o);
    if (!rc && set && set->n) rc = nb_compress_step(set, NB_HOOK_BATCH_END, &s);
    nb_tape_clear(ctx); /* a failed step may leave records behind */
    nb_scope_end(ctx, mark);
    return rc;
}

int nb_train_step(nb_ctx *ctx, nb_model *m, nb_optim *o, nb_tensor *x, nb_tensor *y, float label_smoothing,
                  double clip_norm, float *loss, float *logits) {
    return nb_train_step_hooked(ctx, m, o, x, y, label_smoothing, clip_norm, NULL, 0, 0, loss, logits);
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
static int64_t steps_left(const nb_trainer *t, int64_t epochs, int64_t per_epoch) {
    int64_t total = epochs * per_epoch;
    if (t->steps_limit > 0 && t->steps_limit < total) total = t->steps_limit;
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

static int save(nb_trainer *t, const char *name) {
    if (!t->writer) return 0;
    char path[600];
    snprintf(path, sizeof path, "%s/%s", t->out, name);
    nb_ckpt_extra extra = {0};
    nb_compress_state(&t->compress, &extra);
    int rc = nb_ckpt_save(t->ctx, path, &t->model->params, t->optim, &t->st, t->config_text, &extra);
    nb_ckpt_extra_free(&extra);
    return rc;
}

static void redraw_chart(nb_trainer *t, const nb_history *h) {
    if (!t->writer) return;
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/curves.png", t->out);
    nb_series loss[2] = {{h->step_epoch, h->step_loss, h->n_steps, "train", 31, 119, 180},
                         {h->epoch, h->val_loss, h->n_epochs, "val", 214, 39, 40}};
    nb_series acc[2] = {{h->epoch, h->train_top1, h->n_epochs, "train", 31, 119, 180},
                        {h->epoch, h->val_top1, h->n_epochs, "val", 214, 39, 40}};
    nb_panel panels[2] = {{"loss", "epoch", loss, t->has_val ? 2 : 1, 0},
                          {"top-1 accuracy", "epoch", acc, t->has_val ? 2 : 1, 1}};
    if (nb_chart_write(path, panels, 2, err, sizeof err)) fprintf(stderr, "nibble: warning: %s\n", err);
}

int nb_trainer_run(nb_trainer *t) {
    nb_ctx *ctx = t->ctx;
    nb_cfg *cfg = t->cfg;
    nb_model *m = t->model;
    int64_t epochs = nb_cfg_int(cfg, "train.epochs"), nb = nb_loader_batches(t->loader);
    int64_t log_every = nb_cfg_int(cfg, "train.log_every"), save_every = nb_cfg_int(cfg, "train.save_every");
    uint64_t seed = (uint64_t)nb_cfg_int(cfg, "train.seed");
    float smoothing = (float)nb_cfg_float(cfg, "train.label_smoothing");
    double clip = nb_cfg_float(cfg, "optim.clip_norm");
    bool per_step = !strcmp(nb_cfg_str(cfg, "optim.schedule_unit"), "step");
    int C = m->spec.num_classes;
    bool detector = m->priors != NULL;
    if (epochs <= 0) epochs = (t->steps_limit + nb - 1) / nb;
    nb_loader_cfg elc;
    if (t->has_val && nb_loader_cfg_from(ctx, cfg, &t->val, false, &elc)) return -1;

    char metrics_path[600];
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", t->out);
    nb_history hist = {0};
    /* drops lines logged after the checkpoint (rewriting the file: rank 0's job alone) */
    if (t->writer) nb_history_load(&hist, metrics_path, t->st.global_step);
    /* the other ranks log nowhere: the metrics are the group's, and rank 0 writes them */
    FILE *mf = t->writer ? fopen(metrics_path, "a") : fopen("/dev/null", "w");
    if (!mf) {
        NB_FAIL(ctx, metrics_path, "cannot open for writing: %s", strerror(errno));
        nb_history_free(&hist);
        return -1;
    }
    int64_t batch = nb_cfg_int(cfg, "train.batch");
    float *logits = nb_xmalloc(sizeof(float) * (size_t)batch * (size_t)C);
    bool tty = isatty(2) && !t->quiet;
    int rc = 0;
    double session_start = now(), seconds0 = t->st.seconds;
    int64_t skipped_train = 0, skipped_val = 0;

    int ranks = nb_dist_size(t->dist);
    if (!t->quiet)
        fprintf(stderr, "nibble: training %s (%lld parameters) on %lld images, %lld batches of %d per epoch, %d threads%s%s -> %s\n",
                m->spec.arch, (long long)nb_params_count(&m->params, NULL), (long long)t->train.n, (long long)nb,
                (int)nb_cfg_int(cfg, "train.batch"), omp_get_max_threads(), ranks > 1 ? " per rank, " : "",
                ranks > 1 ? nb_dist_describe(t->dist) : "", t->out);
    if (t->has_val && !detector) { /* detection's mAP needs every image's detections: each rank does them all */
        elc.shard = nb_dist_rank(t->dist);
        elc.shards = ranks;
    }

    for (int64_t e = t->st.epoch; e < epochs && rc == 0; e++) {
        if (nb_compress_epoch(&t->compress, true, e)) {
            rc = -1;
            break;
        }
        nb_loader_start(t->loader, e, e == t->st.epoch ? t->st.batch : 0);
        double ep_loss = 0, win_loss = 0, win_t0 = now(), last_draw = 0;
        int64_t ep_n = 0, ep_top1 = 0, ep_top5 = 0, win_n = 0, win_steps = 0;
        const nb_batch *b;
        bool stopped = false, stopped_by_signal = false;
        while ((b = nb_loader_next(t->loader))) {
            if (b->global_n < ranks) { /* a last batch too small to give every rank a sample is skipped */
                t->st.batch = b->index + 1;
                continue;
            }
            nb_dist_set_share(t->dist, b->n, b->global_n);
            double te = per_step ? (double)e + (double)b->index / (double)nb : (double)e;
            float lr = (float)nb_schedule_lr(&t->sched, te);
            nb_optim_set_lr(t->optim, lr);
            nb_ctx_seed(ctx, seed, (uint64_t)t->st.global_step); /* dropout masks depend on the step alone */
            int64_t xs[4] = {b->n, t->train.c, t->train.h, t->train.w}, ys[1] = {b->n};
            nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, xs, b->x);
            nb_tensor *y = detector ? nb_tensor_from_host(ctx, NB_F32, 3, (int64_t[]){b->n, t->train.det->n_priors, 5}, b->targets)
                                    : nb_tensor_from_host(ctx, NB_I64, 1, ys, b->y);
            float lv;
            rc = nb_train_step_hooked(ctx, m, t->optim, x, y, smoothing, clip, &t->compress, t->st.global_step, e, &lv,
                                      detector ? NULL : logits);
            nb_release(x);
            nb_release(y);
            if (rc == 1) {
                NB_FAIL(ctx, "train", "the loss is %f at epoch %lld, batch %lld (step %lld); stopping. The last good "
                                      "checkpoint, %s/last.h5, is kept\n  hint: lower optim.lr or add optim.clip_norm",
                        (double)lv, (long long)e, (long long)b->index, (long long)t->st.global_step, t->out);
                rc = -1;
            }
            if (!rc && !detector) count_correct(logits, b->y, b->n, C, &ep_top1, &ep_top5);
            if (rc) break;
            t->st.batch = b->index + 1;
            t->st.global_step++;
            t->st.images_seen += b->global_n;
            ep_loss += (double)lv * b->global_n; /* lv is the group's loss */
            ep_n += b->global_n;
            win_loss += lv;
            win_n += b->global_n;
            win_steps++;
            double tnow = now();
            t->st.seconds = seconds0 + (tnow - session_start);
            if (log_every > 0 && t->st.global_step % log_every == 0) {
                double rate = (double)win_n / (tnow - win_t0);
                char comm[64] = "";
                if (ranks > 1) /* the share of the window rank 0 spent waiting for gradient sums */
                    snprintf(comm, sizeof comm, ", \"comm_share\": %.4f", nb_dist_take_wait_seconds(t->dist) / (tnow - win_t0));
                fprintf(mf,
                        "{\"type\": \"step\", \"epoch\": %.4f, \"step\": %lld, \"lr\": %.6g, \"train_loss\": %.6f, "
                        "\"img_per_s\": %.1f, \"seconds\": %.1f%s}\n",
                        (double)e + (double)(b->index + 1) / (double)nb, (long long)t->st.global_step, (double)lr,
                        win_loss / (double)win_steps, rate, t->st.seconds, comm);
                fflush(mf);
                nb_history_add_step(&hist, (double)e + (double)(b->index + 1) / (double)nb, win_loss / (double)win_steps);
                if (!tty && !t->quiet) {
                    char eta[32];
                    double left = (double)steps_left(t, epochs, nb) * (double)b->n / rate;
                    fmt_duration(left, eta, sizeof eta);
                    fprintf(stderr, "epoch %lld/%lld  step %lld/%lld  loss %.4f  lr %.4g  %.0f img/s  ETA %s\n",
                            (long long)e + 1, (long long)epochs, (long long)b->index + 1, (long long)nb,
                            win_loss / (double)win_steps, (double)lr, rate, eta);
                }
                win_loss = 0;
                win_n = 0;
                win_steps = 0;
                win_t0 = tnow;
            }
            if (tty && tnow - last_draw > 0.5) {
                double rate = (double)t->st.images_seen / fmax(t->st.seconds, 1e-9);
                char eta[32];
                fmt_duration((double)steps_left(t, epochs, nb) * (double)batch /
                                 ((double)ep_n / fmax(tnow - session_start, 1e-9)),
                             eta, sizeof eta);
                fprintf(stderr, "\repoch %lld/%lld  step %lld/%lld  loss %.4f  lr %.4g  %.0f img/s  ETA %s   ",
                        (long long)e + 1, (long long)epochs, (long long)b->index + 1, (long long)nb, (double)lv,
                        (double)lr, rate, eta);
                last_draw = tnow;
            }
            bool limit = t->steps_limit > 0 && t->st.global_step >= t->steps_limit;
            if (ranks > 1) { /* a Ctrl-C reaches the ranks at different moments: stop together */
                double stop = t->stop && *t->stop;
                if (nb_dist_sum(t->dist, &stop, 1)) {
                    rc = -1;
                    break;
                }
                stopped_by_signal = stop > 0;
            } else {
                stopped_by_signal = t->stop && *t->stop;
            }
            if ((save_every > 0 && t->st.global_step % save_every == 0) || limit || stopped_by_signal) {
                if (save(t, "last.h5")) {
                    rc = -1;
                    break;
                }
            }
            if (stopped_by_signal) {
                if (tty) fputc('\n', stderr);
                if (t->writer)
                    fprintf(stderr, "nibble: interrupted at epoch %lld, batch %lld; saved %s/last.h5\n  resume with: "
                                "bin/train %s --resume\n",
                        (long long)e, (long long)t->st.batch, t->out, cfg->path);
                rc = 1;
                stopped = true;
                break;
            }
            if (limit) {
                stopped = true;
                break;
            }
        }
        nb_loader_stop(t->loader);
        if (tty) fputc('\n', stderr);
        if (rc || (stopped && !(t->steps_limit > 0 && t->st.batch == nb))) break;
        /* the epoch is complete; the last one makes the compression final (weights on the codebook) */
        t->st.epoch = e + 1;
        t->st.batch = 0;
        if (nb_compress_epoch(&t->compress, false, e) || (e + 1 == epochs && nb_compress_finish(&t->compress))) {
            rc = -1;
            break;
        }
        int consistent = 1;
        if (ranks > 1) {
            double counts[2] = {(double)ep_top1, (double)ep_top5};
            consistent = nb_dist_consistent(t->dist, &m->params);
            if (consistent == 0 && t->writer)
                fprintf(stderr, "nibble: warning: the ranks' parameters differ after epoch %lld (they should be "
                                "identical); continuing from rank 0's\n",
                        (long long)e + 1);
            /* rank 0's batch-norm statistics for everyone, so that the evaluation shards and the checkpoint
             * describe one network (with per-rank batch norm the ranks' running statistics differ) */
            if (nb_dist_sum(t->dist, counts, 2) || nb_dist_sync_params(t->dist, &m->params)) {
                rc = -1;
                break;
            }
            ep_top1 = (int64_t)counts[0];
            ep_top5 = (int64_t)counts[1];
        }
        /* evaluation and best.h5 see the compressed network */
        nb_eval_result ev = {NAN, NAN, NAN, 0, NAN, NAN};
        if (nb_compress_eval(&t->compress, true) || (t->has_val && nb_evaluate(ctx, m, &t->val, &elc, &ev))) {
            rc = -1;
            break;
        }
        report_skipped(&t->train, &skipped_train);
        if (t->has_val) report_skipped(&t->val, &skipped_val);
        double train_loss = ep_n ? ep_loss / (double)ep_n : NAN, train_top1 = ep_n && !detector ? (double)ep_top1 / (double)ep_n : NAN;
        double lr_now = nb_schedule_lr(&t->sched, (double)(e + 1));
        t->st.seconds = seconds0 + (now() - session_start);
        bool best = t->has_val && ev.top1 > t->st.best_top1;
        if (best) {
            t->st.best_top1 = ev.top1;
            t->st.best_epoch = e + 1;
        }
        char extra[600];
        nb_compress_metrics(&t->compress, extra, 512);
        if (ranks > 1)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", \"ranks\": %d, \"ranks_consistent\": %s",
                     ranks, consistent == 1 ? "true" : "false");
        char acc[160];
        if (detector) /* best.h5 goes by VOC07 mAP, which evaluation also returns as top1 */
            snprintf(acc, sizeof acc, "\"val_map07\": %.6f, \"val_map\": %.6f", ev.map07, ev.map);
        else
            snprintf(acc, sizeof acc, "\"train_top1\": %.6f, \"val_top1\": %.6f, \"val_top5\": %.6f", train_top1, ev.top1,
                     ev.top5);
        fprintf(mf,
                "{\"type\": \"epoch\", \"epoch\": %lld, \"step\": %lld, \"lr\": %.6g, \"train_loss\": %.6f, "
                "\"val_loss\": %.6f, %s, \"img_per_s\": %.1f, \"seconds\": %.1f%s}\n",
                (long long)e + 1, (long long)t->st.global_step, lr_now, train_loss, ev.loss, acc,
                (double)t->st.images_seen / fmax(t->st.seconds, 1e-9), t->st.seconds, extra);
        fflush(mf);
        nb_history_add_epoch(&hist, (double)(e + 1), train_top1, ev.loss, ev.top1);
        if (!t->quiet && detector)
            fprintf(stderr, "epoch %lld/%lld  train loss %.4f  val loss %.4f mAP (VOC07) %.2f%% (all-point) %.2f%%%s  (%.0fs)\n",
                    (long long)e + 1, (long long)epochs, train_loss, ev.loss, 100 * ev.map07, 100 * ev.map,
                    best ? "  best" : "", t->st.seconds);
        else if (!t->quiet)
            fprintf(stderr, "epoch %lld/%lld  train loss %.4f top-1 %.2f%%  val loss %.4f top-1 %.2f%% top-5 %.2f%%%s  (%.0fs)\n",
                    (long long)e + 1, (long long)epochs, train_loss, 100 * train_top1, ev.loss, 100 * ev.top1,
                    100 * ev.top5, best ? "  best" : "", t->st.seconds);
        if ((best && save(t, "best.h5")) || nb_compress_eval(&t->compress, false) || save(t, "last.h5")) {
            rc = -1;
            break;
        }
        redraw_chart(t, &hist);
        if (stopped) break;
    }
    report_skipped(&t->train, &skipped_train); /* a run that stopped inside an epoch */
    fclose(mf);
    free(logits);
    nb_history_free(&hist);
    return rc;
}

/* ---- summary ---- */

int nb_print_summary(nb_ctx *ctx, nb_model *m, FILE *f) {
    size_t mark;
    nb_tensor *x, *y = nb_record_forward(m, 1, &mark, &x);
    if (!y) {
        nb_tape_clear(ctx);
        nb_scope_end(ctx, mark);
        nb_release(x);
        return -1;
    }
    fprintf(f, "%-28s %-18s %12s %10s\n", "layer", "output", "parameters", "MFLOPs");
    size_t n = nb_tape_size(ctx);
    int64_t total_macs = 0;
    for (size_t i = 0; i < n;) {
        const nb_node *nd = nb_tape_node(ctx, i);
        const char *scope = nd->scope;
        int64_t macs = 0;
        const nb_tensor *out = NULL;
        size_t j = i;
        for (; j < n && !strcmp(nb_tape_node(ctx, j)->scope, scope); j++) {
            const nb_node *k = nb_tape_node(ctx, j);
            macs += nb_node_macs(k);
            if (k->op != NB_OP_RELAYOUT && k->op != NB_OP_RESHAPE) out = k->out[0];
        }
        if (!out) out = nb_tape_node(ctx, j - 1)->out[0];
        char shape[64];
        nb_shape_fmt(shape, sizeof shape, out);
        fprintf(f, "%-28s %-18s %12lld %10.3f\n", scope[0] ? scope : "(input)", shape,
                (long long)(scope[0] ? nb_params_count_direct(&m->params, scope) : 0), (double)macs / 1e6);
        total_macs += macs;
        i = j;
    }
    fprintf(f, "%-28s %-18s %12lld %10.3f\n", "total", "", (long long)nb_params_count(&m->params, NULL),
            (double)total_macs / 1e6);
    fprintf(f, "(MFLOPs count multiply-accumulates of convolutions and linear layers per image, as the papers do)\n");
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    return 0;
}

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
