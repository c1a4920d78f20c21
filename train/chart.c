/* Learning-curve charts: an RGB canvas with clipped line and text drawing, an embedded 5x7 font, nice-number
 * axis ticks, and a libpng writer that replaces the target by rename so a reader never sees a partial file. */
#include "train/chart.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    PANEL_W = 480, PANEL_H = 360, MAX_PANELS = 64, MAX_TICKS = 16,
    TITLE_SCALE = 2, TEXT_SCALE = 1, PLOT_TOP = 36, PLOT_BOTTOM = PANEL_H - 46, MARKER = 7,
};

/* Glyph columns for ASCII 32..126, bit 0 the top row: the classic 5x7 LCD font, with an eighth row added for
 * the descenders of g j p q y so they do not read as capitals. */
static const unsigned char font[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00}, /*  !" */
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62}, /* #$% */
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00}, /* &'( */
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x08, 0x2A, 0x1C, 0x2A, 0x08}, {0x08, 0x08, 0x3E, 0x08, 0x08}, /* )*+ */
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00}, /* ,-. */
    {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00}, /* /01 */
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10}, /* 234 */
    {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03}, /* 567 */
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x66, 0x66, 0x00, 0x00}, /* 89: */
    {0x00, 0xA6, 0x66, 0x00, 0x00}, {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14}, /* ;<= */
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, {0x32, 0x49, 0x79, 0x41, 0x3E}, /* >?@ */
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22}, /* ABC */
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01}, /* DEF */
    {0x3E, 0x41, 0x49, 0x49, 0x7A}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00}, /* GHI */
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40}, /* JKL */
    {0x7F, 0x02, 0x0C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E}, /* MNO */
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46}, /* PQR */
    {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F}, /* STU */
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, {0x63, 0x14, 0x08, 0x14, 0x63}, /* VWX */
    {0x07, 0x08, 0x70, 0x08, 0x07}, {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00}, /* YZ[ */
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00}, {0x04, 0x02, 0x01, 0x02, 0x04}, /* \]^ */
    {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78}, /* _`a */
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, {0x38, 0x44, 0x44, 0x48, 0x7F}, /* bcd */
    {0x38, 0x54, 0x54, 0x54, 0x18}, {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x98, 0xA4, 0xA4, 0xA4, 0x7C}, /* efg */
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x00, 0x80, 0x80, 0x7D, 0x00}, /* hij */
    {0x7F, 0x10, 0x28, 0x44, 0x00}, {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78}, /* klm */
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, {0xFC, 0x24, 0x24, 0x24, 0x18}, /* nop */
    {0x18, 0x24, 0x24, 0x24, 0xFC}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20}, /* qrs */
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C}, /* tuv */
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44}, {0x9C, 0xA0, 0xA0, 0xA0, 0x7C}, /* wxy */
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x7F, 0x00, 0x00}, /* z{| */
    {0x00, 0x41, 0x36, 0x08, 0x00}, {0x10, 0x08, 0x08, 0x10, 0x08},                                 /* }~  */
};

typedef struct { unsigned char r, g, b; } rgb;
typedef struct { int x0, y0, x1, y1; } rect; /* inclusive */
typedef struct { unsigned char *px; int w, h; } canvas;
typedef struct { double lo, hi, step, v[MAX_TICKS]; int n; } axis;

static const rgb WHITE = {255, 255, 255}, GRID = {228, 228, 228}, FRAME = {90, 90, 90}, INK = {30, 30, 30},
                 BORDER = {170, 170, 170};

static int same(rgb a, rgb b) { return a.r == b.r && a.g == b.g && a.b == b.b; }

static rgb get(const canvas *c, int x, int y) {
    const unsigned char *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    return (rgb){p[0], p[1], p[2]};
}

