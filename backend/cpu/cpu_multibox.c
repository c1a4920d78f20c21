/* SSD's multibox loss with hard negative mining (see core/ops.h). Each image is handled on its own (one
 * OpenMP iteration) and the per-image sums are added in image order, so the result does not depend on the
 * thread count. Backward repeats the mining rather than keeping a mask: it is deterministic and cheap next to
 * the network. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/multibox_host.h"

typedef struct {
    double loss;
    int64_t index;
} ranked;

static int by_loss(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->loss != y->loss) return x->loss > y->loss ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static double lse(const float *z, int64_t C) {
    double m = -INFINITY, s = 0.0;
    for (int64_t c = 0; c < C; c++) m = fmax(m, z[c]);
    for (int64_t c = 0; c < C; c++) s += exp((double)z[c] - m);
    return m + log(s);
}

/* marks the chosen priors of one image (positives and mined negatives) in sel; returns #positives */
static int64_t select_priors(const float *pred, const float *target, int64_t P, int64_t C, double ratio,
                             unsigned char *sel, ranked *buf, int64_t *neg_out) {
    int64_t pos = 0, m = 0, D = 4 + C;
    for (int64_t p = 0; p < P; p++) {
        sel[p] = target[p * 5] > 0;
        if (sel[p]) {
            pos++;
        } else {
            const float *z = pred + p * D + 4;
            buf[m++] = (ranked){lse(z, C) - z[0], p};
        }
    }
    int64_t want = (int64_t)floor(ratio * (double)pos);
    if (want > m) want = m;
    if (want > 0) {
        qsort(buf, (size_t)m, sizeof *buf, by_loss);
        for (int64_t k = 0; k < want; k++) sel[buf[k].index] = 1;
    }
    *neg_out = want;
    return pos;
}

static double smooth_l1(double d, double beta) { return fabs(d) < beta ? 0.5 * d * d / beta : fabs(d) - 0.5 * beta; }

static double smooth_l1_grad(double d, double beta) {
    return fabs(d) < beta ? d / beta : (d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0);
}

/* [N, D, P] <-> [N, P, D] */
static void transpose(const float *src, float *dst, int64_t N, int64_t A, int64_t B) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t a = 0; a < A; a++)
            for (int64_t b = 0; b < B; b++) dst[(n * B + b) * A + a] = src[(n * A + a) * B + b];
}

static double multibox_rows(const float *pred, const float *target, int64_t N, int64_t P, int64_t C, double ratio,
                            double beta, float up, float *grad, nb_multibox_parts *parts);

double nb_multibox_host(const float *pred, const float *target, int64_t N, int64_t P, int64_t C, double ratio,
                        double beta, float up, float *grad, nb_multibox_parts *parts) {
    int64_t D = 4 + C;
    float *rows = malloc(sizeof(float) * (size_t)(N * P * D)), *grows = grad ? malloc(sizeof(float) * (size_t)(N * P * D)) : NULL;
    if (!rows || (grad && !grows)) {
        free(rows), free(grows);
        memset(parts, 0, sizeof *parts);
        return NAN;
    }
    transpose(pred, rows, N, D, P);
    double v = multibox_rows(rows, target, N, P, C, ratio, beta, up, grows, parts);
    if (grad && !isnan(v)) transpose(grows, grad, N, P, D);
    free(rows);
    free(grows);
    return v;
}

