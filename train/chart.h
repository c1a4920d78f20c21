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

#endif
