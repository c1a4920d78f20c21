/* Sizes and printable names of the element types. */
#include "core/dtype.h"

size_t nb_dtype_size(nb_dtype t) {
    switch (t) {
    case NB_F32: return 4;
    case NB_I8: return 1;
    case NB_U8: return 1;
    case NB_I32: return 4;
    case NB_I64: return 8;
    case NB_BF16: return 2;
    default: return 0;
    }
}

const char *nb_dtype_name(nb_dtype t) {
    switch (t) {
    case NB_F32: return "f32";
    case NB_I8: return "i8";
    case NB_U8: return "u8";
    case NB_I32: return "i32";
    case NB_I64: return "i64";
    case NB_BF16: return "bf16";
    default: return "?";
    }
}
