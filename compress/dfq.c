/* Batch-norm folding, cross-layer equalization and bias correction, found on the recorded tape. */
#include "compress/dfq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/channel_deps.h"
#include "compress/compressor.h"
#include "compress/gaussian.h"
#include "core/check.h"
#include "core/ops.h"

/* A convolution, the batch norm that alone reads its output, and what reads the batch norm's output: a ReLU
 * whose output only one dense convolution reads (the pair of cross-layer equalization), or anything. */
typedef struct {
    nb_tensor *w;                  /* the convolution's weight */
    nb_tensor *gamma, *beta, *rm, *rv;
    float eps;
    nb_tensor *next_w;             /* the convolution after the ReLU, or NULL */
} link;

static int find_links(nb_ctx *ctx, nb_model *m, link *links, int max) {
    size_t mark;
    nb_tensor *x, *y = nb_record_forward(m, 1, &mark, &x);
    int n = 0;
    for (size_t i = 0; y && i < nb_tape_size(ctx) && n < max; i++) {
        const nb_node *conv = nb_tape_node(ctx, i), *c1[2], *c2[2], *c3[2];
        if (conv->op != NB_OP_CONV2D || conv->in[2]) continue;
        if (nb_tape_consumers(ctx, conv->out[0], c1, 2) != 1 || c1[0]->op != NB_OP_BATCHNORM2D || !c1[0]->in[1]) continue;
        const nb_node *bn = c1[0];
        link l = {conv->in[1], bn->in[1], bn->in[2], bn->in[3], bn->in[4], bn->attr.bn.eps, NULL};
        /* a fused ReLU, or a ReLU node, then exactly one dense convolution */
        const nb_tensor *act = NULL;
        if (bn->attr.bn.relu) act = bn->out[0];
        else if (nb_tape_consumers(ctx, bn->out[0], c2, 2) == 1 && c2[0]->op == NB_OP_RELU) act = c2[0]->out[0];
        if (act && conv->attr.conv.groups == 1 && nb_tape_consumers(ctx, act, c3, 2) == 1 && c3[0]->op == NB_OP_CONV2D &&
            c3[0]->in[0] == act && c3[0]->attr.conv.groups == 1)
            l.next_w = c3[0]->in[1];
        links[n++] = l;
    }
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    return y ? n : -1;
}

void nb_dfq_free(nb_dfq *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->bn[i].mean);
        free(d->bn[i].std);
    }
    free(d->bn);
    memset(d, 0, sizeof *d);
}

