/* Requantizing kernels of nibble's integer inference (see int8_kernels.h), parallel over images and pixels. */
#include "infer/int8_kernels.h"

#include <math.h>
#include <string.h>

static inline int32_t get(const void *p, bool s8, int64_t i) {
    return s8 ? (int32_t)((const int8_t *)p)[i] : (int32_t)((const uint8_t *)p)[i];
}

/* v (in units of the grid's step, before the zero point) rounded half to even onto g and saturated */
static inline void put(void *p, nb_i8_grid g, int64_t i, float steps) {
    float q = nearbyintf(steps) + (float)g.zero;
    q = fminf(fmaxf(q, (float)g.qmin), (float)g.qmax);
    if (nb_i8_signed(g)) ((int8_t *)p)[i] = (int8_t)q;
    else ((uint8_t *)p)[i] = (uint8_t)q;
}

void nb_i8_quantize(const float *x, int64_t n, int64_t c, int64_t hw, nb_i8_grid g, void *y) {
    float inv = 1.0f / g.scale; /* x * (1 / s), as the simulation's fake quantizer computes x / s */
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < hw; p++)
            for (int64_t k = 0; k < c; k++) put(y, g, (i * hw + p) * c + k, x[(i * c + k) * hw + p] * inv);
}

void nb_i8_dequantize(const void *x, int64_t n, int64_t c, int64_t hw, nb_i8_grid g, float *y) {
    bool s8 = nb_i8_signed(g);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t p = 0; p < hw; p++)
                y[(i * c + k) * hw + p] = (float)(get(x, s8, (i * hw + p) * c + k) - g.zero) * g.scale;
}

void nb_i8_add(const void *a, nb_i8_grid ga, const void *b, nb_i8_grid gb, int64_t count, bool relu, nb_i8_grid gy,
               void *y) {
    bool sa = nb_i8_signed(ga), sb = nb_i8_signed(gb);
    /* ONNX Runtime's QLinearAdd: each input's step over the output's, the zero points gathered in one constant */
    float ra = ga.scale / gy.scale, rb = gb.scale / gy.scale;
    float k = (float)gy.zero - ra * (float)ga.zero - rb * (float)gb.zero;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++) {
        float v = ra * (float)get(a, sa, i) + rb * (float)get(b, sb, i) + k; /* on the output grid, zero point in */
        if (relu && v < (float)gy.zero) v = (float)gy.zero;
        float q = fminf(fmaxf(nearbyintf(v), (float)gy.qmin), (float)gy.qmax);
        if (nb_i8_signed(gy)) ((int8_t *)y)[i] = (int8_t)q;
        else ((uint8_t *)y)[i] = (uint8_t)q;
    }
}

void nb_i8_global_avgpool(const void *x, nb_i8_grid gx, int64_t n, int64_t hw, int64_t c, nb_i8_grid gy, void *y) {
    bool s8 = nb_i8_signed(gx);
    float ratio = gx.scale / (gy.scale * (float)hw); /* ONNX Runtime's QLinearGlobalAveragePool */
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++) {
            int64_t sum = 0; /* exact in integers, then one float product */
            for (int64_t p = 0; p < hw; p++) sum += get(x, s8, (i * hw + p) * c + k) - gx.zero;
            put(y, gy, i * c + k, (float)sum * ratio);
        }
}

void nb_i8_add_zero(const int32_t *steps, int64_t count, nb_i8_grid g, void *y) {
    bool s8 = nb_i8_signed(g);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++) {
        int64_t q = (int64_t)steps[i] + g.zero;
        q = q < g.qmin ? g.qmin : q > g.qmax ? g.qmax : q;
        if (s8) ((int8_t *)y)[i] = (int8_t)q;
        else ((uint8_t *)y)[i] = (uint8_t)q;
    }
}

static bool same_grid(nb_i8_grid a, nb_i8_grid b) {
    return a.scale == b.scale && a.zero == b.zero && a.qmin == b.qmin && a.qmax == b.qmax;
}

void nb_i8_concat(const void *const *parts, const int64_t *channels, const nb_i8_grid *grids, int n, int64_t pixels,
                  bool interleave, nb_i8_grid gy, void *y) {
    int64_t cy = 0;
    for (int j = 0; j < n; j++) cy += channels[j];
    uint8_t *out = y;
    for (int j = 0, first = 0; j < n; first += (int)channels[j], j++) {
        const uint8_t *in = parts[j];
        int64_t cj = channels[j];
        bool copy = same_grid(grids[j], gy), sj = nb_i8_signed(grids[j]);
        float ratio = grids[j].scale / gy.scale;
#pragma omp parallel for schedule(static)
        for (int64_t p = 0; p < pixels; p++) {
            const uint8_t *src = in + p * cj;
            uint8_t *dst = out + p * cy;
            if (copy && !interleave) {
                memcpy(dst + first, src, (size_t)cj);
                continue;
            }
            for (int64_t k = 0; k < cj; k++) {
                int64_t at = p * cy + (interleave ? k * n + j : first + k);
                if (copy) out[at] = src[k];
                else put(y, gy, at, (float)(get(in, sj, p * cj + k) - grids[j].zero) * ratio);
            }
        }
    }
}

void nb_i8_slice_channels(const void *x, int64_t pixels, int64_t c, int64_t start, int64_t len, void *y) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pixels; p++) memcpy((uint8_t *)y + p * len, (const uint8_t *)x + p * c + start, (size_t)len);
}
