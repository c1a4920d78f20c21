/* Learning-curve charts: panels of line series drawn side by side into a PNG, redrawn by the trainer each epoch. */
#ifndef NB_CHART_H
#define NB_CHART_H

#include <stddef.h>

typedef struct {
    const double *x; const double *y; int n;   /* points, x ascending */
    const char *label;                          /* legend text, lowercase ascii */
    unsigned char r, g, b;                      /* line colour */
} nb_series;
typedef struct {
    const char *title;      /* e.g. "loss" */
    const char *xlabel;     /* e.g. "epoch" */
    const nb_series *series; int n_series;
    int percent;            /* 1: y values are fractions 0..1, draw tick labels as percentages */
} nb_panel;
/* Draw the panels side by side (each about 480x360 px) into a PNG at path. Returns 0, or -1 with a message
   in err (naming the path and the reason) when the file cannot be written. */
int nb_chart_write(const char *path, const nb_panel *panels, int n_panels, char *err, size_t errlen);

/* The chart's drawing for other pictures (bin/detect's boxes): an interleaved RGB image of w x h. */
void nb_draw_box(unsigned char *px, int w, int h, int x0, int y0, int x1, int y1, int thick, unsigned char r,
                 unsigned char g, unsigned char b);
/* Text in the 5x7 font, scale pixels per dot, on a filled background rectangle (bg) so it stays legible. */
void nb_draw_label(unsigned char *px, int w, int h, int x, int y, const char *s, int scale, const unsigned char fg[3],
                   const unsigned char bg[3]);
/* Writes the image to path through a temporary file and rename; 0, or -1 with err. */
int nb_png_write_rgb(const char *path, const unsigned char *px, int w, int h, char *err, size_t errlen);

#endif
