/* Containing libhdf5's own faults on files from elsewhere: before nibble opens an HDF5 file it did not just
 * write, a child process walks it with libhdf5 (links, attributes, dataspaces, types and data within a
 * budget), so that a malformed file on which libhdf5 crashes or loops is refused with a message rather than
 * taking nibble down (fuzz/README.md has the files that do). */
#ifndef NB_H5_PROBE_H
#define NB_H5_PROBE_H

#include "core/context.h"

/* 0 when libhdf5 walked path to its end; -1 after reporting a crash, a failure or a walk that ran past its
 * time (NB_H5_PROBE_SECONDS, or 20 s and 1 s per 25 MB). what names the kind of file ("checkpoint"). */
int nb_h5_probe(nb_ctx *ctx, const char *path, const char *what);

#endif
