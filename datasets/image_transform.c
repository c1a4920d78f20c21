/* Crop rectangles and separable antialiased resampling (PIL's bilinear: a triangle filter widened by the
 * downscaling factor, so that shrinking averages every source pixel rather than sampling a few). */
#include "datasets/image_transform.h"

#include <math.h>
#include <stdlib.h>

nb_rect nb_random_resized_crop(nb_rng *r, int w, int h, double scale_lo) {
    double area = (double)w * h, lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (scale_lo + (1.0 - scale_lo) * nb_rng_unit(r));
        double ratio = exp(lr0 + (lr1 - lr0) * nb_rng_unit(r));
        int cw = (int)lround(sqrt(target * ratio)), ch = (int)lround(sqrt(target / ratio));
        if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
            int y = (int)nb_rng_below(r, (uint32_t)(h - ch + 1)), x = (int)nb_rng_below(r, (uint32_t)(w - cw + 1));
            return (nb_rect){x, y, cw, ch};
        }
    }
    double in_ratio = (double)w / h;
    int cw = w, ch = h;
    if (in_ratio < 3.0 / 4.0) ch = (int)lround(w / (3.0 / 4.0));
    else if (in_ratio > 4.0 / 3.0) cw = (int)lround(h * (4.0 / 3.0));
    return (nb_rect){(w - cw) / 2, (h - ch) / 2, cw, ch};
}

nb_rect nb_center_crop(int w, int h, int resize, int size) {
    double f = (double)(w < h ? w : h) / resize; /* source pixels per resized pixel */
    double side = size * f;
    double cw = side < w ? side : w, ch = side < h ? side : h;
    return (nb_rect){(w - cw) / 2.0, (h - ch) / 2.0, cw, ch};
}

nb_rect nb_rect_scale(nb_rect r, int w, int h, int dw, int dh) {
    double sx = (double)dw / w, sy = (double)dh / h;
    return (nb_rect){r.x * sx, r.y * sy, r.w * sx, r.h * sy};
}

typedef struct {
    int *first, *count;
    float *weight; /* count[i] weights from first[i], at i * stride */
    int stride;
} coeffs;

/* Output samples 0..S-1 over the source span [x0, x0 + len) of an axis of n pixels. */
static coeffs make_coeffs(double x0, double len, int S, int n) {
    double scale = len / S, filterscale = scale > 1.0 ? scale : 1.0, support = filterscale;
    coeffs c;
    c.stride = (int)ceil(support) * 2 + 2;
    c.first = malloc(sizeof(int) * (size_t)S);
    c.count = malloc(sizeof(int) * (size_t)S);
    c.weight = malloc(sizeof(float) * (size_t)S * (size_t)c.stride);
    double *wts = malloc(sizeof(double) * (size_t)c.stride);
    for (int i = 0; i < S; i++) {
        double center = x0 + (i + 0.5) * scale;
        int lo = (int)floor(center - support + 0.5), hi = (int)floor(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > n) hi = n;
        if (hi - lo > c.stride) hi = lo + c.stride;
        double total = 0.0;
        int k = 0;
        for (int x = lo; x < hi; x++, k++) {
            double d = fabs((x + 0.5 - center) / filterscale);
            wts[k] = d < 1.0 ? 1.0 - d : 0.0;
            total += wts[k];
        }
        if (total <= 0.0) { /* a span narrower than a pixel: take the nearest one */
            lo = (int)floor(center);
            lo = lo < 0 ? 0 : lo >= n ? n - 1 : lo;
            k = 1;
            wts[0] = total = 1.0;
        }
        c.first[i] = lo;
        c.count[i] = k;
        for (int j = 0; j < k; j++) c.weight[(size_t)i * c.stride + j] = (float)(wts[j] / total);
    }
    free(wts);
    return c;
}

static void free_coeffs(coeffs *c) {
    free(c->first);
    free(c->count);
    free(c->weight);
}

void nb_resample_normalize(const nb_image *im, nb_rect r, int S, bool flip, const float *mean, const float *std,
                           float *out) {
    coeffs cx = make_coeffs(r.x, r.w, S, im->w), cy = make_coeffs(r.y, r.h, S, im->h);
    /* the source rows the vertical pass reads */
    int y0 = im->h, y1 = 0;
    for (int i = 0; i < S; i++) {
        if (cy.first[i] < y0) y0 = cy.first[i];
        if (cy.first[i] + cy.count[i] > y1) y1 = cy.first[i] + cy.count[i];
    }
    if (y1 < y0) y1 = y0;
    /* horizontal pass: rows y0..y1 of the source to S columns, three channels interleaved */
    float *tmp = malloc(sizeof(float) * (size_t)(y1 - y0) * S * 3 + 1);
    for (int y = y0; y < y1; y++) {
        const unsigned char *row = im->rgb + (size_t)y * im->w * 3;
        float *t = tmp + (size_t)(y - y0) * S * 3;
        for (int i = 0; i < S; i++) {
            const float *w = cx.weight + (size_t)i * cx.stride;
            const unsigned char *p = row + (size_t)cx.first[i] * 3;
            float a = 0, b = 0, c = 0;
            for (int k = 0; k < cx.count[i]; k++) {
                a += w[k] * p[3 * k];
                b += w[k] * p[3 * k + 1];
                c += w[k] * p[3 * k + 2];
            }
            t[3 * i] = a;
            t[3 * i + 1] = b;
            t[3 * i + 2] = c;
        }
    }
    /* vertical pass, flip and normalisation into planar output */
    float scale[3], shift[3];
    for (int ch = 0; ch < 3; ch++) {
        scale[ch] = 1.0f / (255.0f * std[ch]);
        shift[ch] = -mean[ch] / std[ch];
    }
    size_t plane = (size_t)S * S;
    for (int j = 0; j < S; j++) {
        const float *w = cy.weight + (size_t)j * cy.stride;
        for (int i = 0; i < S; i++) {
            float acc[3] = {0, 0, 0};
            for (int k = 0; k < cy.count[j]; k++) {
                const float *t = tmp + ((size_t)(cy.first[j] + k - y0) * S + i) * 3;
                acc[0] += w[k] * t[0];
                acc[1] += w[k] * t[1];
                acc[2] += w[k] * t[2];
            }
            int xo = flip ? S - 1 - i : i;
            for (int ch = 0; ch < 3; ch++) out[ch * plane + (size_t)j * S + xo] = acc[ch] * scale[ch] + shift[ch];
        }
    }
    free(tmp);
    free_coeffs(&cx);
    free_coeffs(&cy);
}
