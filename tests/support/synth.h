/* Small synthetic image datasets the tests write for themselves: idx (raw or gzip) and HDF5, with a class
 * signal a network can learn (a bright bar whose position depends on the class) under noise. */
#ifndef NB_SYNTH_H
#define NB_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

/* Writes <dir>/<prefix>-images-idx3-ubyte[.gz] and <dir>/<prefix>-labels-idx1-ubyte[.gz]. */
void synth_write_idx(const char *dir, const char *prefix, int n, int h, int w, int classes, bool gz, uint64_t seed);
/* HDF5 with `images` [n,c,h,w] (uint8 when u8, else float32 in [0,1]) and `labels` [n] int64. */
void synth_write_h5(const char *path, int n, int c, int h, int w, int classes, bool u8, uint64_t seed);
/* The image and label of sample i as synth_write_* store them (uint8 pixels). */
void synth_sample(int i, int c, int h, int w, int classes, uint64_t seed, unsigned char *img, int64_t *label);
/* Truncate a file to `bytes`. */
void synth_truncate(const char *path, long bytes);

#endif
