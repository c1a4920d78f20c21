/* Synthetic ImageNet-style folders for tests and benchmarks (no image dataset can be downloaded here): real
 * JPEG and PNG files written with libjpeg-turbo and libpng, in the modes a real collection mixes (RGB,
 * grey and progressive JPEGs; RGB, grey, 16-bit, palette, RGBA and interlaced PNGs) and in varied sizes and
 * aspect ratios, each class with its own colour and shape so that a network can learn them. Optionally the
 * train split also gets the files a loader must survive: a CMYK JPEG, a truncated JPEG and a file named .png
 * that is not one. */
#ifndef NB_SYNTH_IMAGES_H
#define NB_SYNTH_IMAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int classes, train_per_class, val_per_class;
    int min_side, max_side; /* image sides drawn in [min_side, max_side] */
    bool broken;            /* add the three unreadable files to train/ */
    uint64_t seed;
} nb_synth_spec;

/* Writes root/train/classNN/imgNNNN.jpg|png and root/val/... (creating folders). 0, or -1 with err filled. */
int nb_synth_image_tree(const char *root, const nb_synth_spec *spec, char *err, size_t errn);

/* One file: w x h pixels of 8-bit RGB (rgb), written as `mode`: "jpeg", "jpeg-grey", "jpeg-progressive",
 * "jpeg-cmyk", "png", "png-grey", "png-grey16", "png-palette", "png-rgba", "png-interlaced". */
int nb_write_image(const char *path, const char *mode, const unsigned char *rgb, int w, int h, char *err, size_t errn);

#endif
