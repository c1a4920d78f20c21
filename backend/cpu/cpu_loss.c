/* Softmax, log-softmax and the losses on plain contiguous tensors. Row reductions accumulate in double, one
 * row per iteration, so results do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu.h"

static void around(const nb_tensor *t, int axis, int64_t *outer, int64_t *len, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= t->shape[i];
    for (int i = axis + 1; i < t->ndim; i++) *inner *= t->shape[i];
    *len = t->shape[axis];
}

/* log-sum-exp of a row of z/T (stride st): log-softmax is then z/T - lse, with no buffer to allocate */
static double row_lse(const float *z, int64_t len, int64_t st, double invT) {
    double m = -INFINITY;
    for (int64_t c = 0; c < len; c++) m = fmax(m, (double)z[c * st] * invT);
    double s = 0.0;
    for (int64_t c = 0; c < len; c++) s += exp((double)z[c * st] * invT - m);
    return m + log(s);
}

static int softmax_forward(nb_node *n, int log_out) {
    nb_tensor *x = n->in[0], *y = n->out[0];
    int64_t outer, len, inner;
    around(x, n->attr.axis.axis, &outer, &len, &inner);
    const float *xp = nb_data(x);
    float *yp = nb_data(y);
#pragma omp parallel for collapse(2) schedule(static) if (outer * inner * len > CPU_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *z = xp + o * len * inner + i;
            float *out = yp + o * len * inner + i;
            double lse = row_lse(z, len, inner, 1.0);
            for (int64_t c = 0; c < len; c++) {
                double lp = (double)z[c * inner] - lse;
                out[c * inner] = (float)(log_out ? lp : exp(lp));
            }
        }
    return 0;
}

static int softmax_backward(nb_node *n, const nb_tensor *gy, nb_tensor *gx, int log_out) {
    const nb_tensor *y = n->out[0];
    int64_t outer, len, inner;
    around(y, n->attr.axis.axis, &outer, &len, &inner);
    const float *yp = nb_data(y), *g = nb_data(gy);
    float *gp = nb_data(gx);
#pragma omp parallel for collapse(2) schedule(static) if (outer * inner * len > CPU_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double dot = 0.0;
            for (int64_t c = 0; c < len; c++) {
                int64_t k = base + c * inner;
                dot += log_out ? (double)g[k] : (double)g[k] * yp[k];
            }
            for (int64_t c = 0; c < len; c++) {
                int64_t k = base + c * inner;
                gp[k] = log_out ? (float)(g[k] - exp((double)yp[k]) * dot) : (float)(yp[k] * (g[k] - dot));
            }
        }
    return 0;
}

