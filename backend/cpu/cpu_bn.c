/* Batch normalisation on oneDNN, in the input's layout. The batch statistics are computed here, in double
 * precision as PyTorch does, and handed to oneDNN's normalisation: oneDNN's own float accumulation left the
 * outputs of a ResNet-20 five times further from the exact values than PyTorch's, enough to flip ReLUs whose
 * inputs sit near zero and move a training step's gradients by percents. Backward takes the same statistics.
 * The running variance follows PyTorch and takes the unbiased estimate. Under mixed precision the input and
 * output are bf16 (oneDNN normalises them in f32) and the statistics, scale and shift stay f32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/bf16.h"

/* Forward always normalises with given statistics (ours in training, the running ones in evaluation);
 * backward differentiates through the batch statistics in training only. */
static unsigned bn_flags(const nb_node *n, bool backward) {
    unsigned f = 0;
    if (n->in[1]) f |= dnnl_use_scale | dnnl_use_shift;
    /* synchronized batch norm differentiates through the group's statistics itself (sync_backward) */
    if (!backward || !n->attr.bn.training || n->attr.bn.sync) f |= dnnl_use_global_stats;
    if (n->attr.bn.relu) f |= dnnl_fuse_norm_relu;
    return f;
}

/* The strides of x in elements and its channel block (1 for plain NCHW, 8 or 16 for nChw8c/nChw16c): what
 * the per-channel loops below walk. -1 after reporting a layout they cannot. */
static int channel_walk(cpu_backend *be, const nb_tensor *x, int64_t st[4], int64_t *bs) {
    *bs = 1;
    if (x->layout == NB_LAYOUT_PLAIN) {
        for (int i = 0; i < 4; i++) st[i] = x->stride[i];
        return 0;
    }
    const dnnl_memory_desc_t *md = cpu_layout_md(be, x->layout);
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (md->format_kind != dnnl_blocked || md->ndims != 4 || b->inner_nblks > 1 ||
        (b->inner_nblks == 1 && b->inner_idxs[0] != 1)) {
        NB_FAIL(be->base.ctx, "batchnorm2d", "unsupported layout for input %s", NB_SHAPE(x));
        return -1;
    }
    for (int i = 0; i < 4; i++) st[i] = b->strides[i];
    if (b->inner_nblks == 1) *bs = b->inner_blks[0];
    if (*bs > 16) {
        NB_FAIL(be->base.ctx, "batchnorm2d", "channel blocks of %lld are not supported", (long long)*bs);
        return -1;
    }
    return 0;
}

/* Per-channel sums of x and x^2 in double, for plain NCHW or a layout that blocks the channels (nChw8c). In
 * double the cancellation of E[x^2] - E[x]^2 costs about 1e-10 relative for activations, far below float32
 * resolution. Channel blocks run in parallel; each keeps its sums in order, so the result does not depend
 * on the thread count. */
CPU_SIMD_CLONES static int bn_sums(cpu_backend *be, const nb_tensor *x, double *sum, double *sumsq, float *mean, float *var) {
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t st[4], bs;
    if (channel_walk(be, x, st, &bs)) return -1;
    const float *p = nb_data(x);
    const uint16_t *pb = (const uint16_t *)p; /* the same bytes, when x is bf16 */
    bool bf = x->dtype == NB_BF16;
    int64_t nblk = (C + bs - 1) / bs;
#pragma omp parallel for schedule(static) if (N * C * H * W > CPU_PAR_MIN)
    for (int64_t cb = 0; cb < nblk; cb++) {
        double s[16] = {0}, q[16] = {0};
        int64_t lanes = C - cb * bs < bs ? C - cb * bs : bs;
        /* in NCHW (bs == 1) the block stride is the channel stride and a lane is a channel */
        for (int64_t n = 0; n < N; n++)
            for (int64_t h = 0; h < H; h++) {
                int64_t off = n * st[0] + cb * st[1] + h * st[2];
                const float *row = bf ? NULL : p + off;
                if (bf) {
                    /* bf16 widens to f32 exactly; the sums are the same double sums */
                    const uint16_t *r = pb + off;
                    for (int64_t w = 0; w < W; w++)
                        for (int64_t l = 0; l < lanes; l++) {
                            double v = nb_bf16_to_f32(r[w * st[3] + l]);
                            s[l] += v;
                            q[l] += v * v;
                        }
                } else if (bs == 8 && lanes == 8 && st[3] == 8) {
                    for (int64_t w = 0; w < W; w++)
                        for (int l = 0; l < 8; l++) {
                            double v = row[w * 8 + l];
                            s[l] += v;
                            q[l] += v * v;
                        }
                } else {
                    for (int64_t w = 0; w < W; w++)
                        for (int64_t l = 0; l < lanes; l++) {
                            double v = row[w * st[3] + l];
                            s[l] += v;
                            q[l] += v * v;
                        }
                }
            }
        double count = (double)(N * H * W);
        for (int64_t l = 0; l < lanes; l++) {
            if (sum) {
                sum[cb * bs + l] = s[l];
                sumsq[cb * bs + l] = q[l];
            } else { /* this process's statistics directly: no buffer, so a training step allocates nothing */
                double m = s[l] / count, v = q[l] / count - m * m;
                mean[cb * bs + l] = (float)m;
                var[cb * bs + l] = (float)(v > 0 ? v : 0);
            }
        }
    }
    return 0;
}

