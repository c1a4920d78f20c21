/* Arithmetic on tensors where they live, run by the context's backend: what optimizers, initialisers, layers,
 * data-parallel reduction and compression methods need besides the differentiable ops. Code outside core/ and
 * backend/ calls these, never the backend table itself. Element-wise functions work over the physical buffer,
 * so their operands share one shape and layout. Each returns 0, or -1 after reporting through the context. */
#ifndef NB_ARITH_H
#define NB_ARITH_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"
#include "core/tensor.h"

int nb_axpby(nb_tensor *y, float a, const nb_tensor *x, float b); /* y = a*x + b*y */
int nb_mul_inplace(nb_tensor *y, const nb_tensor *x);              /* y = y*x (masks) */
int nb_abs_mul_add(nb_tensor *acc, const nb_tensor *a, const nb_tensor *b); /* acc += |a*b| */

/* Sum of squares in double, in a fixed order (the same bits for any thread count). */
int nb_sum_squares(const nb_tensor *t, double *out);
/* Sum of |x| over the elements with |x| > threshold (all of them when threshold < 0), in double, and their
 * count (count may be NULL). */
int nb_sum_abs(const nb_tensor *t, double threshold, double *sum, int64_t *count);
/* The sign projection of a plain f32 tensor v: codes (plain i8, v's shape) = sign(v) (+1 at 0) where |v| >
 * threshold, else 0; then v = alpha * codes. */
int nb_sign_codes(nb_tensor *v, nb_tensor *codes, double threshold, float alpha);

/* The smallest and largest element (a quantizer's first range). */
int nb_range(const nb_tensor *t, double *lo, double *hi);
/* A batch norm's fold factors per channel, where the tensors live: sf = gamma / sqrt(var + eps) (float32, as
 * torch's ConvBn2d) and inv = 1 / sf, 0 where sf is 0 (a channel whose output is its shift alone). All four
 * plain, of C elements (sf and inv may be [1, C, 1, 1]). */
int nb_bn_fold(nb_tensor *sf, nb_tensor *inv, const nb_tensor *gamma, const nb_tensor *var, float eps);

/* Random initialisation: element i draws from the counter-based stream of spec (core/rng.h). */
int nb_fill_random(nb_tensor *t, const nb_rng_fill *spec);
/* Optimizer updates with torch.optim's order of operations; buf (SGD momentum) may be NULL. */
int nb_sgd_update(const nb_sgd_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *buf);
int nb_adam_update(const nb_adam_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *m, nb_tensor *v);
/* Adds v to every element of an i64 tensor where it lives (batch counters). */
int nb_counter_add(nb_tensor *t, int64_t v);

/* The bytes t's storage holds in its layout (blocked layouts carry padding), and raw copies of them to and
 * from the host: what data-parallel reduction stages through MPI. */
size_t nb_storage_bytes(const nb_tensor *t);
int nb_storage_download(const nb_tensor *t, void *host, size_t bytes);
int nb_storage_upload(nb_tensor *t, const void *host, size_t bytes);

#endif
