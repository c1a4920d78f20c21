/* Element-wise kernels over whole physical buffers for the engine, optimizers and initialisers: fill, axpby,
 * sum of squares, random fills, and the SGD and Adam updates with torch.optim's exact order of operations. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/bf16.h"
#include "core/rng.h"

static int need_dense(nb_backend *be, const nb_tensor *t, const char *what) {
    if (t->layout == NB_LAYOUT_PLAIN && !nb_is_contiguous(t)) {
        NB_FAIL(be->ctx, what, "needs a contiguous tensor, got a strided view %s", NB_SHAPE(t));
        return -1;
    }
    return nb_data(t) ? 0 : -1;
}

int cpu_fill(nb_backend *be, nb_tensor *t, double v) {
    if (need_dense(be, t, "fill")) return -1;
    size_t bytes = t->layout == NB_LAYOUT_PLAIN ? nb_tensor_bytes(t) : t->storage->bytes;
    void *p = nb_data(t);
    if (v == 0.0) {
        memset(p, 0, bytes);
        return 0;
    }
    int64_t n = nb_numel(t);
    switch (t->dtype) {
    case NB_F32:
        for (int64_t i = 0; i < n; i++) ((float *)p)[i] = (float)v;
        break;
    case NB_I8: memset(p, (int8_t)v, (size_t)n); break;
    case NB_U8: memset(p, (uint8_t)v, (size_t)n); break;
    case NB_I32:
        for (int64_t i = 0; i < n; i++) ((int32_t *)p)[i] = (int32_t)v;
        break;
    case NB_I64:
        for (int64_t i = 0; i < n; i++) ((int64_t *)p)[i] = (int64_t)v;
        break;
    case NB_BF16: {
        uint16_t h = nb_f32_to_bf16((float)v);
        for (int64_t i = 0; i < n; i++) ((uint16_t *)p)[i] = h;
        break;
    }
    default: return -1;
    }
    return 0;
}

static int same_layout(nb_backend *be, const nb_tensor *a, const nb_tensor *b, const char *what) {
    if (a->layout != b->layout || !nb_same_shape(a, b)) {
        NB_FAIL(be->ctx, what, "operands %s and %s must share shape and layout", NB_SHAPE(a), NB_SHAPE(b));
        return -1;
    }
    return need_dense(be, a, what) || need_dense(be, b, what) ? -1 : 0;
}

CPU_SIMD_CLONES int cpu_axpby(nb_backend *be, nb_tensor *y, float a, const nb_tensor *x, float b) {
    if (same_layout(be, y, x, "axpby")) return -1;
    int64_t n = cpu_phys_len(y);
    if (y->dtype == NB_BF16 && x->dtype == NB_BF16) { /* gradients summed under mixed precision */
        uint16_t *yh = nb_data(y);
        const uint16_t *xh = nb_data(x);
#pragma omp parallel for simd schedule(static) if (n > CPU_PAR_MIN)
        for (int64_t i = 0; i < n; i++) yh[i] = nb_f32_to_bf16(a * nb_bf16_to_f32(xh[i]) + b * nb_bf16_to_f32(yh[i]));
        return 0;
    }
    NB_REQUIRE(be->ctx, y->dtype == NB_F32 && x->dtype == NB_F32, -1, "axpby", "operands %s and %s must both be f32 or bf16",
               NB_SHAPE(y), NB_SHAPE(x));
    float *yp = nb_data(y);
    const float *xp = nb_data(x);
#pragma omp parallel for simd schedule(static) if (n > CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) yp[i] = a * xp[i] + b * yp[i];
    return 0;
}

int cpu_mul(nb_backend *be, nb_tensor *y, const nb_tensor *x) {
    if (same_layout(be, y, x, "mul")) return -1;
    float *yp = nb_data(y);
    const float *xp = nb_data(x);
    int64_t n = cpu_phys_len(y);
#pragma omp parallel for simd schedule(static) if (n > CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) yp[i] *= xp[i];
    y->version++;
    return 0;
}

