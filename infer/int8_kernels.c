/* Requantizing kernels of nibble's integer inference (see int8_kernels.h), parallel over images and pixels.
 *
 * Each kernel's loop is written once as an always-inline body over its input and output signedness and
 * instantiated for every combination inside the parallel region, so that the compiler sees constant types and
 * vectorizes it (one loop with a branch on the type per element did not, and ran 10x slower than its float
 * counterpart). Rounding half to even is the float trick (v + 1.5 * 2^23) - 1.5 * 2^23, exact for |v| < 2^22
 * and vectorized with the base x86-64 instruction set, where nearbyintf is a library call per element; the
 * value is first clamped to the grid's integer bounds, which commutes with rounding. */
#include "infer/int8_kernels.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float round_even(float v) {
    const float m = 12582912.0f; /* 1.5 * 2^23: the sum has no fraction bits left (the pair is not folded away
                                    without -ffast-math, which the build does not use) */
    return (v + m) - m;
}

INLINE float load(const void *p, bool s8, int64_t i) {
    return s8 ? (float)((const int8_t *)p)[i] : (float)((const uint8_t *)p)[i];
}

/* q: an integer-valued float within the grid */
INLINE void store(void *p, bool s8, int64_t i, float q) {
    if (s8) ((int8_t *)p)[i] = (int8_t)(int32_t)q;
    else ((uint8_t *)p)[i] = (uint8_t)(int32_t)q;
}

/* v clamped to [lo, hi] (integers) and rounded half to even */
INLINE float onto(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return round_even(v);
}

/* this thread's share [*from, *to) of count items, in static chunks */
static void share(int64_t count, int64_t *from, int64_t *to) {
    int t = omp_get_thread_num(), n = omp_get_num_threads();
    int64_t per = (count + n - 1) / n;
    *from = per * t < count ? per * t : count;
    *to = *from + per < count ? *from + per : count;
}

#define QUANTIZE_BLOCK 256 /* pixels quantized plane by plane (vectorized) before they are interleaved */

/* blocks [from, to) of QUANTIZE_BLOCK pixels (over all images) of NCHW x quantized into NHWC y; tmp: c x
 * QUANTIZE_BLOCK floats */
INLINE void quantize_body(const float *x, int64_t c, int64_t hw, int64_t from, int64_t to, float inv, float zero,
                          float lo, float hi, void *y, bool sy, float *tmp) {
    int64_t per = (hw + QUANTIZE_BLOCK - 1) / QUANTIZE_BLOCK;
    for (int64_t b = from; b < to; b++) {
        int64_t i = b / per, p0 = b % per * QUANTIZE_BLOCK, len = hw - p0 < QUANTIZE_BLOCK ? hw - p0 : QUANTIZE_BLOCK;
        for (int64_t k = 0; k < c; k++) {
            const float *xr = x + (i * c + k) * hw + p0;
            float *t = tmp + k * QUANTIZE_BLOCK;
            for (int64_t p = 0; p < len; p++) t[p] = onto(xr[p] * inv, lo, hi) + zero;
        }
        for (int64_t p = 0; p < len; p++)
            for (int64_t k = 0; k < c; k++) store(y, sy, (i * hw + p0 + p) * c + k, tmp[k * QUANTIZE_BLOCK + p]);
    }
}

void nb_i8_quantize(const float *x, int64_t n, int64_t c, int64_t hw, nb_i8_grid g, void *y) {
    float inv = 1.0f / g.scale; /* x * (1 / s), as the simulation's fake quantizer computes x / s */
    /* round(x / s), then the zero point (rounding after adding it would move some ties), on the grid */
    float z = (float)g.zero, lo = (float)g.qmin - z, hi = (float)g.qmax - z;
    bool sy = nb_i8_signed(g);
    int64_t blocks = n * ((hw + QUANTIZE_BLOCK - 1) / QUANTIZE_BLOCK);
#pragma omp parallel
    {
        int64_t from, to;
        share(blocks, &from, &to);
        float *tmp = nb_xmalloc(sizeof(float) * (size_t)(c * QUANTIZE_BLOCK));
        if (sy) quantize_body(x, c, hw, from, to, inv, z, lo, hi, y, true, tmp);
        else quantize_body(x, c, hw, from, to, inv, z, lo, hi, y, false, tmp);
        free(tmp);
    }
}

