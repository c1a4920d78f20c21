/* The deterministic weights shared with scripts/gen_model_fixtures.py: element i of the tensor named `name`
 * comes from splitmix64(fnv1a64(name) + i), scaled by the tensor's role, so a model's parameters can be set
 * identically in PyTorch and in nibble without storing them. */
#ifndef NB_DET_WEIGHTS_H
#define NB_DET_WEIGHTS_H

#include <stdint.h>

#include "layers/params.h"

/* Fill dst (n values of a tensor of this name and shape, row-major) by the shared rule. */
void dw_values(const char *name, int ndim, const int64_t *shape, float *dst);
/* Every f32 parameter and buffer of ps (the i64 batch counters are left alone). 0 on success. */
int dw_fill_params(nb_params *ps);

#endif
