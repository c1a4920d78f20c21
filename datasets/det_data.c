/* Detection samples and SSD's augmentation (see det_data.h). */
#include "datasets/det_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "datasets/dataset.h"
#include "datasets/image_decode.h"

static float uniform(nb_rng *r, float lo, float hi) { return lo + (hi - lo) * nb_rng_unit(r); }
static bool coin(nb_rng *r) { return nb_rng_below(r, 2) == 1; }

static void rgb_to_hsv(const float *p, float *h, float *s, float *v) {
    float mx = fmaxf(p[0], fmaxf(p[1], p[2])), mn = fminf(p[0], fminf(p[1], p[2])), d = mx - mn;
    *v = mx;
    *s = mx > 0 ? d / mx : 0;
    if (d <= 0) *h = 0;
    else if (mx == p[0]) *h = 60.0f * fmodf((p[1] - p[2]) / d, 6.0f);
    else if (mx == p[1]) *h = 60.0f * ((p[2] - p[0]) / d + 2.0f);
    else *h = 60.0f * ((p[0] - p[1]) / d + 4.0f);
    if (*h < 0) *h += 360.0f;
}

static void hsv_to_rgb(float h, float s, float v, float *p) {
    h = fmodf(h, 360.0f);
    if (h < 0) h += 360.0f;
    float c = v * s, x = c * (1.0f - fabsf(fmodf(h / 60.0f, 2.0f) - 1.0f)), m = v - c, r, g, b;
    int k = (int)(h / 60.0f);
    switch (k) {
    case 0: r = c, g = x, b = 0; break;
    case 1: r = x, g = c, b = 0; break;
    case 2: r = 0, g = c, b = x; break;
    case 3: r = 0, g = x, b = c; break;
    case 4: r = x, g = 0, b = c; break;
    default: r = c, g = 0, b = x; break;
    }
    p[0] = r + m, p[1] = g + m, p[2] = b + m;
}

/* brightness, then contrast before or after saturation and hue; pixels in [0, 255], interleaved RGB */
static void photometric(float *px, int64_t n, nb_rng *r) {
    float delta = coin(r) ? uniform(r, -32, 32) : 0.0f;
    bool contrast_first = coin(r);
    float contrast = coin(r) ? uniform(r, 0.5f, 1.5f) : 1.0f;
    float sat = coin(r) ? uniform(r, 0.5f, 1.5f) : 1.0f, hue = coin(r) ? uniform(r, -18, 18) : 0.0f;
    bool hsv = sat != 1.0f || hue != 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float *p = px + 3 * i;
        for (int c = 0; c < 3; c++) p[c] += delta;
        if (contrast_first)
            for (int c = 0; c < 3; c++) p[c] *= contrast;
        if (hsv) {
            float h, s, v;
            for (int c = 0; c < 3; c++) p[c] = fminf(fmaxf(p[c], 0.0f), 255.0f);
            rgb_to_hsv(p, &h, &s, &v);
            hsv_to_rgb(h + hue, fminf(s * sat, 1.0f), v, p);
        }
        if (!contrast_first)
            for (int c = 0; c < 3; c++) p[c] *= contrast;
        for (int c = 0; c < 3; c++) p[c] = fminf(fmaxf(p[c], 0.0f), 255.0f);
    }
}

typedef struct {
    double x, y, w, h; /* the crop on the canvas, in image pixels (the image sits at 0..W, 0..H) */
} rect;

static float box_iou_rect(nb_box b, rect c) {
    nb_box cb = {(float)c.x, (float)c.y, (float)(c.x + c.w), (float)(c.y + c.h)};
    return nb_box_iou(b, cb);
}

/* SSD's min-IoU crop of the canvas (cx, cy, cw, ch): keeps the objects whose centre falls inside it. Updates
 * *crop and the boxes (still in canvas pixels) and returns the number kept; leaves everything as it was
 * when the drawn mode is "none" or no try succeeds. */