/* Per-channel mean and biased variance of the batch: this process's, or with sync the whole group's (the
 * sums and counts of every rank added up). *count gets the number of values per channel. */
static int bn_stats(cpu_backend *be, const nb_tensor *x, bool sync, float *mean, float *var, double *count) {
    int64_t C = x->shape[1];
    nb_comm *comm = be->base.ctx->comm;
    if (!sync || !comm) {
        *count = (double)(x->shape[0] * x->shape[2] * x->shape[3]);
        return bn_sums(be, x, NULL, NULL, mean, var);
    }
    double *buf = nb_xmalloc(sizeof(double) * (size_t)(2 * C + 1)), *s = buf, *q = buf + C;
    int rc = bn_sums(be, x, s, q, NULL, NULL);
    buf[2 * C] = (double)(x->shape[0] * x->shape[2] * x->shape[3]);
    if (rc == 0) rc = comm->allreduce_f64(comm, buf, 2 * C + 1);
    *count = buf[2 * C];
    for (int64_t c = 0; rc == 0 && c < C; c++) {
        double m = s[c] / *count, v = q[c] / *count - m * m;
        mean[c] = (float)m;
        var[c] = (float)(v > 0 ? v : 0);
    }
    free(buf);
    return rc;
}

/* Synchronized batch norm's backward. oneDNN, told the statistics are constants, gave
 * gx = gamma/sigma * dz (dz: the incoming gradient through the fused ReLU's mask) and this rank's sums
 * gg = sum(dz * xhat), gb = sum(dz). The statistics are the group's, so the full gradient subtracts the
 * group's means of those: gx -= gamma/sigma * (Gb + xhat * Gs) / M. Each rank's dz is the gradient of its own
 * mean loss, so its sums enter the group's in proportion to its share of the batch (and the result is scaled
 * back), which makes the weighted sum of the ranks' gradients that of one process over the whole batch. */
static int sync_backward(cpu_backend *be, const nb_node *n, nb_tensor *gx, const nb_tensor *gg, const nb_tensor *gb) {
    const nb_tensor *x = n->in[0], *gamma = n->in[1];
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    nb_comm *comm = be->base.ctx->comm;
    double share = comm ? comm->share : 1.0;
    double *buf = nb_xmalloc(sizeof(double) * (size_t)(2 * C + 1));
    const float *pg = nb_data(gg), *pb = nb_data(gb);
    for (int64_t c = 0; c < C; c++) {
        buf[c] = share * pg[c];
        buf[C + c] = share * pb[c];
    }
    buf[2 * C] = (double)(N * H * W);
    int rc = comm ? comm->allreduce_f64(comm, buf, 2 * C + 1) : 0;
    int64_t st[4], bs;
    if (rc == 0) rc = channel_walk(be, gx, st, &bs);
    if (rc) {
        free(buf);
        return -1;
    }
    const float *mean = nb_data(n->saved[0]), *var = nb_data(n->saved[1]), *g = nb_data(gamma), *px = nb_data(x);
    float *a = nb_xmalloc(sizeof(float) * (size_t)C), *bterm = nb_xmalloc(sizeof(float) * (size_t)C),
          *inv = nb_xmalloc(sizeof(float) * (size_t)C);
    double M = buf[2 * C];
    for (int64_t c = 0; c < C; c++) {
        inv[c] = 1.0f / sqrtf(var[c] + n->attr.bn.eps);
        float k = g[c] * inv[c];
        a[c] = (float)(k * buf[c] / (share * M));          /* multiplies xhat */
        bterm[c] = (float)(k * buf[C + c] / (share * M)); /* constant per channel */
    }
    float *pgx = nb_data(gx);
    int64_t nblk = (C + bs - 1) / bs;
    /* x and gx share the layout */
#pragma omp parallel for collapse(2) schedule(static) if (N * C * H * W > CPU_PAR_MIN)
    for (int64_t nn = 0; nn < N; nn++)
        for (int64_t cb = 0; cb < nblk; cb++) {
            int64_t lanes = C - cb * bs < bs ? C - cb * bs : bs;
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    for (int64_t l = 0; l < lanes; l++) {
                        int64_t c = cb * bs + l, off = nn * st[0] + cb * st[1] + h * st[2] + w * st[3] + l;
                        float xhat = (px[off] - mean[c]) * inv[c];
                        pgx[off] -= bterm[c] + a[c] * xhat;
                    }
        }
    free(a);
    free(bterm);
    free(inv);
    free(buf);
    return 0;
}

