/* The libhdf5 calls beneath every reader of HDF5 files from elsewhere (formats/h5_read.h) and beneath the
 * child process that walks such a file first (formats/h5_probe.h): the one way a file is opened, and what a
 * dataset stores, and the read that checks it first. */
#ifndef NB_H5_FILE_H
#define NB_H5_FILE_H

#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>

/* Opens path read-only, with libhdf5's error stack quiet and every object still open closed with the file; -1
 * when it cannot be opened. Every open of a file goes through here (nb_h5_open after its checks): libhdf5
 * refuses to open a file twice with different close degrees. */
hid_t nb_h5_open_quiet(const char *path);

/* What dataset d of file f stores, and whether that can hold `bytes` of data: no more than the file's size,
 * and no more than 1,100 times it where a filter compresses it (deflate's limit) */
typedef struct {
    uint64_t stored, file_size;
    bool filtered; /* a filter compresses it */
} nb_h5_storage;
nb_h5_storage nb_h5_storage_of(hid_t f, hid_t d);
bool nb_h5_storage_holds(const nb_h5_storage *s, uint64_t bytes);

/* Whether libhdf5 can read every element of d from what the file stores: a contiguous layout holds them all
 * (or none yet: libhdf5 then gives the fill value), a compact one holds them all, a chunked one is read chunk
 * by chunk within the chunks' own sizes. libhdf5 1.10 trusts the layout's size: a contiguous or compact
 * dataset that stores fewer bytes than its dataspace needs is read past its buffer (fuzz/regress/checkpoint,
 * fuzz/regress/hdf5_data). A virtual dataset or one in external files (data read from other files on this
 * machine) is never read from a file from elsewhere. */
bool nb_h5_storage_complete(hid_t d);
/* H5Dread, for the readers of files from elsewhere: -1 without reading when !nb_h5_storage_complete(d) */
herr_t nb_h5_dread(hid_t d, hid_t mem_type, hid_t mem_space, hid_t file_space, void *buf);

#endif