/* Every drawing call takes a clip rect so a series can never paint over the axes of its own or the next panel. */
static void fill(const canvas *c, rect clip, int x0, int y0, int x1, int y1, rgb col) {
    if (clip.x0 < 0) clip.x0 = 0;
    if (clip.y0 < 0) clip.y0 = 0;
    if (clip.x1 > c->w - 1) clip.x1 = c->w - 1;
    if (clip.y1 > c->h - 1) clip.y1 = c->h - 1;
    for (int y = y0 > clip.y0 ? y0 : clip.y0; y <= y1 && y <= clip.y1; y++)
        for (int x = x0 > clip.x0 ? x0 : clip.x0; x <= x1 && x <= clip.x1; x++) {
            unsigned char *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
            p[0] = col.r, p[1] = col.g, p[2] = col.b;
        }
}

/* Bresenham with a square brush of side `thick`. */
static void line(const canvas *c, rect clip, int x0, int y0, int x1, int y1, int thick, rgb col) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        fill(c, clip, x0, y0, x0 + thick - 1, y0 + thick - 1, col);
        if (x0 == x1 && y0 == y1) return;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

static int text_width(const char *s, int scale) {
    int n = (int)strlen(s);
    return n ? (6 * n - 1) * scale : 0;
}

static void text(const canvas *c, rect clip, int x, int y, const char *s, int scale, rgb col) {
    for (; *s; s++, x += 6 * scale) {
        unsigned ch = (unsigned char)*s;
        const unsigned char *g = font[ch >= 32 && ch <= 126 ? ch - 32 : '?' - 32];
        for (int cx = 0; cx < 5; cx++)
            for (int cy = 0; cy < 8; cy++)
                if (g[cx] >> cy & 1)
                    fill(c, clip, x + cx * scale, y + cy * scale, x + (cx + 1) * scale - 1, y + (cy + 1) * scale - 1, col);
    }
}

/* Huge magnitudes are dropped with NaN and Inf so every span and pixel coordinate stays finite. */
static int usable(double v) { return isfinite(v) && fabs(v) < 1e30; }

static int point_ok(const nb_series *s, int i) { return usable(s->x[i]) && usable(s->y[i]); }

static int has_points(const nb_series *s) { return s->n > 0 && s->x && s->y; }

/* Steps of 1, 2 or 5 x 10^k giving the tick count nearest five; integer data (epochs) never gets fractional steps. */
static void nice_ticks(axis *a, int integral) {
    static const double mult[] = {1, 2, 5, 10, 20};
    double mag = pow(10, floor(log10((a->hi - a->lo) / 5)));
    int best_d = -1;
    a->step = 1;
    for (int i = 0; i < 5; i++) {
        double st = mult[i] * mag;
        if (integral && st < 1) continue;
        int d = abs((int)(floor(a->hi / st + 1e-9) - ceil(a->lo / st - 1e-9)) + 1 - 5);
        if (best_d < 0 || d < best_d) best_d = d, a->step = st;
    }
    a->n = 0;
    for (double k = ceil(a->lo / a->step - 1e-9); k * a->step <= a->hi + a->step * 1e-9 && a->n < MAX_TICKS; k++)
        a->v[a->n++] = k * a->step;
}

/* One decimal precision per axis so labels line up: enough digits to tell adjacent ticks apart. */
static void tick_label(char *buf, size_t n, const axis *a, double v, int percent) {
    double scale = percent ? 100 : 1, step = a->step * scale, big = fmax(fabs(a->lo), fabs(a->hi)) * scale;
    v *= scale;
    if (fabs(v) < step * 1e-6) v = 0; /* no "-0" from accumulated rounding */
    if (step < 1e-4 || big >= 1e6) snprintf(buf, n, "%.3g%s", v, percent ? "%" : "");
    else snprintf(buf, n, "%.*f%s", step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9), v, percent ? "%" : "");
}

static void widen_if_flat(double *lo, double *hi) {
    if (*hi - *lo > 1e-9 * fmax(fabs(*lo), fabs(*hi))) return;
    double d = *lo == 0 ? 1 : fabs(*lo) * 0.1;
    *lo -= d, *hi += d;
}

