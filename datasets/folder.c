/* ImageNet-style folders (torchvision's ImageFolder): class folders in sorted order, their JPEG and PNG files
 * in sorted order (subfolders included, as os.walk), and the decoding of one sample into a crop. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/check.h"
#include "datasets/dataset.h"
#include "datasets/folder.h"
#include "datasets/image_transform.h"

typedef struct {
    char **items;
    int64_t n, cap;
} strlist;

static void push(strlist *l, char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->items = nb_xrealloc(l->items, sizeof(char *) * (size_t)l->cap);
    }
    l->items[l->n++] = s;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool is_image(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    char ext[8] = {0};
    for (int i = 0; i < 7 && dot[1 + i]; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    return !strcmp(ext, "jpg") || !strcmp(ext, "jpeg") || !strcmp(ext, "png");
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Sorted entries of dir (no dot entries); NULL if it cannot be read. */
static char **list_dir(const char *dir, int64_t *n) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    strlist l = {0};
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') push(&l, strdup(e->d_name));
    closedir(d);
    if (l.n) qsort(l.items, (size_t)l.n, sizeof(char *), by_name);
    *n = l.n;
    return l.items ? l.items : nb_xcalloc(1, sizeof(char *));
}

/* Files of a class folder, recursively, in os.walk's sorted order: the folder's files, then its subfolders. */
static void walk(const char *dir, strlist *files) {
    int64_t n;
    char **names = list_dir(dir, &n);
    if (!names) return;
    strlist subdirs = {0};
    for (int64_t i = 0; i < n; i++) {
        char *path = nb_xmalloc(strlen(dir) + strlen(names[i]) + 2);
        sprintf(path, "%s/%s", dir, names[i]);
        if (is_dir(path)) push(&subdirs, path);
        else if (is_image(names[i])) push(files, path);
        else free(path);
        free(names[i]);
    }
    free(names);
    for (int64_t i = 0; i < subdirs.n; i++) {
        walk(subdirs.items[i], files);
        free(subdirs.items[i]);
    }
    free(subdirs.items);
}

int nb_dataset_load_folder(nb_ctx *ctx, nb_dataset *ds, const char *dir, int size, int64_t limit) {
    memset(ds, 0, sizeof *ds);
    snprintf(ds->source, sizeof ds->source, "%s", dir);
    int64_t n_entries;
    char **entries = list_dir(dir, &n_entries);
    if (!entries) {
        NB_FAIL(ctx, dir, "cannot open the image folder: %s\n  hint: data.root must hold train/<class>/*.jpg "
                          "(and val/<class>/...)",
                strerror(errno));
        return -1;
    }
    strlist files = {0}, classes = {0};
    int64_t *labels = NULL, cap = 0;
    for (int64_t i = 0; i < n_entries; i++) {
        char *path = nb_xmalloc(strlen(dir) + strlen(entries[i]) + 2);
        sprintf(path, "%s/%s", dir, entries[i]);
        if (is_dir(path)) {
            int64_t before = files.n;
            walk(path, &files);
            if (files.n > cap) {
                cap = files.n * 2;
                labels = nb_xrealloc(labels, sizeof(int64_t) * (size_t)cap);
            }
            for (int64_t k = before; k < files.n; k++) labels[k] = classes.n;
            push(&classes, entries[i]);
        } else {
            free(entries[i]);
        }
        free(path);
    }
    free(entries);
    if (classes.n == 0 || files.n == 0) {
        NB_FAIL(ctx, dir, "%s\n  hint: an image folder holds one folder per class with .jpg, .jpeg or .png files",
                classes.n ? "holds no JPEG or PNG files in its class folders" : "holds no class folders");
        for (int64_t i = 0; i < files.n; i++) free(files.items[i]);
        for (int64_t i = 0; i < classes.n; i++) free(classes.items[i]);
        free(files.items);
        free(classes.items);
        free(labels);
        return -1;
    }
    if (limit > 0 && limit < files.n) {
        /* every k-th file, so that every class keeps some */
        double step = (double)files.n / (double)limit;
        char **kept = nb_xmalloc(sizeof(char *) * (size_t)limit);
        int64_t next = 0;
        for (int64_t i = 0; i < files.n; i++) {
            if (next < limit && i == (int64_t)(next * step)) {
                labels[next] = labels[i];
                kept[next++] = files.items[i];
            } else {
                free(files.items[i]);
            }
        }
        free(files.items);
        files.items = kept;
        files.n = next;
    }
    ds->n = files.n;
    ds->files = files.items;
    ds->labels = labels;
    ds->classes = classes.items;
    ds->n_classes = (int)classes.n;
    ds->max_label = classes.n - 1;
    ds->c = 3;
    ds->h = ds->w = size;
    ds->skipped = nb_xcalloc(1, sizeof *ds->skipped);
    ds->skipped->bad = nb_xcalloc((size_t)ds->n, 1);
    pthread_mutex_init(&ds->skipped->mu, NULL);
    return 0;
}

int nb_folder_sample(const nb_dataset *ds, int64_t index, const nb_folder_crop *crop, nb_rng *r, float *out, char *err,
                     size_t errn) {
    int w, h;
    nb_image_file *f = nb_image_open(ds->files[index], &w, &h, err, errn);
    if (!f) return -1;
    int S = ds->h;
    nb_rect rect = crop->random_resized ? nb_random_resized_crop(r, w, h, crop->scale_min)
                                        : nb_center_crop(w, h, crop->resize, S);
    /* decode no finer than the crop needs: its shorter side at S pixels */
    double need = (double)S / (rect.w < rect.h ? rect.w : rect.h);
    bool flip = crop->flip && nb_rng_below(r, 2);
    nb_image im;
    if (nb_image_decode(f, need, &im, err, errn)) return -1;
    nb_resample_normalize(&im, nb_rect_scale(rect, w, h, im.w, im.h), S, flip, crop->mean, crop->std, out);
    nb_image_free(&im);
    return 0;
}
