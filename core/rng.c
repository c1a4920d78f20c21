/* Derived draws from the Philox generator: normals, bounded integers, permutations. */
#include "core/rng.h"

#include <math.h>

float nb_philox_normal(uint64_t seed, uint64_t stream, uint64_t i) {
    nb_philox_block b = nb_philox(seed, stream, i >> 1);
    int half = (int)(i & 1);
    uint32_t a = b.v[2 * half], c = b.v[2 * half + 1];
    /* u1 in (0, 1] keeps log finite */
    double u1 = ((double)(a >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(c >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

float nb_philox_draw(int normal, float a, float b, uint64_t seed, uint64_t stream, uint64_t k) {
    return normal ? a + b * nb_philox_normal(seed, stream, k) : a + (b - a) * nb_u32_to_unit(nb_philox_u32(seed, stream, k));
}

uint32_t nb_rng_u32(nb_rng *r) { return nb_philox_u32(r->seed, r->stream, r->index++); }

float nb_rng_unit(nb_rng *r) { return nb_u32_to_unit(nb_rng_u32(r)); }

uint32_t nb_rng_below(nb_rng *r, uint32_t n) {
    /* Lemire's multiply-shift with rejection: no modulo bias */
    uint64_t m = (uint64_t)nb_rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (low < t) {
            m = (uint64_t)nb_rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void nb_rng_permutation(nb_rng *r, int64_t *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nb_rng_below(r, (uint32_t)(i + 1));
        int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}
