/* Fake quantization on the CPU (core/ops.h: nb_fake_quant), with torch's float32 arithmetic: x / s as x * (1 / s),
 * per tensor round(x / s) + z, per channel round(x / s + z), rounding half to even. The backward passes x's
 * gradient straight through inside the grid and gives the step size and zero point LSQ's gradients, summed in
 * double in a fixed order (the same bits for any thread count). */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu.h"

/* Element i of x belongs to group (i / inner) % groups: the channel along the axis, or the one group of a
 * per-tensor quantizer (which then runs over the physical buffer, blocked padding included). */
typedef struct {
    int64_t n, groups, inner;
    int qmin, qmax, per_channel;
    float grad_factor;
} fq_geom;

static fq_geom geometry(const nb_node *n) {
    const nb_fake_quant_attr *a = &n->attr.fake_quant;
    fq_geom g = {.n = cpu_phys_len(n->in[0]), .qmin = a->qmin, .qmax = a->qmax, .per_channel = a->axis >= 0,
                 .grad_factor = a->grad_factor};
    nb_fake_quant_groups(n, &g.groups, &g.inner);
    if (!g.per_channel) g.inner = g.n;
    return g;
}

/* the zero point as the grid uses it: the nearest integer within [qmin, qmax] */
static float grid_zero(float z, const fq_geom *g) { return fminf(fmaxf(nearbyintf(z), (float)g->qmin), (float)g->qmax); }

/* the grid index of x before clamping */
static inline float grid_index(float x, float inv, float z, int per_channel) {
    return per_channel ? nearbyintf(x * inv + z) : nearbyintf(x * inv) + z;
}

int cpu_fake_quant_forward(cpu_backend *be, nb_node *n) {
    (void)be;
    nb_tensor *x = n->in[0], *y = n->out[0];
    if (nb_out_alloc(y, x->layout) != 0) return -1;
    fq_geom g = geometry(n);
    const float *xp = nb_data(x), *sp = nb_data(n->in[1]), *zp = nb_data(n->in[2]);
    float *yp = nb_data(y), lo = (float)g.qmin, hi = (float)g.qmax;
    if (!g.per_channel) {
        float s = sp[0], inv = 1.0f / s, z = grid_zero(zp[0], &g);
#pragma omp parallel for simd schedule(static) if (g.n > CPU_PAR_MIN)
        for (int64_t i = 0; i < g.n; i++) yp[i] = (fminf(fmaxf(nearbyintf(xp[i] * inv) + z, lo), hi) - z) * s;
        return 0;
    }
    int64_t blocks = g.n / g.inner;
#pragma omp parallel for schedule(static) if (g.n > CPU_PAR_MIN)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t c = b % g.groups;
        float s = sp[c], inv = 1.0f / s, z = grid_zero(zp[c], &g);
        const float *xb = xp + b * g.inner;
        float *yb = yp + b * g.inner;
        for (int64_t i = 0; i < g.inner; i++) yb[i] = (fminf(fmaxf(grid_index(xb[i], inv, z, g.per_channel), lo), hi) - z) * s;
    }
    return 0;
}

/* sums over the elements of one group, of the step size's and the zero point's gradients */
typedef struct {
    double ds, dz;
} fq_sums;

/* dx over [lo, hi) of block b, and the LSQ gradient sums of those elements */
static fq_sums backward_span(const fq_geom *g, const float *x, const float *dy, float *dx, float s, float z, int64_t lo,
                             int64_t hi) {
    float inv = 1.0f / s, small = (float)g->qmin - z, big = (float)g->qmax - z, gf = g->grad_factor;
    fq_sums sum = {0, 0};
    for (int64_t i = lo; i < hi; i++) {
        float q = grid_index(x[i], inv, z, g->per_channel);
        bool inside = q >= (float)g->qmin && q <= (float)g->qmax;
        if (dx) dx[i] = inside ? dy[i] : 0.0f;
        if (inside) {
            float xfq = (q - z) * s;
            sum.ds += (double)(dy[i] * (xfq - x[i]) * inv * gf);
        } else {
            sum.ds += (double)((q < (float)g->qmin ? dy[i] * small : dy[i] * big) * gf);
            sum.dz += (double)(dy[i] * -1.0f * s * gf);
        }
    }
    return sum;
}

int cpu_fake_quant_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    (void)be;
    nb_tensor *x = n->in[0], *gy = gout[0];
    fq_geom g = geometry(n);
    if (gin[0] && nb_out_alloc(gin[0], x->layout) != 0) return -1;
    for (int k = 1; k < 3; k++)
        if (gin[k] && nb_out_alloc(gin[k], NB_LAYOUT_PLAIN) != 0) return -1;
    const float *xp = nb_data(x), *gp = nb_data(gy), *sp = nb_data(n->in[1]), *zp = nb_data(n->in[2]);
    float *dx = gin[0] ? nb_data(gin[0]) : NULL, *ds = gin[1] ? nb_data(gin[1]) : NULL, *dz = gin[2] ? nb_data(gin[2]) : NULL;
    if (!g.per_channel) {
        /* one group over the whole buffer: 64 fixed chunks, summed in order */
        enum { CHUNKS = 64 };
        fq_sums part[CHUNKS];
        float s = sp[0], z = grid_zero(zp[0], &g);
        int64_t per = (g.n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for schedule(static) if (g.n > CPU_PAR_MIN)
        for (int c = 0; c < CHUNKS; c++) {
            int64_t lo = c * per < g.n ? c * per : g.n, hi = lo + per < g.n ? lo + per : g.n;
            part[c] = backward_span(&g, xp, gp, dx, s, z, lo, hi);
        }
        fq_sums t = {0, 0};
        for (int c = 0; c < CHUNKS; c++) t.ds += part[c].ds, t.dz += part[c].dz;
        if (ds) ds[0] = (float)t.ds;
        if (dz) dz[0] = (float)t.dz;
        return 0;
    }
    /* per channel: each group's blocks in order, the groups in parallel */
    int64_t blocks = g.n / g.inner;
#pragma omp parallel for schedule(static) if (g.n > CPU_PAR_MIN)
    for (int64_t c = 0; c < g.groups; c++) {
        float s = sp[c], z = grid_zero(zp[c], &g);
        fq_sums t = {0, 0};
        for (int64_t b = c; b < blocks; b += g.groups) {
            fq_sums part = backward_span(&g, xp, gp, dx, s, z, b * g.inner, (b + 1) * g.inner);
            t.ds += part.ds;
            t.dz += part.dz;
        }
        if (ds) ds[c] = (float)t.ds;
        if (dz) dz[c] = (float)t.dz;
    }
    return 0;
}
