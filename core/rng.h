/* Philox4x32-10, a counter-based generator: the value at (seed, stream, index) is a pure function, so any
 * element can be drawn by any thread and results do not depend on the thread count. */
#ifndef NB_RNG_H
#define NB_RNG_H

#include <stdint.h>

/* The element-wise draws also run inside CUDA kernels (dropout masks), so both sides see the same bits. */
#ifdef __CUDACC__
#define NB_HD __host__ __device__
#else
#define NB_HD
#endif

typedef struct {
    uint32_t v[4];
} nb_philox_block;

/* Four independent 32-bit words for counter block `block` of (seed, stream). */
static inline NB_HD nb_philox_block nb_philox(uint64_t seed, uint64_t stream, uint64_t block) {
    uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    nb_philox_block b = {{c0, c1, c2, c3}};
    return b;
}

/* The 32-bit word at element index i of (seed, stream). */
static inline NB_HD uint32_t nb_philox_u32(uint64_t seed, uint64_t stream, uint64_t i) {
    return nb_philox(seed, stream, i >> 2).v[i & 3];
}

/* Uniform in [0, 1) with 24 bits, exactly representable as float. */
static inline NB_HD float nb_u32_to_unit(uint32_t u) { return (float)(u >> 8) * (1.0f / 16777216.0f); }

/* Standard normal for element i: Box-Muller on the two words of a 64-bit draw at index 2i, 2i+1. */
float nb_philox_normal(uint64_t seed, uint64_t stream, uint64_t i);

/* Element k of an initialiser's draw: uniform in [a, b) (normal = 0) or normal with mean a, std b. Both
 * backends fill on the host with this, so a network starts from the same weights on either. */
float nb_philox_draw(int normal, float a, float b, uint64_t seed, uint64_t stream, uint64_t k);

/* A sequential stream for host-side choices (shuffles, crops): a position along one Philox stream. */
typedef struct {
    uint64_t seed, stream, index;
} nb_rng;

static inline nb_rng nb_rng_make(uint64_t seed, uint64_t stream) {
    nb_rng r = {seed, stream, 0};
    return r;
}
uint32_t nb_rng_u32(nb_rng *r);
float nb_rng_unit(nb_rng *r);                   /* [0, 1) */
uint32_t nb_rng_below(nb_rng *r, uint32_t n);   /* uniform integer in [0, n), unbiased */
void nb_rng_permutation(nb_rng *r, int64_t *out, int64_t n);

#endif
