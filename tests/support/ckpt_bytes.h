/* A checkpoint's content as one byte string (every dataset's name and raw bytes, in name order, except the
 * wall-clock seconds), so resume tests can demand bit-for-bit equality of two runs' checkpoints. */
#ifndef NB_CKPT_BYTES_H
#define NB_CKPT_BYTES_H

#include <stddef.h>

typedef struct {
    char *buf;
    size_t len, cap;
} ckpt_bytes;

/* Fails the current cmocka test when the file cannot be opened. Free with free(b.buf). */
ckpt_bytes ckpt_bytes_read(const char *path);

#endif
