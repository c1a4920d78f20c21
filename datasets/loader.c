/* Loader threads and the per-sample augmentation. */
#include "datasets/loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/rng.h"
#include "datasets/det_data.h"
#include "datasets/folder.h"

typedef struct {
    nb_batch b;
    int64_t ready_index; /* batch held, -1 if none */
} slot;

struct nb_loader {
    const nb_dataset *ds;
    nb_loader_cfg cfg;
    int64_t *perm;
    int64_t epoch, end;
    int n_slots;
    slot *slots;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t next_produce, next_consume;
    bool running, handed_out;
};

static uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static void log_skip(nb_skip_log *log, const char *file, const char *why, int64_t k) {
    pthread_mutex_lock(&log->mu);
    if (!log->bad[k]) {
        log->bad[k] = 1;
        if (log->count++ == 0) snprintf(log->first, sizeof log->first, "%s: %s", file, why);
    }
    pthread_mutex_unlock(&log->mu);
}

static bool known_bad(nb_skip_log *log, int64_t k) {
    pthread_mutex_lock(&log->mu);
    bool bad = log->bad[k];
    pthread_mutex_unlock(&log->mu);
    return bad;
}

/* A file that cannot be decoded is replaced by the next readable one, drawing the same random choices: the
 * substitute depends only on which files are unreadable, never on thread timing. */
static int64_t folder_sample(const nb_loader *l, nb_rng r, int64_t index, float *out) {
    const nb_dataset *ds = l->ds;
    nb_folder_crop crop = {.random_resized = l->cfg.augment & NB_AUG_RRC,
                           .scale_min = l->cfg.scale_min > 0 ? l->cfg.scale_min : 0.08,
                           .flip = l->cfg.augment & NB_AUG_FLIP,
                           .resize = l->cfg.resize > 0 ? l->cfg.resize : (ds->h * 8 + 3) / 7,
                           .mean = l->cfg.mean,
                           .std = l->cfg.std};
    char err[256];
    for (int64_t t = 0; t < ds->n; t++) {
        int64_t k = (index + t) % ds->n;
        if (known_bad(ds->skipped, k)) continue;
        nb_rng rk = r;
        if (nb_folder_sample(ds, k, &crop, &rk, out, err, sizeof err) == 0) return k;
        log_skip(ds->skipped, ds->files[k], err, k);
    }
    memset(out, 0, sizeof(float) * 3 * (size_t)ds->h * (size_t)ds->w); /* nothing in the folder decodes */
    return index;
}

/* Detection samples skip unreadable images the same way. */
int64_t nb_loader_det_sample(const nb_loader *l, int64_t epoch, int64_t index, float *out, float *target) {
    const nb_dataset *ds = l->ds;
    const nb_det_data *d = ds->det;
    nb_rng r = nb_rng_make(l->cfg.seed, mix(((uint64_t)epoch << 40) ^ (uint64_t)index));
    float *scratch = target ? NULL : nb_xmalloc(sizeof(float) * 5 * (size_t)(d->n_priors ? d->n_priors : 1));
    char err[256];
    int64_t used = index;
    bool ok = false;
    for (int64_t t = 0; t < ds->n && !ok; t++) {
        int64_t k = (index + t) % ds->n;
        if (known_bad(ds->skipped, k)) continue;
        nb_rng rk = r;
        if (nb_det_sample(d, k, &rk, l->cfg.augment & NB_AUG_SSD, l->cfg.mean, l->cfg.std, out, target ? target : scratch,
                          NULL, 0, NULL, err, sizeof err) == 0) {
            used = k;
            ok = true;
        } else {
            log_skip(ds->skipped, d->voc.images[k].image, err, k);
        }
    }
    if (!ok) { /* nothing decodes: a black image of background */
        memset(out, 0, sizeof(float) * 3 * (size_t)ds->h * (size_t)ds->w);
        if (target) memset(target, 0, sizeof(float) * 5 * (size_t)d->n_priors);
    }
    free(scratch);
    return used;
}

