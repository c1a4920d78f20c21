/* Reading compression's codes and scales back from a checkpoint (see qweights.h). */
#include "deploy/qweights.h"

#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "formats/h5_read.h"

static herr_t add_method(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g;
    (void)info;
    nb_qweights *q = data;
    if (q->n_methods < 8 && strlen(name) < sizeof q->methods[0]) strcpy(q->methods[q->n_methods++], name);
    return 0;
}

int nb_qweights_open(nb_ctx *ctx, nb_qweights *q, const char *ckpt) {
    memset(q, 0, sizeof *q);
    snprintf(q->path, sizeof q->path, "%s", ckpt);
    q->file = nb_h5_open(ctx, ckpt, "checkpoint");
    if (q->file < 0) return -1;
    if (H5Lexists(q->file, "compress", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(q->file, "compress", H5P_DEFAULT);
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, add_method, q);
        H5Gclose(g);
    }
    return 0;
}

void nb_qweights_close(nb_qweights *q) {
    if (q->file >= 0) H5Fclose(q->file);
    q->file = -1;
}

/* dataset `path` into a malloc'd buffer of its element count (*n) in mem_type; NULL when absent, or when the
 * file cannot hold what the dataset claims (*n is then -1) */
static void *read_all(hid_t f, const char *path, hid_t mem_type, size_t elem, int64_t *n) {
    if (H5Lexists(f, path, H5P_DEFAULT) <= 0) return NULL;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) return NULL;
    hid_t sp = H5Dget_space(d);
    *n = (int64_t)H5Sget_simple_extent_npoints(sp);
    hsize_t file_size = 0;
    H5Fget_filesize(f, &file_size);
    /* codes and scales are stored uncompressed: never more elements than the file has bytes */
    if (*n < 0 || (uint64_t)*n > file_size || H5Dget_storage_size(d) > file_size) {
        *n = -1;
        H5Sclose(sp);
        H5Dclose(d);
        return NULL;
    }
    void *buf = nb_xmalloc((size_t)(*n ? *n : 1) * elem);
    if (nb_h5_dread(d, mem_type, H5S_ALL, H5S_ALL, buf) < 0) {
        free(buf);
        buf = NULL;
    }
    H5Sclose(sp);
    H5Dclose(d);
    return buf;
}

int nb_qweight_find(nb_ctx *ctx, const nb_qweights *q, const char *name, int64_t n, int64_t channels, nb_qweight *w) {
    memset(w, 0, sizeof *w);
    for (int k = 0; k < q->n_methods; k++) {
        char pc[512], pa[512];
        snprintf(pc, sizeof pc, "compress/%s/codes/%s", q->methods[k], name);
        snprintf(pa, sizeof pa, "compress/%s/alpha/%s", q->methods[k], name);
        int64_t nc = 0, na = 0;
        int8_t *codes = read_all(q->file, pc, H5T_NATIVE_INT8, 1, &nc);
        NB_REQUIRE(ctx, codes || nc >= 0, -1, q->path, "%s: more codes claimed than the file holds (corrupt)", pc);
        if (!codes) continue;
        float *alpha = read_all(q->file, pa, H5T_NATIVE_FLOAT, sizeof(float), &na);
        if (!alpha || nc != n || (na != 1 && na != channels)) {
            free(codes);
            free(alpha);
            NB_FAIL(ctx, q->path, "%s: %lld codes and %lld scales for %s, which has %lld weights in %lld channels",
                    pc, (long long)nc, (long long)na, name, (long long)n, (long long)channels);
            return -1;
        }
        *w = (nb_qweight){.codes = codes, .alpha = alpha, .n = n, .n_alpha = na};
        snprintf(w->method, sizeof w->method, "%s", q->methods[k]);
        return 1;
    }
    return 0;
}

void nb_qweight_free(nb_qweight *w) {
    free(w->codes);
    free(w->alpha);
    memset(w, 0, sizeof *w);
}
