/* Runs any op of core/op_table.h by name on named inputs with attributes read from a fixture group, so the
 * PyTorch-parity test and the finite-difference test drive every op through the one op table. */
#ifndef NB_OP_HARNESS_H
#define NB_OP_HARNESS_H

#include <hdf5.h>

#include "core/tape.h"
#include "core/tensor.h"

#define OH_MAX_IN 8

typedef struct {
    nb_op id;
    const char *op;
    int n_in;
    const char *names[OH_MAX_IN]; /* input dataset names, in call order ("x0".."xN" for concat) */
    /* attributes */
    int stride[2], pad[2], dilation[2], groups, kernel[2], ceil_mode, exclude_pad, axis, training, n, relu, qmin, qmax;
    int64_t start, len, shape[6];
    int shape_nd;
    float momentum, eps, alpha, beta, label_smoothing, temperature, grad_factor;
} oh_spec;

/* Fill spec's input names and defaults for `op`; 0 on success, -1 for an unknown op or one the harness does
 * not call (multibox_loss and relayout, tested on their own). */
int oh_spec_for(const char *op, oh_spec *s);
/* Read the attributes of a fixture case group into spec. */
void oh_read_attrs(hid_t group, oh_spec *s);
/* Run the op on in[0..n_in). */
nb_tensor *oh_run(const oh_spec *s, nb_tensor **in);

#endif