static void panel_ranges(const nb_panel *p, axis *ax, axis *ay) {
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int integral = 1;
    for (int s = 0; s < p->n_series; s++) {
        const nb_series *sr = &p->series[s];
        if (!has_points(sr)) continue;
        for (int i = 0; i < sr->n; i++) {
            if (!point_ok(sr, i)) continue;
            xlo = fmin(xlo, sr->x[i]), xhi = fmax(xhi, sr->x[i]);
            ylo = fmin(ylo, sr->y[i]), yhi = fmax(yhi, sr->y[i]);
            integral &= sr->x[i] == floor(sr->x[i]);
        }
    }
    if (xlo > xhi) xlo = ylo = 0, xhi = yhi = 1, integral = 0;
    widen_if_flat(&xlo, &xhi);
    widen_if_flat(&ylo, &yhi);
    /* the x margin keeps end points and markers off the frame */
    double mx = (xhi - xlo) * 0.03, my = (yhi - ylo) * 0.05;
    *ax = (axis){.lo = xlo - mx, .hi = xhi + mx};
    *ay = (axis){.lo = ylo - my, .hi = yhi + my};
    if (p->percent) {
        ay->lo = fmax(ay->lo, 0), ay->hi = fmin(ay->hi, 1);
        if (ay->hi <= ay->lo) ay->lo = 0, ay->hi = 1; /* all data outside [0, 1] */
    }
    nice_ticks(ax, integral);
    nice_ticks(ay, 0);
}

static int to_px(double v, const axis *a, int p0, int p1) {
    double t = p0 + (v - a->lo) / (a->hi - a->lo) * (p1 - p0);
    return (int)lround(fmax(-1e5, fmin(1e5, t))); /* clamped: clipped points may map far outside */
}

/* Legend goes in the plot corner that covers the fewest data pixels (anything not background or grid). */
static void legend(const canvas *c, rect plot, const nb_panel *p) {
    int rows = 0, tw = 0, row_h = 10 * TEXT_SCALE + 2, pad = 8;
    for (int s = 0; s < p->n_series; s++) {
        const nb_series *sr = &p->series[s];
        if (!has_points(sr) || !sr->label || !*sr->label) continue;
        rows++;
        int w = text_width(sr->label, TEXT_SCALE);
        tw = w > tw ? w : tw;
    }
    if (!rows) return;
    int w = 34 + tw + 8, h = 6 + rows * row_h + 2;
    rect best = {0};
    long best_score = -1;
    for (int corner = 0; corner < 4; corner++) { /* top-right, top-left, bottom-right, bottom-left */
        int x0 = corner & 1 ? plot.x0 + pad : plot.x1 - pad - w, y0 = corner & 2 ? plot.y1 - pad - h : plot.y0 + pad;
        long score = 0;
        for (int y = y0 > plot.y0 ? y0 : plot.y0; y < y0 + h && y <= plot.y1; y++)
            for (int x = x0 > plot.x0 ? x0 : plot.x0; x < x0 + w && x <= plot.x1; x++) {
                rgb px = get(c, x, y);
                score += !same(px, WHITE) && !same(px, GRID);
            }
        if (best_score < 0 || score < best_score) best_score = score, best = (rect){x0, y0, x0 + w - 1, y0 + h - 1};
    }
    /* an oversized legend (long labels, many series) is cut at the plot edge rather than spilling onto the axes */
    rect inner = {best.x0 + 1, best.y0 + 1, best.x1 - 1, best.y1 - 1};
    if (inner.x0 < plot.x0) inner.x0 = plot.x0;
    if (inner.y0 < plot.y0) inner.y0 = plot.y0;
    if (inner.x1 > plot.x1) inner.x1 = plot.x1;
    if (inner.y1 > plot.y1) inner.y1 = plot.y1;
    fill(c, plot, best.x0, best.y0, best.x1, best.y1, BORDER);
    fill(c, inner, best.x0, best.y0, best.x1, best.y1, WHITE);
    int y = best.y0 + 6;
    for (int s = 0; s < p->n_series; s++) {
        const nb_series *sr = &p->series[s];
        if (!has_points(sr) || !sr->label || !*sr->label) continue;
        rgb col = {sr->r, sr->g, sr->b};
        int mid = y + 7 * TEXT_SCALE / 2;
        line(c, inner, best.x0 + 8, mid - 1, best.x0 + 27, mid - 1, 2, col);
        text(c, inner, best.x0 + 34, y, sr->label, TEXT_SCALE, col);
        y += row_h;
    }
}

