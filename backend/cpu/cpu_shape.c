/* Channel-broadcast multiply (f32) and channel shuffle (any element type) on plain contiguous tensors. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"


/* y[:, j*g + i] = x[:, i*(C/g) + j]; inverse when `inverse`. Channels move whole, so the element type only
 * sets their size (es bytes). */
static void shuffle(const void *xv, void *yv, size_t es, int64_t N, int64_t C, int64_t HW, int64_t g, int inverse) {
    int64_t cpg = C / g;
    const char *x = xv;
    char *y = yv;
#pragma omp parallel for collapse(2) schedule(static) if (N * C * HW > CPU_PAR_MIN)
    for (int64_t nn = 0; nn < N; nn++) {
        for (int64_t c = 0; c < C; c++) {
            int64_t i = c / cpg, j = c % cpg, c2 = j * g + i;
            const char *src = x + (nn * C + (inverse ? c2 : c)) * HW * (int64_t)es;
            char *dst = y + (nn * C + (inverse ? c : c2)) * HW * (int64_t)es;
            memcpy(dst, src, es * (size_t)HW);
        }
    }
}

int cpu_shape_forward(cpu_backend *be, nb_node *n) {
    (void)be;
    nb_tensor *y = n->out[0], *x = n->in[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    switch (n->op) {
    case NB_OP_CHANNEL_SHUFFLE:
        shuffle(nb_data(x), nb_data(y), nb_dtype_size(x->dtype), x->shape[0], x->shape[1], x->shape[2] * x->shape[3], n->attr.shuffle.groups, 0);
        return 0;
    case NB_OP_MUL_CHANNEL: {
        const nb_tensor *s = n->in[1];
        int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
        const float *xp = nb_data(x), *sp = nb_data(s);
        float *yp = nb_data(y);
        int bcast = s->shape[0] == 1;
#pragma omp parallel for collapse(2) schedule(static) if (N * C * HW > CPU_PAR_MIN)
        for (int64_t i = 0; i < N; i++)
            for (int64_t c = 0; c < C; c++) {
                float v = sp[(bcast ? 0 : i) * C + c];
                const float *xr = xp + (i * C + c) * HW;
                float *yr = yp + (i * C + c) * HW;
                for (int64_t k = 0; k < HW; k++) yr[k] = xr[k] * v;
            }
        return 0;
    }
    default: return -1;
    }
}

int cpu_shape_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    (void)be;
    nb_tensor *gy = gout[0], *x = n->in[0];
    switch (n->op) {
    case NB_OP_CHANNEL_SHUFFLE:
        if (!gin[0]) return 0;
        if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) return -1;
        shuffle(nb_data(gy), nb_data(gin[0]), nb_dtype_size(gy->dtype), x->shape[0], x->shape[1], x->shape[2] * x->shape[3],
                n->attr.shuffle.groups, 1);
        return 0;
    case NB_OP_MUL_CHANNEL: {
        const nb_tensor *s = n->in[1];
        int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
        const float *xp = nb_data(x), *sp = nb_data(s), *g = nb_data(gy);
        int bcast = s->shape[0] == 1;
        if (gin[0]) {
            if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) return -1;
            float *gx = nb_data(gin[0]);
#pragma omp parallel for collapse(2) schedule(static) if (N * C * HW > CPU_PAR_MIN)
            for (int64_t i = 0; i < N; i++)
                for (int64_t c = 0; c < C; c++) {
                    float v = sp[(bcast ? 0 : i) * C + c];
                    for (int64_t k = 0; k < HW; k++) gx[(i * C + c) * HW + k] = g[(i * C + c) * HW + k] * v;
                }
        }
        if (gin[1]) {
            if (nb_out_alloc(gin[1], NB_LAYOUT_PLAIN) != 0) return -1;
            float *gs = nb_data(gin[1]);
            /* per (sample, channel) dot products, then a fixed-order sum over samples when broadcast */
            int64_t rows = bcast ? C : N * C;
#pragma omp parallel for schedule(static) if (N * C * HW > CPU_PAR_MIN)
            for (int64_t r = 0; r < rows; r++) {
                double acc = 0.0;
                for (int64_t i = bcast ? 0 : r / C; i < (bcast ? N : r / C + 1); i++) {
                    int64_t c = bcast ? r : r % C;
                    const float *xr = xp + (i * C + c) * HW, *gr = g + (i * C + c) * HW;
                    for (int64_t k = 0; k < HW; k++) acc += (double)xr[k] * gr[k];
                }
                gs[r] = (float)acc;
            }
        }
        return 0;
    }
    default: return -1;
    }
}