/* the loss on predictions laid out [N, P, D], one row per default box */
static double multibox_rows(const float *pred, const float *target, int64_t N, int64_t P, int64_t C, double ratio,
                            double beta, float up, float *grad, nb_multibox_parts *parts) {
    memset(parts, 0, sizeof *parts);
    int64_t D = 4 + C;
    for (int64_t i = 0; i < N * P; i++) {
        float c = target[i * 5];
        if (!(c >= 0 && c < (float)C && c == floorf(c))) {
            parts->bad_label = i + 1;
            parts->bad_value = c;
            return NAN;
        }
    }
    double *img_loc = calloc((size_t)N, sizeof(double)), *img_conf = calloc((size_t)N, sizeof(double));
    int64_t *img_pos = calloc((size_t)N, sizeof(int64_t)), *img_neg = calloc((size_t)N, sizeof(int64_t));
    unsigned char *sel_all = malloc((size_t)(N * P));
    ranked *buf_all = malloc(sizeof(ranked) * (size_t)(N * P));
    if (!img_loc || !img_conf || !img_pos || !img_neg || !sel_all || !buf_all) {
        free(img_loc), free(img_conf), free(img_pos), free(img_neg), free(sel_all), free(buf_all);
        return NAN;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *pi = pred + i * P * D, *ti = target + i * P * 5;
        unsigned char *sel = sel_all + i * P;
        img_pos[i] = select_priors(pi, ti, P, C, ratio, sel, buf_all + i * P, &img_neg[i]);
        double sl = 0.0, sc = 0.0;
        for (int64_t p = 0; p < P; p++) {
            if (!sel[p]) continue;
            const float *z = pi + p * D + 4, *t = ti + p * 5;
            int64_t cls = (int64_t)t[0];
            sc += lse(z, C) - z[cls];
            if (cls == 0) continue;
            for (int k = 0; k < 4; k++) sl += smooth_l1((double)pi[p * D + k] - t[1 + k], beta);
        }
        img_loc[i] = sl;
        img_conf[i] = sc;
    }
    for (int64_t i = 0; i < N; i++) {
        parts->loc += img_loc[i];
        parts->conf += img_conf[i];
        parts->pos += img_pos[i];
        parts->neg += img_neg[i];
    }
    double denom = parts->pos > 0 ? (double)parts->pos : 1.0;
    if (grad) {
        double s = up / denom;
#pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < N * P; q++) {
            float *g = grad + q * D;
            const float *z = pred + q * D + 4, *t = target + q * 5;
            if (!sel_all[q]) {
                memset(g, 0, sizeof(float) * (size_t)D);
                continue;
            }
            int64_t cls = (int64_t)t[0];
            double l = lse(z, C);
            for (int64_t c = 0; c < C; c++) g[4 + c] = (float)(s * (exp((double)z[c] - l) - (c == cls ? 1.0 : 0.0)));
            for (int k = 0; k < 4; k++)
                g[k] = cls > 0 ? (float)(s * smooth_l1_grad((double)pred[q * D + k] - t[1 + k], beta)) : 0.0f;
        }
    }
    free(img_loc), free(img_conf), free(img_pos), free(img_neg), free(sel_all), free(buf_all);
    return (parts->loc + parts->conf) / denom;
}

int nb_multibox_report(nb_ctx *ctx, const nb_tensor *pred, const nb_multibox_parts *parts) {
    int64_t P = pred->shape[2], i = parts->bad_label - 1;
    NB_FAIL(ctx, "multibox_loss", "class target %g of image %lld, prior %lld is not an integer in [0, %lld)",
            (double)parts->bad_value, (long long)(i / P), (long long)(i % P), (long long)(pred->shape[1] - 4));
    return -1;
}

int cpu_multibox_forward(cpu_backend *be, nb_node *n) {
    nb_tensor *y = n->out[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    const nb_tensor *pred = n->in[0];
    nb_multibox_parts parts;
    double v = nb_multibox_host(nb_data(pred), nb_data(n->in[1]), pred->shape[0], pred->shape[2], pred->shape[1] - 4,
                                n->attr.multibox.neg_pos_ratio, n->attr.multibox.beta, 0.0f, NULL, &parts);
    if (parts.bad_label) return nb_multibox_report(be->base.ctx, pred, &parts);
    NB_REQUIRE(be->base.ctx, !isnan(v), -1, "multibox_loss", "out of host memory for %s", NB_SHAPE(pred));
    float f = (float)v;
    memcpy(nb_data(y), &f, sizeof f);
    return 0;
}

int cpu_multibox_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    if (!gin[0]) return 0; /* the targets get no gradient */
    const nb_tensor *pred = n->in[0];
    float up;
    memcpy(&up, nb_data(gout[0]), sizeof up);
    if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) return -1;
    nb_multibox_parts parts;
    double v = nb_multibox_host(nb_data(pred), nb_data(n->in[1]), pred->shape[0], pred->shape[2], pred->shape[1] - 4,
                                n->attr.multibox.neg_pos_ratio, n->attr.multibox.beta, up, nb_data(gin[0]), &parts);
    NB_REQUIRE(be->base.ctx, !isnan(v), -1, "multibox_loss", "out of host memory for the gradient of %s",
               NB_SHAPE(pred));
    return 0;
}
