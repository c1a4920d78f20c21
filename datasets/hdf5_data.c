/* Packed HDF5 datasets: `images` [N,C,H,W] or [N,H,W] as uint8 or float32, `labels` [N] as any integer type. */
#include <hdf5.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "datasets/dataset.h"
#include "formats/h5_read.h"

int nb_dataset_load_hdf5(nb_ctx *ctx, nb_dataset *ds, const char *path, int64_t limit) {
    return nb_dataset_load_hdf5_ex(ctx, ds, path, limit, true);
}

int nb_dataset_load_hdf5_ex(nb_ctx *ctx, nb_dataset *ds, const char *path, int64_t limit, bool need_labels) {
    memset(ds, 0, sizeof *ds);
    snprintf(ds->source, sizeof ds->source, "%s", path);
    hid_t f = nb_h5_open(ctx, path, "data set");
    if (f < 0) return -1;
    hid_t di = -1, dl = -1, si = -1, sl = -1, ti = -1;
    int rc = -1;
    bool has_labels = H5Lexists(f, "labels", H5P_DEFAULT) > 0;
    if (H5Lexists(f, "images", H5P_DEFAULT) <= 0 || (need_labels && !has_labels)) {
        NB_FAIL(ctx, path, "needs datasets 'images' and 'labels'");
        goto done;
    }
    di = H5Dopen2(f, "images", H5P_DEFAULT);
    si = di >= 0 ? H5Dget_space(di) : -1;
    ti = di >= 0 ? H5Dget_type(di) : -1;
    hsize_t dims[NB_H5_MAX_RANK], ldims[NB_H5_MAX_RANK] = {0};
    int nd = di >= 0 ? nb_h5_shape(di, dims) : -1, lnd = 1;
    if (si < 0 || ti < 0 || (nd != 3 && nd != 4)) {
        NB_FAIL(ctx, path, "'images' has %d dimensions; expected [N,C,H,W] or [N,H,W]", nd);
        goto done;
    }
    for (int i = 1; i < nd; i++)
        if (dims[i] == 0 || dims[i] > 65536) {
            NB_FAIL(ctx, path, "'images' has an implausible size %llu in dimension %d", (unsigned long long)dims[i], i);
            goto done;
        }
    if (has_labels) {
        dl = H5Dopen2(f, "labels", H5P_DEFAULT);
        sl = dl >= 0 ? H5Dget_space(dl) : -1;
        lnd = dl >= 0 && sl >= 0 ? nb_h5_shape(dl, ldims) : -1;
    } else {
        ldims[0] = dims[0];
    }
    if (lnd != 1 || ldims[0] != dims[0]) {
        NB_FAIL(ctx, path, "'labels' must be [%llu] to match 'images'", (unsigned long long)dims[0]);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(ti);
    size_t esize = H5Tget_size(ti);
    if (cls == H5T_INTEGER && esize == 1) ds->dtype = NB_U8;
    else if (cls == H5T_FLOAT) ds->dtype = NB_F32;
    else {
        NB_FAIL(ctx, path, "'images' must be uint8 or float32");
        goto done;
    }
    bool int_labels = true;
    size_t lsize = 1;
    if (has_labels) {
        hid_t tl = H5Dget_type(dl);
        int_labels = H5Tget_class(tl) == H5T_INTEGER;
        lsize = H5Tget_size(tl);
        H5Tclose(tl);
    }
    if (!int_labels) {
        NB_FAIL(ctx, path, "'labels' must be integers");
        goto done;
    }
    int64_t n = (int64_t)dims[0], keep = limit > 0 && limit < n ? limit : n;
    ds->n = keep;
    ds->c = nd == 4 ? (int)dims[1] : 1;
    ds->h = (int)dims[nd - 2];
    ds->w = (int)dims[nd - 1];
    size_t per = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    size_t el = ds->dtype == NB_U8 ? 1 : 4;
    /* what the header claims must be in the file before memory is set aside for it */
    if (dims[0] > ((uint64_t)1 << 40) / per ||
        nb_h5_check_stored(ctx, path, f, di, "'images'", (uint64_t)dims[0] * per * H5Tget_size(ti)) ||
        (has_labels && nb_h5_check_stored(ctx, path, f, dl, "'labels'", (uint64_t)dims[0] * lsize))) {
        if (dims[0] > ((uint64_t)1 << 40) / per)
            NB_FAIL(ctx, path, "'images' claims %llu samples of %zu values", (unsigned long long)dims[0], per);
        goto done;
    }
    ds->images = nb_xmalloc(el * per * (size_t)(keep ? keep : 1));
    ds->labels = nb_xmalloc(sizeof(int64_t) * (size_t)(keep ? keep : 1));
    /* read the first `keep` samples through a hyperslab, so a limit reads only what it uses */
    hsize_t start[4] = {0, 0, 0, 0}, count[4];
    for (int i = 0; i < nd; i++) count[i] = dims[i];
    count[0] = (hsize_t)keep;
    H5Sselect_hyperslab(si, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t mi = H5Screate_simple(nd, count, NULL);
    herr_t e1 = nb_h5_dread(di, ds->dtype == NB_U8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, mi, si, ds->images);
    H5Sclose(mi);
    herr_t e2 = 0;
    if (has_labels) {
        hsize_t lcount[1] = {(hsize_t)keep};
        H5Sselect_hyperslab(sl, H5S_SELECT_SET, start, NULL, lcount, NULL);
        hid_t ml = H5Screate_simple(1, lcount, NULL);
        e2 = nb_h5_dread(dl, H5T_NATIVE_INT64, ml, sl, ds->labels);
        H5Sclose(ml);
    } else {
        memset(ds->labels, 0, sizeof(int64_t) * (size_t)(keep ? keep : 1));
    }
    if (e1 < 0 || e2 < 0) {
        NB_FAIL(ctx, path, "reading %s failed (truncated or corrupt file)", e1 < 0 ? "'images'" : "'labels'");
        goto done;
    }
    for (int64_t i = 0; i < keep; i++) {
        if (ds->labels[i] < 0) {
            NB_FAIL(ctx, path, "label %lld of sample %lld is negative", (long long)ds->labels[i], (long long)i);
            goto done;
        }
        if (ds->labels[i] > ds->max_label) ds->max_label = ds->labels[i];
    }
    rc = 0;
done:
    if (ti >= 0) H5Tclose(ti);
    if (si >= 0) H5Sclose(si);
    if (sl >= 0) H5Sclose(sl);
    if (di >= 0) H5Dclose(di);
    if (dl >= 0) H5Dclose(dl);
    H5Fclose(f);
    if (rc) nb_dataset_free(ds);
    return rc;
}