int cpu_loss_forward(cpu_backend *be, nb_node *n) {
    nb_ctx *ctx = be->base.ctx;
    nb_tensor *y = n->out[0];
    if (nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    if (n->op == NB_OP_SOFTMAX || n->op == NB_OP_LOG_SOFTMAX) return softmax_forward(n, n->op == NB_OP_LOG_SOFTMAX);
    nb_tensor *a = n->in[0], *b = n->in[1];
    const float *ap = nb_data(a);
    double total = 0.0;
    switch (n->op) {
    case NB_OP_CROSS_ENTROPY: {
        int64_t N = a->shape[0], C = a->shape[1];
        const int64_t *lab = nb_data(b);
        for (int64_t i = 0; i < N; i++)
            NB_REQUIRE(ctx, lab[i] >= 0 && lab[i] < C, -1, "cross_entropy",
                       "label %lld of sample %lld is outside [0, %lld) for logits %s", (long long)lab[i],
                       (long long)i, (long long)C, NB_SHAPE(a));
        double eps = n->attr.ce.label_smoothing;
        for (int64_t i = 0; i < N; i++) {
            const float *z = ap + i * C;
            double lse = row_lse(z, C, 1, 1.0), sum = 0.0;
            for (int64_t c = 0; c < C; c++) sum += (double)z[c] - lse;
            total += -(1.0 - eps) * ((double)z[lab[i]] - lse) - eps / (double)C * sum;
        }
        total /= (double)N;
        break;
    }
    case NB_OP_KL_DIV: {
        int64_t N = a->shape[0], C = a->shape[1];
        const float *tp = nb_data(b);
        double T = n->attr.kl.temperature, invT = 1.0 / T;
        for (int64_t i = 0; i < N; i++) {
            const float *s = ap + i * C, *t = tp + i * C;
            double lse_s = row_lse(s, C, 1, invT), lse_t = row_lse(t, C, 1, invT);
            for (int64_t c = 0; c < C; c++) {
                double lt = (double)t[c] * invT - lse_t, ls = (double)s[c] * invT - lse_s;
                total += exp(lt) * (lt - ls);
            }
        }
        total *= T * T / (double)N;
        break;
    }
    case NB_OP_SMOOTH_L1:
    case NB_OP_MSE: {
        int64_t len = nb_numel(a);
        const float *tp = nb_data(b);
        double beta = n->attr.smooth_l1.beta;
        for (int64_t i = 0; i < len; i++) {
            double d = (double)ap[i] - tp[i];
            if (n->op == NB_OP_MSE) total += d * d;
            else total += fabs(d) < beta ? 0.5 * d * d / beta : fabs(d) - 0.5 * beta;
        }
        total /= (double)len;
        break;
    }
    default: return -1;
    }
    float v = (float)total;
    memcpy(nb_data(y), &v, sizeof v);
    return 0;
}

int cpu_loss_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    (void)be;
    nb_tensor *gy = gout[0];
    if (n->op == NB_OP_SOFTMAX || n->op == NB_OP_LOG_SOFTMAX) {
        if (!gin[0]) return 0;
        if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) return -1;
        return softmax_backward(n, gy, gin[0], n->op == NB_OP_LOG_SOFTMAX);
    }
    nb_tensor *a = n->in[0], *b = n->in[1];
    float up;
    memcpy(&up, nb_data(gy), sizeof up);
    const float *ap = nb_data(a);
    switch (n->op) {
    case NB_OP_CROSS_ENTROPY:
    case NB_OP_KL_DIV: {
        /* the labels and the teacher get no gradient */
        if (!gin[0]) return 0;
        if (nb_out_alloc(gin[0], NB_LAYOUT_PLAIN) != 0) return -1;
        int64_t N = a->shape[0], C = a->shape[1];
        float *gp = nb_data(gin[0]);
        if (n->op == NB_OP_CROSS_ENTROPY) {
            const int64_t *lab = nb_data(b);
            double eps = n->attr.ce.label_smoothing, s = up / (double)N;
            for (int64_t i = 0; i < N; i++) {
                const float *z = ap + i * C;
                double lse = row_lse(z, C, 1, 1.0);
                for (int64_t c = 0; c < C; c++) {
                    double q = eps / (double)C + (c == lab[i] ? 1.0 - eps : 0.0);
                    gp[i * C + c] = (float)(s * (exp((double)z[c] - lse) - q));
                }
            }
        } else {
            double T = n->attr.kl.temperature, invT = 1.0 / T;
            const float *tp = nb_data(b);
            double s = up * T / (double)N;
            for (int64_t i = 0; i < N; i++) {
                const float *z = ap + i * C, *t = tp + i * C;
                double lse_s = row_lse(z, C, 1, invT), lse_t = row_lse(t, C, 1, invT);
                for (int64_t c = 0; c < C; c++)
                    gp[i * C + c] = (float)(s * (exp((double)z[c] * invT - lse_s) - exp((double)t[c] * invT - lse_t)));
            }
        }
        return 0;
    }
    case NB_OP_SMOOTH_L1:
    case NB_OP_MSE: {
        int64_t len = nb_numel(a);
        const float *tp = nb_data(b);
        double beta = n->attr.smooth_l1.beta, s = up / (double)len;
        for (int k = 0; k < 2; k++) {
            if (!gin[k]) continue;
            if (nb_out_alloc(gin[k], NB_LAYOUT_PLAIN) != 0) return -1;
            float *gp = nb_data(gin[k]);
            double sign = k == 0 ? 1.0 : -1.0;
            for (int64_t i = 0; i < len; i++) {
                double d = (double)ap[i] - tp[i], g;
                if (n->op == NB_OP_MSE) g = 2.0 * d;
                else g = fabs(d) < beta ? d / beta : (d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0);
                gp[i] = (float)(sign * s * g);
            }
        }
        return 0;
    }
    default: return -1;
    }
}