static cpu_prim *bn_fwd_prim(cpu_backend *be, const nb_node *n, dnnl_prop_kind_t prop, bool for_backward) {
    const nb_tensor *x = n->in[0];
    unsigned flags = bn_flags(n, for_backward);
    cpu_key k;
    cpu_key_init(&k, NB_OP_BATCHNORM2D, prop == dnnl_forward_inference ? PHASE_FWD_INFER : PHASE_FWD);
    cpu_key_tensor(&k, x);
    cpu_key_add(&k, &flags, sizeof flags);
    cpu_key_add(&k, &n->attr.bn.eps, sizeof(float));
    cpu_prim *p = cpu_cache_find(be, &k);
    if (p) return p;
    dnnl_memory_desc_t md;
    if (cpu_md(be, x, &md)) return NULL;
    dnnl_batch_normalization_desc_t d;
    dnnl_primitive_desc_t pd;
    if (dnnl_batch_normalization_forward_desc_init(&d, prop, &md, n->attr.bn.eps, flags) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &d, be->attr, be->engine, NULL) != dnnl_success) {
        NB_FAIL(be->base.ctx, "batchnorm2d", "oneDNN has no batch normalisation for input %s", NB_SHAPE(x));
        return NULL;
    }
    /* argument order fixed for the handle arrays below; the workspace (the fused ReLU's mask) comes last */
    int args[7] = {DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT,
                   DNNL_ARG_WORKSPACE};
    bool ws = (flags & dnnl_fuse_norm_relu) && prop == dnnl_forward_training;
    if (!n->in[1]) {
        args[4] = DNNL_ARG_WORKSPACE;
        return cpu_prim_make(be, &k, pd, args, ws ? 5 : 4, NULL);
    }
    return cpu_prim_make(be, &k, pd, args, ws ? 7 : 6, NULL);
}

int cpu_bn_forward(cpu_backend *be, nb_node *n) {
    nb_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2], *rm = n->in[3], *rv = n->in[4], *y = n->out[0];
    const nb_bn_attr *a = &n->attr.bn;
    int64_t C = x->shape[1];
    bool train = a->training;
    dnnl_prop_kind_t prop = train || nb_node_wants_grad(be->base.ctx, n) ? dnnl_forward_training : dnnl_forward_inference;
    cpu_prim *p = bn_fwd_prim(be, n, prop, false);
    if (!p) return -1;
    if (nb_out_alloc(y, x->layout) != 0) return -1;
    nb_tensor *mean = rm, *var = rv;
    double count = 0;
    if (train) {
        /* batch statistics: saved for backward (slots 0 and 1) */
        mean = cpu_new(be, NB_F32, 1, &C, NB_LAYOUT_PLAIN);
        nb_node_set_saved(n, 0, mean);
        var = cpu_new(be, NB_F32, 1, &C, NB_LAYOUT_PLAIN);
        nb_node_set_saved(n, 1, var);
        if (!mean || !var || bn_stats(be, x, a->sync, nb_data(mean), nb_data(var), &count)) return -1;
    }
    void *h[7] = {nb_data(x), nb_data(y), nb_data(mean), nb_data(var), gamma ? nb_data(gamma) : NULL,
                  beta ? nb_data(beta) : NULL, NULL};
    int ws_slot = gamma ? 6 : 4;
    if (p->nargs > ws_slot) {
        nb_tensor *ws = cpu_new(be, NB_U8, 4, x->shape, p->layout[ws_slot]); /* slot 2: the fused ReLU's mask */
        nb_node_set_saved(n, 2, ws);
        if (!ws) return -1;
        h[ws_slot] = nb_data(ws);
    }
    if (cpu_prim_run(be, p, h, "batchnorm2d") != 0) return -1;
    if (train && rm) {
        float m = a->momentum, *pm = nb_data(rm), *pv = nb_data(rv);
        const float *bm = nb_data(mean), *bv = nb_data(var);
        float unbias = (float)(count / (count - 1.0));
        for (int64_t c = 0; c < C; c++) {
            pm[c] = (1.0f - m) * pm[c] + m * bm[c];
            pv[c] = (1.0f - m) * pv[c] + m * bv[c] * unbias;
        }
        rm->version++;
        rv->version++;
    }
    return 0;
}

