/* The libhdf5 calls beneath the HDF5 readers and the probe (h5_file.h). */
#include "formats/h5_file.h"

hid_t nb_h5_open_quiet(const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported by us, with the file named */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* an error path that leaves a dataset open must not leave the file (and its caches) open too */
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    return f;
}

nb_h5_storage nb_h5_storage_of(hid_t f, hid_t d) {
    hsize_t file_size = 0;
    H5Fget_filesize(f, &file_size);
    hid_t plist = H5Dget_create_plist(d);
    int filters = plist >= 0 ? H5Pget_nfilters(plist) : 0;
    if (plist >= 0) H5Pclose(plist);
    return (nb_h5_storage){.stored = H5Dget_storage_size(d), .file_size = file_size, .filtered = filters > 0};
}

bool nb_h5_storage_holds(const nb_h5_storage *s, uint64_t bytes) {
    uint64_t can_hold = s->filtered ? s->stored * 1100u : s->stored;
    return s->stored <= s->file_size && bytes <= can_hold;
}

bool nb_h5_storage_complete(hid_t d) {
    hid_t plist = H5Dget_create_plist(d), t = H5Dget_type(d), sp = H5Dget_space(d);
    H5D_layout_t layout = plist >= 0 ? H5Pget_layout(plist) : H5D_LAYOUT_ERROR;
    int external = plist >= 0 ? H5Pget_external_count(plist) : -1;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t size = t >= 0 ? H5Tget_size(t) : 0;
    uint64_t stored = H5Dget_storage_size(d);
    bool ok = n >= 0 && size > 0 && external == 0;
    if (ok && (layout == H5D_CONTIGUOUS || layout == H5D_COMPACT)) {
        uint64_t need = (uint64_t)n * size; /* n < 2^63 and size is a type's: no overflow in a sane header */
        ok = (uint64_t)n <= UINT64_MAX / size && (stored >= need || (layout == H5D_CONTIGUOUS && stored == 0));
    } else if (layout != H5D_CHUNKED) {
        ok = false; /* virtual, or unreadable */
    }
    if (plist >= 0) H5Pclose(plist);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    return ok;
}

herr_t nb_h5_dread(hid_t d, hid_t mem_type, hid_t mem_space, hid_t file_space, void *buf) {
    return nb_h5_storage_complete(d) ? H5Dread(d, mem_type, mem_space, file_space, H5P_DEFAULT, buf) : -1;
}