static int random_crop(nb_rng *r, rect canvas, rect *crop, nb_box *boxes, int *cls, int n) {
    static const float modes[6] = {-1.0f, 0.1f, 0.3f, 0.7f, 0.9f, -INFINITY}; /* -1: no crop */
    float min_iou = modes[nb_rng_below(r, 6)];
    *crop = canvas;
    if (min_iou == -1.0f || n == 0) return n;
    for (int t = 0; t < 50; t++) {
        double w = uniform(r, 0.3f, 1.0f) * canvas.w, h = uniform(r, 0.3f, 1.0f) * canvas.h;
        double left = canvas.x + uniform(r, 0.0f, 1.0f) * (canvas.w - w), top = canvas.y + uniform(r, 0.0f, 1.0f) * (canvas.h - h);
        if (h / w < 0.5 || h / w > 2.0) continue;
        rect c = {left, top, w, h};
        float best = 0.0f;
        int inside = 0;
        for (int i = 0; i < n; i++) {
            best = fmaxf(best, box_iou_rect(boxes[i], c));
            double mx = 0.5 * (boxes[i].x1 + boxes[i].x2), my = 0.5 * (boxes[i].y1 + boxes[i].y2);
            inside += mx > left && mx < left + w && my > top && my < top + h;
        }
        if (best < min_iou || inside == 0) continue;
        int k = 0;
        for (int i = 0; i < n; i++) {
            double mx = 0.5 * (boxes[i].x1 + boxes[i].x2), my = 0.5 * (boxes[i].y1 + boxes[i].y2);
            if (!(mx > left && mx < left + w && my > top && my < top + h)) continue;
            nb_box b = boxes[i];
            b.x1 = fmaxf(b.x1, (float)left), b.y1 = fmaxf(b.y1, (float)top);
            b.x2 = fminf(b.x2, (float)(left + w)), b.y2 = fminf(b.y2, (float)(top + h));
            boxes[k] = b;
            cls[k++] = cls[i];
        }
        *crop = c;
        return k;
    }
    return n;
}

/* Bilinear resample of `crop` (canvas pixels; outside the image the fill colour) to S x S, flipped if asked,
 * normalised into planar x. img is interleaved RGB floats in [0, 255]. */
static void resample(const float *img, int W, int H, rect crop, int S, bool flip, bool expanded, const float *fill,
                     const float *mean, const float *std, float *x) {
    double sx = crop.w / S, sy = crop.h / S;
    size_t plane = (size_t)S * S;
    for (int oy = 0; oy < S; oy++) {
        double fy = crop.y + (oy + 0.5) * sy - 0.5;
        int y0 = (int)floor(fy);
        float wy = (float)(fy - y0);
        for (int ox = 0; ox < S; ox++) {
            int tx = flip ? S - 1 - ox : ox;
            double fx = crop.x + (tx + 0.5) * sx - 0.5;
            int x0 = (int)floor(fx);
            float wx = (float)(fx - x0);
            float v[3] = {0, 0, 0};
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++) {
                    int yy = y0 + dy, xx = x0 + dx;
                    float wgt = (dy ? wy : 1 - wy) * (dx ? wx : 1 - wx);
                    if (wgt == 0) continue;
                    /* off the image: the expand step's fill when the image was expanded; otherwise only
                     * the last half pixel at an edge, which takes the edge pixel as a clamped resize does */
                    bool off = yy < 0 || yy >= H || xx < 0 || xx >= W;
                    const float *p;
                    if (off && expanded) {
                        p = fill;
                    } else {
                        int cy = yy < 0 ? 0 : yy >= H ? H - 1 : yy, cx = xx < 0 ? 0 : xx >= W ? W - 1 : xx;
                        p = img + 3 * ((size_t)cy * W + cx);
                    }
                    for (int c = 0; c < 3; c++) v[c] += wgt * p[c];
                }
            for (int c = 0; c < 3; c++) x[c * plane + (size_t)oy * S + ox] = (v[c] / 255.0f - mean[c]) / std[c];
        }
    }
}

