/* Element types a tensor can hold: f32 for training, the integer types for labels and quantized artefacts. */
#ifndef NB_DTYPE_H
#define NB_DTYPE_H

#include <stddef.h>

typedef enum {
    NB_F32 = 0,
    NB_I8,
    NB_U8,
    NB_I32,
    NB_I64,
    NB_DTYPE_COUNT
} nb_dtype;

size_t nb_dtype_size(nb_dtype t);
const char *nb_dtype_name(nb_dtype t);

#endif
