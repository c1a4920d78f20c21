/* Tiny VOC-format detection data (see synth_voc.h). */
#include "synth_voc.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rng.h"

static void write_png(const char *path, const unsigned char *px, int w, int h) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = PNG_FORMAT_RGB;
    png_image_write_to_file(&im, path, 0, px, 0, NULL);
}

void synth_voc_write(const char *root, int n_train, int n_test, int size, uint64_t seed, int corrupt) {
    char p[1024];
    snprintf(p, sizeof p, "%s/SYNTH", root);
    mkdir(root, 0755);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/SYNTH/JPEGImages", root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/SYNTH/Annotations", root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/SYNTH/ImageSets", root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/SYNTH/ImageSets/Main", root), mkdir(p, 0755);
    nb_rng r = nb_rng_make(seed, 77);
    unsigned char *px = malloc((size_t)size * size * 3);
    FILE *lists[2];
    snprintf(p, sizeof p, "%s/SYNTH/ImageSets/Main/trainval.txt", root);
    lists[0] = fopen(p, "w");
    snprintf(p, sizeof p, "%s/SYNTH/ImageSets/Main/test.txt", root);
    lists[1] = fopen(p, "w");
    for (int i = 0; i < n_train + n_test; i++) {
        memset(px, 128, (size_t)size * size * 3);
        char xml[4096];
        int len = snprintf(xml, sizeof xml,
                           "<annotation><filename>%06d.png</filename><size><width>%d</width><height>%d</height>"
                           "<depth>3</depth></size>\n",
                           i, size, size);
        int objects = 1 + (int)nb_rng_below(&r, 3);
        for (int k = 0; k < objects; k++) {
            int cls = (int)nb_rng_below(&r, 2);
            /* object k in the k-th third of the width: objects never overlap */
            int col = size / 3, w = size / 6 + (int)nb_rng_below(&r, (uint32_t)(col - size / 6 - 1));
            int h = size / 5 + (int)nb_rng_below(&r, (uint32_t)(size / 3));
            int x0 = k * col + (int)nb_rng_below(&r, (uint32_t)(col - w)), y0 = (int)nb_rng_below(&r, (uint32_t)(size - h));
            for (int y = y0; y < y0 + h; y++)
                for (int x = x0; x < x0 + w; x++) {
                    unsigned char *q = px + ((size_t)y * size + x) * 3;
                    q[0] = cls == 0 ? 220 : 30, q[1] = 40, q[2] = cls == 0 ? 30 : 220;
                }
            int difficult = k == objects - 1 && objects > 1 && nb_rng_below(&r, 4) == 0;
            len += snprintf(xml + len, sizeof xml - (size_t)len,
                            "<object><name>%s</name><difficult>%d</difficult><bndbox><xmin>%d</xmin><ymin>%d</ymin>"
                            "<xmax>%d</xmax><ymax>%d</ymax></bndbox></object>\n",
                            cls == 0 ? "red" : "blue", difficult, x0 + 1, y0 + 1, x0 + w, y0 + h);
        }
        snprintf(xml + len, sizeof xml - (size_t)len, "</annotation>\n");
        snprintf(p, sizeof p, "%s/SYNTH/Annotations/%06d.xml", root, i);
        FILE *f = fopen(p, "w");
        fputs(xml, f);
        fclose(f);
        snprintf(p, sizeof p, "%s/SYNTH/JPEGImages/%06d.png", root, i);
        if (corrupt && i == 0) {
            f = fopen(p, "wb");
            fputs("\x89PNG\r\n\x1a\n broken", f);
            fclose(f);
        } else {
            write_png(p, px, size, size);
        }
        fprintf(lists[i < n_train ? 0 : 1], "%06d\n", i);
    }
    fclose(lists[0]);
    fclose(lists[1]);
    free(px);
}
