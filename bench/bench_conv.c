/* Convolution forward + backward (data and weights) per shape, printed as JSON lines for scripts/bench.sh.
 * Each op runs as it would inside a network: the input and the upstream gradient are in the layout the
 * neighbouring layers produce (plain NCHW for the 3-channel stem, which reads the data loader's batch), and
 * the weight is a parameter in the layout the convolution keeps it in. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/select.h"
#include "bench/clock.h"
#include "bench/shapes.h"
#include "core/arith.h"
#include "core/context.h"
#include "core/ops.h"

static void fill(nb_tensor *t, uint64_t seed) {
    nb_rng_fill spec = {.dist = NB_RNG_NORMAL, .a = 0.0f, .b = 1.0f, .seed = seed};
    nb_fill_random(t, &spec);
}

/* usage: bench_conv [REPS [SHAPE_INDEX]] -- all shapes, or only the one given */
int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    int only = argc > 2 ? atoi(argv[2]) : -1;
    if (reps < 1) reps = 1;
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU);
    for (int s = 0; s < BENCH_N_CONV; s++) {
        if (only >= 0 && s != only) continue;
        const bench_conv_shape *c = &bench_conv_shapes[s];
        int64_t xs[4] = {c->N, c->C, c->H, c->H}, ws[4] = {c->O, c->C / c->groups, c->k, c->k};
        nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, xs), *w = nb_tensor_new(ctx, NB_F32, 4, ws);
        fill(x, 1);
        fill(w, 2);
        if (c->C >= 8) nb_tensor_relayout(x, nb_activation_layout(x));
        nb_set_requires_grad(x, true);
        nb_set_requires_grad(w, true);
        nb_conv_attr a = {.stride = {c->stride, c->stride}, .pad = {c->pad, c->pad}, .groups = c->groups};
        nb_tensor *gy = NULL;
        double times[256];
        int64_t Ho = 0;
        for (int r = -2; r < reps && r < 256; r++) {
            size_t mark = nb_scope_begin(ctx);
            double t0 = bench_now();
            nb_tensor *y = nb_conv2d(x, w, NULL, a);
            if (!gy) {
                gy = nb_tensor_new(ctx, NB_F32, 4, y->shape);
                fill(gy, 3);
                nb_tensor_relayout(gy, y->layout); /* the layout the next layer's backward hands back */
                Ho = y->shape[2];
            }
            nb_backward(y, gy);
            double t1 = bench_now();
            nb_zero_grad(x);
            nb_zero_grad(w);
            nb_scope_end(ctx, mark);
            if (r >= 0) times[r] = t1 - t0;
        }
        /* the fastest repetition: on a shared machine the others measure the neighbours' load as well */
        bench_sort_seconds(times, reps);
        double med = times[0];
        double macs = (double)c->N * c->O * Ho * Ho * (double)(c->C / c->groups) * c->k * c->k;
        printf("{\"name\": \"%s\", \"ms\": %.3f, \"gflops\": %.2f}\n", c->name, med * 1e3, 6.0 * macs / med / 1e9);
        fflush(stdout);
        nb_release(gy);
        nb_release(x);
        nb_release(w);
    }
    nb_ctx_free(ctx);
    return 0;
}
