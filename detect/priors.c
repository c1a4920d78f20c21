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
        float wh[2 + 2 * NB_PRIOR_RATIOS][2];
        int m = 0;
        wh[m][0] = s, wh[m++][1] = s;
        wh[m][0] = s2, wh[m++][1] = s2;
        for (int r = 0; r < c->n_ratios[k]; r++) {
            float q = sqrtf(c->ratios[k][r]);
            wh[m][0] = s * q, wh[m++][1] = s / q;
            wh[m][0] = s / q, wh[m++][1] = s * q;
        }
        for (int t = 0; t < m; t++)
            for (int i = 0; i < f; i++)
                for (int j = 0; j < f; j++, n++) {
                    nb_cbox b = {((float)j + 0.5f) / (float)f, ((float)i + 0.5f) / (float)f, wh[t][0], wh[t][1]};
                    if (c->clip) b = (nb_cbox){clip01(b.cx), clip01(b.cy), clip01(b.w), clip01(b.h)};
                    if (n < max) out[n] = b;
                }
    }
    return n;
}
