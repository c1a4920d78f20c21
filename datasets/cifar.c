/* CIFAR-10 and CIFAR-100 in their binary distribution: fixed-size records of label byte(s) and a 3x32x32
 * image stored plane by plane (already NCHW). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/check.h"
#include "datasets/dataset.h"

enum { CIFAR_PIXELS = 3 * 32 * 32 };

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int nb_dataset_load_cifar(nb_ctx *ctx, nb_dataset *ds, const char *dir, bool train, int64_t limit) {
    memset(ds, 0, sizeof *ds);
    char paths[5][1100];
    int n_files = 0, label_bytes;
    snprintf(paths[0], sizeof paths[0], "%s/%s", dir, train ? "train.bin" : "test.bin");
    if (exists(paths[0])) { /* CIFAR-100: coarse and fine labels */
        n_files = 1;
        label_bytes = 2;
    } else {
        label_bytes = 1;
        if (train)
            for (n_files = 0; n_files < 5; n_files++) snprintf(paths[n_files], sizeof paths[0], "%s/data_batch_%d.bin", dir, n_files + 1);
        else
            snprintf(paths[n_files++], sizeof paths[0], "%s/test_batch.bin", dir);
    }
    snprintf(ds->source, sizeof ds->source, "%.511s", paths[0]);
    int64_t rec = label_bytes + CIFAR_PIXELS, total = 0, sizes[5];
    for (int i = 0; i < n_files; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            NB_FAIL(ctx, paths[i], "cannot open: %s\n  hint: data.root must hold CIFAR-10's data_batch_*.bin and "
                                   "test_batch.bin, or CIFAR-100's train.bin and test.bin",
                    strerror(errno));
            return -1;
        }
        if (st.st_size == 0 || st.st_size % rec) {
            NB_FAIL(ctx, paths[i], "is %lld bytes, not a whole number of %lld-byte CIFAR records (truncated?)",
                    (long long)st.st_size, (long long)rec);
            return -1;
        }
        sizes[i] = st.st_size / rec;
        total += sizes[i];
    }
    int64_t n = limit > 0 && limit < total ? limit : total;
    ds->n = n;
    ds->c = 3;
    ds->h = ds->w = 32;
    ds->dtype = NB_U8;
    ds->images = nb_xmalloc((size_t)n * CIFAR_PIXELS);
    ds->labels = nb_xmalloc(sizeof(int64_t) * (size_t)n);
    unsigned char *buf = nb_xmalloc((size_t)rec);
    int64_t k = 0;
    for (int i = 0; i < n_files && k < n; i++) {
        FILE *f = fopen(paths[i], "rb");
        for (int64_t j = 0; j < sizes[i] && k < n; j++, k++) {
            if (!f || fread(buf, 1, (size_t)rec, f) != (size_t)rec) {
                NB_FAIL(ctx, paths[i], "read failed at record %lld", (long long)j);
                if (f) fclose(f);
                free(buf);
                nb_dataset_free(ds);
                return -1;
            }
            ds->labels[k] = buf[label_bytes - 1];
            if (ds->labels[k] > ds->max_label) ds->max_label = ds->labels[k];
            memcpy((unsigned char *)ds->images + (size_t)k * CIFAR_PIXELS, buf + label_bytes, CIFAR_PIXELS);
        }
        if (f) fclose(f);
    }
    free(buf);
    return 0;
}