static void draw_panel(const canvas *c, int ox, const nb_panel *p) {
    axis ax, ay;
    panel_ranges(p, &ax, &ay);
    char ylab[MAX_TICKS][32], xlab[32];
    int lw = 0;
    for (int i = 0; i < ay.n; i++) {
        tick_label(ylab[i], sizeof ylab[i], &ay, ay.v[i], p->percent);
        int w = text_width(ylab[i], TEXT_SCALE);
        lw = w > lw ? w : lw;
    }
    rect panel = {ox, 0, ox + PANEL_W - 1, PANEL_H - 1};
    rect plot = {ox + 16 + lw, PLOT_TOP, ox + PANEL_W - 20, PLOT_BOTTOM};
    rect inside = {plot.x0 + 1, plot.y0 + 1, plot.x1 - 1, plot.y1 - 1};
    int ch = 7 * TEXT_SCALE;

    for (int i = 0; i < ax.n; i++) {
        int x = to_px(ax.v[i], &ax, plot.x0, plot.x1);
        line(c, inside, x, plot.y0, x, plot.y1, 1, GRID);
        line(c, panel, x, plot.y1, x, plot.y1 + 4, 1, FRAME);
        tick_label(xlab, sizeof xlab, &ax, ax.v[i], 0);
        text(c, panel, x - text_width(xlab, TEXT_SCALE) / 2, plot.y1 + 8, xlab, TEXT_SCALE, INK);
    }
    for (int i = 0; i < ay.n; i++) {
        int y = to_px(ay.v[i], &ay, plot.y1, plot.y0);
        line(c, inside, plot.x0, y, plot.x1, y, 1, GRID);
        line(c, panel, plot.x0 - 4, y, plot.x0, y, 1, FRAME);
        text(c, panel, plot.x0 - 7 - text_width(ylab[i], TEXT_SCALE), y - ch / 2, ylab[i], TEXT_SCALE, INK);
    }

    for (int s = 0; s < p->n_series; s++) {
        const nb_series *sr = &p->series[s];
        if (!has_points(sr)) continue;
        rgb col = {sr->r, sr->g, sr->b};
        int px = 0, py = 0, drawn = 0;
        for (int i = 0; i < sr->n; i++) {
            if (!point_ok(sr, i)) continue; /* NaN or Inf: join the neighbours across the gap */
            int x = to_px(sr->x[i], &ax, plot.x0, plot.x1), y = to_px(sr->y[i], &ay, plot.y1, plot.y0);
            if (drawn) line(c, inside, px, py, x, y, 2, col);
            px = x, py = y, drawn++;
        }
        if (drawn == 1)
            fill(c, inside, px - MARKER / 2, py - MARKER / 2, px + MARKER / 2, py + MARKER / 2, col);
    }

    line(c, panel, plot.x0, plot.y0, plot.x1, plot.y0, 1, FRAME);
    line(c, panel, plot.x0, plot.y1, plot.x1, plot.y1, 1, FRAME);
    line(c, panel, plot.x0, plot.y0, plot.x0, plot.y1, 1, FRAME);
    line(c, panel, plot.x1, plot.y0, plot.x1, plot.y1, 1, FRAME);

    int mid = (plot.x0 + plot.x1) / 2;
    if (p->title) text(c, panel, mid - text_width(p->title, TITLE_SCALE) / 2, 10, p->title, TITLE_SCALE, INK);
    if (p->xlabel)
        text(c, panel, mid - text_width(p->xlabel, TEXT_SCALE) / 2, plot.y1 + 14 + ch, p->xlabel, TEXT_SCALE, INK);
    legend(c, inside, p);
}

typedef struct { char msg[200]; } png_failure;

