/* Box geometry and SSD's encoding (see boxes.h). */
#include "detect/boxes.h"

#include <math.h>

nb_cbox nb_box_center(nb_box b) {
    return (nb_cbox){0.5f * (b.x1 + b.x2), 0.5f * (b.y1 + b.y2), b.x2 - b.x1, b.y2 - b.y1};
}

nb_box nb_box_corners(nb_cbox c) {
    return (nb_box){c.cx - 0.5f * c.w, c.cy - 0.5f * c.h, c.cx + 0.5f * c.w, c.cy + 0.5f * c.h};
}

float nb_box_area(nb_box b) {
    float w = b.x2 - b.x1, h = b.y2 - b.y1;
    return w > 0 && h > 0 ? w * h : 0.0f;
}

float nb_box_iou(nb_box a, nb_box b) {
    nb_box i = {fmaxf(a.x1, b.x1), fmaxf(a.y1, b.y1), fminf(a.x2, b.x2), fminf(a.y2, b.y2)};
    float inter = nb_box_area(i), uni = nb_box_area(a) + nb_box_area(b) - inter;
    return uni > 0 ? inter / uni : 0.0f;
}

void nb_box_encode(nb_box b, nb_cbox p, float v0, float v1, float out[4]) {
    nb_cbox c = nb_box_center(b);
    out[0] = (c.cx - p.cx) / (v0 * p.w);
    out[1] = (c.cy - p.cy) / (v0 * p.h);
    out[2] = logf(c.w / p.w) / v1;
    out[3] = logf(c.h / p.h) / v1;
}

nb_box nb_box_decode(const float t[4], nb_cbox p, float v0, float v1) {
    nb_cbox c = {p.cx + t[0] * v0 * p.w, p.cy + t[1] * v0 * p.h, p.w * expf(t[2] * v1), p.h * expf(t[3] * v1)};
    return nb_box_corners(c);
}
