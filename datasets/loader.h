/* The threaded batch loader: worker threads gather, augment and normalise the next batches while the model
 * trains on the current one. Batch b of epoch e is a pure function of (seed, e, b) -- the sample order comes
 * from a Philox permutation per epoch and each sample's augmentation from its own stream -- so any number
 * of workers produces the same batches, and a resumed run can start at any batch. */
#ifndef NB_LOADER_H
#define NB_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "datasets/dataset.h"

/* FLIP: random horizontal flip; CROP: random crop of a zero-padded image (in-memory data); RRC: random
 * resized crop (image folders; without it they are resized and centre-cropped); SSD: detection data's
 * photometric distortion, expand, min-IoU crop and flip (datasets/det_data.h) */
enum { NB_AUG_FLIP = 1, NB_AUG_CROP = 2, NB_AUG_RRC = 4, NB_AUG_SSD = 8 };

#define NB_MAX_CHANNELS 16

typedef struct {
    int batch;
    bool shuffle;
    uint64_t seed;
    int augment; /* NB_AUG_* bits */
    int pad;     /* random crop: zero padding on each side */
    double scale_min; /* random resized crop: the smallest fraction of the image area (torchvision: 0.08) */
    int resize;       /* image folders without RRC: the shorter side before the centre crop (0: 8/7 of it) */
    int workers;
    float mean[NB_MAX_CHANNELS], std[NB_MAX_CHANNELS];
    /* data-parallel ranks: of each global batch of `batch` samples, shard i of `shards` takes its contiguous
     * slice (as even as the batch allows), so that together the ranks see what one process would */
    int shard, shards;
} nb_loader_cfg;

typedef struct {
    float *x;     /* [n, C, H, W], normalised */
    int64_t *y;   /* [n]: labels; for detection data, the index of each sample's image in the dataset */
    float *targets; /* detection data: [n, P, 5] SSD targets (datasets/det_data.h), else NULL */
    int n;
    int global_n;  /* samples in the whole global batch (n without shards) */
    int64_t index; /* batch number within the epoch */
} nb_batch;

typedef struct nb_loader nb_loader;

nb_loader *nb_loader_new(const nb_dataset *ds, const nb_loader_cfg *cfg);
void nb_loader_free(nb_loader *l);
int64_t nb_loader_batches(const nb_loader *l); /* per epoch; the last one may be short */
/* Start an epoch at batch `first` (0, or where a resumed run stopped). */
void nb_loader_start(nb_loader *l, int64_t epoch, int64_t first);
/* The next batch, valid until the next call; NULL after the epoch's last batch. */
const nb_batch *nb_loader_next(nb_loader *l);
void nb_loader_stop(nb_loader *l);

/* One sample exactly as a worker prepares it (tests and tools). Returns the sample actually used: index
 * itself, or for an image folder whose file cannot be decoded, the next readable one (the skipped file is
 * logged in the dataset's skip log). */
int64_t nb_loader_sample(const nb_loader *l, int64_t epoch, int64_t index, float *out);
/* The same for detection data, with the sample's SSD targets [P, 5] (target may be NULL). */
int64_t nb_loader_det_sample(const nb_loader *l, int64_t epoch, int64_t index, float *out, float *target);

#endif