int nb_det_sample(const nb_det_data *d, int64_t index, nb_rng *r, bool augment, const float *mean, const float *std,
                  float *x, float *target, nb_det_object *objs, int max_objs, int *n_objs, char *err, size_t errn) {
    const nb_voc_image *vi = &d->voc.images[index];
    int W, H;
    nb_image_file *f = nb_image_open(vi->image, &W, &H, err, errn);
    if (!f) return -1;
    /* evaluation resizes the whole image: a JPEG may decode at a DCT scale that keeps S pixels */
    double need = augment ? 1.0 : fmin(1.0, (double)d->size / (double)(W < H ? W : H));
    nb_image im;
    if (nb_image_decode(f, need, &im, err, errn)) return -1;
    double kx = (double)im.w / W, ky = (double)im.h / H; /* decoded pixels per annotated pixel */
    W = im.w, H = im.h;
    int64_t npx = (int64_t)W * H;
    float *img = nb_xmalloc(sizeof(float) * 3 * (size_t)npx);
    for (int64_t i = 0; i < 3 * npx; i++) img[i] = (float)im.rgb[i];
    nb_image_free(&im);

    int n = 0;
    nb_box *boxes = nb_xmalloc(sizeof(nb_box) * (size_t)(vi->n_objects ? vi->n_objects : 1));
    int *cls = nb_xmalloc(sizeof(int) * (size_t)(vi->n_objects ? vi->n_objects : 1));
    for (int i = 0; i < vi->n_objects; i++) {
        if (vi->objects[i].difficult) continue;
        nb_box b = vi->objects[i].box; /* VOC: 1-based inclusive; SSD's ports train on the 0-based corners */
        boxes[n] = (nb_box){(float)((b.x1 - 1) * kx), (float)((b.y1 - 1) * ky), (float)((b.x2 - 1) * kx),
                            (float)((b.y2 - 1) * ky)};
        cls[n++] = vi->objects[i].cls;
    }
    rect crop = {0, 0, W, H};
    bool flip = false, expanded = false;
    float fill[3];
    for (int c = 0; c < 3; c++) fill[c] = mean[c] * 255.0f;
    if (augment) {
        photometric(img, npx, r);
        rect canvas = {0, 0, W, H};
        if (coin(r) && d->expand_max > 1.0f) {
            float ratio = uniform(r, 1.0f, d->expand_max);
            double cw = W * ratio, ch = H * ratio;
            double left = uniform(r, 0, 1) * (cw - W), top = uniform(r, 0, 1) * (ch - H);
            canvas = (rect){-left, -top, cw, ch}; /* the image stays at 0..W: the canvas moves instead */
            expanded = true;
        }
        n = random_crop(r, canvas, &crop, boxes, cls, n);
        flip = coin(r);
    }
    /* boxes to fractions of the crop, flipped with it; degenerate ones cannot be encoded and go */
    int k = 0;
    for (int i = 0; i < n; i++) {
        nb_box b = {(float)((boxes[i].x1 - crop.x) / crop.w), (float)((boxes[i].y1 - crop.y) / crop.h),
                    (float)((boxes[i].x2 - crop.x) / crop.w), (float)((boxes[i].y2 - crop.y) / crop.h)};
        if (flip) b = (nb_box){1.0f - b.x2, b.y1, 1.0f - b.x1, b.y2};
        b.x1 = fmaxf(b.x1, 0), b.y1 = fmaxf(b.y1, 0), b.x2 = fminf(b.x2, 1), b.y2 = fminf(b.y2, 1);
        if (!(b.x2 - b.x1 > 1e-4f && b.y2 - b.y1 > 1e-4f)) continue;
        boxes[k] = b;
        cls[k++] = cls[i] + 1; /* 0 is the background */
    }
    n = k;
    resample(img, W, H, crop, d->size, flip, expanded, fill, mean, std, x);
    free(img);
    int64_t *conf = nb_xmalloc(sizeof(int64_t) * (size_t)d->n_priors);
    float *loc = nb_xmalloc(sizeof(float) * 4 * (size_t)d->n_priors);
    nb_match(&d->match, d->priors, d->n_priors, boxes, cls, n, conf, loc);
    for (int p = 0; p < d->n_priors; p++) {
        float *t = target + 5 * (size_t)p;
        t[0] = (float)conf[p];
        memcpy(t + 1, loc + 4 * (size_t)p, 4 * sizeof(float));
    }
    if (objs) {
        int m = n < max_objs ? n : max_objs;
        for (int i = 0; i < m; i++) objs[i] = (nb_det_object){cls[i] - 1, boxes[i]};
        *n_objs = m;
    }
    free(conf);
    free(loc);
    free(boxes);
    free(cls);
    return 0;
}