int nb_dfq_equalize(nb_ctx *ctx, nb_model *m, bool equalize, nb_dfq *d) {
    memset(d, 0, sizeof *d);
    link links[512];
    int n = find_links(ctx, m, links, 512);
    if (n < 0) return -1;
    d->bn = nb_xcalloc((size_t)(n ? n : 1), sizeof *d->bn);
    for (int k = 0; k < n; k++) {
        link *l = &links[k];
        int64_t C = l->w->shape[0], per = nb_numel(l->w) / C;
        float *w = nb_host_copy(l->w), *g = nb_host_copy(l->gamma), *b = nb_host_copy(l->beta), *rm = nb_host_copy(l->rm),
              *rv = nb_host_copy(l->rv);
        if (!w || !g || !b || !rm || !rv) return -1;
        /* fold: the batch norm becomes the identity plus a bias; its output's spread, |gamma|, is recorded */
        nb_dfq_bn *rec = &d->bn[d->n++];
        *rec = (nb_dfq_bn){l->w, C, nb_xmalloc(sizeof(float) * (size_t)C), nb_xmalloc(sizeof(float) * (size_t)C)};
        /* the BN's output has mean beta and spread |gamma| (its input normalised by the running statistics);
         * the folded bias is beta - gamma * mean / sigma, not the output's mean */
        for (int64_t c = 0; c < C; c++) {
            rec->std[c] = fabsf(g[c]);
            rec->mean[c] = b[c];
        }
        for (int64_t c = 0; c < C; c++) {
            float inv = 1.0f / sqrtf(rv[c] + l->eps), s = g[c] * inv;
            for (int64_t i = 0; i < per; i++) w[c * per + i] *= s;
            b[c] -= rm[c] * s;
            g[c] = 1.0f;
            rm[c] = 0.0f;
            rv[c] = 1.0f - l->eps;
        }
        float *wn = equalize && l->next_w ? nb_host_copy(l->next_w) : NULL;
        if (wn) {
            /* equalize the output ranges of this layer with the input ranges of the next */
            int64_t O2 = l->next_w->shape[0], I2 = l->next_w->shape[1], K2 = nb_numel(l->next_w) / (O2 * I2);
            for (int64_t c = 0; c < C && c < I2; c++) {
                float r1 = 0, r2 = 0;
                for (int64_t i = 0; i < per; i++) r1 = fmaxf(r1, fabsf(w[c * per + i]));
                for (int64_t o = 0; o < O2; o++)
                    for (int64_t k2 = 0; k2 < K2; k2++) r2 = fmaxf(r2, fabsf(wn[(o * I2 + c) * K2 + k2]));
                if (r1 <= 0 || r2 <= 0) continue;
                float s = sqrtf(r1 / r2);
                for (int64_t i = 0; i < per; i++) w[c * per + i] /= s;
                b[c] /= s;
                rec->std[c] /= s;
                rec->mean[c] /= s;
                for (int64_t o = 0; o < O2; o++)
                    for (int64_t k2 = 0; k2 < K2; k2++) wn[(o * I2 + c) * K2 + k2] *= s;
            }
            d->pairs++;
        }
        int rc = nb_host_store(l->w, w) || nb_host_store(l->gamma, g) || nb_host_store(l->beta, b) ||
                 nb_host_store(l->rm, rm) || nb_host_store(l->rv, rv) || (wn && nb_host_store(l->next_w, wn));
        free(w);
        free(g);
        free(b);
        free(rm);
        free(rv);
        free(wn);
        if (rc) return -1;
    }
    return 0;
}

/* E[max(0, z)] for z ~ N(mu, sigma^2) */
static double relu_mean(double mu, double sigma) {
    double mean, var;
    nb_censored_gaussian(mu, sigma, 0.0, INFINITY, &mean, &var);
    return mean;
}

int nb_dfq_bias_correct(nb_ctx *ctx, nb_model *m, const nb_dfq *d, nb_tensor **q, nb_tensor **fp, int n) {
    link links[512];
    int nl = find_links(ctx, m, links, 512);
    if (nl < 0) return -1;
    for (int k = 0; k < n; k++) {
        /* the folded batch norm before q[k]'s input ReLU, and the one after q[k] */
        const link *before = NULL, *after = NULL;
        for (int j = 0; j < nl; j++) {
            if (links[j].next_w == q[k]) before = &links[j];
            if (links[j].w == q[k]) after = &links[j];
        }
        const nb_dfq_bn *stats = NULL;
        for (int j = 0; before && j < d->n; j++)
            if (d->bn[j].conv_w == before->w) stats = &d->bn[j];
        if (!before || !after || !stats || q[k]->ndim != 4) continue;
        int64_t O = q[k]->shape[0], I = q[k]->shape[1], K = nb_numel(q[k]) / (O * I);
        float *wq = nb_host_copy(q[k]), *wf = nb_host_copy(fp[k]), *b = nb_host_copy(after->beta);
        const float *mu = stats->mean, *sd = stats->std;
        if (!wq || !wf || !b || I > stats->channels) return -1;
        for (int64_t o = 0; o < O; o++) {
            double corr = 0.0;
            for (int64_t i = 0; i < I; i++) {
                double ex = relu_mean(mu[i], fabs(sd[i])), e = 0.0;
                for (int64_t kk = 0; kk < K; kk++) e += (double)wq[(o * I + i) * K + kk] - wf[(o * I + i) * K + kk];
                corr += e * ex;
            }
            b[o] -= (float)corr;
        }
        int rc = nb_host_store(after->beta, b);
        free(wq);
        free(wf);
        free(b);
        if (rc) return -1;
    }
    return 0;
}