int64_t nb_loader_sample(const nb_loader *l, int64_t epoch, int64_t index, float *out) {
    const nb_dataset *ds = l->ds;
    if (ds->det) return nb_loader_det_sample(l, epoch, index, out, NULL);
    if (ds->files) return folder_sample(l, nb_rng_make(l->cfg.seed, mix(((uint64_t)epoch << 40) ^ (uint64_t)index)), index, out);
    int C = ds->c, H = ds->h, W = ds->w, pad = l->cfg.pad;
    int dy = 0, dx = 0, flip = 0;
    if (l->cfg.augment) {
        nb_rng r = nb_rng_make(l->cfg.seed, mix(((uint64_t)epoch << 40) ^ (uint64_t)index));
        if (l->cfg.augment & NB_AUG_CROP) {
            dy = (int)nb_rng_below(&r, (uint32_t)(2 * pad + 1)) - pad;
            dx = (int)nb_rng_below(&r, (uint32_t)(2 * pad + 1)) - pad;
        }
        if (l->cfg.augment & NB_AUG_FLIP) flip = nb_rng_below(&r, 2);
    }
    size_t plane = (size_t)H * W;
    const unsigned char *u8 = ds->dtype == NB_U8 ? (const unsigned char *)ds->images + (size_t)index * C * plane : NULL;
    const float *f32 = ds->dtype == NB_F32 ? (const float *)ds->images + (size_t)index * C * plane : NULL;
    for (int c = 0; c < C; c++) {
        float m = l->cfg.mean[c], inv = 1.0f / l->cfg.std[c];
        for (int yy = 0; yy < H; yy++) {
            int sy = yy + dy;
            for (int xx = 0; xx < W; xx++) {
                int sx = (flip ? W - 1 - xx : xx) + dx;
                float v = 0.0f; /* the crop's padding is black, as torchvision's RandomCrop(padding=...) */
                if (sy >= 0 && sy < H && sx >= 0 && sx < W) {
                    size_t k = (size_t)c * plane + (size_t)sy * W + (size_t)sx;
                    v = u8 ? (float)u8[k] * (1.0f / 255.0f) : f32[k];
                }
                out[(size_t)c * plane + (size_t)yy * W + xx] = (v - m) * inv;
            }
        }
    }
    return index;
}

static void fill(nb_loader *l, slot *s, int64_t b) {
    int64_t n = l->ds->n, B = l->cfg.batch;
    int64_t lo = b * B, hi = lo + B < n ? lo + B : n;
    s->b.global_n = (int)(hi - lo);
    if (l->cfg.shards > 1) {
        int64_t g = hi - lo, k = l->cfg.shard, K = l->cfg.shards;
        hi = lo + g * (k + 1) / K;
        lo = lo + g * k / K;
    }
    size_t per = (size_t)l->ds->c * l->ds->h * l->ds->w;
    const nb_det_data *d = l->ds->det;
    for (int64_t i = lo; i < hi; i++) {
        float *x = s->b.x + (size_t)(i - lo) * per;
        if (d) {
            s->b.y[i - lo] = nb_loader_det_sample(l, l->epoch, l->perm[i], x, s->b.targets + (size_t)(i - lo) * 5 * d->n_priors);
        } else {
            int64_t used = nb_loader_sample(l, l->epoch, l->perm[i], x);
            s->b.y[i - lo] = l->ds->labels[used];
        }
    }
    s->b.n = (int)(hi - lo);
    s->b.index = b;
}

