/* bin/synth_images ROOT [CLASSES [TRAIN_PER_CLASS [VAL_PER_CLASS [MIN_SIDE [MAX_SIDE]]]]] [--broken]: writes a
 * synthetic ImageNet-style folder (ROOT/train/classNN, ROOT/val/classNN) of JPEG and PNG files in mixed modes
 * and sizes; --broken adds a CMYK JPEG, a truncated JPEG and a fake PNG to train/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/synth_images.h"

int main(int argc, char **argv) {
    nb_synth_spec s = {.classes = 4, .train_per_class = 24, .val_per_class = 6, .min_side = 48, .max_side = 320, .seed = 1};
    const char *root = NULL;
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--broken")) s.broken = true;
        else if (!root) root = argv[i];
        else {
            int v = atoi(argv[i]);
            int *slot[] = {&s.classes, &s.train_per_class, &s.val_per_class, &s.min_side, &s.max_side};
            if (pos < 5) *slot[pos++] = v;
        }
    }
    if (!root || s.classes < 1 || s.min_side < 1 || s.max_side < s.min_side) {
        fprintf(stderr, "usage: bin/synth_images ROOT [CLASSES [TRAIN_PER_CLASS [VAL_PER_CLASS [MIN_SIDE [MAX_SIDE]]]]] "
                        "[--broken]\n");
        return 2;
    }
    char err[512];
    if (nb_synth_image_tree(root, &s, err, sizeof err)) {
        fprintf(stderr, "nibble: error: %s\n", err);
        return 1;
    }
    printf("%s: %d classes, %d train and %d val images per class%s\n", root, s.classes, s.train_per_class,
           s.val_per_class, s.broken ? ", plus 3 unreadable files in train/" : "");
    return 0;
}
