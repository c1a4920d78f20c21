/* Reading HDF5 files that came from elsewhere (checkpoints, data sets, quantization records). libhdf5 trusts
 * a file's own claims about ranks, sizes and storage, so every read through here checks them against what the
 * caller expects before a byte lands in the caller's memory, and libhdf5's own error stack stays quiet: the
 * message is nibble's, naming the file and the dataset. */
#ifndef NB_H5_READ_H
#define NB_H5_READ_H

#include <hdf5.h>
#include <stdint.h>

#include "core/context.h"
#include "formats/h5_file.h"

/* HDF5's own limit on a dataspace's rank: a dims array this long holds any dataset's shape */
#define NB_H5_MAX_RANK H5S_MAX_RANK

/* Opens path read-only, after checking its checksum where it carries one (formats/h5_checksum.h) and after a
 * child process walked it with libhdf5 unharmed (formats/h5_probe.h); every
 * object still open is closed with the file. what names the kind of file in the
 * message ("checkpoint", "data set"). A file id, or -1 after reporting. */
hid_t nb_h5_open(nb_ctx *ctx, const char *path, const char *what);
/* d's rank, its dimensions into dims; -1 when the dataspace cannot be read */
int nb_h5_shape(hid_t d, hsize_t dims[NB_H5_MAX_RANK]);
/* Reads dataset `name` of f (the file at path) as mem_type into buf, which holds n elements: the dataset must
 * have exactly n. 0, or -1 after reporting (absent, another size, unreadable). */
int nb_h5_read_exact(nb_ctx *ctx, const char *path, hid_t f, const char *name, hid_t mem_type, void *buf, int64_t n);
/* Whether dataset d (`name` of f, the file at path) can hold `bytes` of data in what the file stores: no more
 * than the file's size (and no more than 1,100 times it where a filter compresses it, deflate's limit), so
 * that a header claiming a huge dataset is refused before memory is allocated for it. 0, or -1 after
 * reporting. */
int nb_h5_check_stored(nb_ctx *ctx, const char *path, hid_t f, hid_t d, const char *name, uint64_t bytes);

#endif
