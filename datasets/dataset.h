/* Image classification data held in host memory: N images of C x H x W (uint8 or float32, NCHW) and int64
 * labels, read from MNIST-style idx files or from HDF5. Readers check every size against the file and name
 * the file and what was expected on failure. */
#ifndef NB_DATASET_H
#define NB_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/context.h"
#include "core/dtype.h"

typedef struct {
    int64_t n;
    int c, h, w;
    nb_dtype dtype; /* NB_U8 (scaled by 1/255 when batched) or NB_F32 */
    void *images;
    int64_t *labels;
    int64_t max_label;
    char source[512];
} nb_dataset;

/* idx3 images + idx1 labels (gzip or raw). limit > 0 keeps the first `limit` samples. */
int nb_dataset_load_idx(nb_ctx *ctx, nb_dataset *ds, const char *images, const char *labels, int64_t limit);
/* HDF5 file with datasets `images` ([N,C,H,W] or [N,H,W], uint8 or float32) and `labels` ([N], integer).
 * Without need_labels a file may lack `labels` (bin/predict); they then read as 0. */
int nb_dataset_load_hdf5(nb_ctx *ctx, nb_dataset *ds, const char *path, int64_t limit);
int nb_dataset_load_hdf5_ex(nb_ctx *ctx, nb_dataset *ds, const char *path, int64_t limit, bool need_labels);
void nb_dataset_free(nb_dataset *ds);
/* The labels file that goes with an idx images file: "...-images-idx3-ubyte..." -> "...-labels-idx1-ubyte...". */
int nb_idx_labels_path(const char *images, char *out, size_t n);

#endif