void nb_i8_dequantize(const void *x, int64_t n, int64_t c, int64_t hw, nb_i8_grid g, float *y) {
    bool s8 = nb_i8_signed(g);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t p = 0; p < hw; p++)
                y[(i * c + k) * hw + p] = (load(x, s8, (i * hw + p) * c + k) - (float)g.zero) * g.scale;
}

/* fmaf(x, y, z) for x an integer of 8 bits and y, z floats: in double the product is exact, and the one rounding
 * of the sum to float is the fused operation's (a second rounding could only matter where the double lands on a
 * float tie, which these operands' widths make vanishingly rare); vectorized with the base instruction set, where
 * fmaf is a library call */
INLINE float fma8(float x, float y, float z) { return (float)((double)x * (double)y + (double)z); }

/* x y + z rounded once: the CPU's fused multiply-add (hw, in a function compiled for it) or fma8 */
INLINE float fused(bool hw, float x, float y, float z) { return hw ? __builtin_fmaf(x, y, z) : fma8(x, y, z); }

INLINE void add_body(const void *a, bool sa, const void *b, bool sb, void *y, bool sy, int64_t from, int64_t to,
                     float ra, float rb, float k, float lo, float hi, bool hw) {
    for (int64_t i = from; i < to; i++)
        store(y, sy, i, onto(fused(hw, load(a, sa, i), ra, fused(hw, load(b, sb, i), rb, k)), lo, hi));
}

/* add_body for the input and output types (bits 0, 1, 2: a, b, y signed) */
INLINE void add_types(int types, const void *a, const void *b, void *y, int64_t from, int64_t to, float ra, float rb,
                      float k, float lo, float hi, bool hw) {
    switch (types) {
    case 0: add_body(a, false, b, false, y, false, from, to, ra, rb, k, lo, hi, hw); break;
    case 1: add_body(a, true, b, false, y, false, from, to, ra, rb, k, lo, hi, hw); break;
    case 2: add_body(a, false, b, true, y, false, from, to, ra, rb, k, lo, hi, hw); break;
    case 3: add_body(a, true, b, true, y, false, from, to, ra, rb, k, lo, hi, hw); break;
    case 4: add_body(a, false, b, false, y, true, from, to, ra, rb, k, lo, hi, hw); break;
    case 5: add_body(a, true, b, false, y, true, from, to, ra, rb, k, lo, hi, hw); break;
    case 6: add_body(a, false, b, true, y, true, from, to, ra, rb, k, lo, hi, hw); break;
    default: add_body(a, true, b, true, y, true, from, to, ra, rb, k, lo, hi, hw); break;
    }
}