int cpu_bn_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *gamma = n->in[1], *gy = gout[0];
    const nb_bn_attr *a = &n->attr.bn;
    NB_REQUIRE(be->base.ctx, !a->sync || gamma, -1, "batchnorm2d",
               "synchronized batch norm needs the affine scale and shift (input %s)", NB_SHAPE(x));
    int64_t C = x->shape[1];
    unsigned flags = bn_flags(n, true);
    cpu_prim *fwd = bn_fwd_prim(be, n, dnnl_forward_training, true);
    if (!fwd) return -1;
    cpu_key k;
    cpu_key_init(&k, NB_OP_BATCHNORM2D, PHASE_BWD);
    cpu_key_tensor(&k, x);
    cpu_key_tensor(&k, gy);
    cpu_key_add(&k, &flags, sizeof flags);
    cpu_key_add(&k, &a->eps, sizeof(float));
    cpu_prim *p = cpu_cache_find(be, &k);
    if (!p) {
        dnnl_memory_desc_t xmd, gmd;
        if (cpu_md(be, x, &xmd) || cpu_md(be, gy, &gmd)) return -1;
        dnnl_batch_normalization_desc_t d;
        dnnl_primitive_desc_t pd;
        dnnl_prop_kind_t prop = gamma ? dnnl_backward : dnnl_backward_data;
        if (dnnl_batch_normalization_backward_desc_init(&d, prop, &gmd, &xmd, a->eps, flags) != dnnl_success ||
            dnnl_primitive_desc_create(&pd, &d, be->attr, be->engine, fwd->pd) != dnnl_success) {
            NB_FAIL(be->base.ctx, "batchnorm2d", "oneDNN has no batch-norm backward for input %s", NB_SHAPE(x));
            return -1;
        }
        /* oneDNN 2.6 wants the shift among the inputs whenever use_shift is set, although backward
         * does not read it */
        int args[10] = {DNNL_ARG_SRC, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC};
        int nargs = 5;
        if (a->relu) args[nargs++] = DNNL_ARG_WORKSPACE;
        if (gamma) {
            args[nargs++] = DNNL_ARG_SCALE;
            args[nargs++] = DNNL_ARG_DIFF_SCALE;
            args[nargs++] = DNNL_ARG_DIFF_SHIFT;
            args[nargs++] = DNNL_ARG_SHIFT;
        }
        p = cpu_prim_make(be, &k, pd, args, nargs, NULL);
        if (!p) return -1;
    }
    nb_tensor *mean = a->training ? n->saved[0] : n->in[3];
    nb_tensor *var = a->training ? n->saved[1] : n->in[4];
    /* oneDNN always computes every output; unwanted ones go to temporaries */
    nb_tensor *gx = gin[0], *gg = gamma ? gin[1] : NULL, *gb = gamma ? gin[2] : NULL;
    nb_tensor *tmp[3] = {NULL, NULL, NULL};
    int rc = 0;
    if (gx) rc |= nb_out_alloc(gx, x->layout);
    else gx = tmp[0] = cpu_new(be, x->dtype, 4, x->shape, x->layout);
    if (gamma) {
        if (gg) rc |= nb_out_alloc(gg, NB_LAYOUT_PLAIN);
        else gg = tmp[1] = cpu_new(be, NB_F32, 1, &C, NB_LAYOUT_PLAIN);
        if (gb) rc |= nb_out_alloc(gb, NB_LAYOUT_PLAIN);
        else gb = tmp[2] = cpu_new(be, NB_F32, 1, &C, NB_LAYOUT_PLAIN);
    }
    if (rc == 0 && gx && (!gamma || (gg && gb))) {
        void *h[10] = {nb_data(x), nb_data(mean), nb_data(var), nb_data(gy), nb_data(gx)};
        int nh = 5;
        if (a->relu) h[nh++] = nb_data(n->saved[2]);
        if (gamma) {
            h[nh++] = nb_data(gamma);
            h[nh++] = nb_data(gg);
            h[nh++] = nb_data(gb);
            h[nh++] = nb_data(n->in[2]);
        }
        rc = cpu_prim_run(be, p, h, "batchnorm2d");
        if (rc == 0 && a->training && a->sync) rc = sync_backward(be, n, gx, gg, gb);
    } else {
        rc = -1;
    }
    for (int i = 0; i < 3; i++) nb_release(tmp[i]);
    return rc;
}
