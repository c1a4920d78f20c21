/* Reading a whole checkpoint into one byte string for bit-for-bit comparisons (see ckpt_bytes.h). */
#include "tests/support/ckpt_bytes.h"

#include <hdf5.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static herr_t append_dataset(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
    /* the wall-clock time differs between any two runs, whatever they computed */
    if (info->type != H5O_TYPE_DATASET || strstr(name, "seconds")) return 0;
    ckpt_bytes *b = data;
    hid_t d = H5Dopen2(obj, name, H5P_DEFAULT), t = H5Dget_type(d), sp = H5Dget_space(d);
    size_t sz = (size_t)H5Sget_simple_extent_npoints(sp) * H5Tget_size(t), nl = strlen(name) + 1;
    if (b->len + nl + sz > b->cap) {
        b->cap = (b->len + nl + sz) * 2;
        b->buf = realloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->len, name, nl);
    b->len += nl;
    H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, b->buf + b->len);
    b->len += sz;
    H5Sclose(sp);
    H5Tclose(t);
    H5Dclose(d);
    return 0;
}

ckpt_bytes ckpt_bytes_read(const char *path) {
    ckpt_bytes b = {0};
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("cannot open %s", path);
    H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, append_dataset, &b);
    H5Fclose(f);
    return b;
}
