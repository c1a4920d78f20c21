/* Checksummed HDF5 files: nibble's checkpoints carry, in the HDF5 userblock (512 bytes at the start of the file
 * that libhdf5 leaves to the application), a BLAKE2b-256 digest of everything after it. A file damaged in
 * transit or edited after nibble wrote it is refused before libhdf5 parses a byte of it: libhdf5 1.10 trusts
 * its metadata, and some malformed files make it loop for ever (see fuzz/README.md). Files without the
 * userblock (written by h5py, or by nibble before checksums) are read as they are. */
#ifndef NB_H5_CHECKSUM_H
#define NB_H5_CHECKSUM_H

#include "core/context.h"

/* The userblock size to create a checksummed file with (H5Pset_userblock) */
#define NB_H5_USERBLOCK 512

/* Writes the digest of the bytes after the userblock into the userblock of a file image of n bytes (as
 * H5Fget_file_image gives it) */
void nb_h5_seal_image(unsigned char *image, size_t n);
/* The same for the file at path, in place (after an edit of a checkpoint). 0, or -1 after reporting. */
int nb_h5_seal(nb_ctx *ctx, const char *path);
/* 1 when path carries a digest that matches, 0 when it has none, -1 after reporting a mismatch or an
 * unreadable file */
int nb_h5_verify(nb_ctx *ctx, const char *path);

#endif