static void *worker(void *arg) {
    nb_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (!l->running || l->next_produce >= l->end) break;
        int64_t b = l->next_produce++;
        /* the slot of batch b frees up once batch b - n_slots has been consumed */
        while (l->running && b >= l->next_consume + l->n_slots) pthread_cond_wait(&l->cv, &l->mu);
        if (!l->running) break;
        slot *s = &l->slots[b % l->n_slots];
        pthread_mutex_unlock(&l->mu);
        fill(l, s, b);
        pthread_mutex_lock(&l->mu);
        s->ready_index = b;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

nb_loader *nb_loader_new(const nb_dataset *ds, const nb_loader_cfg *cfg) {
    nb_loader *l = nb_xcalloc(1, sizeof *l);
    l->ds = ds;
    l->cfg = *cfg;
    if (l->cfg.batch < 1) l->cfg.batch = 1;
    if (l->cfg.workers < 1) l->cfg.workers = 1;
    l->perm = nb_xmalloc(sizeof(int64_t) * (size_t)(ds->n ? ds->n : 1));
    l->n_slots = 2 * l->cfg.workers + 1;
    l->slots = nb_xcalloc((size_t)l->n_slots, sizeof *l->slots);
    size_t per = (size_t)ds->c * ds->h * ds->w;
    for (int i = 0; i < l->n_slots; i++) {
        l->slots[i].b.x = nb_xmalloc(sizeof(float) * per * (size_t)l->cfg.batch);
        l->slots[i].b.y = nb_xmalloc(sizeof(int64_t) * (size_t)l->cfg.batch);
        if (ds->det)
            l->slots[i].b.targets = nb_xmalloc(sizeof(float) * 5 * (size_t)ds->det->n_priors * (size_t)l->cfg.batch);
        l->slots[i].ready_index = -1;
    }
    l->threads = nb_xcalloc((size_t)l->cfg.workers, sizeof *l->threads);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    return l;
}

int64_t nb_loader_batches(const nb_loader *l) { return (l->ds->n + l->cfg.batch - 1) / l->cfg.batch; }

void nb_loader_stop(nb_loader *l) {
    pthread_mutex_lock(&l->mu);
    l->running = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->n_threads; i++) pthread_join(l->threads[i], NULL);
    l->n_threads = 0;
}

void nb_loader_start(nb_loader *l, int64_t epoch, int64_t first) {
    nb_loader_stop(l);
    int64_t n = l->ds->n;
    if (l->cfg.shuffle) {
        nb_rng r = nb_rng_make(l->cfg.seed, mix(0x5EEDULL << 32 | (uint64_t)epoch));
        nb_rng_permutation(&r, l->perm, n);
    } else {
        for (int64_t i = 0; i < n; i++) l->perm[i] = i;
    }
    l->epoch = epoch;
    l->end = nb_loader_batches(l);
    l->next_produce = l->next_consume = first < l->end ? first : l->end;
    l->handed_out = false;
    for (int i = 0; i < l->n_slots; i++) l->slots[i].ready_index = -1;
    l->running = true;
    int want = l->cfg.workers;
    for (int i = 0; i < want; i++)
        if (pthread_create(&l->threads[l->n_threads], NULL, worker, l) == 0) l->n_threads++;
    if (l->n_threads == 0) nb_panic(__FILE__, __LINE__, "could not start a loader thread");
}

const nb_batch *nb_loader_next(nb_loader *l) {
    pthread_mutex_lock(&l->mu);
    if (l->handed_out) {
        /* the caller is done with the previous batch: its slot may be refilled */
        l->next_consume++;
        l->handed_out = false;
        pthread_cond_broadcast(&l->cv);
    }
    int64_t b = l->next_consume;
    if (b >= l->end) {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    slot *s = &l->slots[b % l->n_slots];
    while (s->ready_index != b) pthread_cond_wait(&l->cv, &l->mu);
    l->handed_out = true;
    pthread_mutex_unlock(&l->mu);
    return &s->b;
}

void nb_loader_free(nb_loader *l) {
    if (!l) return;
    nb_loader_stop(l);
    for (int i = 0; i < l->n_slots; i++) {
        free(l->slots[i].b.x);
        free(l->slots[i].b.y);
        free(l->slots[i].b.targets);
    }
    free(l->slots);
    free(l->threads);
    free(l->perm);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}
