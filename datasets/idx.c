/* MNIST/Fashion-MNIST idx files: a big-endian header (magic 0x00000803 for images with three sizes,
 * 0x00000801 for labels with one) followed by uint8 data; read through zlib so .gz and raw files both work. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/check.h"
#include "datasets/dataset.h"

static uint32_t be32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Read up to n bytes; how many came (fewer at the end of the data or on an error, *zmsg then says which) */
static size_t read_some(gzFile f, void *buf, size_t n, const char **zmsg) {
    size_t got = 0;
    *zmsg = NULL;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, (char *)buf + got, chunk);
        if (r <= 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            if (zerr != Z_OK) *zmsg = msg;
            break;
        }
        got += (size_t)r;
    }
    return got;
}

static void truncated(nb_ctx *ctx, const char *path, size_t n, const char *what, size_t got, const char *zmsg) {
    NB_FAIL(ctx, path, "truncated or corrupt: expected %zu bytes of %s, read %zu%s%s", n, what, got, zmsg ? ": " : "",
            zmsg ? zmsg : "");
}

/* Read exactly n bytes; -1 with an error that says how many were there. */
static int read_all(nb_ctx *ctx, gzFile f, const char *path, void *buf, size_t n, const char *what) {
    const char *zmsg;
    size_t got = read_some(f, buf, n, &zmsg);
    if (got == n) return 0;
    truncated(ctx, path, n, what, got, zmsg);
    return -1;
}

/* Read exactly n bytes into a buffer that grows as they arrive (malloc'd into *out): a header can claim any
 * size, so memory follows the bytes actually there, not the claim (a truncated file fails at its end having
 * allocated about what it holds). */
static int read_grown(nb_ctx *ctx, gzFile f, const char *path, unsigned char **out, size_t n, const char *what) {
    size_t cap = n < ((size_t)1 << 24) ? n : (size_t)1 << 24, got = 0;
    unsigned char *buf = nb_xmalloc(cap);
    while (got < n) {
        if (got == cap) {
            cap = n - cap < cap ? n : 2 * cap;
            buf = nb_xrealloc(buf, cap);
        }
        const char *zmsg;
        size_t r = read_some(f, buf + got, cap - got, &zmsg);
        got += r;
        if (got < cap) {
            free(buf);
            truncated(ctx, path, n, what, got, zmsg);
            return -1;
        }
    }
    *out = buf;
    return 0;
}

static gzFile open_gz(nb_ctx *ctx, const char *path) {
    gzFile f = gzopen(path, "rb");
    if (!f)
        NB_FAIL(ctx, path, "cannot open: %s\n  hint: the default data comes from the Debian package "
                           "dataset-fashion-mnist (scripts/install-deps.sh data)",
                strerror(errno ? errno : ENOENT));
    return f;
}

int nb_idx_labels_path(const char *images, char *out, size_t n) {
    const char *p = strstr(images, "images-idx3");
    if (!p) return -1;
    snprintf(out, n, "%.*slabels-idx1%s", (int)(p - images), images, p + strlen("images-idx3"));
    return 0;
}

int nb_dataset_load_idx(nb_ctx *ctx, nb_dataset *ds, const char *images, const char *labels, int64_t limit) {
    memset(ds, 0, sizeof *ds);
    snprintf(ds->source, sizeof ds->source, "%s", images);
    gzFile fi = open_gz(ctx, images);
    if (!fi) return -1;
    unsigned char h[16];
    if (read_all(ctx, fi, images, h, 16, "idx3 header")) goto fail_i;
    if (be32(h) != 0x00000803) {
        NB_FAIL(ctx, images, "not an idx3 image file: magic 0x%08x, expected 0x00000803", be32(h));
        goto fail_i;
    }
    int64_t n = be32(h + 4), rows = be32(h + 8), cols = be32(h + 12);
    if (n <= 0 || rows <= 0 || cols <= 0 || rows > 65536 || cols > 65536 ||
        n > ((int64_t)1 << 40) / (rows * cols)) {
        NB_FAIL(ctx, images, "implausible idx3 sizes %lld x %lld x %lld", (long long)n, (long long)rows, (long long)cols);
        goto fail_i;
    }
    int64_t keep = limit > 0 && limit < n ? limit : n;
    ds->n = keep;
    ds->c = 1;
    ds->h = (int)rows;
    ds->w = (int)cols;
    ds->dtype = NB_U8;
    if (read_grown(ctx, fi, images, (unsigned char **)&ds->images, (size_t)(keep * rows * cols), "pixels"))
        goto fail_i;
    /* the rest must be there too: a truncated file is an error even when only a prefix is used */
    if (keep < n) {
        char buf[65536];
        size_t left = (size_t)((n - keep) * rows * cols);
        while (left) {
            size_t chunk = left < sizeof buf ? left : sizeof buf;
            if (read_all(ctx, fi, images, buf, chunk, "pixels")) goto fail_i;
            left -= chunk;
        }
    }
    gzclose(fi);

    gzFile fl = open_gz(ctx, labels);
    if (!fl) goto fail;
    if (read_all(ctx, fl, labels, h, 8, "idx1 header")) goto fail_l;
    if (be32(h) != 0x00000801) {
        NB_FAIL(ctx, labels, "not an idx1 label file: magic 0x%08x, expected 0x00000801", be32(h));
        goto fail_l;
    }
    if ((int64_t)be32(h + 4) != n) {
        NB_FAIL(ctx, labels, "has %u labels but %s has %lld images", be32(h + 4), images, (long long)n);
        goto fail_l;
    }
    unsigned char *lab;
    if (read_grown(ctx, fl, labels, &lab, (size_t)n, "labels")) goto fail_l;
    gzclose(fl);
    ds->labels = nb_xmalloc(sizeof(int64_t) * (size_t)keep);
    for (int64_t i = 0; i < keep; i++) {
        ds->labels[i] = lab[i];
        if (lab[i] > ds->max_label) ds->max_label = lab[i];
    }
    free(lab);
    return 0;
fail_l:
    gzclose(fl);
    goto fail;
fail_i:
    gzclose(fi);
fail:
    nb_dataset_free(ds);
    return -1;
}