static void add_range(int types, const void *a, const void *b, void *y, int64_t from, int64_t to, float ra, float rb,
                      float k, float lo, float hi) {
    add_types(types, a, b, y, from, to, ra, rb, k, lo, hi, false);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* the same for CPUs with AVX2 and FMA (every x86 since 2013): eight lanes and the fused instruction itself */
__attribute__((target("avx2,fma"))) static void add_range_fma(int types, const void *a, const void *b, void *y,
                                                               int64_t from, int64_t to, float ra, float rb, float k,
                                                               float lo, float hi) {
    add_types(types, a, b, y, from, to, ra, rb, k, lo, hi, true);
}
#define HAVE_FMA() (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
#else
#define add_range_fma add_range
#define HAVE_FMA() false
#endif

void nb_i8_add(const void *a, nb_i8_grid ga, const void *b, nb_i8_grid gb, int64_t count, bool relu, nb_i8_grid gy,
               void *y) {
    /* ONNX Runtime's QLinearAdd as its AVX2 kernel computes it (MLAS, qladd_avx2.cpp: what x86 with AVX2 runs):
     * each input's step over the output's, the zero points gathered in one constant, then b and a added to it
     * by two fused multiply-adds. Separate products and sums round differently: one value of 12,800 in a
     * MobileNetV2 block came out a step apart, and the detector's later layers carried it on. */
    float ra = ga.scale / gy.scale, rb = gb.scale / gy.scale;
    float k = (float)gy.zero - (ra * (float)ga.zero + rb * (float)gb.zero);
    /* a ReLU clamps at the output's zero point (zero itself) */
    float lo = relu ? (float)gy.zero : (float)gy.qmin, hi = (float)gy.qmax;
    int types = nb_i8_signed(ga) | nb_i8_signed(gb) << 1 | nb_i8_signed(gy) << 2;
    bool hw = HAVE_FMA();
#pragma omp parallel
    {
        int64_t from, to;
        share(count, &from, &to);
        if (hw) add_range_fma(types, a, b, y, from, to, ra, rb, k, lo, hi);
        else add_range(types, a, b, y, from, to, ra, rb, k, lo, hi);
    }
}

void nb_i8_global_avgpool(const void *x, nb_i8_grid gx, int64_t n, int64_t hw, int64_t c, nb_i8_grid gy, void *y) {
    bool s8 = nb_i8_signed(gx), sy = nb_i8_signed(gy);
    float ratio = gx.scale / (gy.scale * (float)hw); /* ONNX Runtime's QLinearGlobalAveragePool */
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++) {
            int64_t sum = 0; /* exact in integers, then one float product */
            for (int64_t p = 0; p < hw; p++) sum += (int64_t)load(x, s8, (i * hw + p) * c + k) - gx.zero;
            /* rounded steps, then the zero point, then the grid: as ONNX Runtime */
            float q = round_even(fminf(fmaxf((float)sum * ratio, -1e6f), 1e6f)) + (float)gy.zero;
            store(y, sy, i * c + k, fminf(fmaxf(q, (float)gy.qmin), (float)gy.qmax));
        }
}

INLINE void add_zero_body(const int32_t *steps, int64_t from, int64_t to, int32_t zero, int32_t lo, int32_t hi,
                          void *y, bool sy) {
    for (int64_t i = from; i < to; i++) {
        int32_t q = steps[i] + zero;
        q = q < lo ? lo : q > hi ? hi : q;
        if (sy) ((int8_t *)y)[i] = (int8_t)q;
        else ((uint8_t *)y)[i] = (uint8_t)q;
    }
}

void nb_i8_add_zero(const int32_t *steps, int64_t count, nb_i8_grid g, void *y) {
    /* oneDNN saturates its s32 output, so steps + zero cannot overflow (|zero| <= 255) */
    bool sy = nb_i8_signed(g);
#pragma omp parallel
    {
        int64_t from, to;
        share(count, &from, &to);
        if (sy) add_zero_body(steps, from, to, g.zero, g.qmin, g.qmax, y, true);
        else add_zero_body(steps, from, to, g.zero, g.qmin, g.qmax, y, false);
    }
}

static bool same_grid(nb_i8_grid a, nb_i8_grid b) {
    return a.scale == b.scale && a.zero == b.zero && a.qmin == b.qmin && a.qmax == b.qmax;
}

/* One input of a concatenation onto the output's grid: its steps times the ratio of the scales, rounded, the
 * output's zero point added (lo, hi: the output's bounds less its zero point) */
INLINE float concat_requant(float x, nb_i8_grid gx, nb_i8_grid gy, float lo, float hi) {
    return onto((x - (float)gx.zero) * (gx.scale / gy.scale), lo, hi) + (float)gy.zero;
}