int cpu_sum_squares(nb_backend *be, const nb_tensor *t, double *out) {
    if (need_dense(be, t, "sum_squares")) return -1;
    /* a fixed split into 64 chunks summed in order: the same bits for any thread count */
    enum { CHUNKS = 64 };
    double part[CHUNKS];
    const float *p = nb_data(t);
    int64_t n = cpu_phys_len(t), per = (n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for schedule(static) if (n > CPU_PAR_MIN)
    for (int c = 0; c < CHUNKS; c++) {
        double s = 0.0;
        int64_t lo = c * per, hi = lo + per < n ? lo + per : n;
        for (int64_t i = lo; i < hi; i++) s += (double)p[i] * p[i];
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < CHUNKS; c++) s += part[c];
    *out = s;
    return 0;
}

int cpu_sum_abs(nb_backend *be, const nb_tensor *t, double threshold, double *sum, int64_t *count) {
    if (need_dense(be, t, "sum_abs")) return -1;
    /* one pass in element order: the order compress/codebook.c's projections sum in on the host, so that the
     * scales of a plain tensor come out the same to the bit (a weight is a few million elements at most) */
    const float *p = nb_data(t);
    int64_t n = cpu_phys_len(t), k = 0;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double a = fabs((double)p[i]);
        if (a > threshold) {
            s += a;
            k++;
        }
    }
    /* blocked layouts pad with zeros, which |x| > threshold counts when threshold < 0: leave them out */
    if (threshold < 0) k -= n - nb_numel(t);
    *sum = s;
    *count = k;
    return 0;
}

int cpu_sign_codes(nb_backend *be, nb_tensor *v, nb_tensor *codes, double threshold, float alpha) {
    if (!nb_is_contiguous(v) || !nb_is_contiguous(codes)) {
        NB_FAIL(be->ctx, "sign_codes", "needs plain contiguous tensors, got %s and %s", NB_SHAPE(v), NB_SHAPE(codes));
        return -1;
    }
    float *p = nb_data(v);
    int8_t *q = nb_data(codes);
    if (!p || !q) return -1;
    int64_t n = nb_numel(v);
#pragma omp parallel for simd schedule(static) if (n > CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        int8_t c = (int8_t)(fabs((double)p[i]) > threshold ? (p[i] < 0 ? -1 : 1) : 0);
        q[i] = c;
        p[i] = alpha * (float)c;
    }
    return 0;
}

int cpu_range(nb_backend *be, const nb_tensor *t, double *lo, double *hi) {
    if (need_dense(be, t, "range")) return -1;
    const float *p = nb_data(t);
    float a = p[0], b = p[0];
    for (int64_t i = 1, n = nb_numel(t); i < n; i++) {
        a = fminf(a, p[i]);
        b = fmaxf(b, p[i]);
    }
    *lo = a;
    *hi = b;
    return 0;
}

int cpu_bn_fold(nb_backend *be, nb_tensor *sf, nb_tensor *inv, const nb_tensor *gamma, const nb_tensor *var, float eps) {
    if (need_dense(be, sf, "bn_fold") || need_dense(be, inv, "bn_fold") || need_dense(be, gamma, "bn_fold") ||
        need_dense(be, var, "bn_fold"))
        return -1;
    float *s = nb_data(sf), *r = nb_data(inv);
    const float *g = nb_data(gamma), *v = nb_data(var);
    for (int64_t c = 0, n = nb_numel(sf); c < n; c++) {
        s[c] = g[c] / sqrtf(v[c] + eps);
        r[c] = s[c] != 0.0f ? 1.0f / s[c] : 0.0f;
    }
    return 0;
}