int nb_det_load_image(const char *path, int S, const float *mean, const float *std, float *x, nb_image *full, char *err,
                      size_t errn) {
    int W, H;
    nb_image_file *f = nb_image_open(path, &W, &H, err, errn);
    if (!f || nb_image_decode(f, 1.0, full, err, errn)) return -1;
    int64_t npx = (int64_t)full->w * full->h;
    float *img = nb_xmalloc(sizeof(float) * 3 * (size_t)npx);
    for (int64_t i = 0; i < 3 * npx; i++) img[i] = (float)full->rgb[i];
    float fill[3] = {0, 0, 0};
    resample(img, full->w, full->h, (rect){0, 0, full->w, full->h}, S, false, false, fill, mean, std, x);
    free(img);
    return 0;
}

void nb_det_data_free(nb_det_data *d) {
    if (!d) return;
    nb_voc_free(&d->voc);
    free(d->priors);
    free(d);
}

int nb_dataset_load_voc(nb_ctx *ctx, nb_dataset *ds, const char *root, const char *splits, const char *classes,
                        int size, int64_t limit) {
    memset(ds, 0, sizeof *ds);
    NB_REQUIRE(ctx, root && root[0], -1, "config", "data.format = voc needs data.root (the VOCdevkit directory)");
    nb_det_data *d = nb_xcalloc(1, sizeof *d);
    if (nb_voc_load(ctx, &d->voc, root, splits, classes, limit)) {
        free(d);
        return -1;
    }
    d->size = size;
    d->match = (nb_match_cfg){0.5f, NB_SSD_VAR_CENTER, NB_SSD_VAR_SIZE};
    d->expand_max = 4.0f;
    ds->det = d;
    ds->n = d->voc.n;
    ds->c = 3;
    ds->h = ds->w = size;
    ds->dtype = NB_U8;
    ds->max_label = d->voc.n_classes; /* objects are 1..n_classes; 0 is the background */
    ds->n_classes = d->voc.n_classes;
    ds->classes = nb_xmalloc(sizeof(char *) * (size_t)ds->n_classes);
    for (int c = 0; c < ds->n_classes; c++) ds->classes[c] = strdup(d->voc.classes[c]);
    snprintf(ds->source, sizeof ds->source, "%s/{%s}", root, splits);
    ds->skipped = nb_xcalloc(1, sizeof *ds->skipped);
    ds->skipped->bad = nb_xcalloc((size_t)ds->n, 1);
    pthread_mutex_init(&ds->skipped->mu, NULL);
    if (d->voc.skipped)
        fprintf(stderr, "nibble: note: %lld annotation%s in %s skipped; the first: %s\n", (long long)d->voc.skipped,
                d->voc.skipped == 1 ? "" : "s", ds->source, d->voc.first_skip);
    return 0;
}

void nb_dataset_set_priors(nb_dataset *ds, const nb_cbox *priors, int n, float match_iou, float expand_max) {
    nb_det_data *d = ds->det;
    free(d->priors);
    d->priors = nb_xmalloc(sizeof(nb_cbox) * (size_t)(n ? n : 1));
    memcpy(d->priors, priors, sizeof(nb_cbox) * (size_t)n);
    d->n_priors = n;
    d->match.threshold = match_iou;
    d->expand_max = expand_max;
}
