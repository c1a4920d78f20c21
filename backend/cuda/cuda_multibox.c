/* The multibox loss on the GPU backend: prediction and target are copied to the host and the CPU's code runs
 * there (backend/cpu/multibox_host.h), then the loss and the gradient go back. Two transfers of the head's
 * output a step; a device version of the per-image mining sort is left for when it shows in a profile. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/multibox_host.h"
#include "backend/cuda/cuda.h"

/* the loss, and up * its gradient into grad when grad is not NULL */
static int run(cuda_backend *be, nb_node *n, float up, float *grad, double *loss) {
    const nb_tensor *pred = n->in[0], *target = n->in[1];
    size_t np = sizeof(float) * (size_t)nb_numel(pred), nt = sizeof(float) * (size_t)nb_numel(target);
    float *hp = malloc(np), *ht = malloc(nt);
    nb_backend *b = &be->base;
    int rc = 0;
    if (!hp || !ht || b->download(b, hp, nb_data(pred), np) || b->download(b, ht, nb_data(target), nt)) {
        NB_FAIL(b->ctx, "multibox_loss", "could not copy %s to the host", NB_SHAPE(pred));
        rc = -1;
    }
    nb_multibox_parts parts;
    if (!rc) {
        *loss = nb_multibox_host(hp, ht, pred->shape[0], pred->shape[2], pred->shape[1] - 4,
                                 n->attr.multibox.neg_pos_ratio, n->attr.multibox.beta, up, grad, &parts);
        if (parts.bad_label) rc = nb_multibox_report(b->ctx, pred, &parts);
        else if (isnan(*loss)) NB_FAIL(b->ctx, "multibox_loss", "out of host memory for %s", NB_SHAPE(pred)), rc = -1;
    }
    free(hp);
    free(ht);
    return rc;
}

int cuda_multibox_forward(cuda_backend *be, nb_node *n) {
    nb_tensor *y = n->out[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    double loss;
    if (run(be, n, 0.0f, NULL, &loss)) return -1;
    float f = (float)loss;
    return be->base.upload(&be->base, nb_data(y), &f, sizeof f);
}

int cuda_multibox_backward(cuda_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    if (!gin[0]) return 0;
    float up;
    if (be->base.download(&be->base, &up, nb_data(gout[0]), sizeof up)) return -1;
    size_t np = sizeof(float) * (size_t)nb_numel(n->in[0]);
    float *g = malloc(np);
    double loss;
    int rc = !g ? -1 : run(be, n, up, g, &loss);
    if (rc == 0) rc = nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) || be->base.upload(&be->base, nb_data(gin[0]), g, np);
    free(g);
    return rc ? -1 : 0;
}
