/* Moments of a clipped Gaussian (see gaussian.h). The tail probabilities are each one erfc, not 1 minus the
 * other side's, so that a ReLU's mean is mu Phi(mu / sd) + sd phi(mu / sd) as DFQ writes it. */
#include "compress/gaussian.h"

#include <math.h>

static double Phi(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

double nb_gauss_pdf(double x) { return isinf(x) ? 0.0 : exp(-0.5 * x * x) / sqrt(2.0 * M_PI); }

void nb_censored_gaussian(double mu, double sd, double lo, double hi, double *mean, double *var) {
    if (!(sd > 0)) {
        *mean = fmin(fmax(mu, lo), hi);
        *var = 0;
        return;
    }
    double al = (lo - mu) / sd, be = (hi - mu) / sd;
    double below = isinf(lo) ? 0 : Phi(al), above = isinf(hi) ? 0 : Phi(-be); /* P(X < lo), P(X > hi) */
    double inside = isinf(hi) ? (isinf(lo) ? 1 : Phi(-al)) : (isinf(lo) ? Phi(be) : Phi(be) - below);
    double pa = nb_gauss_pdf(al), pb = nb_gauss_pdf(be);
    double e1 = (isinf(lo) ? 0 : lo * below) + (isinf(hi) ? 0 : hi * above) + mu * inside + sd * (pa - pb);
    double e2 = (isinf(lo) ? 0 : lo * lo * below) + (isinf(hi) ? 0 : hi * hi * above) + (mu * mu + sd * sd) * inside +
                2 * mu * sd * (pa - pb) + sd * sd * ((isinf(lo) ? 0 : al * pa) - (isinf(hi) ? 0 : be * pb));
    *mean = e1;
    *var = fmax(e2 - e1 * e1, 0);
}
