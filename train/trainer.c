/* Assembling a run (see trainer.h): the parts in the order their checks can fail, the run directory last. */
#include "train/trainer.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "setup/assemble.h"

/* ranks on one machine share its cores: by default each takes its part rather than all of them */
static void set_threads(const nb_settings *s, nb_dist *dist) {
    int threads = (int)s->train.threads;
    if (threads <= 0 && nb_dist_local_size(dist) > 1 && !getenv("OMP_NUM_THREADS")) {
        threads = omp_get_num_procs() / nb_dist_local_size(dist);
        if (threads < 1) threads = 1;
    }
    if (threads > 0) omp_set_num_threads(threads);
}

static int load_data(nb_trainer *t) {
    nb_ctx *ctx = t->ctx;
    if (nb_data_load(ctx, &t->set, NB_SPLIT_TRAIN, &t->train)) return -1;
    t->has_val = nb_has_val(&t->set);
    return t->has_val && nb_data_load(ctx, &t->set, NB_SPLIT_VAL, &t->val) ? -1 : 0;
}

/* MemAvailable of /proc/meminfo in bytes (0 when unknown) */
static double memory_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024.0;
}

/* A batch whose training step cannot fit in this machine's memory is refused before it is tried: the kernel's
 * OOM killer would end the run without a word. The estimate: every op output (and saved workspace) of one
 * image's training forward pass, what backward keeps, and its gradient, times this rank's share of the batch, plus the parameters with their
 * gradients and optimizer state. On the GPU its own allocator reports what it cannot hold. */
static int check_memory(nb_trainer *t) {
    nb_ctx *ctx = t->ctx;
    /* a batch the data cannot fill is a mistake, not a request */
    int64_t batch_size = t->set.train.batch;
    NB_REQUIRE(ctx, batch_size <= t->train.n, -1, "config",
               "train.batch = %lld is larger than the training set (%lld images in %s)\n  hint: set train.batch to "
               "at most %lld",
               (long long)batch_size, (long long)t->train.n, t->train.source, (long long)t->train.n);
    double avail = memory_available();
    if (nb_ctx_device(ctx) != NB_DEVICE_CPU || avail <= 0) return 0;
    /* a training-mode forward pass of two images records what a step keeps for backward; batch norms use
     * and keep their running statistics and the random stream is put back, so the run is the same as without */
    nb_model *m = t->model;
    bool frozen = ctx->bn_frozen;
    uint64_t offset = ctx->offset;
    ctx->bn_frozen = true;
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){2, m->spec.in_channels, m->spec.input_size, m->spec.input_size});
    nb_tape_clear(ctx);
    nb_tensor *y = x ? m->forward(m, x, true) : NULL;
    double per_image = 0, params = 0;
    for (size_t i = 0; y && i < ctx->tape.n; i++) {
        const nb_node *nd = ctx->tape.nodes[i];
        for (int k = 0; k < nd->n_out; k++)
            if (nd->out[k]) per_image += (double)nb_tensor_bytes(nd->out[k]) / 2;
        for (int k = 0; k < nd->n_saved; k++)
            if (nd->saved[k]) per_image += (double)nb_tensor_bytes(nd->saved[k]) / 2;
    }
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    ctx->bn_frozen = frozen;
    ctx->offset = offset;
    for (int i = 0; i < t->model->params.n; i++) params += (double)nb_tensor_bytes(t->model->params.items[i].t);
    double batch = (double)t->set.train.batch / nb_dist_size(t->dist);
    /* measured on ResNet-56 at 64x64: a step's resident memory grows by 3.1x the forward pass's tensors per image
     * (their gradients, oneDNN's workspaces and reorders); 3x keeps the estimate below what a run needs, so that
     * only a batch that cannot fit is refused */
    double need = 3.0 * per_image * batch + 4.0 * params;
    NB_REQUIRE(ctx, need <= avail, -1, "config",
               "train.batch = %lld needs about %.1f GiB for one training step (%.1f MiB of activations and their "
               "gradients per image), but this machine has %.1f GiB available\n  hint: lower train.batch to at most "
               "%lld",
               (long long)t->set.train.batch, need / 1073741824.0, 3.0 * per_image / 1048576.0, avail / 1073741824.0,
               (long long)((avail - 4.0 * params) / (3.0 * per_image) * nb_dist_size(t->dist)));
    return 0;
}

