/* Float kernels of nibble's inference (see float_kernels.h), parallel over images and pixels. */
#include "infer/float_kernels.h"

#include <string.h>

void nb_f32_to_nhwc(const float *x, int64_t n, int64_t c, int64_t hw, float *y) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < hw; p++)
            for (int64_t k = 0; k < c; k++) y[(i * hw + p) * c + k] = x[(i * c + k) * hw + p];
}

void nb_f32_to_nchw(const float *x, int64_t n, int64_t c, int64_t hw, float *y) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t p = 0; p < hw; p++) y[(i * c + k) * hw + p] = x[(i * hw + p) * c + k];
}

void nb_f32_add(const float *a, float alpha, const float *b, float beta, int64_t count, bool relu, bool relu6, float *y) {
    float lo = relu || relu6 ? 0.0f : -__builtin_inff(), hi = relu6 ? 6.0f : __builtin_inff();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < count; i++) {
        float v = alpha * a[i] + beta * b[i];
        v = v < lo ? lo : v;
        y[i] = v > hi ? hi : v;
    }
}

void nb_f32_act(const float *x, int64_t count, bool relu6, float *y) {
    float hi = relu6 ? 6.0f : __builtin_inff();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < count; i++) {
        float v = x[i] < 0.0f ? 0.0f : x[i];
        y[i] = v > hi ? hi : v;
    }
}

void nb_f32_global_avgpool(const float *x, int64_t n, int64_t hw, int64_t c, float *y) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *yi = y + i * c;
        for (int64_t k = 0; k < c; k++) yi[k] = 0.0f;
        for (int64_t p = 0; p < hw; p++) {
            const float *xp = x + (i * hw + p) * c;
            for (int64_t k = 0; k < c; k++) yi[k] += xp[k];
        }
        for (int64_t k = 0; k < c; k++) yi[k] /= (float)hw;
    }
}

void nb_f32_concat(const float *const *parts, const int64_t *channels, int n, int64_t pixels, bool interleave, float *y) {
    int64_t cy = 0;
    for (int j = 0; j < n; j++) cy += channels[j];
    for (int j = 0, first = 0; j < n; first += (int)channels[j], j++) {
        const float *in = parts[j];
        int64_t cj = channels[j];
#pragma omp parallel for schedule(static)
        for (int64_t p = 0; p < pixels; p++) {
            if (!interleave) {
                memcpy(y + p * cy + first, in + p * cj, sizeof(float) * (size_t)cj);
                continue;
            }
            for (int64_t k = 0; k < cj; k++) y[p * cy + k * n + j] = in[p * cj + k];
        }
    }
}

void nb_f32_slice_channels(const float *x, int64_t pixels, int64_t c, int64_t start, int64_t len, float *y) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pixels; p++) memcpy(y + p * len, x + p * c + start, sizeof(float) * (size_t)len);
}

void nb_f32_gather_pixels(const float *x, int64_t n, int64_t px_in, int64_t c, const int32_t *src, int64_t px_out,
                          float *y) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < px_out; p++)
            memcpy(y + (i * px_out + p) * c, x + (i * px_in + src[p]) * c, sizeof(float) * (size_t)c);
}

void nb_f32_concat_rows(const float *const *parts, const int64_t *lens, int n, int64_t rows, float *y) {
    int64_t len = 0;
    for (int j = 0; j < n; j++) len += lens[j];
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t at = r * len;
        for (int j = 0; j < n; at += lens[j], j++) memcpy(y + at, parts[j] + r * lens[j], sizeof(float) * (size_t)lens[j]);
    }
}
