/* Boxes for detection: corner form (x1, y1, x2, y2) and centre form (cx, cy, w, h), intersection over union,
 * and SSD's box encoding against a default box with variances (Liu et al. 2016: 0.1 for the centre, 0.2 for
 * the size). Coordinates are fractions of the image unless said otherwise. */
#ifndef NB_BOXES_H
#define NB_BOXES_H

/* SSD's variances, the one place they are written: the box offsets a detector predicts and the targets it
 * trains on are scaled by them (detect/match.c, detect/decode.c), and export tells deployments (deploy/). */
#define NB_SSD_VAR_CENTER 0.1f
#define NB_SSD_VAR_SIZE 0.2f

typedef struct {
    float x1, y1, x2, y2;
} nb_box;

typedef struct {
    float cx, cy, w, h;
} nb_cbox;

nb_cbox nb_box_center(nb_box b);
nb_box nb_box_corners(nb_cbox c);
float nb_box_area(nb_box b);
float nb_box_iou(nb_box a, nb_box b);

/* SSD's regression target of box b against default box p: ((cx - p.cx) / (v0 p.w), (cy - p.cy) / (v0 p.h),
 * log(w / p.w) / v1, log(h / p.h) / v1); decode is its inverse. */
void nb_box_encode(nb_box b, nb_cbox p, float v0, float v1, float out[4]);
nb_box nb_box_decode(const float t[4], nb_cbox p, float v0, float v1);

#endif
