/* Element types a tensor can hold: f32 for training, bf16 for the activations of mixed-precision training
 * (train.precision), the integer types for labels and quantized artefacts. */
#ifndef NB_DTYPE_H
#define NB_DTYPE_H

#include <stddef.h>

typedef enum {
    NB_F32 = 0,
    NB_I8,
    NB_U8,
    NB_I32,
    NB_I64,
    NB_BF16, /* bfloat16: float32's exponent, 8 bits of mantissa; held as uint16_t (core/bf16.h converts) */
    NB_DTYPE_COUNT
} nb_dtype;

size_t nb_dtype_size(nb_dtype t);
const char *nb_dtype_name(nb_dtype t);
/* f32 or bf16: a type activations and gradients can have */
static inline int nb_dtype_is_float(nb_dtype t) { return t == NB_F32 || t == NB_BF16; }

#endif
