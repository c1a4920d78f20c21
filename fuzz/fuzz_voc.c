/* Fuzz target: Pascal VOC XML annotations (libxml2 through datasets/voc.c) and the class list they are read
 * against (data.classes). The input is the XML, then optionally "\n--\n" and a class list. */
#include <stdlib.h>
#include <string.h>

#include "datasets/voc.h"
#include "fuzz/support/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    int n = fz_split(data, size, part, len, 2);
    nb_ctx *ctx = fz_ctx();
    char *list = NULL;
    if (n > 1) {
        list = malloc(len[1] + 1);
        memcpy(list, part[1], len[1]);
        list[len[1]] = 0;
    }
    int n_classes;
    char **classes = nb_voc_class_names(ctx, list, &n_classes);
    free(list);
    if (!classes) return 0;
    const char *path = fz_write("000001.xml", part[0], len[0]);
    nb_voc_image im;
    int64_t ignored = 0;
    char why[600];
    memset(&im, 0, sizeof im);
    if (nb_voc_read_annotation(path, classes, n_classes, &im, &ignored, why, sizeof why) == 0) {
        for (int i = 0; i < im.n_objects; i++)
            if (im.objects[i].cls < 0 || im.objects[i].cls >= n_classes) abort();
        free(im.objects);
        free(im.id);
        free(im.image);
    }
    nb_voc_free_names(classes, n_classes);
    return 0;
}