void nb_i8_concat(const void *const *parts, const int64_t *channels, const nb_i8_grid *grids, int n, int64_t pixels,
                  bool interleave, nb_i8_grid gy, void *y) {
    int64_t cy = 0;
    for (int j = 0; j < n; j++) cy += channels[j];
    uint8_t *out = y;
    bool sy = nb_i8_signed(gy);
    if (interleave && n == 2 && channels[0] == channels[1] && same_grid(grids[0], gy) && same_grid(grids[1], gy)) {
        /* ShuffleNet's concatenation and shuffle on one grid: both parts in one pass, a byte from each in turn
         * (one loop the compiler vectorizes with unpacks, where a part at a time stores every other byte) */
        const uint8_t *a = parts[0], *b = parts[1];
        int64_t c = channels[0];
#pragma omp parallel for schedule(static)
        for (int64_t p = 0; p < pixels; p++) {
            const uint8_t *ap = a + p * c, *bp = b + p * c;
            uint8_t *dst = out + p * cy;
            for (int64_t k = 0; k < c; k++) {
                dst[2 * k] = ap[k];
                dst[2 * k + 1] = bp[k];
            }
        }
        return;
    }
    for (int j = 0, first = 0; j < n; first += (int)channels[j], j++) {
        const uint8_t *in = parts[j];
        int64_t cj = channels[j];
        bool copy = same_grid(grids[j], gy), sj = nb_i8_signed(grids[j]);
        float lo = (float)(gy.qmin - gy.zero), hi = (float)(gy.qmax - gy.zero);
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
                else store(y, sy, at, concat_requant(load(in, sj, p * cj + k), grids[j], gy, lo, hi));
            }
        }
    }
}

void nb_i8_slice_channels(const void *x, int64_t pixels, int64_t c, int64_t start, int64_t len, void *y) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pixels; p++) memcpy((uint8_t *)y + p * len, (const uint8_t *)x + p * c + start, (size_t)len);
}

void nb_i8_to_nchw(const void *x, int64_t n, int64_t c, int64_t hw, void *y) {
    const uint8_t *xb = x;
    uint8_t *yb = y;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t p = 0; p < hw; p++) yb[(i * c + k) * hw + p] = xb[(i * hw + p) * c + k];
}

/* x (NHWC bytes on gx) dequantized, then quantized onto gy as ONNX Runtime's DequantizeLinear and QuantizeLinear
 * compute it: (x - z) s in float, divided by the output's step, clamped, rounded, its zero point added */
INLINE float requant(float x, float zx, float sx, float sy, float lo, float hi, float zy) {
    return onto(((x - zx) * sx) / sy, lo, hi) + zy;
}

void nb_i8_gather_pixels(const void *x, nb_i8_grid gx, int64_t n, int64_t px_in, int64_t c, const int32_t *src,
                         int64_t px_out, nb_i8_grid gy, void *y) {
    bool copy = same_grid(gx, gy), sx = nb_i8_signed(gx), sy = nb_i8_signed(gy);
    float zx = (float)gx.zero, zy = (float)gy.zero, lo = (float)gy.qmin - zy, hi = (float)gy.qmax - zy;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < px_out; p++) {
            int64_t from = (i * px_in + src[p]) * c, to = (i * px_out + p) * c;
            if (copy) {
                memcpy((uint8_t *)y + to, (const uint8_t *)x + from, (size_t)c);
                continue;
            }
            for (int64_t k = 0; k < c; k++)
                store(y, sy, to + k, requant(load(x, sx, from + k), zx, gx.scale, gy.scale, lo, hi, zy));
        }
}

void nb_i8_concat_rows(const void *const *parts, const int64_t *lens, const nb_i8_grid *grids, int n, int64_t rows,
                       nb_i8_grid gy, void *y) {
    int64_t len = 0;
    for (int j = 0; j < n; j++) len += lens[j];
    bool sy = nb_i8_signed(gy);
    float lo = (float)(gy.qmin - gy.zero), hi = (float)(gy.qmax - gy.zero);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t at = r * len;
        for (int j = 0; j < n; j++) {
            const uint8_t *in = (const uint8_t *)parts[j] + r * lens[j];
            if (same_grid(grids[j], gy)) {
                memcpy((uint8_t *)y + at, in, (size_t)lens[j]);
            } else {
                bool sj = nb_i8_signed(grids[j]);
                for (int64_t k = 0; k < lens[j]; k++) store(y, sy, at + k, concat_requant(load(in, sj, k), grids[j], gy, lo, hi));
            }
            at += lens[j];
        }
    }
}
