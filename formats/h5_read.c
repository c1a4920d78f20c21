/* Checked reading of HDF5 files from elsewhere (h5_read.h). */
#include "formats/h5_read.h"

#include "core/check.h"
#include "formats/h5_checksum.h"
#include "formats/h5_probe.h"

hid_t nb_h5_open(nb_ctx *ctx, const char *path, const char *what) {
    if (nb_h5_verify(ctx, path) < 0 || nb_h5_probe(ctx, path, what) < 0) return -1;
    hid_t f = nb_h5_open_quiet(path);
    if (f < 0) NB_FAIL(ctx, path, "cannot open as an HDF5 %s (missing, unreadable, not HDF5, or truncated)", what);
    return f;
}

int nb_h5_shape(hid_t d, hsize_t dims[NB_H5_MAX_RANK]) {
    hid_t sp = H5Dget_space(d);
    if (sp < 0) return -1;
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || nd > NB_H5_MAX_RANK || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) nd = -1;
    H5Sclose(sp);
    return nd;
}

int nb_h5_read_exact(nb_ctx *ctx, const char *path, hid_t f, const char *name, hid_t mem_type, void *buf, int64_t n) {
    hid_t d = H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    if (d < 0) {
        NB_FAIL(ctx, path, "no dataset %s", name);
        return -1;
    }
    hid_t sp = H5Dget_space(d);
    hssize_t got = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    int rc = -1;
    if (got != n)
        NB_FAIL(ctx, path, "%s has %lld elements; expected %lld", name, (long long)got, (long long)n);
    else if (nb_h5_dread(d, mem_type, H5S_ALL, H5S_ALL, buf) < 0)
        NB_FAIL(ctx, path, "reading %s failed (truncated or corrupt file, or a type that does not convert)", name);
    else
        rc = 0;
    H5Dclose(d);
    return rc;
}

int nb_h5_check_stored(nb_ctx *ctx, const char *path, hid_t f, hid_t d, const char *name, uint64_t bytes) {
    nb_h5_storage s = nb_h5_storage_of(f, d);
    if (!nb_h5_storage_holds(&s, bytes)) {
        NB_FAIL(ctx, path,
                "%s claims %llu bytes of data but the file stores %llu%s in %llu bytes: corrupt, truncated or not "
                "written",
                name, (unsigned long long)bytes, (unsigned long long)s.stored, s.filtered ? " compressed" : "",
                (unsigned long long)s.file_size);
        return -1;
    }
    return 0;
}
