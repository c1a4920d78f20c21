/* Round-to-nearest and optimal post-training quantization, per tensor or per output channel. */
#include "compress/ptq.h"

#include <stdlib.h>
#include <string.h>

#include "core/check.h"

double nb_ptq_apply(nb_ctx *ctx, nb_tensor **w, int n, const nb_ptq_spec *spec, nb_ckpt_extra *extra) {
    double err = 0.0, norm = 0.0;
    for (int k = 0; k < n; k++) {
        nb_tensor *t = w[k];
        int64_t total = nb_numel(t), groups = spec->per_channel ? t->shape[0] : 1, per = total / groups;
        float *h = nb_host_copy(t), *alpha = nb_xmalloc(sizeof(float) * (size_t)groups);
        int8_t *q = nb_xmalloc((size_t)(total ? total : 1));
        if (!h) return -1;
        for (int64_t g = 0; g < groups; g++) {
            const float *v = h + g * per;
            alpha[g] = spec->optimal ? nb_project_optimal(&spec->cb, v, per, q + g * per)
                                     : nb_project_round(&spec->cb, v, per, q + g * per);
        }
        for (int64_t i = 0; i < total; i++) {
            float qv = alpha[i / per] * (float)q[i];
            err += ((double)h[i] - qv) * ((double)h[i] - qv);
            norm += (double)h[i] * h[i];
            h[i] = qv;
        }
        nb_tensor *codes = nb_tensor_new(ctx, NB_I8, t->ndim, t->shape), *a = nb_tensor_new(ctx, NB_F32, 1, &groups);
        int rc = !codes || !a || nb_host_store(t, h) || nb_tensor_copy_from_host(codes, q, (size_t)total) ||
                 nb_tensor_copy_from_host(a, alpha, sizeof(float) * (size_t)groups);
        free(h);
        free(q);
        free(alpha);
        if (rc) {
            nb_release(codes);
            nb_release(a);
            return -1;
        }
        nb_ckpt_extra_add(extra, codes, "compress/ptq/codes/%s", t->name);
        nb_ckpt_extra_add(extra, a, "compress/ptq/alpha/%s", t->name);
    }
    return norm > 0 ? err / norm : 0.0;
}

void nb_ptq_release(nb_ckpt_extra *extra) {
    for (int i = 0; i < extra->n; i++) nb_release(extra->items[i].tensor);
    nb_ckpt_extra_free(extra);
}
