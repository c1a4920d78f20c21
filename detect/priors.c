/* Default boxes (see priors.h). */
#include "detect/priors.h"

#include <math.h>

int nb_priors_per_location(const nb_prior_cfg *c, int k) { return 2 + 2 * c->n_ratios[k]; }

static float clip01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

int nb_priors(const nb_prior_cfg *c, nb_cbox *out, int max) {
    int n = 0;
    for (int k = 0; k < c->n_maps; k++) {
        int f = c->map_size[k];
        float s = c->min_size[k] / (float)c->image_size, s2 = sqrtf(s * c->max_size[k] / (float)c->image_size);
        for (int i = 0; i < f; i++)
            for (int j = 0; j < f; j++) {
                float cx = ((float)j + 0.5f) / (float)f, cy = ((float)i + 0.5f) / (float)f;
                nb_cbox b[2 + 2 * NB_PRIOR_RATIOS];
                int m = 0;
                b[m++] = (nb_cbox){cx, cy, s, s};
                b[m++] = (nb_cbox){cx, cy, s2, s2};
                for (int r = 0; r < c->n_ratios[k]; r++) {
                    float q = sqrtf(c->ratios[k][r]);
                    b[m++] = (nb_cbox){cx, cy, s * q, s / q};
                    b[m++] = (nb_cbox){cx, cy, s / q, s * q};
                }
                for (int t = 0; t < m; t++, n++) {
                    if (c->clip) b[t] = (nb_cbox){clip01(b[t].cx), clip01(b[t].cy), clip01(b[t].w), clip01(b[t].h)};
                    if (n < max) out[n] = b[t];
                }
            }
    }
    return n;
}
