/* Moments of a clipped Gaussian: what data-free quantization knows of an activation from batch-norm statistics
 * (DFQ's bias correction, compress/dfq.c; data-free ranges, compress/bn_ranges.c). */
#ifndef NB_GAUSSIAN_H
#define NB_GAUSSIAN_H

/* The standard normal density at x (0 at an infinite x) */
double nb_gauss_pdf(double x);

/* Mean and variance of clip(X, lo, hi) for X ~ N(mu, sd^2) (a censored Gaussian; lo, hi may be infinite).
 * With lo = 0 and hi = +inf, *mean is E[max(0, X)]. */
void nb_censored_gaussian(double mu, double sd, double lo, double hi, double *mean, double *var);

#endif