static int make_loaders(nb_trainer *t) {
    nb_ctx *ctx = t->ctx;
    int ranks = nb_dist_size(t->dist);
    nb_loader_cfg lc;
    if (nb_loader_cfg_for(ctx, &t->set, &t->train, NB_SPLIT_TRAIN, &lc)) return -1;
    int64_t batch = t->set.train.batch;
    NB_REQUIRE(ctx, batch >= ranks, -1, "config", "train.batch = %lld is the global batch; %d ranks need at least %d",
               (long long)batch, ranks, ranks);

    /* before the loader sets a batch's memory aside */
    if (check_memory(t)) return -1;
    lc.shard = nb_dist_rank(t->dist);
    lc.shards = ranks;
    t->loader = nb_loader_new(&t->train, &lc);
    if (t->has_val && nb_loader_cfg_for(ctx, &t->set, &t->val, NB_SPLIT_VAL, &t->val_loader)) return -1;
    if (t->task->shard_eval) {
        t->val_loader.shard = nb_dist_rank(t->dist);
        t->val_loader.shards = ranks;
    }
    return 0;
}

static int resume(nb_trainer *t, const char *last) {
    nb_ctx *ctx = t->ctx;
    int ranks = nb_dist_size(t->dist);
    if (nb_ckpt_load_model(ctx, last, &t->model->params, NB_NAMES_ALL) || nb_ckpt_load_optim(ctx, last, t->optim) ||
        nb_ckpt_load_state(ctx, last, &t->st))
        return -1;
    NB_REQUIRE(ctx, t->st.ranks == ranks, -1, last,
               "was written by a run of %lld rank%s; resume it with as many (this is %d)\n  hint: mpirun -np %lld "
               "bin/train ... --resume",
               (long long)t->st.ranks, t->st.ranks == 1 ? "" : "s", ranks, (long long)t->st.ranks);
    return 0;
}

