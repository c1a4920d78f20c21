/* Queries on the deploy graph (see graph.h) that its readers share: the exporters and nibble's inference. */
#include "deploy/graph.h"

int nb_deploy_readers(const nb_deploy_graph *g, const nb_tensor *t, int *out, int max) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k].value == t) {
                if (n < max) out[n] = i;
                n++;
                break;
            }
    return n;
}

bool nb_dconst_selects(const nb_dconst *c, int32_t *idx) {
    if (!c->values || c->ndim != 2) return false;
    int64_t rows = c->dims[0], cols = c->dims[1];
    for (int64_t r = 0; r < rows; r++) {
        int ones = 0;
        for (int64_t q = 0; q < cols; q++) {
            float v = c->values[r * cols + q];
            if (v == 1.0f) {
                if (idx) idx[r] = (int32_t)q;
                ones++;
            } else if (v != 0.0f) {
                return false;
            }
        }
        if (ones != 1) return false;
    }
    return true;
}
