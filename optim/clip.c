/* Gradient-norm clipping over a set of parameters, as torch.nn.utils.clip_grad_norm_ (L2, eps 1e-6). */
#include <math.h>

#include "core/arith.h"
#include "optim/optim.h"

double nb_clip_grad_norm(nb_tensor *const *params, int n, double max_norm) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        nb_tensor *g = params[i]->grad;
        if (!g) continue;
        double s;
        if (nb_sum_squares(g, &s) != 0) return -1.0;
        total += s;
    }
    double norm = sqrt(total);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        for (int i = 0; i < n; i++) {
            nb_tensor *g = params[i]->grad;
            if (g && nb_axpby(g, (float)coef, g, 0.0f) != 0) return -1.0;
        }
    }
    return norm;
}