/* libpng reports through longjmp; keep its message for our err instead of letting it print to stderr. */
static void on_png_error(png_structp png, png_const_charp msg) {
    png_failure *f = png_get_error_ptr(png);
    /* libpng's "Write Error" hides the cause; errno was cleared before writing, so it still holds it */
    if (errno) snprintf(f->msg, sizeof f->msg, "%s (%s)", msg, strerror(errno));
    else snprintf(f->msg, sizeof f->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* Returns NULL on success, else the reason (errno text or libpng's message, copied into fail) after removing
 * the partial file; a file that could not be created is left alone, it may be someone else's. */
static const char *write_png(const char *file, const canvas *c, png_failure *fail) {
    FILE *f = fopen(file, "wb");
    if (!f) return strerror(errno);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, fail, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        fclose(f);
        remove(file);
        return "out of memory";
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(file);
        return fail->msg;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    errno = 0;
    png_write_info(png, info);
    for (int y = 0; y < c->h; y++) png_write_row(png, c->px + (size_t)y * (size_t)c->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    /* a full disk often shows up only when the buffered tail is flushed */
    if (ferror(f) | fclose(f)) {
        const char *why = strerror(errno ? errno : EIO);
        remove(file);
        return why;
    }
    return NULL;
}

/* The canvas into tmp, then renamed over path; err names path (after prefix) and the reason. */
static int replace_png(const char *path, const char *tmp, const canvas *c, const char *prefix, char *err, size_t errlen) {
    png_failure fail = {{0}};
    const char *why = write_png(tmp, c, &fail);
    if (why) {
        snprintf(err, errlen, "%s%s: cannot write %s: %s", prefix, path, tmp, why);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s%s: cannot replace it with %s: %s", prefix, path, tmp, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

int nb_chart_write(const char *path, const nb_panel *panels, int n_panels, char *err, size_t errlen) {
    char dummy[1];
    if (!err || !errlen) err = dummy, errlen = sizeof dummy;
    if (!path || !*path) return snprintf(err, errlen, "chart: no output path given"), -1;
    if (!panels || n_panels < 1 || n_panels > MAX_PANELS)
        return snprintf(err, errlen, "chart %s: needs 1 to %d panels, got %d", path, MAX_PANELS, panels ? n_panels : 0), -1;

    canvas c = {.w = PANEL_W * n_panels, .h = PANEL_H};
    size_t len = strlen(path);
    char *tmp = malloc(len + 5);
    c.px = malloc((size_t)c.w * (size_t)c.h * 3);
    if (!tmp || !c.px) {
        free(tmp), free(c.px);
        return snprintf(err, errlen, "chart %s: out of memory for a %dx%d image", path, c.w, c.h), -1;
    }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp", 5);
    memset(c.px, 255, (size_t)c.w * (size_t)c.h * 3);
    for (int i = 0; i < n_panels; i++) draw_panel(&c, i * PANEL_W, &panels[i]);

    int rc = replace_png(path, tmp, &c, "chart ", err, errlen);
    free(tmp);
    free(c.px);
    return rc;
}

void nb_draw_box(unsigned char *px, int w, int h, int x0, int y0, int x1, int y1, int thick, unsigned char r,
                 unsigned char g, unsigned char b) {
    canvas c = {px, w, h};
    rect clip = {0, 0, w - 1, h - 1};
    rgb col = {r, g, b};
    fill(&c, clip, x0, y0, x1, y0 + thick - 1, col);
    fill(&c, clip, x0, y1 - thick + 1, x1, y1, col);
    fill(&c, clip, x0, y0, x0 + thick - 1, y1, col);
    fill(&c, clip, x1 - thick + 1, y0, x1, y1, col);
}

void nb_draw_label(unsigned char *px, int w, int h, int x, int y, const char *s, int scale, const unsigned char fg[3],
                   const unsigned char bg[3]) {
    canvas c = {px, w, h};
    rect clip = {0, 0, w - 1, h - 1};
    fill(&c, clip, x, y, x + text_width(s, scale) + 2 * scale, y + 9 * scale, (rgb){bg[0], bg[1], bg[2]});
    text(&c, clip, x + scale, y + scale, s, scale, (rgb){fg[0], fg[1], fg[2]});
}

int nb_png_write_rgb(const char *path, const unsigned char *px, int w, int h, char *err, size_t errlen) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 5);
    if (!tmp) return snprintf(err, errlen, "%s: out of memory", path), -1;
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp", 5);
    canvas c = {(unsigned char *)px, w, h};
    int rc = replace_png(path, tmp, &c, "", err, errlen);
    free(tmp);
    return rc;
}