int cpu_abs_mul_add(nb_backend *be, nb_tensor *acc, const nb_tensor *a, const nb_tensor *b) {
    if (same_layout(be, acc, a, "abs_mul_add") || same_layout(be, acc, b, "abs_mul_add")) return -1;
    float *yp = nb_data(acc);
    const float *ap = nb_data(a), *bp = nb_data(b);
    int64_t n = cpu_phys_len(acc);
#pragma omp parallel for simd schedule(static) if (n > CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) yp[i] += fabsf(ap[i] * bp[i]);
    return 0;
}

int cpu_rng_fill(nb_backend *be, nb_tensor *t, const nb_rng_fill *spec) {
    if (t->dtype != NB_F32 || !nb_is_contiguous(t)) {
        NB_FAIL(be->ctx, "rng_fill", "needs a plain contiguous f32 tensor, got %s", NB_SHAPE(t));
        return -1;
    }
    float *p = nb_data(t);
    if (!p) return -1;
    int64_t n = nb_numel(t);
    float a = spec->a, b = spec->b;
#pragma omp parallel for schedule(static) if (n > CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        p[i] = nb_philox_draw(spec->dist == NB_RNG_NORMAL, a, b, spec->seed, spec->stream, spec->offset + (uint64_t)i);
    }
    t->version++;
    return 0;
}

int cpu_sgd_step(nb_backend *be, const nb_sgd_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *buf) {
    if (same_layout(be, p, g, "sgd") || (buf && same_layout(be, p, buf, "sgd"))) return -1;
    float *pp = nb_data(p), *bp = buf ? nb_data(buf) : NULL;
    const float *gp = nb_data(g);
    int64_t n = cpu_phys_len(p);
    float lr = s->lr, mom = s->momentum, damp = s->dampening, wd = s->weight_decay;
    int nesterov = s->nesterov, first = s->first_step;
#pragma omp parallel for simd schedule(static) if (n > CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float d = gp[i];
        if (wd != 0.0f) d = d + wd * pp[i];
        if (bp) {
            float b = first ? d : bp[i] * mom + (1.0f - damp) * d;
            bp[i] = b;
            d = nesterov ? d + mom * b : b;
        }
        pp[i] = pp[i] - lr * d;
    }
    p->version++;
    return 0;
}

int cpu_adam_step(nb_backend *be, const nb_adam_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *m,
                  nb_tensor *v) {
    if (same_layout(be, p, g, "adam") || same_layout(be, p, m, "adam") || same_layout(be, p, v, "adam")) return -1;
    float *pp = nb_data(p), *mp = nb_data(m), *vp = nb_data(v);
    const float *gp = nb_data(g);
    int64_t n = cpu_phys_len(p);
    float lr = s->lr, b1 = s->beta1, b2 = s->beta2, eps = s->eps, wd = s->weight_decay;
    float bc1 = 1.0f - (float)pow(b1, (double)s->step), bc2 = 1.0f - (float)pow(b2, (double)s->step);
    float step_size = lr / bc1, bc2_sqrt = sqrtf(bc2);
    int decoupled = s->decoupled;
#pragma omp parallel for simd schedule(static) if (n > CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float gi = gp[i], pi = pp[i];
        if (decoupled) pi = pi * (1.0f - lr * wd);
        else if (wd != 0.0f) gi = gi + wd * pi;
        float mi = mp[i] * b1 + (1.0f - b1) * gi;
        float vi = vp[i] * b2 + (1.0f - b2) * gi * gi;
        mp[i] = mi;
        vp[i] = vi;
        pp[i] = pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
    p->version++;
    return 0;
}

int cpu_counter_add(nb_backend *be, nb_tensor *t, int64_t v) {
    NB_REQUIRE(be->ctx, t->dtype == NB_I64, -1, "counter_add", "%s %s must be i64", t->name, NB_SHAPE(t));
    if (need_dense(be, t, "counter_add")) return -1;
    int64_t *p = nb_data(t), n = nb_numel(t);
    for (int64_t i = 0; i < n; i++) p[i] += v;
    t->version++;
    return 0;
}
