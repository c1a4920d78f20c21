/* Element-wise arithmetic with OpenMP over the physical buffer: add, scale, dropout. Operands share one
 * dense layout, and each of these maps zero padding to zero (dropout runs on plain tensors only). Adds also
 * run on bf16 (mixed precision: the residual joins), computing in f32 and rounding once. */
#include "backend/cpu/cpu.h"
#include "core/bf16.h"
#include "core/rng.h"

/* y = relu?(a x + b z) on bf16 buffers. The ReLU is a select on a loop-invariant flag, not a branch: the
 * short-circuit form left the fused add + ReLU of every residual join scalar (a quarter of a bf16 ResNet-20
 * step on one thread) */
CPU_SIMD_CLONES static void add_bf16(uint16_t *y, const uint16_t *x, const uint16_t *z, float a, float b, int relu, int64_t len) {
    const int keep_all = !relu;
#pragma omp parallel for simd schedule(static) if (len > CPU_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        float v = a * nb_bf16_to_f32(x[i]) + b * nb_bf16_to_f32(z[i]);
        y[i] = nb_f32_to_bf16((v > 0.0f) | keep_all ? v : 0.0f); /* | not ||: no branch (NaN -> 0 under ReLU) */
    }
}

/* the add's backward on bf16: gx = s g, masked by the fused ReLU's output when y is given */
CPU_SIMD_CLONES static void add_grad_bf16(uint16_t *gx, const uint16_t *g, const uint16_t *y, float s, int64_t len) {
    if (!y) {
#pragma omp parallel for simd schedule(static) if (len > CPU_PAR_MIN)
        for (int64_t i = 0; i < len; i++) gx[i] = nb_f32_to_bf16(s * nb_bf16_to_f32(g[i]));
        return;
    }
#pragma omp parallel for simd schedule(static) if (len > CPU_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        float keep = nb_bf16_to_f32(y[i]) > 0.0f ? 1.0f : 0.0f;
        gx[i] = nb_f32_to_bf16(keep * (s * nb_bf16_to_f32(g[i])));
    }
}

static inline int dropout_keep(const nb_dropout_attr *a, int64_t i) {
    return nb_u32_to_unit(nb_philox_u32(a->seed, a->stream, a->offset + (uint64_t)i)) >= a->p;
}

int cpu_pointwise_forward(cpu_backend *be, nb_node *n) {
    (void)be;
    nb_tensor *x = n->in[0], *y = n->out[0];
    if (nb_out_alloc(y, x->layout) != 0) return -1;
    int64_t len = cpu_phys_len(y);
    float *yp = nb_data(y);
    const float *xp = nb_data(x);
    if (y->dtype == NB_BF16) { /* only adds take bf16 here (cpu_lowp_supports) */
        add_bf16(nb_data(y), nb_data(x), nb_data(n->in[1]), n->attr.add.alpha, n->attr.add.beta, n->attr.add.relu, len);
        return 0;
    }
    switch (n->op) {
    case NB_OP_ADD: {
        const float *bp = nb_data(n->in[1]);
        float a = n->attr.add.alpha, b = n->attr.add.beta;
        if (n->attr.add.relu) {
#pragma omp parallel for simd schedule(static) if (len > CPU_PAR_MIN)
            for (int64_t i = 0; i < len; i++) {
                float v = a * xp[i] + b * bp[i];
                yp[i] = v > 0.0f ? v : 0.0f;
            }
            return 0;
        }
#pragma omp parallel for simd schedule(static) if (len > CPU_PAR_MIN)
        for (int64_t i = 0; i < len; i++) yp[i] = a * xp[i] + b * bp[i];
        return 0;
    }
    case NB_OP_SCALE: {
        float a = n->attr.add.alpha;
#pragma omp parallel for simd schedule(static) if (len > CPU_PAR_MIN)
        for (int64_t i = 0; i < len; i++) yp[i] = a * xp[i];
        return 0;
    }
    case NB_OP_DROPOUT: {
        const nb_dropout_attr *a = &n->attr.dropout;
        float s = 1.0f / (1.0f - a->p);
#pragma omp parallel for simd schedule(static) if (len > CPU_PAR_MIN)
        for (int64_t i = 0; i < len; i++) yp[i] = dropout_keep(a, i) ? xp[i] * s : 0.0f;
        return 0;
    }
    default: return -1;
    }
}

int cpu_pointwise_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    (void)be;
    nb_tensor *gy = gout[0];
    const float *g = nb_data(gy);
    int64_t len = cpu_phys_len(gy);
    for (int k = 0; k < n->n_in; k++) {
        if (!gin[k]) continue;
        if (n->op == NB_OP_ADD && k == 1 && gin[0] && n->attr.add.alpha == n->attr.add.beta) {
            nb_share_storage(gin[1], gin[0]);
            continue;
        }
        if (nb_out_alloc(gin[k], n->in[k]->layout) != 0) return -1;
        if (gy->dtype == NB_BF16) {
            add_grad_bf16(nb_data(gin[k]), nb_data(gy), n->attr.add.relu ? nb_data(n->out[0]) : NULL,
                          k == 0 ? n->attr.add.alpha : n->attr.add.beta, len);
            continue;
        }
        float *gx = nb_data(gin[k]);
        float s;
        switch (n->op) {
        case NB_OP_ADD: s = k == 0 ? n->attr.add.alpha : n->attr.add.beta; break;
        case NB_OP_SCALE: s = n->attr.add.alpha; break;
        case NB_OP_DROPOUT: {
            const nb_dropout_attr *a = &n->attr.dropout;
            float sc = 1.0f / (1.0f - a->p);
#pragma omp parallel for simd schedule(static) if (len > CPU_PAR_MIN)
            for (int64_t i = 0; i < len; i++) gx[i] = dropout_keep(a, i) ? g[i] * sc : 0.0f;
            continue;
        }
        default: return -1;
        }
        if (n->op == NB_OP_ADD && n->attr.add.relu) {
            /* the gradient passes where the output is positive (torch's relu: zero at zero) */
            const float *y = nb_data(n->out[0]);
#pragma omp parallel for simd schedule(static) if (len > CPU_PAR_MIN)
            for (int64_t i = 0; i < len; i++) gx[i] = (y[i] > 0.0f ? 1.0f : 0.0f) * (s * g[i]); /* a multiply, not a branch: vectorises */
            continue;
        }
#pragma omp parallel for simd schedule(static) if (len > CPU_PAR_MIN)
        for (int64_t i = 0; i < len; i++) gx[i] = s * g[i];
    }
    return 0;
}
