/* bin/plot SPEC OUT.png: line charts from a text spec, drawn with the trainer's chart writer (paper/ plots).
 * The spec: "panel TITLE|XLABEL|percent" (percent: y values are fractions shown as %), then per series
 * "series LABEL R G B" followed by "x y" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/chart.h"

enum { MAX_PANELS = 4, MAX_SERIES = 8, MAX_POINTS = 256 };

typedef struct {
    char label[64];
    unsigned char rgb[3];
    double x[MAX_POINTS], y[MAX_POINTS];
    int n;
} series_buf;

typedef struct {
    char title[96], xlabel[64];
    int percent, n;
    series_buf s[MAX_SERIES];
} panel_buf;

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bin/plot SPEC OUT.png\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        fprintf(stderr, "nibble: error: %s: cannot open\n", argv[1]);
        return 1;
    }
    static panel_buf pb[MAX_PANELS];
    int np = 0, lineno = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        if (!strncmp(line, "panel ", 6) && np < MAX_PANELS) {
            panel_buf *p = &pb[np++];
            char *t = line + 6, *a = strchr(t, '|'), *b = a ? strchr(a + 1, '|') : NULL;
            if (a) *a = 0;
            if (b) *b = 0;
            snprintf(p->title, sizeof p->title, "%.95s", t);
            snprintf(p->xlabel, sizeof p->xlabel, "%.63s", a ? a + 1 : "");
            p->percent = b && !strcmp(b + 1, "percent");
        } else if (!strncmp(line, "series ", 7) && np && pb[np - 1].n < MAX_SERIES) {
            series_buf *s = &pb[np - 1].s[pb[np - 1].n++];
            int r = 0, g = 0, bl = 0;
            if (sscanf(line + 7, "%63s %d %d %d", s->label, &r, &g, &bl) < 1) goto bad;
            s->rgb[0] = (unsigned char)r, s->rgb[1] = (unsigned char)g, s->rgb[2] = (unsigned char)bl;
        } else if (np && pb[np - 1].n) {
            series_buf *s = &pb[np - 1].s[pb[np - 1].n - 1];
            if (s->n >= MAX_POINTS || sscanf(line, "%lf %lf", &s->x[s->n], &s->y[s->n]) != 2) goto bad;
            s->n++;
        } else {
            goto bad;
        }
    }
    fclose(f);
    nb_series series[MAX_PANELS][MAX_SERIES];
    nb_panel panels[MAX_PANELS];
    for (int i = 0; i < np; i++) {
        for (int k = 0; k < pb[i].n; k++)
            series[i][k] = (nb_series){pb[i].s[k].x, pb[i].s[k].y, pb[i].s[k].n, pb[i].s[k].label,
                                       pb[i].s[k].rgb[0], pb[i].s[k].rgb[1], pb[i].s[k].rgb[2]};
        panels[i] = (nb_panel){pb[i].title, pb[i].xlabel, series[i], pb[i].n, pb[i].percent};
    }
    char err[512];
    if (nb_chart_write(argv[2], panels, np, err, sizeof err)) {
        fprintf(stderr, "nibble: error: %s\n", err);
        return 1;
    }
    return 0;
bad:
    fprintf(stderr, "nibble: error: %s:%d: expected 'panel TITLE|XLABEL[|percent]', 'series LABEL R G B' or 'x y'\n",
            argv[1], lineno);
    fclose(f);
    return 1;
}
