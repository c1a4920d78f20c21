/* One sample of an image-folder dataset: decode its file and cut the network input out of it, as
 * torchvision's RandomResizedCrop + RandomHorizontalFlip (training) or Resize + CenterCrop (evaluation). */
#ifndef NB_FOLDER_H
#define NB_FOLDER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/rng.h"
#include "datasets/dataset.h"

typedef struct {
    bool random_resized; /* RandomResizedCrop(scale=(scale_min, 1)); else resize + centre crop */
    double scale_min;
    bool flip;           /* random horizontal flip */
    int resize;          /* evaluation: the shorter side before the centre crop */
    const float *mean, *std;
} nb_folder_crop;

/* Writes [3, S, S] floats (S = ds->h). r supplies every random choice, so a sample is a pure function of
 * its stream. -1 with err filled when the file cannot be decoded. */
int nb_folder_sample(const nb_dataset *ds, int64_t index, const nb_folder_crop *crop, nb_rng *r, float *out, char *err,
                     size_t errn);

#endif
