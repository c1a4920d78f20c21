/* Synthetic data files for tests. */
#include "tests/support/synth.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/rng.h"

void synth_sample(int i, int c, int h, int w, int classes, uint64_t seed, unsigned char *img, int64_t *label) {
    nb_rng r = nb_rng_make(seed, (uint64_t)i);
    int k = (int)nb_rng_below(&r, (uint32_t)classes);
    *label = k;
    for (int p = 0; p < c * h * w; p++) img[p] = (unsigned char)nb_rng_below(&r, 80);
    int col = (k * (w - 3)) / (classes > 1 ? classes - 1 : 1);
    for (int ch = 0; ch < c; ch++)
        for (int y = h / 4; y < 3 * h / 4; y++)
            for (int x = col; x < col + 3 && x < w; x++) img[(ch * h + y) * w + x] = 230;
}

static void put32(unsigned char *b, uint32_t v) {
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static void write_blob(const char *path, const void *data, size_t n, bool gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, data, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

void synth_write_idx(const char *dir, const char *prefix, int n, int h, int w, int classes, bool gz, uint64_t seed) {
    size_t per = (size_t)h * (size_t)w;
    unsigned char *img = malloc(16 + per * (size_t)n), *lab = malloc(8 + (size_t)n);
    put32(img, 0x803);
    put32(img + 4, (uint32_t)n);
    put32(img + 8, (uint32_t)h);
    put32(img + 12, (uint32_t)w);
    put32(lab, 0x801);
    put32(lab + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        int64_t l;
        synth_sample(i, 1, h, w, classes, seed, img + 16 + per * (size_t)i, &l);
        lab[8 + i] = (unsigned char)l;
    }
    char p[1024];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte%s", dir, prefix, gz ? ".gz" : "");
    write_blob(p, img, 16 + per * (size_t)n, gz);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte%s", dir, prefix, gz ? ".gz" : "");
    write_blob(p, lab, 8 + (size_t)n, gz);
    free(img);
    free(lab);
}

void synth_write_h5(const char *path, int n, int c, int h, int w, int classes, bool u8, uint64_t seed) {
    size_t per = (size_t)c * (size_t)h * (size_t)w;
    unsigned char *img = malloc(per * (size_t)n);
    int64_t *lab = malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++) synth_sample(i, c, h, w, classes, seed, img + per * (size_t)i, &lab[i]);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t d[4] = {(hsize_t)n, (hsize_t)c, (hsize_t)h, (hsize_t)w}, dl[1] = {(hsize_t)n};
    hid_t s = H5Screate_simple(4, d, NULL), sl = H5Screate_simple(1, dl, NULL);
    if (u8) {
        hid_t ds = H5Dcreate2(f, "images", H5T_NATIVE_UINT8, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, img);
        H5Dclose(ds);
    } else {
        float *fl = malloc(sizeof(float) * per * (size_t)n);
        for (size_t i = 0; i < per * (size_t)n; i++) fl[i] = img[i] / 255.0f;
        hid_t ds = H5Dcreate2(f, "images", H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, fl);
        H5Dclose(ds);
        free(fl);
    }
    hid_t dsl = H5Dcreate2(f, "labels", H5T_NATIVE_INT64, sl, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dsl, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    H5Dclose(dsl);
    H5Sclose(s);
    H5Sclose(sl);
    H5Fclose(f);
    free(img);
    free(lab);
}

void synth_truncate(const char *path, long bytes) {
    if (truncate(path, bytes) != 0) perror(path);
}
