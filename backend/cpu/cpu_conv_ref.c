/* The reference convolution: im2col + cblas_sgemm on plain NCHW tensors, forward and both backwards, any
 * groups, stride, padding and dilation. Slow, simple and independent of oneDNN, so that the tests can check
 * the oneDNN path against it (and both against PyTorch). Selected with NB_CPU_CONV=reference or
 * nb_cpu_use_reference_conv(). */
#include <cblas.h>
#include <string.h>

#include "backend/cpu/cpu.h"

typedef struct {
    int64_t N, C, H, W, O, KH, KW, HO, WO, G, CG, OG;
    int sh, sw, ph, pw, dh, dw;
} geom;

static geom geom_of(const nb_node *n) {
    const nb_tensor *x = n->in[0], *w = n->in[1], *y = n->out[0];
    const nb_conv_attr *a = &n->attr.conv;
    geom g = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3],
              y->shape[2], y->shape[3], a->groups, x->shape[1] / a->groups, w->shape[0] / a->groups,
              a->stride[0], a->stride[1], a->pad[0], a->pad[1], a->dilation[0], a->dilation[1]};
    return g;
}

/* cols[(c*KH + i)*KW + j][oy*WO + ox] = x[c][oy*sh - ph + i*dh][ox*sw - pw + j*dw] (0 outside) */
static void im2col(const float *x, float *cols, const geom *g) {
    int64_t K = g->CG * g->KH * g->KW, P = g->HO * g->WO;
#pragma omp parallel for schedule(static) if (K * P > CPU_PAR_MIN)
    for (int64_t r = 0; r < K; r++) {
        int64_t c = r / (g->KH * g->KW), i = r / g->KW % g->KH, j = r % g->KW;
        float *out = cols + r * P;
        for (int64_t oy = 0; oy < g->HO; oy++) {
            int64_t iy = oy * g->sh - g->ph + i * g->dh;
            for (int64_t ox = 0; ox < g->WO; ox++) {
                int64_t ix = ox * g->sw - g->pw + j * g->dw;
                out[oy * g->WO + ox] = iy >= 0 && iy < g->H && ix >= 0 && ix < g->W ? x[(c * g->H + iy) * g->W + ix] : 0.0f;
            }
        }
    }
}

/* the adjoint of im2col: add every column entry back to the pixel it came from (serial per channel) */
static void col2im(const float *cols, float *x, const geom *g) {
    int64_t P = g->HO * g->WO;
#pragma omp parallel for schedule(static) if (g->CG * g->H * g->W > CPU_PAR_MIN)
    for (int64_t c = 0; c < g->CG; c++) {
        float *xc = x + c * g->H * g->W;
        memset(xc, 0, sizeof(float) * (size_t)(g->H * g->W));
        for (int64_t i = 0; i < g->KH; i++)
            for (int64_t j = 0; j < g->KW; j++) {
                const float *in = cols + ((c * g->KH + i) * g->KW + j) * P;
                for (int64_t oy = 0; oy < g->HO; oy++) {
                    int64_t iy = oy * g->sh - g->ph + i * g->dh;
                    if (iy < 0 || iy >= g->H) continue;
                    for (int64_t ox = 0; ox < g->WO; ox++) {
                        int64_t ix = ox * g->sw - g->pw + j * g->dw;
                        if (ix >= 0 && ix < g->W) xc[iy * g->W + ix] += in[oy * g->WO + ox];
                    }
                }
            }
    }
}

/* Plain contiguous copies of the inputs the reference needs (the oneDNN path may have blocked them). */
static nb_tensor *plain(cpu_backend *be, nb_tensor *t, bool *owned) { return cpu_as_layout(be, t, NB_LAYOUT_PLAIN, owned); }

