/* bin/demo: the engine on its own, before any data set is involved. Trains a small CNN (conv-BN-ReLU-pool
 * x2 + linear) with SGD on a synthetic 10-class task whose classes are separable, printing the loss and the
 * throughput; exits non-zero if the loss did not fall, so it doubles as a smoke test. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backend/select.h"
#include "core/arith.h"
#include "core/context.h"
#include "core/ops.h"
#include "core/rng.h"
#include "optim/optim.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static nb_tensor *param(nb_ctx *ctx, const char *name, int nd, const int64_t *shape, float std, uint64_t seed) {
    nb_tensor *t = nb_tensor_new(ctx, NB_F32, nd, shape);
    if (std > 0) {
        nb_rng_fill f = {.dist = NB_RNG_NORMAL, .a = 0.0f, .b = std, .seed = seed};
        nb_fill_random(t, &f);
    } else if (std < 0) {
        nb_fill(t, 1.0);
    }
    nb_set_name(t, name);
    nb_set_requires_grad(t, true);
    return t;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 60, B = 64;
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU);
    nb_tensor *p[8] = {
        param(ctx, "conv1.weight", 4, (int64_t[]){16, 1, 3, 3}, 0.47f, 1),
        param(ctx, "bn1.weight", 1, (int64_t[]){16}, -1, 0),
        param(ctx, "bn1.bias", 1, (int64_t[]){16}, 0, 0),
        param(ctx, "conv2.weight", 4, (int64_t[]){32, 16, 3, 3}, 0.12f, 2),
        param(ctx, "bn2.weight", 1, (int64_t[]){32}, -1, 0),
        param(ctx, "bn2.bias", 1, (int64_t[]){32}, 0, 0),
        param(ctx, "fc.weight", 2, (int64_t[]){10, 32 * 7 * 7}, 0.025f, 3),
        param(ctx, "fc.bias", 1, (int64_t[]){10}, 0, 0),
    };
    nb_optim_config cfg = {.kind = NB_OPTIM_SGD, .lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f, .wd_exempt_1d = 1};
    nb_optim *opt = nb_optim_new(ctx, &cfg, p, 8);

    /* class c: a bright 7x7 square at one of ten positions on a noisy 28x28 image */
    float *img = malloc(sizeof(float) * (size_t)B * 28 * 28);
    int64_t *lab = malloc(sizeof(int64_t) * (size_t)B);
    nb_rng r = nb_rng_make(5, 0);
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){B, 1, 28, 28});
    nb_tensor *y = nb_tensor_new(ctx, NB_I64, 1, (int64_t[]){B});
    printf("nibble engine demo: small CNN, batch %d, %d threads\n", B, omp_get_max_threads());
    double t0 = now(), first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < B; i++) {
            int c = (int)nb_rng_below(&r, 10);
            lab[i] = c;
            for (int k = 0; k < 28 * 28; k++) img[i * 784 + k] = 0.3f * (nb_rng_unit(&r) - 0.5f);
            int oy = (c / 5) * 14 + 3, ox = (c % 5) * 5 + 1;
            for (int u = 0; u < 7; u++)
                for (int v = 0; v < 4; v++) img[i * 784 + (oy + u) * 28 + ox + v] += 1.0f;
        }
        nb_tensor_copy_from_host(x, img, sizeof(float) * (size_t)B * 784);
        nb_tensor_copy_from_host(y, lab, sizeof(int64_t) * (size_t)B);
        size_t mark = nb_scope_begin(ctx);
        nb_bn_attr bn = {.momentum = 0.1f, .training = 1};
        nb_pool_attr pool = {.kernel = {2, 2}};
        nb_tensor *h = nb_conv2d(x, p[0], NULL, (nb_conv_attr){.pad = {1, 1}});
        h = nb_maxpool2d(nb_relu(nb_batchnorm2d(h, p[1], p[2], NULL, NULL, bn)), pool);
        h = nb_conv2d(h, p[3], NULL, (nb_conv_attr){.pad = {1, 1}});
        h = nb_maxpool2d(nb_relu(nb_batchnorm2d(h, p[4], p[5], NULL, NULL, bn)), pool);
        nb_tensor *loss = nb_cross_entropy(nb_linear(nb_flatten(h), p[6], p[7]), y, 0.0f);
        float l = nb_item(loss);
        nb_optim_zero_grad(opt);
        nb_backward(loss, NULL);
        nb_optim_step(opt);
        nb_scope_end(ctx, mark);
        if (s == 0) first = l;
        last = l;
        if (s % 10 == 0 || s == steps - 1)
            printf("step %3d  loss %.4f  %.0f img/s\n", s, l, (s + 1) * B / (now() - t0));
    }
    free(img);
    free(lab);
    nb_release(x);
    nb_release(y);
    nb_optim_free(opt);
    for (int i = 0; i < 8; i++) nb_release(p[i]);
    nb_ctx_free(ctx);
    if (!(last < 0.5f * first)) {
        fprintf(stderr, "demo: the loss did not fall (%.4f -> %.4f)\n", first, last);
        return 1;
    }
    printf("loss %.4f -> %.4f\n", first, last);
    return 0;
}
