/* Image classification data: N images of C x H x W and int64 labels, either held in host memory (uint8 or
 * float32, NCHW; read from MNIST-style idx files, HDF5 or CIFAR binaries) or named by file (an ImageNet-style
 * folder of JPEG and PNG files, decoded and cropped to H x W by the loader's threads). Readers check every
 * size against the file and name the file and what was expected on failure. */
#ifndef NB_DATASET_H
#define NB_DATASET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/context.h"
#include "core/dtype.h"
#include "detect/boxes.h"

/* Files that could not be decoded: each is skipped (another sample takes its place) and counted. Shared by
 * the loader's threads. */
typedef struct {
    pthread_mutex_t mu;
    int64_t count;
    char first[600]; /* the first one, with the reason */
    unsigned char *bad; /* per sample: known unreadable */
} nb_skip_log;

typedef struct {
    int64_t n;
    int c, h, w;
    nb_dtype dtype; /* NB_U8 (scaled by 1/255 when batched) or NB_F32; unused for files */
    void *images;   /* NULL for a dataset of files */
    int64_t *labels;
    int64_t max_label;
    char source[512];
    /* a dataset of files (images == NULL): sample i is files[i], of class labels[i] = index of classes[] */
    char **files;
    char **classes;
    int n_classes;
    nb_skip_log *skipped;
    /* detection data (data.format = voc): images named by the VOC set, labels unused; batches carry SSD
     * targets (datasets/det_data.h) */
    struct nb_det_data *det;
} nb_dataset;

/* idx3 images + idx1 labels (gzip or raw). limit > 0 keeps the first `limit` samples. */
int nb_dataset_load_idx(nb_ctx *ctx, nb_dataset *ds, const char *images, const char *labels, int64_t limit);
/* HDF5 file with datasets `images` ([N,C,H,W] or [N,H,W], uint8 or float32) and `labels` ([N], integer).
 * Without need_labels a file may lack `labels` (bin/predict); they then read as 0. */
int nb_dataset_load_hdf5(nb_ctx *ctx, nb_dataset *ds, const char *path, int64_t limit);
int nb_dataset_load_hdf5_ex(nb_ctx *ctx, nb_dataset *ds, const char *path, int64_t limit, bool need_labels);
/* An ImageNet-style folder, torchvision's ImageFolder: dir/<class>/<file>.jpg|.jpeg|.png (any case), classes
 * numbered in sorted order of their folder names, files sorted within each. Images are cropped to
 * size x size by the loader. limit > 0 keeps every (N/limit)-th file, so that all classes stay represented. */
int nb_dataset_load_folder(nb_ctx *ctx, nb_dataset *ds, const char *dir, int size, int64_t limit);
/* CIFAR-10 (data_batch_1..5.bin / test_batch.bin: a label byte and 3x32x32 bytes per record) or CIFAR-100
 * (train.bin / test.bin: coarse and fine label bytes first; the fine label is used) from directory dir. */
int nb_dataset_load_cifar(nb_ctx *ctx, nb_dataset *ds, const char *dir, bool train, int64_t limit);
/* Pascal VOC detection data (datasets/voc.h) for a detector of input size x size: the images of splits under
 * root. Training targets need the detector's default boxes: nb_dataset_set_priors before loading batches. */
int nb_dataset_load_voc(nb_ctx *ctx, nb_dataset *ds, const char *root, const char *splits, const char *classes,
                        int size, int64_t limit);
/* The default boxes targets are matched against (copied), and the IoU above which a box takes an object. */
void nb_dataset_set_priors(nb_dataset *ds, const nb_cbox *priors, int n, float match_iou, float expand_max);
void nb_dataset_free(nb_dataset *ds);
/* The labels file that goes with an idx images file: "...-images-idx3-ubyte..." -> "...-labels-idx1-ubyte...". */
int nb_idx_labels_path(const char *images, char *out, size_t n);

#endif
