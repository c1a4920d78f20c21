/* Dynamic loss scaling (see optim.h): the unscale-and-check after backward and the scale's update rule, both
 * as torch.cuda.amp.GradScaler (its _amp_foreach_non_finite_check_and_unscale_ and _amp_update_scale_). */
#include <math.h>

#include "core/arith.h"
#include "optim/optim.h"

int nb_loss_scale_unscale(const nb_loss_scaler *ls, nb_optim *o, bool *overflow) {
    *overflow = false;
    /* the sum of squares accumulates in double, where the square of any finite f32 is finite: the sum is
     * finite exactly when every element is */
    for (int i = 0; i < o->n && !*overflow; i++) {
        nb_tensor *g = o->slots[i].param->grad;
        double s;
        if (!g) continue;
        if (nb_sum_squares(g, &s)) return -1;
        *overflow = !isfinite(s);
    }
    if (*overflow) {
        nb_optim_zero_grad(o);
        return 0;
    }
    /* GradScaler's inv_scale: the reciprocal in double, rounded once to f32; exact for a power of two */
    float inv = (float)(1.0 / ls->scale);
    for (int i = 0; i < o->n; i++) {
        nb_tensor *g = o->slots[i].param->grad;
        if (g && nb_axpby(g, inv, g, 0.0f)) return -1;
    }
    return 0;
}

void nb_loss_scale_update(nb_loss_scaler *ls, bool overflow) {
    if (overflow) {
        ls->scale *= ls->backoff;
        ls->good = 0;
        ls->skipped++;
        return;
    }
    if (ls->interval > 0 && ++ls->good == ls->interval) {
        /* GradScaler's scale is an f32 tensor: it grows only while it stays finite there */
        if (isfinite((float)(ls->scale * ls->growth))) ls->scale *= ls->growth;
        ls->good = 0;
    }
}