int cpu_conv_ref_forward(cpu_backend *be, nb_node *n) {
    geom g = geom_of(n);
    bool ox, ow;
    nb_tensor *x = plain(be, n->in[0], &ox), *w = plain(be, n->in[1], &ow), *b = n->in[2], *y = n->out[0];
    if (!x || !w || nb_out_alloc(y, NB_LAYOUT_PLAIN) != 0) return -1;
    int64_t K = g.CG * g.KH * g.KW, P = g.HO * g.WO;
    nb_tensor *cols = cpu_new(be, NB_F32, 2, (int64_t[]){K, P}, NB_LAYOUT_PLAIN);
    if (!cols) return -1;
    const float *xp = nb_data(x), *wp = nb_data(w), *bp = b ? nb_data(b) : NULL;
    float *yp = nb_data(y), *cp = nb_data(cols);
    for (int64_t i = 0; i < g.N; i++)
        for (int64_t gi = 0; gi < g.G; gi++) {
            im2col(xp + (i * g.C + gi * g.CG) * g.H * g.W, cp, &g);
            float *out = yp + (i * g.O + gi * g.OG) * P;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g.OG, (int)P, (int)K, 1.0f, wp + gi * g.OG * K,
                        (int)K, cp, (int)P, 0.0f, out, (int)P);
            for (int64_t o = 0; bp && o < g.OG; o++)
                for (int64_t p = 0; p < P; p++) out[o * P + p] += bp[gi * g.OG + o];
        }
    nb_release(cols);
    if (ox) nb_release(x);
    if (ow) nb_release(w);
    return 0;
}

int cpu_conv_ref_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    geom g = geom_of(n);
    bool ox, ow, og;
    nb_tensor *x = plain(be, n->in[0], &ox), *w = plain(be, n->in[1], &ow), *gy = plain(be, gout[0], &og);
    if (!x || !w || !gy) return -1;
    int64_t K = g.CG * g.KH * g.KW, P = g.HO * g.WO;
    nb_tensor *cols = cpu_new(be, NB_F32, 2, (int64_t[]){K, P}, NB_LAYOUT_PLAIN);
    nb_tensor *gx = gin[0] ? cpu_new(be, NB_F32, 4, n->in[0]->shape, NB_LAYOUT_PLAIN) : NULL;
    nb_tensor *gw = gin[1] ? cpu_new(be, NB_F32, 4, n->in[1]->shape, NB_LAYOUT_PLAIN) : NULL;
    int rc = cols && (!gin[0] || gx) && (!gin[1] || gw) ? 0 : -1;
    const float *xp = nb_data(x), *wp = nb_data(w), *gp = nb_data(gy);
    float *cp = rc ? NULL : nb_data(cols);
    if (gw) memset(nb_data(gw), 0, sizeof(float) * (size_t)nb_numel(gw));
    for (int64_t i = 0; i < g.N && !rc; i++)
        for (int64_t gi = 0; gi < g.G; gi++) {
            const float *gyp = gp + (i * g.O + gi * g.OG) * P;
            if (gw) {
                im2col(xp + (i * g.C + gi * g.CG) * g.H * g.W, cp, &g);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g.OG, (int)K, (int)P, 1.0f, gyp, (int)P, cp,
                            (int)P, 1.0f, (float *)nb_data(gw) + gi * g.OG * K, (int)K);
            }
            if (gx) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)P, (int)g.OG, 1.0f, wp + gi * g.OG * K,
                            (int)K, gyp, (int)P, 0.0f, cp, (int)P);
                col2im(cp, (float *)nb_data(gx) + (i * g.C + gi * g.CG) * g.H * g.W, &g);
            }
        }
    if (!rc && gin[2]) {
        if (nb_out_alloc(gin[2], NB_LAYOUT_PLAIN) != 0) rc = -1;
        float *gb = rc ? NULL : nb_data(gin[2]);
        for (int64_t o = 0; !rc && o < g.O; o++) {
            double s = 0;
            for (int64_t i = 0; i < g.N; i++)
                for (int64_t p = 0; p < P; p++) s += gp[(i * g.O + o) * P + p];
            gb[o] = (float)s;
        }
    }
    /* hand the gradients back in the layouts of the inputs */
    if (!rc && gx) rc = nb_out_alloc(gin[0], n->in[0]->layout) || cpu_relayout(&be->base, gin[0], gx);
    if (!rc && gw) rc = nb_out_alloc(gin[1], n->in[1]->layout) || cpu_relayout(&be->base, gin[1], gw);
    nb_release(cols);
    nb_release(gx);
    nb_release(gw);
    if (ox) nb_release(x);
    if (ow) nb_release(w);
    if (og) nb_release(gy);
    return rc;
}
