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