int nb_trainer_setup(nb_trainer *t, nb_ctx *ctx, const nb_cfg *cfg, nb_run_start start, nb_dist *dist) {
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    t->cfg = cfg;
    t->dist = dist;
    nb_settings_read(cfg, &t->set);
    const nb_settings *s = &t->set;
    int ranks = nb_dist_size(dist);
    t->writer = nb_dist_rank(dist) == 0;
    if (!t->writer) t->quiet = true;
    set_threads(s, dist);
    NB_REQUIRE(ctx, !strcmp(s->train.device.name, nb_ctx_backend_name(ctx)), -1, "config",
               "train.device = %s, but the context runs on the %s backend", s->train.device.name, nb_ctx_backend_name(ctx));
    NB_REQUIRE(ctx, s->train.precision.id != NB_PRECISION_FP16, -1, "config",
               "train.precision = fp16 needs fp16 convolutions, which no backend of this build has\n"
               "  hint: train.precision = bf16 (the CPU backend) keeps float32's range and needs no loss scaling");
    /* the scale is an f32 multiplier, as GradScaler's: it must be one, and move the right way */
    NB_REQUIRE(ctx, s->train.loss_scale_init > 0 && isfinite((float)s->train.loss_scale_init), -1, "config",
               "train.loss_scale_init = %g: a positive scale that f32 holds (at most 3.4e38) expected",
               s->train.loss_scale_init);
    NB_REQUIRE(ctx, s->train.loss_scale_growth >= 1 && isfinite(s->train.loss_scale_growth), -1, "config",
               "train.loss_scale_growth = %g: a factor of at least 1 expected", s->train.loss_scale_growth);
    NB_REQUIRE(ctx, s->train.loss_scale_backoff > 0 && s->train.loss_scale_backoff < 1, -1, "config",
               "train.loss_scale_backoff = %g: a factor between 0 and 1 expected", s->train.loss_scale_backoff);
    NB_REQUIRE(ctx, s->train.loss_scale_interval >= 0, -1, "config",
               "train.loss_scale_interval = %lld: a step count of 0 or more expected",
               (long long)s->train.loss_scale_interval);
    NB_REQUIRE(ctx, s->train.precision.id != NB_PRECISION_BF16 || nb_autocast_supported(ctx, NB_BF16), -1, "config",
               "train.precision = bf16, but the %s backend has no bf16 convolutions\n  hint: train.device = cpu, "
               "or train.precision = fp32", nb_ctx_backend_name(ctx));
    if (s->train.precision.id == NB_PRECISION_BF16 && t->writer && !t->quiet &&
        !nb_autocast_native(ctx, NB_BF16))
        fprintf(stderr, "nibble: note: train.precision = bf16 on a CPU without AVX-512 BF16 or AMX: oneDNN emulates "
                        "bf16 here, which trains correctly but slower than fp32\n");
    nb_run_dir_path(s, cfg->path, t->out, sizeof t->out);
    if (nb_run_dir_check(ctx, t->out, start)) return -1;
    NB_REQUIRE(ctx, s->train.epochs > 0 || s->train.steps > 0, -1, "config", "train.epochs or train.steps must be positive");
    if (load_data(t)) return -1;
    t->model = nb_model_for(ctx, s);
    if (!t->model) return -1;
    if (nb_data_for_model(ctx, s, t->model, &t->train) || (t->has_val && nb_data_for_model(ctx, s, t->model, &t->val)))
        return -1;
    if (nb_methods_parse(ctx, s, t->model, &t->methods)) return -1;
    if (s->model.init[0] &&
        nb_ckpt_load_model(ctx, s->model.init, &t->model->params, s->model.init_strict ? NB_NAMES_ALL : NB_NAMES_PRESENT))
        return -1;
    t->optim = nb_optim_for(ctx, s, t->model);
    if (!t->optim || nb_schedule_for(ctx, s, &t->sched)) return -1;
    t->task = nb_task_for(t->model, s);
    if (make_loaders(t)) return -1;
    int64_t nb = nb_loader_batches(t->loader);
    t->epochs = s->train.epochs > 0 ? s->train.epochs : (s->train.steps + nb - 1) / nb;
    t->st = (nb_train_state){.best_top1 = -1.0, .best_epoch = -1, .ranks = ranks};
    if (s->train.loss_scale.id == NB_LOSS_SCALE_DYNAMIC)
        t->st.scaler = (nb_loss_scaler){.scale = s->train.loss_scale_init, .growth = s->train.loss_scale_growth,
                                        .backoff = s->train.loss_scale_backoff, .interval = s->train.loss_scale_interval};
    char last[600];
    snprintf(last, sizeof last, "%s/last.h5", t->out);
    if (start == NB_RUN_RESUME && resume(t, last)) return -1;
    ctx->sync_bn = s->train.sync_bn;
    nb_dist_attach(dist, ctx, (size_t)(s->train.bucket_mb * 1048576.0));
    if (nb_compress_new(ctx, s, &t->methods, t->model, nb, &t->compress)) return -1;
    /* the methods' own parameters (step sizes) train with the model's, by the same optimizer */
    nb_tensor *own[1024];
    int n_own = nb_compress_params(&t->compress, own, 1024);
    if (n_own > 0 && nb_optim_add(t->optim, own, n_own)) return -1;
    if (start == NB_RUN_RESUME) {
        nb_ckpt_extra extra = {0};
        nb_compress_state(&t->compress, &extra);
        int rc = nb_ckpt_load_extra(ctx, last, &extra);
        nb_ckpt_extra_free(&extra);
        if (rc || (n_own > 0 && nb_ckpt_load_optim(ctx, last, t->optim))) return -1;
    }
    t->config_text = nb_cfg_to_string(cfg);
    /* from here on the run directory is written */
    return t->writer ? nb_run_dir_create(ctx, t->out, t->config_text) : 0;
}

int nb_trainer_save(nb_trainer *t, const char *name) {
    if (!t->writer) return 0;
    char path[600];
    snprintf(path, sizeof path, "%s/%s", t->out, name);
    nb_ckpt_extra extra = {0};
    nb_compress_state(&t->compress, &extra);
    int rc = nb_ckpt_save(t->ctx, path, &t->model->params, t->optim, &t->st, t->config_text, &extra);
    nb_ckpt_extra_free(&extra);
    return rc;
}

void nb_trainer_free(nb_trainer *t) {
    nb_compress_free(&t->compress);
    nb_loader_free(t->loader);
    nb_task_free(t->task);
    nb_optim_free(t->optim);
    nb_model_free(t->model);
    nb_dataset_free(&t->train);
    nb_dataset_free(&t->val);
    free(t->config_text);
    memset(t, 0, sizeof *t);
}
