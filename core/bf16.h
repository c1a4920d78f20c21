/* bfloat16 <-> float32 conversions for code that touches bf16 tensors' bytes (backends, tests, host I/O). A
 * bf16 is the upper half of a float32: widening is exact, narrowing rounds to nearest, ties to even, as
 * oneDNN's reorders, PyTorch's .to(torch.bfloat16) and the AVX-512 BF16 instructions do (NaN stays NaN). */
#ifndef NB_BF16_H
#define NB_BF16_H

#include <stdint.h>
#include <string.h>

static inline float nb_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t nb_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, quiet = (u >> 16) | 0x40u; /* quiet NaN, sign kept */
    /* a select rather than an early return, so that loops over it vectorize */
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}

#endif
